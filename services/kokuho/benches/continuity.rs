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

#[path = "common/prefecture.rs"]
mod prefecture;

use kokuho_bus::Bus;
use kokuho_testkit::TestNats;

/// What continuity sent, read back from its stream: RS rows, A03 rows opened and closed.
async fn rows_sent(bus: &Bus) -> (u64, u64, u64) {
    let (mut rs, mut opened, mut closed) = (0, 0, 0);
    prefecture::read_stream(bus, "KOKUHO_CONTINUITY", |payload| {
        let Ok((_, kokuho_continuity_contract::Event::PersonsEvaluated(e))) =
            kokuho_bus::event::decode::<kokuho_continuity_contract::Events>(payload)
        else {
            return;
        };
        for row in e.rows.iter().flat_map(|m| &m.rows) {
            match (row.kind.as_str(), row.fields.get(1).map(String::as_str), row.fields.last().map(String::as_str)) {
                ("RS", _, _) => rs += 1,
                ("RE", Some("A03"), Some("1")) => opened += 1,
                ("RE", Some("A03"), Some("2")) => closed += 1,
                _ => {}
            }
        }
    })
    .await;
    (rs, opened, closed)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let nats = TestNats::start().await;
    // 1. Load through intake and identity.
    let loaded =
        prefecture::load_prefecture("continuity", &nats, vec!["intake", "identity"], |_, _| Vec::new(), 200_000).await;
    let prefecture::Loaded { data_dir, records, load, years } = loaded;

    let bus = Bus::connect(&nats.url(), "bench").await.unwrap();
    let (messages, bytes) = bus.stream_size("KOKUHO_IDENTITY").await.unwrap();

    // 2. Raw consumption of identity's stream.
    let (_, raw) = prefecture::raw_consume(&bus, "KOKUHO_IDENTITY").await;

    // 3. continuity alone, from the first event, in a process of its own.
    let streams = ["KOKUHO_IDENTITY", "KOKUHO_CONTINUITY"];
    let (took, samples) =
        prefecture::service_alone(&bus, &nats.url(), &data_dir, "continuity", &[], 3, &streams, async || true).await;
    if std::env::var_os("KOKUHO_BENCH_TRACE").is_some() {
        println!("{samples:?}");
    }
    let quarters = prefecture::quarters(took, &samples);
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
    println!("| `kokuho serve continuity`: most resident memory in each quarter of the run | {quarters} MiB |");
}
