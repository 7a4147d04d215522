//! intake's rows for the outbox: E, W and F rows go to the municipality's RE file.

use kokuho_bus::event::Payload;
use kokuho_outbox::{RowGroups, RowSource};

use crate::INTAKE;

pub(crate) struct IntakeRows;

impl RowSource for IntakeRows {
    const NAME: &'static str = "forward-rows";
    const STREAM: &'static str = INTAKE.name;

    fn rows(&self, payload: Payload) -> RowGroups {
        match payload {
            Payload::SubmissionRejected(s) => vec![(format!("intake:{}", s.receipt), s.municipality, s.rows)],
            Payload::RecordsAccepted(c) => vec![(format!("intake:{}:{}", c.receipt, c.chunk), c.municipality, c.rows)],
            Payload::SubmissionAccepted(_)
            | Payload::BusinessDateSet(_)
            | Payload::DayClosed(_)
            | Payload::ResultRowsAdded(_)
            | Payload::ResultFileIssued(_)
            | Payload::ResultFilesAcknowledged(_)
            | Payload::ChunkLinked(_)
            | Payload::CaseResolved(_)
            | Payload::NumberReleased(_)
            | Payload::BusinessDay(_)
            | Payload::AccessRecorded(_)
            | Payload::PersonsEvaluated(_) => Vec::new(),
        }
    }
}
