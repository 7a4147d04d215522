//! relay's projections of the streams it reads, and what each input event asks relay to look at
//! again. The only module that reads another context's events.
//!
//! - `cards` (intake's stream): tree `relay-cards`: `h/<muni>/<世帯番号>/<異動年月日>` → `記号\x1f番号`
//!   (the household states, R2), `ls/<muni>` → Unix seconds of the last chunk (liveness).
//! - `persons` (identity's stream): tree `relay-persons`: `n/<person>` while identity holds a
//!   number (R01); `l/<muni>/<宛名番号>` → the linked KK record (`LinkedRecord`); `h/<muni>/<宛名番号>`
//!   → a record held in a conflict (`HeldRecord`, R02), `c/<case>` → its `<muni>/<宛名番号>`;
//!   `x/<person>` → the person it was merged into (I5).
//! - `periods` (continuity's stream): tree `relay-periods`: `p/<muni>/<宛名番号>/<開始>` →
//!   `StoredPeriod`; `pp/<person>/<muni>/<宛名番号>/<開始>` and `hx/<muni>/<世帯番号>/<宛名番号>/<開始>`
//!   indexes.

use std::collections::BTreeSet;

use kokuho_continuity_contract::Event as ContinuityEvent;
use kokuho_identity_contract::Event as IdentityEvent;
use kokuho_intake_contract::Event as IntakeEvent;
use kokuho_intake_contract::pb::change_record::Record;
use kokuho_proto::relay::v1 as pb;
use kokuho_store::{ApplyError, LogEvent, Projection, Read, StoreError, Tx};
use prost::Message as _;

const SEP: char = '\x1f';

fn malformed(e: impl std::fmt::Display) -> ApplyError {
    ApplyError::Malformed(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// A period's key: (municipality, 宛名番号, 適用開始年月日).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PeriodKey {
    pub(crate) municipality: String,
    pub(crate) resident: String,
    pub(crate) start: u32,
}

impl PeriodKey {
    pub(crate) fn path(&self) -> String {
        format!("{}/{}/{:08}", self.municipality, self.resident, self.start)
    }

    pub(crate) fn parse(path: &str) -> Result<Self, StoreError> {
        let mut parts = path.splitn(3, '/');
        let (Some(m), Some(r), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(corrupt(format!("period key {path:?}")));
        };
        Ok(Self { municipality: m.into(), resident: r.into(), start: s.parse().map_err(corrupt)? })
    }

    pub(crate) fn wire(&self) -> pb::PeriodRef {
        pb::PeriodRef {
            municipality: self.municipality.clone(),
            resident_number: self.resident.clone(),
            start: self.start,
        }
    }

    pub(crate) fn of(p: &pb::PeriodRef) -> Self {
        Self { municipality: p.municipality.clone(), resident: p.resident_number.clone(), start: p.start }
    }
}

/// What an input event asks relay to look at again: persons (all their periods) and residents
/// (municipality, 宛名番号: their periods and held records).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Touched {
    pub(crate) persons: BTreeSet<String>,
    pub(crate) residents: BTreeSet<(String, String)>,
    /// Households (municipality, 世帯番号) whose states changed.
    pub(crate) households: BTreeSet<(String, String)>,
}

impl Touched {
    pub(crate) fn is_empty(&self) -> bool {
        self.persons.is_empty() && self.residents.is_empty() && self.households.is_empty()
    }
}

// ---------------------------------------------------------------- intake: cards

pub(crate) struct Cards;

/// A KS record: the card from its 異動年月日 on (`None`: the state was deleted).
struct CardRecord {
    municipality: String,
    household: String,
    changed_on: u32,
    card: Option<(String, String)>,
}

fn card_records(chunk: &kokuho_intake_contract::pb::RecordsAccepted) -> Vec<CardRecord> {
    chunk
        .records
        .iter()
        .filter_map(|r| match &r.record {
            Some(Record::Household(h)) => Some(CardRecord {
                municipality: chunk.municipality.clone(),
                household: h.household_number.clone(),
                changed_on: h.changed_on,
                card: (h.processing != "3").then(|| (h.card_symbol.clone(), h.card_number.clone())),
            }),
            _ => None,
        })
        .collect()
}

/// Decodes an event of intake's stream: the chunk of accepted records it carries, with the
/// append time, or nothing (every event is named, so a new one forces a decision).
fn intake_chunk(payload: &[u8]) -> Result<Option<(kokuho_intake_contract::pb::RecordsAccepted, i64)>, String> {
    let (envelope, event) = kokuho_bus::event::decode::<kokuho_intake_contract::Events>(payload)?;
    Ok(match event {
        IntakeEvent::RecordsAccepted(chunk) => Some((chunk, envelope.occurred_at.map(|t| t.seconds).unwrap_or(0))),
        IntakeEvent::BusinessDateSet(_)
        | IntakeEvent::DayClosed(_)
        | IntakeEvent::SubmissionAccepted(_)
        | IntakeEvent::SubmissionRejected(_) => None,
    })
}

