//! `kokuho serve intake` as a process: its configuration from flags or a file, and all or
//! nothing (issue 3): intake is killed (SIGKILL) while it appends a large submission's atomic
//! batch; after a restart the log holds either the whole submission or none of it, and the
//! same files are then accepted exactly once.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt as _;
use kokuho_client::Client;
use kokuho_testkit::{TestNats, eventually};

const PERSONS: usize = 60_000;

fn files() -> Vec<(String, Vec<u8>)> {
    let ks = "1,KS,131016,130013,20260401,1\n2,1,1001,20200401,01,100001,0,千代田,1001,09,\n9,1\n".to_string();
    let mut kk = String::from("1,KK,131016,130013,20260401,1\n");
    for i in 0..PERSONS {
        kk.push_str(&format!(
            "2,1,{},1001,1,,山田 太郎,ヤマダ タロウ,19550820,1,01,20200401,03,,,,,20200401\n",
            200_000 + i
        ));
    }
    kk.push_str(&format!("9,{PERSONS}\n"));
    vec![("KS.csv".into(), ks.into_bytes()), ("KK.csv".into(), kk.into_bytes())]
}

struct Intake {
    child: std::process::Child,
    endpoint: String,
}

/// Runs the binary with `args` and expects success.
fn kokuho(args: &[&std::ffi::OsStr]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kokuho")).args(args).output().unwrap();
    assert!(out.status.success(), "kokuho {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A deployment's set-up, as an operator does it with the binary: the NATS users and the
/// server's accounts (`kokuho keys nats`), the streams made by the admin (`kokuho streams`), the
/// services' audit keys (`kokuho keys audit`) and identity's key pair (`kokuho keys generate`).
async fn deployment() -> TestNats {
    let nats = TestNats::start_with_auth(|dir| {
        let users = dir.join("nats-users");
        kokuho(&["keys".as_ref(), "nats".as_ref(), "--out".as_ref(), users.as_os_str()]);
        // The server: the users, and mutual TLS with the dev CA `keys nats` wrote.
        let tls = kokuho_bus::tls_config(&users.join("server.pem"), &users.join("server.key"), &users.join("ca.pem"));
        Ok(Some((std::fs::read_to_string(users.join("accounts.conf"))? + &tls, users)))
    })
    .await;
    let users = nats.users().unwrap().to_path_buf();
    let url = nats.url();
    kokuho(&["streams".as_ref(), "--nats".as_ref(), url.as_ref(), "--nats-credentials".as_ref(), users.as_os_str()]);
    let audit = nats.dir().join("audit-keys");
    kokuho(&["keys".as_ref(), "audit".as_ref(), "--out".as_ref(), audit.as_os_str()]);
    kokuho_crypto_keys(nats.dir());
    nats
}

/// The secrets every service is given: its NATS user and its audit key (S7, S8).
fn secrets(nats: &TestNats) -> Vec<std::ffi::OsString> {
    vec![
        "--nats-credentials".into(),
        nats.users().unwrap().into(),
        "--audit-signing-keys".into(),
        nats.dir().join("audit-keys").into(),
    ]
}

async fn start_intake(nats: &TestNats) -> Intake {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kokuho"));
    command
        .args(["serve", "intake", "--nats", &nats.url(), "--listen", "127.0.0.1:0", "--business-date", "20260401"])
        .arg("--identity-public-key")
        .arg(nats.dir().join("keys/identity.pub"))
        .arg("--credentials")
        .arg(credentials(nats))
        .args(secrets(nats));
    spawn_intake(nats, command).await
}

/// Callers' tokens of the test (Chiyoda's, the operator's, relay's).
fn credentials(nats: &TestNats) -> std::path::PathBuf {
    let dir = nats.dir().join("credentials");
    kokuho_runtime::credentials::Credentials::ensure(&dir, ["131016".to_string()]).unwrap();
    dir
}

/// A client that acts with Chiyoda's token for Chiyoda's requests.
async fn chiyoda_client(nats: &TestNats, endpoint: &str) -> Client {
    Client::connect(endpoint).await.unwrap().with_dev_credentials(credentials(nats))
}

async fn spawn_intake(nats: &TestNats, mut command: std::process::Command) -> Intake {
    let data = nats.dir().join("data");
    let endpoint_file = data.join("endpoint");
    let _ = std::fs::remove_file(&endpoint_file);
    let child = command
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kokuho serve intake");
    let endpoint = eventually("intake writes its endpoint", Duration::from_secs(30), || async {
        std::fs::read_to_string(&endpoint_file).ok().filter(|s| !s.is_empty())
    })
    .await;
    Intake { child, endpoint }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_intake_mid_submission_leaves_all_or_nothing() {
    let nats = deployment().await;
    let bus = nats.bus().await;
    let mut intake = start_intake(&nats).await;

    // Watch the batch's messages go by, and kill intake at the first one.
    let mut tap = bus.tap("kokuho.intake.records.131016").await.unwrap();
    let mut client = chiyoda_client(&nats, &intake.endpoint).await;
    let submit = tokio::spawn(async move { client.submit("131016", files()).await });
    let seen = tokio::time::timeout(Duration::from_secs(120), tap.next()).await.expect("the batch started");
    assert!(seen.is_some());
    intake.child.kill().expect("SIGKILL intake");
    intake.child.wait().unwrap();
    assert!(submit.await.unwrap().is_err(), "the client saw the call fail");

    // Nothing or everything: the head and every chunk, or none of them.
    let chunks = PERSONS.div_ceil(1_000) as u64 + 1; // + the KS record's chunk share
    let stored_heads = bus.count("KOKUHO_INTAKE", "kokuho.intake.submission.131016").await.unwrap();
    let stored_chunks = bus.count("KOKUHO_INTAKE", "kokuho.intake.records.131016").await.unwrap();
    eprintln!("after the kill: {stored_heads} heads, {stored_chunks} chunks in the log");
    assert!(
        (stored_heads, stored_chunks) == (0, 0) || (stored_heads == 1 && stored_chunks >= chunks - 1),
        "partial submission in the log: {stored_heads} heads, {stored_chunks} chunks"
    );

    // After a restart the same files are accepted exactly once.
    let intake = start_intake(&nats).await;
    let mut client = chiyoda_client(&nats, &intake.endpoint).await;
    let r = client.submit("131016", files()).await.unwrap();
    assert!(matches!(
        r.status(),
        kokuho_client::SubmissionStatus::Accepted | kokuho_client::SubmissionStatus::Duplicate
    ));
    assert_eq!(bus.count("KOKUHO_INTAKE", "kokuho.intake.submission.131016").await.unwrap(), 1);
    let status = client.status(&r.receipt).await.unwrap();
    assert_eq!(status.accepted as usize, PERSONS + 1);
    let mut intake = intake;
    intake.child.kill().unwrap();
    intake.child.wait().unwrap();
}

fn kokuho_crypto_keys(dir: &std::path::Path) {
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_kokuho"))
        .args(["keys", "generate", "--out"])
        .arg(dir.join("keys"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_takes_its_settings_from_a_config_file() {
    let nats = deployment().await;
    let config = nats.dir().join("intake.toml");
    std::fs::write(
        &config,
        format!(
            "nats = \"{}\"\nlisten = \"127.0.0.1:0\"\nidentity_public_key = \"{}\"\nbusiness_date = \"20260401\"\ncredentials = \"{}\"\nnats_credentials = \"{}\"\naudit_signing_keys = \"{}\"\n",
            nats.url(),
            nats.dir().join("keys/identity.pub").display(),
            credentials(&nats).display(),
            nats.users().unwrap().display(),
            nats.dir().join("audit-keys").display()
        ),
    )
    .unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kokuho"));
    command.args(["serve", "intake", "--config"]).arg(&config);
    let mut intake = spawn_intake(&nats, command).await;
    let mut client = chiyoda_client(&nats, &intake.endpoint).await;
    let ks = "1,KS,131016,130013,20260401,1\n2,1,1001,20200401,01,100001,0,千代田,1001,09,\n9,1\n";
    let r = client.submit("131016", vec![("KS.csv".into(), ks.as_bytes().to_vec())]).await.unwrap();
    assert_eq!(r.status(), kokuho_client::SubmissionStatus::Accepted);
    intake.child.kill().unwrap();
    intake.child.wait().unwrap();

    // An unknown setting is refused with a clear error.
    std::fs::write(&config, "nats = \"x\"\nnoise = 1\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kokuho"))
        .args(["serve", "intake", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("noise"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `kokuho serve <service>` with its own data dir, speaking mutual TLS with the dev CA's
/// loopback certificate (callers show a certificate of the same CA); returns the process and
/// its gRPC endpoint (https).
async fn serve(nats: &TestNats, service: &str, args: &[&std::ffi::OsStr]) -> (std::process::Child, String) {
    let data = nats.dir().join(format!("{service}-data"));
    let pki = nats.users().unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_kokuho"))
        .args(["serve", service, "--nats", &nats.url(), "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .args(args)
        .args(secrets(nats))
        .arg("--tls-cert")
        .arg(pki.join("server.pem"))
        .arg("--tls-key")
        .arg(pki.join("server.key"))
        .arg("--tls-client-ca")
        .arg(pki.join("ca.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let endpoint = eventually(&format!("{service} writes its endpoint"), Duration::from_secs(30), || async {
        std::fs::read_to_string(data.join("endpoint")).ok().filter(|s| !s.is_empty())
    })
    .await;
    (child, endpoint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_identity_and_continuity_run_as_separate_services() {
    use kokuho_runtime::credentials::{Caller, Credentials};

    let nats = deployment().await;
    let credentials = nats.dir().join("credentials");
    Credentials::ensure(&credentials, ["131016".to_string()]).unwrap();
    let mut intake = start_intake(&nats).await;
    // identity: its private keys and the callers' tokens; continuity: the callers' tokens.
    let (keys, tokens, audit) = (nats.dir().join("keys"), credentials.clone(), nats.dir().join("audit-keys"));
    // Health on a plain port of its own, for probes that cannot speak TLS.
    let health = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap().to_string()
    };
    let (mut identity, identity_endpoint) = serve(
        &nats,
        "identity",
        &[
            "--health-listen".as_ref(),
            health.as_ref(),
            "--identity-keys".as_ref(),
            keys.as_os_str(),
            "--credentials".as_ref(),
            tokens.as_os_str(),
            "--audit-public-keys".as_ref(),
            audit.as_os_str(),
        ],
    )
    .await;
    let (mut continuity, continuity_endpoint) =
        serve(&nats, "continuity", &["--credentials".as_ref(), tokens.as_os_str()]).await;

    let mut client = chiyoda_client(&nats, &intake.endpoint).await;
    let kk = "1,KK,131016,130013,20260401,1\n2,1,100001,1001,1,123456789018,山田 太郎,ヤマダ タロウ,S300820,1,01,20200401,03,,,,,20200401\n9,1\n";
    let ks = "1,KS,131016,130013,20260401,1\n2,1,1001,20200401,01,100001,0,千代田,1001,09,\n9,1\n";
    client
        .submit("131016", vec![("KS".into(), ks.as_bytes().to_vec()), ("KK".into(), kk.as_bytes().to_vec())])
        .await
        .unwrap();
    let token = Credentials::token_of(&credentials, &Caller::Municipality("131016".into())).unwrap();
    assert!(identity_endpoint.starts_with("https://"), "{identity_endpoint}");
    let probe = tonic::transport::Endpoint::from_shared(format!("http://{health}")).unwrap().connect().await.unwrap();
    let check = tonic_health::pb::HealthCheckRequest { service: "kokuho.identity.v1.IdentityService".into() };
    let answer = tonic_health::pb::health_client::HealthClient::new(probe).check(check).await.unwrap().into_inner();
    assert_eq!(answer.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
    let pki = kokuho_runtime::tls::DevPki { dir: nats.users().unwrap().to_path_buf() };
    let tls = kokuho_runtime::tls::ClientTls::of_dev(&pki).unwrap();
    // Mutual TLS: the CA alone, without a client certificate, is refused at the handshake.
    let no_cert = kokuho_runtime::tls::ClientTls { identity: None, ..tls.clone() };
    match Client::connect_trusting(&identity_endpoint, Some(&no_cert)).await {
        Err(_) => {}
        Ok(c) => assert!(c.with_token(token.clone()).lookup_ids("131016", "100001").await.is_err()),
    }
    let mut lookup = Client::connect_trusting(&identity_endpoint, Some(&tls)).await.unwrap().with_token(token.clone());
    let found = eventually("identity links the record", Duration::from_secs(30), || {
        let mut lookup = lookup.clone();
        async move { lookup.lookup_ids("131016", "100001").await.ok().filter(|r| r.found) }
    })
    .await;
    assert!(found.pref_id.starts_with("13") && found.muni_id.starts_with("13101"), "{found:?}");
    assert!(lookup.lookup_ids("131016", "999999").await.map(|r| !r.found).unwrap());
    let query = Client::connect_trusting(&continuity_endpoint, Some(&tls)).await.unwrap().with_token(token);
    let person = eventually("continuity evaluates the period", Duration::from_secs(30), || {
        let mut query = query.clone();
        async move { query.query_person("131016", "100001").await.ok().filter(|r| r.found) }
    })
    .await;
    assert_eq!(person.periods.len(), 1, "{person:?}");
    // Without callers' tokens continuity refuses to start.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kokuho"))
        .args(["serve", "continuity", "--nats", &nats.url()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--credentials"));
    for child in [&mut intake.child, &mut identity, &mut continuity] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
