//! Wire ↔ domain for kogaku: the only module that reads another stream's events (intake's) and
//! kogaku's stored state.

use kokuho_ids::codes::{DeemedHouseholder, KogakuKind, ProcessingKind};
use kokuho_ids::{Date, Month};
use kokuho_intake_contract::pb::RecordsAccepted;
use kokuho_intake_contract::pb::change_record::Record;
use kokuho_intake_contract::{Event, Events};
use kokuho_kogaku_domain::Pair;
use kokuho_kogaku_domain::households::{HouseholdState, MemberRecord};
use kokuho_proto::kogaku::v1 as pb;

/// The chunk of accepted records an event of the intake stream carries, if any (every event of
/// the stream is named here, so a new one forces a decision).
fn chunk_of(bytes: &[u8]) -> Result<Option<RecordsAccepted>, String> {
    let (_, event) = kokuho_bus::event::decode::<Events>(bytes)?;
    Ok(match event {
        Event::RecordsAccepted(chunk) => Some(chunk),
        Event::SubmissionAccepted(_)
        | Event::SubmissionRejected(_)
        | Event::BusinessDateSet(_)
        | Event::DayClosed(_) => None,
    })
}

fn processing(p: &str) -> Result<ProcessingKind, String> {
    ProcessingKind::parse(p).map_err(|_| format!("処理区分 {p:?}"))
}

/// A KG record as kogaku keeps it: registered (`true`) or deleted, with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KogakuRecord {
    pub(crate) municipality: String,
    pub(crate) household: String,
    pub(crate) month: Month,
    pub(crate) kind: KogakuKind,
    pub(crate) register: bool,
}

/// The KG records of an event of the intake stream, in file order. intake checked them; a
/// value that does not parse is an error (the event is dead-lettered), never a default.
pub(crate) fn kogaku_records(bytes: &[u8]) -> Result<Vec<KogakuRecord>, String> {
    let Some(chunk) = chunk_of(bytes)? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for r in chunk.records {
        let Some(Record::Kogaku(k)) = r.record else { continue };
        let month = Month::new((k.month / 100) as i32, (k.month % 100) as u8)
            .map_err(|_| format!("診療年月 {} of line {}", k.month, r.line))?;
        let kind = KogakuKind::parse(&k.kogaku_kind).map_err(|_| format!("該当区分 {:?}", k.kogaku_kind))?;
        out.push(KogakuRecord {
            municipality: chunk.municipality.clone(),
            household: k.household_number,
            month,
            kind,
            register: processing(&k.processing)? == ProcessingKind::Register,
        });
    }
    Ok(out)
}

/// A KS record as kogaku keeps it: the state from its 異動年月日 on, or `None` for a 削除.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HouseholdRecord {
    pub(crate) municipality: String,
    pub(crate) household: String,
    pub(crate) changed_on: Date,
    pub(crate) state: Option<HouseholdState>,
}

/// The KS records of an event of the intake stream, in file order.
pub(crate) fn household_records(bytes: &[u8]) -> Result<Vec<HouseholdRecord>, String> {
    let Some(chunk) = chunk_of(bytes)? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for r in chunk.records {
        let Some(Record::Household(h)) = r.record else { continue };
        let changed_on = Date::from_yyyymmdd(h.changed_on).ok_or_else(|| format!("異動年月日 of line {}", r.line))?;
        let state = match processing(&h.processing)? {
            ProcessingKind::Delete => None,
            ProcessingKind::Register => {
                let deemed = DeemedHouseholder::parse(&h.deemed_householder)
                    .map_err(|_| format!("擬制世帯主区分 {:?}", h.deemed_householder))?;
                Some(HouseholdState {
                    householder: h.householder,
                    deemed: deemed == DeemedHouseholder::Deemed,
                    card_symbol: h.card_symbol,
                    card_number: h.card_number,
                })
            }
        };
        out.push(HouseholdRecord {
            municipality: chunk.municipality.clone(),
            household: h.household_number,
            changed_on,
            state,
        });
    }
    Ok(out)
}

/// A household state as stored.
pub(crate) fn stored_state(s: &HouseholdState) -> pb::HouseholdStateRecord {
    pb::HouseholdStateRecord {
        householder: s.householder.clone(),
        deemed: s.deemed,
        card_symbol: s.card_symbol.clone(),
        card_number: s.card_number.clone(),
    }
}

