//! One test per rule (rules.md H1, H2 and each of its branches, K1–K3, K5, the worked example),
//! each failing if its rule is broken.

use std::collections::{BTreeMap, BTreeSet};

use kokuho_ids::codes::{ContinuationDecision, ContinuationReason, FormerHouseholder, KogakuKind};
use kokuho_ids::{Date, Month};

use super::months::{self, Records};
use super::*;

fn d(s: &str) -> Date {
    Date::parse(s).unwrap()
}

fn m(y: i32, mo: u8) -> Month {
    Month::new(y, mo).unwrap()
}

fn set(persons: &[&str]) -> BTreeSet<PersonId> {
    persons.iter().map(|p| p.to_string()).collect()
}

fn pair(person: &str, from: &str, h_a: &str, to: &str, h_b: &str, date: &str) -> Pair {
    Pair {
        person: person.into(),
        from: from.into(),
        from_household: h_a.into(),
        to: to.into(),
        to_household: h_b.into(),
        to_resident: format!("r{person}"),
        moved_in_on: d(date),
    }
}

/// H1: movers into the same (B, h_B, D) form one move group; each (A, h_A) among them is one
/// candidate; another date or another h_B is another group.
#[test]
fn h1_one_candidate_per_source_household_of_a_move_group() {
    let pairs = [
        pair("X", "131016", "1001", "131032", "2001", "20260510"),
        pair("Y", "131016", "1001", "131032", "2001", "20260510"),
        pair("Z", "131024", "3001", "131032", "2001", "20260510"),
        pair("W", "131016", "1001", "131032", "2001", "20260511"),
        pair("V", "131016", "1001", "131032", "2002", "20260510"),
    ];
    let c = candidates(&pairs);
    assert_eq!(c.len(), 4);
    let group = GroupKey { to: "131032".into(), household: "2001".into(), moved_in_on: d("20260510") };
    let key = CandidateKey { group: group.clone(), from: "131016".into(), from_household: "1001".into() };
    assert_eq!(c[&key], set(&["X", "Y"]));
    assert_eq!(sources(&c, &group), 2);
    let other = GroupKey { moved_in_on: d("20260511"), ..group };
    assert_eq!(sources(&c, &other), 1);
}

/// The fixture's household 1001 → 2001: X is the householder on both sides.
fn unchanged() -> Households {
    Households {
        former_householder: Some("X".into()),
        householder: Some("X".into()),
        members: set(&["X", "Y"]),
        former_members: [("X".to_string(), true), ("Y".to_string(), true)].into(),
        former_householder_died: false,
    }
}

fn rec(decision: ContinuationDecision, reason: ContinuationReason) -> Recommendation {
    Recommendation { decision, reason }
}

/// H2 rule 1: the same householder → 継続 11 (the worked example and the fixture).
#[test]
fn h2_rule1_same_householder_continues_with_11() {
    let h = unchanged();
    assert!(same_householder(&h));
    assert_eq!(
        recommend(&h, &set(&["X", "Y"]), 1),
        rec(ContinuationDecision::Continue, ContinuationReason::SameHouseholder)
    );
    assert_eq!(former_householder(&h), FormerHouseholder::IsHouseholder);
    // Unknown householders are not the same householder.
    let unknown = Households { former_householder: None, householder: None, ..unchanged() };
    assert!(!same_householder(&unknown));
}

/// H2 rule 2: the householder changed within the household → 継続 12.
#[test]
fn h2_rule2_householder_changed_within_the_household_continues_with_12() {
    let h = Households { householder: Some("Y".into()), ..unchanged() };
    assert!(!same_householder(&h) && householder_changed_within(&h));
    assert_eq!(
        recommend(&h, &set(&["X", "Y"]), 1),
        rec(ContinuationDecision::Continue, ContinuationReason::HouseholderChanged)
    );
    assert_eq!(former_householder(&h), FormerHouseholder::IsMember);
    // hh_B was not a member of h_A: not this rule.
    let newcomer = Households { householder: Some("Q".into()), members: set(&["X", "Q"]), ..unchanged() };
    assert!(!householder_changed_within(&newcomer));
    // hh_A is not a member of h_B: not this rule.
    let left = Households { householder: Some("Y".into()), members: set(&["Y"]), ..unchanged() };
    assert!(!householder_changed_within(&left));
}

