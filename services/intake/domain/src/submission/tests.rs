//! The decider, rule by rule (formats.md): each test fails if its rule is broken.

use kokuho_ids::{LocalGovCode, Registry};

use super::*;
use crate::file;

fn registry() -> Registry {
    Registry::parse("131016,千代田区,130013\n131024,中央区,130021\n131032,港区,130039\n").unwrap()
}

fn input_file(name: &str, text: &str) -> FileInput {
    FileInput { name: name.into(), parsed: file::parse(text.as_bytes()) }
}

fn decide_with(caller: &str, facts: &Facts, files: &[FileInput]) -> Outcome {
    let r = registry();
    decide(Input { caller: LocalGovCode::parse(caller).unwrap(), registry: &r, facts }, files)
}

fn accepted(o: Outcome) -> Accepted {
    match o {
        Outcome::Accepted(a) => a,
        other => panic!("expected accepted, got {other:?}"),
    }
}

fn codes(a: &Accepted) -> Vec<(u32, &'static str, &'static str)> {
    a.rows.iter().map(|r| (r.line, r.code, r.field)).collect()
}

const KS: &str = "1,KS,131016,130013,20260401,1\n2,1,1001,20200401,01,100001,0,千代田,1001,09,\n9,1\n";
const KK: &str = "1,KK,131016,130013,20260401,1\n\
2,1,100001,1001,1,123456789018,山田 太郎,ヤマダ タロウ,S300820,1,01,20200401,03,,,,,20200401\n\
2,1,100002,1001,1,,山田 花子,ヤマダ ハナコ,S330312,2,02,20220401,03,,,,,20220401\n9,2\n";

#[test]
fn accepts_households_before_persons_whatever_the_file_order() {
    let a = accepted(decide_with("131016", &Facts::default(), &[input_file("kk", KK), input_file("ks", KS)]));
    assert_eq!((a.accepted, a.rejected, a.warnings), (3, 0, 1));
    assert_eq!(codes(&a), vec![(3, "W001", "個人番号")]);
    assert_eq!(a.records[0].kind, InputKind::Households);
}

#[test]
fn e007_unknown_household() {
    let a = accepted(decide_with("131016", &Facts::default(), &[input_file("kk", KK)]));
    assert_eq!(a.accepted, 0);
    assert_eq!(codes(&a), vec![(2, "E007", "世帯番号"), (3, "E007", "世帯番号")]);
    // A household accepted before is known.
    let mut facts = Facts::default();
    facts.households.insert("1001".into(), [Date::from_ymd(2020, 4, 1).unwrap()].into());
    let a = accepted(decide_with("131016", &facts, &[input_file("kk", KK)]));
    assert_eq!(a.accepted, 2);
}

#[test]
fn e010_a_rejected_household_takes_its_persons_along_even_if_it_existed_before() {
    let bad_ks = "1,KS,131016,130013,20260401,1\n2,1,1001,20200401,01,100001,0,千代田,1001,77,\n9,1\n";
    let mut facts = Facts::default();
    facts.households.insert("1001".into(), [Date::from_ymd(2020, 4, 1).unwrap()].into());
    let a = accepted(decide_with("131016", &facts, &[input_file("ks", bad_ks), input_file("kk", KK)]));
    assert_eq!(codes(&a), vec![(2, "E004", "所得区分"), (2, "E010", "世帯番号"), (3, "E010", "世帯番号")]);
    assert_eq!((a.accepted, a.rejected), (0, 3));
    assert_eq!(a.rows[1].resident_number, "100001");
}

#[test]
fn e010_also_follows_a_ks_delete_rejected_as_e009() {
    let ks = "1,KS,131016,130013,20260401,1\n2,3,1001,20190101,,,,,,,\n9,1\n";
    let mut facts = Facts::default();
    facts.households.insert("1001".into(), [Date::from_ymd(2020, 4, 1).unwrap()].into());
    let a = accepted(decide_with("131016", &facts, &[input_file("ks", ks), input_file("kk", KK)]));
    assert_eq!(codes(&a), vec![(2, "E009", "世帯番号"), (2, "E010", "世帯番号"), (3, "E010", "世帯番号")]);
}

