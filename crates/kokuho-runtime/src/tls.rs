//! TLS for gRPC and NATS (issue 12). A deployment brings its own certificates (files named by
//! settings, mounted from Secrets); `kokuho up` and the tests make a dev certificate authority
//! with [`DevPki::ensure`]: a CA, one server certificate for loopback, one client certificate
//! (NATS requires one: mutual TLS), all in one directory:
//!
//! - `ca.pem` — what every client trusts (and NATS checks client certificates against);
//! - `server.pem`, `server.key` — the server's certificate (`localhost`, `127.0.0.1`);
//! - `client.pem`, `client.key` — a client certificate: NATS connections, and every gRPC call
//!   (the servers require one signed by the CA: mutual TLS).
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
/// The setting with the CA that signed the certificates of the gRPC server's callers: with it,
/// a caller without a certificate signed by that CA is refused at the handshake (mutual TLS).
pub const CLIENT_CA: &str = "tls_client_ca";
/// The settings with the certificate and key a service shows to the endpoints it calls.
pub const CLIENT_CERT: &str = "tls_client_cert";
pub const CLIENT_KEY: &str = "tls_client_key";

/// What a gRPC client trusts and shows: the CA that signed the servers' certificates, and its
/// own certificate and key (PEM), which servers that require mutual TLS check.
#[derive(Clone)]
pub struct ClientTls {
    pub ca: Vec<u8>,
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").field("identity", &self.identity.is_some()).finish()
    }
}

impl ClientTls {
    /// The CA file, and the certificate and key files when both are given.
    pub fn load(ca: &Path, identity: Option<(&Path, &Path)>) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let read = |p: &Path, what: &str| std::fs::read(p).with_context(|| format!("{what} {}", p.display()));
        let identity = match identity {
            Some((cert, key)) => Some((read(cert, "TLS client certificate")?, read(key, "TLS client key")?)),
            None => None,
        };
        Ok(Self { ca: read(ca, "CA certificate")?, identity })
    }

    /// From the settings `tls_ca`, `tls_client_cert` and `tls_client_key`; none without a CA.
    pub fn from_settings(settings: &crate::service::Settings) -> anyhow::Result<Option<Self>> {
        let Some(ca) = settings.get(CA) else { return Ok(None) };
        let identity = match (settings.get(CLIENT_CERT), settings.get(CLIENT_KEY)) {
            (Some(cert), Some(key)) => Some((Path::new(cert), Path::new(key))),
            (None, None) => None,
            _ => anyhow::bail!("a TLS client identity needs both {CLIENT_CERT} and {CLIENT_KEY}"),
        };
        Self::load(Path::new(ca), identity).map(Some)
    }

    /// A dev PKI's CA and client certificate.
    pub fn of_dev(pki: &DevPki) -> anyhow::Result<Self> {
        Self::load(&pki.ca(), Some((&pki.client(), &pki.client_key())))
    }
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
        let leaves = [
            Leaf { stem: "server", names: vec!["localhost".into(), "127.0.0.1".into()], server: true, client: false },
            Leaf { stem: "client", names: vec!["kokuho".into()], client: true, server: false },
        ];
        make(dir, &leaves)?;
        Ok(pki)
    }

    /// A deployment's PKI in `dir`, made if it is not there: the CA, one certificate per service
    /// (`<service>.pem`, `<service>.key`: its names in `namespace`, for serving and for calling
    /// the others; each service's Secret holds its own alone), and one client certificate per
    /// caller outside the cluster (`<caller>.pem`, `<caller>.key`).
    pub fn ensure_deployment(
        dir: &Path,
        namespace: &str,
        services: &[&str],
        callers: &[&str],
    ) -> std::io::Result<Self> {
        let mut leaves: Vec<Leaf<'_>> = services
            .iter()
            .map(|s| Leaf {
                stem: s,
                names: vec![
                    s.to_string(),
                    format!("{s}.{namespace}"),
                    format!("{s}.{namespace}.svc"),
                    format!("{s}.{namespace}.svc.cluster.local"),
                    "localhost".into(),
                ],
                server: true,
                client: true,
            })
            .collect();
        leaves.extend(callers.iter().map(|c| Leaf {
            stem: c,
            names: vec![c.to_string()],
            server: false,
            client: true,
        }));
        make(dir, &leaves)?;
        Ok(Self { dir: dir.to_path_buf() })
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

/// One certificate of a PKI directory: `<stem>.pem` and `<stem>.key`.
struct Leaf<'a> {
    stem: &'a str,
    names: Vec<String>,
    server: bool,
    client: bool,
}

