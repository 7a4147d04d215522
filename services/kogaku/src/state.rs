//! kogaku's projections of the intake stream: the KG records in force (`months`) and the
//! household states (`households`).
//!
//! Keys: tree `kogaku-months`: `g/<muni>/<世帯番号>/<YYYYMM>/<該当区分>` → present while
//! registered; tree `kogaku-households`: `h/<muni>/<世帯番号>/<異動年月日>` → the state
//! (`HouseholdStateRecord`), `day` → the business date.

use std::collections::BTreeMap;

use kokuho_ids::codes::KogakuKind;
use kokuho_ids::{Date, Month};
use kokuho_kogaku_domain::households::{HouseholdState, MemberRecord};
use kokuho_kogaku_domain::months::Records;
use kokuho_store::{ApplyError, LogEvent, Projection, Read, StoreError, Tx};
use prost::Message as _;

use crate::convert::{self, IntakeInput};

pub(crate) struct Months;

fn household_prefix(muni: &str, household: &str) -> String {
    format!("g/{muni}/{household}/")
}

impl Projection for Months {
    const NAME: &'static str = "months";
    const VERSION: u32 = 1;
    const STREAM: &'static str = kokuho_intake_contract::STREAM.name;

    fn apply(&self, tx: &mut Tx<'_>, ev: &LogEvent<'_>) -> Result<(), ApplyError> {
        let IntakeInput::Chunk(chunk) = convert::intake_input(ev.payload).map_err(ApplyError::Malformed)? else {
            return Ok(());
        };
        for r in convert::kogaku_records(&chunk).map_err(ApplyError::Malformed)? {
            let key = format!("{}{}/{}", household_prefix(&r.municipality, &r.household), r.month, r.kind.code())
                .into_bytes();
            if r.register { tx.put(key, Vec::new()) } else { tx.delete(key) }
        }
        Ok(())
    }
}

/// The KG records in force of (municipality, 世帯番号).
pub(crate) fn records(store: &dyn Read, muni: &str, household: &str) -> Result<Records, StoreError> {
    let prefix = household_prefix(muni, household);
    let mut out = Records::new();
    for (key, _) in store.scan_prefix(prefix.as_bytes())? {
        let tail = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
        let (month, kind) = tail.split_once('/').ok_or_else(|| StoreError::Corrupt(tail.clone()))?;
        let month: u32 = month.parse().map_err(|_| StoreError::Corrupt(tail.clone()))?;
        let month = Month::from_yyyymm(month).ok_or_else(|| StoreError::Corrupt(tail.clone()))?;
        let kind = KogakuKind::parse(kind).map_err(|_| StoreError::Corrupt(tail.clone()))?;
        out.insert((month, kind));
    }
    Ok(out)
}

pub(crate) struct Households;

fn states_prefix(muni: &str, household: &str) -> String {
    format!("h/{muni}/{household}/")
}

/// The business date in the `households` tree (intake's calendar, rules.md T1).
const DAY: &[u8] = b"day";

impl Projection for Households {
    const NAME: &'static str = "households";
    const VERSION: u32 = 2;
    const STREAM: &'static str = kokuho_intake_contract::STREAM.name;

    fn apply(&self, tx: &mut Tx<'_>, ev: &LogEvent<'_>) -> Result<(), ApplyError> {
        let chunk = match convert::intake_input(ev.payload).map_err(ApplyError::Malformed)? {
            IntakeInput::Chunk(chunk) => chunk,
            IntakeInput::Calendar(day) => {
                tx.put(DAY.to_vec(), day.to_be_bytes().to_vec());
                return Ok(());
            }
            IntakeInput::Nothing => return Ok(()),
        };
        for r in convert::household_records(&chunk).map_err(ApplyError::Malformed)? {
            let key = format!("{}{}", states_prefix(&r.municipality, &r.household), r.changed_on).into_bytes();
            match &r.state {
                Some(s) => tx.put(key, convert::stored_state(s).encode_to_vec()),
                None => tx.delete(key),
            }
        }
        Ok(())
    }
}

/// The business date as intake's calendar has it (0 before the first).
pub(crate) fn business_date(store: &dyn Read) -> Result<u32, StoreError> {
    Ok(kokuho_store::u32_of(store.get(DAY)?))
}

/// The states of (municipality, 世帯番号) by 異動年月日.
pub(crate) fn household_states(
    store: &dyn Read,
    muni: &str,
    household: &str,
) -> Result<BTreeMap<Date, HouseholdState>, StoreError> {
    let prefix = states_prefix(muni, household);
    let mut out = BTreeMap::new();
    for (key, value) in store.scan_prefix(prefix.as_bytes())? {
        let tail = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
        let date = Date::parse(&tail).map_err(|_| StoreError::Corrupt(tail.clone()))?;
        let state = kokuho_proto::kogaku::v1::HouseholdStateRecord::decode(value.as_slice())
            .map_err(|e| StoreError::Corrupt(format!("{tail}: {e}")))?;
        out.insert(date, convert::state_of(state));
    }
    Ok(out)
}

