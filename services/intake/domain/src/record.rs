//! Record-level checks of KS, KK, KG and KT (formats.md, identifiers.md): one issue per failing
//! field and per failing cross-field check. A 削除 record is checked on its key fields only.
//! Checks that need what was accepted before (E007, E009) or the rest of the submission (E010)
//! are the decider's ([`crate::submission`]).

use kokuho_ids::codes::{
    ContinuationDecision, DeemedHouseholder, EndReason, HouseholdChangeReason, IncomeCategory, InputKind, InsuredKind,
    KogakuKind, ProcessingKind, Relation, Sex, StartReason,
};
use kokuho_ids::{Date, IdError, IndividualNumber, LocalGovCode, Month, Registry, text};

use crate::messages;
use crate::row::Kubun;

/// 項目名 of each field, by field number (index 0 is the record type).
pub const KS_FIELDS: [&str; 11] = [
    "レコード種別",
    "処理区分",
    "世帯番号",
    "異動年月日",
    "世帯異動事由",
    "世帯主宛名番号",
    "擬制世帯主区分",
    "被保険者証記号",
    "被保険者証番号",
    "所得区分",
    "相手先市区町村コード",
];
pub const KK_FIELDS: [&str; 18] = [
    "レコード種別",
    "処理区分",
    "宛名番号",
    "世帯番号",
    "被保険者区分",
    "個人番号",
    "氏名",
    "氏名カナ",
    "生年月日",
    "性別",
    "続柄",
    "適用開始年月日",
    "適用開始事由",
    "適用終了年月日",
    "適用終了事由",
    "転入元市区町村コード",
    "転出先市区町村コード",
    "異動年月日",
];
pub const KG_FIELDS: [&str; 6] = ["レコード種別", "処理区分", "世帯番号", "診療年月", "該当区分", "支給決定年月日"];
pub const KT_FIELDS: [&str; 3] = ["レコード種別", "継続候補番号", "判定"];
/// 項目名 of a row about the whole record (wrong number of fields).
pub const RECORD: &str = "レコード";

/// A KS record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Household {
    pub processing: ProcessingKind,
    pub household: String,
    pub changed_on: Date,
    /// `None` for 削除.
    pub body: Option<HouseholdBody>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HouseholdBody {
    pub reason: HouseholdChangeReason,
    pub householder: String,
    pub deemed: DeemedHouseholder,
    pub card_symbol: String,
    pub card_number: String,
    pub income: Option<IncomeCategory>,
    pub counterpart: Option<LocalGovCode>,
}

/// A KK record. Its key is (宛名番号, 適用開始年月日), or 宛名番号 alone for a 擬制世帯主.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub processing: ProcessingKind,
    pub resident: String,
    pub insured_kind: InsuredKind,
    /// 適用開始年月日; `None` for a 擬制世帯主.
    pub start: Option<Date>,
    /// `None` for 削除.
    pub body: Option<PersonBody>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonBody {
    pub household: String,
    pub number: Option<IndividualNumber>,
    pub name: String,
    pub kana: String,
    pub birth: Date,
    pub sex: Sex,
    pub relation: Relation,
    pub start_reason: Option<StartReason>,
    pub end: Option<Date>,
    pub end_reason: Option<EndReason>,
    pub moved_in_from: Option<LocalGovCode>,
    pub moved_out_to: Option<LocalGovCode>,
    pub changed_on: Date,
}

/// A KG record; key (世帯番号, 診療年月, 該当区分).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kogaku {
    pub processing: ProcessingKind,
    pub household: String,
    pub month: Month,
    pub kind: KogakuKind,
    /// `None` for 削除.
    pub decided_on: Option<Date>,
}

/// A KT record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub candidate: String,
    pub decision: ContinuationDecision,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Household(Household),
    Person(Person),
    Kogaku(Kogaku),
    Decision(Decision),
}

/// One failing check or warning of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub kubun: Kubun,
    pub code: &'static str,
    pub field: &'static str,
    pub message: String,
}

/// The result of checking one record: the record if it has no error, and its issues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub record: Option<Record>,
    /// 宛名番号 as written (KK), for the RE rows even of a rejected record.
    pub resident_number: String,
    pub issues: Vec<Issue>,
}

/// What record checks need to know besides the record.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub registry: &'a Registry,
    /// The submitting municipality.
    pub own: LocalGovCode,
}

impl Context<'_> {
    /// A municipality of this prefecture other than the submitting one (02 moves).
    fn within(&self, code: LocalGovCode) -> bool {
        self.registry.contains(code) && code != self.own
    }

    /// A code of another prefecture (01/03/09 moves).
    fn outside(&self, code: LocalGovCode) -> bool {
        code.prefecture() != self.registry.prefecture()
    }
}

