//! Workflows `from-intake`, `from-identity` and `from-continuity`: each input event that may
//! change a 加入者情報 record (a household's card, a link, a number, a held record, a period)
//! becomes at most one `RecordsPlanned` on relay's stream, decided on relay's own ledger as the
//! previous plan left it (`kokuho_store::Decider`: one subject, appends conditional on its last
//! sequence). Each plan recomputes the records of the periods the event touches from relay's
//! projections of the input streams, after waiting until each has applied everything its stream
//! held: the last plan of a period sees every fact that arrived before it, in any order (T2).
//!
//! Glue only: the rules are `kokuho_relay_domain`'s (R2 `build`, R3 `Branches`, R4 `changes`,
//! R5 `Waiting`).

use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::sync::Arc;

use kokuho_bus::Bus;
use kokuho_ids::codes::{AlertState, InputKind, Kubun};
use kokuho_ids::{Date, Registry};
use kokuho_proto::identity::v1::MunicipalityRows;
use kokuho_proto::relay::v1 as pb;
use kokuho_relay_contract::{Event, Events, STREAM};
use kokuho_relay_domain::{self as domain, Card, Pref, Subscriber, Waiting};
use kokuho_store::{ApplyError, Decider, LogEvent, ProjectionHandle, Read, Rejected, StoreError, Workflow};

use crate::inputs::{self, PeriodKey, Touched};
use crate::state;

/// relay's projections of the streams it reads.
#[derive(Clone)]
pub(crate) struct Inputs {
    pub(crate) cards: ProjectionHandle,
    pub(crate) persons: ProjectionHandle,
    pub(crate) periods: ProjectionHandle,
}

impl Inputs {
    /// Waits until every projection of an input stream has applied everything in its stream now.
    pub(crate) async fn caught_up(&self, bus: &Bus) -> Result<(), ApplyError> {
        kokuho_store::inputs_caught_up(bus, &[&self.cards, &self.persons, &self.periods]).await
    }
}

/// What every plan needs.
pub(crate) struct Context {
    pub(crate) bus: Bus,
    /// The projection of relay's own stream.
    pub(crate) ledger: ProjectionHandle,
    pub(crate) inputs: Inputs,
    pub(crate) registry: Arc<Registry>,
    pub(crate) part: crate::Part,
}

/// An input stream of relay and what its events touch.
pub(crate) trait Input: Send + Sync + 'static {
    const NAME: &'static str;
    const STREAM: &'static str;
    /// The one subject of the stream it reads (identity's public events), or the whole stream.
    const SUBJECT: Option<&'static str> = None;
    fn touched(payload: &[u8], inputs: &Inputs) -> Result<Option<Touched>, String>;
}

pub(crate) struct FromIntake;
pub(crate) struct FromIdentity;
pub(crate) struct FromContinuity;

impl Input for FromIntake {
    const NAME: &'static str = "from-intake";
    const STREAM: &'static str = kokuho_intake_contract::STREAM.name;
    fn touched(payload: &[u8], _: &Inputs) -> Result<Option<Touched>, String> {
        inputs::intake_touched(payload)
    }
}

impl Input for FromIdentity {
    const NAME: &'static str = "from-identity";
    const STREAM: &'static str = kokuho_identity_contract::STREAM.name;
    const SUBJECT: Option<&'static str> = Some(kokuho_identity_contract::CHUNKS_SUBJECT);
    fn touched(payload: &[u8], i: &Inputs) -> Result<Option<Touched>, String> {
        inputs::identity_touched(payload, i.persons.store())
    }
}

impl Input for FromContinuity {
    const NAME: &'static str = "from-continuity";
    const STREAM: &'static str = kokuho_continuity_contract::STREAM.name;
    fn touched(payload: &[u8], _: &Inputs) -> Result<Option<Touched>, String> {
        inputs::continuity_touched(payload)
    }
}

/// The workflow of one input stream.
pub(crate) struct Plan<I> {
    pub(crate) context: Arc<Context>,
    pub(crate) input: PhantomData<I>,
}

