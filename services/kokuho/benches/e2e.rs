//! `just bench-e2e`: a generated prefecture through the whole system, black box, as deployed
//! (`kokuho up`: its own nats-server with fsync always, every service in one process), next to
//! raw JetStream with the same durability in the same run (issue 14).
//!
//! 1. Every municipality of the registry (62 by default, `KOKUHO_BENCH_MUNICIPALITIES` fewer)
//!    loads its register in parallel through the public gRPC API, as clerks' terminals would:
//!    `KOKUHO_BENCH_PERSONS` persons (default 100,000) in two households for every three
//!    persons, in submissions of at most `KOKUHO_BENCH_FILE_PERSONS` persons (default 10,000)
//!    each, KS and KK together.
//! 2. One household in ten moves to the next municipality (KK with the 02 end at A; KS and KK of
//!    the new household at B), again in parallel; a day close.
//! 3. Every receiving municipality decides each of its continuation candidates 継続 in a KT
//!    file (kogaku), in parallel; a day close.
//! 4. Every municipality fetches and acknowledges its result files.
//! 5. Steady state: for `KOKUHO_BENCH_STEADY_SECONDS` (default 20; 0: none) every municipality
//!    sends small submissions of new insured persons (5 persons, KS and KK: 10 records) at a
//!    combined `KOKUHO_BENCH_STEADY_RATE` records/s (default 1,000), as a day at the desks
//!    would; submit → RS decided p50 / p99 of those is the daily latency (target p99 < 500 ms).
//!
//! Printed: records/s end to end (first submit to results fetched), each phase, submit →
//! receipt and submit → RS decided (continuity's event for the submission, from the log)
//! p50 / p99, peak resident memory of `kokuho up` and of its nats-server, disk per record; and
//! raw JetStream: atomic batches of 1,000 messages of a record's size in the intake stream,
//! divided by 3 (a record is appended by intake, identity and continuity), and the ratio.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

#[path = "common/prefecture.rs"]
mod prefecture;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use kokuho_bus::{Append, Bus, StreamDef};
use kokuho_client::Client;
use prefecture::{KK_TAIL, Municipality, file, municipalities, rss_of};

const RAW: StreamDef =
    StreamDef { name: "KOKUHO_RAWBENCH", subjects: &["kokuho.rawbench.>"], description: "benchmark" };

/// The files of one submission.
type Files = Vec<(String, Vec<u8>)>;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The generated prefecture: persons `0..per_muni` of each municipality, person `j` in
/// household `j * 2 / 3` (two households for every three persons).
struct Prefecture {
    munis: Vec<Municipality>,
    per_muni: u64,
    file_persons: u64,
}

fn household_of(j: u64) -> u64 {
    j * 2 / 3
}

fn moves(household: u64) -> bool {
    household.is_multiple_of(10)
}

impl Prefecture {
    fn number(&self, i: usize, j: u64) -> String {
        prefecture::Person { i, j }.number(self.per_muni)
    }

    /// The register of municipality `i`, in submissions of at most `file_persons` persons
    /// (a household's persons in one submission): (files, records).
    fn register(&self, i: usize) -> Vec<(Files, u64)> {
        let m = &self.munis[i];
        let mut out = Vec::new();
        let mut j = 0;
        let mut seq = 1;
        while j < self.per_muni {
            let mut end = (j + self.file_persons).min(self.per_muni);
            // Keep a household whole.
            while end < self.per_muni && household_of(end) == household_of(end - 1) {
                end += 1;
            }
            let (mut ks, mut kk) = (Vec::new(), Vec::new());
            for p in j..end {
                let h = 100_000 + household_of(p);
                if p == j || household_of(p) != household_of(p - 1) {
                    ks.push(format!("2,1,{h},20250401,01,{},0,{},{h},,", 500_000 + p, m.symbol));
                }
                kk.push(format!("2,1,{},{h},1,{},{KK_TAIL},20250401,03,,,,,20250401", 500_000 + p, self.number(i, p)));
            }
            let records = (ks.len() + kk.len()) as u64;
            out.push((vec![file(m, "KS", seq, &ks), file(m, "KK", seq, &kk)], records));
            j = end;
            seq += 1;
        }
        out
    }

