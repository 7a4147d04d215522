//! Result files for municipalities (formats.md "Result files"), written once for every service.
//!
//! - A service hands rows to the outbox with [`publish_rows`]: one `ResultRowsAdded` event on
//!   the results stream, with a deterministic group id so a repeated group counts once.
//! - The [`Outbox`] projection keeps, per municipality and kind, where the rows are (the
//!   results stream's sequences of the events that carry them, not the rows) and the files
//!   issued and not yet acknowledged. A fetch reads a file's rows again from the log.
//! - [`Outbox::fetch`] cuts the waiting rows of each kind into a file (a `ResultFileIssued`
//!   event: which rows, which name) and returns every unacknowledged file, rendered in the
//!   municipality's encoding. [`Outbox::acknowledge`] appends `ResultFilesAcknowledged`.
//!   A file is offered again until it is acknowledged: nothing is dropped before that.
//! - [`Outbox::list`] names the files without their content (the pending ones, and a page of
//!   the acknowledged ones, newest first); [`Outbox::file`] renders one file by name, pending or
//!   acknowledged (the console's list and download: a file is not read to be listed). An
//!   acknowledged file keeps which events hold its rows, so it can be rendered again.
//!
//! Everything is a fact in the log, so rebuilding the projection gives the same files with the
//! same names and rows.

mod render;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kokuho_bus::event::{self, StreamEvents};
use kokuho_bus::{Append, Bus, BusErrorKind, StreamDef};
use kokuho_ids::{LocalGovCode, Registry};
use kokuho_proto::results::v1 as pb;
use kokuho_store::{ApplyError, LogEvent, Projection, ProjectionHandle, Read, Tx, u32_of, u64_of};
use pb::ResultsEvent;
use pb::results_event::Event;
use prost::Message as _;
use tokio::sync::Mutex;

pub use render::render;

/// A typed row (kokuho-rows) as the results stream carries it: its kind and its fields in
/// formats.md order. The one place a row becomes strings.
pub fn wire(row: &kokuho_rows::Row) -> pb::ResultRow {
    pb::ResultRow { kind: row.kind().code().to_string(), fields: row.fields() }
}

/// The results stream.
pub const RESULTS: StreamDef = StreamDef {
    name: "KOKUHO_RESULTS",
    subjects: &["kokuho.results.>"],
    description: "Rows for municipalities' result files, the files cut from them and their acknowledgements",
};

kokuho_bus::stream_events!(
    /// The events of [`RESULTS`] (the outbox owns the stream; every service appends rows to it).
    Results,
    "results",
    ResultsEvent,
    Event { ResultRowsAdded, ResultFileIssued, ResultFilesAcknowledged }
);

/// The subjects a service appends its result rows to (every service that forwards rows may;
/// only intake, which owns [`RESULTS`], issues files).
pub const ROWS_SUBJECTS: &str = "kokuho.results.rows.*";

fn rows_subject(municipality: &str) -> String {
    format!("kokuho.results.rows.{municipality}")
}

