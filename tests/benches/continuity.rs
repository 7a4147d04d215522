//! `just bench` (continuity): a generated prefecture (62 municipalities, 200,000 persons by
//! default, `KOKUHO_BENCH_PERSONS` to change), then a year of moves (every tenth person moves to
//! the next municipality), through intake, identity and continuity. Prints continuity's rate
//! (identity events evaluated per second, persons per second) next to raw JetStream consumption
//! of the same stream in the same run, and the process's resident memory after each phase.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use kokuho_bus::{Bus, ConsumerDef};
use kokuho_client::Client;
use kokuho_system::{System, SystemConfig};

fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kib| kib / 1024)
        .unwrap_or(0)
}

fn number(serial: u64) -> String {
    let first11 = format!("{:011}", 20_000_000_000u64 + serial);
    let digits: Vec<u8> = first11.bytes().map(|b| b - b'0').collect();
    format!("{first11}{}", kokuho_ids::individual_number_check(&digits.try_into().unwrap()))
}

/// One municipality's submission: KS and KK files.
fn submission(muni: &str, insurer: &str, seq: u32, ks: &[String], kk: &[String]) -> Vec<(String, Vec<u8>)> {
    let file = |kind: &str, rows: &[String]| {
        let mut t = format!("1,{kind},{muni},{insurer},20250401,{seq}\n");
        for r in rows {
            t.push_str(r);
            t.push('\n');
        }
        t.push_str(&format!("9,{}\n", rows.len()));
        (format!("{kind}.csv"), t.into_bytes())
    };
    let mut out = Vec::new();
    if !ks.is_empty() {
        out.push(file("KS", ks));
    }
    if !kk.is_empty() {
        out.push(file("KK", kk));
    }
    out
}

/// Waits until continuity's `evaluate` consumer has nothing pending; returns when.
async fn settle(client: &mut Client) {
    let r = client.wait_idle(Duration::from_secs(1800)).await.unwrap();
    assert!(r.idle);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let persons: u64 = std::env::var("KOKUHO_BENCH_PERSONS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let dir = std::env::temp_dir().join(format!("kokuho-bench-continuity-{}", std::process::id()));
    let registry = Arc::new(kokuho_system::default_registry());
    let munis: Vec<(String, String, String)> = registry
        .municipalities()
        .map(|m| (m.code.to_string(), m.insurer.to_string(), m.name.chars().take(3).collect()))
        .collect();
    let system = System::start(SystemConfig {
        business_date: Some(20250401),
        ..SystemConfig::embedded(dir.join("data"), registry.clone())
    })
    .await
    .unwrap();
    let mut client = Client::connect(system.endpoint()).await.unwrap();
    let per_muni = persons / munis.len() as u64;
    println!(
        "kokuho bench (continuity): {} persons in {} municipalities, a year of moves; fsync always",
        per_muni * munis.len() as u64,
        munis.len()
    );
    let start = Instant::now();
    // Phase 1: everyone insured since 2025-04-01.
    for (i, (code, insurer, symbol)) in munis.iter().enumerate() {
        let (mut ks, mut kk) = (Vec::new(), Vec::new());
        for j in 0..per_muni {
            let serial = i as u64 * per_muni + j;
            let (h, r) = (100_000 + j, 500_000 + j);
            ks.push(format!("2,1,{h},20250401,01,{r},0,{symbol},{h},,"));
            kk.push(format!(
                "2,1,{r},{h},1,{},生成 太郎,セイセイ タロウ,19800101,1,01,20250401,03,,,,,20250401",
                number(serial)
            ));
        }
        client.submit(code, submission(code, insurer, 1, &ks, &kk)).await.unwrap();
    }
    settle(&mut client).await;
    let phase1 = start.elapsed();
    let rss1 = rss_mib();
    // Phase 2: every tenth person moves to the next municipality on 2025-10-01.
    let moves_start = Instant::now();
    for (i, (code, insurer, symbol)) in munis.iter().enumerate() {
        let (mut out_kk, mut in_ks, mut in_kk) = (Vec::new(), Vec::new(), Vec::new());
        let next = &munis[(i + 1) % munis.len()].0;
        let prev = &munis[(i + munis.len() - 1) % munis.len()].0;
        for j in (0..per_muni).step_by(10) {
            let serial = i as u64 * per_muni + j;
            let (h, r) = (100_000 + j, 500_000 + j);
            out_kk.push(format!(
                "2,1,{r},{h},1,{},生成 太郎,セイセイ タロウ,19800101,1,01,20250401,03,20250930,02,,{next},20251001",
                number(serial)
            ));
            // Arrivals from the previous municipality.
            let from = ((i + munis.len() - 1) % munis.len()) as u64 * per_muni + j;
            let (nh, nr) = (300_000 + j, 700_000 + j);
            in_ks.push(format!("2,1,{nh},20251001,02,{nr},0,{symbol},{nh},,{prev}"));
            in_kk.push(format!(
                "2,1,{nr},{nh},1,{},生成 太郎,セイセイ タロウ,19800101,1,01,20251001,02,,,{prev},,20251001",
                number(from)
            ));
        }
        let mut files = submission(code, insurer, 2, &in_ks, &[]);
        let mut kk = out_kk;
        kk.extend(in_kk);
        files.extend(submission(code, insurer, 2, &[], &kk));
        client.submit(code, files).await.unwrap();
    }
    client.close_day(20260401).await.unwrap();
    settle(&mut client).await;
    let phase2 = moves_start.elapsed();
    let rss2 = rss_mib();

    // Raw JetStream: consume the identity stream (what continuity reads) with an ack per message.
    let url = std::fs::read_to_string(dir.join("data/nats/nats-server.conf"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("listen: ").map(|a| format!("nats://{a}")))
        .unwrap();
    let bus = Bus::connect(&url, "bench").await.unwrap();
    let (messages, bytes) = bus.stream_size("KOKUHO_IDENTITY").await.unwrap();
    let def = ConsumerDef { name: "bench-raw".into(), stream: "KOKUHO_IDENTITY", max_deliver: 1, filter_subject: None };
    let raw_start = Instant::now();
    let mut consumer = bus.consume(&def, 1).await.unwrap();
    let mut seen = 0;
    while seen < messages {
        let group = consumer.next_group(1_000, Duration::from_millis(5)).await.unwrap();
        seen += group.len() as u64;
        for d in &group {
            d.ack().await.unwrap();
        }
    }
    let raw = raw_start.elapsed();
    let evaluated = per_muni * munis.len() as u64 + 2 * (per_muni / 10) * munis.len() as u64;
    let rate = evaluated as f64 / (phase1 + phase2).as_secs_f64();
    let raw_rate = messages as f64 / raw.as_secs_f64();
    println!("| measure | value |");
    println!("| --- | ---: |");
    println!("| identity stream | {messages} messages, {} MiB |", bytes >> 20);
    println!("| raw JetStream: consume the identity stream, ack each | {raw_rate:.0} msg/s |");
    println!(
        "| whole pipeline, person-period updates evaluated by continuity | {rate:.0} /s ({:.1} s + {:.1} s) |",
        phase1.as_secs_f64(),
        phase2.as_secs_f64()
    );
    println!(
        "| ratio (continuity events ÷ raw messages, per second) | {:.2} |",
        (messages as f64 / (phase1 + phase2).as_secs_f64()) / raw_rate
    );
    println!("| resident memory after the first year / after the moves | {rss1} MiB / {rss2} MiB |");
    system.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
