//! One test per rule (rules.md C1–C10, T1, T2), each failing if its rule is broken.

use kokuho_ids::codes::{AlertState, EndReason, StartReason};
use kokuho_rows::Row;
use proptest::prelude::*;

use super::*;

fn d(s: &str) -> Date {
    Date::parse(s).unwrap()
}

fn period(m: &str, r: &str, start: &str, reason: &str, end: Option<(&str, &str)>) -> Period {
    Period {
        municipality: m.into(),
        resident: r.into(),
        start: d(start),
        start_reason: StartReason::parse(reason).unwrap(),
        end: end.map(|(e, _)| d(e)),
        end_reason: end.map(|(_, r)| EndReason::parse(r).unwrap()),
        moved_in_from: None,
        moved_out_to: None,
    }
}

fn moved_out(mut p: Period, to: &str) -> Period {
    p.moved_out_to = Some(to.into());
    p
}

fn moved_in(mut p: Period, from: &str) -> Period {
    p.moved_in_from = Some(from.into());
    p
}

fn det(ev: &Evaluation, p: &Period) -> Option<Determination> {
    ev.periods.get(&p.key()).cloned().flatten()
}

fn codes(ev: &Evaluation) -> Vec<(&'static str, String)> {
    ev.anomalies.iter().map(|a| (a.code.code(), a.to.clone())).collect()
}

/// 判定区分 as a number, for short assertions.
fn j(d: &Determination) -> u8 {
    d.judgement.code().parse().unwrap()
}

/// The worked example of rules.md: X moves from 131016 to 131032.
fn worked_example(s: &str) -> Vec<Period> {
    vec![
        moved_out(period("131016", "100001", "20200401", "03", Some(("20260509", "02"))), "131032"),
        moved_in(period("131032", "200001", s, "02", None), "131016"),
    ]
}

#[test]
fn c1_c9_the_worked_example() {
    let periods = worked_example("20260510");
    let ev = evaluate(&periods, d("20260601"));
    let a = det(&ev, &periods[0]).unwrap();
    let b = det(&ev, &periods[1]).unwrap();
    assert_eq!((a.acquired_on, a.acquired_reason.code(), j(&a), a.lost_on), (d("20200401"), "03", 1, None));
    assert_eq!((b.acquired_on, b.acquired_reason.code(), j(&b), b.lost_on), (d("20200401"), "03", 2, None));
    assert!(ev.anomalies.is_empty());
    // With 2026-05-20: A01 GAP to both, the same RS rows.
    let gap = worked_example("20260520");
    let ev2 = evaluate(&gap, d("20260601"));
    assert_eq!(det(&ev2, &gap[0]), Some(a));
    assert_eq!(det(&ev2, &gap[1]).map(|x| (x.acquired_on, j(&x))), Some((d("20200401"), 2)));
    assert_eq!(codes(&ev2), vec![("A01", "131016".into()), ("A01", "131032".into())]);
    let to_a = ev2.anomalies.iter().find(|x| x.to == "131016").unwrap();
    assert_eq!(
        (to_a.counterpart.as_str(), to_a.counterpart_start, to_a.counterpart_end),
        ("131032", Some(d("20260520")), None)
    );
}

#[test]
fn c1_a_span_ends_at_an_end_that_is_not_a_move() {
    let w = period("131024", "300002", "20180401", "03", Some(("20260415", "03")));
    let ev = evaluate(std::slice::from_ref(&w), d("20260601"));
    let x = det(&ev, &w).unwrap();
    assert_eq!((j(&x), x.lost_on, x.lost_reason.map(EndReason::code)), (3, Some(d("20260416")), Some("03")));
    // An 02 end without a successor does not end the span.
    let v = moved_out(period("131016", "100004", "20150401", "03", Some(("20260410", "02"))), "131032");
    let ev = evaluate(std::slice::from_ref(&v), d("20260601"));
    assert_eq!(det(&ev, &v).map(|x| (j(&x), x.lost_on)), Some((1, None)));
}

#[test]
fn c1_an_unpaired_move_in_has_no_row_until_its_window_passes_then_starts_with_99() {
    let p = moved_in(period("131032", "200001", "20260510", "02", None), "131016");
    assert_eq!(evaluate(std::slice::from_ref(&p), d("20260601")).periods.get(&p.key()), Some(&None));
    let late = evaluate(std::slice::from_ref(&p), d("20260610"));
    let x = det(&late, &p).unwrap();
    assert_eq!((x.acquired_reason.code(), j(&x)), ("99", 1));
}

#[test]
fn c2_pairs_the_nearest_end_one_to_one() {
    let periods = vec![
        moved_out(period("131016", "1", "20200101", "03", Some(("20240331", "02"))), "131032"),
        moved_out(period("131016", "1", "20240501", "99", Some(("20250331", "02"))), "131032"),
        moved_in(period("131032", "2", "20250401", "02", None), "131016"),
    ];
    assert_eq!(pair(&periods), BTreeMap::from([(1, 2)]));
    // Another destination does not pair.
    let wrong = vec![
        moved_out(period("131016", "1", "20200101", "03", Some(("20250331", "02"))), "131024"),
        moved_in(period("131032", "2", "20250401", "02", None), "131016"),
    ];
    assert!(pair(&wrong).is_empty());
}

