//! kogaku through the running system: a household's 高額 months as KG files leave them (K1,
//! K5), for the household's own municipality only (S5), audited (S6).
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use kokuho_client::Code;
use kokuho_client::scenario::{self, Scenario};
use kokuho_e2e::app::MINATO;
use kokuho_e2e::app::{CHIYODA, CHUO, spawn_system};
use kokuho_e2e::{data_rows, input_file, sample_dir};

fn months(r: &kokuho_client::CountMonthsResponse) -> Vec<(u32, bool)> {
    r.months.iter().map(|m| (m.month, m.inherited)).collect()
}

/// The worked example of rules.md through the fixture: h 1001 at 千代田区 has 2025-08, 2025-11,
/// 2026-02 (該当区分 1) and 2026-03 (区分 2): for 2026-06 three months count, 多数回該当.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k5_the_worked_example_counts_three_months() {
    let scenario = Scenario::load(&sample_dir()).unwrap();
    let mut sys = spawn_system(scenario.first_business_date().unwrap()).await;
    scenario::play(&mut sys.client, &scenario, |_| {}).await.unwrap();
    sys.settle().await;
    let r = sys.client.count_months(CHIYODA, "1001", 202606).await.unwrap();
    assert_eq!(months(&r), vec![(202508, false), (202511, false), (202602, false)]);
    assert_eq!((r.count, r.many_times), (3, true));
    // 2026-08: 2025-09 … 2026-07 holds two.
    let r = sys.client.count_months(CHIYODA, "1001", 202608).await.unwrap();
    assert_eq!((r.count, r.many_times), (2, false));
    // 131024's household 3001 has 2026-05.
    let r = sys.client.count_months(CHUO, "3001", 202606).await.unwrap();
    assert_eq!((months(&r), r.many_times), (vec![(202605, false)], false));
    // S5: another municipality may not ask; the refusal is audited.
    let dir = kokuho_system::credentials_dir(&sys.data_dir());
    let caller = kokuho_runtime::credentials::Caller::Municipality(CHUO.into());
    let mut chuo = sys.client.with_token(kokuho_runtime::credentials::Credentials::token_of(&dir, &caller).unwrap());
    let err = chuo.count_months(CHIYODA, "1001", 202606).await;
    assert!(matches!(err, Err(kokuho_client::ClientError::Status(ref s)) if s.code() == Code::PermissionDenied));
    let bus = sys.nats.bus().await;
    let entries =
        bus.read_subject(kokuho_runtime::audit::AUDIT.name, &kokuho_runtime::audit::subject("kogaku")).await.unwrap();
    assert!(entries.len() >= 3, "every count is audited");
    sys.stop().await;
}

/// K1: a deleted KG record no longer counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k1_a_deleted_month_no_longer_counts() {
    let mut sys = spawn_system(20260401).await;
    let ks = input_file("KS", CHIYODA, "130013", 1, &["2,1,1001,20200401,01,100001,0,千代田,1001,09,".into()]);
    let kg = input_file(
        "KG",
        CHIYODA,
        "130013",
        1,
        &["2,1,1001,202508,1,20251001".into(), "2,1,1001,202511,1,20260101".into()],
    );
    sys.client.submit(CHIYODA, vec![ks, kg]).await.unwrap();
    sys.settle().await;
    assert_eq!(sys.client.count_months(CHIYODA, "1001", 202606).await.unwrap().count, 2);
    let delete = input_file("KG", CHIYODA, "130013", 2, &["2,3,1001,202508,1,".into()]);
    let r = sys.client.submit(CHIYODA, vec![delete]).await.unwrap();
    assert_eq!(r.accepted, 1, "{r:?}");
    sys.settle().await;
    let r = sys.client.count_months(CHIYODA, "1001", 202606).await.unwrap();
    assert_eq!(months(&r), vec![(202511, false)]);
    sys.stop().await;
}

