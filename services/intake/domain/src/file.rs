//! The structure of one file (formats.md): header, data records, trailer. Checks that need
//! nothing but the file: F01, F02, F03, F09 and F06, in the order formats.md gives.

use kokuho_ids::Date;
use kokuho_ids::codes::InputKind;
use sha2::{Digest, Sha256};

use crate::csv::{self, Item};
use crate::messages::FileCode;

/// The header record: `1,<kind>,<municipality>,<保険者番号>,<created>,<送信通番>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub line: u32,
    pub kind: InputKind,
    /// As written; checked against the registry and the caller later (F04).
    pub municipality: String,
    /// As written; checked against the registry later (F05).
    pub insurer: String,
    pub created: Date,
    /// 送信通番, leading zeros dropped.
    pub sequence: u32,
}

/// A data record (type 2) and the physical line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub line: u32,
    /// The first `csv::MAX_FIELDS` fields.
    pub fields: Vec<String>,
    /// How many fields the record has.
    pub count: u32,
}

/// A file whose structure is sound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedFile {
    pub header: Header,
    pub records: Vec<RawRecord>,
    /// SHA-256 of the bytes, hex (送信通番 idempotency compares bytes).
    pub sha256: String,
}

/// Why a file is rejected whole, where, and its kind when the header told it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileRejection {
    pub code: FileCode,
    pub line: u32,
    pub kind: Option<InputKind>,
}

/// SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn reject(code: FileCode, line: u32, kind: Option<InputKind>) -> FileRejection {
    FileRejection { code, line, kind }
}

fn parse_sequence(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = s.parse().ok()?;
    (1..=999_999).contains(&n).then_some(n as u32)
}

