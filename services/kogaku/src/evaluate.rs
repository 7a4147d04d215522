//! Workflows `from-intake`, `from-identity` and `from-continuity`: each input event that may
//! change a candidate (a household state, a 高額 month, a link, a pair, a KT decision, a day
//! close) becomes at most one `CandidatesEvaluated` on kogaku's stream, decided on kogaku's
//! own state as the previous evaluation left it (kokuho_store::Decider: one subject, appends
//! conditional on its last sequence, so the three workflows and the API never decide on stale
//! state). A decision over the API is evaluated by the same function.
//!
//! Why the latest rows depend on the facts only (T2): every evaluation recomputes the facts of
//! the candidates it touches from kogaku's projections of the input streams, waiting first
//! until each has applied everything its stream held (so also the event evaluated); so the
//! last evaluation of a candidate sees every fact that arrived before it, whatever their order.
//!
//! Glue only: the rules are `kokuho_kogaku_domain`'s (H1 `candidates`, H2 `recommend`,
//! H3–H5 `candidate`, K1–K3 `months`).

use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::sync::Arc;

use kokuho_bus::Bus;
use kokuho_ids::codes::ContinuationDecision;
use kokuho_ids::{Date, Month};
use kokuho_kogaku_contract::{EVALUATIONS_SUBJECT, Event, Events, STREAM, pb};
use kokuho_kogaku_domain::candidate::{self, Candidate, DecidedBy, Facts, Refusal};
use kokuho_kogaku_domain::months::{self, Handover, Inheritance};
use kokuho_kogaku_domain::{self as domain, CandidateKey, GroupKey, Households};
use kokuho_rows::Row;
use kokuho_store::{ApplyError, Decider, LogEvent, ProjectionHandle, Read, Rejected, StoreError, Workflow};

use crate::candidates;
use crate::convert::{self, Order, Work};
use crate::state;

/// kogaku's projections of the streams it reads.
#[derive(Clone)]
pub(crate) struct Inputs {
    pub(crate) months: ProjectionHandle,
    pub(crate) households: ProjectionHandle,
    pub(crate) members: ProjectionHandle,
    pub(crate) pairs: ProjectionHandle,
}

impl Inputs {
    /// Waits until every projection of an input stream has applied everything in its stream now.
    pub(crate) async fn caught_up(&self, bus: &Bus) -> Result<(), ApplyError> {
        kokuho_store::inputs_caught_up(bus, &[&self.months, &self.households, &self.members, &self.pairs]).await
    }
}

/// What every evaluation needs.
pub(crate) struct Context {
    pub(crate) bus: Bus,
    /// The projection of kogaku's own stream.
    pub(crate) state: ProjectionHandle,
    pub(crate) inputs: Inputs,
    /// H3: auto-confirmation of reason 11 candidates (a deployment setting, off by default).
    pub(crate) auto_confirm: bool,
}

/// An input stream of kogaku and what its events ask for.
pub(crate) trait Input: Send + Sync + 'static {
    const NAME: &'static str;
    const STREAM: &'static str;
    /// The one subject of the stream it reads (identity's public events), or the whole stream.
    const SUBJECT: Option<&'static str> = None;
    fn work(payload: &[u8]) -> Result<Option<Work>, String>;
}

pub(crate) struct FromIntake;
pub(crate) struct FromIdentity;
pub(crate) struct FromContinuity;

impl Input for FromIntake {
    const NAME: &'static str = "from-intake";
    const STREAM: &'static str = kokuho_intake_contract::STREAM.name;
    fn work(payload: &[u8]) -> Result<Option<Work>, String> {
        convert::intake_work(payload)
    }
}

impl Input for FromIdentity {
    const NAME: &'static str = "from-identity";
    const STREAM: &'static str = kokuho_identity_contract::STREAM.name;
    const SUBJECT: Option<&'static str> = Some(kokuho_identity_contract::CHUNKS_SUBJECT);
    fn work(payload: &[u8]) -> Result<Option<Work>, String> {
        convert::identity_work(payload)
    }
}

impl Input for FromContinuity {
    const NAME: &'static str = "from-continuity";
    const STREAM: &'static str = kokuho_continuity_contract::STREAM.name;
    fn work(payload: &[u8]) -> Result<Option<Work>, String> {
        convert::continuity_work(payload)
    }
}

/// The workflow of one input stream.
pub(crate) struct Evaluate<I> {
    pub(crate) context: Arc<Context>,
    pub(crate) input: PhantomData<I>,
}