#[test]
fn c4_overlap() {
    let periods = worked_example("20260505");
    let ev = evaluate(&periods, d("20260601"));
    assert_eq!(codes(&ev), vec![("A02", "131016".into()), ("A02", "131032".into())]);
}

#[test]
fn c5_missing_halves_after_the_window_and_t1_only_at_day_close() {
    let v = moved_out(period("131016", "100004", "20150401", "03", Some(("20260410", "02"))), "131032");
    assert!(evaluate(std::slice::from_ref(&v), d("20260501")).anomalies.is_empty(), "within the window");
    let ev = evaluate(std::slice::from_ref(&v), d("20260601"));
    let a03: Vec<_> = ev.anomalies.iter().collect();
    assert_eq!((a03[0].code.code(), a03[0].to.as_str(), a03[0].counterpart.as_str()), ("A03", "131016", "131032"));
    // T1: raised at a day close only; closed at any step once the cause is gone.
    let none = BTreeSet::new();
    assert!(open_after(Step::Submission, &none, &ev.anomalies).is_empty());
    assert_eq!(open_after(Step::DayClose, &none, &ev.anomalies), ev.anomalies);
    assert_eq!(open_after(Step::Submission, &ev.anomalies, &ev.anomalies), ev.anomalies);
    assert!(open_after(Step::Submission, &ev.anomalies, &BTreeSet::new()).is_empty());
    // A04 to B, and A05 to A while the period at A is open.
    let open_at_a = period("131016", "100001", "20200401", "03", None);
    let arrived = moved_in(period("131032", "200001", "20260410", "02", None), "131016");
    let ev = evaluate(&[open_at_a, arrived], d("20260601"));
    assert_eq!(codes(&ev), vec![("A04", "131032".into()), ("A05", "131016".into())]);
}

#[test]
fn c6_double_enrolment_but_not_the_c5_case() {
    let a = period("131016", "1", "20200401", "03", None);
    let b = period("131032", "2", "20250401", "01", None);
    let ev = evaluate(&[a.clone(), b], d("20250402"));
    assert_eq!(codes(&ev), vec![("A06", "131016".into()), ("A06", "131032".into())]);
    let c5 = moved_in(period("131032", "2", "20250401", "02", None), "131016");
    let ev = evaluate(&[a, c5], d("20250402"));
    assert!(ev.anomalies.is_empty());
}

#[test]
fn c7_a_period_after_death() {
    let dead = period("131016", "1", "20200401", "03", Some(("20250101", "04")));
    let after = period("131032", "2", "20250401", "01", None);
    let ev = evaluate(&[dead, after], d("20250402"));
    assert_eq!(codes(&ev), vec![("A07", "131032".into())]);
}

#[test]
fn c8_late_elderly_not_at_the_75th_birthday() {
    let on_time = period("131016", "1", "20200401", "03", Some(("20300819", "06")));
    let early = period("131016", "1", "20200401", "03", Some(("20290101", "06")));
    let birth = d("19550820");
    assert!(!early_late_elderly(&on_time, birth));
    assert!(early_late_elderly(&early, birth));
    // Another end reason is no 後期高齢者医療移行.
    let other = period("131016", "1", "20200401", "03", Some(("20290101", "03")));
    assert!(!early_late_elderly(&other, birth));
    // Born on Feb 29: the birthday is Mar 1 in a common year.
    let leap = period("131016", "1", "20200401", "03", Some(("20790228", "06")));
    assert!(!early_late_elderly(&leap, d("20040229")));
}

fn source(receipt: &str, line: u32) -> Source {
    Source { receipt: receipt.into(), line }
}

fn register(p: &Period, muni_id: &str, src: Source) -> Change {
    Change::Register { period: p.clone(), muni_id: muni_id.into(), birth: None, source: src, household: "h".into() }
}

/// C8 as sent: the W004 row names the receipt and line of the record that reported the end
/// (defect: it was sent with a blank 受付番号 and 行番号), once per such record.
#[test]
fn c8_w004_names_the_receipt_and_line_of_the_record() {
    let mut person = PersonState { birth: Some(d("19550820")), ..Default::default() };
    let open = period("131016", "100001", "20200401", "03", None);
    let mut gone = Vec::new();
    assert!(report(&mut person, register(&open, "M1", source("131016-00000001", 2)), &mut gone).is_empty());
    let early = period("131016", "100001", "20200401", "03", Some(("20290101", "06")));
    let sent = report(&mut person, register(&early, "M1", source("131016-00000003", 7)), &mut gone);
    let [Sent { to, row: Row::Re(w) }] = &sent[..] else { panic!("one W004 row: {sent:?}") };
    assert_eq!(to, "131016");
    assert_eq!(
        (w.code, w.receipt.as_str(), w.line, w.resident.as_str()),
        ("W004", "131016-00000003", Some(7), "100001")
    );
    assert_eq!(w.file_kind, Some(kokuho_ids::codes::InputKind::Persons));
    // The evaluation sends the RS row only; no second W004.
    let rows = step(&mut person, &gone, Step::Submission, d("20300101"));
    assert!(rows.iter().all(|s| matches!(s.row, Row::Rs(_))), "{rows:?}");
}

