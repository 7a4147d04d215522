//! relay through the running system (rules.md R1–R6, P1–P2): what each partition of the
//! intermediate-server simulator holds after KS/KK files, the RM and R rows the municipality
//! gets, the number released per operation at send time, and provision requests.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use std::time::Duration;

use kokuho_client::midserver::{EligibilityRequest, Faults};
use kokuho_client::relay::ProvideRequest;
use kokuho_client::{ClientError, Code};
use kokuho_e2e::app::{CHIYODA, CHUO, MINATO, TestSystem, spawn_system, spawn_system_with};
use kokuho_e2e::generate::{kk, ks};
use kokuho_e2e::{data_rows, input_file};
use kokuho_testkit::individual_number;

const INSURER: &str = "130013";

/// A 被保険者 of household `household` at 千代田区 from `start`, with `number` (empty: none).
fn person(resident: &str, household: &str, number: &str, start: &str) -> String {
    kk(resident, household, number, "19800101", "1", start, "03", "", "", "", "", start)
}

fn asked(number: &str, branch: u32, date: u32) -> EligibilityRequest {
    EligibilityRequest { insurer: INSURER.into(), symbol: "記号".into(), number: number.into(), branch, date }
}

/// RM rows as (宛名番号, 記号, 番号, 枝番, 処理区分, 結果).
fn rm(files: &[kokuho_client::ResultFile]) -> Vec<(String, String, String, String, String, String)> {
    data_rows(files, "RM")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone(), r[3].clone(), r[4].clone(), r[5].clone()))
        .collect()
}

/// R rows of RE as (code, 宛名番号, 状態).
fn r_rows(files: &[kokuho_client::ResultFile]) -> Vec<(String, String, String)> {
    data_rows(files, "RE")
        .into_iter()
        .filter(|r| r[0] == "R")
        .map(|r| (r[1].clone(), r[5].clone(), r[11].clone()))
        .collect()
}

async fn submit(sys: &mut TestSystem, seq: u32, ks_lines: &[String], kk_lines: &[String]) {
    let mut files = Vec::new();
    if !ks_lines.is_empty() {
        files.push(input_file("KS", CHIYODA, INSURER, seq, ks_lines));
    }
    if !kk_lines.is_empty() {
        files.push(input_file("KK", CHIYODA, INSURER, seq, kk_lines));
    }
    let r = sys.client.submit(CHIYODA, files).await.unwrap();
    assert_eq!(r.rejected, 0, "{r:?}");
    sys.settle().await;
}

async fn released(sys: &TestSystem) -> Vec<kokuho_proto::audit::v1::NumberReleased> {
    use kokuho_proto::audit::v1::audit_event::Event;
    let bus = sys.nats.bus().await;
    let chain = bus.read_subject(kokuho_runtime::audit::AUDIT.name, kokuho_runtime::audit::RELEASES_SUBJECT).await;
    chain
        .unwrap()
        .into_iter()
        .filter_map(|(_, bytes)| match kokuho_bus::event::decode::<kokuho_runtime::audit::Audit>(&bytes).ok()?.1 {
            Event::NumberReleased(r) => Some(r),
            Event::AccessRecorded(_) => None,
        })
        .collect()
}