/// H2 rule 3: hh_A died before the move and every other 被保険者 member of h_A moved → 継続 12.
#[test]
fn h2_rule3_householder_died_and_the_others_moved_continues_with_12() {
    let h = Households {
        former_householder: Some("X".into()),
        householder: Some("Y".into()),
        members: set(&["Y", "C"]),
        former_members: [("X".to_string(), true), ("Y".to_string(), true), ("C".to_string(), true)].into(),
        former_householder_died: true,
    };
    assert!(!householder_changed_within(&h) && householder_died(&h, &set(&["Y", "C"])));
    assert_eq!(
        recommend(&h, &set(&["Y", "C"]), 1),
        rec(ContinuationDecision::Continue, ContinuationReason::HouseholderChanged)
    );
    // A 被保険者 member stayed behind: not this rule (and hh_A is not in h_B: 13).
    assert!(!householder_died(&h, &set(&["Y"])));
    assert_eq!(recommend(&h, &set(&["Y"]), 1).reason, ContinuationReason::SplitWithoutHouseholder);
    // A member who is not 被保険者 (a 擬制世帯主) need not move.
    let mut with_deemed = h.clone();
    with_deemed.former_members.insert("G".into(), false);
    assert!(householder_died(&with_deemed, &set(&["Y", "C"])));
    // Alive: not this rule.
    assert!(!householder_died(&Households { former_householder_died: false, ..h }, &set(&["Y", "C"])));
}

/// H2 rule 4: a move group from more than one (A, h_A) → 非継続 14, after rules 1–3.
#[test]
fn h2_rule4_a_merge_from_several_households_discontinues_with_14() {
    let h = Households { householder: Some("P".into()), members: set(&["P", "X", "Y"]), ..unchanged() };
    assert!(merged_from_several(2) && !merged_from_several(1));
    assert_eq!(
        recommend(&h, &set(&["X", "Y"]), 2),
        rec(ContinuationDecision::Discontinue, ContinuationReason::MergedNotHouseholder)
    );
    // The side whose householder is the householder is rule 1 even in a merge.
    assert_eq!(recommend(&unchanged(), &set(&["X", "Y"]), 2).reason, ContinuationReason::SameHouseholder);
}

/// H2 rule 5: hh_A is not a member of h_B → 非継続 13 (a split without the former householder).
#[test]
fn h2_rule5_a_split_without_the_householder_discontinues_with_13() {
    let h = Households { householder: Some("Y".into()), members: set(&["Y"]), ..unchanged() };
    assert!(split_without_householder(&h));
    assert_eq!(
        recommend(&h, &set(&["Y"]), 1),
        rec(ContinuationDecision::Discontinue, ContinuationReason::SplitWithoutHouseholder)
    );
    assert_eq!(former_householder(&h), FormerHouseholder::NotMember);
}

/// H2 rule 6: otherwise → 非継続 99: hh_A is in h_B, not its householder, and hh_B was not of
/// h_A; or the householders are not known.
#[test]
fn h2_rule6_otherwise_discontinues_with_99() {
    let h = Households { householder: Some("Q".into()), members: set(&["Q", "X"]), ..unchanged() };
    assert_eq!(recommend(&h, &set(&["X"]), 1), rec(ContinuationDecision::Discontinue, ContinuationReason::NeedsReview));
    let unknown = Households { former_householder: None, ..unchanged() };
    assert!(!split_without_householder(&unknown));
    assert_eq!(recommend(&unknown, &set(&["X"]), 1).reason, ContinuationReason::NeedsReview);
}

