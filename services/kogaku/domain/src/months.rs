//! 高額 months (rules.md K1–K4): the counted months of a household, windows, the 多数回該当
//! flag, and what a 継続 hands over.

use std::collections::{BTreeMap, BTreeSet};

use kokuho_ids::Month;
use kokuho_ids::codes::KogakuKind;

/// A household's KG records in force: (診療年月, 該当区分) registered and not deleted.
pub type Records = BTreeSet<(Month, KogakuKind)>;

/// K1: C(h) — the distinct months with 該当区分 1 (区分 2, 70歳以上外来特例 only, never counts),
/// plus the months inherited on 継続 (K3).
pub fn counted(records: &Records, inherited: &BTreeSet<Month>) -> BTreeSet<Month> {
    records
        .iter()
        .filter(|(_, kind)| *kind == KogakuKind::Household)
        .map(|(m, _)| *m)
        .chain(inherited.iter().copied())
        .collect()
}

/// The months of `c` in [first, last].
fn between(c: &BTreeSet<Month>, first: i32, last: i32) -> BTreeSet<Month> {
    c.iter().filter(|m| (first..=last).contains(&m.index())).copied().collect()
}

/// The months of `c` in [last − 11, last]: the 12 months ending at `last` (K2, K3).
pub fn in_window(c: &BTreeSet<Month>, last: Month) -> BTreeSet<Month> {
    between(c, last.index() - 11, last.index())
}

/// The months of `c` in [X − 11, X − 1]: the 11 months before X (K1, K5).
pub fn before(c: &BTreeSet<Month>, x: Month) -> BTreeSet<Month> {
    between(c, x.index() - 11, x.index() - 1)
}

/// K2: |C ∩ [M − 11, M]|.
pub fn count(c: &BTreeSet<Month>, last: Month) -> u32 {
    in_window(c, last).len() as u32
}

/// K1: X is 多数回該当 when |C ∩ [X − 11, X − 1]| ≥ 3 (the 4th or later 高額 month in 12).
pub fn many_times(c: &BTreeSet<Month>, x: Month) -> bool {
    before(c, x).len() >= 3
}

/// What RG reports for a candidate (K3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    /// The inherited months in [M − 11, M] (empty on 非継続).
    pub inherited: BTreeSet<Month>,
    /// |C(h_B) ∩ [M − 11, M]| after the handover.
    pub count: u32,
    /// 多数回該当 for X = M + 1.
    pub many_times: bool,
}

/// K3 on 継続: h_B inherits C(h_A) ∩ [M − 11, M] (a month present at both counts once).
/// `own` is C(h_B) without this candidate's months (other inheritances included).
pub fn handover(from: &BTreeSet<Month>, own: &BTreeSet<Month>, m: Month) -> Handover {
    let inherited = in_window(from, m);
    let after: BTreeSet<Month> = own.union(&inherited).copied().collect();
    Handover { count: count(&after, m), many_times: many_times(&after, Month::from_index(m.index() + 1)), inherited }
}

/// K3 on 非継続: no months; the count and flag of h_B as it is.
pub fn no_handover(own: &BTreeSet<Month>, m: Month) -> Handover {
    Handover {
        inherited: BTreeSet::new(),
        count: count(own, m),
        many_times: many_times(own, Month::from_index(m.index() + 1)),
    }
}

/// K5: what a query for (household, month X) answers: the counted months in [X − 11, X − 1],
/// each marked inherited or not, their count and the 多数回該当 flag.
pub fn query(records: &Records, inherited: &BTreeSet<Month>, x: Month) -> (BTreeMap<Month, bool>, u32, bool) {
    let c = counted(records, inherited);
    let window = before(&c, x);
    let own = counted(records, &BTreeSet::new());
    let marked: BTreeMap<Month, bool> = window.iter().map(|m| (*m, !own.contains(m))).collect();
    let n = window.len() as u32;
    (marked, n, n >= 3)
}

/// An inheritance into a household (K3): a confirmed 継続 from `from` at move month `m`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inheritance<H> {
    pub from: H,
    pub m: Month,
}

/// K1, K3: C(h) — its own counted months and, for every confirmed 継続 into it, the source
/// household's C ∩ [M − 11, M], followed back through earlier 継続 (a household that moved
/// twice hands over what it inherited). A cycle (households that moved into each other) is
/// cut where it closes, so the answer is the same whatever the order of the facts.
pub fn counted_through<H: Ord + Clone, E>(
    h: &H,
    own: &mut impl FnMut(&H) -> Result<BTreeSet<Month>, E>,
    inherits: &mut impl FnMut(&H) -> Result<Vec<Inheritance<H>>, E>,
) -> Result<BTreeSet<Month>, E> {
    let mut path = BTreeSet::new();
    walk(h, own, inherits, &mut path)
}

fn walk<H: Ord + Clone, E>(
    h: &H,
    own: &mut impl FnMut(&H) -> Result<BTreeSet<Month>, E>,
    inherits: &mut impl FnMut(&H) -> Result<Vec<Inheritance<H>>, E>,
    path: &mut BTreeSet<H>,
) -> Result<BTreeSet<Month>, E> {
    let mut c = own(h)?;
    path.insert(h.clone());
    for i in inherits(h)? {
        if path.contains(&i.from) {
            continue;
        }
        c.extend(in_window(&walk(&i.from, own, inherits, path)?, i.m));
    }
    path.remove(h);
    Ok(c)
}
