//! The intermediate-server simulator through the running system (issue 11, first part): a
//! partition per municipality (R1), Apply idempotent by key (R4: nothing applied twice),
//! eligibility as a clinic asks it (never a 個人番号), injected faults (unreachable, rejected
//! share, lost answers), and a durable store that keeps numbers sealed (S1).
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use kokuho_client::midserver::{ApplyRequest, EligibilityRequest, Faults, Subscriber};
use kokuho_client::{ClientError, Code};
use kokuho_e2e::app::{CHUO, MINATO, spawn_system};
use kokuho_runtime::credentials::Caller;

fn subscriber(branch: u32, number: &str, lost: u32) -> Subscriber {
    Subscriber {
        insurer: "130039".into(),
        symbol: "港".into(),
        number: "2001".into(),
        branch,
        individual_number: number.into(),
        name: "山田 太郎".into(),
        kana: "ヤマダ タロウ".into(),
        birth_date: 19550820,
        sex: "1".into(),
        acquired_on: 20260510,
        lost_on: lost,
        pref_acquired_on: 20200401,
        pref_lost_on: 0,
    }
}

fn apply(key: &str, processing: &str, s: Subscriber) -> ApplyRequest {
    ApplyRequest {
        partition: MINATO.into(),
        idempotency_key: key.into(),
        processing: processing.into(),
        subscriber: Some(s),
    }
}

fn asked(branch: u32, date: u32) -> EligibilityRequest {
    EligibilityRequest { insurer: "130039".into(), symbol: "港".into(), number: "2001".into(), branch, date }
}