/// The RS rows of a step, as (to, 宛名番号, 市区町村被保険者ID, 判定区分, 訂正).
fn rs_rows(sent: &[Sent]) -> Vec<(String, String, String, &'static str, &'static str)> {
    sent.iter()
        .filter_map(|s| match &s.row {
            Row::Rs(r) => {
                Some((s.to.clone(), r.resident.clone(), r.muni_id.clone(), r.judgement.code(), r.correction.code()))
            }
            _ => None,
        })
        .collect()
}

/// C9: a period's RS row is sent when first known, again with 訂正 1 when it changes, never
/// when nothing changed, and withdrawn with 判定区分 9 when the period is deleted.
#[test]
fn c9_rows_are_sent_when_new_or_changed_and_withdrawn_on_delete() {
    let today = d("20260601");
    let mut person = PersonState::default();
    let mut gone = Vec::new();
    let p = period("131024", "300002", "20180401", "03", None);
    report(&mut person, register(&p, "M3", source("r1", 2)), &mut gone);
    let sent = step(&mut person, &gone, Step::Submission, today);
    assert_eq!(rs_rows(&sent), vec![("131024".into(), "300002".into(), "M3".into(), "1", "0")]);
    assert!(step(&mut person, &[], Step::DayClose, today).is_empty(), "nothing changed");
    let ended = period("131024", "300002", "20180401", "03", Some(("20260415", "03")));
    report(&mut person, register(&ended, "M3", source("r2", 3)), &mut gone);
    let sent = step(&mut person, &gone, Step::Submission, today);
    assert_eq!(rs_rows(&sent), vec![("131024".into(), "300002".into(), "M3".into(), "3", "1")]);
    let Row::Rs(rs) = &sent[0].row else { unreachable!() };
    assert_eq!((rs.lost_on, rs.lost_reason), (Some(d("20260416")), Some(EndReason::JoinedEmployeeInsurance)));
    report(&mut person, Change::Delete { key: ended.key() }, &mut gone);
    assert!(person.periods.is_empty());
    let sent = step(&mut person, &gone, Step::Submission, today);
    assert_eq!(rs_rows(&sent), vec![("131024".into(), "300002".into(), "M3".into(), "9", "1")]);
}

/// I2 in continuity: the 市区町村被保険者ID a record carries is the person's in that municipality,
/// so every period there carries it; a blank one (a 擬制世帯主's) changes nothing.
#[test]
fn i2_every_period_of_a_municipality_carries_the_persons_id() {
    let mut person = PersonState::default();
    let mut gone = Vec::new();
    let first = period("131016", "100001", "20100401", "03", Some(("20150331", "03")));
    let second = period("131016", "100001", "20200401", "03", None);
    report(&mut person, register(&first, "", source("r1", 2)), &mut gone);
    report(&mut person, register(&second, "M1", source("r1", 3)), &mut gone);
    assert!(person.periods.iter().all(|t| t.muni_id == "M1"));
    report(&mut person, register(&second, "", source("r2", 2)), &mut gone);
    assert!(person.periods.iter().all(|t| t.muni_id == "M1"));
}

/// I5 in continuity: a merge moves the provisional person's periods to the survivor and gives
/// them the survivor's 市区町村被保険者ID; the next step re-sends their rows with 訂正 = 1 (defect:
/// RS kept the provisional or a blank ID).
#[test]
fn i5_a_merge_gives_the_periods_the_survivors_ids_and_resends_them() {
    let today = d("20260601");
    let mut provisional = PersonState { pref_id: "P".into(), ..Default::default() };
    let mut gone = Vec::new();
    let p = period("131016", "100009", "20260401", "04", None);
    report(&mut provisional, register(&p, "MP", source("r1", 2)), &mut gone);
    step(&mut provisional, &[], Step::Submission, today);
    let mut survivor = PersonState { pref_id: "S".into(), ..Default::default() };
    let q = period("131024", "300009", "20200401", "03", Some(("20260331", "01")));
    report(&mut survivor, register(&q, "MS24", source("r0", 2)), &mut gone);
    step(&mut survivor, &[], Step::Submission, today);
    // The survivor has its own ID at 131016: the provisional person's period takes it.
    let ids = [("131016".to_string(), "MS16".to_string())].into();
    merge(&mut survivor, provisional.clone(), &ids);
    assert_eq!(survivor.periods.len(), 2);
    let sent = step(&mut survivor, &[], Step::Submission, today);
    assert_eq!(rs_rows(&sent), vec![("131016".into(), "100009".into(), "MS16".into(), "1", "1")]);
    // Where the survivor adopts the provisional ID, nothing is sent again.
    let mut survivor2 = PersonState { pref_id: "S2".into(), ..Default::default() };
    merge(&mut survivor2, provisional, &[("131016".to_string(), "MP".to_string())].into());
    assert!(step(&mut survivor2, &[], Step::Submission, today).is_empty());
}

