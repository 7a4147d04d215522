//! `just bench`: a 100,000-record KK submission through intake into the log and through
//! identity's linkage, next to raw JetStream publishing of the same number of same-sized
//! messages in the same run, on the same nats-server (`sync_interval: always`). The raw baseline is the best the server does with
//! that durability: atomic batches of 1,000 (stack.md). Prints records/s and the ratio.
#![allow(clippy::print_stdout)]
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

// The allocator of the `kokuho` binary, so that the services run here as they are deployed.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kokuho_bus::{Append, Bus, StreamDef};
use kokuho_client::Client;
use kokuho_system::{System, SystemConfig};

const RECORDS: usize = 100_000;
const RUNS: usize = 3;

const RAW: StreamDef =
    StreamDef { name: "KOKUHO_RAWBENCH", subjects: &["kokuho.rawbench.>"], description: "benchmark" };

fn submission(seq: u32) -> Vec<(String, Vec<u8>)> {
    let ks = format!("1,KS,131016,130013,20260401,{seq}\n2,1,1001,20200401,01,100001,0,千代田,1001,09,\n9,1\n");
    let mut kk = format!("1,KK,131016,130013,20260401,{seq}\n");
    for i in 0..RECORDS {
        let number = kokuho_testkit::individual_number(10_000_000_000 + u64::from(seq) * 1_000_000 + i as u64);
        kk.push_str(&format!(
            "2,1,{},1001,1,{number},山田 太郎,ヤマダ タロウ,19550820,1,01,20200401,03,,,,,20200401\n",
            1_000_000 + i
        ));
    }
    kk.push_str(&format!("9,{RECORDS}\n"));
    vec![("KS.csv".into(), ks.into_bytes()), ("KK.csv".into(), kk.into_bytes())]
}

async fn raw(bus: &Bus, size: usize, run: usize) -> f64 {
    let payload = vec![b'x'; size];
    let start = Instant::now();
    for b in 0..RECORDS / 1_000 {
        let batch =
            (0..1_000).map(|i| Append::new("kokuho.rawbench.m", payload.clone(), format!("r{run}-{b}-{i}"))).collect();
        bus.append_atomic(batch).await.expect("raw batch");
    }
    RECORDS as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile_dir();
    let system = System::start(
        SystemConfig::embedded(dir.join("data"), Arc::new(kokuho_system::default_registry()))
            .with_business_date(20260401),
    )
    .await
    .expect("start the system");
    let url = std::fs::read_to_string(dir.join("data/nats/nats-server.conf"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("listen: ").map(|a| format!("nats://{a}")))
        .unwrap();
    // The local server authenticates everyone (S7): the bench reads and writes as the admin.
    let admin = kokuho_system::admin_user(&kokuho_system::nats_credentials_dir(&dir.join("data"))).unwrap();
    let bus = Bus::connect_as(&url, &admin).await.unwrap();
    bus.ensure_stream(&RAW).await.unwrap();
    let mut client = Client::connect_trusting(system.endpoint(), system.client_tls())
        .await
        .unwrap()
        .with_dev_credentials(kokuho_system::credentials_dir(&dir.join("data")));

    println!("kokuho bench: {RECORDS}-record KK submission, {RUNS} runs, medians; fsync always");
    let (mut raws, mut intakes, mut settled) = (Vec::new(), Vec::new(), Vec::new());
    let mut record_bytes = 0;
    for run in 0..RUNS {
        let files = submission(run as u32 + 1);
        let (_, bytes_before) = bus.stream_size("KOKUHO_INTAKE").await.unwrap();
        let start = Instant::now();
        let r = client.submit("131016", files).await.expect("submit");
        let appended = start.elapsed();
        assert_eq!(r.accepted as usize, RECORDS + 1, "{r:?}");
        client.wait_idle(Duration::from_secs(600)).await.unwrap();
        let done = start.elapsed();
        intakes.push(RECORDS as f64 / appended.as_secs_f64());
        settled.push(RECORDS as f64 / done.as_secs_f64());
        // Raw messages of the size one record takes in the intake stream.
        let (_, bytes_after) = bus.stream_size("KOKUHO_INTAKE").await.unwrap();
        record_bytes = ((bytes_after - bytes_before) / RECORDS as u64) as usize;
        raws.push(raw(&bus, record_bytes, run).await);
    }
    let (raw, intake, settled) = (median(raws), median(intakes), median(settled));
    println!("| measure | records/s | ratio to raw |");
    println!("| --- | ---: | ---: |");
    println!("| raw JetStream, atomic batches of 1,000 × {record_bytes} B | {raw:.0} | 1.00 |");
    println!("| intake: submit → every record in the log (receipt returned) | {intake:.0} | {:.2} |", intake / raw);
    println!(
        "| intake + identity: submit → every record linked, every projection caught up | {settled:.0} | {:.2} |",
        settled / raw
    );
    system.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kokuho-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
