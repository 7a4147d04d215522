//! The audit log of access to personal data (security.md S6, S8): who, role, what, which
//! persons (by 都道府県被保険者ID), purpose, when, outcome; and every release of a 個人番号 to
//! relay (R6). Each chain has its own subject of stream `KOKUHO_AUDIT`: `kokuho.audit.<service>`
//! for a service's accesses, `kokuho.audit.identity.releases` for the releases.
//!
//! Tamper evidence, in three layers:
//! - **a hash chain**: every entry carries the hash of the one before it and its own (SHA-256
//!   over its fields), appended with expected-last-subject-sequence so that concurrent writers
//!   cannot fork it: a changed, removed, added or moved entry breaks it;
//! - **a signature**: every entry's hash is signed (Ed25519) with its service's audit key,
//!   which only that service holds — not NATS, not its clients, not the admin. A chain
//!   rewritten through NATS (recomputed hashes, a stream deleted and filled again) cannot be
//!   signed again;
//! - **anchors** outside NATS: the head of every chain (its position and hash), written to a
//!   file the operator keeps at every day close (`kokuho close-day`, `kokuho audit anchor`). A
//!   tail cut off after an anchor is found by `verify` with that file.
//!
//! The entry is stored (fsynced) before the answer leaves: an access that cannot be audited is
//! not answered. A message on a chain's subject that is not an entry (only the service itself
//! or the admin can publish there) is dead-lettered when the service next appends, and the
//! chain goes on from its last entry; `verify` counts such messages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kokuho_bus::event;
use kokuho_bus::{Append, Bus, BusError, BusErrorKind, StreamDef};
use kokuho_proto::audit::v1::audit_event::Event;
use kokuho_proto::audit::v1::{AccessRecorded, AuditEvent, NumberReleased};
use sha2::{Digest, Sha256};

use crate::credentials::Caller;

pub const AUDIT: StreamDef = StreamDef {
    name: "KOKUHO_AUDIT",
    subjects: &["kokuho.audit.>"],
    description: "Access to personal data and number releases (S6, S8): signed hash chains, one subject each",
};

kokuho_bus::stream_events!(
    /// The events of [`AUDIT`].
    Audit,
    "audit",
    AuditEvent,
    Event { AccessRecorded, NumberReleased }
);

/// The chain of `service`'s accesses.
pub fn subject(service: &str) -> String {
    format!("kokuho.audit.{service}")
}

/// identity's chain of number releases (R6).
pub const RELEASES_SUBJECT: &str = "kokuho.audit.identity.releases";

/// The service a chain belongs to: `kokuho.audit.<service>[.<chain>]`.
pub fn service_of(subject: &str) -> Option<&str> {
    subject.strip_prefix("kokuho.audit.")?.split('.').next().filter(|s| !s.is_empty())
}

// ---------------------------------------------------------------------------------------------
// Entries

/// (previous hash, hash, signer, signature) of an entry.
fn link_of(e: &Event) -> (&str, &str, &str, &[u8]) {
    match e {
        Event::AccessRecorded(a) => (&a.previous_hash, &a.hash, &a.signer, &a.signature),
        Event::NumberReleased(r) => (&r.previous_hash, &r.hash, &r.signer, &r.signature),
    }
}

/// The hash an entry's fields and its previous hash give (the signer and signature are not
/// part of it: the signature signs it).
pub fn computed_hash(e: &Event) -> String {
    match e {
        Event::AccessRecorded(a) => {
            let (persons, at) = (a.pref_ids.join(","), a.at.to_string());
            chain_hash([a.previous_hash.as_str(), &a.who, &a.role, &a.action, &persons, &a.purpose, &at, &a.outcome])
        }
        Event::NumberReleased(r) => {
            let at = r.released_at.to_string();
            chain_hash([r.previous_hash.as_str(), &r.pref_id, &r.purpose, &r.caller, &at])
        }
    }
}