/// The anomalies a step opened (`true`) or closed, as (code, to).
fn anomaly_rows(sent: &[Sent], opened: bool) -> Vec<(&'static str, String)> {
    let state = if opened { AlertState::Raised } else { AlertState::Closed };
    sent.iter()
        .filter_map(|s| match &s.row {
            Row::Re(r) if r.kubun == kokuho_ids::codes::Kubun::Anomaly && r.state == state => {
                Some((r.code, s.to.clone()))
            }
            _ => None,
        })
        .collect()
}

fn tracked(period: Period) -> Tracked {
    Tracked { period, muni_id: String::new(), sent: None, source: Source::default(), household: String::new() }
}

#[test]
fn c10_an_anomaly_closes_when_corrected_data_removes_its_cause() {
    let today = d("20260601");
    let mut person =
        PersonState { periods: worked_example("20260520").into_iter().map(tracked).collect(), ..Default::default() };
    let sent = step(&mut person, &[], Step::Submission, today);
    let gap = vec![("A01", "131016".to_string()), ("A01", "131032".to_string())];
    assert_eq!(anomaly_rows(&sent, true), gap);
    assert_eq!(person.open.len(), 2);
    // 131032 corrects the start to 2026-05-10: the gap is gone, and both rows close (状態 2).
    person.periods[1].period.start = d("20260510");
    let sent = step(&mut person, &[], Step::Submission, today);
    assert_eq!(anomaly_rows(&sent, false), gap);
    assert!(anomaly_rows(&sent, true).is_empty());
    assert!(person.open.is_empty());
    // Closed once: nothing more is sent for them.
    let again = step(&mut person, &[], Step::DayClose, today);
    assert!(again.iter().all(|s| !matches!(s.row, Row::Re(_))), "{again:?}");
}

fn arb_period() -> impl Strategy<Value = Period> {
    let munis = prop_oneof![Just("131016"), Just("131024"), Just("131032")];
    (
        munis.clone(),
        0i64..400,
        0i64..200,
        prop::option::of(prop_oneof![
            Just(EndReason::MoveOutWithinPrefecture),
            Just(EndReason::JoinedEmployeeInsurance),
            Just(EndReason::Death)
        ]),
        munis,
        any::<bool>(),
    )
        .prop_map(|(m, start, len, end_reason, other, moves_in)| {
            let base = Date::from_ymd(2025, 1, 1).unwrap();
            let start = base.add_days(start).unwrap();
            Period {
                municipality: m.into(),
                resident: format!("r{m}"),
                start,
                start_reason: if moves_in {
                    StartReason::MoveInWithinPrefecture
                } else {
                    StartReason::LeftEmployeeInsurance
                },
                end: end_reason.map(|_| start.add_days(len).unwrap()),
                end_reason,
                moved_in_from: moves_in.then(|| other.to_string()),
                moved_out_to: (end_reason == Some(EndReason::MoveOutWithinPrefecture)).then(|| other.to_string()),
            }
        })
}

proptest! {
    /// T2: the result is a function of the facts, not of the order they are listed in.
    #[test]
    fn t2_any_order_gives_the_same_result(mut periods in proptest::collection::vec(arb_period(), 1..6), seed in any::<u64>()) {
        // Keys are unique per (municipality, 宛名番号, start).
        let mut seen = BTreeSet::new();
        periods.retain(|p| seen.insert(p.key()));
        let date = Date::from_ymd(2026, 1, 1).unwrap();
        let first = evaluate(&periods, date);
        let mut shuffled = periods.clone();
        let n = shuffled.len();
        for i in 0..n {
            let j = ((seed >> (i % 60)) as usize + i * 7) % n;
            shuffled.swap(i, j);
        }
        prop_assert_eq!(evaluate(&shuffled, date), first);
    }
}

// === T2 over whole scenarios ===

/// One municipality's submission: upserts of one person's periods.
#[derive(Debug, Clone)]
struct Submission {
    municipality: &'static str,
    periods: Vec<Period>,
}

