//! The intermediate server's simulator (`kokuho serve midserver-sim`, started by `kokuho up`):
//! the external national system relay delivers to (rules.md R1, R4), played for tests, the
//! demo and benchmarks. Each municipality has a partition (委託区画); Apply registers, changes or
//! deletes one 加入者情報, idempotent by key; Eligibility answers as the online eligibility check
//! does, never with a 個人番号. Its own durable store (sled), numbers sealed at rest with its own
//! key (security.md S1), faults injected from configuration (`midserver_faults`) and at run time
//! (`SetFaults`). The behaviour is `kokuho_midserver_domain`'s.

mod grpc;
mod store;

use std::sync::Arc;

use anyhow::Context as _;
use kokuho_midserver_domain::Faults;
use kokuho_runtime::service::{Environment, Service};

pub use grpc::{MidServerGrpc, MidServerServer};

/// The setting naming the simulator's key directory (`*.key`, `identity.key` current).
pub const KEYS: &str = "midserver_keys";
/// The setting naming the simulator's data directory: its records are the simulated national
/// system's, not a projection of kokuho's log, so they live outside the rebuildable `store/`
/// (`kokuho up`: `<data dir>/midserver-sim`).
pub const DATA: &str = "midserver_data";
/// The setting with the faults in force at start (`key=value,…`, see `Faults::parse`).
pub const FAULTS: &str = "midserver_faults";

/// The simulator's one error type.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("the simulator's state: {0}")]
    Store(#[from] kokuho_store::StoreError),
    #[error("{0}")]
    Internal(String),
}

impl kokuho_runtime::errors::ServiceError for SimError {
    fn kind(&self) -> kokuho_runtime::errors::Kind {
        use kokuho_runtime::errors::Kind;
        match self {
            SimError::Invalid(_) => Kind::Invalid,
            SimError::Unavailable(_) => Kind::Unavailable,
            SimError::Store(_) | SimError::Internal(_) => Kind::Internal,
        }
    }
}

/// A running simulator.
pub struct App {
    server: MidServerServer,
}

impl Service for App {
    const NAME: &'static str = "midserver-sim";

    /// Another system: it uses no stream of kokuho.
    const NATS: kokuho_runtime::service::Access = kokuho_runtime::service::Access::NONE;

    async fn build(env: Environment) -> anyhow::Result<Self> {
        let keys = env.settings.require(KEYS, "key directory of the intermediate-server simulator")?;
        let vault = kokuho_crypto::Vault::load(std::path::Path::new(keys)).context("the simulator's keys")?;
        let faults = Faults::parse(env.settings.get(FAULTS).unwrap_or_default())
            .map_err(|e| anyhow::anyhow!("{FAULTS}: {e}"))?;
        let data = env.settings.require(DATA, "data directory of the intermediate-server simulator")?;
        let db = kokuho_store::SledDb::open(std::path::Path::new(data)).context("the simulator's store")?;
        let store = store::Store::new(db.store("midserver-records")?, vault);
        let server = grpc::server(Arc::new(store), faults, env.credentials);
        Ok(Self { server })
    }

    fn routes(&self, routes: &mut tonic::service::RoutesBuilder) -> Vec<&'static str> {
        use tonic::server::NamedService as _;
        routes.add_service(self.server.clone());
        vec![MidServerServer::NAME]
    }

    async fn stop(self) {}
}
