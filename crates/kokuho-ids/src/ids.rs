//! The identifiers of identifiers.md as validated newtypes.

use std::fmt;

use crate::check::{individual_number_check, insurer_check, local_gov_check, luhn_check, luhn_valid};
use crate::{IdError, ascii_digits};

fn fixed_digits<const N: usize>(s: &str) -> Result<[u8; N], IdError> {
    let digits = ascii_digits(s).ok_or(IdError::Format)?;
    digits.try_into().map_err(|_| IdError::Format)
}

/// 都道府県コード: 01–47.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PrefectureCode(u8);

impl PrefectureCode {
    pub fn new(code: u8) -> Result<Self, IdError> {
        if (1..=47).contains(&code) { Ok(Self(code)) } else { Err(IdError::Format) }
    }

    pub fn parse(s: &str) -> Result<Self, IdError> {
        let [a, b] = fixed_digits::<2>(s)?;
        Self::new(a * 10 + b)
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for PrefectureCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.0)
    }
}

/// 地方公共団体コード: 6 digits, prefecture 01–47 in digits 1–2, check digit 6.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalGovCode([u8; 6]);

impl LocalGovCode {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let d = fixed_digits::<6>(s)?;
        PrefectureCode::new(d[0] * 10 + d[1])?;
        let first5 = [d[0], d[1], d[2], d[3], d[4]];
        if local_gov_check(&first5) != d[5] {
            return Err(IdError::CheckDigit);
        }
        Ok(Self(d))
    }

    pub fn prefecture(self) -> PrefectureCode {
        PrefectureCode(self.0[0] * 10 + self.0[1])
    }

    /// Digits 1–5 (the prefix of a 市区町村被保険者ID).
    pub fn first5(self) -> [u8; 5] {
        [self.0[0], self.0[1], self.0[2], self.0[3], self.0[4]]
    }
}

impl std::str::FromStr for LocalGovCode {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

/// 保険者番号 of a municipal NHI: prefecture (2) + serial (3) + check digit (1).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InsurerNumber([u8; 6]);

impl InsurerNumber {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let d = fixed_digits::<6>(s)?;
        PrefectureCode::new(d[0] * 10 + d[1])?;
        if insurer_check(&[d[0], d[1], d[2], d[3], d[4]]) != d[5] {
            return Err(IdError::CheckDigit);
        }
        Ok(Self(d))
    }

    /// The number with the given prefecture and serial, check digit computed.
    pub fn from_serial(prefecture: PrefectureCode, serial: u16) -> Result<Self, IdError> {
        if serial > 999 {
            return Err(IdError::Format);
        }
        let p = prefecture.get();
        let first5 = [p / 10, p % 10, (serial / 100) as u8, (serial / 10 % 10) as u8, (serial % 10) as u8];
        let check = insurer_check(&first5);
        Ok(Self([first5[0], first5[1], first5[2], first5[3], first5[4], check]))
    }
}

/// 個人番号 (My Number), 特定個人情報.
///
/// Deliberately has no `Display`; `Debug` prints a mask. The digits are reachable only through
/// [`IndividualNumber::expose`], whose callers are the encryption boundary (security.md S1).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IndividualNumber([u8; 12]);

impl IndividualNumber {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let d = fixed_digits::<12>(s)?;
        let mut first11 = [0u8; 11];
        first11.copy_from_slice(&d[..11]);
        if individual_number_check(&first11) != d[11] {
            return Err(IdError::CheckDigit);
        }
        Ok(Self(d))
    }

    /// The 12 ASCII digits. Only for sealing them (S2); never log or store the result.
    pub fn expose(&self) -> [u8; 12] {
        self.0.map(|d| d + b'0')
    }
}

impl fmt::Debug for IndividualNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IndividualNumber(************)")
    }
}

/// 都道府県被保険者ID: prefecture (2) + serial (12) + Luhn (1).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PrefInsuredId([u8; 15]);

/// 市区町村被保険者ID: municipality code digits 1–5 (5) + serial (9) + Luhn (1).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MuniInsuredId([u8; 15]);

fn push_serial(out: &mut Vec<u8>, serial: u64, width: u32) -> Result<(), IdError> {
    if serial >= 10u64.pow(width) {
        return Err(IdError::Format);
    }
    for i in (0..width).rev() {
        out.push((serial / 10u64.pow(i) % 10) as u8);
    }
    Ok(())
}

fn with_luhn(mut payload: Vec<u8>) -> [u8; 15] {
    payload.push(luhn_check(&payload));
    let mut out = [0u8; 15];
    out.copy_from_slice(&payload);
    out
}

impl PrefInsuredId {
    pub fn new(prefecture: PrefectureCode, serial: u64) -> Result<Self, IdError> {
        let p = prefecture.get();
        let mut payload = vec![p / 10, p % 10];
        push_serial(&mut payload, serial, 12)?;
        Ok(Self(with_luhn(payload)))
    }

    pub fn parse(s: &str) -> Result<Self, IdError> {
        let d = fixed_digits::<15>(s)?;
        PrefectureCode::new(d[0] * 10 + d[1])?;
        if !luhn_valid(&d) {
            return Err(IdError::CheckDigit);
        }
        Ok(Self(d))
    }
}

impl MuniInsuredId {
    pub fn new(municipality: LocalGovCode, serial: u64) -> Result<Self, IdError> {
        let mut payload = municipality.first5().to_vec();
        push_serial(&mut payload, serial, 9)?;
        Ok(Self(with_luhn(payload)))
    }