/// A person moving through up to three municipalities; each reports its period open first
/// and, in a later submission, with its end. Phases are separated by day closes.
fn arb_scenario() -> impl Strategy<Value = Vec<Vec<Submission>>> {
    let munis = ["131016", "131024", "131032"];
    (
        1usize..=3,
        proptest::collection::vec(-3i64..5, 3),
        proptest::collection::vec(20i64..200, 3),
        proptest::collection::vec(0usize..3, 6),
        any::<bool>(),
    )
        .prop_map(move |(n, gaps, lengths, phases, ends)| {
            let base = Date::from_ymd(2025, 4, 1).unwrap();
            let mut chain: Vec<Period> = Vec::new();
            let mut start = base;
            for i in 0..n {
                let m = munis[i];
                let last = i + 1 == n;
                let end = start.add_days(lengths[i]).unwrap();
                chain.push(Period {
                    municipality: m.into(),
                    resident: format!("{}{}", &m[3..5], i),
                    start,
                    start_reason: if i == 0 {
                        StartReason::LeftEmployeeInsurance
                    } else {
                        StartReason::MoveInWithinPrefecture
                    },
                    end: if last && !ends { None } else { Some(end) },
                    end_reason: if last {
                        ends.then_some(EndReason::JoinedEmployeeInsurance)
                    } else {
                        Some(EndReason::MoveOutWithinPrefecture)
                    },
                    moved_in_from: (i > 0).then(|| munis[i - 1].to_string()),
                    moved_out_to: (!last).then(|| munis[i + 1].to_string()),
                });
                start = end.add_days(1 + gaps[i]).unwrap();
            }
            // Phase of each report: open first, the end later or in the same phase.
            let mut by_phase: Vec<Vec<Submission>> = vec![Vec::new(); 3];
            for (i, p) in chain.iter().enumerate() {
                let open_phase = phases[2 * i].min(2);
                let end_phase = open_phase.max(phases[2 * i + 1]).min(2);
                let mut open = p.clone();
                open.end = None;
                open.end_reason = None;
                open.moved_out_to = None;
                by_phase[open_phase].push(Submission { municipality: munis[i], periods: vec![open] });
                if p.end.is_some() {
                    by_phase[end_phase].push(Submission { municipality: munis[i], periods: vec![p.clone()] });
                }
            }
            by_phase
        })
}

/// The latest RS fields 2–10 per (municipality, 宛名番号, 適用開始年月日).
type Latest = BTreeMap<(String, String, String), Vec<String>>;

/// The submissions of a phase in an arrival order given by `seed`: the municipalities' queues
/// interleaved, each queue's own order kept.
fn interleave(phase: &[Submission], mut seed: u64) -> Vec<&Submission> {
    let mut queues: BTreeMap<&str, std::collections::VecDeque<&Submission>> = BTreeMap::new();
    for s in phase {
        queues.entry(s.municipality).or_default().push_back(s);
    }
    let mut out = Vec::new();
    while queues.values().any(|q| !q.is_empty()) {
        let ready: Vec<&str> = queues.iter().filter(|(_, q)| !q.is_empty()).map(|(m, _)| *m).collect();
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let m = ready[(seed >> 33) as usize % ready.len()];
        out.extend(queues.get_mut(m).and_then(|q| q.pop_front()));
    }
    out
}

/// Plays the phases with the submissions of each phase in `order` (a permutation that keeps
/// each municipality's own order), a day close after each phase; returns the latest RS fields
/// 2–10 per period and the open anomalies.
fn play(phases: &[Vec<Submission>], shuffle: u64) -> (Latest, BTreeSet<Anomaly>) {
    let mut person = PersonState::default();
    let mut latest = BTreeMap::new();
    let closes = ["20251001", "20260401", "20270401"];
    let mut today = d("20250401");
    for (k, phase) in phases.iter().enumerate() {
        for s in interleave(phase, shuffle.wrapping_add(k as u64)) {
            let mut gone = Vec::new();
            for p in &s.periods {
                let change = register(p, &format!("MID{}", p.municipality), source("r", 1));
                report(&mut person, change, &mut gone);
            }
            record(&mut latest, step(&mut person, &gone, Step::Submission, today));
        }
        today = d(closes[k]);
        record(&mut latest, step(&mut person, &[], Step::DayClose, today));
    }
    (latest, person.open)
}

fn record(latest: &mut Latest, sent: Vec<Sent>) {
    for s in sent {
        if let Row::Rs(_) = &s.row {
            let fields = s.row.fields();
            latest.insert((s.to, fields[0].clone(), fields[6].clone()), fields[..9].to_vec());
        }
    }
}

proptest! {
    /// T2: every arrival order of the municipalities' submissions (each municipality's own order
    /// kept, day closes in place) ends in the same latest RS rows and open anomalies.
    #[test]
    fn t2_arrival_order_does_not_change_the_result(phases in arb_scenario(), a in any::<u64>(), b in any::<u64>()) {
        prop_assert_eq!(play(&phases, a), play(&phases, b));
    }
}

/// C2 as published: the person's pairs, 転出 with 転入, for kogaku's move groups (H1).
#[test]
fn c2_pairs_are_published_with_the_person() {
    let mut person =
        PersonState { periods: worked_example("20260510").into_iter().map(tracked).collect(), ..Default::default() };
    assert_eq!(person.pairs(), vec![(0, 1)]);
    // Without the 転入 there is no pair.
    person.periods.pop();
    assert!(person.pairs().is_empty());
}

