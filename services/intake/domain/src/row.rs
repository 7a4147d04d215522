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

impl Kubun {
    pub fn code(self) -> &'static str {
        match self {
            Kubun::Error => "E",
            Kubun::Warning => "W",
        }
    }
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
    /// Fields 2–13 of the RE row (after the record type `2`), with the receipt in field 4.
    pub fn fields(&self, receipt: &str) -> Vec<String> {
        vec![
            self.kubun.code().to_string(),
            self.code.to_string(),
            receipt.to_string(),
            self.kind.map(|k| k.code().to_string()).unwrap_or_default(),
            self.line.to_string(),
            self.resident_number.clone(),
            self.field.to_string(),
            self.message.clone(),
            String::new(),
            String::new(),
            String::new(),
            // 状態: E and W rows are always 1.
            "1".to_string(),
        ]
    }
}