struct Check<'a> {
    fields: &'a [String],
    names: &'static [&'static str],
    issues: Vec<Issue>,
}

impl<'a> Check<'a> {
    fn raw(&self, n: usize) -> &'a str {
        self.fields.get(n).map(String::as_str).unwrap_or("")
    }

    fn issue(&mut self, n: usize, code: &'static str, message: String) {
        self.issues.push(Issue { kubun: Kubun::Error, code, field: self.names[n], message });
    }

    fn fail(&mut self, n: usize, e: IdError) {
        let code = e.code();
        self.issue(n, code, messages::record_message(code, self.names[n]));
    }

    /// A required field: blank is E005, otherwise the parser decides.
    fn required<T>(&mut self, n: usize, parse: impl FnOnce(&str) -> Result<T, IdError>) -> Option<T> {
        let raw = self.raw(n);
        if raw.is_empty() {
            self.issue(n, "E005", messages::record_message("E005", self.names[n]));
            return None;
        }
        parse(raw).map_err(|e| self.fail(n, e)).ok()
    }

    /// An optional field: `Some(None)` if blank, `None` if it fails.
    fn optional<T>(&mut self, n: usize, parse: impl FnOnce(&str) -> Result<T, IdError>) -> Option<Option<T>> {
        let raw = self.raw(n);
        if raw.is_empty() {
            return Some(None);
        }
        parse(raw).map(Some).map_err(|e| self.fail(n, e)).ok()
    }

    /// A field that must be blank (E005 if filled). Returns whether it was blank.
    fn blank(&mut self, n: usize) -> bool {
        if self.raw(n).is_empty() {
            return true;
        }
        self.issue(n, "E005", messages::must_be_blank(self.names[n]));
        false
    }

    fn cross(&mut self, n: usize, what: &str) {
        self.issue(n, "E006", format!("項目間の整合性が誤っています（{what}）"));
    }

    /// A 相手先 / 転入元 / 転出先 code: `within` for 02 moves (required), `outside` for moves
    /// across the prefecture border (optional), else blank.
    fn counterpart(&mut self, n: usize, rule: Counterpart, ctx: &Context<'_>) -> Option<Option<LocalGovCode>> {
        match rule {
            Counterpart::Within => {
                let code = self.required(n, LocalGovCode::parse)?;
                if !ctx.within(code) {
                    self.issue(n, "E008", messages::record_message("E008", self.names[n]));
                    return None;
                }
                Some(Some(code))
            }
            Counterpart::Outside => {
                let code = self.optional(n, LocalGovCode::parse)?;
                if let Some(c) = code
                    && !ctx.outside(c)
                {
                    self.issue(n, "E008", messages::record_message("E008", self.names[n]));
                    return None;
                }
                Some(code)
            }
            Counterpart::Blank => self.blank(n).then_some(None),
            // The reason itself failed: check the code's format only.
            Counterpart::Unknown => self.optional(n, LocalGovCode::parse),
        }
    }

    fn done(self, resident_number: String, record: Option<Record>) -> Checked {
        let has_error = self.issues.iter().any(|i| i.kubun == Kubun::Error);
        Checked { record: if has_error { None } else { record }, resident_number, issues: self.issues }
    }
}

/// A text check that returns the field as an owned string.
fn owned(check: fn(&str) -> Result<&str, IdError>) -> impl FnOnce(&str) -> Result<String, IdError> {
    move |s| check(s).map(str::to_string)
}

#[derive(Debug, Clone, Copy)]
enum Counterpart {
    Within,
    Outside,
    Blank,
    Unknown,
}

fn field_count(kind: InputKind) -> usize {
    match kind {
        InputKind::Households => KS_FIELDS.len(),
        InputKind::Persons => KK_FIELDS.len(),
        InputKind::KogakuMonths => KG_FIELDS.len(),
        InputKind::ContinuationDecisions => KT_FIELDS.len(),
    }
}

/// Checks one data record of a file of `kind`: its first fields (at most `csv::MAX_FIELDS`) and
/// how many it has.
pub fn check(kind: InputKind, fields: &[String], count: u32, ctx: &Context<'_>) -> Checked {
    let expected = field_count(kind);
    if fields.len() != expected || count as usize != expected {
        let resident =
            if kind == InputKind::Persons { fields.get(2).cloned().unwrap_or_default() } else { String::new() };
        return Checked {
            record: None,
            resident_number: resident,
            issues: vec![Issue {
                kubun: Kubun::Error,
                code: "E001",
                field: RECORD,
                message: messages::wrong_field_count(expected, count as usize),
            }],
        };
    }
    match kind {
        InputKind::Households => check_household(fields, ctx),
        InputKind::Persons => check_person(fields, ctx),
        InputKind::KogakuMonths => check_kogaku(fields),
        InputKind::ContinuationDecisions => check_decision(fields),
    }
}

