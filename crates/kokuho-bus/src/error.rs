//! Errors of the log, by kind, so that callers branch on whether a retry can help.

use async_nats::jetstream::context::{PublishError, PublishErrorKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusErrorKind {
    /// The server could not be reached or did not answer in time: retry.
    Unavailable,
    /// Optimistic concurrency: the subject moved on since the caller read it. Reload and retry.
    WrongLastSequence,
    /// The request cannot succeed as it is (too large, malformed, refused by the server).
    Invalid,
    /// A stream or consumer could not be set up.
    Config,
}

#[derive(Debug, thiserror::Error)]
#[error("{context}: {message}")]
pub struct BusError {
    kind: BusErrorKind,
    context: &'static str,
    message: String,
}

impl BusError {
    pub(crate) fn new(kind: BusErrorKind, context: &'static str, source: impl std::fmt::Display) -> Self {
        Self { kind, context, message: source.to_string() }
    }

    pub fn msg(kind: BusErrorKind, message: &'static str) -> Self {
        Self { kind, context: "log", message: message.to_string() }
    }

    pub(crate) fn from_publish(e: PublishError) -> Self {
        let kind = match e.kind() {
            PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe | PublishErrorKind::MaxAckPending => {
                BusErrorKind::Unavailable
            }
            PublishErrorKind::WrongLastSequence => BusErrorKind::WrongLastSequence,
            PublishErrorKind::StreamNotFound => BusErrorKind::Config,
            _ => BusErrorKind::Invalid,
        };
        Self::new(kind, "append", e)
    }

    pub fn kind(&self) -> BusErrorKind {
        self.kind
    }

    /// True if the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        self.kind == BusErrorKind::Unavailable
    }
}
