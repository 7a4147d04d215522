//! identity's rules (rules.md I1–I6) as pure functions: one decider over a chunk of accepted KK
//! records (I1–I5), the IDs a merge leaves ([`merge_ids`], I5), and an operator's decision on a
//! held record ([`resolve`], I6).
//!
//! The caller opens each sealed 個人番号 and hands the decider only its keyed hash
//! ([`NumberKey`]): the decider never sees a number. What was decided before arrives as
//! [`Facts`], looked up for exactly the keys the chunk names; the [`Decision`] says which
//! persons to register, which numbers to attach, which IDs to assign, which records to link,
//! which to hold for review, and the RE rows (W002, W005, C01, C02).
//!
//! Architecture invariant: no IO; a 個人番号 never enters this crate.

use std::collections::{BTreeMap, BTreeSet};

use kokuho_ids::codes::Kubun;
use kokuho_ids::text::normalize_kana;

mod merge;
mod review;
pub use merge::{HeldIds, MergeIds, merge_ids};
pub use review::{Action, CaseDecision, CaseFacts, Target, resolve, target_of};

/// The keyed hash (HMAC) of a 個人番号: equal numbers, equal keys.
pub type NumberKey = [u8; 32];

/// A person as identity knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub pref_id: String,
    /// `None` for a provisional person (no number yet, I5).
    pub number: Option<NumberKey>,
    pub birth: u32,
    pub sex: String,
    pub name: String,
    pub kana: String,
    /// Municipalities with records linked to this person.
    pub holders: BTreeSet<String>,
}

/// One KK record of the chunk, its number replaced by its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// Position in the chunk (the caller's index into its records).
    pub index: usize,
    pub line: u32,
    pub resident: String,
    /// 削除: linked to whoever holds the key, nothing else.
    pub delete: bool,
    /// 被保険者区分 1 (a 擬制世帯主 gets no 市区町村被保険者ID).
    pub insured: bool,
    pub number: Option<NumberKey>,
    pub birth: u32,
    pub sex: String,
    pub name: String,
    pub kana: String,
}

/// What was decided before, for the keys the chunk names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Persons found by number key or by (municipality, 宛名番号).
    pub persons: BTreeMap<String, Person>,
    pub by_number: BTreeMap<NumberKey, String>,
    /// 宛名番号 of this municipality → 都道府県被保険者ID.
    pub by_resident: BTreeMap<String, String>,
    /// 都道府県被保険者ID → its 市区町村被保険者ID in this municipality.
    pub muni_ids: BTreeMap<String, String>,
    /// Persons registered so far in the prefecture, and IDs assigned in this municipality.
    pub persons_count: u64,
    pub muni_ids_count: u64,
}

/// Where a held record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// I3: the number belongs to a person with another 生年月日 or 性別.
    C01,
    /// I4: the (municipality, 宛名番号) is linked to a person with another number.
    C02,
}

/// An RE row of identity (fields after 受付番号/種別: line, 宛名番号, 項目名, 内容).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub kubun: Kubun,
    pub code: &'static str,
    pub line: u32,
    pub resident: String,
    pub field: &'static str,
    pub message: &'static str,
}

impl Conflict {
    pub fn code(self) -> &'static str {
        match self {
            Conflict::C01 => "C01",
            Conflict::C02 => "C02",
        }
    }

    /// The held record's code as stored (`LinkHeld.code`).
    pub fn parse(code: &str) -> Option<Self> {
        match code {
            "C01" => Some(Conflict::C01),
            "C02" => Some(Conflict::C02),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// New persons: (serial, the record that created them). The caller makes the ID.
    pub registered: Vec<(u64, usize)>,
    /// Numbers attached to provisional persons: (person, record).
    pub attached: Vec<(String, usize)>,
    /// Corrections by the only holder (W005): (person, record).
    pub corrected: Vec<(String, usize)>,
    /// New 市区町村被保険者ID: (person, serial in the municipality, record).
    pub assigned: Vec<(PersonRef, u64, usize)>,
    /// Linked records: (person, record). A record linked to a provisional person that a later
    /// record of the chunk merged into another names the survivor (I5).
    pub linked: Vec<(PersonRef, usize)>,
    /// The 市区町村被保険者ID each linked 被保険者 record carries: the person's in the municipality
    /// after the whole chunk (I2; after a merge the survivor's, I5). `new:<serial>` names one
    /// assigned by this decision (`assigned`).
    pub link_ids: BTreeMap<usize, String>,
    /// Held records: (conflict, the person concerned, record).
    pub held: Vec<(Conflict, String, usize)>,
    /// I5 merges: (the provisional person, the survivor, the record that brought the number).
    pub merged: Vec<(String, PersonRef, usize)>,
    pub rows: Vec<Row>,
}

/// A person of the decision: one known before, or the n-th registered by it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PersonRef {
    Known(String),
    New(u64),
}

impl PersonRef {
    /// The person a decision's person id names: `new:<serial>` for one registered by it.
    pub fn from_id(id: &str) -> Self {
        State::key_of(id)
    }
}

