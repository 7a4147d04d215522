//! The sled implementation of [`Store`]: one sled database per service, one tree per projection.

use std::path::{Path, PathBuf};

use crate::{Entry, Read, Store, StoreError, Write};

/// A service's sled database.
#[derive(Clone)]
pub struct SledDb {
    db: sled::Db,
    path: PathBuf,
}

impl std::fmt::Debug for SledDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SledDb({})", self.path.display())
    }
}

impl SledDb {
    /// Opens (or creates) the database at `path`. A database sled reports as corrupt is moved
    /// aside to `<path>.corrupt-<n>` and a new, empty one is created: its projections then
    /// rebuild from the log.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(path, CACHE_BYTES)
    }

    /// [`SledDb::open`] with a page cache of `cache_bytes` (as sled counts: what the nodes take
    /// in memory is about three times that; docs/benchmarks.md, issue 14).
    pub fn open_with_cache(path: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        match Self::open_once(path, cache_bytes) {
            Ok(db) => Ok(db),
            Err(StoreError::Corrupt(why)) => {
                let mut n = 1;
                let aside = loop {
                    let candidate = PathBuf::from(format!("{}.corrupt-{n}", path.display()));
                    if !candidate.exists() {
                        break candidate;
                    }
                    n += 1;
                };
                tracing::error!(path = %path.display(), aside = %aside.display(), error = %why,
                    "Store is corrupt; moving it aside and rebuilding from the log");
                std::fs::rename(path, &aside).map_err(|e| StoreError::Io(e.to_string()))?;
                Self::open_once(path, cache_bytes)
            }
            Err(e) => Err(e),
        }
    }

    /// Opens the files; while another handle of this process or a process that is stopping
    /// still holds their lock (sled releases it when its last background thread ends), waits
    /// for it, up to [`LOCK_PATIENCE`].
    fn open_once(path: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let deadline = std::time::Instant::now() + LOCK_PATIENCE;
        loop {
            let opened = sled::Config::new()
                .path(path)
                // Durability comes from the explicit flush of each commit group.
                .flush_every_ms(None)
                .cache_capacity(cache_bytes)
                .open();
            match opened {
                Ok(db) => return Ok(Self { db, path: path.to_path_buf() }),
                Err(sled::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => return Err(map_err(e)),
            }
        }
    }

    /// The store of one projection.
    pub fn store(&self, name: &str) -> Result<SledStore, StoreError> {
        let tree = self.db.open_tree(name).map_err(map_err)?;
        Ok(SledStore { tree })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// How long opening waits for the files' lock to be released.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

fn map_err(e: sled::Error) -> StoreError {
    match e {
        sled::Error::Corruption { .. } => StoreError::Corrupt(e.to_string()),
        sled::Error::Unsupported(_) | sled::Error::ReportableBug(_) => StoreError::Corrupt(e.to_string()),
        other => StoreError::Io(other.to_string()),
    }
}

/// sled's page cache per store (its default is 1 GiB): what a service keeps in memory of its
/// projections whatever their size.
pub const CACHE_BYTES: u64 = 128 << 20;

/// One projection's tree.
#[derive(Clone)]
pub struct SledStore {
    tree: sled::Tree,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").field("tree", &String::from_utf8_lossy(&self.tree.name())).finish()
    }
}

impl Read for SledStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(key).map_err(map_err)?.map(|v| v.to_vec()))
    }

    fn scan_after(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Vec<Entry>, StoreError> {
        use std::ops::Bound;
        let entries: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = match after {
            // Past `after` (from the prefix when `after` sorts before it), to the prefix's end.
            Some(after) if after >= prefix => Box::new(
                self.tree
                    .range::<&[u8], _>((Bound::Excluded(after), Bound::Unbounded))
                    .take_while(move |r| r.as_ref().map_or(true, |(k, _)| k.starts_with(prefix))),
            ),
            _ => Box::new(self.tree.scan_prefix(prefix)),
        };
        entries.take(limit).map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(map_err)).collect()
    }

    /// Counts without copying a key or value into a `Vec`.
    fn count_prefix(&self, prefix: &[u8]) -> Result<u64, StoreError> {
        let mut n = 0;
        for r in self.tree.scan_prefix(prefix) {
            r.map_err(map_err)?;
            n += 1;
        }
        Ok(n)
    }
}

impl Store for SledStore {
    fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (k, v) in writes {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        self.tree.apply_batch(batch).map_err(map_err)?;
        self.tree.flush().map_err(map_err)?;
        Ok(())
    }

    fn clear(&self) -> Result<(), StoreError> {
        self.tree.clear().map_err(map_err)?;
        self.tree.flush().map_err(map_err)?;
        Ok(())
    }
}

/// What a projection's store holds, for an audit's comparison (`kokuho replay --verify`): its
/// position, its number of keys and a SHA-256 over every key and value in key order, the
/// runner's own metadata left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub position: u64,
    pub keys: u64,
    pub sha256: String,
}

impl SledStore {
    /// The last (key, value) under `prefix` (the tail of a queue), read without the rest.
    pub fn last_under(&self, prefix: &[u8]) -> Result<Option<Entry>, StoreError> {
        match self.tree.scan_prefix(prefix).next_back() {
            Some(r) => r.map(|(k, v)| Some((k.to_vec(), v.to_vec()))).map_err(map_err),
            None => Ok(None),
        }
    }

    /// The store's [`Digest`]. Read twice if a group was committed meanwhile (a live store), so
    /// that the digest is of one position.
    pub fn digest(&self) -> Result<Digest, StoreError> {
        use sha2::Digest as _;
        for _ in 0..10 {
            let before = crate::checkpoint(self)?;
            let (mut hash, mut keys) = (sha2::Sha256::new(), 0u64);
            for entry in self.tree.iter() {
                let (k, v) = entry.map_err(map_err)?;
                if k.first() == Some(&0) {
                    continue; // the runner's metadata
                }
                hash.update((k.len() as u64).to_be_bytes());
                hash.update(&k);
                hash.update((v.len() as u64).to_be_bytes());
                hash.update(&v);
                keys += 1;
            }
            if crate::checkpoint(self)? == before {
                let sha256 = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
                return Ok(Digest { position: before, keys, sha256 });
            }
        }
        Err(StoreError::Io("the store kept moving while it was read".into()))
    }

    /// Up to `limit` entries after `after` in key order, each as (key, SHA-256 of its value),
    /// the runner's metadata left out: how two stores are compared key by key.
    pub fn entries_after(&self, after: &[u8], limit: usize) -> Result<Vec<crate::Entry>, StoreError> {
        use sha2::Digest as _;
        let start = std::ops::Bound::Excluded(after.to_vec());
        let mut out = Vec::new();
        for entry in self.tree.range::<Vec<u8>, _>((start, std::ops::Bound::Unbounded)) {
            let (k, v) = entry.map_err(map_err)?;
            if k.first() == Some(&0) {
                continue;
            }
            out.push((k.to_vec(), sha2::Sha256::digest(&v).to_vec()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}