impl<I: Input> Workflow for Plan<I> {
    const NAME: &'static str = I::NAME;
    const STREAM: &'static str = I::STREAM;
    const SUBJECT: Option<&'static str> = I::SUBJECT;

    async fn handle(&self, events: &[LogEvent<'_>]) -> Result<Rejected, ApplyError> {
        let c = &self.context;
        c.inputs.caught_up(&c.bus).await?;
        let ledger = state::Ledger { part: c.part };
        let decider =
            Decider { bus: &c.bus, projection: &ledger, state: &c.ledger, stream: STREAM.name, scope: c.part.scope };
        decider
            .run(
                events,
                |view| Ok(state::cursor(view, I::STREAM)?),
                |view, ev| {
                    let Some(touched) = I::touched(ev.payload, &c.inputs).map_err(ApplyError::Malformed)? else {
                        return Ok(Vec::new());
                    };
                    let planned = plan(view, c, &touched, (I::STREAM, ev.seq))?;
                    Ok(Vec::from_iter(planned.map(|e| {
                        (c.part.plans, kokuho_bus::event::envelope::<Events>(Event::RecordsPlanned(e), "", "", ""))
                    })))
                },
            )
            .await
    }
}

fn date(v: u32) -> Option<Date> {
    Date::from_yyyymmdd(v)
}

fn yyyymmdd(d: Option<Date>) -> u32 {
    d.map(Date::to_yyyymmdd).unwrap_or(0)
}

/// 適用終了年月日 of a record (資格喪失年月日 − 1), 0 while open.
fn end_of(s: &Subscriber) -> u32 {
    yyyymmdd(s.lost.and_then(|l| l.add_days(-1)))
}

/// A domain record on the wire (no 個人番号).
pub(crate) fn wire(s: &Subscriber) -> pb::Record {
    pb::Record {
        insurer: s.card.insurer.clone(),
        symbol: s.card.symbol.clone(),
        number: s.card.number.clone(),
        branch: u32::from(s.branch),
        person: s.person.clone(),
        name: s.name.clone(),
        kana: s.kana.clone(),
        birth_date: s.birth.to_yyyymmdd(),
        sex: s.sex.clone(),
        acquired_on: s.acquired.to_yyyymmdd(),
        lost_on: yyyymmdd(s.lost),
        pref_acquired_on: yyyymmdd(s.pref_acquired),
        pref_lost_on: yyyymmdd(s.pref_lost),
    }
}

fn corrupt(what: &str) -> ApplyError {
    ApplyError::Store(StoreError::Corrupt(what.to_string()))
}

pub(crate) fn domain_record(r: &pb::Record) -> Result<Subscriber, ApplyError> {
    Ok(Subscriber {
        card: Card { insurer: r.insurer.clone(), symbol: r.symbol.clone(), number: r.number.clone() },
        branch: u8::try_from(r.branch).map_err(|_| corrupt("枝番"))?,
        person: r.person.clone(),
        name: r.name.clone(),
        kana: r.kana.clone(),
        birth: date(r.birth_date).ok_or_else(|| corrupt("生年月日"))?,
        sex: r.sex.clone(),
        acquired: date(r.acquired_on).ok_or_else(|| corrupt("資格取得年月日"))?,
        lost: date(r.lost_on),
        pref_acquired: date(r.pref_acquired_on),
        pref_lost: date(r.pref_lost_on),
    })
}

/// An R row of RE for a period (fields 11–12 carry the person's own period).
pub(crate) fn r_row(
    code: &str,
    period: &PeriodKey,
    wait: &pb::OpenWait,
    state: AlertState,
) -> kokuho_proto::results::v1::ResultRow {
    let (code, field, message) = domain::re_text(code).unwrap_or(("R05", "", ""));
    kokuho_outbox::wire(&kokuho_rows::Row::Re(kokuho_rows::Re {
        kubun: Kubun::Relay,
        code,
        receipt: wait.receipt.clone(),
        file_kind: (wait.line > 0).then_some(InputKind::Persons),
        line: (wait.line > 0).then_some(wait.line),
        resident: period.resident.clone(),
        field: field.to_string(),
        message: message.to_string(),
        counterpart: String::new(),
        counterpart_start: date(wait.start),
        counterpart_end: date(wait.end),
        state,
    }))
}

/// Rows for municipalities, grouped.
#[derive(Default)]
pub(crate) struct Rows(BTreeMap<String, Vec<kokuho_proto::results::v1::ResultRow>>);

impl Rows {
    pub(crate) fn push(&mut self, municipality: &str, row: kokuho_proto::results::v1::ResultRow) {
        self.0.entry(municipality.to_string()).or_default().push(row);
    }

