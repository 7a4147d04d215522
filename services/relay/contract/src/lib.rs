//! relay's published language: the stream it alone writes, its subjects and its events.
//! relay writes them; the operations tooling reads them (docs/architecture.md).
//!
//! Architecture invariant: names and wire types only, no behaviour.

use kokuho_bus::StreamDef;
pub use kokuho_proto::relay::v1 as pb;
use pb::RelayEvent;
pub use pb::relay_event::Event;

/// relay's stream.
pub const STREAM: StreamDef = StreamDef {
    name: "KOKUHO_RELAY",
    subjects: &["kokuho.relay.>"],
    description: "加入者情報 planned per partition, the intermediate server's answers, stalls, provision requests",
};

/// `RecordsPlanned`: one subject, so that every plan is decided on the state the previous one
/// left (optimistic concurrency on its last sequence).
pub const PLANS_SUBJECT: &str = "kokuho.relay.plans";
/// `RecordsDelivered` and `PartitionStall`: the delivery worker's subject (one writer at a time,
/// by the same optimistic concurrency).
pub const DELIVERIES_SUBJECT: &str = "kokuho.relay.deliveries";
/// `ProvisionRecorded` (P2, append-only).
pub const PROVISION_SUBJECT: &str = "kokuho.relay.provision";

kokuho_bus::stream_events!(
    /// The events of [`STREAM`].
    Events,
    "relay",
    RelayEvent,
    Event { RecordsPlanned, RecordsDelivered, PartitionStall, ProvisionRecorded }
);
