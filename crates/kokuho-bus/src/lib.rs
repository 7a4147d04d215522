//! The kokuho event log on NATS JetStream. Every service appends and reads the log through this
//! crate; no other crate imports `async_nats` (docs/architecture.md, "Architecture invariants").
//!
//! What it owns:
//! - streams declared in code ([`StreamDef`]) and created idempotently, file storage, deletes
//!   and purges denied (the log is append-only), atomic batches allowed;
//! - [`Bus::append`]: one message with a `Nats-Msg-Id` (deduplicated by the server), optional
//!   expected-last-subject-sequence for optimistic concurrency, retried after a timeout with the
//!   same message id;
//! - [`Bus::append_atomic`]: up to [`MAX_BATCH`] messages that become visible together or not
//!   at all (ADR-50 atomic batch publish, nats-server ≥ 2.12);
//! - events larger than one message, appended in parts and read whole ([`parts`]);
//! - durable pull consumers ([`Bus::consume`]) with an explicit `max_deliver`, started at a
//!   sequence the caller trusts, and the dead-letter stream ([`Bus::dead_letter`]);
//! - W3C trace context in message headers ([`trace`]);
//! - the event envelope, built and decoded in one place ([`event`]).
//!
//! Durability: the server must run with `jetstream { sync_interval: always }` (see
//! [`server_config`]); the 2025 Jepsen analysis showed acknowledged writes lost with the
//! default two-minute fsync.

pub mod access;
mod error;
pub mod event;
pub mod lease;
mod parts;
mod server;
pub mod shard;
pub mod trace;

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::StreamExt as _;

pub use access::{Access, NatsUser, SubjectRead};
pub use error::{BusError, BusErrorKind};
pub use parts::{MAX_EVENT, PART_BYTES};
pub use server::{MAX_PAYLOAD, server_config, tls_config};
pub use shard::Shard;

/// The most messages one atomic batch may hold (server limit, error 10199).
pub const MAX_BATCH: usize = 1_000;

/// The dead-letter stream: messages a consumer gave up on, with the reason in headers.
pub const DEAD_LETTER: StreamDef = StreamDef {
    name: "KOKUHO_DLQ",
    subjects: &["kokuho.dlq.>"],
    description: "Messages a consumer could not process, kept for the operator",
};

const HDR_ORIGIN_STREAM: &str = "Kokuho-Origin-Stream";
const HDR_ORIGIN_SEQ: &str = "Kokuho-Origin-Sequence";
const HDR_ORIGIN_SUBJECT: &str = "Kokuho-Origin-Subject";
const HDR_CONSUMER: &str = "Kokuho-Consumer";
const HDR_REASON: &str = "Kokuho-Reason";

/// A stream of the log, declared in code.
#[derive(Debug, Clone, Copy)]
pub struct StreamDef {
    pub name: &'static str,
    pub subjects: &'static [&'static str],
    pub description: &'static str,
}

/// The header naming the subjects an expected last subject sequence is about.
const EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT: &str = "Nats-Expected-Last-Subject-Sequence-Subject";

/// One message to append.
#[derive(Debug, Clone)]
pub struct Append {
    pub subject: String,
    pub payload: Bytes,
    /// Deduplication id (`Nats-Msg-Id`): the same id appended twice within the stream's
    /// duplicate window is stored once.
    pub msg_id: String,
    /// Optimistic concurrency: the append fails with [`BusErrorKind::WrongLastSequence`] unless
    /// the last message on `subject` has this stream sequence (0: no message yet).
    pub expected_last_subject_seq: Option<u64>,
    /// With `expected_last_subject_seq`: the subjects (a filter, wildcards allowed) whose last
    /// message it expects, instead of its own subject (`Nats-Expected-Last-Subject-Sequence-Subject`,
    /// nats-server ≥ 2.11): one writer of several subjects (a relay shard's plans and deliveries).
    pub expected_subjects: Option<String>,
    /// Optimistic concurrency on the whole stream: the append fails with
    /// [`BusErrorKind::WrongLastSequence`] unless the stream's last message has this sequence.
    pub expected_last_seq: Option<u64>,
    /// Part `i` of `n` of a larger event ([`parts`]).
    part: Option<(usize, usize)>,
    /// The trace context of the span it was made in (`traceparent`), so that it names the
    /// trace that decided it, however much later it is published.
    trace: HeaderMap,
}

