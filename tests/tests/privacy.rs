//! security.md S1 and S4: after the sample scenario, no 個人番号 of the scenario is anywhere
//! the system wrote (the JetStream store, the sled stores, the log, the answers and result
//! files), as plain digits, UTF-16 or base64.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use kokuho_client::scenario::{self, Outcome, Scenario};
use kokuho_e2e::sample_dir;
use kokuho_testkit::app::spawn_system;

/// Every 個人番号 field (KK field 6) of the scenario's files, valid or not.
fn scenario_numbers(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.file_name().unwrap().to_string_lossy().contains("_KK") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap_or_else(|_| encoding_rs_decode(&bytes));
        for line in text.lines() {
            let f: Vec<&str> = line.split(',').collect();
            if f.first() == Some(&"2") && f.len() > 5 && f[5].len() == 12 {
                out.push(f[5].to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn encoding_rs_decode(bytes: &[u8]) -> String {
    // The fixture's CP932 file: the number field is ASCII either way.
    bytes.iter().map(|b| if b.is_ascii() { *b as char } else { ' ' }).collect()
}

fn needles(number: &str) -> Vec<(String, Vec<u8>)> {
    let utf16le: Vec<u8> = number.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    let utf16be: Vec<u8> = number.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
    vec![
        ("plain".into(), number.as_bytes().to_vec()),
        ("utf-16le".into(), utf16le),
        ("utf-16be".into(), utf16be),
        ("base64".into(), base64::engine::general_purpose::STANDARD.encode(number).into_bytes()),
    ]
}

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[derive(Clone)]
struct SharedLog(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SharedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_individual_number_is_written_anywhere() {
    // Everything any crate logs, at every level, goes into `log`.
    let log = SharedLog(Arc::new(Mutex::new(Vec::new())));
    let writer = log.clone();
    tracing_subscriber::fmt().with_env_filter("trace").with_writer(move || writer.clone()).with_ansi(false).init();

    let scenario = Scenario::load(&sample_dir()).unwrap();
    let numbers = scenario_numbers(&sample_dir());
    assert!(numbers.len() >= 5, "the scenario has numbers to look for: {numbers:?}");
    let mut sys = spawn_system(scenario.first_business_date().unwrap()).await;
    let reports = scenario::play(&mut sys.client, &scenario, |_| {}).await.unwrap();
    let root = sys.nats.dir().to_path_buf();
    // Stop the services so every store is flushed; the temp dir lives as long as `sys`.
    sys.stop_services().await;

    // What the clients got: answers and result files.
    let mut answers = Vec::new();
    for r in &reports {
        if let Outcome::Submitted { response, .. } = &r.outcome {
            writeln!(answers, "{response:?}").unwrap();
        }
        for files in r.fetched.values() {
            for f in files {
                answers.extend_from_slice(&f.content);
            }
        }
    }
    let mut haystacks: Vec<(String, Vec<u8>)> =
        vec![("answers and result files".into(), answers), ("log".into(), log.0.lock().unwrap().clone())];
    let mut paths = Vec::new();
    files_under(&root, &mut paths);
    for p in &paths {
        haystacks.push((p.display().to_string(), std::fs::read(p).unwrap()));
    }
    assert!(paths.iter().any(|p| p.to_string_lossy().contains("jetstream")), "the stream store was scanned");
    assert!(paths.iter().any(|p| p.to_string_lossy().contains("store")), "the sled stores were scanned");
    // Positive control: the scan sees clear text that is stored (names are not sealed).
    assert!(
        haystacks.iter().any(|(name, h)| name.contains("jetstream") && contains(h, "山田 太郎".as_bytes())),
        "the scan can find text in the stream store"
    );
    assert!(log.0.lock().unwrap().len() > 1_000, "the log was captured");

    let mut found = Vec::new();
    for n in &numbers {
        for (encoding, needle) in needles(n) {
            for (name, hay) in &haystacks {
                if contains(hay, &needle) {
                    found.push(format!("{encoding} of a scenario number in {name}"));
                }
            }
        }
    }
    assert!(found.is_empty(), "個人番号 found: {found:#?}");
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