/// R2, R3, R4, R6: three persons of one household become relayable in one submission: 枝番 01,
/// 02, 03 in KK line order (not 宛名番号 order); each is insured at the simulator as soon as the
/// submission has settled; RM has one 1 新規 row each; the number was released to relay once per
/// record, audited, and the answer of an eligibility check carries none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_in_line_order_delivered_and_eligible() {
    let mut sys = spawn_system(20260401).await;
    let n = |i: u64| individual_number(50_000_000_000 + i);
    submit(
        &mut sys,
        1,
        &[ks("1001", "20200401", "01", "100003", "")],
        &[
            person("100003", "1001", &n(3), "20200401"),
            person("100001", "1001", &n(1), "20210401"),
            person("100002", "1001", &n(2), "20220401"),
        ],
    )
    .await;
    let files = sys.fetch(CHIYODA).await;
    let mut got = rm(&files);
    got.sort();
    let row = |r: &str, b: &str| (r.to_string(), "記号".into(), "1001".into(), b.to_string(), "1".into(), "0".into());
    assert_eq!(got, vec![row("100001", "02"), row("100002", "03"), row("100003", "01")]);
    // R2: insurer-level dates from the period; the prefecture level from continuity (C1).
    let e = sys.client.eligibility(asked("1001", 2, 20260401)).await.unwrap();
    assert!(e.found && e.insured, "{e:?}");
    assert_eq!((e.acquired_on, e.lost_on, e.pref_acquired_on), (20210401, 0, 20210401));
    let before = sys.client.eligibility(asked("1001", 2, 20210331)).await.unwrap();
    assert!(before.found && !before.insured, "not insured before 資格取得年月日: {before:?}");
    // R1: the records are in 千代田区's partition only; another ward may not read it.
    assert_eq!(sys.client.midserver_partition(CHIYODA).await.unwrap().len(), 3);
    assert!(sys.client.midserver_partition(MINATO).await.unwrap().is_empty());
    let dir = kokuho_system::credentials_dir(&sys.data_dir());
    let caller = kokuho_runtime::credentials::Caller::Municipality(CHUO.into());
    let mut chuo = sys.client.with_token(kokuho_runtime::credentials::Credentials::token_of(&dir, &caller).unwrap());
    let refused = chuo.midserver_partition(CHIYODA).await;
    assert!(matches!(refused, Err(ClientError::Status(ref s)) if s.code() == Code::PermissionDenied), "{refused:?}");
    // R6: one audited release per record sent, to relay, at send time.
    let releases = released(&sys).await;
    assert_eq!(releases.len(), 3, "one release per record");
    assert!(releases.iter().all(|r| r.caller == "relay" && r.purpose.starts_with("中間サーバー連携 131016")));
    sys.stop().await;
}

/// R3: a 枝番 is kept for good and never reused: a deleted period's record goes (3 削除) and its
/// 枝番 is not given again; a later person gets the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_a_branch_is_never_reused() {
    let mut sys = spawn_system(20260401).await;
    let n = |i: u64| individual_number(51_000_000_000 + i);
    submit(
        &mut sys,
        1,
        &[ks("1001", "20200401", "01", "100001", "")],
        &[person("100001", "1001", &n(1), "20200401"), person("100002", "1001", &n(2), "20200401")],
    )
    .await;
    sys.fetch(CHIYODA).await;
    // 100002's period is deleted: its record goes.
    submit(&mut sys, 2, &[], &["2,3,100002,1001,1,,,,,,,20200401,,,,,,".into()]).await;
    let files = sys.fetch(CHIYODA).await;
    assert_eq!(rm(&files), vec![("100002".into(), "記号".into(), "1001".into(), "02".into(), "3".into(), "0".into())]);
    assert!(!sys.client.eligibility(asked("1001", 2, 20260401)).await.unwrap().found);
    // A new member gets 03, not the freed 02.
    submit(&mut sys, 3, &[], &[person("100003", "1001", &n(3), "20250401")]).await;
    let files = sys.fetch(CHIYODA).await;
    assert_eq!(rm(&files), vec![("100003".into(), "記号".into(), "1001".into(), "03".into(), "1".into(), "0".into())]);
    sys.stop().await;
}

/// R3: R04 when every 枝番 of a 記号番号 is used: the 100th person of a household waits, reported
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_r04_after_ninety_nine() {
    let mut sys = spawn_system(20260401).await;
    let lines: Vec<String> = (1..=100)
        .map(|i| person(&format!("{:06}", 100_000 + i), "1001", &individual_number(52_000_000_000 + i), "20200401"))
        .collect();
    submit(&mut sys, 1, &[ks("1001", "20200401", "01", "100001", "")], &lines).await;
    let files = sys.fetch(CHIYODA).await;
    let rows = rm(&files);
    assert_eq!(rows.len(), 99);
    assert!(rows.iter().any(|r| r.0 == "100099" && r.3 == "99"), "line order: the 99th line gets 99");
    assert_eq!(r_rows(&files), vec![("R04".into(), "100100".into(), "1".into())]);
    sys.stop().await;
}

