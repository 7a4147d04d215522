//! A write set over a [`Store`] with read-your-writes.

use std::collections::BTreeMap;

use crate::{Entry, Read, Store, StoreError, Write};

/// Pending writes of one commit group. Reads see the pending writes first, then the store.
pub struct Tx<'a> {
    store: &'a dyn Store,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Tx<'a> {
    pub fn new(store: &'a dyn Store) -> Self {
        Self { store, writes: BTreeMap::new() }
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.store.get(key),
        }
    }

    pub fn contains(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.get(key)?.is_some())
    }

    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.writes.insert(key.into(), Some(value.into()));
    }

    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.writes.insert(key.into(), None);
    }

    /// Every live (key, value) under `prefix`, pending writes merged over the store, in order.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        self.scan_first(prefix, usize::MAX)
    }

    /// The first `limit` live (key, value) under `prefix`, pending writes merged over the store.
    pub fn scan_first(&self, prefix: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError> {
        self.scan_after(prefix, None, limit)
    }

    /// The first `limit` live (key, value) under `prefix` past `after`, pending writes merged
    /// over the store. The store's first `limit` + (pending writes in that range) keys are
    /// enough: a pending delete hides at most one of them, and a later stored key sorts after
    /// all of them.
    pub fn scan_after(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Vec<Entry>, StoreError> {
        use std::ops::Bound;
        let from = match after {
            Some(after) => Bound::Excluded(after.to_vec()),
            None => Bound::Included(prefix.to_vec()),
        };
        let pending: Vec<_> = self
            .writes
            .range((from, Bound::Unbounded))
            .skip_while(|(k, _)| k.as_slice() < prefix)
            .take_while(|(k, _)| k.starts_with(prefix))
            .collect();
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = self
            .store
            .scan_after(prefix, after, limit.saturating_add(pending.len()))?
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        for (k, v) in pending {
            merged.insert(k.clone(), v.clone());
        }
        Ok(merged.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).take(limit).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// The writes, for [`Store::commit`].
    pub fn into_writes(self) -> Vec<Write> {
        self.writes.into_iter().collect()
    }
}

impl Read for Tx<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Tx::get(self, key)
    }

    fn scan_after(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Vec<Entry>, StoreError> {
        Tx::scan_after(self, prefix, after, limit)
    }
}
