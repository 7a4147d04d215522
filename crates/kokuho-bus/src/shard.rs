//! Shards: one service run as several instances, each owning a fixed part of the prefecture's
//! municipalities (docs/architecture.md, "Scaling out"). Only a service whose rules never look
//! across municipalities may be sharded (relay: each partition of the intermediate server is one
//! municipality's, R1–R5).
//!
//! Everything that must have one writer is named per shard: its durable consumers
//! (`relay-persons-s2of3`), its subjects of its own stream (`kokuho.relay.plans.s2of3`), its lease
//! (`relay.s2of3`), its audit chain (`kokuho.audit.relay.s2of3`) and its store directory. A whole
//! (unsharded) service keeps the plain names, so a deployment of one shard is what it always was.
//!
//! The number of shards is fixed for the life of the log: a shard's ledger is the fold of its own
//! subjects, so changing the count is a migration (a new deployment replayed from the inputs), not
//! a setting to turn.

use std::fmt;

/// The most shards a service may run as. Each shard's consumer names are in its NATS user's
/// permissions ahead of time (`access::service_permissions`), so the list is bounded.
pub const MAX_SHARDS: u32 = 4;

/// Shard `index` (1-based) of `count`; `Shard::WHOLE` is the one shard of an unsharded service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Self::WHOLE
    }
}

impl Shard {
    pub const WHOLE: Shard = Shard { index: 1, count: 1 };

    /// Shard `index` of `count` (1 ≤ index ≤ count ≤ [`MAX_SHARDS`]).
    pub fn new(index: u32, count: u32) -> Result<Self, String> {
        if count == 0 || count > MAX_SHARDS || index == 0 || index > count {
            return Err(format!("a shard is k/n with 1 ≤ k ≤ n ≤ {MAX_SHARDS}, not {index}/{count}"));
        }
        Ok(Self { index, count })
    }

    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// `s2of3`, or empty for the whole service.
    pub fn label(&self) -> String {
        if self.is_whole() { String::new() } else { format!("s{}of{}", self.index, self.count) }
    }

    /// `<name>` with `-s2of3` after it (consumer names, store directories); the name itself when whole.
    pub fn dashed(&self, name: &str) -> String {
        if self.is_whole() { name.to_string() } else { format!("{name}-{}", self.label()) }
    }

    /// `<subject or key>` with the token `.s2of3` after it (subjects, lease keys, audit chains).
    pub fn dotted(&self, subject: &str) -> String {
        if self.is_whole() { subject.to_string() } else { format!("{subject}.{}", self.label()) }
    }

    /// Whether this shard owns the municipality: its code without the check digit, modulo the
    /// count. Fixed by the code alone, so every instance and every replay agrees.
    pub fn owns(&self, municipality: &str) -> bool {
        if self.is_whole() {
            return true;
        }
        let digits = municipality.get(..5).unwrap_or(municipality);
        let n: u64 = digits.bytes().filter(u8::is_ascii_digit).fold(0, |n, d| n * 10 + u64::from(d - b'0'));
        n % u64::from(self.count) == u64::from(self.index - 1)
    }

    /// Numbers unique across the shards (relay's operation ids, which its readers key by): shard
    /// k of n numbers with the ids ≡ k − 1 (mod n). The first of its own at or after `id`.
    pub fn own_id_at_or_after(&self, id: u64) -> u64 {
        let (n, r) = (u64::from(self.count), u64::from(self.index - 1));
        id + (r + n - id % n) % n
    }

    /// The step between two of a shard's own ids.
    pub fn id_step(&self) -> u64 {
        u64::from(self.count)
    }

    /// Every shard of every count a service may run as, but the whole one.
    pub fn all_partial() -> impl Iterator<Item = Shard> {
        (2..=MAX_SHARDS).flat_map(|count| (1..=count).map(move |index| Shard { index, count }))
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `k/n`, as in the setting `relay_shard = 2/3`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (k, n) = s.split_once('/').ok_or_else(|| format!("a shard is k/n (e.g. 2/3), not {s:?}"))?;
        let parse = |v: &str| v.trim().parse::<u32>().map_err(|_| format!("a shard is k/n (e.g. 2/3), not {s:?}"));
        Shard::new(parse(k)?, parse(n)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names() {
        let s: Shard = "2/3".parse().unwrap();
        assert_eq!(s.label(), "s2of3");
        assert_eq!(s.dashed("relay-persons"), "relay-persons-s2of3");
        assert_eq!(s.dotted("kokuho.relay.plans"), "kokuho.relay.plans.s2of3");
        assert_eq!(Shard::WHOLE.dashed("relay-persons"), "relay-persons");
        assert_eq!(Shard::WHOLE.dotted("kokuho.relay.plans"), "kokuho.relay.plans");
        for bad in ["0/2", "3/2", "1/0", "1/5", "2", "a/b", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    proptest! {
        /// Every municipality has exactly one owner among the shards of a count.
        #[test]
        fn one_owner(code in "[0-9]{6}", count in 1u32..=MAX_SHARDS) {
            let owners = (1..=count).filter(|k| Shard::new(*k, count).unwrap().owns(&code)).count();
            prop_assert_eq!(owners, 1);
        }
    }

    /// Each shard's ids are its own: no two shards of a count give the same id, and the whole
    /// service numbers 1, 2, 3, … as before.
    #[test]
    fn ids_apart() {
        assert_eq!(Shard::WHOLE.own_id_at_or_after(7), 7);
        assert_eq!(Shard::WHOLE.id_step(), 1);
        for count in 2..=MAX_SHARDS {
            let mut seen = std::collections::BTreeSet::new();
            for index in 1..=count {
                let s = Shard::new(index, count).unwrap();
                let mut id = s.own_id_at_or_after(1);
                assert!(id >= 1 && id < 1 + u64::from(count));
                for _ in 0..50 {
                    assert!(seen.insert(id), "{id} twice ({s})");
                    assert_eq!(s.own_id_at_or_after(id), id);
                    id += s.id_step();
                }
            }
        }
    }

    /// Tokyo's 62 municipalities spread over two shards (neither is empty or takes nearly all).
    #[test]
    fn spread() {
        let tokyo = ["13101", "13102", "13103", "13104", "13105", "13106", "13201", "13202", "13203", "13204"];
        let first = Shard::new(1, 2).unwrap();
        let n = tokyo.iter().filter(|c| first.owns(c)).count();
        assert!((3..=7).contains(&n), "{n} of {}", tokyo.len());
    }
}