/// R2, R4: a change of 記号番号 (a new household state) sends 3 削除 under the old card and 1 新規
/// under the new one; the 枝番 under the new card is its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_a_card_change_deletes_and_registers() {
    let mut sys = spawn_system(20260401).await;
    submit(
        &mut sys,
        1,
        &[ks("1001", "20200401", "01", "100001", "")],
        &[person("100001", "1001", &individual_number(53_000_000_001), "20200401")],
    )
    .await;
    sys.fetch(CHIYODA).await;
    // The household gets a new card from 2026-04-01.
    submit(&mut sys, 2, &["2,1,1001,20260401,01,100001,0,新記号,7001,09,".into()], &[]).await;
    let files = sys.fetch(CHIYODA).await;
    let mut got = rm(&files);
    got.sort_by(|a, b| a.4.cmp(&b.4));
    assert_eq!(
        got,
        vec![
            ("100001".into(), "新記号".into(), "7001".into(), "01".into(), "1".into(), "0".into()),
            ("100001".into(), "記号".into(), "1001".into(), "01".into(), "3".into(), "0".into()),
        ]
    );
    let new = EligibilityRequest {
        insurer: INSURER.into(),
        symbol: "新記号".into(),
        number: "7001".into(),
        branch: 1,
        date: 20260401,
    };
    assert!(sys.client.eligibility(new).await.unwrap().insured);
    assert!(!sys.client.eligibility(asked("1001", 1, 20260401)).await.unwrap().found);
    sys.stop().await;
}

/// R5: a person sent without a 個人番号 waits (R01, reported once); when the number arrives the
/// record goes by itself and R01 closes; RM has its 1 新規.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r5_without_a_number_waits_then_goes() {
    let mut sys = spawn_system(20260401).await;
    submit(&mut sys, 1, &[ks("1001", "20200401", "01", "100001", "")], &[person("100001", "1001", "", "20200401")])
        .await;
    let files = sys.fetch(CHIYODA).await;
    assert!(rm(&files).is_empty(), "nothing is sent without a number");
    assert_eq!(r_rows(&files), vec![("R01".into(), "100001".into(), "1".into())]);
    let status = sys.client.relay_status(Some(CHIYODA)).await.unwrap();
    assert_eq!(status.partitions[0].waiting, 1);
    assert!(status.partitions[0].waiting_records.is_empty(), "records are listed only when asked");
    // The clerk's list of waiting records: the resident, its period, R01, the receipt and line.
    let listed = sys.client.relay_waiting(CHIYODA, "", 10).await.unwrap();
    let [w] = listed.partitions[0].waiting_records.as_slice() else { panic!("{listed:?}") };
    let open = w.wait.clone().unwrap();
    assert_eq!((w.resident_number.as_str(), w.start, open.code.as_str()), ("100001", 20200401, "R01"));
    assert!(!open.receipt.is_empty() && open.line > 0, "{open:?}");
    // Another record of the same person without a number: no second R01.
    submit(
        &mut sys,
        2,
        &[],
        &[kk("100001", "1001", "", "19800101", "1", "20200401", "03", "", "", "", "", "20250401")],
    )
    .await;
    assert!(r_rows(&sys.fetch(CHIYODA).await).is_empty(), "R01 is reported once");
    // The number arrives.
    let number = individual_number(54_000_000_001);
    submit(
        &mut sys,
        3,
        &[],
        &[kk("100001", "1001", &number, "19800101", "1", "20200401", "03", "", "", "", "", "20260401")],
    )
    .await;
    let files = sys.fetch(CHIYODA).await;
    assert_eq!(rm(&files), vec![("100001".into(), "記号".into(), "1001".into(), "01".into(), "1".into(), "0".into())]);
    assert_eq!(r_rows(&files), vec![("R01".into(), "100001".into(), "2".into())]);
    assert!(sys.client.eligibility(asked("1001", 1, 20260401)).await.unwrap().insured);
    assert_eq!(sys.client.relay_status(Some(CHIYODA)).await.unwrap().partitions[0].waiting, 0);
    assert!(sys.client.relay_waiting(CHIYODA, "", 10).await.unwrap().partitions[0].waiting_records.is_empty());
    sys.stop().await;
}

