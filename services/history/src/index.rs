//! The one projection of history, written once for every stream it reads, and the one way its
//! facts are read back. A [`Source`] reads an event into a [`Sink`]: indexing, it notes which
//! residents and persons the event concerns; at query time, the same code turns the event, read
//! again from the log, into the facts about the residents and persons asked for. So the log
//! holds each fact once and history keeps where to find it (issue 14: a projection keeps what
//! queries need). identity's events are the exception: history may not read identity's
//! stream by sequence (its NATS user reads the public subject through its own consumer only,
//! S7), so their facts are stored whole.
//!
//! Keys (each source's own tree; deterministic like every projection: a replay gives the same):
//! - `r/<muni>/<宛名番号>` and `p/<都道府県被保険者ID>` → the sequences (u64 BE, in order) of the
//!   stream's events about a resident, about a person
//! - identity's tree: `fr/<muni>/<宛名番号>/<sort>` and `fp/<pref>/<sort>` → `Fact`, with `<sort>`
//!   `<occurred nanos>/<seq>/<n>`; `l/<muni>/<宛名番号>/<pref>` and `lp/<pref>/<muni>/<宛名番号>`
//!   (links), `m/<into>/<from>` and `mf/<from>` → into (merges, I5), `case/<case id>` →
//!   `<muni>/<宛名番号>`
//! - intake's tree: `cal/<nanos>/<seq>` → business date (u32 BE), the calendar
//! - relay's: `op/<id>` → `<muni>/<宛名番号>/<処理区分>`; results': `g/<group id>` (seen once)

use std::collections::BTreeSet;

use kokuho_bus::event;
use kokuho_proto::events::v1::Envelope;
use kokuho_proto::history::v1::Fact;
use kokuho_store::{ApplyError, LogEvent, Projection, Read, StoreError, Tx};
use prost::Message as _;

/// One stream's facts.
pub(crate) trait Source: Send + Sync + 'static {
    /// The projection's name (its tree and consumer).
    const NAME: &'static str;
    const STREAM: &'static str;
    const SUBJECT: Option<&'static str> = None;
    /// Its facts are stored whole rather than read again from the log (identity's, S7).
    const STORED: bool = false;

    fn read(&self, sink: &mut Sink<'_, '_>, seq: u64, payload: &[u8]) -> Result<(), ApplyError>;
}

/// The projection of a [`Source`].
pub(crate) struct Index<S>(pub(crate) S);

impl<S: Source> Projection for Index<S> {
    const NAME: &'static str = S::NAME;
    // 2: where the facts are, not the facts (identity's aside).
    const VERSION: u32 = 2;
    const STREAM: &'static str = S::STREAM;
    const SUBJECT: Option<&'static str> = S::SUBJECT;

    fn apply(&self, tx: &mut Tx<'_>, ev: &LogEvent<'_>) -> Result<(), ApplyError> {
        let mut sink = Sink::Index { tx, stored: S::STORED, noted: BTreeSet::new() };
        self.0.read(&mut sink, ev.seq, ev.payload)
    }
}

/// The residents and persons a query asks about.
#[derive(Debug, Default)]
pub(crate) struct Wanted {
    pub(crate) residents: BTreeSet<(String, String)>,
    pub(crate) persons: BTreeSet<String>,
}

/// Where a source's reading goes.
pub(crate) enum Sink<'t, 'a> {
    /// Indexing: note the event under each resident and person it concerns (`stored`: store its
    /// facts whole); keep the source's own state.
    Index { tx: &'t mut Tx<'a>, stored: bool, noted: BTreeSet<Vec<u8>> },
    /// A query: the facts about the wanted residents and persons, reading the index's state.
    Collect { store: &'t dyn Read, wanted: &'t Wanted, out: &'t mut Vec<Fact> },
}

impl<'t, 'a> Sink<'t, 'a> {
    /// The facts of one event go through the returned writer.
    pub(crate) fn event<'s>(
        &'s mut self,
        stream: &str,
        seq: u64,
        envelope: &Envelope,
        business_date: u32,
    ) -> Writer<'s, 't, 'a> {
        let base = Fact {
            business_date,
            event_id: envelope.event_id.clone(),
            stream: stream.to_string(),
            sequence: seq,
            occurred_at: envelope.occurred_at,
            ..Default::default()
        };
        Writer { sink: self, base, nanos: nanos(envelope), n: 0 }
    }

    /// The source's own state (index time) or the index's (query time).
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Sink::Index { tx, .. } => tx.get(key),
            Sink::Collect { store, .. } => store.get(key),
        }
    }

    /// Keeps state at index time; nothing at query time.
    pub(crate) fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        if let Sink::Index { tx, .. } = self {
            tx.put(key, value);
        }
    }

    pub(crate) fn indexing(&self) -> bool {
        matches!(self, Sink::Index { .. })
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
pub(crate) fn resident_refs(muni: &str, resident: &str) -> Vec<u8> {
    format!("r/{muni}/{resident}").into_bytes()
}
pub(crate) fn person_refs(pref: &str) -> Vec<u8> {
    format!("p/{pref}").into_bytes()
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

/// The sequences stored under a `r/` or `p/` key.
pub(crate) fn refs(value: &[u8]) -> impl Iterator<Item = u64> + '_ {
    value.chunks_exact(8).map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
}

/// Writes one event's facts.
pub(crate) struct Writer<'s, 't, 'a> {
    pub(crate) sink: &'s mut Sink<'t, 'a>,
    base: Fact,
    nanos: i128,
    n: u32,
}

