//! The projection runner, written once for every projection of every service.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use kokuho_bus::{Bus, ConsumerDef, Delivered};
use tokio::sync::{mpsc, watch};

use crate::{
    META_CHECKPOINT, META_EPOCH, META_VERSION, Read, SledStore, Store, StoreError, Tx, checkpoint, decode_u64,
};

/// One event as the runner hands it to a projection.
#[derive(Debug)]
pub struct LogEvent<'a> {
    pub seq: u64,
    pub subject: &'a str,
    pub payload: &'a [u8],
    /// The span of this event's handling, a child of the trace that appended it.
    pub span: tracing::Span,
}

/// Why a projection could not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The event can never be applied (undecodable, unknown version): it goes to the
    /// dead-letter stream and the projection moves on.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// The store failed: the group is retried from the stored position after a backoff.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A workflow's effect failed for now (the log or another system unreachable): retried
    /// from the stored position after a backoff.
    #[error("transient: {0}")]
    Transient(String),
}

/// Events of a group that can never be handled: (index in the group, why). They go to the
/// dead-letter stream and the runner moves on.
pub type Rejected = Vec<(usize, String)>;

/// A deterministic fold of log events into a store. No network, no clock, no randomness:
/// rebuilding from sequence 1 gives the same rows.
pub trait Projection: Send + Sync + 'static {
    /// Stable: the store tree and the durable consumer are named after it.
    const NAME: &'static str;
    /// Bump to make every deployment rebuild this projection from the log.
    const VERSION: u32;
    /// The stream it reads.
    const STREAM: &'static str;
    /// The one subject of the stream it reads, where it may not read the others (S7); the
    /// whole stream when `None`.
    const SUBJECT: Option<&'static str> = None;

    fn apply(&self, tx: &mut Tx<'_>, event: &LogEvent<'_>) -> Result<(), ApplyError>;
}

/// A reaction to log events with an effect outside the store (appending to another stream,
/// calling another system). At least once: the runner records its position after the effect,
/// so the effect must be idempotent (deterministic message or group ids). It is handed the
/// runner's whole group.
pub trait Workflow: Send + Sync + 'static {
    /// Stable: the store tree and the durable consumer are named after it.
    const NAME: &'static str;
    /// The stream it reads.
    const STREAM: &'static str;
    /// The one subject of the stream it reads, or the whole stream ([`Projection::SUBJECT`]).
    const SUBJECT: Option<&'static str> = None;

    /// Handles a group of consecutive events, after which the runner records its position;
    /// returns the events that can never be handled (they go to the dead-letter stream). A
    /// workflow whose effect is cheaper in bulk does it once for the group (one append).
    fn handle(&self, events: &[LogEvent<'_>])
    -> impl std::future::Future<Output = Result<Rejected, ApplyError>> + Send;
}

/// What the runner does with each group: apply a projection or run a workflow.
#[doc(hidden)]
pub trait Step: Send + Sync + 'static {
    const NAME: &'static str;
    const VERSION: u32;
    const STREAM: &'static str;
    const SUBJECT: Option<&'static str>;
    /// It acts on the world (a workflow): only the instance that holds the lease runs it.
    const ACTS: bool;

    fn step<'a>(
        &'a self,
        tx: &'a mut Tx<'_>,
        events: &'a [LogEvent<'a>],
    ) -> impl std::future::Future<Output = Result<Rejected, ApplyError>> + Send + 'a;
}

#[doc(hidden)]
pub struct ProjectionStep<P>(P);
#[doc(hidden)]
pub struct WorkflowStep<W>(W);

impl<P: Projection> Step for ProjectionStep<P> {
    const NAME: &'static str = P::NAME;
    const VERSION: u32 = P::VERSION;
    const STREAM: &'static str = P::STREAM;
    const SUBJECT: Option<&'static str> = P::SUBJECT;
    const ACTS: bool = false;

    #[allow(clippy::manual_async_fn)]
    fn step<'a>(
        &'a self,
        tx: &'a mut Tx<'_>,
        events: &'a [LogEvent<'a>],
    ) -> impl std::future::Future<Output = Result<Rejected, ApplyError>> + Send + 'a {
        async move {
            let mut rejected = Vec::new();
            for (i, event) in events.iter().enumerate() {
                match event.span.in_scope(|| self.0.apply(tx, event)) {
                    Ok(()) => {}
                    Err(ApplyError::Malformed(why)) => rejected.push((i, why)),
                    Err(e) => return Err(e),
                }
            }
            Ok(rejected)
        }
    }
}

