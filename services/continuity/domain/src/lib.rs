//! continuity's rules (rules.md C1–C9, T1, T2) as pure functions of one person's facts.
//!
//! [`evaluate`] takes every application period of a person in every municipality and the
//! business date, and returns the determination of each period (the
//! RS fields 3–10) and the anomalies the facts give. It depends on the facts only, never on
//! the order they arrived in (T2). [`Step`] says whether the evaluation happens at a day close:
//! the window rules (C5, C6) raise anomalies only then (T1), and any step closes what is gone.
//!
//! Architecture invariant: no IO, no clock; no person identifiers beyond the municipality's
//! own 宛名番号.

use std::collections::{BTreeMap, BTreeSet};

use kokuho_ids::Date;
use kokuho_ids::codes::{AnomalyCode, EndReason, Judgement, StartReason};

pub mod explain;
mod person;
pub use person::{Change, PersonState, Sent, Source, Tracked, merge, report, step, watch};

/// 資格取得事由 of an unpaired 02 転入 once its window has passed (C1).
pub const UNKNOWN_START: StartReason = StartReason::Other;
/// Days a move may take before its missing half is an anomaly (C5).
pub const WINDOW_DAYS: i64 = 30;

/// One application period (適用期間) of the person in one municipality.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    pub municipality: String,
    pub resident: String,
    pub start: Date,
    pub start_reason: StartReason,
    pub end: Option<Date>,
    pub end_reason: Option<EndReason>,
    /// 転入元 (開始事由 02: a municipality of the prefecture).
    pub moved_in_from: Option<String>,
    /// 転出先 (終了事由 02).
    pub moved_out_to: Option<String>,
}

impl Period {
    /// The key of a period: (municipality, 宛名番号, 適用開始年月日).
    pub fn key(&self) -> PeriodKey {
        (self.municipality.clone(), self.resident.clone(), self.start)
    }

    fn moves_in(&self) -> bool {
        self.start_reason == StartReason::MoveInWithinPrefecture
    }

    fn moves_out(&self) -> bool {
        self.end.is_some() && self.end_reason == Some(EndReason::MoveOutWithinPrefecture)
    }

    /// Ends the qualification: an end whose reason is not a move within the prefecture.
    fn ends_span(&self) -> bool {
        self.end.is_some() && !self.moves_out()
    }

    fn overlaps(&self, other: &Period) -> bool {
        let a_end = self.end.unwrap_or(Date::MAX);
        let b_end = other.end.unwrap_or(Date::MAX);
        self.start <= b_end && other.start <= a_end
    }
}

pub type PeriodKey = (String, String, Date);

/// RS fields 3–10 of a period (C1, C9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Determination {
    pub acquired_on: Date,
    pub acquired_reason: StartReason,
    pub lost_on: Option<Date>,
    pub lost_reason: Option<EndReason>,
    /// 1 新規取得, 2 県内継続, 3 喪失.
    pub judgement: Judgement,
}

/// A continuity anomaly, as the municipality that gets it sees it (RE fields 3, 7, 10–12).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Anomaly {
    pub code: AnomalyCode,
    /// The municipality that gets the row.
    pub to: String,
    /// Its 宛名番号 of the person.
    pub resident: String,
    pub counterpart: String,
    pub counterpart_start: Option<Date>,
    pub counterpart_end: Option<Date>,
}

impl Anomaly {
    /// A01–A05 and A07 depend on windows or pairs; A03–A06 are evaluated at day close only.
    pub fn raised_at_day_close_only(&self) -> bool {
        matches!(self.code, AnomalyCode::A03 | AnomalyCode::A04 | AnomalyCode::A05 | AnomalyCode::A06)
    }
}

/// When the evaluation happens (rules.md T1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// After a submission: anomalies may close; window anomalies are not raised.
    Submission,
    /// At a day close: window anomalies are raised too.
    DayClose,
}

/// What the facts give.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// The determination of each period; `None` while it is not known (an unpaired 02 転入).
    pub periods: BTreeMap<PeriodKey, Option<Determination>>,
    /// Every anomaly the facts give now, window anomalies included.
    pub anomalies: BTreeSet<Anomaly>,
}