    pub(crate) fn into_wire(self) -> Vec<MunicipalityRows> {
        self.0.into_iter().map(|(municipality, rows)| MunicipalityRows { municipality, rows }).collect()
    }
}

/// What a period's record should be now.
enum Desired {
    /// Buildable: the record (its 枝番 given below), and where its KK record came from.
    Record { subscriber: Subscriber, order: (String, u32) },
    /// Waits (R01, R02): the record at the server stays as it is.
    Wait { code: &'static str, receipt: String, line: u32, end: u32 },
    /// No household state carries it yet: nothing to send, nothing to report.
    NoCard,
    /// The period is gone (deleted, merged away): its record goes.
    Gone,
}

/// The periods a touch concerns: continuity's and the ones relay planned before, in this
/// instance's municipalities.
fn periods_touched(
    view: &dyn Read,
    inputs: &Inputs,
    part: &crate::Part,
    t: &Touched,
) -> Result<BTreeSet<PeriodKey>, StoreError> {
    let (persons, periods) = (inputs.persons.store(), inputs.periods.store());
    let mut keys = BTreeSet::new();
    for person in &t.persons {
        let now = inputs::resolve(persons, person)?;
        for p in [person, &now] {
            keys.extend(inputs::periods_of_person(periods, p)?);
            keys.extend(state::records_of_person(view, p)?);
        }
    }
    for (m, r) in &t.residents {
        keys.extend(inputs::periods_of_resident(periods, m, r)?);
        keys.extend(state::records_of_resident(view, m, r)?);
        if let Some(h) = inputs::held_record(persons, m, r)? {
            keys.insert(PeriodKey { municipality: m.clone(), resident: r.clone(), start: h.start });
        }
    }
    for (m, h) in &t.households {
        keys.extend(inputs::periods_of_household(periods, m, h)?);
    }
    keys.retain(|k| part.owns(&k.municipality));
    Ok(keys)
}

fn desired(inputs: &Inputs, registry: &Registry, key: &PeriodKey) -> Result<(Desired, String), ApplyError> {
    let (persons, periods) = (inputs.persons.store(), inputs.periods.store());
    if let Some(h) = inputs::held_record(persons, &key.municipality, &key.resident)? {
        let wait = Desired::Wait { code: "R02", receipt: h.receipt, line: h.line, end: h.end };
        return Ok((wait, String::new()));
    }
    let Some(stored) = inputs::period(periods, key)? else { return Ok((Desired::Gone, String::new())) };
    let person = inputs::resolve(persons, &stored.person)?;
    let Some(linked) = inputs::linked_record(persons, &key.municipality, &key.resident)? else {
        return Ok((Desired::Gone, person));
    };
    let insurer = kokuho_ids::LocalGovCode::parse(&key.municipality)
        .ok()
        .and_then(|m| registry.get(m))
        .map(|m| m.insurer.to_string())
        .ok_or_else(|| ApplyError::Malformed(format!("municipality {} is not in the registry", key.municipality)))?;
    let period = domain::Period {
        municipality: key.municipality.clone(),
        resident: key.resident.clone(),
        start: date(key.start).ok_or_else(|| corrupt("適用開始年月日"))?,
        end: date(stored.end),
    };
    let who = domain::Person {
        id: person.clone(),
        has_number: inputs::has_number(persons, &person)?,
        held: false,
        name: linked.name.clone(),
        kana: linked.kana.clone(),
        birth: date(linked.birth_date).ok_or_else(|| corrupt("生年月日"))?,
        sex: linked.sex.clone(),
    };
    let cards = inputs::card_states(inputs.cards.store(), &key.municipality, &stored.household_number)?;
    let pref = Pref { acquired: date(stored.pref_acquired_on), lost: date(stored.pref_lost_on) };
    // The 枝番 is given below, once every record of the plan is known (R3: KK line order).
    Ok(match domain::build(&insurer, &period, &who, &cards, 0, pref) {
        Ok(subscriber) => (Desired::Record { subscriber, order: (linked.receipt, linked.line) }, person),
        Err(Waiting::NoCard) => (Desired::NoCard, person),
        Err(w) => {
            let code = w.code().unwrap_or("R01");
            (Desired::Wait { code, receipt: linked.receipt, line: linked.line, end: stored.end }, person)
        }
    })
}

/// One plan: the records of the periods `touched` concerns, the operations their changes send,
/// the 枝番 given and the R rows raised or closed. `None` when nothing changed.
pub(crate) fn plan(
    view: &dyn Read,
    c: &Context,
    touched: &Touched,
    input: (&str, u64),
) -> Result<Option<pb::RecordsPlanned>, ApplyError> {
    let (inputs, registry) = (&c.inputs, &*c.registry);
    let keys = periods_touched(view, inputs, &c.part, touched)?;
    let mut wanted: Vec<(PeriodKey, Desired, String)> = Vec::new();
    for key in keys {
        let (d, person) = desired(inputs, registry, &key)?;
        wanted.push((key, d, person));
    }
    // R3: 枝番 — kept for good; new ones per card in KK line order (receipt, line).
    let mut books: BTreeMap<Card, domain::Branches> = BTreeMap::new();
    let mut asking: Vec<(usize, (String, u32))> = wanted
        .iter()
        .enumerate()
        .filter_map(|(i, (_, d, _))| match d {
            Desired::Record { order, .. } => Some((i, order.clone())),
            _ => None,
        })
        .collect();
    asking.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    let mut branches = Vec::new();
    for (i, _) in asking {
        let (_, d, _) = &mut wanted[i];
        let Desired::Record { subscriber, order } = d else { continue };
        let book = match books.entry(subscriber.card.clone()) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => v.insert(state::branches(view, &subscriber.card)?),
        };
        let new = !book.given.contains_key(&subscriber.person);
        match book.branch_of(&subscriber.person) {
            Ok(b) => {
                subscriber.branch = b;
                if new {
                    branches.push(pb::BranchGiven {
                        insurer: subscriber.card.insurer.clone(),
                        symbol: subscriber.card.symbol.clone(),
                        number: subscriber.card.number.clone(),
                        person: subscriber.person.clone(),
                        branch: u32::from(b),
                    });
                }
            }
            Err(domain::Exhausted) => {
                let end = end_of(subscriber);
                *d = Desired::Wait { code: "R04", receipt: order.0.clone(), line: order.1, end };
            }
        }
    }

