//! kogaku: households' 高額 months and, with the rest of issue 10, continuation candidates and
//! the count handover (rules.md H1–H5, K1–K5).
//!
//! Consumes `KOKUHO_INTAKE` (projection `months`): the KG records in force per (municipality,
//! 世帯番号, 診療年月, 該当区分); and (projection `households`) the household states by
//! 異動年月日, for H2's householders. Consumes `KOKUHO_IDENTITY` (projection `members`): the
//! linked KK records by household, with their persons (merges followed, I5), for H2's members.
//! Consumes `KOKUHO_CONTINUITY` (projection `pairs`): every person's C2 pairs now, for H1. Answers K5 over gRPC (`KogakuService.CountMonths`) for the
//! caller's own municipality, audited. The rules are `kokuho-kogaku-domain`'s.

mod candidates;
mod convert;
mod evaluate;
mod grpc;
mod state;

use std::marker::PhantomData;
use std::sync::Arc;

use anyhow::Context as _;
use kokuho_runtime::audit::Auditor;
use kokuho_runtime::credentials::Credentials;
use kokuho_runtime::service::{Environment, Service};
use kokuho_store::{ProjectionHandle, Runners};

pub use grpc::{KogakuGrpc, KogakuServer};

/// kogaku's one error type; `kokuho_runtime::errors::status` turns it into the answer.
#[derive(Debug, thiserror::Error)]
pub enum KogakuError {
    #[error("{0}")]
    Invalid(String),
    /// A decision the state refuses (E011).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
    #[error("kogaku's state: {0}")]
    Store(#[from] kokuho_store::StoreError),
}

impl kokuho_runtime::errors::ServiceError for KogakuError {
    fn kind(&self) -> kokuho_runtime::errors::Kind {
        use kokuho_runtime::errors::Kind;
        match self {
            KogakuError::Invalid(_) => Kind::Invalid,
            KogakuError::Refused(_) => Kind::Refused,
            KogakuError::NotFound(_) => Kind::NotFound,
            KogakuError::Unavailable(_) => Kind::Unavailable,
            KogakuError::Internal(_) | KogakuError::Store(_) => Kind::Internal,
        }
    }
}

/// The setting that switches on auto-confirmation of reason 11 candidates (H3): `true`; off
/// by default.
pub const AUTO_CONFIRM: &str = "kogaku_auto_confirm";

/// A running kogaku.
pub struct App {
    months: ProjectionHandle,
    households: ProjectionHandle,
    members: ProjectionHandle,
    pairs: ProjectionHandle,
    context: Arc<evaluate::Context>,
    credentials: Credentials,
    auditor: Auditor,
    runners: Runners,
}

impl App {
    /// The `months` projection (queries and tests).
    pub fn months(&self) -> &ProjectionHandle {
        &self.months
    }

    /// The household state of (municipality, 世帯番号) in force on `date` (H2: the householder
    /// on D − 1 at A, on D at B).
    pub fn household_on(
        &self,
        municipality: &str,
        household: &str,
        date: kokuho_ids::Date,
    ) -> Result<Option<kokuho_kogaku_domain::households::HouseholdState>, KogakuError> {
        let states = state::household_states(self.households.store(), municipality, household)?;
        Ok(kokuho_kogaku_domain::households::in_force(&states, date).cloned())
    }

    /// H1: every candidate (move group and source household) with its movers, from the pairs
    /// continuity published.
    pub fn candidates(
        &self,
    ) -> Result<
        std::collections::BTreeMap<kokuho_kogaku_domain::CandidateKey, std::collections::BTreeSet<String>>,
        KogakuError,
    > {
        Ok(kokuho_kogaku_domain::candidates(&state::pairs(self.pairs.store())?))
    }

    /// Members of (municipality, 世帯番号) on `date`, as persons, each with whether they are
    /// 被保険者 there (H2).
    pub fn members_on(
        &self,
        municipality: &str,
        household: &str,
        date: kokuho_ids::Date,
    ) -> Result<std::collections::BTreeMap<String, bool>, KogakuError> {
        let records = state::member_records(self.members.store(), municipality, household)?;
        Ok(kokuho_kogaku_domain::households::members_with_kind(&records, household, date))
    }
}

impl Service for App {
    const NAME: &'static str = "kogaku";

    /// It writes its stream and its rows; it reads intake's and continuity's streams and
    /// identity's public events.
    const NATS: kokuho_bus::Access = kokuho_bus::Access {
        owns: &[kokuho_kogaku_contract::STREAM],
        reads: &[kokuho_intake_contract::STREAM.name, kokuho_continuity_contract::STREAM.name],
        reads_subject: &[kokuho_identity_contract::public(&["kogaku-members", "kogaku-from-identity"])],
        appends: &[kokuho_outbox::ROWS_SUBJECTS],
    };

    /// The streams kogaku reads belong to other services, which ensure them; until they exist
    /// the runners retry (as continuity's do), so `kokuho serve kogaku` may start first.
    async fn build(env: Environment) -> anyhow::Result<Self> {
        let auto_confirm = env.settings.parsed(AUTO_CONFIRM, "true or false")?.unwrap_or(false);
        let mut runners = Runners::new(Self::NAME, env.bus.clone(), env.db.clone(), env.runner.clone());
        let months = runners.projection(state::Months, "kogaku-months")?;
        let households = runners.projection(state::Households, "kogaku-households")?;
        let members = runners.projection(state::Members, "kogaku-members")?;
        let pairs = runners.projection(state::Pairs, "kogaku-pairs")?;
        let state = runners.projection(candidates::Candidates, "kogaku-candidates")?;
        let inputs = evaluate::Inputs {
            months: months.clone(),
            households: households.clone(),
            members: members.clone(),
            pairs: pairs.clone(),
        };
        let context = Arc::new(evaluate::Context { bus: env.bus.clone(), state, inputs, auto_confirm });
        runners
            .workflow(evaluate::Evaluate::<evaluate::FromIntake> { context: context.clone(), input: PhantomData })?;
        runners
            .workflow(evaluate::Evaluate::<evaluate::FromIdentity> { context: context.clone(), input: PhantomData })?;
        runners.workflow(evaluate::Evaluate::<evaluate::FromContinuity> {
            context: context.clone(),
            input: PhantomData,
        })?;
        runners.workflow(kokuho_outbox::ForwardRows { bus: env.bus.clone(), source: evaluate::KogakuRows })?;
        let auditor = Auditor::new(env.bus, Self::NAME, env.audit_signer).await.context("audit stream")?;
        Ok(Self { months, households, members, pairs, context, credentials: env.credentials, auditor, runners })
    }

    fn routes(&self, routes: &mut tonic::service::RoutesBuilder) -> Vec<&'static str> {
        use tonic::server::NamedService as _;
        routes.add_service(grpc::server(self.context.clone(), self.credentials.clone(), self.auditor.clone()));
        vec![KogakuServer::NAME]
    }

    async fn stop(self) {
        self.runners.shutdown().await;
    }
}
