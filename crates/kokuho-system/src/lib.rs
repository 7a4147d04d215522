//! Every kokuho service in one process, on one gRPC listener: the embedded default of
//! `kokuho up` (spec/cli.md), `kokuho demo`, and the system under test of the harness.
//! A real deployment runs each service with `kokuho serve <service>` instead; both paths build
//! the same `App`s.
//!
//! Layout of a data directory:
//! - `nats/` the local nats-server (config, log, `jetstream/` store) unless `--nats` is given
//! - `store/<service>/` the sled stores
//! - `keys/identity.pub`, `keys/identity.key` dev keys (security.md S3: generated, never in git)
//! - `credentials/` dev tokens: one per municipality, `operator.token`, `relay.token`
//! - `endpoint` the gRPC endpoint the CLI finds by itself
//! - `logs/` the services' log

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use kokuho_ids::Registry;
use kokuho_runtime::credentials::Credentials;
use kokuho_runtime::local_nats::LocalNats;
use kokuho_store::{RunnerSettings, SledDb};

/// The default prefecture: Tokyo (62 municipalities, made-up 保険者番号).
pub const DEFAULT_REGISTRY: &str = include_str!("../../../config/registry/13.csv");

pub fn default_registry() -> Registry {
    Registry::parse(DEFAULT_REGISTRY).expect("the shipped registry is valid (tested)")
}

/// The services of kokuho that this process can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Intake,
    Identity,
    Continuity,
}

impl Service {
    pub const ALL: [Service; 3] = [Service::Intake, Service::Identity, Service::Continuity];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "intake" => Some(Service::Intake),
            "identity" => Some(Service::Identity),
            "continuity" => Some(Service::Continuity),
            _ => None,
        }
    }
}

/// Where the system runs and with what.
#[derive(Debug, Clone)]
pub struct SystemConfig {
    pub data_dir: PathBuf,
    /// The services to run in this process (`up`: all of them).
    pub services: Vec<Service>,
    /// An external NATS server; `None` starts a local one in `data_dir/nats`.
    pub nats_url: Option<String>,
    /// The first business date of a new log (rules.md T1).
    pub business_date: Option<u32>,
    pub listen: SocketAddr,
    pub registry: Arc<Registry>,
    /// identity's public key file (intake); `None`: the dev keys of the data dir (made if missing).
    pub identity_key: Option<PathBuf>,
    /// identity's private keys (identity): `None`: the dev keys of the data dir.
    pub identity_keys_dir: Option<PathBuf>,
    /// Callers' tokens (every service): `None`: the dev credentials of the data dir (made if missing).
    pub credentials_dir: Option<PathBuf>,
}

impl SystemConfig {
    /// Every service on loopback with the dev keys and credentials of `data_dir` (`kokuho up`).
    pub fn embedded(data_dir: PathBuf, registry: Arc<Registry>) -> Self {
        Self {
            data_dir,
            services: Service::ALL.to_vec(),
            nats_url: None,
            business_date: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            registry,
            identity_key: None,
            identity_keys_dir: None,
            credentials_dir: None,
        }
    }
}

/// A running system.
pub struct System {
    nats: Option<LocalNats>,
    intake: Option<kokuho_intake::App>,
    identity: Option<kokuho_identity::App>,
    continuity: Option<kokuho_continuity::App>,
    endpoint: String,
    stop_server: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// The identity key pair of a data dir, generated on first use.
pub fn ensure_keys(data_dir: &Path) -> anyhow::Result<kokuho_crypto::PublicKey> {
    let dir = data_dir.join("keys");
    let public = dir.join("identity.pub");
    if !public.exists() {
        kokuho_crypto::generate_key_pair(&dir).context("generate dev keys")?;
    }
    Ok(kokuho_crypto::PublicKey::load(&public)?)
}

/// The dev credentials of a data dir (one token per municipality, operator, relay).
pub fn credentials_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("credentials")
}

/// The endpoint file of a data dir.
pub fn endpoint_file(data_dir: &Path) -> PathBuf {
    data_dir.join("endpoint")
}

