//! The event log against a real nats-server.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use kokuho_bus::{Append, Bus, BusErrorKind, ConsumerDef, StreamDef};
use kokuho_testkit::TestNats;

const TEST: StreamDef = StreamDef { name: "KOKUHO_TEST", subjects: &["kokuho.test.>"], description: "test" };

async fn setup() -> (TestNats, Bus) {
    let nats = TestNats::start().await;
    let bus = nats.bus().await;
    bus.ensure_stream(&TEST).await.unwrap();
    bus.ensure_stream(&TEST).await.expect("idempotent");
    (nats, bus)
}

#[tokio::test]
async fn same_message_id_is_stored_once() {
    let (_nats, bus) = setup().await;
    let a = bus.append(Append::new("kokuho.test.a", "one", "id-1")).await.unwrap();
    let b = bus.append(Append::new("kokuho.test.a", "one", "id-1")).await.unwrap();
    assert!(!a.duplicate);
    assert!(b.duplicate);
    assert_eq!(a.seq, b.seq);
    assert_eq!(bus.last_seq("KOKUHO_TEST").await.unwrap(), 1);
}

#[tokio::test]
async fn expected_last_subject_sequence_guards_concurrent_writers() {
    let (_nats, bus) = setup().await;
    let first = bus.append(Append::new("kokuho.test.m", "1", "a").expect_last_subject_seq(0)).await.unwrap();
    assert_eq!(bus.last_subject_seq("KOKUHO_TEST", "kokuho.test.m").await.unwrap(), first.seq);
    let stale = bus.append(Append::new("kokuho.test.m", "2", "b").expect_last_subject_seq(0)).await.unwrap_err();
    assert_eq!(stale.kind(), BusErrorKind::WrongLastSequence);
    bus.append(Append::new("kokuho.test.m", "2", "c").expect_last_subject_seq(first.seq)).await.unwrap();
}

