//! kogaku's published language: the stream it alone writes, its subject and its events.
//! kogaku writes them; relay and the operations tooling read them (docs/architecture.md).
//!
//! Architecture invariant: names and wire types only, no behaviour.

use kokuho_bus::StreamDef;
pub use kokuho_proto::kogaku::v1 as pb;
use pb::KogakuEvent;
pub use pb::kogaku_event::Event;

/// kogaku's stream.
pub const STREAM: StreamDef = StreamDef {
    name: "KOKUHO_KOGAKU",
    subjects: &["kokuho.kogaku.>"],
    description: "Continuation candidates, decisions and 高額 handovers, per input event",
};

/// `CandidatesEvaluated`: one subject, so that every evaluation is decided on the state the
/// previous one left (optimistic concurrency on its last sequence).
pub const EVALUATIONS_SUBJECT: &str = "kokuho.kogaku.evaluations";

kokuho_bus::stream_events!(
    /// The events of [`STREAM`].
    Events,
    "kogaku",
    KogakuEvent,
    Event { CandidatesEvaluated }
);
