//! Text fields: municipality-scoped numbers, names and カナ (identifiers.md). Fields are never
//! trimmed: stray spaces or full-width digits in a numeric field are E001.

use unicode_normalization::UnicodeNormalization;

use crate::IdError;

/// 1..=max ASCII digits (宛名番号 and 世帯番号: 15, 被保険者証番号: 10).
pub fn digits(s: &str, max: usize) -> Result<&str, IdError> {
    if (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) { Ok(s) } else { Err(IdError::Format) }
}

/// 宛名番号: 1–15 digits, compared as a string.
pub fn resident_number(s: &str) -> Result<&str, IdError> {
    digits(s, 15)
}

/// 世帯番号: 1–15 digits, compared as a string.
pub fn household_number(s: &str) -> Result<&str, IdError> {
    digits(s, 15)
}

/// 被保険者証番号: 1–10 digits.
pub fn card_number(s: &str) -> Result<&str, IdError> {
    digits(s, 10)
}

/// 被保険者証記号: 1–10 characters, full-width allowed, no comma, no control characters.
pub fn card_symbol(s: &str) -> Result<&str, IdError> {
    let n = s.chars().count();
    if (1..=10).contains(&n) && !s.chars().any(|c| c == ',' || c == '，' || c.is_control()) {
        Ok(s)
    } else {
        Err(IdError::Format)
    }
}

/// 氏名: 1–50 characters, no control characters.
pub fn name(s: &str) -> Result<&str, IdError> {
    let n = s.chars().count();
    if (1..=50).contains(&n) && !s.chars().any(char::is_control) { Ok(s) } else { Err(IdError::Format) }
}

fn is_kana_char(c: char) -> bool {
    matches!(c,
        'ァ'..='ヶ' | 'ー' | ' ' | '　' | '・'
        // half-width katakana, prolonged sound mark, voiced marks, middle dot
        | '\u{FF66}'..='\u{FF9F}' | '\u{FF65}')
}

/// 氏名カナ: katakana (ァ-ヶ and ー), full- or half-width, spaces allowed; 1–50 characters.
pub fn kana(s: &str) -> Result<&str, IdError> {
    let n = s.chars().count();
    if (1..=50).contains(&n) && s.chars().all(is_kana_char) && s.chars().any(|c| c != ' ' && c != '　') {
        Ok(s)
    } else {
        Err(IdError::Format)
    }
}

/// カナ for comparison: NFKC, hiragana to katakana, spaces removed, ー kept (I3).
pub fn normalize_kana(s: &str) -> String {
    s.nfkc()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            'ぁ'..='ゖ' => char::from_u32(c as u32 + 0x60).unwrap_or(c),
            _ => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_not_trimmed() {
        assert!(resident_number("100001").is_ok());
        assert!(resident_number("000000000000001").is_ok());
        assert_eq!(resident_number("1234567890123456"), Err(IdError::Format));
        assert_eq!(resident_number(" 100001"), Err(IdError::Format));
        assert_eq!(resident_number("１００００１"), Err(IdError::Format));
        assert_eq!(resident_number(""), Err(IdError::Format));
    }

    #[test]
    fn kana_full_and_half_width() {
        assert!(kana("ヤマダ タロウ").is_ok());
        assert!(kana("ｻﾄｳ ｹﾝ").is_ok());
        assert!(kana("スズキ　イチロウ").is_ok());
        assert_eq!(kana("やまだ"), Err(IdError::Format));
        assert_eq!(kana("Yamada"), Err(IdError::Format));
        assert_eq!(normalize_kana("ｻﾄｳ ｹﾝ"), "サトウケン");
        assert_eq!(normalize_kana("さとう けん"), "サトウケン");
        assert_eq!(normalize_kana("サトー"), "サトー");
    }

    #[test]
    fn symbols_and_names() {
        assert!(card_symbol("千代田").is_ok());
        assert_eq!(card_symbol("a,b"), Err(IdError::Format));
        assert_eq!(card_symbol("12345678901"), Err(IdError::Format));
        assert!(name(&"山".repeat(50)).is_ok());
        assert_eq!(name(&"山".repeat(51)), Err(IdError::Format));
    }
}
