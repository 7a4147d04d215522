//! The one projection of history, written once for every stream it reads: a [`Source`] turns
//! an event into facts about residents and persons, and [`Index`] stores them under the keys
//! the queries read. Deterministic like every projection: a replay gives the same keys.
//!
//! Keys (each source's own tree):
//! - `fr/<muni>/<宛名番号>/<sort>` → `Fact` about a resident of a municipality
//! - `fp/<都道府県被保険者ID>/<sort>` → `Fact` about a person
//! - identity's tree also: `l/<muni>/<宛名番号>/<pref>` and `lp/<pref>/<muni>/<宛名番号>` (links),
//!   `m/<into>/<from>` and `mf/<from>` → into (merges, I5), `case/<case id>` → `<muni>/<宛名番号>`
//! - intake's tree also: `cal/<nanos>/<seq>` → business date (u32 BE), the calendar
//!
//! `<sort>` is `<occurred nanos>/<seq>/<n>`, zero-padded: one event's facts in order.

use kokuho_bus::event;
use kokuho_proto::events::v1::Envelope;
use kokuho_proto::history::v1::Fact;
use kokuho_store::{ApplyError, LogEvent, Projection, Tx};
use prost::Message as _;

/// One stream's facts.
pub(crate) trait Source: Send + Sync + 'static {
    /// The projection's name (its tree and consumer).
    const NAME: &'static str;
    const STREAM: &'static str;
    const SUBJECT: Option<&'static str> = None;

    fn apply(&self, tx: &mut Tx<'_>, seq: u64, payload: &[u8]) -> Result<(), ApplyError>;
}

/// The projection of a [`Source`].
pub(crate) struct Index<S>(pub(crate) S);

impl<S: Source> Projection for Index<S> {
    const NAME: &'static str = S::NAME;
    const VERSION: u32 = 1;
    const STREAM: &'static str = S::STREAM;
    const SUBJECT: Option<&'static str> = S::SUBJECT;

    fn apply(&self, tx: &mut Tx<'_>, ev: &LogEvent<'_>) -> Result<(), ApplyError> {
        self.0.apply(tx, ev.seq, ev.payload)
    }
}

/// Decodes an event of stream `S` or says why it cannot be.
pub(crate) fn decode<S: event::StreamEvents>(payload: &[u8]) -> Result<(Envelope, S::Event), ApplyError> {
    event::decode::<S>(payload).map_err(ApplyError::Malformed)
}

pub(crate) fn nanos(envelope: &Envelope) -> i128 {
    envelope.occurred_at.as_ref().map(|t| t.seconds as i128 * 1_000_000_000 + t.nanos as i128).unwrap_or(0)
}

fn sort(nanos: i128, seq: u64, n: u32) -> String {
    format!("{:020}/{seq:020}/{n:05}", nanos.max(0))
}

pub(crate) fn resident_prefix(muni: &str, resident: &str) -> String {
    format!("fr/{muni}/{resident}/")
}
pub(crate) fn person_prefix(pref: &str) -> String {
    format!("fp/{pref}/")
}
pub(crate) fn links_prefix(muni: &str, resident: &str) -> String {
    format!("l/{muni}/{resident}/")
}
pub(crate) fn residents_prefix(pref: &str) -> String {
    format!("lp/{pref}/")
}
pub(crate) fn merged_from_prefix(into: &str) -> String {
    format!("m/{into}/")
}
pub(crate) fn merged_into_key(from: &str) -> Vec<u8> {
    format!("mf/{from}").into_bytes()
}
pub(crate) fn case_key(case: &str) -> Vec<u8> {
    format!("case/{case}").into_bytes()
}
pub(crate) const CALENDAR_PREFIX: &str = "cal/";
/// The municipality of a fact only an operator sees (no municipality is `*`).
pub(crate) const OPERATOR_ONLY: &str = "*";

/// Writes one event's facts.
pub(crate) struct Writer<'t, 'a> {
    pub(crate) tx: &'t mut Tx<'a>,
    base: Fact,
    nanos: i128,
    n: u32,
}

impl<'t, 'a> Writer<'t, 'a> {
    pub(crate) fn new(tx: &'t mut Tx<'a>, stream: &str, seq: u64, envelope: &Envelope, business_date: u32) -> Self {
        let base = Fact {
            business_date,
            event_id: envelope.event_id.clone(),
            stream: stream.to_string(),
            sequence: seq,
            occurred_at: envelope.occurred_at,
            ..Default::default()
        };
        Self { tx, base, nanos: nanos(envelope), n: 0 }
    }

    /// Stores a fact under `prefix` (a resident's or a person's), after the event's earlier ones.
    fn put(&mut self, prefix: String, whose: (&str, &str, &str), kind: &str, rules: &[&str], text: String) {
        let (municipality, resident, person) = whose;
        let fact = Fact {
            municipality: municipality.to_string(),
            resident_number: resident.to_string(),
            person: person.to_string(),
            kind: kind.to_string(),
            rules: rules.iter().map(|r| r.to_string()).collect(),
            text,
            ..self.base.clone()
        };
        self.n += 1;
        let key = format!("{prefix}{}", sort(self.nanos, self.base.sequence, self.n));
        self.tx.put(key, fact.encode_to_vec());
    }

    /// A fact about resident `resident` of `municipality` (and the person, where known).
    pub(crate) fn resident(
        &mut self,
        municipality: &str,
        resident: &str,
        person: &str,
        kind: &str,
        rules: &[&str],
        text: String,
    ) {
        if !resident.is_empty() {
            self.put(resident_prefix(municipality, resident), (municipality, resident, person), kind, rules, text);
        }
    }

    /// A fact about person `pref`, which concerns `municipality` (empty: the person as a whole).
    pub(crate) fn person(&mut self, pref: &str, municipality: &str, kind: &str, rules: &[&str], text: String) {
        if !pref.is_empty() {
            self.put(person_prefix(pref), (municipality, "", pref), kind, rules, text);
        }
    }

    /// (municipality, 宛名番号) is linked to person `pref` (I2).
    pub(crate) fn link(&mut self, municipality: &str, resident: &str, pref: &str) {
        if resident.is_empty() || pref.is_empty() {
            return;
        }
        self.tx.put(format!("{}{pref}", links_prefix(municipality, resident)), Vec::new());
        self.tx.put(format!("{}{municipality}/{resident}", residents_prefix(pref)), Vec::new());
    }

    /// Provisional person `from` was merged into `into` (I5).
    pub(crate) fn merged(&mut self, from: &str, into: &str) {
        self.tx.put(format!("{}{from}", merged_from_prefix(into)), Vec::new());
        self.tx.put(merged_into_key(from), into.as_bytes().to_vec());
    }
}

/// A name as history shows it: its first character, the rest masked.
pub(crate) fn mask(name: &str) -> String {
    let mut chars = name.chars().filter(|c| !c.is_whitespace());
    match chars.next() {
        None => String::new(),
        Some(first) => format!("{first}{}", "＊".repeat(chars.count().min(4))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_masked_after_their_first_character() {
        assert_eq!(mask("山田　太郎"), "山＊＊＊");
        assert_eq!(mask(""), "");
        assert!(!mask("ヤマダタロウ").contains("タロウ"));
    }

    #[test]
    fn sort_keys_order_by_time_then_sequence_then_position() {
        assert!(sort(5, 9, 2) < sort(6, 1, 1));
        assert!(sort(5, 9, 2) < sort(5, 10, 1));
        assert!(sort(5, 9, 2) < sort(5, 9, 10));
    }
}