    pub fn parse(s: &str) -> Result<Self, IdError> {
        let d = fixed_digits::<15>(s)?;
        if !luhn_valid(&d) {
            return Err(IdError::CheckDigit);
        }
        Ok(Self(d))
    }
}

macro_rules! digits_display {
    ($($t:ident),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for d in self.0 {
                    write!(f, "{d}")?;
                }
                Ok(())
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($t), "({})"), self)
            }
        }
    )*};
}
digits_display!(LocalGovCode, InsurerNumber, PrefInsuredId, MuniInsuredId);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn fixture_values() {
        assert!(LocalGovCode::parse("131016").is_ok());
        assert_eq!(LocalGovCode::parse("131017"), Err(IdError::CheckDigit));
        assert_eq!(LocalGovCode::parse("13101"), Err(IdError::Format));
        assert_eq!(LocalGovCode::parse("１３１０１６"), Err(IdError::Format));
        assert_eq!(LocalGovCode::parse("481000"), Err(IdError::Format));
        assert!(InsurerNumber::parse("130013").is_ok());
        assert_eq!(InsurerNumber::parse("130014"), Err(IdError::CheckDigit));
        assert!(IndividualNumber::parse("123456789018").is_ok());
        assert_eq!(IndividualNumber::parse("314159265353"), Err(IdError::CheckDigit));
        assert_eq!(IndividualNumber::parse("12345678901"), Err(IdError::Format));
    }

    #[test]
    fn individual_number_never_prints_its_digits() {
        let n = IndividualNumber::parse("123456789018").unwrap();
        assert!(!format!("{n:?}").contains("123456789018"));
        assert_eq!(&n.expose(), b"123456789018");
    }

    fn check_mutations(valid: &str, parse: impl Fn(&str) -> bool) {
        for i in 0..valid.len() {
            for d in b'0'..=b'9' {
                let mut b = valid.as_bytes().to_vec();
                if b[i] == d {
                    continue;
                }
                b[i] = d;
                let mutated = String::from_utf8(b).unwrap();
                assert!(!parse(&mutated), "{mutated} (from {valid}) must fail");
            }
        }
    }

    proptest! {
        #[test]
        fn individual_number_round_trip_and_single_digit_mutation(first11 in proptest::collection::vec(0u8..10, 11)) {
            let mut arr = [0u8; 11];
            arr.copy_from_slice(&first11);
            let check = crate::individual_number_check(&arr);
            let s: String = first11.iter().chain(std::iter::once(&check)).map(|d| char::from(b'0' + d)).collect();
            prop_assert!(IndividualNumber::parse(&s).is_ok());
            // The weights 2..7 and 2..6 mod 11 are never 0, so every single-digit change is caught
            // except where r lands on 0 and 1 alike (both give check 0).
            let mut caught = 0;
            let mut total = 0;
            for i in 0..11 {
                for d in b'0'..=b'9' {
                    let mut b = s.as_bytes().to_vec();
                    if b[i] == d { continue; }
                    b[i] = d;
                    total += 1;
                    if IndividualNumber::parse(std::str::from_utf8(&b).unwrap()).is_err() { caught += 1; }
                }
            }
            prop_assert!(caught * 10 >= total * 8);
        }

        #[test]
        fn assigned_ids_are_luhn_valid_and_catch_every_single_digit_change(serial in 0u64..1_000_000_000_000, muni_serial in 0u64..1_000_000_000) {
            let pref = PrefectureCode::new(13).unwrap();
            let id = PrefInsuredId::new(pref, serial).unwrap();
            let s = id.to_string();
            prop_assert_eq!(PrefInsuredId::parse(&s), Ok(id));
            check_mutations(&s, |m| PrefInsuredId::parse(m).is_ok() && m.starts_with("13"));
            let code = LocalGovCode::parse("131016").unwrap();
            let mid = MuniInsuredId::new(code, muni_serial).unwrap();
            let ms = mid.to_string();
            prop_assert!(ms.starts_with("13101"));
            prop_assert_eq!(MuniInsuredId::parse(&ms), Ok(mid));
            check_mutations(&ms, |m| MuniInsuredId::parse(m).is_ok());
        }

        #[test]
        fn insurer_numbers_from_serial_are_valid(pref in 1u8..=47, serial in 0u16..1000) {
            let n = InsurerNumber::from_serial(PrefectureCode::new(pref).unwrap(), serial).unwrap();
            prop_assert_eq!(InsurerNumber::parse(&n.to_string()), Ok(n));
            check_mutations(&n.to_string(), |m| InsurerNumber::parse(m).is_ok());
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,20}") {
            let _ = LocalGovCode::parse(&s);
            let _ = InsurerNumber::parse(&s);
            let _ = IndividualNumber::parse(&s);
            let _ = PrefInsuredId::parse(&s);
            let _ = MuniInsuredId::parse(&s);
        }
    }
}

/// A 受付番号: `<municipality>-<serial:08>` (docs/decisions.md). A held record's case id is
/// `<受付番号>:<行番号>`.
pub fn receipt(municipality: &str, serial: u32) -> String {
    format!("{municipality}-{serial:08}")
}

/// The municipality a 受付番号, or a case id made from one, belongs to.
pub fn receipt_municipality(receipt: &str) -> &str {
    receipt.split('-').next().unwrap_or_default()
}

#[cfg(test)]
mod receipt_tests {
    use super::*;

    #[test]
    fn a_receipt_and_its_case_ids_name_their_municipality() {
        let r = receipt("131016", 42);
        assert_eq!(r, "131016-00000042");
        assert_eq!(receipt_municipality(&r), "131016");
        assert_eq!(receipt_municipality(&format!("{r}:7")), "131016");
    }
}
