//! What the pages show of the API's answers: result files decoded and labelled, dates and
//! codes in Japanese. Pure functions, tested below.

use kokuho_ids::{Municipality, Registry};

/// The municipality of `code` in the registry.
pub(crate) fn municipality<'a>(registry: &'a Registry, code: &str) -> Option<&'a Municipality> {
    registry.municipalities().find(|m| m.code.to_string() == code)
}

/// A result file's text: UTF-8 (a BOM dropped) or, failing that, CP932 (formats.md).
pub(crate) fn decode(content: &[u8]) -> String {
    match std::str::from_utf8(content) {
        Ok(text) => text.trim_start_matches('\u{feff}').to_string(),
        Err(_) => encoding_rs::SHIFT_JIS.decode(content).0.into_owned(),
    }
}

/// The charset a file is served with.
pub(crate) fn charset(content: &[u8]) -> &'static str {
    if std::str::from_utf8(content).is_ok() { "utf-8" } else { "Shift_JIS" }
}

/// The column names of a result kind's data record (formats.md), without the record type.
pub(crate) fn columns(kind: &str) -> &'static [&'static str] {
    match kind {
        "RS" => &[
            "宛名番号",
            "市区町村被保険者ID",
            "資格取得年月日",
            "取得事由",
            "資格喪失年月日",
            "喪失事由",
            "適用開始年月日",
            "適用終了年月日",
            "判定区分",
            "訂正",
        ],
        "RI" => &["宛名番号", "市区町村被保険者ID", "付番年月日", "訂正"],
        "RE" => &[
            "区分",
            "コード",
            "受付番号",
            "ファイル種別",
            "行番号",
            "宛名番号",
            "項目名",
            "内容",
            "相手先市区町村",
            "相手先適用開始",
            "相手先適用終了",
            "状態",
        ],
        "RK" => &[
            "継続候補番号",
            "転入世帯番号",
            "転入年月日",
            "転出元市区町村",
            "転出元世帯番号",
            "転出元世帯主",
            "移動世帯員数",
            "推奨判定",
            "判定理由",
            "高額該当回数",
            "訂正",
        ],
        "RG" => &[
            "継続候補番号",
            "転入世帯番号",
            "判定",
            "確定年月日",
            "引継該当月",
            "引継後該当回数",
            "多数回該当",
            "訂正",
        ],
        "RM" => &["宛名番号", "被保険者証記号", "被保険者証番号", "枝番", "処理区分", "結果", "エラーコード", "内容"],
        _ => &[],
    }
}

/// Who decided a candidate (kogaku's `decided_by`), as the 判定者 column says it. A token names
/// a municipality, not a clerk: the audit log names the caller.
pub(crate) fn decided_by(by: &str) -> &'static str {
    match by {
        "file" => "KTファイル",
        "api" => "市区町村（画面・コマンド）",
        "auto" => "自動確定",
        "operator" => "連合会（取消・再判定）",
        _ => "",
    }
}

/// The Japanese name of a result kind.
pub(crate) fn kind_name(kind: &str) -> &'static str {
    match kind {
        "RS" => "資格取得喪失年月日連携",
        "RI" => "市区町村被保険者ID連携",
        "RE" => "異動チェック結果",
        "RK" => "継続候補世帯リスト",
        "RG" => "継続世帯確定結果・高額該当引継結果",
        "RM" => "中間サーバー連携結果",
        _ => "",
    }
}

/// The data records of a result file (type 2), without the record type; header and trailer
/// are left out. A line that is not CSV is shown whole in one cell rather than hidden.
pub(crate) fn data_rows(text: &str) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for record in reader.records() {
        match record {
            Ok(r) if r.get(0) == Some("2") => rows.push(r.iter().skip(1).map(str::to_string).collect()),
            Ok(_) => {}
            Err(e) => rows.push(vec![format!("（読めない行: {e}）")]),
        }
    }
    rows
}

/// A receipt's E and W rows as the page shows them: the RE columns without the record type.
pub(crate) fn receipt_row(fields: &[String]) -> Vec<String> {
    match fields.first() {
        Some(t) if t == "2" && fields.len() == columns("RE").len() + 1 => fields[1..].to_vec(),
        _ => fields.to_vec(),
    }
}

/// YYYYMMDD as 2026年6月1日; 0 as "".
pub(crate) fn date(d: u32) -> String {
    if d == 0 {
        return String::new();
    }
    format!("{}年{}月{}日", d / 10_000, d / 100 % 100, d % 100)
}

