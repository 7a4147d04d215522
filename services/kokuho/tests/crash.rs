//! Crash-restart at scale (issue 13): the whole `kokuho up` tree (kokuho and its nats-server)
//! SIGKILLed at random moments during a generated multi-municipality scenario (submissions,
//! day closes), restarted on the same data dir, every step retried as a clerk would. The result
//! rows of every municipality must be those of a clean run of the same scenario: none lost,
//! none twice. `just test` kills 3 times over 24 persons; `just test-faults` 20 times over 600
//! persons (`KOKUHO_FAULT_KILLS`, `KOKUHO_FAULT_PERSONS`, `KOKUHO_FAULT_SEED`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on what cannot happen.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use kokuho_client::{Client, ClientError};
use kokuho_e2e::generate::{Lcg, kk, ks};
use kokuho_e2e::input_file;
use kokuho_testkit::individual_number;

mod common;
use common::{client, start};

const MUNIS: [(&str, &str); 3] = [("131016", "130013"), ("131024", "130021"), ("131032", "130039")];

/// One thing a clerk or the operator does.
#[derive(Clone, Debug)]
enum Step {
    Submit { municipality: &'static str, files: Vec<(String, Vec<u8>)> },
    CloseDay(u32),
}

/// A municipality's KS and KK lines of one phase.
type Lines = (Vec<String>, Vec<String>);

/// `persons` persons over three municipalities and three phases separated by day closes: some
/// stay, some are born without a number that arrives later (I5), some move between
/// municipalities (C-rules, RS of both sides).
fn scenario(seed: u64, persons: u64) -> Vec<Step> {
    let mut rng = Lcg(seed);
    // phase → municipality → (KS lines, KK lines)
    let mut phases: Vec<BTreeMap<&'static str, Lines>> = vec![BTreeMap::new(); 3];
    for i in 0..persons {
        let a = rng.below(3) as usize;
        let b = (a + 1 + rng.below(2) as usize) % 3;
        let (ma, mb) = (MUNIS[a].0, MUNIS[b].0);
        let number = individual_number(50_000 + seed * 1_000 + i);
        let (ra, rb) = (format!("{}{i:05}", a + 1), format!("{}{i:05}", b + 4));
        let (ha, hb) = (format!("{}{i:04}", a + 1), format!("{}{i:04}", b + 4));
        let mut push = |phase: usize, muni: &'static str, house: Option<String>, person: String| {
            let batch = phases[phase].entry(muni).or_default();
            batch.0.extend(house);
            batch.1.push(person);
        };
        match rng.below(3) {
            0 => push(
                0,
                ma,
                Some(ks(&ha, "20200401", "01", &ra, "")),
                kk(&ra, &ha, &number, "19800707", "1", "20200401", "03", "", "", "", "", "20200401"),
            ),
            1 => {
                let born = "20260405";
                push(
                    0,
                    ma,
                    Some(ks(&ha, born, "01", &ra, "")),
                    kk(&ra, &ha, "", born, "2", born, "04", "", "", "", "", born),
                );
                push(1, ma, None, kk(&ra, &ha, &number, born, "2", born, "04", "", "", "", "", born));
            }
            _ => {
                push(
                    0,
                    ma,
                    Some(ks(&ha, "20200401", "01", &ra, "")),
                    kk(&ra, &ha, &number, "19800707", "1", "20200401", "03", "", "", "", "", "20200401"),
                );
                let moved_out =
                    kk(&ra, &ha, &number, "19800707", "1", "20200401", "03", "20260509", "02", "", mb, "20260509");
                push(1, ma, None, moved_out);
                let arrival = kk(&rb, &hb, &number, "19800707", "1", "20260510", "02", "", "", ma, "", "20260510");
                push(1, mb, Some(ks(&hb, "20260510", "02", &rb, ma)), arrival);
            }
        }
    }
    let mut steps = Vec::new();
    let mut sequence: BTreeMap<&str, u32> = BTreeMap::new();
    for (p, phase) in phases.into_iter().enumerate() {
        for (muni, (ks_lines, kk_lines)) in phase {
            let insurer = MUNIS.iter().find(|m| m.0 == muni).unwrap().1;
            let seq = sequence.entry(muni).or_insert(0);
            *seq += 1;
            let mut files = Vec::new();
            if !ks_lines.is_empty() {
                files.push(input_file("KS", muni, insurer, *seq, &ks_lines));
            }
            files.push(input_file("KK", muni, insurer, *seq, &kk_lines));
            steps.push(Step::Submit { municipality: muni, files });
        }
        if p < 2 {
            steps.push(Step::CloseDay([20260501, 20260601][p]));
        }
    }
    steps
}

/// Does one step; `Err` when the system did not answer (it is down: restart and retry).
async fn act(client: &mut Client, step: &Step, retry: bool) -> Result<(), ClientError> {
    match step {
        Step::Submit { municipality, files } => {
            let r = client.submit(municipality, files.clone()).await?;
            assert!(!r.receipt.is_empty(), "{r:?}");
            Ok(())
        }
        Step::CloseDay(date) => match client.close_day(*date).await {
            Ok(_) => Ok(()),
            // A retry after the close was stored before the kill: the date is already later.
            Err(ClientError::Status(s)) if retry && s.code() != tonic::Code::Unavailable => Ok(()),
            Err(e) => Err(e),
        },
    }
}

