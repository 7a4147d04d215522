//! Strict RFC 4180 records (formats.md: quoting allowed, no column-name line, CRLF or LF).
//!
//! The `csv` crate is lenient by design (a stray quote is kept as data), while intake must
//! reject a line that is not a valid CSV record (F02/F09). This small reader is strict and
//! reports the physical line where each record starts; a property test checks it reads back
//! exactly what the `csv` crate writes.

/// One item of a file, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// An empty line (or one of spaces and tabs only): skipped (formats.md).
    Blank,
    /// A record and the physical line (1-based) it starts on.
    Record { line: u32, fields: Vec<String> },
    /// Not a valid CSV record: a quote inside an unquoted field, text after a closing quote,
    /// or a quoted field that never closes.
    Invalid { line: u32 },
}

/// Splits `text` into items. Stops at the first invalid record (nothing after it matters).
pub fn read(text: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut chars = text.char_indices().peekable();
    let mut line: u32 = 1;
    loop {
        if chars.peek().is_none() {
            break;
        }
        let start_line = line;
        // A blank line: only spaces/tabs up to the end of the line.
        let rest = &text[chars.peek().map(|(i, _)| *i).unwrap_or(text.len())..];
        let eol = rest.find('\n').unwrap_or(rest.len());
        let candidate = rest[..eol].strip_suffix('\r').unwrap_or(&rest[..eol]);
        if candidate.chars().all(|c| c == ' ' || c == '\t') {
            items.push(Item::Blank);
            for _ in 0..rest[..eol].chars().count() {
                chars.next();
            }
            if chars.next().is_some() {
                line += 1;
            }
            continue;
        }
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut invalid = false;
        'record: loop {
            // Start of a field.
            if chars.peek().map(|(_, c)| *c) == Some('"') {
                chars.next();
                loop {
                    match chars.next() {
                        None => {
                            invalid = true;
                            break 'record;
                        }
                        Some((_, '"')) => {
                            if chars.peek().map(|(_, c)| *c) == Some('"') {
                                chars.next();
                                field.push('"');
                            } else {
                                break;
                            }
                        }
                        Some((_, c)) => {
                            if c == '\n' {
                                line += 1;
                            }
                            field.push(c);
                        }
                    }
                }
                // After a closing quote: a separator or the end of the record.
                match chars.peek().map(|(_, c)| *c) {
                    None => {
                        fields.push(std::mem::take(&mut field));
                        break 'record;
                    }
                    Some(',') => {
                        chars.next();
                        fields.push(std::mem::take(&mut field));
                        continue 'record;
                    }
                    Some('\n') => {
                        chars.next();
                        line += 1;
                        fields.push(std::mem::take(&mut field));
                        break 'record;
                    }
                    Some('\r') => {
                        chars.next();
                        if chars.peek().map(|(_, c)| *c) == Some('\n') {
                            chars.next();
                            line += 1;
                            fields.push(std::mem::take(&mut field));
                            break 'record;
                        }
                        invalid = true;
                        break 'record;
                    }
                    Some(_) => {
                        invalid = true;
                        break 'record;
                    }
                }
            }
            // An unquoted field.
            loop {
                match chars.peek().map(|(_, c)| *c) {
                    None => {
                        fields.push(std::mem::take(&mut field));
                        break 'record;
                    }
                    Some(',') => {
                        chars.next();
                        fields.push(std::mem::take(&mut field));
                        continue 'record;
                    }
                    Some('\n') => {
                        chars.next();
                        line += 1;
                        let f = std::mem::take(&mut field);
                        fields.push(f.strip_suffix('\r').map(str::to_string).unwrap_or(f));
                        break 'record;
                    }
                    Some('"') => {
                        invalid = true;
                        break 'record;
                    }
                    Some(c) => {
                        chars.next();
                        field.push(c);
                    }
                }
            }
        }
        if invalid {
            items.push(Item::Invalid { line: start_line });
            return items;
        }
        items.push(Item::Record { line: start_line, fields });
    }
    items
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn records(text: &str) -> Vec<(u32, Vec<String>)> {
        read(text)
            .into_iter()
            .filter_map(|i| match i {
                Item::Record { line, fields } => Some((line, fields)),
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

    #[test]
    fn strictness() {
        assert_eq!(read("1,a\"b\n").last(), Some(&Item::Invalid { line: 1 }));
        assert_eq!(read("1,2\n2,\"ab\"c\n").last(), Some(&Item::Invalid { line: 2 }));
        assert_eq!(read("1,2\n2,\"open\n9,1\n").last(), Some(&Item::Invalid { line: 2 }));
        assert_eq!(records("a,,b,\n"), vec![(1, vec!["a".into(), "".into(), "b".into(), "".into()])]);
        assert_eq!(records("2, 1 ,x\r\n"), vec![(1, vec!["2".into(), " 1 ".into(), "x".into()])]);
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
