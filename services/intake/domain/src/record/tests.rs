//! One test per record rule of formats.md: each fails if its rule is broken.

use kokuho_ids::{LocalGovCode, Registry};

use super::*;

fn registry() -> Registry {
    Registry::parse("131016,千代田区,130013\n131024,中央区,130021\n131032,港区,130039\n").unwrap()
}

fn run(kind: InputKind, line: &str) -> Checked {
    let r = registry();
    let ctx = Context { registry: &r, own: LocalGovCode::parse("131016").unwrap() };
    let fields: Vec<String> = line.split(',').map(str::to_string).collect();
    check(kind, &fields, fields.len() as u32, &ctx)
}

/// (field, code) of every issue.
fn issues(kind: InputKind, line: &str) -> Vec<(&'static str, &'static str)> {
    run(kind, line).issues.iter().map(|i| (i.field, i.code)).collect()
}

const KK_OK: &str = "2,1,100001,1001,1,123456789018,山田 太郎,ヤマダ タロウ,S300820,1,01,20200401,03,,,,,20200401";

fn kk(replace: &[(usize, &str)]) -> String {
    let mut f: Vec<String> = KK_OK.split(',').map(str::to_string).collect();
    for (n, v) in replace {
        f[*n] = v.to_string();
    }
    f.join(",")
}

#[test]
fn a_good_person_record() {
    let c = run(InputKind::Persons, KK_OK);
    assert!(c.issues.is_empty(), "{:?}", c.issues);
    let Some(Record::Person(p)) = c.record else { panic!() };
    assert_eq!(p.start, Date::from_ymd(2020, 4, 1));
    assert_eq!(p.body.unwrap().birth, Date::from_ymd(1955, 8, 20).unwrap());
}

#[test]
fn fixture_line_4_of_131032_gets_e002_and_e004() {
    let line = "2,1,200009,2001,1,314159265353,山田 次郎,ヤマダ ジロウ,20100401,3,03,20260510,03,,,,,20260510";
    let c = run(InputKind::Persons, line);
    assert!(c.record.is_none());
    assert_eq!(issues(InputKind::Persons, line), vec![("個人番号", "E002"), ("性別", "E004")]);
    assert!(c.issues.iter().all(|i| !i.message.contains("314159265353")));
    assert_eq!(c.resident_number, "200009");
}

#[test]
fn e001_formats() {
    assert_eq!(issues(InputKind::Persons, &kk(&[(2, "１００００１")])), vec![("宛名番号", "E001")]);
    assert_eq!(issues(InputKind::Persons, &kk(&[(5, "12345678901")])), vec![("個人番号", "E001")]);
    assert_eq!(issues(InputKind::Persons, &kk(&[(7, "yamada")])), vec![("氏名カナ", "E001")]);
    assert_eq!(issues(InputKind::Persons, &kk(&[(8, "1955-08-20")])), vec![("生年月日", "E001")]);
    assert_eq!(issues(InputKind::Persons, &kk(&[(3, " 1001")])), vec![("世帯番号", "E001")]);
    // Wrong number of fields: one row for the record.
    assert_eq!(issues(InputKind::Persons, "2,1,100001"), vec![("レコード", "E001")]);
    assert_eq!(run(InputKind::Persons, "2,1,100001").resident_number, "100001");
}

#[test]
fn e002_check_digits() {
    assert_eq!(issues(InputKind::Persons, &kk(&[(5, "123456789019")])), vec![("個人番号", "E002")]);
    let ks = "2,1,1002,20191001,03,100003,0,千代田,1002,03,271005";
    assert_eq!(issues(InputKind::Households, ks), vec![("相手先市区町村コード", "E002")]);
}

#[test]
fn e003_impossible_dates_and_eras() {
    assert_eq!(issues(InputKind::Persons, &kk(&[(8, "H310501")])), vec![("生年月日", "E003")]);
    assert_eq!(issues(InputKind::Persons, &kk(&[(17, "20260230")])), vec![("異動年月日", "E003")]);
    assert_eq!(issues(InputKind::KogakuMonths, "2,1,1001,R0104,1,20260410"), vec![("診療年月", "E003")]);
}

#[test]
fn e004_code_sets() {
    assert_eq!(issues(InputKind::Persons, &kk(&[(10, "07")])), vec![("続柄", "E004")]);
    assert_eq!(issues(InputKind::Persons, &kk(&[(1, "2")])), vec![("処理区分", "E004")]);
    assert_eq!(issues(InputKind::Persons, &kk(&[(12, "06")])), vec![("適用開始事由", "E004")]);
    assert_eq!(issues(InputKind::KogakuMonths, "2,1,1001,202508,3,20251020"), vec![("該当区分", "E004")]);
    assert_eq!(issues(InputKind::ContinuationDecisions, "2,12,3"), vec![("判定", "E004")]);
    assert_eq!(
        issues(InputKind::Households, "2,1,1001,20200401,11,100001,0,千代田,1001,09,"),
        vec![("世帯異動事由", "E004")]
    );
}

