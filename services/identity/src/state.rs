//! identity's projection of its own stream.
//!
//! Keys (one sled tree per current key, `identity-state-<key id>`):
//! - `cursor` → the last intake sequence decided (u64 BE)
//! - `n/<hmac hex>` → 都道府県被保険者ID (the keyed-hash index, S2; never a plain number)
//! - `p/<pref id>` → the person (`PersonRegistered`)
//! - `sn/<pref id>` → the person's number (`PersonNumber`: sealed at rest, with its keyed hash)
//! - `ph/<pref id>/<muni>` → present while the municipality holds records of the person
//! - `r/<muni>/<宛名番号>` → 都道府県被保険者ID (I2); `pr/<pref id>/<muni>/<宛名番号>` the reverse
//! - `alias/<pref id>` → the survivor a provisional person was merged into (I5)
//! - `m/<muni>/<pref id>` → 市区町村被保険者ID
//! - `c/persons`, `c/m/<muni>` → counters (u64 BE) for the next serials
//! - `q/<case id>` → a held record (`LinkHeld`): the review queue (I6); `qn/<case id>` its
//!   number (`CaseNumber`, sealed for the case)
//!
//! The numbers come from `NumbersKept` on identity's private subject, applied just before the
//! event they belong to.

use std::sync::Arc;

use kokuho_bus::event;
use kokuho_crypto::Vault;
use kokuho_proto::identity::v1 as pb;
pub(crate) use kokuho_store::u64_of;
use kokuho_store::{ApplyError, LogEvent, Projection, Read, StoreError, Tx};
use prost::Message;

use crate::{Event, Events, IDENTITY, convert};

pub(crate) struct IdentityState {
    pub(crate) vault: Arc<Vault>,
}

pub(crate) const CURSOR: &[u8] = b"cursor";
pub(crate) const PERSONS: &[u8] = b"c/persons";

pub(crate) fn index_key(hmac: &[u8; 32]) -> Vec<u8> {
    let mut k = b"n/".to_vec();
    k.extend_from_slice(hex(hmac).as_bytes());
    k
}
pub(crate) fn person_key(pref: &str) -> Vec<u8> {
    format!("p/{pref}").into_bytes()
}
pub(crate) fn holder_prefix(pref: &str) -> String {
    format!("ph/{pref}/")
}
/// `pr/<pref id>/<muni>/<宛名番号>`: the residents linked to a person (for merges).
pub(crate) fn residents_prefix(pref: &str) -> String {
    format!("pr/{pref}/")
}
pub(crate) fn resident_key(muni: &str, resident: &str) -> Vec<u8> {
    format!("r/{muni}/{resident}").into_bytes()
}
pub(crate) fn muni_id_key(muni: &str, pref: &str) -> Vec<u8> {
    format!("m/{muni}/{pref}").into_bytes()
}
pub(crate) fn muni_count_key(muni: &str) -> Vec<u8> {
    format!("c/m/{muni}").into_bytes()
}
pub(crate) fn case_key(case: &str) -> Vec<u8> {
    format!("q/{case}").into_bytes()
}
fn number_key(pref: &str) -> Vec<u8> {
    format!("sn/{pref}").into_bytes()
}
fn case_number_key(case: &str) -> Vec<u8> {
    format!("qn/{case}").into_bytes()
}

fn decoded<M: Message + Default>(bytes: Option<Vec<u8>>) -> Result<Option<M>, ApplyError> {
    bytes.map(|b| M::decode(b.as_slice()).map_err(|e| ApplyError::Malformed(e.to_string()))).transpose()
}

/// The number kept for a person (none for a provisional person, I5).
pub(crate) fn number_of(store: &dyn Read, pref: &str) -> Result<Option<pb::PersonNumber>, ApplyError> {
    decoded(store.get(&number_key(pref))?)
}