/// C2: the pairs (転出 index, 転入 index) of a person's periods.
pub fn pair(periods: &[Period]) -> BTreeMap<usize, usize> {
    let mut ins: Vec<usize> = (0..periods.len()).filter(|i| periods[*i].moves_in()).collect();
    // In order of start date, then municipality; the full key makes the order total (T2).
    ins.sort_by_key(|i| (periods[*i].start, periods[*i].municipality.clone(), periods[*i].resident.clone()));
    let mut out_to_in = BTreeMap::new();
    let mut taken = BTreeSet::new();
    for i in ins {
        let p = &periods[i];
        let Some(before) = p.start.add_days(-1) else { continue };
        let candidate = (0..periods.len())
            .filter(|o| !taken.contains(o) && *o != i)
            .filter(|o| {
                let q = &periods[*o];
                q.moves_out()
                    && Some(&q.municipality) == p.moved_in_from.as_ref()
                    && q.moved_out_to.as_ref() == Some(&p.municipality)
            })
            .min_by_key(|o| {
                let q = &periods[*o];
                let e = q.end.expect("a move out has an end");
                // Nearest to s − 1, then the earlier end; the key breaks any remaining tie (T2).
                (e.days_until(before).abs(), e, q.resident.clone(), q.start)
            });
        if let Some(o) = candidate {
            taken.insert(o);
            out_to_in.insert(o, i);
        }
    }
    out_to_in
}

/// True if a later day close may change the evaluation: a half of a move is still missing, or
/// two periods overlap without being a pair (C1, C5, C6).
pub fn needs_day_close(periods: &[Period]) -> bool {
    let pairs = pair(periods);
    let paired_in: BTreeSet<usize> = pairs.values().copied().collect();
    let missing_half = periods
        .iter()
        .enumerate()
        .any(|(i, p)| (p.moves_out() && !pairs.contains_key(&i)) || (p.moves_in() && !paired_in.contains(&i)));
    let n = periods.len();
    missing_half
        || (0..n).any(|i| {
            ((i + 1)..n)
                .any(|j| periods[i].overlaps(&periods[j]) && pairs.get(&i) != Some(&j) && pairs.get(&j) != Some(&i))
        })
}

/// The 75th birthday (born on Feb 29: Mar 1 in a common year).
fn birthday_75(birth: Date) -> Option<Date> {
    let year = birth.year() + 75;
    Date::from_ymd(year, birth.month_number(), birth.day()).or_else(|| Date::from_ymd(year, 3, 1))
}