const NAME_DIFFERS: &str = "氏名が連携先の被保険者と異なります（同一人として連携しました）";
const KANA_DIFFERS: &str = "氏名カナが連携先の被保険者と異なります（同一人として連携しました）";
const BIRTH_CORRECTED: &str = "生年月日を訂正しました（この市区町村のみが保有する被保険者）";
const SEX_CORRECTED: &str = "性別を訂正しました（この市区町村のみが保有する被保険者）";
const C01_MESSAGE: &str = "個人番号が一致する被保険者と生年月日または性別が異なるため連携を保留しました";
const C02_MESSAGE: &str = "宛名番号が連携済みの被保険者と個人番号が異なるため連携を保留しました";

/// Decides the links of one chunk of `municipality`.
pub fn decide(municipality: &str, facts: &Facts, records: &[Incoming]) -> Decision {
    let mut s = State { facts: facts.clone(), decision: Decision::default(), new_persons: BTreeMap::new() };
    for r in records {
        s.record(municipality, r);
    }
    s.resolve_links(records);
    s.decision
}

struct State {
    facts: Facts,
    decision: Decision,
    /// Persons registered in this chunk, by serial, as the later records see them.
    new_persons: BTreeMap<u64, Person>,
}

impl State {
    fn person(&self, p: &PersonRef) -> Option<&Person> {
        match p {
            PersonRef::Known(id) => self.facts.persons.get(id),
            PersonRef::New(n) => self.new_persons.get(n),
        }
    }

    fn person_mut(&mut self, p: &PersonRef) -> Option<&mut Person> {
        match p {
            PersonRef::Known(id) => self.facts.persons.get_mut(id),
            PersonRef::New(n) => self.new_persons.get_mut(n),
        }
    }

    fn key_of(id: &str) -> PersonRef {
        match id.strip_prefix("new:") {
            Some(n) => PersonRef::New(n.parse().unwrap_or(0)),
            None => PersonRef::Known(id.to_string()),
        }
    }

    fn id_of(p: &PersonRef) -> String {
        match p {
            PersonRef::Known(id) => id.clone(),
            PersonRef::New(n) => format!("new:{n}"),
        }
    }

    fn row(&mut self, kubun: Kubun, code: &'static str, r: &Incoming, field: &'static str, message: &'static str) {
        self.decision.rows.push(Row { kubun, code, line: r.line, resident: r.resident.clone(), field, message });
    }

    fn register(&mut self, r: &Incoming) -> PersonRef {
        self.facts.persons_count += 1;
        let serial = self.facts.persons_count;
        self.decision.registered.push((serial, r.index));
        self.new_persons.insert(
            serial,
            Person {
                pref_id: format!("new:{serial}"),
                number: r.number,
                birth: r.birth,
                sex: r.sex.clone(),
                name: r.name.clone(),
                kana: r.kana.clone(),
                holders: BTreeSet::new(),
            },
        );
        if let Some(k) = r.number {
            self.facts.by_number.insert(k, format!("new:{serial}"));
        }
        PersonRef::New(serial)
    }

    fn hold(&mut self, conflict: Conflict, person: &str, r: &Incoming) {
        let (code, message) = match conflict {
            Conflict::C01 => ("C01", C01_MESSAGE),
            Conflict::C02 => ("C02", C02_MESSAGE),
        };
        self.decision.held.push((conflict, person.to_string(), r.index));
        self.row(Kubun::Conflict, code, r, "個人番号", message);
    }

    fn record(&mut self, municipality: &str, r: &Incoming) {
        let linked = self.facts.by_resident.get(&r.resident).map(|id| Self::key_of(id));
        if r.delete {
            if let Some(p) = linked {
                self.decision.linked.push((p, r.index));
            }
            return;
        }
        let person = match (r.number, linked) {
            (Some(key), Some(p)) => {
                let current = self.person(&p).and_then(|x| x.number);
                match current {
                    Some(k) if k == key => self.check_same_person(municipality, &p, r),
                    // I4: this 宛名番号 belongs to a person with another number.
                    Some(_) => {
                        self.hold(Conflict::C02, &Self::id_of(&p), r);
                        None
                    }
                    // I5: a number for a provisional person.
                    None => match self.facts.by_number.get(&key).map(|id| Self::key_of(id)) {
                        // The number belongs to another person: the provisional one merges into it.
                        Some(other) => {
                            // Only the same person (I3) can take the provisional one over.
                            let survivor = self.check_same_person(municipality, &other, r);
                            if let Some(s) = &survivor {
                                self.merge(&p, s, r);
                            }
                            survivor
                        }
                        None => {
                            if let PersonRef::Known(id) = &p {
                                self.decision.attached.push((id.clone(), r.index));
                            }
                            if let Some(x) = self.person_mut(&p) {
                                x.number = Some(key);
                            }
                            self.facts.by_number.insert(key, Self::id_of(&p));
                            Some(p)
                        }
                    },
                }
            }
            (Some(key), None) => match self.facts.by_number.get(&key).map(|id| Self::key_of(id)) {
                Some(p) => self.check_same_person(municipality, &p, r),
                None => Some(self.register(r)),
            },
            (None, Some(p)) => Some(p),
            // I5: no number, not linked: a provisional person.
            (None, None) => Some(self.register(r)),
        };
        let Some(p) = person else { return };
        self.link(municipality, p, r);
    }

