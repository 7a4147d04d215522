//! Every real 地方公共団体コード passes the check-digit rule, and every single-digit mutation of
//! one is refused (identifiers.md). Reads the project's copy of the national list.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use kokuho_ids::{IdError, LocalGovCode, Registry};

fn national_codes() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/municipalities.csv");
    let text = std::fs::read_to_string(path).expect("config/municipalities.csv is part of the repository");
    text.lines().skip(1).filter(|l| !l.is_empty()).map(|l| l.split(',').next().unwrap().to_string()).collect()
}

#[test]
fn all_real_codes_pass() {
    let codes = national_codes();
    assert_eq!(codes.len(), 1922);
    for c in &codes {
        assert!(LocalGovCode::parse(c).is_ok(), "{c}");
    }
}

#[test]
fn every_single_digit_mutation_of_a_real_code_fails() {
    let codes = national_codes();
    let mut mutations = 0;
    let mut aliased = 0;
    for c in &codes {
        for i in 0..6 {
            for d in b'0'..=b'9' {
                let mut b = c.as_bytes().to_vec();
                if b[i] == d {
                    continue;
                }
                b[i] = d;
                let m = String::from_utf8(b).unwrap();
                mutations += 1;
                match LocalGovCode::parse(&m) {
                    Err(IdError::CheckDigit | IdError::Format) => {}
                    Err(e) => panic!("{m}: unexpected {e:?}"),
                    // The rule maps s mod 11 = 0 and = 10 both to check digit 1, so a change that
                    // moves s by exactly that step keeps the check digit. Such codes pass the
                    // check (011011 and 011061 are both real); every other change fails.
                    Ok(_) => {
                        let s = |code: &str| -> u32 {
                            code.bytes().take(5).zip([6, 5, 4, 3, 2]).map(|(b, w)| u32::from(b - b'0') * w).sum()
                        };
                        let (a, b) = (s(c) % 11, s(&m) % 11);
                        assert!(matches!((a, b), (0, 10) | (10, 0)), "{m} (one digit from {c}) must fail");
                        aliased += 1;
                    }
                }
            }
        }
    }
    assert_eq!(mutations, 1922 * 6 * 9);
    assert!(aliased * 50 < mutations, "{aliased} of {mutations} mutations kept their check digit");
}

#[test]
fn the_shipped_tokyo_registry_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/registry/13.csv");
    let registry = Registry::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(registry.len(), 62);
    let fixture = [("131016", "130013"), ("131024", "130021"), ("131032", "130039")];
    for (code, insurer) in fixture {
        let m = registry.get(LocalGovCode::parse(code).unwrap()).unwrap();
        assert_eq!(m.insurer.to_string(), insurer);
    }
}
