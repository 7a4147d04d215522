//! relay's projection of its own stream (`ledger`): what each period's record is, the 枝番 given,
//! the operations not yet answered, the open R rows, and per-partition liveness.
//!
//! Keys (tree `relay-ledger`):
//! - `cur/<stream>` → the last input sequence planned (the deciding workflows' cursors)
//! - `r/<muni>/<宛名番号>/<開始>` → `PeriodRecord`; `rp/<person>/<muni>/<宛名番号>/<開始>` (index)
//! - `b/<保険者番号>/<記号>/<番号>` → `BranchBook` (R3)
//! - `o/<id>` → `Pending` (R4: not yet answered), `op/<person>/<id>` and `om/<muni>/<id>` (indexes)
//! - `next` → the next operation id
//! - `w/<muni>/<宛名番号>/<開始>/<code>` → `OpenWait` (R5: an open R row)
//! - `ld/<muni>` last answer (Unix seconds), `dc/<muni>` / `rc/<muni>` answers accepted / rejected,
//!   `n/<muni>` records the partition holds, `st/<muni>` an open stall (R05)

use kokuho_proto::relay::v1 as pb;
use kokuho_relay_contract::{Event, Events};
use kokuho_store::{ApplyError, LogEvent, Projection, Read, StoreError, Tx, u64_of};
use prost::Message as _;

use crate::inputs::PeriodKey;

/// The projection of this instance's part of relay's stream (its shard's subjects).
pub(crate) struct Ledger {
    pub(crate) part: crate::Part,
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn id_key(id: u64) -> String {
    format!("{id:020}")
}

fn i64_of(v: Option<Vec<u8>>) -> i64 {
    v.and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok()).map(i64::from_be_bytes).unwrap_or(0)
}

fn add(tx: &mut Tx<'_>, key: String, delta: i64) -> Result<(), StoreError> {
    let now = u64_of(tx.get(key.as_bytes())?);
    let next = now.saturating_add_signed(delta);
    tx.put(key, next.to_be_bytes().to_vec());
    Ok(())
}

fn apply_waits(tx: &mut Tx<'_>, waits: &[pb::WaitChange]) {
    for w in waits {
        let (Some(p), Some(wait)) = (&w.period, &w.wait) else { continue };
        let key = format!("w/{}/{}", PeriodKey::of(p).path(), wait.code);
        if w.open { tx.put(key, wait.encode_to_vec()) } else { tx.delete(key) }
    }
}

impl Projection for Ledger {
    const NAME: &'static str = "ledger";
    const VERSION: u32 = 1;
    const STREAM: &'static str = kokuho_relay_contract::STREAM.name;