    let mut out = pb::RecordsPlanned {
        input_stream: input.0.to_string(),
        input_sequence: input.1,
        branches,
        ..Default::default()
    };
    let mut rows = Rows::default();
    // Operation ids are unique across shards (history and the rows' group ids key by them).
    let mut next = c.part.shard.own_id_at_or_after(state::next_operation(view)?);
    for (key, d, person) in wanted {
        let before = state::record(view, &key)?;
        let old = before.as_ref().and_then(|b| b.record.as_ref()).map(domain_record).transpose()?;
        let open = state::open_waits(view, &key)?;
        let (now, waiting, end) = match &d {
            Desired::Record { subscriber, .. } => (Some(subscriber.clone()), "", end_of(subscriber)),
            Desired::Wait { code, end, .. } => (old.clone(), *code, *end),
            Desired::NoCard => (old.clone(), "", before.as_ref().map(|b| b.end).unwrap_or(0)),
            Desired::Gone => (None, "", before.as_ref().map(|b| b.end).unwrap_or(0)),
        };
        let ops = domain::changes(old.as_ref(), now.as_ref());
        let version = before.as_ref().map(|b| b.version).unwrap_or(0) + u64::from(!ops.is_empty());
        let period = domain::Period {
            municipality: key.municipality.clone(),
            resident: key.resident.clone(),
            start: date(key.start).ok_or_else(|| corrupt("適用開始年月日"))?,
            end: date(end),
        };
        for op in &ops {
            out.operations.push(pb::Operation {
                id: next,
                idempotency_key: domain::idempotency_key(&period, version, op.processing),
                processing: op.processing.code().to_string(),
                period: Some(key.wire()),
                record: Some(wire(&op.record)),
            });
            next += c.part.shard.id_step();
        }
        // R5: a wait is reported once when it arises; closed when the record went (at delivery),
        // or here when the period is gone or the record at the server is already what it is.
        if let Desired::Wait { code, receipt, line, end } = &d
            && !open.iter().any(|w| w.code == *code)
        {
            let wait = pb::OpenWait {
                code: code.to_string(),
                receipt: receipt.clone(),
                line: *line,
                start: key.start,
                end: *end,
            };
            rows.push(&key.municipality, r_row(code, &key, &wait, AlertState::Raised));
            out.waits.push(pb::WaitChange { period: Some(key.wire()), wait: Some(wait), open: true });
        }
        let settled = matches!(d, Desired::Gone) || (matches!(d, Desired::Record { .. }) && ops.is_empty());
        if settled {
            for w in open {
                rows.push(&key.municipality, r_row(&w.code, &key, &w, AlertState::Closed));
                out.waits.push(pb::WaitChange { period: Some(key.wire()), wait: Some(w), open: false });
            }
        }
        let record = pb::PeriodRecord {
            period: Some(key.wire()),
            record: now.as_ref().map(wire),
            version,
            waiting: waiting.to_string(),
            end,
            person,
        };
        if before.as_ref() != Some(&record) {
            out.periods.push(record);
        }
    }
    out.rows = rows.into_wire();
    let changed =
        !(out.periods.is_empty() && out.operations.is_empty() && out.waits.is_empty() && out.branches.is_empty());
    Ok(changed.then_some(out))
}

/// relay's rows (this instance's part of them), handed to the outbox.
pub(crate) struct RelayRows {
    pub(crate) part: crate::Part,
}

impl kokuho_outbox::RowSource for RelayRows {
    const NAME: &'static str = "forward-rows";
    const STREAM: &'static str = STREAM.name;
    type Events = Events;

    fn takes(&self, subject: &str) -> bool {
        self.part.writes(subject)
    }

    fn rows(&self, event: Event) -> kokuho_outbox::RowGroups {
        let (id, rows) = match event {
            Event::RecordsPlanned(e) => (format!("plan:{}:{}", e.input_stream, e.input_sequence), e.rows),
            Event::RecordsDelivered(e) => {
                let first = e.outcomes.first().map(|o| o.operation).unwrap_or(0);
                (format!("delivered:{first}:{}", e.outcomes.len()), e.rows)
            }
            Event::PartitionStall(s) => (format!("stall:{}:{}:{}", s.municipality, s.stalled, s.since), s.rows),
            Event::ProvisionRecorded(_) => return Vec::new(),
        };
        // A shard's operations are numbered on its own: its label keeps the group ids apart.
        let shard = self.part.shard.dotted("relay");
        rows.into_iter().map(|m| (format!("{shard}:{id}:{}", m.municipality), m.municipality, m.rows)).collect()
    }
}
