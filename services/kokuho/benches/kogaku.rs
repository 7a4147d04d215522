//! `just bench` (kogaku): continuation candidates and the 高額 handover on the generated
//! prefecture of the continuity benchmark, next to raw JetStream consumption of the streams
//! kogaku reads, in the same run, with its memory as the log grows.
//!
//! 1. Load, with intake, identity and continuity: 62 municipalities, 200,000 persons by default
//!    (`KOKUHO_BENCH_PERSONS`), each in a household of their own, a quarter of the households
//!    with three 高額 months (KG); then a year (`KOKUHO_BENCH_YEARS`) of monthly moves (every
//!    tenth person, one in five reported late), each month ended by a day close. Every move is
//!    one candidate (H1), reason 11 (H2 rule 1).
//! 2. Raw: a durable pull consumer reads each of intake's, identity's and continuity's streams
//!    from the start, acknowledging each group of up to 1,000 messages: the best the server
//!    does with what kogaku must read.
//! 3. `kokuho serve kogaku --kogaku-auto-confirm true` (the binary as deployed; reason 11 is
//!    confirmed at once, so every candidate also gets its RG, K3) on a fresh store, until its
//!    consumers have caught up: the time, and the most resident memory in each quarter.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

// The allocator of the `kokuho` binary, so that the services run here as they are deployed.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[path = "common/prefecture.rs"]
mod prefecture;

use std::time::Duration;

use kokuho_bus::Bus;
use kokuho_testkit::TestNats;

const INPUTS: [&str; 3] = ["KOKUHO_INTAKE", "KOKUHO_IDENTITY", "KOKUHO_CONTINUITY"];

/// Undecided candidates by 判定理由 (or `withdrawn`).
type Undecided = std::collections::BTreeMap<String, usize>;

/// What kogaku sent, read back from its stream: (events, RK rows, RG rows), and its candidates
/// as the last event left them: (all, decided, undecided by reason).
async fn rows_sent(bus: &Bus) -> (u64, u64, u64, (usize, usize, Undecided)) {
    let mut last_state = std::collections::BTreeMap::new();
    let (mut events, mut rk, mut rg) = (0, 0, 0);
    prefecture::read_stream(bus, "KOKUHO_KOGAKU", |payload| {
        events += 1;
        let Ok((_, kokuho_kogaku_contract::Event::CandidatesEvaluated(e))) =
            kokuho_bus::event::decode::<kokuho_kogaku_contract::Events>(payload)
        else {
            return;
        };
        for c in e.candidates {
            last_state.insert((c.to_municipality.clone(), c.number.clone()), c);
        }
        for row in e.rows.iter().flat_map(|m| &m.rows) {
            match row.kind.as_str() {
                "RK" => rk += 1,
                "RG" => rg += 1,
                _ => {}
            }
        }
    })
    .await;
    let decided = last_state.values().filter(|c| c.decision.is_some()).count();
    let mut undecided = Undecided::new();
    for c in last_state.values().filter(|c| c.decision.is_none()) {
        let reason = c.facts.as_ref().and_then(|f| f.fields.as_ref()).map_or("withdrawn".into(), |f| f.reason.clone());
        *undecided.entry(reason).or_insert(0) += 1;
    }
    (events, rk, rg, (last_state.len(), decided, undecided))
}

/// Persons whose latest state in continuity's stream has a C2 pair (what kogaku's H1 starts from).
async fn paired_persons(bus: &Bus) -> usize {
    let mut paired = std::collections::BTreeMap::new();
    prefecture::read_stream(bus, "KOKUHO_CONTINUITY", |payload| {
        if let Ok((_, kokuho_continuity_contract::Event::PersonsEvaluated(e))) =
            kokuho_bus::event::decode::<kokuho_continuity_contract::Events>(payload)
        {
            for p in e.persons {
                paired.insert(p.pref_id, !p.pairs.is_empty());
            }
        }
    })
    .await;
    paired.values().filter(|p| **p).count()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let nats = TestNats::start().await;
    // 1. Load through intake, identity and continuity.
    // A quarter of the households have three 高額 months before their move (K1, K2).
    let kg = |_: usize, j: u64| {
        if j.is_multiple_of(4) {
            let h = 100_000 + j;
            ["202504", "202507", "202510"].iter().map(|m| format!("2,1,{h},{m},1,20251201")).collect()
        } else {
            Vec::new()
        }
    };
    let loaded =
        prefecture::load_prefecture("kogaku", &nats, vec!["intake", "identity", "continuity"], kg, 200_000).await;
    let prefecture::Loaded { data_dir, records, load, years } = loaded;

    // 2. Raw consumption of the three streams kogaku reads.
    let bus = Bus::connect(&nats.url(), "bench").await.unwrap();
    let (mut messages, mut raw) = (0, Duration::ZERO);
    for stream in INPUTS {
        let (m, t) = prefecture::raw_consume(&bus, stream).await;
        messages += m;
        raw += t;
    }

    // 3. kogaku alone, from the first event, in a process of its own.
    let streams = [INPUTS[0], INPUTS[1], INPUTS[2], "KOKUHO_KOGAKU"];
    let args = ["--kogaku-auto-confirm", "true"];
    // months, households, members, pairs, candidates, from-intake, from-identity,
    // from-continuity, forward-rows.
    let (took, samples) =
        prefecture::service_alone(&bus, &nats.url(), &data_dir, "kogaku", &args, 9, &streams, async || true).await;
    if std::env::var_os("KOKUHO_BENCH_TRACE").is_some() {
        println!("{samples:?}");
    }
    let quarters = prefecture::quarters(took, &samples);
    let (events, rk, rg, (candidates, decided, undecided)) = rows_sent(&bus).await;
    let (rate, raw_rate) = (records as f64 / took.as_secs_f64(), records as f64 / raw.as_secs_f64());
    println!("| measure | value |");
    println!("| --- | ---: |");
    println!(
        "| load (intake + identity + continuity, {records} KS/KK/KG records, {} day closes) | {:.1} s |",
        12 * years + 3,
        load.as_secs_f64()
    );
    println!(
        "| raw JetStream: consume the 3 input streams ({messages} messages), ack per group of ≤ 1,000 | {raw_rate:.0} records/s ({:.1} s) |",
        raw.as_secs_f64()
    );
    println!(
        "| kogaku: project 4 inputs, evaluate, decide, commit ({events} events), forward rows | {rate:.0} records/s ({:.1} s) |",
        took.as_secs_f64()
    );
    println!("| ratio to raw | {:.3} |", rate / raw_rate);
    println!("| rows kogaku sent: RK / RG | {rk} / {rg} |");
    println!("| persons with a C2 pair in continuity's stream | {} |", paired_persons(&bus).await);
    println!("| candidates / confirmed (auto) / undecided by reason | {candidates} / {decided} / {undecided:?} |");
    println!("| `kokuho serve kogaku`: most resident memory in each quarter of the run | {quarters} MiB |");
}