    /// Steady submission `k` of municipality `i`: `persons` new persons, each in a household of
    /// their own, acquired on the business date 2025-07-01.
    fn steady(&self, i: usize, k: u64, persons: u64) -> (Files, u64) {
        let m = &self.munis[i];
        let (mut ks, mut kk) = (Vec::new(), Vec::new());
        for p in k * persons..(k + 1) * persons {
            let (h, resident) = (3_000_000 + p, 7_000_000 + p);
            let number = kokuho_testkit::individual_number(40_000_000_000 + i as u64 * 10_000_000 + p);
            ks.push(format!("2,1,{h},20250701,01,{resident},0,{},{h},,", m.symbol));
            kk.push(format!("2,1,{resident},{h},1,{number},{KK_TAIL},20250701,03,,,,,20250701"));
        }
        let records = (ks.len() + kk.len()) as u64;
        let seq = 2_000 + k as u32;
        (vec![file(m, "KS", seq, &ks), file(m, "KK", seq, &kk)], records)
    }

    /// The moves of month 2025-05 as municipality `i` sends them: its movers' ends (02, to the
    /// next municipality, on 2025-05-09) and the households arriving from the previous one.
    fn moves(&self, i: usize, seq: u32) -> (Files, u64) {
        let n = self.munis.len();
        let (m, prev, next) = (&self.munis[i], &self.munis[(i + n - 1) % n].code, &self.munis[(i + 1) % n].code);
        let (mut ks, mut kk) = (Vec::new(), Vec::new());
        for p in 0..self.per_muni {
            let h = household_of(p);
            if !moves(h) {
                continue;
            }
            // Out of here.
            kk.push(format!(
                "2,1,{},{},1,{},{KK_TAIL},20250401,03,20250509,02,,{next},20250509",
                500_000 + p,
                100_000 + h,
                self.number(i, p)
            ));
            // Into here, from the previous municipality (its person p, household h).
            let arriving = 900_000 + h;
            if p == 0 || household_of(p - 1) != h {
                ks.push(format!("2,1,{arriving},20250510,02,{},0,{},{arriving},,{prev}", 800_000 + p, m.symbol));
            }
            let from = (i + n - 1) % n;
            kk.push(format!(
                "2,1,{},{arriving},1,{},{KK_TAIL},20250510,02,,,{prev},,20250510",
                800_000 + p,
                self.number(from, p)
            ));
        }
        let records = (ks.len() + kk.len()) as u64;
        (vec![file(m, "KS", seq, &ks), file(m, "KK", seq, &kk)], records)
    }
}

/// One submission as the bench saw it.
struct Submitted {
    receipt: String,
    started: SystemTime,
    answered: Duration,
}

