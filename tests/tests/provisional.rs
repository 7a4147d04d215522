//! Three defects that larger generated scenarios found, each reproduced through the running
//! system: RS rows of a person first sent without a 個人番号 (rules.md I2, I5, C9), one RE row
//! per failing check (formats.md), and W rows that name their receipt and line (C8).
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use kokuho_e2e::app::{CHIYODA, MINATO, TestSystem, spawn_system};

use kokuho_e2e::{data_rows, input_file as file};

/// Fetches and acknowledges `muni`'s files; returns the data rows of `kind` (without the `2`).
async fn take_rows(sys: &mut TestSystem, muni: &str, kind: &str) -> Vec<Vec<String>> {
    let files = sys.client.fetch_files(muni).await.unwrap();
    sys.client.acknowledge(muni, files.iter().map(|f| f.name.clone()).collect()).await.unwrap();
    data_rows(&files, kind)
}

/// A KK line of household 2001 at 港区 (or 1001 at 千代田区).
fn person(resident: &str, household: &str, number: &str, period: &str) -> String {
    format!("2,1,{resident},{household},1,{number},山田 太郎,ヤマダ タロウ,19550820,1,01,{period}")
}

const X: &str = "123456789018";

async fn submit(sys: &mut TestSystem, muni: &str, files: Vec<(String, Vec<u8>)>) -> kokuho_client::SubmitResponse {
    let r = sys.client.submit(muni, files).await.unwrap();
    sys.settle().await;
    r
}

/// RS rows of `resident`: (市区町村被保険者ID, 判定区分, 訂正).
fn rs_of(rows: &[Vec<String>], resident: &str) -> Vec<(String, String, String)> {
    rows.iter().filter(|r| r[0] == resident).map(|r| (r[1].clone(), r[8].clone(), r[9].clone())).collect()
}

/// The ID RI reported for `resident`, last.
fn ri_of(rows: &[Vec<String>], resident: &str) -> String {
    rows.iter().rfind(|r| r[0] == resident).map(|r| r[1].clone()).unwrap_or_default()
}

/// A move-in sent first without its 個人番号 (a provisional person at 港区, I5), whose number
/// arrives later and belongs to a person of 千代田区 with no ID at 港区: the survivor takes over
/// the provisional ID, and every RS row carries the ID RI reported (it was sent blank).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i5_rs_rows_carry_the_id_ri_reported_after_a_merge() {
    let mut sys = spawn_system(20260401).await;
    let ks_a = file("KS", CHIYODA, "130013", 1, &["2,1,1001,20200401,01,100001,0,千代田,1001,09,".into()]);
    let kk_a =
        file("KK", CHIYODA, "130013", 1, &[person("100001", "1001", X, "20200401,03,20260509,02,,131032,20260509")]);
    submit(&mut sys, CHIYODA, vec![ks_a, kk_a]).await;
    let ks_b = file("KS", MINATO, "130039", 1, &["2,1,2001,20260510,02,200001,0,港,2001,09,131016".into()]);
    let move_in = |number: &str| person("200001", "2001", number, "20260510,02,,,131016,,20260510");
    let kk_b = file("KK", MINATO, "130039", 1, &[move_in("")]);
    submit(&mut sys, MINATO, vec![ks_b, kk_b]).await;
    let ri = take_rows(&mut sys, MINATO, "RI").await;
    let provisional_id = ri_of(&ri, "200001");
    assert!(!provisional_id.is_empty(), "RI for the provisional person: {ri:?}");

    // The number arrives: it is 100001's person, who has no ID at 港区 and takes this one over.
    let kk_b2 = file("KK", MINATO, "130039", 2, &[move_in(X)]);
    submit(&mut sys, MINATO, vec![kk_b2]).await;
    let rs = data_rows(&sys.client.fetch_files(MINATO).await.unwrap(), "RS");
    assert_eq!(rs_of(&rs, "200001"), vec![(provisional_id, "2".into(), "0".into())], "{rs:?}");
    sys.stop().await;
}

/// A provisional person with two periods merges into a person who has an ID of their own in
/// the same municipality: RI replaces the ID (訂正 1), and the RS rows of both periods are
/// re-sent with the survivor's ID (訂正 1), also the one no later record reported again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i5_a_merge_re_sends_rs_with_the_survivors_id() {
    let mut sys = spawn_system(20260401).await;
    let ks = file("KS", MINATO, "130039", 1, &["2,1,2001,20100401,01,200005,0,港,2001,09,".into()]);
    let kk = file(
        "KK",
        MINATO,
        "130039",
        1,
        &[
            person("200005", "2001", X, "20100401,03,20150331,03,,,20150331"),
            person("200001", "2001", "", "20160401,03,20180331,03,,,20180331"),
            person("200001", "2001", "", "20200401,03,,,,,20200401"),
        ],
    );
    submit(&mut sys, MINATO, vec![ks, kk]).await;
    let ri = take_rows(&mut sys, MINATO, "RI").await;
    let (own, provisional) = (ri_of(&ri, "200005"), ri_of(&ri, "200001"));
    assert_ne!(own, provisional);

    let kk2 = file("KK", MINATO, "130039", 2, &[person("200001", "2001", X, "20200401,03,,,,,20200401")]);
    submit(&mut sys, MINATO, vec![kk2]).await;
    let files = sys.client.fetch_files(MINATO).await.unwrap();
    let rows = |kind: &str| data_rows(&files, kind);
    assert_eq!(ri_of(&rows("RI"), "200001"), own, "RI 訂正 1 with the survivor's ID");
    let rs = rows("RS");
    let resent: Vec<(String, String)> =
        rs.iter().filter(|r| r[0] == "200001").map(|r| (r[6].clone(), r[1].clone())).collect();
    assert_eq!(resent, vec![("20160401".into(), own.clone()), ("20200401".into(), own.clone())], "{rs:?}");
    assert!(rs.iter().filter(|r| r[0] == "200001").all(|r| r[9] == "1"));
    sys.stop().await;
}

