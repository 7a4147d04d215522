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

/// A nats-server for one test; stopped and deleted on drop.
pub struct TestNats {
    server: LocalNats,
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
        Self { server, dir, users }
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
