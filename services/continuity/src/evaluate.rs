//! Workflow `evaluate` (identity's events → `PersonsEvaluated`) and workflow `forward-rows`.

use std::collections::{BTreeMap, BTreeSet};

use kokuho_bus::Bus;
use kokuho_bus::event::{self, Payload};
use kokuho_continuity_domain::{self as domain, Anomaly, Step};
use kokuho_ids::Date;
use kokuho_proto::continuity::v1 as pb;
use kokuho_proto::identity::v1 as ipb;
use kokuho_proto::results::v1::ResultRow;
use kokuho_store::{ApplyError, Decider, LogEvent, ProjectionHandle, Read, Rejected, Workflow};

use crate::state::{CURSOR, ContinuityState, DAY, load, u32_of, u64_of, watched};
use crate::{CONTINUITY, EVALUATIONS_SUBJECT, IDENTITY_STREAM};

pub(crate) struct Evaluate {
    pub(crate) bus: Bus,
    pub(crate) state: ProjectionHandle,
}

/// What one identity event asks continuity to do.
struct Work {
    step: Step,
    /// `None`: keep the business date.
    day: Option<u32>,
    links: Vec<(String, ipb::RecordLinked)>,
    merges: Vec<ipb::PersonMerged>,
    /// Evaluate the watched persons (a day close).
    watched: bool,
}

/// The work of an identity event; `None` for events continuity has nothing to do with.
fn work_of(payload: &[u8]) -> Result<Option<Work>, String> {
    let (_, payload) = event::decode(payload)?;
    Ok(match payload {
        Payload::ChunkLinked(c) => Some(Work {
            step: Step::Submission,
            day: None,
            links: c.links.into_iter().map(|l| (c.municipality.clone(), l)).collect(),
            merges: c.merged,
            watched: false,
        }),
        Payload::CaseResolved(r) => Some(Work {
            step: Step::Submission,
            day: None,
            links: r.links.into_iter().map(|l| (r.municipality.clone(), l)).collect(),
            merges: Vec::new(),
            watched: false,
        }),
        Payload::BusinessDay(d) => Some(Work {
            step: if d.day_close { Step::DayClose } else { Step::Submission },
            day: Some(d.date),
            links: Vec::new(),
            merges: Vec::new(),
            watched: d.day_close,
        }),
        Payload::SubmissionAccepted(_)
        | Payload::SubmissionRejected(_)
        | Payload::RecordsAccepted(_)
        | Payload::BusinessDateSet(_)
        | Payload::DayClosed(_)
        | Payload::NumberReleased(_)
        | Payload::ResultRowsAdded(_)
        | Payload::ResultFileIssued(_)
        | Payload::ResultFilesAcknowledged(_)
        | Payload::AccessRecorded(_)
        | Payload::PersonsEvaluated(_) => None,
    })
}

impl Workflow for Evaluate {
    const NAME: &'static str = "evaluate";
    const STREAM: &'static str = IDENTITY_STREAM;

