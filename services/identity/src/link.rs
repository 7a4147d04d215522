//! Workflow `link-records`: intake's accepted KK records → identity's `ChunkLinked`; and
//! workflow `forward-rows`: identity's RI and RE rows → the outbox.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kokuho_bus::Bus;
use kokuho_bus::event;
use kokuho_crypto::{SealedNumber, Vault, WrappedKey};
use kokuho_identity_domain::{self as domain, Decision, Facts, Incoming, NumberKey, PersonRef};
use kokuho_ids::codes::Correction;
use kokuho_ids::{IndividualNumber, LocalGovCode, MuniInsuredId, PrefInsuredId};
use kokuho_proto::identity::v1 as pb;
use kokuho_proto::intake::v1 as ipb;
use kokuho_proto::results::v1::ResultRow;
use kokuho_store::{ApplyError, Decided, Decider, LogEvent, ProjectionHandle, Read, Rejected, Workflow};
use prost::Message as _;

use crate::convert::IntakeInput;
use crate::state::IdentityState;
use crate::state::{
    CURSOR, PERSONS, holder_prefix, index_key, muni_count_key, muni_id_key, person_key, resident_key, residents_prefix,
    u64_of,
};
use crate::{CHUNKS_SUBJECT, Event, Events, IDENTITY, NUMBERS_SUBJECT, convert};

pub(crate) struct LinkRecords {
    pub(crate) bus: Bus,
    pub(crate) state: ProjectionHandle,
    pub(crate) vault: Arc<Vault>,
}

fn transient(e: impl std::fmt::Display) -> ApplyError {
    ApplyError::Transient(e.to_string())
}

/// The context intake bound a sealed number to (kokuho_intake::number_context).
fn intake_context(municipality: &str, resident: &str) -> Vec<u8> {
    format!("{municipality}:{resident}").into_bytes()
}

impl Workflow for LinkRecords {
    const NAME: &'static str = "link-records";
    const STREAM: &'static str = kokuho_intake_contract::STREAM.name;

    /// Decides a group of intake events in order, each on identity's state as the earlier ones
    /// leave it, and appends the decisions as one atomic batch (kokuho_store::Decider).
    async fn handle(&self, events: &[LogEvent<'_>]) -> Result<Rejected, ApplyError> {
        let sealed = self.sealed_numbers(events).await?;
        let projection = IdentityState { vault: self.vault.clone() };
        let decider =
            Decider { bus: &self.bus, projection: &projection, state: &self.state, stream: IDENTITY.name, scope: None };
        decider.run(events, |view| Ok(u64_of(view.get(CURSOR)?)), |view, ev| self.decide(view, ev, &sealed)).await
    }
}

/// The sealed numbers of the group's chunks, by intake sequence: what `KOKUHO_SEALED` holds for
/// each (S7), or why not.
type SealedNumbers = BTreeMap<u64, Result<ipb::NumbersSealed, String>>;

impl LinkRecords {
    /// Reads the sealed numbers of every chunk of the group that keeps them apart, from the
    /// stream's leader (intake stored them before the chunk: absent is final, not late).
    async fn sealed_numbers(&self, events: &[LogEvent<'_>]) -> Result<SealedNumbers, ApplyError> {
        let mut out = SealedNumbers::new();
        for ev in events {
            let Ok(IntakeInput::Chunk(chunk)) = convert::intake_input(ev.payload) else { continue };
            if !chunk.numbers_apart {
                continue;
            }
            let subject = kokuho_intake_contract::sealed_subject(&chunk.municipality, &chunk.receipt, chunk.chunk);
            let found = self
                .bus
                .last_message_from_leader(kokuho_intake_contract::SEALED.name, &subject)
                .await
                .map_err(|e| ApplyError::Transient(e.to_string()))?;
            let sealed = match found {
                Some((_, bytes)) => <ipb::NumbersSealed as prost::Message>::decode(bytes).map_err(|e| {
                    format!("the sealed numbers of {} chunk {} do not decode: {e}", chunk.receipt, chunk.chunk)
                }),
                None => Err(format!("the sealed numbers of {} chunk {} are missing", chunk.receipt, chunk.chunk)),
            };
            out.insert(ev.seq, sealed);
        }
        Ok(out)
    }
}

impl LinkRecords {
    /// What an intake event becomes in identity's stream: a chunk of KK records is linked
    /// (`ChunkLinked`); the calendar is carried over (`BusinessDay`) so that day closes keep
    /// their place among the chunks.
    fn decide(&self, view: &dyn Read, ev: &LogEvent<'_>, sealed: &SealedNumbers) -> Result<Decided, ApplyError> {
        let day = |date, day_close| {
            let day = pb::BusinessDay { intake_sequence: ev.seq, date, day_close };
            vec![(CHUNKS_SUBJECT, event::envelope::<Events>(Event::BusinessDay(day), "", "", ""))]
        };
        Ok(match convert::intake_input(ev.payload).map_err(ApplyError::Malformed)? {
            IntakeInput::Chunk(mut chunk) => {
                if chunk.numbers_apart {
                    let numbers = sealed.get(&ev.seq).cloned().unwrap_or_else(|| Err("not read".into()));
                    with_numbers(&mut chunk, numbers.map_err(ApplyError::Malformed)?);
                }
                match self.link_chunk(ev.seq, &chunk, view)? {
                    Some((linked, kept)) => {
                        let (muni, receipt) = (&chunk.municipality, &chunk.receipt);
                        kept_then(kept, event::envelope::<Events>(Event::ChunkLinked(linked), muni, receipt, ""))
                    }
                    None => Vec::new(),
                }
            }
            IntakeInput::Calendar { date, day_close } => day(date, day_close),
            IntakeInput::Nothing => Vec::new(),
        })
    }

