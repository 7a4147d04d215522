//! One test per rule (rules.md R2–R5), each failing if its rule is broken.

use std::collections::BTreeMap;

use kokuho_ids::Date;
use kokuho_ids::codes::RelayProcessing;
use proptest::prelude::*;

use super::*;

fn d(s: &str) -> Date {
    Date::parse(s).unwrap()
}

fn states(entries: &[(&str, &str, &str)]) -> CardStates {
    entries.iter().map(|(date, s, n)| (d(date), (s.to_string(), n.to_string()))).collect()
}

fn period(start: &str, end: Option<&str>) -> Period {
    Period { municipality: "131032".into(), resident: "200001".into(), start: d(start), end: end.map(d) }
}

fn person() -> Person {
    Person {
        id: "13p1".into(),
        has_number: true,
        held: false,
        name: "山田 太郎".into(),
        kana: "ヤマダ タロウ".into(),
        birth: d("19550820"),
        sex: "1".into(),
    }
}

/// R2: the card is the household state in force on the period's last day; for an open period
/// the latest state.
#[test]
fn r2_the_card_in_force_on_the_last_day_or_the_latest() {
    let s = states(&[("20200401", "港", "2001"), ("20260601", "港", "2002")]);
    assert_eq!(card_of(&s, &period("20200401", Some("20260531"))), Some(("港".into(), "2001".into())));
    assert_eq!(card_of(&s, &period("20200401", Some("20260601"))), Some(("港".into(), "2002".into())));
    assert_eq!(card_of(&s, &period("20200401", None)), Some(("港".into(), "2002".into())));
    assert_eq!(card_of(&s, &period("20100401", Some("20150331"))), None, "no state in force yet");
}

/// R2: insurer-level dates (喪失 = 終了 + 1), the prefecture-level 取得, the person, no number.
#[test]
fn r2_a_record_with_both_levels_of_dates() {
    let s = states(&[("20260510", "港", "2001")]);
    let r = build(
        "130039",
        &period("20260510", Some("20260815")),
        &person(),
        &s,
        1,
        Pref { acquired: Some(d("20200401")), lost: None },
    )
    .unwrap();
    assert_eq!(r.card, Card { insurer: "130039".into(), symbol: "港".into(), number: "2001".into() });
    assert_eq!((r.acquired, r.lost, r.pref_acquired), (d("20260510"), Some(d("20260816")), Some(d("20200401"))));
    assert_eq!((r.branch, r.person.as_str()), (1, "13p1"));
    let open = build("130039", &period("20260510", None), &person(), &s, 1, Pref::default()).unwrap();
    assert_eq!(open.lost, None);
}

/// R5: a record without 個人番号 waits (R01), one held in a conflict waits (R02).
#[test]
fn r5_records_that_cannot_be_built_wait() {
    let s = states(&[("20260510", "港", "2001")]);
    let p = period("20260510", None);
    let no_number = Person { has_number: false, ..person() };
    assert_eq!(build("130039", &p, &no_number, &s, 1, Pref::default()), Err(Waiting::NoNumber));
    assert_eq!(Waiting::NoNumber.code(), Some("R01"));
    let held = Person { held: true, ..person() };
    assert_eq!(build("130039", &p, &held, &s, 1, Pref::default()), Err(Waiting::Held));
    assert_eq!(Waiting::Held.code(), Some("R02"));
    assert_eq!(build("130039", &p, &person(), &CardStates::new(), 1, Pref::default()), Err(Waiting::NoCard));
}

/// R3: the smallest 枝番 never used, kept for good (also after leaving and returning), never
/// reused; in the order asked (KK line order); R04 after 99.
#[test]
fn r3_branches_are_given_once_and_never_reused() {
    let mut b = Branches::default();
    assert_eq!(b.branch_of("X"), Ok(1));
    assert_eq!(b.branch_of("Y"), Ok(2));
    assert_eq!(b.branch_of("X"), Ok(1), "kept");
    // Y leaves and returns: still 2; a newcomer never gets a number someone had.
    assert_eq!(b.branch_of("Z"), Ok(3));
    assert_eq!(b.branch_of("Y"), Ok(2));
    for i in 4..=99 {
        assert_eq!(b.branch_of(&format!("p{i}")), Ok(i as u8));
    }
    assert_eq!(b.branch_of("late"), Err(Exhausted), "R04");
    assert_eq!(b.branch_of("X"), Ok(1), "those who have one keep it");
}

