//! Intake's own projection of the intake stream: what later submissions are checked against
//! (known households and keys, accepted 送信通番), the receipts, and the business date.
//!
//! Keys (one sled tree, `intake-state`):
//! - `day` → current business date (u32 BE, YYYYMMDD)
//! - `n/<muni>` → receipts issued to the municipality (u32 BE); `last/<muni>` → when its last
//!   submission was decided (the event's `occurred_at`, Unix seconds, i64 BE)
//! - `q/<muni>/<kind>/<通番:06>` → `<sha256> <receipt>`; `qh/<muni>/<kind>` → highest 通番
//! - `h/<muni>/<世帯番号>/<異動年月日>`, `k/<muni>/<宛名番号>/<適用開始年月日|00000000>`,
//!   `g/<muni>/<世帯番号>/<診療年月>/<該当区分>` → present while registered
//! - `r/<receipt>` → the receipt (an `IntakeEvent`: `SubmissionAccepted` or `SubmissionRejected`) and
//!   `rs/<receipt>` → the stream sequence of its last message

use std::collections::BTreeSet;

use kokuho_bus::event::{self, StreamEvents as _};
use kokuho_ids::codes::{KogakuKind, ProcessingKind};
use kokuho_ids::{Date, Month};
use kokuho_intake_domain::submission::{Facts, Lookups};
use kokuho_proto::intake::v1 as pb;
use kokuho_store::{ApplyError, LogEvent, Projection, Read, Store, StoreError, Tx, u32_of};
use prost::Message as _;

use crate::{Event, Events, INTAKE};

pub(crate) struct IntakeState;

const DAY: &[u8] = b"day";

fn receipts_key(muni: &str) -> Vec<u8> {
    format!("n/{muni}").into_bytes()
}
fn seq_key(muni: &str, kind: &str, n: u32) -> Vec<u8> {
    format!("q/{muni}/{kind}/{n:06}").into_bytes()
}
fn seq_high_key(muni: &str, kind: &str) -> Vec<u8> {
    format!("qh/{muni}/{kind}").into_bytes()
}
fn household_prefix(muni: &str, household: &str) -> String {
    format!("h/{muni}/{household}/")
}
fn person_prefix(muni: &str, resident: &str) -> String {
    format!("k/{muni}/{resident}/")
}
fn kogaku_prefix(muni: &str, household: &str) -> String {
    format!("g/{muni}/{household}/")
}
fn last_key(muni: &str) -> Vec<u8> {
    format!("last/{muni}").into_bytes()
}
fn receipt_key(receipt: &str) -> Vec<u8> {
    format!("r/{receipt}").into_bytes()
}
fn receipt_seq_key(receipt: &str) -> Vec<u8> {
    format!("rs/{receipt}").into_bytes()
}

impl Projection for IntakeState {
    const NAME: &'static str = "state";
    const VERSION: u32 = 2;
    const STREAM: &'static str = INTAKE.name;

