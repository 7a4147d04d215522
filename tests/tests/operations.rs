//! Operations (issue 13): what an operator on call reaches with stock tools.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use kokuho_e2e::app::spawn_system;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

/// gRPC reflection: a stock client (grpcurl) lists every service of the API and gets the
/// schema of a method, over the same mutual TLS as any call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_every_service() {
    let sys = spawn_system(20260401).await;
    let channel = kokuho_runtime::tls::endpoint(sys.system().endpoint(), sys.system().client_tls())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ServerReflectionClient::new(channel);
    let ask = |m: MessageRequest| ServerReflectionRequest { host: String::new(), message_request: Some(m) };
    let requests = vec![
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol("kokuho.intake.v1.IntakeService".into())),
    ];
    let mut answers = client.server_reflection_info(futures::stream::iter(requests)).await.unwrap().into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("no service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for wanted in [
        "kokuho.intake.v1.IntakeService",
        "kokuho.results.v1.ResultService",
        "kokuho.identity.v1.IdentityService",
        "kokuho.continuity.v1.ContinuityService",
        "kokuho.kogaku.v1.KogakuService",
        "kokuho.relay.v1.RelayService",
        "kokuho.midserver.v1.MidServerService",
        "kokuho.history.v1.HistoryService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == wanted), "{wanted} not listed: {names:?}");
    }
    let Some(MessageResponse::FileDescriptorResponse(file)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("no descriptor")
    };
    assert!(!file.file_descriptor_proto.is_empty(), "the method's schema");
    sys.stop().await;
}

/// The value of the sample `name{label="value"}` in a Prometheus text page.
fn sample(page: &str, name: &str, label: &str, value: &str) -> Option<i64> {
    let head = format!("{name}{{{label}=\"{value}\"}} ");
    page.lines().find_map(|l| l.strip_prefix(&head)).and_then(|v| v.trim().parse().ok())
}

/// Metrics of every service on `/metrics`: each runner's events applied, dead letters, position
/// and lag; each municipality's submissions and when its last one was decided.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_progress_lag_and_each_municipalitys_last_submission() {
    const KS: &str = "1,KS,131016,130013,20260401,1\n2,1,1001,20200401,01,100001,0,千代田,1001,09,\n9,1\n";
    const KK: &str = "1,KK,131016,130013,20260401,1\n2,1,100001,1001,1,123456789018,山田 太郎,ヤマダ タロウ,S300820,1,01,20200401,03,,,,,20200401\n9,1\n";
    let mut sys = spawn_system(20260401).await;
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let files = vec![("KS.csv".to_string(), KS.as_bytes().to_vec()), ("KK.csv".to_string(), KK.as_bytes().to_vec())];
    sys.client.submit(kokuho_e2e::app::CHIYODA, files).await.unwrap();
    sys.settle().await;
    let page = sys.metrics().await;
    for consumer in ["intake-state", "identity-link-records", "continuity-evaluate", "kogaku-members", "relay-persons"]
    {
        let applied = sample(&page, "kokuho_events_applied_total", "consumer", consumer);
        assert!(applied.is_some_and(|n| n >= 1), "{consumer} applied {applied:?}:\n{page}");
        assert_eq!(sample(&page, "kokuho_consumer_lag", "consumer", consumer), Some(0), "{consumer} caught up");
        assert!(sample(&page, "kokuho_consumer_position", "consumer", consumer).is_some_and(|p| p >= 1));
        assert_eq!(sample(&page, "kokuho_dead_letters_total", "consumer", consumer), Some(0));
    }
    // Where each runner's time goes: its steps and its commits.
    let time = |name: &str, consumer: &str| sample(&page, name, "consumer", consumer).unwrap_or(0);
    assert!(time("kokuho_runner_step_microseconds_total", "identity-link-records") > 0, "{page}");
    assert!(time("kokuho_store_commit_microseconds_total", "identity-link-records") > 0, "{page}");
    assert_eq!(sample(&page, "kokuho_intake_submissions_total", "municipality", "131016"), Some(1));
    let last = sample(&page, "kokuho_intake_last_submission_seconds", "municipality", "131016").unwrap();
    assert!((before - 5..=before + 120).contains(&last), "last submission at {last}, test started at {before}");
    assert_eq!(sample(&page, "kokuho_intake_submissions_total", "municipality", "131024"), None, "no submission");
    sys.stop().await;
}

