//! The outbox against a real nats-server and sled: nothing is dropped before acknowledgement,
//! a repeated group counts once, names follow formats.md, a rebuild gives the same files.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use std::sync::Arc;
use std::time::Duration;

use kokuho_bus::DEAD_LETTER;
use kokuho_ids::{LocalGovCode, Registry};
use kokuho_outbox::{Outbox, OutboxProjection, RESULTS, publish_rows};
use kokuho_proto::results::v1::ResultRow;
use kokuho_store::{ProjectionRunner, RunnerSettings, SledDb};
use kokuho_testkit::TestNats;

fn re(fields: &[&str]) -> ResultRow {
    ResultRow { kind: "RE".into(), fields: fields.iter().map(|s| s.to_string()).collect() }
}

#[tokio::test]
async fn fetch_offers_files_until_acknowledged() {
    let nats = TestNats::start().await;
    let bus = nats.bus().await;
    bus.ensure_stream(&RESULTS).await.unwrap();
    bus.ensure_stream(&DEAD_LETTER).await.unwrap();
    let db = SledDb::open(&nats.dir().join("sled")).unwrap();
    let (runner, handle) = ProjectionRunner::new(
        "intake",
        OutboxProjection,
        db.store("outbox").unwrap(),
        bus.clone(),
        RunnerSettings::default(),
    )
    .unwrap();
    tokio::spawn(runner.run(std::future::pending()));
    let registry = Arc::new(Registry::parse("131016,千代田区,130013\n131024,中央区,130021\n").unwrap());
    let outbox = Outbox::new(bus.clone(), handle.clone(), registry);
    let chiyoda = LocalGovCode::parse("131016").unwrap();
    let chuo = LocalGovCode::parse("131024").unwrap();

    publish_rows(
        &bus,
        "g1",
        "131016",
        vec![re(&["E", "E001"]), ResultRow { kind: "RI".into(), fields: vec!["100001".into()] }],
    )
    .await
    .unwrap();
    publish_rows(&bus, "g1", "131016", vec![re(&["E", "E001"])]).await.unwrap(); // the same group again
    publish_rows(&bus, "g2", "131024", vec![re(&["W", "W001"])]).await.unwrap();

    let files = outbox.fetch(chiyoda, 20260401).await.unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, vec!["RE_131016_20260401_000001.csv", "RI_131016_20260401_000002.csv"]);
    assert_eq!(files[0].rows, 1, "the repeated group counted once");
    assert_eq!(
        String::from_utf8(files[0].content.clone()).unwrap(),
        "1,RE,131016,130013,20260401,1\r\n2,E,E001\r\n9,1\r\n"
    );

    // Not acknowledged: offered again, same names, nothing new cut.
    let again = outbox.fetch(chiyoda, 20260402).await.unwrap();
    assert_eq!(again, files);
    // Rows that arrive meanwhile go into a new file.
    publish_rows(&bus, "g3", "131016", vec![re(&["E", "E002"])]).await.unwrap();
    let more = outbox.fetch(chiyoda, 20260402).await.unwrap();
    assert_eq!(more.len(), 3);
    assert_eq!(more[2].name, "RE_131016_20260402_000003.csv");
    assert_eq!(more[..2], files[..], "the first files keep their rows");
    assert!(
        String::from_utf8_lossy(&more[2].content).contains("2,E,E002\r\n9,1"),
        "the new file holds the new row only"
    );
    // The first two acknowledged: the third is still offered, with its row.
    assert_eq!(outbox.acknowledge(chiyoda, vec![more[0].name.clone(), more[1].name.clone()]).await.unwrap(), 2);
    assert_eq!(outbox.fetch(chiyoda, 20260402).await.unwrap(), more[2..].to_vec());
    assert_eq!(outbox.acknowledge(chiyoda, vec![more[2].name.clone()]).await.unwrap(), 1);
    assert!(outbox.fetch(chiyoda, 20260402).await.unwrap().is_empty());
    // The other municipality's rows were untouched.
    let theirs = outbox.fetch(chuo, 20260402).await.unwrap();
    assert_eq!(theirs.len(), 1);

    // Acknowledged files are listed (newest first, by pages) and rendered again, byte for byte.
    let listed = outbox.list(chiyoda, 20260402, 0, 10).await.unwrap();
    assert!(listed.pending.is_empty());
    let names: Vec<&str> = listed.acknowledged.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, vec![more[2].name.as_str(), more[1].name.as_str(), more[0].name.as_str()]);
    assert!(listed.acknowledged.iter().all(|f| f.acknowledged && f.rows == 1));
    assert_eq!(listed.next_before, 0, "one page holds them all");
    let first = outbox.list(chiyoda, 20260402, 0, 2).await.unwrap();
    assert_eq!(first.acknowledged, listed.acknowledged[..2]);
    let second = outbox.list(chiyoda, 20260402, first.next_before, 2).await.unwrap();
    assert_eq!(second.acknowledged, listed.acknowledged[2..]);
    assert_eq!(second.next_before, 0);
    for f in &more {
        assert_eq!(outbox.file(chiyoda, &f.name).await.unwrap().as_ref(), Some(f), "{} rendered again", f.name);
    }
    assert_eq!(outbox.file(chuo, &more[0].name).await.unwrap(), None, "another municipality's file");
    assert_eq!(outbox.file(chiyoda, "RE_131016_20260401_000009.csv").await.unwrap(), None);
    // Listing cuts waiting rows (as a fetch would) and names pending files without reading them.
    publish_rows(&bus, "g4", "131024", vec![re(&["E", "E003"]), re(&["W", "W002"])]).await.unwrap();
    let chuo_listed = outbox.list(chuo, 20260402, 0, 10).await.unwrap();
    let pending: Vec<(&str, u32, bool)> =
        chuo_listed.pending.iter().map(|f| (f.name.as_str(), f.rows, f.acknowledged)).collect();
    assert_eq!(pending, vec![("RE_131024_20260402_000001.csv", 1, false), ("RE_131024_20260402_000002.csv", 2, false)]);
    assert!(chuo_listed.acknowledged.is_empty());
    let theirs = outbox.fetch(chuo, 20260402).await.unwrap();
    assert_eq!(outbox.file(chuo, &theirs[1].name).await.unwrap().as_ref(), Some(&theirs[1]));

    // A rebuild from the log gives the same pending files.
    handle.rebuild().await;
    let last = bus.last_seq(RESULTS.name).await.unwrap();
    kokuho_testkit::eventually("rebuilt", Duration::from_secs(10), || async {
        (handle.position() == last).then_some(())
    })
    .await;
    assert_eq!(outbox.fetch(chuo, 20260403).await.unwrap(), theirs);
    assert!(outbox.fetch(chiyoda, 20260403).await.unwrap().is_empty());
    assert_eq!(outbox.list(chiyoda, 20260403, 0, 10).await.unwrap(), listed, "acknowledged files survive a rebuild");
    assert_eq!(outbox.file(chiyoda, &more[0].name).await.unwrap().as_ref(), Some(&more[0]));
}
