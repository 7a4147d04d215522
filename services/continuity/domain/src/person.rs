//! One person as continuity keeps them between evaluations, and the pure steps that change
//! them: a linked record registers, replaces or deletes a period ([`report`]); a provisional
//! person merges into the survivor ([`merge`], rules.md I5); an evaluation compares the
//! determinations and anomalies with what was sent and open, and says what to send ([`step`],
//! C9, C10, T1).

use std::collections::{BTreeMap, BTreeSet};

use kokuho_ids::Date;
use kokuho_ids::codes::{AlertState, Correction, InputKind, Kubun};
use kokuho_rows::{Re, Row, Rs};

use crate::{Anomaly, Period, PeriodKey, Step, early_late_elderly, evaluate, needs_day_close};

/// The record that last reported a period: the receipt and line its W rows name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    pub receipt: String,
    pub line: u32,
}

/// A period as continuity keeps it between evaluations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    pub period: Period,
    /// The person's 市区町村被保険者ID in the period's municipality (RS field 3, I2).
    pub muni_id: String,
    /// The RS row last sent for the period; `None` while none was sent.
    pub sent: Option<Rs>,
    pub source: Source,
    /// The 世帯番号 the record carried (published with the C2 pairs for kogaku, H1).
    pub household: String,
}

/// A person as continuity knows them after an evaluation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonState {
    pub pref_id: String,
    pub birth: Option<Date>,
    pub periods: Vec<Tracked>,
    /// The anomalies open (sent with 状態 1, not yet closed).
    pub open: BTreeSet<Anomaly>,
    /// A later day close may change something: evaluate the person then (T1).
    pub watch: bool,
}

/// What a linked KK record of a 被保険者 reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// 登録: the period with this key is registered, or replaced.
    Register { period: Period, muni_id: String, birth: Option<Date>, source: Source, household: String },
    /// 削除 of the period with this key.
    Delete { key: PeriodKey },
}

/// A row an evaluation sends, with the municipality that gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub to: String,
    pub row: Row,
}

const W004_FIELD: &str = "適用終了年月日";
const W004_MESSAGE: &str = "後期高齢者医療移行が75歳到達日の前日ではありません";

impl PersonState {
    /// C2: the person's move pairs now, as (転出 period, 転入 period) indexes into `periods`, in
    /// order of the 転入. Published with every evaluation, so that kogaku forms move groups (H1)
    /// without pairing again.
    pub fn pairs(&self) -> Vec<(usize, usize)> {
        let periods: Vec<Period> = self.periods.iter().map(|t| t.period.clone()).collect();
        let mut pairs: Vec<(usize, usize)> = crate::pair(&periods).into_iter().collect();
        pairs.sort_by_key(|(_, i)| periods[*i].key());
        pairs
    }
}

/// A linked record changes the person's periods. A deleted period goes to `withdrawn` (its
/// rows are withdrawn by the next [`step`]). Returns the record's own warnings: W004 when it
/// reports an end 06 not on the day before the 75th birthday (C8), naming its receipt and line.
pub fn report(person: &mut PersonState, change: Change, withdrawn: &mut Vec<Tracked>) -> Vec<Sent> {
    match change {
        Change::Delete { key } => {
            if let Some(i) = person.periods.iter().position(|t| t.period.key() == key) {
                withdrawn.push(person.periods.remove(i));
            }
            Vec::new()
        }
        Change::Register { period, muni_id, birth, source, household } => {
            if birth.is_some() {
                person.birth = birth;
            }
            // I2: one 市区町村被保険者ID per person and municipality, on every period there.
            if !muni_id.is_empty() {
                for t in person.periods.iter_mut().filter(|t| t.period.municipality == period.municipality) {
                    t.muni_id = muni_id.clone();
                }
            }
            let mut warnings = Vec::new();
            if person.birth.is_some_and(|b| early_late_elderly(&period, b)) {
                warnings.push(Sent { to: period.municipality.clone(), row: w004(&period, &source).into() });
            }
            let key = period.key();
            match person.periods.iter_mut().find(|t| t.period.key() == key) {
                Some(t) => {
                    t.period = period;
                    t.source = source;
                    t.household = household;
                    if !muni_id.is_empty() {
                        t.muni_id = muni_id;
                    }
                }
                None => person.periods.push(Tracked { period, muni_id, sent: None, source, household }),
            }
            warnings
        }
    }
}

