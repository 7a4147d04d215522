//! identity's published language: the stream it alone writes, its subjects and its events.
//! identity writes them; continuity (and kogaku, relay) read them through their convert modules.
//! What it publishes is pseudonymous (rules.md I7): IDs and records without 個人番号.
//!
//! Architecture invariant: names and wire types only, no behaviour.

use kokuho_bus::StreamDef;
pub use kokuho_proto::identity::v1 as pb;
use pb::IdentityEvent;
pub use pb::identity_event::Event;

/// identity's stream.
pub const STREAM: StreamDef = StreamDef {
    name: "KOKUHO_IDENTITY",
    subjects: &["kokuho.identity.>"],
    description: "Persons, links, municipal IDs and held records, decided per chunk of accepted records",
};

/// `ChunkLinked`, `CaseResolved`, `BusinessDay`: one writer, each intake event once.
pub const CHUNKS_SUBJECT: &str = "kokuho.identity.chunks";

kokuho_bus::stream_events!(
    /// The events of [`STREAM`].
    Events,
    "identity",
    IdentityEvent,
    Event { ChunkLinked, CaseResolved, BusinessDay }
);