/// Submits every municipality's submissions, one task per municipality (its clerk), in order
/// within a municipality; returns what each got back.
async fn submit_all(client: &Client, work: Vec<(String, Vec<Files>)>) -> Vec<Submitted> {
    let mut tasks = tokio::task::JoinSet::new();
    for (muni, submissions) in work {
        let mut client = client.clone();
        tasks.spawn(async move {
            let mut out = Vec::new();
            for files in submissions {
                let (started, clock) = (SystemTime::now(), Instant::now());
                let r = client.submit(&muni, files).await.unwrap();
                assert!(r.rejected == 0, "{muni}: {r:?}");
                out.push(Submitted { receipt: r.receipt, started, answered: clock.elapsed() });
            }
            out
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.unwrap());
    }
    all
}

/// Waits until every service has caught up: ten minutes at a time, for as long as the work goes
/// on (Tokyo's load takes longer than one wait), failing once ten minutes pass with no progress.
async fn idle(client: &mut Client) {
    let mut last = None;
    loop {
        let r = client.wait_idle(Duration::from_secs(600)).await.unwrap();
        if r.idle {
            return;
        }
        let pending: u64 = r.progress.iter().map(|p| p.pending).sum();
        assert!(last != Some(pending), "the system made no progress in ten minutes ({pending} pending)");
        last = Some(pending);
    }
}

fn nanos(t: &Option<prost_types::Timestamp>) -> i128 {
    t.as_ref().map(|t| t.seconds as i128 * 1_000_000_000 + t.nanos as i128).unwrap_or(0)
}

/// Submit → RS decided per receipt: when continuity appended its evaluation of the last of the
/// submission's identity events (read from the log).
async fn decided_at(bus: &Bus) -> BTreeMap<String, i128> {
    let mut receipt_of_seq: BTreeMap<u64, String> = BTreeMap::new();
    let mut seq = 0u64;
    let def = kokuho_bus::ConsumerDef {
        name: "bench-e2e-identity".into(),
        stream: "KOKUHO_IDENTITY",
        max_deliver: 1,
        filter_subject: Some(kokuho_identity_contract::CHUNKS_SUBJECT.into()),
    };
    let last = bus.last_subject_seq("KOKUHO_IDENTITY", kokuho_identity_contract::CHUNKS_SUBJECT).await.unwrap();
    let mut consumer = bus.consume(&def, 1).await.unwrap();
    while seq < last {
        let group = consumer.next_group(1_000, Duration::from_millis(20)).await.unwrap();
        for d in &group {
            seq = d.stream_seq;
            if let Ok((envelope, _)) = kokuho_bus::event::decode::<kokuho_identity_contract::Events>(&d.payload)
                && !envelope.correlation_id.is_empty()
            {
                receipt_of_seq.insert(d.first_seq, envelope.correlation_id);
            }
        }
        group.last().unwrap().ack().await.unwrap();
    }
    bus.remove_consumer("KOKUHO_IDENTITY", &def.name).await.unwrap();
    let mut out: BTreeMap<String, i128> = BTreeMap::new();
    prefecture::read_stream(bus, "KOKUHO_CONTINUITY", |payload| {
        let Ok((envelope, kokuho_continuity_contract::Event::PersonsEvaluated(e))) =
            kokuho_bus::event::decode::<kokuho_continuity_contract::Events>(payload)
        else {
            return;
        };
        if let Some(receipt) = receipt_of_seq.get(&e.identity_sequence) {
            let at = out.entry(receipt.clone()).or_default();
            *at = (*at).max(nanos(&envelope.occurred_at));
        }
    })
    .await;
    out
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn disk(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let path = e.path();
            match e.metadata() {
                Ok(m) if m.is_dir() => total += disk(&path),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// The pid of the process whose command line contains `needle` (the system's nats-server).
fn pid_with(needle: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(needle).then_some(pid)
    })
}

/// The system's Prometheus page (`<data>/metrics` names its address).
async fn metrics(data: &Path) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let url = std::fs::read_to_string(data.join("metrics")).unwrap();
    let addr = url.trim().trim_start_matches("http://").trim_end_matches("/metrics").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut page = String::new();
    stream.read_to_string(&mut page).await.unwrap();
    page
}

/// The `kokuho` process serving `data` (under a profiler's wrapper, the wrapper's child).
fn system_pid(data: &Path) -> Option<u32> {
    let binary = std::fs::canonicalize(env!("CARGO_BIN_EXE_kokuho")).ok()?;
    let needle = data.display().to_string();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let exe = std::fs::read_link(e.path().join("exe")).ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        (exe == binary && String::from_utf8_lossy(&cmdline).contains(&needle)).then_some(pid)
    })
}

