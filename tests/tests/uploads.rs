//! S9 and issue 14: many municipalities uploading at once over one connection (a console, a
//! proxy, the benchmark's clerks) all get their answer. intake reads a few submissions at a
//! time; the others wait unread, and before the server's HTTP/2 windows were sized for that,
//! their data filled the connection's window and starved the ones being read, for good.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use std::time::Duration;

use kokuho_client::SubmissionStatus;
use kokuho_e2e::app::spawn_system;

/// A KS file of municipality `code` of about 300 KB whose trailer does not count its records:
/// read whole, then rejected at once (F-code), so that only the upload is measured.
fn miscounted(code: &str, insurer: &str) -> Vec<(String, Vec<u8>)> {
    let mut ks = format!("1,KS,{code},{insurer},20260401,1\n");
    for h in 0..5_000 {
        ks.push_str(&format!("2,1,{},20200401,01,{},0,記号,{},09,\n", 10_000 + h, 50_000 + h, 10_000 + h));
    }
    ks.push_str("9,1\n");
    vec![("KS.csv".into(), ks.into_bytes())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s9_every_municipality_uploading_at_once_on_one_connection_gets_its_answer() {
    let sys = spawn_system(20260401).await;
    let registry = kokuho_system::default_registry();
    let mut tasks = tokio::task::JoinSet::new();
    for m in registry.municipalities() {
        let (code, insurer) = (m.code.to_string(), m.insurer.to_string());
        // Clones share the one HTTP/2 connection.
        let mut client = sys.client.clone();
        tasks.spawn(async move { client.submit(&code, miscounted(&code, &insurer)).await.unwrap().status() });
    }
    let answers = tokio::time::timeout(Duration::from_secs(120), async {
        let mut done = Vec::new();
        while let Some(r) = tasks.join_next().await {
            done.push(r.unwrap());
        }
        done
    })
    .await
    .expect("every upload was answered (none starved by the others' unread data)");
    assert_eq!(answers.len(), 62);
    assert!(answers.iter().all(|s| *s == SubmissionStatus::Rejected), "{answers:?}");
    sys.stop().await;
}
