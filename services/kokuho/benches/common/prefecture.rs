//! The generated prefecture of the benchmarks (`just bench`): 62 municipalities, persons
//! insured since 2025-04-01, every tenth of whom moves to the next municipality once a year;
//! and a service measured alone, as deployed, until it has caught up.
#![allow(dead_code)] // Each benchmark uses its part.

use std::time::{Duration, Instant};

use kokuho_bus::{Bus, ConsumerDef};
use kokuho_client::Client;
use kokuho_ids::{Date, Month};
use kokuho_system::{System, SystemConfig};
use kokuho_testkit::TestNats;

/// The first day of the `k`-th month after 2025-04.
pub(crate) fn first_day(k: u32) -> Date {
    let m = Month::from_index(Month::new(2025, 4).unwrap().index() + k as i32);
    Date::from_ymd(m.year(), m.month(), 1).unwrap()
}

pub(crate) struct Municipality {
    pub(crate) code: String,
    pub(crate) insurer: String,
    pub(crate) symbol: String,
}

/// One file of a submission.
pub(crate) fn file(m: &Municipality, kind: &str, seq: u32, rows: &[String]) -> (String, Vec<u8>) {
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
pub(crate) struct Person {
    pub(crate) i: usize,
    pub(crate) j: u64,
}

impl Person {
    pub(crate) fn number(self, per_muni: u64) -> String {
        kokuho_testkit::individual_number(20_000_000_000 + self.i as u64 * per_muni + self.j)
    }

    /// Every tenth person moves once a year: in year `j % 10`, month `(j / 10) % 12` of it
    /// (months counted from 2025-04).
    pub(crate) fn move_month(self, years: u32) -> Option<u32> {
        let year = (self.j % 10) as u32;
        (year < years).then_some(year * 12 + ((self.j / 10) % 12) as u32)
    }

    /// One mover in five is reported by the destination three months late, after the day
    /// close that raised 転入未着 (A03).
    pub(crate) fn late(self) -> bool {
        (self.j / 10).is_multiple_of(5)
    }
}

pub(crate) const KK_TAIL: &str = "生成 太郎,セイセイ タロウ,19800101,1,01";

/// The rows a month's cycle sends for municipality `i`: its move-outs of `month`, the arrivals
/// of `month` reported on time, and the late arrivals of `month - 3`.
pub(crate) fn cycle(
    munis: &[Municipality],
    i: usize,
    per_muni: u64,
    years: u32,
    month: u32,
) -> (Vec<String>, Vec<String>) {
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

pub(crate) fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kib| kib / 1024)
        .unwrap_or(0)
}

/// The municipalities of the default registry.
pub(crate) fn municipalities() -> Vec<Municipality> {
    kokuho_system::default_registry()
        .municipalities()
        .map(|m| Municipality {
            code: m.code.to_string(),
            insurer: m.insurer.to_string(),
            symbol: m.name.chars().take(3).collect(),
        })
        .collect()
}