impl Projection for Cards {
    const NAME: &'static str = "cards";
    const VERSION: u32 = 1;
    const STREAM: &'static str = kokuho_intake_contract::STREAM.name;

    fn apply(&self, tx: &mut Tx<'_>, ev: &LogEvent<'_>) -> Result<(), ApplyError> {
        let Some((chunk, at)) = intake_chunk(ev.payload).map_err(malformed)? else { return Ok(()) };
        tx.put(format!("ls/{}", chunk.municipality), at.to_be_bytes().to_vec());
        for r in card_records(&chunk) {
            let key = format!("h/{}/{}/{:08}", r.municipality, r.household, r.changed_on);
            match r.card {
                Some((symbol, number)) => tx.put(key, format!("{symbol}{SEP}{number}")),
                None => tx.delete(key),
            }
        }
        Ok(())
    }
}

/// R2: the card states of (municipality, 世帯番号), by 異動年月日.
pub(crate) fn card_states(
    store: &dyn Read,
    municipality: &str,
    household: &str,
) -> Result<kokuho_relay_domain::CardStates, StoreError> {
    let prefix = format!("h/{municipality}/{household}/");
    let mut out = kokuho_relay_domain::CardStates::new();
    for (key, value) in store.scan_prefix(prefix.as_bytes())? {
        let date: u32 = String::from_utf8_lossy(&key[prefix.len()..]).parse().map_err(corrupt)?;
        let date = kokuho_ids::Date::from_yyyymmdd(date).ok_or_else(|| corrupt("異動年月日"))?;
        let value = String::from_utf8(value).map_err(corrupt)?;
        let (symbol, number) = value.split_once(SEP).ok_or_else(|| corrupt("card"))?;
        out.insert(date, (symbol.to_string(), number.to_string()));
    }
    Ok(out)
}

/// Unix seconds of the last chunk of accepted records of `municipality` (0: none).
pub(crate) fn last_submission(store: &dyn Read, municipality: &str) -> Result<i64, StoreError> {
    Ok(store
        .get(format!("ls/{municipality}").as_bytes())?
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map(i64::from_be_bytes)
        .unwrap_or(0))
}

/// What an event of intake's stream touches: the households of its KS records.
pub(crate) fn intake_touched(payload: &[u8]) -> Result<Option<Touched>, String> {
    let Some((chunk, _)) = intake_chunk(payload)? else { return Ok(None) };
    let households: BTreeSet<_> = card_records(&chunk).into_iter().map(|r| (r.municipality, r.household)).collect();
    Ok((!households.is_empty()).then(|| Touched { households, ..Default::default() }))
}

// ---------------------------------------------------------------- identity: persons

pub(crate) struct Persons;

fn decode_identity(payload: &[u8]) -> Result<IdentityEvent, String> {
    Ok(kokuho_bus::event::decode::<kokuho_identity_contract::Events>(payload)?.1)
}

fn linked(tx: &mut Tx<'_>, municipality: &str, links: &[kokuho_proto::identity::v1::RecordLinked], receipt: &str) {
    for l in links {
        let Some(r) = &l.record else { continue };
        let stored = pb::LinkedRecord {
            person: l.pref_id.clone(),
            household_number: r.household_number.clone(),
            receipt: if l.receipt.is_empty() { receipt.to_string() } else { l.receipt.clone() },
            line: l.line,
            name: r.name.clone(),
            kana: r.kana.clone(),
            birth_date: r.birth_date,
            sex: r.sex.clone(),
        };
        tx.put(format!("l/{municipality}/{}", r.resident_number), stored.encode_to_vec());
        // A record linked at a resident is no longer held there.
        tx.delete(format!("h/{municipality}/{}", r.resident_number));
    }
}

impl Projection for Persons {
    const NAME: &'static str = "persons";
    const VERSION: u32 = 1;
    const STREAM: &'static str = kokuho_identity_contract::STREAM.name;
    const SUBJECT: Option<&'static str> = Some(kokuho_identity_contract::CHUNKS_SUBJECT);

