//! `just bench` (continuity): continuity's processing rate on a generated prefecture, next to raw
//! JetStream consumption of the same stream in the same run, and its memory as the log grows.
//!
//! 1. Load, with intake and identity only: 62 municipalities, 200,000 persons by default
//!    (`KOKUHO_BENCH_PERSONS` to change), every one insured since 2025-04-01; then a year
//!    (`KOKUHO_BENCH_YEARS`, up to 10) of monthly submissions in which every tenth person moves
//!    to the next municipality. The destination reports most arrivals in the same month; one in
//!    five arrives three months late, after a day close has raised 転入未着 (A03), which the
//!    arrival then closes. Each month ends with a day close (rules.md T1).
//! 2. Raw: a durable pull consumer reads identity's stream from the start and acknowledges each
//!    group of up to 1,000 messages, as the projection runner does: the best the server does.
//! 3. `kokuho serve continuity` (the binary as deployed, so its memory is continuity's own) on a
//!    fresh store, so that it starts from the first event: the time until its consumers have
//!    caught up, and the most resident memory in each quarter of the run
//!    (`KOKUHO_BENCH_TRACE=1` prints every sample; `KOKUHO_BENCH_WRAP="heaptrack -o f"` runs
//!    it under a profiler).
#![allow(clippy::print_stdout, clippy::unwrap_used)]

// The allocator of the `kokuho` binary, so that the services run here as they are deployed.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kokuho_bus::{Bus, ConsumerDef};
use kokuho_client::Client;
use kokuho_ids::{Date, Month};
use kokuho_system::{System, SystemConfig};
use kokuho_testkit::TestNats;

/// The first day of the `k`-th month after 2025-04.
fn first_day(k: u32) -> Date {
    let m = Month::from_index(Month::new(2025, 4).unwrap().index() + k as i32);
    Date::from_ymd(m.year(), m.month(), 1).unwrap()
}

struct Municipality {
    code: String,
    insurer: String,
    symbol: String,
}

/// One file of a submission.
fn file(m: &Municipality, kind: &str, seq: u32, rows: &[String]) -> (String, Vec<u8>) {
    let mut t = format!("1,{kind},{},{},20250401,{seq}\n", m.code, m.insurer);
    for r in rows {
        t.push_str(r);
        t.push('\n');
    }
    t.push_str(&format!("9,{}\n", rows.len()));
    (format!("{kind}.csv"), t.into_bytes())
}

/// A person of the generated prefecture: the `j`-th of municipality `i`.
#[derive(Clone, Copy)]
struct Person {
    i: usize,
    j: u64,
}

impl Person {
    fn number(self, per_muni: u64) -> String {
        kokuho_testkit::individual_number(20_000_000_000 + self.i as u64 * per_muni + self.j)
    }

    /// Every tenth person moves once a year: in year `j % 10`, month `(j / 10) % 12` of it
    /// (months counted from 2025-04).
    fn move_month(self, years: u32) -> Option<u32> {
        let year = (self.j % 10) as u32;
        (year < years).then_some(year * 12 + ((self.j / 10) % 12) as u32)
    }

    /// One mover in five is reported by the destination three months late, after the day
    /// close that raised 転入未着 (A03).
    fn late(self) -> bool {
        (self.j / 10).is_multiple_of(5)
    }
}

const KK_TAIL: &str = "生成 太郎,セイセイ タロウ,19800101,1,01";

/// The rows a month's cycle sends for municipality `i`: its move-outs of `month`, the arrivals
/// of `month` reported on time, and the late arrivals of `month - 3`.
fn cycle(munis: &[Municipality], i: usize, per_muni: u64, years: u32, month: u32) -> (Vec<String>, Vec<String>) {
    let n = munis.len();
    let (prev, next) = (&munis[(i + n - 1) % n].code, &munis[(i + 1) % n].code);
    let symbol = &munis[i].symbol;
    let (mut ks, mut kk) = (Vec::new(), Vec::new());
    for j in 0..per_muni {
        let me = Person { i, j };
        if me.move_month(years) == Some(month) {
            let (h, r) = (100_000 + j, 500_000 + j);
            let (end, moved) = (first_day(month + 1).add_days(-1).unwrap(), first_day(month + 1));
            kk.push(format!("2,1,{r},{h},1,{},{KK_TAIL},20250401,03,{end},02,,{next},{moved}", me.number(per_muni)));
        }
        let from = Person { i: (i + n - 1) % n, j };
        let arrives = match from.move_month(years) {
            Some(m) if from.late() => m + 3 == month,
            Some(m) => m == month,
            None => false,
        };
        if arrives {
            let m = from.move_month(years).unwrap();
            let start = first_day(m + 1);
            let (h, r) = (300_000 + j, 700_000 + j);
            ks.push(format!("2,1,{h},{start},02,{r},0,{symbol},{h},,{prev}"));
            kk.push(format!("2,1,{r},{h},1,{},{KK_TAIL},{start},02,,,{prev},,{start}", from.number(per_muni)));
        }
    }
    (ks, kk)
}

fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kib| kib / 1024)
        .unwrap_or(0)
}

/// continuity's three consumers have applied everything in the streams they read.
async fn caught_up(bus: &Bus) -> bool {
    let identity_head = bus.last_seq("KOKUHO_IDENTITY").await.unwrap();
    // continuity makes its stream when it starts.
    let Ok(own_head) = bus.last_seq("KOKUHO_CONTINUITY").await else { return false };
    let progress = bus.progress().await.unwrap();
    let floor = |stream: &str, consumer: &str| {
        progress.iter().find(|p| p.stream == stream && p.consumer == consumer).map_or(0, |p| p.ack_floor)
    };
    floor("KOKUHO_IDENTITY", "continuity-evaluate") >= identity_head
        && floor("KOKUHO_CONTINUITY", "continuity-state") >= own_head
        && floor("KOKUHO_CONTINUITY", "continuity-forward-rows") >= own_head
}

/// Phase 3: `kokuho serve continuity`, the binary as deployed, in a process of its own on a
/// fresh store, until it has caught up. Returns how long it took and its resident memory
/// (seconds, MiB), sampled every 100 ms.
async fn continuity_alone(bus: &Bus, url: &str, data_dir: &std::path::Path) -> (Duration, Vec<(f64, u64)>) {
    // `KOKUHO_BENCH_WRAP="heaptrack -o /tmp/continuity"` runs it under a profiler.
    let wrap = std::env::var("KOKUHO_BENCH_WRAP").unwrap_or_default();
    let mut command: Vec<String> = wrap.split_whitespace().map(str::to_string).collect();
    command.push(env!("CARGO_BIN_EXE_kokuho").to_string());
    let start = Instant::now();
    let mut child = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .args(["--data-dir", &data_dir.display().to_string(), "serve", "continuity", "--nats", url])
        .args(["--listen", "127.0.0.1:0", "--credentials"])
        .arg(kokuho_system::credentials_dir(data_dir))
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut samples = Vec::new();
    loop {
        samples.push((start.elapsed().as_secs_f64(), rss_of(pid)));
        if let Some(status) = child.try_wait().unwrap() {
            panic!("kokuho serve continuity ended early: {status}");
        }
        if caught_up(bus).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = start.elapsed();
    // SIGTERM: a clean stop, so that a profiler writes its file.
    let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    (took, samples)
}

/// What continuity sent, read back from its stream: RS rows, A03 rows opened and closed.
async fn rows_sent(bus: &Bus) -> (u64, u64, u64) {
    let last = bus.last_seq("KOKUHO_CONTINUITY").await.unwrap();
    let def =
        ConsumerDef { name: "bench-rows".into(), stream: "KOKUHO_CONTINUITY", max_deliver: 1, filter_subject: None };
    let mut consumer = bus.consume(&def, 1).await.unwrap();
    let (mut rs, mut opened, mut closed, mut seen) = (0, 0, 0, 0);
    while seen < last {
        let group = consumer.next_group(1_000, Duration::from_millis(20)).await.unwrap();
        for d in &group {
            seen = d.stream_seq;
            let Ok((_, kokuho_continuity_contract::Event::PersonsEvaluated(e))) =
                kokuho_bus::event::decode::<kokuho_continuity_contract::Events>(&d.payload)
            else {
                continue;
            };
            for row in e.rows.iter().flat_map(|m| &m.rows) {
                match (row.kind.as_str(), row.fields.get(1).map(String::as_str), row.fields.last().map(String::as_str))
                {
                    ("RS", _, _) => rs += 1,
                    ("RE", Some("A03"), Some("1")) => opened += 1,
                    ("RE", Some("A03"), Some("2")) => closed += 1,
                    _ => {}
                }
            }
        }
        group.last().unwrap().ack().await.unwrap();
    }
    (rs, opened, closed)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let persons: u64 = std::env::var("KOKUHO_BENCH_PERSONS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let years: u32 = std::env::var("KOKUHO_BENCH_YEARS").ok().and_then(|v| v.parse().ok()).unwrap_or(1).clamp(1, 10);
    let nats = TestNats::start().await;
    let data_dir = nats.dir().join("data");
    let registry = Arc::new(kokuho_system::default_registry());
    let munis: Vec<Municipality> = registry
        .municipalities()
        .map(|m| Municipality {
            code: m.code.to_string(),
            insurer: m.insurer.to_string(),
            symbol: m.name.chars().take(3).collect(),
        })
        .collect();
    let config = |services: Vec<&'static str>| SystemConfig {
        services,
        nats_url: Some(nats.url()),
        ..SystemConfig::embedded(data_dir.clone(), registry.clone()).with_business_date(20250401)
    };
    let per_muni = persons / munis.len() as u64;
    println!(
        "kokuho bench (continuity): {} persons in {} municipalities, {years} year(s) of moves; fsync always",
        per_muni * munis.len() as u64,
        munis.len()
    );

    // 1. Load through intake and identity.
    let load_start = Instant::now();
    let system = System::start(config(vec!["intake", "identity"])).await.unwrap();
    let mut client = Client::connect(system.endpoint())
        .await
        .unwrap()
        .with_dev_credentials(kokuho_system::credentials_dir(&data_dir));
    let mut records = 0u64;
    for (i, m) in munis.iter().enumerate() {
        let (mut ks, mut kk) = (Vec::new(), Vec::new());
        for j in 0..per_muni {
            let (h, r) = (100_000 + j, 500_000 + j);
            ks.push(format!("2,1,{h},20250401,01,{r},0,{},{h},,", m.symbol));
            kk.push(format!("2,1,{r},{h},1,{},{KK_TAIL},20250401,03,,,,,20250401", Person { i, j }.number(per_muni)));
        }
        records += kk.len() as u64;
        client.submit(&m.code, vec![file(m, "KS", 1, &ks), file(m, "KK", 1, &kk)]).await.unwrap();
    }
    for month in 0..12 * years + 3 {
        for (i, m) in munis.iter().enumerate() {
            let (ks, kk) = cycle(&munis, i, per_muni, years, month);
            records += kk.len() as u64;
            let mut files = Vec::new();
            if !ks.is_empty() {
                files.push(file(m, "KS", month + 2, &ks));
            }
            if !kk.is_empty() {
                files.push(file(m, "KK", month + 2, &kk));
            }
            if !files.is_empty() {
                client.submit(&m.code, files).await.unwrap();
            }
        }
        client.close_day(first_day(month + 1).add_days(9).unwrap().to_yyyymmdd()).await.unwrap();
    }
    assert!(client.wait_idle(Duration::from_secs(3600)).await.unwrap().idle);
    system.stop().await.unwrap();
    let load = load_start.elapsed();

    let bus = Bus::connect(&nats.url(), "bench").await.unwrap();
    let (messages, bytes) = bus.stream_size("KOKUHO_IDENTITY").await.unwrap();

    // 2. Raw consumption of identity's stream.
    let def = ConsumerDef { name: "bench-raw".into(), stream: "KOKUHO_IDENTITY", max_deliver: 1, filter_subject: None };
    let raw_start = Instant::now();
    let mut consumer = bus.consume(&def, 1).await.unwrap();
    let mut seen = 0;
    while seen < messages {
        let group = consumer.next_group(1_000, Duration::from_millis(2)).await.unwrap();
        seen += group.len() as u64;
        group.last().unwrap().ack().await.unwrap();
    }
    let raw = raw_start.elapsed();
    drop(consumer);

    // 3. continuity alone, from the first event, in a process of its own.
    let (took, samples) = continuity_alone(&bus, &nats.url(), &data_dir).await;
    if std::env::var_os("KOKUHO_BENCH_TRACE").is_some() {
        println!("{samples:?}");
    }
    // The most resident memory in each quarter of the run.
    let quarters: Vec<String> = (0..4)
        .map(|q| {
            let (from, to) = (took.as_secs_f64() * q as f64 / 4.0, took.as_secs_f64() * (q + 1) as f64 / 4.0);
            let in_quarter = samples.iter().filter(|(t, _)| *t >= from && *t <= to).map(|(_, r)| *r).max();
            // A quarter shorter than a sample: the last sample before it.
            let before = samples.iter().rev().find(|(t, _)| *t < from).map(|(_, r)| *r);
            in_quarter.or(before).unwrap_or(0).to_string()
        })
        .collect();
    let (rs_rows, a03_opened, a03_closed) = rows_sent(&bus).await;
    let (rate, raw_rate) = (records as f64 / took.as_secs_f64(), records as f64 / raw.as_secs_f64());
    let (continuity_messages, _) = bus.stream_size("KOKUHO_CONTINUITY").await.unwrap();
    println!("| measure | value |");
    println!("| --- | ---: |");
    println!(
        "| load (intake + identity, {records} KK records, {} day closes) | {:.1} s |",
        12 * years + 3,
        load.as_secs_f64()
    );
    println!("| identity's stream | {messages} messages, {} MiB, {records} records |", bytes >> 20);
    println!("| raw JetStream: consume identity's stream, ack per group of ≤ 1,000 | {raw_rate:.0} records/s |");
    println!(
        "| continuity: evaluate, commit its state ({continuity_messages} events), forward rows | {rate:.0} records/s ({:.1} s) |",
        took.as_secs_f64()
    );
    println!("| ratio to raw | {:.3} |", rate / raw_rate);
    println!("| rows continuity sent: RS / 転入未着 A03 opened / closed | {rs_rows} / {a03_opened} / {a03_closed} |");
    println!(
        "| `kokuho serve continuity`: most resident memory in each quarter of the run | {} MiB |",
        quarters.join(", ")
    );
}
