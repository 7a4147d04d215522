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
//! - `credentials/nats/` the NATS users' nkey seeds (`admin.nk`, one per service; S7)
//! - `endpoint` the gRPC endpoint the CLI finds by itself
//! - `logs/` the services' log

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod ops;
pub mod replay;
use std::sync::Arc;

use anyhow::Context as _;
use kokuho_ids::Registry;
use kokuho_runtime::credentials::Credentials;
use kokuho_runtime::local_nats::LocalNats;
use kokuho_runtime::service::{Environment, Registration, Running, Service, Settings, registration};
use kokuho_store::{RunnerSettings, SledDb};

/// The default prefecture: Tokyo (62 municipalities, made-up 保険者番号).
pub const DEFAULT_REGISTRY: &str = include_str!("../../../config/registry/13.csv");

pub fn default_registry() -> Registry {
    Registry::parse(DEFAULT_REGISTRY).expect("the shipped registry is valid (tested)")
}

/// Every service this binary can run, in start order: adding a service is one line here
/// (docs/architecture.md, "Adding a service").
pub const SERVICES: &[Registration] = &[
    registration::<kokuho_intake::App>(),
    registration::<kokuho_identity::App>(),
    registration::<kokuho_continuity::App>(),
    registration::<kokuho_kogaku::App>(),
    registration::<kokuho_relay::App>(),
    registration::<kokuho_history::App>(),
    registration::<kokuho_midserver_sim::App>(),
];

/// The setting with the address `GET /metrics` is served on (`kokuho up`: a free loopback port,
/// written to `<data dir>/metrics`).
pub const METRICS_LISTEN: &str = "metrics_listen";
/// Where a plain gRPC server answers the health service alone (`host:port`): for probes that
/// cannot speak TLS (Kubernetes' gRPC probe), while the API port requires mutual TLS.
pub const HEALTH_LISTEN: &str = "health_listen";

/// HTTP/2 streams a connection may have open at once, and the data each may send unread.
const MAX_STREAMS: u32 = 128;
const STREAM_WINDOW: u32 = 64 << 10;

/// The setting with the page cache of the process's stores, in MiB, shared by the services it
/// runs (default 256: `kokuho up`'s seven stores get 36 each; `kokuho serve` one store, all of
/// it). sled's own count: resident memory is about three times it (docs/benchmarks.md).
pub const STORE_CACHE_MIB: &str = "store_cache_mib";

/// The setting with the replicas of the streams the services create (default 1; a NATS cluster:
/// 3). A stream that has more is never lowered.
pub const STREAM_REPLICAS: &str = "stream_replicas";

/// The setting with the longest a gRPC request may run on the server, in seconds (default 900:
/// the longest `wait` is 600; an upload of a whole submission on a slow line fits).
pub const GRPC_TIMEOUT_SECONDS: &str = "grpc_timeout_seconds";

/// The setting with the directory of the NATS users' nkey seeds (`<user>.nk`: `admin` and one
/// per service). Given (or `kokuho up`), each service connects as its own user; the admin seed,
/// where present, creates the streams. Absent with `--nats`: a server without authentication.
pub const NATS_CREDENTIALS: &str = "nats_credentials";

/// The streams every service shares: the audit log and the dead letters.
const SHARED_STREAMS: [kokuho_bus::StreamDef; 2] = [kokuho_runtime::audit::AUDIT, kokuho_bus::DEAD_LETTER];

/// Every stream of the system, created by the admin: each service's own and the shared ones.
pub fn streams() -> Vec<kokuho_bus::StreamDef> {
    let mut out: Vec<_> = SERVICES.iter().flat_map(|r| r.access.owns.iter().copied()).collect();
    out.extend(SHARED_STREAMS);
    out
}

/// Creates every stream of the system, or brings what kokuho owns of its configuration up to
/// date, as `admin` (`kokuho up`, `kokuho streams`): the one place streams are made (S7).
pub async fn ensure_streams(url: &str, admin: &kokuho_bus::NatsUser, replicas: usize) -> anyhow::Result<()> {
    let bus = kokuho_bus::Bus::connect_as(url, admin).await?.with_replicas(replicas);
    for def in streams() {
        bus.ensure_stream(&def).await.with_context(|| format!("ensure stream {}", def.name))?;
    }
    bus.ensure_leases(LEASE_TTL).await.context("the lease bucket")?;
    Ok(())
}

