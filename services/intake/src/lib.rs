//! intake: where municipalities' files enter the system, and their results leave it.
//!
//! Owns the intake stream (`KOKUHO_INTAKE`): per submission either `SubmissionRejected`, or
//! `SubmissionAccepted` followed by its `RecordsAccepted` chunks in one atomic batch (all
//! accepted records of a submission become visible together or not at all); and the business
//! calendar (`BusinessDateSet`, `DayClosed`, rules.md T1).
//!
//! Consumes its own stream into the `state` projection (what later submissions are checked
//! against, receipts, business date) and into the `forward-rows` workflow, which hands the E
//! and W rows to the outbox. Hosts the outbox (`kokuho-outbox`) that municipalities fetch
//! their result files from.
//!
//! gRPC: `kokuho.intake.v1.IntakeService` (submit, status, close-day, wait) and
//! `kokuho.results.v1.ResultService` (fetch, acknowledge).

mod convert;
mod forward;
mod grpc;
mod state;
mod submit;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kokuho_bus::event;
use kokuho_bus::{Append, Bus, BusErrorKind};
use kokuho_crypto::PublicKey;
use kokuho_ids::Registry;
use kokuho_outbox::{Outbox, OutboxProjection, RESULTS};
use kokuho_proto::intake::v1 as pb;
use kokuho_store::{ProjectionHandle, RunnerSettings, Runners, SledDb};
use tokio::sync::Mutex;

pub use convert::number_context;
pub use grpc::{IntakeGrpc, IntakeServer, ResultGrpc, ResultServer};
pub use submit::{Submission, SubmitFile};

pub use kokuho_intake_contract::STREAM as INTAKE;
pub(crate) use kokuho_intake_contract::{CALENDAR_SUBJECT, Event, Events, records_subject, submission_subject};

/// Bounds on what one submission may hold (security.md S9).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_files: usize,
    pub max_file_bytes: usize,
    pub max_line_bytes: usize,
    pub max_records: usize,
    /// Submissions received and decided at a time, across municipalities: what intake holds in
    /// memory is at most this many submissions (`intake_max_submissions`).
    pub max_submissions: usize,
    /// Small submissions (at most [`SMALL_BYTES`] of files) received and decided at a time,
    /// beside the large ones (`intake_small_submissions`).
    pub small_submissions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_files: 8,
            max_file_bytes: 256 << 20,
            max_line_bytes: 64 << 10,
            max_records: 400_000,
            max_submissions: 4,
            small_submissions: 64,
        }
    }
}

/// A submission is small up to this many bytes (its files together): 64 of them hold 64 MiB.
pub const SMALL_BYTES: usize = 1 << 20;
/// The setting of [`Limits::small_submissions`].
pub const SMALL_SUBMISSIONS: &str = "intake_small_submissions";

/// The setting of [`Limits::max_submissions`].
pub const MAX_SUBMISSIONS: &str = "intake_max_submissions";

/// intake's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub registry: Arc<Registry>,
    /// identity's public key: 個人番号 are sealed for it before anything is appended (S2).
    pub identity_key: PublicKey,
    pub limits: Limits,
    /// The first business date of a new log (rules.md T1); ignored when the log has one.
    pub initial_business_date: Option<u32>,
    pub runner: RunnerSettings,
    /// Who may call (security.md S5): each municipality for itself, operators for the calendar.
    pub credentials: kokuho_runtime::credentials::Credentials,
    /// intake's audit signing key (S8).
    pub audit_signer: Option<kokuho_runtime::audit::Signer>,
}

/// intake's one error type; `kokuho_runtime::errors::status` turns it into the answer.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    NotFound(String),
    /// A submission over the limits (S9), refused before it got a receipt.
    #[error("{0}")]
    TooLarge(String),
    /// The caller may not do this (S5).
    #[error("{0}")]
    Denied(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("the log: {0}")]
    Log(#[from] kokuho_bus::BusError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl kokuho_runtime::errors::ServiceError for AppError {
    fn kind(&self) -> kokuho_runtime::errors::Kind {
        use kokuho_runtime::errors::Kind;
        match self {
            AppError::Invalid(_) => Kind::Invalid,
            AppError::Refused(_) => Kind::Refused,
            AppError::NotFound(_) => Kind::NotFound,
            AppError::TooLarge(_) => Kind::TooLarge,
            AppError::Denied(_) => Kind::Denied,
            AppError::Unavailable(_) | AppError::Log(_) => Kind::Unavailable,
            AppError::Internal(_) => Kind::Internal,
        }
    }
}

