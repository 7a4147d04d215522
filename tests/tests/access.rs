//! security.md S5 at intake: every request carries a credential; a municipality submits,
//! asks for the status of and fetches only its own; only an operator closes the day. S6, S8:
//! every read of personal data and every refusal is in a hash-chained audit log.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use kokuho_client::{Client, ClientError, Code};
use kokuho_e2e::app::{CHIYODA, MINATO, TestSystem, spawn_system};
use kokuho_runtime::credentials::{Caller, Credentials};

fn acting_as(sys: &TestSystem, caller: Caller) -> Client {
    let token = Credentials::token_of(&kokuho_system::credentials_dir(&sys.data_dir()), &caller).unwrap();
    sys.client.with_token(token)
}

fn refused<T: std::fmt::Debug>(r: Result<T, ClientError>, code: Code) -> bool {
    matches!(&r, Err(ClientError::Status(s)) if s.code() == code)
}

const KS: &str = "1,KS,131016,130013,20260401,1\n2,1,1001,20200401,01,100001,0,千代田,1001,09,\n9,1\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s5_a_municipality_acts_only_for_itself_and_only_an_operator_closes_the_day() {
    let mut sys = spawn_system(20260401).await;
    let files = || vec![("KS.csv".to_string(), KS.as_bytes().to_vec())];
    let mut chiyoda = acting_as(&sys, Caller::Municipality(CHIYODA.into()));
    let mut minato = acting_as(&sys, Caller::Municipality(MINATO.into()));
    let mut operator = acting_as(&sys, Caller::operator());
    let mut anonymous = sys.anonymous().await;

    // Submit: only for oneself, and never without a credential.
    assert!(refused(minato.submit(CHIYODA, files()).await, Code::PermissionDenied));
    assert!(refused(operator.submit(CHIYODA, files()).await, Code::PermissionDenied));
    assert!(refused(anonymous.submit(CHIYODA, files()).await, Code::Unauthenticated));
    let receipt = chiyoda.submit(CHIYODA, files()).await.unwrap().receipt;
    sys.settle().await;

    // Status: the submitter's own receipts, and operators.
    assert!(chiyoda.status(&receipt).await.is_ok());
    assert!(operator.status(&receipt).await.is_ok());
    assert!(refused(minato.status(&receipt).await, Code::PermissionDenied));

    // Result files: only one's own.
    assert!(refused(minato.fetch_files(CHIYODA).await, Code::PermissionDenied));
    assert!(refused(operator.fetch_files(CHIYODA).await, Code::PermissionDenied));
    assert!(refused(minato.acknowledge(CHIYODA, vec!["x".into()]).await, Code::PermissionDenied));
    assert!(chiyoda.fetch_files(CHIYODA).await.is_ok());

    // The calendar: operators only.
    assert!(refused(chiyoda.close_day(20260501).await, Code::PermissionDenied));
    assert!(refused(anonymous.close_day(20260501).await, Code::Unauthenticated));
    assert_eq!(operator.close_day(20260501).await.unwrap().business_date, 20260501);
    sys.stop().await;
}

/// The audit entries of `service`'s chain: (who, role, action, persons, outcome).
async fn audit_entries(sys: &TestSystem, service: &str) -> Vec<(String, String, String, Vec<String>, String)> {
    let bus = sys.nats.bus().await;
    let subject = kokuho_runtime::audit::subject(service);
    bus.read_subject(kokuho_runtime::audit::AUDIT.name, &subject)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, payload)| match kokuho_bus::event::decode::<kokuho_runtime::audit::Audit>(&payload).unwrap().1 {
            kokuho_proto::audit::v1::audit_event::Event::AccessRecorded(e) => {
                (e.who, e.role, e.action, e.pref_ids, e.outcome)
            }
            other => panic!("not an access entry on an access chain: {other:?}"),
        })
        .collect()
}