/// A lease outlives its holder's last refresh by this much (the bucket's TTL): how long a
/// standby waits to take over from an instance that died. Holders refresh every third of it.
const LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(15);

/// This instance's name as a lease holder: kept in its data dir, so that a restarted instance
/// takes its own lease back at once, and another instance (a standby) is another holder.
fn instance_id(data_dir: &Path) -> anyhow::Result<String> {
    let file = data_dir.join("instance-id");
    if let Ok(id) = std::fs::read_to_string(&file) {
        return Ok(id.trim().to_string());
    }
    let id = uuid::Uuid::now_v7().simple().to_string();
    std::fs::create_dir_all(data_dir)?;
    std::fs::write(&file, &id)?;
    Ok(id)
}

/// The NATS admin of a credentials directory (`admin.nk`).
pub fn admin_user(dir: &Path) -> anyhow::Result<kokuho_bus::NatsUser> {
    Ok(kokuho_bus::NatsUser::load(dir, kokuho_bus::access::ADMIN)?)
}

/// The NATS users' seeds of a data dir (`kokuho up`).
pub fn nats_credentials_dir(data_dir: &Path) -> PathBuf {
    credentials_dir(data_dir).join("nats")
}

/// Makes the nkey seed of the admin and of every service's NATS user that `dir` does not hold
/// (existing ones are kept) and returns the server's `accounts` block: each user by its public
/// key with the permissions derived from its service's [`kokuho_bus::Access`] (security.md S7).
pub fn nats_auth(dir: &Path) -> anyhow::Result<String> {
    use kokuho_bus::access;
    let mut names = vec![access::ADMIN, access::AUDITOR];
    names.extend(service_names());
    let keys = access::ensure_users(dir, &names).with_context(|| format!("NATS users in {}", dir.display()))?;
    let users: Vec<_> = keys
        .into_iter()
        .map(|(name, key)| {
            let permissions = match SERVICES.iter().find(|r| r.name == name) {
                Some(r) => access::service_permissions(r.name, &r.access, r.shardable, &kokuho_runtime::audit::AUDIT),
                None if name == access::AUDITOR => access::auditor_permissions(),
                None => access::admin_permissions(),
            };
            (key, permissions)
        })
        .collect();
    Ok(access::accounts_config(&users))
}

/// [`nats_auth`] and mutual TLS with a dev CA made in `dir` (`ca.pem`, `server.pem`,
/// `server.key`, `client.pem`, `client.key`): the configuration `kokuho up`'s local server and
/// the tests' servers run with.
pub fn nats_auth_tls(dir: &Path) -> anyhow::Result<String> {
    let accounts = nats_auth(dir)?;
    let pki = kokuho_runtime::tls::DevPki::ensure(dir).context("the NATS dev CA")?;
    Ok(accounts + &kokuho_bus::tls_config(&pki.server(), &pki.server_key(), &pki.ca()))
}

/// The setting with the directory of the services' audit signing keys (`<service>.nk`; each
/// service reads its own; S8). `kokuho up`: `keys/audit/` of the data dir.
pub const AUDIT_SIGNING_KEYS: &str = "audit_signing_keys";

/// The setting with every service's public audit key (identity verifies with them).
pub use kokuho_identity::{AUDIT_PUBLIC_KEYS, RELEASE_PER_MINUTE};

/// Makes the audit key of every service that `dir` does not hold (S8).
pub fn ensure_audit_keys(dir: &Path) -> anyhow::Result<()> {
    kokuho_runtime::audit::ensure_keys(dir, &service_names())
        .with_context(|| format!("generate the audit keys in {}", dir.display()))
}

/// The shard of the service that `settings` give it (`<service>_shard = k/n`), whole when none is
/// given; an error when the service may not be sharded ([`Service::SHARDABLE`]).
pub fn shard_of(r: &Registration, settings: &Settings) -> anyhow::Result<kokuho_bus::Shard> {
    let key = format!("{}_shard", r.name);
    let Some(value) = settings.get(&key) else { return Ok(kokuho_bus::Shard::WHOLE) };
    anyhow::ensure!(
        r.shardable,
        "{key}: {} reads across municipalities and runs whole (docs/architecture.md, Scaling out)",
        r.name
    );
    value.parse().map_err(|e: String| anyhow::anyhow!("{key}: {e}"))
}

