//! Strict RFC 4180 records (formats.md: quoting allowed, no column-name line, CRLF or LF).
//!
//! The `csv` crate is lenient by design (a stray quote is kept as data), while intake must
//! reject a line that is not a valid CSV record (F02/F09). This small reader is strict and
//! reports the physical line where each record starts; a property test checks it reads back
//! exactly what the `csv` crate writes.

/// The most fields a record keeps (S9): the widest record of formats.md has 18. A record with
/// more is still read to its end and counted (its E001 names the count), but the fields past
/// this many are not kept: a 64 KiB line of commas costs nothing.
pub const MAX_FIELDS: usize = 64;

/// The most bytes a field keeps (S9): no field of any format is near this long, so a longer one
/// is invalid whole and invalid cut; cutting it keeps a quoted field across a 256 MiB file from
/// costing 256 MiB more.
pub const MAX_FIELD_BYTES: usize = 4096;

/// `field` with `more` appended, up to [`MAX_FIELD_BYTES`] (cut on a character boundary).
fn push_capped(field: &mut String, more: &str) {
    let room = MAX_FIELD_BYTES.saturating_sub(field.len());
    if room == 0 {
        return;
    }
    let mut end = more.len().min(room);
    while !more.is_char_boundary(end) {
        end -= 1;
    }
    field.push_str(&more[..end]);
}

/// One item of a file, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// An empty line (or one of spaces and tabs only): skipped (formats.md).
    Blank,
    /// A record, the physical line (1-based) it starts on, and how many fields it has (only the
    /// first [`MAX_FIELDS`] are kept).
    Record { line: u32, fields: Vec<String>, count: u32 },
    /// Not a valid CSV record: a quote inside an unquoted field, a CR that does not end the line,
    /// text after a closing quote, or a quoted field that never closes.
    Invalid { line: u32 },
}