#[tokio::test]
async fn atomic_batch_is_all_or_nothing() {
    let (_nats, bus) = setup().await;
    let head = bus.append(Append::new("kokuho.test.head", "h", "h0")).await.unwrap();
    let batch: Vec<Append> = (0..500)
        .map(|i| {
            let a = Append::new(format!("kokuho.test.rec.{}", i % 3), format!("r{i}"), format!("r{i}"));
            if i == 0 { a.expect_last_subject_seq(0).subject_to("kokuho.test.head") } else { a }
        })
        .collect();
    // The head moved on: the whole batch is refused and nothing of it is stored.
    let err = bus.append_atomic(batch.clone()).await.unwrap_err();
    assert_eq!(err.kind(), BusErrorKind::WrongLastSequence, "{err}");
    assert_eq!(bus.last_seq("KOKUHO_TEST").await.unwrap(), head.seq);
    // With the right expectation it is stored whole.
    let mut batch = batch;
    batch[0].expected_last_subject_seq = Some(head.seq);
    let done = bus.append_atomic(batch).await.unwrap();
    assert_eq!(done.seq, head.seq + 500);
    assert!(
        bus.append_atomic((0..1001).map(|i| Append::new("kokuho.test.x", "x", format!("x{i}"))).collect())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn consumer_starts_where_the_caller_says_and_groups_messages() {
    let (_nats, bus) = setup().await;
    for i in 0..10 {
        bus.append(Append::new("kokuho.test.c", format!("{i}"), format!("c{i}"))).await.unwrap();
    }
    let def = ConsumerDef { name: "test-c".into(), stream: TEST.name, max_deliver: 5, filter_subject: None };
    let mut c = bus.consume(&def, 4).await.unwrap();
    let group = c.next_group(100, std::time::Duration::from_millis(50)).await.unwrap();
    assert_eq!(group.first().unwrap().stream_seq, 4);
    assert_eq!(group.len(), 7);
    group.last().unwrap().ack().await.unwrap();
    let progress = kokuho_testkit::eventually("ack floor", std::time::Duration::from_secs(5), || async {
        let p = bus.progress().await.unwrap();
        (p[0].ack_floor == 10).then_some(p)
    })
    .await;
    assert_eq!(progress[0].pending, 0);
    bus.ensure_stream(&kokuho_bus::DEAD_LETTER).await.unwrap();
    bus.dead_letter("test-c", TEST.name, &group[0], "bad payload").await.unwrap();
    assert_eq!(bus.dead_letters("test-c").await.unwrap(), 1);
    // The operator's list says where it came from and why; the original stays in its stream.
    let list = bus.dead_letter_list().await.unwrap();
    assert_eq!(list.len(), 1);
    let d = &list[0];
    assert_eq!(
        (d.consumer.as_str(), d.stream.as_str(), d.origin_seq, d.reason.as_str()),
        ("test-c", TEST.name, group[0].stream_seq, "bad payload")
    );
    assert!(bus.holds(TEST.name, d.origin_seq).await.unwrap());
}

#[tokio::test]
async fn an_append_retried_after_timeouts_is_stored_once() {
    let (mut nats, _) = setup().await;
    let bus = Bus::connect_with_timeout(
        &nats.url(),
        &kokuho_bus::NatsUser::anonymous("retry"),
        std::time::Duration::from_millis(300),
    )
    .await
    .unwrap();
    nats.stop().await;
    // The server is down: the first attempts time out while the client buffers them.
    let append = tokio::spawn({
        let bus = bus.clone();
        async move { bus.append(Append::new("kokuho.test.r", "payload", "the-id")).await }
    });
    let gone = kokuho_testkit::eventually("an attempt timed out", std::time::Duration::from_secs(10), || async {
        (append.is_finished() || nats_down_long_enough()).then_some(())
    });
    gone.await;
    nats.start_again().await;
    let appended = append.await.unwrap().expect("the append succeeds once the server is back");
    assert_eq!(bus.count(TEST.name, "kokuho.test.r").await.unwrap(), 1, "stored once: {appended:?}");
}

/// Long enough for at least one 300 ms attempt to time out.
fn nats_down_long_enough() -> bool {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed() > std::time::Duration::from_millis(700)
}

/// Regression: without a byte limit on pulls, a consumer of large messages (here 320 × 300 kB,
/// like identity's chunks) stalled after about 40 MB with every message sent by the server.
/// Every message must arrive, in order, with no gap, and groups stay within their byte cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_all_arrive_in_order_without_stalling() {
    let (_nats, bus) = setup().await;
    let payload = vec![7u8; 300_000];
    for b in 0..4 {
        let batch: Vec<Append> =
            (0..80).map(|i| Append::new("kokuho.test.big", payload.clone(), format!("m{b}-{i}"))).collect();
        bus.append_atomic(batch).await.unwrap();
    }
    let n = bus.last_seq("KOKUHO_TEST").await.unwrap();
    let def = ConsumerDef { name: "test-big".into(), stream: TEST.name, max_deliver: 1, filter_subject: None };
    let mut c = bus.consume(&def, 1).await.unwrap();
    let mut last = 0;
    while last < n {
        let group = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            c.next_group(1_000, std::time::Duration::from_millis(5)),
        )
        .await
        .unwrap_or_else(|_| panic!("the consumer stalled after sequence {last} of {n}"))
        .unwrap();
        let bytes: usize = group.iter().map(|d| d.payload.len()).sum();
        assert!(bytes < kokuho_bus::GROUP_MAX_BYTES + payload.len(), "a group of {bytes} bytes");
        for d in &group {
            assert_eq!(d.stream_seq, last + 1, "no gap");
            last = d.stream_seq;
            d.ack().await.unwrap();
        }
    }
}