/// The names of [`SERVICES`].
pub fn service_names() -> Vec<&'static str> {
    SERVICES.iter().map(|r| r.name).collect()
}

/// Where the system runs and with what.
#[derive(Debug, Clone)]
pub struct SystemConfig {
    pub data_dir: PathBuf,
    /// The services to run in this process, by name (`up`: all of them).
    pub services: Vec<&'static str>,
    /// An external NATS server; `None` starts a local one in `data_dir/nats`.
    pub nats_url: Option<String>,
    pub listen: SocketAddr,
    pub registry: Arc<Registry>,
    /// Callers' tokens (every service): `None`: the dev credentials of the data dir (made if missing).
    pub credentials_dir: Option<PathBuf>,
    /// Settings by name for the services (`business_date`, `identity_public_key`, `identity_keys`).
    pub settings: Settings,
    /// Missing key settings are filled with the dev keys of the data dir (made if missing):
    /// `kokuho up`, never `kokuho serve`.
    pub dev_keys: bool,
}

impl SystemConfig {
    /// Every service on loopback with the dev keys and credentials of `data_dir` (`kokuho up`).
    pub fn embedded(data_dir: PathBuf, registry: Arc<Registry>) -> Self {
        Self {
            data_dir,
            services: service_names(),
            nats_url: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            registry,
            credentials_dir: None,
            settings: {
                let mut s = Settings::default();
                s.set(METRICS_LISTEN, "127.0.0.1:0");
                s
            },
            dev_keys: true,
        }
    }

    /// The first business date of a new log (rules.md T1).
    pub fn with_business_date(mut self, date: u32) -> Self {
        self.settings.set("business_date", date.to_string());
        self
    }
}