fn records(entries: &[(i32, u8, KogakuKind)]) -> Records {
    entries.iter().map(|(y, mo, k)| (m(*y, *mo), *k)).collect()
}

/// The worked example of rules.md: h_A has 2025-08, 2025-11, 2026-02 (区分 1) and 2026-03
/// (区分 2); the household moves on 2026-05-10.
fn worked_example() -> Records {
    records(&[
        (2025, 8, KogakuKind::Household),
        (2025, 11, KogakuKind::Household),
        (2026, 2, KogakuKind::Household),
        (2026, 3, KogakuKind::ElderlyOutpatientOnly),
    ])
}

/// K1: only 該当区分 1 counts; a month counts once; inherited months count.
#[test]
fn k1_counted_months() {
    let c = months::counted(&worked_example(), &BTreeSet::new());
    assert_eq!(c, [m(2025, 8), m(2025, 11), m(2026, 2)].into());
    let both_kinds = records(&[(2026, 1, KogakuKind::Household), (2026, 1, KogakuKind::ElderlyOutpatientOnly)]);
    assert_eq!(months::counted(&both_kinds, &BTreeSet::new()).len(), 1);
    assert_eq!(months::counted(&BTreeSet::new(), &[m(2026, 4)].into()), [m(2026, 4)].into());
}

/// K1: X is 多数回該当 when 3 or more counted months fall in [X − 11, X − 1].
#[test]
fn k1_many_times_is_the_fourth_month_in_twelve() {
    let c: BTreeSet<Month> = [m(2025, 8), m(2025, 11), m(2026, 2)].into();
    assert!(months::many_times(&c, m(2026, 6)), "2025-07 … 2026-05 holds 3");
    assert!(months::many_times(&c, m(2026, 7)), "2025-08 … 2026-06 holds 3");
    assert!(!months::many_times(&c, m(2026, 8)), "2025-09 … 2026-07 holds 2");
    assert!(!months::many_times(&c, m(2026, 2)), "X itself is not in its window");
    // [X − 11, X − 1] is 11 months: a month 12 before X does not count.
    let edge: BTreeSet<Month> = [m(2025, 7), m(2025, 8), m(2026, 5)].into();
    assert!(months::many_times(&edge, m(2026, 6)), "2025-07 … 2026-05");
    let out: BTreeSet<Month> = [m(2025, 6), m(2025, 8), m(2026, 5)].into();
    assert!(!months::many_times(&out, m(2026, 6)), "2025-06 is 12 months before");
}

/// K2: RK field 11 counts C(h_A) in [M − 11, M].
#[test]
fn k2_the_count_in_the_twelve_months_ending_at_the_move_month() {
    let c = months::counted(&worked_example(), &BTreeSet::new());
    assert_eq!(months::count(&c, m(2026, 5)), 3);
    assert_eq!(months::count(&c, m(2026, 8)), 2, "2025-09 … 2026-08");
    assert_eq!(months::count(&c, m(2025, 7)), 0, "before the first month");
    assert_eq!(months::count(&c, m(2026, 7)), 3, "2025-08 is the first month of the window");
}

/// K3 and the worked example: on 継続 h_B inherits the months in [M − 11, M]; RG says
/// `202508 202511 202602`, count 3, 多数回該当 1. A month at both sides counts once.
#[test]
fn k3_the_worked_example_hands_over_three_months() {
    let from = months::counted(&worked_example(), &BTreeSet::new());
    let h = months::handover(&from, &BTreeSet::new(), m(2026, 5));
    assert_eq!(h.inherited, [m(2025, 8), m(2025, 11), m(2026, 2)].into());
    assert_eq!((h.count, h.many_times), (3, true));
    let own: BTreeSet<Month> = [m(2026, 2), m(2026, 5)].into();
    let h = months::handover(&from, &own, m(2026, 5));
    assert_eq!((h.count, h.many_times), (4, true));
    // A month outside [M − 11, M] is not handed over.
    let old: BTreeSet<Month> = [m(2025, 5)].into();
    assert!(months::handover(&old, &BTreeSet::new(), m(2026, 5)).inherited.is_empty());
}