    fn apply(&self, tx: &mut Tx<'_>, ev: &LogEvent<'_>) -> Result<(), ApplyError> {
        match decode_identity(ev.payload).map_err(malformed)? {
            IdentityEvent::ChunkLinked(c) => {
                for p in &c.persons {
                    if p.has_number {
                        tx.put(format!("n/{}", p.pref_id), Vec::new());
                    }
                }
                for a in &c.attached {
                    tx.put(format!("n/{}", a.pref_id), Vec::new());
                }
                for m in &c.merged {
                    tx.put(format!("x/{}", m.from), m.into.clone());
                }
                linked(tx, &c.municipality, &c.links, &c.receipt);
                for h in &c.held {
                    let Some(r) = &h.record else { continue };
                    let held = pb::HeldRecord {
                        case_id: h.case_id.clone(),
                        receipt: c.receipt.clone(),
                        line: h.line,
                        start: r.start_date,
                        end: r.end_date,
                    };
                    tx.put(format!("h/{}/{}", c.municipality, r.resident_number), held.encode_to_vec());
                    tx.put(format!("c/{}", h.case_id), format!("{}/{}", c.municipality, r.resident_number));
                }
            }
            IdentityEvent::CaseResolved(r) => {
                for p in &r.persons {
                    if p.has_number {
                        tx.put(format!("n/{}", p.pref_id), Vec::new());
                    }
                }
                // `c/<case>` stays: the plan of this event reads which resident it was.
                if let Some(at) = tx.get(format!("c/{}", r.case_id).as_bytes())? {
                    tx.delete(format!("h/{}", String::from_utf8_lossy(&at)));
                }
                linked(tx, &r.municipality, &r.links, "");
            }
            IdentityEvent::BusinessDay(_) | IdentityEvent::NumbersKept(_) => {}
        }
        Ok(())
    }
}

/// What an event of identity's stream touches.
pub(crate) fn identity_touched(payload: &[u8], store: &dyn Read) -> Result<Option<Touched>, String> {
    let mut t = Touched::default();
    match decode_identity(payload)? {
        IdentityEvent::ChunkLinked(c) => {
            t.persons.extend(c.persons.iter().map(|p| p.pref_id.clone()));
            t.persons.extend(c.attached.iter().map(|p| p.pref_id.clone()));
            t.persons.extend(c.corrected.iter().map(|p| p.pref_id.clone()));
            t.persons.extend(c.links.iter().map(|l| l.pref_id.clone()));
            t.persons.extend(c.merged.iter().flat_map(|m| [m.from.clone(), m.into.clone()]));
            for l in c.links.iter().filter_map(|l| l.record.as_ref()) {
                t.residents.insert((c.municipality.clone(), l.resident_number.clone()));
            }
            for h in c.held.iter().filter_map(|h| h.record.as_ref()) {
                t.residents.insert((c.municipality.clone(), h.resident_number.clone()));
            }
        }
        IdentityEvent::CaseResolved(r) => {
            t.persons.extend(r.links.iter().map(|l| l.pref_id.clone()));
            for l in r.links.iter().filter_map(|l| l.record.as_ref()) {
                t.residents.insert((r.municipality.clone(), l.resident_number.clone()));
            }
            // The held record's resident (a rejected record is linked nowhere).
            if let Some(at) = store.get(format!("c/{}", r.case_id).as_bytes()).map_err(|e| e.to_string())? {
                let at = String::from_utf8_lossy(&at).into_owned();
                if let Some((m, res)) = at.split_once('/') {
                    t.residents.insert((m.to_string(), res.to_string()));
                }
            }
        }
        IdentityEvent::BusinessDay(_) | IdentityEvent::NumbersKept(_) => return Ok(None),
    }
    Ok((!t.is_empty()).then_some(t))
}

/// The person `id` is now (merges followed, I5).
pub(crate) fn resolve(store: &dyn Read, id: &str) -> Result<String, StoreError> {
    let mut id = id.to_string();
    for _ in 0..64 {
        match store.get(format!("x/{id}").as_bytes())? {
            Some(into) => id = String::from_utf8(into).map_err(corrupt)?,
            None => return Ok(id),
        }
    }
    Err(corrupt(format!("a merge cycle at {id}")))
}

/// identity holds a 個人番号 for the person (R01 otherwise).
pub(crate) fn has_number(store: &dyn Read, person: &str) -> Result<bool, StoreError> {
    Ok(store.get(format!("n/{person}").as_bytes())?.is_some())
}

pub(crate) fn linked_record(
    store: &dyn Read,
    municipality: &str,
    resident: &str,
) -> Result<Option<pb::LinkedRecord>, StoreError> {
    store
        .get(format!("l/{municipality}/{resident}").as_bytes())?
        .map(|b| pb::LinkedRecord::decode(b.as_slice()).map_err(corrupt))
        .transpose()
}

pub(crate) fn held_record(
    store: &dyn Read,
    municipality: &str,
    resident: &str,
) -> Result<Option<pb::HeldRecord>, StoreError> {
    store
        .get(format!("h/{municipality}/{resident}").as_bytes())?
        .map(|b| pb::HeldRecord::decode(b.as_slice()).map_err(corrupt))
        .transpose()
}

