//! continuity's projection of its own stream.
//!
//! Keys: `cursor` → the last identity sequence evaluated; `day` → business date (u32 BE);
//! `p/<pref id>` → `PersonState`; `w/<pref id>` → present while the person is watched;
//! `r/<muni>/<宛名番号>` → the person (queries); `a/<muni>/<宛名番号>` → the person, while it
//! has an anomaly open that was sent to that municipality (its work list, `ListAnomalies`).

use kokuho_bus::event;
use kokuho_continuity_contract::pb;
use kokuho_continuity_domain::PersonState;
use kokuho_store::{ApplyError, LogEvent, Projection, ProjectionHandle, Read, StoreError, Tx};
pub(crate) use kokuho_store::{u32_of, u64_of};
use prost::Message as _;

use crate::{CONTINUITY, Event, Events};

pub(crate) struct ContinuityState;

pub(crate) const CURSOR: &[u8] = b"cursor";
pub(crate) const DAY: &[u8] = b"day";

pub(crate) fn person_key(pref: &str) -> Vec<u8> {
    format!("p/{pref}").into_bytes()
}
/// `r/<muni>/<宛名番号>` → 都道府県被保険者ID, for queries.
pub(crate) fn resident_key(muni: &str, resident: &str) -> Vec<u8> {
    format!("r/{muni}/{resident}").into_bytes()
}
/// `a/<muni>/` + 宛名番号 → 都道府県被保険者ID: the municipality's residents with open anomalies.
pub(crate) fn anomalies_prefix(muni: &str) -> Vec<u8> {
    format!("a/{muni}/").into_bytes()
}
fn anomaly_key(muni: &str, resident: &str) -> Vec<u8> {
    [anomalies_prefix(muni), resident.as_bytes().to_vec()].concat()
}
/// The anomaly index entries of the stored person `pref` (before this event changes it).
fn indexed(tx: &Tx<'_>, pref: &str) -> Result<Vec<Vec<u8>>, ApplyError> {
    let Some(bytes) = tx.get(&person_key(pref))? else { return Ok(Vec::new()) };
    let old = pb::PersonState::decode(bytes.as_slice()).map_err(|e| ApplyError::Malformed(e.to_string()))?;
    Ok(old.open.iter().map(|a| anomaly_key(&a.municipality, &a.resident_number)).collect())
}
pub(crate) const WATCH_PREFIX: &str = "w/";
fn watch_key(pref: &str) -> Vec<u8> {
    format!("{WATCH_PREFIX}{pref}").into_bytes()
}

impl Projection for ContinuityState {
    const NAME: &'static str = "state";
    // 2: periods keep the RS row last sent by name, and the record that reported them.
    // 3: the index of open anomalies per municipality (`a/`).
    const VERSION: u32 = 3;
    const STREAM: &'static str = CONTINUITY.name;

    fn apply(&self, tx: &mut Tx<'_>, ev: &LogEvent<'_>) -> Result<(), ApplyError> {
        let (_, event) = event::decode::<Events>(ev.payload).map_err(ApplyError::Malformed)?;
        let Event::PersonsEvaluated(e) = event;
        // The open-anomaly index: every entry of the persons as they were goes, then those of
        // the persons as they are now come (a merged-away person's resident may be the
        // survivor's, in this same event).
        // An entry is removed only by the person it names (a resident relinked to another
        // person in an earlier event is that person's now).
        let mut stale = Vec::new();
        for pref in e.persons.iter().map(|p| &p.pref_id).chain(&e.merged_away) {
            for key in indexed(tx, pref)? {
                if tx.get(&key)?.as_deref() == Some(pref.as_bytes()) {
                    stale.push(key);
                }
            }
        }
        for key in stale {
            tx.delete(key);
        }
        for p in &e.persons {
            for a in &p.open {
                tx.put(anomaly_key(&a.municipality, &a.resident_number), p.pref_id.as_bytes().to_vec());
            }
        }
        for p in &e.persons {
            tx.put(person_key(&p.pref_id), p.encode_to_vec());
            for period in &p.periods {
                tx.put(resident_key(&period.municipality, &period.resident_number), p.pref_id.as_bytes().to_vec());
            }
            if p.watch { tx.put(watch_key(&p.pref_id), Vec::new()) } else { tx.delete(watch_key(&p.pref_id)) }
        }
        for gone in &e.merged_away {
            tx.delete(person_key(gone));
            tx.delete(watch_key(gone));
        }
        tx.put(DAY.to_vec(), e.business_date.to_be_bytes().to_vec());
        tx.put(CURSOR.to_vec(), e.identity_sequence.to_be_bytes().to_vec());
        Ok(())
    }
}

