//! Pieces of the generated scenarios (tests/tests/generated*.rs, the console's): a small
//! deterministic generator, record lines in the formats of formats.md, and the scenario of
//! provisional persons, merges, late and deleted records and records with two errors.

use std::collections::{BTreeMap, BTreeSet};

use kokuho_testkit::individual_number;

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

/// The municipalities of the generated scenarios: (code, 保険者番号).
pub const MUNIS: [(&str, &str); 3] = [("131016", "130013"), ("131024", "130021"), ("131032", "130039")];
/// The day closes between the phases.
pub const CLOSES: [u32; 3] = [20260501, 20260601, 20260701];

/// Records of one municipality in one phase.
#[derive(Default, Clone)]
pub struct Batch {
    pub ks: Vec<String>,
    pub kk: Vec<String>,
}

/// The scenario: per phase, per municipality, its records; and the KK lines expected to get
/// exactly E004 and E007 (municipality, 宛名番号).
pub struct Scenario {
    pub phases: Vec<BTreeMap<&'static str, Batch>>,
    pub double_errors: BTreeSet<(String, String)>,
    /// Periods deleted after they were sent: (municipality, 宛名番号, 適用開始年月日).
    pub deleted: BTreeSet<(String, String, String)>,
}

/// `persons` persons, each of one of seven kinds, at random municipalities.
pub fn generate(seed: u64, persons: u64) -> Scenario {
    let mut rng = Lcg(seed);
    let mut phases: Vec<BTreeMap<&'static str, Batch>> = vec![BTreeMap::new(); 3];
    let mut double_errors = BTreeSet::new();
    let mut deleted = BTreeSet::new();
    for i in 0..persons {
        let a = rng.below(3) as usize;
        let b = (a + 1 + rng.below(2) as usize) % 3;
        let (ma, mb) = (MUNIS[a].0, MUNIS[b].0);
        let number = individual_number(10_000 + seed * 1_000 + i);
        let (ra, rb) = (format!("{}{i:05}", a + 1), format!("{}{i:05}", b + 4));
        let (ha, hb) = (format!("{}{i:04}", a + 1), format!("{}{i:04}", b + 4));
        let birth = "19800707";
        let mut push = |phase: usize, muni: &'static str, ks_line: Option<String>, kk_line: String| {
            let batch = phases[phase].entry(muni).or_default();
            batch.ks.extend(ks_line);
            batch.kk.push(kk_line);
        };
        match rng.below(8) {
            // Stays, with a number from the start.
            0 => push(
                0,
                ma,
                Some(ks(&ha, "20200401", "01", &ra, "")),
                kk(&ra, &ha, &number, birth, "1", "20200401", "03", "", "", "", "", "20200401"),
            ),
            // A newborn sent without a number; the number is attached later (I5).
            1 => {
                let (born, house) = ("20260405", Some(ks(&ha, "20260405", "01", &ra, "")));
                push(1, ma, house, kk(&ra, &ha, "", born, "2", born, "04", "", "", "", "", born));
                push(2, ma, None, kk(&ra, &ha, &number, born, "2", born, "04", "", "", "", "", born));
            }
            // Moves A → B; B sends the move-in first without a number (a provisional person
            // with B's ID), then with it: a merge into A's person, who adopts B's ID (I5).
            2 | 3 => {
                let provisional = rng.below(2) == 0;
                push(
                    0,
                    ma,
                    Some(ks(&ha, "20200401", "01", &ra, "")),
                    kk(&ra, &ha, &number, birth, "1", "20200401", "03", "", "", "", "", "20200401"),
                );
                push(
                    1,
                    ma,
                    None,
                    kk(&ra, &ha, &number, birth, "1", "20200401", "03", "20260509", "02", "", mb, "20260509"),
                );
                let arrival = |n: &str| kk(&rb, &hb, n, birth, "1", "20260510", "02", "", "", ma, "", "20260510");
                let house_b = Some(ks(&hb, "20260510", "02", &rb, ma));
                if provisional {
                    push(1, mb, house_b, arrival(""));
                    push(2, mb, None, arrival(&number));
                } else {
                    // A late move-in: only after the next day close.
                    push(2, mb, house_b, arrival(&number));
                }
            }
            // Registered, then the period deleted (KK 削除): its RS is withdrawn (判定区分 9).
            5 => {
                push(
                    0,
                    ma,
                    Some(ks(&ha, "20200401", "01", &ra, "")),
                    kk(&ra, &ha, &number, birth, "1", "20200401", "03", "", "", "", "", "20200401"),
                );
                push(1, ma, None, delete(&ra, &ha, "20200401"));
                deleted.insert((ma.to_string(), ra.clone(), "20200401".to_string()));
            }
            // Moves A → B; B's arrival is then deleted: A's move-out is unpaired again.
            6 => {
                push(
                    0,
                    ma,
                    Some(ks(&ha, "20200401", "01", &ra, "")),
                    kk(&ra, &ha, &number, birth, "1", "20200401", "03", "20260509", "02", "", mb, "20260509"),
                );
                let arrival = kk(&rb, &hb, &number, birth, "1", "20260510", "02", "", "", ma, "", "20260510");
                push(1, mb, Some(ks(&hb, "20260510", "02", &rb, ma)), arrival);
                push(2, mb, None, delete(&rb, &hb, "20260510"));
                deleted.insert((mb.to_string(), rb.clone(), "20260510".to_string()));
            }
            // A newborn whose number never arrives: it waits for the intermediate server (R01).
            7 => {
                let (born, house) = ("20260405", Some(ks(&ha, "20260405", "01", &ra, "")));
                push(1, ma, house, kk(&ra, &ha, "", born, "2", born, "04", "", "", "", "", born));
            }
            // A record with two failing checks: 性別 3 (E004) and an unknown household (E007).
            _ => {
                push(0, ma, None, kk(&ra, "9999", &number, birth, "3", "20200401", "03", "", "", "", "", "20200401"));
                double_errors.insert((ma.to_string(), ra.clone()));
            }
        }
    }
    Scenario { phases, double_errors, deleted }
}

