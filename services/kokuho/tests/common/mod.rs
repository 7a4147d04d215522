//! `kokuho up` as a test starts it: the binary in its own process group, on a data dir, and a
//! client of it once it answers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // Each test uses what it needs.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kokuho_client::Client;

/// A `kokuho up` of its own process group (kokuho and the nats-server it starts), killed with
/// the group when dropped (a failing test leaves no server behind).
pub(crate) struct Up {
    child: Child,
}

/// Starts `kokuho up` on `data` (business date 2026-04-01).
pub(crate) fn start(data: &Path) -> Up {
    let _ = std::fs::remove_file(kokuho_system::endpoint_file(data));
    let child = Command::new(env!("CARGO_BIN_EXE_kokuho"))
        .args(["up", "--business-date", "20260401", "--data-dir"])
        .arg(data)
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kokuho up");
    Up { child }
}

impl Up {
    /// SIGKILL of the whole tree: no shutdown of any kind.
    pub(crate) fn kill(self) {}

    /// Ctrl-C as a terminal sends it: SIGINT to the whole process group (kokuho and its
    /// nats-server). How long kokuho took to exit, or `None` if it had not within `patience`.
    pub(crate) async fn interrupt(&mut self, patience: Duration) -> Option<Duration> {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-INT", "--", &group]).status();
        let started = std::time::Instant::now();
        while started.elapsed() < patience {
            if self.child.try_wait().unwrap().is_some() {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// A clerk's client of the system of `data`, once it answers.
pub(crate) async fn client(data: &Path) -> Client {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        assert!(tokio::time::Instant::now() < deadline, "kokuho up did not come up");
        if let Ok(endpoint) = std::fs::read_to_string(kokuho_system::endpoint_file(data))
            && !endpoint.is_empty()
        {
            let pki = kokuho_runtime::tls::DevPki { dir: data.join("tls") };
            let tls = kokuho_runtime::tls::ClientTls::of_dev(&pki).unwrap();
            if let Ok(mut c) = Client::connect_trusting(endpoint.trim(), Some(&tls)).await {
                c = c.with_dev_credentials(kokuho_system::credentials_dir(data));
                if c.wait_idle(Duration::from_secs(1)).await.is_ok() {
                    return c;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