/// Household members as persons (H2), from identity's linked records.
///
/// Keys (tree `kogaku-members`): `k/<muni>/<世帯番号>/<宛名番号>/<適用開始年月日|00000000>` → the
/// record (`MemberStateRecord`); `x/<muni>/<宛名番号>/<適用開始年月日|00000000>` → its 世帯番号;
/// `r/<muni>/<宛名番号>` → the person; `pr/<person>/<muni>/<宛名番号>` → present (to follow
/// merges, I5); `xh/<muni>/<宛名番号>/<世帯番号>` → present for every household a record of the
/// 宛名番号 ever carried (so a record that moves names the household it left).
pub(crate) struct Members;

fn resident_key(muni: &str, resident: &str) -> Vec<u8> {
    format!("r/{muni}/{resident}").into_bytes()
}

fn members_prefix(muni: &str, household: &str) -> String {
    format!("k/{muni}/{household}/")
}

impl Projection for Members {
    const NAME: &'static str = "members";
    const VERSION: u32 = 2;
    const STREAM: &'static str = kokuho_identity_contract::STREAM.name;
    const SUBJECT: Option<&'static str> = Some(kokuho_identity_contract::CHUNKS_SUBJECT);

    fn apply(&self, tx: &mut Tx<'_>, ev: &LogEvent<'_>) -> Result<(), ApplyError> {
        for change in convert::member_changes(ev.payload).map_err(ApplyError::Malformed)? {
            match change {
                convert::MemberChange::Linked { municipality, resident, person } => {
                    tx.put(resident_key(&municipality, &resident), person.clone().into_bytes());
                    tx.put(format!("pr/{person}/{municipality}/{resident}").into_bytes(), Vec::new());
                }
                convert::MemberChange::Record { municipality, household, resident, start, state } => {
                    // The record's key is (宛名番号, 適用開始年月日): a 登録 with another 世帯番号
                    // moves it to that household, a 削除 removes it wherever it is.
                    let at = format!("x/{municipality}/{resident}/{start:08}").into_bytes();
                    if let Some(before) = tx.get(&at)? {
                        let before = String::from_utf8_lossy(&before).into_owned();
                        let old = format!("{}{resident}/{start:08}", members_prefix(&municipality, &before));
                        tx.delete(old.into_bytes());
                    }
                    let key =
                        format!("{}{resident}/{start:08}", members_prefix(&municipality, &household)).into_bytes();
                    match state {
                        Some(s) => {
                            tx.put(key, s.encode_to_vec());
                            tx.put(format!("xh/{municipality}/{resident}/{household}").into_bytes(), Vec::new());
                            tx.put(at, household.into_bytes());
                        }
                        None => tx.delete(at),
                    }
                }
                convert::MemberChange::Merged { from, into } => {
                    let prefix = format!("pr/{from}/");
                    for (key, _) in tx.scan_prefix(prefix.as_bytes())? {
                        let tail = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                        let Some((muni, resident)) = tail.split_once('/') else { continue };
                        tx.put(resident_key(muni, resident), into.clone().into_bytes());
                        tx.put(format!("pr/{into}/{muni}/{resident}").into_bytes(), Vec::new());
                        tx.delete(key);
                    }
                }
            }
        }
        Ok(())
    }
}

/// The member records of (municipality, 世帯番号), each with its person.
pub(crate) fn member_records(store: &dyn Read, muni: &str, household: &str) -> Result<Vec<MemberRecord>, StoreError> {
    let prefix = members_prefix(muni, household);
    let mut out = Vec::new();
    for (key, value) in store.scan_prefix(prefix.as_bytes())? {
        let tail = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
        let Some((resident, _)) = tail.split_once('/') else { return Err(StoreError::Corrupt(tail)) };
        let Some(person) = store.get(&resident_key(muni, resident))? else { continue };
        let record = kokuho_proto::kogaku::v1::MemberStateRecord::decode(value.as_slice())
            .map_err(|e| StoreError::Corrupt(format!("{tail}: {e}")))?;
        let member = convert::member_of(String::from_utf8_lossy(&person).into_owned(), household.to_string(), &record)
            .map_err(StoreError::Corrupt)?;
        out.push(member);
    }
    Ok(out)
}

/// Move pairs (C2) from continuity's stream, for move groups and candidates (H1).
///
/// Keys (tree `kogaku-pairs`): `g/<B>/<h_B>/<D>/<A>/<h_A>/<person>` → the 宛名番号 at B;
/// `p/<person>` → the person's `g/` keys now, one per line (to drop pairs that disappear).
pub(crate) struct Pairs;