impl<W: Workflow> Step for WorkflowStep<W> {
    const NAME: &'static str = W::NAME;
    const VERSION: u32 = 1;
    const STREAM: &'static str = W::STREAM;
    const SUBJECT: Option<&'static str> = W::SUBJECT;
    const ACTS: bool = true;

    #[allow(clippy::manual_async_fn)]
    fn step<'a>(
        &'a self,
        _tx: &'a mut Tx<'_>,
        events: &'a [LogEvent<'a>],
    ) -> impl std::future::Future<Output = Result<Rejected, ApplyError>> + Send + 'a {
        self.0.handle(events)
    }
}

/// The runner of a projection.
pub type ProjectionRunner<P> = Runner<ProjectionStep<P>>;
/// The runner of a workflow.
pub type WorkflowRunner<W> = Runner<WorkflowStep<W>>;

/// What each runner of the process has done, by consumer (`<service>-<projection>`), for the
/// metrics: events applied and dead-lettered since start, its position, and how many messages
/// its consumer still had to deliver at the last group (its lag).
#[derive(Debug, Clone, Default)]
pub struct RunnerStats(Arc<std::sync::Mutex<std::collections::BTreeMap<String, Arc<ConsumerStats>>>>);

/// One runner's counts ([`RunnerStats`]).
#[derive(Debug, Default)]
pub struct ConsumerStats {
    /// A projection's store and the stream it reads (not set for a workflow).
    pub projection: std::sync::OnceLock<(SledStore, &'static str)>,
    /// A replay's runner reached its position.
    pub done: std::sync::atomic::AtomicBool,
    pub applied: std::sync::atomic::AtomicU64,
    pub dead_letters: std::sync::atomic::AtomicU64,
    pub position: std::sync::atomic::AtomicU64,
    pub pending: std::sync::atomic::AtomicU64,
    /// Keys written (and deleted) in the store, their bytes (keys and values), and the time its
    /// commits took in microseconds: what each projection costs the store (issue 14).
    pub written_keys: std::sync::atomic::AtomicU64,
    pub written_bytes: std::sync::atomic::AtomicU64,
    pub commit_micros: std::sync::atomic::AtomicU64,
    /// The time its steps took (deciding a group: decoding, reading the store, appending),
    /// in microseconds: with the commits, where a runner's time goes as the data grows.
    pub step_micros: std::sync::atomic::AtomicU64,
}

impl RunnerStats {
    /// The counts of `consumer`, made on first use.
    pub fn of(&self, consumer: &str) -> Arc<ConsumerStats> {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(consumer.to_string()).or_default().clone()
    }

    /// Every runner's counts, by consumer name.
    pub fn all(&self) -> Vec<(String, Arc<ConsumerStats>)> {
        let map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// Where runners report that one of them failed for good (a panic): the process then stops
/// rather than answer from a projection that no longer moves (S9). The first failure is kept.
#[derive(Clone)]
pub struct Failures(Arc<watch::Sender<Option<String>>>);

impl Default for Failures {
    fn default() -> Self {
        Self(Arc::new(watch::channel(None).0))
    }
}

impl std::fmt::Debug for Failures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Failures({:?})", *self.0.borrow())
    }
}

impl Failures {
    pub fn report(&self, what: String) {
        self.0.send_if_modified(|f| {
            if f.is_some() {
                return false;
            }
            *f = Some(what);
            true
        });
    }

