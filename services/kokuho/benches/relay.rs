//! `just bench` (relay): 加入者情報 delivered to the intermediate-server simulator for the
//! generated prefecture of the continuity benchmark, next to raw JetStream consumption of the
//! streams relay reads, in the same run; then the delay from a clinic-facing submit to the
//! eligibility check answering "insured".
//!
//! 1. Load, with intake, identity and continuity: 62 municipalities, `KOKUHO_BENCH_PERSONS`
//!    persons (default 20,000: every record costs the simulator one durable commit and identity
//!    one audited release), a year of monthly moves.
//! 2. Raw: a durable pull consumer reads each of intake's, identity's and continuity's streams
//!    from the start, acknowledging each group of up to 1,000 messages.
//! 3. identity and the simulator in this process; `kokuho serve relay` (the binary as deployed)
//!    on a fresh store, until every operation it planned has been applied by the simulator: the
//!    time, operations per second, and the most resident memory of relay in each quarter.
//! 4. The whole system: `KOKUHO_BENCH_PROBES` (default 50) submissions of one new person each,
//!    one after another; for each, the time from the submit call to the first eligibility check
//!    that answers insured (polled every 5 ms): p50 and p99.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[path = "common/prefecture.rs"]
mod prefecture;

use std::time::{Duration, Instant};

use kokuho_bus::Bus;
use kokuho_client::Client;
use kokuho_system::{System, SystemConfig};
use kokuho_testkit::TestNats;

const INPUTS: [&str; 3] = ["KOKUHO_INTAKE", "KOKUHO_IDENTITY", "KOKUHO_CONTINUITY"];

/// Operations relay planned, read back from its stream.
async fn planned(bus: &Bus) -> u64 {
    let mut ops = 0;
    prefecture::read_stream(bus, "KOKUHO_RELAY", |payload| {
        if let Ok((_, kokuho_relay_contract::Event::RecordsPlanned(e))) =
            kokuho_bus::event::decode::<kokuho_relay_contract::Events>(payload)
        {
            ops += e.operations.len() as u64;
        }
    })
    .await;
    ops
}