    fn link_chunk(
        &self,
        intake_seq: u64,
        chunk: &ipb::RecordsAccepted,
        view: &dyn Read,
    ) -> Result<Option<(pb::ChunkLinked, pb::NumbersKept)>, ApplyError> {
        let persons: Vec<&ipb::PersonRecord> = chunk
            .records
            .iter()
            .filter_map(|r| match &r.record {
                Some(ipb::change_record::Record::Person(p)) => Some(p),
                _ => None,
            })
            .collect();
        if persons.is_empty() {
            return Ok(None);
        }
        let lines: Vec<u32> = chunk
            .records
            .iter()
            .filter(|r| matches!(r.record, Some(ipb::change_record::Record::Person(_))))
            .map(|r| r.line)
            .collect();
        self.link(&Chunk { records: chunk, persons, lines }, intake_seq, view).map(Some)
    }
}

/// An intake chunk's KK records, with their line numbers.
struct Chunk<'c> {
    records: &'c ipb::RecordsAccepted,
    persons: Vec<&'c ipb::PersonRecord>,
    lines: Vec<u32>,
}

impl LinkRecords {
    /// Opens the chunk's numbers, looks up the facts, decides, and builds the event and the
    /// numbers kept behind it.
    fn link(
        &self,
        c: &Chunk<'_>,
        intake_seq: u64,
        store: &dyn Read,
    ) -> Result<(pb::ChunkLinked, pb::NumbersKept), ApplyError> {
        let (chunk, persons, lines) = (c.records, &c.persons[..], &c.lines[..]);
        let muni = chunk.municipality.as_str();
        let opener = match &chunk.data_key {
            Some(k) => Some(
                self.vault
                    .opener(&WrappedKey {
                        recipient_key_id: k.recipient_key_id.clone(),
                        encapsulated_key: k.encapsulated_key.clone(),
                        ciphertext: k.ciphertext.clone(),
                    })
                    // S9: a chunk sealed for a key identity does not hold (or whose data key is
                    // damaged) can never be opened: dead-lettered with why and an error line for
                    // the operator, never retried for everyone behind it.
                    .map_err(|e| {
                        tracing::error!(
                            receipt = %chunk.receipt,
                            municipality = muni,
                            key = %k.recipient_key_id,
                            error = %e,
                            "ALERT: a chunk's numbers cannot be opened with identity's keys; dead-lettered with its receipt and key id (install the key; the chunk waits in KOKUHO_DLQ)"
                        );
                        ApplyError::Malformed(format!(
                            "the data key of receipt {} ({}) cannot be opened: {e}",
                            chunk.receipt, k.recipient_key_id
                        ))
                    })?,
            ),
            None => None,
        };
        // Numbers stay in this function: the decider sees their keyed hashes only.
        let mut numbers: Vec<Option<IndividualNumber>> = Vec::with_capacity(persons.len());
        for p in persons {
            let n = match (&p.individual_number, &opener) {
                (Some(s), Some(o)) => Some(
                    o.open(
                        &SealedNumber { nonce: s.nonce.clone(), ciphertext: s.ciphertext.clone() },
                        &intake_context(muni, &p.resident_number),
                    )
                    .map_err(|e| ApplyError::Malformed(format!("sealed number of line: {e}")))?,
                ),
                _ => None,
            };
            numbers.push(n);
        }
        let incoming: Vec<Incoming> = persons
            .iter()
            .enumerate()
            .map(|(i, p)| Incoming {
                index: i,
                line: lines[i],
                resident: p.resident_number.clone(),
                delete: convert::is_delete(p),
                insured: convert::is_insured(p),
                number: numbers[i].as_ref().map(|n| self.vault.index(n)),
                birth: p.birth_date,
                sex: p.sex.clone(),
                name: p.name.clone(),
                kana: p.kana.clone(),
            })
            .collect();
        let facts = self.facts(store, muni, &incoming)?;
        let decision = domain::decide(muni, &facts, &incoming);
        let (mut linked, kept) = self.event(c, &numbers, decision, store)?;
        linked.intake_sequence = intake_seq;
        Ok((linked, kept))
    }