    /// The first failure, once there is one.
    pub async fn failed(&self) -> String {
        let mut rx = self.0.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(f) => f.clone().unwrap_or_default(),
            // The sender lives as long as `self`.
            Err(_) => std::future::pending().await,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// The consumer's `max_deliver` (server-side backstop; the runner restarts from its own
    /// position after a failure).
    pub max_deliver: i64,
    /// Most events committed in one group.
    pub group_max: usize,
    /// How long to wait for more events before committing a group.
    pub linger: Duration,
    /// Where a runner that panicked is reported.
    pub failures: Failures,
    /// Where each runner counts what it applied (metrics).
    pub stats: RunnerStats,
    /// Replaying for an audit (`kokuho replay`): projections only, with consumers of their own,
    /// up to given positions, and nothing written anywhere but their scratch stores.
    pub replay: Option<Replay>,
    /// Whether this instance acts (holds its service's lease, `kokuho_bus::lease`): workflows
    /// and tasks run only while it does. `None`: it always acts (one instance).
    pub acting: Option<watch::Receiver<bool>>,
    /// The shard this instance is of its service: its consumers (and so its runners' names)
    /// carry the shard's label (`relay-persons-s2of3`), so that no two shards share one.
    pub shard: kokuho_bus::Shard,
}

/// How runners replay ([`RunnerSettings::replay`]).
#[derive(Debug, Clone, Default)]
pub struct Replay {
    /// Put before each consumer's name (`replay-<id>-`), so that no live consumer is touched.
    pub prefix: String,
    /// The last stream sequence to apply, by runner (`<service>-<projection>`), else by the
    /// stream it reads (`until_stream`); a runner named in neither applies everything its
    /// stream holds when it starts.
    pub until: std::collections::BTreeMap<String, u64>,
    pub until_stream: std::collections::BTreeMap<String, u64>,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            max_deliver: 10,
            group_max: 1_000,
            linger: Duration::from_millis(2),
            failures: Failures::default(),
            stats: RunnerStats::default(),
            replay: None,
            acting: None,
            shard: kokuho_bus::Shard::WHOLE,
        }
    }
}

/// What a service keeps of a running projection: its store for queries, its position, and
/// the rebuild switch.
#[derive(Clone)]
pub struct ProjectionHandle {
    store: SledStore,
    position: watch::Receiver<u64>,
    rebuild: mpsc::Sender<()>,
    name: String,
    stream: &'static str,
    subject: Option<&'static str>,
}

impl ProjectionHandle {
    pub fn store(&self) -> &SledStore {
        &self.store
    }

    /// The last stream sequence applied and committed.
    pub fn position(&self) -> u64 {
        *self.position.borrow()
    }

    /// Waits until the projection has applied `seq`, for at most `patience`.
    pub async fn wait_for(&self, seq: u64, patience: Duration) -> bool {
        let mut rx = self.position.clone();
        tokio::time::timeout(patience, rx.wait_for(|p| *p >= seq)).await.is_ok_and(|r| r.is_ok())
    }

    /// The last sequence of what it reads now (its stream, or its one subject of the stream).
    pub async fn head(&self, bus: &Bus) -> Result<u64, kokuho_bus::BusError> {
        match self.subject {
            Some(subject) => bus.last_subject_seq(self.stream, subject).await,
            None => bus.last_seq(self.stream).await,
        }
    }

