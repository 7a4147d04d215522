//! The one test harness of kokuho (style.md §4.11).
//!
//! [`TestNats::start`] runs a real nats-server with JetStream for one test: a temp dir, a free
//! loopback port, `sync_interval: always`, and a version check that says how to get a current
//! server. [`eventually`] polls a condition with bounded patience instead of sleeping for a
//! fixed time. It builds no service: the shared crates' tests use it as it is, and the
//! cross-service harness (`kokuho_e2e::app::spawn_system`) builds on it.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use kokuho_runtime::local_nats::LocalNats;

/// A nats-server for one test (or a loopback cluster of them); stopped and deleted on drop.
pub struct TestNats {
    server: LocalNats,
    /// The other nodes of a cluster ([`TestNats::start_cluster`]); clients connect to `server`
    /// and learn of these from it.
    others: Vec<LocalNats>,
    dir: tempfile::TempDir,
    /// The NATS users' seeds when the server authenticates ([`TestNats::start_with_auth`]).
    users: Option<std::path::PathBuf>,
}

impl TestNats {
    /// A server without authentication (the shared crates' tests).
    pub async fn start() -> Self {
        Self::start_with_auth(|_| Ok(None)).await
    }

    /// A server with the users `auth` makes in the test's temp dir: it returns the `accounts`
    /// block and the directory of the seeds (with `admin.nk`, which [`TestNats::bus`] uses).
    pub async fn start_with_auth(
        auth: impl FnOnce(&Path) -> anyhow::Result<Option<(String, std::path::PathBuf)>>,
    ) -> Self {
        init_tracing();
        let dir = tempfile::tempdir().expect("temp dir for nats-server");
        let auth = auth(dir.path()).expect("NATS users for the test");
        let (config, users) = match auth {
            Some((config, users)) => (Some(config), Some(users)),
            None => (None, None),
        };
        let server = match LocalNats::start_with(&dir.path().join("nats"), 0, config).await {
            Ok(s) => s,
            Err(e) => panic!("cannot start nats-server for the test: {e:#}"),
        };
        Self { server, others: Vec::new(), dir, users }
    }

    /// A loopback cluster of `n` servers (JetStream on each, routes between all, the same users
    /// as `auth` makes), ready when JetStream answers. Streams may then be R`n`.
    pub async fn start_cluster(
        n: usize,
        auth: impl FnOnce(&Path) -> anyhow::Result<Option<(String, std::path::PathBuf)>>,
    ) -> Self {
        init_tracing();
        let dir = tempfile::tempdir().expect("temp dir for the cluster");
        let auth = auth(dir.path()).expect("NATS users for the test");
        let (config, users) = match auth {
            Some((config, users)) => (Some(config), Some(users)),
            None => (None, None),
        };
        let routes: Vec<u16> = (0..n).map(|_| kokuho_runtime::local_nats::free_port().expect("a free port")).collect();
        let mut nodes = Vec::new();
        for (i, port) in routes.iter().enumerate() {
            let others: Vec<String> =
                routes.iter().filter(|p| *p != port).map(|p| format!("nats://127.0.0.1:{p}")).collect();
            let extra = format!(
                "server_name: n{i}\ncluster {{\n  name: kokuho-test\n  listen: 127.0.0.1:{port}\n  routes: [{}]\n}}\n",
                others.join(", ")
            );
            let node = LocalNats::start_node(&dir.path().join(format!("nats-{i}")), 0, config.clone(), extra).await;
            nodes.push(node.unwrap_or_else(|e| panic!("cannot start cluster node {i}: {e:#}")));
        }
        let server = nodes.remove(0);
        let cluster = Self { server, others: nodes, dir, users };
        // Ready when a stream of `n` replicas can be placed (every node has joined).
        const PROBE: kokuho_bus::StreamDef =
            kokuho_bus::StreamDef { name: "KOKUHO_PROBE", subjects: &["kokuho.probe"], description: "" };
        let bus = cluster.bus().await.with_replicas(n);
        eventually("the cluster places a stream on every node", Duration::from_secs(60), || {
            let bus = bus.clone();
            async move { bus.ensure_stream(&PROBE).await.ok() }
        })
        .await;
        bus.delete_stream(PROBE.name).await.expect("remove the probe stream");
        cluster
    }

    /// SIGKILLs node `i` of a cluster (1 ..: not the one clients first connect to).
    pub async fn kill_node(&mut self, i: usize) {
        self.others[i - 1].kill().await.expect("kill a node");
    }

    /// Starts node `i` again on its port and store.
    pub async fn start_node(&mut self, i: usize) {
        self.others[i - 1].restart().await.expect("start a node again");
    }

    /// The directory of the NATS users' seeds, if the server authenticates.
    pub fn users(&self) -> Option<&Path> {
        self.users.as_deref()
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The temp dir of this test (the server's store lives in `nats/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn store_dir(&self) -> &Path {
        self.server.dir()
    }

    pub async fn restart(&mut self) {
        self.server.restart().await.expect("restart nats-server");
    }

    /// Stops the server (its store stays); [`TestNats::start_again`] brings it back.
    pub async fn stop(&mut self) {
        self.server.stop().await.expect("stop nats-server");
    }

    pub async fn start_again(&mut self) {
        self.server.restart().await.expect("start nats-server again");
    }

    /// A connection that may do anything: anonymous, or the admin on a server that authenticates.
    pub async fn bus(&self) -> kokuho_bus::Bus {
        let user = match &self.users {
            Some(dir) => kokuho_bus::NatsUser::load(dir, kokuho_bus::access::ADMIN).expect("the admin's seed"),
            None => kokuho_bus::NatsUser::anonymous("test"),
        };
        kokuho_bus::Bus::connect_as(&self.url(), &user).await.expect("connect to the test nats-server")
    }

    /// A connection as `user` of the server's users (a service's least permissions).
    pub async fn bus_as(&self, user: &str) -> kokuho_bus::Bus {
        let dir = self.users.as_deref().expect("a server with users");
        let user = kokuho_bus::NatsUser::load(dir, user).expect("the user's seed");
        kokuho_bus::Bus::connect_as(&self.url(), &user).await.expect("connect to the test nats-server")
    }
}

/// A valid 個人番号 (check digit included) whose first 11 digits are `first11`, for generated
/// scenarios and benchmarks.
pub fn individual_number(first11: u64) -> String {
    let first = format!("{:011}", first11 % 100_000_000_000);
    let digits: [u8; 11] = std::array::from_fn(|i| first.as_bytes()[i] - b'0');
    format!("{first}{}", kokuho_ids::individual_number_check(&digits))
}

/// Polls `check` every 20 ms until it returns `Some`, for at most `patience`; panics with
/// `what` if it never does.
pub async fn eventually<T, F, Fut>(what: &str, patience: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{what}: not reached within {patience:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Test logs are silent unless `TEST_LOG=1`.
pub fn init_tracing() {
    if std::env::var("TEST_LOG").is_ok_and(|v| v == "1") {
        let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    }
}