/// A KK 削除 of the period (宛名番号, 適用開始年月日).
pub fn delete(resident: &str, household: &str, start: &str) -> String {
    format!("2,3,{resident},{household},1,,,,,,,{start},,,,,,")
}

/// Submits every batch of the scenario: per phase, the municipalities in an order given by
/// `order_seed` (each municipality's own order kept), the system settled, then the day closed.
pub async fn submit_all(sys: &mut crate::app::TestSystem, scenario: &Scenario, order_seed: u64) {
    let mut seq: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    let mut rng = Lcg(order_seed);
    for (phase, batches) in scenario.phases.iter().enumerate() {
        let mut munis: Vec<&&str> = batches.keys().collect();
        rng.shuffle(&mut munis);
        for muni in munis {
            let batch = &batches[*muni];
            let insurer = MUNIS.iter().find(|(m, _)| m == muni).map(|(_, i)| *i).unwrap_or_default();
            let mut files = Vec::new();
            for (kind, lines) in [("KS", &batch.ks), ("KK", &batch.kk)] {
                if lines.is_empty() {
                    continue;
                }
                let n = seq.entry((muni, kind)).or_insert(0);
                *n += 1;
                files.push(crate::input_file(kind, muni, insurer, *n, lines));
            }
            let r = sys.client.submit(muni, files).await.expect("submit");
            assert_ne!(r.code, "F08", "{r:?}");
        }
        sys.settle().await;
        sys.client.close_day(CLOSES[phase]).await.expect("close the day");
        sys.settle().await;
    }
}

/// Every 個人番号 a scenario's records carry (for the privacy scans).
pub fn numbers(scenario: &Scenario) -> BTreeSet<String> {
    scenario
        .phases
        .iter()
        .flat_map(|p| p.values())
        .flat_map(|b| &b.kk)
        .filter_map(|line| line.split(',').nth(5).filter(|n| n.len() == 12).map(str::to_string))
        .collect()
}