/// Evaluates one person's periods on `business_date`.
pub fn evaluate(periods: &[Period], business_date: Date) -> Evaluation {
    let mut ev = Evaluation::default();
    let pairs = pair(periods);
    let predecessor: BTreeMap<usize, usize> = pairs.iter().map(|(o, i)| (*i, *o)).collect();
    let past = |d: Date| d.add_days(WINDOW_DAYS).is_some_and(|limit| business_date > limit);

    // C1: walk each chain from its first period.
    for (idx, p) in periods.iter().enumerate() {
        if predecessor.contains_key(&idx) {
            continue; // not a chain start
        }
        // An unpaired 02 転入 starts a span only once its window has passed (A04).
        let unpaired_move_in = p.moves_in();
        if unpaired_move_in && !past(p.start) {
            ev.periods.insert(p.key(), None);
            continue;
        }
        let (acquired_on, acquired_reason) = (p.start, if unpaired_move_in { UNKNOWN_START } else { p.start_reason });
        let mut chain = vec![idx];
        while let Some(next) = pairs.get(chain.last().expect("a chain has a period")) {
            chain.push(*next);
        }
        for (pos, i) in chain.iter().enumerate() {
            let q = &periods[*i];
            let ends = q.ends_span();
            let judgement = if ends {
                Judgement::Lost
            } else if pos == 0 {
                Judgement::NewlyAcquired
            } else {
                Judgement::Continued
            };
            ev.periods.insert(
                q.key(),
                Some(Determination {
                    acquired_on,
                    acquired_reason,
                    lost_on: if ends { q.end.and_then(|e| e.add_days(1)) } else { None },
                    lost_reason: if ends { q.end_reason } else { None },
                    judgement,
                }),
            );
        }
    }

    // C3, C4: gaps and overlaps of each pair, to both municipalities.
    for (o, i) in &pairs {
        let (a, b) = (&periods[*o], &periods[*i]);
        let e = a.end.expect("a move out has an end");
        let code = if b.start > e.add_days(1).unwrap_or(e) {
            Some(AnomalyCode::A01)
        } else if b.start <= e {
            Some(AnomalyCode::A02)
        } else {
            None
        };
        if let Some(code) = code {
            ev.anomalies.insert(anomaly(code, a, &b.municipality, Some(b.start), b.end));
            ev.anomalies.insert(anomaly(code, b, &a.municipality, Some(a.start), a.end));
        }
    }

    // C5: halves of a move still missing after the window.
    for (idx, p) in periods.iter().enumerate() {
        if p.moves_out() && !pairs.contains_key(&idx) && p.end.is_some_and(past) {
            let to = p.moved_out_to.clone().unwrap_or_default();
            ev.anomalies.insert(anomaly(AnomalyCode::A03, p, &to, None, None));
        }
        if p.moves_in() && !predecessor.contains_key(&idx) && past(p.start) {
            let from = p.moved_in_from.clone().unwrap_or_default();
            ev.anomalies.insert(anomaly(AnomalyCode::A04, p, &from, None, None));
            // A05 to A if the person's period there is still open.
            for q in periods.iter().filter(|q| q.municipality == from && q.end.is_none() && q.start < p.start) {
                ev.anomalies.insert(anomaly(AnomalyCode::A05, q, &p.municipality, Some(p.start), p.end));
            }
        }
    }

    // C6: overlapping periods that are not a pair (and not the C5 case).
    for i in 0..periods.len() {
        for j in (i + 1)..periods.len() {
            let (a, b) = (&periods[i], &periods[j]);
            if !a.overlaps(b) || pairs.get(&i) == Some(&j) || pairs.get(&j) == Some(&i) {
                continue;
            }
            let c5_case = |open: &Period, mover: &Period, mover_idx: usize| {
                open.end.is_none()
                    && mover.moves_in()
                    && !predecessor.contains_key(&mover_idx)
                    && mover.moved_in_from.as_ref() == Some(&open.municipality)
            };
            if c5_case(a, b, j) || c5_case(b, a, i) {
                continue;
            }
            ev.anomalies.insert(anomaly(AnomalyCode::A06, a, &b.municipality, Some(b.start), b.end));
            ev.anomalies.insert(anomaly(AnomalyCode::A06, b, &a.municipality, Some(a.start), a.end));
        }
    }

    // C7: a period starting after a death.
    for d in periods.iter().filter(|d| d.end_reason == Some(EndReason::Death)) {
        let Some(died) = d.end else { continue };
        for p in periods.iter().filter(|p| p.start > died) {
            ev.anomalies.insert(anomaly(AnomalyCode::A07, p, &d.municipality, Some(d.start), d.end));
        }
    }
    ev
}

/// C8: the period ends 06 後期高齢者医療移行, but not on the day before the 75th birthday.
pub fn early_late_elderly(p: &Period, birth: Date) -> bool {
    p.end_reason == Some(EndReason::LateElderly) && p.end != birthday_75(birth).and_then(|b| b.add_days(-1))
}

fn anomaly(code: AnomalyCode, own: &Period, counterpart: &str, start: Option<Date>, end: Option<Date>) -> Anomaly {
    Anomaly {
        code,
        to: own.municipality.clone(),
        resident: own.resident.clone(),
        counterpart: counterpart.to_string(),
        counterpart_start: start,
        counterpart_end: end,
    }
}

/// The anomalies open after a step (C10, T1): what the facts give, except that window
/// anomalies (A03–A06) not open before are raised only at a day close.
pub fn open_after(step: Step, before: &BTreeSet<Anomaly>, now: &BTreeSet<Anomaly>) -> BTreeSet<Anomaly> {
    now.iter()
        .filter(|a| step == Step::DayClose || !a.raised_at_day_close_only() || before.contains(a))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests;
