//! The deciding workflow helper (`Decider`) against a real nats-server and real sled files:
//! every decision sees the earlier ones of its group, each input is decided once even after a
//! lost position or with two instances racing, and undecodable inputs are dead-lettered.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use std::time::Duration;

use kokuho_bus::event;
use kokuho_bus::{Append, Bus, ConsumerDef, DEAD_LETTER, StreamDef};
use kokuho_proto::identity::v1::identity_event::Event;
use kokuho_proto::identity::v1::{BusinessDay, IdentityEvent};
use kokuho_store::{
    ApplyError, Decider, LogEvent, Projection, ProjectionHandle, Read, Rejected, RunnerSettings, Runners, SledDb,
    Store, Tx, Workflow, u64_of,
};
use kokuho_testkit::TestNats;

const INPUT: StreamDef = StreamDef { name: "KOKUHO_DIN", subjects: &["kokuho.din.>"], description: "test" };
const OUTPUT: StreamDef = StreamDef { name: "KOKUHO_DOUT", subjects: &["kokuho.dout.>"], description: "test" };
const DECISIONS: &str = "kokuho.dout.decisions";

// The test's output events: a borrowed message shape (only `BusinessDay` is used).
kokuho_bus::stream_events!(
    Decisions,
    "decisions",
    IdentityEvent,
    Event { ChunkLinked, CaseResolved, BusinessDay, NumbersKept }
);

/// The output stream's projection: the running total and the last input decided. (The
/// decisions travel as `BusinessDay` events: `intake_sequence` is the input, `date` the total.)
struct Running;

impl Projection for Running {
    const NAME: &'static str = "running";
    const VERSION: u32 = 1;
    const STREAM: &'static str = OUTPUT.name;

    fn apply(&self, tx: &mut Tx<'_>, ev: &LogEvent<'_>) -> Result<(), ApplyError> {
        let (_, payload) = event::decode::<Decisions>(ev.payload).map_err(ApplyError::Malformed)?;
        let Event::BusinessDay(d) = payload else { return Err(ApplyError::Malformed("not a decision".into())) };
        tx.put(b"cursor".to_vec(), d.intake_sequence.to_be_bytes().to_vec());
        tx.put(b"total".to_vec(), u64::from(d.date).to_be_bytes().to_vec());
        Ok(())
    }
}

/// Adds each input number to the running total it reads from `Running`'s state: a decision
/// that missed an earlier one of its group would write a wrong total.
struct Accumulate {
    bus: Bus,
    state: ProjectionHandle,
}

impl Workflow for Accumulate {
    const NAME: &'static str = "accumulate";
    const STREAM: &'static str = INPUT.name;