impl Append {
    pub fn new(subject: impl Into<String>, payload: impl Into<Bytes>, msg_id: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            payload: payload.into(),
            msg_id: msg_id.into(),
            expected_last_subject_seq: None,
            expected_subjects: None,
            expected_last_seq: None,
            part: None,
            trace: {
                let mut h = HeaderMap::new();
                trace::inject(&mut h);
                h
            },
        }
    }

    pub fn subject_to(mut self, subject: impl Into<String>) -> Self {
        self.subject = subject.into();
        self
    }

    pub fn expect_last_subject_seq(mut self, seq: u64) -> Self {
        self.expected_last_subject_seq = Some(seq);
        self
    }

    /// Expects `seq` as the last sequence of the messages on `filter` (wildcards allowed).
    pub fn expect_last_seq_on(mut self, filter: impl Into<String>, seq: u64) -> Self {
        self.expected_last_subject_seq = Some(seq);
        self.expected_subjects = Some(filter.into());
        self
    }

    pub fn expect_last_seq(mut self, seq: u64) -> Self {
        self.expected_last_seq = Some(seq);
        self
    }

    fn headers(&self, with_msg_id: bool) -> HeaderMap {
        let mut h = HeaderMap::new();
        match self.part {
            Some((i, n)) => {
                if with_msg_id {
                    let id = if i == 1 { self.msg_id.clone() } else { format!("{}:part{i}", self.msg_id) };
                    h.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
                }
                h.insert(parts::HDR_PART, format!("{i}/{n}").as_str());
            }
            None if with_msg_id => h.insert(async_nats::header::NATS_MESSAGE_ID, self.msg_id.as_str()),
            None => {}
        }
        if let Some(seq) = self.expected_last_subject_seq {
            h.insert(async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, seq.to_string().as_str());
            if let Some(filter) = &self.expected_subjects {
                h.insert(EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT, filter.as_str());
            }
        }
        if let Some(seq) = self.expected_last_seq {
            h.insert(async_nats::header::NATS_EXPECTED_LAST_SEQUENCE, seq.to_string().as_str());
        }
        match self.trace.get(trace::TRACEPARENT) {
            Some(parent) => h.insert(trace::TRACEPARENT, parent.as_str()),
            None => trace::inject(&mut h),
        }
        h
    }
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Stream sequence of the (last) message; 0 for an event in parts that was stored before.
    pub seq: u64,
    /// The server had the message id already and stored nothing new.
    pub duplicate: bool,
}

/// A message read from the log.
#[derive(Debug)]
pub struct Delivered {
    pub stream_seq: u64,
    pub subject: String,
    pub payload: Bytes,
    pub headers: Option<HeaderMap>,
    /// The sequence of its first part (an event larger than one message), else `stream_seq`.
    pub first_seq: u64,
    /// How many times the server has delivered this message to the consumer.
    pub delivered: i64,
    /// The consumer's delivery count: one more for every delivery, redeliveries included.
    pub consumer_seq: u64,
    /// Messages the consumer had still to deliver when it sent this one (its lag).
    pub pending: u64,
    message: jetstream::Message,
}

impl Delivered {
    /// Acknowledges this message and, under the consumers' ack-all policy, every earlier one.
    pub async fn ack(&self) -> Result<(), BusError> {
        self.message.ack().await.map_err(|e| BusError::new(BusErrorKind::Unavailable, "ack", e))
    }
}

/// A message a consumer gave up on ([`Bus::dead_letter_list`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its sequence in the dead-letter stream.
    pub seq: u64,
    pub consumer: String,
    /// Where it is in the log: the original stays there.
    pub stream: String,
    pub origin_seq: u64,
    pub subject: String,
    pub reason: String,
    pub bytes: usize,
}

/// How a durable consumer starts.
#[derive(Debug, Clone)]
pub struct ConsumerDef {
    /// Durable name, stable: `<service>-<projection>`.
    pub name: String,
    pub stream: &'static str,
    /// Deliveries of one message before the server stops redelivering it.
    pub max_deliver: i64,
    /// Optional subject filter within the stream.
    pub filter_subject: Option<String>,
}

/// Progress of one durable consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerProgress {
    pub stream: String,
    pub consumer: String,
    /// Messages not yet delivered.
    pub pending: u64,
    /// Messages delivered and not yet acknowledged.
    pub ack_pending: u64,
    /// Highest stream sequence acknowledged (with all before it).
    pub ack_floor: u64,
}

/// S9: an event larger than the log takes (in parts, [`MAX_EVENT`]) is refused here, at once
/// and for good, with its size.
fn too_large(a: &Append) -> Result<(), BusError> {
    if a.payload.len() > MAX_EVENT {
        let why = format!("{} bytes on {}; the largest event is {MAX_EVENT}", a.payload.len(), a.subject);
        return Err(BusError::new(BusErrorKind::Invalid, "an event larger than the log takes", why));
    }
    Ok(())
}