/// H2's householders: the household state in force on a date (the fixture's 2001 at 港区 from
/// 2026-05-10, householder 200001 = X; 1001 at 千代田区, householder 100001), as KS files leave it;
/// a 削除 removes the state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_the_householder_in_force_on_a_date() {
    let scenario = Scenario::load(&sample_dir()).unwrap();
    let mut sys = spawn_system(scenario.first_business_date().unwrap()).await;
    scenario::play(&mut sys.client, &scenario, |_| {}).await.unwrap();
    sys.settle().await;
    let kogaku = sys.system().service::<kokuho_kogaku::App>().unwrap();
    let d = |s: &str| kokuho_ids::Date::parse(s).unwrap();
    let on = |muni: &str, h: &str, date: &str| kogaku.household_on(muni, h, d(date)).unwrap().map(|s| s.householder);
    assert_eq!(on("131032", "2001", "20260510").as_deref(), Some("200001"));
    assert_eq!(on("131032", "2001", "20260509"), None, "not yet a household");
    assert_eq!(on("131016", "1001", "20260509").as_deref(), Some("100001"));
    let state = kogaku.household_on("131016", "1001", d("20260509")).unwrap().unwrap();
    assert_eq!((state.card_symbol.as_str(), state.card_number.as_str(), state.deemed), ("千代田", "1001", false));
    // A 削除 of the KS state removes it.
    let delete = input_file("KS", "131032", "130039", 2, &["2,3,2001,20260510,,,,,,,".into()]);
    let r = sys.client.submit("131032", vec![delete]).await.unwrap();
    assert_eq!(r.accepted, 1, "{r:?}");
    sys.settle().await;
    let kogaku = sys.system().service::<kokuho_kogaku::App>().unwrap();
    assert_eq!(kogaku.household_on("131032", "2001", d("20260510")).unwrap().map(|s| s.householder), None);
    sys.stop().await;
}

/// H2's members as persons: the fixture's 1001 at 千代田区 on 2026-05-09 is X and Y (both
/// 被保険者), and 2001 at 港区 on 2026-05-10 is X and Y again, as the same persons; a record
/// re-registered under another 世帯番号 leaves its first household.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_members_are_persons_on_a_date() {
    let scenario = Scenario::load(&sample_dir()).unwrap();
    let mut sys = spawn_system(scenario.first_business_date().unwrap()).await;
    scenario::play(&mut sys.client, &scenario, |_| {}).await.unwrap();
    sys.settle().await;
    let d = |s: &str| kokuho_ids::Date::parse(s).unwrap();
    let kogaku = sys.system().service::<kokuho_kogaku::App>().unwrap();
    let at_a = kogaku.members_on("131016", "1001", d("20260509")).unwrap();
    let at_b = kogaku.members_on("131032", "2001", d("20260510")).unwrap();
    assert_eq!(at_a.len(), 2);
    assert!(at_a.values().all(|insured| *insured));
    assert_eq!(at_a.keys().collect::<Vec<_>>(), at_b.keys().collect::<Vec<_>>(), "the same persons");
    assert!(kogaku.members_on("131016", "1001", d("20260510")).unwrap().is_empty(), "they left on 05-09");
    // 100003 (Z, household 1002) re-registered under 1001: no longer a member of 1002.
    let kk = input_file(
        "KK",
        CHIYODA,
        "130013",
        3,
        &["2,1,100003,1001,1,345678901234,鈴木 一郎,スズキ イチロウ,19900105,1,01,20191001,01,20260430,02,271004,131024,20260430".into()],
    );
    let r = sys.client.submit(CHIYODA, vec![kk]).await.unwrap();
    assert_eq!(r.accepted, 1, "{r:?}");
    sys.settle().await;
    let kogaku = sys.system().service::<kokuho_kogaku::App>().unwrap();
    assert!(kogaku.members_on("131016", "1002", d("20260401")).unwrap().is_empty());
    assert_eq!(kogaku.members_on("131016", "1001", d("20260401")).unwrap().len(), 3);
    sys.stop().await;
}