/// K3 on 非継続 (the fixture's 131024): no months, h_B's own count 1, not 多数回.
#[test]
fn k3_no_handover_keeps_the_receiving_households_count() {
    let own = months::counted(&records(&[(2026, 5, KogakuKind::Household)]), &BTreeSet::new());
    let h = months::no_handover(&own, m(2026, 5));
    assert_eq!((h.inherited.len(), h.count, h.many_times), (0, 1, false));
}

/// K5: a query for (household, X) answers the counted months in [X − 11, X − 1], inherited
/// ones marked, their count and the flag.
#[test]
fn k5_query_marks_inherited_months() {
    let own = records(&[(2026, 5, KogakuKind::Household)]);
    let inherited: BTreeSet<Month> = [m(2025, 8), m(2025, 11), m(2026, 2)].into();
    let (marked, n, many) = months::query(&own, &inherited, m(2026, 6));
    assert_eq!(n, 4);
    assert!(many);
    let expected: BTreeMap<Month, bool> =
        [(m(2025, 8), true), (m(2025, 11), true), (m(2026, 2), true), (m(2026, 5), false)].into();
    assert_eq!(marked, expected);
    let (_, n, many) = months::query(&own, &BTreeSet::new(), m(2026, 6));
    assert_eq!((n, many), (1, false));
}

proptest::proptest! {
    /// H1 is a function of the pairs, whatever order they come in (T2).
    #[test]
    fn t2_candidates_do_not_depend_on_the_order_of_the_pairs(
        raw in proptest::collection::vec((0u8..4, 0u8..2, 0u8..2, 0u8..2, 0u8..2), 0..12),
        seed in proptest::prelude::any::<u64>(),
    ) {
        let munis = ["131016", "131024"];
        let pairs: Vec<Pair> = raw
            .iter()
            .enumerate()
            .map(|(i, (p, a, ha, hb, day))| Pair {
                person: format!("P{p}-{i}"),
                from: munis[*a as usize].into(),
                from_household: format!("h{ha}"),
                to: "131032".into(),
                to_household: format!("b{hb}"),
                to_resident: format!("r{i}"),
                moved_in_on: Date::from_ymd(2026, 5, 10 + *day).unwrap(),
            })
            .collect();
        let mut shuffled = pairs.clone();
        let n = shuffled.len();
        for i in 0..n {
            shuffled.swap(i, (seed as usize).wrapping_add(i * 31) % n);
        }
        proptest::prop_assert_eq!(candidates(&shuffled), candidates(&pairs));
    }
}

/// K3 / RG field 8: the 多数回該当 flag is for X = M + 1, so a 高額 month in the move month
/// itself counts.
#[test]
fn k3_the_flag_is_for_the_month_after_the_move() {
    let c: BTreeSet<Month> = [m(2025, 9), m(2025, 12), m(2026, 5)].into();
    assert!(!months::many_times(&c, m(2026, 5)) && months::many_times(&c, m(2026, 6)));
    assert!(months::handover(&c, &BTreeSet::new(), m(2026, 5)).many_times);
    assert!(months::no_handover(&c, m(2026, 5)).many_times);
}

mod over_time {
    //! H3–H5, K3, K4 on one candidate over time (`candidate`), and C(h) through chains of 継続.

    use kokuho_ids::codes::{AlertState, Correction};
    use kokuho_rows::Row;

    use super::*;
    use crate::candidate::{self, Candidate, DecidedBy, Facts, Refusal};
    use crate::months::{Handover, Inheritance};

    fn key(h_a: &str) -> CandidateKey {
        CandidateKey {
            group: GroupKey { to: "131032".into(), household: "2001".into(), moved_in_on: d("20260510") },
            from: "131016".into(),
            from_household: h_a.into(),
        }
    }