impl System {
    pub async fn start(config: SystemConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("create data dir {}", config.data_dir.display()))?;
        let (nats, url) = match &config.nats_url {
            Some(url) => (None, url.clone()),
            None => {
                let server = LocalNats::start(&config.data_dir.join("nats"), 0).await?;
                let url = server.url();
                (Some(server), url)
            }
        };
        let bus = kokuho_bus::Bus::connect(&url, "kokuho").await?;
        let store = |name: &str| SledDb::open(&config.data_dir.join("store").join(name));
        // Callers' tokens (every service checks them, security.md S5).
        let credentials = || -> anyhow::Result<Credentials> {
            let dir = match &config.credentials_dir {
                Some(dir) => dir.clone(),
                None => {
                    let dir = credentials_dir(&config.data_dir);
                    Credentials::ensure(&dir, config.registry.municipalities().map(|m| m.code.to_string()))?;
                    dir
                }
            };
            Credentials::load(&dir).with_context(|| format!("credentials in {}", dir.display()))
        };
        let intake = if config.services.contains(&Service::Intake) {
            let identity_key = match &config.identity_key {
                Some(path) => kokuho_crypto::PublicKey::load(path)?,
                None => ensure_keys(&config.data_dir)?,
            };
            let intake_config = kokuho_intake::Config {
                registry: config.registry.clone(),
                identity_key,
                limits: kokuho_intake::Limits::default(),
                initial_business_date: config.business_date,
                runner: RunnerSettings::default(),
                credentials: credentials()?,
            };
            Some(kokuho_intake::App::build(intake_config, bus.clone(), &store("intake")?).await?)
        } else {
            None
        };
        let identity = if config.services.contains(&Service::Identity) {
            let keys = match &config.identity_keys_dir {
                Some(dir) => dir.clone(),
                None => {
                    ensure_keys(&config.data_dir)?;
                    config.data_dir.join("keys")
                }
            };
            let identity_config = kokuho_identity::Config {
                vault: Arc::new(kokuho_crypto::Vault::load(&keys)?),
                runner: RunnerSettings::default(),
                credentials: credentials()?,
            };
            Some(kokuho_identity::App::build(identity_config, bus.clone(), &store("identity")?).await?)
        } else {
            None
        };
        let continuity = if config.services.contains(&Service::Continuity) {
            let continuity_config =
                kokuho_continuity::Config { runner: RunnerSettings::default(), credentials: credentials()? };
            Some(kokuho_continuity::App::build(continuity_config, bus.clone(), &store("continuity")?).await?)
        } else {
            None
        };
        let mut names = Vec::new();
        let (intake_svc, results_svc) = match &intake {
            Some(i) => {
                names.extend(["kokuho.intake.v1.IntakeService", "kokuho.results.v1.ResultService"]);
                let (a, b) = i.services();
                (Some(a), Some(b))
            }
            None => (None, None),
        };
        if identity.is_some() {
            names.push("kokuho.identity.v1.IdentityService");
        }
        if continuity.is_some() {
            names.push("kokuho.continuity.v1.ContinuityService");
        }
        let router = tonic::transport::Server::builder()
            .add_service(kokuho_runtime::grpc::health(&names).await)
            .add_optional_service(intake_svc)
            .add_optional_service(results_svc)
            .add_optional_service(identity.as_ref().map(|i| i.service()))
            .add_optional_service(continuity.as_ref().map(|c| c.service()));
        let (listener, addr) = kokuho_runtime::grpc::bind(config.listen).await?;
        let endpoint = format!("http://{addr}");
        let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(kokuho_runtime::grpc::serve(router, listener, async move {
            let _ = stopped.await;
        }));
        std::fs::write(endpoint_file(&config.data_dir), &endpoint)?;
        tracing::info!(%endpoint, data_dir = %config.data_dir.display(), services = ?config.services, "kokuho is up");
        Ok(Self { nats, intake, identity, continuity, endpoint, stop_server, server })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// intake, when this process runs it.
    pub fn intake(&self) -> Option<&kokuho_intake::Intake> {
        self.intake.as_ref().map(|i| i.intake())
    }

    /// continuity, when this process runs it.
    pub fn continuity(&self) -> Option<&kokuho_continuity::App> {
        self.continuity.as_ref()
    }

    /// identity, when this process holds its keys.
    pub fn identity(&self) -> Option<&kokuho_identity::App> {
        self.identity.as_ref()
    }

    /// Stops the server, the consumers, and the local nats-server.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.stop_server.send(());
        let _ = self.server.await;
        if let Some(intake) = self.intake {
            intake.shutdown().await;
        }
        if let Some(identity) = self.identity {
            identity.shutdown().await;
        }
        if let Some(continuity) = self.continuity {
            continuity.shutdown().await;
        }
        if let Some(n) = self.nats.as_mut() {
            n.stop().await?;
        }
        Ok(())
    }
}