/// H1 from continuity's pairs: the fixture's two candidates — 131032's 2001 on 2026-05-10 from
/// 131016's 1001 (X and Y), and 131024's 3001 on 2026-05-20 from 131016's 1002 (Z); V's move
/// has no 転入 and makes none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_the_fixtures_candidates_from_the_pairs() {
    let scenario = Scenario::load(&sample_dir()).unwrap();
    let mut sys = spawn_system(scenario.first_business_date().unwrap()).await;
    scenario::play(&mut sys.client, &scenario, |_| {}).await.unwrap();
    sys.settle().await;
    let kogaku = sys.system().service::<kokuho_kogaku::App>().unwrap();
    let candidates: Vec<(String, String, u32, String, String, usize)> = kogaku
        .candidates()
        .unwrap()
        .into_iter()
        .map(|(k, movers)| {
            (k.group.to, k.group.household, k.group.moved_in_on.to_yyyymmdd(), k.from, k.from_household, movers.len())
        })
        .collect();
    let c = |to: &str, h: &str, d: u32, from: &str, hf: &str, n: usize| {
        (to.to_string(), h.to_string(), d, from.to_string(), hf.to_string(), n)
    };
    assert_eq!(
        candidates,
        vec![c("131024", "3001", 20260520, "131016", "1002", 1), c("131032", "2001", 20260510, "131016", "1001", 2)]
    );
    // The movers are the members of h_B on D (H2 compares them as persons).
    let movers = kogaku.candidates().unwrap().into_values().find(|m| m.len() == 2).unwrap();
    let members = kogaku.members_on("131032", "2001", kokuho_ids::Date::parse("20260510").unwrap()).unwrap();
    assert_eq!(movers, members.into_keys().collect());
    sys.stop().await;
}

/// The fixture up to (and without) its decisions.
async fn fixture_undecided() -> kokuho_e2e::app::TestSystem {
    let mut scenario = Scenario::load(&sample_dir()).unwrap();
    scenario.steps.retain(|s| !matches!(s, scenario::Step::Decide { .. }));
    let mut sys = spawn_system(scenario.first_business_date().unwrap()).await;
    scenario::play(&mut sys.client, &scenario, |_| {}).await.unwrap();
    sys.settle().await;
    sys
}

/// The whole fixture: 港区 decided 継続, 中央区 非継続.
async fn fixture_decided() -> kokuho_e2e::app::TestSystem {
    let scenario = Scenario::load(&sample_dir()).unwrap();
    let mut sys = spawn_system(scenario.first_business_date().unwrap()).await;
    scenario::play(&mut sys.client, &scenario, |_| {}).await.unwrap();
    sys.settle().await;
    sys
}

/// The 継続候補番号 of the only candidate of `municipality`.
async fn only_candidate(sys: &mut kokuho_e2e::app::TestSystem, municipality: &str) -> kokuho_client::CandidateSummary {
    let list = sys.client.list_candidates(Some(municipality), false).await.unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    list.into_iter().next().unwrap()
}

fn refused_with(r: Result<impl std::fmt::Debug, kokuho_client::ClientError>, code: Code, text: &str) {
    match r {
        Err(kokuho_client::ClientError::Status(s)) => {
            assert_eq!(s.code(), code, "{s:?}");
            assert!(s.message().contains(text), "{s:?}");
        }
        other => panic!("expected {code:?} {text}, got {other:?}"),
    }
}

