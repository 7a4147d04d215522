//! The nats-server configuration kokuho runs with (the embedded default and the test harness).

use std::path::Path;

/// The largest message kokuho writes or accepts (`max_payload`).
pub const MAX_PAYLOAD: usize = 8 << 20;

/// A nats-server configuration for a single local server: JetStream in `store_dir`, loopback
/// only, and `sync_interval: always` so that every acknowledged write has been fsynced. `auth`:
/// the users and their permissions ([`crate::access::accounts_config`]); `None`: no
/// authentication (crate tests and benchmarks of the log alone).
pub fn server_config(port: u16, store_dir: &Path, auth: Option<&str>) -> String {
    let config = format!(
        "# Written by kokuho. sync_interval: always fsyncs every write before it is acknowledged\n\
         # (the default fsyncs every two minutes; see docs/architecture.md, Durability).\n\
         listen: 127.0.0.1:{port}\n\
         max_payload: {MAX_PAYLOAD}\n\
         jetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n",
        store_dir.display()
    );
    match auth {
        Some(auth) => config + auth,
        None => config,
    }
}

/// The `tls` block of a server that requires mutual TLS: its certificate and key, and the CA
/// every client certificate must be signed by (PEM files).
pub fn tls_config(cert: &Path, key: &Path, ca: &Path) -> String {
    format!(
        "tls {{\n  cert_file: {:?}\n  key_file: {:?}\n  ca_file: {:?}\n  verify: true\n  timeout: 5\n}}\n",
        cert.display().to_string(),
        key.display().to_string(),
        ca.display().to_string()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn fsync_always() {
        let c = super::server_config(4222, std::path::Path::new("/tmp/x"), None);
        assert!(c.contains("sync_interval: always"));
        assert!(c.contains("listen: 127.0.0.1:4222"));
    }
}