fn files_subject(municipality: &str) -> String {
    format!("kokuho.results.files.{municipality}")
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("log: {0}")]
    Log(#[from] kokuho_bus::BusError),
    #[error("store: {0}")]
    Store(#[from] kokuho_store::StoreError),
    #[error("the outbox did not catch up with the log in time")]
    Behind,
    #[error("municipality {0} is not in the registry")]
    UnknownMunicipality(String),
    #[error("corrupt outbox row: {0}")]
    Corrupt(String),
}

/// Appends rows for one municipality. `group_id` must be the same whenever the same rows are
/// published again (after a crash, a redelivery), so that they count once.
pub async fn publish_rows(
    bus: &Bus,
    group_id: &str,
    municipality: &str,
    rows: Vec<pb::ResultRow>,
) -> Result<(), OutboxError> {
    if rows.is_empty() {
        return Ok(());
    }
    let added = Event::ResultRowsAdded(pb::ResultRowsAdded {
        group_id: group_id.to_string(),
        municipality: municipality.to_string(),
        rows,
    });
    let envelope = event::envelope::<Results>(added, municipality, group_id, group_id);
    bus.append(Append::new(rows_subject(municipality), event::encode(&envelope), format!("rows:{group_id}"))).await?;
    Ok(())
}

// Keys of the projection. It keeps where the rows are, not the rows: the results stream holds
// each row once, and a fetch reads the events a file covers again (issue 14: the rows were
// written three times — pending, moved into their file, deleted at the acknowledgement).
fn group_key(group: &str) -> Vec<u8> {
    format!("g/{group}").into_bytes()
}
fn pending_prefix(muni: &str, kind: &str) -> String {
    format!("p/{muni}/{kind}/")
}
/// An event of the results stream with rows of `kind` for `muni` → how many.
fn pending_key(muni: &str, kind: &str, seq: u64) -> Vec<u8> {
    format!("p/{muni}/{kind}/{seq:020}").into_bytes()
}
/// The kinds with rows for `muni`, each → the last sequence of its last file (its cut).
fn cut_prefix(muni: &str) -> String {
    format!("c/{muni}/")
}
fn cut_key(muni: &str, kind: &str) -> Vec<u8> {
    format!("{}{kind}", cut_prefix(muni)).into_bytes()
}
/// An issued, unacknowledged file → the cut before it (8 bytes) and the `ResultFileIssued`.
fn file_key(muni: &str, name: &str) -> Vec<u8> {
    format!("f/{muni}/{name}").into_bytes()
}
/// An acknowledged file, by its sequence → [`Archived`].
fn archived_key(muni: &str, file_sequence: u32) -> Vec<u8> {
    format!("k/{muni}/{file_sequence:010}").into_bytes()
}
fn file_seq_key(muni: &str) -> Vec<u8> {
    format!("s/{muni}").into_bytes()
}
fn seq_of(key: &[u8]) -> Option<u64> {
    std::str::from_utf8(key.get(key.len().checked_sub(20)?..)?).ok()?.parse().ok()
}

/// An issued file as the projection keeps it: the rows of its kind after `from`, up to
/// `issued.upto_sequence`.
struct Issued {
    from: u64,
    issued: pb::ResultFileIssued,
}

impl Issued {
    fn encode(&self) -> Vec<u8> {
        let mut v = self.from.to_be_bytes().to_vec();
        v.extend(self.issued.encode_to_vec());
        v
    }

    fn decode(v: &[u8]) -> Result<Self, String> {
        let (from, rest) = v.split_first_chunk::<8>().ok_or("a file shorter than its cut")?;
        let issued = pb::ResultFileIssued::decode(rest).map_err(|e| e.to_string())?;
        Ok(Self { from: u64::from_be_bytes(*from), issued })
    }
}

/// An acknowledged file: the events of the results stream that hold its rows (sequence, rows
/// of its kind) — their pending keys are gone — and the `ResultFileIssued`. One value per file,
/// written once at the acknowledgement: sequences as varint deltas.
struct Archived {
    events: Vec<(u64, u32)>,
    issued: pb::ResultFileIssued,
}

impl Archived {
    fn encode(&self) -> Vec<u8> {
        use prost::encoding::encode_varint;
        let mut v = Vec::with_capacity(8 + self.events.len() * 4);
        encode_varint(self.events.len() as u64, &mut v);
        let mut last = 0;
        for (seq, n) in &self.events {
            encode_varint(seq - last, &mut v);
            encode_varint(u64::from(*n), &mut v);
            last = *seq;
        }
        v.extend(self.issued.encode_to_vec());
        v
    }

    fn decode(mut v: &[u8]) -> Result<Self, String> {
        use prost::encoding::decode_varint;
        let err = |e: prost::DecodeError| format!("an acknowledged file: {e}");
        let count = decode_varint(&mut v).map_err(err)?;
        let mut events = Vec::new();
        let mut last = 0u64;
        for _ in 0..count {
            last = last.checked_add(decode_varint(&mut v).map_err(err)?).ok_or("an acknowledged file: sequence")?;
            let n = u32::try_from(decode_varint(&mut v).map_err(err)?).map_err(|e| e.to_string())?;
            events.push((last, n));
        }
        let issued = pb::ResultFileIssued::decode(v).map_err(err)?;
        Ok(Self { events, issued })
    }

    fn info(&self) -> FileInfo {
        FileInfo::of(&self.issued, self.events.iter().map(|(_, n)| n).sum(), true)
    }
}

/// The file sequence a result file's name ends with (`<kind>_<muni>_<date>_<seq>.csv`).
fn sequence_in(name: &str) -> Option<u32> {
    name.strip_suffix(".csv")?.rsplit('_').next()?.parse().ok()
}

/// The pending events (sequence, rows) of `kind` for `muni` in `(from, upto]`.
fn pending_between(
    view: &dyn Read,
    muni: &str,
    kind: &str,
    from: u64,
    upto: u64,
) -> Result<Vec<(u64, u32)>, kokuho_store::StoreError> {
    let mut out = Vec::new();
    // From the cut on: the events of earlier files are not read.
    let after = pending_key(muni, kind, from);
    for (key, value) in view.scan_after(pending_prefix(muni, kind).as_bytes(), Some(after.as_slice()), usize::MAX)? {
        let seq = seq_of(&key).ok_or_else(|| kokuho_store::StoreError::Corrupt("outbox key".into()))?;
        if seq > upto {
            break;
        }
        if seq > from {
            out.push((seq, u32_of(Some(value))));
        }
    }
    Ok(out)
}

/// The outbox projection over the results stream.
pub struct OutboxProjection;

impl Projection for OutboxProjection {
    const NAME: &'static str = "outbox";
    // 2: where the rows are, not the rows. 3: acknowledged files are kept (where their rows are).
    const VERSION: u32 = 3;
    const STREAM: &'static str = RESULTS.name;

    fn apply(&self, tx: &mut Tx<'_>, ev: &LogEvent<'_>) -> Result<(), ApplyError> {
        let (_, event) = event::decode::<Results>(ev.payload).map_err(ApplyError::Malformed)?;
        match event {
            Event::ResultRowsAdded(added) => {
                if tx.contains(&group_key(&added.group_id))? {
                    return Ok(());
                }
                tx.put(group_key(&added.group_id), ev.seq.to_be_bytes().to_vec());
                let mut kinds: BTreeMap<&str, u32> = BTreeMap::new();
                for row in &added.rows {
                    *kinds.entry(row.kind.as_str()).or_default() += 1;
                }
                for (kind, n) in kinds {
                    tx.put(pending_key(&added.municipality, kind, ev.seq), n.to_be_bytes().to_vec());
                    if !tx.contains(&cut_key(&added.municipality, kind))? {
                        tx.put(cut_key(&added.municipality, kind), 0u64.to_be_bytes().to_vec());
                    }
                }
            }
            Event::ResultFileIssued(issued) => {
                let (muni, kind) = (issued.municipality.clone(), issued.kind.clone());
                let from = u64_of(tx.get(&cut_key(&muni, &kind))?);
                tx.put(cut_key(&muni, &kind), issued.upto_sequence.max(from).to_be_bytes().to_vec());
                tx.put(file_seq_key(&muni), issued.file_sequence.to_be_bytes().to_vec());
                tx.put(file_key(&muni, &issued.name), Issued { from, issued }.encode());
            }
            Event::ResultFilesAcknowledged(ack) => {
                for name in &ack.names {
                    let Some(v) = tx.get(&file_key(&ack.municipality, name))? else { continue };
                    let file = Issued::decode(&v).map_err(ApplyError::Malformed)?;
                    let (muni, kind) = (&ack.municipality, &file.issued.kind);
                    let events = pending_between(tx, muni, kind, file.from, file.issued.upto_sequence)?;
                    for (seq, _) in &events {
                        tx.delete(pending_key(muni, kind, *seq));
                    }
                    tx.delete(file_key(muni, name));
                    let archived = Archived { events, issued: file.issued };
                    tx.put(archived_key(muni, archived.issued.file_sequence), archived.encode());
                }
            }
        }
        Ok(())
    }
}

/// A rendered result file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultFile {
    pub name: String,
    pub kind: String,
    pub content: Vec<u8>,
    pub rows: u32,
}