    fn event(
        &self,
        c: &Chunk<'_>,
        numbers: &[Option<IndividualNumber>],
        d: Decision,
        store: &dyn Read,
    ) -> Result<(pb::ChunkLinked, pb::NumbersKept), ApplyError> {
        let (chunk, persons, lines) = (c.records, &c.persons[..], &c.lines[..]);
        let muni = chunk.municipality.as_str();
        let code = LocalGovCode::parse(muni).map_err(|e| ApplyError::Malformed(format!("municipality {muni}: {e}")))?;
        let mut new_ids: BTreeMap<u64, String> = BTreeMap::new();
        let mut out = pb::ChunkLinked {
            municipality: muni.to_string(),
            receipt: chunk.receipt.clone(),
            business_date: chunk.business_date,
            ..Default::default()
        };
        let mut kept = pb::NumbersKept::default();
        for (serial, i) in &d.registered {
            let pref_id = PrefInsuredId::new(code.prefecture(), *serial).map_err(transient)?.to_string();
            let p = persons[*i];
            if let Some(n) = &numbers[*i] {
                kept.persons.push(convert::person_number(&self.vault, &pref_id, n).map_err(transient)?);
            }
            out.persons.push(pb::PersonRegistered {
                pref_id: pref_id.clone(),
                has_number: numbers[*i].is_some(),
                birth_date: p.birth_date,
                sex: p.sex.clone(),
                name: p.name.clone(),
                kana: p.kana.clone(),
            });
            new_ids.insert(*serial, pref_id);
        }
        let id_of = |p: &PersonRef| match p {
            PersonRef::Known(id) => id.clone(),
            PersonRef::New(n) => new_ids.get(n).cloned().unwrap_or_default(),
        };
        for (pref_id, i) in &d.attached {
            if let Some(n) = &numbers[*i] {
                kept.persons.push(convert::person_number(&self.vault, pref_id, n).map_err(transient)?);
                out.attached.push(pb::NumberAttached { pref_id: pref_id.clone() });
            }
        }
        for (pref_id, i) in &d.corrected {
            out.corrected.push(pb::PersonCorrected {
                pref_id: pref_id.clone(),
                birth_date: persons[*i].birth_date,
                sex: persons[*i].sex.clone(),
            });
        }
        // The domain names an ID it assigned here `new:<serial>`.
        let muni_id_of = |id: &str| -> Result<String, ApplyError> {
            match id.strip_prefix("new:").and_then(|n| n.parse::<u64>().ok()) {
                Some(serial) => Ok(MuniInsuredId::new(code, serial).map_err(transient)?.to_string()),
                None => Ok(id.to_string()),
            }
        };
        for (p, serial, i) in &d.assigned {
            let pref_id = id_of(p);
            let muni_id = MuniInsuredId::new(code, *serial).map_err(transient)?.to_string();
            out.rows.push(convert::ri(&persons[*i].resident_number, &muni_id, chunk.business_date, Correction::First));
            out.ids.push(pb::MunicipalIdAssigned {
                pref_id,
                municipality: muni.to_string(),
                muni_id,
                resident_number: persons[*i].resident_number.clone(),
                assigned_on: chunk.business_date,
            });
        }
        for (p, i) in &d.linked {
            let pref_id = id_of(p);
            let mut record = persons[*i].clone();
            record.individual_number = None; // I7: never downstream, sealed or not.
            out.links.push(pb::RecordLinked {
                muni_id: d.link_ids.get(i).map(|id| muni_id_of(id)).transpose()?.unwrap_or_default(),
                pref_id,
                line: lines[*i],
                record: Some(record),
                receipt: chunk.receipt.clone(),
            });
        }
        for (conflict, pref_id, i) in &d.held {
            let line = lines[*i];
            let case_id = format!("{}:{line}", chunk.receipt);
            let mut record = persons[*i].clone();
            record.individual_number = None;
            if let Some(n) = &numbers[*i] {
                let sealed = self.vault.seal_at_rest(n, &convert::case_context(&case_id)).map_err(transient)?;
                kept.cases.push(pb::CaseNumber { case_id: case_id.clone(), number: Some(convert::sealed(sealed)) });
            }
            out.held.push(pb::LinkHeld {
                case_id,
                code: conflict.code().into(),
                pref_id: pref_id.clone(),
                line,
                record: Some(record),
            });
        }
        for (from, into, _) in &d.merged {
            let from = id_of(&PersonRef::from_id(from));
            let into = id_of(into);
            let from_has_number = crate::state::number_of(store, &from)?.is_some();
            // S9: a merge the rules cannot make (a decider gone wrong, or a state that is not
            // the log's) would corrupt every link of two persons: the chunk is dead-lettered
            // with why and an alert, never appended and never retried for ever.
            if let Some(why) = impossible_merge(&from, &into, from_has_number) {
                tracing::error!(receipt = %chunk.receipt, %from, %into, "ALERT: {why}; the chunk is dead-lettered");
                return Err(ApplyError::Malformed(format!("receipt {}: {why}", chunk.receipt)));
            }
            self.merge(store, &mut out, &from, &into, chunk.business_date)?;
        }
        for r in &d.rows {
            out.rows.push(convert::re(r, &chunk.receipt));
        }
        Ok((out, kept))
    }
}

impl LinkRecords {
    /// I5 across municipalities: looks up the provisional person's IDs and residents and the
    /// survivor's IDs there; the domain decides what they become (`merge_ids`).
    fn merge(
        &self,
        store: &dyn Read,
        out: &mut pb::ChunkLinked,
        from: &str,
        into: &str,
        date: u32,
    ) -> Result<(), ApplyError> {
        let prefix = residents_prefix(from);
        let mut residents: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (key, _) in store.scan_prefix(prefix.as_bytes())? {
            let tail = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            if let Some((m, r)) = tail.split_once('/') {
                residents.entry(m.to_string()).or_default().push(r.to_string());
            }
        }
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        let (mut held, mut survivor) = (domain::HeldIds::new(), BTreeMap::new());
        for (m, rs) in residents {
            let Some(from_id) = store.get(&muni_id_key(&m, from))? else { continue };
            if let Some(own) = store.get(&muni_id_key(&m, into))? {
                survivor.insert(m.clone(), text(own));
            }
            held.insert(m, (text(from_id), rs));
        }
        let ids = domain::merge_ids(&held, &survivor);
        let assigned = |(m, id, r): (String, String, String)| pb::MunicipalIdAssigned {
            pref_id: into.into(),
            municipality: m,
            muni_id: id,
            resident_number: r,
            assigned_on: date,
        };
        let mut others: BTreeMap<String, Vec<ResultRow>> = BTreeMap::new();
        for (m, resident, id) in ids.corrections {
            let row = convert::ri(&resident, &id, date, Correction::Replaces);
            if m == out.municipality { out.rows.push(row) } else { others.entry(m).or_default().push(row) }
        }
        out.other_rows
            .extend(others.into_iter().map(|(municipality, rows)| pb::MunicipalityRows { municipality, rows }));
        let first_resident = |m: &str| held.get(m).and_then(|(_, rs)| rs.first().cloned()).unwrap_or_default();
        out.merged.push(pb::PersonMerged {
            from: from.into(),
            into: into.into(),
            adopted: ids.adopted.into_iter().map(assigned).collect(),
            survivor_ids: ids
                .survivor_ids
                .into_iter()
                .map(|(m, id)| assigned((m.clone(), id, first_resident(&m))))
                .collect(),
        });
        Ok(())
    }

