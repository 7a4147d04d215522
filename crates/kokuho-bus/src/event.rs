//! The envelope every event travels in (proto `kokuho.events.v1.Envelope`), built and read in
//! one place.

use bytes::Bytes;
pub use kokuho_proto::events::v1::Envelope;
pub use kokuho_proto::events::v1::envelope::Payload;
use prost::Message as _;

/// Current schema version of every payload (bump per payload when it changes shape).
pub const EVENT_VERSION: u32 = 1;

/// The stable name of a payload, stored in `event_type`.
pub fn event_type(payload: &Payload) -> &'static str {
    match payload {
        Payload::SubmissionAccepted(_) => "intake.SubmissionAccepted",
        Payload::SubmissionRejected(_) => "intake.SubmissionRejected",
        Payload::RecordsAccepted(_) => "intake.RecordsAccepted",
        Payload::BusinessDateSet(_) => "intake.BusinessDateSet",
        Payload::DayClosed(_) => "intake.DayClosed",
        Payload::ChunkLinked(_) => "identity.ChunkLinked",
        Payload::CaseResolved(_) => "identity.CaseResolved",
        Payload::NumberReleased(_) => "identity.NumberReleased",
        Payload::BusinessDay(_) => "identity.BusinessDay",
        Payload::PersonsEvaluated(_) => "continuity.PersonsEvaluated",
        Payload::AccessRecorded(_) => "audit.AccessRecorded",
        Payload::ResultRowsAdded(_) => "results.ResultRowsAdded",
        Payload::ResultFileIssued(_) => "results.ResultFileIssued",
        Payload::ResultFilesAcknowledged(_) => "results.ResultFilesAcknowledged",
    }
}

/// A new envelope with a fresh UUID v7 event id and the wall-clock append time (metadata only).
pub fn envelope(payload: Payload, partition: &str, correlation_id: &str, causation_id: &str) -> Envelope {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Envelope {
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: event_type(&payload).to_string(),
        event_version: EVENT_VERSION,
        partition: partition.to_string(),
        correlation_id: correlation_id.to_string(),
        causation_id: causation_id.to_string(),
        occurred_at: Some(prost_types::Timestamp { seconds: now.as_secs() as i64, nanos: now.subsec_nanos() as i32 }),
        payload: Some(payload),
    }
}

pub fn encode(envelope: &Envelope) -> Bytes {
    Bytes::from(envelope.encode_to_vec())
}

/// Decodes an envelope; `Err` names what is wrong (the runner dead-letters it).
pub fn decode(bytes: &[u8]) -> Result<(Envelope, Payload), String> {
    let mut envelope = Envelope::decode(bytes).map_err(|e| format!("not an envelope: {e}"))?;
    if envelope.event_version != EVENT_VERSION {
        return Err(format!("{} version {} is not known", envelope.event_type, envelope.event_version));
    }
    let payload = envelope.payload.take().ok_or_else(|| format!("{} without payload", envelope.event_type))?;
    Ok((envelope, payload))
}

impl crate::Append {
    /// An append of `envelope` on `subject`, deduplicated by its event id.
    pub fn event(subject: impl Into<String>, envelope: &Envelope) -> Self {
        Self::new(subject, encode(envelope), envelope.event_id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let p = Payload::DayClosed(kokuho_proto::intake::v1::DayClosed { date: 20260501, previous: 20260401 });
        let e = envelope(p.clone(), "", "c", "");
        let (back, payload) = decode(&encode(&e)).unwrap();
        assert_eq!(payload, p);
        assert_eq!(back.event_type, "intake.DayClosed");
        assert!(decode(b"\xff\xff").is_err());
    }
}