/// Splits `text` into items. Stops at the first invalid record (nothing after it matters).
/// Works on bytes: every delimiter is ASCII, so slices between them are whole characters.
pub fn read(text: &str) -> Vec<Item> {
    let b = text.as_bytes();
    let mut items = Vec::new();
    let mut i = 0;
    let mut line: u32 = 1;
    while i < b.len() {
        let start_line = line;
        // A blank line: only spaces/tabs up to the end of the line.
        let eol = b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |p| i + p);
        // CRLF ends a line; a CR at the very end (no LF after it) is not a line end.
        let content_end = if eol > i && eol < b.len() && b[eol - 1] == b'\r' { eol - 1 } else { eol };
        if b[i..content_end].iter().all(|&c| c == b' ' || c == b'\t') {
            items.push(Item::Blank);
            // Past the last line nothing is read, so the count may run one ahead there.
            line += 1;
            i = eol + 1;
            continue;
        }
        let mut fields = Vec::new();
        let mut count: u32 = 0;
        loop {
            if b.get(i) == Some(&b'"') {
                // A quoted field: `""` is a quote; newlines belong to the field.
                i += 1;
                let mut field = String::new();
                let mut segment = i;
                loop {
                    match b.get(i) {
                        None => {
                            items.push(Item::Invalid { line: start_line });
                            return items;
                        }
                        Some(b'"') if b.get(i + 1) == Some(&b'"') => {
                            push_capped(&mut field, &text[segment..=i]);
                            i += 2;
                            segment = i;
                        }
                        Some(b'"') => {
                            push_capped(&mut field, &text[segment..i]);
                            i += 1;
                            break;
                        }
                        Some(b'\n') => {
                            line += 1;
                            i += 1;
                        }
                        Some(_) => i += 1,
                    }
                }
                count += 1;
                if fields.len() < MAX_FIELDS {
                    fields.push(field);
                }
                // After a closing quote: a separator or the end of the record.
                match (b.get(i), b.get(i + 1)) {
                    (None, _) => break,
                    (Some(b','), _) => i += 1,
                    (Some(b'\n'), _) => {
                        i += 1;
                        line += 1;
                        break;
                    }
                    (Some(b'\r'), Some(b'\n')) => {
                        i += 2;
                        line += 1;
                        break;
                    }
                    _ => {
                        items.push(Item::Invalid { line: start_line });
                        return items;
                    }
                }
            } else {
                // An unquoted field: up to a separator or the end of the line; no quote inside.
                let segment = i;
                while let Some(&c) = b.get(i) {
                    match c {
                        b',' | b'\n' => break,
                        // A quote, or a CR that does not end the line (CRLF), is not CSV.
                        b'"' => {
                            items.push(Item::Invalid { line: start_line });
                            return items;
                        }
                        b'\r' if b.get(i + 1) != Some(&b'\n') => {
                            items.push(Item::Invalid { line: start_line });
                            return items;
                        }
                        _ => i += 1,
                    }
                }
                let terminator = b.get(i).copied();
                // CRLF: the CR is not part of the field.
                let end = if terminator == Some(b'\n') && b[segment..i].ends_with(b"\r") { i - 1 } else { i };
                count += 1;
                if fields.len() < MAX_FIELDS {
                    let mut field = String::new();
                    push_capped(&mut field, &text[segment..end]);
                    fields.push(field);
                }
                match terminator {
                    Some(b',') => i += 1,
                    Some(_) => {
                        i += 1;
                        line += 1;
                        break;
                    }
                    None => break,
                }
            }
        }
        items.push(Item::Record { line: start_line, fields, count });
    }
    items
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// S9: a field keeps at most MAX_FIELD_BYTES, cut on a character boundary, quoted or not.
    #[test]
    fn s9_a_field_keeps_at_most_its_cap() {
        let long = "あ".repeat(10_000);
        for line in [format!("1,{long}\n"), format!("1,\"{long}\n{long}\"\n")] {
            let items = read(&line);
            let [Item::Record { fields, count: 2, .. }] = items.as_slice() else { panic!("one record") };
            assert!(fields[1].len() <= MAX_FIELD_BYTES && fields[1].len() > MAX_FIELD_BYTES - 4);
            assert!(fields[1].chars().all(|c| c == 'あ'));
        }
    }

    /// S9: a record of many fields keeps only the first MAX_FIELDS, and still says how many it had.
    #[test]
    fn s9_fields_past_the_cap_are_counted_not_kept() {
        let line = ",".repeat(65_535) + "\n";
        let items = read(&line);
        let [Item::Record { fields, count, .. }] = items.as_slice() else { panic!("one record: {items:?}") };
        assert_eq!((fields.len(), *count), (MAX_FIELDS, 65_536));
        let quoted = vec!["\"x\""; 70].join(",") + "\n";
        let items = read(&quoted);
        let [Item::Record { fields, count, .. }] = items.as_slice() else { panic!("one record: {items:?}") };
        assert_eq!((fields.len(), *count), (MAX_FIELDS, 70));
    }

    fn records(text: &str) -> Vec<(u32, Vec<String>)> {
        read(text)
            .into_iter()
            .filter_map(|i| match i {
                Item::Record { line, fields, .. } => Some((line, fields)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn lines_quotes_and_blank_lines() {
        let t = "1,KK\r\n\r\n2,\"a,b\",\"x\"\"y\"\n2,\"multi\nline\",z\n  \n9,2\n";
        let items = read(t);
        assert_eq!(items[1], Item::Blank);
        assert_eq!(
            records(t),
            vec![
                (1, vec!["1".into(), "KK".into()]),
                (3, vec!["2".into(), "a,b".into(), "x\"y".into()]),
                (4, vec!["2".into(), "multi\nline".into(), "z".into()]),
                (7, vec!["9".into(), "2".into()]),
            ]
        );
    }

    /// A quoted field may end the text, or its line with CRLF.
    #[test]
    fn quoted_fields_at_the_end_of_a_line_or_the_text() {
        let rec = |line, fields: &[&str]| Item::Record {
            line,
            fields: fields.iter().map(|f| f.to_string()).collect(),
            count: fields.len() as u32,
        };
        assert_eq!(read("1,\"a\""), vec![rec(1, &["1", "a"])]);
        assert_eq!(read("\"a\"\r\n2,b\n"), vec![rec(1, &["a"]), rec(2, &["2", "b"])]);
    }

    /// The text ends where it ends: no item is made up after the last line break.
    #[test]
    fn nothing_after_the_last_line() {
        assert_eq!(read("1,2\n"), vec![Item::Record { line: 1, fields: vec!["1".into(), "2".into()], count: 2 }]);
        assert_eq!(
            read("1,2\n\n"),
            vec![Item::Record { line: 1, fields: vec!["1".into(), "2".into()], count: 2 }, Item::Blank]
        );
        assert_eq!(read(""), Vec::<Item>::new());
    }

    #[test]
    fn strictness() {
        assert_eq!(read("1,a\"b\n").last(), Some(&Item::Invalid { line: 1 }));
        assert_eq!(read("1,2\n2,\"ab\"c\n").last(), Some(&Item::Invalid { line: 2 }));
        assert_eq!(read("1,2\n2,\"open\n9,1\n").last(), Some(&Item::Invalid { line: 2 }));
        assert_eq!(records("a,,b,\n"), vec![(1, vec!["a".into(), "".into(), "b".into(), "".into()])]);
        assert_eq!(records("2, 1 ,x\r\n"), vec![(1, vec!["2".into(), " 1 ".into(), "x".into()])]);
    }

    /// S9, formats.md: CRLF or LF end a line; a lone CR is not data and not a line end.
    #[test]
    fn a_lone_cr_is_not_csv() {
        let rec = |line, fields: &[&str]| Item::Record {
            line,
            fields: fields.iter().map(|f| f.to_string()).collect(),
            count: fields.len() as u32,
        };
        assert_eq!(read("9,2\r"), vec![Item::Invalid { line: 1 }], "a file cut after a CR");
        assert_eq!(read("2,a\rb\n"), vec![Item::Invalid { line: 1 }]);
        assert_eq!(read("2,a\n2,b\rc,d\r\n"), vec![rec(1, &["2", "a"]), Item::Invalid { line: 2 }]);
        assert_eq!(read("2,\"x\"\r9\n"), vec![Item::Invalid { line: 1 }], "after a closing quote");
        assert_eq!(read("  \r"), vec![Item::Invalid { line: 1 }], "not a blank line without its LF");
        assert_eq!(read("2,\"a\rb\"\r\n"), vec![rec(1, &["2", "a\rb"])], "data inside quotes");
        assert_eq!(read("2,a\r\n\r\n9,1\r\n"), vec![rec(1, &["2", "a"]), Item::Blank, rec(3, &["9", "1"])]);
    }

    proptest! {
        #[test]
        fn reads_back_what_the_csv_crate_writes(rows in proptest::collection::vec(
            proptest::collection::vec("[a-zA-Z0-9 ,\"\n\r山田ｱ]{0,8}", 1..6), 1..6)) {
            let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).flexible(true).from_writer(vec![]);
            for r in &rows {
                w.write_record(r).unwrap();
            }
            let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
            let got: Vec<Vec<String>> = read(&text).into_iter().filter_map(|i| match i {
                Item::Record { fields, .. } => Some(fields),
                Item::Blank => None,
                Item::Invalid { line } => panic!("invalid at {line}: {text:?}"),
            }).collect();
            // The csv crate writes a one-empty-field row as `""`, and a row of blanks is a blank
            // line to us; compare the rows that are not all spaces.
            let expected: Vec<Vec<String>> = rows.into_iter()
                .filter(|r| !(r.len() == 1 && r[0].chars().all(|c| c == ' ' || c == '\t') && !r[0].is_empty()))
                .collect();
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn never_panics_and_lines_increase(text in "[a-z0-9,\"\r\n ]{0,60}") {
            let mut last = 0;
            for item in read(&text) {
                if let Item::Record { line, .. } | Item::Invalid { line } = item {
                    prop_assert!(line > last);
                    last = line;
                }
            }
        }
    }
}