    /// Evaluates a group of identity events in order, each on continuity's state as the earlier
    /// ones leave it, and appends the results as one atomic batch (kokuho_store::Decider).
    async fn handle(&self, events: &[LogEvent<'_>]) -> Result<Rejected, ApplyError> {
        let decider = Decider {
            bus: &self.bus,
            projection: &ContinuityState,
            state: &self.state,
            stream: CONTINUITY.name,
            subject: EVALUATIONS_SUBJECT,
        };
        decider
            .run(
                events,
                |view| Ok(u64_of(view.get(CURSOR)?)),
                |view, ev| {
                    let Some(work) = work_of(ev.payload).map_err(ApplyError::Malformed)? else { return Ok(None) };
                    let evaluated = evaluate(view, &work, ev.seq)?;
                    Ok(Some((Payload::PersonsEvaluated(evaluated), String::new(), String::new())))
                },
            )
            .await
    }
}

fn date(v: u32) -> Option<Date> {
    if v == 0 { None } else { Date::from_yyyymmdd(v) }
}

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn to_domain(p: &pb::PeriodState) -> Option<domain::Period> {
    Some(domain::Period {
        municipality: p.municipality.clone(),
        resident: p.resident_number.clone(),
        start: date(p.start)?,
        start_reason: p.start_reason.clone(),
        end: date(p.end),
        end_reason: opt(&p.end_reason),
        moved_in_from: opt(&p.moved_in_from),
        moved_out_to: opt(&p.moved_out_to),
    })
}

fn anomaly_of(a: &pb::AnomalyState) -> Anomaly {
    Anomaly {
        code: match a.code.as_str() {
            "A01" => "A01",
            "A02" => "A02",
            "A03" => "A03",
            "A04" => "A04",
            "A05" => "A05",
            "A06" => "A06",
            _ => "A07",
        },
        to: a.municipality.clone(),
        resident: a.resident_number.clone(),
        counterpart: a.counterpart.clone(),
        counterpart_start: date(a.counterpart_start),
        counterpart_end: date(a.counterpart_end),
    }
}

fn state_of(a: &Anomaly) -> pb::AnomalyState {
    pb::AnomalyState {
        code: a.code.into(),
        municipality: a.to.clone(),
        resident_number: a.resident.clone(),
        counterpart: a.counterpart.clone(),
        counterpart_start: a.counterpart_start.map(Date::to_yyyymmdd).unwrap_or(0),
        counterpart_end: a.counterpart_end.map(Date::to_yyyymmdd).unwrap_or(0),
    }
}

fn ymd(d: Option<Date>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

fn anomaly_message(code: &str) -> &'static str {
    match code {
        "A01" => "県内異動の前後の適用期間に空白があります",
        "A02" => "県内異動の前後の適用期間が重複しています",
        "A03" => "県内転出先の転入が届いていません",
        "A04" => "県内転入元の転出が届いていません",
        "A05" => "県内転出の処理がされていません",
        "A06" => "二重加入の適用期間があります",
        _ => "死亡後に始まる適用期間があります",
    }
}

/// Rows per municipality.
#[derive(Default)]
struct Rows(BTreeMap<String, Vec<ResultRow>>);

impl Rows {
    fn push(&mut self, municipality: &str, kind: &str, fields: Vec<String>) {
        self.0.entry(municipality.to_string()).or_default().push(ResultRow { kind: kind.into(), fields });
    }

