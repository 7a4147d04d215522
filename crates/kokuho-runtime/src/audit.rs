//! The audit log of access to personal data (security.md S6, S8): who, role, what, which
//! persons (by 都道府県被保険者ID), purpose, when, outcome. Each service appends to its own
//! subject of stream `KOKUHO_AUDIT` (`kokuho.audit.<service>`), every entry carrying the hash
//! of the one before it, with expected-last-subject-sequence so that concurrent writers cannot
//! fork the chain. The entry is stored (fsynced) before the answer leaves: an access that
//! cannot be audited is not answered. `verify_chain` finds a changed, removed, added or moved
//! entry.

use kokuho_bus::event::{self, StreamEvents};
use kokuho_bus::{Append, Bus, BusError, BusErrorKind, StreamDef};
use kokuho_proto::audit::v1::audit_event::Event;
use kokuho_proto::audit::v1::{AccessRecorded, AuditEvent};
use sha2::{Digest, Sha256};

use crate::credentials::Caller;

pub const AUDIT: StreamDef = StreamDef {
    name: "KOKUHO_AUDIT",
    subjects: &["kokuho.audit.>"],
    description: "Access to personal data (S6, S8): hash-chained, one subject per service",
};

kokuho_bus::stream_events!(
    /// The events of [`AUDIT`].
    Audit,
    "audit",
    AuditEvent,
    Event { AccessRecorded }
);

pub fn subject(service: &str) -> String {
    format!("kokuho.audit.{service}")
}

/// One link of a hash chain.
pub trait Chained: Sized {
    fn previous_hash(&self) -> &str;
    fn hash(&self) -> &str;
    /// The hash the entry's fields and its `previous_hash` give.
    fn computed_hash(&self) -> String;
    /// Links the entry after the one whose hash is `previous`: sets both hashes.
    fn chain_to(&mut self, previous: String);
    /// The events of the stream its chain lives in.
    type Events: StreamEvents;
    /// The entry an event of its chain carries.
    fn of(event: <Self::Events as StreamEvents>::Event) -> Option<Self>;
    fn into_event(self) -> <Self::Events as StreamEvents>::Event;
}

/// The entry a stored message of `E`'s chain carries, if it is one.
fn entry_of<E: Chained>(bytes: &[u8]) -> Option<E> {
    event::decode::<E::Events>(bytes).ok().and_then(|(_, e)| E::of(e))
}

/// Appends `entry` to the chain on `subject` of `stream`, after the last entry there, with
/// expected-last-subject-sequence (decided again when another writer came first). Returns once
/// the entry is stored (fsynced).
pub async fn append_chained<E: Chained + Clone>(
    bus: &Bus,
    stream: &str,
    subject: &str,
    entry: E,
) -> Result<(), BusError> {
    append_chained_all(bus, stream, subject, vec![entry]).await
}