impl From<kokuho_store::StoreError> for AppError {
    fn from(e: kokuho_store::StoreError) -> Self {
        AppError::Internal(e.into())
    }
}

impl From<kokuho_outbox::OutboxError> for AppError {
    fn from(e: kokuho_outbox::OutboxError) -> Self {
        match e {
            kokuho_outbox::OutboxError::UnknownMunicipality(m) => {
                AppError::Invalid(format!("unknown municipality {m}"))
            }
            kokuho_outbox::OutboxError::Log(e) => AppError::Log(e),
            kokuho_outbox::OutboxError::Behind => AppError::Unavailable("the outbox is catching up".into()),
            other => AppError::Internal(other.into()),
        }
    }
}

/// The shared state of intake's handlers.
pub(crate) struct Inner {
    pub(crate) bus: Bus,
    pub(crate) state: ProjectionHandle,
    pub(crate) outbox: Outbox,
    pub(crate) config: Config,
    /// One submission per municipality at a time in this process; expected-last-subject-
    /// sequence on the municipality's submission subject guards across processes.
    pub(crate) locks: Mutex<BTreeMap<String, Arc<Mutex<()>>>>,
    /// One submission of a municipality received and decided at a time (S9): a municipality
    /// that sends many at once cannot take every permit of [`Limits::max_submissions`].
    pub(crate) receiving: Mutex<BTreeMap<String, Arc<Mutex<()>>>>,
    /// S9: a permit per submission being received or decided, taken before its files are read,
    /// so that memory is bounded whatever the callers do: every submission takes a small one
    /// (`Limits::small_submissions` of at most [`SMALL_BYTES`]); one that grows past that also takes a
    /// large one (`Limits::max_submissions`). Always in that order, so no two wait on each other.
    /// A day's small submissions from many municipalities then never queue behind a register.
    pub(crate) small: tokio::sync::Semaphore,
    pub(crate) uploads: tokio::sync::Semaphore,
}

/// A running intake.
pub struct App {
    intake: Intake,
    auditor: kokuho_runtime::audit::Auditor,
    runners: Runners,
}

/// intake's operations, for gRPC and for tests.
#[derive(Clone)]
pub struct Intake {
    pub(crate) inner: Arc<Inner>,
}

const PATIENCE: Duration = Duration::from_secs(60);

impl App {
    /// Ensures the streams, starts the projections and the workflow, and makes sure the log
    /// has a business date.
    pub async fn build(config: Config, bus: Bus, db: &SledDb) -> anyhow::Result<Self> {
        let mut runners = Runners::new("intake", bus.clone(), db.clone(), config.runner.clone());
        let state = runners.projection(state::IntakeState, "intake-state")?;
        let outbox = runners.projection(OutboxProjection, "intake-outbox")?;
        runners.workflow(kokuho_outbox::ForwardRows { bus: bus.clone(), source: forward::IntakeRows })?;
        let outbox = Outbox::new(bus.clone(), outbox, config.registry.clone());
        let intake = Intake {
            inner: Arc::new(Inner {
                bus,
                state,
                outbox,
                small: tokio::sync::Semaphore::new(config.limits.small_submissions.max(1)),
                uploads: tokio::sync::Semaphore::new(config.limits.max_submissions.max(1)),
                config,
                locks: Mutex::new(BTreeMap::new()),
                receiving: Mutex::new(BTreeMap::new()),
            }),
        };
        // A replay (kokuho replay) writes nothing and stops where it is told.
        if intake.inner.config.runner.replay.is_none() {
            intake.ensure_business_date().await?;
        }
        let signer = intake.inner.config.audit_signer.clone();
        let auditor = kokuho_runtime::audit::Auditor::new(intake.inner.bus.clone(), "intake", signer).await?;
        Ok(Self { intake, auditor, runners })
    }

    pub fn intake(&self) -> &Intake {
        &self.intake
    }

    /// The gRPC services of intake.
    pub fn services(&self) -> (grpc::IntakeServer, grpc::ResultServer) {
        grpc::services(self.intake.clone(), self.intake.inner.config.credentials.clone(), self.auditor.clone())
    }
}

impl kokuho_runtime::service::Service for App {
    const NAME: &'static str = "intake";

    /// It writes the intake stream and the results (rows of its own and result files); it reads
    /// only them.
    const NATS: kokuho_bus::Access = kokuho_bus::Access {
        owns: &[INTAKE, RESULTS, kokuho_intake_contract::SEALED],
        reads: &[],
        reads_subject: &[],
        appends: &[],
    };