/// A tool's reader of stream `s` from its start, acknowledging nothing: filtered to `filter`
/// (empty: every subject), named `name` if given (a user may be allowed only that consumer on
/// that subject; one left by a reader that stopped half-way is replaced). Delete the consumer
/// when done.
async fn reader(
    s: &jetstream::stream::Stream<()>,
    filter: &str,
    name: Option<&str>,
) -> Result<(consumer::Consumer<consumer::pull::Config>, consumer::pull::Stream), BusError> {
    if let Some(name) = name {
        let _ = s.delete_consumer(name).await;
    }
    let consumer = s
        .create_consumer(consumer::pull::Config {
            name: name.map(String::from),
            filter_subject: filter.to_string(),
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .map_err(|e| BusError::new(BusErrorKind::Unavailable, "create reader", e))?;
    let messages = consumer
        .stream()
        .max_messages_per_batch(1_000)
        .max_bytes_per_batch(2 * server::MAX_PAYLOAD)
        .messages()
        .await
        .map_err(|e| BusError::new(BusErrorKind::Unavailable, "read", e))?;
    Ok((consumer, messages))
}

/// The last message of a subject read on its own must be a whole event, not the last part of one.
fn whole(subject: &str, headers: Option<&HeaderMap>) -> Result<(), BusError> {
    match parts::part_of(headers) {
        Some((_, n)) if n > 1 => Err(BusError::new(
            BusErrorKind::Invalid,
            "the last message is one part of a larger event",
            format!("{subject}: read it whole with read_subject"),
        )),
        _ => Ok(()),
    }
}

/// The configuration of a stream kokuho owns: from the existing one (an operator's limits, its
/// storage) with kokuho's subjects, description and guarantees (no delete, no purge, atomic
/// batches, the duplicate window) and at least `replicas` replicas — never fewer than it has
/// (S9: a service starting does not undo an operator's R3).
pub fn stream_config(def: &StreamDef, replicas: usize, existing: Option<&stream::Config>) -> stream::Config {
    let base = existing.cloned().unwrap_or_else(|| stream::Config {
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        ..Default::default()
    });
    stream::Config {
        name: def.name.to_string(),
        description: Some(def.description.to_string()),
        subjects: def.subjects.iter().map(|s| s.to_string()).collect(),
        num_replicas: base.num_replicas.max(replicas).max(1),
        deny_delete: true,
        deny_purge: true,
        allow_atomic_publish: true,
        // The last message of a subject is read with DIRECT.GET.<stream>.<subject>, whose API
        // subject names the subject: a permission can allow one subject's head (access.rs).
        allow_direct: true,
        duplicate_window: Duration::from_secs(120),
        ..base
    }
}

#[cfg(test)]
mod config_tests {
    use super::*;

    const DEF: StreamDef = StreamDef { name: "KOKUHO_X", subjects: &["kokuho.x.>"], description: "x" };

    /// S9: replicas come from configuration and are never lowered; an operator's limits stay;
    /// kokuho's guarantees are put back.
    #[test]
    fn replicas_are_never_lowered_and_guarantees_restored() {
        let new = stream_config(&DEF, 1, None);
        assert_eq!((new.num_replicas, new.deny_delete, new.deny_purge), (1, true, true));
        assert_eq!(stream_config(&DEF, 3, None).num_replicas, 3);
        let operated = stream::Config { num_replicas: 3, max_bytes: 1 << 40, deny_purge: false, ..new.clone() };
        let again = stream_config(&DEF, 1, Some(&operated));
        assert_eq!((again.num_replicas, again.max_bytes, again.deny_purge), (3, 1 << 40, true));
        assert_eq!(stream_config(&DEF, 1, Some(&new)), new, "nothing to update");
    }
}

/// A connection to the log.
#[derive(Clone)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
    /// Replicas of the streams this connection creates (configuration; 1 on a single server).
    replicas: usize,
    /// The NATS user (a service's name): its dead letters go to `kokuho.dlq.<user>.<consumer>`.
    user: String,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus").finish_non_exhaustive()
    }
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const APPEND_ATTEMPTS: usize = 5;

impl Bus {
    /// Connects to the server at `url` without credentials as `name` (shown in the server's
    /// connection list): a server without authentication (crate tests, benchmarks).
    pub async fn connect(url: &str, name: &str) -> Result<Self, BusError> {
        Self::connect_as(url, &NatsUser::anonymous(name)).await
    }

    /// Connects as `user` (security.md S7: each service with its own credentials).
    pub async fn connect_as(url: &str, user: &NatsUser) -> Result<Self, BusError> {
        Self::connect_with_timeout(url, user, REQUEST_TIMEOUT).await
    }

    /// [`Bus::connect_as`] with another timeout for each request (an append's acknowledgement).
    pub async fn connect_with_timeout(url: &str, user: &NatsUser, timeout: Duration) -> Result<Self, BusError> {
        let mut options = async_nats::ConnectOptions::new();
        if let Some(seed) = user.seed() {
            options = options.nkey(seed.to_string());
        }
        if let Some(tls) = user.tls() {
            options = options
                .require_tls(true)
                .add_root_certificates(tls.ca.clone())
                .add_client_certificate(tls.cert.clone(), tls.key.clone());
        }
        let client = options
            .name(&user.name)
            // Replies come to the user's own prefix: its permissions allow no other inbox.
            .custom_inbox_prefix(access::inbox_prefix(&user.name))
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| BusError::new(BusErrorKind::Unavailable, "connect to NATS", e))?;
        // Set explicitly: the documented default and the code's default differ (stack.md).
        let js = jetstream::ContextBuilder::new()
            .timeout(timeout)
            .max_ack_inflight(4_096)
            .backpressure_on_inflight(true)
            .build(client.clone());
        Ok(Self { client, js, replicas: 1, user: user.name.clone() })
    }

    /// The same connection creating streams with `replicas` replicas (a NATS cluster: 3).
    pub fn with_replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas.max(1);
        self
    }

    /// Creates the stream if it does not exist, or brings what kokuho owns of its configuration
    /// up to date ([`stream_config`]: never fewer replicas, an operator's limits kept).
    pub async fn ensure_stream(&self, def: &StreamDef) -> Result<(), BusError> {
        match self.js.get_stream(def.name).await {
            Ok(existing) => {
                // `get_stream` already fetched the stream's info: no second request.
                let now = existing.cached_info().config.clone();
                let wanted = stream_config(def, self.replicas, Some(&now));
                if wanted != now {
                    self.js
                        .update_stream(wanted)
                        .await
                        .map_err(|e| BusError::new(BusErrorKind::Config, "update stream", e))?;
                }
            }
            Err(_) => {
                self.js
                    .create_stream(stream_config(def, self.replicas, None))
                    .await
                    .map_err(|e| BusError::new(BusErrorKind::Config, "create stream", e))?;
            }
        }
        Ok(())
    }

    /// Checks that the stream exists (a service's user may not create it): an error that says
    /// who creates it otherwise.
    pub async fn require_stream(&self, def: &StreamDef) -> Result<(), BusError> {
        self.js.get_stream(def.name).await.map(|_| ()).map_err(|e| {
            BusError::new(
                BusErrorKind::Config,
                "stream missing",
                format!("{}: {e} (the NATS admin creates the streams: kokuho streams)", def.name),
            )
        })
    }

    /// Appends one message. A timeout is retried with the same message id, so the message is
    /// stored once however often the retry happens.
    pub async fn append(&self, append: Append) -> Result<Appended, BusError> {
        too_large(&append)?;
        if append.payload.len() > PART_BYTES {
            return match self.append_atomic(vec![append]).await {
                // Stored before: an atomic batch refuses message ids it has (10201) rather than
                // skipping them, and a batch is stored whole or not at all.
                Err(e) if e.to_string().contains("10201") => Ok(Appended { seq: 0, duplicate: true }),
                other => other,
            };
        }
        self.append_one(append).await
    }

    async fn append_one(&self, append: Append) -> Result<Appended, BusError> {
        let mut last_error = None;
        for attempt in 0..APPEND_ATTEMPTS {
            let publish = jetstream::message::PublishMessage::build()
                .headers(append.headers(true))
                .payload(append.payload.clone());
            let result = match self.js.send_publish(append.subject.clone(), publish).await {
                Ok(ack) => ack.await.map_err(BusError::from_publish),
                Err(e) => Err(BusError::from_publish(e)),
            };
            match result {
                Ok(ack) => return Ok(Appended { seq: ack.sequence, duplicate: ack.duplicate }),
                Err(e) if e.is_retryable() => {
                    tracing::warn!(attempt, error = %e, "Append timed out; retrying with the same message id");
                    tokio::time::sleep(Duration::from_millis(50 << attempt.min(5))).await;
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| BusError::msg(BusErrorKind::Unavailable, "append failed")))
    }

    /// Appends up to [`MAX_BATCH`] messages (counting the parts of a larger event) as one atomic
    /// batch: all of them are stored, in order, or none. Expected-sequence headers are allowed on
    /// the messages (the first one is the usual place). Returns the sequence of the last message.
    pub async fn append_atomic(&self, batch: Vec<Append>) -> Result<Appended, BusError> {
        if batch.is_empty() {
            return Err(BusError::msg(BusErrorKind::Invalid, "empty atomic batch"));
        }
        for a in &batch {
            too_large(a)?;
        }
        let mut messages = Vec::with_capacity(batch.len());
        for a in batch {
            messages.extend(parts::split(a)?);
        }
        let batch = messages;
        if batch.len() > MAX_BATCH {
            return Err(BusError::msg(BusErrorKind::Invalid, "atomic batch holds more than 1,000 messages"));
        }
        if batch.len() == 1 && batch[0].part.is_none() {
            return self.append_one(batch.into_iter().next().expect("one message")).await;
        }
        let batch_id = uuid::Uuid::now_v7().simple().to_string();
        let last = batch.len();
        for (i, append) in batch.into_iter().enumerate() {
            let mut headers = append.headers(true);
            headers.insert(async_nats::header::NATS_BATCH_ID, batch_id.as_str());
            headers.insert(async_nats::header::NATS_BATCH_SEQUENCE, (i + 1).to_string().as_str());
            if i + 1 < last {
                self.client
                    .publish_with_headers(append.subject, headers, append.payload)
                    .await
                    .map_err(|e| BusError::new(BusErrorKind::Unavailable, "publish batch message", e))?;
            } else {
                headers.insert(async_nats::header::NATS_BATCH_COMMIT, async_nats::header::NATS_BATCH_COMMIT_FINAL);
                let publish = jetstream::message::PublishMessage::build().headers(headers).payload(append.payload);
                let ack = self
                    .js
                    .send_publish(append.subject, publish)
                    .await
                    .map_err(BusError::from_publish)?
                    .await
                    .map_err(BusError::from_publish)?;
                return Ok(Appended { seq: ack.sequence, duplicate: ack.duplicate });
            }
        }
        unreachable!("the loop returns at the last message")
    }

    /// Deletes a whole stream. Only for a stream that is derived from another (continuity's
    /// from identity's) and is to be derived again, and for tests: an input stream is never
    /// deleted (nothing accepted is ever lost).
    pub async fn delete_stream(&self, stream: &str) -> Result<(), BusError> {
        self.js
            .delete_stream(stream)
            .await
            .map_err(|e| BusError::new(BusErrorKind::Unavailable, "delete stream", e))?;
        Ok(())
    }

    /// Sequence of the stream's last message (0 if empty).
    pub async fn last_seq(&self, stream: &str) -> Result<u64, BusError> {
        let mut s =
            self.js.get_stream(stream).await.map_err(|e| BusError::new(BusErrorKind::Unavailable, "get stream", e))?;
        let info = s.info().await.map_err(|e| BusError::new(BusErrorKind::Unavailable, "stream info", e))?;
        Ok(info.state.last_sequence)
    }

    /// (messages, bytes) stored in the stream.
    pub async fn stream_size(&self, stream: &str) -> Result<(u64, u64), BusError> {
        let mut s =
            self.js.get_stream(stream).await.map_err(|e| BusError::new(BusErrorKind::Unavailable, "get stream", e))?;
        let info = s.info().await.map_err(|e| BusError::new(BusErrorKind::Unavailable, "stream info", e))?;
        Ok((info.state.messages, info.state.bytes))
    }

    /// Creation time of the stream, in nanoseconds: a projection stores it to notice a stream
    /// that was deleted and created again (and must then rebuild).
    pub async fn stream_epoch(&self, stream: &str) -> Result<i128, BusError> {
        let mut s =
            self.js.get_stream(stream).await.map_err(|e| BusError::new(BusErrorKind::Unavailable, "get stream", e))?;
        let info = s.info().await.map_err(|e| BusError::new(BusErrorKind::Unavailable, "stream info", e))?;
        Ok(info.created.unix_timestamp_nanos())
    }

    /// Stream sequence of the last message on `subject`, or 0 if there is none.
    pub async fn last_subject_seq(&self, stream: &str, subject: &str) -> Result<u64, BusError> {
        Ok(self.last_raw(stream, subject).await?.map_or(0, |m| m.sequence))
    }

    /// The sequence of the last message on any subject `filter` matches (wildcards allowed),
    /// 0 if none.
    pub async fn last_seq_on(&self, stream: &str, filter: &str) -> Result<u64, BusError> {
        if !filter.split('.').any(|t| t == "*" || t == ">") {
            return self.last_subject_seq(stream, filter).await;
        }
        let s = self.stream(stream).await?;
        match s.get_last_raw_message_by_subject(filter).await {
            Ok(m) => Ok(m.sequence),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(0),
            Err(e) => Err(BusError::new(BusErrorKind::Unavailable, "last message on subjects", e)),
        }
    }

    /// Whether JetStream answers (a cluster has elected its meta leader).
    pub async fn jetstream_ready(&self) -> bool {
        self.js.query_account().await.is_ok()
    }

    /// A handle on `stream` (no info fetched).
    async fn stream(&self, stream: &str) -> Result<jetstream::stream::Stream<()>, BusError> {
        self.js.get_stream_no_info(stream).await.map_err(|e| BusError::new(BusErrorKind::Unavailable, "get stream", e))
    }

    async fn last_raw(
        &self,
        stream: &str,
        subject: &str,
    ) -> Result<Option<jetstream::message::StreamMessage>, BusError> {
        let s = self.stream(stream).await?;
        match s.direct_get_last_for_subject(subject).await {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(BusError::new(BusErrorKind::Unavailable, "last message by subject", e)),
        }
    }

    /// The event stored at `seq` (a reader's position: the last part of an event in parts),
    /// whole, with a direct get per part; `None` if the stream does not hold it. For a history
    /// that keeps where its facts are rather than copies of them.
    pub async fn event_at(&self, stream: &str, seq: u64) -> Result<Option<Bytes>, BusError> {
        let s = self.stream(stream).await?;
        let get = async |seq: u64| match s.direct_get(seq).await {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(BusError::new(BusErrorKind::Unavailable, "message by sequence", e)),
        };
        let Some(last) = get(seq).await? else { return Ok(None) };
        let Some((i, n)) = parts::part_of(Some(&last.headers)) else { return Ok(Some(last.payload)) };
        let first = seq.saturating_sub(i as u64 - 1);
        let mut whole = bytes::BytesMut::new();
        for part in first..first + n as u64 {
            let m = if part == seq { Some(last.payload.clone()) } else { get(part).await?.map(|m| m.payload) };
            let Some(payload) = m else { return Ok(None) };
            whole.extend_from_slice(&payload);
        }
        Ok(Some(whole.freeze()))
    }

    /// Does the stream hold message `seq` (not deleted, not aged out)?
    pub async fn holds(&self, stream: &str, seq: u64) -> Result<bool, BusError> {
        let s = self.stream(stream).await?;
        match s.get_raw_message(seq).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(false),
            Err(e) => Err(BusError::new(BusErrorKind::Unavailable, "message by sequence", e)),
        }
    }

    /// The last message on `subject` (its sequence and payload), if any. Read with a direct get
    /// whose API subject names `subject` (a user may be allowed one subject's head only).
    /// The last event must be one message: an event in parts is read whole with
    /// [`Bus::read_subject`].
    pub async fn last_message(&self, stream: &str, subject: &str) -> Result<Option<(u64, Bytes)>, BusError> {
        let Some(m) = self.last_raw(stream, subject).await? else { return Ok(None) };
        whole(subject, Some(&m.headers))?;
        Ok(Some((m.sequence, m.payload)))
    }

    /// [`Bus::last_message`] answered by the stream's leader (`STREAM.MSG.GET`, never a replica a
    /// moment behind): for a read whose absence would be taken as final.
    pub async fn last_message_from_leader(
        &self,
        stream: &str,
        subject: &str,
    ) -> Result<Option<(u64, Bytes)>, BusError> {
        let s = self.stream(stream).await?;
        match s.get_last_raw_message_by_subject(subject).await {
            Ok(m) => {
                whole(subject, Some(&m.headers))?;
                Ok(Some((m.sequence, m.payload)))
            }
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(BusError::new(BusErrorKind::Unavailable, "last message by subject", e)),
        }
    }

    /// (Re)creates the durable consumer so that it delivers from `start_seq` on, and returns
    /// its message stream. The caller's stored position decides where reading starts, never
    /// the consumer's ack floor: a consumer left from an earlier run is replaced.
    pub async fn consume(&self, def: &ConsumerDef, start_seq: u64) -> Result<Consumer, BusError> {
        let s = self.stream(def.stream).await?;
        // Deleting a consumer that does not exist is not an error worth reporting.
        let _ = s.delete_consumer(&def.name).await;
        let config = consumer::pull::Config {
            durable_name: Some(def.name.clone()),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence { start_sequence: start_seq.max(1) },
            ack_policy: consumer::AckPolicy::All,
            ack_wait: Duration::from_secs(60),
            max_deliver: def.max_deliver,
            max_ack_pending: 20_000,
            filter_subject: def.filter_subject.clone().unwrap_or_default(),
            ..Default::default()
        };
        let c = s
            .create_consumer(config)
            .await
            .map_err(|e| BusError::new(BusErrorKind::Unavailable, "create consumer", e))?;
        let messages = c
            .stream()
            .max_messages_per_batch(1_000)
            // Bounds what the client buffers; twice the largest message, so that every message
            // fits in a pull (a message larger than a pull's byte limit is never delivered).
            .max_bytes_per_batch(2 * server::MAX_PAYLOAD)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(|e| BusError::new(BusErrorKind::Unavailable, "consume", e))?;
        Ok(Consumer { messages, received: 0 })
    }

    /// Every message on `subject` (one subject, no wildcards), in order, as (sequence, payload):
    /// read with an ephemeral consumer that leaves nothing behind. For audits and tools, not for
    /// projections (those read through [`Bus::consume`] from their own position).
    pub async fn read_subject(&self, stream: &str, subject: &str) -> Result<Vec<(u64, Bytes)>, BusError> {
        self.read_subject_with(stream, subject, None).await
    }

    /// [`Bus::read_subject`] with a consumer named `name`, whose creation request names the
    /// subject: a user allowed only that consumer on that subject may read it (access.rs).
    pub async fn read_subject_as(
        &self,
        stream: &str,
        subject: &str,
        name: &str,
    ) -> Result<Vec<(u64, Bytes)>, BusError> {
        self.read_subject_with(stream, subject, Some(name)).await
    }

    /// The last sequence of `stream` stored before `unix_nanos` (0 if none): where a reader
    /// stood at that moment, for an audit's replay "as it was then". Found with an ephemeral
    /// consumer that starts at that time and reads one message.
    pub async fn last_seq_before(&self, stream: &str, unix_nanos: i128) -> Result<u64, BusError> {
        let start_time = time::OffsetDateTime::from_unix_timestamp_nanos(unix_nanos)
            .map_err(|e| BusError::new(BusErrorKind::Invalid, "a time", e))?;
        let s = self.stream(stream).await?;
        let consumer = s
            .create_consumer(consumer::pull::Config {
                deliver_policy: consumer::DeliverPolicy::ByStartTime { start_time },
                ack_policy: consumer::AckPolicy::None,
                inactive_threshold: Duration::from_secs(60),
                ..Default::default()
            })
            .await
            .map_err(|e| BusError::new(BusErrorKind::Unavailable, "create reader", e))?;
        let first = consumer
            .fetch()
            .max_messages(1)
            .expires(Duration::from_secs(1))
            .messages()
            .await
            .map_err(|e| BusError::new(BusErrorKind::Unavailable, "read", e))?
            .next()
            .await;
        let name = consumer.cached_info().name.clone();
        let _ = s.delete_consumer(&name).await;
        match first {
            Some(m) => {
                let m = m.map_err(|e| BusError::new(BusErrorKind::Unavailable, "read", e))?;
                let info = m.info().map_err(|e| BusError::new(BusErrorKind::Invalid, "message info", e))?;
                Ok(info.stream_sequence - 1)
            }
            None => self.last_seq(stream).await,
        }
    }

    async fn read_subject_with(
        &self,
        stream: &str,
        subject: &str,
        name: Option<&str>,
    ) -> Result<Vec<(u64, Bytes)>, BusError> {
        let last = self.last_subject_seq(stream, subject).await?;
        if last == 0 {
            return Ok(Vec::new());
        }
        let s = self.stream(stream).await?;
        let (consumer, mut messages) = reader(&s, subject, name).await?;
        let mut raw = Vec::new();
        while let Some(m) = messages.next().await {
            let d = delivered(m)?;
            let done = d.stream_seq >= last;
            raw.push(d);
            if done {
                break;
            }
        }
        drop(messages);
        let out = parts::reassemble(raw).into_iter().map(|d| (d.stream_seq, d.payload)).collect();
        // Gone at once rather than after its inactivity threshold.
        let name = consumer.cached_info().name.clone();
        let _ = s.delete_consumer(&name).await;
        Ok(out)
    }

    /// Removes a durable consumer (a tool's scan that is done), so that it counts as pending
    /// nowhere. Removing one that does not exist is not an error.
    pub async fn remove_consumer(&self, stream: &str, name: &str) -> Result<(), BusError> {
        let s = self.stream(stream).await?;
        let _ = s.delete_consumer(name).await;
        Ok(())
    }

    /// Progress of every durable consumer on every stream whose name starts with `KOKUHO_`.
    pub async fn progress(&self) -> Result<Vec<ConsumerProgress>, BusError> {
        let mut out = Vec::new();
        let mut names = self.js.stream_names();
        let mut streams = Vec::new();
        while let Some(name) = names.next().await {
            let name = name.map_err(|e| BusError::new(BusErrorKind::Unavailable, "list streams", e))?;
            if name.starts_with("KOKUHO_") && name != DEAD_LETTER.name {
                streams.push(name);
            }
        }
        streams.sort();
        for name in streams {
            let s = self.stream(&name).await?;
            let mut consumers = s.consumers();
            while let Some(info) = consumers.next().await {
                let info = info.map_err(|e| BusError::new(BusErrorKind::Unavailable, "list consumers", e))?;
                if info.config.durable_name.is_none() {
                    continue; // an ephemeral reader (read_subject), not a service's consumer
                }
                out.push(ConsumerProgress {
                    stream: name.clone(),
                    consumer: info.name.clone(),
                    pending: info.num_pending,
                    ack_pending: info.num_ack_pending as u64,
                    ack_floor: info.ack_floor.stream_sequence,
                });
            }
        }
        out.sort_by(|a, b| (&a.stream, &a.consumer).cmp(&(&b.stream, &b.consumer)));
        Ok(out)
    }

    /// Stores a message a consumer gave up on in the dead-letter stream, with why.
    pub async fn dead_letter(
        &self,
        consumer: &str,
        stream: &str,
        delivered: &Delivered,
        reason: &str,
    ) -> Result<(), BusError> {
        let d = delivered;
        self.dead_letter_message(consumer, stream, d.stream_seq, &d.subject, d.payload.clone(), reason).await
    }

    /// Stores message `seq` of `stream` (on `subject`, with `payload`) in the dead-letter
    /// stream for `consumer`, with why; once, however often it is called.
    pub async fn dead_letter_message(
        &self,
        consumer: &str,
        stream: &str,
        seq: u64,
        subject: &str,
        payload: Bytes,
        reason: &str,
    ) -> Result<(), BusError> {
        let mut headers = HeaderMap::new();
        let msg_id = format!("dlq:{consumer}:{stream}:{seq}");
        let dlq_subject = format!("kokuho.dlq.{}.{consumer}", self.user);
        headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id.as_str());
        headers.insert(HDR_ORIGIN_STREAM, stream);
        headers.insert(HDR_ORIGIN_SEQ, seq.to_string().as_str());
        headers.insert(HDR_ORIGIN_SUBJECT, subject);
        headers.insert(HDR_CONSUMER, consumer);
        headers.insert(HDR_REASON, reason);
        // A copy of an event in parts would be parts itself: the event stays where it is.
        let payload = if payload.len() > PART_BYTES {
            headers.insert(
                HDR_REASON,
                format!("{reason} (the event, {} bytes, is not copied: read it in its stream)", payload.len()).as_str(),
            );
            Bytes::new()
        } else {
            payload
        };
        let publish = jetstream::message::PublishMessage::build().headers(headers).payload(payload);
        self.js
            .send_publish(dlq_subject, publish)
            .await
            .map_err(BusError::from_publish)?
            .await
            .map_err(BusError::from_publish)?;
        Ok(())
    }

    /// Every message of the dead-letter stream with where it came from and why, oldest first
    /// (`kokuho dead-letters`; the operator, or the auditor).
    pub async fn dead_letter_list(&self) -> Result<Vec<DeadLetter>, BusError> {
        let s = self.stream(DEAD_LETTER.name).await?;
        if self.last_seq(DEAD_LETTER.name).await? == 0 {
            return Ok(Vec::new());
        }
        let (consumer, mut messages) = reader(&s, "", None).await?;
        let mut out = Vec::new();
        while let Some(m) = messages.next().await {
            let d = delivered(m)?;
            let header = |name: &str| {
                d.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_string()).unwrap_or_default()
            };
            out.push(DeadLetter {
                seq: d.stream_seq,
                consumer: header(HDR_CONSUMER),
                stream: header(HDR_ORIGIN_STREAM),
                origin_seq: header(HDR_ORIGIN_SEQ).parse().unwrap_or(0),
                subject: header(HDR_ORIGIN_SUBJECT),
                reason: header(HDR_REASON),
                bytes: d.payload.len(),
            });
            if d.pending == 0 {
                break;
            }
        }
        drop(messages);
        let name = consumer.cached_info().name.clone();
        let _ = s.delete_consumer(&name).await;
        Ok(out)
    }

    /// Number of messages in the dead-letter stream for `consumer` (of any user).
    pub async fn dead_letters(&self, consumer: &str) -> Result<u64, BusError> {
        if self.js.get_stream(DEAD_LETTER.name).await.is_err() {
            return Ok(0);
        }
        self.count(DEAD_LETTER.name, &format!("kokuho.dlq.*.{consumer}")).await
    }

    /// Number of messages stored in `stream` on subjects matching `filter`.
    pub async fn count(&self, stream: &str, filter: &str) -> Result<u64, BusError> {
        Ok(self.subject_counts(stream, filter).await?.values().sum())
    }

    /// The subjects of `stream` matching `filter` that hold messages, in order.
    pub async fn subjects(&self, stream: &str, filter: &str) -> Result<Vec<String>, BusError> {
        Ok(self.subject_counts(stream, filter).await?.into_keys().collect())
    }

    /// Messages per subject of `stream` matching `filter`.
    pub async fn subject_counts(
        &self,
        stream: &str,
        filter: &str,
    ) -> Result<std::collections::BTreeMap<String, u64>, BusError> {
        let s =
            self.js.get_stream(stream).await.map_err(|e| BusError::new(BusErrorKind::Unavailable, "get stream", e))?;
        let mut subjects = s
            .info_with_subjects(filter)
            .await
            .map_err(|e| BusError::new(BusErrorKind::Unavailable, "count messages", e))?;
        let mut out = std::collections::BTreeMap::new();
        while let Some(entry) = subjects.next().await {
            let (subject, count) = entry.map_err(|e| BusError::new(BusErrorKind::Unavailable, "count messages", e))?;
            out.insert(subject, count as u64);
        }
        Ok(out)
    }

    /// Subjects of the messages published on `subject` (wildcards allowed) from now on, as
    /// they pass through the server, stored or not: for operators' taps and for tests.
    pub async fn tap(&self, subject: &str) -> Result<impl futures::Stream<Item = String> + use<>, BusError> {
        let sub = self
            .client
            .subscribe(subject.to_string())
            .await
            .map_err(|e| BusError::new(BusErrorKind::Unavailable, "subscribe", e))?;
        Ok(sub.map(|m| m.subject.to_string()))
    }
}