    fn anomaly(&mut self, a: &Anomaly, state: &str) {
        let fields = vec![
            "A".into(),
            a.code.into(),
            String::new(),
            String::new(),
            String::new(),
            a.resident.clone(),
            String::new(),
            anomaly_message(a.code).into(),
            a.counterpart.clone(),
            ymd(a.counterpart_start),
            ymd(a.counterpart_end),
            state.into(),
        ];
        self.push(&a.to, "RE", fields);
    }
}

/// Evaluates one identity event: updates the periods it reports, evaluates every person it
/// touches (and, at a day close, every watched person) and collects the rows they send.
fn evaluate(view: &dyn Read, work: &Work, identity_seq: u64) -> Result<pb::PersonsEvaluated, ApplyError> {
    let day = work.day.unwrap_or_else(|| u32_of(view.get(DAY).ok().flatten()));
    let business_date = Date::from_yyyymmdd(day).unwrap_or(Date::MAX);
    let mut persons: BTreeMap<String, pb::PersonState> = BTreeMap::new();
    let get = |persons: &mut BTreeMap<String, pb::PersonState>, pref: &str| -> Result<(), ApplyError> {
        if !persons.contains_key(pref) {
            let s = load(view, pref)?.unwrap_or_else(|| pb::PersonState { pref_id: pref.into(), ..Default::default() });
            persons.insert(pref.into(), s);
        }
        Ok(())
    };
    let mut merged_away = Vec::new();
    for m in &work.merges {
        get(&mut persons, &m.into)?;
        let from = match persons.remove(&m.from) {
            Some(p) => Some(p),
            None => load(view, &m.from)?,
        };
        if let Some(from) = from {
            let into = persons.get_mut(&m.into).expect("loaded above");
            into.periods.extend(from.periods);
            into.open.extend(from.open);
        }
        merged_away.push(m.from.clone());
    }
    // Periods removed by a 削除: their rows are withdrawn (判定区分 9).
    let mut withdrawn: BTreeMap<String, Vec<pb::PeriodState>> = BTreeMap::new();
    for (muni, link) in &work.links {
        let Some(r) = &link.record else { continue };
        if r.insured_kind != "1" {
            continue; // a 擬制世帯主 has no period
        }
        get(&mut persons, &link.pref_id)?;
        let person = persons.get_mut(&link.pref_id).expect("loaded above");
        let same = |p: &pb::PeriodState| {
            p.municipality == *muni && p.resident_number == r.resident_number && p.start == r.start_date
        };
        let existing = person.periods.iter().position(same);
        if r.processing == "3" {
            if let Some(i) = existing {
                withdrawn.entry(link.pref_id.clone()).or_default().push(person.periods.remove(i));
            }
            continue;
        }
        if r.birth_date != 0 {
            person.birth_date = r.birth_date;
        }
        let sent = existing.map(|i| person.periods[i].sent.clone()).unwrap_or_default();
        let period = pb::PeriodState {
            municipality: muni.clone(),
            resident_number: r.resident_number.clone(),
            muni_id: link.muni_id.clone(),
            start: r.start_date,
            start_reason: r.start_reason.clone(),
            end: r.end_date,
            end_reason: r.end_reason.clone(),
            moved_in_from: r.moved_in_from.clone(),
            moved_out_to: r.moved_out_to.clone(),
            sent,
        };
        match existing {
            Some(i) => person.periods[i] = period,
            None => person.periods.push(period),
        }
    }
    if work.watched {
        for pref in watched(view)? {
            get(&mut persons, &pref)?;
        }
    }
    let mut rows = Rows::default();
    for person in persons.values_mut() {
        let gone = withdrawn.remove(&person.pref_id).unwrap_or_default();
        evaluate_person(person, &gone, work.step, business_date, &mut rows);
    }
    Ok(pb::PersonsEvaluated {
        identity_sequence: identity_seq,
        business_date: day,
        persons: persons.into_values().collect(),
        merged_away,
        rows: rows.0.into_iter().map(|(municipality, rows)| ipb::MunicipalityRows { municipality, rows }).collect(),
    })
}

fn tracked(p: &pb::PeriodState) -> Option<domain::Tracked> {
    Some(domain::Tracked { period: to_domain(p)?, muni_id: p.muni_id.clone(), sent: p.sent.clone() })
}

/// Evaluates one person with the pure step of the domain and keeps what it sent and opened.
fn evaluate_person(
    person: &mut pb::PersonState,
    withdrawn: &[pb::PeriodState],
    step: Step,
    business_date: Date,
    rows: &mut Rows,
) {
    let mut periods: Vec<domain::Tracked> = person.periods.iter().filter_map(tracked).collect();
    let gone: Vec<domain::Tracked> = withdrawn.iter().filter_map(tracked).collect();
    let mut open: BTreeSet<Anomaly> = person.open.iter().map(anomaly_of).collect();
    for sent in domain::step(&mut periods, &gone, &mut open, date(person.birth_date), step, business_date) {
        match sent {
            domain::Sent::Rs { to, fields } => rows.push(&to, "RS", fields),
            domain::Sent::Anomaly { anomaly, open } => rows.anomaly(&anomaly, if open { "1" } else { "2" }),
            domain::Sent::EarlyLateElderly { to, resident } => rows.push(
                &to,
                "RE",
                vec![
                    "W".into(),
                    "W004".into(),
                    String::new(),
                    "KK".into(),
                    String::new(),
                    resident,
                    "適用終了年月日".into(),
                    "後期高齢者医療移行が75歳到達日の前日ではありません".into(),
                    String::new(),
                    String::new(),
                    String::new(),
                    "1".into(),
                ],
            ),
        }
    }
    for (state, t) in person.periods.iter_mut().zip(&periods) {
        state.sent = t.sent.clone();
    }
    person.watch = domain::watch(&periods, &open);
    person.open = open.iter().map(state_of).collect();
}

/// continuity's RS and RE rows for the outbox.
pub(crate) struct ContinuityRows;

impl kokuho_outbox::RowSource for ContinuityRows {
    const NAME: &'static str = "forward-rows";
    const STREAM: &'static str = CONTINUITY.name;

    fn rows(&self, payload: Payload) -> kokuho_outbox::RowGroups {
        let Payload::PersonsEvaluated(e) = payload else { return Vec::new() };
        e.rows
            .into_iter()
            .map(|m| (format!("continuity:{}:{}", e.identity_sequence, m.municipality), m.municipality, m.rows))
            .collect()
    }
}
