//! One test per rule: each fails if its rule is broken.

use super::*;

const A: NumberKey = [1; 32];
const B: NumberKey = [2; 32];

fn rec(index: usize, resident: &str, number: Option<NumberKey>) -> Incoming {
    Incoming {
        index,
        line: index as u32 + 2,
        resident: resident.into(),
        delete: false,
        insured: true,
        number,
        birth: 19550820,
        sex: "1".into(),
        name: "山田 太郎".into(),
        kana: "ヤマダ タロウ".into(),
    }
}

fn known(id: &str, number: Option<NumberKey>, holders: &[&str]) -> Person {
    Person {
        pref_id: id.into(),
        number,
        birth: 19550820,
        sex: "1".into(),
        name: "山田 太郎".into(),
        kana: "ヤマダ タロウ".into(),
        holders: holders.iter().map(|s| s.to_string()).collect(),
    }
}

fn facts_with(person: Person, residents: &[&str]) -> Facts {
    let mut f = Facts { persons_count: 1, ..Facts::default() };
    if let Some(k) = person.number {
        f.by_number.insert(k, person.pref_id.clone());
    }
    for r in residents {
        f.by_resident.insert(r.to_string(), person.pref_id.clone());
    }
    f.persons.insert(person.pref_id.clone(), person);
    f
}

fn codes(d: &Decision) -> Vec<(&'static str, &'static str)> {
    d.rows.iter().map(|r| (r.code, r.field)).collect()
}

#[test]
fn i1_a_new_number_creates_one_person_and_the_same_number_finds_it() {
    let d = decide(
        "131016",
        &Facts::default(),
        &[rec(0, "100001", Some(A)), rec(1, "100002", Some(B)), rec(2, "100003", Some(A))],
    );
    assert_eq!(d.registered, vec![(1, 0), (2, 1)]);
    assert_eq!(
        d.linked.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
        vec![PersonRef::New(1), PersonRef::New(2), PersonRef::New(1)]
    );
    // A known number links to its person.
    let f = facts_with(known("13p", Some(A), &["131032"]), &[]);
    let d = decide("131016", &f, &[rec(0, "100001", Some(A))]);
    assert!(d.registered.is_empty());
    assert_eq!(d.linked, vec![(PersonRef::Known("13p".into()), 0)]);
}

#[test]
fn i2_one_municipal_id_per_person_and_municipality_and_none_for_a_deemed_householder() {
    let mut deemed = rec(1, "100009", Some(B));
    deemed.insured = false;
    let d = decide("131016", &Facts::default(), &[rec(0, "100001", Some(A)), deemed, rec(2, "100001", Some(A))]);
    assert_eq!(d.assigned, vec![(PersonRef::New(1), 1, 0)]);
    // A person who returns keeps the ID: a known (person, municipality) ID assigns nothing.
    let mut f = facts_with(known("13p", Some(A), &["131016"]), &[]);
    f.muni_ids.insert("13p".into(), "13101000000017".into());
    f.muni_ids_count = 5;
    let d = decide("131016", &f, &[rec(0, "100777", Some(A))]);
    assert!(d.assigned.is_empty());
    // Serials continue the municipality's count.
    let d = decide("131016", &Facts { muni_ids_count: 5, ..Facts::default() }, &[rec(0, "1", Some(B))]);
    assert_eq!(d.assigned[0].1, 6);
}

#[test]
fn i3_another_birth_date_or_sex_is_held_as_c01() {
    let f = facts_with(known("13p", Some(A), &["131016", "131032"]), &[]);
    let mut other = rec(0, "300009", Some(A));
    other.birth = 19550821;
    let d = decide("131024", &f, &[other.clone()]);
    assert!(d.linked.is_empty(), "nothing downstream sees it");
    assert_eq!(d.held, vec![(Conflict::C01, "13p".into(), 0)]);
    assert_eq!(codes(&d), vec![("C01", "個人番号")]);
    other.birth = 19550820;
    other.sex = "2".into();
    assert_eq!(decide("131024", &f, &[other]).held.len(), 1);
}

#[test]
fn i3_the_only_holder_corrects_with_w005() {
    let f = facts_with(known("13p", Some(A), &["131016"]), &["100001"]);
    let mut corrected = rec(0, "100001", Some(A));
    corrected.birth = 19550821;
    let d = decide("131016", &f, &[corrected]);
    assert_eq!(d.corrected, vec![("13p".into(), 0)]);
    assert_eq!(codes(&d), vec![("W005", "生年月日")]);
    assert_eq!(d.linked.len(), 1);
}

