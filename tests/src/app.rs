//! The system under test: every service in-process against the test's own nats-server, gRPC
//! on a free loopback port, sled in the test's temp dir.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use kokuho_client::Client;
use kokuho_system::{System, SystemConfig};

use kokuho_testkit::TestNats;

/// The fixture's three wards, with their 保険者番号 (the default Tokyo registry has them).
pub const CHIYODA: &str = "131016";
pub const CHUO: &str = "131024";
pub const MINATO: &str = "131032";

pub struct TestSystem {
    pub nats: TestNats,
    system: Option<System>,
    pub client: Client,
    config: SystemConfig,
    /// relay's further shards (2/n … n/n), each a system of its own on the same log, with a
    /// client of it: [`spawn_sharded`].
    shards: Vec<(System, Client)>,
}

/// Starts nats-server and the system with the default (Tokyo) registry and `business_date`.
pub async fn spawn_system(business_date: u32) -> TestSystem {
    spawn_system_with(business_date, &[]).await
}

/// As [`spawn_system`], with deployment settings (by name, as `kokuho serve` passes them).
pub async fn spawn_system_with(business_date: u32, settings: &[(&str, &str)]) -> TestSystem {
    // The server authenticates every service with its own user, as `kokuho up`'s does (S7).
    let nats = TestNats::start_with_auth(users).await;
    spawn_system_on(nats, business_date, settings).await
}

/// The users, permissions and TLS of `kokuho up`, made in a test's temp dir.
pub fn users(dir: &std::path::Path) -> anyhow::Result<Option<(String, PathBuf)>> {
    let users = kokuho_system::nats_credentials_dir(&dir.join("data"));
    Ok(Some((kokuho_system::nats_auth_tls(&users)?, users)))
}

/// As [`spawn_system_with`], on a server (or cluster) the test started with [`users`].
pub async fn spawn_system_on(nats: TestNats, business_date: u32, settings: &[(&str, &str)]) -> TestSystem {
    let mut config = SystemConfig {
        nats_url: Some(nats.url()),
        ..SystemConfig::embedded(nats.dir().join("data"), Arc::new(kokuho_system::default_registry()))
    }
    .with_business_date(business_date);
    let users = nats.users().expect("a server with users").display().to_string();
    config.settings.set(kokuho_system::NATS_CREDENTIALS, users);
    for (key, value) in settings {
        config.settings.set(key, *value);
    }
    let system = System::start(config.clone()).await.expect("start the system");
    let client = connect(&system, &config).await;
    TestSystem { nats, system: Some(system), client, config, shards: Vec::new() }
}

/// As [`spawn_system`], with relay run as `n` shards by municipality (docs/architecture.md
/// "Scaling out"): the first system runs every service with relay's shard 1/n; each further
/// shard runs relay alone, on the same log and store root, and calls the first for identity's
/// release (R6) and the intermediate server. [`TestSystem::settle`] waits for every shard.
pub async fn spawn_sharded(business_date: u32, n: u32) -> TestSystem {
    let first_shard = format!("1/{n}");
    let mut sys = spawn_system_with(business_date, &[(kokuho_relay::SHARD, first_shard.as_str())]).await;
    let endpoint = sys.system().endpoint().to_string();
    for k in 2..=n {
        let mut config = SystemConfig { services: vec!["relay"], ..sys.config.clone() };
        config.settings.set(kokuho_relay::SHARD, format!("{k}/{n}"));
        config.settings.set(kokuho_relay::IDENTITY_ENDPOINT, endpoint.as_str());
        config.settings.set(kokuho_relay::MIDSERVER_ENDPOINT, endpoint.as_str());
        let shard = System::start(config.clone()).await.expect("start a relay shard");
        let client = connect(&shard, &config).await;
        sys.shards.push((shard, client));
    }
    sys
}

/// A client of the system that acts, request by request, with the dev token of the role the
/// request is made in (the municipality it names, the operator, relay).
async fn connect(system: &System, config: &SystemConfig) -> Client {
    let client = Client::connect_trusting(system.endpoint(), system.client_tls()).await.expect("connect to the system");
    client.with_dev_credentials(kokuho_system::credentials_dir(&config.data_dir))
}

async fn settle(client: &mut Client) {
    let r = client.wait_idle(std::time::Duration::from_secs(60)).await.expect("wait");
    assert!(r.idle, "the system did not settle: {:?}", r.progress);
}

impl TestSystem {
    pub fn system(&self) -> &System {
        self.system.as_ref().expect("the system is running")
    }

    /// A client with no credential at all (to see requests refused).
    pub async fn anonymous(&self) -> Client {
        Client::connect_trusting(self.system().endpoint(), self.system().client_tls())
            .await
            .expect("connect to the system")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }

    /// The configuration the system was started with.
    pub fn config(&self) -> &SystemConfig {
        &self.config
    }

    /// Stops every service (the nats-server keeps running).
    pub async fn stop_services(&mut self) {
        if let Some(s) = self.system.take() {
            s.stop().await.expect("stop the system");
        }
    }

    /// A channel to the system over its mutual TLS, and the dev operator's token: what the
    /// operator's tools (`kokuho replay`) use.
    pub async fn operator(&self) -> (tonic::transport::Channel, String) {
        use kokuho_runtime::credentials::{Caller, Credentials};
        let token = Credentials::token_of(&kokuho_system::credentials_dir(&self.data_dir()), &Caller::operator())
            .expect("the dev operator's token");
        let channel = kokuho_runtime::tls::endpoint(self.system().endpoint(), self.system().client_tls())
            .expect("the system's endpoint")
            .connect()
            .await
            .expect("connect to the system");
        (channel, token)
    }

    /// A replay of every service's projections into a scratch dir (`kokuho replay`), to
    /// positions by runner (`targets`) or by stream (`streams`).
    pub fn replay(
        &self,
        targets: BTreeMap<String, u64>,
        streams: BTreeMap<String, u64>,
    ) -> kokuho_system::replay::Replay {
        kokuho_system::replay::Replay {
            live: self.config.clone(),
            nats_url: self.system().nats_url().to_string(),
            scratch: tempfile::tempdir().expect("a scratch dir").keep(),
            services: kokuho_system::replay::services(),
            targets,
            stream_targets: streams,
            patience: std::time::Duration::from_secs(120),
        }
    }

    /// Replays every projection to where the live one stands and compares them.
    pub async fn verify_replay(&self) -> Vec<kokuho_system::replay::Verdict> {
        let (channel, token) = self.operator().await;
        let live =
            kokuho_system::replay::live_projections(channel.clone(), &token).await.expect("the live projections");
        let targets = live.iter().map(|p| (p.name.clone(), p.position)).collect();
        let replayed =
            kokuho_system::replay::run(self.replay(targets, BTreeMap::new()), |_| {}).await.expect("the replay");
        kokuho_system::replay::compare(&replayed, channel, &token).await.expect("the comparison")
    }

    /// Stops every service as a process that dies would (its leases lapse; the nats-server
    /// keeps running).
    pub async fn crash_services(&mut self) {
        if let Some(s) = self.system.take() {
            s.crash().await;
        }
    }

    /// Starts the services again on the same data dir and log.
    pub async fn start_services(&mut self) {
        let system = System::start(self.config.clone()).await.expect("restart the system");
        self.client = connect(&system, &self.config).await;
        self.system = Some(system);
    }

    /// Every pending result file of `municipality`, fetched and acknowledged.
    pub async fn fetch(&mut self, municipality: &str) -> Vec<kokuho_client::ResultFile> {
        let files = self.client.fetch_files(municipality).await.expect("fetch");
        if !files.is_empty() {
            let names = files.iter().map(|f| f.name.clone()).collect();
            self.client.acknowledge(municipality, names).await.expect("acknowledge");
        }
        files
    }

    /// `GET /metrics` of the system (Prometheus text).
    pub async fn metrics(&self) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let url = self.system().metrics_url().expect("the system serves metrics").to_string();
        let addr = url.trim_start_matches("http://").trim_end_matches("/metrics").to_string();
        let mut stream = tokio::net::TcpStream::connect(&addr).await.expect("connect to the metrics address");
        let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("ask for the metrics");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read the metrics");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        answer
    }

    /// Waits until every consumer has caught up (intake's wait looks at every consumer on the
    /// server, the shards' too), then until each relay shard has delivered what it planned,
    /// then for every consumer again (which read what the shards sent).
    pub async fn settle(&mut self) {
        settle(&mut self.client).await;
        if !self.shards.is_empty() {
            for (_, client) in &self.shards {
                // A shard alone answers relay's status (its idle: nothing planned or undelivered).
                kokuho_testkit::eventually("a relay shard is idle", std::time::Duration::from_secs(60), || {
                    let mut c = client.clone();
                    async move { c.relay_status(None).await.ok().filter(|s| s.idle).map(|_| ()) }
                })
                .await;
            }
            settle(&mut self.client).await;
        }
    }

    /// A client of relay's shard `k` of n (2 ≤ k ≤ n) of a [`spawn_sharded`] system.
    pub fn shard(&self, k: usize) -> (&System, Client) {
        let (system, client) = &self.shards[k - 2];
        (system, client.clone())
    }

    pub async fn stop(mut self) {
        for (shard, _) in std::mem::take(&mut self.shards) {
            shard.stop().await.expect("stop a relay shard");
        }
        self.stop_services().await;
    }
}