/// H3, H4 (E011): a KT file decides (確定年月日 = the business date, RG to B); a second
/// decision, by KT (an RE E011 row naming the line) or over the API (answered to the caller
/// only, no RE row), is refused; so is an unknown number and another municipality's candidate.
/// K3, K5: 港区's household then counts the inherited months, marked so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h3_decisions_by_kt_and_over_the_api_are_final() {
    let mut sys = fixture_undecided().await;
    let c = only_candidate(&mut sys, MINATO).await;
    assert_eq!((c.recommended.as_str(), c.reason.as_str(), c.decision.as_str()), ("1", "11", ""));
    // 中央区 does not know 港区's number; nor may it decide or read for 港区.
    refused_with(sys.client.decide(CHUO, &c.number, "1").await, Code::FailedPrecondition, "E011");
    let dir = kokuho_system::credentials_dir(&sys.data_dir());
    let caller = kokuho_runtime::credentials::Caller::Municipality(CHUO.into());
    let mut chuo =
        sys.client.clone().with_token(kokuho_runtime::credentials::Credentials::token_of(&dir, &caller).unwrap());
    refused_with(chuo.decide(MINATO, &c.number, "1").await, Code::PermissionDenied, "");
    refused_with(chuo.explain_candidate(MINATO, &c.number).await, Code::PermissionDenied, "");

    let kt = input_file("KT", MINATO, "130039", 1, &[format!("2,{},1", c.number), "2,999999999999999,2".into()]);
    let r = sys.client.submit(MINATO, vec![kt]).await.unwrap();
    assert_eq!(r.accepted, 2, "{r:?}");
    sys.settle().await;
    let files = sys.fetch(MINATO).await;
    let rg = data_rows(&files, "RG");
    assert_eq!(rg, vec![svec(&[&c.number, "2001", "1", "20260601", "202508 202511 202602", "3", "1", "0"])]);
    let e011: Vec<(String, String, String)> = data_rows(&files, "RE")
        .into_iter()
        .filter(|row| row[1] == "E011")
        .map(|row| (row[3].clone(), row[4].clone(), row[6].clone()))
        .collect();
    assert_eq!(e011, vec![("KT".to_string(), "3".to_string(), "継続候補番号".to_string())], "the unknown number");

    // A second decision: by KT, an E011 row; over the API, to the caller only.
    let again = input_file("KT", MINATO, "130039", 2, &[format!("2,{},2", c.number)]);
    sys.client.submit(MINATO, vec![again]).await.unwrap();
    sys.settle().await;
    refused_with(sys.client.decide(MINATO, &c.number, "2").await, Code::FailedPrecondition, "E011");
    sys.settle().await;
    let files = sys.fetch(MINATO).await;
    assert!(data_rows(&files, "RG").is_empty(), "the decision stands");
    let codes: Vec<String> = data_rows(&files, "RE").into_iter().map(|r| format!("{}/{}", r[1], r[4])).collect();
    assert_eq!(codes, vec!["E011/2".to_string()], "one row, for the KT record; none for the API call");
    let decided = only_candidate(&mut sys, MINATO).await;
    assert_eq!((decided.decision.as_str(), decided.decided_on, decided.decided_by.as_str()), ("1", 20260601, "file"));

    // K5 at 港区: the inherited months count, marked inherited.
    let r = sys.client.count_months(MINATO, "2001", 202606).await.unwrap();
    assert_eq!(months(&r), vec![(202508, true), (202511, true), (202602, true)]);
    assert_eq!((r.count, r.many_times), (3, true));
    sys.stop().await;
}

fn svec(fields: &[&str]) -> Vec<String> {
    fields.iter().map(|s| s.to_string()).collect()
}

/// K4: after the handover, a late KG month of h_A within [M − 11, M] and a deleted one reach
/// h_B (RG again, 訂正 1); a month outside the window changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k4_late_and_deleted_months_reach_the_receiving_household() {
    let mut sys = fixture_decided().await;
    let number = only_candidate(&mut sys, MINATO).await.number;
    let late = input_file("KG", CHIYODA, "130013", 2, &["2,1,1001,202604,1,20260601".into()]);
    assert_eq!(sys.client.submit(CHIYODA, vec![late]).await.unwrap().accepted, 1);
    sys.settle().await;
    let rg = data_rows(&sys.fetch(MINATO).await, "RG");
    assert_eq!(rg, vec![svec(&[&number, "2001", "1", "20260601", "202508 202511 202602 202604", "4", "1", "1"])]);
    let deleted = input_file("KG", CHIYODA, "130013", 3, &["2,3,1001,202508,1,".into()]);
    assert_eq!(sys.client.submit(CHIYODA, vec![deleted]).await.unwrap().accepted, 1);
    sys.settle().await;
    let rg = data_rows(&sys.fetch(MINATO).await, "RG");
    assert_eq!(rg, vec![svec(&[&number, "2001", "1", "20260601", "202511 202602 202604", "3", "1", "1"])]);
    let outside = input_file("KG", CHIYODA, "130013", 4, &["2,1,1001,202401,1,20240301".into()]);
    assert_eq!(sys.client.submit(CHIYODA, vec![outside]).await.unwrap().accepted, 1);
    sys.settle().await;
    assert!(data_rows(&sys.fetch(MINATO).await, "RG").is_empty());
    // 中央区's 非継続 (K3): its count is its own household's; a month of h_A does not reach it.
    let h_a = input_file("KG", CHIYODA, "130013", 5, &["2,1,1002,202604,1,20260601".into()]);
    assert_eq!(sys.client.submit(CHIYODA, vec![h_a]).await.unwrap().accepted, 1);
    let own = input_file("KG", CHUO, "130021", 2, &["2,1,3001,202604,1,20260601".into()]);
    assert_eq!(sys.client.submit(CHUO, vec![own]).await.unwrap().accepted, 1);
    sys.settle().await;
    let rg = data_rows(&sys.fetch(CHUO).await, "RG");
    assert_eq!(rg.len(), 1, "{rg:?}");
    assert_eq!((rg[0][2].as_str(), rg[0][4].as_str(), rg[0][5].as_str(), rg[0][7].as_str()), ("2", "", "2", "1"));
    sys.stop().await;
}

