//! The households H2 compares (rules.md, "Household continuity candidates"): the household
//! state in force on a date, its householder, and its members as persons.

use std::collections::{BTreeMap, BTreeSet};

use kokuho_ids::Date;

use crate::PersonId;

/// A household state (a KS record) from its 異動年月日 on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HouseholdState {
    /// 世帯主宛名番号 (住民票 上の世帯主).
    pub householder: String,
    /// 擬制世帯主区分 1: the householder is not in NHI.
    pub deemed: bool,
    pub card_symbol: String,
    pub card_number: String,
}

/// The state in force on `date`: the one with the latest 異動年月日 on or before it.
pub fn in_force(states: &BTreeMap<Date, HouseholdState>, date: Date) -> Option<&HouseholdState> {
    states.range(..=date).next_back().map(|(_, s)| s)
}

/// A linked KK record as membership needs it: the person, the household it carries, and the
/// 被保険者 period (`None` for a 擬制世帯主 record, in force while it exists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub person: PersonId,
    pub household: String,
    /// (適用開始年月日, 適用終了年月日).
    pub period: Option<(Date, Option<Date>)>,
    /// The period ended by 04 死亡.
    pub died: bool,
}

/// H2 rule 3: did `person`'s period in `household` end by 04 死亡 on or before `date`?
pub fn died_by(records: &[MemberRecord], person: &str, household: &str, date: Date) -> bool {
    records.iter().any(|r| {
        r.person == person
            && r.household == household
            && r.died
            && r.period.is_some_and(|(_, end)| end.is_some_and(|e| e <= date))
    })
}

/// Members of `household` on `date`: the persons whose records carry its 世帯番号 — 被保険者
/// periods covering the date, or 擬制世帯主 records in force.
pub fn members_on(records: &[MemberRecord], household: &str, date: Date) -> BTreeSet<PersonId> {
    records
        .iter()
        .filter(|r| r.household == household)
        .filter(|r| match r.period {
            None => true,
            Some((start, end)) => start <= date && end.is_none_or(|e| date <= e),
        })
        .map(|r| r.person.clone())
        .collect()
}

/// Members of `household` on `date`, each with whether they are 被保険者 there (H2 rule 3).
pub fn members_with_kind(records: &[MemberRecord], household: &str, date: Date) -> BTreeMap<PersonId, bool> {
    let mut out: BTreeMap<PersonId, bool> = BTreeMap::new();
    for person in members_on(records, household, date) {
        let insured = records.iter().any(|r| {
            r.person == person
                && r.household == household
                && r.period.is_some_and(|(s, e)| s <= date && e.is_none_or(|e| date <= e))
        });
        out.insert(person, insured);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        Date::parse(s).unwrap()
    }

    fn state(householder: &str) -> HouseholdState {
        HouseholdState {
            householder: householder.into(),
            deemed: false,
            card_symbol: "千代田".into(),
            card_number: "1001".into(),
        }
    }

    /// The householder in force on a date is the latest KS state on or before it.
    #[test]
    fn the_state_in_force_on_a_date() {
        let states: BTreeMap<Date, HouseholdState> =
            [(d("20200401"), state("100001")), (d("20260301"), state("100002"))].into();
        assert_eq!(in_force(&states, d("20200331")), None);
        assert_eq!(in_force(&states, d("20200401")).unwrap().householder, "100001");
        assert_eq!(in_force(&states, d("20260228")).unwrap().householder, "100001");
        assert_eq!(in_force(&states, d("20260301")).unwrap().householder, "100002");
    }

    /// Members on a date: 被保険者 periods covering it (both ends included) and 擬制世帯主
    /// records; another household's records do not count.
    #[test]
    fn members_on_a_date() {
        let records = [
            MemberRecord {
                person: "X".into(),
                household: "1001".into(),
                period: Some((d("20200401"), Some(d("20260509")))),
                died: false,
            },
            MemberRecord {
                person: "Y".into(),
                household: "1001".into(),
                period: Some((d("20260501"), None)),
                died: false,
            },
            MemberRecord { person: "G".into(), household: "1001".into(), period: None, died: false },
            MemberRecord {
                person: "Z".into(),
                household: "1002".into(),
                period: Some((d("20200401"), None)),
                died: false,
            },
        ];
        let on = |date: &str| members_on(&records, "1001", d(date));
        assert_eq!(on("20260509"), ["G", "X", "Y"].iter().map(|s| s.to_string()).collect());
        assert_eq!(on("20260510"), ["G", "Y"].iter().map(|s| s.to_string()).collect());
        assert_eq!(on("20260430"), ["G", "X"].iter().map(|s| s.to_string()).collect());
        let kinds = members_with_kind(&records, "1001", d("20260509"));
        assert_eq!(kinds, [("G".to_string(), false), ("X".to_string(), true), ("Y".to_string(), true)].into());
        // A 擬制世帯主 whose 被保険者 period there ended earlier is a member, not 被保険者.
        let mut more = records.to_vec();
        more.push(MemberRecord {
            person: "G".into(),
            household: "1001".into(),
            period: Some((d("20100401"), Some(d("20150331")))),
            died: false,
        });
        assert_eq!(members_with_kind(&more, "1001", d("20260509")).get("G"), Some(&false));
    }

    /// H2 rule 3's fact: a period in the household ended by 04 死亡 on or before the date.
    #[test]
    fn died_by_a_date() {
        let records = [
            MemberRecord {
                person: "X".into(),
                household: "1001".into(),
                period: Some((d("20200401"), Some(d("20260420")))),
                died: true,
            },
            MemberRecord {
                person: "Y".into(),
                household: "1001".into(),
                period: Some((d("20200401"), Some(d("20260420")))),
                died: false,
            },
        ];
        assert!(died_by(&records, "X", "1001", d("20260509")));
        assert!(died_by(&records, "X", "1001", d("20260420")));
        assert!(!died_by(&records, "X", "1001", d("20260419")), "not yet");
        assert!(!died_by(&records, "X", "1002", d("20260509")), "another household");
        assert!(!died_by(&records, "Y", "1001", d("20260509")), "ended otherwise");
    }
}
