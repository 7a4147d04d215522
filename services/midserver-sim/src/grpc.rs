//! gRPC glue of the simulator: the caller, the faults in force, the request, the answer.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use kokuho_ids::Date;
use kokuho_ids::codes::RelayProcessing;
use kokuho_midserver_domain::{self as domain, Faults, Rejection};
use kokuho_proto::midserver::v1 as pb;
use kokuho_proto::midserver::v1::mid_server_service_server::{MidServerService, MidServerServiceServer};
use kokuho_runtime::credentials::{Caller, Credentials};
use tonic::{Request, Response, Status};

use crate::SimError;
use crate::store::{self, Store};
use kokuho_store::Tx;

pub type MidServerServer = MidServerServiceServer<MidServerGrpc>;

/// Most Applies in one batch.
const MAX_BATCH: usize = 1_000;

pub struct MidServerGrpc {
    store: Arc<Store>,
    faults: RwLock<Faults>,
    credentials: Credentials,
}

pub(crate) fn server(store: Arc<Store>, faults: Faults, credentials: Credentials) -> MidServerServer {
    MidServerServiceServer::new(MidServerGrpc { store, faults: RwLock::new(faults), credentials })
}

fn status(e: SimError) -> Status {
    kokuho_runtime::errors::status(&e)
}

fn faults_pb(f: &Faults) -> pb::Faults {
    pb::Faults {
        unreachable: f.unreachable,
        delay_ms: f.delay_ms,
        reject_per_mille: f.reject_per_mille,
        reject_reason: f.reject_reason.clone(),
        lose_ack_per_mille: f.lose_ack_per_mille,
    }
}

impl MidServerGrpc {
    fn faults(&self) -> Faults {
        self.faults.read().map(|f| f.clone()).unwrap_or_default()
    }

    /// The injected unreachability and delay, before any call is served.
    async fn reach(&self) -> Result<Faults, Status> {
        let f = self.faults();
        if f.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(u64::from(f.delay_ms))).await;
        }
        if f.unreachable {
            return Err(Status::unavailable("the intermediate server is unreachable (injected)"));
        }
        Ok(f)
    }

    /// Decides one Apply in a batch, on the records as the Applies before it left them (or
    /// answers a key seen before).
    fn decide(&self, tx: &mut Tx<'_>, r: pb::ApplyRequest, faults: &Faults) -> Result<pb::ApplyResponse, SimError> {
        if r.idempotency_key.is_empty() {
            return Err(SimError::Invalid("an Apply needs its idempotency key".into()));
        }
        let processing = RelayProcessing::parse(&r.processing)
            .map_err(|_| SimError::Invalid(format!("処理区分 {:?} is not 1, 2 or 3", r.processing)))?;
        let sub = r.subscriber.ok_or_else(|| SimError::Invalid("an Apply needs its subscriber".into()))?;
        let key = store::key_of(&sub)?;
        if let Some(mut earlier) = self.store.answered(tx, &r.idempotency_key)? {
            earlier.duplicate = true;
            return Ok(earlier);
        }
        let current = self.store.entry(tx, &key)?;
        let decided = if faults.rejects(&r.idempotency_key) {
            Err(Rejection::Injected(if faults.reject_reason.is_empty() {
                "加入者情報の検証でエラーになりました".into()
            } else {
                faults.reject_reason.clone()
            }))
        } else {
            match (processing, &current) {
                // A 削除 names the record by card and 枝番 (no number); the stored one is what goes.
                (RelayProcessing::Delete, Some(c)) => {
                    domain::apply(current.as_ref(), &r.partition, processing, c.clone())
                }
                (RelayProcessing::Delete, None) => Err(Rejection::NotRegistered),
                _ => {
                    let incoming = self.store.incoming(&r.partition, &sub, &key)?;
                    domain::apply(current.as_ref(), &r.partition, processing, incoming)
                }
            }
        };
        let (after, answer) = match &decided {
            Ok(after) => (Some(after.as_ref()), pb::ApplyResponse { accepted: true, ..Default::default() }),
            Err(rejection) => (
                None,
                pb::ApplyResponse {
                    accepted: false,
                    error_code: rejection.code().into(),
                    message: rejection.message(),
                    duplicate: false,
                },
            ),
        };
        self.store.record(tx, &r.partition, &r.idempotency_key, &key, after, &answer)?;
        Ok(answer)
    }

    /// Decides a batch of Applies one after another, one batch at a time, and commits it once.
    /// A request that cannot be read is answered M98 (`one`: the call fails instead).
    async fn apply_all(
        &self,
        requests: Vec<pb::ApplyRequest>,
        faults: &Faults,
        one: bool,
    ) -> Result<Vec<pb::ApplyResponse>, SimError> {
        let _one_at_a_time = self.store.lock().await;
        let mut tx = self.store.tx();
        let mut answers = Vec::with_capacity(requests.len());
        for r in requests {
            answers.push(match self.decide(&mut tx, r, faults) {
                Ok(a) => a,
                Err(SimError::Invalid(why)) if !one => {
                    pb::ApplyResponse { accepted: false, error_code: "M98".into(), message: why, duplicate: false }
                }
                Err(e) => return Err(e),
            });
        }
        self.store.commit(tx)?;
        Ok(answers)
    }

    /// R1: relay (for the federation) or the partition's own municipality may write it.
    fn may_write(caller: &Caller, requests: &[pb::ApplyRequest]) -> Result<(), Status> {
        if requests.iter().all(|r| *caller == Caller::Relay || caller.is_municipality(&r.partition)) {
            Ok(())
        } else {
            Err(Status::permission_denied("this credential may not write this partition"))
        }
    }
}

