//! security.md S7 on NATS: every service connects with its own user and may do only what its
//! declaration allows. Read as an attacker inside the cluster would: each service's user, with
//! its own seed, tries what it must not do, in the raw protocol. The server refuses it
//! (a permissions violation) and the admin sees that nothing changed. Positive controls show
//! the same requests work where they are allowed, so a refusal is the permission's doing.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kokuho_e2e::app::{CHIYODA, TestSystem, spawn_system};

const KS: &str = "1,KS,131016,130013,20260401,1\n2,1,1001,20200401,01,100001,0,千代田,1001,09,\n9,1\n";
const SERVICES: [&str; 5] = ["intake", "identity", "continuity", "kogaku", "relay"];
const KK: &str = "1,KK,131016,130013,20260401,1\n2,1,100001,1001,1,123456789018,山田 太郎,ヤマダ タロウ,S300820,1,01,20200401,03,,,,,20200401\n9,1\n";
const STREAMS: [&str; 9] = [
    "KOKUHO_INTAKE",
    "KOKUHO_IDENTITY",
    "KOKUHO_CONTINUITY",
    "KOKUHO_KOGAKU",
    "KOKUHO_RELAY",
    "KOKUHO_RESULTS",
    "KOKUHO_AUDIT",
    "KOKUHO_DLQ",
    "KOKUHO_SEALED",
];

/// A raw client as `user`, with the server's error events collected.
struct Raw {
    client: async_nats::Client,
    errors: Arc<Mutex<Vec<String>>>,
}

async fn raw(sys: &TestSystem, user: &str) -> Raw {
    let users = sys.nats.users().unwrap();
    let seed = std::fs::read_to_string(users.join(format!("{user}.nk"))).unwrap();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = errors.clone();
    let client = async_nats::ConnectOptions::new()
        .nkey(seed.trim().to_string())
        .require_tls(true)
        .add_root_certificates(users.join("ca.pem"))
        .add_client_certificate(users.join("client.pem"), users.join("client.key"))
        .custom_inbox_prefix(format!("_INBOX_{user}"))
        .request_timeout(Some(Duration::from_millis(700)))
        .event_callback(move |event| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(event.to_string());
            }
        })
        .connect(sys.nats.url())
        .await
        .unwrap();
    Raw { client, errors }
}

impl Raw {
    /// Sends a JetStream API request and says whether the server answered it without an error.
    async fn api(&self, subject: &str, body: &str) -> bool {
        match self.client.request(subject.to_string(), body.to_string().into()).await {
            Ok(reply) => !String::from_utf8_lossy(&reply.payload).contains("\"error\""),
            Err(_) => false,
        }
    }

    /// Sends a request the user may not send and says whether the server refused it with a
    /// permissions violation (no waiting for an answer that never comes).
    async fn refused(&self, subject: &str, body: &str) -> bool {
        let inbox = self.client.new_inbox();
        self.client.publish_with_reply(subject.to_string(), inbox, body.to_string().into()).await.unwrap();
        self.client.flush().await.unwrap();
        self.violated(subject).await
    }