/// R5: a municipality's waiting records come in pages that join up: each page at most the
/// size asked, in 宛名番号 order, the last one without a next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r5_waiting_records_in_pages() {
    let mut sys = spawn_system(20260401).await;
    let residents = ["100001", "100002", "100003", "100004", "100005"];
    let ks_lines: Vec<_> = residents.iter().map(|r| ks("1001", "20200401", "01", r, "")).collect();
    let kk_lines: Vec<_> = residents.iter().map(|r| person(r, "1001", "", "20200401")).collect();
    submit(&mut sys, 1, &ks_lines, &kk_lines).await;
    sys.fetch(CHIYODA).await;
    let mut seen = Vec::new();
    let mut after = String::new();
    let mut pages = 0;
    loop {
        let status = sys.client.relay_waiting(CHIYODA, &after, 2).await.unwrap();
        let p = &status.partitions[0];
        assert_eq!(p.waiting, 5);
        assert!(p.waiting_records.len() <= 2, "{p:?}");
        seen.extend(p.waiting_records.iter().map(|w| w.resident_number.clone()));
        pages += 1;
        if p.waiting_next.is_empty() {
            break;
        }
        after = p.waiting_next.clone();
    }
    assert_eq!(seen, residents, "every waiting record once, in order");
    assert_eq!(pages, 3);
    sys.stop().await;
}

/// R5: a record the server rejects is R03 in RE and 結果 1 in RM, with the server's code; it
/// closes when a later version of the record is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r5_a_rejected_record_is_r03() {
    let mut sys = spawn_system(20260401).await;
    let all = Faults { reject_per_mille: 1000, reject_reason: "検証エラー".into(), ..Default::default() };
    sys.client.midserver_faults(all).await.unwrap();
    let number = individual_number(55_000_000_001);
    submit(
        &mut sys,
        1,
        &[ks("1001", "20200401", "01", "100001", "")],
        &[person("100001", "1001", &number, "20200401")],
    )
    .await;
    let files = sys.fetch(CHIYODA).await;
    let rows = data_rows(&files, "RM");
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0][5].as_str(), rows[0][6].as_str(), rows[0][7].as_str()), ("1", "M99", "検証エラー"));
    assert_eq!(r_rows(&files), vec![("R03".into(), "100001".into(), "1".into())]);
    assert_eq!(sys.client.relay_status(Some(CHIYODA)).await.unwrap().partitions[0].rejected, 1);
    sys.stop().await;
}

/// No silent stalls: with the server unreachable, a partition with records waiting raises R05
/// (an RE row, the status board, the metrics) after the configured time; when the server is back
/// the records go and R05 closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_partition_raises_r05_and_recovers() {
    let mut sys = spawn_system_with(20260401, &[("relay_stall_seconds", "1")]).await;
    sys.client.midserver_faults(Faults { unreachable: true, ..Default::default() }).await.unwrap();
    let files = vec![
        input_file("KS", CHIYODA, INSURER, 1, &[ks("1001", "20200401", "01", "100001", "")]),
        input_file(
            "KK",
            CHIYODA,
            INSURER,
            1,
            &[person("100001", "1001", &individual_number(56_000_000_001), "20200401")],
        ),
    ];
    sys.client.submit(CHIYODA, files).await.unwrap();
    let stalled = kokuho_testkit::eventually("R05 raised", Duration::from_secs(30), || {
        let mut c = sys.client.clone();
        async move {
            let s = c.relay_status(None).await.ok()?;
            let p = s.partitions.iter().find(|p| p.municipality == CHIYODA)?;
            (p.stalled && !s.server_reachable).then_some(p.clone())
        }
    })
    .await;
    assert_eq!(stalled.undelivered, 1);
    // The same on the metrics a monitoring system scrapes.
    let metrics = sys.metrics().await;
    for line in [
        "kokuho_relay_stalled{municipality=\"131016\"} 1",
        "kokuho_relay_undelivered{municipality=\"131016\"} 1",
        "kokuho_relay_server_reachable 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("kokuho_relay_lag_seconds{municipality=\"131016\"} ") && !l.ends_with(" 0")),
        "a lag: {metrics}"
    );
    assert!(!sys.client.wait_idle(Duration::from_millis(500)).await.unwrap().idle, "records wait: not idle");
    sys.client.midserver_faults(Faults::default()).await.unwrap();
    sys.settle().await;
    let files = sys.fetch(CHIYODA).await;
    assert_eq!(rm(&files).len(), 1);
    let r05: Vec<_> = r_rows(&files).into_iter().filter(|r| r.0 == "R05").map(|r| r.2).collect();
    assert_eq!(r05, vec!["1".to_string(), "2".to_string()], "raised, then closed");
    let s = sys.client.relay_status(Some(CHIYODA)).await.unwrap();
    assert!(!s.partitions[0].stalled && s.server_reachable && s.idle);
    let metrics = sys.metrics().await;
    for line in ["kokuho_relay_stalled{municipality=\"131016\"} 0", "kokuho_relay_records{municipality=\"131016\"} 1"] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    sys.stop().await;
}