    async fn build(env: kokuho_runtime::service::Environment) -> anyhow::Result<Self> {
        let key = env.settings.require("identity_public_key", "identity public key")?;
        let identity_key = PublicKey::load(std::path::Path::new(key)).with_context(|| format!("identity key {key}"))?;
        let initial_business_date = env.settings.parsed("business_date", "a date (YYYYMMDD)")?;
        let mut limits = Limits::default();
        if let Some(n) = env.settings.parsed(MAX_SUBMISSIONS, "a number of submissions")? {
            limits.max_submissions = n;
        }
        if let Some(n) = env.settings.parsed(SMALL_SUBMISSIONS, "a number of submissions")? {
            limits.small_submissions = n;
        }
        let config = Config {
            registry: env.registry,
            identity_key,
            limits,
            initial_business_date,
            runner: env.runner,
            credentials: env.credentials,
            audit_signer: env.audit_signer,
        };
        let app = App::build(config, env.bus, &env.db).await?;
        env.metrics.register(SubmissionMetrics(app.intake.inner.state.clone()));
        Ok(app)
    }

    fn routes(&self, routes: &mut tonic::service::RoutesBuilder) -> Vec<&'static str> {
        use tonic::server::NamedService as _;
        let (intake, results) = self.services();
        routes.add_service(intake).add_service(results);
        vec![IntakeServer::NAME, ResultServer::NAME]
    }

    async fn stop(self) {
        self.runners.shutdown().await;
    }
}

impl Intake {
    /// Waits until the state projection has applied everything in the intake stream.
    pub(crate) async fn catch_up(&self) -> Result<(), AppError> {
        let last = self.inner.bus.last_seq(INTAKE.name).await?;
        if self.inner.state.wait_for(last, PATIENCE).await {
            Ok(())
        } else {
            Err(AppError::Unavailable("intake's state is catching up with the log".into()))
        }
    }

    /// Waits until the state holds everything a decision for `municipality` reads: its own
    /// submissions and records, and the calendar. Not the other municipalities' appends: under a
    /// prefecture's load the stream's head moves on with every one of them, and waiting for it
    /// made each submission wait for all the others' (issue 14, the steady phase).
    pub(crate) async fn catch_up_for(&self, municipality: &str) -> Result<(), AppError> {
        let own = self.inner.bus.last_seq_on(INTAKE.name, &format!("kokuho.intake.*.{municipality}")).await?;
        let calendar = self.inner.bus.last_subject_seq(INTAKE.name, CALENDAR_SUBJECT).await?;
        if self.inner.state.wait_for(own.max(calendar), PATIENCE).await {
            Ok(())
        } else {
            Err(AppError::Unavailable("intake's state is catching up with the log".into()))
        }
    }

    async fn ensure_business_date(&self) -> Result<(), AppError> {
        self.catch_up().await?;
        if state::business_date(self.inner.state.store())?.is_some() {
            return Ok(());
        }
        let date = match self.inner.config.initial_business_date {
            Some(d) => d,
            None => return Ok(()),
        };
        let envelope = event::envelope::<Events>(Event::BusinessDateSet(pb::BusinessDateSet { date }), "", "", "");
        match self.inner.bus.append(Append::event(CALENDAR_SUBJECT, &envelope).expect_last_subject_seq(0)).await {
            Ok(a) => {
                self.inner.state.wait_for(a.seq, PATIENCE).await;
                Ok(())
            }
            // Another intake set it first.
            Err(e) if e.kind() == BusErrorKind::WrongLastSequence => self.catch_up().await,
            Err(e) => Err(e.into()),
        }
    }

    /// The current business date (YYYYMMDD).
    pub async fn business_date(&self) -> Result<u32, AppError> {
        self.catch_up().await?;
        state::business_date(self.inner.state.store())?
            .ok_or_else(|| AppError::Refused("the log has no business date yet (start with --business-date)".into()))
    }

