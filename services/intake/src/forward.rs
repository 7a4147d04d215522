//! intake's rows for the outbox: E, W and F rows go to the municipality's RE file.

use kokuho_outbox::{RowGroups, RowSource};

use crate::{Event, Events, INTAKE};

pub(crate) struct IntakeRows;

impl RowSource for IntakeRows {
    const NAME: &'static str = "forward-rows";
    const STREAM: &'static str = INTAKE.name;
    type Events = Events;

    fn rows(&self, event: Event) -> RowGroups {
        match event {
            Event::SubmissionRejected(s) => vec![(format!("intake:{}", s.receipt), s.municipality, s.rows)],
            Event::RecordsAccepted(c) => vec![(format!("intake:{}:{}", c.receipt, c.chunk), c.municipality, c.rows)],
            Event::SubmissionAccepted(_) | Event::BusinessDateSet(_) | Event::DayClosed(_) => Vec::new(),
        }
    }
}
