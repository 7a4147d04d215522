//! Events larger than one message (security.md S9): an event over [`PART_BYTES`] is appended as
//! consecutive parts of at most that size, in one atomic batch, each with `Kokuho-Part: i/n`;
//! readers put the parts together again and see one event, at the sequence of its last part.
//! Nothing above this module knows: a day close that evaluates many persons, or a chunk of long
//! echoed fields, is one event however large, up to [`MAX_EVENT`]; past that the append is
//! refused at once, for good, with the event's size.
//!
//! The parts of an event are consecutive in the stream (one atomic batch) and on one subject,
//! so a consumer filtered to that subject sees them consecutively too. A reader's position is
//! always the end of an event, so no reader starts in the middle of one.

use bytes::{Bytes, BytesMut};

use crate::{Append, BusError, BusErrorKind, Delivered, MAX_PAYLOAD};

/// The header that numbers the parts of an event: `i/n`, from 1.
pub(crate) const HDR_PART: &str = "Kokuho-Part";

/// The largest part: the server's `max_payload` less room for the headers.
pub const PART_BYTES: usize = MAX_PAYLOAD - (64 << 10);

/// The largest event, in parts: what a reader may have to hold at once.
pub const MAX_EVENT: usize = 8 * PART_BYTES;

/// `append` as it goes to the server: itself, or its parts when it is larger than one message.
pub(crate) fn split(append: Append) -> Result<Vec<Append>, BusError> {
    let len = append.payload.len();
    if len <= PART_BYTES {
        return Ok(vec![append]);
    }
    if len > MAX_EVENT {
        let why = format!("{len} bytes on {}; the largest event is {MAX_EVENT}", append.subject);
        return Err(BusError::new(BusErrorKind::Invalid, "an event larger than the log takes", why));
    }
    let n = len.div_ceil(PART_BYTES);
    Ok((0..n)
        .map(|i| {
            let end = ((i + 1) * PART_BYTES).min(len);
            let mut part =
                Append::new(append.subject.clone(), append.payload.slice(i * PART_BYTES..end), &*append.msg_id);
            // The expectations hold for the event, so for its first part.
            if i == 0 {
                part.expected_last_seq = append.expected_last_seq;
                part.expected_last_subject_seq = append.expected_last_subject_seq;
                part.expected_subjects = append.expected_subjects.clone();
            }
            part.part = Some((i + 1, n));
            part.trace = append.trace.clone();
            part
        })
        .collect())
}

/// The part number of a delivered message: `(i, n)`, or none for a whole event.
pub(crate) fn part_of(headers: Option<&async_nats::HeaderMap>) -> Option<(usize, usize)> {
    let value = headers?.get(HDR_PART)?.as_str();
    let (i, n) = value.split_once('/')?;
    Some((i.parse().ok()?, n.parse().ok()?))
}

/// Does `group` end in the middle of an event (more parts to come)?
pub(crate) fn unfinished(group: &[Delivered]) -> bool {
    group.last().and_then(|d| part_of(d.headers.as_ref())).is_some_and(|(i, n)| i < n)
}

/// Puts the parts of each event of `group` together: one [`Delivered`] per event, at its last
/// part's sequence (acknowledging it acknowledges the parts), with its first part's headers
/// and sequence. A part without the ones before it is passed on as it is (it will not decode,
/// and is dead-lettered like any damaged message).
pub(crate) fn reassemble(group: Vec<Delivered>) -> Vec<Delivered> {
    let mut out = Vec::with_capacity(group.len());
    let mut open: Option<(Delivered, BytesMut, usize)> = None;
    for d in group {
        match part_of(d.headers.as_ref()) {
            None => {
                out.extend(open.take().map(|(first, _, _)| first));
                out.push(d);
            }
            Some((1, n)) => {
                out.extend(open.take().map(|(first, _, _)| first));
                let mut buf = BytesMut::with_capacity(n * PART_BYTES);
                buf.extend_from_slice(&d.payload);
                open = Some((d, buf, 1));
            }
            Some((i, n)) => match open.take() {
                Some((first, mut buf, seen)) if seen + 1 == i => {
                    buf.extend_from_slice(&d.payload);
                    if i == n {
                        out.push(Delivered {
                            first_seq: first.first_seq,
                            headers: first.headers,
                            payload: Bytes::from(buf),
                            ..d
                        });
                    } else {
                        open = Some((first, buf, i));
                    }
                }
                other => {
                    out.extend(other.map(|(first, _, _)| first));
                    out.push(d);
                }
            },
        }
    }
    out.extend(open.map(|(first, _, _)| first));
    out
}
