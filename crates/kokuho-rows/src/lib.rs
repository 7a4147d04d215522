//! The rows of the result files a municipality fetches (formats.md "Result files"): one typed
//! row per kind with named fields ([`Re`], [`Ri`], [`Rs`], [`Rk`], [`Rg`], [`Rm`]), and one
//! function per kind that renders it in formats.md order ([`Row::fields`]). Every service
//! builds these values; no service lists a row's fields by position.
//!
//! Architecture invariant: pure (no IO, no wire types); a row never holds a 個人番号 (none of
//! the fields can carry one, and messages are fixed texts).

use kokuho_ids::codes::{
    AlertState, ContinuationDecision, ContinuationReason, Correction, EndReason, FormerHouseholder, InputKind,
    Judgement, Kubun, RelayProcessing, ResultKind, StartReason,
};
use kokuho_ids::{Date, Month};

/// RE 異動チェック結果ファイル: an error, warning, anomaly, conflict or relay error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Re {
    pub kubun: Kubun,
    /// コード (formats.md "Codes").
    pub code: &'static str,
    /// 受付番号 of the submission whose record caused the row; empty for rows no record caused
    /// (an anomaly raised at a day close).
    pub receipt: String,
    pub file_kind: Option<InputKind>,
    /// 行番号: the physical line where the record starts (file rows: where the error was found).
    pub line: Option<u32>,
    pub resident: String,
    /// 項目名.
    pub field: String,
    /// 内容, in Japanese; fixed texts only.
    pub message: String,
    pub counterpart: String,
    pub counterpart_start: Option<Date>,
    pub counterpart_end: Option<Date>,
    pub state: AlertState,
}

/// RI 市区町村被保険者ID連携ファイル: a newly assigned ID (rules.md I2), or the survivor's after a
/// merge (I5, 訂正 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ri {
    pub resident: String,
    pub muni_id: String,
    pub assigned_on: Date,
    pub correction: Correction,
}

/// RS 資格取得喪失年月日連携ファイル: the determination of one application period (rules.md C1, C9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rs {
    pub resident: String,
    pub muni_id: String,
    pub acquired_on: Date,
    pub acquired_reason: StartReason,
    /// Only on the row of the period that ends the span (判定区分 3).
    pub lost_on: Option<Date>,
    pub lost_reason: Option<EndReason>,
    pub start: Date,
    pub end: Option<Date>,
    pub judgement: Judgement,
    pub correction: Correction,
}

impl Rs {
    /// Fields 2–10 are the same (訂正 aside): nothing to send again (C9).
    pub fn same_determination(&self, other: &Rs) -> bool {
        Rs { correction: other.correction, ..self.clone() } == *other
    }

    /// The row that withdraws this one (判定区分 9, 訂正 1).
    pub fn withdrawal(&self) -> Rs {
        Rs { judgement: Judgement::Withdrawn, correction: Correction::Replaces, ..self.clone() }
    }
}

/// RK 継続候補世帯リスト: a continuation candidate for the receiving municipality (rules.md H1, H2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rk {
    pub candidate: String,
    pub household: String,
    pub moved_in_on: Date,
    pub from: String,
    pub from_household: String,
    pub former_householder: FormerHouseholder,
    pub movers: u32,
    pub recommended: ContinuationDecision,
    pub reason: ContinuationReason,
    /// K2: 高額 months of the household at A in the 12 months ending at the move month.
    pub kogaku_count: u32,
    pub correction: Correction,
}

/// RG 継続世帯確定結果・高額該当引継結果 (rules.md K3, K4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rg {
    pub candidate: String,
    pub household: String,
    pub decision: ContinuationDecision,
    pub decided_on: Date,
    pub inherited: Vec<Month>,
    pub count: u32,
    pub many_times: bool,
    pub correction: Correction,
}

/// RM 中間サーバー連携結果 (rules.md R4, R5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rm {
    pub resident: String,
    pub card_symbol: String,
    pub card_number: String,
    /// 枝番, 1–99 (R3).
    pub branch: u8,
    pub processing: RelayProcessing,
    /// `None`: delivered (結果 0); `Some((code, message))`: rejected (結果 1).
    pub error: Option<(String, String)>,
}

/// A row of any result file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    Re(Re),
    Ri(Ri),
    Rs(Rs),
    Rk(Rk),
    Rg(Rg),
    Rm(Rm),
}

macro_rules! from_kind {
    ($($kind:ident),+) => {
        $(impl From<$kind> for Row {
            fn from(row: $kind) -> Self {
                Row::$kind(row)
            }
        })+
    };
}
from_kind!(Re, Ri, Rs, Rk, Rg, Rm);

fn ymd(d: Option<Date>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

fn code<T: std::fmt::Display>(c: Option<T>) -> String {
    c.map(|c| c.to_string()).unwrap_or_default()
}

impl Row {
    /// The result file the row goes to.
    pub fn kind(&self) -> ResultKind {
        match self {
            Row::Re(_) => ResultKind::Checks,
            Row::Ri(_) => ResultKind::MuniInsuredIds,
            Row::Rs(_) => ResultKind::Qualification,
            Row::Rk(_) => ResultKind::Candidates,
            Row::Rg(_) => ResultKind::Handover,
            Row::Rm(_) => ResultKind::Relay,
        }
    }

    /// Fields 2… of the row in formats.md order (the record type `2` is the file's).
    pub fn fields(&self) -> Vec<String> {
        match self {
            Row::Re(r) => vec![
                r.kubun.to_string(),
                r.code.to_string(),
                r.receipt.clone(),
                code(r.file_kind),
                code(r.line),
                r.resident.clone(),
                r.field.clone(),
                r.message.clone(),
                r.counterpart.clone(),
                ymd(r.counterpart_start),
                ymd(r.counterpart_end),
                r.state.to_string(),
            ],
            Row::Ri(r) => {
                vec![r.resident.clone(), r.muni_id.clone(), r.assigned_on.to_string(), r.correction.to_string()]
            }
            Row::Rs(r) => vec![
                r.resident.clone(),
                r.muni_id.clone(),
                r.acquired_on.to_string(),
                r.acquired_reason.to_string(),
                ymd(r.lost_on),
                code(r.lost_reason),
                r.start.to_string(),
                ymd(r.end),
                r.judgement.to_string(),
                r.correction.to_string(),
            ],
            Row::Rk(r) => vec![
                r.candidate.clone(),
                r.household.clone(),
                r.moved_in_on.to_string(),
                r.from.clone(),
                r.from_household.clone(),
                r.former_householder.to_string(),
                r.movers.to_string(),
                r.recommended.to_string(),
                r.reason.to_string(),
                r.kogaku_count.to_string(),
                r.correction.to_string(),
            ],
            Row::Rg(r) => vec![
                r.candidate.clone(),
                r.household.clone(),
                r.decision.to_string(),
                r.decided_on.to_string(),
                r.inherited.iter().map(Month::to_string).collect::<Vec<_>>().join(" "),
                r.count.to_string(),
                if r.many_times { "1" } else { "0" }.to_string(),
                r.correction.to_string(),
            ],
            Row::Rm(r) => vec![
                r.resident.clone(),
                r.card_symbol.clone(),
                r.card_number.clone(),
                format!("{:02}", r.branch),
                r.processing.to_string(),
                if r.error.is_some() { "1" } else { "0" }.to_string(),
                r.error.as_ref().map(|e| e.0.clone()).unwrap_or_default(),
                r.error.as_ref().map(|e| e.1.clone()).unwrap_or_default(),
            ],
        }
    }
}

#[cfg(test)]
mod tests;
