//! Workflow `evaluate` (identity's events → `PersonsEvaluated`) and workflow `forward-rows`.
//! Glue only: the rules are `kokuho_continuity_domain`'s (`report`, `merge`, `step`).

use std::collections::BTreeMap;

use kokuho_bus::Bus;
use kokuho_bus::event;
use kokuho_continuity_contract::pb;
use kokuho_continuity_domain::{self as domain, PersonState};
use kokuho_ids::Date;
use kokuho_rows::Row;
use kokuho_store::{ApplyError, Decider, LogEvent, ProjectionHandle, Read, Rejected, Workflow};

use crate::convert::{self, Work};
use crate::state::{CURSOR, ContinuityState, DAY, load, u32_of, u64_of, watched};
use crate::{CONTINUITY, EVALUATIONS_SUBJECT, Event, Events};

pub(crate) struct Evaluate {
    pub(crate) bus: Bus,
    pub(crate) state: ProjectionHandle,
}

impl Workflow for Evaluate {
    const NAME: &'static str = "evaluate";
    const STREAM: &'static str = kokuho_identity_contract::STREAM.name;
    const SUBJECT: Option<&'static str> = Some(kokuho_identity_contract::CHUNKS_SUBJECT);

    /// Evaluates a group of identity events in order, each on continuity's state as the earlier
    /// ones leave it, and appends the results as one atomic batch (kokuho_store::Decider).
    async fn handle(&self, events: &[LogEvent<'_>]) -> Result<Rejected, ApplyError> {
        let decider = Decider {
            bus: &self.bus,
            projection: &ContinuityState,
            state: &self.state,
            stream: CONTINUITY.name,
            scope: None,
        };
        decider
            .run(
                events,
                |view| Ok(u64_of(view.get(CURSOR)?)),
                |view, ev| {
                    let Some(work) = convert::work_of(ev.payload).map_err(ApplyError::Malformed)? else {
                        return Ok(Vec::new());
                    };
                    let evaluated = evaluate(view, work, ev.seq)?;
                    Ok(vec![(
                        EVALUATIONS_SUBJECT,
                        event::envelope::<Events>(Event::PersonsEvaluated(evaluated), "", "", ""),
                    )])
                },
            )
            .await
    }
}

/// The persons an evaluation touches, loaded once.
struct Persons<'a> {
    view: &'a dyn Read,
    loaded: BTreeMap<String, PersonState>,
}

impl Persons<'_> {
    fn get(&mut self, pref: &str) -> Result<&mut PersonState, ApplyError> {
        if !self.loaded.contains_key(pref) {
            let p =
                load(self.view, pref)?.unwrap_or_else(|| PersonState { pref_id: pref.into(), ..Default::default() });
            self.loaded.insert(pref.into(), p);
        }
        Ok(self.loaded.get_mut(pref).expect("inserted above"))
    }

    fn take(&mut self, pref: &str) -> Result<Option<PersonState>, ApplyError> {
        match self.loaded.remove(pref) {
            Some(p) => Ok(Some(p)),
            None => load(self.view, pref),
        }
    }
}

/// Evaluates one identity event: merges (I5), the periods its records report, every person it
/// touches (and, at a day close, every watched person), and collects the rows they send.
fn evaluate(view: &dyn Read, work: Work, identity_seq: u64) -> Result<pb::PersonsEvaluated, ApplyError> {
    let day = work.day.unwrap_or_else(|| u32_of(view.get(DAY).ok().flatten()));
    let business_date = Date::from_yyyymmdd(day).unwrap_or(Date::MAX);
    let mut persons = Persons { view, loaded: BTreeMap::new() };
    let mut rows: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    let mut merged_away = Vec::new();
    for m in work.merges {
        let from = persons.take(&m.from)?;
        let into = persons.get(&m.into)?;
        if let Some(from) = from {
            domain::merge(into, from, &m.ids);
        }
        merged_away.push(m.from);
    }
    // Periods removed by a 削除: their rows are withdrawn (判定区分 9).
    let mut withdrawn: BTreeMap<String, Vec<domain::Tracked>> = BTreeMap::new();
    for (pref, change) in work.changes {
        let person = persons.get(&pref)?;
        for sent in domain::report(person, change, withdrawn.entry(pref).or_default()) {
            rows.entry(sent.to).or_default().push(sent.row);
        }
    }
    if work.watched {
        for pref in watched(view)? {
            persons.get(&pref)?;
        }
    }
    for person in persons.loaded.values_mut() {
        let gone = withdrawn.remove(&person.pref_id).unwrap_or_default();
        for sent in domain::step(person, &gone, work.step, business_date) {
            rows.entry(sent.to).or_default().push(sent.row);
        }
    }
    Ok(pb::PersonsEvaluated {
        identity_sequence: identity_seq,
        business_date: day,
        persons: persons.loaded.values().map(convert::person_state).collect(),
        merged_away,
        rows: convert::municipality_rows(rows),
    })
}

/// continuity's RS and RE rows for the outbox.
pub(crate) struct ContinuityRows;

impl kokuho_outbox::RowSource for ContinuityRows {
    const NAME: &'static str = "forward-rows";
    const STREAM: &'static str = CONTINUITY.name;
    type Events = Events;

    fn rows(&self, event: Event) -> kokuho_outbox::RowGroups {
        let Event::PersonsEvaluated(e) = event;
        e.rows
            .into_iter()
            .map(|m| (format!("continuity:{}:{}", e.identity_sequence, m.municipality), m.municipality, m.rows))
            .collect()
    }
}