// === Boundaries and branches `cargo mutants` found untested ===

/// C2: the 転出 whose end is nearest to s − 1 wins (not to s + 1), and pairing is one to one: a
/// 転出 taken by an earlier 転入 is not taken again.
#[test]
fn c2_nearest_to_the_day_before_and_one_to_one() {
    let s = "20250401";
    let before = moved_out(period("131016", "1", "20200101", "03", Some(("20250331", "02"))), "131032");
    let after = moved_out(period("131016", "1", "20250402", "99", Some(("20250402", "02"))), "131032");
    let arrival = moved_in(period("131032", "2", s, "02", None), "131016");
    assert_eq!(pair(&[after.clone(), before.clone(), arrival.clone()]), [(1, 2)].into());
    let second = moved_in(period("131032", "3", "20250601", "02", None), "131016");
    assert_eq!(pair(&[before, arrival, second]), [(0, 1)].into());
}

/// T1: who must be looked at again at a day close.
#[test]
fn t1_needs_day_close_when_a_half_is_missing_or_periods_overlap() {
    let alone = period("131016", "1", "20200401", "03", None);
    assert!(!needs_day_close(std::slice::from_ref(&alone)), "one period, nothing missing");
    assert!(!needs_day_close(&worked_example("20260510")), "a complete move");
    assert!(!needs_day_close(&worked_example("20260505")), "an overlapping pair is no double enrolment");
    let out = worked_example("20260510").remove(0);
    assert!(needs_day_close(std::slice::from_ref(&out)), "the 転入 is missing");
    let arrival = worked_example("20260510").remove(1);
    assert!(needs_day_close(std::slice::from_ref(&arrival)), "the 転出 is missing");
    let later = period("131032", "2", "20250401", "01", None);
    assert!(needs_day_close(&[alone.clone(), later]), "two open periods overlap");
    let earlier = period("131032", "2", "20100401", "01", Some(("20150331", "03")));
    assert!(!needs_day_close(&[alone, earlier]), "periods apart");
}

/// T1 as kept: a person is watched while a day close may change them, or while a window
/// anomaly is open, and not otherwise.
#[test]
fn t1_watch() {
    let complete: Vec<Tracked> = worked_example("20260510").into_iter().map(tracked).collect();
    assert!(!watch(&complete, &BTreeSet::new()));
    let open: BTreeSet<Anomaly> = evaluate(
        std::slice::from_ref(&moved_out(period("131016", "1", "20150401", "03", Some(("20260410", "02"))), "131032")),
        d("20260601"),
    )
    .anomalies;
    assert!(open.iter().any(Anomaly::raised_at_day_close_only));
    assert!(watch(&complete, &open), "an open A03");
    let gap = evaluate(&worked_example("20260520"), d("20260601")).anomalies;
    assert!(!watch(&complete, &gap), "A01 needs no day close");
    assert!(watch(&complete[..1], &BTreeSet::new()), "a half missing");
}

/// C5: the window is 30 days: on e + 30 nothing yet, on e + 31 A03.
#[test]
fn c5_the_window_boundary() {
    let v = moved_out(period("131016", "1", "20150401", "03", Some(("20260410", "02"))), "131032");
    assert!(evaluate(std::slice::from_ref(&v), d("20260510")).anomalies.is_empty(), "e + 30");
    assert_eq!(codes(&evaluate(std::slice::from_ref(&v), d("20260511"))), vec![("A03", "131016".into())]);
}

/// C5: A05 goes only to the person's open period at A that started before the 転入.
#[test]
fn c5_a05_only_to_an_open_earlier_period_at_a() {
    let arrival = moved_in(period("131032", "2", "20260410", "02", None), "131016");
    let today = d("20260601");
    let closed_at_a = period("131016", "1", "20200401", "03", Some(("20260409", "03")));
    let at_other = period("131024", "3", "20200401", "03", None);
    let same_day_at_a = period("131016", "1", "20260410", "03", None);
    for other in [closed_at_a, at_other, same_day_at_a] {
        let ev = evaluate(&[other.clone(), arrival.clone()], today);
        assert!(codes(&ev).iter().all(|(c, _)| *c != "A05"), "{other:?}: {:?}", codes(&ev));
    }
}

/// C6: double enrolment is raised for an open period at A overlapping a 転入 from A that is
/// paired with another period, and for a closed period at A overlapping an unpaired 転入;
/// only the C5 case (open at A, unpaired 転入 from A) is left to C5.
#[test]
fn c6_only_the_c5_case_is_left_out() {
    let today = d("20260601");
    let open_at_a = period("131016", "1", "20250401", "03", None);
    let moved = moved_out(period("131016", "9", "20100401", "03", Some(("20250331", "02"))), "131032");
    let arrival = moved_in(period("131032", "2", "20250401", "02", None), "131016");
    let ev = evaluate(&[open_at_a, moved, arrival.clone()], today);
    assert_eq!(codes(&ev).iter().filter(|(c, _)| *c == "A06").count(), 2, "{:?}", codes(&ev));
    let closed_at_a = period("131016", "1", "20200401", "03", Some(("20250531", "03")));
    let ev = evaluate(&[closed_at_a, arrival], today);
    assert_eq!(codes(&ev).iter().filter(|(c, _)| *c == "A06").count(), 2, "{:?}", codes(&ev));
}

