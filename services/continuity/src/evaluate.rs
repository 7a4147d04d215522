//! Workflow `evaluate` (identity's events → `PersonsEvaluated`) and workflow `forward-rows`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kokuho_bus::event::{self, Payload};
use kokuho_bus::{Append, Bus, BusErrorKind};
use kokuho_continuity_domain::{self as domain, Anomaly, Step};
use kokuho_ids::Date;
use kokuho_proto::continuity::v1 as pb;
use kokuho_proto::identity::v1 as ipb;
use kokuho_proto::results::v1::ResultRow;
use kokuho_store::{ApplyError, LogEvent, ProjectionHandle, Rejected, Store, Workflow};

use crate::state::{CURSOR, DAY, load, u32_of, u64_of, watched};
use crate::{CONTINUITY, EVALUATIONS_SUBJECT, IDENTITY_STREAM};

const PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// Persons (and rows) in one `PersonsEvaluated`: the size of an identity chunk.
const PERSONS_PER_EVENT: usize = 1_000;
const ROWS_PER_EVENT: usize = 5_000;
/// `PersonsEvaluated` events appended in one atomic batch.
const EVENTS_PER_APPEND: usize = 50;
/// Persons held in memory while a group is evaluated: past this, what was evaluated is
/// appended and the rest of the group goes on from the committed state (memory stays flat).
const PERSONS_IN_MEMORY: usize = 20_000;

pub(crate) struct Evaluate {
    pub(crate) bus: Bus,
    pub(crate) state: ProjectionHandle,
}

fn transient(e: impl std::fmt::Display) -> ApplyError {
    ApplyError::Transient(e.to_string())
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
        | Payload::PersonsEvaluated(_) => None,
    })
}

impl Workflow for Evaluate {
    const NAME: &'static str = "evaluate";
    const STREAM: &'static str = IDENTITY_STREAM;

    async fn handle(&self, ev: &LogEvent<'_>) -> Result<(), ApplyError> {
        match self.handle_group(std::slice::from_ref(ev)).await?.into_iter().next() {
            Some((_, why)) => Err(ApplyError::Malformed(why)),
            None => Ok(()),
        }
    }

