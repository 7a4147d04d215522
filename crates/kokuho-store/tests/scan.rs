//! A bounded scan (`scan_first`), a page past a key (`scan_after`) and a count (`count_prefix`)
//! read what the full scan reads: on a sled store and through a transaction's pending writes
//! (puts and deletes) over it.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use kokuho_store::{Read, SledDb, Store, Tx};
use proptest::prelude::*;

/// Keys of a small alphabet, so that prefixes, puts and deletes meet.
fn key() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'/')], 1..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn a_bounded_scan_is_the_head_of_the_full_one(
        stored in proptest::collection::vec(key(), 0..30),
        writes in proptest::collection::vec((key(), any::<bool>()), 0..20),
        prefix in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b')], 0..2),
        limit in 0usize..12,
        after in key(),
    ) {
        // The page past `after`: the full scan's keys after it, the first `limit`.
        let page = |full: &[(Vec<u8>, Vec<u8>)]| -> Vec<(Vec<u8>, Vec<u8>)> {
            full.iter().filter(|(k, _)| *k > after).take(limit).cloned().collect()
        };
        let dir = tempfile::tempdir().unwrap();
        let db = SledDb::open(&dir.path().join("sled")).unwrap();
        let store = db.store("t").unwrap();
        store.commit(stored.iter().map(|k| (k.clone(), Some(b"s".to_vec()))).collect()).unwrap();
        let full = store.scan_prefix(&prefix).unwrap();
        prop_assert_eq!(store.scan_first(&prefix, limit).unwrap(), full.iter().take(limit).cloned().collect::<Vec<_>>());
        prop_assert_eq!(store.count_prefix(&prefix).unwrap(), full.len() as u64);
        prop_assert_eq!(store.scan_after(&prefix, Some(&after), limit).unwrap(), page(&full));
        prop_assert_eq!(store.last_under(&prefix).unwrap(), full.last().cloned());

        let mut tx = Tx::new(&store);
        for (k, put) in &writes {
            if *put { tx.put(k.clone(), b"w".to_vec()) } else { tx.delete(k.clone()) }
        }
        let full = Read::scan_prefix(&tx, &prefix).unwrap();
        // What the full scan sees: the writes over the store.
        let mut expected: std::collections::BTreeMap<Vec<u8>, Vec<u8>> =
            stored.iter().filter(|k| k.starts_with(&prefix)).map(|k| (k.clone(), b"s".to_vec())).collect();
        for (k, put) in writes.iter().filter(|(k, _)| k.starts_with(&prefix)) {
            if *put { expected.insert(k.clone(), b"w".to_vec()); } else { expected.remove(k); }
        }
        prop_assert_eq!(&full, &expected.into_iter().collect::<Vec<_>>());
        prop_assert_eq!(Read::scan_first(&tx, &prefix, limit).unwrap(), full.iter().take(limit).cloned().collect::<Vec<_>>());
        prop_assert_eq!(Read::count_prefix(&tx, &prefix).unwrap(), full.len() as u64);
        prop_assert_eq!(Read::scan_after(&tx, &prefix, Some(&after), limit).unwrap(), page(&full));
    }
}