async fn applied(client: &mut Client, munis: &[prefecture::Municipality]) -> u64 {
    let mut n = 0;
    for m in munis {
        n += client.midserver_listing(&m.code).await.map(|l| l.applied).unwrap_or(0);
    }
    n
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let nats = TestNats::start().await;
    let loaded = prefecture::load_prefecture(
        "relay",
        &nats,
        vec!["intake", "identity", "continuity"],
        |_, _| Vec::new(),
        20_000,
    )
    .await;
    let prefecture::Loaded { data_dir, records, load, years } = loaded;
    let munis = prefecture::municipalities();

    // 2. Raw consumption of the three streams relay reads.
    let bus = Bus::connect(&nats.url(), "bench").await.unwrap();
    let (mut messages, mut raw) = (0, Duration::ZERO);
    for stream in INPUTS {
        let (m, t) = prefecture::raw_consume(&bus, stream).await;
        messages += m;
        raw += t;
    }

    // 3. identity and the simulator here; relay alone in a process of its own.
    let peers = SystemConfig {
        services: vec!["identity", "midserver-sim"],
        nats_url: Some(nats.url()),
        ..SystemConfig::embedded(data_dir.clone(), std::sync::Arc::new(kokuho_system::default_registry()))
    };
    let peers = System::start(peers).await.unwrap();
    let endpoint = peers.endpoint().to_string();
    let token = kokuho_system::credentials_dir(&data_dir).join("relay.token").display().to_string();
    let ca = data_dir.join("tls/ca.pem").display().to_string();
    let audit = data_dir.join("keys/audit").display().to_string();
    let args = [
        "--identity-endpoint",
        &endpoint,
        "--midserver-endpoint",
        &endpoint,
        "--relay-token-file",
        &token,
        "--tls-ca",
        &ca,
        "--audit-signing-keys",
        &audit,
    ];
    let mut client = Client::connect_trusting(&endpoint, peers.client_tls())
        .await
        .unwrap()
        .with_dev_credentials(kokuho_system::credentials_dir(&data_dir));
    let streams = [INPUTS[0], INPUTS[1], INPUTS[2], "KOKUHO_RELAY"];
    let mut ops: Option<u64> = None;
    let mut last_poll = Instant::now() - Duration::from_secs(1);
    // cards, persons, periods, ledger, from-intake, from-identity, from-continuity, forward-rows.
    let (took, samples) =
        prefecture::service_alone(&bus, &nats.url(), &data_dir, "relay", &args, 8, &streams, async || {
            if last_poll.elapsed() < Duration::from_millis(500) {
                return false;
            }
            last_poll = Instant::now();
            let want = match ops {
                Some(n) => n,
                None => *ops.insert(planned(&bus).await),
            };
            applied(&mut client, &munis).await >= want
        })
        .await;
    let quarters = prefecture::quarters(took, &samples);
    let ops = ops.unwrap_or(0);
    peers.stop().await.unwrap();

    // 4. submit → insured, through the whole system.
    let config = SystemConfig {
        nats_url: Some(nats.url()),
        ..SystemConfig::embedded(data_dir.clone(), std::sync::Arc::new(kokuho_system::default_registry()))
    };
    let system = System::start(config).await.unwrap();
    let mut client = Client::connect_trusting(system.endpoint(), system.client_tls())
        .await
        .unwrap()
        .with_dev_credentials(kokuho_system::credentials_dir(&data_dir));
    let idle = client.wait_idle(Duration::from_secs(600)).await.unwrap();
    assert!(idle.idle, "the whole system did not settle: {:?}", idle.progress);
    let probes: usize = std::env::var("KOKUHO_BENCH_PROBES").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let mut delays = Vec::new();
    for k in 0..probes {
        let m = &munis[k % munis.len()];
        let (h, r) = (900_000 + k as u64, 950_000 + k as u64);
        let number = kokuho_testkit::individual_number(90_000_000_000 + k as u64);
        let ks =
            prefecture::file(m, "KS", 1_000 + k as u32, &[format!("2,1,{h},20260401,01,{r},0,{},{h},,", m.symbol)]);
        let kk = prefecture::file(
            m,
            "KK",
            1_000 + k as u32,
            &[format!("2,1,{r},{h},1,{number},{},20260401,03,,,,,20260401", prefecture::KK_TAIL)],
        );
        let asked = kokuho_client::midserver::EligibilityRequest {
            insurer: m.insurer.clone(),
            symbol: m.symbol.clone(),
            number: h.to_string(),
            branch: 1,
            date: 20260401,
        };
        let start = Instant::now();
        let r = client.submit(&m.code, vec![ks, kk]).await.unwrap();
        assert_eq!(r.accepted, 2, "{r:?}");
        loop {
            if client.eligibility(asked.clone()).await.map(|e| e.insured).unwrap_or(false) {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "probe {k} never became insured");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        delays.push(start.elapsed());
    }
    system.stop().await.unwrap();
    delays.sort();

    let (rate, raw_rate) = (records as f64 / took.as_secs_f64(), records as f64 / raw.as_secs_f64());
    println!("| measure | value |");
    println!("| --- | ---: |");
    println!(
        "| load (intake + identity + continuity, {records} KS/KK records, {} day closes) | {:.1} s |",
        12 * years + 3,
        load.as_secs_f64()
    );
    println!(
        "| raw JetStream: consume the 3 input streams ({messages} messages), ack per group of ≤ 1,000 | {raw_rate:.0} records/s ({:.1} s) |",
        raw.as_secs_f64()
    );
    println!(
        "| relay: project 3 inputs, plan, release each number from identity, apply at the simulator ({ops} operations) | {rate:.0} records/s, {:.0} operations/s ({:.1} s) |",
        ops as f64 / took.as_secs_f64(),
        took.as_secs_f64()
    );
    println!("| ratio to raw | {:.3} |", rate / raw_rate);
    println!("| `kokuho serve relay`: most resident memory in each quarter of the run | {quarters} MiB |");
    println!(
        "| submit → eligibility answers insured, {} probes: p50 / p99 | {:.0} ms / {:.0} ms |",
        delays.len(),
        percentile(&delays, 0.5).as_secs_f64() * 1e3,
        percentile(&delays, 0.99).as_secs_f64() * 1e3
    );
}