    /// Evaluates a group of identity events in order against the committed state and an
    /// in-memory overlay of what the group changed, and appends the results as one atomic batch
    /// of `PersonsEvaluated` (one fsync for the group, not one per event).
    async fn handle_group(&self, events: &[LogEvent<'_>]) -> Result<Rejected, ApplyError> {
        let mut rejected = BTreeMap::new();
        let mut done = 0;
        while done < events.len() {
            done += self.evaluate_some(&events[done..], done, &mut rejected).await?;
        }
        Ok(rejected.into_iter().collect())
    }
}

impl Evaluate {
    /// Evaluates a prefix of `events` (as much as memory allows), appends the result, waits
    /// until the state has applied it, and says how many events it took. Events are decoded one
    /// at a time, as they are evaluated; an undecodable one goes into `rejected` (by its index
    /// in the group: `offset` + its index here).
    async fn evaluate_some(
        &self,
        events: &[LogEvent<'_>],
        offset: usize,
        rejected: &mut BTreeMap<usize, String>,
    ) -> Result<usize, ApplyError> {
        loop {
            let expected = self.bus.last_subject_seq(CONTINUITY.name, EVALUATIONS_SUBJECT).await.map_err(transient)?;
            let last = self.bus.last_seq(CONTINUITY.name).await.map_err(transient)?;
            if !self.state.wait_for(last, PATIENCE).await {
                return Err(ApplyError::Transient("continuity's state is catching up".into()));
            }
            let store = self.state.store();
            let cursor = u64_of(store.get(CURSOR)?);
            let evaluated_before = events.partition_point(|ev| ev.seq <= cursor);
            let mut overlay = Overlay::new(store)?;
            let mut outputs = Vec::new();
            let mut used = evaluated_before;
            for (i, ev) in events.iter().enumerate().skip(evaluated_before) {
                used = i + 1;
                match work_of(ev.payload) {
                    Ok(Some(work)) => overlay.apply(&work)?,
                    Ok(None) => continue,
                    Err(why) => {
                        rejected.insert(offset + i, why);
                        continue;
                    }
                }
                if overlay.dirty.len() >= PERSONS_PER_EVENT || overlay.rows.len() >= ROWS_PER_EVENT {
                    outputs.push(overlay.flush(ev.seq));
                }
                if overlay.persons.len() >= PERSONS_IN_MEMORY || outputs.len() >= EVENTS_PER_APPEND {
                    break;
                }
            }
            if overlay.unflushed {
                outputs.push(overlay.flush(events[used - 1].seq));
            }
            if outputs.is_empty() {
                return Ok(used);
            }
            let mut batch = Vec::with_capacity(outputs.len());
            for (i, evaluated) in outputs.into_iter().enumerate() {
                let envelope = event::envelope(Payload::PersonsEvaluated(evaluated), "", "", "");
                let append = Append::event(EVALUATIONS_SUBJECT, &envelope);
                batch.push(if i == 0 { append.expect_last_subject_seq(expected) } else { append });
            }
            match self.bus.append_atomic(batch).await {
                Ok(a) => {
                    self.state.wait_for(a.seq, PATIENCE).await;
                    return Ok(used);
                }
                Err(e) if e.kind() == BusErrorKind::WrongLastSequence => continue,
                Err(e) => return Err(transient(e)),
            }
        }
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
    fn len(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }

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

/// The persons a group of identity events touched, over the committed state, and what is to
/// be appended for them.
struct Overlay<'s> {
    store: &'s dyn Store,
    day: u32,
    /// Every person read or changed so far in the group (merged-away ones as `None`).
    persons: HashMap<String, Option<pb::PersonState>>,
    /// Changed since the last flush.
    dirty: BTreeSet<String>,
    merged_away: Vec<String>,
    rows: Rows,
    /// Events applied since the last flush.
    unflushed: bool,
}

impl<'s> Overlay<'s> {
    fn new(store: &'s dyn Store) -> Result<Self, ApplyError> {
        Ok(Self {
            store,
            day: u32_of(store.get(DAY)?),
            persons: HashMap::new(),
            dirty: BTreeSet::new(),
            merged_away: Vec::new(),
            rows: Rows::default(),
            unflushed: false,
        })
    }

    /// The person as the group left it (loaded from the store on first use; a new one if none).
    fn person(&mut self, pref: &str) -> Result<&mut pb::PersonState, ApplyError> {
        if !self.persons.contains_key(pref) {
            let stored = load(self.store, pref)?;
            self.persons.insert(pref.to_string(), stored);
        }
        let slot = self.persons.get_mut(pref).expect("inserted above");
        Ok(slot.get_or_insert_with(|| pb::PersonState { pref_id: pref.into(), ..Default::default() }))
    }

    /// Everyone watched (rules.md C5): the committed watch list, as the group changed it.
    fn watched(&self) -> Result<BTreeSet<String>, ApplyError> {
        let mut out: BTreeSet<String> =
            watched(self.store)?.into_iter().filter(|p| !self.persons.contains_key(p)).collect();
        out.extend(self.persons.iter().filter(|(_, s)| s.as_ref().is_some_and(|s| s.watch)).map(|(p, _)| p.clone()));
        Ok(out)
    }

    /// Applies one identity event: updates the periods it reports, evaluates every person it
    /// touches (and, at a day close, every watched person) and collects the rows they send.
    fn apply(&mut self, work: &Work) -> Result<(), ApplyError> {
        self.unflushed = true;
        if let Some(day) = work.day {
            self.day = day;
        }
        let business_date = Date::from_yyyymmdd(self.day).unwrap_or(Date::MAX);
        let mut touched = BTreeSet::new();
        for m in &work.merges {
            let from = match self.persons.get_mut(&m.from) {
                Some(slot) => slot.take(),
                None => load(self.store, &m.from)?,
            };
            self.persons.insert(m.from.clone(), None);
            self.dirty.remove(&m.from);
            touched.remove(&m.from);
            self.merged_away.push(m.from.clone());
            let into = self.person(&m.into)?;
            if let Some(from) = from {
                into.periods.extend(from.periods);
                into.open.extend(from.open);
            }
            touched.insert(m.into.clone());
        }
        // Periods removed by a 削除: their rows are withdrawn (判定区分 9).
        let mut withdrawn: BTreeMap<String, Vec<pb::PeriodState>> = BTreeMap::new();
        for (muni, link) in &work.links {
            let Some(r) = &link.record else { continue };
            if r.insured_kind != "1" {
                continue; // a 擬制世帯主 has no period
            }
            touched.insert(link.pref_id.clone());
            let person = self.person(&link.pref_id)?;
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
            touched.extend(self.watched()?);
        }
        for pref in touched {
            let gone = withdrawn.remove(&pref).unwrap_or_default();
            let mut rows = std::mem::take(&mut self.rows);
            evaluate_person(self.person(&pref)?, &gone, work.step, business_date, &mut rows);
            self.rows = rows;
            self.dirty.insert(pref);
        }
        Ok(())
    }

    /// What was changed since the last flush, as one event; `identity_seq` is the last identity
    /// event it covers (the cursor).
    fn flush(&mut self, identity_seq: u64) -> pb::PersonsEvaluated {
        self.unflushed = false;
        let persons = std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|p| self.persons.get(&p).cloned().flatten())
            .collect();
        pb::PersonsEvaluated {
            identity_sequence: identity_seq,
            business_date: self.day,
            persons,
            merged_away: std::mem::take(&mut self.merged_away),
            rows: std::mem::take(&mut self.rows)
                .0
                .into_iter()
                .map(|(municipality, rows)| ipb::MunicipalityRows { municipality, rows })
                .collect(),
        }
    }
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
