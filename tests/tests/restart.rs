//! Nothing accepted is lost: stores deleted while the services are down are rebuilt from the
//! log with the same receipts, 送信通番, business date and pending result files.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use kokuho_client::SubmissionStatus;
use kokuho_e2e::app::{CHIYODA, CHUO, spawn_system};
use kokuho_e2e::sample_dir;

fn read(name: &str) -> (String, Vec<u8>) {
    (name.to_string(), std::fs::read(sample_dir().join(name)).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_rebuilt_from_the_log_give_the_same_answers() {
    let mut sys = spawn_system(20260401).await;
    let step1 = vec![read("01_131016_KS.csv"), read("01_131016_KK.csv"), read("01_131016_KG.csv")];
    let first = sys.client.submit(CHIYODA, step1.clone()).await.unwrap();
    assert_eq!(first.status(), SubmissionStatus::Accepted);
    let bad = sys.client.submit(CHUO, vec![read("08_131024_KG_bad_trailer.csv")]).await.unwrap();
    assert_eq!((bad.status(), bad.code.as_str()), (SubmissionStatus::Rejected, "F03"));
    sys.client.close_day(20260501).await.unwrap();
    sys.settle().await;
    let before = sys.client.status(&first.receipt).await.unwrap();

    // Down; every sled store deleted; up again.
    sys.stop_services().await;
    std::fs::remove_dir_all(sys.data_dir().join("store")).unwrap();
    sys.start_services().await;

    let again = sys.client.submit(CHIYODA, step1).await.unwrap();
    assert_eq!((again.status(), again.receipt.as_str()), (SubmissionStatus::Duplicate, first.receipt.as_str()));
    let after = sys.client.status(&first.receipt).await.unwrap();
    assert_eq!((after.accepted, after.files.clone()), (before.accepted, before.files.clone()));
    // The business date survived: closing 20260501 again is refused.
    assert!(sys.client.close_day(20260501).await.is_err());
    // The F03 row is waiting for 中央区, once.
    let files = sys.client.fetch_files(CHUO).await.unwrap();
    assert_eq!(files.len(), 1);
    let text = String::from_utf8(files[0].content.clone()).unwrap();
    assert_eq!(text.matches(",F03,").count(), 1, "{text}");
    // The next receipt continues the count.
    let next = sys.client.submit(CHUO, vec![read("09_131024_KG.csv")]).await.unwrap();
    assert_eq!(next.receipt, "131024-00000002");
    sys.stop().await;
}