fn w004(period: &Period, source: &Source) -> Re {
    Re {
        kubun: Kubun::Warning,
        code: "W004",
        receipt: source.receipt.clone(),
        file_kind: Some(InputKind::Persons),
        line: Some(source.line),
        resident: period.resident.clone(),
        field: W004_FIELD.to_string(),
        message: W004_MESSAGE.to_string(),
        counterpart: String::new(),
        counterpart_start: None,
        counterpart_end: None,
        state: AlertState::Raised,
    }
}

/// I5: the provisional person `from` merges into `into`. Its periods and open anomalies become
/// the survivor's; in each municipality of `ids` their 市区町村被保険者ID becomes the survivor's
/// there, so the next [`step`] sends their RS rows again with 訂正 = 1 where it changed.
pub fn merge(into: &mut PersonState, from: PersonState, ids: &BTreeMap<String, String>) {
    into.periods.extend(from.periods);
    into.open.extend(from.open);
    into.birth = into.birth.or(from.birth);
    for t in &mut into.periods {
        if let Some(id) = ids.get(&t.period.municipality) {
            t.muni_id = id.clone();
        }
    }
}

impl Anomaly {
    /// The RE row of this anomaly (formats.md: fields 3, 7, 10–12 say which; 13 the state).
    pub fn row(&self, state: AlertState) -> Re {
        Re {
            kubun: Kubun::Anomaly,
            code: self.code.code(),
            receipt: String::new(),
            file_kind: None,
            line: None,
            resident: self.resident.clone(),
            field: String::new(),
            message: self.code.label().to_string(),
            counterpart: self.counterpart.clone(),
            counterpart_start: self.counterpart_start,
            counterpart_end: self.counterpart_end,
            state,
        }
    }
}

/// The RS row of a tracked period for a determination (C9), 訂正 by what was sent before.
fn rs_row(t: &Tracked, d: crate::Determination) -> Rs {
    Rs {
        resident: t.period.resident.clone(),
        muni_id: t.muni_id.clone(),
        acquired_on: d.acquired_on,
        acquired_reason: d.acquired_reason,
        lost_on: d.lost_on,
        lost_reason: d.lost_reason,
        start: t.period.start,
        end: t.period.end,
        judgement: d.judgement,
        correction: if t.sent.is_some() { Correction::Replaces } else { Correction::First },
    }
}

/// One evaluation step of a person (C9, C10, T1): evaluates, compares with what was sent and
/// what is open, updates both and the watch flag, and returns the rows to send. Periods removed
/// by a 削除 are passed in `withdrawn`: their rows are withdrawn with 判定区分 9.
pub fn step(person: &mut PersonState, withdrawn: &[Tracked], step: Step, business_date: Date) -> Vec<Sent> {
    let mut out = Vec::new();
    for t in withdrawn {
        if let Some(sent) = &t.sent {
            out.push(Sent { to: t.period.municipality.clone(), row: sent.withdrawal().into() });
        }
    }
    let periods: Vec<Period> = person.periods.iter().map(|t| t.period.clone()).collect();
    let ev = evaluate(&periods, business_date);
    for t in person.periods.iter_mut() {
        let to = t.period.municipality.clone();
        match ev.periods.get(&t.period.key()).cloned().flatten() {
            Some(d) => {
                let row = rs_row(t, d);
                if t.sent.as_ref().is_none_or(|s| !s.same_determination(&row)) {
                    out.push(Sent { to, row: row.clone().into() });
                    t.sent = Some(row);
                }
            }
            // The determination is unknown again (its pair disappeared): withdraw (C9).
            None => {
                if let Some(sent) = t.sent.take() {
                    out.push(Sent { to, row: sent.withdrawal().into() });
                }
            }
        }
    }
    let after = crate::open_after(step, &person.open, &ev.anomalies);
    for a in after.difference(&person.open) {
        out.push(Sent { to: a.to.clone(), row: a.row(AlertState::Raised).into() });
    }
    for a in person.open.difference(&after) {
        out.push(Sent { to: a.to.clone(), row: a.row(AlertState::Closed).into() });
    }
    person.open = after;
    person.watch = watch(&person.periods, &person.open);
    out
}

/// True if the person must be evaluated again at the next day close.
pub fn watch(tracked: &[Tracked], open: &BTreeSet<Anomaly>) -> bool {
    let periods: Vec<Period> = tracked.iter().map(|t| t.period.clone()).collect();
    needs_day_close(&periods) || open.iter().any(Anomaly::raised_at_day_close_only)
}
