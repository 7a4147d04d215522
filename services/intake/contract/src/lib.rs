//! intake's published language: the stream it alone writes, its subjects and its events. intake
//! writes them; identity reads them (its convert module decodes them into its own input).
//!
//! Architecture invariant: names and wire types only, no behaviour; a change here is a change
//! of the contract between contexts.

use kokuho_bus::StreamDef;
pub use kokuho_proto::intake::v1 as pb;
use pb::IntakeEvent;
pub use pb::intake_event::Event;

/// The intake stream.
pub const STREAM: StreamDef = StreamDef {
    name: "KOKUHO_INTAKE",
    subjects: &["kokuho.intake.>"],
    description: "Submissions, their accepted records, and the business calendar",
};

/// `SubmissionAccepted`, `SubmissionRejected` of a municipality.
pub fn submission_subject(municipality: &str) -> String {
    format!("kokuho.intake.submission.{municipality}")
}

/// `RecordsAccepted` chunks of a municipality.
pub fn records_subject(municipality: &str) -> String {
    format!("kokuho.intake.records.{municipality}")
}

/// `BusinessDateSet`, `DayClosed` (rules.md T1), in one order with the submissions.
pub const CALENDAR_SUBJECT: &str = "kokuho.intake.calendar";

/// The sealed 個人番号 of intake's chunks (`NumbersSealed`), apart from the records so that the
/// services reading intake's stream never hold them, sealed or not (security.md S7): intake
/// writes it, identity alone reads it.
pub const SEALED: StreamDef = StreamDef {
    name: "KOKUHO_SEALED",
    subjects: &["kokuho.sealed.>"],
    description: "Sealed 個人番号 of intake's chunks, for identity alone",
};

/// The subject of one chunk's sealed numbers.
pub fn sealed_subject(municipality: &str, receipt: &str, chunk: u32) -> String {
    format!("kokuho.sealed.{municipality}.{receipt}.{chunk}")
}

kokuho_bus::stream_events!(
    /// The events of [`STREAM`].
    Events,
    "intake",
    IntakeEvent,
    Event { SubmissionAccepted, SubmissionRejected, RecordsAccepted, BusinessDateSet, DayClosed }
);