    /// Waits for the server's permissions violation that names `subject`.
    async fn violated(&self, subject: &str) -> bool {
        for _ in 0..50 {
            if self.errors.lock().unwrap().iter().any(|e| e.contains("ermissions") && e.contains(subject)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

/// (messages, first sequence, deny_purge) of every stream, as the admin sees them.
async fn streams_state(sys: &TestSystem) -> Vec<(u64, bool)> {
    let bus = sys.nats.bus().await;
    let mut out = Vec::new();
    for s in STREAMS {
        out.push((bus.stream_size(s).await.unwrap().0, bus.last_seq(s).await.is_ok()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s7_each_service_user_is_refused_what_it_must_not_do() {
    let mut sys = spawn_system(20260401).await;
    let files = vec![("KS.csv".to_string(), KS.as_bytes().to_vec()), ("KK.csv".to_string(), KK.as_bytes().to_vec())];
    sys.client.submit(CHIYODA, files).await.unwrap();
    sys.settle().await;
    let before = streams_state(&sys).await;

    // Numbers travel only on subjects identity alone reads: intake's records carry none, not
    // even sealed; the chunk's NumbersSealed is on KOKUHO_SEALED.
    let admin = sys.nats.bus().await;
    let records = admin.read_subject("KOKUHO_INTAKE", &format!("kokuho.intake.records.{CHIYODA}")).await.unwrap();
    let mut apart = 0;
    for (_, bytes) in records {
        let (_, event) = kokuho_bus::event::decode::<kokuho_intake_contract::Events>(&bytes).unwrap();
        let kokuho_intake_contract::Event::RecordsAccepted(chunk) = event else { continue };
        assert!(chunk.data_key.is_none(), "a data key in intake's stream");
        for r in &chunk.records {
            if let Some(kokuho_intake_contract::pb::change_record::Record::Person(p)) = &r.record {
                assert!(p.individual_number.is_none(), "a sealed number in intake's stream");
            }
        }
        apart += u32::from(chunk.numbers_apart);
    }
    assert_eq!(apart, 1, "the KK chunk keeps its numbers apart");
    assert_eq!(admin.count("KOKUHO_SEALED", "kokuho.sealed.>").await.unwrap(), 1);
    // identity's public events carry no number, not even sealed: the numbers it keeps are on
    // its own subject, just before the event they belong to.
    let chunks = admin.read_subject("KOKUHO_IDENTITY", kokuho_identity_contract::CHUNKS_SUBJECT).await.unwrap();
    let numbers = admin.read_subject("KOKUHO_IDENTITY", kokuho_identity_contract::NUMBERS_SUBJECT).await.unwrap();
    assert_eq!(numbers.len(), 1, "the one person with a number has it kept");
    for (_, bytes) in &chunks {
        let (_, event) = kokuho_bus::event::decode::<kokuho_identity_contract::Events>(bytes).unwrap();
        assert!(!matches!(event, kokuho_identity_contract::Event::NumbersKept(_)), "numbers on the public subject");
        let text = format!("{event:?}");
        assert!(!text.contains("SealedNumber") && !text.contains("ciphertext"), "a sealed number in {text}");
    }
    let kept_at = numbers[0].0;
    assert!(chunks.iter().any(|(seq, _)| *seq == kept_at + 1), "the numbers come just before their event");

    // Anyone without a user is turned away at the door; so is a user without a client
    // certificate (mutual TLS), and one that does not speak TLS at all.
    let users = sys.nats.users().unwrap();
    let tls = || {
        async_nats::ConnectOptions::new()
            .require_tls(true)
            .add_root_certificates(users.join("ca.pem"))
            .add_client_certificate(users.join("client.pem"), users.join("client.key"))
    };
    let anonymous = tls().connect(sys.nats.url()).await;
    assert!(anonymous.is_err(), "an anonymous client connected");
    let seed = std::fs::read_to_string(users.join("continuity.nk")).unwrap().trim().to_string();
    let no_cert = async_nats::ConnectOptions::new()
        .nkey(seed.clone())
        .require_tls(true)
        .add_root_certificates(users.join("ca.pem"))
        .connect(sys.nats.url())
        .await;
    assert!(no_cert.is_err(), "a client without a certificate connected");
    let plain = async_nats::ConnectOptions::new().nkey(seed.clone()).connect(sys.nats.url()).await;
    assert!(plain.is_err(), "a client without TLS connected");
    assert!(tls().nkey(seed).connect(sys.nats.url()).await.is_ok(), "the control: with both it connects");

    let records = format!("kokuho.intake.records.{CHIYODA}");
    for service in SERVICES {
        let c = raw(&sys, service).await;
        // No one manages streams: no purge, delete, update or message delete, on any stream.
        for stream in STREAMS {
            for api in ["STREAM.PURGE", "STREAM.DELETE", "STREAM.MSG.DELETE"] {
                let subject = format!("$JS.API.{api}.{stream}");
                assert!(c.refused(&subject, "{\"seq\":1}").await, "{service} may {api} {stream}");
            }
            let update = format!("$JS.API.STREAM.UPDATE.{stream}");
            let body = format!("{{\"name\":\"{stream}\",\"deny_purge\":false,\"deny_delete\":false}}");
            assert!(c.refused(&update, &body).await, "{service} may update {stream}");
        }
        // Only intake publishes intake's subjects; no one forges another service's audit.
        if service != "intake" {
            c.client.publish(records.clone(), "forged".into()).await.unwrap();
            c.client.flush().await.unwrap();
            assert!(c.violated(&records).await, "{service} published intake's records");
            let audit = "kokuho.audit.intake".to_string();
            c.client.publish(audit.clone(), "forged".into()).await.unwrap();
            c.client.flush().await.unwrap();
            assert!(c.violated(&audit).await, "{service} wrote intake's audit chain");
        }
        // No one listens on the log's subjects or on another user's inbox.
        for subject in ["kokuho.>", "_INBOX.>", "_INBOX_identity.>", "$JS.ACK.>"] {
            if service == "identity" && subject == "_INBOX_identity.>" {
                continue;
            }
            let _sub = c.client.subscribe(subject.to_string()).await.unwrap();
            c.client.flush().await.unwrap();
            assert!(c.violated(subject).await, "{service} subscribed to {subject}");
        }
    }

    // Only identity (and kogaku, relay: household facts and cards) read intake's records;
    // continuity reads none of intake's stream, by consumer or by direct get.
    let continuity = raw(&sys, "continuity").await;
    let create = "$JS.API.CONSUMER.CREATE.KOKUHO_INTAKE.snoop";
    let body = "{\"stream_name\":\"KOKUHO_INTAKE\",\"config\":{\"name\":\"snoop\",\"ack_policy\":\"none\"}}";
    assert!(continuity.refused(create, body).await, "continuity read intake's stream");
    for get in ["$JS.API.STREAM.MSG.GET.KOKUHO_INTAKE", "$JS.API.DIRECT.GET.KOKUHO_INTAKE"] {
        assert!(continuity.refused(get, "{\"seq\":2}").await, "continuity got an intake message");
    }
    let last = format!("$JS.API.DIRECT.GET.KOKUHO_INTAKE.{records}");
    assert!(continuity.refused(&last, "").await);
    // The sealed numbers are identity's alone: kogaku and relay read intake's stream, not these.
    for service in ["continuity", "kogaku", "relay"] {
        let c = raw(&sys, service).await;
        let create = "$JS.API.CONSUMER.CREATE.KOKUHO_SEALED.snoop";
        assert!(c.refused(create, "{}").await, "{service} read the sealed numbers");
        let get = format!("$JS.API.DIRECT.GET.KOKUHO_SEALED.kokuho.sealed.{CHIYODA}.>");
        assert!(c.refused(&get, "").await, "{service} got a sealed number");
    }
    let identity_user = raw(&sys, "identity").await;
    assert!(identity_user.api("$JS.API.STREAM.MSG.GET.KOKUHO_SEALED", "{\"seq\":1}").await, "identity reads them");
    // Another service's audit chain is not any service's to read (only identity verifies).
    assert!(continuity.refused("$JS.API.DIRECT.GET.KOKUHO_AUDIT.kokuho.audit.intake", "").await);

    // identity's stream: the others read its public subject with their own named consumers, and
    // nothing else of it — not the numbers beside it, by consumer, by get, or through one of
    // identity's own consumers.
    let public = kokuho_identity_contract::CHUNKS_SUBJECT;
    let kept = kokuho_identity_contract::NUMBERS_SUBJECT;
    for (service, own) in
        [("continuity", "continuity-evaluate"), ("kogaku", "kogaku-members"), ("relay", "relay-persons")]
    {
        let c = raw(&sys, service).await;
        let config = |name: &str, filter: &str| {
            format!(
                "{{\"stream_name\":\"KOKUHO_IDENTITY\",\"config\":{{\"name\":\"{name}\",\"filter_subject\":\"{filter}\",\"ack_policy\":\"none\"}}}}"
            )
        };
        for (subject, body) in [
            ("$JS.API.CONSUMER.CREATE.KOKUHO_IDENTITY.probe".to_string(), config("probe", "")),
            (format!("$JS.API.CONSUMER.CREATE.KOKUHO_IDENTITY.{own}"), config(own, "")),
            (format!("$JS.API.CONSUMER.CREATE.KOKUHO_IDENTITY.{own}.{kept}"), config(own, kept)),
            (format!("$JS.API.CONSUMER.CREATE.KOKUHO_IDENTITY.probe.{public}"), config("probe", public)),
            ("$JS.API.CONSUMER.MSG.NEXT.KOKUHO_IDENTITY.identity-state".to_string(), "{\"batch\":1}".to_string()),
            ("$JS.API.DIRECT.GET.KOKUHO_IDENTITY".to_string(), "{\"seq\":1}".to_string()),
            ("$JS.API.STREAM.MSG.GET.KOKUHO_IDENTITY".to_string(), "{\"seq\":1}".to_string()),
            (format!("$JS.API.DIRECT.GET.KOKUHO_IDENTITY.{kept}"), String::new()),
        ] {
            assert!(c.refused(&subject, &body).await, "{service} may send {subject}");
        }
        // The control: the last public event, by subject.
        let last = format!("$JS.API.DIRECT.GET.KOKUHO_IDENTITY.{public}");
        let reply = c.client.request(last, "".into()).await.unwrap();
        assert!(reply.headers.is_some_and(|h| h.get("Nats-Sequence").is_some()), "{service} reads the public events");
    }

    // Positive controls: the same kinds of request where the declaration allows them.
    let ok = "$JS.API.CONSUMER.CREATE.KOKUHO_INTAKE.probe";
    let body = "{\"stream_name\":\"KOKUHO_INTAKE\",\"config\":{\"name\":\"probe\",\"ack_policy\":\"none\"}}";
    let kogaku = raw(&sys, "kogaku").await;
    assert!(kogaku.api(ok, body).await, "kogaku may read intake's stream");
    assert!(kogaku.api("$JS.API.CONSUMER.DELETE.KOKUHO_INTAKE.probe", "").await);
    assert!(continuity.api("$JS.API.STREAM.INFO.KOKUHO_INTAKE", "").await, "metadata is everyone's");
    let identity = raw(&sys, "identity").await;
    assert!(identity.api("$JS.API.STREAM.MSG.GET.KOKUHO_INTAKE", "{\"seq\":1}").await);
    let admin = raw(&sys, "admin").await;
    assert!(admin.api("$JS.API.STREAM.INFO.KOKUHO_INTAKE", "").await);

    // Nothing changed, and the system still works.
    assert_eq!(streams_state(&sys).await, before);
    sys.client
        .submit(CHIYODA, vec![("KS.csv".to_string(), KS.replace("20260401,1", "20260401,2").into_bytes())])
        .await
        .unwrap();
    sys.settle().await;
    sys.stop().await;
}