/// The last identity sequence evaluated and committed (progress of continuity, for operators).
pub fn evaluated_up_to(state: &ProjectionHandle) -> Result<u64, StoreError> {
    Ok(u64_of(state.store().get(CURSOR)?))
}

/// The state of the person (municipality, 宛名番号) belongs to.
pub fn person_of_resident(
    state: &ProjectionHandle,
    municipality: &str,
    resident: &str,
) -> Result<Option<PersonState>, StoreError> {
    match state.store().get(&resident_key(municipality, resident))? {
        Some(pref) => person_state(state, &String::from_utf8_lossy(&pref)),
        None => Ok(None),
    }
}

/// A person's state (periods with what was sent, open anomalies), for queries and tests.
pub fn person_state(state: &ProjectionHandle, pref_id: &str) -> Result<Option<PersonState>, StoreError> {
    load(state.store(), pref_id).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A stored person as the domain knows them. A stored state that cannot be read (an unknown
/// code) is an error with its reason, never a default.
pub(crate) fn load(store: &dyn Read, pref_id: &str) -> Result<Option<PersonState>, ApplyError> {
    store
        .get(&person_key(pref_id))?
        .map(|b| {
            let stored = pb::PersonState::decode(b.as_slice()).map_err(|e| ApplyError::Malformed(e.to_string()))?;
            crate::convert::person_of(&stored).map_err(|e| ApplyError::Malformed(format!("person {pref_id}: {e}")))
        })
        .transpose()
}

/// The first `limit` residents of `municipality` with an open anomaly sent to it (宛名番号
/// order) and their persons, and how many there are in all.
pub(crate) fn with_open_anomalies(
    state: &ProjectionHandle,
    municipality: &str,
    after: &str,
    limit: usize,
) -> Result<OpenAnomalies, StoreError> {
    let prefix = anomalies_prefix(municipality);
    let store = state.store();
    let after = (!after.is_empty()).then(|| anomaly_key(municipality, after));
    // One more than asked: whether there is a next page.
    let mut page: Vec<(String, String)> = store
        .scan_after(&prefix, after.as_deref(), limit.saturating_add(1))?
        .into_iter()
        .map(|(k, v)| {
            (String::from_utf8_lossy(&k[prefix.len()..]).into_owned(), String::from_utf8_lossy(&v).into_owned())
        })
        .collect();
    let next_after = if page.len() > limit {
        page.truncate(limit);
        page.last().map(|(resident, _)| resident.clone()).unwrap_or_default()
    } else {
        String::new()
    };
    Ok(OpenAnomalies { page, residents: store.count_prefix(&prefix)?, next_after })
}

/// A page of a municipality's residents with open anomalies ([`with_open_anomalies`]).
pub(crate) struct OpenAnomalies {
    /// (宛名番号, 都道府県被保険者ID), in 宛名番号 order.
    pub(crate) page: Vec<(String, String)>,
    /// Residents with open anomalies in all.
    pub(crate) residents: u64,
    /// The last resident of the page when more follow; empty otherwise.
    pub(crate) next_after: String,
}

pub(crate) fn watched(store: &dyn Read) -> Result<Vec<String>, ApplyError> {
    Ok(store
        .scan_prefix(WATCH_PREFIX.as_bytes())?
        .into_iter()
        .map(|(k, _)| String::from_utf8_lossy(&k[WATCH_PREFIX.len()..]).into_owned())
        .collect())
}

/// The business date of the last evaluation (rules.md T1), for explanations.
/// `None` before the first evaluation.
pub(crate) fn business_date(state: &ProjectionHandle) -> Result<Option<kokuho_ids::Date>, StoreError> {
    Ok(kokuho_ids::Date::from_yyyymmdd(u32_of(state.store().get(DAY)?)))
}