/// YYYYMM as 2026年6月.
pub(crate) fn month(m: u32) -> String {
    format!("{}年{}月", m / 100, m % 100)
}

/// Unix seconds as local wall time (JST is what clerks read; UTC+9 fixed), 0 as "—".
pub(crate) fn unix_time(seconds: i64) -> String {
    if seconds <= 0 {
        return "—".into();
    }
    let jst = time::UtcOffset::from_hms(9, 0, 0).unwrap_or(time::UtcOffset::UTC);
    match time::OffsetDateTime::from_unix_timestamp(seconds) {
        Ok(t) => {
            let t = t.to_offset(jst);
            format!("{}-{:02}-{:02} {:02}:{:02}", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
        }
        Err(_) => "—".into(),
    }
}

/// 判定 / 推奨判定 codes (KT, RK, RG).
pub(crate) fn decision(code: &str) -> &'static str {
    match code {
        "1" => "継続",
        "2" => "非継続",
        "" => "未判定",
        _ => "不明",
    }
}

/// 判定理由 (formats.md RK field 10).
pub(crate) fn reason(code: &str) -> &'static str {
    match code {
        "11" => "世帯主同一",
        "12" => "同一世帯内の世帯主変更",
        "13" => "分離（旧世帯主のいない側）",
        "14" => "合併（旧世帯主が世帯主でない側）",
        "99" => "要確認",
        _ => "",
    }
}

/// 転出元世帯主 (RK field 7).
pub(crate) fn former_householder(code: &str) -> &'static str {
    match code {
        "1" => "この世帯の世帯主",
        "2" => "この世帯員（世帯主ではない）",
        "3" => "この世帯にいない",
        _ => "",
    }
}

/// A service's name as a clerk knows its work.
pub(crate) fn service_name(service: &str) -> String {
    match service {
        "intake" => "受付（intake）".into(),
        "identity" => "名寄せ・被保険者ID（identity）".into(),
        "continuity" => "資格期間（continuity）".into(),
        "kogaku" => "高額該当回数（kogaku）".into(),
        "relay" => "中間サーバー連携（relay）".into(),
        "history" => "履歴・監査（history）".into(),
        other => other.into(),
    }
}

/// A date typed in a form (`2026-06-01` from a date input, or `20260601`) as YYYYMMDD.
pub(crate) fn parse_date(text: &str) -> Option<u32> {
    let digits: String = text.chars().filter(|c| *c != '-').collect();
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_rows_leave_out_header_and_trailer_and_keep_quoted_commas() {
        let text = "1,RK,131032,130039,20260601,1\r\n2,000001,2001,20260510,131016,1001,1,2,1,11,3,0\r\n2,\"a,b\",x\r\n9,2\r\n";
        let rows = data_rows(text);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][0], "000001");
        assert_eq!(rows[0].len(), columns("RK").len());
        assert_eq!(rows[1], vec!["a,b".to_string(), "x".to_string()]);
    }

    #[test]
    fn cp932_files_are_decoded_and_served_as_shift_jis() {
        let (bytes, _, _) = encoding_rs::SHIFT_JIS.encode("2,E,E001,内容\r\n");
        assert_eq!(charset(&bytes), "Shift_JIS");
        assert_eq!(decode(&bytes), "2,E,E001,内容\r\n");
        assert_eq!(decode("\u{feff}2,x".as_bytes()), "2,x");
        assert_eq!(charset("2,内容".as_bytes()), "utf-8");
    }

    #[test]
    fn dates_and_codes_read_in_japanese() {
        assert_eq!(date(20260601), "2026年6月1日");
        assert_eq!(date(0), "");
        assert_eq!(month(202605), "2026年5月");
        assert_eq!(parse_date("2026-06-01"), Some(20260601));
        assert_eq!(decided_by("api"), "市区町村（画面・コマンド）");
        assert_eq!(parse_date("20260601"), Some(20260601));
        assert_eq!(parse_date("2026-6-1"), None);
        assert_eq!(decision("1"), "継続");
        assert_eq!(reason("13"), "分離（旧世帯主のいない側）");
        assert_eq!(unix_time(0), "—");
        assert_eq!(unix_time(1_780_000_000), "2026-05-29 05:26");
    }

    #[test]
    fn receipt_rows_drop_the_record_type() {
        let mut fields = vec!["2".to_string()];
        fields.extend(columns("RE").iter().map(|c| c.to_string()));
        assert_eq!(receipt_row(&fields)[0], "区分");
        assert_eq!(receipt_row(&fields[1..]).len(), columns("RE").len());
    }
}