/// C7: a period starting on the day of death is not after it.
#[test]
fn c7_the_day_of_death_is_not_after_it() {
    let dead = period("131016", "1", "20200401", "03", Some(("20250101", "04")));
    let same_day = period("131032", "2", "20250101", "01", None);
    assert!(evaluate(&[dead.clone(), same_day], d("20250402")).anomalies.iter().all(|a| a.code != AnomalyCode::A07));
    let next_day = period("131032", "2", "20250102", "01", None);
    assert_eq!(codes(&evaluate(&[dead, next_day], d("20250402"))), vec![("A07", "131032".into())]);
}

/// Plays like [`play`], but one municipality first reports to a provisional person (its own
/// ID there, "PROV…"), merged into the person after `merge_after` submissions (I5).
fn play_split(
    phases: &[Vec<Submission>],
    shuffle: u64,
    provisional_at: &str,
    merge_after: usize,
) -> (Latest, BTreeSet<Anomaly>) {
    let mut person = PersonState::default();
    let mut provisional = Some(PersonState::default());
    let mut latest = BTreeMap::new();
    let closes = ["20251001", "20260401", "20270401"];
    let mut today = d("20250401");
    let mut submissions = 0;
    let merge = |person: &mut PersonState, provisional: &mut Option<PersonState>| {
        if let Some(p) = provisional.take() {
            merge(person, p, &[(provisional_at.to_string(), format!("MID{provisional_at}"))].into());
        }
    };
    let step_all = |person: &mut PersonState, provisional: &mut Option<PersonState>, gone: &[Tracked], s, today| {
        let mut sent = step(person, gone, s, today);
        if let Some(p) = provisional.as_mut() {
            sent.extend(step(p, &[], s, today));
        }
        sent
    };
    for (k, phase) in phases.iter().enumerate() {
        for s in interleave(phase, shuffle.wrapping_add(k as u64)) {
            if submissions == merge_after {
                merge(&mut person, &mut provisional);
            }
            submissions += 1;
            let mut gone = Vec::new();
            for p in &s.periods {
                match provisional.as_mut().filter(|_| p.municipality == provisional_at) {
                    Some(prov) => {
                        let change = register(p, &format!("PROV{}", p.municipality), source("r", 1));
                        report(prov, change, &mut gone);
                    }
                    None => {
                        let change = register(p, &format!("MID{}", p.municipality), source("r", 1));
                        report(&mut person, change, &mut gone);
                    }
                }
            }
            record(&mut latest, step_all(&mut person, &mut provisional, &gone, Step::Submission, today));
        }
        today = d(closes[k]);
        record(&mut latest, step_all(&mut person, &mut provisional, &[], Step::DayClose, today));
    }
    merge(&mut person, &mut provisional);
    record(&mut latest, step(&mut person, &[], Step::DayClose, today));
    (latest, person.open)
}

proptest! {
    /// T2 with I5: a municipality that first reports the person as a provisional person (its
    /// own ID), merged into the person at any point, ends in the same latest RS rows (with the
    /// survivor's ID) and open anomalies as if it had known the person from the start.
    #[test]
    fn t2_i5_a_merge_at_any_point_ends_in_the_same_result(
        phases in arb_scenario(),
        shuffle in any::<u64>(),
        which in 0usize..3,
        merge_after in 0usize..8,
    ) {
        let munis = ["131016", "131024", "131032"];
        prop_assert_eq!(play_split(&phases, shuffle, munis[which], merge_after), play(&phases, shuffle));
    }
}

// === why (explain): the same rules, told step by step ===

#[test]
fn why_the_worked_example_continues_from_20200401() {
    let periods = worked_example("20260520");
    let why = explain::period(&periods, &periods[1].key(), d("20260601")).unwrap();
    assert_eq!(why.rules, vec!["C1", "C2", "C3", "C9"], "{why:?}");
    assert!(why.lines.iter().any(|l| l.contains("資格取得年月日 20200401 資格取得事由 03")), "{why:?}");
    assert!(why.lines.iter().any(|l| l.starts_with("判定区分 2")), "{why:?}");
    assert!(why.lines.iter().any(|l| l.contains("20260510〜20260519")), "the gap's days: {why:?}");
    // The first period starts the span and continues into the second.
    let first = explain::period(&periods, &periods[0].key(), d("20260601")).unwrap();
    assert!(first.lines.iter().any(|l| l.starts_with("判定区分 1")), "{first:?}");
    assert!(first.lines.iter().any(|l| l.contains("へ続きます")), "{first:?}");
    assert!(explain::period(&periods, &("131024".into(), "1".into(), d("20260101")), d("20260601")).is_none());
}