    fn apply(&self, tx: &mut Tx<'_>, ev: &LogEvent<'_>) -> Result<(), ApplyError> {
        // Another shard's plans and deliveries (and provision records) are not this ledger's.
        if !self.part.writes(ev.subject) {
            return Ok(());
        }
        let (envelope, event) = kokuho_bus::event::decode::<Events>(ev.payload).map_err(ApplyError::Malformed)?;
        let at = envelope.occurred_at.map(|t| t.seconds).unwrap_or(0);
        match event {
            Event::RecordsPlanned(e) => {
                tx.put(format!("cur/{}", e.input_stream), e.input_sequence.to_be_bytes().to_vec());
                for r in &e.periods {
                    let Some(p) = &r.period else { continue };
                    let key = PeriodKey::of(p);
                    let before = record(tx, &key)?;
                    let had = before.as_ref().is_some_and(|b| b.record.is_some());
                    if let Some(b) = &before
                        && !b.person.is_empty()
                    {
                        tx.delete(format!("rp/{}/{}", b.person, key.path()));
                    }
                    if !r.person.is_empty() {
                        tx.put(format!("rp/{}/{}", r.person, key.path()), Vec::new());
                    }
                    match (had, r.record.is_some()) {
                        (false, true) => add(tx, format!("n/{}", key.municipality), 1)?,
                        (true, false) => add(tx, format!("n/{}", key.municipality), -1)?,
                        _ => {}
                    }
                    tx.put(format!("r/{}", key.path()), r.encode_to_vec());
                }
                for b in &e.branches {
                    let key = format!("b/{}/{}/{}", b.insurer, b.symbol, b.number);
                    let mut book = match tx.get(key.as_bytes())? {
                        Some(v) => pb::BranchBook::decode(v.as_slice()).map_err(corrupt)?,
                        None => pb::BranchBook::default(),
                    };
                    book.given.insert(b.person.clone(), b.branch);
                    book.last = book.last.max(b.branch);
                    tx.put(key, book.encode_to_vec());
                }
                for op in &e.operations {
                    let (Some(p), Some(record)) = (&op.period, &op.record) else { continue };
                    let id = id_key(op.id);
                    tx.put(format!("op/{}/{id}", record.person), Vec::new());
                    tx.put(format!("om/{}/{id}", p.municipality), Vec::new());
                    let pending = pb::Pending { operation: Some(op.clone()), planned_at: at };
                    tx.put(format!("o/{id}"), pending.encode_to_vec());
                    let next = u64_of(tx.get(b"next")?).max(op.id + 1);
                    tx.put(b"next".to_vec(), next.to_be_bytes().to_vec());
                }
                apply_waits(tx, &e.waits);
            }
            Event::RecordsDelivered(e) => {
                for o in &e.outcomes {
                    let id = id_key(o.operation);
                    let Some(pending) = tx.get(format!("o/{id}").as_bytes())? else { continue };
                    let pending = pb::Pending::decode(pending.as_slice()).map_err(corrupt)?;
                    let Some(op) = pending.operation else { continue };
                    let person = op.record.as_ref().map(|r| r.person.clone()).unwrap_or_default();
                    let muni = op.period.as_ref().map(|p| p.municipality.clone()).unwrap_or_default();
                    tx.delete(format!("o/{id}"));
                    tx.delete(format!("op/{person}/{id}"));
                    tx.delete(format!("om/{muni}/{id}"));
                    tx.put(format!("ld/{muni}"), e.delivered_at.to_be_bytes().to_vec());
                    add(tx, format!("{}/{muni}", if o.accepted { "dc" } else { "rc" }), 1)?;
                }
                apply_waits(tx, &e.waits);
            }
            Event::PartitionStall(s) => {
                let key = format!("st/{}", s.municipality);
                if s.stalled { tx.put(key, s.since.to_be_bytes().to_vec()) } else { tx.delete(key) }
            }
            Event::ProvisionRecorded(_) => {}
        }
        Ok(())
    }
}

/// The last input sequence of `stream` planned.
pub(crate) fn cursor(view: &dyn Read, stream: &str) -> Result<u64, StoreError> {
    Ok(u64_of(view.get(format!("cur/{stream}").as_bytes())?))
}

pub(crate) fn record(view: &dyn Read, key: &PeriodKey) -> Result<Option<pb::PeriodRecord>, StoreError> {
    view.get(format!("r/{}", key.path()).as_bytes())?
        .map(|b| pb::PeriodRecord::decode(b.as_slice()).map_err(corrupt))
        .transpose()
}

fn keys_under(view: &dyn Read, prefix: &str) -> Result<Vec<PeriodKey>, StoreError> {
    view.scan_prefix(prefix.as_bytes())?
        .into_iter()
        .map(|(k, _)| PeriodKey::parse(&String::from_utf8_lossy(&k[prefix.len()..])))
        .collect()
}

/// The periods relay planned a record for, of a person.
pub(crate) fn records_of_person(view: &dyn Read, person: &str) -> Result<Vec<PeriodKey>, StoreError> {
    keys_under(view, &format!("rp/{person}/"))
}

/// The periods relay planned a record for, at (municipality, 宛名番号).
pub(crate) fn records_of_resident(
    view: &dyn Read,
    municipality: &str,
    resident: &str,
) -> Result<Vec<PeriodKey>, StoreError> {
    let prefix = format!("r/{municipality}/{resident}/");
    view.scan_prefix(prefix.as_bytes())?
        .into_iter()
        .map(|(k, _)| PeriodKey::parse(&String::from_utf8_lossy(&k[2..])))
        .collect()
}

/// R3: the 枝番 of a card.
pub(crate) fn branches(
    view: &dyn Read,
    card: &kokuho_relay_domain::Card,
) -> Result<kokuho_relay_domain::Branches, StoreError> {
    let key = format!("b/{}/{}/{}", card.insurer, card.symbol, card.number);
    let book = match view.get(key.as_bytes())? {
        Some(v) => pb::BranchBook::decode(v.as_slice()).map_err(corrupt)?,
        None => return Ok(kokuho_relay_domain::Branches::default()),
    };
    let last = u8::try_from(book.last).map_err(corrupt)?;
    let given = book
        .given
        .into_iter()
        .map(|(p, b)| Ok((p, u8::try_from(b).map_err(corrupt)?)))
        .collect::<Result<_, StoreError>>()?;
    Ok(kokuho_relay_domain::Branches { given, last })
}