/// A result file as listed, without its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub name: String,
    pub kind: String,
    pub rows: u32,
    /// YYYYMMDD, the business date in its name.
    pub business_date: u32,
    pub file_sequence: u32,
    /// Stored by the municipality: no longer offered by [`Outbox::fetch`].
    pub acknowledged: bool,
}

impl FileInfo {
    fn of(issued: &pb::ResultFileIssued, rows: u32, acknowledged: bool) -> Self {
        Self {
            name: issued.name.clone(),
            kind: issued.kind.clone(),
            rows,
            business_date: issued.business_date,
            file_sequence: issued.file_sequence,
            acknowledged,
        }
    }
}

/// [`Outbox::list`]: the pending files, and one page of the acknowledged ones, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub pending: Vec<FileInfo>,
    pub acknowledged: Vec<FileInfo>,
    /// The file sequence to ask `before` for the next page; 0 when there is none.
    pub next_before: u32,
}

/// Fetching and acknowledging, over the projection.
#[derive(Clone)]
pub struct Outbox {
    bus: Bus,
    projection: ProjectionHandle,
    registry: Arc<Registry>,
    /// One fetch or acknowledgement per municipality at a time in this process; the log's
    /// expected-sequence check guards against other processes.
    locks: Arc<Mutex<BTreeMap<String, Arc<Mutex<()>>>>>,
}

