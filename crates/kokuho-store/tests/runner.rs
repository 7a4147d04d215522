//! The projection runner against a real nats-server and real sled files.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use std::time::Duration;

use kokuho_bus::{Append, Bus, DEAD_LETTER, StreamDef};
use kokuho_store::{
    ApplyError, LogEvent, Projection, ProjectionHandle, ProjectionRunner, Read as _, RunnerSettings, SledDb, Store, Tx,
};
use kokuho_testkit::TestNats;

const STREAM: StreamDef = StreamDef { name: "KOKUHO_RUNNER", subjects: &["kokuho.runner.>"], description: "test" };

/// Sums the numbers in the payloads and keeps one row per event; "bad" is malformed.
struct Sum;

impl Projection for Sum {
    const NAME: &'static str = "sum";
    const VERSION: u32 = 1;
    const STREAM: &'static str = STREAM.name;

    fn apply(&self, tx: &mut Tx<'_>, event: &LogEvent<'_>) -> Result<(), ApplyError> {
        let text = std::str::from_utf8(event.payload).map_err(|e| ApplyError::Malformed(e.to_string()))?;
        let n: u64 = text.parse().map_err(|_| ApplyError::Malformed(format!("not a number: {text}")))?;
        let total = tx.get(b"total")?.map(|v| u64::from_be_bytes(v.try_into().unwrap())).unwrap_or(0);
        tx.put(b"total".to_vec(), (total + n).to_be_bytes().to_vec());
        tx.put(format!("row/{:08}", event.seq).into_bytes(), text.as_bytes().to_vec());
        Ok(())
    }
}

fn total(h: &ProjectionHandle) -> u64 {
    h.store().get(b"total").unwrap().map(|v| u64::from_be_bytes(v.try_into().unwrap())).unwrap_or(0)
}

async fn append_numbers(bus: &Bus, range: std::ops::Range<u64>) -> u64 {
    let mut last = 0;
    for i in range {
        last = bus.append(Append::new("kokuho.runner.n", i.to_string(), format!("n{i}"))).await.unwrap().seq;
    }
    last
}

fn start(bus: &Bus, db: &SledDb) -> (ProjectionHandle, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (runner, handle) =
        ProjectionRunner::new("test", Sum, db.store(Sum::NAME).unwrap(), bus.clone(), RunnerSettings::default())
            .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(runner.run(async move {
        let _ = stopped.await;
    }));
    (handle, stop, task)
}