/// H5 before a decision: RK again with 訂正 1 when field 11 changes (a KG month of h_A), with
/// 訂正 2 when the candidate disappears (B deletes the mover's period); a decision on it is then
/// E011.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h5_before_a_decision_rk_is_corrected_and_withdrawn() {
    let mut sys = fixture_undecided().await;
    let number = only_candidate(&mut sys, CHUO).await.number;
    let kg = input_file("KG", CHIYODA, "130013", 2, &["2,1,1002,202604,1,20260601".into()]);
    assert_eq!(sys.client.submit(CHIYODA, vec![kg]).await.unwrap().accepted, 1);
    sys.settle().await;
    let rk = data_rows(&sys.fetch(CHUO).await, "RK");
    assert_eq!(rk, vec![svec(&[&number, "3001", "20260520", "131016", "1002", "1", "1", "1", "11", "1", "1"])]);
    // 中央区 deletes Z's period: no pair, no candidate.
    let kk = input_file("KK", CHUO, "130021", 3, &["2,3,300001,3001,1,,,,,,,20260520,,,,,,".into()]);
    let r = sys.client.submit(CHUO, vec![kk]).await.unwrap();
    assert_eq!(r.accepted, 1, "{r:?}");
    sys.settle().await;
    let rk = data_rows(&sys.fetch(CHUO).await, "RK");
    assert_eq!(rk, vec![svec(&[&number, "3001", "20260520", "131016", "1002", "1", "1", "1", "11", "1", "2"])]);
    refused_with(sys.client.decide(CHUO, &number, "1").await, Code::FailedPrecondition, "E011");
    let c = only_candidate(&mut sys, CHUO).await;
    assert!(c.withdrawn);
    sys.stop().await;
}