/// Links `e` after the entry whose hash is `previous`, and signs it.
fn chain_to(e: &mut Event, previous: String, signer: &Signer) {
    match e {
        Event::AccessRecorded(a) => a.previous_hash = previous,
        Event::NumberReleased(r) => r.previous_hash = previous,
    }
    let hash = computed_hash(e);
    let signature = signer.sign(&hash);
    let signer = signer.public_key().to_string();
    match e {
        Event::AccessRecorded(a) => (a.hash, a.signer, a.signature) = (hash, signer, signature),
        Event::NumberReleased(r) => (r.hash, r.signer, r.signature) = (hash, signer, signature),
    }
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

fn entry_of(bytes: &[u8]) -> Option<Event> {
    event::decode::<Audit>(bytes).ok().map(|(_, e)| e)
}

// ---------------------------------------------------------------------------------------------
// Keys

/// Why an audit key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("audit key {path}: {why}")]
    Unreadable { path: PathBuf, why: String },
}

/// A service's audit signing key (an Ed25519 nkey seed, `<dir>/<service>.nk`).
#[derive(Clone)]
pub struct Signer {
    pair: Arc<nkeys::KeyPair>,
    public: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("public", &self.public).finish_non_exhaustive()
    }
}

fn unreadable(path: &Path, why: impl std::fmt::Display) -> KeyError {
    KeyError::Unreadable { path: path.to_path_buf(), why: why.to_string() }
}

impl Signer {
    /// `service`'s key in `dir`.
    pub fn load(dir: &Path, service: &str) -> Result<Self, KeyError> {
        let path = dir.join(format!("{service}.nk"));
        let seed = std::fs::read_to_string(&path).map_err(|e| unreadable(&path, e))?;
        let pair = nkeys::KeyPair::from_seed(seed.trim()).map_err(|e| unreadable(&path, e))?;
        Ok(Self { public: pair.public_key(), pair: Arc::new(pair) })
    }

    /// A key of its own that no verifier knows: for a process that records nothing (a replay),
    /// whose entries would never verify if it did.
    pub fn throwaway() -> Self {
        let pair = nkeys::KeyPair::new_user();
        Self { public: pair.public_key(), pair: Arc::new(pair) }
    }

    pub fn public_key(&self) -> &str {
        &self.public
    }

    fn sign(&self, hash: &str) -> Vec<u8> {
        // Signing with a seed we loaded cannot fail (nkeys errors only for a public-only key).
        self.pair.sign(hash.as_bytes()).unwrap_or_default()
    }
}

/// Makes the audit key of every service in `services` that `dir` does not hold: the seed
/// `<service>.nk` (mode 0600, for the service alone) and its public key `<service>.pub` (for
/// the verifier). Existing keys are kept.
pub fn ensure_keys(dir: &Path, services: &[&str]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for service in services {
        let seed_path = dir.join(format!("{service}.nk"));
        if seed_path.exists() {
            continue;
        }
        let pair = nkeys::KeyPair::new_server();
        let seed = pair.seed().map_err(std::io::Error::other)?;
        kokuho_crypto::write_private(&seed_path, seed.as_bytes())?;
        std::fs::write(dir.join(format!("{service}.pub")), format!("{}\n", pair.public_key()))?;
    }
    Ok(())
}

/// The public audit keys of every service (`<dir>/<service>.pub`, one key per line: the current
/// one and those it replaced, kept so that older entries still verify).
#[derive(Debug, Clone, Default)]
pub struct AuditKeys {
    by_service: BTreeMap<String, Vec<String>>,
}

impl AuditKeys {
    pub fn load(dir: &Path) -> Result<Self, KeyError> {
        let mut by_service = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(|e| unreadable(dir, e))? {
            let path = entry.map_err(|e| unreadable(dir, e))?.path();
            let Some(service) = path.file_stem().and_then(|s| s.to_str()) else { continue };
            if path.extension().is_some_and(|e| e == "pub") {
                let text = std::fs::read_to_string(&path).map_err(|e| unreadable(&path, e))?;
                let keys = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
                by_service.insert(service.to_string(), keys);
            }
        }
        Ok(Self { by_service })
    }