#[tokio::test]
async fn applies_resumes_from_its_own_position_and_rebuilds() {
    let nats = TestNats::start().await;
    let bus = nats.bus().await;
    bus.ensure_stream(&STREAM).await.unwrap();
    bus.ensure_stream(&DEAD_LETTER).await.unwrap();
    let path = nats.dir().join("sled");
    let last = append_numbers(&bus, 1..101).await;

    let db = SledDb::open(&path).unwrap();
    let (handle, stop, task) = start(&bus, &db);
    assert!(handle.wait_for(last, Duration::from_secs(10)).await);
    assert_eq!(total(&handle), 5050);

    // A restart resumes from the stored position: nothing is applied twice.
    stop.send(()).unwrap();
    task.await.unwrap();
    let last = append_numbers(&bus, 101..111).await;
    let (handle, stop, task) = start(&bus, &db);
    assert!(handle.wait_for(last, Duration::from_secs(10)).await);
    assert_eq!(total(&handle), (1..111).sum::<u64>());

    // Rebuild from sequence 1 gives the same result.
    handle.rebuild().await;
    kokuho_testkit::eventually("rebuilt", Duration::from_secs(10), || async {
        (handle.position() == last && total(&handle) == (1..111).sum::<u64>()).then_some(())
    })
    .await;
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn a_store_that_lost_its_last_writes_replays_them() {
    let nats = TestNats::start().await;
    let bus = nats.bus().await;
    bus.ensure_stream(&STREAM).await.unwrap();
    let db = SledDb::open(&nats.dir().join("sled")).unwrap();
    let last = append_numbers(&bus, 1..21).await;
    let (handle, stop, task) = start(&bus, &db);
    assert!(handle.wait_for(last, Duration::from_secs(10)).await);
    stop.send(()).unwrap();
    task.await.unwrap();
    // Simulate a crash that lost the last commit: roll the checkpoint and total back.
    let store = db.store("sum").unwrap();
    store
        .commit(vec![
            (b"\0meta/checkpoint".to_vec(), Some(10u64.to_be_bytes().to_vec())),
            (b"total".to_vec(), Some((1..11u64).sum::<u64>().to_be_bytes().to_vec())),
        ])
        .unwrap();
    let (handle, stop, task) = start(&bus, &db);
    assert!(handle.wait_for(last, Duration::from_secs(10)).await);
    assert_eq!(total(&handle), (1..21).sum::<u64>(), "the consumer's ack floor (20) was not trusted");
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn malformed_events_go_to_the_dead_letter_stream() {
    let nats = TestNats::start().await;
    let bus = nats.bus().await;
    bus.ensure_stream(&STREAM).await.unwrap();
    bus.ensure_stream(&DEAD_LETTER).await.unwrap();
    append_numbers(&bus, 1..3).await;
    bus.append(Append::new("kokuho.runner.n", "bad", "bad")).await.unwrap();
    let last = append_numbers(&bus, 3..5).await;
    let db = SledDb::open(&nats.dir().join("sled")).unwrap();
    let (handle, stop, task) = start(&bus, &db);
    assert!(handle.wait_for(last, Duration::from_secs(10)).await);
    assert_eq!(total(&handle), 1 + 2 + 3 + 4);
    assert_eq!(bus.dead_letters("test-sum").await.unwrap(), 1);
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn a_corrupt_or_missing_store_is_rebuilt() {
    let nats = TestNats::start().await;
    let bus = nats.bus().await;
    bus.ensure_stream(&STREAM).await.unwrap();
    let path = nats.dir().join("sled");
    let last = append_numbers(&bus, 1..31).await;
    {
        let db = SledDb::open(&path).unwrap();
        let (handle, stop, task) = start(&bus, &db);
        assert!(handle.wait_for(last, Duration::from_secs(10)).await);
        stop.send(()).unwrap();
        task.await.unwrap();
    }
    // Overwrite the store's files with garbage.
    for entry in std::fs::read_dir(&path).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::write(&p, vec![0xA5u8; 4096]).unwrap();
        }
    }
    let db = SledDb::open(&path).unwrap();
    let (handle, stop, task) = start(&bus, &db);
    assert!(handle.wait_for(last, Duration::from_secs(10)).await);
    assert_eq!(total(&handle), (1..31).sum::<u64>());
    stop.send(()).unwrap();
    task.await.unwrap();
    // A deleted store is rebuilt too.
    drop(handle);
    drop(db);
    std::fs::remove_dir_all(&path).unwrap();
    let db = SledDb::open(&path).unwrap();
    let (handle, stop, task) = start(&bus, &db);
    assert!(handle.wait_for(last, Duration::from_secs(10)).await);
    assert_eq!(total(&handle), (1..31).sum::<u64>());
    stop.send(()).unwrap();
    task.await.unwrap();
}

/// A projection with a bug: it panics on 13.
struct Unlucky;

impl Projection for Unlucky {
    const NAME: &'static str = "unlucky";
    const VERSION: u32 = 1;
    const STREAM: &'static str = STREAM.name;

    fn apply(&self, _: &mut Tx<'_>, event: &LogEvent<'_>) -> Result<(), ApplyError> {
        assert_ne!(event.payload, b"13", "a bug");
        Ok(())
    }
}

/// S9: a runner that panics is reported (the process stops and is restarted), never left as a
/// silent, stale projection; the other runners of the service are not affected until then.
#[tokio::test]
async fn a_panicking_runner_is_reported() {
    let nats = TestNats::start().await;
    let bus = nats.bus().await;
    bus.ensure_stream(&STREAM).await.unwrap();
    bus.ensure_stream(&DEAD_LETTER).await.unwrap();
    let db = SledDb::open(&nats.dir().join("sled")).unwrap();
    let settings = RunnerSettings::default();
    let failures = settings.failures.clone();
    let mut runners = kokuho_store::Runners::new("test", bus.clone(), db, settings);
    let sum = runners.projection(Sum, "sum").unwrap();
    runners.projection(Unlucky, "unlucky").unwrap();
    let last = append_numbers(&bus, 1..21).await;
    assert!(sum.wait_for(last, Duration::from_secs(10)).await, "the healthy runner goes on");
    let why = tokio::time::timeout(Duration::from_secs(10), failures.failed()).await.expect("reported");
    assert_eq!(why, "test: unlucky panicked");
    runners.shutdown().await;
}
