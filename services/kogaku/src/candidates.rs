//! The projection of kogaku's own stream (tree `kogaku-candidates`): every candidate as its
//! last evaluation left it, with the indexes evaluations look candidates up by.
//!
//! Keys: `c/<B>/<継続候補番号>` → the candidate (`CandidateState`);
//! `k/<B>/<h_B>/<D>/<A>/<h_A>` → its number (a move group's candidates are one prefix);
//! `hb/<B>/<h_B>/<number>` and `ha/<A>/<h_A>/<B>/<number>` → present (candidates into and out
//! of a household); `mv/<person>/<B>/<number>` → present while the person is one of its
//! movers; `a08/<B>/<number>` → present while A08 is open (the operator's list);
//! `cursor/<stream>` → the last input sequence evaluated.

use kokuho_kogaku_domain::candidate::Candidate;
use kokuho_kogaku_domain::{CandidateKey, GroupKey};
use kokuho_store::{ApplyError, LogEvent, Projection, Read, StoreError, Tx, u64_of};
use prost::Message as _;

use crate::convert;
use kokuho_kogaku_contract::{Event, Events, STREAM, pb};

pub(crate) struct Candidates;

pub(crate) fn cursor_key(stream: &str) -> Vec<u8> {
    format!("cursor/{stream}").into_bytes()
}

fn candidate_key(to: &str, number: &str) -> Vec<u8> {
    format!("c/{to}/{number}").into_bytes()
}

fn group_prefix(g: &GroupKey) -> String {
    format!("k/{}/{}/{}/", g.to, g.household, g.moved_in_on)
}

fn index_key(k: &CandidateKey) -> Vec<u8> {
    format!("{}{}/{}", group_prefix(&k.group), k.from, k.from_household).into_bytes()
}

impl Projection for Candidates {
    const NAME: &'static str = "candidates";
    const VERSION: u32 = 2;
    const STREAM: &'static str = STREAM.name;

    fn apply(&self, tx: &mut Tx<'_>, ev: &LogEvent<'_>) -> Result<(), ApplyError> {
        let (_, event) = kokuho_bus::event::decode::<Events>(ev.payload).map_err(ApplyError::Malformed)?;
        let Event::CandidatesEvaluated(e) = event;
        if !e.input_stream.is_empty() && e.input_sequence != 0 {
            tx.put(cursor_key(&e.input_stream), e.input_sequence.to_be_bytes().to_vec());
        }
        for c in e.candidates {
            let key = candidate_key(&c.to_municipality, &c.number);
            let before = match tx.get(&key)? {
                Some(b) => {
                    Some(pb::CandidateState::decode(b.as_slice()).map_err(|e| ApplyError::Malformed(e.to_string()))?)
                }
                None => None,
            };
            let movers = |s: &pb::CandidateState| s.facts.as_ref().map(|f| f.movers.clone()).unwrap_or_default();
            for person in before.as_ref().map(movers).unwrap_or_default() {
                tx.delete(format!("mv/{person}/{}/{}", c.to_municipality, c.number).into_bytes());
            }
            for person in movers(&c) {
                tx.put(format!("mv/{person}/{}/{}", c.to_municipality, c.number).into_bytes(), Vec::new());
            }
            if before.is_none() {
                let k = convert::candidate_of(c.clone()).map_err(ApplyError::Malformed)?.key;
                tx.put(index_key(&k), c.number.clone().into_bytes());
                tx.put(format!("hb/{}/{}/{}", c.to_municipality, c.to_household, c.number).into_bytes(), Vec::new());
                tx.put(
                    format!("ha/{}/{}/{}/{}", c.from_municipality, c.from_household, c.to_municipality, c.number)
                        .into_bytes(),
                    Vec::new(),
                );
            }
            let a08 = format!("a08/{}/{}", c.to_municipality, c.number).into_bytes();
            if c.changed {
                tx.put(a08, Vec::new())
            } else {
                tx.delete(a08)
            }
            tx.put(key, c.encode_to_vec());
        }
        Ok(())
    }
}