    fn facts(movers: &[&str], count: u32) -> Facts {
        Facts {
            former_householder: FormerHouseholder::IsHouseholder,
            movers: set(movers),
            recommendation: rec(ContinuationDecision::Continue, ContinuationReason::SameHouseholder),
            rule: 1,
            kogaku_count: count,
            former_householder_person: Some("X".into()),
            householder_person: Some("X".into()),
        }
    }

    fn fresh(f: Option<Facts>) -> Candidate {
        let k = key("1001");
        let mut c = Candidate::new(k.clone(), candidate::number(&k, 0));
        c.facts = f;
        c
    }

    fn rk(rows: &[Row]) -> Vec<(u32, u32, Correction)> {
        rows.iter()
            .filter_map(|r| match r {
                Row::Rk(k) => Some((k.movers, k.kogaku_count, k.correction)),
                _ => None,
            })
            .collect()
    }

    fn a08(rows: &[Row]) -> Vec<AlertState> {
        rows.iter()
            .filter_map(|r| match r {
                Row::Re(e) if e.code == "A08" => Some(e.state),
                _ => None,
            })
            .collect()
    }

    fn rg(rows: &[Row]) -> Vec<(ContinuationDecision, Vec<Month>, u32, bool, Correction)> {
        rows.iter()
            .filter_map(|r| match r {
                Row::Rg(g) => Some((g.decision, g.inherited.clone(), g.count, g.many_times, g.correction)),
                _ => None,
            })
            .collect()
    }

    fn worked_handover() -> Handover {
        months::handover(&[m(2025, 8), m(2025, 11), m(2026, 2)].into(), &BTreeSet::new(), m(2026, 5))
    }

    /// The 継続候補番号 depends on the key alone: 15 digits, the same for the same key, another
    /// for another key or attempt (T2: every arrival order gives the same number).
    #[test]
    fn h1_the_number_is_a_function_of_the_key() {
        let a = candidate::number(&key("1001"), 0);
        assert_eq!(a.len(), 15);
        assert!(!a.starts_with('0'));
        assert_eq!(a, candidate::number(&key("1001"), 0));
        assert_ne!(a, candidate::number(&key("1002"), 0));
        assert_ne!(a, candidate::number(&key("1001"), 1));
        let other_date =
            CandidateKey { group: GroupKey { moved_in_on: d("20260511"), ..key("1001").group }, ..key("1001") };
        assert_ne!(a, candidate::number(&other_date, 0));
    }

    /// The 継続候補番号 spreads over the whole 15-digit range (no two numbers of a receiving
    /// municipality should meet).
    #[test]
    fn h1_numbers_spread_over_fifteen_digits() {
        let numbers: Vec<u64> =
            (0..200).map(|i| candidate::number(&key(&format!("{}", 1000 + i)), 0).parse().unwrap()).collect();
        assert!(numbers.iter().all(|n| (100_000_000_000_000..1_000_000_000_000_000).contains(n)));
        assert!(numbers.iter().any(|n| *n > 500_000_000_000_000), "the upper half is used");
        let distinct: BTreeSet<u64> = numbers.iter().copied().collect();
        assert_eq!(distinct.len(), numbers.len());
    }

    /// Only a confirmed 継続 hands over (K3): undecided and 非継続 do not.
    #[test]
    fn k3_only_a_confirmed_continuation_inherits() {
        let mut c = fresh(Some(facts(&["X"], 0)));
        assert!(!c.continues());
        c.decided = Some(
            candidate::decide(&c, ContinuationDecision::Discontinue, false, d("20260601"), DecidedBy::Api).unwrap(),
        );
        assert!(!c.continues());
        c.decided =
            Some(candidate::reverse(&c, ContinuationDecision::Continue, false, d("20260602"), "ops", "r").unwrap());
        assert!(c.continues());
    }