// ---------------------------------------------------------------- continuity: periods

pub(crate) struct Periods;

fn decode_continuity(payload: &[u8]) -> Result<kokuho_continuity_contract::pb::PersonsEvaluated, String> {
    let ContinuityEvent::PersonsEvaluated(e) =
        kokuho_bus::event::decode::<kokuho_continuity_contract::Events>(payload)?.1;
    Ok(e)
}

fn forget_person(tx: &mut Tx<'_>, person: &str) -> Result<(), ApplyError> {
    let prefix = format!("pp/{person}/");
    for (key, value) in tx.scan_prefix(prefix.as_bytes())? {
        let path = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
        tx.delete(format!("p/{path}"));
        tx.delete(key);
        let k = PeriodKey::parse(&path)?;
        let household = String::from_utf8_lossy(&value).into_owned();
        tx.delete(format!("hx/{}/{household}/{}/{:08}", k.municipality, k.resident, k.start));
    }
    Ok(())
}

impl Projection for Periods {
    const NAME: &'static str = "periods";
    const VERSION: u32 = 1;
    const STREAM: &'static str = kokuho_continuity_contract::STREAM.name;

    fn apply(&self, tx: &mut Tx<'_>, ev: &LogEvent<'_>) -> Result<(), ApplyError> {
        let e = decode_continuity(ev.payload).map_err(malformed)?;
        for away in &e.merged_away {
            forget_person(tx, away)?;
        }
        for person in &e.persons {
            forget_person(tx, &person.pref_id)?;
            for p in &person.periods {
                let key = PeriodKey {
                    municipality: p.municipality.clone(),
                    resident: p.resident_number.clone(),
                    start: p.start,
                };
                let (acquired, lost) = match &p.sent {
                    Some(s) if s.judgement != "9" => (s.acquired_on, s.lost_on),
                    _ => (0, 0),
                };
                let stored = pb::StoredPeriod {
                    person: person.pref_id.clone(),
                    end: p.end,
                    household_number: p.household_number.clone(),
                    pref_acquired_on: acquired,
                    pref_lost_on: lost,
                };
                tx.put(format!("p/{}", key.path()), stored.encode_to_vec());
                tx.put(format!("pp/{}/{}", person.pref_id, key.path()), p.household_number.clone());
                tx.put(
                    format!("hx/{}/{}/{}/{:08}", key.municipality, p.household_number, key.resident, key.start),
                    Vec::new(),
                );
            }
        }
        Ok(())
    }
}

/// What an event of continuity's stream touches: the persons it evaluated or merged away.
pub(crate) fn continuity_touched(payload: &[u8]) -> Result<Option<Touched>, String> {
    let e = decode_continuity(payload)?;
    let mut t = Touched::default();
    t.persons.extend(e.persons.into_iter().map(|p| p.pref_id));
    t.persons.extend(e.merged_away);
    Ok((!t.is_empty()).then_some(t))
}

pub(crate) fn period(store: &dyn Read, key: &PeriodKey) -> Result<Option<pb::StoredPeriod>, StoreError> {
    store
        .get(format!("p/{}", key.path()).as_bytes())?
        .map(|b| pb::StoredPeriod::decode(b.as_slice()).map_err(corrupt))
        .transpose()
}

/// The periods continuity holds for a person.
pub(crate) fn periods_of_person(store: &dyn Read, person: &str) -> Result<Vec<PeriodKey>, StoreError> {
    let prefix = format!("pp/{person}/");
    store
        .scan_prefix(prefix.as_bytes())?
        .into_iter()
        .map(|(k, _)| PeriodKey::parse(&String::from_utf8_lossy(&k[prefix.len()..])))
        .collect()
}

/// The periods at (municipality, 宛名番号).
pub(crate) fn periods_of_resident(
    store: &dyn Read,
    municipality: &str,
    resident: &str,
) -> Result<Vec<PeriodKey>, StoreError> {
    let prefix = format!("p/{municipality}/{resident}/");
    store
        .scan_prefix(prefix.as_bytes())?
        .into_iter()
        .map(|(k, _)| PeriodKey::parse(&String::from_utf8_lossy(&k[2..])))
        .collect()
}

/// The periods whose records carried (municipality, 世帯番号).
pub(crate) fn periods_of_household(
    store: &dyn Read,
    municipality: &str,
    household: &str,
) -> Result<Vec<PeriodKey>, StoreError> {
    let prefix = format!("hx/{municipality}/{household}/");
    store
        .scan_prefix(prefix.as_bytes())?
        .into_iter()
        .map(|(k, _)| {
            let tail = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            PeriodKey::parse(&format!("{municipality}/{tail}"))
        })
        .collect()
}