    /// I5: every link of the provisional `from` now points at `into`, which takes over
    /// `from`'s 市区町村被保険者ID here unless it has one of its own.
    fn merge(&mut self, from: &PersonRef, into: &PersonRef, r: &Incoming) {
        let (from_id, into_id) = (Self::id_of(from), Self::id_of(into));
        for v in self.facts.by_resident.values_mut() {
            if *v == from_id {
                *v = into_id.clone();
            }
        }
        if let Some(id) = self.facts.muni_ids.remove(&from_id) {
            self.facts.muni_ids.entry(into_id).or_insert(id);
        }
        let holders = self.person(from).map(|p| p.holders.clone()).unwrap_or_default();
        if let Some(x) = self.person_mut(into) {
            x.holders.extend(holders);
        }
        self.decision.merged.push((from_id, into.clone(), r.index));
    }

    /// I3: the number matches person `p`; 生年月日 and 性別 must match too.
    fn check_same_person(&mut self, municipality: &str, p: &PersonRef, r: &Incoming) -> Option<PersonRef> {
        let known = self.person(p)?.clone();
        if known.birth != r.birth || known.sex != r.sex {
            let only_here = known.holders.iter().all(|m| m == municipality);
            if !only_here {
                self.hold(Conflict::C01, &Self::id_of(p), r);
                return None;
            }
            // The only holder corrects the person (W005).
            if known.birth != r.birth {
                self.row(Kubun::Warning, "W005", r, "生年月日", BIRTH_CORRECTED);
            }
            if known.sex != r.sex {
                self.row(Kubun::Warning, "W005", r, "性別", SEX_CORRECTED);
            }
            if let PersonRef::Known(id) = p {
                self.decision.corrected.push((id.clone(), r.index));
            }
            if let Some(x) = self.person_mut(p) {
                x.birth = r.birth;
                x.sex = r.sex.clone();
            }
        }
        if known.name != r.name {
            self.row(Kubun::Warning, "W002", r, "氏名", NAME_DIFFERS);
        }
        if normalize_kana(&known.kana) != normalize_kana(&r.kana) {
            self.row(Kubun::Warning, "W002", r, "氏名カナ", KANA_DIFFERS);
        }
        Some(p.clone())
    }

    /// After the chunk: links name the survivor of any merge, and each linked 被保険者 record the
    /// person's 市区町村被保険者ID here as the chunk leaves it (I2, I5).
    fn resolve_links(&mut self, records: &[Incoming]) {
        let alias: BTreeMap<String, String> =
            self.decision.merged.iter().map(|(from, into, _)| (from.clone(), Self::id_of(into))).collect();
        let resolve = |p: &PersonRef| {
            let mut id = Self::id_of(p);
            // Chains are short (a merge into a person merged later in the same chunk); bounded anyway.
            for _ in 0..alias.len() {
                match alias.get(&id) {
                    Some(next) => id = next.clone(),
                    None => break,
                }
            }
            Self::key_of(&id)
        };
        // An ID assigned here to a person merged later in the chunk is the survivor's if the
        // survivor took it over (it had none here); otherwise it was never used and is dropped.
        let assigned = std::mem::take(&mut self.decision.assigned);
        for (p, serial, i) in assigned {
            let survivor = resolve(&p);
            let id = format!("new:{serial}");
            if self.facts.muni_ids.get(&Self::id_of(&survivor)) == Some(&id) {
                self.decision.assigned.push((survivor, serial, i));
            }
        }
        let insured: BTreeSet<usize> = records.iter().filter(|r| r.insured && !r.delete).map(|r| r.index).collect();
        for (p, i) in &mut self.decision.linked {
            *p = resolve(p);
            if insured.contains(i)
                && let Some(id) = self.facts.muni_ids.get(&Self::id_of(p))
            {
                self.decision.link_ids.insert(*i, id.clone());
            }
        }
    }

    fn link(&mut self, municipality: &str, p: PersonRef, r: &Incoming) {
        let id = Self::id_of(&p);
        self.facts.by_resident.insert(r.resident.clone(), id.clone());
        if let Some(x) = self.person_mut(&p) {
            x.holders.insert(municipality.to_string());
        }
        // I2: the first link to this municipality as 被保険者 assigns the 市区町村被保険者ID.
        if r.insured && !self.facts.muni_ids.contains_key(&id) {
            self.facts.muni_ids_count += 1;
            let serial = self.facts.muni_ids_count;
            self.facts.muni_ids.insert(id, format!("new:{serial}"));
            self.decision.assigned.push((p.clone(), serial, r.index));
        }
        self.decision.linked.push((p, r.index));
    }
}

#[cfg(test)]
mod tests;