    /// E011's messages are the ones docs/codes.md documents, one per reason.
    #[test]
    fn e011_messages_are_the_documented_ones() {
        let doc = include_str!("../../../../docs/codes.md");
        let row = doc.lines().find(|l| l.starts_with("| E011 |")).expect("E011 in codes.md");
        let all = [
            Refusal::Unknown,
            Refusal::Withdrawn,
            Refusal::AlreadyDecided,
            Refusal::SecondContinuation,
            Refusal::NotDecided,
        ];
        let messages: BTreeSet<&str> = all.iter().map(|r| r.message()).collect();
        assert_eq!(messages.len(), all.len(), "one message per reason");
        for m in messages {
            assert!(row.contains(m), "{m} is documented");
        }
    }

    /// H5 before a decision: RK 訂正 0 once, nothing while fields 7–11 stay, 訂正 1 when one
    /// changes (field 11 too), 訂正 2 when the candidate disappears, 訂正 1 if it comes back.
    #[test]
    fn h5_rk_is_sent_again_when_its_fields_change_and_withdrawn_when_the_candidate_goes() {
        let mut c = fresh(Some(facts(&["X", "Y"], 3)));
        assert_eq!(rk(&candidate::settle(&mut c, None)), [(2, 3, Correction::First)]);
        assert!(candidate::settle(&mut c, None).is_empty(), "nothing changed");
        // Another mover set of the same size: RK fields are the same, nothing to send.
        c.facts = Some(facts(&["X", "Z"], 3));
        assert!(candidate::settle(&mut c, None).is_empty());
        c.facts = Some(facts(&["X", "Y"], 4));
        assert_eq!(rk(&candidate::settle(&mut c, None)), [(2, 4, Correction::Replaces)]);
        c.facts = Some(facts(&["X"], 4));
        assert_eq!(rk(&candidate::settle(&mut c, None)), [(1, 4, Correction::Replaces)]);
        c.facts = None;
        assert_eq!(rk(&candidate::settle(&mut c, None)), [(1, 4, Correction::Withdrawn)]);
        assert!(candidate::settle(&mut c, None).is_empty(), "withdrawn once");
        c.facts = Some(facts(&["X"], 4));
        assert_eq!(rk(&candidate::settle(&mut c, None)), [(1, 4, Correction::Replaces)]);
    }

    /// H3: nothing is handed over before B decides (no RG for an undecided candidate, whatever
    /// handover is offered); the decision carries the business date; a decision is final.
    #[test]
    fn h3_no_handover_before_the_decision_and_a_decision_is_final() {
        let mut c = fresh(Some(facts(&["X", "Y"], 3)));
        let rows = candidate::settle(&mut c, Some(worked_handover()));
        assert!(rg(&rows).is_empty(), "no RG before the decision");
        let on = d("20260601");
        let decided = candidate::decide(&c, ContinuationDecision::Continue, false, on, DecidedBy::Api).unwrap();
        assert_eq!(decided.on, on);
        c.decided = Some(decided);
        let again = candidate::decide(&c, ContinuationDecision::Discontinue, false, on, DecidedBy::Api);
        assert_eq!(again, Err(Refusal::AlreadyDecided));
        let rows = candidate::settle(&mut c, Some(worked_handover()));
        assert_eq!(
            rg(&rows),
            [(ContinuationDecision::Continue, vec![m(2025, 8), m(2025, 11), m(2026, 2)], 3, true, Correction::First)]
        );
        assert!(rk(&rows).is_empty(), "no RK after the decision");
    }

    /// H3/H5: a decision on a withdrawn candidate is refused.
    #[test]
    fn h5_a_decision_on_a_withdrawn_candidate_is_refused() {
        let c = fresh(None);
        let r = candidate::decide(&c, ContinuationDecision::Continue, false, d("20260601"), DecidedBy::Api);
        assert_eq!(r, Err(Refusal::Withdrawn));
        let Row::Re(e) = Refusal::Withdrawn.row("131032-1", 2) else { panic!("an RE row") };
        assert_eq!((e.code, e.line, e.field.as_str()), ("E011", Some(2), "継続候補番号"));
    }