const PATIENCE: Duration = Duration::from_secs(30);

impl Outbox {
    pub fn new(bus: Bus, projection: ProjectionHandle, registry: Arc<Registry>) -> Self {
        Self { bus, projection, registry, locks: Arc::default() }
    }

    async fn lock(&self, municipality: &str) -> Arc<Mutex<()>> {
        self.locks.lock().await.entry(municipality.to_string()).or_default().clone()
    }

    async fn catch_up(&self) -> Result<(), OutboxError> {
        let last = self.bus.last_seq(RESULTS.name).await?;
        if self.projection.wait_for(last, PATIENCE).await { Ok(()) } else { Err(OutboxError::Behind) }
    }

    /// Cuts waiting rows into files and returns every unacknowledged file of `municipality`.
    /// `business_date` (YYYYMMDD) names the new files.
    pub async fn fetch(&self, municipality: LocalGovCode, business_date: u32) -> Result<Vec<ResultFile>, OutboxError> {
        let muni = municipality.to_string();
        let entry = self.registry.get(municipality).ok_or_else(|| OutboxError::UnknownMunicipality(muni.clone()))?;
        let lock = self.lock(&muni).await;
        let _guard = lock.lock().await;
        self.cut(&muni, business_date).await?;
        let mut files = Vec::new();
        for file in self.pending(&muni)? {
            let rows = self.rows_of(&file.issued, self.events_of(&muni, &file)?).await?;
            let content = render(&file.issued, entry, &rows);
            files.push(ResultFile { name: file.issued.name, kind: file.issued.kind, content, rows: rows.len() as u32 });
        }
        Ok(files)
    }

    /// The files of `municipality` without their content: every pending one (waiting rows are
    /// cut first, as [`Outbox::fetch`] would) and up to `limit` acknowledged ones with a file
    /// sequence below `before` (0: from the newest), newest first. Reads the projection only.
    pub async fn list(
        &self,
        municipality: LocalGovCode,
        business_date: u32,
        before: u32,
        limit: usize,
    ) -> Result<Listing, OutboxError> {
        let muni = municipality.to_string();
        self.registry.get(municipality).ok_or_else(|| OutboxError::UnknownMunicipality(muni.clone()))?;
        let lock = self.lock(&muni).await;
        let _guard = lock.lock().await;
        self.cut(&muni, business_date).await?;
        let store = self.projection.store();
        let mut pending = Vec::new();
        for file in self.pending(&muni)? {
            let rows = self.events_of(&muni, &file)?.iter().map(|(_, n)| n).sum();
            pending.push(FileInfo::of(&file.issued, rows, false));
        }
        // File sequences are dense (1, 2, …): each is pending (listed above) or acknowledged.
        let newest = u32_of(store.get(&file_seq_key(&muni))?);
        let mut seq = if before == 0 { newest } else { before.saturating_sub(1).min(newest) };
        let mut acknowledged = Vec::new();
        while seq > 0 && acknowledged.len() < limit {
            if let Some(v) = store.get(&archived_key(&muni, seq))? {
                acknowledged.push(Archived::decode(&v).map_err(OutboxError::Corrupt)?.info());
            }
            seq -= 1;
        }
        let next_before = if seq > 0 && acknowledged.len() == limit { seq + 1 } else { 0 };
        Ok(Listing { pending, acknowledged, next_before })
    }

    /// One file of `municipality` by name, pending or acknowledged, rendered in its encoding;
    /// `None` when it has no such file.
    pub async fn file(&self, municipality: LocalGovCode, name: &str) -> Result<Option<ResultFile>, OutboxError> {
        let muni = municipality.to_string();
        let entry = self.registry.get(municipality).ok_or_else(|| OutboxError::UnknownMunicipality(muni.clone()))?;
        self.catch_up().await?;
        let store = self.projection.store();
        let (issued, events) = if let Some(v) = store.get(&file_key(&muni, name))? {
            let file = Issued::decode(&v).map_err(OutboxError::Corrupt)?;
            let events = self.events_of(&muni, &file)?;
            (file.issued, events)
        } else {
            let Some(v) = sequence_in(name).map(|seq| store.get(&archived_key(&muni, seq))).transpose()?.flatten()
            else {
                return Ok(None);
            };
            let archived = Archived::decode(&v).map_err(OutboxError::Corrupt)?;
            if archived.issued.name != name {
                return Ok(None);
            }
            (archived.issued, archived.events)
        };
        let rows = self.rows_of(&issued, events).await?;
        let content = render(&issued, entry, &rows);
        Ok(Some(ResultFile { name: issued.name, kind: issued.kind, content, rows: rows.len() as u32 }))
    }

