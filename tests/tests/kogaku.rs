//! kogaku through the running system: a household's 高額 months as KG files leave them (K1,
//! K5), for the household's own municipality only (S5), audited (S6).
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use kokuho_client::Code;
use kokuho_client::scenario::{self, Scenario};
use kokuho_e2e::app::{CHIYODA, CHUO, spawn_system};
use kokuho_e2e::{input_file, sample_dir};

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