#[test]
fn why_an_unpaired_move_in_waits_and_then_starts_with_99() {
    let p = vec![moved_in(period("131032", "200001", "20260510", "02", None), "131016")];
    let waiting = explain::period(&p, &p[0].key(), d("20260601")).unwrap();
    assert!(waiting.rules.contains(&"C5") && waiting.lines.iter().any(|l| l.contains("未定")), "{waiting:?}");
    let late = explain::period(&p, &p[0].key(), d("20260610")).unwrap();
    assert!(late.lines.iter().any(|l| l.contains("資格取得事由 99")), "{late:?}");
}

#[test]
fn why_an_anomaly_names_its_rule() {
    let periods = worked_example("20260520");
    let ev = evaluate(&periods, d("20260601"));
    for a in &ev.anomalies {
        let why = explain::anomaly(&periods, a, d("20260601"));
        assert!(why.rules.contains(&"C3"), "{why:?}");
        assert!(why.lines[0].starts_with("A01"), "{why:?}");
    }
    assert_eq!(ev.anomalies.len(), 2);
}

#[test]
fn why_describes_a_period_with_its_reasons_and_counterparts() {
    let periods = worked_example("20260510");
    assert_eq!(explain::describe(&periods[0]), "131016 20200401(03 社保離脱)〜20260509(02 県内転出 →131032)");
    assert_eq!(explain::describe(&periods[1]), "131032 20260510(02 県内転入 ←131016)〜継続中");
    let no_reason = Period { end_reason: None, ..period("131016", "1", "20200401", "03", Some(("20260509", "03"))) };
    assert_eq!(explain::describe(&no_reason), "131016 20200401(03 社保離脱)〜20260509");
}

#[test]
fn why_names_c3_for_a_gap_c4_for_an_overlap_and_neither_for_adjacent_periods() {
    let on = |s: &str| {
        let p = worked_example(s);
        explain::period(&p, &p[1].key(), d("20260601")).unwrap().rules
    };
    assert_eq!(on("20260510"), vec!["C1", "C2", "C9"]);
    assert_eq!(on("20260520"), vec!["C1", "C2", "C3", "C9"]);
    assert_eq!(on("20260509"), vec!["C1", "C2", "C4", "C9"]);
    assert_eq!(on("20260505"), vec!["C1", "C2", "C4", "C9"]);
}

#[test]
fn why_says_a_move_out_without_its_move_in_does_not_end_the_qualification() {
    let out = moved_out(period("131016", "100004", "20150401", "03", Some(("20260410", "02"))), "131032");
    let open_ended = |p: &Period| {
        let why = explain::period(std::slice::from_ref(p), &p.key(), d("20260415")).unwrap();
        why.lines.iter().any(|l| l.contains("資格は終わっていません"))
    };
    assert!(open_ended(&out));
    // Not for a period that ends the span, nor for an open one.
    assert!(!open_ended(&period("131024", "300002", "20180401", "03", Some(("20260415", "03")))));
    assert!(!open_ended(&period("131024", "300003", "20180401", "03", None)));
}

#[test]
fn why_an_unpaired_move_in_past_its_window_starts_with_99_by_c5() {
    let p = vec![moved_in(period("131032", "200001", "20260510", "02", None), "131016")];
    let late = explain::period(&p, &p[0].key(), d("20260610")).unwrap();
    assert!(late.lines.iter().any(|l| l.starts_with("C1, C5:") && l.contains("事由は 99")), "{late:?}");
    // A period that starts a span itself says so, not C5.
    let own = vec![period("131032", "200002", "20260510", "03", None)];
    let why = explain::period(&own, &own[0].key(), d("20260610")).unwrap();
    assert!(!why.lines.iter().any(|l| l.starts_with("C1, C5:")), "{why:?}");
    assert!(why.lines.iter().any(|l| l.starts_with("C1: 資格は")), "{why:?}");
}

#[test]
fn why_an_anomaly_shows_the_municipalitys_own_periods_only() {
    let mut periods = worked_example("20260520");
    let ev = evaluate(&periods, d("20260601"));
    let to_a = ev.anomalies.iter().find(|a| a.to == "131016").unwrap().clone();
    // Another 宛名番号 at the same municipality, and the same 宛名番号 at another one.
    periods.push(period("131016", "100009", "20100401", "03", Some(("20120331", "03"))));
    periods.push(period("131024", "100001", "20000401", "03", Some(("20050331", "03"))));
    let why = explain::anomaly(&periods, &to_a, d("20260601"));
    let own = why.lines.iter().find(|l| l.starts_with("この市区町村の期間")).expect("its own periods");
    assert!(own.contains("131016 20200401") && !own.contains("131032 20260520"), "{own}");
    assert!(!own.contains("20100401") && !own.contains("20000401"), "{own}");
}
