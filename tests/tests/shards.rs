//! Scaling out (issue 14, docs/architecture.md "Scaling out"): relay run as two shards on one log,
//! each owning half of the municipalities (by code), gives what one relay gives. The first
//! process runs every service with relay's shard 1/2; a second runs relay's shard 2/2 alone and
//! calls the first for identity's release (R6) and the intermediate server. The sample scenario
//! played through them ends with every municipality's results equal to expected.json, as the
//! fixture test's single relay does.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use kokuho_client::scenario::{self, Scenario, StepReport};
use kokuho_e2e::app::{spawn_sharded, spawn_system};
use kokuho_e2e::{expected, relay_view, rows, sample_dir};
use kokuho_system::{System, SystemConfig};

/// Every relay row each municipality fetched (RM, and RE's R rows), in the order it got them.
fn relay_rows(reports: &[StepReport]) -> std::collections::BTreeMap<String, Vec<Vec<String>>> {
    let mut out = rows(reports, "RM");
    for (m, re) in rows(reports, "RE") {
        out.entry(m).or_default().extend(re.into_iter().filter(|r| r.first().is_some_and(|k| k == "R")));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relay_shards_give_what_one_relay_gives() {
    let scenario = Scenario::load(&sample_dir()).unwrap();
    let one = {
        let mut sys = spawn_system(scenario.first_business_date().unwrap()).await;
        let reports = scenario::play(&mut sys.client, &scenario, |_| {}).await.unwrap();
        sys.stop().await;
        relay_rows(&reports)
    };
    let mut first = spawn_sharded(scenario.first_business_date().unwrap(), 2).await;
    let mut to_second = first.shard(2).1;
    let config = first.config().clone();
    // A service whose rules look across municipalities refuses to be sharded.
    let refused = System::start(SystemConfig {
        services: vec!["continuity"],
        settings: {
            let mut s = config.settings.clone();
            s.set("continuity_shard", "1/2");
            s
        },
        ..config.clone()
    })
    .await;
    let why = format!("{:#}", refused.err().expect("continuity may not be sharded"));
    assert!(why.contains("continuity_shard") && why.contains("runs whole"), "{why}");

    let mut reports = scenario::play(&mut first.client, &scenario, |_| {}).await.unwrap();
    // The client waits for the relay it talks to; settling waits for the second shard too.
    first.settle().await;
    let mut fetched = std::collections::BTreeMap::new();
    for m in ["131016", "131024", "131032"] {
        fetched.insert(m.to_string(), first.fetch(m).await);
    }
    reports.push(StepReport {
        index: reports.len() + 1,
        outcome: scenario::Outcome::Skipped { what: "the second shard's last deliveries".into() },
        fetched,
    });

    // What one relay gives: every row, once (a municipality's rows in the order they came), and
    // the results of expected.json, as the fixture test checks them.
    let two = relay_rows(&reports);
    assert_eq!(two.keys().collect::<Vec<_>>(), one.keys().collect::<Vec<_>>());
    for (m, rows) in &one {
        assert_eq!(&two[m], rows, "{m}'s relay rows");
    }
    let relay = relay_view(&reports);
    let expected = expected();
    let mut owners = std::collections::BTreeSet::new();
    for (muni, sections) in expected["municipalities"].as_object().unwrap() {
        let empty = serde_json::json!({ "RM": {}, "open": [] });
        let got = if relay[muni].is_null() { &empty } else { &relay[muni] };
        assert_eq!(*got, sections["relay"], "relay results of {muni}");
        if !sections["relay"]["RM"].as_object().unwrap().is_empty() {
            owners.insert(kokuho_bus::Shard::new(1, 2).unwrap().owns(muni));
        }
    }
    assert_eq!(owners.len(), 2, "both shards sent records");
    // Each shard planned, and each answers for its own municipalities only.
    assert!(first.system().applied("relay-from-identity-s1of2") > 0);
    assert!(first.shard(2).0.applied("relay-from-identity-s2of2") > 0);
    assert_eq!(first.system().applied("relay-from-identity"), 0);
    let mine = to_second.relay_status(None).await.unwrap();
    assert!(!mine.partitions.is_empty());
    assert!(mine.partitions.iter().all(|p| !kokuho_bus::Shard::new(1, 2).unwrap().owns(&p.municipality)));
    let other = to_second.relay_status(Some("131024")).await.unwrap_err().to_string();
    assert!(other.contains("another relay shard"), "{other}");
    // Operation ids are unique across the shards (history and the rows' group ids key by them).
    let bus = first.nats.bus().await;
    let mut ids = std::collections::BTreeSet::new();
    for e in kokuho_e2e::all_events::<kokuho_relay_contract::Events>(&bus, kokuho_relay_contract::STREAM.name).await {
        if let kokuho_relay_contract::Event::RecordsPlanned(p) = e {
            for op in p.operations {
                assert!(ids.insert(op.id), "operation {} planned twice", op.id);
            }
        }
    }
    assert!(ids.iter().any(|i| i % 2 == 0) && ids.iter().any(|i| i % 2 == 1), "{ids:?}");
    first.stop().await;
}
