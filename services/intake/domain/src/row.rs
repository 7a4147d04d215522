//! RE rows (異動チェック結果ファイル, formats.md) that intake produces.

use kokuho_ids::codes::InputKind;

/// 区分 of an RE row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kubun {
    /// E: rejected record (or file).
    Error,
    /// W: accepted with a warning.
    Warning,
}

/// One RE row. Never holds a 個人番号: `message` is built from fixed texts only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReRow {
    pub kubun: Kubun,
    pub code: &'static str,
    pub kind: Option<InputKind>,
    pub line: u32,
    pub resident_number: String,
    pub field: &'static str,
    pub message: String,
}

impl ReRow {
    /// The RE row (formats.md) of this check, with the submission's receipt.
    pub fn to_row(&self, receipt: &str) -> kokuho_rows::Re {
        kokuho_rows::Re {
            kubun: match self.kubun {
                Kubun::Error => kokuho_ids::codes::Kubun::Error,
                Kubun::Warning => kokuho_ids::codes::Kubun::Warning,
            },
            code: self.code,
            receipt: receipt.to_string(),
            file_kind: self.kind,
            line: Some(self.line),
            resident: self.resident_number.clone(),
            field: self.field.to_string(),
            message: self.message.clone(),
            counterpart: String::new(),
            counterpart_start: None,
            counterpart_end: None,
            // E and W rows are always 1.
            state: kokuho_ids::codes::AlertState::Raised,
        }
    }
}