/// H5 after a decision: 港区 changes 2001's householder on the move date to Y, so rule 2 now
/// applies (fields 7, 10 change): A08 to 港区 and on the operator's list, the decision stands,
/// no RK; set back, A08 closes. H3: the operator reverses 中央区's 非継続, with a reason, audited:
/// RG again (訂正 1, 判定 1); a municipality cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h5_changes_after_a_decision_raise_a08_and_the_operator_may_reverse() {
    let mut sys = fixture_decided().await;
    let ks = |seq: u32, householder: &str| {
        input_file("KS", MINATO, "130039", seq, &[format!("2,1,2001,20260510,02,{householder},0,港,2001,09,131016")])
    };
    assert_eq!(sys.client.submit(MINATO, vec![ks(2, "200002")]).await.unwrap().accepted, 1);
    sys.settle().await;
    let files = sys.fetch(MINATO).await;
    assert!(data_rows(&files, "RK").is_empty() && data_rows(&files, "RG").is_empty(), "{files:?}");
    let a08: Vec<Vec<String>> = data_rows(&files, "RE").into_iter().filter(|r| r[1] == "A08").collect();
    assert_eq!(a08.len(), 1, "{a08:?}");
    assert_eq!(
        (a08[0][0].as_str(), a08[0][6].as_str(), a08[0][8].as_str(), a08[0][9].as_str(), a08[0][11].as_str()),
        ("A", "継続候補番号", "131016", "20260510", "1")
    );
    let changed = sys.client.list_candidates(None, true).await.unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(
        (changed[0].decision.as_str(), changed[0].reason.as_str(), changed[0].former_householder.as_str()),
        ("1", "12", "2")
    );
    let why = sys.client.explain_candidate(MINATO, &changed[0].number).await.unwrap();
    assert_eq!(why.rule, 2);
    assert!(why.lines.iter().any(|l| l.starts_with("A08")), "{:?}", why.lines);
    assert_eq!(why.former_householder, "200001", "hh_A by 港区's 宛名番号");
    assert_eq!(sys.client.submit(MINATO, vec![ks(3, "200001")]).await.unwrap().accepted, 1);
    sys.settle().await;
    let a08: Vec<String> = data_rows(&sys.fetch(MINATO).await, "RE")
        .into_iter()
        .filter(|r| r[1] == "A08")
        .map(|r| r[11].clone())
        .collect();
    assert_eq!(a08, vec!["2".to_string()], "closed");
    assert!(sys.client.list_candidates(None, true).await.unwrap().is_empty());

    // The operator's reversal of 中央区's 非継続.
    let number = only_candidate(&mut sys, CHUO).await.number;
    refused_with(sys.client.decide(CHUO, &number, "1").await, Code::FailedPrecondition, "E011");
    refused_with(sys.client.reverse_decision(CHUO, &number, "1", "ops", " ").await, Code::InvalidArgument, "reason");
    let r = sys.client.reverse_decision(CHUO, &number, "1", "ops", "窓口で世帯継続を確認").await.unwrap();
    assert_eq!((r.decision.as_str(), r.decided_by.as_str()), ("1", "operator"));
    sys.settle().await;
    let rg = data_rows(&sys.fetch(CHUO).await, "RG");
    assert_eq!(rg, vec![svec(&[&number, "3001", "1", "20260601", "", "1", "0", "1"])]);
    let bus = sys.nats.bus().await;
    let entries =
        bus.read_subject(kokuho_runtime::audit::AUDIT.name, &kokuho_runtime::audit::subject("kogaku")).await.unwrap();
    let text: Vec<String> = entries.iter().map(|(_, b)| String::from_utf8_lossy(b).into_owned()).collect();
    assert!(text.iter().any(|t| t.contains("窓口で世帯継続を確認")), "the reversal and its reason are audited");
    sys.stop().await;
}

/// A person who moves from 千代田区 (household `from`) to 港区 (household `to`) on `d`.
struct Mover {
    at_a: &'static str,
    at_b: &'static str,
    number: u64,
    from: &'static str,
    to: &'static str,
}

impl Mover {
    fn kk(&self, resident: &str, household: &str, tail: &str) -> String {
        let n = kokuho_testkit::individual_number(self.number);
        format!("2,1,{resident},{household},1,{n},山田 {resident},ヤマダ,19700101,1,01,{tail}")
    }

    /// At A: the period from 2020-04-01, ended on D − 1 by 02 転出 to 港区.
    fn at_a(&self, end: &str, d: &str) -> String {
        self.kk(self.at_a, self.from, &format!("20200401,03,{end},02,,{MINATO},{d}"))
    }

    /// At B: from D by 02 転入 from 千代田区.
    fn at_b(&self, d: &str) -> String {
        self.kk(self.at_b, self.to, &format!("{d},02,,,{CHIYODA},,{d}"))
    }
}

