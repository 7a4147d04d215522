//! The submission decider (formats.md "What is rejected, and how much", 送信通番).
//!
//! A submission is one call with one or more files of one municipality. File-level errors
//! reject the whole submission (every file); otherwise every record is checked, a rejected
//! record takes the records of the same submission that depend on it with it (E010), and the
//! rest is accepted. What was accepted before reaches the decider as [`Facts`], looked up by
//! the caller for exactly the keys [`lookups`] names: the decider itself does no IO.

use std::collections::{BTreeMap, BTreeSet};

use kokuho_ids::codes::{InputKind, KogakuKind, ProcessingKind};
use kokuho_ids::{Date, LocalGovCode, Month, Registry};

use crate::file::{FileRejection, ParsedFile};
use crate::messages::{self, FileCode};
use crate::record::{self, Context, KG_FIELDS, KK_FIELDS, KS_FIELDS, Record};
use crate::row::{Kubun, ReRow};

/// 項目名 of a file-level row.
pub const FILE: &str = "ファイル";
/// 項目名 of a W003 row.
pub const SEQUENCE: &str = "送信通番";

/// One file of a submission, parsed or rejected at file level.
#[derive(Debug, Clone)]
pub struct FileInput {
    /// The client's file name (for the clerk; not part of any rule).
    pub name: String,
    pub parsed: Result<ParsedFile, FileRejection>,
}

/// Accepted 送信通番 of one (municipality, kind).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SequenceFacts {
    pub highest: Option<u32>,
    /// 通番 → (SHA-256 of the accepted file, 受付番号 that accepted it). Only the 通番 the
    /// submission names need to be present.
    pub accepted: BTreeMap<u32, (String, String)>,
}

/// What was accepted before, for the keys the submission names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub sequences: BTreeMap<InputKind, SequenceFacts>,
    /// 世帯番号 → the 異動年月日 of its registered (not deleted) KS states.
    pub households: BTreeMap<String, BTreeSet<Date>>,
    /// KK keys: (宛名番号, 適用開始年月日), `None` for a 擬制世帯主.
    pub person_keys: BTreeSet<(String, Option<Date>)>,
    /// KG keys.
    pub kogaku_keys: BTreeSet<(String, Month, KogakuKind)>,
}

/// The keys a submission's records name, for the caller to look up into [`Facts`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookups {
    /// (kind, 送信通番) of each readable file.
    pub sequences: BTreeSet<(InputKind, u32)>,
    pub households: BTreeSet<String>,
    pub residents: BTreeSet<String>,
}

/// The keys to look up for `files`. Raw field values are used as they are: a malformed value
/// finds nothing, and its record is rejected anyway.
pub fn lookups(files: &[FileInput]) -> Lookups {
    let mut l = Lookups::default();
    for f in files {
        let Ok(p) = &f.parsed else { continue };
        l.sequences.insert((p.header.kind, p.header.sequence));
        for r in &p.records {
            let field = |n: usize| r.fields.get(n).cloned().unwrap_or_default();
            match p.header.kind {
                InputKind::Households | InputKind::KogakuMonths => {
                    l.households.insert(field(2));
                }
                InputKind::Persons => {
                    l.residents.insert(field(2));
                    l.households.insert(field(3));
                }
                InputKind::ContinuationDecisions => {}
            }
        }
    }
    l.households.retain(|h| !h.is_empty());
    l.residents.retain(|r| !r.is_empty());
    l
}

/// What the decider was given besides the files.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub caller: LocalGovCode,
    pub registry: &'a Registry,
    pub facts: &'a Facts,
}

/// One file as the receipt records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    pub name: String,
    pub kind: Option<InputKind>,
    pub sequence: u32,
    pub sha256: String,
    pub data_records: u32,
    /// An identical resend of a file accepted before: it changes nothing.
    pub duplicate: bool,
}