impl<I: Input> Workflow for Evaluate<I> {
    const NAME: &'static str = I::NAME;
    const STREAM: &'static str = I::STREAM;
    const SUBJECT: Option<&'static str> = I::SUBJECT;

    async fn handle(&self, events: &[LogEvent<'_>]) -> Result<Rejected, ApplyError> {
        let c = &self.context;
        c.inputs.caught_up(&c.bus).await?;
        let decider = Decider {
            bus: &c.bus,
            projection: &candidates::Candidates,
            state: &c.state,
            stream: STREAM.name,
            scope: None,
        };
        decider
            .run(
                events,
                |view| Ok(candidates::cursor(view, I::STREAM)?),
                |view, ev| {
                    let Some(work) = I::work(ev.payload).map_err(ApplyError::Malformed)? else { return Ok(Vec::new()) };
                    let evaluated = evaluate(view, &c.inputs, work, (I::STREAM, ev.seq), c.auto_confirm)?;
                    Ok(Vec::from_iter(evaluated.event.map(|e| {
                        (
                            EVALUATIONS_SUBJECT,
                            kokuho_bus::event::envelope::<Events>(Event::CandidatesEvaluated(e), "", "", ""),
                        )
                    })))
                },
            )
            .await
    }
}

/// What an evaluation appends (nothing when nothing changed) and the decisions it refused.
pub(crate) struct Evaluation {
    pub(crate) event: Option<pb::CandidatesEvaluated>,
    pub(crate) refusals: Vec<Refusal>,
}

/// A candidate's id: (B, 継続候補番号).
type Id = (String, String);
/// (municipality, 世帯番号).
type Household = (String, String);

fn store_error(e: StoreError) -> ApplyError {
    ApplyError::Store(e)
}

/// The candidates one evaluation touches, loaded once, with what they were.
struct Session<'a> {
    view: &'a dyn Read,
    inputs: &'a Inputs,
    loaded: BTreeMap<Id, Candidate>,
    original: BTreeMap<Id, Candidate>,
    pairs: BTreeMap<GroupKey, BTreeMap<CandidateKey, BTreeSet<domain::PersonId>>>,
}