/// Appends `entries` to the chain, in order, as one atomic batch (one fsync; at most 1,000):
/// each linked to the one before it, the first to the last entry there.
pub async fn append_chained_all<E: Chained + Clone>(
    bus: &Bus,
    stream: &str,
    subject: &str,
    entries: Vec<E>,
) -> Result<(), BusError> {
    if entries.is_empty() {
        return Ok(());
    }
    loop {
        let (expected, mut previous) = match bus.last_message(stream, subject).await? {
            Some((seq, payload)) => match entry_of::<E>(&payload) {
                Some(last) => (seq, last.hash().to_string()),
                None => return Err(BusError::msg(BusErrorKind::Invalid, "the last audit entry is not an audit entry")),
            },
            None => (0, String::new()),
        };
        let mut batch = Vec::with_capacity(entries.len());
        for entry in &entries {
            let mut entry = entry.clone();
            entry.chain_to(previous);
            previous = entry.hash().to_string();
            let envelope = event::envelope::<E::Events>(entry.into_event(), "", "", "");
            batch.push(Append::event(subject, &envelope));
        }
        batch[0].expected_last_subject_seq = Some(expected);
        let appended =
            if batch.len() == 1 { bus.append(batch.remove(0)).await } else { bus.append_atomic(batch).await };
        match appended {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == BusErrorKind::WrongLastSequence => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Where a chain breaks: the first entry that does not hold (its index), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub index: usize,
    pub reason: &'static str,
}

/// Checks a chain in log order: every entry names the hash of the one before it (the first
/// names none), and its own hash is the one its fields give.
pub fn verify_chain<E: Chained>(entries: &[E]) -> Result<(), ChainBreak> {
    let mut previous = "";
    for (index, e) in entries.iter().enumerate() {
        if e.previous_hash() != previous {
            return Err(ChainBreak {
                index,
                reason: "it does not name the entry before it (an entry was removed, added or moved)",
            });
        }
        if e.computed_hash() != e.hash() {
            return Err(ChainBreak { index, reason: "its hash is not its own (the entry was changed)" });
        }
        previous = e.hash();
    }
    Ok(())
}

/// SHA-256 over `parts`, each followed by a NUL, as lowercase hex.
pub fn chain_hash<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

impl Chained for AccessRecorded {
    fn previous_hash(&self) -> &str {
        &self.previous_hash
    }

    fn hash(&self) -> &str {
        &self.hash
    }

    fn computed_hash(&self) -> String {
        let (persons, at) = (self.pref_ids.join(","), self.at.to_string());
        chain_hash([
            self.previous_hash.as_str(),
            &self.who,
            &self.role,
            &self.action,
            &persons,
            &self.purpose,
            &at,
            &self.outcome,
        ])
    }

    fn chain_to(&mut self, previous: String) {
        self.previous_hash = previous;
        self.hash = self.computed_hash();
    }

    type Events = Audit;

    fn of(event: Event) -> Option<Self> {
        match event {
            Event::AccessRecorded(e) => Some(e),
        }
    }

    fn into_event(self) -> Event {
        Event::AccessRecorded(self)
    }
}

/// How an access ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    NotFound,
    Refused,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::NotFound => "not found",
            Outcome::Refused => "refused",
        }
    }
}

/// A service's writer of audit entries.
#[derive(Clone)]
pub struct Auditor {
    bus: Bus,
    subject: String,
}

impl Auditor {
    pub async fn new(bus: Bus, service: &str) -> Result<Self, BusError> {
        bus.ensure_stream(&AUDIT).await?;
        Ok(Self { bus, subject: subject(service) })
    }

    /// Appends one entry, chained to the last on the service's subject, and returns once it is
    /// stored.
    pub async fn record(
        &self,
        caller: &Caller,
        action: &str,
        pref_ids: Vec<String>,
        purpose: &str,
        outcome: Outcome,
    ) -> Result<(), BusError> {
        let (who, role) = match caller {
            Caller::Municipality(code) => (code.clone(), "municipality"),
            Caller::Operator => ("operator".to_string(), "operator"),
            Caller::Relay => ("relay".to_string(), "relay"),
        };
        let at =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let entry = AccessRecorded {
            who,
            role: role.into(),
            action: action.into(),
            pref_ids,
            purpose: purpose.into(),
            at,
            outcome: outcome.label().into(),
            previous_hash: String::new(),
            hash: String::new(),
        };
        append_chained(&self.bus, AUDIT.name, &self.subject, entry).await
    }

    /// Checks `allowed` (security.md S5); a refusal is audited, logged and answered
    /// PermissionDenied.
    pub async fn require(
        &self,
        caller: &Caller,
        allowed: bool,
        action: &str,
        purpose: &str,
    ) -> Result<(), tonic::Status> {
        if allowed {
            return Ok(());
        }
        self.record(caller, action, Vec::new(), purpose, Outcome::Refused).await.map_err(unaudited)?;
        caller.require(false, action)
    }

    /// Records an allowed access: `Status::unavailable` if it cannot be recorded (an access that
    /// cannot be audited is not answered).
    pub async fn allowed(
        &self,
        caller: &Caller,
        action: &str,
        pref_ids: Vec<String>,
        purpose: &str,
    ) -> Result<(), tonic::Status> {
        self.record(caller, action, pref_ids, purpose, Outcome::Allowed).await.map_err(unaudited)
    }