/// An accepted record with the file kind and the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedRecord {
    pub kind: InputKind,
    pub line: u32,
    pub record: Record,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub files: Vec<FileSummary>,
    pub records: Vec<AcceptedRecord>,
    pub rows: Vec<ReRow>,
    pub accepted: u32,
    pub rejected: u32,
    pub warnings: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Rejected whole at file level; `code` is the first rejected file's.
    Rejected { code: FileCode, files: Vec<FileSummary>, rows: Vec<ReRow> },
    /// Every file was accepted before, byte for byte: the first receipt, nothing changes.
    Duplicate { receipt: String },
    /// Accepted fully (`rejected == 0`) or partly.
    Accepted(Accepted),
}

/// Kinds are processed in dependency order: households before the records that need them.
fn kind_order(kind: InputKind) -> u8 {
    match kind {
        InputKind::Households => 0,
        InputKind::Persons => 1,
        InputKind::KogakuMonths => 2,
        InputKind::ContinuationDecisions => 3,
    }
}

fn file_row(rejection: &FileRejection) -> ReRow {
    ReRow {
        kubun: Kubun::Error,
        code: rejection.code.code(),
        kind: rejection.kind,
        line: rejection.line,
        resident_number: String::new(),
        field: FILE,
        message: rejection.code.message().to_string(),
    }
}

/// Decides a submission.
pub fn decide(input: Input<'_>, files: &[FileInput]) -> Outcome {
    let mut summaries = Vec::new();
    let mut rejections = Vec::new();
    let mut warnings = Vec::new();
    let mut duplicate_of: Vec<Option<String>> = Vec::new();
    // 送信通番 accepted by earlier files of this submission.
    let mut own: BTreeMap<InputKind, SequenceFacts> = BTreeMap::new();
    for f in files {
        let (summary, verdict) = check_file(input, f, &mut own);
        summaries.push(summary);
        match verdict {
            FileVerdict::Rejected(r) => {
                rejections.push(r);
                duplicate_of.push(None);
            }
            FileVerdict::Duplicate(receipt) => duplicate_of.push(Some(receipt)),
            FileVerdict::Fresh(w) => {
                warnings.extend(w);
                duplicate_of.push(None);
            }
        }
    }
    if let Some(first) = rejections.first() {
        return Outcome::Rejected {
            code: first.code,
            files: summaries,
            rows: rejections.iter().map(file_row).collect(),
        };
    }
    if let Some(Some(receipt)) = duplicate_of.first()
        && duplicate_of.iter().all(Option::is_some)
    {
        return Outcome::Duplicate { receipt: receipt.clone() };
    }
    let mut order: Vec<usize> = (0..files.len()).filter(|i| duplicate_of[*i].is_none()).collect();
    order.sort_by_key(|i| match &files[*i].parsed {
        Ok(p) => kind_order(p.header.kind),
        Err(_) => u8::MAX,
    });
    let mut state = State::new(input.facts);
    let ctx = Context { registry: input.registry, own: input.caller };
    let mut accepted =
        Accepted { files: summaries, records: Vec::new(), rows: warnings, accepted: 0, rejected: 0, warnings: 0 };
    for i in order {
        let Ok(parsed) = &files[i].parsed else { continue };
        for raw in &parsed.records {
            state.record(parsed.header.kind, raw.line, &raw.fields, raw.count, &ctx, &mut accepted);
        }
    }
    accepted.warnings = accepted.rows.iter().filter(|r| r.kubun == Kubun::Warning).count() as u32;
    Outcome::Accepted(accepted)
}

enum FileVerdict {
    Rejected(FileRejection),
    Duplicate(String),
    /// A new file, with its W003 row if its 通番 leaves a gap.
    Fresh(Option<ReRow>),
}