#[test]
fn e009_delete_of_a_missing_key() {
    let del = "1,KK,131016,130013,20260401,1\n2,3,100001,,,,,,,,,20200401,,,,,,\n9,1\n";
    let a = accepted(decide_with("131016", &Facts::default(), &[input_file("kk", del)]));
    assert_eq!(codes(&a), vec![(2, "E009", "宛名番号")]);
    let mut facts = Facts::default();
    facts.person_keys.insert(("100001".into(), Date::from_ymd(2020, 4, 1)));
    let a = accepted(decide_with("131016", &facts, &[input_file("kk", del)]));
    assert_eq!(a.accepted, 1);
    // Deleting a KS state that exists, then using the household, is E007.
    let ks = "1,KS,131016,130013,20260401,1\n2,3,1001,20200401,,,,,,,\n9,1\n";
    let mut facts = Facts::default();
    facts.households.insert("1001".into(), [Date::from_ymd(2020, 4, 1).unwrap()].into());
    let a = accepted(decide_with("131016", &facts, &[input_file("ks", ks), input_file("kk", KK)]));
    assert_eq!(codes(&a), vec![(2, "E007", "世帯番号"), (3, "E007", "世帯番号")]);
    let kg = "1,KG,131016,130013,20260401,1\n2,3,1001,202508,1,\n9,1\n";
    let a = accepted(decide_with("131016", &facts, &[input_file("kg", kg)]));
    assert_eq!(codes(&a), vec![(2, "E009", "世帯番号")]);
}

