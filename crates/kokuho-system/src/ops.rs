//! The operator's questions to a running process about its own state (issue 13): the
//! projections it keeps, with a digest of each and their entries key by key, so that
//! `kokuho replay --verify` can compare them with a replay of the log. Operators only; no value
//! leaves, only its hash (the keys name residents and persons, as the audit does).

use kokuho_proto::ops::v1 as pb;
use kokuho_runtime::credentials::Credentials;
use kokuho_store::RunnerStats;
use tonic::{Request, Response, Status};

pub(crate) struct Ops {
    pub(crate) stats: RunnerStats,
    pub(crate) credentials: Credentials,
}

/// The most entries in one answer.
const MOST_ENTRIES: usize = 10_000;

impl Ops {
    fn operator<T>(&self, request: &Request<T>, what: &str) -> Result<(), Status> {
        let caller = self.credentials.caller_of(request)?;
        caller.require(caller.is_operator(), what)
    }

    fn store(&self, name: &str) -> Result<kokuho_store::SledStore, Status> {
        self.stats
            .all()
            .into_iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, s)| s.projection.get().map(|(store, _)| store.clone()))
            .ok_or_else(|| Status::not_found(format!("no projection {name} in this process")))
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

#[tonic::async_trait]
impl pb::ops_service_server::OpsService for Ops {
    async fn projections(
        &self,
        request: Request<pb::ProjectionsRequest>,
    ) -> Result<Response<pb::ProjectionsResponse>, Status> {
        self.operator(&request, "the projections")?;
        let mut projections = Vec::new();
        for (name, stats) in self.stats.all() {
            let Some((store, stream)) = stats.projection.get() else { continue };
            let store = store.clone();
            let digest =
                tokio::task::spawn_blocking(move || store.digest()).await.map_err(internal)?.map_err(internal)?;
            projections.push(pb::Projection {
                name,
                stream: stream.to_string(),
                position: digest.position,
                keys: digest.keys,
                sha256: digest.sha256,
            });
        }
        Ok(Response::new(pb::ProjectionsResponse { projections }))
    }

    async fn projection_entries(
        &self,
        request: Request<pb::ProjectionEntriesRequest>,
    ) -> Result<Response<pb::ProjectionEntriesResponse>, Status> {
        self.operator(&request, "a projection's entries")?;
        let r = request.into_inner();
        let store = self.store(&r.name)?;
        let limit = (r.limit as usize).clamp(1, MOST_ENTRIES);
        let position = kokuho_store::checkpoint(&store).map_err(internal)?;
        let entries = tokio::task::spawn_blocking(move || store.entries_after(&r.after, limit))
            .await
            .map_err(internal)?
            .map_err(internal)?
            .into_iter()
            .map(|(key, value_sha256)| pb::ProjectionEntry { key, value_sha256 })
            .collect();
        Ok(Response::new(pb::ProjectionEntriesResponse { entries, position }))
    }
}