pub(crate) fn state_of(r: pb::HouseholdStateRecord) -> HouseholdState {
    HouseholdState {
        householder: r.householder,
        deemed: r.deemed,
        card_symbol: r.card_symbol,
        card_number: r.card_number,
    }
}

/// What a linked KK record tells kogaku about household members (H2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MemberChange {
    /// (municipality, 宛名番号) is the person's.
    Linked { municipality: String, resident: String, person: String },
    /// The record with this key is registered in the household (or replaced), or deleted.
    Record {
        municipality: String,
        household: String,
        resident: String,
        start: u32,
        state: Option<pb::MemberStateRecord>,
    },
    /// I5: every link of `from` is `into`'s from now on.
    Merged { from: String, into: String },
}

/// The member changes of an event of identity's stream, in order (every event of the stream is
/// named here, so a new one forces a decision).
pub(crate) fn member_changes(bytes: &[u8]) -> Result<Vec<MemberChange>, String> {
    use kokuho_identity_contract::Event as IdentityEvent;
    let (_, event) = kokuho_bus::event::decode::<kokuho_identity_contract::Events>(bytes)?;
    let (municipality, links, merges) = match event {
        IdentityEvent::ChunkLinked(c) => (c.municipality, c.links, c.merged),
        IdentityEvent::CaseResolved(r) => (r.municipality, r.links, Vec::new()),
        IdentityEvent::BusinessDay(_) | IdentityEvent::NumberReleased(_) => return Ok(Vec::new()),
    };
    let mut out: Vec<MemberChange> =
        merges.into_iter().map(|m| MemberChange::Merged { from: m.from, into: m.into }).collect();
    for l in links {
        let r = l.record.ok_or("a linked record without its record")?;
        let insured = kokuho_ids::codes::InsuredKind::parse(&r.insured_kind)
            .map_err(|_| format!("被保険者区分 {:?}", r.insured_kind))?
            == kokuho_ids::codes::InsuredKind::Insured;
        let start = if insured { r.start_date } else { 0 };
        let state = match processing(&r.processing)? {
            ProcessingKind::Delete => None,
            ProcessingKind::Register => {
                Some(pb::MemberStateRecord { insured, start, end: if insured { r.end_date } else { 0 } })
            }
        };
        out.push(MemberChange::Linked {
            municipality: municipality.clone(),
            resident: r.resident_number.clone(),
            person: l.pref_id,
        });
        out.push(MemberChange::Record {
            municipality: municipality.clone(),
            household: r.household_number,
            resident: r.resident_number,
            start,
            state,
        });
    }
    Ok(out)
}

/// A stored member record as the domain's.
pub(crate) fn member_of(person: String, household: String, r: &pb::MemberStateRecord) -> Result<MemberRecord, String> {
    let date = |v: u32| Date::from_yyyymmdd(v).ok_or_else(|| format!("date {v}"));
    let period =
        if r.insured { Some((date(r.start)?, if r.end == 0 { None } else { Some(date(r.end)?) })) } else { None };
    Ok(MemberRecord { person, household, period })
}

/// A person and their pairs now (`None`: merged away).
pub(crate) type PersonPairs = (String, Option<Vec<Pair>>);

/// The C2 pairs of the persons an event of continuity's stream evaluated (each person's pairs
/// as they are now: `None` for a person merged away), as kogaku's domain reads them.
pub(crate) fn person_pairs(bytes: &[u8]) -> Result<Vec<PersonPairs>, String> {
    use kokuho_continuity_contract::Event as ContinuityEvent;
    let (_, event) = kokuho_bus::event::decode::<kokuho_continuity_contract::Events>(bytes)?;
    let ContinuityEvent::PersonsEvaluated(e) = event;
    let mut out: Vec<PersonPairs> = e.merged_away.into_iter().map(|p| (p, None)).collect();
    for person in e.persons {
        let pairs = person
            .pairs
            .iter()
            .map(|p| {
                Ok(Pair {
                    person: person.pref_id.clone(),
                    from: p.from_municipality.clone(),
                    from_household: p.from_household_number.clone(),
                    to: p.to_municipality.clone(),
                    to_household: p.to_household_number.clone(),
                    to_resident: p.to_resident_number.clone(),
                    moved_in_on: Date::from_yyyymmdd(p.to_start).ok_or_else(|| format!("転入 {}", p.to_start))?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        out.push((person.pref_id, Some(pairs)));
    }
    Ok(out)
}
