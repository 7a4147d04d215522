//! The delivery worker (R4, R5, R6, no silent stalls): sends the operations the plans queued to
//! the intermediate server and appends its answers (`RecordsDelivered`) to relay's stream.
//!
//! - At least once, applied once: every operation carries its idempotency key; an operation is
//!   pending in the ledger until an answer for it is in the log, so a restart of relay, NATS or
//!   the server sends it again and the server answers the earlier result.
//! - In order per person: only the oldest pending operation of a person is sent; the next one
//!   waits for its answer.
//! - One failing person does not hold back the rest: an operation that fails for now (the server
//!   or identity unreachable, a lost answer) backs off by itself (doubling, capped), and every
//!   other person goes on; at most `in_flight` operations are sent and not yet answered at a time.
//! - The 個人番号 leaves identity at send time only, over identity's authenticated, audited
//!   release call, per operation, and lives in this task's memory for that call only (R6).
//! - A partition that has not moved for `stall_after` while operations wait raises R05 (an RE row
//!   to the municipality and an error line to the operator), closed when it moves again.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use kokuho_bus::{Append, Bus, BusErrorKind};
use kokuho_ids::Registry;
use kokuho_ids::codes::{AlertState, RelayProcessing};
use kokuho_proto::identity::v1::identity_service_client::IdentityServiceClient;
use kokuho_proto::identity::v1::{ReleaseNumberRequest, ReleaseNumbersRequest};
use kokuho_proto::midserver::v1 as mpb;
use kokuho_proto::midserver::v1::mid_server_service_client::MidServerServiceClient;
use kokuho_proto::relay::v1 as pb;
use kokuho_relay_contract::{Event, Events, STREAM};
use kokuho_store::ProjectionHandle;
use tonic::transport::Channel;

use crate::inputs::PeriodKey;
use crate::liveness::now_secs;
use crate::plan::{Rows, r_row};
use crate::state;

/// Most operations in one release call, in one ApplyBatch, and answered in one event.
const BATCH: usize = 500;
/// Most calls to the server open at a time.
const CALLS: usize = 8;
/// Most operations looked at per round.
const SCAN: usize = 20_000;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How the worker reaches identity and the intermediate server.
#[derive(Clone)]
pub(crate) struct Peers {
    pub(crate) identity: IdentityServiceClient<Channel>,
    pub(crate) midserver: MidServerServiceClient<Channel>,
    /// relay's credential (`authorization: Bearer`).
    pub(crate) token: String,
}

impl Peers {
    /// Clients over lazily connected channels: an endpoint that is down is retried per call.
    pub(crate) fn new(
        identity: &str,
        midserver: &str,
        token: String,
        tls: Option<&kokuho_runtime::tls::ClientTls>,
    ) -> anyhow::Result<Self> {
        let channel = |e: &str| -> anyhow::Result<Channel> {
            let endpoint = kokuho_runtime::tls::endpoint(e, tls).map_err(anyhow::Error::msg)?;
            Ok(endpoint.connect_timeout(Duration::from_secs(3)).connect_lazy())
        };
        Ok(Self {
            identity: IdentityServiceClient::new(channel(identity)?),
            midserver: MidServerServiceClient::new(channel(midserver)?),
            token,
        })
    }

    fn request<T>(&self, message: T, timeout: Duration) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        r.set_timeout(timeout);
        if let Ok(v) = format!("Bearer {}", self.token).parse() {
            r.metadata_mut().insert("authorization", v);
        }
        r
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) in_flight: usize,
    pub(crate) stall_after: Duration,
    pub(crate) call_timeout: Duration,
}

/// What the worker last saw of the server (status).
#[derive(Debug, Clone, Default)]
pub(crate) struct Health {
    pub(crate) reachable: bool,
    pub(crate) last_contact: i64,
    pub(crate) last_error: String,
    /// Persons whose operation is backing off now.
    pub(crate) backing_off: usize,
}

pub(crate) struct Worker {
    pub(crate) bus: Bus,
    pub(crate) ledger: ProjectionHandle,
    pub(crate) peers: Peers,
    pub(crate) settings: Settings,
    pub(crate) registry: Arc<Registry>,
    pub(crate) part: crate::Part,
    pub(crate) health: Arc<Mutex<Health>>,
}

