//! Bad input (security.md S9, formats.md): damaged files get a clear answer and change
//! nothing else; no input stops the service; size limits are enforced with a clear error.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use kokuho_client::{ClientError, Code, SubmissionStatus};
use kokuho_e2e::app::{CHIYODA, CHUO, spawn_system};
use kokuho_e2e::sample_dir;

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn damage(rng: &mut Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    match rng.below(5) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(bytes.len());
                bytes[i] = rng.next() as u8;
            }
        }
        1 => bytes.truncate(rng.below(bytes.len())),
        2 => {
            let i = rng.below(bytes.len());
            bytes.insert(i, b'"');
        }
        3 => {
            let i = rng.below(bytes.len());
            bytes.splice(i..i, b"\n2,1,,,,\n".iter().copied());
        }
        _ => bytes = (0..rng.below(2048)).map(|_| rng.next() as u8).collect(),
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_files_are_answered_and_change_nothing_else() {
    let mut sys = spawn_system(20260401).await;
    let names = ["01_131016_KS.csv", "01_131016_KK.csv", "01_131016_KG.csv"];
    let originals: Vec<Vec<u8>> = names.iter().map(|n| std::fs::read(sample_dir().join(n)).unwrap()).collect();
    let mut rng = Rng(0x5eed_cafe);
    let mut accepted_any = false;
    for _ in 0..150 {
        let files: Vec<(String, Vec<u8>)> = names
            .iter()
            .zip(&originals)
            .map(|(n, b)| {
                let bytes = if rng.below(3) == 0 { damage(&mut rng, b.clone()) } else { b.clone() };
                (n.to_string(), bytes)
            })
            .collect();
        match sys.client.submit(CHIYODA, files).await {
            Ok(r) => accepted_any |= r.status() != SubmissionStatus::Rejected,
            Err(ClientError::Status(s)) => {
                assert!(matches!(s.code(), Code::InvalidArgument | Code::ResourceExhausted), "{s:?}")
            }
            Err(e) => panic!("the service did not answer: {e}"),
        }
    }
    assert!(accepted_any, "some submissions were accepted");
    // The service still works, and rejected submissions used up no 送信通番.
    let ok = std::fs::read(sample_dir().join("02_131024_KS.csv")).unwrap();
    let r = sys.client.submit(CHUO, vec![("KS".into(), ok)]).await.unwrap();
    assert_eq!(r.status(), SubmissionStatus::Accepted);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_callers() {
    let mut sys = spawn_system(20260401).await;
    // Another municipality's file: F04, and nothing is accepted.
    let theirs = std::fs::read(sample_dir().join("02_131024_KS.csv")).unwrap();
    let r = sys.client.submit(CHIYODA, vec![("KS".into(), theirs.clone())]).await.unwrap();
    assert_eq!((r.status(), r.code.as_str()), (SubmissionStatus::Rejected, "F04"));
    // A line longer than the limit: refused before a receipt.
    let long = format!("1,KS,131024,130021,20260401,1\n2,{}\n9,1\n", "x".repeat(70_000)).into_bytes();
    let err = sys.client.submit(CHUO, vec![("KS".into(), long)]).await.unwrap_err();
    assert!(matches!(&err, ClientError::Status(s) if s.code() == Code::ResourceExhausted), "{err}");
    // Too many files.
    let many = (0..9).map(|i| (format!("f{i}"), theirs.clone())).collect();
    assert!(sys.client.submit(CHUO, many).await.is_err());
    // Not a municipality of the prefecture.
    assert!(sys.client.submit("011002", vec![("KS".into(), theirs.clone())]).await.is_err());
    // None of it used up 中央区's 通番 1.
    let r = sys.client.submit(CHUO, vec![("KS".into(), theirs)]).await.unwrap();
    assert_eq!(r.status(), SubmissionStatus::Accepted);
    sys.stop().await;
}

/// S9, a poison input: a chunk sealed for a key identity does not hold is dead-lettered with
/// why, and identity goes on linking everyone else's records (it is not retried for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_identity_cannot_open_is_dead_lettered_not_retried() {
    use kokuho_intake_contract::pb;
    let mut sys = spawn_system(20260401).await;
    // Sealed for a key of someone else's.
    let keys = sys.data_dir().join("other-keys");
    let other = kokuho_crypto::generate_key_pair(&keys).unwrap();
    let sealer = kokuho_crypto::Sealer::new(&other).unwrap();
    let number = kokuho_ids::IndividualNumber::parse(&kokuho_testkit::individual_number(77_000_000_001)).unwrap();
    let sealed = sealer.seal(&number, b"131016/100001").unwrap();
    let w = sealer.wrapped_key();
    let person = pb::PersonRecord {
        processing: "1".into(),
        resident_number: "100001".into(),
        household_number: "1001".into(),
        insured_kind: "1".into(),
        individual_number: Some(pb::SealedNumber {
            nonce: sealed.nonce.clone(),
            ciphertext: sealed.ciphertext.clone(),
        }),
        name: "山田 太郎".into(),
        kana: "ヤマダ タロウ".into(),
        birth_date: 19800101,
        sex: "1".into(),
        relation: "01".into(),
        start_date: 20200401,
        start_reason: "03".into(),
        changed_on: 20200401,
        ..Default::default()
    };
    let chunk = pb::RecordsAccepted {
        receipt: "131016-99999999".into(),
        municipality: CHIYODA.into(),
        chunk: 1,
        records: vec![pb::ChangeRecord {
            kind: "KK".into(),
            line: 2,
            record: Some(pb::change_record::Record::Person(person)),
        }],
        data_key: Some(pb::WrappedKey {
            recipient_key_id: w.recipient_key_id.clone(),
            encapsulated_key: w.encapsulated_key.clone(),
            ciphertext: w.ciphertext.clone(),
        }),
        business_date: 20260401,
        ..Default::default()
    };
    let envelope = kokuho_bus::event::envelope::<kokuho_intake_contract::Events>(
        kokuho_intake_contract::Event::RecordsAccepted(chunk),
        CHIYODA,
        "",
        "",
    );
    let bus = sys.nats.bus().await;
    bus.append(kokuho_bus::Append::event("kokuho.intake.records.131016", &envelope)).await.unwrap();

    // Another ward's submission behind it is linked as usual.
    let ks = kokuho_e2e::input_file("KS", CHUO, "130021", 1, &["2,1,3001,20200401,01,300001,0,中央,3001,09,".into()]);
    let kk = kokuho_e2e::input_file(
        "KK",
        CHUO,
        "130021",
        1,
        &[kokuho_e2e::generate::kk(
            "300001",
            "3001",
            &kokuho_testkit::individual_number(77_000_000_002),
            "19800101",
            "1",
            "20200401",
            "03",
            "",
            "",
            "",
            "",
            "20200401",
        )],
    );
    sys.client.submit(CHUO, vec![ks, kk]).await.unwrap();
    sys.settle().await;
    let ri = kokuho_e2e::data_rows(&sys.fetch(CHUO).await, "RI");
    assert_eq!(ri.len(), 1, "identity went on: {ri:?}");
    assert_eq!(bus.dead_letters("identity-link-records").await.unwrap(), 1, "the chunk is dead-lettered");
    sys.stop().await;
}