fn check_household(fields: &[String], ctx: &Context<'_>) -> Checked {
    let mut c = Check { fields, names: &KS_FIELDS, issues: Vec::new() };
    let processing = c.required(1, ProcessingKind::parse);
    let household = c.required(2, owned(text::household_number));
    let changed_on = c.required(3, Date::parse);
    let body = match processing {
        Some(ProcessingKind::Delete) => None,
        _ => household_body(&mut c, ctx),
    };
    let record = match (processing, household, changed_on) {
        (Some(processing), Some(household), Some(changed_on))
            if processing == ProcessingKind::Delete || body.is_some() =>
        {
            Some(Record::Household(Household { processing, household, changed_on, body }))
        }
        _ => None,
    };
    c.done(String::new(), record)
}

fn household_body(c: &mut Check<'_>, ctx: &Context<'_>) -> Option<HouseholdBody> {
    let reason = c.required(4, HouseholdChangeReason::parse);
    let householder = c.required(5, owned(text::resident_number));
    let deemed = c.required(6, DeemedHouseholder::parse);
    let card_symbol = c.required(7, owned(text::card_symbol));
    let card_number = c.required(8, owned(text::card_number));
    let income = c.optional(9, IncomeCategory::parse);
    let rule = match reason {
        Some(HouseholdChangeReason::MoveInWithinPrefecture | HouseholdChangeReason::MoveOutWithinPrefecture) => {
            Counterpart::Within
        }
        Some(HouseholdChangeReason::MoveInFromOutside | HouseholdChangeReason::MoveOutOfPrefecture) => {
            Counterpart::Outside
        }
        Some(_) => Counterpart::Blank,
        None => Counterpart::Unknown,
    };
    let counterpart = c.counterpart(10, rule, ctx);
    Some(HouseholdBody {
        reason: reason?,
        householder: householder?,
        deemed: deemed?,
        card_symbol: card_symbol?,
        card_number: card_number?,
        income: income?,
        counterpart: counterpart?,
    })
}

fn check_person(fields: &[String], ctx: &Context<'_>) -> Checked {
    let mut c = Check { fields, names: &KK_FIELDS, issues: Vec::new() };
    let processing = c.required(1, ProcessingKind::parse);
    let resident = c.required(2, owned(text::resident_number));
    // RE field 7 carries the 宛名番号 as written, so the clerk finds the record.
    let resident_for_rows = c.raw(2).to_string();
    if processing == Some(ProcessingKind::Delete) {
        // Key fields only: 宛名番号 and, for a 被保険者, 適用開始年月日. A blank 被保険者区分
        // is told by the key: a start date means a 被保険者.
        let insured_kind = match (c.raw(4).is_empty(), c.raw(11).is_empty()) {
            (true, true) => Some(InsuredKind::DeemedHouseholder),
            (true, false) => Some(InsuredKind::Insured),
            (false, _) => c.required(4, InsuredKind::parse),
        };
        let start = match insured_kind {
            Some(InsuredKind::Insured) => c.required(11, Date::parse).map(Some),
            _ => Some(None),
        };
        let record = match (resident, insured_kind, start) {
            (Some(resident), Some(insured_kind), Some(start)) => Some(Record::Person(Person {
                processing: ProcessingKind::Delete,
                resident,
                insured_kind,
                start,
                body: None,
            })),
            _ => None,
        };
        return c.done(resident_for_rows, record);
    }
    let insured_kind = c.required(4, InsuredKind::parse);
    let household = c.required(3, owned(text::household_number));
    let number = if c.raw(5).is_empty() {
        c.issues.push(Issue {
            kubun: Kubun::Warning,
            code: "W001",
            field: KK_FIELDS[5],
            message: messages::record_message("W001", KK_FIELDS[5]),
        });
        Some(None)
    } else {
        c.optional(5, IndividualNumber::parse)
    };
    let name = c.required(6, owned(text::name));
    let kana = c.required(7, owned(text::kana));
    let birth = c.required(8, Date::parse);
    let sex = c.required(9, Sex::parse);
    let relation = c.required(10, Relation::parse);
    let period = match insured_kind {
        Some(InsuredKind::Insured) => insured_period(&mut c, ctx, birth),
        Some(InsuredKind::DeemedHouseholder) => {
            // Listed so households are complete: no period (fields 12–17 blank).
            let blanks = [11, 12, 13, 14, 15, 16].map(|n| c.blank(n));
            blanks.iter().all(|b| *b).then_some(Period::default())
        }
        None => None,
    };
    let changed_on = c.required(17, Date::parse);
    let record = (|| {
        let period = period?;
        Some(Record::Person(Person {
            processing: processing?,
            resident: resident?,
            insured_kind: insured_kind?,
            start: period.start,
            body: Some(PersonBody {
                household: household?,
                number: number?,
                name: name?,
                kana: kana?,
                birth: birth?,
                sex: sex?,
                relation: relation?,
                start_reason: period.start_reason,
                end: period.end,
                end_reason: period.end_reason,
                moved_in_from: period.moved_in_from,
                moved_out_to: period.moved_out_to,
                changed_on: changed_on?,
            }),
        }))
    })();
    c.done(resident_for_rows, record)
}