/// Makes the CA and `leaves` in `dir` unless `ca.pem` is there (written last: its presence says
/// the directory is complete). The CA's private key is not kept.
fn make(dir: &Path, leaves: &[Leaf<'_>]) -> std::io::Result<()> {
    if dir.join("ca.pem").exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(io)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "kokuho CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_key = KeyPair::generate().map_err(io)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(io)?;
    let issuer = Issuer::new(ca, ca_key);
    for leaf in leaves {
        let mut p = CertificateParams::new(leaf.names.clone()).map_err(io)?;
        p.distinguished_name.push(DnType::CommonName, format!("kokuho {}", leaf.stem));
        if leaf.server {
            p.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if leaf.client {
            p.extended_key_usages.push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        let key = KeyPair::generate().map_err(io)?;
        let cert = p.signed_by(&key, &issuer).map_err(io)?;
        std::fs::write(dir.join(format!("{}.pem", leaf.stem)), cert.pem())?;
        kokuho_crypto::write_private(&dir.join(format!("{}.key", leaf.stem)), key.serialize_pem().as_bytes())?;
    }
    std::fs::write(dir.join("ca.pem"), ca_cert.pem())
}

/// The gRPC server's TLS from a certificate and key file (PEM); with `client_ca`, every caller
/// must show a certificate signed by it (mutual TLS).
pub fn server_tls(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> anyhow::Result<tonic::transport::ServerTlsConfig> {
    use anyhow::Context as _;
    let read = |p: &Path, what: &str| std::fs::read(p).with_context(|| format!("{what} {}", p.display()));
    let (cert, key) = (read(cert, "TLS certificate")?, read(key, "TLS key")?);
    let mut tls = tonic::transport::ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(cert, key));
    if let Some(ca) = client_ca {
        tls = tls.client_ca_root(tonic::transport::Certificate::from_pem(read(ca, "TLS client CA")?));
    }
    Ok(tls)
}

/// A gRPC endpoint to `url`; an `https://` one trusts the CA of `tls` alone and shows its
/// client certificate, if it has one.
pub fn endpoint(url: &str, tls: Option<&ClientTls>) -> Result<tonic::transport::Endpoint, String> {
    let mut e = tonic::transport::Endpoint::from_shared(url.to_string()).map_err(|_| format!("bad endpoint {url}"))?;
    if url.starts_with("https://") {
        let tls = tls.ok_or_else(|| format!("{url} is TLS: give the CA certificate that signed its certificate"))?;
        let mut config =
            tonic::transport::ClientTlsConfig::new().ca_certificate(tonic::transport::Certificate::from_pem(&tls.ca));
        if let Some((cert, key)) = &tls.identity {
            config = config.identity(tonic::transport::Identity::from_pem(cert, key));
        }
        e = e.tls_config(config).map_err(|e| format!("TLS for {url}: {e}"))?;
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
        assert!(super::server_tls(&pki.server(), &pki.server_key(), Some(&pki.ca())).is_ok());
        assert!(super::ClientTls::of_dev(&pki).unwrap().identity.is_some());
        let deployment = tempfile::tempdir().unwrap();
        super::DevPki::ensure_deployment(deployment.path(), "kokuho", &["identity", "relay"], &["operator"]).unwrap();
        for file in ["ca.pem", "identity.pem", "identity.key", "relay.pem", "relay.key", "operator.pem", "operator.key"]
        {
            assert!(deployment.path().join(file).exists(), "{file}");
        }
    }
}