/// A slow caller: `municipality`'s submission of `ks` sends its header and half of its file,
/// then nothing until the caller sends the rest (the returned sender) and closes it.
async fn slow_upload(
    sys: &kokuho_e2e::app::TestSystem,
    municipality: &str,
    ks: Vec<u8>,
) -> (
    tokio::sync::mpsc::Sender<kokuho_proto::intake::v1::SubmitRequest>,
    Vec<u8>,
    tokio::task::JoinHandle<Result<kokuho_proto::intake::v1::SubmitResponse, tonic::Status>>,
) {
    use kokuho_proto::intake::v1 as pb;
    use kokuho_proto::intake::v1::intake_service_client::IntakeServiceClient;
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::SubmitRequest>(4);
    let parts = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut request = tonic::Request::new(parts);
    let dir = kokuho_system::credentials_dir(&sys.data_dir());
    let caller = kokuho_runtime::credentials::Caller::Municipality(municipality.into());
    let token = kokuho_runtime::credentials::Credentials::token_of(&dir, &caller).unwrap();
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let channel = kokuho_runtime::tls::endpoint(sys.system().endpoint(), sys.system().client_tls()).unwrap();
    let mut raw = IntakeServiceClient::new(channel.connect().await.unwrap());
    let slow = tokio::spawn(async move { raw.submit(request).await.map(|r| r.into_inner()) });
    let header = pb::SubmitHeader { municipality: municipality.into(), file_names: vec!["KS1.csv".into()] };
    tx.send(pb::SubmitRequest { part: Some(pb::submit_request::Part::Header(header)) }).await.unwrap();
    let (first, rest) = ks.split_at(ks.len() / 2);
    tx.send(file_chunk(first)).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    (tx, rest.to_vec(), slow)
}

fn file_chunk(data: &[u8]) -> kokuho_proto::intake::v1::SubmitRequest {
    use kokuho_proto::intake::v1 as pb;
    pb::SubmitRequest {
        part: Some(pb::submit_request::Part::Chunk(pb::FileChunk { file_index: 0, data: data.to_vec() })),
    }
}