/// An operation that failed for now, per person.
struct Backoff {
    attempts: u32,
    until: Instant,
}

/// The answer to one operation, or why there is none for now.
type Sent = (pb::Pending, Result<mpb::ApplyResponse, String>);

impl Worker {
    pub(crate) async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut backoff: HashMap<String, Backoff> = HashMap::new();
        let mut last_stall_check = Instant::now() - Duration::from_secs(3600);
        loop {
            if *stop.borrow() {
                return;
            }
            let round = self.round(&mut backoff);
            let outcome = tokio::select! {
                r = round => r,
                _ = stop.changed() => return,
            };
            let worked = match outcome {
                Ok(worked) => worked,
                Err(e) => {
                    tracing::warn!(error = %e, "relay delivery round failed; retrying");
                    false
                }
            };
            // Once a second, and at once after answers while an alert is open (so that it
            // closes when its partition moves); not after every round: the check reads every
            // partition's pending operations.
            let alert_open = worked && state::any_stalled(self.ledger.store()).unwrap_or(true);
            if alert_open || last_stall_check.elapsed() >= Duration::from_secs(1) {
                last_stall_check = Instant::now();
                if let Err(e) = self.check_stalls().await {
                    tracing::warn!(error = %e, "relay stall check failed");
                }
            }
            if !worked {
                // Nothing to send now: wake on the next ledger change or soon.
                let next = self.ledger.position() + 1;
                tokio::select! {
                    _ = self.ledger.wait_for(next, Duration::from_millis(100)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }

    /// One round: the oldest pending operation of each person not backing off, sent with at most
    /// `in_flight` operations in batches, and the answers appended. Whether anything was sent.
    async fn round(&self, backoff: &mut HashMap<String, Backoff>) -> anyhow::Result<bool> {
        let last = self.bus.last_seq(STREAM.name).await?;
        self.ledger.wait_for(last, Duration::from_secs(10)).await;
        let now = Instant::now();
        let pending = state::pending(self.ledger.store(), SCAN)?;
        let blocked = |person: &str| backoff.get(person).is_some_and(|b| b.until > now);
        let heads = heads(pending, blocked, self.settings.in_flight.max(1));
        if let Ok(mut h) = self.health.lock() {
            h.backing_off = backoff.values().filter(|b| b.until > now).count();
        }
        if heads.is_empty() {
            return Ok(false);
        }
        let sent = self.send_all(heads).await;
        let mut answered = Vec::new();
        for (p, r) in sent {
            let person = person_of(&p).to_string();
            match r {
                Ok(answer) => {
                    backoff.remove(&person);
                    answered.push((p, answer));
                }
                Err(why) => {
                    let b = backoff.entry(person).or_insert(Backoff { attempts: 0, until: now });
                    b.attempts += 1;
                    let wait = FIRST_BACKOFF.saturating_mul(1 << b.attempts.min(8)).min(MAX_BACKOFF);
                    b.until = Instant::now() + wait;
                    tracing::debug!(error = %why, attempts = b.attempts, "an operation failed for now; backing off");
                    if let Ok(mut h) = self.health.lock() {
                        h.last_error = why;
                    }
                }
            }
        }
        // One event per batch of answers, so that an event stays well under the server's
        // message size.
        let mut answered = answered.into_iter().peekable();
        while answered.peek().is_some() {
            self.append(answered.by_ref().take(BATCH).collect()).await?;
        }
        Ok(true)
    }

    /// Sends a round's operations (at most `in_flight`): the numbers released for them first, in
    /// one audited call per batch (not for a 削除), then one ApplyBatch per partition and batch,
    /// a few calls open at a time. A call that fails fails for every operation it carried.
    async fn send_all(&self, heads: Vec<pb::Pending>) -> Vec<Sent> {
        let mut out = Vec::with_capacity(heads.len());
        let mut ready: BTreeMap<String, Vec<(pb::Pending, mpb::ApplyRequest)>> = BTreeMap::new();
        for chunk in heads.chunks(BATCH) {
            let numbers = self.release(chunk).await;
            for (p, number) in chunk.iter().zip(numbers) {
                match number.and_then(|n| apply_request(p, n)) {
                    Ok(request) => ready.entry(request.partition.clone()).or_default().push((p.clone(), request)),
                    Err(why) => out.push((p.clone(), Err(why))),
                }
            }
        }
        let batches: Vec<Vec<(pb::Pending, mpb::ApplyRequest)>> = ready
            .into_values()
            .flat_map(|ops| {
                let mut ops = ops.into_iter().peekable();
                let mut batches = Vec::new();
                while ops.peek().is_some() {
                    batches.push(ops.by_ref().take(BATCH).collect::<Vec<_>>());
                }
                batches
            })
            .collect();
        let answered: Vec<Vec<Sent>> =
            futures::stream::iter(batches).map(|batch| self.apply(batch)).buffer_unordered(CALLS).collect().await;
        out.extend(answered.into_iter().flatten());
        out
    }

    /// R6: the numbers of the operations that need one (every one but a 削除), released by
    /// identity for relay in one call, each release audited: a number, or why there is none now.
    async fn release(&self, ops: &[pb::Pending]) -> Vec<Result<String, String>> {
        let delete = RelayProcessing::Delete.code();
        let asked: Vec<ReleaseNumberRequest> = ops
            .iter()
            .filter_map(|p| p.operation.as_ref())
            .filter(|op| op.processing != delete)
            .map(|op| ReleaseNumberRequest {
                pref_id: op.record.as_ref().map(|r| r.person.clone()).unwrap_or_default(),
                purpose: format!(
                    "中間サーバー連携 {} {}",
                    op.period.as_ref().map(|p| p.municipality.as_str()).unwrap_or_default(),
                    op.idempotency_key
                ),
            })
            .collect();
        let released = if asked.is_empty() {
            Ok((Vec::new(), Vec::new()))
        } else {
            let mut identity = self.peers.identity.clone();
            let request = self.peers.request(ReleaseNumbersRequest { releases: asked }, self.settings.call_timeout);
            identity
                .release_numbers(request)
                .await
                .map(|r| {
                    let r = r.into_inner();
                    (r.individual_numbers, r.missing)
                })
                .map_err(|s| format!("identity: {}", s.message()))
        };
        let mut numbers = match &released {
            Ok((numbers, missing)) => numbers.iter().zip(missing).map(|(n, m)| (n.clone(), m.clone())).collect(),
            Err(_) => Vec::new(),
        }
        .into_iter();
        ops.iter()
            .map(|p| {
                if p.operation.as_ref().is_none_or(|op| op.processing == delete) {
                    return Ok(String::new());
                }
                match &released {
                    Err(why) => Err(why.clone()),
                    Ok(_) => match numbers.next() {
                        Some((n, _)) if !n.is_empty() => Ok(n),
                        Some((_, why)) => Err(format!("identity: {why}")),
                        None => Err("identity answered fewer numbers than asked".into()),
                    },
                }
            })
            .collect()
    }

    /// One ApplyBatch of one partition: an answer per operation, or why there is none now.
    async fn apply(&self, batch: Vec<(pb::Pending, mpb::ApplyRequest)>) -> Vec<Sent> {
        let (pending, requests): (Vec<pb::Pending>, Vec<mpb::ApplyRequest>) = batch.into_iter().unzip();
        let mut midserver = self.peers.midserver.clone();
        let request = self.peers.request(mpb::ApplyBatchRequest { requests }, self.settings.call_timeout);
        let answer = midserver.apply_batch(request).await;
        let mut health = match self.health.lock() {
            Ok(h) => h,
            Err(poisoned) => poisoned.into_inner(),
        };
        match answer {
            Ok(a) => {
                health.reachable = true;
                health.last_contact = now_secs();
                let answers = a.into_inner().answers;
                if answers.len() != pending.len() {
                    let why = "the server answered another number of records than it was sent".to_string();
                    return pending.into_iter().map(|p| (p, Err(why.clone()))).collect();
                }
                pending.into_iter().zip(answers.into_iter().map(Ok)).collect()
            }
            Err(s) => {
                health.reachable = !matches!(s.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded);
                let why = format!("intermediate server: {}", s.message());
                pending.into_iter().map(|p| (p, Err(why.clone()))).collect()
            }
        }
    }

    /// Appends the answers (RM rows, R03 raised, waits closed), as the only writer of its subject.
    async fn append(&self, answered: Vec<(pb::Pending, mpb::ApplyResponse)>) -> anyhow::Result<()> {
        loop {
            let expected = self.bus.last_subject_seq(STREAM.name, self.part.deliveries).await?;
            let last = self.bus.last_seq(STREAM.name).await?;
            self.ledger.wait_for(last, Duration::from_secs(10)).await;
            let event = self.delivered(&answered)?;
            if event.outcomes.is_empty() {
                return Ok(());
            }
            let envelope = kokuho_bus::event::envelope::<Events>(Event::RecordsDelivered(event), "", "", "");
            match self
                .bus
                .append(Append::event(self.part.deliveries, &envelope).expect_last_subject_seq(expected))
                .await
            {
                Ok(a) => {
                    self.ledger.wait_for(a.seq, Duration::from_secs(10)).await;
                    return Ok(());
                }
                Err(e) if e.kind() == BusErrorKind::WrongLastSequence => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The event of a round's answers, on the ledger as it is (an operation answered already,
    /// by another worker, is left out).
    fn delivered(&self, answered: &[(pb::Pending, mpb::ApplyResponse)]) -> anyhow::Result<pb::RecordsDelivered> {
        let view = self.ledger.store();
        let mut out = pb::RecordsDelivered { delivered_at: now_secs(), ..Default::default() };
        let mut rows = Rows::default();
        let mut closed: BTreeSet<PeriodKey> = BTreeSet::new();
        for (p, a) in answered {
            let Some(op) = &p.operation else { continue };
            if state::pending_of(view, op.id)?.is_none() {
                continue;
            }
            let (Some(period), Some(record)) = (&op.period, &op.record) else { continue };
            let key = PeriodKey::of(period);
            out.outcomes.push(pb::Outcome {
                operation: op.id,
                accepted: a.accepted,
                error_code: a.error_code.clone(),
                message: a.message.clone(),
            });
            let processing = RelayProcessing::parse(&op.processing).unwrap_or(RelayProcessing::New);
            rows.push(
                &period.municipality,
                kokuho_outbox::wire(&kokuho_rows::Row::Rm(kokuho_rows::Rm {
                    resident: period.resident_number.clone(),
                    card_symbol: record.symbol.clone(),
                    card_number: record.number.clone(),
                    branch: u8::try_from(record.branch).unwrap_or(0),
                    processing,
                    error: (!a.accepted).then(|| (a.error_code.clone(), a.message.clone())),
                })),
            );
            let open = state::open_waits(view, &key)?;
            if a.accepted {
                // R5: the record went: its waits (and an earlier rejection) close.
                if closed.insert(key.clone()) {
                    for w in open {
                        rows.push(&period.municipality, r_row(&w.code, &key, &w, AlertState::Closed));
                        out.waits.push(pb::WaitChange { period: Some(period.clone()), wait: Some(w), open: false });
                    }
                }
            } else if !open.iter().any(|w| w.code == "R03") {
                let wait = pb::OpenWait {
                    code: "R03".into(),
                    receipt: String::new(),
                    line: 0,
                    start: period.start,
                    end: end_of(record),
                };
                rows.push(&period.municipality, r_row("R03", &key, &wait, AlertState::Raised));
                out.waits.push(pb::WaitChange { period: Some(period.clone()), wait: Some(wait), open: true });
            }
        }
        out.rows = rows.into_wire();
        Ok(out)
    }

    /// No silent stalls: raises R05 for a partition with operations waiting and no answer for
    /// `stall_after`; closes it once the partition moves again.
    async fn check_stalls(&self) -> anyhow::Result<()> {
        let now = now_secs();
        let limit = self.settings.stall_after.as_secs() as i64;
        for code in self.part.municipalities(&self.registry) {
            let p = state::partition(self.ledger.store(), &code)?;
            let quiet_since = p.oldest.max(p.last_delivery);
            let stalled = p.undelivered > 0 && now - quiet_since >= limit;
            let event = match p.stalled {
                None if stalled => {
                    tracing::error!(
                        municipality = %code,
                        undelivered = p.undelivered,
                        lag_seconds = now - p.oldest,
                        "relay: the partition has not moved while records wait (R05); check the intermediate server and the link"
                    );
                    Some(true)
                }
                Some(raised) if p.undelivered == 0 || p.last_delivery > raised => {
                    tracing::info!(municipality = %code, "relay: the partition moves again (R05 closed)");
                    Some(false)
                }
                _ => None,
            };
            let Some(stalled) = event else { continue };
            let key = PeriodKey { municipality: code.clone(), resident: String::new(), start: 0 };
            let wait = pb::OpenWait { code: "R05".into(), ..Default::default() };
            let state = if stalled { AlertState::Raised } else { AlertState::Closed };
            let mut rows = Rows::default();
            rows.push(&code, r_row("R05", &key, &wait, state));
            let e = pb::PartitionStall { municipality: code.clone(), stalled, since: now, rows: rows.into_wire() };
            let envelope = kokuho_bus::event::envelope::<Events>(Event::PartitionStall(e), "", "", "");
            let a = self.bus.append(Append::event(self.part.deliveries, &envelope)).await?;
            self.ledger.wait_for(a.seq, Duration::from_secs(10)).await;
        }
        Ok(())
    }
}

fn person_of(p: &pb::Pending) -> &str {
    p.operation.as_ref().and_then(|o| o.record.as_ref()).map(|r| r.person.as_str()).unwrap_or_default()
}

/// R4, in order per person: of the pending operations (oldest first), the oldest of each person
/// whose person is not backing off (`blocked`); a person's later operations wait for its oldest
/// to be answered. At most `limit`.
fn heads(pending: Vec<pb::Pending>, blocked: impl Fn(&str) -> bool, limit: usize) -> Vec<pb::Pending> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for p in pending {
        if !seen.insert(person_of(&p).to_string()) || blocked(person_of(&p)) {
            continue;
        }
        out.push(p);
        if out.len() >= limit {
            break;
        }
    }
    out
}

/// The server's request for an operation, with its number (empty for a 削除).
fn apply_request(p: &pb::Pending, number: String) -> Result<mpb::ApplyRequest, String> {
    let op = p.operation.as_ref().ok_or("an operation without its body")?;
    let (Some(period), Some(record)) = (&op.period, &op.record) else {
        return Err("an operation without its record".into());
    };
    let subscriber = mpb::Subscriber {
        insurer: record.insurer.clone(),
        symbol: record.symbol.clone(),
        number: record.number.clone(),
        branch: record.branch,
        individual_number: number,
        name: record.name.clone(),
        kana: record.kana.clone(),
        birth_date: record.birth_date,
        sex: record.sex.clone(),
        acquired_on: record.acquired_on,
        lost_on: record.lost_on,
        pref_acquired_on: record.pref_acquired_on,
        pref_lost_on: record.pref_lost_on,
    };
    Ok(mpb::ApplyRequest {
        partition: period.municipality.clone(),
        idempotency_key: op.idempotency_key.clone(),
        processing: op.processing.clone(),
        subscriber: Some(subscriber),
    })
}

/// 適用終了年月日 of a record (資格喪失年月日 − 1), 0 while open.
fn end_of(r: &pb::Record) -> u32 {
    kokuho_ids::Date::from_yyyymmdd(r.lost_on).and_then(|d| d.add_days(-1)).map(|d| d.to_yyyymmdd()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: u64, person: &str) -> pb::Pending {
        let record = pb::Record { person: person.into(), ..Default::default() };
        pb::Pending { operation: Some(pb::Operation { id, record: Some(record), ..Default::default() }), planned_at: 0 }
    }

    fn ids(p: &[pb::Pending]) -> Vec<u64> {
        p.iter().filter_map(|p| p.operation.as_ref().map(|o| o.id)).collect()
    }

    /// R4: one operation per person at a time, the oldest; a person backing off holds back only
    /// their own operations.
    #[test]
    fn r4_only_the_oldest_operation_of_each_person_goes() {
        let pending = vec![op(1, "a"), op(2, "b"), op(3, "a"), op(4, "c"), op(5, "b"), op(6, "d")];
        assert_eq!(ids(&heads(pending.clone(), |_| false, 10)), vec![1, 2, 4, 6]);
        assert_eq!(ids(&heads(pending.clone(), |p| p == "b", 10)), vec![1, 4, 6], "b's 5 waits for b's 2");
        assert_eq!(ids(&heads(pending, |_| false, 2)), vec![1, 2]);
    }
}