    fn apply(&self, tx: &mut Tx<'_>, ev: &LogEvent<'_>) -> Result<(), ApplyError> {
        let (envelope, event) = event::decode::<Events>(ev.payload).map_err(ApplyError::Malformed)?;
        let at = envelope.occurred_at.map_or(0, |t| t.seconds);
        match event {
            Event::BusinessDateSet(p) => tx.put(DAY.to_vec(), p.date.to_be_bytes().to_vec()),
            Event::DayClosed(p) => tx.put(DAY.to_vec(), p.date.to_be_bytes().to_vec()),
            Event::SubmissionAccepted(s) => {
                let n = u32_of(tx.get(&receipts_key(&s.municipality))?) + 1;
                tx.put(receipts_key(&s.municipality), n.to_be_bytes().to_vec());
                tx.put(last_key(&s.municipality), at.to_be_bytes().to_vec());
                for f in &s.files {
                    let key = seq_key(&s.municipality, &f.kind, f.sequence_number);
                    if tx.contains(&key)? {
                        continue; // an identical resend inside a larger submission
                    }
                    tx.put(key, format!("{} {}", f.sha256, s.receipt).into_bytes());
                    let high = seq_high_key(&s.municipality, &f.kind);
                    let top = u32_of(tx.get(&high)?).max(f.sequence_number);
                    tx.put(high, top.to_be_bytes().to_vec());
                }
                let last = ev.seq + u64::from(s.chunks);
                tx.put(receipt_seq_key(&s.receipt), last.to_be_bytes().to_vec());
                tx.put(receipt_key(&s.receipt), Events::wrap(Event::SubmissionAccepted(s)).encode_to_vec());
            }
            Event::SubmissionRejected(s) => {
                let n = u32_of(tx.get(&receipts_key(&s.municipality))?) + 1;
                tx.put(receipts_key(&s.municipality), n.to_be_bytes().to_vec());
                tx.put(last_key(&s.municipality), at.to_be_bytes().to_vec());
                tx.put(receipt_seq_key(&s.receipt), ev.seq.to_be_bytes().to_vec());
                tx.put(receipt_key(&s.receipt), Events::wrap(Event::SubmissionRejected(s)).encode_to_vec());
            }
            Event::RecordsAccepted(chunk) => {
                for r in &chunk.records {
                    apply_record(tx, &chunk.municipality, r);
                }
            }
        }
        Ok(())
    }
}

fn apply_record(tx: &mut Tx<'_>, muni: &str, r: &pb::ChangeRecord) {
    use pb::change_record::Record as R;
    let register = |p: &str| ProcessingKind::parse(p) == Ok(ProcessingKind::Register);
    match &r.record {
        Some(R::Household(h)) => {
            let key = format!("{}{:08}", household_prefix(muni, &h.household_number), h.changed_on).into_bytes();
            if register(&h.processing) { tx.put(key, Vec::new()) } else { tx.delete(key) }
        }
        Some(R::Person(p)) => {
            let key = format!("{}{:08}", person_prefix(muni, &p.resident_number), p.start_date).into_bytes();
            if register(&p.processing) { tx.put(key, Vec::new()) } else { tx.delete(key) }
        }
        Some(R::Kogaku(k)) => {
            let key = format!("{}{}/{}", kogaku_prefix(muni, &k.household_number), k.month, k.kogaku_kind).into_bytes();
            if register(&k.processing) { tx.put(key, Vec::new()) } else { tx.delete(key) }
        }
        Some(R::Decision(_)) | None => {}
    }
}

// === reads ===

/// The current business date, if the log has one.
pub(crate) fn business_date(store: &dyn Store) -> Result<Option<u32>, StoreError> {
    let d = u32_of(store.get(DAY)?);
    Ok((d != 0).then_some(d))
}

/// The next receipt number of `muni`.
pub(crate) fn next_receipt(store: &dyn Store, muni: &str) -> Result<String, StoreError> {
    Ok(kokuho_ids::receipt(muni, u32_of(store.get(&receipts_key(muni))?) + 1))
}

/// A stored receipt and the stream sequence of its last message.
pub(crate) fn receipt(store: &dyn Store, receipt: &str) -> Result<Option<(Event, u64)>, StoreError> {
    let Some(bytes) = store.get(&receipt_key(receipt))? else { return Ok(None) };
    let message = pb::IntakeEvent::decode(bytes.as_slice())
        .map_err(|e| StoreError::Corrupt(format!("receipt {receipt}: {e}")))?;
    let payload = Events::unwrap(message).ok_or_else(|| StoreError::Corrupt(format!("receipt {receipt}")))?;
    let seq = store.get(&receipt_seq_key(receipt))?.and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok());
    Ok(Some((payload, seq.map(u64::from_be_bytes).unwrap_or(0))))
}

/// Past this many keys, one scan of the municipality's whole table beats a scan per key.
const SCAN_ALL_ABOVE: usize = 10_000;

