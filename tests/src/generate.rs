//! Pieces of the generated scenarios (tests/tests/generated*.rs): a small deterministic
//! generator and record lines in the formats of formats.md.

/// A small deterministic generator (the same scenario for the same seed).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

/// A KS 登録 line (記号 `記号`, 番号 = the 世帯番号, 所得区分 09).
pub fn ks(household: &str, date: &str, reason: &str, householder: &str, counterpart: &str) -> String {
    format!("2,1,{household},{date},{reason},{householder},0,記号,{household},09,{counterpart}")
}

/// A KK 登録 line of a 被保険者.
#[allow(clippy::too_many_arguments)]
pub fn kk(
    resident: &str,
    household: &str,
    number: &str,
    birth: &str,
    sex: &str,
    start: &str,
    start_reason: &str,
    end: &str,
    end_reason: &str,
    from: &str,
    to: &str,
    changed: &str,
) -> String {
    format!(
        "2,1,{resident},{household},1,{number},山田 太郎,ヤマダ タロウ,{birth},{sex},01,{start},{start_reason},{end},{end_reason},{from},{to},{changed}"
    )
}

/// A KG line: 処理区分 1 登録 or 3 削除, 診療年月, 該当区分.
pub fn kg(register: bool, household: &str, month: u32, kind: u8) -> String {
    if register {
        format!("2,1,{household},{month},{kind},20260301")
    } else {
        format!("2,3,{household},{month},{kind},")
    }
}
