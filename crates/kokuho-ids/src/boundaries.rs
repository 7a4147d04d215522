//! Boundaries and small functions that `cargo mutants` found untested (issue 9). Three mutants
//! cannot change behaviour and are excluded in `.cargo/mutants.toml`, each with its reason:
//! `luhn_check`'s `x > 9` (a doubled digit is even, never 9), and `Month::parse`'s era bounds
//! (no era begins on the last day of a month or ends on the first).

use crate::codes::*;
use crate::text::{card_number, card_symbol, household_number, kana};
use crate::*;

/// formats.md "Codes": each kind of refused value is its E00x code.
#[test]
fn e001_to_e004_each_kind_is_its_code() {
    assert_eq!(IdError::Format.code(), "E001");
    assert_eq!(IdError::CheckDigit.code(), "E002");
    assert_eq!(IdError::Impossible.code(), "E003");
    assert_eq!(IdError::NotInCodeSet.code(), "E004");
}

/// identifiers.md 保険者番号: products of two digits are added digit by digit (9 × 2 = 18 → 9).
#[test]
fn insurer_check_adds_the_digits_of_each_product() {
    assert_eq!(insurer_check(&[1, 3, 9, 9, 9]), 8);
    assert_eq!(insurer_check(&[1, 3, 0, 5, 7]), 5);
    // The prefecture is two digits: 48 is none, even with a right check digit.
    assert_eq!(InsurerNumber::parse("480012"), Err(IdError::Format));
    assert_eq!(insurer_check(&[4, 8, 0, 0, 1]), 2);
}

#[test]
fn insurer_numbers_from_serials() {
    let tokyo = PrefectureCode::parse("13").unwrap();
    let n = InsurerNumber::from_serial(tokyo, 123).unwrap();
    assert_eq!(n.to_string(), format!("13123{}", insurer_check(&[1, 3, 1, 2, 3])));
    assert!(InsurerNumber::from_serial(tokyo, 999).is_ok());
    assert_eq!(InsurerNumber::from_serial(tokyo, 1000), Err(IdError::Format));
}

#[test]
fn prefecture_codes() {
    assert_eq!(PrefectureCode::parse("13").unwrap().get(), 13);
    assert_eq!(PrefectureCode::parse("47").unwrap().get(), 47);
    assert_eq!(PrefectureCode::parse("48"), Err(IdError::Format));
    assert_eq!(PrefectureCode::parse("01").unwrap().to_string(), "01");
}

/// The IDs the system assigns: prefecture, serial digit by digit, Luhn.
#[test]
fn pref_insured_ids_carry_their_serial() {
    let tokyo = PrefectureCode::parse("13").unwrap();
    assert_eq!(PrefInsuredId::new(tokyo, 123_456_789_012).unwrap().to_string(), "131234567890121");
    // A valid Luhn digit does not make 48 a prefecture.
    assert_eq!(PrefInsuredId::parse("480000000000017"), Err(IdError::Format));
}

/// S1: a 個人番号 never prints; dates and months print what they are.
#[test]
fn debug_forms() {
    let n = IndividualNumber::parse("123456789018").unwrap();
    assert_eq!(format!("{n:?}"), "IndividualNumber(************)");
    assert_eq!(format!("{:?}", Date::from_ymd(2026, 4, 1).unwrap()), "Date(20260401)");
    assert_eq!(format!("{:?}", Month::new(2026, 5).unwrap()), "Month(202605)");
}

#[test]
fn dates_and_months() {
    let a = Date::from_ymd(2026, 4, 10).unwrap();
    assert_eq!(a.days_until(Date::from_ymd(2026, 5, 10).unwrap()), 30);
    assert_eq!(Date::from_ymd(2026, 5, 10).unwrap().days_until(a), -30);
    let m = Month::new(2026, 5).unwrap();
    assert_eq!((m.year(), m.month(), m.to_yyyymm()), (2026, 5, 202605));
    assert_eq!(Month::new(1999, 12).unwrap().to_yyyymm(), 199912);
    assert_eq!(Month::from_yyyymm(202605), Some(m));
    assert_eq!(Month::from_yyyymm(202613), None);
    assert_eq!(Month::from_yyyymm(202600), None);
}

/// identifiers.md: 世帯番号 1–15 digits, 被保険者証番号 1–10, 記号 without commas or control
/// characters, カナ not only spaces.
#[test]
fn text_fields() {
    assert_eq!(household_number("1001"), Ok("1001"));
    assert_eq!(household_number("10a1"), Err(IdError::Format));
    assert_eq!(card_number("1234567890"), Ok("1234567890"));
    assert_eq!(card_number("12345678901"), Err(IdError::Format));
    assert_eq!(card_symbol("千代田"), Ok("千代田"));
    assert_eq!(card_symbol("千,代"), Err(IdError::Format));
    assert_eq!(card_symbol("千，代"), Err(IdError::Format));
    assert_eq!(card_symbol("千\u{7}"), Err(IdError::Format));
    assert_eq!(kana("ヤマダ タロウ"), Ok("ヤマダ タロウ"));
    assert_eq!(kana(" 　"), Err(IdError::Format));
}

/// The registry: one prefecture, errors name their line, lookups.
#[test]
fn registry_lookups_and_errors() {
    let r = Registry::parse("131016,千代田区,130013\n131024,中央区,130021\n").unwrap();
    let chiyoda = LocalGovCode::parse("131016").unwrap();
    assert!(r.contains(chiyoda));
    assert!(!r.contains(LocalGovCode::parse("131032").unwrap()));
    assert!(!r.is_empty());
    assert_eq!(r.municipalities().count(), 2);
    assert!(matches!(Registry::parse("bad\n"), Err(RegistryError::Line { line: 1, .. })));
    assert!(matches!(
        Registry::parse("131016,千代田区,130013\n271004,大阪市,270009\n"),
        Err(RegistryError::Line { line: 2, .. })
    ));
}

#[test]
fn code_sets_of_the_result_files() {
    assert_eq!(Kubun::parse("A"), Ok(Kubun::Anomaly));
    assert_eq!(Judgement::parse("9"), Ok(Judgement::Withdrawn));
    assert_eq!(AnomalyCode::parse("A09"), Err(IdError::NotInCodeSet));
    assert_eq!(AnomalyCode::A03.label(), "県内転出先の転入が届いていません");
}
