//! Check-digit rules (identifiers.md). Each function takes the digits *without* the check digit.

/// 地方公共団体コード: weights 6, 5, 4, 3, 2 over digits 1–5; `(11 − s mod 11) mod 10`.
pub fn local_gov_check(first5: &[u8; 5]) -> u8 {
    let s: u32 = first5.iter().zip([6u32, 5, 4, 3, 2]).map(|(d, w)| u32::from(*d) * w).sum();
    ((11 - s % 11) % 10) as u8
}

/// 保険者番号: from the rightmost of digits 1–5 leftwards multiply by 2, 1, 2, 1, 2, add the
/// digits of each product, `(10 − sum mod 10) mod 10`.
pub fn insurer_check(first5: &[u8; 5]) -> u8 {
    let sum: u32 = first5
        .iter()
        .rev()
        .zip([2u32, 1, 2, 1, 2])
        .map(|(d, w)| {
            let p = u32::from(*d) * w;
            p / 10 + p % 10
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// 個人番号 (番号法施行令 第8条): P(n) is the n-th digit leftwards from digit 11,
/// Q(n) = n + 1 for n ≤ 6 and n − 5 for n ≥ 7; r = Σ P·Q mod 11; check 0 if r ≤ 1 else 11 − r.
pub fn individual_number_check(first11: &[u8; 11]) -> u8 {
    let sum: u32 = (1..=11u32)
        .map(|n| {
            let p = u32::from(first11[11 - n as usize]);
            let q = if n <= 6 { n + 1 } else { n - 5 };
            p * q
        })
        .sum();
    let r = sum % 11;
    if r <= 1 { 0 } else { (11 - r) as u8 }
}

/// Luhn check digit for the payload digits (the system-assigned IDs).
pub fn luhn_check(payload: &[u8]) -> u8 {
    let sum: u32 = payload
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(*d);
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// True if the last digit is the Luhn check digit of the others.
pub fn luhn_valid(digits: &[u8]) -> bool {
    match digits.split_last() {
        Some((check, payload)) => luhn_check(payload) == *check,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_from_identifiers_md() {
        // 131016 千代田区, 011002 札幌市, 271004 大阪市.
        assert_eq!(local_gov_check(&[1, 3, 1, 0, 1]), 6);
        assert_eq!(local_gov_check(&[0, 1, 1, 0, 0]), 2);
        assert_eq!(local_gov_check(&[2, 7, 1, 0, 0]), 4);
        // 130013: 2+0+0+3+2 = 7 → 3; 130021 → 1; 130039 → 9.
        assert_eq!(insurer_check(&[1, 3, 0, 0, 1]), 3);
        assert_eq!(insurer_check(&[1, 3, 0, 0, 2]), 1);
        assert_eq!(insurer_check(&[1, 3, 0, 0, 3]), 9);
        // 123456789018: Σ = 212, r = 3, check 8.
        assert_eq!(individual_number_check(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]), 8);
        // 314159265353 of the fixture has the wrong check digit (should be 2).
        assert_eq!(individual_number_check(&[3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]), 2);
        // Luhn: 7992739871 → 3.
        assert_eq!(luhn_check(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1]), 3);
        assert!(luhn_valid(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 3]));
    }
}
