//! continuity: from the periods all municipalities report, each person's prefecture-level
//! 資格取得日 / 資格喪失日 and the places where a move does not join up (rules.md C1–C10).
//!
//! Consumes `KOKUHO_IDENTITY` (workflow `evaluate`): linked records (`ChunkLinked`,
//! `CaseResolved`), merges, and the business calendar (`BusinessDay`, in the same order as the
//! chunks). For every person an event touches it updates the person's periods, evaluates them
//! with the pure rules of `kokuho-continuity-domain`, and appends one `PersonsEvaluated` with
//! the new states and the rows it sends: RS when a period's determination is first known or
//! changes (訂正 1), 判定区分 9 when it is withdrawn; RE A rows when an anomaly opens (状態 1)
//! and closes (状態 2); W004. At a day close every watched person (a move half missing, an
//! overlap) is evaluated again, and only then are window anomalies raised (T1).
//!
//! Keeps the `state` projection of its own stream (persons, the watch list, the business date,
//! the cursor); workflow `forward-rows` hands the rows to the outbox.

mod convert;
mod evaluate;
mod grpc;
mod state;

use anyhow::Context as _;
use kokuho_bus::Bus;
use kokuho_runtime::credentials::Credentials;
use kokuho_store::{ProjectionHandle, RunnerSettings, Runners, SledDb};

pub use grpc::{ContinuityGrpc, ContinuityServer, view};
pub use state::{evaluated_up_to, person_of_resident, person_state};

pub use kokuho_continuity_contract::STREAM as CONTINUITY;
pub(crate) use kokuho_continuity_contract::{EVALUATIONS_SUBJECT, Event, Events};

/// continuity's one error type; `kokuho_runtime::errors::status` turns it into the answer.
#[derive(Debug, thiserror::Error)]
pub enum ContinuityError {
    #[error("continuity's state: {0}")]
    Store(#[from] kokuho_store::StoreError),
}

impl kokuho_runtime::errors::ServiceError for ContinuityError {
    fn kind(&self) -> kokuho_runtime::errors::Kind {
        match self {
            ContinuityError::Store(_) => kokuho_runtime::errors::Kind::Internal,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Config {
    pub runner: RunnerSettings,
    /// Who may query: each municipality for its own residents.
    pub credentials: Credentials,
    pub audit_signer: Option<kokuho_runtime::audit::Signer>,
}

pub struct App {
    state: ProjectionHandle,
    credentials: Credentials,
    auditor: kokuho_runtime::audit::Auditor,
    runners: Runners,
}

impl App {
    pub async fn build(config: Config, bus: Bus, db: &SledDb) -> anyhow::Result<Self> {
        let bus_for_audit = bus.clone();
        let mut runners = Runners::new("continuity", bus.clone(), db.clone(), config.runner.clone());
        let state = runners.projection(state::ContinuityState, "continuity-state")?;
        runners.workflow(evaluate::Evaluate { bus: bus.clone(), state: state.clone() })?;
        runners.workflow(kokuho_outbox::ForwardRows { bus, source: evaluate::ContinuityRows })?;
        let auditor = kokuho_runtime::audit::Auditor::new(bus_for_audit, "continuity", config.audit_signer)
            .await
            .context("audit stream")?;
        Ok(Self { state, credentials: config.credentials, auditor, runners })
    }

    /// The gRPC service of continuity.
    pub fn service(&self) -> ContinuityServer {
        grpc::server(self.state.clone(), self.credentials.clone(), self.auditor.clone())
    }

    pub fn state(&self) -> &ProjectionHandle {
        &self.state
    }
}

impl kokuho_runtime::service::Service for App {
    const NAME: &'static str = "continuity";

    /// It writes its stream and its rows; it reads identity's public events (not the numbers
    /// beside them) and nothing of intake's.
    const NATS: kokuho_bus::Access = kokuho_bus::Access {
        owns: &[CONTINUITY],
        reads: &[],
        reads_subject: &[kokuho_identity_contract::public(&["continuity-evaluate"])],
        appends: &[kokuho_outbox::ROWS_SUBJECTS],
    };

    async fn build(env: kokuho_runtime::service::Environment) -> anyhow::Result<Self> {
        let config = Config { runner: env.runner, credentials: env.credentials, audit_signer: env.audit_signer };
        App::build(config, env.bus, &env.db).await
    }

    fn routes(&self, routes: &mut tonic::service::RoutesBuilder) -> Vec<&'static str> {
        use tonic::server::NamedService as _;
        routes.add_service(self.service());
        vec![ContinuityServer::NAME]
    }

    async fn stop(self) {
        self.runners.shutdown().await;
    }
}