/// Raw JetStream on the system's server: `count` messages of `size` bytes in atomic batches of
/// 1,000 (stack.md), messages/s.
async fn raw(bus: &Bus, size: usize, count: u64) -> f64 {
    bus.ensure_stream(&RAW).await.unwrap();
    let payload = vec![b'x'; size];
    let start = Instant::now();
    for b in 0..count.div_ceil(1_000) {
        let batch =
            (0..1_000).map(|i| Append::new("kokuho.rawbench.m", payload.clone(), format!("r{b}-{i}"))).collect();
        bus.append_atomic(batch).await.expect("raw batch");
    }
    let rate = (count.div_ceil(1_000) * 1_000) as f64 / start.elapsed().as_secs_f64();
    bus.delete_stream(RAW.name).await.unwrap();
    rate
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let persons = env_u64("KOKUHO_BENCH_PERSONS", 100_000);
    let mut munis = municipalities();
    munis.truncate(env_u64("KOKUHO_BENCH_MUNICIPALITIES", munis.len() as u64).max(2) as usize);
    let pref = Arc::new(Prefecture {
        per_muni: persons / munis.len() as u64,
        file_persons: env_u64("KOKUHO_BENCH_FILE_PERSONS", 10_000),
        munis,
    });
    let tmp = std::env::temp_dir().join(format!("kokuho-bench-e2e-{}", std::process::id()));
    let data: PathBuf = tmp.join("data");
    std::fs::create_dir_all(&data).unwrap();
    println!(
        "kokuho bench (e2e): {} persons in {} municipalities through `kokuho up`; fsync always",
        pref.per_muni * pref.munis.len() as u64,
        pref.munis.len()
    );

    // `kokuho up`, as deployed on one machine.
    let log = std::fs::File::create(tmp.join("up.log")).unwrap();
    // `KOKUHO_BENCH_WRAP="heaptrack -o f"` runs it under a profiler.
    let wrap = std::env::var("KOKUHO_BENCH_WRAP").unwrap_or_default();
    let mut command: Vec<String> = wrap.split_whitespace().map(str::to_string).collect();
    command.push(env!("CARGO_BIN_EXE_kokuho").to_string());
    let mut up = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .args(["--data-dir", &data.display().to_string(), "up", "--business-date", "20250401"])
        .env("RUST_LOG", std::env::var("KOKUHO_BENCH_LOG").unwrap_or_else(|_| "warn".into()))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let endpoint = kokuho_system::endpoint_file(&data);
    let started = Instant::now();
    while !endpoint.exists() {
        assert!(started.elapsed() < Duration::from_secs(120), "kokuho up did not start (see {})", tmp.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The system's process (under a profiler, the profiler's child).
    let kokuho_pid = if wrap.is_empty() { up.id().unwrap() } else { system_pid(&data).unwrap_or(up.id().unwrap()) };
    let endpoint = std::fs::read_to_string(&endpoint).unwrap().trim().to_string();
    let tls = data.join("tls");
    let tls = kokuho_runtime::tls::ClientTls::load(
        &tls.join("ca.pem"),
        Some((tls.join("client.pem").as_path(), tls.join("client.key").as_path())),
    )
    .unwrap();
    let mut client = Client::connect_trusting(&endpoint, Some(&tls))
        .await
        .unwrap()
        .with_dev_credentials(kokuho_system::credentials_dir(&data));
    let conf = data.join("nats").join("nats-server.conf");
    let nats_pid = pid_with(&conf.display().to_string()).expect("the system's nats-server");

    // Resident memory of both processes, every 200 ms.
    let peaks = Arc::new((AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)));
    let sampler = {
        let peaks = peaks.clone();
        tokio::spawn(async move {
            loop {
                let (k, n) = (rss_of(kokuho_pid), rss_of(nats_pid));
                peaks.0.fetch_max(k, Ordering::Relaxed);
                peaks.1.fetch_max(n, Ordering::Relaxed);
                peaks.2.fetch_max(k + n, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    let mut records = 0u64;
    let e2e = Instant::now();
    // 1. The registers, every municipality at once.
    let work: Vec<_> = (0..pref.munis.len())
        .map(|i| {
            let subs = pref.register(i);
            records += subs.iter().map(|(_, r)| r).sum::<u64>();
            (pref.munis[i].code.clone(), subs.into_iter().map(|(f, _)| f).collect())
        })
        .collect();
    let load_records = records;
    let mut submitted = submit_all(&client, work).await;
    idle(&mut client).await;
    let load = e2e.elapsed();

    // 2. A month of moves, then a day close.
    let phase = Instant::now();
    let work: Vec<_> = (0..pref.munis.len())
        .map(|i| {
            let (files, r) = pref.moves(i, 1_000);
            records += r;
            (pref.munis[i].code.clone(), vec![files])
        })
        .collect();
    submitted.extend(submit_all(&client, work).await);
    client.close_day(20250601).await.unwrap();
    idle(&mut client).await;
    let moved = phase.elapsed();

    // 3. Each receiving municipality decides its candidates 継続 in a KT file, in parallel.
    let phase = Instant::now();
    let mut decided = 0;
    let mut work = Vec::new();
    for m in &pref.munis {
        let rows: Vec<String> = client
            .list_candidates(Some(&m.code), false)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.decision.is_empty())
            .map(|c| format!("2,{},1", c.number))
            .collect();
        if !rows.is_empty() {
            decided += rows.len();
            records += rows.len() as u64;
            work.push((m.code.clone(), vec![vec![file(m, "KT", 1, &rows)]]));
        }
    }
    submitted.extend(submit_all(&client, work).await);
    client.close_day(20250701).await.unwrap();
    idle(&mut client).await;
    let decisions = phase.elapsed();

    // 4. Every municipality fetches its result files.
    let phase = Instant::now();
    let mut rows = 0usize;
    for m in &pref.munis {
        let files = client.fetch_files(&m.code).await.unwrap();
        rows += files.iter().map(|f| f.rows as usize).sum::<usize>();
        client.acknowledge(&m.code, files.iter().map(|f| f.name.clone()).collect()).await.unwrap();
    }
    let fetch = phase.elapsed();
    let total = e2e.elapsed();

    let e2e_records = records;
    // 5. Steady state: small submissions from every municipality at a combined rate.
    let steady_seconds = env_u64("KOKUHO_BENCH_STEADY_SECONDS", 20);
    let steady_rate = env_u64("KOKUHO_BENCH_STEADY_RATE", 1_000).max(1);
    const STEADY_PERSONS: u64 = 5;
    let phase = Instant::now();
    let mut steady = Vec::new();
    if steady_seconds > 0 {
        let munis = pref.munis.len() as u64;
        // Each municipality's clerk sends one submission of 10 records every `every`.
        let every = Duration::from_secs_f64((munis * 2 * STEADY_PERSONS) as f64 / steady_rate as f64);
        let until = Instant::now() + Duration::from_secs(steady_seconds);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..pref.munis.len() {
            let (mut client, pref, code) = (client.clone(), pref.clone(), pref.munis[i].code.clone());
            // Spread the municipalities' first submissions over one interval.
            let start = Instant::now() + every.mul_f64(i as f64 / munis as f64);
            tasks.spawn(async move {
                let mut out = Vec::new();
                let mut k = 0u64;
                loop {
                    let at = start + every.mul_f64(k as f64);
                    if at >= until {
                        return out;
                    }
                    tokio::time::sleep_until(at.into()).await;
                    let (files, records) = pref.steady(i, k, STEADY_PERSONS);
                    let (started, clock) = (SystemTime::now(), Instant::now());
                    let r = client.submit(&code, files).await.unwrap();
                    assert!(r.rejected == 0, "{code}: {r:?}");
                    out.push((Submitted { receipt: r.receipt, started, answered: clock.elapsed() }, records));
                    k += 1;
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            steady.extend(r.unwrap());
        }
        idle(&mut client).await;
    }
    let steady_elapsed = phase.elapsed();
    let steady_records: u64 = steady.iter().map(|(_, r)| r).sum();
    records += steady_records;
    sampler.abort();
    let page = metrics(&data).await;

    // From the log: when each submission's RS was decided; the intake stream's bytes per record.
    let admin = kokuho_system::admin_user(&kokuho_system::nats_credentials_dir(&data)).unwrap();
    let url = std::fs::read_to_string(&conf)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("listen: ").map(|a| format!("nats://{a}")))
        .unwrap();
    let bus = Bus::connect_as(&url, &admin).await.unwrap();
    let decided_at = decided_at(&bus).await;
    let to_rs: Vec<f64> = submitted
        .iter()
        .filter_map(|s| {
            let at = decided_at.get(&s.receipt)?;
            let start = s.started.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as i128;
            Some((at - start) as f64 / 1e9)
        })
        .collect();
    let answered: Vec<f64> = submitted.iter().map(|s| s.answered.as_secs_f64()).collect();
    let steady_rs: Vec<f64> = steady
        .iter()
        .filter_map(|(s, _)| {
            let at = decided_at.get(&s.receipt)?;
            let start = s.started.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as i128;
            Some((at - start) as f64 / 1e9)
        })
        .collect();
    let steady_answered: Vec<f64> = steady.iter().map(|(s, _)| s.answered.as_secs_f64()).collect();
    let (_, intake_bytes) = bus.stream_size("KOKUHO_INTAKE").await.unwrap();
    let record_bytes = (intake_bytes / records.max(1)) as usize;
    let disk_total = disk(&data);
    let jetstream = disk(&data.join("nats"));
    let stores: Vec<String> = std::fs::read_dir(data.join("store"))
        .map(|d| {
            let mut v: Vec<(String, u64)> =
                d.flatten().map(|e| (e.file_name().to_string_lossy().into_owned(), disk(&e.path()))).collect();
            v.sort();
            v.into_iter().map(|(n, b)| format!("{n} {:.0}", b as f64 / records as f64)).collect()
        })
        .unwrap_or_default();

    // Raw JetStream with the same durability, on the same server, in the same run.
    let raw_rate = raw(&bus, record_bytes.max(1), records.min(200_000)).await;
    let _ = std::process::Command::new("kill").arg("-TERM").arg(kokuho_pid.to_string()).status();
    let _ = tokio::time::timeout(Duration::from_secs(60), up.wait()).await;

    let rate = e2e_records as f64 / total.as_secs_f64();
    let raw_hops = raw_rate / 3.0;
    println!("| measure | value |");
    println!("| --- | ---: |");
    println!("| records submitted (KS, KK, KT), submissions | {e2e_records}, {} |", submitted.len());
    println!(
        "| registers: {load_records} records, every municipality in parallel, until caught up | {:.1} s ({:.0} records/s) |",
        load.as_secs_f64(),
        load_records as f64 / load.as_secs_f64()
    );
    println!("| a month of moves and a day close | {:.1} s |", moved.as_secs_f64());
    println!("| {decided} candidates decided 継続 (KT files), a day close | {:.1} s |", decisions.as_secs_f64());
    println!("| every result file fetched ({rows} rows) | {:.1} s |", fetch.as_secs_f64());
    println!(
        "| **end to end** (first submit → results fetched) | **{rate:.0} records/s** ({:.1} s) |",
        total.as_secs_f64()
    );
    println!("| raw JetStream, atomic batches of 1,000 × {record_bytes} B | {raw_rate:.0} messages/s |");
    println!("| raw ÷ 3 log hops | {raw_hops:.0} records/s |");
    println!("| **ratio** | **{:.2}** |", rate / raw_hops);
    println!(
        "| submit → receipt, p50 / p99 | {:.2} s / {:.2} s |",
        percentile(answered.clone(), 0.5),
        percentile(answered, 0.99)
    );
    println!(
        "| submit → RS decided, p50 / p99 ({} submissions) | {:.2} s / {:.2} s |",
        to_rs.len(),
        percentile(to_rs.clone(), 0.5),
        percentile(to_rs, 0.99)
    );
    if !steady.is_empty() {
        println!(
            "| steady: {steady_records} records in {} submissions of 10, {:.0} records/s asked, {:.0} done | {:.1} s |",
            steady.len(),
            steady_rate,
            steady_records as f64 / steady_elapsed.as_secs_f64(),
            steady_elapsed.as_secs_f64()
        );
        println!(
            "| steady: submit → receipt, p50 / p99 | {:.3} s / {:.3} s |",
            percentile(steady_answered.clone(), 0.5),
            percentile(steady_answered, 0.99)
        );
        println!(
            "| **steady: submit → RS decided, p50 / p99** ({} submissions) | **{:.3} s / {:.3} s** |",
            steady_rs.len(),
            percentile(steady_rs.clone(), 0.5),
            percentile(steady_rs, 0.99)
        );
    }
    println!(
        "| peak resident memory: kokuho / nats-server / both | {} / {} / {} MiB |",
        peaks.0.load(Ordering::Relaxed),
        peaks.1.load(Ordering::Relaxed),
        peaks.2.load(Ordering::Relaxed)
    );
    println!(
        "| disk per record: all / nats / stores | {:.0} / {:.0} B / {} |",
        disk_total as f64 / records as f64,
        jetstream as f64 / records as f64,
        stores.join(", ")
    );
    // What each runner's store commits cost, the costliest first.
    let sample = |name: &str| -> BTreeMap<String, f64> {
        let head = format!("{name}{{consumer=\"");
        page.lines()
            .filter_map(|l| l.strip_prefix(&head))
            .filter_map(|l| {
                let (consumer, value) = l.split_once("\"} ")?;
                Some((consumer.to_string(), value.trim().parse().ok()?))
            })
            .collect()
    };
    let (steps, micros, keys, bytes) = (
        sample("kokuho_runner_step_microseconds_total"),
        sample("kokuho_store_commit_microseconds_total"),
        sample("kokuho_store_written_keys_total"),
        sample("kokuho_store_written_bytes_total"),
    );
    let time =
        |consumer: &String| micros.get(consumer).copied().unwrap_or(0.0) + steps.get(consumer).copied().unwrap_or(0.0);
    let mut costly: Vec<&String> =
        micros.keys().chain(steps.keys()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    costly.sort_by(|a, b| time(b).partial_cmp(&time(a)).unwrap());
    println!();
    println!("| runner (step + commit time, costliest first) | steps | commits | keys / record | bytes / record |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for consumer in costly.into_iter().take(14) {
        println!(
            "| {consumer} | {:.1} s | {:.1} s | {:.1} | {:.0} |",
            steps.get(consumer).copied().unwrap_or(0.0) / 1e6,
            micros.get(consumer).copied().unwrap_or(0.0) / 1e6,
            keys.get(consumer).copied().unwrap_or(0.0) / records as f64,
            bytes.get(consumer).copied().unwrap_or(0.0) / records as f64
        );
    }
    if std::env::var_os("KOKUHO_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    } else {
        println!("data kept in {}", tmp.display());
    }
}
