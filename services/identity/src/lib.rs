//! identity: turns municipal records into prefecture-wide persons (rules.md I1–I7). The only
//! place where a 個人番号 is ever readable (security.md S1).
//!
//! Consumes `KOKUHO_INTAKE` (workflow `link-records`): for each chunk of accepted KK records it
//! opens the sealed numbers with identity's keys, decides the links with the pure rules of
//! `kokuho-identity-domain` over its own state, and appends one `ChunkLinked` event to
//! `KOKUHO_IDENTITY` (subject `kokuho.identity.chunks`, expected-last-subject-sequence: one
//! writer at a time, each intake chunk once). What it publishes is pseudonymous: IDs and the
//! record's other fields; numbers only sealed at rest under identity's storage key.
//!
//! Keeps the `state` projection of its own stream (persons, the HMAC index, links, IDs, the
//! review queue) in a sled tree named after the current key, so a key rotation rebuilds the
//! index from the log. Workflow `forward-rows` hands RI and RE rows to the outbox.

mod convert;
mod grpc;
mod link;
mod service;
mod state;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kokuho_bus::Bus;
use kokuho_crypto::Vault;
use kokuho_runtime::credentials::Credentials;
use kokuho_store::{ProjectionHandle, RunnerSettings, Runners, SledDb};

pub use kokuho_identity_contract::STREAM as IDENTITY;
pub(crate) use kokuho_identity_contract::{CHUNKS_SUBJECT, Event, Events, NUMBERS_SUBJECT};

#[derive(Debug, Clone)]
pub struct Config {
    pub vault: Arc<Vault>,
    pub runner: RunnerSettings,
    /// Who may call: municipalities (lookups), operators (review), relay (release).
    pub credentials: Credentials,
    /// identity's audit signing key (its accesses and the number releases, S8).
    pub audit_signer: Option<kokuho_runtime::audit::Signer>,
    /// Every service's public audit key (verify, S8).
    pub audit_keys: kokuho_runtime::audit::AuditKeys,
    /// Most 個人番号 released per minute (S5; [`RELEASE_PER_MINUTE`]).
    pub releases_per_minute: u32,
    pub metrics: kokuho_runtime::metrics::Metrics,
}

/// The setting with the most 個人番号 identity releases per minute (default 300,000: above
/// relay's measured 2,053 a second at full speed, far below a register drained in minutes).
pub const RELEASE_PER_MINUTE: &str = "release_per_minute";

/// A running identity.
pub struct App {
    state: ProjectionHandle,
    identity: Identity,
    credentials: Credentials,
    auditor: kokuho_runtime::audit::Auditor,
    runners: Runners,
}

/// The setting with the directory of every service's public audit key (`<service>.pub`), with
/// which identity verifies the audit log (S8).
pub const AUDIT_PUBLIC_KEYS: &str = "audit_public_keys";

pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

impl App {
    pub async fn build(config: Config, bus: Bus, db: &SledDb) -> anyhow::Result<Self> {
        let mut runners = Runners::new("identity", bus.clone(), db.clone(), config.runner.clone());
        // The index is keyed by the current key: a rotation starts a new tree, rebuilt from the log.
        let state = runners.projection(
            state::IdentityState { vault: config.vault.clone() },
            &format!("identity-state-{}", config.vault.current_id()),
        )?;
        runners.workflow(link::LinkRecords { bus: bus.clone(), state: state.clone(), vault: config.vault.clone() })?;
        runners.workflow(kokuho_outbox::ForwardRows { bus: bus.clone(), source: link::IdentityRows })?;
        let auditor = kokuho_runtime::audit::Auditor::new(bus.clone(), "identity", config.audit_signer)
            .await
            .context("audit stream")?;
        let releases = Arc::new(service::ReleaseLimit::per_minute(config.releases_per_minute));
        config.metrics.register(service::ReleaseMetrics(releases.clone()));
        let identity = Identity {
            bus,
            state: state.clone(),
            vault: config.vault,
            auditor: auditor.clone(),
            audit_keys: Arc::new(config.audit_keys),
            releases,
        };
        Ok(Self { state, identity, credentials: config.credentials, auditor, runners })
    }

    /// identity's operations (the gRPC service calls them).
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The gRPC service of identity.
    pub fn service(&self) -> IdentityServer {
        grpc::server(self.identity.clone(), self.credentials.clone(), self.auditor.clone())
    }

    /// The state projection (queries and tests).
    pub fn state(&self) -> &ProjectionHandle {
        &self.state
    }
}

impl kokuho_runtime::service::Service for App {
    const NAME: &'static str = "identity";

    /// It writes its stream and its rows; it reads the intake stream, the chunks' sealed numbers
    /// (S7: identity alone) and the audit stream (verify).
    const NATS: kokuho_bus::Access = kokuho_bus::Access {
        owns: &[IDENTITY],
        reads: &[
            kokuho_intake_contract::STREAM.name,
            kokuho_intake_contract::SEALED.name,
            kokuho_runtime::audit::AUDIT.name,
        ],
        reads_subject: &[],
        appends: &[kokuho_outbox::ROWS_SUBJECTS],
    };

    async fn build(env: kokuho_runtime::service::Environment) -> anyhow::Result<Self> {
        let keys = env.settings.require("identity_keys", "identity keys (a directory)")?;
        let vault = Vault::load(std::path::Path::new(keys)).with_context(|| format!("identity keys in {keys}"))?;
        let keys = env.settings.require(AUDIT_PUBLIC_KEYS, "every service's public audit key (a directory)")?;
        let audit_keys = kokuho_runtime::audit::AuditKeys::load(std::path::Path::new(keys))?;
        let config = Config {
            vault: Arc::new(vault),
            runner: env.runner,
            credentials: env.credentials,
            audit_signer: env.audit_signer,
            audit_keys,
            releases_per_minute: env.settings.parsed(RELEASE_PER_MINUTE, "a number of releases")?.unwrap_or(300_000),
            metrics: env.metrics,
        };
        App::build(config, env.bus, &env.db).await
    }

    fn routes(&self, routes: &mut tonic::service::RoutesBuilder) -> Vec<&'static str> {
        use tonic::server::NamedService as _;
        routes.add_service(self.service());
        vec![IdentityServer::NAME]
    }

    async fn stop(self) {
        self.runners.shutdown().await;
    }
}

pub use grpc::{IdentityGrpc, IdentityServer};
pub use service::{Action, Identity, IdentityError};
pub use state::{Held, LinkView, held_cases, link_of};