    /// Cuts the rows of each kind waiting past its last file into a new file. The caller holds
    /// the municipality's lock.
    async fn cut(&self, muni: &str, business_date: u32) -> Result<(), OutboxError> {
        loop {
            self.catch_up().await?;
            let store = self.projection.store();
            // The highest pending sequence of each kind past its cut.
            let mut upto: BTreeMap<String, u64> = BTreeMap::new();
            let cuts = cut_prefix(muni);
            for (key, value) in store.scan_prefix(cuts.as_bytes())? {
                let kind = String::from_utf8_lossy(&key[cuts.len()..]).into_owned();
                let cut = u64_of(Some(value));
                let last = store.last_under(pending_prefix(muni, &kind).as_bytes())?.and_then(|(k, _)| seq_of(&k));
                if let Some(last) = last.filter(|l| *l > cut) {
                    upto.insert(kind, last);
                }
            }
            if upto.is_empty() {
                return Ok(());
            }
            let mut file_seq = u32_of(store.get(&file_seq_key(muni))?);
            let subject = files_subject(muni);
            let expected = self.bus.last_subject_seq(RESULTS.name, &subject).await?;
            let mut batch = Vec::new();
            for (kind, upto_sequence) in upto {
                file_seq += 1;
                let name = format!("{kind}_{muni}_{business_date:08}_{file_seq:06}.csv");
                let issued = pb::ResultFileIssued {
                    municipality: muni.to_string(),
                    kind,
                    file_sequence: file_seq,
                    name: name.clone(),
                    upto_sequence,
                    rows: 0,
                    business_date,
                };
                let envelope = event::envelope::<Results>(Event::ResultFileIssued(issued), muni, &name, "");
                let mut append =
                    Append::new(subject.clone(), event::encode(&envelope), format!("issue:{muni}:{file_seq}"));
                if batch.is_empty() {
                    append = append.expect_last_subject_seq(expected);
                }
                batch.push(append);
            }
            match self.bus.append_atomic(batch).await {
                Ok(_) => {}
                // Another process cut files meanwhile: look again.
                Err(e) if e.kind() == BusErrorKind::WrongLastSequence => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The unacknowledged files of `muni`, in file order (after catching up with the log).
    fn pending(&self, muni: &str) -> Result<Vec<Issued>, OutboxError> {
        let mut files = Vec::new();
        for (_, value) in self.projection.store().scan_prefix(format!("f/{muni}/").as_bytes())? {
            files.push(Issued::decode(&value).map_err(OutboxError::Corrupt)?);
        }
        files.sort_by_key(|f| f.issued.file_sequence);
        Ok(files)
    }

    /// The events (sequence, rows) holding a pending file's rows.
    fn events_of(&self, muni: &str, file: &Issued) -> Result<Vec<(u64, u32)>, OutboxError> {
        Ok(pending_between(self.projection.store(), muni, &file.issued.kind, file.from, file.issued.upto_sequence)?)
    }

    /// The rows of a file, read again from the events of the results stream that hold them.
    async fn rows_of(
        &self,
        issued: &pb::ResultFileIssued,
        events: Vec<(u64, u32)>,
    ) -> Result<Vec<pb::ResultRow>, OutboxError> {
        let kind = &issued.kind;
        let mut rows = Vec::new();
        for (seq, n) in events {
            // The log keeps every message (no delete, no purge); one gone is a fault to report,
            // never rows to leave out of a file without a word.
            let payload = self.bus.event_at(RESULTS.name, seq).await?.ok_or_else(|| {
                OutboxError::Corrupt(format!("results message {seq} of {} is no longer in the log", issued.name))
            })?;
            let added = match event::decode::<Results>(&payload).map_err(OutboxError::Corrupt)? {
                (_, Event::ResultRowsAdded(added)) => added,
                _ => return Err(OutboxError::Corrupt(format!("results message {seq} carries no rows"))),
            };
            let before = rows.len();
            rows.extend(added.rows.into_iter().filter(|r| r.kind == *kind));
            if rows.len() - before != n as usize {
                return Err(OutboxError::Corrupt(format!("results message {seq}: {n} {kind} rows expected")));
            }
        }
        Ok(rows)
    }

    /// Acknowledges files of `municipality`; names it does not hold are ignored.
    pub async fn acknowledge(&self, municipality: LocalGovCode, names: Vec<String>) -> Result<u32, OutboxError> {
        let muni = municipality.to_string();
        let lock = self.lock(&muni).await;
        let _guard = lock.lock().await;
        self.catch_up().await?;
        let store = self.projection.store();
        let mut known = Vec::new();
        for name in names {
            if store.get(&file_key(&muni, &name))?.is_some() {
                known.push(name);
            }
        }
        if known.is_empty() {
            return Ok(0);
        }
        let count = known.len() as u32;
        let ack = pb::ResultFilesAcknowledged { municipality: muni.clone(), names: known };
        let envelope = event::envelope::<Results>(Event::ResultFilesAcknowledged(ack), &muni, "", "");
        let seq = self.bus.append(Append::event(files_subject(&muni), &envelope)).await?.seq;
        if !self.projection.wait_for(seq, PATIENCE).await {
            return Err(OutboxError::Behind);
        }
        Ok(count)
    }
}

/// Rows a log event carries for municipalities: (group id, municipality, rows). The group id
/// must be deterministic, so that a repeat counts once.
pub type RowGroups = Vec<(String, String, Vec<pb::ResultRow>)>;

/// Where a service's rows come from: which of its stream's events carry rows, and which.
pub trait RowSource: Send + Sync + 'static {
    /// Stable: the workflow's name.
    const NAME: &'static str;
    const STREAM: &'static str;
    /// The events of the stream (the service's own).
    type Events: StreamEvents;

    /// Whether the rows of events on `subject` are this source's to hand over (a relay shard
    /// hands over its own subjects' alone); all of them by default.
    fn takes(&self, _subject: &str) -> bool {
        true
    }

    fn rows(&self, event: <Self::Events as StreamEvents>::Event) -> RowGroups;
}

/// The one workflow that hands a service's rows to the outbox (at least once; idempotent by
/// group id).
pub struct ForwardRows<S> {
    pub bus: Bus,
    pub source: S,
}

impl<S: RowSource> kokuho_store::Workflow for ForwardRows<S> {
    const NAME: &'static str = S::NAME;
    const STREAM: &'static str = S::STREAM;

    async fn handle(&self, events: &[LogEvent<'_>]) -> Result<kokuho_store::Rejected, ApplyError> {
        use tracing::Instrument as _;
        let mut rejected = Vec::new();
        for (i, ev) in events.iter().enumerate().filter(|(_, ev)| self.source.takes(ev.subject)) {
            let event = match event::decode::<S::Events>(ev.payload) {
                Ok((_, event)) => event,
                Err(why) => {
                    rejected.push((i, why));
                    continue;
                }
            };
            for (group, municipality, rows) in self.source.rows(event) {
                publish_rows(&self.bus, &group, &municipality, rows)
                    .instrument(ev.span.clone())
                    .await
                    .map_err(|e| ApplyError::Transient(e.to_string()))?;
            }
        }
        Ok(rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// An acknowledged file's record gives back its events (in order) and its issue.
        #[test]
        fn archived_round_trips(
            mut seqs in proptest::collection::btree_set(1u64..u64::MAX / 2, 0..50),
            counts in proptest::collection::vec(any::<u32>(), 50),
            name in "[A-Z]{2}_[0-9]{6}_[0-9]{8}_[0-9]{6}\\.csv",
            file_sequence in any::<u32>(),
        ) {
            let events: Vec<(u64, u32)> = std::mem::take(&mut seqs).into_iter().zip(counts).collect();
            let issued = pb::ResultFileIssued { name, file_sequence, kind: "RS".into(), ..Default::default() };
            let archived = Archived { events: events.clone(), issued: issued.clone() };
            let back = Archived::decode(&archived.encode()).unwrap();
            prop_assert_eq!(back.events, events);
            prop_assert_eq!(back.issued, issued);
        }

        /// The file sequence is read back from every name the outbox gives.
        #[test]
        fn sequence_from_name(kind in "R[SIEKGM]", muni in "[0-9]{6}", date in 19000101u32..99991231, seq in 1u32..) {
            let name = format!("{kind}_{muni}_{date:08}_{seq:06}.csv");
            prop_assert_eq!(sequence_in(&name), Some(seq));
        }
    }
}
