//! Projection stores and the one projection runner of kokuho (style.md §4.5).
//!
//! - [`Store`]: the small key-value trait a projection writes through. [`SledStore`] is the
//!   implementation (one sled tree per projection); the trait keeps sled swappable.
//! - [`Tx`]: a write set over a store with read-your-writes, committed atomically together
//!   with the projection's checkpoint (the last applied stream sequence) and made durable
//!   with one flush: group commit.
//! - [`Decider`]: a workflow that turns input events into events of its own service, each
//!   decided on the service's projection as the group's earlier decisions leave it, and appended
//!   a group at a time.
//! - [`Workflow`]: the same runner for reactions with effects elsewhere (at least once, so
//!   idempotent), recording only its position.
//! - [`Projection`] and [`ProjectionRunner`]: reads a stream from the position the store holds
//!   (never the consumer's ack floor), skips what it has applied, applies a group of events in
//!   one transaction, commits, then acknowledges; dead-letters an event it cannot decode;
//!   rebuilds from sequence 1 when the store is missing, corrupt, of another projection
//!   version or of a stream that was created again.
//!
//! Architecture invariant: only this crate imports `sled`.

mod decide;
mod runner;
mod sled_store;
mod tx;

pub use decide::{Decided, Decider, inputs_caught_up};
pub use runner::{
    ApplyError, ConsumerStats, Failures, LogEvent, Projection, ProjectionHandle, ProjectionRunner, ProjectionStep,
    Rejected, Replay, Runner, RunnerSettings, RunnerStats, Runners, Step, Workflow, WorkflowRunner, WorkflowStep,
};
pub use sled_store::{CACHE_BYTES, Digest, SledDb, SledStore};
pub use tx::Tx;

/// Keys the runner keeps in every projection's store; projection keys never start with 0x00.
pub(crate) const META_CHECKPOINT: &[u8] = b"\0meta/checkpoint";
pub(crate) const META_VERSION: &[u8] = b"\0meta/version";
pub(crate) const META_EPOCH: &[u8] = b"\0meta/epoch";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store io: {0}")]
    Io(String),
    #[error("store corrupt: {0}")]
    Corrupt(String),
}

/// A stored (key, value).
pub type Entry = (Vec<u8>, Vec<u8>);
/// A write of a commit: (key, `Some(value)` to put or `None` to delete).
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// Reading ordered keys: a store's committed state, or a [`Tx`] (pending writes over it).
pub trait Read: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// The first `limit` (key, value) whose key starts with `prefix` and sorts after the key
    /// `after` (from the start of the prefix when `None`), in key order: a page of a long
    /// range, read without copying the rest.
    fn scan_after(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Vec<Entry>, StoreError>;
    /// The first `limit` (key, value) whose key starts with `prefix`, in key order: what a
    /// reader of the head of a long range (a queue) reads, without copying the rest.
    fn scan_first(&self, prefix: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError> {
        self.scan_after(prefix, None, limit)
    }
    /// Every (key, value) whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        self.scan_first(prefix, usize::MAX)
    }
    /// How many keys start with `prefix`.
    fn count_prefix(&self, prefix: &[u8]) -> Result<u64, StoreError> {
        Ok(self.scan_prefix(prefix)?.len() as u64)
    }
}

/// A key-value store with ordered keys and atomic, durable multi-key commits.
pub trait Store: Read + 'static {
    /// Applies all writes atomically (`None` deletes) and makes them durable before returning.
    fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError>;
    /// Removes every key.
    fn clear(&self) -> Result<(), StoreError>;
}

/// A stored big-endian counter, 0 when absent or malformed (counters and dates in stores).
pub fn u64_of(v: Option<Vec<u8>>) -> u64 {
    v.and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok()).map(u64::from_be_bytes).unwrap_or(0)
}

/// A stored big-endian `u32`, 0 when absent or malformed.
pub fn u32_of(v: Option<Vec<u8>>) -> u32 {
    v.and_then(|b| <[u8; 4]>::try_from(b.as_slice()).ok()).map(u32::from_be_bytes).unwrap_or(0)
}

/// Reads the checkpoint (last applied stream sequence; 0 if none).
pub fn checkpoint(store: &dyn Store) -> Result<u64, StoreError> {
    decode_u64(store.get(META_CHECKPOINT)?)
}

pub(crate) fn decode_u64(v: Option<Vec<u8>>) -> Result<u64, StoreError> {
    match v {
        None => Ok(0),
        Some(b) => {
            let arr: [u8; 8] = b.as_slice().try_into().map_err(|_| StoreError::Corrupt("checkpoint".into()))?;
            Ok(u64::from_be_bytes(arr))
        }
    }
}