pub(crate) fn next_operation(view: &dyn Read) -> Result<u64, StoreError> {
    Ok(u64_of(view.get(b"next")?).max(1))
}

/// The open R rows of a period.
pub(crate) fn open_waits(view: &dyn Read, key: &PeriodKey) -> Result<Vec<pb::OpenWait>, StoreError> {
    view.scan_prefix(format!("w/{}/", key.path()).as_bytes())?
        .into_iter()
        .map(|(_, v)| pb::OpenWait::decode(v.as_slice()).map_err(corrupt))
        .collect()
}

/// The first `limit` waiting records of `municipality` (its open R rows, 宛名番号 order; only
/// those are read).
pub(crate) fn waiting_records(
    view: &dyn Read,
    municipality: &str,
    after: &str,
    limit: usize,
) -> Result<(Vec<pb::WaitingRecord>, String), StoreError> {
    let prefix = format!("w/{municipality}/");
    let after = (!after.is_empty()).then(|| format!("{prefix}{after}"));
    // One more than asked: whether there is a next page.
    let mut entries =
        view.scan_after(prefix.as_bytes(), after.as_deref().map(str::as_bytes), limit.saturating_add(1))?;
    let next = if entries.len() > limit {
        entries.truncate(limit);
        entries.last().map(|(k, _)| String::from_utf8_lossy(&k[prefix.len()..]).into_owned()).unwrap_or_default()
    } else {
        String::new()
    };
    let records = entries
        .into_iter()
        .map(|(k, v)| {
            // `w/<muni>/<宛名番号>/<開始>/<code>`
            let key = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            let mut parts = key.split('/');
            let resident = parts.next().unwrap_or_default().to_string();
            let start = parts.next().unwrap_or_default().parse().map_err(corrupt)?;
            let wait = pb::OpenWait::decode(v.as_slice()).map_err(corrupt)?;
            Ok(pb::WaitingRecord { resident_number: resident, start, wait: Some(wait) })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok((records, next))
}

/// Operations not yet answered, oldest first (at most `limit`; only those are read).
pub(crate) fn pending(view: &dyn Read, limit: usize) -> Result<Vec<pb::Pending>, StoreError> {
    view.scan_first(b"o/", limit)?
        .into_iter()
        .map(|(_, v)| pb::Pending::decode(v.as_slice()).map_err(corrupt))
        .collect()
}

pub(crate) fn pending_of(view: &dyn Read, id: u64) -> Result<Option<pb::Pending>, StoreError> {
    view.get(format!("o/{}", id_key(id)).as_bytes())?
        .map(|v| pb::Pending::decode(v.as_slice()).map_err(corrupt))
        .transpose()
}

/// An R05 alert is open for some partition.
pub(crate) fn any_stalled(view: &dyn Read) -> Result<bool, StoreError> {
    Ok(!view.scan_first(b"st/", 1)?.is_empty())
}

/// Liveness of one partition, from the ledger.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Partition {
    pub(crate) undelivered: u64,
    /// Unix seconds the oldest undelivered operation was planned (0: none).
    pub(crate) oldest: i64,
    pub(crate) last_delivery: i64,
    pub(crate) waiting: u64,
    pub(crate) records: u64,
    pub(crate) stalled: Option<i64>,
    pub(crate) delivered: u64,
    pub(crate) rejected: u64,
}

pub(crate) fn partition(view: &dyn Read, municipality: &str) -> Result<Partition, StoreError> {
    let undelivered = format!("om/{municipality}/");
    let oldest = match view.scan_first(undelivered.as_bytes(), 1)?.first() {
        Some((k, _)) => {
            let id: u64 = String::from_utf8_lossy(&k[k.len() - 20..]).parse().map_err(corrupt)?;
            pending_of(view, id)?.map(|p| p.planned_at).unwrap_or(0)
        }
        None => 0,
    };
    let waiting = view.count_prefix(format!("w/{municipality}/").as_bytes())?;
    Ok(Partition {
        undelivered: view.count_prefix(undelivered.as_bytes())?,
        oldest,
        last_delivery: i64_of(view.get(format!("ld/{municipality}").as_bytes())?),
        waiting,
        records: u64_of(view.get(format!("n/{municipality}").as_bytes())?),
        stalled: view.get(format!("st/{municipality}").as_bytes())?.map(|v| i64_of(Some(v))),
        delivered: u64_of(view.get(format!("dc/{municipality}").as_bytes())?),
        rejected: u64_of(view.get(format!("rc/{municipality}").as_bytes())?),
    })
}