/// The number of a held record, sealed for its case.
pub(crate) fn case_number(store: &dyn Read, case: &str) -> Result<Option<pb::SealedNumber>, ApplyError> {
    Ok(decoded::<pb::CaseNumber>(store.get(&case_number_key(case))?)?.and_then(|c| c.number))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn transient(e: impl std::fmt::Display) -> ApplyError {
    ApplyError::Transient(e.to_string())
}

impl IdentityState {
    /// Keeps a person's number and indexes it under identity's current key.
    fn keep(&self, tx: &mut Tx<'_>, kept: &pb::PersonNumber) -> Result<(), ApplyError> {
        let hash = convert::index_of(&self.vault, kept).map_err(transient)?;
        tx.put(index_key(&hash), kept.pref_id.as_bytes().to_vec());
        tx.put(number_key(&kept.pref_id), kept.encode_to_vec());
        Ok(())
    }

    fn person(tx: &Tx<'_>, pref: &str) -> Result<Option<pb::PersonRegistered>, ApplyError> {
        decoded(tx.get(&person_key(pref))?)
    }
}

impl Projection for IdentityState {
    const NAME: &'static str = "state";
    const VERSION: u32 = 1;
    const STREAM: &'static str = IDENTITY.name;

    fn apply(&self, tx: &mut Tx<'_>, ev: &LogEvent<'_>) -> Result<(), ApplyError> {
        let (_, event) = event::decode::<Events>(ev.payload).map_err(ApplyError::Malformed)?;
        match event {
            Event::ChunkLinked(chunk) => {
                let muni = chunk.municipality.as_str();
                Self::persons(tx, &chunk.persons)?;
                for a in &chunk.attached {
                    if let Some(mut p) = Self::person(tx, &a.pref_id)? {
                        p.has_number = true;
                        tx.put(person_key(&a.pref_id), p.encode_to_vec());
                    }
                }
                for c in &chunk.corrected {
                    if let Some(mut p) = Self::person(tx, &c.pref_id)? {
                        p.birth_date = c.birth_date;
                        p.sex = c.sex.clone();
                        tx.put(person_key(&c.pref_id), p.encode_to_vec());
                    }
                }
                for m in &chunk.merged {
                    Self::merge(tx, m)?;
                }
                Self::ids_and_links(tx, muni, &chunk.ids, &chunk.links)?;
                for h in &chunk.held {
                    tx.put(case_key(&h.case_id), h.encode_to_vec());
                }
                tx.put(CURSOR.to_vec(), chunk.intake_sequence.to_be_bytes().to_vec());
            }
            Event::CaseResolved(r) => {
                Self::persons(tx, &r.persons)?;
                Self::ids_and_links(tx, &r.municipality, &r.ids, &r.links)?;
                tx.delete(case_key(&r.case_id));
                tx.delete(case_number_key(&r.case_id));
            }
            Event::NumbersKept(k) => {
                for p in &k.persons {
                    self.keep(tx, p)?;
                }
                for c in &k.cases {
                    tx.put(case_number_key(&c.case_id), c.encode_to_vec());
                }
            }
            Event::BusinessDay(d) => tx.put(CURSOR.to_vec(), d.intake_sequence.to_be_bytes().to_vec()),
        }
        Ok(())
    }
}

impl IdentityState {
    fn persons(tx: &mut Tx<'_>, persons: &[pb::PersonRegistered]) -> Result<(), ApplyError> {
        for p in persons {
            tx.put(person_key(&p.pref_id), p.encode_to_vec());
            let count = u64_of(tx.get(PERSONS)?) + 1;
            tx.put(PERSONS.to_vec(), count.to_be_bytes().to_vec());
        }
        Ok(())
    }

    /// I5: every link of `from` resolves to `into` from now on.
    fn merge(tx: &mut Tx<'_>, m: &pb::PersonMerged) -> Result<(), ApplyError> {
        tx.put(format!("alias/{}", m.from).into_bytes(), m.into.as_bytes().to_vec());
        let prefix = residents_prefix(&m.from);
        for (key, _) in tx.scan_prefix(prefix.as_bytes())? {
            let tail = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            let Some((muni, resident)) = tail.split_once('/') else { continue };
            tx.put(resident_key(muni, resident), m.into.as_bytes().to_vec());
            tx.put(format!("{}{muni}/{resident}", residents_prefix(&m.into)).into_bytes(), Vec::new());
            tx.put(format!("{}{muni}", holder_prefix(&m.into)).into_bytes(), Vec::new());
            tx.delete(muni_id_key(muni, &m.from));
            tx.delete(key);
        }
        for (key, _) in tx.scan_prefix(holder_prefix(&m.from).as_bytes())? {
            tx.delete(key);
        }
        for a in &m.adopted {
            tx.put(muni_id_key(&a.municipality, &m.into), a.muni_id.as_bytes().to_vec());
        }
        tx.delete(person_key(&m.from));
        Ok(())
    }

    fn ids_and_links(
        tx: &mut Tx<'_>,
        muni: &str,
        ids: &[pb::MunicipalIdAssigned],
        links: &[pb::RecordLinked],
    ) -> Result<(), ApplyError> {
        for id in ids {
            tx.put(muni_id_key(&id.municipality, &id.pref_id), id.muni_id.as_bytes().to_vec());
            let count = u64_of(tx.get(&muni_count_key(&id.municipality))?) + 1;
            tx.put(muni_count_key(&id.municipality), count.to_be_bytes().to_vec());
        }
        for l in links {
            let Some(r) = &l.record else { continue };
            tx.put(resident_key(muni, &r.resident_number), l.pref_id.as_bytes().to_vec());
            tx.put(format!("{}{muni}", holder_prefix(&l.pref_id)).into_bytes(), Vec::new());
            tx.put(format!("{}{muni}/{}", residents_prefix(&l.pref_id), r.resident_number).into_bytes(), Vec::new());
            // The person carries the name last linked (a marriage is reported once, W002).
            if !convert::is_delete(r)
                && let Some(mut p) = Self::person(tx, &l.pref_id)?
                && (p.name != r.name || p.kana != r.kana)
            {
                p.name = r.name.clone();
                p.kana = r.kana.clone();
                tx.put(person_key(&l.pref_id), p.encode_to_vec());
            }
        }
        Ok(())
    }
}

// === reads ===

/// A held record on the review queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub case_id: String,
    pub code: String,
    pub pref_id: String,
    pub municipality: String,
    pub resident_number: String,
    pub line: u32,
}

