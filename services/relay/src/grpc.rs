//! gRPC glue of relay: the caller, the request, the answer (audited, S6, S8). The rules are the
//! domain's (P1 `provision::Policy`).

use std::sync::{Arc, Mutex};

use kokuho_bus::Append;
use kokuho_proto::relay::v1 as pb;
use kokuho_proto::relay::v1::relay_service_server::{RelayService, RelayServiceServer};
use kokuho_relay_contract::{Event, Events, PROVISION_SUBJECT, STREAM};
use kokuho_relay_domain::provision::{Decision, Policy, ProvisionFile};
use kokuho_runtime::audit::{Auditor, Outcome};
use kokuho_runtime::credentials::{Caller, Credentials};
use tonic::{Request, Response, Status};

use crate::deliver::Health;
use crate::liveness::{self, now_secs};
use crate::plan::Context;
use crate::{RelayError, state};

pub type RelayServer = RelayServiceServer<RelayGrpc>;

pub struct RelayGrpc {
    pub(crate) context: Arc<Context>,
    pub(crate) health: Arc<Mutex<Health>>,
    pub(crate) policy: Arc<Policy>,
    pub(crate) credentials: Credentials,
    pub(crate) auditor: Auditor,
}

fn status(e: RelayError) -> Status {
    kokuho_runtime::errors::status(&e)
}

fn unavailable(e: impl std::fmt::Display) -> Status {
    status(RelayError::Unavailable(e.to_string()))
}

/// Most waiting records one `Status` lists.
const MAX_WAITING_LISTED: usize = 2_000;

#[tonic::async_trait]
impl RelayService for RelayGrpc {
    async fn status(&self, request: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        let caller = self.credentials.caller_of(&request)?;
        let r = request.into_inner();
        let allowed = match &caller {
            Caller::Operator(_) => true,
            Caller::Municipality(m) => *m == r.municipality,
            Caller::Relay => false,
        };
        self.auditor.require(&caller, allowed, "relay.Status", &r.municipality).await?;
        let c = &self.context;
        let last = c.bus.last_seq(STREAM.name).await.map_err(unavailable)?;
        let caught_up = c.ledger.position() >= last;
        let now = now_secs();
        let municipalities: Vec<String> = if r.municipality.is_empty() {
            c.part.municipalities(&c.registry).collect()
        } else if c.part.owns(&r.municipality) {
            vec![r.municipality.clone()]
        } else {
            let why =
                format!("municipality {} is another relay shard's; this is shard {}", r.municipality, c.part.shard);
            return Err(status(RelayError::Invalid(why)));
        };
        let mut partitions = Vec::new();
        for m in &municipalities {
            partitions.push(liveness::partition_status(c, m, now).map_err(|e| status(e.into()))?);
        }
        if r.waiting_records > 0
            && let [one] = partitions.as_mut_slice()
        {
            let limit = (r.waiting_records as usize).min(MAX_WAITING_LISTED);
            (one.waiting_records, one.waiting_next) =
                state::waiting_records(c.ledger.store(), &one.municipality, &r.waiting_after, limit)
                    .map_err(|e| status(e.into()))?;
        }
        let pending = state::pending(c.ledger.store(), 1).map_err(|e| status(e.into()))?;
        let alert_open = partitions.iter().any(|p| p.stalled);
        let health = self.health.lock().map(|h| h.clone()).unwrap_or_default();
        Ok(Response::new(pb::StatusResponse {
            partitions,
            server_reachable: health.reachable,
            server_last_contact_at: health.last_contact,
            server_last_error: health.last_error,
            // An open alert with nothing left to send is about to close: not idle until it has.
            idle: caught_up && pending.is_empty() && !alert_open,
        }))
    }

    async fn provide(&self, request: Request<pb::ProvideRequest>) -> Result<Response<pb::ProvideResponse>, Status> {
        let caller = self.credentials.caller_of(&request)?;
        self.auditor.require(&caller, caller.is_operator(), "relay.Provide", "情報提供").await?;
        let r = request.into_inner();
        let file = ProvisionFile::parse(&r.file).map_err(|why| status(RelayError::Invalid(why)))?;
        if r.person.is_empty() || r.requester.is_empty() {
            return Err(status(RelayError::Invalid("a provision request names its requester and person".into())));
        }
        // P1: only what the policy lists.
        let (allowed, basis) = match self.policy.decide(file, &r.target, r.item) {
            Decision::Allowed(rule) => (true, rule.basis.clone()),
            Decision::Denied => (false, "別紙2に該当する提供先・根拠の組合せがありません".to_string()),
        };
        // P2: every request, allowed or denied, is recorded before it is answered.
        let entry = pb::ProvisionRecorded {
            requester: r.requester.clone(),
            target: r.target.clone(),
            item: r.item,
            file: file.name().to_string(),
            person: r.person.clone(),
            requested_at: now_secs(),
            allowed,
            basis: basis.clone(),
            caller: caller.name(),
        };
        let envelope = kokuho_bus::event::envelope::<Events>(Event::ProvisionRecorded(entry), "", "", "");
        self.context.bus.append(Append::event(PROVISION_SUBJECT, &envelope)).await.map_err(unavailable)?;
        let purpose = format!("情報提供 {} {}", r.requester, file.name());
        let outcome = if allowed { Outcome::Allowed } else { Outcome::Refused };
        self.auditor
            .record(&caller, "relay.Provide", vec![r.person.clone()], &purpose, outcome)
            .await
            .map_err(unavailable)?;
        let mut records = Vec::new();
        if file == ProvisionFile::Ledger {
            let view = self.context.ledger.store();
            for key in state::records_of_person(view, &r.person).map_err(|e| status(e.into()))? {
                if let Some(rec) = state::record(view, &key).map_err(|e| status(e.into()))?.and_then(|p| p.record) {
                    records.push(rec);
                }
            }
        }
        Ok(Response::new(pb::ProvideResponse { allowed, basis, records }))
    }

    async fn provision_log(
        &self,
        request: Request<pb::ProvisionLogRequest>,
    ) -> Result<Response<pb::ProvisionLogResponse>, Status> {
        let caller = self.credentials.caller_of(&request)?;
        self.auditor.require(&caller, caller.is_operator(), "relay.ProvisionLog", "情報提供等の記録").await?;
        let mut entries = Vec::new();
        for (_, bytes) in self.context.bus.read_subject(STREAM.name, PROVISION_SUBJECT).await.map_err(unavailable)? {
            match kokuho_bus::event::decode::<Events>(&bytes) {
                Ok((_, Event::ProvisionRecorded(e))) => entries.push(e),
                Ok(_) => {}
                Err(why) => return Err(status(RelayError::Internal(format!("provision record: {why}")))),
            }
        }
        self.auditor.allowed(&caller, "relay.ProvisionLog", Vec::new(), "情報提供等の記録").await?;
        Ok(Response::new(pb::ProvisionLogResponse { entries }))
    }
}