#[test]
fn f04_f05_municipality_and_insurer() {
    let other = KS.replace("1,KS,131016,130013", "1,KS,131024,130021");
    match decide_with("131016", &Facts::default(), &[input_file("ks", &other)]) {
        Outcome::Rejected { code, .. } => assert_eq!(code, FileCode::F04),
        o => panic!("{o:?}"),
    }
    let not_here = KS.replace("1,KS,131016,130013", "1,KS,131041,130047");
    let r = registry();
    let o = decide(
        Input { caller: LocalGovCode::parse("131041").unwrap(), registry: &r, facts: &Facts::default() },
        &[input_file("ks", &not_here)],
    );
    assert!(matches!(o, Outcome::Rejected { code: FileCode::F04, .. }));
    let wrong_insurer = KS.replace("130013", "130021");
    match decide_with("131016", &Facts::default(), &[input_file("ks", &wrong_insurer)]) {
        Outcome::Rejected { code, rows, .. } => {
            assert_eq!(code, FileCode::F05);
            assert_eq!((rows[0].code, rows[0].field, rows[0].line), ("F05", "ファイル", 1));
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn a_file_level_error_rejects_every_file_and_the_first_code_wins() {
    let bad_trailer = KK.replace("9,2", "9,3");
    let bad_insurer = KS.replace("130013", "130021");
    match decide_with("131016", &Facts::default(), &[input_file("ks", &bad_insurer), input_file("kk", &bad_trailer)]) {
        Outcome::Rejected { code, rows, files } => {
            assert_eq!(code, FileCode::F05);
            assert_eq!(rows.iter().map(|r| r.code).collect::<Vec<_>>(), vec!["F05", "F03"]);
            assert_eq!(files.len(), 2);
        }
        o => panic!("{o:?}"),
    }
}

fn seq_facts(kind: InputKind, highest: u32, accepted: &[(u32, &str, &str)]) -> Facts {
    let mut facts = Facts::default();
    facts.households.insert("1001".into(), [Date::from_ymd(2020, 4, 1).unwrap()].into());
    facts.sequences.insert(
        kind,
        SequenceFacts {
            highest: Some(highest),
            accepted: accepted.iter().map(|(n, sha, r)| (*n, (sha.to_string(), r.to_string()))).collect(),
        },
    );
    facts
}

#[test]
fn sequence_numbers_duplicate_f07_f08_and_w003() {
    let sha = file::sha256_hex(KS.as_bytes());
    // Identical resend: the first receipt, nothing else.
    let facts = seq_facts(InputKind::Households, 1, &[(1, &sha, "R-1")]);
    assert_eq!(decide_with("131016", &facts, &[input_file("ks", KS)]), Outcome::Duplicate { receipt: "R-1".into() });
    // Same 通番, other bytes: F07.
    let facts = seq_facts(InputKind::Households, 1, &[(1, "other", "R-1")]);
    assert!(matches!(
        decide_with("131016", &facts, &[input_file("ks", KS)]),
        Outcome::Rejected { code: FileCode::F07, .. }
    ));
    // Lower than the highest: F08.
    let facts = seq_facts(InputKind::Households, 3, &[]);
    assert!(matches!(
        decide_with("131016", &facts, &[input_file("ks", KS)]),
        Outcome::Rejected { code: FileCode::F08, .. }
    ));
    // A gap is a warning.
    let ks5 = KS.replace("20260401,1\n", "20260401,5\n");
    let facts = seq_facts(InputKind::Households, 3, &[]);
    let a = accepted(decide_with("131016", &facts, &[input_file("ks", &ks5)]));
    assert_eq!(codes(&a), vec![(1, "W003", "送信通番")]);
    // The next 通番 is no gap.
    let ks4 = KS.replace("20260401,1\n", "20260401,4\n");
    let a = accepted(decide_with("131016", &facts, &[input_file("ks", &ks4)]));
    assert!(a.rows.is_empty(), "{:?}", a.rows);
    // The first accepted 通番 sets the base: no W003; leading zeros do not matter.
    let ks7 = KS.replace("20260401,1\n", "20260401,0007\n");
    let a = accepted(decide_with("131016", &Facts::default(), &[input_file("ks", &ks7)]));
    assert!(a.rows.is_empty());
    assert_eq!(a.files[0].sequence, 7);
    // 通番 are per kind: KK 1 after KS 3 is fine.
    let facts = seq_facts(InputKind::Households, 3, &[]);
    let a = accepted(decide_with("131016", &facts, &[input_file("kk", KK)]));
    assert_eq!(a.accepted, 2);
}

#[test]
fn lookups_name_the_keys_the_records_use() {
    let l = lookups(&[input_file("ks", KS), input_file("kk", KK)]);
    assert_eq!(l.households.into_iter().collect::<Vec<_>>(), vec!["1001".to_string()]);
    assert_eq!(l.residents.len(), 2);
    assert_eq!(l.sequences.len(), 2);
}

/// formats.md: "one RE row per failing field and per failing cross-field check". A KK record
/// that breaks a field rule and also names an unregistered household gets both rows (defect
/// found by larger generated scenarios: only the field's row was sent).
#[test]
fn a_record_with_a_field_error_and_an_unknown_household_gets_e007_too() {
    let kk = "1,KK,131016,130013,20260401,1\n\
2,1,100001,9999,1,123456789018,山田 太郎,ヤマダ タロウ,S300820,3,01,20200401,03,,,,,20200401\n9,1\n";
    let a = accepted(decide_with("131016", &Facts::default(), &[input_file("kk", kk)]));
    assert_eq!(codes(&a), vec![(2, "E004", "性別"), (2, "E007", "世帯番号")]);
    assert_eq!((a.accepted, a.rejected), (0, 1));
    // A KG record too, and E010 where the household's KS was rejected here.
    let bad_ks = "1,KS,131016,130013,20260401,1\n2,1,1001,20200401,01,100001,0,千代田,1001,77,\n9,1\n";
    let kg = "1,KG,131016,130013,20260401,1\n2,1,1001,202513,1,20260101\n9,1\n";
    let a = accepted(decide_with("131016", &Facts::default(), &[input_file("ks", bad_ks), input_file("kg", kg)]));
    assert_eq!(codes(&a), vec![(2, "E004", "所得区分"), (2, "E003", "診療年月"), (2, "E010", "世帯番号")]);
    // A 世帯番号 that itself fails names no household: no second row for it.
    let kk_bad_household = kk.replace(",9999,", ",99999999999999999999999,");
    let a = accepted(decide_with("131016", &Facts::default(), &[input_file("kk", &kk_bad_household)]));
    assert!(codes(&a).iter().all(|(_, code, _)| *code != "E007"), "{:?}", codes(&a));
    // A 削除 is checked on its key fields only, and a known household gives no row.
    let mut facts = Facts::default();
    facts.households.insert("9999".into(), [Date::from_ymd(2020, 4, 1).unwrap()].into());
    let a = accepted(decide_with("131016", &facts, &[input_file("kk", kk)]));
    assert_eq!(codes(&a), vec![(2, "E004", "性別")]);
}
