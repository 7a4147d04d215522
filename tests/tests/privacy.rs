//! security.md S1 and S4: after the sample scenario, no 個人番号 of the scenario is anywhere
//! the system wrote (the JetStream store, the sled stores — relay's and the intermediate-server
//! simulator's included, R6 — the log, the answers and result files), as plain digits, UTF-16 or
//! base64.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use kokuho_client::scenario::{self, Outcome, Scenario};
use kokuho_e2e::app::spawn_system;
use kokuho_e2e::sample_dir;

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
    // A generated scenario on top: 300 persons with numbers, in two wards.
    let (generated, generated_numbers) = generated_submissions();
    let mut generated_answers = Vec::new();
    for (muni, files) in generated {
        let r = sys.client.submit(muni, files).await.unwrap();
        generated_answers.push(format!("{r:?}"));
    }
    sys.settle().await;
    for m in ["131016", "131032"] {
        for f in sys.client.fetch_files(m).await.unwrap() {
            generated_answers.push(String::from_utf8_lossy(&f.content).into_owned());
        }
    }
    // history holds every fact about a person (and is asked once, so that its answer and its
    // audit entry are written too).
    let h = sys.client.history(
        kokuho_client::HistorySubject::Resident { municipality: "131032", resident: "200001" },
        0,
        true,
    );
    let h = h.await.unwrap();
    assert!(!h.facts.is_empty(), "history answered");
    generated_answers.push(format!("{h:?}"));
    // relay sent them on: the simulator's store holds records (sealed numbers), relay's store its
    // ledger; both are scanned below.
    assert!(!sys.client.midserver_partition("131016").await.unwrap().is_empty(), "relay delivered");
    let numbers: Vec<String> = numbers.into_iter().chain(generated_numbers).collect();
    let root = sys.nats.dir().to_path_buf();
    // Stop the services and the server so every store is flushed and no file is being replaced
    // while it is read; the temp dir lives as long as `sys`.
    sys.stop_services().await;
    sys.nats.stop().await;

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
    answers.extend(generated_answers.join("\n").into_bytes());
    let mut haystacks: Vec<(String, Vec<u8>)> =
        vec![("answers and result files".into(), answers), ("log".into(), log.0.lock().unwrap().clone())];
    let mut paths = Vec::new();
    files_under(&root, &mut paths);
    for p in &paths {
        haystacks.push((p.display().to_string(), std::fs::read(p).unwrap()));
    }
    assert!(paths.iter().any(|p| p.to_string_lossy().contains("jetstream")), "the stream store was scanned");
    assert!(paths.iter().any(|p| p.to_string_lossy().contains("store")), "the sled stores were scanned");
    assert!(paths.iter().any(|p| p.to_string_lossy().contains("store/relay")), "relay's store was scanned");
    assert!(paths.iter().any(|p| p.to_string_lossy().contains("midserver-sim")), "the simulator's store was scanned");
    assert!(paths.iter().any(|p| p.to_string_lossy().contains("store/history")), "history's store was scanned");
    // Positive control: the scan sees clear text that is stored (names are not sealed).
    assert!(
        haystacks.iter().any(|(name, h)| name.contains("jetstream") && contains(h, "山田 太郎".as_bytes())),
        "the scan can find text in the stream store"
    );
    assert!(log.0.lock().unwrap().len() > 1_000, "the log was captured");

    // One multi-pattern automaton over every encoding of every number, one pass per haystack.
    let patterns: Vec<(String, Vec<u8>)> = numbers.iter().flat_map(|n| needles(n)).collect();
    let automaton = aho_corasick::AhoCorasick::new(patterns.iter().map(|(_, p)| p)).unwrap();
    let mut found = Vec::new();
    for (name, hay) in &haystacks {
        if let Some(m) = automaton.find(hay) {
            found.push(format!("{} of a scenario number in {name}", patterns[m.pattern().as_usize()].0));
        }
    }
    assert!(found.is_empty(), "個人番号 found: {found:#?}");
}

/// (municipality, its files) of one submission.
type Submission = (&'static str, Vec<(String, Vec<u8>)>);

/// Two wards' KS and KK files for 300 generated persons, and their numbers.
fn generated_submissions() -> (Vec<Submission>, Vec<String>) {
    let mut numbers = Vec::new();
    let mut out = Vec::new();
    for (w, (muni, insurer, symbol)) in
        [("131016", "130013", "千代田"), ("131032", "130039", "港")].into_iter().enumerate()
    {
        let ks = format!("1,KS,{muni},{insurer},20260401,7\n2,1,9001,20200401,01,900001,0,{symbol},9001,09,\n9,1\n");
        let mut kk = format!("1,KK,{muni},{insurer},20260401,7\n");
        for i in 0..150u64 {
            let number = kokuho_testkit::individual_number(70_000_000_000 + (w as u64) * 1_000 + i * 7_919);
            kk.push_str(&format!(
                "2,1,{},9001,1,{number},生成 太郎,セイセイ タロウ,19800101,1,01,20200401,03,,,,,20200401\n",
                900_001 + i
            ));
            numbers.push(number);
        }
        kk.push_str("9,150\n");
        out.push((muni, vec![("KS.csv".to_string(), ks.into_bytes()), ("KK.csv".to_string(), kk.into_bytes())]));
    }
    (out, numbers)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    aho_corasick::AhoCorasick::new([needle]).unwrap().is_match(hay)
}
