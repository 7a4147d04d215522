//! identity's published language: the stream it alone writes, its subjects and its events.
//! identity writes them; continuity (and kogaku, relay) read them through their convert modules.
//! What it publishes is pseudonymous (rules.md I7): IDs and records without 個人番号. The
//! numbers behind them (sealed at rest) are on a subject of the same stream that identity alone
//! reads (security.md S7); every other service reads [`CHUNKS_SUBJECT`] only ([`public`]).
//!
//! Architecture invariant: names and wire types only, no behaviour.

use kokuho_bus::{StreamDef, SubjectRead};
pub use kokuho_proto::identity::v1 as pb;
use pb::IdentityEvent;
pub use pb::identity_event::Event;

/// identity's stream.
pub const STREAM: StreamDef = StreamDef {
    name: "KOKUHO_IDENTITY",
    subjects: &["kokuho.identity.>"],
    description: "Persons, links, municipal IDs and held records, decided per chunk of accepted records",
};

/// `ChunkLinked`, `CaseResolved`, `BusinessDay`: one writer, each intake event once. The only
/// subject of the stream other services read.
pub const CHUNKS_SUBJECT: &str = "kokuho.identity.chunks";

/// `NumbersKept`: the sealed numbers behind the next event on [`CHUNKS_SUBJECT`] (appended just
/// before it, in the same atomic batch). identity alone reads it (S7).
pub const NUMBERS_SUBJECT: &str = "kokuho.identity.numbers";

/// What another service may read of identity's stream: [`CHUNKS_SUBJECT`], with its consumers
/// named (`<service>-<projection>`), and nothing else.
pub const fn public(consumers: &'static [&'static str]) -> SubjectRead {
    SubjectRead { stream: STREAM.name, subject: CHUNKS_SUBJECT, consumers }
}

kokuho_bus::stream_events!(
    /// The events of [`STREAM`].
    Events,
    "identity",
    IdentityEvent,
    Event { ChunkLinked, CaseResolved, BusinessDay, NumbersKept }
);