#[test]
fn i3_a_different_name_alone_links_with_w002() {
    let f = facts_with(known("13p", Some(A), &["131016"]), &[]);
    let mut married = rec(0, "200001", Some(A));
    married.name = "佐藤 太郎".into();
    married.kana = "サトウ タロウ".into();
    let d = decide("131032", &f, &[married]);
    assert_eq!(d.linked.len(), 1);
    assert_eq!(codes(&d), vec![("W002", "氏名"), ("W002", "氏名カナ")]);
    // カナ is compared after normalising: half-width and spaces make no difference.
    let mut same = rec(0, "200001", Some(A));
    same.kana = "ﾔﾏﾀﾞﾀﾛｳ".into();
    assert!(decide("131032", &f, &[same]).rows.is_empty());
}

#[test]
fn i4_a_linked_resident_number_with_another_number_is_held_as_c02() {
    let f = facts_with(known("13p", Some(A), &["131016"]), &["100001"]);
    let d = decide("131016", &f, &[rec(0, "100001", Some(B))]);
    assert_eq!(d.held, vec![(Conflict::C02, "13p".into(), 0)]);
    assert!(d.linked.is_empty() && d.registered.is_empty());
}

#[test]
fn i5_no_number_links_by_resident_number_to_a_provisional_person_then_the_number_attaches() {
    let d = decide("131016", &Facts::default(), &[rec(0, "100001", None), rec(1, "100001", None)]);
    assert_eq!(d.registered, vec![(1, 0)]);
    assert_eq!(d.linked.len(), 2);
    let f = facts_with(known("13p", None, &["131016"]), &["100001"]);
    let d = decide("131016", &f, &[rec(0, "100001", Some(A))]);
    assert_eq!(d.attached, vec![("13p".into(), 0)]);
    assert_eq!(d.linked, vec![(PersonRef::Known("13p".into()), 0)]);
}

#[test]
fn i5_a_provisional_person_whose_number_is_known_merges_into_that_person() {
    let mut f = facts_with(known("13q", Some(A), &["131032"]), &[]);
    f.persons.insert("13p".into(), known("13p", None, &["131016"]));
    f.by_resident.insert("100001".into(), "13p".into());
    f.muni_ids.insert("13p".into(), "MID-P".into());
    let d = decide("131016", &f, &[rec(0, "100001", Some(A)), rec(1, "100001", None)]);
    assert_eq!(d.merged, vec![("13p".into(), PersonRef::Known("13q".into()), 0)]);
    assert_eq!(d.linked, vec![(PersonRef::Known("13q".into()), 0), (PersonRef::Known("13q".into()), 1)]);
    assert!(d.assigned.is_empty(), "the survivor takes over the provisional person's ID here");
    assert!(d.held.is_empty());
    // Another 生年月日 is no merge but a wrong link (C01).
    let mut other = rec(0, "100001", Some(A));
    other.birth = 19550821;
    let d = decide("131016", &f, &[other]);
    assert!(d.merged.is_empty());
    assert_eq!(d.held, vec![(Conflict::C01, "13q".into(), 0)]);
}

#[test]
fn a_delete_follows_the_link() {
    let f = facts_with(known("13p", Some(A), &["131016"]), &["100001"]);
    let mut del = rec(0, "100001", None);
    del.delete = true;
    let d = decide("131016", &f, &[del.clone()]);
    assert_eq!(d.linked, vec![(PersonRef::Known("13p".into()), 0)]);
    del.resident = "999".into();
    assert!(decide("131016", &f, &[del]).linked.is_empty());
}

/// I2 and I5 on the links: every linked 被保険者 record carries the person's 市区町村被保険者ID
/// as the chunk leaves it. After a merge into a survivor without an ID here, that is the ID the
/// survivor took over (defect: the link carried none, and RS went out with a blank ID).
#[test]
fn i5_links_carry_the_id_the_survivor_takes_over() {
    let mut f = facts_with(known("13q", Some(A), &["131032"]), &[]);
    f.persons.insert("13p".into(), known("13p", None, &["131016"]));
    f.by_resident.insert("100001".into(), "13p".into());
    f.muni_ids.insert("13p".into(), "MID-P".into());
    let d = decide("131016", &f, &[rec(0, "100001", Some(A))]);
    assert_eq!(d.link_ids, [(0, "MID-P".to_string())].into());
    // A survivor with its own ID here keeps it, and the link carries it.
    f.muni_ids.insert("13q".into(), "MID-Q".into());
    let d = decide("131016", &f, &[rec(0, "100001", Some(A))]);
    assert_eq!(d.link_ids, [(0, "MID-Q".to_string())].into());
    // A record without a number, linked to a provisional person merged by a later record of
    // the same chunk, names the survivor.
    let f = facts_with(known("13q", Some(A), &["131032"]), &[]);
    let d = decide("131016", &f, &[rec(0, "100001", None), rec(1, "100001", Some(A))]);
    assert_eq!(d.linked, vec![(PersonRef::Known("13q".into()), 0), (PersonRef::Known("13q".into()), 1)]);
    assert_eq!(d.link_ids.get(&0), d.link_ids.get(&1));
    assert_eq!(d.link_ids.get(&0).map(String::as_str), Some("new:1"));
    // A 擬制世帯主 gets none (I2: only 被保険者).
    let mut deemed = rec(0, "100002", Some(B));
    deemed.insured = false;
    let d = decide("131016", &Facts::default(), &[deemed]);
    assert!(d.link_ids.is_empty());
}