fn check_file(
    input: Input<'_>,
    f: &FileInput,
    own: &mut BTreeMap<InputKind, SequenceFacts>,
) -> (FileSummary, FileVerdict) {
    let parsed = match &f.parsed {
        Ok(p) => p,
        Err(r) => {
            let summary = FileSummary {
                name: f.name.clone(),
                kind: r.kind,
                sequence: 0,
                sha256: String::new(),
                data_records: 0,
                duplicate: false,
            };
            return (summary, FileVerdict::Rejected(*r));
        }
    };
    let h = &parsed.header;
    let mut summary = FileSummary {
        name: f.name.clone(),
        kind: Some(h.kind),
        sequence: h.sequence,
        sha256: parsed.sha256.clone(),
        data_records: parsed.records.len() as u32,
        duplicate: false,
    };
    let reject = |code| FileVerdict::Rejected(FileRejection { code, line: h.line, kind: Some(h.kind) });
    // F04: a municipality of this prefecture, and the caller's.
    let municipality = match LocalGovCode::parse(&h.municipality) {
        Ok(m) if m == input.caller && input.registry.contains(m) => m,
        _ => return (summary, reject(FileCode::F04)),
    };
    // F05: the municipality's 保険者番号.
    let insurer_ok = input.registry.get(municipality).is_some_and(|m| m.insurer.to_string() == h.insurer);
    if !insurer_ok {
        return (summary, reject(FileCode::F05));
    }
    // F07 / F08 / duplicate / W003 against what was accepted before, and earlier files here.
    let before = input.facts.sequences.get(&h.kind).cloned().unwrap_or_default();
    let mine = own.entry(h.kind).or_default();
    let highest = before.highest.max(mine.highest);
    let accepted = mine.accepted.get(&h.sequence).or_else(|| before.accepted.get(&h.sequence));
    if let Some((sha, receipt)) = accepted {
        if *sha == parsed.sha256 {
            summary.duplicate = true;
            return (summary, FileVerdict::Duplicate(receipt.clone()));
        }
        return (summary, reject(FileCode::F07));
    }
    if highest.is_some_and(|top| h.sequence < top) {
        return (summary, reject(FileCode::F08));
    }
    let gap = highest.filter(|top| h.sequence > top + 1).map(|top| ReRow {
        kubun: Kubun::Warning,
        code: "W003",
        kind: Some(h.kind),
        line: h.line,
        resident_number: String::new(),
        field: SEQUENCE,
        message: messages::sequence_gap(top, h.sequence),
    });
    mine.highest = Some(h.sequence.max(mine.highest.unwrap_or(0)));
    mine.accepted.insert(h.sequence, (parsed.sha256.clone(), String::new()));
    (summary, FileVerdict::Fresh(gap))
}

/// What the submission's records change, over the facts, as the records are checked in order.
struct State {
    households: BTreeMap<String, BTreeSet<Date>>,
    person_keys: BTreeSet<(String, Option<Date>)>,
    kogaku_keys: BTreeSet<(String, Month, KogakuKind)>,
    /// 世帯番号 of KS records rejected in this submission (E010).
    rejected_households: BTreeSet<String>,
}

impl State {
    fn new(facts: &Facts) -> Self {
        Self {
            households: facts.households.clone(),
            person_keys: facts.person_keys.clone(),
            kogaku_keys: facts.kogaku_keys.clone(),
            rejected_households: BTreeSet::new(),
        }
    }

    fn household_known(&self, h: &str) -> bool {
        self.households.get(h).is_some_and(|dates| !dates.is_empty())
    }

