//! The CLI's read commands against a running `kokuho up`, after the sample scenario: `files list`
//! names the stored result files and `files get` writes one again byte for byte (a clerk who
//! lost a file), `anomalies` lists 中央区's open A01 with why (C3–C7), `waiting` its held
//! record (R02, rules.md R5); another municipality's token is refused (S5). No 個人番号 in any
//! output (S1). And Ctrl-C stops `kokuho up`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on what cannot happen.

use std::path::{Path, PathBuf};
use std::process::Output;

use kokuho_client::scenario::{self, Scenario};

mod common;

const CHUO: &str = "131024";

fn sample() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/sample"))
}

/// `kokuho --data-dir <data> <args>`.
fn kokuho(data: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kokuho")).arg("--data-dir").arg(data).args(args).output().unwrap()
}

/// The command's JSON answer; it must have succeeded.
fn json(data: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend(args);
    let out = kokuho(data, &all);
    assert!(out.status.success(), "kokuho {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("kokuho {args:?}: {e}"))
}

/// Every 12-digit 個人番号 of the sample's KK files.
fn numbers() -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(sample()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().contains("_KK") {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            for line in text.lines().filter(|l| l.starts_with("2,")) {
                out.extend(
                    line.split(',')
                        .filter(|f| f.len() == 12 && f.bytes().all(|b| b.is_ascii_digit()))
                        .map(String::from),
                );
            }
        }
    }
    assert!(!out.is_empty());
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn read_commands_after_the_sample() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _up = common::start(&data);
    let mut client = common::client(&data).await;
    let played = scenario::play(&mut client, &Scenario::load(&sample()).unwrap(), |_| {}).await.unwrap();
    // Every file 中央区 fetched (and acknowledged) while the sample played.
    let fetched: Vec<_> = played.iter().flat_map(|r| r.fetched.get(CHUO).cloned().unwrap_or_default()).collect();
    assert!(fetched.len() >= 3, "{fetched:?}");
    let mut printed = Vec::new();

    // files list: nothing pending, every fetched file stored, newest first; by pages.
    let listing = json(&data, &["files", "list", "--municipality", CHUO]);
    printed.push(listing.to_string());
    assert_eq!(listing["pending"].as_array().unwrap().len(), 0, "{listing}");
    let stored: Vec<&str> = listing["stored"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    let mut expected: Vec<&str> = fetched.iter().map(|f| f.name.as_str()).collect();
    expected.reverse();
    assert_eq!(stored, expected);
    let page = json(&data, &["files", "list", "--municipality", CHUO, "--limit", "2"]);
    let before = page["next_before"].as_u64().unwrap().to_string();
    let next = json(&data, &["files", "list", "--municipality", CHUO, "--limit", "2", "--before", &before]);
    assert_eq!(next["stored"][0]["name"].as_str(), Some(expected[2]), "{next}");

    // files get: the bytes fetched then, again.
    let out_dir = dir.path().join("again");
    for f in &fetched {
        let out = kokuho(&data, &["files", "get", "--municipality", CHUO, &f.name, "--out", out_dir.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(std::fs::read(out_dir.join(&f.name)).unwrap(), f.content, "{} written again", f.name);
    }
    let missing =
        kokuho(&data, &["files", "get", "--municipality", CHUO, "RS_131024_20260401_999999.csv", "--out", "x"]);
    assert_eq!(missing.status.code(), Some(1), "a file that does not exist");

    // anomalies: 中央区's open A01 of resident 300001 (the mover from 千代田区), with why.
    let anomalies = json(&data, &["anomalies", "--municipality", CHUO]);
    printed.push(anomalies.to_string());
    let a01: Vec<_> = anomalies["anomalies"].as_array().unwrap().iter().filter(|a| a["code"] == "A01").collect();
    assert_eq!(a01.len(), 1, "{anomalies}");
    assert_eq!(a01[0]["resident"], "300001");
    assert_eq!(a01[0]["counterpart"], "131016");
    assert!(!a01[0]["why"].as_array().unwrap().is_empty(), "A01 without why: {anomalies}");
    let text = kokuho(&data, &["anomalies", "--municipality", CHUO]);
    printed.push(String::from_utf8_lossy(&text.stdout).into_owned());
    assert!(String::from_utf8_lossy(&text.stdout).contains("300001 A01"));

    // waiting: 中央区's 300009, held for review (R02), with the R row's text.
    let waiting = json(&data, &["waiting", "--municipality", CHUO]);
    printed.push(waiting.to_string());
    let held: Vec<_> = waiting["records"].as_array().unwrap().iter().filter(|r| r["resident"] == "300009").collect();
    assert_eq!(held.len(), 1, "{waiting}");
    assert_eq!(held[0]["code"], "R02");
    let text = kokuho(&data, &["waiting", "--municipality", CHUO]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("300009") && text.contains("識別子不整合"), "{text}");
    printed.push(text);

    // S5: 千代田区's token asks for 中央区's files, anomalies, waiting records: refused.
    let chiyoda = kokuho_system::credentials_dir(&data).join("131016.token");
    assert!(chiyoda.exists(), "{}", chiyoda.display());
    for args in [
        vec!["files", "list", "--municipality", CHUO],
        vec!["anomalies", "--municipality", CHUO],
        vec!["waiting", "--municipality", CHUO],
    ] {
        let mut all = vec!["--token-file", chiyoda.to_str().unwrap()];
        all.extend(args.iter().copied());
        let out = kokuho(&data, &all);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?} with 千代田区's token: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    // S1: no 個人番号 in anything printed.
    let all = printed.join("\n");
    for n in numbers() {
        assert!(!all.contains(&n), "a 個人番号 was printed");
    }
}

/// Ctrl-C in the terminal of `kokuho up` reaches its nats-server as well (one process group),
/// which then goes first: the system still stops, in bounded time — it used to wait for the log
/// forever.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_up_even_when_its_nats_server_goes_first() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut up = common::start(&data);
    let mut client = common::client(&data).await;
    // Work in the runners, so that they are in steps that need the log.
    let sample = sample();
    let files =
        ["01_131016_KS.csv", "01_131016_KK.csv"].map(|f| (f.to_string(), std::fs::read(sample.join(f)).unwrap()));
    client.submit("131016", files.to_vec()).await.unwrap();
    let took = up.interrupt(std::time::Duration::from_secs(60)).await;
    assert!(took.is_some(), "kokuho up did not stop within a minute of Ctrl-C");
}