/// Every held record (I6's queue), oldest first.
pub fn held_cases(state: &kokuho_store::ProjectionHandle) -> Result<Vec<Held>, StoreError> {
    state
        .store()
        .scan_prefix(b"q/")?
        .into_iter()
        .map(|(_, v)| {
            let h = pb::LinkHeld::decode(v.as_slice()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let r = h.record.unwrap_or_default();
            Ok(Held {
                municipality: kokuho_ids::receipt_municipality(&h.case_id).to_string(),
                case_id: h.case_id,
                code: h.code,
                pref_id: h.pref_id,
                resident_number: r.resident_number,
                line: h.line,
            })
        })
        .collect()
}

/// The IDs of (municipality, 宛名番号).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkView {
    pub pref_id: String,
    pub muni_id: Option<String>,
}

pub fn link_of(
    state: &kokuho_store::ProjectionHandle,
    municipality: &str,
    resident: &str,
) -> Result<Option<LinkView>, StoreError> {
    let store = state.store();
    let Some(pref) = store.get(&resident_key(municipality, resident))? else { return Ok(None) };
    let pref_id = String::from_utf8_lossy(&pref).into_owned();
    let muni_id = store.get(&muni_id_key(municipality, &pref_id))?.map(|b| String::from_utf8_lossy(&b).into_owned());
    Ok(Some(LinkView { pref_id, muni_id }))
}