proptest! {
    /// R3: whatever the order of requests, no two persons share a 枝番 and a person's 枝番
    /// never changes.
    #[test]
    fn r3_no_two_persons_share_a_branch(asks in proptest::collection::vec(0u8..30, 0..200)) {
        let mut b = Branches::default();
        let mut seen: BTreeMap<u8, u8> = BTreeMap::new();
        for p in asks {
            let branch = b.branch_of(&p.to_string()).unwrap();
            prop_assert_eq!(*seen.entry(branch).or_insert(p), p);
        }
    }
}

fn record(symbol: &str, branch: u8, lost: Option<&str>) -> Subscriber {
    Subscriber {
        card: Card { insurer: "130039".into(), symbol: symbol.into(), number: "2001".into() },
        branch,
        person: "13p1".into(),
        name: "山田 太郎".into(),
        kana: "ヤマダ タロウ".into(),
        birth: d("19550820"),
        sex: "1".into(),
        acquired: d("20260510"),
        lost: lost.map(d),
        pref_acquired: Some(d("20200401")),
        pref_lost: None,
    }
}

fn kinds(ops: &[Operation]) -> Vec<(RelayProcessing, String)> {
    ops.iter().map(|o| (o.processing, o.record.card.symbol.clone())).collect()
}

/// R4: 1 新規, 2 変更, 3 削除; a new 記号番号 is a 削除 under the old one and a 新規 under the
/// new one; nothing when nothing changed.
#[test]
fn r4_what_a_change_sends() {
    let a = record("港", 1, None);
    assert_eq!(kinds(&changes(None, Some(&a))), [(RelayProcessing::New, "港".into())]);
    assert!(changes(Some(&a), Some(&a)).is_empty());
    let ended = record("港", 1, Some("20260816"));
    assert_eq!(kinds(&changes(Some(&a), Some(&ended))), [(RelayProcessing::Change, "港".into())]);
    let moved = record("芝", 1, None);
    assert_eq!(
        kinds(&changes(Some(&a), Some(&moved))),
        [(RelayProcessing::Delete, "港".into()), (RelayProcessing::New, "芝".into())]
    );
    assert_eq!(kinds(&changes(Some(&a), None)), [(RelayProcessing::Delete, "港".into())]);
    assert!(changes(None, None).is_empty());
}

/// R4: one key per operation of a record version; the same operation sent again has the same.
#[test]
fn r4_idempotency_keys() {
    let p = period("20260510", None);
    let k = idempotency_key(&p, 1, RelayProcessing::New);
    assert_eq!(k, idempotency_key(&p, 1, RelayProcessing::New));
    assert_ne!(k, idempotency_key(&p, 2, RelayProcessing::New));
    assert_ne!(idempotency_key(&p, 2, RelayProcessing::Delete), idempotency_key(&p, 2, RelayProcessing::New));
    assert_ne!(k, idempotency_key(&period("20260511", None), 1, RelayProcessing::New));
}

/// R5: relay's RE texts are the ones docs/codes.md documents, and every wait has one.
#[test]
fn r5_re_texts_are_documented() {
    let doc = include_str!("../../../../docs/codes.md");
    for code in ["R01", "R02", "R03", "R04", "R05"] {
        let (c, field, message) = re_text(code).expect("a text");
        assert_eq!(c, code);
        let row = doc.lines().find(|l| l.starts_with(&format!("| {code} |"))).expect("documented");
        assert!(row.contains(&format!("| {field} | {message} |")), "{code}: {row}");
    }
    assert_eq!(re_text("R06"), None);
    assert_eq!(wait_reason("R06"), "");
    assert_eq!(wait_reason("R02"), re_text("R02").expect("a text").2);
    for w in [Waiting::NoNumber, Waiting::Held] {
        assert!(re_text(w.code().expect("reported")).is_some());
    }
}
