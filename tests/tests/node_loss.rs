//! A NATS cluster that loses a node (issue 13): three loopback servers, R3 streams, a load of
//! submissions from three municipalities; one node is SIGKILLed mid-load and brought back.
//! No acknowledged submission is lost, every result row of intake, identity and continuity comes
//! exactly as in a run on one healthy server, and a replay of the log equals every live
//! projection.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use std::collections::BTreeMap;
use std::time::Duration;

use kokuho_e2e::app::{spawn_system, spawn_system_on, users};
use kokuho_e2e::generate::{kk, ks};
use kokuho_e2e::input_file;
use kokuho_testkit::{TestNats, individual_number};

const MUNIS: [(&str, &str); 3] = [("131016", "130013"), ("131024", "130021"), ("131032", "130039")];

/// One municipality's submission: its code and its files.
type Submission = (&'static str, Vec<(String, Vec<u8>)>);

/// Rounds of submissions: each municipality sends 8 new households with their persons per round.
fn submissions(rounds: u32) -> Vec<Submission> {
    let mut out = Vec::new();
    for round in 0..rounds {
        for (m, (muni, insurer)) in MUNIS.iter().enumerate() {
            let (mut ks_lines, mut kk_lines) = (Vec::new(), Vec::new());
            for p in 0..8u32 {
                let n = (m as u32 + 1) * 10_000 + round * 100 + p;
                let (resident, household) = (format!("{n}"), format!("{n}"));
                let number = individual_number(70_000 + u64::from(n));
                ks_lines.push(ks(&household, "20200401", "01", &resident, ""));
                kk_lines.push(kk(
                    &resident, &household, &number, "19800707", "1", "20200401", "03", "", "", "", "", "20200401",
                ));
            }
            let files = vec![
                input_file("KS", muni, insurer, round + 1, &ks_lines),
                input_file("KK", muni, insurer, round + 1, &kk_lines),
            ];
            out.push((*muni, files));
        }
    }
    out
}

/// Submits every submission in order, each retried until the system answers it (as a clerk
/// would); returns the receipts.
async fn load(client: &mut kokuho_client::Client, subs: &[Submission]) -> Vec<String> {
    let mut receipts = Vec::new();
    for (muni, files) in subs {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            match client.submit(muni, files.clone()).await {
                Ok(r) => {
                    receipts.push(r.receipt);
                    break;
                }
                Err(e) => {
                    assert!(tokio::time::Instant::now() < deadline, "{muni} never answered: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    receipts
}

/// Every RS, RI and RE row of every municipality, sorted.
async fn rows(client: &mut kokuho_client::Client) -> BTreeMap<(String, String), Vec<String>> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (muni, _) in MUNIS {
        for f in client.fetch_files(muni).await.unwrap() {
            if !["RS", "RI", "RE"].contains(&f.kind.as_str()) {
                continue;
            }
            let text = String::from_utf8_lossy(&f.content).into_owned();
            out.entry((muni.to_string(), f.kind.clone()))
                .or_default()
                .extend(text.lines().filter(|l| l.starts_with("2,")).map(str::to_string));
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_loses_a_node_mid_load_loses_nothing() {
    let subs = submissions(5);

    // The same load on one healthy server: what the results must be.
    let mut healthy = spawn_system(20260401).await;
    load(&mut healthy.client, &subs).await;
    healthy.settle().await;
    let expected = rows(&mut healthy.client).await;
    healthy.stop().await;
    assert!(expected.keys().any(|(_, k)| k == "RS"), "the load makes RS rows");

    let cluster = TestNats::start_cluster(3, users).await;
    let mut sys = spawn_system_on(cluster, 20260401, &[(kokuho_system::STREAM_REPLICAS, "3")]).await;
    let mut client = sys.client.clone();
    let receipts = {
        let load = load(&mut client, &subs);
        tokio::pin!(load);
        // One node dies a moment into the load, and comes back a little later.
        let mut receipts = None;
        tokio::select! {
            r = &mut load => receipts = Some(r),
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        assert!(receipts.is_none(), "the load ended before the node was lost: make it longer");
        sys.nats.kill_node(1).await;
        if receipts.is_none() {
            tokio::select! {
                r = &mut load => receipts = Some(r),
                () = tokio::time::sleep(Duration::from_secs(3)) => {}
            }
        }
        sys.nats.start_node(1).await;
        match receipts {
            Some(r) => r,
            None => load.await,
        }
    };
    // Settled, asking again while the cluster recovers (a node rejoining answers "not now").
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        match sys.client.wait_idle(Duration::from_secs(30)).await {
            Ok(r) if r.idle => break,
            other => assert!(tokio::time::Instant::now() < deadline, "never settled: {:?}", other.map(|r| r.progress)),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Every acknowledged submission is there, accepted whole.
    for receipt in &receipts {
        let status = sys.client.status(receipt).await.unwrap();
        assert_eq!(status.accepted, 16, "{receipt}: {status:?}");
    }
    // Every result row exactly once, as on a healthy server.
    assert_eq!(rows(&mut sys.client).await, expected);

    // The live projections equal a replay of the log.
    for v in sys.verify_replay().await {
        assert!(v.equal(), "{} differs from its replay: {v:?}", v.name);
    }
    sys.stop().await;
}
