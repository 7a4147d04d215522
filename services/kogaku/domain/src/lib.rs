//! kogaku's rules (rules.md H1–H5, K1–K5) as pure functions.
//!
//! - [`candidates`] (H1): move groups from continuity's C2 pairs — the persons who start 02
//!   periods at B on the same date D in the same household h_B — and one candidate per (A, h_A)
//!   among their movers.
//! - [`recommend`] (H2): the recommended judgment, the first of six ordered rules that applies,
//!   each a function of its own ([`same_householder`], [`householder_changed_within`],
//!   [`householder_died`], [`merged_from_several`], [`split_without_householder`]).
//! - [`households`]: the household state in force on a date and its members as persons.
//! - [`months`] (K1–K3): the counted 高額 months of a household, the count in a window, the
//!   多数回該当 flag, and the handover on 継続.
//!
//! Persons are compared as persons (都道府県被保険者ID), never by 宛名番号 (H2).
//!
//! Architecture invariant: no IO, no clock, no wire types.

pub mod candidate;
pub mod households;
pub mod months;

use std::collections::{BTreeMap, BTreeSet};

use kokuho_ids::Date;
use kokuho_ids::codes::{ContinuationDecision, ContinuationReason, FormerHouseholder};

/// A person of the prefecture (都道府県被保険者ID).
pub type PersonId = String;

/// A C2 pair as continuity publishes it: the person's 02 転出 at A (household h_A) paired with
/// their 02 転入 at B (household h_B) starting on D.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pair {
    pub person: PersonId,
    pub from: String,
    pub from_household: String,
    pub to: String,
    pub to_household: String,
    pub to_resident: String,
    pub moved_in_on: Date,
}

/// A move group's key (H1): the receiving municipality B, its household h_B and the date D.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    pub to: String,
    pub household: String,
    pub moved_in_on: Date,
}

/// A candidate's key (H1): its move group and the (A, h_A) its movers came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CandidateKey {
    pub group: GroupKey,
    pub from: String,
    pub from_household: String,
}

/// H1: the candidates of every move group, with their movers (persons), from the pairs.
pub fn candidates(pairs: &[Pair]) -> BTreeMap<CandidateKey, BTreeSet<PersonId>> {
    let mut out: BTreeMap<CandidateKey, BTreeSet<PersonId>> = BTreeMap::new();
    for p in pairs {
        let key = CandidateKey {
            group: GroupKey { to: p.to.clone(), household: p.to_household.clone(), moved_in_on: p.moved_in_on },
            from: p.from.clone(),
            from_household: p.from_household.clone(),
        };
        out.entry(key).or_default().insert(p.person.clone());
    }
    out
}

/// How many (A, h_A) a move group comes from (H2 rule 4).
pub fn sources(candidates: &BTreeMap<CandidateKey, BTreeSet<PersonId>>, group: &GroupKey) -> usize {
    candidates.keys().filter(|k| k.group == *group).count()
}

/// The households of a candidate as H2 compares them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Households {
    /// hh_A: the householder of h_A on D − 1, as a person (`None`: not known).
    pub former_householder: Option<PersonId>,
    /// hh_B: the householder of h_B on D, as a person.
    pub householder: Option<PersonId>,
    /// Members of h_B on D.
    pub members: BTreeSet<PersonId>,
    /// Members of h_A on D − 1, each with whether they are 被保険者 (have a period).
    pub former_members: BTreeMap<PersonId, bool>,
    /// hh_A's period ended by 04 死亡 on or before D − 1.
    pub former_householder_died: bool,
}

/// What H2 recommends, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recommendation {
    pub decision: ContinuationDecision,
    pub reason: ContinuationReason,
}

/// H2 rule 1: hh_A = hh_B.
pub fn same_householder(h: &Households) -> bool {
    h.former_householder.is_some() && h.former_householder == h.householder
}

/// H2 rule 2: hh_A is a member of h_B on D but not its householder, and hh_B was a member of
/// h_A on D − 1 (the householder changed within the same household).
pub fn householder_changed_within(h: &Households) -> bool {
    let (Some(a), Some(b)) = (&h.former_householder, &h.householder) else { return false };
    a != b && h.members.contains(a) && h.former_members.contains_key(b)
}

/// H2 rule 3: hh_A died on or before D − 1, and every other 被保険者 member of h_A on D − 1
/// moved into h_B.
pub fn householder_died(h: &Households, movers: &BTreeSet<PersonId>) -> bool {
    let Some(a) = &h.former_householder else { return false };
    h.former_householder_died
        && h.former_members.iter().filter(|(p, insured)| **insured && *p != a).all(|(p, _)| movers.contains(p))
}

/// H2 rule 4: the move group comes from more than one (A, h_A) (the side of a merge whose
/// former householder is not the householder).
pub fn merged_from_several(sources: usize) -> bool {
    sources > 1
}

/// H2 rule 5: hh_A is not a member of h_B on D (the side of a split without the former
/// householder).
pub fn split_without_householder(h: &Households) -> bool {
    h.former_householder.as_ref().is_some_and(|a| !h.members.contains(a))
}

/// H2: which of the six ordered rules applies first (1–6).
pub fn deciding_rule(h: &Households, movers: &BTreeSet<PersonId>, sources: usize) -> u8 {
    if same_householder(h) {
        1
    } else if householder_changed_within(h) {
        2
    } else if householder_died(h, movers) {
        3
    } else if merged_from_several(sources) {
        4
    } else if split_without_householder(h) {
        5
    } else {
        6
    }
}

/// H2: the recommendation of each rule.
pub fn recommendation_of(rule: u8) -> Recommendation {
    use ContinuationDecision::{Continue, Discontinue};
    use ContinuationReason::*;
    let (decision, reason) = match rule {
        1 => (Continue, SameHouseholder),
        2 | 3 => (Continue, HouseholderChanged),
        4 => (Discontinue, MergedNotHouseholder),
        5 => (Discontinue, SplitWithoutHouseholder),
        _ => (Discontinue, NeedsReview),
    };
    Recommendation { decision, reason }
}

/// H2: the first rule that applies decides.
pub fn recommend(h: &Households, movers: &BTreeSet<PersonId>, sources: usize) -> Recommendation {
    recommendation_of(deciding_rule(h, movers, sources))
}

/// RK field 7: is hh_A this household's householder (1), a member (2), or neither (3)?
pub fn former_householder(h: &Households) -> FormerHouseholder {
    match &h.former_householder {
        Some(a) if h.householder.as_ref() == Some(a) => FormerHouseholder::IsHouseholder,
        Some(a) if h.members.contains(a) => FormerHouseholder::IsMember,
        _ => FormerHouseholder::NotMember,
    }
}

#[cfg(test)]
mod tests;