    /// E010 if a KS record of the household was rejected here, else E007 if it is unknown.
    fn household_issue(&self, h: &str) -> Option<&'static str> {
        if self.rejected_households.contains(h) {
            Some("E010")
        } else if !self.household_known(h) {
            Some("E007")
        } else {
            None
        }
    }

    /// E007 or E010 of a 登録 KK or KG record rejected for its own fields, when its 世帯番号
    /// field is itself valid (a field that failed names no household to look up).
    fn household_issue_of_rejected(
        &self,
        kind: InputKind,
        fields: &[String],
        issues: &[record::Issue],
    ) -> Option<(&'static str, &'static str)> {
        let field = match kind {
            InputKind::Persons => 3,
            InputKind::KogakuMonths => 2,
            InputKind::Households | InputKind::ContinuationDecisions => return None,
        };
        let names: &[&'static str] = if kind == InputKind::Persons { &KK_FIELDS } else { &KG_FIELDS };
        let register = fields.get(1).is_some_and(|p| ProcessingKind::parse(p) == Ok(ProcessingKind::Register));
        let household = fields.get(field).filter(|h| !h.is_empty())?;
        if !register || issues.iter().any(|i| i.field == names[field] || i.field == record::RECORD) {
            return None;
        }
        self.household_issue(household).map(|code| (code, names[field]))
    }

    fn record(
        &mut self,
        kind: InputKind,
        line: u32,
        fields: &[String],
        count: u32,
        ctx: &Context<'_>,
        out: &mut Accepted,
    ) {
        let checked = record::check(kind, fields, count, ctx);
        let row = |kubun: Kubun, code: &'static str, field: &'static str, message: String| ReRow {
            kubun,
            code,
            kind: Some(kind),
            line,
            resident_number: checked.resident_number.clone(),
            field,
            message,
        };
        let Some(rec) = checked.record.clone() else {
            if kind == InputKind::Households
                && let Some(h) = fields.get(2)
            {
                self.rejected_households.insert(h.clone());
            }
            out.rejected += 1;
            out.rows.extend(
                checked
                    .issues
                    .iter()
                    .filter(|i| i.kubun == Kubun::Error)
                    .map(|i| row(i.kubun, i.code, i.field, i.message.clone())),
            );
            // One row per failing check (formats.md): a record that fails its own fields is
            // still checked against the households, if its 世帯番号 can be read (E007, E010).
            if let Some((code, field)) = self.household_issue_of_rejected(kind, fields, &checked.issues) {
                out.rows.push(row(Kubun::Error, code, field, messages::record_message(code, field)));
            }
            return;
        };
        // Checks against the state: E007, E009, E010.
        let issue: Option<(&'static str, &'static str)> = match &rec {
            Record::Household(h) => {
                let dates = self.households.entry(h.household.clone()).or_default();
                match h.processing {
                    ProcessingKind::Register => {
                        dates.insert(h.changed_on);
                        None
                    }
                    ProcessingKind::Delete => (!dates.remove(&h.changed_on)).then_some(("E009", KS_FIELDS[2])),
                }
            }
            Record::Person(p) => {
                let key = (p.resident.clone(), p.start);
                match (&p.body, p.processing) {
                    (Some(body), ProcessingKind::Register) => match self.household_issue(&body.household) {
                        Some(code) => Some((code, KK_FIELDS[3])),
                        None => {
                            self.person_keys.insert(key);
                            None
                        }
                    },
                    _ => (!self.person_keys.remove(&key)).then_some(("E009", KK_FIELDS[2])),
                }
            }
            Record::Kogaku(k) => {
                let key = (k.household.clone(), k.month, k.kind);
                match k.processing {
                    ProcessingKind::Register => match self.household_issue(&k.household) {
                        Some(code) => Some((code, KG_FIELDS[2])),
                        None => {
                            self.kogaku_keys.insert(key);
                            None
                        }
                    },
                    ProcessingKind::Delete => (!self.kogaku_keys.remove(&key)).then_some(("E009", KG_FIELDS[2])),
                }
            }
            Record::Decision(_) => None,
        };
        if let Some((code, field)) = issue {
            // A rejected KS record (here: E009) takes its household's records along (E010).
            if let Record::Household(h) = &rec {
                self.rejected_households.insert(h.household.clone());
            }
            out.rejected += 1;
            out.rows.push(row(Kubun::Error, code, field, messages::record_message(code, field)));
            return;
        }
        out.accepted += 1;
        out.rows.extend(checked.issues.iter().map(|i| row(i.kubun, i.code, i.field, i.message.clone())));
        out.records.push(AcceptedRecord { kind, line, record: rec });
    }
}

#[cfg(test)]
mod tests;