impl Session<'_> {
    fn get(&mut self, id: &Id) -> Result<&mut Candidate, ApplyError> {
        if !self.loaded.contains_key(id) {
            let c = candidates::candidate(self.view, &id.0, &id.1)?
                .ok_or_else(|| ApplyError::Store(StoreError::Corrupt(format!("no candidate {}/{}", id.0, id.1))))?;
            self.original.insert(id.clone(), c.clone());
            self.loaded.insert(id.clone(), c);
        }
        Ok(self.loaded.get_mut(id).expect("loaded above"))
    }

    /// The candidate `number` of municipality `to`, if it exists.
    fn find(&mut self, to: &str, number: &str) -> Result<Option<Id>, ApplyError> {
        let id = (to.to_string(), number.to_string());
        if self.loaded.contains_key(&id) || candidates::candidate(self.view, to, number)?.is_some() {
            Ok(Some(id))
        } else {
            Ok(None)
        }
    }

    /// The candidates of a move group now (H1), from the pairs.
    fn group(&mut self, g: &GroupKey) -> Result<&BTreeMap<CandidateKey, BTreeSet<domain::PersonId>>, ApplyError> {
        if !self.pairs.contains_key(g) {
            let pairs = state::group_pairs(self.inputs.pairs.store(), g)?;
            self.pairs.insert(g.clone(), domain::candidates(&pairs));
        }
        Ok(&self.pairs[g])
    }

    /// The id of the candidate with `key`, created (with its number) if it is new.
    fn ensure(&mut self, key: &CandidateKey) -> Result<Id, ApplyError> {
        if let Some(n) = candidates::number_of(self.view, key)? {
            return Ok((key.group.to.clone(), n));
        }
        if let Some((id, _)) = self.loaded.iter().find(|(_, c)| c.key == *key) {
            return Ok(id.clone());
        }
        for attempt in 0.. {
            let number = candidate::number(key, attempt);
            let id = (key.group.to.clone(), number.clone());
            if self.find(&id.0, &id.1)?.is_none() {
                self.loaded.insert(id.clone(), Candidate::new(key.clone(), number));
                return Ok(id);
            }
            tracing::warn!(attempt, "継続候補番号 taken by another candidate; trying the next");
        }
        unreachable!("the attempts are unbounded")
    }

    fn ids_of_group(&mut self, g: &GroupKey) -> Result<BTreeSet<Id>, ApplyError> {
        let mut ids: BTreeSet<Id> = candidates::of_group(self.view, g)?.into_iter().collect();
        ids.extend(self.loaded.iter().filter(|(_, c)| c.key.group == *g).map(|(id, _)| id.clone()));
        let keys: Vec<CandidateKey> = self.group(g)?.keys().cloned().collect();
        for key in keys {
            ids.insert(self.ensure(&key)?);
        }
        Ok(ids)
    }

    fn ids_into(&self, h: &Household) -> Result<BTreeSet<Id>, ApplyError> {
        let mut ids: BTreeSet<Id> = candidates::into_household(self.view, &h.0, &h.1)?.into_iter().collect();
        ids.extend(
            self.loaded
                .iter()
                .filter(|(_, c)| c.key.group.to == h.0 && c.key.group.household == h.1)
                .map(|(i, _)| i.clone()),
        );
        Ok(ids)
    }

    fn ids_out_of(&self, h: &Household) -> Result<BTreeSet<Id>, ApplyError> {
        let mut ids: BTreeSet<Id> = candidates::out_of_household(self.view, &h.0, &h.1)?.into_iter().collect();
        ids.extend(
            self.loaded
                .iter()
                .filter(|(_, c)| c.key.from == h.0 && c.key.from_household == h.1)
                .map(|(i, _)| i.clone()),
        );
        Ok(ids)
    }

    /// Every candidate of the touched households and groups, and of their move groups; the
    /// households are closed under confirmed 継続 (a household that inherits from a touched
    /// one is touched: its count may change, K4).
    fn expand(
        &mut self,
        households: &mut BTreeSet<Household>,
        groups: &mut BTreeSet<GroupKey>,
    ) -> Result<BTreeSet<Id>, ApplyError> {
        loop {
            let size = (households.len(), groups.len());
            let mut ids = BTreeSet::new();
            for h in households.iter() {
                ids.extend(self.ids_into(h)?);
                ids.extend(self.ids_out_of(h)?);
            }
            for g in groups.clone() {
                ids.extend(self.ids_of_group(&g)?);
            }
            for id in &ids {
                let c = self.get(id)?;
                let (group, from, to) = (
                    c.key.group.clone(),
                    (c.key.from.clone(), c.key.from_household.clone()),
                    (c.key.group.to.clone(), c.key.group.household.clone()),
                );
                let continues = c.continues();
                groups.insert(group);
                if continues && households.contains(&from) {
                    households.insert(to);
                }
            }
            if (households.len(), groups.len()) == size {
                return Ok(ids);
            }
        }
    }

    /// K1, K3: C(h), with months inherited through confirmed 継続 (but not through `except`).
    fn counted(&mut self, h: &Household, except: Option<&Id>) -> Result<BTreeSet<Month>, ApplyError> {
        let months = self.inputs.months.store().clone();
        let mut own = |h: &Household| -> Result<BTreeSet<Month>, ApplyError> {
            Ok(months::counted(&state::records(&months, &h.0, &h.1)?, &BTreeSet::new()))
        };
        let mut inherits = |h: &Household| -> Result<Vec<Inheritance<Household>>, ApplyError> {
            let mut out = Vec::new();
            for id in self.ids_into(h)? {
                if Some(&id) == except {
                    continue;
                }
                let c = self.get(&id)?;
                if c.continues() {
                    out.push(Inheritance {
                        from: (c.key.from.clone(), c.key.from_household.clone()),
                        m: c.key.group.moved_in_on.month(),
                    });
                }
            }
            Ok(out)
        };
        months::counted_through(h, &mut own, &mut inherits)
    }

    /// H2, K2: the candidate's facts now (`None`: it no longer exists).
    fn facts(&mut self, id: &Id) -> Result<Option<Facts>, ApplyError> {
        let key = self.get(id)?.key.clone();
        let group = self.group(&key.group)?;
        let Some(movers) = group.get(&key).cloned() else { return Ok(None) };
        let sources = domain::sources(group, &key.group);
        let d = key.group.moved_in_on;
        let before = d.add_days(-1).unwrap_or(d);
        let (households, members) = (self.inputs.households.store(), self.inputs.members.store());
        let householder = |muni: &str, h: &str, on: Date| -> Result<Option<String>, StoreError> {
            let states = state::household_states(households, muni, h)?;
            match kokuho_kogaku_domain::households::in_force(&states, on) {
                Some(s) => state::person_of(members, muni, &s.householder),
                None => Ok(None),
            }
        };
        let hh_a = householder(&key.from, &key.from_household, before)?;
        let hh_b = householder(&key.group.to, &key.group.household, d)?;
        let records_a = state::member_records(members, &key.from, &key.from_household)?;
        let records_b = state::member_records(members, &key.group.to, &key.group.household)?;
        use kokuho_kogaku_domain::households::{died_by, members_on, members_with_kind};
        let h = Households {
            former_householder_died: hh_a.as_ref().is_some_and(|p| died_by(&records_a, p, &key.from_household, before)),
            former_householder: hh_a.clone(),
            householder: hh_b.clone(),
            members: members_on(&records_b, &key.group.household, d),
            former_members: members_with_kind(&records_a, &key.from_household, before),
        };
        let c = self.counted(&(key.from.clone(), key.from_household.clone()), None)?;
        let rule = domain::deciding_rule(&h, &movers, sources);
        Ok(Some(Facts {
            former_householder: domain::former_householder(&h),
            recommendation: domain::recommendation_of(rule),
            rule,
            kogaku_count: months::count(&c, d.month()),
            movers,
            former_householder_person: hh_a,
            householder_person: hh_b,
        }))
    }

    /// K3: what RG reports for a decided candidate now.
    fn handover(&mut self, id: &Id) -> Result<Option<Handover>, ApplyError> {
        let c = self.get(id)?;
        let Some(d) = &c.decided else { return Ok(None) };
        let (decision, key) = (d.decision, c.key.clone());
        let m = key.group.moved_in_on.month();
        let to = (key.group.to.clone(), key.group.household.clone());
        Ok(Some(match decision {
            ContinuationDecision::Continue => {
                let from = self.counted(&(key.from.clone(), key.from_household.clone()), None)?;
                let own = self.counted(&to, Some(id))?;
                months::handover(&from, &own, m)
            }
            ContinuationDecision::Discontinue => months::no_handover(&self.counted(&to, None)?, m),
        }))
    }

    /// Is another candidate of `id`'s move group confirmed 継続 (H4)?
    fn confirmed_elsewhere(&mut self, id: &Id) -> Result<bool, ApplyError> {
        let group = self.get(id)?.key.group.clone();
        for other in self.ids_of_group(&group)? {
            if other != *id && self.get(&other)?.continues() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Evaluates one input: the candidates it touches get their facts now, the decisions it
/// carries (KT records, an API call, an operator's reversal), auto-confirmation if switched
/// on, their handovers, and the rows all that sends.
pub(crate) fn evaluate(
    view: &dyn Read,
    inputs: &Inputs,
    work: Work,
    input: (&str, u64),
    auto_confirm: bool,
) -> Result<Evaluation, ApplyError> {
    // The business date as far as the input projections have read intake's calendar: the
    // date of an auto-confirmation (H3).
    let day = state::business_date(inputs.households.store())?;
    let mut s = Session { view, inputs, loaded: BTreeMap::new(), original: BTreeMap::new(), pairs: BTreeMap::new() };
    let members = inputs.members.store();
    let mut households: BTreeSet<Household> = work.households;
    let mut residents = work.residents;
    for p in &work.persons {
        residents.extend(state::residents_of_person(members, p).map_err(store_error)?);
    }
    for (m, r) in &residents {
        for h in state::households_of_resident(members, m, r).map_err(store_error)? {
            households.insert((m.clone(), h));
        }
    }
    let mut groups: BTreeSet<GroupKey> = BTreeSet::new();
    for p in &work.movers {
        groups.extend(state::groups_of_person(inputs.pairs.store(), p).map_err(store_error)?);
        for id in candidates::of_mover(view, p)? {
            groups.insert(s.get(&id)?.key.group.clone());
        }
    }
    let mut targets = Vec::new();
    for o in &work.orders {
        let id = s.find(&o.municipality, &o.number)?;
        if let Some(id) = &id {
            groups.insert(s.get(id)?.key.group.clone());
        }
        targets.push(id);
    }
    let ids = s.expand(&mut households, &mut groups)?;
    for id in &ids {
        let facts = s.facts(id)?;
        s.get(id)?.facts = facts;
    }

    let mut rows: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    let mut refusals = Vec::new();
    for (o, id) in work.orders.iter().zip(targets) {
        match decide(&mut s, o, id.as_ref())? {
            Ok(()) => {}
            Err(r) => {
                refusals.push(r);
                if let DecidedBy::File { receipt, line } = &o.by {
                    rows.entry(o.municipality.clone()).or_default().push(r.row(receipt, *line));
                }
            }
        }
    }
    if auto_confirm && let Some(on) = Date::from_yyyymmdd(day) {
        for id in &ids {
            let elsewhere = s.confirmed_elsewhere(id)?;
            let c = s.get(id)?;
            if candidate::auto_confirms(c, true, elsewhere) {
                c.decided = Some(
                    candidate::decide(c, ContinuationDecision::Continue, false, on, DecidedBy::Auto)
                        .expect("auto_confirms checked it"),
                );
            }
        }
    }
    // Decisions add inheritances: what they reach is touched too, with its facts now.
    for c in s.loaded.values() {
        if c.decided != s.original.get(&(c.key.group.to.clone(), c.number.clone())).and_then(|o| o.decided.clone()) {
            households.insert((c.key.group.to.clone(), c.key.group.household.clone()));
        }
    }
    let ids = s.expand(&mut households, &mut groups)?;
    for id in &ids {
        let facts = s.facts(id)?;
        s.get(id)?.facts = facts;
    }
    for id in &ids {
        let handover = s.handover(id)?;
        let c = s.get(id)?;
        let sent = candidate::settle(c, handover);
        if !sent.is_empty() {
            rows.entry(c.key.group.to.clone()).or_default().extend(sent);
        }
    }

    tracing::debug!(
        input = input.0,
        seq = input.1,
        movers = work.movers.len(),
        households = households.len(),
        groups = groups.len(),
        candidates = ids.len(),
        "Evaluated"
    );
    let changed: Vec<pb::CandidateState> = s
        .loaded
        .iter()
        .filter(|(id, c)| s.original.get(*id) != Some(*c))
        .map(|(_, c)| convert::candidate_pb(c))
        .collect();
    if changed.is_empty() && rows.is_empty() {
        return Ok(Evaluation { event: None, refusals });
    }
    Ok(Evaluation {
        event: Some(pb::CandidatesEvaluated {
            input_stream: input.0.to_string(),
            input_sequence: input.1,
            business_date: day,
            candidates: changed,
            rows: rows
                .into_iter()
                .map(|(municipality, rows)| kokuho_identity_contract::pb::MunicipalityRows {
                    municipality,
                    rows: rows.iter().map(kokuho_outbox::wire).collect(),
                })
                .collect(),
        }),
        refusals,
    })
}

/// K5: a household's KG records in force and the months it inherited (K3), as a query sees
/// them now.
pub(crate) fn household_months(
    view: &dyn Read,
    inputs: &Inputs,
    h: &Household,
) -> Result<(months::Records, BTreeSet<Month>), ApplyError> {
    let mut s = Session { view, inputs, loaded: BTreeMap::new(), original: BTreeMap::new(), pairs: BTreeMap::new() };
    let records = state::records(inputs.months.store(), &h.0, &h.1)?;
    let own = months::counted(&records, &BTreeSet::new());
    let inherited = s.counted(h, None)?.difference(&own).copied().collect();
    Ok((records, inherited))
}

/// One decision (H3, H4) or reversal on the candidate it names.
fn decide(s: &mut Session<'_>, o: &Order, id: Option<&Id>) -> Result<Result<(), Refusal>, ApplyError> {
    let Some(id) = id else { return Ok(Err(Refusal::Unknown)) };
    let elsewhere = s.confirmed_elsewhere(id)?;
    let c = s.get(id)?;
    let decided = match &o.by {
        DecidedBy::Operator { operator, reason } => {
            candidate::reverse(c, o.decision, elsewhere, o.on, operator, reason)
        }
        by => candidate::decide(c, o.decision, elsewhere, o.on, by.clone()),
    };
    Ok(decided.map(|d| c.decided = Some(d)))
}

/// kogaku's RK, RG and RE rows for the outbox.
pub(crate) struct KogakuRows;

impl kokuho_outbox::RowSource for KogakuRows {
    const NAME: &'static str = "forward-rows";
    const STREAM: &'static str = STREAM.name;
    type Events = Events;

    fn rows(&self, event: Event) -> kokuho_outbox::RowGroups {
        let Event::CandidatesEvaluated(e) = event;
        let id = format!("{}:{}", e.input_stream, e.input_sequence);
        e.rows.into_iter().map(|m| (format!("kogaku:{id}:{}", m.municipality), m.municipality, m.rows)).collect()
    }
}
