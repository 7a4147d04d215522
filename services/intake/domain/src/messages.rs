//! The Japanese messages of intake's codes (docs/codes.md lists them all). Messages name the
//! field and the rule, never a value: a value could be a 個人番号 typed into the wrong field.

/// File-level rejection codes F01–F09.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileCode {
    F01,
    F02,
    F03,
    F04,
    F05,
    F06,
    F07,
    F08,
    F09,
}

impl FileCode {
    pub fn code(self) -> &'static str {
        match self {
            FileCode::F01 => "F01",
            FileCode::F02 => "F02",
            FileCode::F03 => "F03",
            FileCode::F04 => "F04",
            FileCode::F05 => "F05",
            FileCode::F06 => "F06",
            FileCode::F07 => "F07",
            FileCode::F08 => "F08",
            FileCode::F09 => "F09",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            FileCode::F01 => "文字コードが UTF-8 でも CP932 でもありません",
            FileCode::F02 => "ヘッダレコードがないか、形式が誤っています",
            FileCode::F03 => "トレーラレコードがないか、形式または件数が誤っています",
            FileCode::F04 => "市区町村コードがこの都道府県のものでないか、送信元の市区町村と異なります",
            FileCode::F05 => "保険者番号が市区町村の保険者番号と異なります",
            FileCode::F06 => "ファイル種別が誤っています",
            FileCode::F07 => "同じ送信通番で内容の異なるファイルが受付済みです",
            FileCode::F08 => "送信通番が受付済みの通番より小さくなっています",
            FileCode::F09 => "CSV として読めない行、またはデータレコード以外のレコードがあります",
        }
    }
}

/// The message of a record-level code for `field`.
pub fn record_message(code: &str, field: &str) -> String {
    match code {
        "E001" => format!("{field}の桁数・文字・形式が誤っています"),
        "E002" => format!("{field}の検査数字が誤っています"),
        "E003" => format!("{field}が存在しない日付・年月か、元号の範囲外です"),
        "E004" => format!("{field}がコード表にない値です"),
        "E005" => format!("{field}が未設定です"),
        "E007" => "世帯番号が登録されていません".to_string(),
        "E008" => format!("{field}に指定できない市区町村コードです"),
        "E009" => "削除対象のレコードが登録されていません".to_string(),
        "E010" => "同じ受付の世帯レコードがエラーのため受け付けできません".to_string(),
        "W001" => "個人番号が未設定です（個人番号が届くまで中間サーバーへ連携できません）".to_string(),
        other => format!("{field}: {other}"),
    }
}

/// E005 for a field that must be blank.
pub fn must_be_blank(field: &str) -> String {
    format!("{field}は設定できません")
}

/// E001 for a record with the wrong number of fields.
pub fn wrong_field_count(expected: usize, got: usize) -> String {
    format!("項目数が誤っています（{expected}項目のところ{got}項目）")
}

/// W003.
pub fn sequence_gap(highest: u32, got: u32) -> String {
    format!("送信通番が連続していません（受付済み {highest}、今回 {got}）")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messages are the ones docs/codes.md documents (formats.md: "the project documents
    /// each with its Japanese message"), with `{項目}` for the field.
    #[test]
    fn messages_are_the_documented_ones() {
        let doc = include_str!("../../../../docs/codes.md");
        let row = |code: &str| {
            doc.lines().find(|l| l.starts_with(&format!("| {code} |"))).unwrap_or_else(|| panic!("{code} in codes.md"))
        };
        for code in [
            FileCode::F01,
            FileCode::F02,
            FileCode::F03,
            FileCode::F04,
            FileCode::F05,
            FileCode::F06,
            FileCode::F07,
            FileCode::F08,
            FileCode::F09,
        ] {
            assert!(!code.message().is_empty());
            assert!(row(code.code()).contains(code.message()), "{}", code.code());
        }
        for code in ["E001", "E002", "E003", "E004", "E005", "E007", "E008", "E009", "E010", "W001"] {
            let message = record_message(code, "{項目}");
            assert!(message.chars().count() > 5 && row(code).contains(&message), "{code}: {message}");
        }
        assert_eq!(record_message("E002", "個人番号"), "個人番号の検査数字が誤っています");
        assert_eq!(must_be_blank("転入元市区町村コード"), "転入元市区町村コードは設定できません");
        assert!(row("E005").contains(&must_be_blank("{項目}")));
        assert_eq!(wrong_field_count(18, 17), "項目数が誤っています（18項目のところ17項目）");
        assert_eq!(sequence_gap(3, 5), "送信通番が連続していません（受付済み 3、今回 5）");
    }
}