/// S9: intake holds at most `intake_small_submissions` small submissions (≤ 1 MiB of files) and
/// `intake_max_submissions` large ones in memory; one more waits for a permit before more of its
/// files is read. Here one of each, then two small and one large:
/// - while a slow caller's small upload is open, another municipality's small submission waits,
///   and goes once the first is done;
/// - while a slow caller's large upload holds the large permit, a small submission goes at once
///   (a day's small submissions never queue behind a register), and another large one waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submissions_held_in_memory_are_bounded() {
    let ks_of = |muni: &str, insurer: &str, households: u32| {
        let lines: Vec<String> = (0..households)
            .map(|i| format!("2,1,{},20200401,01,{},0,町,{},09,", 1001 + i, 100_001 + i, 1001 + i))
            .collect();
        kokuho_e2e::input_file("KS", muni, insurer, 1, &lines)
    };
    let mut sys = kokuho_e2e::app::spawn_system_with(
        20260401,
        &[("intake_max_submissions", "1"), ("intake_small_submissions", "1")],
    )
    .await;
    let (tx, rest, slow) = slow_upload(&sys, CHIYODA, ks_of(CHIYODA, "130013", 1).1).await;
    // Another municipality's small submission waits for the small permit.
    let mut client = sys.client.clone();
    let other = ks_of(CHUO, "130021", 1);
    let waiting = tokio::spawn(async move { client.submit(CHUO, vec![other]).await });
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(!waiting.is_finished(), "a second submission is not received while the first holds the only permit");
    // The slow caller finishes: both are decided.
    tx.send(file_chunk(&rest)).await.unwrap();
    drop(tx);
    let first = slow.await.unwrap().unwrap();
    assert_eq!((first.accepted, first.rejected), (1, 0), "{first:?}");
    let second = waiting.await.unwrap().unwrap();
    assert_eq!((second.accepted, second.rejected), (1, 0), "{second:?}");
    sys.settle().await;
    sys.stop().await;

    // Large submissions: 50,000 households, about 2.3 MiB, half of it sent before the pause.
    const LARGE: u32 = 50_000;
    let sys = kokuho_e2e::app::spawn_system_with(
        20260401,
        &[("intake_max_submissions", "1"), ("intake_small_submissions", "2")],
    )
    .await;
    let large = ks_of(CHIYODA, "130013", LARGE).1;
    assert!(large.len() / 2 > kokuho_intake::SMALL_BYTES);
    let (tx, rest, slow) = slow_upload(&sys, CHIYODA, large).await;
    let mut client = sys.client.clone();
    let small = client.submit("131032", vec![ks_of("131032", "130039", 1)]).await.unwrap();
    assert_eq!((small.accepted, small.rejected), (1, 0), "a small submission goes while a large one is read");
    let mut client = sys.client.clone();
    let other = ks_of(CHUO, "130021", LARGE);
    let waiting = tokio::spawn(async move { client.submit(CHUO, vec![other]).await });
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(!waiting.is_finished(), "a second large submission waits for the large permit");
    tx.send(file_chunk(&rest)).await.unwrap();
    drop(tx);
    let first = slow.await.unwrap().unwrap();
    assert_eq!((first.accepted, first.rejected), (LARGE, 0), "{first:?}");
    let second = waiting.await.unwrap().unwrap();
    assert_eq!((second.accepted, second.rejected), (LARGE, 0), "{second:?}");
    sys.stop().await;
}

/// S9: one submission per municipality at a time: while Chiyoda's slow upload is open, Chiyoda's
/// next submission waits (it cannot take the other permits), and Chuo's goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_submission_per_municipality_at_a_time() {
    let mut sys = kokuho_e2e::app::spawn_system(20260401).await;
    let ks = |n: u32| {
        kokuho_e2e::input_file(
            "KS",
            CHIYODA,
            "130013",
            n,
            &[format!("2,1,100{n},20200401,01,10000{n},0,千代田,100{n},09,")],
        )
    };
    let (tx, rest, slow) = slow_upload(&sys, CHIYODA, ks(1).1).await;
    let mut client = sys.client.clone();
    let again = tokio::spawn(async move { client.submit(CHIYODA, vec![ks(2)]).await });
    let other =
        kokuho_e2e::input_file("KS", CHUO, "130021", 1, &["2,1,3001,20200401,01,300001,0,中央,3001,09,".into()]);
    let chuo = sys.client.submit(CHUO, vec![other]).await.unwrap();
    assert_eq!(chuo.accepted, 1, "another municipality is not held up");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(!again.is_finished(), "a municipality's second submission waits for its first");
    tx.send(file_chunk(&rest)).await.unwrap();
    drop(tx);
    assert_eq!(slow.await.unwrap().unwrap().accepted, 1);
    assert_eq!(again.await.unwrap().unwrap().accepted, 1);
    sys.settle().await;
    sys.stop().await;
}

/// S9: no request runs on the server for ever: past `grpc_timeout_seconds` it is cut off (here a
/// `wait` that a consumer nobody acknowledges keeps from ever being idle).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_the_server_timeout_is_cut_off() {
    let mut sys = kokuho_e2e::app::spawn_system_with(20260401, &[("grpc_timeout_seconds", "1")]).await;
    let bus = sys.nats.bus().await;
    let def = kokuho_bus::ConsumerDef {
        name: "test-never-acks".into(),
        stream: kokuho_intake_contract::STREAM.name,
        max_deliver: 1,
        filter_subject: None,
    };
    let _consumer = bus.consume(&def, 1).await.unwrap();
    let started = std::time::Instant::now();
    let r = sys.client.wait_idle(std::time::Duration::from_secs(5)).await;
    assert!(
        matches!(&r, Err(ClientError::Status(s)) if matches!(s.code(), Code::Cancelled | Code::DeadlineExceeded)),
        "{r:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(4), "cut off at about a second");
    sys.stop().await;
}