    /// Asks the runner to drop the projection and replay it from sequence 1.
    pub async fn rebuild(&self) {
        let _ = self.rebuild.send(()).await;
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Runs one projection or workflow until shutdown.
pub struct Runner<S: Step> {
    /// `<service>-<projection>`, as the live runner is named (metrics, replay targets).
    name: String,
    /// Replaying: the last sequence to apply, after which the runner is done.
    until: Option<u64>,
    step: Arc<S>,
    store: SledStore,
    bus: Bus,
    consumer: ConsumerDef,
    settings: RunnerSettings,
    position: watch::Sender<u64>,
    rebuild: mpsc::Receiver<()>,
}

enum Stop {
    Shutdown,
    Rebuild,
    Failed,
    /// A replay reached its position.
    Done,
    /// This instance stopped acting (its lease went to another): wait until it acts again.
    Paused,
}

impl<P: Projection> Runner<ProjectionStep<P>> {
    pub fn new(
        service: &str,
        projection: P,
        store: SledStore,
        bus: Bus,
        settings: RunnerSettings,
    ) -> Result<(Self, ProjectionHandle), StoreError> {
        Runner::build(service, ProjectionStep(projection), store, bus, settings)
    }
}

impl<W: Workflow> Runner<WorkflowStep<W>> {
    /// `store` holds only the workflow's position.
    pub fn new(
        service: &str,
        workflow: W,
        store: SledStore,
        bus: Bus,
        settings: RunnerSettings,
    ) -> Result<(Self, ProjectionHandle), StoreError> {
        Runner::build(service, WorkflowStep(workflow), store, bus, settings)
    }
}

impl<S: Step> Runner<S> {
    fn build(
        service: &str,
        step: S,
        store: SledStore,
        bus: Bus,
        settings: RunnerSettings,
    ) -> Result<(Self, ProjectionHandle), StoreError> {
        let start = checkpoint(&store)?;
        let (position, position_rx) = watch::channel(start);
        let (rebuild_tx, rebuild) = mpsc::channel(1);
        let name = settings.shard.dashed(&format!("{service}-{}", S::NAME));
        let consumer = ConsumerDef {
            name: match &settings.replay {
                Some(r) => format!("{}{name}", r.prefix),
                None => name.clone(),
            },
            stream: S::STREAM,
            max_deliver: settings.max_deliver,
            filter_subject: S::SUBJECT.map(str::to_string),
        };
        let handle = ProjectionHandle {
            store: store.clone(),
            position: position_rx,
            rebuild: rebuild_tx,
            name: name.clone(),
            stream: S::STREAM,
            subject: S::SUBJECT,
        };
        let until = settings
            .replay
            .as_ref()
            .map(|r| r.until.get(&name).or_else(|| r.until_stream.get(S::STREAM)).copied().unwrap_or(u64::MAX));
        let runner = Self { name, until, step: Arc::new(step), store, bus, consumer, settings, position, rebuild };
        Ok((runner, handle))
    }

    /// Reads and applies the stream until `shutdown` completes. Failures are logged and the
    /// runner resumes from its stored position after a backoff; it never gives up.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        let mut shutdown = pin!(shutdown);
        let mut backoff = Duration::from_millis(100);
        loop {
            // A workflow runs only while this instance acts.
            if S::ACTS
                && let Some(acting) = self.settings.acting.clone()
            {
                let mut acting = acting;
                // The lease keeper is gone (the process is stopping): act no more.
                if acting.has_changed().is_err() {
                    return;
                }
                tokio::select! {
                    _ = &mut shutdown => return,
                    r = acting.wait_for(|a| *a) => if r.is_err() { return },
                }
            }
            let lapse = lapsed(self.settings.acting.clone(), S::ACTS);
            let stop = tokio::select! {
                _ = &mut shutdown => Stop::Shutdown,
                stop = self.run_once() => stop,
                () = lapse => Stop::Paused,
            };
            match stop {
                Stop::Shutdown => return,
                Stop::Done => {
                    // A replay leaves nothing behind on the server.
                    let _ = self.bus.remove_consumer(S::STREAM, &self.consumer.name).await;
                    self.settings.stats.of(&self.name).done.store(true, std::sync::atomic::Ordering::Relaxed);
                    return;
                }
                Stop::Rebuild => {
                    tracing::info!(projection = S::NAME, "Rebuilding projection from sequence 1");
                    if let Err(e) = self.reset() {
                        tracing::error!(projection = S::NAME, error = %e, "Cannot clear projection store");
                    }
                    backoff = Duration::from_millis(100);
                }
                Stop::Paused => {
                    tracing::warn!(consumer = %self.consumer.name, "This instance no longer acts; the workflow waits");
                }
                Stop::Failed => {
                    tokio::select! {
                        _ = &mut shutdown => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    fn reset(&self) -> Result<(), StoreError> {
        self.store.clear()?;
        self.position.send_replace(0);
        Ok(())
    }

    /// Checks the store belongs to this projection version and this incarnation of the stream;
    /// clears it otherwise. Returns the position to resume from.
    async fn prepare(&self) -> Result<u64, String> {
        let epoch = self.bus.stream_epoch(S::STREAM).await.map_err(|e| e.to_string())?;
        let stored_version = self.store.get(META_VERSION).map_err(|e| e.to_string())?;
        let stored_epoch = self.store.get(META_EPOCH).map_err(|e| e.to_string())?;
        let version_ok = stored_version.as_deref() == Some(&u64::from(S::VERSION).to_be_bytes()[..]);
        let epoch_ok = stored_epoch.as_deref() == Some(&epoch.to_be_bytes()[..]);
        if !(version_ok && epoch_ok) {
            let had = checkpoint(&self.store).map_err(|e| e.to_string())?;
            if had > 0 {
                tracing::warn!(
                    projection = S::NAME,
                    version_ok,
                    epoch_ok,
                    "Projection store is of another version or stream; rebuilding from sequence 1"
                );
            }
            self.store.clear().map_err(|e| e.to_string())?;
            self.store
                .commit(vec![
                    (META_VERSION.to_vec(), Some(u64::from(S::VERSION).to_be_bytes().to_vec())),
                    (META_EPOCH.to_vec(), Some(epoch.to_be_bytes().to_vec())),
                ])
                .map_err(|e| e.to_string())?;
        }
        let position = checkpoint(&self.store).map_err(|e| e.to_string())?;
        self.position.send_replace(position);
        Ok(position)
    }

    async fn run_once(&mut self) -> Stop {
        let position = match self.prepare().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(projection = S::NAME, error = %e, "Cannot prepare projection; will retry");
                return Stop::Failed;
            }
        };
        if self.until == Some(u64::MAX) {
            // Replaying without a position: what the stream (or subject) holds now.
            let head = match S::SUBJECT {
                Some(subject) => self.bus.last_subject_seq(S::STREAM, subject).await,
                None => self.bus.last_seq(S::STREAM).await,
            };
            match head {
                Ok(h) => self.until = Some(h),
                Err(e) => {
                    tracing::warn!(projection = S::NAME, error = %e, "Cannot read the stream's head; will retry");
                    return Stop::Failed;
                }
            }
        }
        if self.until.is_some_and(|u| position >= u) {
            return Stop::Done;
        }
        tracing::debug!(consumer = %self.consumer.name, position, "Consuming");
        let mut consumer = match self.bus.consume(&self.consumer, position + 1).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(projection = S::NAME, error = %e, "Cannot start consumer; will retry");
                return Stop::Failed;
            }
        };
        loop {
            let group = tokio::select! {
                request = self.rebuild.recv(), if !self.rebuild.is_closed() => match request {
                    Some(()) => return Stop::Rebuild,
                    // Every handle is gone: nobody can ask for a rebuild any more.
                    None => continue,
                },
                g = consumer.next_group(self.settings.group_max, self.settings.linger) => g,
            };
            let group = match group {
                Ok(g) => g,
                Err(e) => {
                    tracing::warn!(projection = S::NAME, error = %e, "Consumer failed; resuming from the stored position");
                    return Stop::Failed;
                }
            };
            if let Err(e) = self.apply_group(&group).await {
                tracing::warn!(projection = S::NAME, error = %e, "Applying events failed; resuming from the stored position");
                return Stop::Failed;
            }
            if self.until.is_some_and(|u| *self.position.borrow() >= u) {
                return Stop::Done;
            }
        }
    }

    /// A consumer of the whole stream must deliver every message after the stored position, in
    /// order. Under load a pull can be lost on the way (its messages then wait for redelivery)
    /// while the next pull arrives; applying that group and acknowledging it (ack-all) would
    /// skip the lost messages for good. So a gap fails the group — the runner restarts the
    /// consumer from the stored position — unless the stream no longer holds the missing
    /// message (deleted, or aged out). A filtered consumer skips other subjects: no check.
    async fn check_contiguous(&self, start: u64, fresh: &[&Delivered]) -> Result<(), String> {
        if self.consumer.filter_subject.is_some() {
            return Ok(());
        }
        let mut from = start;
        while let Some((missing, next)) = first_gap(from, fresh.iter().map(|d| (d.first_seq, d.stream_seq))) {
            let held = self.bus.holds(S::STREAM, missing).await.map_err(|e| e.to_string())?;
            if held || next < missing {
                return Err(format!(
                    "delivery gap: expected sequence {missing}, got {next}; resuming from the stored position"
                ));
            }
            tracing::warn!(
                projection = S::NAME,
                missing,
                next,
                "The stream no longer holds a message after the stored position; going on"
            );
            from = next;
        }
        Ok(())
    }

    /// Applies a group in one transaction with the checkpoint, commits durably, then acks.
    async fn apply_group(&self, group: &[Delivered]) -> Result<(), String> {
        let start =
            decode_u64(self.store.get(META_CHECKPOINT).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        let until = self.until.unwrap_or(u64::MAX);
        let fresh: Vec<&Delivered> = group.iter().filter(|d| d.stream_seq > start && d.stream_seq <= until).collect();
        tracing::debug!(
            consumer = %self.consumer.name,
            start,
            first = group.first().map(|d| d.stream_seq),
            last = group.last().map(|d| d.stream_seq),
            "Group"
        );
        self.check_contiguous(start, &fresh).await?;
        let events: Vec<LogEvent<'_>> = fresh
            .iter()
            .map(|d| {
                let span = tracing::info_span!("apply", consumer = %self.consumer.name, seq = d.stream_seq);
                kokuho_bus::trace::follow(&span, d.headers.as_ref());
                LogEvent { seq: d.stream_seq, subject: &d.subject, payload: &d.payload, span }
            })
            .collect();
        let last = fresh.last().map_or(start, |d| d.stream_seq);
        let mut tx = Tx::new(&self.store);
        let stats = self.settings.stats.of(&self.name);
        let stepping = std::time::Instant::now();
        let rejected = if events.is_empty() {
            Vec::new()
        } else {
            self.step.step(&mut tx, &events).await.map_err(|e| e.to_string())?
        };
        stats.step_micros.fetch_add(stepping.elapsed().as_micros() as u64, std::sync::atomic::Ordering::Relaxed);
        let (applied, dead) = (events.len() - rejected.len(), rejected.len());
        for (i, why) in rejected {
            let d = fresh[i];
            if self.until.is_some() {
                // A replay writes nothing to the log: the live runner dead-lettered it already.
                tracing::warn!(projection = S::NAME, seq = d.stream_seq, error = %why, "Replay: event cannot be applied");
                continue;
            }
            tracing::error!(projection = S::NAME, seq = d.stream_seq, error = %why,
                "Event cannot be applied; moved to the dead-letter stream");
            self.bus.dead_letter(&self.consumer.name, S::STREAM, d, &why).await.map_err(|e| e.to_string())?;
        }
        if last > start {
            use std::sync::atomic::Ordering::Relaxed;
            tx.put(META_CHECKPOINT.to_vec(), last.to_be_bytes().to_vec());
            let writes = tx.into_writes();
            let bytes: usize = writes.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len)).sum();
            stats.written_keys.fetch_add(writes.len() as u64, Relaxed);
            stats.written_bytes.fetch_add(bytes as u64, Relaxed);
            let store = self.store.clone();
            let began = std::time::Instant::now();
            tokio::task::spawn_blocking(move || store.commit(writes))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            stats.commit_micros.fetch_add(began.elapsed().as_micros() as u64, Relaxed);
        }
        if let Some(d) = group.last() {
            // Ack-all policy: acknowledging the last acknowledges the group.
            d.ack().await.map_err(|e| e.to_string())?;
        }
        self.position.send_replace(last);
        use std::sync::atomic::Ordering::Relaxed;
        stats.applied.fetch_add(applied as u64, Relaxed);
        stats.dead_letters.fetch_add(dead as u64, Relaxed);
        stats.position.store(last, Relaxed);
        stats.pending.store(group.last().map_or(0, |d| d.pending), Relaxed);
        Ok(())
    }
}

/// Resolves when an acting workflow's instance stops acting; never otherwise.
async fn lapsed(acting: Option<watch::Receiver<bool>>, acts: bool) {
    match acting {
        Some(mut a) if acts => {
            let _ = a.wait_for(|held| !*held).await;
        }
        _ => std::future::pending().await,
    }
}

/// The first place where the events delivered — (first, last) sequence of each: an event in
/// parts spans several — do not continue `from` one by one: the sequence expected there and the
/// one delivered instead. Delivery resumes the check after it.
fn first_gap(from: u64, seqs: impl IntoIterator<Item = (u64, u64)>) -> Option<(u64, u64)> {
    let mut expected = from + 1;
    for (first, last) in seqs {
        if last < from + 1 {
            continue;
        }
        if first != expected {
            return Some((expected, first));
        }
        expected = last + 1;
    }
    None
}

/// How long a graceful stop waits for the runners of a service to finish their steps.
const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(10);

/// The runners of one service, started together and stopped together.
pub struct Runners {
    service: &'static str,
    bus: Bus,
    db: crate::SledDb,
    settings: RunnerSettings,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Runners {
    pub fn new(service: &'static str, bus: Bus, db: crate::SledDb, settings: RunnerSettings) -> Self {
        let (stop, _) = watch::channel(false);
        Self { service, bus, db, settings, stop, tasks: Vec::new() }
    }

    fn until_stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// Starts a projection whose store is the sled tree `tree`.
    pub fn projection<P: Projection>(&mut self, projection: P, tree: &str) -> Result<ProjectionHandle, StoreError> {
        let (runner, handle) = ProjectionRunner::new(
            self.service,
            projection,
            self.db.store(tree)?,
            self.bus.clone(),
            self.settings.clone(),
        )?;
        let _ = self.settings.stats.of(handle.name()).projection.set((handle.store().clone(), P::STREAM));
        let stopped = self.until_stopped();
        self.supervise(P::NAME, runner.run(stopped));
        Ok(handle)
    }

    /// Runs a task of the service (a runner, relay's delivery worker) under supervision: a
    /// panic is logged and reported to [`RunnerSettings::failures`], so that the process stops
    /// instead of serving from a state that no longer moves (S9).
    /// A replay runs none (they act on the world).
    /// It starts once this instance acts (a standby's waits for the lease).
    pub fn spawn(&mut self, name: &str, task: impl std::future::Future<Output = ()> + Send + 'static) {
        if self.settings.replay.is_some() {
            return;
        }
        match self.settings.acting.clone() {
            None => self.supervise(name, task),
            Some(mut acting) => {
                let stopped = self.until_stopped();
                self.supervise(name, async move {
                    let acts = async move { acting.wait_for(|a| *a).await.is_ok() };
                    tokio::select! {
                        () = stopped => {}
                        acts = acts => if acts { task.await },
                    }
                })
            }
        }
    }

    fn supervise(&mut self, name: &str, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let (service, name, failures) = (self.service, name.to_string(), self.settings.failures.clone());
        let inner = tokio::spawn(task);
        self.tasks.push(tokio::spawn(async move {
            if let Err(e) = inner.await
                && e.is_panic()
            {
                tracing::error!(service, task = %name, "a task panicked; the process stops (a restart resumes from the stored positions)");
                failures.report(format!("{service}: {name} panicked"));
            }
        }));
    }

    /// Starts a workflow; its position lives in the tree `<service>-<name>`. A replay starts none
    /// (a workflow appends or calls out): its handle stays at its stored position.
    pub fn workflow<W: Workflow>(&mut self, workflow: W) -> Result<ProjectionHandle, StoreError> {
        let tree = format!("{}-{}", self.service, W::NAME);
        let (runner, handle) = WorkflowRunner::new(
            self.service,
            workflow,
            self.db.store(&tree)?,
            self.bus.clone(),
            self.settings.clone(),
        )?;
        let stopped = self.until_stopped();
        self.spawn(W::NAME, runner.run(stopped));
        Ok(handle)
    }

    /// Waits until every runner has returned on its own (a replay's, at their positions).
    pub async fn finished(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }

    /// Stops every runner and waits for them, at most [`SHUTDOWN_PATIENCE`] in all: a runner
    /// that cannot finish its step (the log went first — a Ctrl-C reaches the local nats-server
    /// too) is dropped where it is. Nothing is lost by that: a step commits its writes and its
    /// position at once, so an unfinished one is done again from the stored position.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + SHUTDOWN_PATIENCE;
        for t in self.tasks {
            let abort = t.abort_handle();
            if tokio::time::timeout_at(deadline, t).await.is_err() {
                abort.abort();
                tracing::warn!(
                    service = self.service,
                    "A runner did not stop in time (is the log reachable?); stopped where it was, it resumes from its stored position"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::first_gap;

    /// A group must continue the stored position one by one (a lost pull shows as a gap).
    #[test]
    fn gaps_in_delivery() {
        let one = |seqs: &[u64]| seqs.iter().map(|s| (*s, *s)).collect::<Vec<_>>();
        assert_eq!(first_gap(0, one(&[1, 2, 3])), None);
        assert_eq!(first_gap(10, one(&[11, 12])), None);
        assert_eq!(first_gap(0, one(&[])), None);
        assert_eq!(first_gap(0, one(&[1001, 1002])), Some((1, 1001)), "the first pull was lost");
        assert_eq!(first_gap(0, one(&[1, 2, 501, 502])), Some((3, 501)), "a pull in the middle was lost");
        assert_eq!(first_gap(5, one(&[6, 8])), Some((7, 8)));
        assert_eq!(first_gap(5, one(&[7, 6])), Some((6, 7)), "out of order");
        // An event in parts spans its sequences.
        assert_eq!(first_gap(0, [(1, 1), (2, 4), (5, 5)]), None);
        assert_eq!(first_gap(0, [(1, 1), (3, 4)]), Some((2, 3)), "its first part is where it starts");
        // After a gap the stream no longer has, the check goes on from there.
        assert_eq!(first_gap(7, one(&[6, 8, 9])), None, "already applied messages are not gaps");
    }
}