/// Two households of 千代田区 (1001 with householder X, 1005 with householder W) merge into
/// 港区's 2001 (householder X) on 2026-05-10: two candidates of one move — 1001's by rule 1
/// (11), 1005's by rule 4 (14, RK field 7 = 2: W is a member, not the householder). H4: once
/// one is confirmed 継続, a second 継続 for the same move is E011; 非継続 is not.
async fn merged_move(sys: &mut kokuho_e2e::app::TestSystem) -> Vec<kokuho_client::CandidateSummary> {
    let x = Mover { at_a: "100001", at_b: "200001", number: 10_000_000_001, from: "1001", to: "2001" };
    let w = Mover { at_a: "100005", at_b: "200005", number: 10_000_000_005, from: "1005", to: "2001" };
    let ks_a = input_file(
        "KS",
        CHIYODA,
        "130013",
        1,
        &[
            "2,1,1001,20200401,01,100001,0,千代田,1001,09,".into(),
            "2,1,1005,20200401,01,100005,0,千代田,1005,09,".into(),
        ],
    );
    let kk_a =
        input_file("KK", CHIYODA, "130013", 1, &[x.at_a("20260509", "20260510"), w.at_a("20260509", "20260510")]);
    let kg_a = input_file("KG", CHIYODA, "130013", 1, &["2,1,1005,202601,1,20260301".into()]);
    let r = sys.client.submit(CHIYODA, vec![ks_a, kk_a, kg_a]).await.unwrap();
    sys.settle().await;
    assert_eq!(r.rejected, 0, "{:?}", data_rows(&sys.fetch(CHIYODA).await, "RE"));
    let ks_b = input_file("KS", MINATO, "130039", 1, &[format!("2,1,2001,20260510,02,200001,0,港,2001,09,{CHIYODA}")]);
    let kk_b = input_file("KK", MINATO, "130039", 1, &[x.at_b("20260510"), w.at_b("20260510")]);
    assert_eq!(sys.client.submit(MINATO, vec![ks_b, kk_b]).await.unwrap().rejected, 0);
    sys.settle().await;
    let mut list = sys.client.list_candidates(Some(MINATO), false).await.unwrap();
    list.sort_by(|a, b| a.from_household.cmp(&b.from_household));
    list
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h4_one_continuation_per_move_and_h2_rule4_for_a_merge() {
    let mut sys = spawn_system(20260601).await;
    let list = merged_move(&mut sys).await;
    let fields: Vec<(&str, &str, &str, &str, u32, u32)> = list
        .iter()
        .map(|c| {
            (
                c.from_household.as_str(),
                c.former_householder.as_str(),
                c.recommended.as_str(),
                c.reason.as_str(),
                c.movers,
                c.kogaku_count,
            )
        })
        .collect();
    assert_eq!(fields, vec![("1001", "1", "1", "11", 1, 0), ("1005", "2", "2", "14", 1, 1)]);
    sys.client.decide(MINATO, &list[0].number, "1").await.unwrap();
    refused_with(sys.client.decide(MINATO, &list[1].number, "1").await, Code::FailedPrecondition, "E011");
    let r = sys.client.decide(MINATO, &list[1].number, "2").await.unwrap();
    assert_eq!(r.decision, "2");
    sys.settle().await;
    // RG: 1001's 継続 inherits nothing; 1005's 非継続 reports h_B's count, which holds nothing
    // inherited from 1005 (K3).
    let rg = data_rows(&sys.fetch(MINATO).await, "RG");
    let by_number: std::collections::BTreeMap<String, (String, String, String)> =
        rg.into_iter().map(|r| (r[0].clone(), (r[2].clone(), r[4].clone(), r[5].clone()))).collect();
    assert_eq!(by_number[&list[0].number], ("1".into(), "".into(), "0".into()));
    assert_eq!(by_number[&list[1].number], ("2".into(), "".into(), "0".into()));
    sys.stop().await;
}

/// H3: with auto-confirmation switched on (a deployment setting), a reason 11 candidate is
/// confirmed at once, on the business date, and RG follows without a decision; a rule 4
/// candidate waits for B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h3_auto_confirmation_when_the_deployment_switches_it_on() {
    let mut sys = kokuho_e2e::app::spawn_system_with(20260601, &[(kokuho_kogaku::AUTO_CONFIRM, "true")]).await;
    let list = merged_move(&mut sys).await;
    assert_eq!((list[0].decision.as_str(), list[0].decided_by.as_str(), list[0].decided_on), ("1", "auto", 20260601));
    assert_eq!(list[1].decision, "", "reason 14 waits for B");
    let files = sys.fetch(MINATO).await;
    assert_eq!(data_rows(&files, "RK").len(), 2, "RK is sent all the same");
    let rg = data_rows(&files, "RG");
    assert_eq!(rg.len(), 1);
    assert_eq!((rg[0][0].as_str(), rg[0][2].as_str(), rg[0][3].as_str()), (list[0].number.as_str(), "1", "20260601"));
    sys.stop().await;
}