fn code_of<T: std::fmt::Debug>(r: Result<T, ClientError>) -> Code {
    match r {
        Err(ClientError::Status(s)) => s.code(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_idempotent_applies_eligibility_and_faults() {
    let mut sys = spawn_system(20260601).await;
    let number = kokuho_testkit::individual_number(31_415_926_535);
    let relay = Caller::Relay;
    let c = &mut sys.client;

    // Registered: insured from 資格取得年月日; the answer carries no number.
    let r = c.midserver_apply(&relay, apply("k1", "1", subscriber(1, &number, 0))).await.unwrap();
    assert!(r.accepted && !r.duplicate, "{r:?}");
    let e = c.eligibility(asked(1, 20260601)).await.unwrap();
    assert!(e.found && e.insured, "{e:?}");
    assert_eq!((e.acquired_on, e.lost_on, e.pref_acquired_on), (20260510, 0, 20200401));
    assert!(!c.eligibility(asked(1, 20260509)).await.unwrap().insured);
    assert!(!c.eligibility(asked(2, 20260601)).await.unwrap().found);

    // R4: the same key again is answered as before and applied once; a second 新規 under
    // another key is refused (M01).
    let again = c.midserver_apply(&relay, apply("k1", "1", subscriber(1, &number, 0))).await.unwrap();
    assert!(again.accepted && again.duplicate);
    let twice = c.midserver_apply(&relay, apply("k2", "1", subscriber(1, &number, 0))).await.unwrap();
    assert_eq!((twice.accepted, twice.error_code.as_str()), (false, "M01"));
    // 変更: the period ended; 削除 of a card and 枝番 that holds nothing is M02.
    let ended = c.midserver_apply(&relay, apply("k3", "2", subscriber(1, &number, 20260816))).await.unwrap();
    assert!(ended.accepted);
    assert!(!c.eligibility(asked(1, 20260816)).await.unwrap().insured);
    let none = c.midserver_apply(&relay, apply("k4", "3", subscriber(9, &number, 0))).await.unwrap();
    assert_eq!(none.error_code, "M02");

    // A batch is decided in order and committed together: a key seen before is a duplicate,
    // a request that cannot be read is M98 and the others still apply; the partition counts
    // each applied key once.
    let applied_before = c.midserver_listing(MINATO).await.unwrap().applied;
    let mut unreadable = apply("b3", "1", subscriber(5, "123", 0));
    unreadable.subscriber.as_mut().unwrap().individual_number = "123".into();
    let answers = c
        .midserver_apply_batch(
            &relay,
            vec![
                apply("k1", "1", subscriber(1, &number, 0)),
                apply("b1", "1", subscriber(4, &number, 0)),
                apply("b2", "2", subscriber(4, &number, 20260901)),
                unreadable,
            ],
        )
        .await
        .unwrap();
    let got: Vec<_> = answers.iter().map(|a| (a.accepted, a.duplicate, a.error_code.as_str())).collect();
    assert_eq!(got, vec![(true, true, ""), (true, false, ""), (true, false, ""), (false, false, "M98")]);
    assert_eq!(c.eligibility(asked(4, 20260601)).await.unwrap().lost_on, 20260901, "b2 saw b1's record");
    assert_eq!(c.midserver_listing(MINATO).await.unwrap().applied, applied_before + 2);
    let delete = c.midserver_apply(&relay, apply("b4", "3", subscriber(4, "", 0))).await.unwrap();
    assert!(delete.accepted, "a 削除 names card and 枝番 only: {delete:?}");

    // R1: another municipality may not write or read 港区's partition; 港区 may read it, without
    // numbers.
    let chuo = Caller::Municipality(CHUO.into());
    assert_eq!(
        code_of(c.midserver_apply(&chuo, apply("k5", "1", subscriber(2, &number, 0))).await),
        Code::PermissionDenied
    );
    let listed = c.midserver_partition(MINATO).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].individual_number.is_empty());
    assert!(c.midserver_partition(CHUO).await.unwrap().is_empty());

    // Faults: unreachable; a rejected share (always the same keys); answers lost the first time
    // (the retry is a duplicate: applied once).
    c.midserver_faults(Faults { unreachable: true, ..Default::default() }).await.unwrap();
    assert_eq!(code_of(c.eligibility(asked(1, 20260601)).await), Code::Unavailable);
    c.midserver_faults(Faults {
        reject_per_mille: 1000, reject_reason: "検証エラー".into(), ..Default::default()
    })
    .await
    .unwrap();
    let rejected = c.midserver_apply(&relay, apply("k6", "1", subscriber(2, &number, 0))).await.unwrap();
    assert_eq!(
        (rejected.accepted, rejected.error_code.as_str(), rejected.message.as_str()),
        (false, "M99", "検証エラー")
    );
    c.midserver_faults(Faults { lose_ack_per_mille: 1000, ..Default::default() }).await.unwrap();
    assert_eq!(
        code_of(c.midserver_apply(&relay, apply("k7", "1", subscriber(3, &number, 0))).await),
        Code::Unavailable
    );
    let retried = c.midserver_apply(&relay, apply("k7", "1", subscriber(3, &number, 0))).await.unwrap();
    assert!(retried.accepted && retried.duplicate, "applied once, answered again: {retried:?}");
    c.midserver_faults(Faults::default()).await.unwrap();
    // Only an operator injects faults.
    let dir = kokuho_system::credentials_dir(&sys.data_dir());
    let token = kokuho_runtime::credentials::Credentials::token_of(&dir, &Caller::Municipality(MINATO.into())).unwrap();
    let mut minato = sys.client.with_token(token);
    assert_eq!(code_of(minato.midserver_faults(Faults::default()).await), Code::PermissionDenied);

    // A restart keeps everything (its own durable store), and the keys it answered — also when
    // kokuho's stores are deleted to be rebuilt from the log (the simulator's are not kokuho's).
    sys.stop_services().await;
    std::fs::remove_dir_all(sys.data_dir().join("store")).unwrap();
    sys.start_services().await;
    let c = &mut sys.client;
    assert!(c.eligibility(asked(3, 20260601)).await.unwrap().insured);
    assert!(c.midserver_apply(&relay, apply("k7", "1", subscriber(3, &number, 0))).await.unwrap().duplicate);

    // S1: the simulator keeps numbers sealed at rest.
    sys.stop_services().await;
    let store = sys.data_dir().join("midserver-sim");
    let mut files = Vec::new();
    let mut stack = vec![store];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            if e.path().is_dir() { stack.push(e.path()) } else { files.push(e.path()) }
        }
    }
    assert!(!files.is_empty());
    let mut saw_clear_text = false;
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(!bytes.windows(12).any(|w| w == number.as_bytes()), "{} holds the number in clear", f.display());
        let kana = "ヤマダ タロウ".as_bytes();
        saw_clear_text |= bytes.windows(kana.len()).any(|w| w == kana);
    }
    assert!(saw_clear_text, "positive control: the scan finds what is stored in clear (names)");
}
