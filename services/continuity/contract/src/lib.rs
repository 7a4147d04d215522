//! continuity's published language: the stream it alone writes, its subject and its events.
//! continuity writes them; kogaku reads the C2 pairs and periods from them (docs/architecture.md).
//!
//! Architecture invariant: names and wire types only, no behaviour.

use kokuho_bus::StreamDef;
pub use kokuho_proto::continuity::v1 as pb;
use pb::ContinuityEvent;
pub use pb::continuity_event::Event;

/// continuity's stream.
pub const STREAM: StreamDef = StreamDef {
    name: "KOKUHO_CONTINUITY",
    subjects: &["kokuho.continuity.>"],
    description: "Persons' periods, determinations and anomalies, per identity event",
};

/// `PersonsEvaluated`: one writer, each identity event once.
pub const EVALUATIONS_SUBJECT: &str = "kokuho.continuity.evaluations";

kokuho_bus::stream_events!(
    /// The events of [`STREAM`].
    Events,
    "continuity",
    ContinuityEvent,
    Event { PersonsEvaluated }
);
