//! kogaku's projections of the intake stream: the KG records in force (`months`) and the
//! household states (`households`).
//!
//! Keys: tree `kogaku-months`: `g/<muni>/<世帯番号>/<YYYYMM>/<該当区分>` → present while
//! registered; tree `kogaku-households`: `h/<muni>/<世帯番号>/<異動年月日>` → the state
//! (`HouseholdStateRecord`).

use std::collections::BTreeMap;

use kokuho_ids::codes::KogakuKind;
use kokuho_ids::{Date, Month};
use kokuho_kogaku_domain::households::HouseholdState;
use kokuho_kogaku_domain::months::Records;
use kokuho_store::{ApplyError, LogEvent, Projection, Read, StoreError, Tx};
use prost::Message as _;

use crate::convert;

pub(crate) struct Months;

fn household_prefix(muni: &str, household: &str) -> String {
    format!("g/{muni}/{household}/")
}

impl Projection for Months {
    const NAME: &'static str = "months";
    const VERSION: u32 = 1;
    const STREAM: &'static str = kokuho_intake_contract::STREAM.name;

    fn apply(&self, tx: &mut Tx<'_>, ev: &LogEvent<'_>) -> Result<(), ApplyError> {
        for r in convert::kogaku_records(ev.payload).map_err(ApplyError::Malformed)? {
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
        let month =
            Month::new((month / 100) as i32, (month % 100) as u8).map_err(|_| StoreError::Corrupt(tail.clone()))?;
        let kind = KogakuKind::parse(kind).map_err(|_| StoreError::Corrupt(tail.clone()))?;
        out.insert((month, kind));
    }
    Ok(out)
}

pub(crate) struct Households;

fn states_prefix(muni: &str, household: &str) -> String {
    format!("h/{muni}/{household}/")
}

impl Projection for Households {
    const NAME: &'static str = "households";
    const VERSION: u32 = 1;
    const STREAM: &'static str = kokuho_intake_contract::STREAM.name;

    fn apply(&self, tx: &mut Tx<'_>, ev: &LogEvent<'_>) -> Result<(), ApplyError> {
        for r in convert::household_records(ev.payload).map_err(ApplyError::Malformed)? {
            let key = format!("{}{}", states_prefix(&r.municipality, &r.household), r.changed_on).into_bytes();
            match &r.state {
                Some(s) => tx.put(key, convert::stored_state(s).encode_to_vec()),
                None => tx.delete(key),
            }
        }
        Ok(())
    }
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