    /// Looks up what the decider needs for `incoming`.
    fn facts(&self, store: &dyn Read, muni: &str, incoming: &[Incoming]) -> Result<Facts, ApplyError> {
        let mut f = Facts {
            persons_count: u64_of(store.get(PERSONS)?),
            muni_ids_count: u64_of(store.get(&muni_count_key(muni))?),
            ..Facts::default()
        };
        let mut ids: BTreeSet<String> = BTreeSet::new();
        let keys: BTreeSet<NumberKey> = incoming.iter().filter_map(|r| r.number).collect();
        for k in keys {
            if let Some(id) = store.get(&index_key(&k))? {
                let id = String::from_utf8_lossy(&id).into_owned();
                f.by_number.insert(k, id.clone());
                ids.insert(id);
            }
        }
        for r in incoming {
            if let Some(id) = store.get(&resident_key(muni, &r.resident))? {
                let id = String::from_utf8_lossy(&id).into_owned();
                f.by_resident.insert(r.resident.clone(), id.clone());
                ids.insert(id);
            }
        }
        for id in ids {
            let Some(bytes) = store.get(&person_key(&id))? else { continue };
            let p = pb::PersonRegistered::decode(bytes.as_slice()).map_err(|e| ApplyError::Malformed(e.to_string()))?;
            let kept = crate::state::number_of(store, &id)?;
            let holders = store
                .scan_prefix(holder_prefix(&id).as_bytes())?
                .into_iter()
                .map(|(k, _)| String::from_utf8_lossy(&k[holder_prefix(&id).len()..]).into_owned())
                .collect();
            // The person's number as the decider knows numbers: its keyed hash (stored with the
            // person under the current key, or computed again after a rotation).
            let number = kept.map(|k| convert::index_of(&self.vault, &k)).transpose().map_err(transient)?;
            if let Some(m) = store.get(&muni_id_key(muni, &id))? {
                f.muni_ids.insert(id.clone(), String::from_utf8_lossy(&m).into_owned());
            }
            f.persons.insert(
                id.clone(),
                domain::Person {
                    pref_id: id,
                    number,
                    birth: p.birth_date,
                    sex: p.sex,
                    name: p.name,
                    kana: p.kana,
                    holders,
                },
            );
        }
        Ok(f)
    }
}

/// identity's RI and RE rows for the outbox (and a merge's RI to other municipalities, I5).
pub(crate) struct IdentityRows;

impl kokuho_outbox::RowSource for IdentityRows {
    const NAME: &'static str = "forward-rows";
    const STREAM: &'static str = IDENTITY.name;
    type Events = Events;