/// What the result files of every municipality say, by (municipality, kind), in a form that
/// does not depend on when things ran: every RS, RI and RE row of intake, identity and
/// continuity (decided per event: the same rows whatever the timing), sorted; for the rows of
/// workflows that decide on the latest facts of several streams (relay's RM and R rows,
/// kogaku's RK, RG and A08 rows), which may rightly skip a step a slower run sent, the state
/// they leave: the latest row per key, and the open R/A08 rows.
async fn results(client: &mut Client) -> BTreeMap<(String, String), Vec<String>> {
    client.wait_idle(Duration::from_secs(120)).await.unwrap();
    let mut rows: BTreeMap<(String, String), Vec<Vec<String>>> = BTreeMap::new();
    for (muni, _) in MUNIS {
        // In file order: the latest row of a key is the last one.
        let mut files = client.fetch_files(muni).await.unwrap();
        files.sort_by(|a, b| a.name.cmp(&b.name));
        for f in files {
            let text = String::from_utf8_lossy(&f.content).into_owned();
            let data =
                text.lines().filter(|l| l.starts_with("2,")).map(|l| l.split(',').skip(1).map(String::from).collect());
            rows.entry((muni.to_string(), f.kind.clone())).or_default().extend(data);
        }
    }
    let mut out = BTreeMap::new();
    for ((muni, kind), rows) in rows {
        let f = |r: &Vec<String>, i: usize| r.get(i).cloned().unwrap_or_default();
        let mut latest: BTreeMap<String, String> = BTreeMap::new();
        let mut view: Vec<String> = Vec::new();
        for r in &rows {
            match kind.as_str() {
                // 宛名番号/記号/番号 → 枝番, deleted, 結果 (as the fixture's relay view).
                "RM" => {
                    let deleted = if f(r, 4) == "3" { "1" } else { "0" };
                    latest.insert(
                        format!("{}/{}/{}", f(r, 0), f(r, 1), f(r, 2)),
                        format!("{}/{deleted}/{}", f(r, 3), f(r, 5)),
                    );
                }
                "RK" => {
                    latest.insert(format!("{}/{}/{}/{}", f(r, 1), f(r, 2), f(r, 3), f(r, 4)), r[5..].join(","));
                }
                "RG" => {
                    latest.insert(f(r, 0), r[2..].join(","));
                }
                "RE" if f(r, 0) == "R" || f(r, 1) == "A08" => {
                    latest.insert(
                        format!("{}/{}/{}/{}/{}/{}", f(r, 0), f(r, 1), f(r, 5), f(r, 8), f(r, 9), f(r, 10)),
                        f(r, 11),
                    );
                }
                _ => view.push(r.join(",")),
            }
        }
        view.sort();
        view.extend(latest.into_iter().filter(|(_, v)| kind != "RE" || v == "1").map(|(k, v)| format!("{k} → {v}")));
        out.insert((muni, kind), view);
    }
    out
}

/// Plays `steps` on a fresh data dir, SIGKILLing the tree at `kills` random moments (seeded),
/// and returns the result rows.
async fn play(steps: &[Step], kills: usize, seed: u64) -> (BTreeMap<(String, String), Vec<String>>, usize) {
    let dir = tempfile::tempdir().unwrap();
    let data: PathBuf = dir.path().join("data");
    let mut rng = Lcg(seed);
    // The steps during which a kill comes (one step may see several, one per attempt), and how
    // long after the attempt starts.
    let mut at: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for _ in 0..kills {
        at.entry(rng.below(steps.len() as u64) as usize).or_default().push(50 + rng.below(1500));
    }
    let mut up = start(&data);
    let mut c = client(&data).await;
    let mut restarts = 0;
    for (i, step) in steps.iter().enumerate() {
        let mut retry = false;
        let mut pending = at.remove(&i).unwrap_or_default();
        loop {
            let outcome = match pending.pop() {
                Some(ms) => {
                    let act = act(&mut c, step, retry);
                    tokio::pin!(act);
                    tokio::select! {
                        r = &mut act => {
                            // The step was quicker than the kill: kill it at rest.
                            let _ = r;
                            Err(())
                        }
                        () = tokio::time::sleep(Duration::from_millis(ms)) => Err(()),
                    }
                }
                None => act(&mut c, step, retry).await.map_err(|_| ()),
            };
            match outcome {
                Ok(()) => break,
                Err(()) => {
                    // Down (or killed on purpose now): the whole tree goes, and comes back.
                    up.kill();
                    up = start(&data);
                    c = client(&data).await;
                    retry = true;
                    restarts += 1;
                }
            }
        }
    }
    let rows = results(&mut c).await;
    up.kill();
    (rows, restarts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_repeats_nothing() {
    let kills: usize = std::env::var("KOKUHO_FAULT_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let seed: u64 = std::env::var("KOKUHO_FAULT_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(7);
    let persons: u64 = std::env::var("KOKUHO_FAULT_PERSONS").ok().and_then(|v| v.parse().ok()).unwrap_or(24);
    let steps = scenario(seed, persons);
    let (clean, _) = play(&steps, 0, seed).await;
    assert!(clean.keys().any(|(_, kind)| kind == "RS"), "the scenario makes RS rows: {:?}", clean.keys());
    let (crashed, restarts) = play(&steps, kills, seed).await;
    assert!(restarts >= kills, "{restarts} restarts for {kills} kills");
    eprintln!("{} steps, {restarts} SIGKILLs and restarts, {} result kinds compared", steps.len(), clean.len());
    for key in clean.keys().chain(crashed.keys()) {
        assert_eq!(
            crashed.get(key),
            clean.get(key),
            "{key:?} after {kills} kills (seed {seed}) differs from a clean run"
        );
    }
}
