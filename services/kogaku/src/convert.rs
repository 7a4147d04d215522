//! Wire ↔ domain for kogaku: the only module that reads another stream's events (intake's).

use kokuho_ids::Month;
use kokuho_ids::codes::{KogakuKind, ProcessingKind};
use kokuho_intake_contract::{Event, Events};

/// A KG record as kogaku keeps it: registered (`true`) or deleted, with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KogakuRecord {
    pub(crate) municipality: String,
    pub(crate) household: String,
    pub(crate) month: Month,
    pub(crate) kind: KogakuKind,
    pub(crate) register: bool,
}

/// The KG records of an event of the intake stream, in file order (every event of the stream is
/// named here, so a new one forces a decision). intake checked them; a value that does not
/// parse is an error (the event is dead-lettered), never a default.
pub(crate) fn kogaku_records(bytes: &[u8]) -> Result<Vec<KogakuRecord>, String> {
    let (_, event) = kokuho_bus::event::decode::<Events>(bytes)?;
    let chunk = match event {
        Event::RecordsAccepted(chunk) => chunk,
        Event::SubmissionAccepted(_)
        | Event::SubmissionRejected(_)
        | Event::BusinessDateSet(_)
        | Event::DayClosed(_) => {
            return Ok(Vec::new());
        }
    };
    let mut out = Vec::new();
    for r in chunk.records {
        use kokuho_intake_contract::pb::change_record::Record;
        let Some(Record::Kogaku(k)) = r.record else { continue };
        let month = Month::new((k.month / 100) as i32, (k.month % 100) as u8)
            .map_err(|_| format!("診療年月 {} of line {}", k.month, r.line))?;
        let kind = KogakuKind::parse(&k.kogaku_kind).map_err(|_| format!("該当区分 {:?}", k.kogaku_kind))?;
        let processing = ProcessingKind::parse(&k.processing).map_err(|_| format!("処理区分 {:?}", k.processing))?;
        out.push(KogakuRecord {
            municipality: chunk.municipality.clone(),
            household: k.household_number,
            month,
            kind,
            register: processing == ProcessingKind::Register,
        });
    }
    Ok(out)
}