#[tonic::async_trait]
impl MidServerService for MidServerGrpc {
    async fn apply(&self, request: Request<pb::ApplyRequest>) -> Result<Response<pb::ApplyResponse>, Status> {
        let caller = self.credentials.caller_of(&request)?;
        let faults = self.reach().await?;
        let r = request.into_inner();
        Self::may_write(&caller, std::slice::from_ref(&r))?;
        let key = r.idempotency_key.clone();
        let mut answers = self.apply_all(vec![r], &faults, true).await.map_err(status)?;
        let answer = answers.pop().ok_or_else(|| Status::internal("no answer"))?;
        if !answer.duplicate && faults.loses_ack(&key) {
            return Err(Status::unavailable("the answer was lost on the way (injected)"));
        }
        Ok(Response::new(answer))
    }

    async fn apply_batch(
        &self,
        request: Request<pb::ApplyBatchRequest>,
    ) -> Result<Response<pb::ApplyBatchResponse>, Status> {
        let caller = self.credentials.caller_of(&request)?;
        let faults = self.reach().await?;
        let requests = request.into_inner().requests;
        if requests.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!("at most {MAX_BATCH} Applies in one batch")));
        }
        Self::may_write(&caller, &requests)?;
        let keys: Vec<String> = requests.iter().map(|r| r.idempotency_key.clone()).collect();
        let answers = self.apply_all(requests, &faults, false).await.map_err(status)?;
        // A lost answer loses the whole batch's: every key is answered again as a duplicate.
        if keys.iter().zip(&answers).any(|(k, a)| !a.duplicate && faults.loses_ack(k)) {
            return Err(Status::unavailable("the answer was lost on the way (injected)"));
        }
        Ok(Response::new(pb::ApplyBatchResponse { answers }))
    }

    async fn eligibility(
        &self,
        request: Request<pb::EligibilityRequest>,
    ) -> Result<Response<pb::EligibilityResponse>, Status> {
        self.credentials.caller_of(&request)?;
        self.reach().await?;
        let r = request.into_inner();
        let sub = pb::Subscriber {
            insurer: r.insurer,
            symbol: r.symbol,
            number: r.number,
            branch: r.branch,
            ..Default::default()
        };
        let key = store::key_of(&sub).map_err(status)?;
        let date = Date::from_yyyymmdd(r.date)
            .ok_or_else(|| status(SimError::Invalid(format!("{} is not a date (YYYYMMDD)", r.date))))?;
        let entry = self.store.entry(self.store.view(), &key).map_err(|e| status(e.into()))?;
        let a = domain::eligibility(entry.as_ref(), date);
        let d = |v: Option<Date>| v.map_or(0, Date::to_yyyymmdd);
        Ok(Response::new(pb::EligibilityResponse {
            found: a.found,
            insured: a.insured,
            acquired_on: d(a.acquired),
            lost_on: d(a.lost),
            pref_acquired_on: d(a.pref_acquired),
            pref_lost_on: d(a.pref_lost),
        }))
    }

    async fn list_partition(
        &self,
        request: Request<pb::ListPartitionRequest>,
    ) -> Result<Response<pb::ListPartitionResponse>, Status> {
        let caller = self.credentials.caller_of(&request)?;
        self.reach().await?;
        let r = request.into_inner();
        if !(caller.is_operator() || caller.is_municipality(&r.partition)) {
            return Err(Status::permission_denied("this credential may not read this partition"));
        }
        let subscribers = self.store.partition(&r.partition).map_err(|e| status(e.into()))?;
        let applied = self.store.applied(&r.partition).map_err(|e| status(e.into()))?;
        Ok(Response::new(pb::ListPartitionResponse { subscribers, applied }))
    }

    async fn set_faults(
        &self,
        request: Request<pb::SetFaultsRequest>,
    ) -> Result<Response<pb::SetFaultsResponse>, Status> {
        let caller = self.credentials.caller_of(&request)?;
        if !caller.is_operator() {
            return Err(Status::permission_denied("only an operator injects faults"));
        }
        let f = request.into_inner().faults.unwrap_or_default();
        let faults = Faults {
            unreachable: f.unreachable,
            delay_ms: f.delay_ms.min(60_000),
            reject_per_mille: f.reject_per_mille.min(1000),
            reject_reason: f.reject_reason,
            lose_ack_per_mille: f.lose_ack_per_mille.min(1000),
        };
        tracing::warn!(?faults, "Faults injected into the intermediate-server simulator");
        let answer = faults_pb(&faults);
        if let Ok(mut now) = self.faults.write() {
            *now = faults;
        }
        Ok(Response::new(pb::SetFaultsResponse { faults: Some(answer) }))
    }
}