/// Submits the prefecture: every municipality's register, then `years` of monthly cycles, each
/// ended by a day close; `extra(i, j)` adds KG rows for person `j` of municipality `i`'s
/// household at load. Returns the number of records submitted.
pub(crate) async fn load(
    client: &mut Client,
    munis: &[Municipality],
    per_muni: u64,
    years: u32,
    kg: impl Fn(usize, u64) -> Vec<String>,
) -> u64 {
    let mut records = 0u64;
    for (i, m) in munis.iter().enumerate() {
        let (mut ks, mut kk, mut kgs) = (Vec::new(), Vec::new(), Vec::new());
        for j in 0..per_muni {
            let (h, r) = (100_000 + j, 500_000 + j);
            ks.push(format!("2,1,{h},20250401,01,{r},0,{},{h},,", m.symbol));
            kk.push(format!("2,1,{r},{h},1,{},{KK_TAIL},20250401,03,,,,,20250401", Person { i, j }.number(per_muni)));
            kgs.extend(kg(i, j));
        }
        records += (ks.len() + kk.len() + kgs.len()) as u64;
        let mut files = vec![file(m, "KS", 1, &ks), file(m, "KK", 1, &kk)];
        if !kgs.is_empty() {
            files.push(file(m, "KG", 1, &kgs));
        }
        client.submit(&m.code, files).await.unwrap();
    }
    for month in 0..12 * years + 3 {
        for (i, m) in munis.iter().enumerate() {
            let (ks, kk) = cycle(munis, i, per_muni, years, month);
            records += (ks.len() + kk.len()) as u64;
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
    records
}

/// Raw JetStream: a durable pull consumer reads `stream` from the start and acknowledges each
/// group of up to 1,000 messages, as the projection runner does. Returns (messages, time).
pub(crate) async fn raw_consume(bus: &Bus, stream: &'static str) -> (u64, Duration) {
    let (messages, _) = bus.stream_size(stream).await.unwrap();
    let def = kokuho_bus::ConsumerDef {
        name: format!("bench-raw-{}", stream.to_lowercase()),
        stream,
        max_deliver: 1,
        filter_subject: None,
    };
    let start = Instant::now();
    let mut consumer = bus.consume(&def, 1).await.unwrap();
    let mut seen = 0;
    while seen < messages {
        let group = consumer.next_group(1_000, Duration::from_millis(2)).await.unwrap();
        seen += group.len() as u64;
        group.last().unwrap().ack().await.unwrap();
    }
    let took = start.elapsed();
    bus.remove_consumer(stream, &def.name).await.unwrap();
    (messages, took)
}

/// All `consumers` durable consumers of `service` exist and have acknowledged everything in
/// their streams.
pub(crate) async fn caught_up(bus: &Bus, service: &str, consumers: usize, streams: &[&str]) -> bool {
    let mut heads = std::collections::BTreeMap::new();
    for s in streams {
        // The service makes its own stream when it starts.
        let Ok(head) = bus.last_seq(s).await else { return false };
        heads.insert(s.to_string(), head);
    }
    let prefix = format!("{service}-");
    let progress = bus.progress().await.unwrap();
    let mine: Vec<_> = progress.iter().filter(|p| p.consumer.starts_with(&prefix)).collect();
    mine.len() == consumers && mine.iter().all(|p| heads.get(&p.stream).is_none_or(|head| p.ack_floor >= *head))
}

/// `kokuho serve SERVICE` (the binary as deployed, so its memory is its own) on a fresh store,
/// until its `consumers` have [`caught_up`] over `streams` and `done` says so (relay: every
/// operation answered). Returns how long it took and its resident memory
/// (seconds, MiB), sampled every 100 ms. `KOKUHO_BENCH_WRAP="heaptrack -o f"` runs it under a
/// profiler.
#[allow(clippy::too_many_arguments)] // Each benchmark names every one of them.
pub(crate) async fn service_alone(
    bus: &Bus,
    url: &str,
    data_dir: &std::path::Path,
    service: &str,
    args: &[&str],
    consumers: usize,
    streams: &[&str],
    mut done: impl AsyncFnMut() -> bool,
) -> (Duration, Vec<(f64, u64)>) {
    let wrap = std::env::var("KOKUHO_BENCH_WRAP").unwrap_or_default();
    let mut command: Vec<String> = wrap.split_whitespace().map(str::to_string).collect();
    command.push(env!("CARGO_BIN_EXE_kokuho").to_string());
    let start = Instant::now();
    let mut child = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .args(["--data-dir", &data_dir.display().to_string(), "serve", service, "--nats", url])
        .args(["--listen", "127.0.0.1:0", "--credentials"])
        .arg(kokuho_system::credentials_dir(data_dir))
        .args(args)
        .env("RUST_LOG", std::env::var("KOKUHO_BENCH_LOG").unwrap_or_else(|_| "warn".into()))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut samples = Vec::new();
    loop {
        samples.push((start.elapsed().as_secs_f64(), rss_of(pid)));
        if let Some(status) = child.try_wait().unwrap() {
            panic!("kokuho serve {service} ended early: {status}");
        }
        if caught_up(bus, service, consumers, streams).await && done().await {
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

/// The most resident memory in each quarter of a run of `took`.
pub(crate) fn quarters(took: Duration, samples: &[(f64, u64)]) -> String {
    (0..4)
        .map(|q| {
            let (from, to) = (took.as_secs_f64() * q as f64 / 4.0, took.as_secs_f64() * (q + 1) as f64 / 4.0);
            let in_quarter = samples.iter().filter(|(t, _)| *t >= from && *t <= to).map(|(_, r)| *r).max();
            // A quarter shorter than a sample: the last sample before it.
            let before = samples.iter().rev().find(|(t, _)| *t < from).map(|(_, r)| *r);
            in_quarter.or(before).unwrap_or(0).to_string()
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The prefecture as loaded: where, how big, how long it took.
pub(crate) struct Loaded {
    pub(crate) data_dir: std::path::PathBuf,
    pub(crate) records: u64,
    pub(crate) load: Duration,
    pub(crate) years: u32,
}

/// Generates and loads the prefecture (`KOKUHO_BENCH_PERSONS`, default `default_persons`;
/// `KOKUHO_BENCH_YEARS`, 1 to 10) through `services` on `nats`, printing what `bench` runs.
pub(crate) async fn load_prefecture(
    bench: &str,
    nats: &TestNats,
    services: Vec<&'static str>,
    kg: impl Fn(usize, u64) -> Vec<String>,
    default_persons: u64,
) -> Loaded {
    let persons: u64 =
        std::env::var("KOKUHO_BENCH_PERSONS").ok().and_then(|v| v.parse().ok()).unwrap_or(default_persons);
    let years: u32 = std::env::var("KOKUHO_BENCH_YEARS").ok().and_then(|v| v.parse().ok()).unwrap_or(1).clamp(1, 10);
    let data_dir = nats.dir().join("data");
    let munis = municipalities();
    let per_muni = persons / munis.len() as u64;
    println!(
        "kokuho bench ({bench}): {} persons in {} municipalities, {years} year(s) of moves; fsync always",
        per_muni * munis.len() as u64,
        munis.len()
    );
    let start = Instant::now();
    let config = SystemConfig {
        services,
        nats_url: Some(nats.url()),
        ..SystemConfig::embedded(data_dir.clone(), std::sync::Arc::new(kokuho_system::default_registry()))
            .with_business_date(20250401)
    };
    let system = System::start(config).await.unwrap();
    let mut client = Client::connect_trusting(system.endpoint(), system.client_tls())
        .await
        .unwrap()
        .with_dev_credentials(kokuho_system::credentials_dir(&data_dir));
    let records = load(&mut client, &munis, per_muni, years, kg).await;
    system.stop().await.unwrap();
    Loaded { data_dir, records, load: start.elapsed(), years }
}

/// Reads `stream` from the start to its last message now, handing each payload to `each`.
pub(crate) async fn read_stream(bus: &Bus, stream: &'static str, mut each: impl FnMut(&[u8])) {
    let last = bus.last_seq(stream).await.unwrap();
    let def = ConsumerDef {
        name: format!("bench-read-{}", stream.to_lowercase()),
        stream,
        max_deliver: 1,
        filter_subject: None,
    };
    let mut consumer = bus.consume(&def, 1).await.unwrap();
    let mut seen = 0;
    while seen < last {
        let group = consumer.next_group(1_000, Duration::from_millis(20)).await.unwrap();
        for d in &group {
            seen = d.stream_seq;
            each(&d.payload);
        }
        group.last().unwrap().ack().await.unwrap();
    }
    bus.remove_consumer(stream, &def.name).await.unwrap();
}