    /// Records a lookup that was answered: allowed when it found persons, not found otherwise.
    pub async fn answered(
        &self,
        caller: &Caller,
        action: &str,
        pref_ids: Vec<String>,
        purpose: &str,
    ) -> Result<(), tonic::Status> {
        let outcome = if pref_ids.is_empty() { Outcome::NotFound } else { Outcome::Allowed };
        self.record(caller, action, pref_ids, purpose, outcome).await.map_err(unaudited)
    }
}

fn unaudited(e: BusError) -> tonic::Status {
    tracing::error!(error = %e, "Cannot write the audit log; the request is not answered");
    tonic::Status::unavailable("the audit log cannot be written; try again")
}

/// What `verify_all` found in one service's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub subject: String,
    pub entries: u64,
    /// The log sequence of the first entry that breaks the chain, and why.
    pub broken: Option<(u64, String)>,
}

/// Reads and checks the chain of `E` entries on `subject` of `stream` (any other event there
/// breaks it).
pub async fn verify_subject<E: Chained>(bus: &Bus, stream: &str, subject: &str) -> Result<ChainReport, BusError> {
    let messages = bus.read_subject(stream, subject).await?;
    let mut entries = Vec::with_capacity(messages.len());
    for (seq, payload) in &messages {
        match entry_of::<E>(payload) {
            Some(e) => entries.push(e),
            None => {
                return Ok(ChainReport {
                    subject: subject.into(),
                    entries: entries.len() as u64,
                    broken: Some((*seq, "not an audit entry".into())),
                });
            }
        }
    }
    let broken = verify_chain(&entries).err().map(|b| (messages[b.index].0, b.reason.to_string()));
    Ok(ChainReport { subject: subject.into(), entries: entries.len() as u64, broken })
}

/// Every service's chain: every subject of the audit stream (a service that audits needs no
/// entry in a list here).
pub async fn verify_all(bus: &Bus) -> Result<Vec<ChainReport>, BusError> {
    bus.ensure_stream(&AUDIT).await?;
    let mut out = Vec::new();
    for subject in bus.subjects(AUDIT.name, AUDIT.subjects[0]).await? {
        out.push(verify_subject::<AccessRecorded>(bus, AUDIT.name, &subject).await?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<AccessRecorded> {
        let mut out: Vec<AccessRecorded> = Vec::new();
        for i in 0..n {
            let mut e = AccessRecorded {
                who: "131016".into(),
                role: "municipality".into(),
                action: "identity.LookupIds".into(),
                pref_ids: vec![format!("13000000000{i:03}")],
                purpose: format!("131016 10000{i}"),
                at: 1_790_000_000 + i as i64,
                outcome: "allowed".into(),
                previous_hash: String::new(),
                hash: String::new(),
            };
            e.chain_to(out.last().map(|p| p.hash.clone()).unwrap_or_default());
            out.push(e);
        }
        out
    }

    #[test]
    fn s8_an_intact_chain_verifies() {
        assert_eq!(verify_chain(&chain(5)), Ok(()));
        assert_eq!(verify_chain::<AccessRecorded>(&[]), Ok(()));
    }

    #[test]
    fn s8_a_changed_entry_is_found() {
        let mut c = chain(5);
        c[2].outcome = "refused".into();
        assert_eq!(verify_chain(&c).unwrap_err().index, 2);
        // Its hash recomputed to hide the change: the next entry no longer names it.
        c[2].hash = c[2].computed_hash();
        assert_eq!(verify_chain(&c).unwrap_err().index, 3);
    }

    #[test]
    fn s8_a_removed_added_or_moved_entry_is_found() {
        let mut removed = chain(5);
        removed.remove(1);
        assert_eq!(verify_chain(&removed).unwrap_err().index, 1);
        let mut moved = chain(5);
        moved.swap(1, 3);
        assert_eq!(verify_chain(&moved).unwrap_err().index, 1);
        let mut first_removed = chain(3);
        first_removed.remove(0);
        assert_eq!(verify_chain(&first_removed).unwrap_err().index, 0);
        let mut added = chain(3);
        added.insert(2, chain(1).remove(0));
        assert_eq!(verify_chain(&added).unwrap_err().index, 2);
    }
}