    fn rows(&self, event: Event) -> kokuho_outbox::RowGroups {
        match event {
            Event::ChunkLinked(c) => {
                let group = format!("identity:{}", c.intake_sequence);
                let mut out = vec![(group.clone(), c.municipality, c.rows)];
                out.extend(
                    c.other_rows.into_iter().map(|o| (format!("{group}:{}", o.municipality), o.municipality, o.rows)),
                );
                out
            }
            Event::CaseResolved(c) => vec![(format!("identity:case:{}", c.case_id), c.municipality, c.rows)],
            Event::BusinessDay(_) | Event::NumbersKept(_) => Vec::new(),
        }
    }
}

/// Why merging `from` into `into` is impossible (I5 merges a provisional person, one without a
/// number, into another person), or nothing when it is a merge the rules can make.
fn impossible_merge(from: &str, into: &str, from_has_number: bool) -> Option<String> {
    if from.is_empty() || into.is_empty() {
        return Some(format!("a merge names no person ({from:?} into {into:?})"));
    }
    if from == into {
        return Some(format!("a merge of {from} into itself"));
    }
    if from_has_number {
        return Some(format!("a merge of {from}, which has a 個人番号 (only a provisional person is merged)"));
    }
    None
}

/// What identity appends for a decision: the numbers kept behind the event, on the subject
/// only identity reads (none when the event has none), then the event (S7).
pub(crate) fn kept_then(kept: pb::NumbersKept, event: event::Envelope) -> Decided {
    let mut out = Vec::with_capacity(2);
    if !(kept.persons.is_empty() && kept.cases.is_empty()) {
        out.push((NUMBERS_SUBJECT, event::envelope::<Events>(Event::NumbersKept(kept), "", "", "")));
    }
    out.push((CHUNKS_SUBJECT, event));
    out
}

/// Puts a chunk's sealed numbers back on its records, for this function's caller alone.
fn with_numbers(chunk: &mut ipb::RecordsAccepted, sealed: ipb::NumbersSealed) {
    let mut by_line: BTreeMap<u32, ipb::SealedNumber> =
        sealed.numbers.into_iter().filter_map(|n| Some((n.line, n.number?))).collect();
    for r in &mut chunk.records {
        if let Some(ipb::change_record::Record::Person(p)) = &mut r.record {
            p.individual_number = by_line.remove(&r.line);
        }
    }
    chunk.data_key = sealed.data_key;
}

#[cfg(test)]
mod tests {
    /// S9, I5: only a provisional person merges, into another person; anything else is refused.
    #[test]
    fn impossible_merges_are_named() {
        assert_eq!(super::impossible_merge("13000000000019", "13000000000027", false), None);
        for (from, into, numbered) in [
            ("13000000000019", "13000000000019", false),
            ("", "13000000000027", false),
            ("13000000000019", "", false),
            ("13000000000019", "13000000000027", true),
        ] {
            assert!(super::impossible_merge(from, into, numbered).is_some(), "{from} → {into}, numbered {numbered}");
        }
    }
}
