//! history: what the log says about a person, for the auditor, the operator on call and the
//! clerk at the desk (issue 13): every fact in order — records as submitted (masked), links,
//! conflicts and merges, periods, the rows each municipality was sent (RS, RI, RE, RM),
//! continuation candidates and decisions, what relay built and delivered, provision requests,
//! and every access from the audit log — each with its business date, event id and rule ids.
//!
//! It reads, and never writes to, the streams of every other context: intake's, identity's
//! public subject (never the numbers, S7), continuity's, kogaku's, relay's, the results stream
//! and the audit stream. One projection per stream ([`index::Index`] of a [`index::Source`])
//! notes where each resident's and person's events are; a query reads those events again from
//! the log through the same source (identity's facts alone are stored whole, S7). So the index
//! is a projection of the log like any other: `kokuho replay --verify --service history`
//! checks it against a rebuild. Queries are audited (S8): the next history shows who looked.

mod grpc;
mod index;
mod query;
mod sources;

use anyhow::Context as _;
use kokuho_bus::Bus;
use kokuho_runtime::credentials::Credentials;
use kokuho_runtime::service::{Environment, Service};
use kokuho_store::{ProjectionHandle, Runners, StoreError};

pub use grpc::{HistoryGrpc, HistoryServer};
use index::Index;

/// history's one error type.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history's state: {0}")]
    Store(#[from] StoreError),
    #[error("the log: {0}")]
    Log(#[from] kokuho_bus::BusError),
    #[error("{stream} no longer holds event {seq}, which history's index names")]
    Missing { stream: &'static str, seq: u64 },
    #[error("event {seq} of {stream} no longer reads as it did: {why}")]
    Unreadable { stream: &'static str, seq: u64, why: String },
}

impl kokuho_runtime::errors::ServiceError for HistoryError {
    fn kind(&self) -> kokuho_runtime::errors::Kind {
        match self {
            HistoryError::Log(_) => kokuho_runtime::errors::Kind::Unavailable,
            HistoryError::Store(_) | HistoryError::Missing { .. } | HistoryError::Unreadable { .. } => {
                kokuho_runtime::errors::Kind::Internal
            }
        }
    }
}

/// How long a query waits for history to read what the log holds now.
const CATCH_UP: std::time::Duration = std::time::Duration::from_secs(5);

/// The projections, one per stream read.
#[derive(Clone)]
pub(crate) struct Stores {
    intake: ProjectionHandle,
    identity: ProjectionHandle,
    continuity: ProjectionHandle,
    kogaku: ProjectionHandle,
    relay: ProjectionHandle,
    results: ProjectionHandle,
    audit: ProjectionHandle,
}

impl Stores {
    fn all(&self) -> [&ProjectionHandle; 7] {
        [&self.intake, &self.identity, &self.continuity, &self.kogaku, &self.relay, &self.results, &self.audit]
    }

    /// Waits a little for every projection to reach the end of its stream as it is now: a
    /// history answered right after a submission holds what the submission caused. False if one
    /// is still behind (a load in progress), or the log cannot be asked.
    async fn caught_up(&self, bus: &Bus) -> bool {
        for handle in self.all() {
            let Ok(last) = handle.head(bus).await else { return false };
            if !handle.wait_for(last, CATCH_UP).await {
                return false;
            }
        }
        true
    }

    /// Every fact of the query's subject the caller may see, in order.
    async fn history(
        &self,
        bus: &Bus,
        q: &query::Query,
    ) -> Result<kokuho_proto::history::v1::HistoryResponse, HistoryError> {
        let identity = self.identity.store();
        let wanted = query::wanted(identity, q)?;
        let mut facts = query::stored(identity, &wanted)?;
        facts.extend(query::from_log(&sources::Intake, self.intake.store(), bus, &wanted).await?);
        facts.extend(query::from_log(&sources::Continuity, self.continuity.store(), bus, &wanted).await?);
        facts.extend(query::from_log(&sources::Kogaku, self.kogaku.store(), bus, &wanted).await?);
        facts.extend(query::from_log(&sources::Relay, self.relay.store(), bus, &wanted).await?);
        facts.extend(query::from_log(&sources::Results, self.results.store(), bus, &wanted).await?);
        facts.extend(query::from_log(&sources::Audit, self.audit.store(), bus, &wanted).await?);
        let facts = query::arrange(facts, q, self.intake.store())?;
        Ok(kokuho_proto::history::v1::HistoryResponse {
            persons: wanted.persons.into_iter().collect(),
            facts,
            complete: true,
        })
    }

    /// Why a resident is linked as it is (identity's facts).
    fn explain_link(
        &self,
        municipality: &str,
        resident: &str,
        viewer: Option<&str>,
    ) -> Result<kokuho_proto::history::v1::ExplainLinkResponse, HistoryError> {
        Ok(query::explain_link(self.identity.store(), self.intake.store(), municipality, resident, viewer)?)
    }
}

pub struct App {
    bus: Bus,
    stores: Stores,
    credentials: Credentials,
    auditor: kokuho_runtime::audit::Auditor,
    runners: Runners,
}

impl App {
    pub async fn build(env: Environment) -> anyhow::Result<Self> {
        let mut runners = Runners::new(Self::NAME, env.bus.clone(), env.db.clone(), env.runner.clone());
        let stores = Stores {
            intake: runners.projection(Index(sources::Intake), "history-intake")?,
            identity: runners.projection(Index(sources::Identity), "history-identity")?,
            continuity: runners.projection(Index(sources::Continuity), "history-continuity")?,
            kogaku: runners.projection(Index(sources::Kogaku), "history-kogaku")?,
            relay: runners.projection(Index(sources::Relay), "history-relay")?,
            results: runners.projection(Index(sources::Results), "history-results")?,
            audit: runners.projection(Index(sources::Audit), "history-audit")?,
        };
        let auditor = audit(env.bus.clone(), env.audit_signer).await?;
        Ok(Self { bus: env.bus, stores, credentials: env.credentials, auditor, runners })
    }

    /// The gRPC service of history.
    pub fn service(&self) -> HistoryServer {
        grpc::server(self.bus.clone(), self.stores.clone(), self.credentials.clone(), self.auditor.clone())
    }
}

async fn audit(
    bus: Bus,
    signer: Option<kokuho_runtime::audit::Signer>,
) -> anyhow::Result<kokuho_runtime::audit::Auditor> {
    kokuho_runtime::audit::Auditor::new(bus, App::NAME, signer).await.context("audit stream")
}

impl Service for App {
    const NAME: &'static str = "history";

    /// It reads every stream but the sealed numbers and identity's numbers (S7), owns none and
    /// writes nothing but its audit chain.
    const NATS: kokuho_bus::Access = kokuho_bus::Access {
        owns: &[],
        reads: &[
            kokuho_intake_contract::STREAM.name,
            kokuho_continuity_contract::STREAM.name,
            kokuho_kogaku_contract::STREAM.name,
            kokuho_relay_contract::STREAM.name,
            kokuho_outbox::RESULTS.name,
            kokuho_runtime::audit::AUDIT.name,
        ],
        reads_subject: &[kokuho_identity_contract::public(&["history-identity"])],
        appends: &[],
    };

    async fn build(env: Environment) -> anyhow::Result<Self> {
        App::build(env).await
    }

    fn routes(&self, routes: &mut tonic::service::RoutesBuilder) -> Vec<&'static str> {
        use tonic::server::NamedService as _;
        routes.add_service(self.service());
        vec![HistoryServer::NAME]
    }

    async fn stop(self) {
        self.runners.shutdown().await;
    }
}
