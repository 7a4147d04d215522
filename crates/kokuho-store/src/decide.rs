//! Workflows that decide: each input event becomes at most one event on the service's own
//! subject, decided on the service's own projection. identity's `link-records` and
//! continuity's `evaluate` are such workflows.
//!
//! A group of input events is decided in order. Each decision is applied at once, with the
//! projection's own `apply`, to a write set over the committed state, so that the next decision
//! of the group sees it exactly as it would after the append; then the group's decisions are
//! appended as one atomic batch (one fsync) whose first message expects the stream's last
//! sequence: a second instance, or a retry after a crash, decides again on fresh state instead
//! of appending twice. Inputs at or below the projection's cursor were decided before a restart
//! and are skipped.

use std::collections::BTreeMap;
use std::time::Duration;

use kokuho_bus::event::Envelope;
use kokuho_bus::{Append, Bus, BusErrorKind, GROUP_MAX_BYTES};

use crate::{ApplyError, LogEvent, Projection, ProjectionHandle, Read, Rejected, Tx};

/// What to append for an input event: events of the deciding service's own stream in their
/// envelopes, each with its subject, in order (usually one on its public subject; identity puts
/// the numbers behind it just before it, on a subject only identity reads); or nothing.
pub type Decided = Vec<(&'static str, Envelope)>;

/// Most events in one atomic batch (the server takes up to 1,000).
const EVENTS_PER_APPEND: usize = 200;
const PATIENCE: Duration = Duration::from_secs(60);
/// The largest event a decision may be (appended in parts when it is larger than one message).
const LARGEST_EVENT: usize = kokuho_bus::MAX_EVENT;

/// Where a deciding workflow writes and what it decides on.
pub struct Decider<'a, P: Projection> {
    pub bus: &'a Bus,
    /// The projection of the stream it appends to, and its handle (store and position).
    pub projection: &'a P,
    pub state: &'a ProjectionHandle,
    pub stream: &'static str,
    /// The subjects of the stream (a filter, wildcards allowed) whose last sequence its appends
    /// expect, when others write the stream's other subjects (relay's shards, each its own):
    /// writers elsewhere in the stream then do not make it decide again, and its projection need
    /// only have applied those subjects' last event. `None`: the whole stream.
    pub scope: Option<&'a str>,
}

/// Waits until each projection of another service's stream has applied everything its stream
/// (or its subject of the stream) holds now. A deciding workflow that reads several streams
/// calls it first: it then decides on facts at least as new as its own state, so a workflow that
/// starts over (a rebuild, a service added to a running system) never sends a row an older view
/// of one stream would have given (rules.md T2).
pub async fn inputs_caught_up(bus: &Bus, inputs: &[&ProjectionHandle]) -> Result<(), ApplyError> {
    for projection in inputs {
        let last = projection.head(bus).await.map_err(transient)?;
        if !projection.wait_for(last, PATIENCE).await {
            return Err(ApplyError::Transient(format!("{} is catching up", projection.name())));
        }
    }
    Ok(())
}

fn transient(e: impl std::fmt::Display) -> ApplyError {
    ApplyError::Transient(e.to_string())
}

impl<P: Projection> Decider<'_, P> {
    /// Decides `events` in order and appends the decisions, a batch at a time (at most 200
    /// events or 8 MiB, so memory stays bounded). `cursor` reads the last input sequence the
    /// projection has seen decided; `decide` sees the state as the earlier decisions leave it.
    /// Undecodable inputs (`ApplyError::Malformed`) are returned for the dead-letter stream.
    pub async fn run(
        &self,
        events: &[LogEvent<'_>],
        cursor: impl Fn(&dyn Read) -> Result<u64, ApplyError>,
        mut decide: impl FnMut(&dyn Read, &LogEvent<'_>) -> Result<Decided, ApplyError>,
    ) -> Result<Rejected, ApplyError> {
        let mut rejected = BTreeMap::new();
        let mut done = 0;
        while done < events.len() {
            done = self.round(events, done, &cursor, &mut decide, &mut rejected).await?;
        }
        Ok(rejected.into_iter().collect())
    }

    /// Decides from `events[from]` on until a batch is full, appends it, waits until the
    /// projection has applied it, and returns where the next round starts.
    async fn round(
        &self,
        events: &[LogEvent<'_>],
        from: usize,
        cursor: &impl Fn(&dyn Read) -> Result<u64, ApplyError>,
        decide: &mut impl FnMut(&dyn Read, &LogEvent<'_>) -> Result<Decided, ApplyError>,
        rejected: &mut BTreeMap<usize, String>,
    ) -> Result<usize, ApplyError> {
        loop {
            let expected = match self.scope {
                Some(filter) => self.bus.last_seq_on(self.stream, filter).await,
                None => self.bus.last_seq(self.stream).await,
            }
            .map_err(transient)?;
            if !self.state.wait_for(expected, PATIENCE).await {
                return Err(ApplyError::Transient(format!("{} is catching up", self.state.name())));
            }
            let (mut batch, next) = {
                let mut view = Tx::new(self.state.store());
                let decided_up_to = cursor(&view)?;
                let (mut batch, mut bytes, mut next) = (Vec::new(), 0, from);
                for (i, ev) in events.iter().enumerate().skip(from) {
                    next = i + 1;
                    if ev.seq <= decided_up_to {
                        continue;
                    }
                    let decided = match ev.span.in_scope(|| decide(&view, ev)) {
                        Ok(d) => d,
                        Err(ApplyError::Malformed(why)) => {
                            rejected.insert(i, why);
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    // Made in the input's span: each carries the trace that decided it.
                    let appends: Vec<Append> = ev.span.in_scope(|| {
                        decided.iter().map(|(subject, envelope)| Append::event(*subject, envelope)).collect()
                    });
                    // S9: a decision larger than the log takes can never be appended: the input
                    // is dead-lettered with why, instead of being retried for ever.
                    if let Some(big) = appends.iter().find(|a| a.payload.len() > LARGEST_EVENT) {
                        let why = format!(
                            "the decision for this event is {} bytes, more than the log takes in one message ({} bytes)",
                            big.payload.len(),
                            LARGEST_EVENT
                        );
                        tracing::error!(seq = ev.seq, subject = %big.subject, "{why}");
                        rejected.insert(i, why);
                        continue;
                    }
                    for append in appends {
                        // What the projection will make of it, for the decisions after it (its
                        // sequence is not known yet; a projection decided on does not read it).
                        let speculative = LogEvent {
                            seq: 0,
                            subject: &append.subject,
                            payload: &append.payload,
                            span: ev.span.clone(),
                        };
                        self.projection.apply(&mut view, &speculative)?;
                        bytes += append.payload.len();
                        batch.push(append);
                    }
                    if batch.len() >= EVENTS_PER_APPEND || bytes >= GROUP_MAX_BYTES {
                        break;
                    }
                }
                (batch, next)
            };
            let Some(first) = batch.first_mut() else { return Ok(next) };
            match self.scope {
                Some(filter) => {
                    first.expected_last_subject_seq = Some(expected);
                    first.expected_subjects = Some(filter.to_string());
                }
                None => first.expected_last_seq = Some(expected),
            }
            match self.bus.append_atomic(batch).await {
                Ok(a) => {
                    self.state.wait_for(a.seq, PATIENCE).await;
                    return Ok(next);
                }
                Err(e) if e.kind() == BusErrorKind::WrongLastSequence => continue,
                Err(e) => return Err(transient(e)),
            }
        }
    }
}