#[derive(Debug, Default)]
struct Period {
    start: Option<Date>,
    start_reason: Option<StartReason>,
    end: Option<Date>,
    end_reason: Option<EndReason>,
    moved_in_from: Option<LocalGovCode>,
    moved_out_to: Option<LocalGovCode>,
}

/// Fields 12–17 of a 被保険者 record and their cross-field rules (E006).
fn insured_period(c: &mut Check<'_>, ctx: &Context<'_>, birth: Option<Date>) -> Option<Period> {
    let start = c.required(11, Date::parse);
    let start_reason = c.required(12, StartReason::parse);
    let end = c.optional(13, Date::parse);
    let end_reason = c.optional(14, EndReason::parse);
    let mut ok = true;
    // 14 and 15 both blank or both filled; the row names the blank one.
    match (c.raw(13).is_empty(), c.raw(14).is_empty()) {
        (true, false) => {
            c.cross(13, "適用終了事由があるのに適用終了年月日がありません");
            ok = false;
        }
        (false, true) => {
            c.cross(14, "適用終了年月日があるのに適用終了事由がありません");
            ok = false;
        }
        _ => {}
    }
    if let (Some(b), Some(s)) = (birth, start)
        && b > s
    {
        c.cross(11, "適用開始年月日が生年月日より前です");
        ok = false;
    }
    if let (Some(b), Some(s), Some(StartReason::Birth)) = (birth, start, start_reason)
        && b != s
    {
        c.cross(12, "出生による適用開始で適用開始年月日が生年月日と異なります");
        ok = false;
    }
    if let (Some(s), Some(Some(e))) = (start, end)
        && e < s
    {
        c.cross(13, "適用終了年月日が適用開始年月日より前です");
        ok = false;
    }
    let in_rule = match start_reason {
        Some(StartReason::MoveInWithinPrefecture) => Counterpart::Within,
        Some(StartReason::MoveInFromOutside) => Counterpart::Outside,
        Some(_) => Counterpart::Blank,
        None => Counterpart::Unknown,
    };
    let moved_in_from = c.counterpart(15, in_rule, ctx);
    let out_rule = match end_reason {
        Some(Some(EndReason::MoveOutWithinPrefecture)) => Counterpart::Within,
        Some(Some(EndReason::MoveOutOfPrefecture)) => Counterpart::Outside,
        Some(Some(_)) | Some(None) => Counterpart::Blank,
        None => Counterpart::Unknown,
    };
    let moved_out_to = c.counterpart(16, out_rule, ctx);
    if !ok {
        return None;
    }
    Some(Period {
        start: Some(start?),
        start_reason: Some(start_reason?),
        end: end?,
        end_reason: end_reason?,
        moved_in_from: moved_in_from?,
        moved_out_to: moved_out_to?,
    })
}

fn check_kogaku(fields: &[String]) -> Checked {
    let mut c = Check { fields, names: &KG_FIELDS, issues: Vec::new() };
    let processing = c.required(1, ProcessingKind::parse);
    let household = c.required(2, owned(text::household_number));
    let month = c.required(3, Month::parse);
    let kind = c.required(4, KogakuKind::parse);
    let decided_on = match processing {
        Some(ProcessingKind::Delete) => Some(None),
        _ => c.required(5, Date::parse).map(Some),
    };
    let record = (|| {
        Some(Record::Kogaku(Kogaku {
            processing: processing?,
            household: household?,
            month: month?,
            kind: kind?,
            decided_on: decided_on?,
        }))
    })();
    c.done(String::new(), record)
}

fn check_decision(fields: &[String]) -> Checked {
    let mut c = Check { fields, names: &KT_FIELDS, issues: Vec::new() };
    let candidate = c.required(1, |s| text::digits(s, 15).map(str::to_string));
    let decision = c.required(2, ContinuationDecision::parse);
    let record = (|| Some(Record::Decision(Decision { candidate: candidate?, decision: decision? })))();
    c.done(String::new(), record)
}

#[cfg(test)]
mod tests;