    /// Closes the business day: the date advances to `date`, which must be later (T1).
    pub async fn close_day(&self, date: u32) -> Result<(u32, u32), AppError> {
        if kokuho_ids::Date::from_yyyymmdd(date).is_none() {
            return Err(AppError::Invalid(format!("{date} is not a date (YYYYMMDD)")));
        }
        loop {
            let expected = self.inner.bus.last_subject_seq(INTAKE.name, CALENDAR_SUBJECT).await?;
            self.catch_up().await?;
            let previous = self.business_date().await?;
            if date <= previous {
                return Err(AppError::Refused(format!(
                    "the business date is {previous}; a day close must name a later date"
                )));
            }
            let envelope = event::envelope::<Events>(Event::DayClosed(pb::DayClosed { date, previous }), "", "", "");
            match self
                .inner
                .bus
                .append(Append::event(CALENDAR_SUBJECT, &envelope).expect_last_subject_seq(expected))
                .await
            {
                Ok(a) => {
                    self.inner.state.wait_for(a.seq, PATIENCE).await;
                    return Ok((date, previous));
                }
                Err(e) if e.kind() == BusErrorKind::WrongLastSequence => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Progress of every consumer of the log.
    pub async fn progress(&self) -> Result<Vec<kokuho_bus::ConsumerProgress>, AppError> {
        Ok(self.inner.bus.progress().await?)
    }

    /// Waits until nothing is pending anywhere (two quiet looks in a row), up to `patience`.
    pub async fn wait_idle(&self, patience: Duration) -> Result<bool, AppError> {
        let deadline = tokio::time::Instant::now() + patience;
        let mut quiet = 0;
        let mut last_marks: Option<Vec<u64>> = None;
        loop {
            let progress = self.progress().await?;
            let idle = progress.iter().all(|p| p.pending == 0 && p.ack_pending == 0);
            let marks: Vec<u64> = progress.iter().map(|p| p.ack_floor).collect();
            if idle && last_marks.as_ref() == Some(&marks) {
                quiet += 1;
            } else {
                quiet = 0;
            }
            last_marks = Some(marks);
            if quiet >= 2 {
                return Ok(true);
            }
            if tokio::time::Instant::now() > deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The result files of `municipality` (cut now if rows are waiting).
    pub async fn fetch(
        &self,
        municipality: kokuho_ids::LocalGovCode,
    ) -> Result<Vec<kokuho_outbox::ResultFile>, AppError> {
        let date = self.business_date().await?;
        Ok(self.inner.outbox.fetch(municipality, date).await?)
    }

    /// The files of `municipality` without content: pending (cut now if rows are waiting) and
    /// a page of the acknowledged ones.
    pub async fn list_files(
        &self,
        municipality: kokuho_ids::LocalGovCode,
        before: u32,
        limit: usize,
    ) -> Result<kokuho_outbox::Listing, AppError> {
        let date = self.business_date().await?;
        Ok(self.inner.outbox.list(municipality, date, before, limit).await?)
    }

    /// One result file of `municipality` by name, pending or acknowledged.
    pub async fn file(
        &self,
        municipality: kokuho_ids::LocalGovCode,
        name: &str,
    ) -> Result<Option<kokuho_outbox::ResultFile>, AppError> {
        Ok(self.inner.outbox.file(municipality, name).await?)
    }

    pub async fn acknowledge(
        &self,
        municipality: kokuho_ids::LocalGovCode,
        names: Vec<String>,
    ) -> Result<u32, AppError> {
        Ok(self.inner.outbox.acknowledge(municipality, names).await?)
    }
}

/// Per municipality, from intake's projection at scrape time: `kokuho_intake_submissions_total`
/// and `kokuho_intake_last_submission_seconds` (when its last submission was decided; an
/// operator alerts on a municipality silent for longer than its rhythm).
struct SubmissionMetrics(ProjectionHandle);

impl std::fmt::Debug for SubmissionMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("intake::SubmissionMetrics")
    }
}

impl prometheus_client::collector::Collector for SubmissionMetrics {
    fn encode(&self, mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let rows = state::submissions_by_municipality(self.0.store()).map_err(|_| std::fmt::Error)?;
        let counts: Vec<(String, u64)> = rows.iter().map(|(m, n, _)| (m.clone(), u64::from(*n))).collect();
        let last: Vec<(String, i64)> = rows.iter().map(|(m, _, at)| (m.clone(), *at)).collect();
        kokuho_runtime::metrics::counters(
            &mut encoder,
            "kokuho_intake_submissions",
            "Submissions decided (accepted or rejected), by municipality",
            "municipality",
            &counts,
        )?;
        kokuho_runtime::metrics::gauges(
            &mut encoder,
            "kokuho_intake_last_submission_seconds",
            "When the municipality's last submission was decided (Unix seconds)",
            "municipality",
            &last,
        )
    }
}