/// The entries of `table` (a `x/<muni>/` prefix) whose next key part is in `wanted`.
fn scan_for(
    store: &dyn Store,
    table: &str,
    wanted: &BTreeSet<String>,
    prefix_of: impl Fn(&str) -> String,
) -> Result<Vec<kokuho_store::Entry>, StoreError> {
    if wanted.len() > SCAN_ALL_ABOVE {
        let all = store.scan_prefix(table.as_bytes())?;
        return Ok(all
            .into_iter()
            .filter(|(k, _)| split_key(k, table).is_some_and(|(first, _)| wanted.contains(&first)))
            .collect());
    }
    let mut out = Vec::new();
    for w in wanted {
        out.extend(store.scan_prefix(prefix_of(w).as_bytes())?);
    }
    Ok(out)
}

/// Splits `<table><first>/<rest>` into (first, rest).
fn split_key(key: &[u8], table: &str) -> Option<(String, String)> {
    let tail = std::str::from_utf8(key.get(table.len()..)?).ok()?;
    let (first, rest) = tail.split_once('/')?;
    Some((first.to_string(), rest.to_string()))
}

/// Looks up the facts a submission's records name (submission::lookups).
pub(crate) fn facts(store: &dyn Store, muni: &str, lookups: &Lookups) -> Result<Facts, StoreError> {
    let mut facts = Facts::default();
    for (kind, n) in &lookups.sequences {
        let code = kind.code();
        let entry = facts.sequences.entry(*kind).or_default();
        let high = u32_of(store.get(&seq_high_key(muni, code))?);
        entry.highest = (high != 0).then_some(high);
        if let Some(v) = store.get(&seq_key(muni, code, *n))? {
            let text = String::from_utf8_lossy(&v).into_owned();
            if let Some((sha, receipt)) = text.split_once(' ') {
                entry.accepted.insert(*n, (sha.to_string(), receipt.to_string()));
            }
        }
    }
    for (k, _) in scan_for(store, &format!("h/{muni}/"), &lookups.households, |h| household_prefix(muni, h))? {
        let Some((h, date)) = split_key(&k, &format!("h/{muni}/")) else { continue };
        if let Some(date) = date.parse().ok().and_then(Date::from_yyyymmdd) {
            facts.households.entry(h).or_default().insert(date);
        }
    }
    for (k, _) in scan_for(store, &format!("g/{muni}/"), &lookups.households, |h| kogaku_prefix(muni, h))? {
        let Some((h, rest)) = split_key(&k, &format!("g/{muni}/")) else { continue };
        let Some((month, kind)) = rest.split_once('/') else { continue };
        let month = month.parse::<u32>().ok().and_then(|m| Month::new((m / 100) as i32, (m % 100) as u8).ok());
        if let (Some(month), Ok(kind)) = (month, KogakuKind::parse(kind)) {
            facts.kogaku_keys.insert((h, month, kind));
        }
    }
    for (k, _) in scan_for(store, &format!("k/{muni}/"), &lookups.residents, |r| person_prefix(muni, r))? {
        let Some((r, start)) = split_key(&k, &format!("k/{muni}/")) else { continue };
        facts.person_keys.insert((r, Date::from_yyyymmdd(start.parse().unwrap_or(0))));
    }
    Ok(facts)
}

/// Every municipality's submissions so far and when its last one was decided (Unix seconds), by
/// municipality code: the liveness board's first columns (metrics).
pub(crate) fn submissions_by_municipality(store: &dyn Read) -> Result<Vec<(String, u32, i64)>, StoreError> {
    let mut out = Vec::new();
    for (key, value) in store.scan_prefix(b"last/")? {
        let muni = String::from_utf8_lossy(&key[b"last/".len()..]).into_owned();
        let at = <[u8; 8]>::try_from(value.as_slice()).map(i64::from_be_bytes).unwrap_or(0);
        let count = u32_of(store.get(&receipts_key(&muni))?);
        out.push((muni, count, at));
    }
    Ok(out)
}