/// A running system.
pub struct System {
    nats: Option<LocalNats>,
    failures: kokuho_store::Failures,
    services: Vec<Box<dyn Running>>,
    endpoint: String,
    client_tls: Option<kokuho_runtime::tls::ClientTls>,
    nats_url: String,
    stats: kokuho_store::RunnerStats,
    /// Each service's lease keeper (bus, service, lease key, task), and this instance's holder name.
    leases: Vec<(kokuho_bus::Bus, &'static str, String, tokio::task::JoinHandle<()>)>,
    acting: std::collections::BTreeMap<&'static str, tokio::sync::watch::Receiver<bool>>,
    holder: String,
    metrics_url: Option<String>,
    /// The servers beside the API (metrics, health), each with its stop switch.
    side: Vec<(tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
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

/// Fills the key settings not given with the dev keys of the data dir (`kokuho up`).
fn dev_keys(config: &mut SystemConfig) -> anyhow::Result<()> {
    let dir = config.data_dir.join("keys");
    if config.settings.get("identity_public_key").is_none() {
        ensure_keys(&config.data_dir)?;
        config.settings.set("identity_public_key", dir.join("identity.pub").display().to_string());
    }
    if config.settings.get("identity_keys").is_none() {
        ensure_keys(&config.data_dir)?;
        config.settings.set("identity_keys", dir.display().to_string());
    }
    // Audit keys: one signing key per service, the public keys for identity's verify (S8).
    if config.settings.get(AUDIT_SIGNING_KEYS).is_none() || config.settings.get(AUDIT_PUBLIC_KEYS).is_none() {
        let audit = dir.join("audit");
        ensure_audit_keys(&audit)?;
        for key in [AUDIT_SIGNING_KEYS, AUDIT_PUBLIC_KEYS] {
            if config.settings.get(key).is_none() {
                config.settings.set(key, audit.display().to_string());
            }
        }
    }
    // Mutual TLS on gRPC: a dev CA, a loopback certificate, and the client certificate every
    // caller shows (a deployment mounts its own).
    if config.settings.get(kokuho_runtime::tls::CERT).is_none() {
        use kokuho_runtime::tls;
        let pki = tls::DevPki::ensure(&config.data_dir.join("tls")).context("make the dev CA")?;
        let file = |p: PathBuf| p.display().to_string();
        for (key, value) in [
            (tls::CERT, file(pki.server())),
            (tls::KEY, file(pki.server_key())),
            (tls::CA, file(pki.ca())),
            (tls::CLIENT_CA, file(pki.ca())),
            (tls::CLIENT_CERT, file(pki.client())),
            (tls::CLIENT_KEY, file(pki.client_key())),
        ] {
            if config.settings.get(key).is_none() {
                config.settings.set(key, value);
            }
        }
    }
    // The intermediate-server simulator plays another system: a key of its own.
    if config.settings.get(kokuho_midserver_sim::KEYS).is_none() {
        let sim = dir.join("midserver");
        if !sim.join("identity.key").exists() {
            kokuho_crypto::generate_key_pair(&sim).context("generate the simulator's dev key")?;
        }
        config.settings.set(kokuho_midserver_sim::KEYS, sim.display().to_string());
    }
    Ok(())
}

/// The dev credentials of a data dir (one token per municipality, operator, relay).
pub fn credentials_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("credentials")
}

/// The endpoint file of a data dir.
/// Where `kokuho up` writes the NATS server's URL (for `kokuho replay`).
pub fn nats_url_file(data_dir: &Path) -> PathBuf {
    data_dir.join("nats-url")
}

pub fn endpoint_file(data_dir: &Path) -> PathBuf {
    data_dir.join("endpoint")
}

impl System {
    pub async fn start(mut config: SystemConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("create data dir {}", config.data_dir.display()))?;
        // The simulator's records are another system's data, not a projection: outside `store/`
        // (which may be deleted to rebuild from the log).
        if config.settings.get(kokuho_midserver_sim::DATA).is_none() {
            let dir = config.data_dir.join("midserver-sim");
            config.settings.set(kokuho_midserver_sim::DATA, dir.display().to_string());
        }
        let registrations: Vec<Registration> =
            config
                .services
                .iter()
                .map(|name| {
                    SERVICES.iter().find(|r| r.name == *name).copied().with_context(|| {
                        format!("no service {name:?}; this binary runs {}", service_names().join(", "))
                    })
                })
                .collect::<anyhow::Result<_>>()?;
        let (nats, url) = match &config.nats_url {
            Some(url) => (None, url.clone()),
            None => {
                // The local server authenticates every client with the users of the data dir.
                let users = match config.settings.get(NATS_CREDENTIALS) {
                    Some(dir) => PathBuf::from(dir),
                    None => nats_credentials_dir(&config.data_dir),
                };
                let auth = nats_auth_tls(&users)?;
                config.settings.set(NATS_CREDENTIALS, users.display().to_string());
                let server = LocalNats::start_with(&config.data_dir.join("nats"), 0, Some(auth)).await?;
                let url = server.url();
                (Some(server), url)
            }
        };
        let users = config.settings.get(NATS_CREDENTIALS).map(PathBuf::from);
        let user = |name: &str| -> anyhow::Result<kokuho_bus::NatsUser> {
            Ok(match &users {
                Some(dir) => kokuho_bus::NatsUser::load(dir, name)?,
                None => kokuho_bus::NatsUser::anonymous(name),
            })
        };
        // The streams: created (or brought up to date) by the admin, or by the one connection of
        // a server without authentication; a service's user may do neither (S7).
        let replicas = config.settings.parsed(STREAM_REPLICAS, "a number of replicas")?.unwrap_or(1);
        let admin = match &users {
            Some(dir) if kokuho_bus::access::seed_file(dir, kokuho_bus::access::ADMIN).exists() => {
                Some(admin_user(dir)?)
            }
            Some(_) => None,
            None => Some(user("kokuho")?),
        };
        match admin {
            Some(admin) => ensure_streams(&url, &admin, replicas).await?,
            None => tracing::info!("No NATS admin credential here: the streams are expected to exist (kokuho streams)"),
        }
        if config.dev_keys {
            dev_keys(&mut config)?;
        }
        // Callers' tokens (every service checks them, security.md S5).
        let credentials_dir = match &config.credentials_dir {
            Some(dir) => dir.clone(),
            None => {
                let dir = credentials_dir(&config.data_dir);
                Credentials::ensure(&dir, config.registry.municipalities().map(|m| m.code.to_string()))?;
                dir
            }
        };
        let credentials = Credentials::load(&credentials_dir)
            .with_context(|| format!("credentials in {}", credentials_dir.display()))?;
        // Bound before the services are built: the services of this process reach each other
        // (relay: identity's release, the simulator) at this endpoint unless told otherwise.
        let (listener, addr) = kokuho_runtime::grpc::bind(config.listen).await?;
        let tls = match (config.settings.get(kokuho_runtime::tls::CERT), config.settings.get(kokuho_runtime::tls::KEY))
        {
            (Some(cert), Some(key)) => {
                let client_ca = config.settings.get(kokuho_runtime::tls::CLIENT_CA).map(Path::new);
                Some(kokuho_runtime::tls::server_tls(Path::new(cert), Path::new(key), client_ca)?)
            }
            (None, None) => None,
            _ => anyhow::bail!("TLS needs both tls_cert and tls_key"),
        };
        let endpoint = format!("{}://{addr}", if tls.is_some() { "https" } else { "http" });
        let own = [(kokuho_relay::IDENTITY_ENDPOINT, "identity"), (kokuho_relay::MIDSERVER_ENDPOINT, "midserver-sim")];
        for (key, service) in own {
            if config.settings.get(key).is_none() && config.services.contains(&service) {
                config.settings.set(key, endpoint.clone());
            }
        }
        if config.settings.get(kokuho_relay::TOKEN_FILE).is_none() {
            let file = credentials_dir.join("relay.token");
            config.settings.set(kokuho_relay::TOKEN_FILE, file.display().to_string());
        }
        let metrics = kokuho_runtime::metrics::Metrics::default();
        let failures = kokuho_store::Failures::default();
        let stats = kokuho_store::RunnerStats::default();
        metrics.register(kokuho_runtime::metrics::RunnerMetrics(stats.clone()));
        let mut services: Vec<Box<dyn Running>> = Vec::new();
        let mut any_bus = None;
        // Who acts: each service's lease, held under this instance's name (a second instance
        // of the system on the same log stands by with its projections warm).
        let holder = instance_id(&config.data_dir)?;
        let every = LEASE_TTL / 3;
        let mut leases = Vec::new();
        let mut acting_by_service = std::collections::BTreeMap::new();
        let cache_mib: u64 = config.settings.parsed(STORE_CACHE_MIB, "a number of MiB")?.unwrap_or(256);
        let cache_bytes = (cache_mib << 20) / registrations.len().max(1) as u64;
        for r in registrations {
            let shard = shard_of(&r, &config.settings)?;
            let bus = kokuho_bus::Bus::connect_as(&url, &user(r.name)?)
                .await
                .with_context(|| format!("connect to NATS as {}", r.name))?;
            any_bus.get_or_insert_with(|| bus.clone());
            for def in r.access.owns.iter().chain(&SHARED_STREAMS) {
                bus.require_stream(def).await.with_context(|| format!("start {}", r.name))?;
            }
            // Its own audit key only (a deployment mounts just that one).
            let audit_signer = match config.settings.get(AUDIT_SIGNING_KEYS) {
                Some(dir) if Path::new(dir).join(format!("{}.nk", r.name)).exists() => {
                    Some(kokuho_runtime::audit::Signer::load(Path::new(dir), r.name)?)
                }
                _ => None,
            };
            let lease = shard.dotted(r.name);
            let acting = match bus.hold_lease(&lease, holder.clone(), every).await {
                Ok((acting, task)) => {
                    leases.push((bus.clone(), r.name, lease, task));
                    acting_by_service.insert(r.name, acting.clone());
                    Some(acting)
                }
                Err(e) => {
                    tracing::warn!(service = r.name, error = %e, "No lease bucket (run `kokuho streams`): this instance acts alone");
                    None
                }
            };
            let env = Environment {
                audit_signer,
                bus,
                db: SledDb::open_with_cache(&config.data_dir.join("store").join(shard.dashed(r.name)), cache_bytes)?,
                registry: config.registry.clone(),
                credentials: credentials.clone(),
                runner: RunnerSettings {
                    failures: failures.clone(),
                    stats: stats.clone(),
                    acting,
                    shard,
                    ..RunnerSettings::default()
                },
                settings: config.settings.clone(),
                metrics: metrics.clone(),
                shard,
            };
            services.push((r.build)(env).await?);
        }
        let mut routes = tonic::service::RoutesBuilder::default();
        let mut names = Vec::new();
        for s in &services {
            names.extend(s.routes(&mut routes));
        }
        let health = kokuho_runtime::grpc::health(&names).await;
        routes.add_service(health.clone());
        let (reflection, reflection_alpha) = kokuho_runtime::grpc::reflection()?;
        routes.add_service(reflection);
        routes.add_service(reflection_alpha);
        // The operator's view of the process's projections (kokuho replay --verify).
        let ops = ops::Ops { stats: stats.clone(), credentials: credentials.clone() };
        let ops_stats = stats.clone();
        routes.add_service(kokuho_proto::ops::v1::ops_service_server::OpsServiceServer::new(ops));
        let timeout = config.settings.parsed(GRPC_TIMEOUT_SECONDS, "a number of seconds")?.unwrap_or(900);
        // S9: no request runs for ever, no connection opens without bound, dead peers are noticed.
        let mut server = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            server = server.tls_config(tls).context("the gRPC server's TLS")?;
        }
        let router = server
            .timeout(std::time::Duration::from_secs(timeout))
            .concurrency_limit_per_connection(256)
            // HTTP/2 flow control: a request waiting for intake's permit (S9) is not read, so its
            // data stays in the connection's window. With the connection's window a stream's
            // window times the streams it may have open, waiting uploads can never fill it and
            // starve the ones being read (many municipalities on one channel stalled for good
            // before: issue 14's benchmark). At most 8 MiB unread per connection.
            .max_concurrent_streams(MAX_STREAMS)
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(MAX_STREAMS * STREAM_WINDOW)
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(std::time::Duration::from_secs(10)))
            .add_routes(routes.routes());
        let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(kokuho_runtime::grpc::serve(router, listener, async move {
            let _ = stopped.await;
        }));
        std::fs::write(endpoint_file(&config.data_dir), &endpoint)?;
        std::fs::write(nats_url_file(&config.data_dir), &url)?;
        let mut side = Vec::new();
        if let Some(bus) = any_bus {
            side.push(side_server("consumer lag", |stopped| refresh_lag(bus, stats, stopped)));
        }
        let metrics_url = match config.settings.parsed::<SocketAddr>(METRICS_LISTEN, "an address")? {
            Some(listen) => {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("bind the metrics address {listen}"))?;
                let url = format!("http://{}/metrics", listener.local_addr()?);
                std::fs::write(config.data_dir.join("metrics"), &url)?;
                side.push(side_server("metrics", |stopped| async move {
                    kokuho_runtime::metrics::serve(listener, metrics, stopped).await.map_err(anyhow::Error::from)
                }));
                Some(url)
            }
            None => None,
        };
        if let Some(listen) = config.settings.parsed::<SocketAddr>(HEALTH_LISTEN, "an address")? {
            let (listener, addr) = kokuho_runtime::grpc::bind(listen).await.context("bind the health address")?;
            tracing::info!(%addr, "Health (plain gRPC, for probes)");
            let router = tonic::transport::Server::builder().add_service(health);
            side.push(side_server("health", |stopped| kokuho_runtime::grpc::serve(router, listener, stopped)));
        }
        tracing::info!(%endpoint, metrics = ?metrics_url, data_dir = %config.data_dir.display(), services = ?config.services, "kokuho is up");
        let client_tls = kokuho_runtime::tls::ClientTls::from_settings(&config.settings)?;
        let stats = ops_stats;
        Ok(Self {
            nats,
            failures,
            services,
            endpoint,
            client_tls,
            nats_url: url,
            stats,
            leases,
            acting: acting_by_service,
            holder,
            metrics_url,
            side,
            stop_server,
            server,
        })
    }

    /// What clients of this system trust and show, when it speaks TLS: its CA, and a client
    /// certificate it signed (the servers require one).
    pub fn client_tls(&self) -> Option<&kokuho_runtime::tls::ClientTls> {
        self.client_tls.as_ref()
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The NATS server the system uses (`kokuho replay` reads the log there).
    pub fn nats_url(&self) -> &str {
        &self.nats_url
    }

    /// Events applied since start by runner `name` (`<service>-<projection>`), for tests.
    pub fn applied(&self, name: &str) -> u64 {
        let all = self.stats.all();
        all.iter().find(|(n, _)| n == name).map_or(0, |(_, s)| s.applied.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Whether this instance acts for `service` (holds its lease).
    pub fn acts(&self, service: &str) -> bool {
        self.leases.iter().any(|(_, s, _, t)| *s == service && !t.is_finished())
            && self.acting.get(service).is_some_and(|a| *a.borrow())
    }

    /// Stops as a process that dies would, for tests: nothing is given up, so its leases lapse
    /// after their TTL instead of passing to a standby at once.
    pub async fn crash(mut self) {
        for (_, _, _, task) in self.leases.drain(..) {
            task.abort();
        }
        let _ = self.stop_server.send(());
        while let Some(service) = self.services.pop() {
            service.stop().await;
        }
    }

    /// The live store of projection `name` (`<service>-<projection>`), for tools and tests.
    pub fn projection_store(&self, name: &str) -> Option<kokuho_store::SledStore> {
        self.stats.all().into_iter().find(|(n, _)| n == name).and_then(|(_, s)| s.projection.get().map(|p| p.0.clone()))
    }

    /// Resolves when a task of a service failed for good (a panic, S9): the process should stop
    /// (a restart resumes from the stored positions) rather than serve a state that no longer
    /// moves.
    pub async fn failed(&self) -> String {
        self.failures.failed().await
    }

    /// Where `GET /metrics` is served, if anywhere.
    pub fn metrics_url(&self) -> Option<&str> {
        self.metrics_url.as_deref()
    }

    /// The service `S`, when this process runs it (tests and tools reach into it).
    pub fn service<S: Service>(&self) -> Option<&S> {
        self.services.iter().find_map(|s| s.as_any().downcast_ref::<S>())
    }

    /// Stops the server, the consumers, and the local nats-server.
    /// Each step is bounded: requests under way get a few seconds, runners theirs
    /// (`Runners::shutdown`), so a stop ends even when the nats-server went first (a Ctrl-C in a
    /// terminal reaches it too).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let patience = std::time::Duration::from_secs(5);
        let _ = self.stop_server.send(());
        let server = self.server.abort_handle();
        if tokio::time::timeout(patience, &mut self.server).await.is_err() {
            server.abort();
        }
        for (stop, mut task) in self.side.drain(..) {
            let _ = stop.send(());
            if tokio::time::timeout(patience, &mut task).await.is_err() {
                task.abort();
            }
        }
        while let Some(service) = self.services.pop() {
            service.stop().await;
        }
        // A graceful stop gives the leases up (its workflows have stopped): a standby acts at once.
        // Briefly: with the log gone the lease simply expires.
        for (bus, _, lease, task) in self.leases.drain(..) {
            task.abort();
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(2), bus.release_lease(&lease, &self.holder)).await;
        }
        if let Some(n) = self.nats.as_mut() {
            n.stop().await?;
        }
        Ok(())
    }
}

/// Spawns a server beside the API that runs until its switch is thrown; a failure is logged.
fn side_server<F, Fut>(what: &'static str, serve: F) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>)
where
    F: FnOnce(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let fut = serve(Box::pin(async move {
        let _ = stopped.await;
    }));
    let task = tokio::spawn(async move {
        if let Err(e) = fut.await {
            tracing::error!(server = what, error = %e, "A server beside the API stopped");
        }
    });
    (stop, task)
}

/// Every 5 s, each runner's lag from the server (messages not yet delivered or not yet
/// acknowledged), so that a runner that stopped moving shows its lag growing (metrics).
async fn refresh_lag(
    bus: kokuho_bus::Bus,
    stats: kokuho_store::RunnerStats,
    stopped: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
) -> anyhow::Result<()> {
    let mut stopped = stopped;
    loop {
        let known = stats.all();
        if let Ok(progress) = bus.progress().await {
            for (name, s) in &known {
                if let Some(p) = progress.iter().find(|p| &p.consumer == name) {
                    s.pending.store(p.pending + p.ack_pending, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
        tokio::select! {
            _ = &mut stopped => return Ok(()),
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
        }
    }
}
