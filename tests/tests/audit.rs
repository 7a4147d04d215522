//! security.md S8: the audit log cannot be quietly rewritten. Each case is played by the NATS
//! admin (the strongest attacker NATS knows: it may delete and refill the audit stream) and
//! `verify` must say BROKEN: a missing stream, a removed entry (a gap), a tail cut after an
//! anchor, a chain recomputed with a changed entry. A foreign message on a chain's subject
//! does not stop the service that writes it: it is dead-lettered, and the chain goes on.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use bytes::Bytes;
use kokuho_bus::{Append, Bus};
use kokuho_client::Client;
use kokuho_e2e::app::{CHIYODA, MINATO, TestSystem, spawn_system};
use kokuho_proto::audit::v1::audit_event::Event;
use kokuho_proto::identity::v1::VerifyAuditResponse;
use kokuho_runtime::audit::{AUDIT, Audit, computed_hash, subject};
use kokuho_runtime::credentials::{Caller, Credentials};

const KS: &str = "1,KS,131016,130013,20260401,1\n2,1,1001,20200401,01,100001,0,千代田,1001,09,\n9,1\n";

fn acting_as(sys: &TestSystem, caller: Caller) -> Client {
    sys.client.with_token(Credentials::token_of(&kokuho_system::credentials_dir(&sys.data_dir()), &caller).unwrap())
}

/// Every message of the audit stream in log order: (sequence, subject, payload).
async fn audit_messages(bus: &Bus) -> Vec<(u64, String, Bytes)> {
    let mut out = Vec::new();
    for s in bus.subjects(AUDIT.name, AUDIT.subjects[0]).await.unwrap() {
        out.extend(bus.read_subject(AUDIT.name, &s).await.unwrap().into_iter().map(|(seq, p)| (seq, s.clone(), p)));
    }
    out.sort_by_key(|m| m.0);
    out
}

/// The admin deletes the audit stream and fills it again with `messages` (sequences from 1).
async fn refill(bus: &Bus, messages: Vec<(String, Bytes)>) {
    bus.delete_stream(AUDIT.name).await.unwrap();
    bus.ensure_stream(&AUDIT).await.unwrap();
    for (subject, payload) in messages {
        bus.append(Append::new(subject, payload, uuid::Uuid::now_v7().to_string())).await.unwrap();
    }
}

async fn verify(sys: &TestSystem, anchors: &std::path::Path) -> VerifyAuditResponse {
    let anchors = kokuho_client::anchors::read(anchors).unwrap();
    acting_as(sys, Caller::operator()).verify_audit(anchors).await.unwrap()
}