#[test]
fn e005_required_and_must_be_blank() {
    assert_eq!(issues(InputKind::Persons, &kk(&[(6, "")])), vec![("氏名", "E005")]);
    // 擬制世帯主: fields 12–16 blank.
    let deemed = kk(&[(4, "2"), (11, "20200401"), (12, ""), (13, ""), (14, "")]);
    assert_eq!(issues(InputKind::Persons, &deemed), vec![("適用開始年月日", "E005")]);
    let deemed_ok = kk(&[(4, "2"), (11, ""), (12, "")]);
    assert!(issues(InputKind::Persons, &deemed_ok).is_empty());
    // 転入元 filled although the start is not a move.
    assert_eq!(issues(InputKind::Persons, &kk(&[(15, "131024")])), vec![("転入元市区町村コード", "E005")]);
    // 02 needs its 転入元.
    assert_eq!(issues(InputKind::Persons, &kk(&[(12, "02")])), vec![("転入元市区町村コード", "E005")]);
    assert_eq!(issues(InputKind::KogakuMonths, "2,1,1001,202508,1,"), vec![("支給決定年月日", "E005")]);
}

#[test]
fn e006_cross_field_rules() {
    // 14 ≥ 12: a period may end on the day it starts.
    let f = kk(&[(13, "20200331"), (14, "03")]);
    assert_eq!(issues(InputKind::Persons, &f), vec![("適用終了年月日", "E006")]);
    assert!(issues(InputKind::Persons, &kk(&[(13, "20200401"), (14, "03")])).is_empty());
    // 14 and 15 both set or both blank: the row names the blank one.
    assert_eq!(issues(InputKind::Persons, &kk(&[(13, "20260509")])), vec![("適用終了事由", "E006")]);
    assert_eq!(issues(InputKind::Persons, &kk(&[(14, "03")])), vec![("適用終了年月日", "E006")]);
    // 出生 ⇒ 12 = 生年月日.
    assert_eq!(issues(InputKind::Persons, &kk(&[(12, "04")])), vec![("適用開始事由", "E006")]);
    assert!(issues(InputKind::Persons, &kk(&[(8, "20200401"), (12, "04")])).is_empty());
    // 生年月日 ≤ 12.
    assert_eq!(issues(InputKind::Persons, &kk(&[(8, "20200402")])), vec![("適用開始年月日", "E006")]);
}

#[test]
fn e008_counterparts() {
    // 02 from self, from outside the registry, from another prefecture.
    for code in ["131016", "131041", "271004"] {
        let f = kk(&[(12, "02"), (15, code)]);
        assert_eq!(issues(InputKind::Persons, &f), vec![("転入元市区町村コード", "E008")], "{code}");
    }
    assert!(issues(InputKind::Persons, &kk(&[(12, "02"), (15, "131024")])).is_empty());
    // 01 from a code of this prefecture.
    assert_eq!(issues(InputKind::Persons, &kk(&[(12, "01"), (15, "131024")])), vec![("転入元市区町村コード", "E008")]);
    assert!(issues(InputKind::Persons, &kk(&[(12, "01"), (15, "271004")])).is_empty());
    assert!(issues(InputKind::Persons, &kk(&[(12, "01")])).is_empty());
    // 転出先 for 02 ends.
    let f = kk(&[(13, "20260509"), (14, "02"), (16, "131016")]);
    assert_eq!(issues(InputKind::Persons, &f), vec![("転出先市区町村コード", "E008")]);
    let f = kk(&[(13, "20260509"), (14, "02"), (16, "131032")]);
    assert!(issues(InputKind::Persons, &f).is_empty());
    // KS 相手先.
    assert_eq!(
        issues(InputKind::Households, "2,1,1001,20260510,08,100001,0,千代田,1001,09,131016"),
        vec![("相手先市区町村コード", "E008")]
    );
    assert_eq!(
        issues(InputKind::Households, "2,1,1002,20191001,03,100003,0,千代田,1002,03,131024"),
        vec![("相手先市区町村コード", "E008")]
    );
    assert!(issues(InputKind::Households, "2,1,1002,20191001,03,100003,0,千代田,1002,03,271004").is_empty());
}

#[test]
fn w001_blank_number_is_accepted_with_a_warning() {
    let c = run(InputKind::Persons, &kk(&[(5, "")]));
    assert!(c.record.is_some());
    assert_eq!(c.issues.len(), 1);
    assert_eq!((c.issues[0].kubun, c.issues[0].code), (Kubun::Warning, "W001"));
}

#[test]
fn a_delete_is_checked_on_its_key_fields_only() {
    let c = run(InputKind::Persons, "2,3,100001,,,,,,,,,20200401,,,,,,");
    assert!(c.issues.is_empty(), "{:?}", c.issues);
    assert!(matches!(c.record, Some(Record::Person(Person { body: None, .. }))));
    assert_eq!(issues(InputKind::Persons, "2,3,100001,,1,,,,,,,2020,,,,,,"), vec![("適用開始年月日", "E001")]);
    assert!(matches!(
        run(InputKind::Persons, "2,3,100001,,,,,,,,,,,,,,,").record,
        Some(Record::Person(Person { insured_kind: InsuredKind::DeemedHouseholder, start: None, .. }))
    ));
    assert!(issues(InputKind::Households, "2,3,1001,20200401,,,,,,,").is_empty());
    assert!(issues(InputKind::KogakuMonths, "2,3,1001,202508,1,").is_empty());
}
