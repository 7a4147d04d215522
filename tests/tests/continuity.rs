//! continuity through the running system: replay equals live, and window anomalies wait for a
//! day close (rules.md T1).
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use kokuho_client::scenario::{self, Scenario};
use kokuho_e2e::app::{CHIYODA, TestSystem, spawn_system};
use kokuho_e2e::sample_dir;

const RESIDENTS: [(&str, &str); 7] = [
    ("131016", "100001"),
    ("131016", "100002"),
    ("131016", "100003"),
    ("131016", "100004"),
    ("131032", "200001"),
    ("131024", "300001"),
    ("131024", "300002"),
];

fn states(sys: &TestSystem) -> Vec<Option<kokuho_continuity_domain::PersonState>> {
    let identity = sys.system().service::<kokuho_identity::App>().unwrap().state();
    let continuity = sys.system().service::<kokuho_continuity::App>().unwrap().state();
    RESIDENTS
        .iter()
        .map(|(m, r)| {
            let pref = kokuho_identity::link_of(identity, m, r).unwrap().unwrap().pref_id;
            kokuho_continuity::person_state(continuity, &pref).unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_equals_live() {
    let scenario = Scenario::load(&sample_dir()).unwrap();
    let mut sys = spawn_system(scenario.first_business_date().unwrap()).await;
    scenario::play(&mut sys.client, &scenario, |_| {}).await.unwrap();
    let live = states(&sys);
    assert!(live.iter().all(Option::is_some));
    // X's periods in both wards are one person's (C1 across municipalities).
    assert_eq!(live[0].as_ref().unwrap().periods.len(), 2);

    sys.stop_services().await;
    std::fs::remove_dir_all(sys.data_dir().join("store").join("continuity")).unwrap();
    sys.start_services().await;
    sys.settle().await;
    assert_eq!(states(&sys), live, "rebuilt from the log, continuity's state is the live one");
    // Nothing was sent twice: the replay found every evaluation in the log.
    assert!(sys.client.fetch_files(CHIYODA).await.unwrap().is_empty());
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t1_a03_waits_for_a_day_close() {
    let mut sys = spawn_system(20260401).await;
    let ks = "1,KS,131016,130013,20260401,1\n2,1,1003,20150401,01,100004,0,千代田,1003,04,\n9,1\n";
    let kk = "1,KK,131016,130013,20260401,1\n2,1,100004,1003,1,456789012346,佐藤 健,ｻﾄｳ ｹﾝ,19800707,1,01,20150401,03,20260410,02,,131032,20260411\n9,1\n";
    sys.client
        .submit(CHIYODA, vec![("KS".into(), ks.as_bytes().to_vec()), ("KK".into(), kk.as_bytes().to_vec())])
        .await
        .unwrap();
    sys.settle().await;
    let open = |sys: &TestSystem| {
        let pref = kokuho_identity::link_of(
            sys.system().service::<kokuho_identity::App>().unwrap().state(),
            CHIYODA,
            "100004",
        )
        .unwrap()
        .unwrap()
        .pref_id;
        kokuho_continuity::person_state(sys.system().service::<kokuho_continuity::App>().unwrap().state(), &pref)
            .unwrap()
            .unwrap()
            .open
    };
    assert!(open(&sys).is_empty(), "no A03 before a day close");
    sys.client.close_day(20260501).await.unwrap();
    sys.settle().await;
    assert!(open(&sys).is_empty(), "2026-05-01 is within 30 days of the end");
    sys.client.close_day(20260601).await.unwrap();
    sys.settle().await;
    let now = open(&sys);
    let first = now.first().unwrap();
    assert_eq!((now.len(), first.code.code(), first.counterpart.as_str()), (1, "A03", "131032"));
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_municipality_queries_its_own_residents_and_sees_others_as_code_and_dates() {
    use kokuho_runtime::credentials::{Caller, Credentials};

    let scenario = Scenario::load(&sample_dir()).unwrap();
    let mut sys = spawn_system(scenario.first_business_date().unwrap()).await;
    scenario::play(&mut sys.client, &scenario, |_| {}).await.unwrap();
    let dir = kokuho_system::credentials_dir(&sys.data_dir());
    let token = Credentials::token_of(&dir, &Caller::Municipality(CHIYODA.into())).unwrap();
    let mut chiyoda = sys.client.with_token(token);
    let x = chiyoda.query_person(CHIYODA, "100001").await.unwrap();
    assert!(x.found);
    assert_eq!(x.periods.len(), 2);
    let own = x.periods.iter().find(|p| p.municipality == CHIYODA).unwrap();
    assert_eq!((own.acquired_on.as_str(), own.kubun.as_str()), ("20200401", "1"));
    let other = x.periods.iter().find(|p| p.municipality == "131032").unwrap();
    assert_eq!(
        (other.start, other.resident_number.as_str(), other.kubun.as_str()),
        (20260510, "", ""),
        "code and dates only"
    );
    let z = chiyoda.query_person(CHIYODA, "100003").await.unwrap();
    assert_eq!(z.open.iter().map(|a| a.code.as_str()).collect::<Vec<_>>(), vec!["A01"]);
    assert!(chiyoda.query_person("131024", "300001").await.is_err(), "another municipality's resident");
    assert!(sys.anonymous().await.query_person(CHIYODA, "100001").await.is_err(), "no credential");
    sys.stop().await;
}

/// continuity evaluates a group of identity events in order, each on its state as the earlier
/// ones of the group leave it, and appends one batch for the group (kokuho_store::Decider).
/// Deriving continuity's stream again from identity's whole log, in one group where live saw
/// many, must send the same rows in the same order and end in the same states.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluating_in_larger_groups_changes_no_result() {
    async fn evaluations(sys: &TestSystem) -> (usize, std::collections::BTreeMap<String, Vec<Vec<String>>>) {
        let bus = sys.nats.bus().await;
        let mut count = 0;
        let mut rows: std::collections::BTreeMap<String, Vec<Vec<String>>> = Default::default();
        for p in
            kokuho_e2e::all_events::<kokuho_continuity_contract::Events>(&bus, kokuho_continuity_contract::STREAM.name)
                .await
        {
            let kokuho_continuity_contract::Event::PersonsEvaluated(e) = p;
            count += 1;
            for m in e.rows {
                rows.entry(m.municipality).or_default().extend(m.rows.into_iter().map(|r| r.fields));
            }
        }
        (count, rows)
    }

    let scenario = Scenario::load(&sample_dir()).unwrap();
    let mut sys = spawn_system(scenario.first_business_date().unwrap()).await;
    scenario::play(&mut sys.client, &scenario, |_| {}).await.unwrap();
    let live_states = states(&sys);
    let (live_events, live_rows) = evaluations(&sys).await;
    assert!(live_rows.values().map(Vec::len).sum::<usize>() > 10, "the sample sends RS and RE rows");

    sys.stop_services().await;
    sys.nats.bus().await.delete_stream("KOKUHO_CONTINUITY").await.unwrap();
    std::fs::remove_dir_all(sys.data_dir().join("store").join("continuity")).unwrap();
    sys.start_services().await;
    sys.settle().await;
    let (again_events, again_rows) = evaluations(&sys).await;
    assert_eq!(again_events, live_events, "one evaluation per identity event");
    assert_eq!(again_rows, live_rows);
    assert_eq!(states(&sys), live_states);
    sys.stop().await;
}

/// Published for kogaku (H1): continuity's events carry each person's C2 pairs with the
/// households the records carried, so a reader forms move groups without pairing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2_pairs_with_their_households_are_in_the_log() {
    let scenario = Scenario::load(&sample_dir()).unwrap();
    let mut sys = spawn_system(scenario.first_business_date().unwrap()).await;
    scenario::play(&mut sys.client, &scenario, |_| {}).await.unwrap();
    sys.settle().await;
    let bus = sys.nats.bus().await;
    let mut latest = std::collections::BTreeMap::new();
    for e in kokuho_e2e::all_events::<kokuho_continuity_contract::Events>(&bus, kokuho_continuity_contract::STREAM.name)
        .await
    {
        let kokuho_continuity_contract::Event::PersonsEvaluated(e) = e;
        for p in e.persons {
            latest.insert(p.pref_id.clone(), p.pairs);
        }
    }
    let pairs: Vec<(String, String, String, String, String, u32)> = latest
        .into_values()
        .flatten()
        .map(|p| {
            (
                p.from_municipality,
                p.from_household_number,
                p.to_municipality,
                p.to_household_number,
                p.to_resident_number,
                p.to_start,
            )
        })
        .collect();
    let pair = |from: &str, hf: &str, to: &str, ht: &str, r: &str, s: u32| {
        (from.to_string(), hf.to_string(), to.to_string(), ht.to_string(), r.to_string(), s)
    };
    // X and Y move 1001 → 2001, Z 1002 → 3001 (the fixture's RK candidates); V is unpaired.
    let mut expected = vec![
        pair("131016", "1001", "131032", "2001", "200001", 20260510),
        pair("131016", "1001", "131032", "2001", "200002", 20260510),
        pair("131016", "1002", "131024", "3001", "300001", 20260520),
    ];
    let mut got = pairs;
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    sys.stop().await;
}