/// Whose fact: (municipality, 宛名番号, 都道府県被保険者ID).
type Whose<'w> = (&'w str, &'w str, &'w str);

impl Writer<'_, '_, '_> {
    /// A fact about the resident of `whose`, or, without a 宛名番号, about its person: its keys
    /// made only where the sink needs them.
    fn fact(&mut self, whose: Whose<'_>, what: (&str, &[&str], &str), text: impl FnOnce() -> String) {
        let (municipality, resident, person) = whose;
        let (kind, rules, topic) = what;
        let make = |base: &Fact, text: String| Fact {
            municipality: municipality.to_string(),
            resident_number: resident.to_string(),
            person: person.to_string(),
            kind: kind.to_string(),
            rules: rules.iter().map(|r| r.to_string()).collect(),
            text,
            topic: topic.to_string(),
            ..base.clone()
        };
        self.n += 1;
        match &mut *self.sink {
            Sink::Index { tx, stored: true, .. } => {
                let prefix =
                    if resident.is_empty() { person_prefix(person) } else { resident_prefix(municipality, resident) };
                let key = format!("{prefix}{}", sort(self.nanos, self.base.sequence, self.n));
                tx.put(key, make(&self.base, text()).encode_to_vec());
            }
            Sink::Index { tx, stored: false, noted } => {
                let refs =
                    if resident.is_empty() { person_refs(person) } else { resident_refs(municipality, resident) };
                // Once per event and key.
                if noted.insert(refs.clone()) {
                    let mut list = tx.get(&refs).ok().flatten().unwrap_or_default();
                    list.extend_from_slice(&self.base.sequence.to_be_bytes());
                    tx.put(refs, list);
                }
            }
            Sink::Collect { wanted, out, .. } => {
                let is_wanted = if resident.is_empty() {
                    wanted.persons.contains(person)
                } else {
                    wanted.residents.contains(&(municipality.to_string(), resident.to_string()))
                };
                if is_wanted {
                    out.push(make(&self.base, text()));
                }
            }
        }
    }

    /// A fact about resident `resident` of `municipality` (and the person, where known).
    pub(crate) fn resident(&mut self, whose: Whose<'_>, kind: &str, rules: &[&str], text: impl FnOnce() -> String) {
        let (_, resident, _) = whose;
        if !resident.is_empty() {
            self.fact(whose, (kind, rules, ""), text);
        }
    }

    /// A fact about person `pref`, which concerns `municipality` (empty: the person as a whole;
    /// [`OPERATOR_ONLY`]). `topic`: what it is about within its kind, when a fact equal to the
    /// last one of its topic is not shown again (a candidate's number; the periods: "").
    pub(crate) fn person(
        &mut self,
        pref: &str,
        municipality: &str,
        (kind, topic): (&str, &str),
        rules: &[&str],
        text: impl FnOnce() -> String,
    ) {
        if !pref.is_empty() {
            self.fact((municipality, "", pref), (kind, rules, topic), text);
        }
    }

    /// (municipality, 宛名番号) is linked to person `pref` (I2).
    pub(crate) fn link(&mut self, municipality: &str, resident: &str, pref: &str) {
        if resident.is_empty() || pref.is_empty() {
            return;
        }
        self.sink.put(format!("{}{pref}", links_prefix(municipality, resident)).into_bytes(), Vec::new());
        self.sink.put(format!("{}{municipality}/{resident}", residents_prefix(pref)).into_bytes(), Vec::new());
    }

    /// Provisional person `from` was merged into `into` (I5).
    pub(crate) fn merged(&mut self, from: &str, into: &str) {
        self.sink.put(format!("{}{from}", merged_from_prefix(into)).into_bytes(), Vec::new());
        self.sink.put(merged_into_key(from), into.as_bytes().to_vec());
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