/// The last sequence of `stream` evaluated.
pub(crate) fn cursor(store: &dyn Read, stream: &str) -> Result<u64, StoreError> {
    Ok(u64_of(store.get(&cursor_key(stream))?))
}

/// The candidate `number` of receiving municipality `to`.
pub(crate) fn candidate(store: &dyn Read, to: &str, number: &str) -> Result<Option<Candidate>, StoreError> {
    let Some(bytes) = store.get(&candidate_key(to, number))? else { return Ok(None) };
    let state = pb::CandidateState::decode(bytes.as_slice()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    convert::candidate_of(state).map(Some).map_err(StoreError::Corrupt)
}

/// The number of the candidate with this key, if there is one.
pub(crate) fn number_of(store: &dyn Read, key: &CandidateKey) -> Result<Option<String>, StoreError> {
    Ok(store.get(&index_key(key))?.map(|n| String::from_utf8_lossy(&n).into_owned()))
}

fn tails(store: &dyn Read, prefix: &str) -> Result<Vec<String>, StoreError> {
    Ok(store
        .scan_prefix(prefix.as_bytes())?
        .into_iter()
        .map(|(key, _)| String::from_utf8_lossy(&key[prefix.len()..]).into_owned())
        .collect())
}

/// (B, number) of every candidate of a move group.
pub(crate) fn of_group(store: &dyn Read, g: &GroupKey) -> Result<Vec<(String, String)>, StoreError> {
    let prefix = group_prefix(g);
    Ok(store
        .scan_prefix(prefix.as_bytes())?
        .into_iter()
        .map(|(_, number)| (g.to.clone(), String::from_utf8_lossy(&number).into_owned()))
        .collect())
}

/// (B, number) of every candidate into (B, h_B).
pub(crate) fn into_household(store: &dyn Read, to: &str, household: &str) -> Result<Vec<(String, String)>, StoreError> {
    Ok(tails(store, &format!("hb/{to}/{household}/"))?.into_iter().map(|n| (to.to_string(), n)).collect())
}

/// (B, number) of every candidate out of (A, h_A).
pub(crate) fn out_of_household(
    store: &dyn Read,
    from: &str,
    household: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    tails(store, &format!("ha/{from}/{household}/"))?
        .into_iter()
        .map(|t| t.split_once('/').map(|(b, n)| (b.to_string(), n.to_string())).ok_or(StoreError::Corrupt(t.clone())))
        .collect()
}

/// (B, number) of every candidate `person` is a mover of.
pub(crate) fn of_mover(store: &dyn Read, person: &str) -> Result<Vec<(String, String)>, StoreError> {
    tails(store, &format!("mv/{person}/"))?
        .into_iter()
        .map(|t| t.split_once('/').map(|(b, n)| (b.to_string(), n.to_string())).ok_or(StoreError::Corrupt(t.clone())))
        .collect()
}

/// The candidates with A08 open, of `to` or of all (the operator's list), through their index.
pub(crate) fn changed(store: &dyn Read, to: Option<&str>) -> Result<Vec<Candidate>, StoreError> {
    let prefix = match to {
        Some(b) => format!("a08/{b}/"),
        None => "a08/".to_string(),
    };
    let mut out = Vec::new();
    for t in tails(store, &prefix)? {
        let (b, n) = match to {
            Some(b) => (b.to_string(), t),
            None => {
                t.split_once('/').map(|(b, n)| (b.to_string(), n.to_string())).ok_or(StoreError::Corrupt(t.clone()))?
            }
        };
        out.extend(candidate(store, &b, &n)?);
    }
    Ok(out)
}

/// Every candidate of receiving municipality `to` (or of all, for the operator), in number order.
pub(crate) fn all(store: &dyn Read, to: Option<&str>) -> Result<Vec<Candidate>, StoreError> {
    let prefix = match to {
        Some(b) => format!("c/{b}/"),
        None => "c/".to_string(),
    };
    store
        .scan_prefix(prefix.as_bytes())?
        .into_iter()
        .map(|(_, bytes)| {
            let state = pb::CandidateState::decode(bytes.as_slice()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            convert::candidate_of(state).map_err(StoreError::Corrupt)
        })
        .collect()
}
