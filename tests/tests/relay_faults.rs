//! relay's delivery under faults (rules.md R4, issue 11 "fault tests"): lost answers (the server
//! applied but the answer never came back), relay and the simulator killed mid-delivery, NATS
//! restarted, the simulator unreachable for a while. Every record arrives exactly once at the
//! simulator (its count of applied keys equals the operations planned), in order per person
//! (a 2 変更 applied before its 1 新規 would be rejected, M02), and every operation has one RM row.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use std::collections::BTreeSet;
use std::time::Duration;

use kokuho_client::midserver::Faults;
use kokuho_e2e::app::{CHIYODA, CHUO, MINATO, TestSystem, spawn_system_with};
use kokuho_e2e::generate::{kk, ks};
use kokuho_e2e::{data_rows, input_file};
use kokuho_testkit::individual_number;

const WARDS: [(&str, &str); 3] = [(CHIYODA, "130013"), (CHUO, "130021"), (MINATO, "130039")];
const HOUSEHOLDS: usize = 30;
const PERSONS: usize = 2;

fn resident(ward: usize, h: usize, p: usize) -> String {
    format!("{}{h:04}{p}", ward + 1)
}

/// Every ward's KS and KK: registered (`end` empty) or ended on `end`.
fn files(ward: usize, seq: u32, end: &str) -> Vec<(String, Vec<u8>)> {
    let (muni, insurer) = WARDS[ward];
    let mut ks_lines = Vec::new();
    let mut kk_lines = Vec::new();
    for h in 0..HOUSEHOLDS {
        let household = format!("{}{h:03}", ward + 1);
        if end.is_empty() {
            ks_lines.push(ks(&household, "20200401", "01", &resident(ward, h, 0), ""));
        }
        for p in 0..PERSONS {
            let n = individual_number(60_000_000_000 + (ward * 10_000 + h * 10 + p) as u64);
            let end_reason = if end.is_empty() { "" } else { "99" };
            let changed = if end.is_empty() { "20200401" } else { end };
            kk_lines.push(kk(
                &resident(ward, h, p),
                &household,
                &n,
                "19800101",
                "1",
                "20200401",
                "03",
                end,
                end_reason,
                "",
                "",
                changed,
            ));
        }
    }
    let mut out = Vec::new();
    if !ks_lines.is_empty() {
        out.push(input_file("KS", muni, insurer, seq, &ks_lines));
    }
    out.push(input_file("KK", muni, insurer, seq, &kk_lines));
    out
}

async fn submit_all(sys: &mut TestSystem, seq: u32, end: &str) {
    for (ward, (muni, _)) in WARDS.iter().enumerate() {
        let r = sys.client.submit(muni, files(ward, seq, end)).await.unwrap();
        assert_eq!(r.rejected, 0, "{r:?}");
    }
}

async fn settle_long(sys: &mut TestSystem) {
    let r = sys.client.wait_idle(Duration::from_secs(120)).await.unwrap();
    assert!(r.idle, "the system did not settle: {:?}", r.progress);
}

async fn undelivered(sys: &TestSystem) -> u64 {
    let s = sys.client.clone().relay_status(None).await.unwrap();
    s.partitions.iter().map(|p| p.undelivered).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_arrives_once_in_order_through_faults() {
    let mut sys = spawn_system_with(20260401, &[("relay_in_flight", "4")]).await;
    let per_ward = HOUSEHOLDS * PERSONS;
    let all = (WARDS.len() * per_ward) as u64;
    // The simulator unreachable while two versions of every record are planned: each person has
    // a 1 新規 and a 2 変更 waiting, in that order.
    sys.client.midserver_faults(Faults { unreachable: true, ..Default::default() }).await.unwrap();
    submit_all(&mut sys, 1, "").await;
    kokuho_testkit::eventually("新規 planned", Duration::from_secs(60), || {
        let sys = &sys;
        async move { (undelivered(sys).await == all).then_some(()) }
    })
    .await;
    submit_all(&mut sys, 2, "20260331").await;
    kokuho_testkit::eventually("変更 planned", Duration::from_secs(60), || {
        let sys = &sys;
        async move { (undelivered(sys).await == 2 * all).then_some(()) }
    })
    .await;

    // Back, slow and losing answers; relay (and the simulator, in the same process) killed
    // mid-delivery; then NATS restarted under the running services.
    let lossy = Faults { lose_ack_per_mille: 300, delay_ms: 20, ..Default::default() };
    sys.client.midserver_faults(lossy.clone()).await.unwrap();
    kokuho_testkit::eventually("deliveries under way", Duration::from_secs(60), || {
        let sys = &sys;
        async move { (undelivered(sys).await < 2 * all).then_some(()) }
    })
    .await;
    sys.stop_services().await;
    sys.start_services().await;
    sys.client.midserver_faults(lossy).await.unwrap();
    sys.nats.restart().await;
    settle_long(&mut sys).await;

    for (muni, _) in WARDS {
        let listing = sys.client.midserver_listing(muni).await.unwrap();
        assert_eq!(listing.subscribers.len(), per_ward, "{muni}: nothing lost");
        assert!(listing.subscribers.iter().all(|s| s.lost_on == 20260401), "{muni}: the 変更 is the last applied");
        assert_eq!(listing.applied, 2 * per_ward as u64, "{muni}: each operation applied once (新規 + 変更)");
        let files = sys.fetch(muni).await;
        let rm = data_rows(&files, "RM");
        assert_eq!(rm.len(), 2 * per_ward, "{muni}: one RM row per operation");
        assert!(rm.iter().all(|r| r[5] == "0"), "{muni}: nothing rejected (order per person kept): {rm:?}");
        let distinct: BTreeSet<(String, String)> = rm.iter().map(|r| (r[0].clone(), r[4].clone())).collect();
        assert_eq!(distinct.len(), 2 * per_ward, "{muni}: no operation answered twice");
        assert!(data_rows(&files, "RE").iter().all(|r| r[0] != "R"), "{muni}: no R rows");
    }
    sys.stop().await;
}