    async fn handle(&self, events: &[LogEvent<'_>]) -> Result<Rejected, ApplyError> {
        let decider =
            Decider { bus: &self.bus, projection: &Running, state: &self.state, stream: OUTPUT.name, scope: None };
        decider
            .run(
                events,
                |view| Ok(u64_of(view.get(b"cursor")?)),
                |view: &dyn Read, ev| {
                    let text = std::str::from_utf8(ev.payload).map_err(|e| ApplyError::Malformed(e.to_string()))?;
                    // "huge": a decision larger than the log takes, even in parts; "large": one
                    // larger than a message, appended in parts and read whole (S9).
                    let size = match text {
                        "huge" => Some(kokuho_bus::MAX_EVENT),
                        "large" => Some(2 * kokuho_bus::MAX_PAYLOAD + 1),
                        _ => None,
                    };
                    if let Some(size) = size {
                        let total = u64_of(view.get(b"total")?);
                        let day = BusinessDay { intake_sequence: ev.seq, date: total as u32, day_close: false };
                        let big = "x".repeat(size);
                        return Ok(vec![(
                            DECISIONS,
                            event::envelope::<Decisions>(Event::BusinessDay(day), "", &big, ""),
                        )]);
                    }
                    let n: u64 = text.parse().map_err(|_| ApplyError::Malformed(format!("not a number: {text}")))?;
                    let total = u64_of(view.get(b"total")?) + n;
                    let day = BusinessDay { intake_sequence: ev.seq, date: total as u32, day_close: false };
                    Ok(vec![(DECISIONS, event::envelope::<Decisions>(Event::BusinessDay(day), "", "", ""))])
                },
            )
            .await
    }
}

/// Starts `Running` and `Accumulate` as service `service` with the sled files in `dir`.
fn start(bus: &Bus, service: &'static str, dir: &std::path::Path) -> (Runners, ProjectionHandle) {
    let mut runners = Runners::new(service, bus.clone(), SledDb::open(dir).unwrap(), RunnerSettings::default());
    let state = runners.projection(Running, "running").unwrap();
    let position = runners.workflow(Accumulate { bus: bus.clone(), state }).unwrap();
    (runners, position)
}

/// Every decision in the output stream: (input sequence, total).
async fn decisions(bus: &Bus) -> Vec<(u64, u32)> {
    let last = bus.last_seq(OUTPUT.name).await.unwrap();
    let def = ConsumerDef { name: "test-read".into(), stream: OUTPUT.name, max_deliver: 1, filter_subject: None };
    let mut consumer = bus.consume(&def, 1).await.unwrap();
    let (mut out, mut seen) = (Vec::new(), 0);
    while seen < last {
        for d in consumer.next_group(1_000, Duration::from_millis(20)).await.unwrap() {
            seen = d.stream_seq;
            if let Ok((_, Event::BusinessDay(b))) = event::decode::<Decisions>(&d.payload) {
                out.push((b.intake_sequence, b.date));
            }
        }
    }
    out
}

/// The totals of inputs 1..=n in order, "bad" and "huge" left out ("large" adds nothing): what
/// deciding one at a time gives.
fn expected(inputs: &[&str]) -> Vec<(u64, u32)> {
    let mut total = 0;
    let mut out = Vec::new();
    for (i, text) in inputs.iter().enumerate() {
        if let Ok(n) = text.replace("large", "0").parse::<u32>() {
            total += n;
            out.push((i as u64 + 1, total));
        }
    }
    out
}

async fn setup(inputs: &[&str]) -> (TestNats, Bus, u64) {
    let nats = TestNats::start().await;
    let bus = nats.bus().await;
    for s in [&INPUT, &OUTPUT, &DEAD_LETTER] {
        bus.ensure_stream(s).await.unwrap();
    }
    // All inputs are in the log before the workflow starts: it sees them in large groups.
    let mut last = 0;
    for (i, text) in inputs.iter().enumerate() {
        last = bus.append(Append::new("kokuho.din.n", text.to_string(), format!("in{i}"))).await.unwrap().seq;
    }
    (nats, bus, last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_decision_sees_the_earlier_ones_of_its_group_and_inputs_are_decided_once() {
    let mut inputs: Vec<String> = (1..=300).map(|n| n.to_string()).collect();
    inputs[149] = "bad".into();
    inputs[200] = "huge".into();
    inputs[250] = "large".into();
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let (nats, bus, last) = setup(&inputs).await;
    let dir = nats.dir().join("a");
    let (runners, position) = start(&bus, "a", &dir);
    assert!(position.wait_for(last, Duration::from_secs(30)).await);
    assert_eq!(decisions(&bus).await, expected(&inputs));
    assert_eq!(
        bus.dead_letters("a-accumulate").await.unwrap(),
        2,
        "the undecodable input and the one whose decision is too large are dead-lettered (S9)"
    );
    runners.shutdown().await;
    drop(position); // the last handle on the sled files

    // The workflow's position is lost (as after a crash between the append and the checkpoint):
    // it reads every input again, and the projection's cursor keeps it from deciding twice.
    SledDb::open(&dir).unwrap().store("a-accumulate").unwrap().clear().unwrap();
    let (runners, position) = start(&bus, "a", &dir);
    assert!(position.wait_for(last, Duration::from_secs(30)).await);
    assert_eq!(decisions(&bus).await, expected(&inputs));
    runners.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_racing_decide_each_input_once() {
    let inputs: Vec<String> = (1..=400).map(|n| (n % 7).to_string()).collect();
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let (nats, bus, last) = setup(&inputs).await;
    let (a, a_position) = start(&bus, "a", &nats.dir().join("a"));
    let (b, b_position) = start(&bus, "b", &nats.dir().join("b"));
    assert!(a_position.wait_for(last, Duration::from_secs(30)).await);
    assert!(b_position.wait_for(last, Duration::from_secs(30)).await);
    assert_eq!(decisions(&bus).await, expected(&inputs));
    a.shutdown().await;
    b.shutdown().await;
}