/// A group stops growing once its payloads reach this many bytes (memory stays bounded however
/// large the messages of a stream are).
pub const GROUP_MAX_BYTES: usize = 8 << 20;

/// The message stream of a durable consumer.
pub struct Consumer {
    messages: consumer::pull::Stream,
    /// The consumer sequence of the last message received (the consumer is new: from 0).
    received: u64,
}

impl Consumer {
    /// Waits for the next message, then takes whatever else is already there, up to `max`
    /// messages and [`GROUP_MAX_BYTES`]: the group a projection commits in one store
    /// transaction (group commit).
    ///
    /// Every delivery counts on the server's side (redeliveries too), so consumer sequences
    /// arrive one by one unless a delivery was lost on the way (a pull lost under load): that
    /// fails the group, and the caller starts again from its stored position. It holds for a
    /// consumer filtered to one subject, whose stream sequences skip the others.
    pub async fn next_group(&mut self, max: usize, linger: Duration) -> Result<Vec<Delivered>, BusError> {
        let mut group: Vec<Delivered> = Vec::new();
        match self.messages.next().await {
            Some(m) => group.push(self.received(m)?),
            None => return Err(BusError::msg(BusErrorKind::Unavailable, "consumer stream ended")),
        }
        let mut bytes = group[0].payload.len();
        while group.len() < max && bytes < GROUP_MAX_BYTES {
            match tokio::time::timeout(linger, self.messages.next()).await {
                Ok(Some(m)) => {
                    let d = self.received(m)?;
                    bytes += d.payload.len();
                    group.push(d);
                }
                Ok(None) => return Err(BusError::msg(BusErrorKind::Unavailable, "consumer stream ended")),
                Err(_) => break,
            }
        }
        // An event in parts is handed over whole: its parts are one atomic batch, already stored.
        while parts::unfinished(&group) {
            match tokio::time::timeout(Duration::from_secs(30), self.messages.next()).await {
                Ok(Some(m)) => {
                    let d = self.received(m)?;
                    group.push(d);
                }
                Ok(None) => return Err(BusError::msg(BusErrorKind::Unavailable, "consumer stream ended")),
                Err(_) => return Err(BusError::msg(BusErrorKind::Unavailable, "the rest of an event did not arrive")),
            }
        }
        Ok(parts::reassemble(group))
    }
}

impl Consumer {
    fn received(
        &mut self,
        m: Result<jetstream::Message, consumer::pull::MessagesError>,
    ) -> Result<Delivered, BusError> {
        let d = delivered(m)?;
        if d.consumer_seq != self.received + 1 {
            let why = format!("expected delivery {}, got {}", self.received + 1, d.consumer_seq);
            return Err(BusError::new(BusErrorKind::Unavailable, "a delivery was lost", why));
        }
        self.received = d.consumer_seq;
        Ok(d)
    }
}

fn delivered(m: Result<jetstream::Message, consumer::pull::MessagesError>) -> Result<Delivered, BusError> {
    let message = m.map_err(|e| BusError::new(BusErrorKind::Unavailable, "receive", e))?;
    let info = message.info().map_err(|e| BusError::new(BusErrorKind::Invalid, "message info", e))?;
    let (stream_seq, consumer_seq, delivered, pending) =
        (info.stream_sequence, info.consumer_sequence, info.delivered, info.pending);
    Ok(Delivered {
        stream_seq,
        first_seq: stream_seq,
        subject: message.subject.to_string(),
        payload: message.payload.clone(),
        headers: message.headers.clone(),
        delivered,
        consumer_seq,
        pending,
        message,
    })
}