fn entry(
    who: &str,
    role: &str,
    action: &str,
    persons: &[&str],
    outcome: &str,
) -> (String, String, String, Vec<String>, String) {
    (who.into(), role.into(), action.into(), persons.iter().map(|p| p.to_string()).collect(), outcome.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s6_s8_every_read_of_personal_data_and_every_refusal_is_audited_in_a_chain() {
    let scenario = kokuho_client::scenario::Scenario::load(&kokuho_e2e::sample_dir()).unwrap();
    let mut sys = spawn_system(scenario.first_business_date().unwrap()).await;
    let mut chiyoda = acting_as(&sys, Caller::Municipality(CHIYODA.into()));
    let mut minato = acting_as(&sys, Caller::Municipality(MINATO.into()));
    let mut operator = acting_as(&sys, Caller::operator());
    let receipt = chiyoda.submit(CHIYODA, vec![("KS.csv".into(), KS.as_bytes().to_vec())]).await.unwrap().receipt;
    sys.settle().await;

    // intake: an operator's read of a status (S6), a refused fetch, a fetch.
    operator.status(&receipt).await.unwrap();
    assert!(minato.fetch_files(CHIYODA).await.is_err());
    chiyoda.fetch_files(CHIYODA).await.unwrap();
    assert_eq!(
        audit_entries(&sys, "intake").await,
        vec![
            entry("operator", "operator", "intake.GetStatus", &[], "allowed"),
            entry(MINATO, "municipality", "intake.FetchFiles", &[], "refused"),
            entry(CHIYODA, "municipality", "intake.FetchFiles", &[], "allowed"),
        ]
    );

    // identity and continuity: a clerk's lookup and query name the person; a refused one, nobody.
    kokuho_client::scenario::play(&mut sys.client, &scenario, |_| {}).await.unwrap();
    let pref = chiyoda.lookup_ids(CHIYODA, "100001").await.unwrap().pref_id;
    assert!(minato.lookup_ids(CHIYODA, "100001").await.is_err());
    assert!(!chiyoda.lookup_ids(CHIYODA, "999999").await.unwrap().found);
    operator.list_reviews().await.unwrap();
    let identity = audit_entries(&sys, "identity").await;
    assert_eq!(
        identity[..3],
        [
            entry(CHIYODA, "municipality", "identity.LookupIds", &[&pref], "allowed"),
            entry(MINATO, "municipality", "identity.LookupIds", &[], "refused"),
            entry(CHIYODA, "municipality", "identity.LookupIds", &[], "not found"),
        ]
    );
    let review = &identity[3];
    assert_eq!(
        (review.0.as_str(), review.2.as_str(), review.4.as_str()),
        ("operator", "identity.ListReviews", "allowed")
    );
    assert!(!review.3.is_empty(), "the persons the queue showed");
    chiyoda.query_person(CHIYODA, "100001").await.unwrap();
    assert_eq!(
        audit_entries(&sys, "continuity").await,
        vec![entry(CHIYODA, "municipality", "continuity.QueryPerson", &[&pref], "allowed")]
    );

    // Every chain verifies.
    let verified = operator.verify_audit(Vec::new()).await.unwrap();
    assert!(verified.intact, "{verified:?}");
    assert!(verified.chains.iter().all(|c| c.intact));
    sys.stop().await;
}

/// Issue 12: gRPC speaks TLS under `kokuho up`. A client that does not trust the system's CA,
/// or that speaks plain HTTP/2, gets nothing; one that trusts it is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_is_mutual_tls_with_the_systems_ca() {
    let sys = spawn_system(20260401).await;
    let endpoint = sys.system().endpoint().to_string();
    assert!(endpoint.starts_with("https://"), "{endpoint}");
    let status = |mut c: Client| async move { c.status("131016-00000001").await };
    // Another CA's client: the handshake fails.
    let other = tempfile::tempdir().unwrap();
    let pki = kokuho_runtime::tls::DevPki::ensure(other.path()).unwrap();
    let stranger = kokuho_runtime::tls::ClientTls::of_dev(&pki).unwrap();
    let stranger = Client::connect_trusting(&endpoint, Some(&stranger)).await;
    assert!(stranger.is_err(), "a client that does not trust the system's CA connected");
    // Mutual TLS: a client that trusts the system's CA but shows no certificate, or one of
    // another CA, is refused at the handshake.
    let ours = sys.system().client_tls().unwrap().clone();
    let other = kokuho_runtime::tls::ClientTls::of_dev(&pki).unwrap();
    for (what, tls) in [
        ("no client certificate", kokuho_runtime::tls::ClientTls { identity: None, ..ours.clone() }),
        (
            "another CA's client certificate",
            kokuho_runtime::tls::ClientTls { identity: other.identity, ..ours.clone() },
        ),
    ] {
        // With a valid token: only the handshake can refuse it.
        let token =
            Credentials::token_of(&kokuho_system::credentials_dir(&sys.data_dir()), &Caller::operator()).unwrap();
        match Client::connect_trusting(&endpoint, Some(&tls)).await {
            Err(_) => {}
            Ok(c) => {
                let answer = status(c.with_token(token)).await;
                assert!(
                    !matches!(&answer, Err(ClientError::Status(s)) if s.code() == Code::NotFound) && answer.is_err(),
                    "{what} was answered: {answer:?}"
                );
            }
        }
    }
    // Plain HTTP/2 to the TLS port: no answer.
    let plain = endpoint.replace("https://", "http://");
    match Client::connect(&plain).await {
        Err(_) => {}
        Ok(c) => assert!(status(c.with_token("x")).await.is_err(), "plain HTTP/2 was answered"),
    }
    // The system's CA: answered (here: the receipt is unknown to this credential's eyes).
    let trusted = acting_as(&sys, Caller::operator());
    let answer = status(trusted).await;
    assert!(
        matches!(&answer, Err(ClientError::Status(s)) if s.code() == Code::NotFound) || answer.is_ok(),
        "{answer:?}"
    );
    sys.stop().await;
}