/// Audited accesses on three chains: intake's (a refusal), identity's (lookups), continuity's.
async fn accesses(sys: &TestSystem) {
    let mut chiyoda = acting_as(sys, Caller::Municipality(CHIYODA.into()));
    let mut minato = acting_as(sys, Caller::Municipality(MINATO.into()));
    assert!(minato.fetch_files(CHIYODA).await.is_err());
    chiyoda.query_person(CHIYODA, "100001").await.unwrap();
    chiyoda.lookup_ids(CHIYODA, "100001").await.unwrap();
    chiyoda.lookup_ids(CHIYODA, "100001").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s8_every_rewrite_of_the_audit_log_is_found() {
    let mut sys = spawn_system(20260401).await;
    sys.client.submit(CHIYODA, vec![("KS.csv".to_string(), KS.as_bytes().to_vec())]).await.unwrap();
    sys.settle().await;
    let bus = sys.nats.bus().await;
    let anchors = sys.data_dir().join("audit-anchors.jsonl");
    accesses(&sys).await;
    // The day close's anchor: every chain's head, in a file outside NATS.
    let heads = acting_as(&sys, Caller::operator()).anchor_audit(&anchors).await.unwrap();
    assert!(heads.iter().any(|h| h.subject == subject("identity")), "{heads:?}");
    let v = verify(&sys, &anchors).await;
    assert!(v.intact, "{v:?}");
    assert!(v.chains.iter().all(|c| c.foreign == 0 && c.head.is_some()));
    let original = audit_messages(&bus).await;
    let identity_head = original.last().unwrap().clone();
    assert_eq!(identity_head.1, subject("identity"), "the last audited access was identity's");

    // A cut tail: the anchored head of identity's chain is gone. The chain alone still holds
    // (it is a shorter chain); the anchor finds it.
    let cut: Vec<_> = original[..original.len() - 1].iter().map(|(_, s, p)| (s.clone(), p.clone())).collect();
    refill(&bus, cut).await;
    let v = acting_as(&sys, Caller::operator()).verify_audit(Vec::new()).await.unwrap();
    assert!(v.intact, "without anchors a cut chain is still a chain: {v:?}");
    let v = verify(&sys, &anchors).await;
    assert!(!v.intact && v.reason.contains("tail was cut"), "{v:?}");

    // A gap: an entry in the middle of identity's chain removed.
    let identity: Vec<usize> =
        original.iter().enumerate().filter(|(_, m)| m.1 == subject("identity")).map(|(i, _)| i).collect();
    assert!(identity.len() >= 2);
    let gap: Vec<_> = original
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != identity[0])
        .map(|(_, (_, s, p))| (s.clone(), p.clone()))
        .collect();
    refill(&bus, gap).await;
    let v = acting_as(&sys, Caller::operator()).verify_audit(Vec::new()).await.unwrap();
    assert!(!v.intact && v.reason.contains("does not name the entry before it"), "{v:?}");

    // A recomputed chain: an entry changed ("allowed" → "refused"), its hash and every later
    // hash recomputed so that the chain holds again. No signature holds.
    let mut previous = String::new();
    let mut recomputed = Vec::new();
    for (_, s, p) in &original {
        let mut payload = p.clone();
        if *s == subject("identity") {
            let (_, mut e) = kokuho_bus::event::decode::<Audit>(p).unwrap();
            let Event::AccessRecorded(a) = &mut e else { panic!("an access entry") };
            a.outcome = "refused".into();
            a.previous_hash = previous.clone();
            a.hash = computed_hash(&Event::AccessRecorded(a.clone()));
            previous = a.hash.clone();
            payload = kokuho_bus::event::encode(&kokuho_bus::event::envelope::<Audit>(e, "", "", ""));
        }
        recomputed.push((s.clone(), payload));
    }
    refill(&bus, recomputed).await;
    let v = acting_as(&sys, Caller::operator()).verify_audit(Vec::new()).await.unwrap();
    assert!(!v.intact && v.reason.contains("signature"), "{v:?}");

    // The original again: intact with its anchors.
    refill(&bus, original.iter().map(|(_, s, p)| (s.clone(), p.clone())).collect()).await;
    let v = verify(&sys, &anchors).await;
    assert!(v.intact, "{v:?}");

    // A foreign message on intake's chain: intake's next audited request is answered, the
    // message is dead-lettered, the chain goes on from its last entry and still verifies.
    bus.append(Append::new(subject("intake"), "junk", "junk-1")).await.unwrap();
    let mut minato = acting_as(&sys, Caller::Municipality(MINATO.into()));
    let refused = minato.fetch_files(CHIYODA).await.unwrap_err();
    assert!(matches!(&refused, kokuho_client::ClientError::Status(s) if s.code() == tonic::Code::PermissionDenied));
    assert_eq!(bus.dead_letters("audit-intake").await.unwrap(), 1);
    let v = verify(&sys, &anchors).await;
    assert!(v.intact, "{v:?}");
    let intake = v.chains.iter().find(|c| c.subject == subject("intake")).unwrap();
    assert_eq!(intake.foreign, 1, "{v:?}");

    // A missing stream: BROKEN, and verify does not make it again.
    bus.delete_stream(AUDIT.name).await.unwrap();
    let v = verify(&sys, &anchors).await;
    assert!(!v.intact && v.reason.contains("missing"), "{v:?}");
    assert!(bus.require_stream(&AUDIT).await.is_err(), "verify recreated the audit stream");
    bus.ensure_stream(&AUDIT).await.unwrap();
    sys.stop().await;
}
