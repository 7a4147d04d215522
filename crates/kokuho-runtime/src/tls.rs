//! TLS for gRPC and NATS (issue 12). A deployment brings its own certificates (files named by
//! settings, mounted from Secrets); `kokuho up` and the tests make a dev certificate authority
//! with [`DevPki::ensure`]: a CA, one server certificate for loopback, one client certificate
//! (NATS requires one: mutual TLS), all in one directory:
//!
//! - `ca.pem` — what every client trusts (and NATS checks client certificates against);
//! - `server.pem`, `server.key` — the server's certificate (`localhost`, `127.0.0.1`);
//! - `client.pem`, `client.key` — a client certificate (NATS connections).
//!
//! The CA's private key is not kept: to add a certificate, make the directory again.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

/// The setting with the gRPC server's certificate (PEM); with [`KEY`] the server speaks TLS.
pub const CERT: &str = "tls_cert";
/// The setting with the gRPC server's private key (PEM).
pub const KEY: &str = "tls_key";
/// The setting with the CA certificate a service trusts for the `https://` endpoints it calls.
pub const CA: &str = "tls_ca";

/// The CA certificate of the `tls_ca` setting, if given.
pub fn ca_of(settings: &crate::service::Settings) -> anyhow::Result<Option<Vec<u8>>> {
    use anyhow::Context as _;
    settings.get(CA).map(|p| std::fs::read(p).with_context(|| format!("CA certificate {p}"))).transpose()
}

/// The files of a dev PKI directory.
#[derive(Debug, Clone)]
pub struct DevPki {
    pub dir: PathBuf,
}

fn io(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl DevPki {
    /// The PKI of `dir`, made if it is not there (all files at once).
    pub fn ensure(dir: &Path) -> std::io::Result<Self> {
        let pki = Self { dir: dir.to_path_buf() };
        if pki.ca().exists() && pki.client_key().exists() {
            return Ok(pki);
        }
        std::fs::create_dir_all(dir)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(io)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "kokuho dev CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca_key = KeyPair::generate().map_err(io)?;
        let ca_cert = ca.self_signed(&ca_key).map_err(io)?;
        let issuer = Issuer::new(ca, ca_key);
        let leaf =
            |names: Vec<String>, cn: &str, usage: ExtendedKeyUsagePurpose| -> std::io::Result<(String, String)> {
                let mut p = CertificateParams::new(names).map_err(io)?;
                p.distinguished_name.push(DnType::CommonName, cn);
                p.extended_key_usages = vec![usage];
                p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
                let key = KeyPair::generate().map_err(io)?;
                let cert = p.signed_by(&key, &issuer).map_err(io)?;
                Ok((cert.pem(), key.serialize_pem()))
            };
        let (server, server_key) = leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            "kokuho dev server",
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let (client, client_key) =
            leaf(vec!["kokuho".into()], "kokuho dev client", ExtendedKeyUsagePurpose::ClientAuth)?;
        std::fs::write(pki.server(), server)?;
        kokuho_crypto::write_private(&pki.server_key(), server_key.as_bytes())?;
        std::fs::write(pki.client(), client)?;
        kokuho_crypto::write_private(&pki.client_key(), client_key.as_bytes())?;
        // Last: its presence says the directory is complete.
        std::fs::write(pki.ca(), ca_cert.pem())?;
        Ok(pki)
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn server(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
    pub fn client(&self) -> PathBuf {
        self.dir.join("client.pem")
    }
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client.key")
    }
}

/// The gRPC server's TLS from a certificate and key file (PEM).
pub fn server_tls(cert: &Path, key: &Path) -> anyhow::Result<tonic::transport::ServerTlsConfig> {
    use anyhow::Context as _;
    let cert = std::fs::read(cert).with_context(|| format!("TLS certificate {}", cert.display()))?;
    let key = std::fs::read(key).with_context(|| format!("TLS key {}", key.display()))?;
    Ok(tonic::transport::ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(cert, key)))
}

/// A gRPC endpoint to `url`; an `https://` one trusts `ca` (PEM) alone.
pub fn endpoint(url: &str, ca: Option<&[u8]>) -> Result<tonic::transport::Endpoint, String> {
    let mut e = tonic::transport::Endpoint::from_shared(url.to_string()).map_err(|_| format!("bad endpoint {url}"))?;
    if url.starts_with("https://") {
        let ca = ca.ok_or_else(|| format!("{url} is TLS: give the CA certificate that signed its certificate"))?;
        let tls = tonic::transport::ClientTlsConfig::new().ca_certificate(tonic::transport::Certificate::from_pem(ca));
        e = e.tls_config(tls).map_err(|e| format!("TLS for {url}: {e}"))?;
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_dev_pki_is_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let pki = super::DevPki::ensure(dir.path()).unwrap();
        let ca = std::fs::read_to_string(pki.ca()).unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        super::DevPki::ensure(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(pki.ca()).unwrap(), ca, "kept, not made again");
        assert!(super::server_tls(&pki.server(), &pki.server_key()).is_ok());
    }
}
