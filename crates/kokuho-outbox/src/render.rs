//! Writing a result file: header, rows, trailer, CRLF, in the municipality's encoding.

use kokuho_ids::{Municipality, ResultEncoding};
use kokuho_proto::results::v1 as pb;

/// Replacement for a character CP932 cannot hold (〓, the customary geta mark).
const GETA: char = '〓';

/// The bytes of a result file: `1,<kind>,<municipality>,<保険者番号>,<date>,<file seq>`, one
/// `2,…` record per row, `9,<rows>`; CRLF line ends; UTF-8 or CP932 as configured.
pub fn render(issued: &pb::ResultFileIssued, municipality: &Municipality, rows: &[pb::ResultRow]) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).flexible(true).from_writer(Vec::new());
    let header = [
        "1".to_string(),
        issued.kind.clone(),
        municipality.code.to_string(),
        municipality.insurer.to_string(),
        format!("{:08}", issued.business_date),
        issued.file_sequence.to_string(),
    ];
    // Writing to a Vec cannot fail.
    let _ = w.write_record(&header);
    for row in rows {
        let mut record = Vec::with_capacity(row.fields.len() + 1);
        record.push("2");
        record.extend(row.fields.iter().map(String::as_str));
        let _ = w.write_record(&record);
    }
    let _ = w.write_record(["9".to_string(), rows.len().to_string()]);
    let utf8 = w.into_inner().unwrap_or_default();
    match municipality.encoding {
        ResultEncoding::Utf8 => utf8,
        ResultEncoding::Cp932 => to_cp932(&String::from_utf8_lossy(&utf8)),
    }
}

fn to_cp932(text: &str) -> Vec<u8> {
    let (bytes, _, had_errors) = encoding_rs::SHIFT_JIS.encode(text);
    if !had_errors {
        return bytes.into_owned();
    }
    // Encode character by character so an unmappable one becomes 〓, not an HTML reference.
    let mut out = Vec::with_capacity(text.len());
    let mut buf = [0u8; 4];
    for c in text.chars() {
        let (b, _, bad) = encoding_rs::SHIFT_JIS.encode(c.encode_utf8(&mut buf));
        if bad {
            out.extend_from_slice(&encoding_rs::SHIFT_JIS.encode(&GETA.to_string()).0);
        } else {
            out.extend_from_slice(&b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use kokuho_ids::Registry;

    use super::*;

    #[test]
    fn utf8_and_cp932() {
        let reg = Registry::parse("131016,千代田区,130013\n131024,中央区,130021,cp932\n").unwrap();
        let issued = pb::ResultFileIssued {
            municipality: "131016".into(),
            kind: "RE".into(),
            file_sequence: 3,
            name: "RE_131016_20260401_000003.csv".into(),
            upto_sequence: 9,
            rows: 1,
            business_date: 20260401,
        };
        let rows =
            vec![pb::ResultRow { kind: "RE".into(), fields: vec!["E".into(), "a,b".into(), "項目😀".into()] }];
        let m = reg.municipalities().next().unwrap();
        let text = String::from_utf8(render(&issued, m, &rows)).unwrap();
        assert_eq!(text, "1,RE,131016,130013,20260401,3\r\n2,E,\"a,b\",項目😀\r\n9,1\r\n");
        let chuo = reg.municipalities().nth(1).unwrap();
        let bytes = render(&issued, chuo, &rows);
        let (back, _, bad) = encoding_rs::SHIFT_JIS.decode(&bytes);
        assert!(!bad);
        assert!(back.contains("項目〓"));
    }
}
