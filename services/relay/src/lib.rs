//! relay: keeps each municipality's partition (委託区画) of the intermediate server up to date
//! with 加入者情報 (rules.md R1–R6), and answers provision requests of other institutions
//! (P1, P2).
//!
//! Consumes `KOKUHO_INTAKE` (projection `cards`: household states, for 記号番号), `KOKUHO_IDENTITY`
//! (projection `persons`: links, numbers present, held records, merges) and `KOKUHO_CONTINUITY`
//! (projection `periods`: 被保険者 periods with their prefecture-level dates). Three deciding
//! workflows (`from-intake`, `from-identity`, `from-continuity`) plan records onto its own
//! stream `KOKUHO_RELAY` (projection `ledger`); the delivery worker sends them to the server and
//! appends its answers; `forward-rows` hands RM and R rows to the outbox. The rules are
//! `kokuho-relay-domain`'s.

mod deliver;
mod grpc;
mod inputs;
mod liveness;
mod plan;
mod state;

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use kokuho_ids::Registry;
use kokuho_relay_domain::provision::Policy;
use kokuho_runtime::audit::Auditor;
use kokuho_runtime::credentials::Credentials;
use kokuho_runtime::service::{Environment, Service};
use kokuho_store::Runners;

pub use grpc::{RelayGrpc, RelayServer};

/// relay's one error type; `kokuho_runtime::errors::status` turns it into the answer.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
    #[error("relay's state: {0}")]
    Store(#[from] kokuho_store::StoreError),
}

impl kokuho_runtime::errors::ServiceError for RelayError {
    fn kind(&self) -> kokuho_runtime::errors::Kind {
        use kokuho_runtime::errors::Kind;
        match self {
            RelayError::Invalid(_) => Kind::Invalid,
            RelayError::Unavailable(_) => Kind::Unavailable,
            RelayError::Internal(_) | RelayError::Store(_) => Kind::Internal,
        }
    }
}

/// identity's gRPC endpoint (the number release, R6).
pub const IDENTITY_ENDPOINT: &str = "identity_endpoint";
/// The intermediate server's gRPC endpoint (the simulator's under `kokuho up`).
pub const MIDSERVER_ENDPOINT: &str = "midserver_endpoint";
/// The file holding relay's own credential (its token).
pub const TOKEN_FILE: &str = "relay_token_file";
/// Most operations sent and not yet answered at a time (default 2,000).
pub const IN_FLIGHT: &str = "relay_in_flight";
/// Seconds a partition may stay still while records wait before R05 is raised (default 900).
pub const STALL_SECONDS: &str = "relay_stall_seconds";
/// This instance is shard `k/n` of relay (kokuho_bus::shard); default: the whole.
pub const SHARD: &str = "relay_shard";
/// The provision policy (別紙2) file; default: the one shipped in the binary.
pub const POLICY: &str = "provision_policy";

/// The policy shipped with the project (config/provision-policy.csv).
pub const SHIPPED_POLICY: &str = include_str!("../../../config/provision-policy.csv");

/// What this instance owns of relay (kokuho_bus::shard): its municipalities, and its subjects of
/// relay's stream, which it alone writes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Part {
    pub(crate) shard: kokuho_bus::Shard,
    /// Its `RecordsPlanned` (`kokuho.relay.plans`, `.s2of3` after it for a shard).
    pub(crate) plans: &'static str,
    /// Its `RecordsDelivered` and `PartitionStall`.
    pub(crate) deliveries: &'static str,
    /// What its plans' appends expect the last sequence of: a shard's own subjects; the whole
    /// stream (`None`) for the one instance.
    pub(crate) scope: Option<&'static str>,
}

impl Part {
    /// Made once each time relay starts; the few bytes of its names live as long as the process.
    fn new(shard: kokuho_bus::Shard) -> Self {
        use kokuho_relay_contract::{DELIVERIES_SUBJECT, PLANS_SUBJECT};
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        Self {
            shard,
            plans: leak(shard.dotted(PLANS_SUBJECT)),
            deliveries: leak(shard.dotted(DELIVERIES_SUBJECT)),
            scope: (!shard.is_whole()).then(|| leak(shard.dotted("kokuho.relay.*"))),
        }
    }

    pub(crate) fn owns(&self, municipality: &str) -> bool {
        self.shard.owns(municipality)
    }

    /// The events on `subject` are this instance's.
    pub(crate) fn writes(&self, subject: &str) -> bool {
        subject == self.plans || subject == self.deliveries
    }

    /// The registry's municipalities this instance owns.
    pub(crate) fn municipalities<'a>(&self, registry: &'a Registry) -> impl Iterator<Item = String> + 'a {
        let shard = self.shard;
        registry.municipalities().map(|m| m.code.to_string()).filter(move |m| shard.owns(m))
    }
}

