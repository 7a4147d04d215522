//! The municipality registry of one deployment: which municipalities make up the prefecture,
//! their 保険者番号 and the encoding of their result files. It is configuration (a CSV file
//! the deployment ships); this module only parses and answers questions about it.

use std::collections::BTreeMap;

use crate::{InsurerNumber, LocalGovCode, PrefectureCode};

/// Encoding of a municipality's result files (formats.md: UTF-8 by default, CP932 by setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResultEncoding {
    #[default]
    Utf8,
    Cp932,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Municipality {
    pub code: LocalGovCode,
    pub name: String,
    pub insurer: InsurerNumber,
    pub encoding: ResultEncoding,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("line {line}: {what}")]
    Line { line: usize, what: String },
    #[error("the registry names no municipality")]
    Empty,
}

/// The prefecture's municipalities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    prefecture: PrefectureCode,
    by_code: BTreeMap<LocalGovCode, Municipality>,
}

impl Registry {
    /// Parses `code,name,insurer_number[,encoding]` lines (a first line starting with `code` is
    /// a header; `#` starts a comment). Every code must belong to one prefecture, and codes and
    /// 保険者番号 must be unique and pass their check digits.
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        let mut by_code = BTreeMap::new();
        let mut insurers = BTreeMap::new();
        let mut prefecture = None;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |what: String| RegistryError::Line { line, what };
            let raw = raw.trim_start_matches('\u{feff}').trim();
            if raw.is_empty() || raw.starts_with('#') || raw.starts_with("code,") {
                continue;
            }
            let fields: Vec<&str> = raw.split(',').map(str::trim).collect();
            if !(3..=4).contains(&fields.len()) {
                return Err(err("expected code,name,insurer_number[,encoding]".into()));
            }
            let code = LocalGovCode::parse(fields[0]).map_err(|e| err(format!("municipality code: {e}")))?;
            let insurer = InsurerNumber::parse(fields[2]).map_err(|e| err(format!("insurer number: {e}")))?;
            let encoding = match fields.get(3).copied().unwrap_or("") {
                "" | "utf-8" | "UTF-8" => ResultEncoding::Utf8,
                "cp932" | "CP932" | "shift_jis" | "Shift_JIS" => ResultEncoding::Cp932,
                other => return Err(err(format!("unknown encoding {other:?} (utf-8 or cp932)"))),
            };
            match prefecture {
                None => prefecture = Some(code.prefecture()),
                Some(p) if p != code.prefecture() => {
                    return Err(err(format!("{code} is not in prefecture {p}")));
                }
                Some(_) => {}
            }
            if insurer.to_string()[..2] != code.to_string()[..2] {
                return Err(err(format!("insurer number {insurer} is not of prefecture {}", code.prefecture())));
            }
            if let Some(other) = insurers.insert(insurer, code) {
                return Err(err(format!("insurer number {insurer} already belongs to {other}")));
            }
            let m = Municipality { code, name: fields[1].to_string(), insurer, encoding };
            if by_code.insert(code, m).is_some() {
                return Err(err(format!("{code} listed twice")));
            }
        }
        let prefecture = prefecture.ok_or(RegistryError::Empty)?;
        Ok(Self { prefecture, by_code })
    }

    pub fn prefecture(&self) -> PrefectureCode {
        self.prefecture
    }

    pub fn get(&self, code: LocalGovCode) -> Option<&Municipality> {
        self.by_code.get(&code)
    }

    pub fn contains(&self, code: LocalGovCode) -> bool {
        self.by_code.contains_key(&code)
    }

    pub fn municipalities(&self) -> impl Iterator<Item = &Municipality> {
        self.by_code.values()
    }

    pub fn len(&self) -> usize {
        self.by_code.len()
    }

    /// Always false: `parse` refuses an empty registry ([`RegistryError::Empty`]).
    pub fn is_empty(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let r = Registry::parse("code,name,insurer,encoding\n131016,千代田区,130013\n131024,中央区,130021,cp932\n")
            .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r.prefecture().get(), 13);
        let chuo = r.get(LocalGovCode::parse("131024").unwrap()).unwrap();
        assert_eq!(chuo.encoding, ResultEncoding::Cp932);
        assert!(Registry::parse("131016,千代田区,130014\n").is_err());
        assert!(Registry::parse("131016,千代田区,130013\n011002,札幌市,010016\n").is_err());
        assert!(Registry::parse("131016,千代田区,130013\n131024,中央区,130013\n").is_err());
        assert_eq!(Registry::parse("# nothing\n"), Err(RegistryError::Empty));
    }
}
