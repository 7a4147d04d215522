//! identity through the running system: IDs are facts in the log (a rebuild gives every person
//! the same IDs), and a key rotation keeps old data readable and everyone findable (S3).
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use kokuho_client::scenario::{self, Scenario};
use kokuho_e2e::app::{CHIYODA, MINATO, TestSystem, spawn_system};
use kokuho_e2e::sample_dir;
use kokuho_identity_contract as identity;

const RESIDENTS: [(&str, &str); 8] = [
    ("131016", "100001"),
    ("131016", "100002"),
    ("131016", "100003"),
    ("131016", "100004"),
    ("131032", "200001"),
    ("131032", "200002"),
    ("131024", "300001"),
    ("131024", "300002"),
];

fn links(sys: &TestSystem) -> Vec<Option<kokuho_identity::LinkView>> {
    let state = sys.system().service::<kokuho_identity::App>().unwrap().state();
    RESIDENTS.iter().map(|(m, r)| kokuho_identity::link_of(state, m, r).unwrap()).collect()
}

fn operator_client(sys: &TestSystem) -> kokuho_client::Client {
    sys.client.with_token(token(sys, &kokuho_runtime::credentials::Caller::operator()))
}

fn read(name: &str) -> (String, Vec<u8>) {
    (name.to_string(), std::fs::read(sample_dir().join(name)).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_from_the_log_gives_everyone_the_same_ids() {
    let scenario = Scenario::load(&sample_dir()).unwrap();
    let mut sys = spawn_system(scenario.first_business_date().unwrap()).await;
    scenario::play(&mut sys.client, &scenario, |_| {}).await.unwrap();
    let before = links(&sys);
    assert!(before.iter().all(Option::is_some), "{before:?}");
    // X is one person in both wards, with a municipal ID in each (I1, I2).
    assert_eq!(before[0].as_ref().unwrap().pref_id, before[4].as_ref().unwrap().pref_id);
    assert_ne!(before[0].as_ref().unwrap().muni_id, before[4].as_ref().unwrap().muni_id);
    let held = kokuho_identity::held_cases(sys.system().service::<kokuho_identity::App>().unwrap().state()).unwrap();
    assert_eq!(held.len(), 1, "the C01 of 300009 is on the review queue");
    assert_eq!((held[0].code.as_str(), held[0].resident_number.as_str()), ("C01", "300009"));

    // I7: what identity publishes carries IDs and the record's other fields, never the
    // 個人番号, sealed or not (only held records keep it, sealed at rest, for the review).
    let bus = sys.nats.bus().await;
    let mut published = 0;
    for e in kokuho_e2e::all_events::<identity::Events>(&bus, identity::STREAM.name).await {
        if let identity::Event::ChunkLinked(c) = e {
            for l in &c.links {
                assert!(l.record.as_ref().unwrap().individual_number.is_none());
                published += 1;
            }
        }
    }
    assert!(published >= 10, "{published} links checked");

    sys.stop_services().await;
    std::fs::remove_dir_all(sys.data_dir().join("store").join("identity")).unwrap();
    sys.start_services().await;
    sys.settle().await;
    assert_eq!(links(&sys), before);
    assert_eq!(
        kokuho_identity::held_cases(sys.system().service::<kokuho_identity::App>().unwrap().state()).unwrap(),
        held
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_key_rotation_old_persons_are_still_found_by_number() {
    let mut sys = spawn_system(20260401).await;
    let step1 = vec![read("01_131016_KS.csv"), read("01_131016_KK.csv")];
    sys.client.submit(CHIYODA, step1).await.unwrap();
    sys.settle().await;
    let x = links(&sys)[0].clone().unwrap();

    // Rotate: the old private key is kept under another name, a new pair becomes current.
    sys.stop_services().await;
    let keys = sys.data_dir().join("keys");
    std::fs::rename(keys.join("identity.key"), keys.join("identity-2026-04.key")).unwrap();
    std::fs::remove_file(keys.join("identity.pub")).unwrap();
    kokuho_crypto::generate_key_pair(&keys).unwrap();
    sys.start_services().await;

    // 港区 sends X and Y, sealed under the new key: they link to the persons of 千代田区.
    sys.client.submit(MINATO, vec![read("06_131032_KS.csv"), read("06_131032_KK.csv")]).await.unwrap();
    sys.settle().await;
    let after = links(&sys);
    assert_eq!(after[0].as_ref().unwrap().pref_id, x.pref_id, "old data readable after the rotation");
    assert_eq!(after[4].as_ref().unwrap().pref_id, x.pref_id, "found by number through the new index");
    sys.stop().await;
}

fn token(sys: &TestSystem, caller: &kokuho_runtime::credentials::Caller) -> String {
    kokuho_runtime::credentials::Credentials::token_of(&kokuho_system::credentials_dir(&sys.data_dir()), caller)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_release_and_lookup_answer_only_their_callers() {
    use kokuho_client::{ClientError, Code, ReviewAction};
    use kokuho_runtime::credentials::Caller;

    let scenario = Scenario::load(&sample_dir()).unwrap();
    let mut sys = spawn_system(scenario.first_business_date().unwrap()).await;
    scenario::play(&mut sys.client, &scenario, |_| {}).await.unwrap();
    let x = links(&sys)[0].clone().unwrap();

    // Lookup (8.): a municipality sees its own records only.
    let mut chiyoda = sys.client.with_token(token(&sys, &Caller::Municipality(CHIYODA.into())));
    let found = chiyoda.lookup_ids(CHIYODA, "100001").await.unwrap();
    assert_eq!((found.found, found.pref_id.as_str()), (true, x.pref_id.as_str()));
    let refused = chiyoda.lookup_ids(MINATO, "200001").await.unwrap_err();
    assert!(matches!(&refused, ClientError::Status(s) if s.code() == Code::PermissionDenied), "{refused}");
    assert!(sys.anonymous().await.lookup_ids(CHIYODA, "100001").await.is_err(), "no credential, no answer");

    // Release (R6): relay's credential only; each release is audited, hash-chained (S8). relay
    // released the numbers of the scenario's records as it sent them; two more here.
    sys.settle().await;
    let bus = sys.nats.bus().await;
    use kokuho_proto::audit::v1::{NumberReleased, audit_event::Event as AuditEvent};
    use kokuho_runtime::audit::{AUDIT, Audit, RELEASES_SUBJECT, computed_hash};
    let before = bus.count(AUDIT.name, RELEASES_SUBJECT).await.unwrap();
    assert!(before > 0, "relay's own releases are in the chain");
    let mut relay = sys.client.with_token(token(&sys, &Caller::Relay));
    assert_eq!(relay.release_number(&x.pref_id, "中間サーバー連携 test").await.unwrap(), "123456789018");
    relay.release_number(&x.pref_id, "中間サーバー連携 test 2").await.unwrap();
    for mut other in [sys.anonymous().await, chiyoda.clone(), sys.client.with_token(token(&sys, &Caller::operator()))] {
        assert!(other.release_number(&x.pref_id, "curious").await.is_err());
    }
    let after = bus.count(AUDIT.name, RELEASES_SUBJECT).await.unwrap();
    assert_eq!(after, before + 2, "only the two releases");
    let (_, last) = bus.last_message(AUDIT.name, RELEASES_SUBJECT).await.unwrap().unwrap();
    let AuditEvent::NumberReleased(entry) = kokuho_bus::event::decode::<Audit>(&last).unwrap().1 else {
        panic!("a release entry")
    };
    assert_eq!((entry.pref_id.as_str(), entry.caller.as_str()), (x.pref_id.as_str(), "relay"));
    assert!(!entry.previous_hash.is_empty(), "chained to the first release");
    assert_eq!(entry.hash, computed_hash(&AuditEvent::NumberReleased(entry.clone())));
    assert!(!entry.signature.is_empty(), "signed with identity's audit key");

    // S8: the verify command finds the chain intact, for operators only...
    let verified = operator_client(&sys).verify_audit(Vec::new()).await.unwrap();
    let releases = |v: &kokuho_proto::identity::v1::VerifyAuditResponse| {
        v.chains.iter().find(|c| c.subject == RELEASES_SUBJECT).cloned().unwrap()
    };
    assert!(verified.intact, "{verified:?}");
    assert_eq!((releases(&verified).entries, releases(&verified).intact), (after, true), "{verified:?}");
    assert!(chiyoda.verify_audit(Vec::new()).await.is_err(), "a municipality cannot run the audit check");
    // ...and finds an entry appended behind identity's back (by the NATS admin), even with a
    // well-formed hash chained to the last entry: it cannot be signed with identity's key.
    let mut forged = NumberReleased {
        pref_id: x.pref_id.clone(),
        purpose: "forged".into(),
        caller: "relay".into(),
        released_at: entry.released_at,
        previous_hash: entry.hash.clone(),
        ..Default::default()
    };
    forged.hash = computed_hash(&AuditEvent::NumberReleased(forged.clone()));
    let envelope = kokuho_bus::event::envelope::<Audit>(AuditEvent::NumberReleased(forged), "", "", "");
    let at = bus.append(kokuho_bus::Append::event(RELEASES_SUBJECT, &envelope)).await.unwrap().seq;
    let verified = operator_client(&sys).verify_audit(Vec::new()).await.unwrap();
    assert_eq!((verified.intact, verified.broken_at), (false, at), "{verified:?}");
    assert!(verified.reason.contains("not signed"), "{verified:?}");
    assert_eq!((releases(&verified).entries, releases(&verified).intact), (after + 1, false), "{verified:?}");

    // Review (I6): the operator sees the C01 and rejects it with a reason; the C row closes.
    let mut operator = sys.client.with_token(token(&sys, &Caller::operator()));
    assert!(chiyoda.list_reviews().await.is_err(), "a municipality cannot see the queue");
    let cases = operator.list_reviews().await.unwrap();
    assert_eq!(cases.len(), 1);
    assert_eq!((cases[0].code.as_str(), cases[0].resident_number.as_str()), ("C01", "300009"));
    assert!(
        operator.resolve_review(&cases[0].case_id, ReviewAction::Reject, "", "op").await.is_err(),
        "a reason is required"
    );
    operator.resolve_review(&cases[0].case_id, ReviewAction::Reject, "別人（生年月日相違）", "op").await.unwrap();
    assert!(operator.list_reviews().await.unwrap().is_empty());
    sys.settle().await;
    let files = sys.client.fetch_files("131024").await.unwrap();
    let text: String = files.iter().map(|f| String::from_utf8_lossy(&f.content).into_owned()).collect();
    assert!(text.lines().any(|l| l.starts_with("2,C,C01,") && l.contains(",300009,") && l.ends_with(",2")), "{text}");
    sys.stop().await;
}

fn kk(seq: u32, lines: &[(&str, &str)]) -> (String, Vec<u8>) {
    let mut t = format!("1,KK,131016,130013,20260401,{seq}\n");
    for (resident, number) in lines {
        t.push_str(&format!(
            "2,1,{resident},1001,1,{number},山田 太郎,ヤマダ タロウ,19550820,1,01,20200401,03,,,,,20200401\n"
        ));
    }
    t.push_str(&format!("9,{}\n", lines.len()));
    (format!("KK{seq}.csv"), t.into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i5_a_provisional_person_merges_into_the_owner_of_its_number() {
    let mut sys = spawn_system(20260401).await;
    let ks = (
        "KS.csv".to_string(),
        "1,KS,131016,130013,20260401,1\n2,1,1001,20200401,01,100001,0,千代田,1001,09,\n9,1\n".as_bytes().to_vec(),
    );
    // 100001 has no number yet (a provisional person); 100005 has X's number.
    let first =
        sys.client.submit(CHIYODA, vec![ks, kk(1, &[("100001", ""), ("100005", "123456789018")])]).await.unwrap();
    assert_eq!((first.accepted, first.warnings), (3, 1), "W001 for the blank number");
    sys.settle().await;
    let state = sys.system().service::<kokuho_identity::App>().unwrap().state().clone();
    let provisional = kokuho_identity::link_of(&state, CHIYODA, "100001").unwrap().unwrap();
    let x = kokuho_identity::link_of(&state, CHIYODA, "100005").unwrap().unwrap();
    assert_ne!(provisional.pref_id, x.pref_id);
    let mut fetched = sys.client.fetch_files(CHIYODA).await.unwrap();
    sys.client.acknowledge(CHIYODA, fetched.iter().map(|f| f.name.clone()).collect()).await.unwrap();

    // The number arrives for 100001: it is X's, so the provisional person merges into X.
    sys.client.submit(CHIYODA, vec![kk(2, &[("100001", "123456789018")])]).await.unwrap();
    sys.settle().await;
    let merged = kokuho_identity::link_of(&state, CHIYODA, "100001").unwrap().unwrap();
    assert_eq!(merged.pref_id, x.pref_id, "the provisional ID resolves to the survivor");
    assert_eq!(merged.muni_id, x.muni_id, "the survivor keeps its own 市区町村被保険者ID");
    // RI tells 千代田区 the survivor's ID for 100001, 訂正 1.
    fetched.extend(sys.client.fetch_files(CHIYODA).await.unwrap());
    let ri: Vec<String> = fetched
        .iter()
        .filter(|f| f.kind == "RI")
        .flat_map(|f| String::from_utf8_lossy(&f.content).lines().map(str::to_string).collect::<Vec<_>>())
        .filter(|l| l.starts_with("2,100001,"))
        .collect();
    assert_eq!(ri.len(), 2, "{ri:?}");
    assert!(ri[1].ends_with(&format!("{},20260401,1", x.muni_id.clone().unwrap())), "{ri:?}");
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i4_c02_is_held_and_an_operator_relinks_it() {
    use kokuho_client::ReviewAction;
    use kokuho_runtime::credentials::Caller;

    let mut sys = spawn_system(20260401).await;
    let ks = (
        "KS.csv".to_string(),
        "1,KS,131016,130013,20260401,1\n2,1,1001,20200401,01,100001,0,千代田,1001,09,\n9,1\n".as_bytes().to_vec(),
    );
    sys.client.submit(CHIYODA, vec![ks, kk(1, &[("100001", "123456789018")])]).await.unwrap();
    sys.settle().await;
    let state = sys.system().service::<kokuho_identity::App>().unwrap().state().clone();
    let x = kokuho_identity::link_of(&state, CHIYODA, "100001").unwrap().unwrap();
    sys.client.fetch_into(CHIYODA, &sys.data_dir().join("out")).await.unwrap();

    // The same 宛名番号 with another number: held as C02, the link stays (I4).
    sys.client.submit(CHIYODA, vec![kk(2, &[("100001", "234567890121")])]).await.unwrap();
    sys.settle().await;
    assert_eq!(kokuho_identity::link_of(&state, CHIYODA, "100001").unwrap().unwrap(), x);
    let mut operator = sys.client.with_token(token(&sys, &Caller::operator()));
    let cases = operator.list_reviews().await.unwrap();
    assert_eq!((cases.len(), cases[0].code.as_str()), (1, "C02"));

    // The operator relinks it to the person of its number (a new person): a fact with who and why.
    let y = operator.resolve_review(&cases[0].case_id, ReviewAction::Relink, "転記誤り", "op").await.unwrap();
    sys.settle().await;
    assert_ne!(y, x.pref_id);
    let now = kokuho_identity::link_of(&state, CHIYODA, "100001").unwrap().unwrap();
    assert_eq!(now.pref_id, y);
    let bus = sys.nats.bus().await;
    let resolved: Vec<_> = kokuho_e2e::all_events::<identity::Events>(&bus, identity::STREAM.name)
        .await
        .into_iter()
        .filter_map(|e| match e {
            identity::Event::CaseResolved(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(resolved.len(), 1);
    assert_eq!(
        (resolved[0].action.as_str(), resolved[0].operator.as_str(), resolved[0].reason.as_str()),
        ("relink", "op", "転記誤り")
    );
    // 千代田区 hears the new ID for 100001 (訂正 1) and the C02 closing.
    let files = sys.client.fetch_files(CHIYODA).await.unwrap();
    let text: String = files.iter().map(|f| String::from_utf8_lossy(&f.content).into_owned()).collect();
    assert!(text.lines().any(|l| l.starts_with("2,100001,") && l.ends_with(&format!("{},20260401,1", now.muni_id.clone().unwrap()))), "{text}");
    assert!(text.lines().any(|l| l.starts_with("2,C,C02,") && l.ends_with(",2")), "{text}");
    sys.stop().await;
}

/// link-records decides a group of intake chunks in order, each on identity's state as the
/// earlier ones of the group leave it (kokuho_store::Decider). Here both wards' submissions wait
/// in intake's log while identity is down, so identity decides them in one group: the person
/// Chiyoda registers in the first chunk must be the one Minato's arrival links to in the second
/// (I1), not a second person.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_decided_in_one_group_see_each_other() {
    use kokuho_system::{System, SystemConfig};

    let nats = kokuho_testkit::TestNats::start().await;
    let config = |services: Vec<&'static str>| SystemConfig {
        services,
        nats_url: Some(nats.url()),
        ..SystemConfig::embedded(nats.dir().join("data"), std::sync::Arc::new(kokuho_system::default_registry()))
            .with_business_date(20260601)
    };
    let intake_alone = System::start(config(vec!["intake"])).await.unwrap();
    let credentials = kokuho_system::credentials_dir(&nats.dir().join("data"));
    let tls = intake_alone.client_tls().cloned();
    let connect = |endpoint: String| {
        let (credentials, tls) = (credentials.clone(), tls.clone());
        async move {
            let client = kokuho_client::Client::connect_trusting(&endpoint, tls.as_ref()).await.unwrap();
            client.with_dev_credentials(credentials)
        }
    };
    let mut client = connect(intake_alone.endpoint().to_string()).await;
    for files in [["01_131016_KS.csv", "01_131016_KK.csv"], ["06_131032_KS.csv", "06_131032_KK.csv"]] {
        let r = client.submit(&files[0][3..9], files.iter().map(|f| read(f)).collect()).await.unwrap();
        assert_ne!(r.status(), kokuho_client::SubmissionStatus::Rejected, "{r:?}");
    }
    intake_alone.stop().await.unwrap();

    let system = System::start(config(kokuho_system::service_names())).await.unwrap();
    let mut client = connect(system.endpoint().to_string()).await;
    assert!(client.wait_idle(std::time::Duration::from_secs(60)).await.unwrap().idle);
    let state = system.service::<kokuho_identity::App>().unwrap().state();
    let pref = |m: &str, r: &str| kokuho_identity::link_of(state, m, r).unwrap().unwrap().pref_id;
    assert_eq!(pref(CHIYODA, "100001"), pref(MINATO, "200001"));
    assert_eq!(pref(CHIYODA, "100002"), pref(MINATO, "200002"));
    // Registered once each: a second registration would also have taken an ID already given.
    let mut registered = Vec::new();
    for p in kokuho_e2e::all_events::<identity::Events>(&nats.bus().await, identity::STREAM.name).await {
        if let identity::Event::ChunkLinked(c) = p {
            registered.extend(c.persons.into_iter().map(|p| p.pref_id));
        }
    }
    let distinct: std::collections::BTreeSet<&String> = registered.iter().collect();
    assert_eq!(distinct.len(), registered.len(), "an ID registered twice: {registered:?}");
    assert!(distinct.contains(&pref(MINATO, "200001")));
    system.stop().await.unwrap();
}

/// S5: number releases are limited per minute; past the limit a release is refused
/// (ResourceExhausted), the refusal is an error line and a metric to alert on, and nothing leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s5_releases_past_the_limit_are_refused_and_alerted() {
    use kokuho_runtime::credentials::Caller;
    let mut sys = kokuho_e2e::app::spawn_system_with(20260401, &[("release_per_minute", "2")]).await;
    let mut relay = sys.client.with_token(token(&sys, &Caller::Relay));
    // Within the allowance (the persons are unknown: answered, none released).
    assert!(relay.release_number("13000000000001", "中間サーバー連携 test").await.is_err());
    assert!(relay.release_number("13000000000002", "中間サーバー連携 test").await.is_err());
    let refused = relay.release_number("13000000000003", "中間サーバー連携 test").await.unwrap_err();
    assert!(
        matches!(&refused, kokuho_client::ClientError::Status(s) if s.code() == tonic::Code::ResourceExhausted),
        "{refused}"
    );
    let metrics = sys.metrics().await;
    assert!(metrics.contains("kokuho_identity_releases_refused_total 1"), "{metrics}");
    assert!(metrics.contains("kokuho_identity_releases_allowed_total 2"), "{metrics}");
    sys.settle().await;
    sys.stop().await;
}