/// `kokuho replay --verify`'s core: every projection of every service rebuilt from the log into
/// a scratch directory (as the NATS auditor, who may write no stream) equals the live one, by
/// digest; a live store altered behind its back is found, and its first differing key named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_equals_live_and_names_the_first_key_that_does_not() {
    use kokuho_store::Store as _;
    // The fixture's first step: households of two persons, whose 枝番 books are maps (a map
    // must encode the same bytes every time for a replay to equal live).
    let read = |name: &str| (name.to_string(), std::fs::read(kokuho_e2e::sample_dir().join(name)).unwrap());
    let mut sys = spawn_system(20260401).await;
    let files = vec![read("01_131016_KS.csv"), read("01_131016_KK.csv")];
    sys.client.submit(kokuho_e2e::app::CHIYODA, files).await.unwrap();
    sys.settle().await;
    let before = streams(&sys).await;

    let (channel, token) = sys.operator().await;
    let replay = |targets| sys.replay(targets, Default::default());
    let live = kokuho_system::replay::live_projections(channel.clone(), &token).await.unwrap();
    assert!(live.len() >= 13, "every service's projections: {live:?}");
    let targets = live.iter().map(|p| (p.name.clone(), p.position)).collect();
    let replayed = kokuho_system::replay::run(replay(targets), |_| {}).await.unwrap();
    let verdicts = kokuho_system::replay::compare(&replayed, channel.clone(), &token).await.unwrap();
    assert_eq!(verdicts.len(), live.len(), "every live projection replayed");
    for v in &verdicts {
        assert!(v.equal(), "{} differs: {v:?}", v.name);
    }
    // It wrote nothing to the log, and left no consumer behind.
    assert_eq!(streams(&sys).await, before);

    // A live store altered behind its back: found, with the key.
    let store = sys.system().projection_store("continuity-state").unwrap();
    store.commit(vec![(b"p/13999999999999".to_vec(), Some(b"forged".to_vec()))]).unwrap();
    let targets = live.iter().map(|p| (p.name.clone(), p.position)).collect();
    let replayed = kokuho_system::replay::run(replay(targets), |_| {}).await.unwrap();
    let verdicts = kokuho_system::replay::compare(&replayed, channel, &token).await.unwrap();
    let differs: Vec<_> = verdicts.iter().filter(|v| !v.equal()).collect();
    assert_eq!(differs.len(), 1, "{verdicts:?}");
    assert_eq!(differs[0].name, "continuity-state");
    assert_eq!(differs[0].first_difference.as_deref(), Some(&b"p/13999999999999"[..]));
    sys.stop().await;
}

/// (messages, consumers) of every stream, as the admin sees them.
async fn streams(sys: &kokuho_e2e::app::TestSystem) -> Vec<(String, u64, usize)> {
    let bus = sys.nats.bus().await;
    let progress = bus.progress().await.unwrap();
    let mut out = Vec::new();
    for s in [
        "KOKUHO_INTAKE",
        "KOKUHO_IDENTITY",
        "KOKUHO_CONTINUITY",
        "KOKUHO_KOGAKU",
        "KOKUHO_RELAY",
        "KOKUHO_RESULTS",
        "KOKUHO_DLQ",
        "KOKUHO_AUDIT",
    ] {
        let consumers = progress.iter().filter(|p| p.stream == s).count();
        out.push((s.to_string(), bus.stream_size(s).await.unwrap().0, consumers));
    }
    out
}

/// `kokuho replay --until-date`: a replay to the end of a past business date holds what the live
/// projections held then, after the day was closed and more came in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_at_a_past_date_holds_what_live_held_then() {
    const KS: &str = "1,KS,131016,130013,20260401,1\n2,1,1001,20200401,01,100001,0,千代田,1001,09,\n9,1\n";
    const KK: &str = "1,KK,131016,130013,20260401,1\n2,1,100001,1001,1,123456789018,山田 太郎,ヤマダ タロウ,S300820,1,01,20200401,03,,,,,20200401\n9,1\n";
    const KS2: &str = "1,KS,131016,130013,20260402,2\n2,1,1002,20200401,01,100002,0,千代田,1002,09,\n9,1\n";
    let mut sys = spawn_system(20260401).await;
    let files = vec![("KS.csv".to_string(), KS.as_bytes().to_vec()), ("KK.csv".to_string(), KK.as_bytes().to_vec())];
    sys.client.submit(kokuho_e2e::app::CHIYODA, files).await.unwrap();
    sys.settle().await;
    let (channel, token) = sys.operator().await;
    let then = kokuho_system::replay::live_projections(channel.clone(), &token).await.unwrap();

    sys.client.close_day(20260402).await.unwrap();
    sys.settle().await;
    sys.client.submit(kokuho_e2e::app::CHIYODA, vec![("KS.csv".to_string(), KS2.as_bytes().to_vec())]).await.unwrap();
    sys.settle().await;
    let now = kokuho_system::replay::live_projections(channel, &token).await.unwrap();
    assert_ne!(now.iter().map(|p| &p.sha256).collect::<Vec<_>>(), then.iter().map(|p| &p.sha256).collect::<Vec<_>>());

    let bus = sys.nats.bus().await;
    let positions =
        kokuho_system::replay::positions_at_date(&bus, 20260401).await.unwrap().expect("the day was closed");
    let replayed = kokuho_system::replay::run(sys.replay(Default::default(), positions), |_| {}).await.unwrap();
    for p in &then {
        let r = replayed.iter().find(|r| r.name == p.name).unwrap();
        assert_eq!(
            (r.digest.position, r.digest.keys, &r.digest.sha256),
            (p.position, p.keys, &p.sha256),
            "{} at the end of 20260401",
            p.name
        );
    }
    assert!(kokuho_system::replay::positions_at_date(&bus, 20260402).await.unwrap().is_none(), "today: no cut");
    sys.stop().await;
}