/// Parses one file's structure.
pub fn parse(bytes: &[u8]) -> Result<ParsedFile, FileRejection> {
    let text = crate::text::decode(bytes).ok_or(reject(FileCode::F01, 0, None))?;
    let items = csv::read(&text);
    let mut records: Vec<(u32, Vec<String>, u32)> = Vec::new();
    for item in items {
        match item {
            Item::Blank => {}
            Item::Record { line, fields, count } => records.push((line, fields, count)),
            Item::Invalid { line } => {
                let code = if records.is_empty() { FileCode::F02 } else { FileCode::F09 };
                // The kind, if the header can tell it, helps the clerk find the file.
                let kind = records.first().and_then(|(_, f, _)| f.get(1)).and_then(|k| InputKind::parse(k).ok());
                return Err(reject(code, line, kind));
            }
        }
    }
    // F02: the first record is a 6-field type-1 header with a real date and a 通番 of 1–999999.
    let Some((header_line, header, header_count)) = records.first() else {
        return Err(reject(FileCode::F02, 0, None));
    };
    let kind_hint = header.get(1).and_then(|k| InputKind::parse(k).ok());
    let created = header.get(4).and_then(|d| Date::parse(d).ok());
    let sequence = header.get(5).and_then(|s| parse_sequence(s));
    let (Some(created), Some(sequence)) = (created, sequence) else {
        return Err(reject(FileCode::F02, *header_line, kind_hint));
    };
    if *header_count != 6 || header[0] != "1" {
        return Err(reject(FileCode::F02, *header_line, kind_hint));
    }
    // F03: the last record is a 2-field `9,<digits>` trailer after the header.
    if records.len() < 2 {
        return Err(reject(FileCode::F03, 0, kind_hint));
    }
    let (trailer_line, trailer, trailer_count) = records.last().expect("at least two records");
    let trailer_ok = *trailer_count == 2
        && trailer[0] == "9"
        && !trailer[1].is_empty()
        && trailer[1].bytes().all(|b| b.is_ascii_digit());
    if !trailer_ok {
        return Err(reject(FileCode::F03, *trailer_line, kind_hint));
    }
    // F09: only type-2 records between them.
    let data = &records[1..records.len() - 1];
    if let Some((line, _, _)) = data.iter().find(|(_, f, _)| f.first().map(String::as_str) != Some("2")) {
        return Err(reject(FileCode::F09, *line, kind_hint));
    }
    // F03: the trailer counts the data records.
    let count_ok =
        trailer[1].trim_start_matches('0').parse::<usize>().unwrap_or(0) == data.len() && trailer[1].len() <= 12;
    if !count_ok {
        return Err(reject(FileCode::F03, *trailer_line, kind_hint));
    }
    // F06: a known kind.
    let Some(kind) = kind_hint else {
        return Err(reject(FileCode::F06, *header_line, None));
    };
    let header = Header {
        line: *header_line,
        kind,
        municipality: header[2].clone(),
        insurer: header[3].clone(),
        created,
        sequence,
    };
    records.pop(); // the trailer
    let records = records.into_iter().skip(1).map(|(line, fields, count)| RawRecord { line, fields, count }).collect();
    Ok(ParsedFile { header, records, sha256: sha256_hex(bytes) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 送信通番: 1–999999, leading zeros do not matter, at most 12 characters.
    #[test]
    fn sequence_numbers() {
        assert_eq!(parse_sequence("1"), Some(1));
        assert_eq!(parse_sequence("000000000001"), Some(1), "12 characters with leading zeros");
        assert_eq!(parse_sequence("0000000000001"), None, "13 characters");
        assert_eq!(parse_sequence(""), None);
        assert_eq!(parse_sequence("1a"), None);
        assert_eq!(parse_sequence("999999"), Some(999_999));
        assert_eq!(parse_sequence("1000000"), None);
        assert_eq!(parse_sequence("0"), None);
    }

    /// The 送信通番 idempotency compares files by their SHA-256.
    #[test]
    fn sha256_of_the_bytes() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    fn code(text: &str) -> Option<FileCode> {
        parse(text.as_bytes()).err().map(|r| r.code)
    }

    const OK: &str = "1,KG,131024,130021,20260525,1\n2,1,3001,202605,1,20260525\n9,1\n";

    #[test]
    fn a_sound_file() {
        let f = parse(OK.as_bytes()).unwrap();
        assert_eq!(f.header.kind, InputKind::KogakuMonths);
        assert_eq!(f.header.sequence, 1);
        assert_eq!(f.records.len(), 1);
        assert_eq!(f.records[0].line, 2);
        let zeros = parse(b"1,KG,131024,130021,20260525,000002\n\n9,0\n").unwrap();
        assert_eq!(zeros.header.sequence, 2);
    }

    #[test]
    fn file_codes_in_reading_order() {
        assert_eq!(parse(b"\x82\x20").unwrap_err().code, FileCode::F01);
        // Invalid CSV before any record is F02, after one it is F09, even past the trailer.
        assert_eq!(code("1,\"KG\n"), Some(FileCode::F02));
        assert_eq!(code("1,KG,131024,130021,20260525,1\n2,a\"b\n9,1\n"), Some(FileCode::F09));
        assert_eq!(code("1,KG,131024,130021,20260525,1\n2,1\n9,1\n\"x\"y\n"), Some(FileCode::F09));
        // A CR that does not end its line (S9): F02 in the header, F09 after it — a file cut
        // after `9,1\r` is not a trailer with a stray byte.
        assert_eq!(code("1,KG,131024,130021,20260525,1\r"), Some(FileCode::F02));
        assert_eq!(code("1,KG,131024,130021,20260525,1\r\n2,1,3001,202605,1,20260525\r\n9,1\r"), Some(FileCode::F09));
        assert_eq!(code("1,KG,131024,130021,20260525,1\n2,1,30\r01,202605,1,20260525\n9,1\n"), Some(FileCode::F09));
        // F02: header shape, date, 通番.
        assert_eq!(code(""), Some(FileCode::F02));
        assert_eq!(code("\n\n"), Some(FileCode::F02));
        assert_eq!(code("1,KG,131024,130021,20260525\n9,0\n"), Some(FileCode::F02));
        assert_eq!(code("1,KG,131024,130021,20260231,1\n9,0\n"), Some(FileCode::F02));
        assert_eq!(code("1,KG,131024,130021,20260525,0\n9,0\n"), Some(FileCode::F02));
        assert_eq!(code("1,KG,131024,130021,20260525,1000000\n9,0\n"), Some(FileCode::F02));
        assert_eq!(code("2,KG,131024,130021,20260525,1\n9,0\n"), Some(FileCode::F02));
        // F02 comes before F03 and F06.
        assert_eq!(code("1,XX,131024,130021,2026,1\n"), Some(FileCode::F02));
        // F03: no trailer, nothing after the header, malformed trailer.
        assert_eq!(code("1,KG,131024,130021,20260525,1\n"), Some(FileCode::F03));
        assert_eq!(code("1,KG,131024,130021,20260525,1\n2,1,3001,202605,1,20260525\n"), Some(FileCode::F03));
        assert_eq!(code("1,KG,131024,130021,20260525,1\n9,x\n"), Some(FileCode::F03));
        assert_eq!(code("1,KG,131024,130021,20260525,1\n9,1,1\n"), Some(FileCode::F03));
        // F09 before the count's F03.
        assert_eq!(code("1,KG,131024,130021,20260525,1\n3,1\n9,5\n"), Some(FileCode::F09));
        assert_eq!(code("1,KG,131024,130021,20260525,1\n1,KG\n9,1\n"), Some(FileCode::F09));
        // F03: count.
        assert_eq!(code("1,KG,131024,130021,20260525,1\n2,1,3001,202605,1,20260525\n9,2\n"), Some(FileCode::F03));
        // F06 after F03.
        assert_eq!(code("1,KX,131024,130021,20260525,1\n9,0\n"), Some(FileCode::F06));
        assert_eq!(code("1,KX,131024,130021,20260525,1\n9,1\n"), Some(FileCode::F03));
    }
}