// === Branches `cargo mutants` found untested ===

/// I3 within one chunk: after a W005 correction, a later record of the chunk with the corrected
/// 生年月日 matches the person as corrected (no second W005).
#[test]
fn i3_a_correction_holds_for_the_rest_of_the_chunk() {
    let first = rec(0, "100001", Some(A));
    let mut corrected = rec(1, "100001", Some(A));
    corrected.birth = 19550821;
    let mut again = rec(2, "100001", Some(A));
    again.birth = 19550821;
    let d = decide("131016", &Facts::default(), &[first, corrected, again]);
    assert_eq!(codes(&d), vec![("W005", "生年月日")]);
}

/// I5: a merge moves only the provisional person's 宛名番号 to the survivor; another person's
/// stays theirs for the rest of the chunk.
#[test]
fn i5_a_merge_moves_only_the_provisional_persons_links() {
    let mut f = facts_with(known("13q", Some(A), &["131032"]), &[]);
    f.persons.insert("13p".into(), known("13p", None, &["131016"]));
    f.by_resident.insert("100001".into(), "13p".into());
    let mut r = known("13r", Some(B), &["131016"]);
    r.birth = 19600101;
    f.by_number.insert(B, "13r".into());
    f.persons.insert("13r".into(), r);
    f.by_resident.insert("100002".into(), "13r".into());
    let mut other = rec(1, "100002", None);
    other.birth = 19600101;
    let d = decide("131016", &f, &[rec(0, "100001", Some(A)), other]);
    assert_eq!(d.linked, vec![(PersonRef::Known("13q".into()), 0), (PersonRef::Known("13r".into()), 1)]);
}

/// I2: a 擬制世帯主's link carries no 市区町村被保険者ID, even where the person has one.
#[test]
fn i2_a_deemed_householder_link_carries_no_id() {
    let mut f = facts_with(known("13p", Some(A), &["131016"]), &["100001"]);
    f.muni_ids.insert("13p".into(), "MID-P".into());
    let mut deemed = rec(0, "100001", Some(A));
    deemed.insured = false;
    let d = decide("131016", &f, &[deemed]);
    assert_eq!(d.linked.len(), 1);
    assert!(d.link_ids.is_empty());
}

/// The codes of held records (RE コード and `LinkHeld.code`) read back as they were written.
#[test]
fn c01_c02_codes_round_trip() {
    for c in [Conflict::C01, Conflict::C02] {
        assert_eq!(Conflict::parse(c.code()), Some(c));
    }
    assert_eq!(Conflict::C01.code(), "C01");
    assert_eq!(Conflict::C02.code(), "C02");
    assert_eq!(Conflict::parse("C03"), None);
}

/// I2 and I5 within one chunk: an ID assigned to a provisional person that a later record of
/// the chunk merges into a survivor becomes the survivor's when it had none here, and is
/// dropped (never sent) when the survivor has its own.
#[test]
fn i5_an_id_assigned_in_the_chunk_follows_the_merge() {
    let f = facts_with(known("13q", Some(A), &["131032"]), &[]);
    let d = decide("131016", &f, &[rec(0, "100001", None), rec(1, "100001", Some(A))]);
    assert_eq!(d.assigned, vec![(PersonRef::Known("13q".into()), 1, 0)]);
    assert_eq!(d.link_ids.get(&0).map(String::as_str), Some("new:1"));
    let mut own = f.clone();
    own.muni_ids.insert("13q".into(), "MID-Q".into());
    let d = decide("131016", &own, &[rec(0, "100001", None), rec(1, "100001", Some(A))]);
    assert!(d.assigned.is_empty(), "{:?}", d.assigned);
    assert_eq!(d.link_ids.get(&0).map(String::as_str), Some("MID-Q"));
    assert_eq!(d.link_ids.get(&1).map(String::as_str), Some("MID-Q"));
}