    /// H4: a second 継続 for the same (h_B, D) is refused; 非継続 is not.
    #[test]
    fn h4_at_most_one_continuation_per_move() {
        let c = fresh(Some(facts(&["X"], 0)));
        let on = d("20260601");
        assert_eq!(
            candidate::decide(&c, ContinuationDecision::Continue, true, on, DecidedBy::Api),
            Err(Refusal::SecondContinuation)
        );
        assert!(candidate::decide(&c, ContinuationDecision::Discontinue, true, on, DecidedBy::Api).is_ok());
        assert!(candidate::decide(&c, ContinuationDecision::Continue, false, on, DecidedBy::Api).is_ok());
    }

    /// H3: auto-confirmation is off unless switched on, takes only reason 11, and never a
    /// second 継続 (H4).
    #[test]
    fn h3_auto_confirmation_only_when_switched_on_and_only_reason_11() {
        let c = fresh(Some(facts(&["X"], 0)));
        assert!(!candidate::auto_confirms(&c, false, false), "off by default");
        assert!(candidate::auto_confirms(&c, true, false));
        assert!(!candidate::auto_confirms(&c, true, true), "H4");
        let mut twelve = facts(&["X"], 0);
        twelve.recommendation = rec(ContinuationDecision::Continue, ContinuationReason::HouseholderChanged);
        assert!(!candidate::auto_confirms(&fresh(Some(twelve)), true, false));
        assert!(!candidate::auto_confirms(&fresh(None), true, false));
    }

    /// H5 after a decision: a change of fields 7–10 or the candidate's disappearance raises
    /// A08 (never an RK, never undoing the decision); back as decided, A08 closes; a change of
    /// field 11 alone is K4's (RG), not A08.
    #[test]
    fn h5_a_change_after_the_decision_raises_a08() {
        let mut c = fresh(Some(facts(&["X", "Y"], 3)));
        candidate::settle(&mut c, None);
        c.decided =
            Some(candidate::decide(&c, ContinuationDecision::Continue, false, d("20260601"), DecidedBy::Api).unwrap());
        candidate::settle(&mut c, Some(worked_handover()));
        c.facts = Some(facts(&["X", "Y"], 2));
        assert!(a08(&candidate::settle(&mut c, Some(worked_handover()))).is_empty(), "field 11 is K4's");
        c.facts = Some(facts(&["X"], 3));
        let rows = candidate::settle(&mut c, Some(worked_handover()));
        assert_eq!(a08(&rows), [AlertState::Raised]);
        assert!(rk(&rows).is_empty());
        assert!(c.decided.is_some(), "the decision stands");
        assert!(candidate::settle(&mut c, Some(worked_handover())).is_empty(), "raised once");
        c.facts = Some(facts(&["X", "Y"], 3));
        assert_eq!(a08(&candidate::settle(&mut c, Some(worked_handover()))), [AlertState::Closed]);
        c.facts = None;
        let rows = candidate::settle(&mut c, Some(worked_handover()));
        assert_eq!(a08(&rows), [AlertState::Raised]);
        let Row::Re(e) = &rows[0] else { panic!("an RE row") };
        assert_eq!(
            (e.field.as_str(), e.counterpart.as_str(), e.counterpart_start),
            ("継続候補番号", "131016", Some(d("20260510")))
        );
    }

