//! The envelope every event travels in (proto `kokuho.events.v1.Envelope`), built and read in
//! one place. The payload is the encoded stream message of the context that owns the stream
//! ([`StreamEvents`]): a consumer decodes only the streams it reads, and a new stream costs the
//! others nothing.

use bytes::Bytes;
pub use kokuho_proto::events::v1::Envelope;
use prost::Message as _;

/// Current schema version of every payload (bump per payload when it changes shape).
pub const EVENT_VERSION: u32 = 1;

/// The events of one stream, declared by the context that owns it (its contract): the stream
/// message (a `oneof` of the context's events) and the stable name of each event.
pub trait StreamEvents {
    /// The stream message, e.g. `kokuho.intake.v1.IntakeEvent`.
    type Message: prost::Message + Default;
    /// The message's `oneof`: one variant per event.
    type Event;
    /// The owning context: every `event_type` of the stream starts with it and a dot, and an
    /// envelope of another stream is refused rather than misread.
    const CONTEXT: &'static str;

    fn wrap(event: Self::Event) -> Self::Message;
    fn unwrap(message: Self::Message) -> Option<Self::Event>;
    /// The stable name stored in `event_type`, e.g. "intake.SubmissionAccepted".
    fn event_type(event: &Self::Event) -> &'static str;
}

/// Declares the events of a stream: `stream_events!(Marker, "context", Message, Event { Variant, … })`
/// with `Message` (the stream message, a `oneof event`) and `Event` (its oneof enum) in scope.
/// Every variant must be listed (the match is exhaustive); its `event_type` is
/// `"<context>.<Variant>"`.
#[macro_export]
macro_rules! stream_events {
    ($(#[$meta:meta])* $marker:ident, $context:literal, $message:ident, $event:ident { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        pub struct $marker;

        impl $crate::event::StreamEvents for $marker {
            type Message = $message;
            type Event = $event;
            const CONTEXT: &'static str = $context;

            fn wrap(event: Self::Event) -> Self::Message {
                $message { event: Some(event) }
            }

            fn unwrap(message: Self::Message) -> Option<Self::Event> {
                message.event
            }

            fn event_type(event: &Self::Event) -> &'static str {
                match event {
                    $($event::$variant(_) => concat!($context, ".", stringify!($variant)),)+
                }
            }
        }
    };
}

/// A new envelope with a fresh UUID v7 event id and the wall-clock append time (metadata only).
pub fn envelope<S: StreamEvents>(
    event: S::Event,
    partition: &str,
    correlation_id: &str,
    causation_id: &str,
) -> Envelope {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Envelope {
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: S::event_type(&event).to_string(),
        event_version: EVENT_VERSION,
        partition: partition.to_string(),
        correlation_id: correlation_id.to_string(),
        causation_id: causation_id.to_string(),
        occurred_at: Some(prost_types::Timestamp { seconds: now.as_secs() as i64, nanos: now.subsec_nanos() as i32 }),
        payload: S::wrap(event).encode_to_vec(),
    }
}

pub fn encode(envelope: &Envelope) -> Bytes {
    Bytes::from(envelope.encode_to_vec())
}

/// Decodes an envelope and its event as stream `S` declares them; `Err` names what is wrong
/// (the runner dead-letters it).
pub fn decode<S: StreamEvents>(bytes: &[u8]) -> Result<(Envelope, S::Event), String> {
    let mut envelope = Envelope::decode(bytes).map_err(|e| format!("not an envelope: {e}"))?;
    if envelope.event_version != EVENT_VERSION {
        return Err(format!("{} version {} is not known", envelope.event_type, envelope.event_version));
    }
    let ours = envelope.event_type.strip_prefix(S::CONTEXT).is_some_and(|rest| rest.starts_with('.'));
    if !ours {
        return Err(format!("{} is not an event of the {} stream", envelope.event_type, S::CONTEXT));
    }
    let payload = std::mem::take(&mut envelope.payload);
    let message = S::Message::decode(payload.as_slice())
        .map_err(|e| format!("{} is not an event of this stream: {e}", envelope.event_type))?;
    let event =
        S::unwrap(message).ok_or_else(|| format!("{} of an unknown kind or without payload", envelope.event_type))?;
    Ok((envelope, event))
}

impl crate::Append {
    /// An append of `envelope` on `subject`, deduplicated by its event id.
    pub fn event(subject: impl Into<String>, envelope: &Envelope) -> Self {
        Self::new(subject, encode(envelope), envelope.event_id.clone())
    }
}

#[cfg(test)]
mod tests {
    use kokuho_proto::audit::v1::{AccessRecorded, AuditEvent, audit_event};

    use super::*;

    use audit_event::Event;

    crate::stream_events!(
        #[allow(unreachable_pub)]
        Audit,
        "audit",
        AuditEvent,
        Event { AccessRecorded, NumberReleased }
    );

    #[test]
    fn round_trip() {
        let e = audit_event::Event::AccessRecorded(AccessRecorded { who: "131016".into(), ..Default::default() });
        let env = envelope::<Audit>(e.clone(), "", "c", "");
        let (back, event) = decode::<Audit>(&encode(&env)).unwrap();
        assert_eq!(event, e);
        assert_eq!(back.event_type, "audit.AccessRecorded");
        assert!(decode::<Audit>(b"\xff\xff").is_err());
        // An envelope without an event (another stream's unknown field, or none) is an error.
        let empty = Envelope { event_version: EVENT_VERSION, event_type: "audit.X".into(), ..Default::default() };
        assert!(decode::<Audit>(&encode(&empty)).is_err());
        // Another stream's event is refused by its type, not misread.
        let other = Envelope { event_type: "intake.DayClosed".into(), ..env };
        assert!(decode::<Audit>(&encode(&other)).unwrap_err().contains("not an event of the audit stream"));
    }
}