/// A running relay.
pub struct App {
    context: Arc<plan::Context>,
    health: Arc<Mutex<deliver::Health>>,
    policy: Arc<Policy>,
    credentials: Credentials,
    auditor: Auditor,
    runners: Runners,
    /// Stops the delivery worker (a supervised task of `runners`).
    stop: tokio::sync::watch::Sender<bool>,
}

impl Service for App {
    const NAME: &'static str = "relay";

    /// It writes its stream and its rows; it reads intake's and continuity's streams and
    /// identity's public events.
    const NATS: kokuho_bus::Access = kokuho_bus::Access {
        owns: &[kokuho_relay_contract::STREAM],
        reads: &[kokuho_intake_contract::STREAM.name, kokuho_continuity_contract::STREAM.name],
        reads_subject: &[kokuho_identity_contract::public(&["relay-persons", "relay-from-identity"])],
        appends: &[kokuho_outbox::ROWS_SUBJECTS],
    };

    /// Each partition of the intermediate server is one municipality's (R1–R5): shards own
    /// municipalities by their code.
    const SHARDABLE: bool = true;

    async fn build(env: Environment) -> anyhow::Result<Self> {
        let policy_text = match env.settings.get(POLICY) {
            Some(path) => std::fs::read_to_string(path).with_context(|| format!("read {POLICY} {path}"))?,
            None => SHIPPED_POLICY.to_string(),
        };
        let policy = Arc::new(Policy::parse(&policy_text).map_err(|e| anyhow::anyhow!("{POLICY}: {e}"))?);
        let identity = env.settings.require(IDENTITY_ENDPOINT, "identity's gRPC endpoint")?.to_string();
        let midserver =
            env.settings.require(MIDSERVER_ENDPOINT, "the intermediate server's gRPC endpoint")?.to_string();
        let token_file = env.settings.require(TOKEN_FILE, "the file with relay's credential")?;
        let token = std::fs::read_to_string(token_file)
            .with_context(|| format!("read relay's credential {token_file}"))?
            .trim()
            .to_string();
        // The CA that signed identity's and the intermediate server's certificates (TLS).
        let tls = kokuho_runtime::tls::ClientTls::from_settings(&env.settings)?;
        let settings = deliver::Settings {
            in_flight: env.settings.parsed(IN_FLIGHT, "a number of operations")?.unwrap_or(2_000),
            stall_after: Duration::from_secs(env.settings.parsed(STALL_SECONDS, "a number of seconds")?.unwrap_or(900)),
            call_timeout: Duration::from_secs(10),
        };
        let mut runners = Runners::new(Self::NAME, env.bus.clone(), env.db.clone(), env.runner.clone());
        let cards = runners.projection(inputs::Cards, "relay-cards")?;
        let persons = runners.projection(inputs::Persons, "relay-persons")?;
        let periods = runners.projection(inputs::Periods, "relay-periods")?;
        let part = Part::new(env.shard);
        let ledger = runners.projection(state::Ledger { part }, "relay-ledger")?;
        let inputs = plan::Inputs { cards, persons, periods };
        let context = Arc::new(plan::Context {
            bus: env.bus.clone(),
            ledger: ledger.clone(),
            inputs,
            registry: env.registry.clone(),
            part,
        });
        runners.workflow(plan::Plan::<plan::FromIntake> { context: context.clone(), input: PhantomData })?;
        runners.workflow(plan::Plan::<plan::FromIdentity> { context: context.clone(), input: PhantomData })?;
        runners.workflow(plan::Plan::<plan::FromContinuity> { context: context.clone(), input: PhantomData })?;
        runners.workflow(kokuho_outbox::ForwardRows { bus: env.bus.clone(), source: plan::RelayRows { part } })?;
        let health = Arc::new(Mutex::new(deliver::Health::default()));
        let worker = deliver::Worker {
            bus: env.bus.clone(),
            ledger,
            peers: deliver::Peers::new(&identity, &midserver, token, tls.as_ref())?,
            settings,
            registry: env.registry.clone(),
            part,
            health: health.clone(),
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        runners.spawn("delivery", worker.run(stopped));
        env.metrics.register(liveness::Collector { context: context.clone(), health: health.clone() });
        let auditor = Auditor::new(env.bus, Self::NAME, env.audit_signer)
            .await
            .context("audit stream")?
            .on_chain(part.shard.dotted(&kokuho_runtime::audit::subject(Self::NAME)));
        Ok(Self { context, health, policy, credentials: env.credentials, auditor, runners, stop })
    }

    fn routes(&self, routes: &mut tonic::service::RoutesBuilder) -> Vec<&'static str> {
        use tonic::server::NamedService as _;
        routes.add_service(RelayServer::new(RelayGrpc {
            context: self.context.clone(),
            health: self.health.clone(),
            policy: self.policy.clone(),
            credentials: self.credentials.clone(),
            auditor: self.auditor.clone(),
        }));
        vec![RelayServer::NAME]
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        self.runners.shutdown().await;
    }
}