/// formats.md: one RE row per failing check. A KK record with a bad field and an unknown
/// household gets E004 and E007.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_with_several_errors_gets_a_row_for_each() {
    let mut sys = spawn_system(20260401).await;
    let kk = file(
        "KK",
        CHIYODA,
        "130013",
        1,
        &["2,1,100001,9999,1,,山田 太郎,ヤマダ タロウ,19550820,3,01,20200401,03,,,,,20200401".into()],
    );
    submit(&mut sys, CHIYODA, vec![kk]).await;
    let re = take_rows(&mut sys, CHIYODA, "RE").await;
    let mut codes: Vec<(String, String)> = re.iter().map(|r| (r[1].clone(), r[6].clone())).collect();
    codes.sort();
    assert_eq!(codes, vec![("E004".into(), "性別".into()), ("E007".into(), "世帯番号".into())]);
    sys.stop().await;
}

/// C8: a W004 row names the 受付番号 and 行番号 of the record that reported the end, also in the
/// submission right after one rejected whole (it was sent with both blank).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c8_w004_names_its_receipt_and_line() {
    let mut sys = spawn_system(20260401).await;
    // A KG file rejected whole (F03: the trailer's count is wrong).
    let bad = ("KG.csv".to_string(), b"1,KG,131016,130013,20260401,1\n2,1,1001,202605,1,20260601\n9,2\n".to_vec());
    let rejected = submit(&mut sys, CHIYODA, vec![bad]).await;
    let ks = file("KS", CHIYODA, "130013", 1, &["2,1,1001,20200401,01,100001,0,千代田,1001,09,".into()]);
    // Born 1955-08-20: the 75th birthday is 2030-08-20; an end 06 on 2029-01-01 is early.
    let kk = file(
        "KK",
        CHIYODA,
        "130013",
        1,
        &[
            person("100002", "1001", "234567890121", "20200401,03,,,,,20200401"),
            person("100001", "1001", X, "20200401,03,20290101,06,,,20290101"),
        ],
    );
    let accepted = submit(&mut sys, CHIYODA, vec![ks, kk]).await;
    assert_ne!(rejected.receipt, accepted.receipt);
    let re = take_rows(&mut sys, CHIYODA, "RE").await;
    let w004: Vec<&Vec<String>> = re.iter().filter(|r| r[1] == "W004").collect();
    assert_eq!(w004.len(), 1, "{re:?}");
    assert_eq!(
        (w004[0][2].as_str(), w004[0][3].as_str(), w004[0][4].as_str(), w004[0][5].as_str()),
        (accepted.receipt.as_str(), "KK", "3", "100001")
    );
    sys.stop().await;
}

/// I5 within one submission: a record without a 個人番号 and, later in the same file, the same
/// 宛名番号 with the number of a person another municipality knows. Every RS row carries the
/// one ID RI reported, and the person keeps it in later submissions (no second ID).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i5_a_merge_within_one_chunk_keeps_one_id() {
    let mut sys = spawn_system(20260401).await;
    let ks_a = file("KS", CHIYODA, "130013", 1, &["2,1,1001,20200401,01,100001,0,千代田,1001,09,".into()]);
    let kk_a = file("KK", CHIYODA, "130013", 1, &[person("100001", "1001", X, "20100401,03,20150331,03,,,20150331")]);
    submit(&mut sys, CHIYODA, vec![ks_a, kk_a]).await;
    let ks = file("KS", MINATO, "130039", 1, &["2,1,2001,20160401,01,200001,0,港,2001,09,".into()]);
    let kk = file(
        "KK",
        MINATO,
        "130039",
        1,
        &[
            person("200001", "2001", "", "20160401,03,20180331,03,,,20180331"),
            person("200001", "2001", X, "20200401,03,,,,,20200401"),
        ],
    );
    submit(&mut sys, MINATO, vec![ks, kk]).await;
    let files = sys.client.fetch_files(MINATO).await.unwrap();
    sys.client.acknowledge(MINATO, files.iter().map(|f| f.name.clone()).collect()).await.unwrap();
    let ri = data_rows(&files, "RI");
    assert_eq!(ri.len(), 1, "one ID for 200001: {ri:?}");
    let id = ri_of(&ri, "200001");
    let rs = data_rows(&files, "RS");
    assert!(rs.iter().filter(|r| r[0] == "200001").all(|r| r[1] == id), "{rs:?}");
    // A later submission keeps the same ID: no new RI, RS rows still carry it.
    let kk2 = file("KK", MINATO, "130039", 2, &[person("200001", "2001", X, "20200401,03,20260331,03,,,20260331")]);
    submit(&mut sys, MINATO, vec![kk2]).await;
    let files = sys.client.fetch_files(MINATO).await.unwrap();
    assert!(data_rows(&files, "RI").is_empty(), "no second ID");
    assert!(data_rows(&files, "RS").iter().all(|r| r[1] == id));
    sys.stop().await;
}