impl Projection for Pairs {
    const NAME: &'static str = "pairs";
    const VERSION: u32 = 1;
    const STREAM: &'static str = kokuho_continuity_contract::STREAM.name;

    fn apply(&self, tx: &mut Tx<'_>, ev: &LogEvent<'_>) -> Result<(), ApplyError> {
        for (person, pairs) in convert::person_pairs(ev.payload).map_err(ApplyError::Malformed)? {
            let index = format!("p/{person}").into_bytes();
            if let Some(before) = tx.get(&index)? {
                for key in String::from_utf8_lossy(&before).lines() {
                    tx.delete(key.as_bytes().to_vec());
                }
            }
            let keys: Vec<String> = pairs
                .unwrap_or_default()
                .into_iter()
                .map(|p| {
                    let key = format!(
                        "g/{}/{}/{}/{}/{}/{}",
                        p.to, p.to_household, p.moved_in_on, p.from, p.from_household, p.person
                    );
                    tx.put(key.clone().into_bytes(), p.to_resident.into_bytes());
                    key
                })
                .collect();
            if keys.is_empty() { tx.delete(index) } else { tx.put(index, keys.join("\n").into_bytes()) }
        }
        Ok(())
    }
}

/// Every pair kogaku knows, for H1.
pub(crate) fn pairs(store: &dyn Read) -> Result<Vec<kokuho_kogaku_domain::Pair>, StoreError> {
    let mut out = Vec::new();
    for (key, value) in store.scan_prefix(b"g/")? {
        out.push(pair_of_key(&String::from_utf8_lossy(&key), &value)?);
    }
    Ok(out)
}

/// Every household a record of (municipality, 宛名番号) ever carried.
pub(crate) fn households_of_resident(store: &dyn Read, muni: &str, resident: &str) -> Result<Vec<String>, StoreError> {
    let prefix = format!("xh/{muni}/{resident}/");
    Ok(store
        .scan_prefix(prefix.as_bytes())?
        .into_iter()
        .map(|(key, _)| String::from_utf8_lossy(&key[prefix.len()..]).into_owned())
        .collect())
}

/// The (municipality, 宛名番号) linked to a person now.
pub(crate) fn residents_of_person(store: &dyn Read, person: &str) -> Result<Vec<(String, String)>, StoreError> {
    let prefix = format!("pr/{person}/");
    let mut out = Vec::new();
    for (key, _) in store.scan_prefix(prefix.as_bytes())? {
        let tail = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
        let (muni, resident) = tail.split_once('/').ok_or_else(|| StoreError::Corrupt(tail.clone()))?;
        out.push((muni.to_string(), resident.to_string()));
    }
    Ok(out)
}

/// The person (municipality, 宛名番号) is linked to, if any.
pub(crate) fn person_of(store: &dyn Read, muni: &str, resident: &str) -> Result<Option<String>, StoreError> {
    Ok(store.get(&resident_key(muni, resident))?.map(|p| String::from_utf8_lossy(&p).into_owned()))
}

fn pair_of_key(text: &str, value: &[u8]) -> Result<kokuho_kogaku_domain::Pair, StoreError> {
    let parts: Vec<&str> = text.splitn(7, '/').collect();
    let [_, to, to_household, date, from, from_household, person] = parts[..] else {
        return Err(StoreError::Corrupt(text.to_string()));
    };
    Ok(kokuho_kogaku_domain::Pair {
        person: person.to_string(),
        from: from.to_string(),
        from_household: from_household.to_string(),
        to: to.to_string(),
        to_household: to_household.to_string(),
        to_resident: String::from_utf8_lossy(value).into_owned(),
        moved_in_on: Date::parse(date).map_err(|_| StoreError::Corrupt(text.to_string()))?,
    })
}

/// The pairs of one move group (B, h_B, D) now (H1).
pub(crate) fn group_pairs(
    store: &dyn Read,
    group: &kokuho_kogaku_domain::GroupKey,
) -> Result<Vec<kokuho_kogaku_domain::Pair>, StoreError> {
    let prefix = format!("g/{}/{}/{}/", group.to, group.household, group.moved_in_on);
    store
        .scan_prefix(prefix.as_bytes())?
        .into_iter()
        .map(|(key, value)| pair_of_key(&String::from_utf8_lossy(&key), &value))
        .collect()
}

/// The move groups a person's pairs belong to now.
pub(crate) fn groups_of_person(
    store: &dyn Read,
    person: &str,
) -> Result<Vec<kokuho_kogaku_domain::GroupKey>, StoreError> {
    let Some(keys) = store.get(format!("p/{person}").as_bytes())? else { return Ok(Vec::new()) };
    String::from_utf8_lossy(&keys)
        .lines()
        .map(|key| {
            let p = pair_of_key(key, &[])?;
            Ok(kokuho_kogaku_domain::GroupKey { to: p.to, household: p.to_household, moved_in_on: p.moved_in_on })
        })
        .collect()
}