/// P1, P2: a request is allowed only for a (file, target, 項) the shipped policy lists; every
/// request, allowed or denied, is in the provision record; only an operator may ask or read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p1_p2_provision_by_policy_and_recorded() {
    let mut sys = spawn_system(20260401).await;
    submit(
        &mut sys,
        1,
        &[ks("1001", "20200401", "01", "100001", "")],
        &[person("100001", "1001", &individual_number(57_000_000_001), "20200401")],
    )
    .await;
    let pref_id = released(&sys).await[0].pref_id.clone();
    let ask = |target: &str, item: u32, file: &str| ProvideRequest {
        requester: "全国健康保険協会 東京支部".into(),
        target: target.into(),
        item,
        file: file.into(),
        person: pref_id.clone(),
    };
    let allowed = sys.client.provide(ask("全国健康保険協会", 2, "被保険者台帳ファイル")).await.unwrap();
    assert!(allowed.allowed, "{allowed:?}");
    assert_eq!(allowed.records.len(), 1);
    assert_eq!(allowed.records[0].branch, 1);
    // The same target under another 項, or for the other file, is denied.
    assert!(!sys.client.provide(ask("全国健康保険協会", 1, "被保険者台帳ファイル")).await.unwrap().allowed);
    let denied = sys.client.provide(ask("存在しない機関", 2, "給付情報ファイル")).await.unwrap();
    assert!(!denied.allowed && denied.records.is_empty());
    let log = sys.client.provision_log().await.unwrap();
    assert_eq!(log.iter().map(|e| (e.item, e.allowed)).collect::<Vec<_>>(), vec![(2, true), (1, false), (2, false)]);
    assert!(log.iter().all(|e| e.person == pref_id && e.caller == "operator" && e.requested_at > 0));
    // A municipality may not ask for or read the record.
    let dir = kokuho_system::credentials_dir(&sys.data_dir());
    let caller = kokuho_runtime::credentials::Caller::Municipality(CHIYODA.into());
    let mut clerk = sys.client.with_token(kokuho_runtime::credentials::Credentials::token_of(&dir, &caller).unwrap());
    let refused = clerk.provision_log().await;
    assert!(matches!(refused, Err(ClientError::Status(ref s)) if s.code() == Code::PermissionDenied));
    sys.stop().await;
}

/// R5: a record held in an identity conflict waits (R02, the fixture's 300009 at 中央区); once
/// the operator links it (I6) it goes by itself and R02 closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r5_a_held_record_waits_until_the_review_links_it() {
    use kokuho_client::ReviewAction;
    use kokuho_client::scenario::{self, Scenario};
    let scenario = Scenario::load(&kokuho_e2e::sample_dir()).unwrap();
    let mut sys = spawn_system(scenario.first_business_date().unwrap()).await;
    let reports = scenario::play(&mut sys.client, &scenario, |_| {}).await.unwrap();
    let r02: Vec<_> = kokuho_e2e::rows(&reports, "RE")
        .get(CHUO)
        .into_iter()
        .flatten()
        .filter(|r| r[0] == "R" && r[1] == "R02")
        .map(|r| (r[5].clone(), r[11].clone()))
        .collect();
    assert_eq!(r02, vec![("300009".to_string(), "1".to_string())], "reported once");
    let cases = sys.client.list_reviews().await.unwrap();
    let case = cases.iter().find(|c| c.resident_number == "300009").unwrap();
    sys.client.resolve_review(&case.case_id, ReviewAction::Link, "同一人（生年月日の誤記）", "op").await.unwrap();
    sys.settle().await;
    let files = sys.fetch(CHUO).await;
    let sent: Vec<_> = rm(&files).into_iter().filter(|r| r.0 == "300009").collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!((sent[0].4.as_str(), sent[0].5.as_str()), ("1", "0"));
    assert_eq!(r_rows(&files), vec![("R02".into(), "300009".into(), "2".into())]);
    sys.stop().await;
}