    /// K3/K4: RG is sent again (訂正 1) when its months or count change after the handover,
    /// and not when nothing changed.
    #[test]
    fn k4_a_late_month_sends_rg_again() {
        let mut c = fresh(Some(facts(&["X", "Y"], 3)));
        c.decided =
            Some(candidate::decide(&c, ContinuationDecision::Continue, false, d("20260601"), DecidedBy::Api).unwrap());
        assert_eq!(rg(&candidate::settle(&mut c, Some(worked_handover()))).len(), 1);
        assert!(rg(&candidate::settle(&mut c, Some(worked_handover()))).is_empty());
        let late = months::handover(&[m(2025, 8), m(2025, 11)].into(), &BTreeSet::new(), m(2026, 5));
        assert_eq!(
            rg(&candidate::settle(&mut c, Some(late))),
            [(ContinuationDecision::Continue, vec![m(2025, 8), m(2025, 11)], 2, false, Correction::Replaces)]
        );
    }

    /// H3: the operator's reversal changes the decision (RG again, 訂正 1, with the new 判定
    /// and date); it needs a decision, another judgment, and respects H4.
    #[test]
    fn h3_an_operator_reversal() {
        let mut c = fresh(Some(facts(&["X"], 0)));
        let r = candidate::reverse(&c, ContinuationDecision::Continue, false, d("20260602"), "ops", "誤り");
        assert_eq!(r, Err(Refusal::NotDecided));
        c.decided = Some(
            candidate::decide(&c, ContinuationDecision::Discontinue, false, d("20260601"), DecidedBy::Api).unwrap(),
        );
        candidate::settle(&mut c, Some(months::no_handover(&BTreeSet::new(), m(2026, 5))));
        let same = candidate::reverse(&c, ContinuationDecision::Discontinue, false, d("20260602"), "ops", "誤り");
        assert_eq!(same, Err(Refusal::AlreadyDecided));
        let h4 = candidate::reverse(&c, ContinuationDecision::Continue, true, d("20260602"), "ops", "誤り");
        assert_eq!(h4, Err(Refusal::SecondContinuation));
        let r = candidate::reverse(&c, ContinuationDecision::Continue, false, d("20260602"), "ops", "誤り").unwrap();
        assert_eq!(r.by, DecidedBy::Operator { operator: "ops".into(), reason: "誤り".into() });
        c.decided = Some(r);
        let rows = candidate::settle(&mut c, Some(months::handover(&BTreeSet::new(), &BTreeSet::new(), m(2026, 5))));
        assert_eq!(rg(&rows), [(ContinuationDecision::Continue, vec![], 0, false, Correction::Replaces)]);
        let Row::Rg(g) = &rows[0] else { panic!("an RG row") };
        assert_eq!(g.decided_on, d("20260602"));
    }

    /// K3 through a chain: C at A moves to B (継続), B to C (継続): C inherits what B inherited,
    /// each time within the window of that move; a cycle ends.
    #[test]
    fn k3_inheritance_follows_chains_of_continuation_and_cycles_end() {
        let own: BTreeMap<&str, BTreeSet<Month>> =
            [("A", [m(2025, 1), m(2025, 9)].into()), ("B", [m(2026, 1)].into()), ("C", BTreeSet::new())].into();
        let edges: BTreeMap<&str, Vec<Inheritance<&str>>> = [
            ("B", vec![Inheritance { from: "A", m: m(2025, 12) }]),
            ("C", vec![Inheritance { from: "B", m: m(2026, 6) }]),
            // A cycle: A inherits from C.
            ("A", vec![Inheritance { from: "C", m: m(2026, 8) }]),
        ]
        .into();
        let mut own_of = |h: &&str| Ok::<_, ()>(own[h].clone());
        let mut edges_of = |h: &&str| Ok::<_, ()>(edges.get(h).cloned().unwrap_or_default());
        // B: its own 2026-01 and A's months in [2025-01, 2025-12].
        let b = months::counted_through(&"B", &mut own_of, &mut edges_of).unwrap();
        assert_eq!(b, [m(2025, 1), m(2025, 9), m(2026, 1)].into());
        // C: B's months in [2025-07, 2026-06] (2025-01 is outside that window).
        let c = months::counted_through(&"C", &mut own_of, &mut edges_of).unwrap();
        assert_eq!(c, [m(2025, 9), m(2026, 1)].into());
    }
}
