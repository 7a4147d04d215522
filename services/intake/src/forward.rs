//! Workflow `forward-rows`: intake's E, W and F rows go to the municipality's RE file.

use kokuho_bus::Bus;
use kokuho_bus::event::{self, Payload};
use kokuho_store::{ApplyError, LogEvent, Workflow};

use crate::INTAKE;

pub(crate) struct ForwardRowsToOutbox {
    pub(crate) bus: Bus,
}

impl Workflow for ForwardRowsToOutbox {
    const NAME: &'static str = "forward-rows";
    const STREAM: &'static str = INTAKE.name;

    async fn handle(&self, ev: &LogEvent<'_>) -> Result<(), ApplyError> {
        let (_, payload) = event::decode(ev.payload).map_err(ApplyError::Malformed)?;
        let (group, muni, rows) = match payload {
            Payload::SubmissionRejected(s) => (format!("intake:{}", s.receipt), s.municipality, s.rows),
            Payload::RecordsAccepted(c) => (format!("intake:{}:{}", c.receipt, c.chunk), c.municipality, c.rows),
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
            | Payload::PersonsEvaluated(_) => return Ok(()),
        };
        // The group id makes a repeat (after a crash before the position was stored) count once.
        kokuho_outbox::publish_rows(&self.bus, &group, &muni, rows)
            .await
            .map_err(|e| ApplyError::Transient(e.to_string()))
    }
}