/// Replay equals live: kogaku's projections rebuilt from the log give the same candidates,
/// decisions and handovers, and nothing is sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_equals_live() {
    let mut sys = fixture_decided().await;
    let late = input_file("KG", CHIYODA, "130013", 2, &["2,1,1001,202604,1,20260601".into()]);
    assert_eq!(sys.client.submit(CHIYODA, vec![late]).await.unwrap().accepted, 1);
    sys.settle().await;
    for m in [CHIYODA, CHUO, MINATO] {
        sys.fetch(m).await;
    }
    let live = sys.client.list_candidates(None, false).await.unwrap();
    let counts = sys.client.count_months(MINATO, "2001", 202606).await.unwrap();
    assert_eq!(live.len(), 2);
    assert_eq!(live.iter().find(|c| c.municipality == MINATO).unwrap().handover_count, 4);

    sys.stop_services().await;
    std::fs::remove_dir_all(sys.data_dir().join("store").join("kogaku")).unwrap();
    sys.start_services().await;
    sys.settle().await;
    assert_eq!(sys.client.list_candidates(None, false).await.unwrap(), live, "rebuilt from the log");
    assert_eq!(sys.client.count_months(MINATO, "2001", 202606).await.unwrap(), counts);
    for m in [CHIYODA, CHUO, MINATO] {
        assert!(sys.fetch(m).await.is_empty(), "nothing sent twice to {m}");
    }
    sys.stop().await;
}

/// A provisional person (I5): 港区 first sends the mover without a 個人番号 (a person of its own,
/// no pair, no candidate), then with it (merged into 千代田区's person): the pair forms and the
/// candidate is the same as if the number had come at once — rule 1, 継続 11, its householder
/// compared as the merged person.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i5_a_mover_first_sent_without_a_number_becomes_a_candidate_when_merged() {
    let mut sys = spawn_system(20260601).await;
    let x = Mover { at_a: "100001", at_b: "200001", number: 10_000_000_001, from: "1001", to: "2001" };
    let ks_a = input_file("KS", CHIYODA, "130013", 1, &["2,1,1001,20200401,01,100001,0,千代田,1001,09,".into()]);
    let kk_a = input_file("KK", CHIYODA, "130013", 1, &[x.at_a("20260509", "20260510")]);
    let kg_a = input_file("KG", CHIYODA, "130013", 1, &["2,1,1001,202602,1,20260301".into()]);
    assert_eq!(sys.client.submit(CHIYODA, vec![ks_a, kk_a, kg_a]).await.unwrap().rejected, 0);
    let ks_b = input_file("KS", MINATO, "130039", 1, &[format!("2,1,2001,20260510,02,200001,0,港,2001,09,{CHIYODA}")]);
    let with_number = x.at_b("20260510");
    let number = kokuho_testkit::individual_number(x.number);
    let without = with_number.replace(&number, "");
    let kk_b = input_file("KK", MINATO, "130039", 1, &[without]);
    assert_eq!(sys.client.submit(MINATO, vec![ks_b, kk_b]).await.unwrap().rejected, 0);
    sys.settle().await;
    assert!(sys.client.list_candidates(Some(MINATO), false).await.unwrap().is_empty(), "no pair yet");
    let kk_b = input_file("KK", MINATO, "130039", 2, &[with_number]);
    assert_eq!(sys.client.submit(MINATO, vec![kk_b]).await.unwrap().rejected, 0);
    sys.settle().await;
    let c = only_candidate(&mut sys, MINATO).await;
    assert_eq!(
        (c.former_householder.as_str(), c.movers, c.recommended.as_str(), c.reason.as_str(), c.kogaku_count),
        ("1", 1, "1", "11", 1)
    );
    let rk = data_rows(&sys.fetch(MINATO).await, "RK");
    assert_eq!(rk.len(), 1, "{rk:?}");
    assert_eq!(rk[0][10], "0", "訂正 0");
    sys.stop().await;
}