/// S9: an event larger than one message is appended in parts (one atomic batch) and read whole,
/// by a consumer and by a subject's reader; past the largest event it is refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_larger_than_a_message_is_read_whole() {
    let (_nats, bus) = setup().await;
    let big: Vec<u8> = (0..2 * kokuho_bus::PART_BYTES + 10).map(|i| (i % 251) as u8).collect();
    bus.append(Append::new("kokuho.test.p", "before", "p-0")).await.unwrap();
    let appended = bus.append(Append::new("kokuho.test.p", big.clone(), "p-1")).await.unwrap();
    bus.append(Append::new("kokuho.test.p", "after", "p-2")).await.unwrap();
    assert_eq!(appended.seq, 4, "three parts after the first message");
    // The same event again is stored once (its parts' ids are its own).
    assert!(bus.append(Append::new("kokuho.test.p", big.clone(), "p-1")).await.unwrap().duplicate);

    let def = ConsumerDef { name: "test-parts".into(), stream: TEST.name, max_deliver: 1, filter_subject: None };
    let mut c = bus.consume(&def, 1).await.unwrap();
    let mut events = Vec::new();
    while events.len() < 3 {
        // Groups of two messages at most: the parts of one event still come together.
        events.extend(c.next_group(2, std::time::Duration::from_millis(5)).await.unwrap());
    }
    let got: Vec<(u64, u64, usize)> = events.iter().map(|d| (d.first_seq, d.stream_seq, d.payload.len())).collect();
    assert_eq!(got, [(1, 1, 6), (2, 4, big.len()), (5, 5, 5)]);
    assert_eq!(events[1].payload.as_ref(), &big[..], "put together in order");

    let read = bus.read_subject("KOKUHO_TEST", "kokuho.test.p").await.unwrap();
    assert_eq!(read.iter().map(|(seq, p)| (*seq, p.len())).collect::<Vec<_>>(), [(1, 6), (4, big.len()), (5, 5)]);
    bus.append(Append::new("kokuho.test.q", big.clone(), "q-1")).await.unwrap();
    let e = bus.last_message("KOKUHO_TEST", "kokuho.test.q").await.unwrap_err();
    assert!(e.to_string().contains("part"), "{e}");

    let huge = vec![0u8; kokuho_bus::MAX_EVENT + 1];
    let e = bus.append(Append::new("kokuho.test.p", huge, "p-huge")).await.unwrap_err();
    assert_eq!(e.kind(), kokuho_bus::BusErrorKind::Invalid);
    assert!(e.to_string().contains("largest event"), "{e}");
}

/// The runner asks whether a sequence it did not get is still in the stream (a lost pull) or
/// gone from it.
#[tokio::test]
async fn holds_tells_whether_the_stream_has_a_sequence() {
    let (_nats, bus) = setup().await;
    for i in 0..3 {
        bus.append(Append::new("kokuho.test.h", "x", format!("h-{i}"))).await.unwrap();
    }
    assert!(bus.holds("KOKUHO_TEST", 2).await.unwrap());
    assert!(!bus.holds("KOKUHO_TEST", 4).await.unwrap());
}

/// One writer of several subjects (a relay shard's plans and deliveries) expects the last
/// sequence of all of them, and a writer of other subjects of the stream does not disturb it.
#[tokio::test]
async fn expected_last_sequence_on_a_filter_of_subjects() {
    let (_nats, bus) = setup().await;
    let filter = "kokuho.test.*.s1";
    assert_eq!(bus.last_seq_on("KOKUHO_TEST", filter).await.unwrap(), 0);
    let a = bus.append(Append::new("kokuho.test.plans.s1", "1", "a").expect_last_seq_on(filter, 0)).await.unwrap();
    // Another shard's subjects move on; ours has not.
    bus.append(Append::new("kokuho.test.plans.s2", "x", "x")).await.unwrap();
    assert_eq!(bus.last_seq_on("KOKUHO_TEST", filter).await.unwrap(), a.seq);
    let b = bus.append(Append::new("kokuho.test.deliveries.s1", "2", "b")).await.unwrap();
    // Our deliveries moved it: a plan that expected `a` is refused, in a batch too.
    let stale = Append::new("kokuho.test.plans.s1", "3", "c").expect_last_seq_on(filter, a.seq);
    assert_eq!(bus.append(stale.clone()).await.unwrap_err().kind(), BusErrorKind::WrongLastSequence);
    let batch = vec![stale, Append::new("kokuho.test.plans.s1", "4", "d")];
    assert_eq!(bus.append_atomic(batch.clone()).await.unwrap_err().kind(), BusErrorKind::WrongLastSequence);
    let mut batch = batch;
    batch[0].expected_last_subject_seq = Some(b.seq);
    let done = bus.append_atomic(batch).await.unwrap();
    assert_eq!(bus.last_seq_on("KOKUHO_TEST", filter).await.unwrap(), done.seq);
}