    /// Is `signature` `service`'s signature of `hash`? Otherwise why not.
    fn check(&self, service: &str, signer: &str, hash: &str, signature: &[u8]) -> Result<(), &'static str> {
        if signer.is_empty() || signature.is_empty() {
            return Err("it is not signed");
        }
        if !self.by_service.get(service).is_some_and(|keys| keys.iter().any(|k| k == signer)) {
            return Err("it is signed with a key that is not its service's audit key");
        }
        let key = nkeys::KeyPair::from_public_key(signer).map_err(|_| "its signer is not a key")?;
        key.verify(hash.as_bytes(), signature).map_err(|_| "its signature does not hold (the entry was rewritten)")
    }
}

// ---------------------------------------------------------------------------------------------
// Appending

/// Appends `entries` to the chain on `subject`, in order, as one atomic batch (one fsync; at
/// most 1,000): each linked to the one before it, the first to the chain's last entry, each
/// signed with `signer`. Returns once they are stored (fsynced).
pub async fn append_chained_all(
    bus: &Bus,
    subject: &str,
    entries: Vec<Event>,
    signer: &Signer,
) -> Result<(), BusError> {
    if entries.is_empty() {
        return Ok(());
    }
    loop {
        let (expected, mut previous) = head(bus, subject).await?;
        let mut batch = Vec::with_capacity(entries.len());
        for entry in &entries {
            let mut entry = entry.clone();
            chain_to(&mut entry, previous, signer);
            previous = link_of(&entry).1.to_string();
            let envelope = event::envelope::<Audit>(entry, "", "", "");
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

/// (the sequence of the subject's last message, the hash of the chain's last entry). When the
/// last message is not an entry, the service reads its own chain back, dead-letters every
/// message after the last entry and goes on from that entry: one foreign message does not stop
/// the service's audited requests (S8, S9).
async fn head(bus: &Bus, subject: &str) -> Result<(u64, String), BusError> {
    let Some((seq, payload)) = bus.last_message(AUDIT.name, subject).await? else {
        return Ok((0, String::new()));
    };
    if let Some(e) = entry_of(&payload) {
        return Ok((seq, link_of(&e).1.to_string()));
    }
    let service = service_of(subject).unwrap_or("unknown");
    let messages = bus.read_subject_as(AUDIT.name, subject, &kokuho_bus::access::audit_reader(service)).await?;
    let mut previous = String::new();
    let mut foreign = Vec::new();
    for (s, bytes) in &messages {
        match entry_of(bytes) {
            Some(e) => {
                previous = link_of(&e).1.to_string();
                foreign.clear();
            }
            None => foreign.push((*s, bytes.clone())),
        }
    }
    for (s, bytes) in foreign {
        tracing::error!(subject, seq = s, "A message on an audit chain is not an audit entry; dead-lettered");
        bus.dead_letter_message(
            &kokuho_bus::access::audit_reader(service),
            AUDIT.name,
            s,
            subject,
            bytes,
            "not an audit entry",
        )
        .await?;
    }
    Ok((seq, previous))
}

// ---------------------------------------------------------------------------------------------
// Verifying

/// The head of a chain at a moment, kept outside NATS: the chain's subject, how many entries it
/// had (the position of its last entry), that entry's log sequence and hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Anchor {
    pub subject: String,
    pub position: u64,
    pub seq: u64,
    pub hash: String,
}

/// What verifying one chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub subject: String,
    pub entries: u64,
    /// Messages on the subject that are not entries (dead-lettered; not part of the chain).
    pub foreign: u64,
    /// The chain's last entry as an anchor (none for an empty chain).
    pub head: Option<Anchor>,
    /// The log sequence of the first entry that breaks the chain (0 when the chain itself is
    /// gone), and why.
    pub broken: Option<(u64, String)>,
}

/// Checks a chain given as (log sequence, entry) in log order: every entry names the hash of
/// the one before it (the first names none), its hash is its own, it is signed by its service's
/// key, and every anchor of the chain is still there, unchanged. Pure: the unit tests and
/// `verify_subject` use it.
pub fn verify_entries(subject: &str, entries: &[(u64, Event)], keys: &AuditKeys, anchors: &[Anchor]) -> ChainReport {
    let service = service_of(subject).unwrap_or("");
    let mut previous = "";
    let mut broken = None;
    for (seq, e) in entries {
        let (prev, hash, signer, signature) = link_of(e);
        let why = if prev != previous {
            Some("it does not name the entry before it (an entry was removed, added or moved)")
        } else if computed_hash(e) != hash {
            Some("its hash is not its own (the entry was changed)")
        } else {
            keys.check(service, signer, hash, signature).err()
        };
        if let Some(why) = why {
            broken = Some((*seq, why.to_string()));
            break;
        }
        previous = hash;
    }
    if broken.is_none() {
        let last = entries.last().map_or(0, |(seq, _)| *seq);
        for a in anchors.iter().filter(|a| a.subject == subject) {
            let why = match entries.iter().find(|(seq, _)| *seq == a.seq) {
                None if a.seq > last => {
                    format!("the entry anchored at log sequence {} is gone: its tail was cut", a.seq)
                }
                None => format!("the entry anchored at log sequence {} is gone", a.seq),
                Some((_, e)) if link_of(e).1 != a.hash => {
                    format!("the entry at log sequence {} is not the one anchored", a.seq)
                }
                Some(_) => continue,
            };
            broken = Some((a.seq, why));
            break;
        }
    }
    let head = entries.last().map(|(seq, e)| Anchor {
        subject: subject.to_string(),
        position: entries.len() as u64,
        seq: *seq,
        hash: link_of(e).1.to_string(),
    });
    ChainReport { subject: subject.to_string(), entries: entries.len() as u64, foreign: 0, head, broken }
}

/// Reads and checks the chain on `subject`.
pub async fn verify_subject(
    bus: &Bus,
    subject: &str,
    keys: &AuditKeys,
    anchors: &[Anchor],
) -> Result<ChainReport, BusError> {
    let messages = bus.read_subject(AUDIT.name, subject).await?;
    let mut entries = Vec::with_capacity(messages.len());
    let mut foreign = 0;
    for (seq, payload) in &messages {
        match entry_of(payload) {
            Some(e) => entries.push((*seq, e)),
            None => foreign += 1,
        }
    }
    Ok(ChainReport { foreign, ..verify_entries(subject, &entries, keys, anchors) })
}

/// The head of every chain now (its last message's sequence and hash; the position counts the
/// subject's messages), to anchor outside NATS. Cheap: one direct get per chain.
pub async fn heads(bus: &Bus) -> Result<Vec<Anchor>, BusError> {
    let mut out = Vec::new();
    for (subject, count) in bus.subject_counts(AUDIT.name, AUDIT.subjects[0]).await? {
        if let Some((seq, payload)) = bus.last_message(AUDIT.name, &subject).await? {
            let hash = entry_of(&payload).map(|e| link_of(&e).1.to_string()).unwrap_or_default();
            out.push(Anchor { subject, position: count, seq, hash });
        }
    }
    Ok(out)
}

/// Every chain of the audit stream (a service that audits needs no entry in a list here), and
/// every anchored chain that is no longer there. A missing audit stream is a broken log, never
/// created again here.
pub async fn verify_all(bus: &Bus, keys: &AuditKeys, anchors: &[Anchor]) -> Result<Vec<ChainReport>, BusError> {
    if let Err(e) = bus.require_stream(&AUDIT).await {
        if e.kind() != BusErrorKind::Config {
            return Err(e);
        }
        return Ok(vec![ChainReport {
            subject: AUDIT.subjects[0].to_string(),
            entries: 0,
            foreign: 0,
            head: None,
            broken: Some((0, format!("the audit stream {} is missing", AUDIT.name))),
        }]);
    }
    let mut out = Vec::new();
    let subjects = bus.subjects(AUDIT.name, AUDIT.subjects[0]).await?;
    for subject in &subjects {
        out.push(verify_subject(bus, subject, keys, anchors).await?);
    }
    let mut gone: Vec<&str> =
        anchors.iter().map(|a| a.subject.as_str()).filter(|s| !subjects.iter().any(|x| x == s)).collect();
    gone.dedup();
    for subject in gone {
        out.push(verify_entries(subject, &[], keys, anchors));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Writing access entries

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
    signer: Signer,
}

impl Auditor {
    pub async fn new(bus: Bus, service: &str, signer: Option<Signer>) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let signer = signer.with_context(|| {
            format!("no audit signing key for {service}: give --audit-signing-keys (a directory with {service}.nk)")
        })?;
        bus.require_stream(&AUDIT).await?;
        Ok(Self { bus, subject: subject(service), signer })
    }

    /// The same writer on chain `subject` (`kokuho.audit.<service>.<…>`, signed with the same
    /// key): a shard's own chain, since a chain has one writer.
    pub fn on_chain(mut self, subject: String) -> Self {
        self.subject = subject;
        self
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
        let (who, role) = (caller.who(), caller.role());
        let entry = AccessRecorded {
            who,
            role: role.into(),
            action: action.into(),
            pref_ids,
            purpose: purpose.into(),
            at: now_secs(),
            outcome: outcome.label().into(),
            ..Default::default()
        };
        append_chained_all(&self.bus, &self.subject, vec![Event::AccessRecorded(entry)], &self.signer).await
    }

    /// Appends number releases to identity's release chain (R6), one atomic batch.
    pub async fn releases(&self, entries: Vec<NumberReleased>) -> Result<(), BusError> {
        let entries = entries.into_iter().map(Event::NumberReleased).collect();
        append_chained_all(&self.bus, RELEASES_SUBJECT, entries, &self.signer).await
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

/// Unix seconds now (an audit fact, not a business date).
pub fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn unaudited(e: BusError) -> tonic::Status {
    tracing::error!(error = %e, "Cannot write the audit log; the request is not answered");
    tonic::Status::unavailable("the audit log cannot be written; try again")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBJECT: &str = "kokuho.audit.intake";

    fn keys() -> (Signer, AuditKeys, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        ensure_keys(dir.path(), &["intake", "identity"]).unwrap();
        (Signer::load(dir.path(), "intake").unwrap(), AuditKeys::load(dir.path()).unwrap(), dir)
    }

    fn entry(i: usize) -> Event {
        Event::AccessRecorded(AccessRecorded {
            who: "131016".into(),
            role: "municipality".into(),
            action: "identity.LookupIds".into(),
            pref_ids: vec![format!("13000000000{i:03}")],
            purpose: format!("131016 10000{i}"),
            at: 1_790_000_000 + i as i64,
            outcome: "allowed".into(),
            ..Default::default()
        })
    }

    fn chain(n: usize, signer: &Signer) -> Vec<(u64, Event)> {
        let mut out: Vec<(u64, Event)> = Vec::new();
        for i in 0..n {
            let mut e = entry(i);
            let previous = out.last().map(|(_, p)| link_of(p).1.to_string()).unwrap_or_default();
            chain_to(&mut e, previous, signer);
            out.push((10 + i as u64, e));
        }
        out
    }

    fn broken_at(c: &[(u64, Event)], keys: &AuditKeys, anchors: &[Anchor]) -> Option<u64> {
        verify_entries(SUBJECT, c, keys, anchors).broken.map(|b| b.0)
    }

    fn outcome_of(e: &mut Event) -> &mut String {
        match e {
            Event::AccessRecorded(a) => &mut a.outcome,
            Event::NumberReleased(r) => &mut r.purpose,
        }
    }

    #[test]
    fn s8_an_intact_signed_chain_verifies_with_its_anchors() {
        let (signer, keys, _dir) = keys();
        let c = chain(5, &signer);
        let head = verify_entries(SUBJECT, &c, &keys, &[]).head.unwrap();
        assert_eq!((head.position, head.seq), (5, 14));
        assert_eq!(broken_at(&c, &keys, std::slice::from_ref(&head)), None);
        assert_eq!(broken_at(&[], &keys, &[]), None);
    }

    #[test]
    fn s8_a_changed_entry_is_found_even_with_its_hash_recomputed() {
        let (signer, keys, _dir) = keys();
        let mut c = chain(5, &signer);
        *outcome_of(&mut c[2].1) = "refused".into();
        assert_eq!(broken_at(&c, &keys, &[]), Some(12));
        // Its hash recomputed (and the rest of the chain after it): no signature holds.
        let mut previous = link_of(&c[1].1).1.to_string();
        for (_, e) in c.iter_mut().skip(2) {
            let hash = {
                match e {
                    Event::AccessRecorded(a) => a.previous_hash = previous.clone(),
                    Event::NumberReleased(r) => r.previous_hash = previous.clone(),
                }
                computed_hash(e)
            };
            if let Event::AccessRecorded(a) = e {
                a.hash = hash.clone();
            }
            previous = hash;
        }
        let report = verify_entries(SUBJECT, &c, &keys, &[]);
        assert_eq!(report.broken.as_ref().map(|b| b.0), Some(12));
        assert!(report.broken.unwrap().1.contains("signature"));
    }

    #[test]
    fn s8_a_chain_signed_with_another_key_is_refused() {
        let (_, keys, _dir) = keys();
        let other = tempfile::tempdir().unwrap();
        ensure_keys(other.path(), &["intake"]).unwrap();
        let forger = Signer::load(other.path(), "intake").unwrap();
        let c = chain(3, &forger);
        assert!(verify_entries(SUBJECT, &c, &keys, &[]).broken.unwrap().1.contains("not its service's"));
        // identity's key does not sign intake's chain either.
        let (_, _, dir) = (0, 0, tempfile::tempdir().unwrap());
        ensure_keys(dir.path(), &["identity"]).unwrap();
        let mut unsigned = chain(1, &Signer::load(dir.path(), "identity").unwrap());
        if let Event::AccessRecorded(a) = &mut unsigned[0].1 {
            a.signature.clear();
        }
        assert!(verify_entries(SUBJECT, &unsigned, &keys, &[]).broken.unwrap().1.contains("not signed"));
    }

    #[test]
    fn s8_a_removed_added_or_moved_entry_is_found() {
        let (signer, keys, _dir) = keys();
        let mut removed = chain(5, &signer);
        removed.remove(1);
        assert_eq!(broken_at(&removed, &keys, &[]), Some(12));
        let mut moved = chain(5, &signer);
        moved.swap(1, 3);
        assert_eq!(broken_at(&moved, &keys, &[]), Some(13));
        let mut first_removed = chain(3, &signer);
        first_removed.remove(0);
        assert_eq!(broken_at(&first_removed, &keys, &[]), Some(11));
    }

    #[test]
    fn s8_a_cut_tail_is_found_by_its_anchor() {
        let (signer, keys, _dir) = keys();
        let c = chain(5, &signer);
        let anchor = verify_entries(SUBJECT, &c, &keys, &[]).head.unwrap();
        let cut = &c[..3];
        assert_eq!(broken_at(cut, &keys, &[]), None, "a cut chain is still a chain");
        let report = verify_entries(SUBJECT, cut, &keys, std::slice::from_ref(&anchor));
        assert!(report.broken.unwrap().1.contains("tail was cut"));
        // A chain cut and grown again to the same length: the anchored entry is another one.
        let mut regrown = c[..4].to_vec();
        let mut e = entry(9);
        chain_to(&mut e, link_of(&regrown[3].1).1.to_string(), &signer);
        regrown.push((14, e));
        assert_eq!(broken_at(&regrown, &keys, std::slice::from_ref(&anchor)), Some(14));
        // Anchors of other chains do not apply.
        let other = Anchor { subject: "kokuho.audit.kogaku".into(), ..anchor };
        assert_eq!(broken_at(cut, &keys, &[other]), None);
    }

    #[test]
    fn service_of_a_chain() {
        assert_eq!(service_of("kokuho.audit.intake"), Some("intake"));
        assert_eq!(service_of(RELEASES_SUBJECT), Some("identity"));
        assert_eq!(service_of("kokuho.other"), None);
    }
}
