//! gRPC glue of continuity: the caller's municipality, one query, the answer.

use kokuho_proto::continuity::v1 as pb;
use kokuho_proto::continuity::v1::continuity_service_server::{ContinuityService, ContinuityServiceServer};
use kokuho_runtime::audit::Auditor;
use kokuho_runtime::credentials::Credentials;
use kokuho_store::ProjectionHandle;
use tonic::{Request, Response, Status};

pub type ContinuityServer = ContinuityServiceServer<ContinuityGrpc>;

pub struct ContinuityGrpc {
    state: ProjectionHandle,
    credentials: Credentials,
    /// Every query, and every refusal, is audited (security.md S8).
    auditor: Auditor,
}

pub(crate) fn server(state: ProjectionHandle, credentials: Credentials, auditor: Auditor) -> ContinuityServer {
    ContinuityServiceServer::new(ContinuityGrpc { state, credentials, auditor })
}

/// What a municipality may see of a person: its own periods in full, the others' as
/// municipality and dates, and the anomalies sent to it.
pub fn view(person: &pb::PersonState, municipality: &str) -> pb::QueryPersonResponse {
    let periods = person
        .periods
        .iter()
        .map(|p| {
            let mut v = pb::PeriodView {
                municipality: p.municipality.clone(),
                start: p.start,
                end: p.end,
                ..Default::default()
            };
            if p.municipality == municipality {
                let sent = |i: usize| p.sent.get(i).cloned().unwrap_or_default();
                v.resident_number = p.resident_number.clone();
                v.start_reason = p.start_reason.clone();
                v.end_reason = p.end_reason.clone();
                v.acquired_on = sent(2);
                v.acquired_reason = sent(3);
                v.lost_on = sent(4);
                v.lost_reason = sent(5);
                v.kubun = sent(8);
            }
            v
        })
        .collect();
    let open = person
        .open
        .iter()
        .filter(|a| a.municipality == municipality)
        .map(|a| pb::AnomalyView {
            code: a.code.clone(),
            counterpart: a.counterpart.clone(),
            counterpart_start: a.counterpart_start,
            counterpart_end: a.counterpart_end,
        })
        .collect();
    pb::QueryPersonResponse { found: true, periods, open }
}

#[tonic::async_trait]
impl ContinuityService for ContinuityGrpc {
    async fn query_person(
        &self,
        request: Request<pb::QueryPersonRequest>,
    ) -> Result<Response<pb::QueryPersonResponse>, Status> {
        const ACTION: &str = "continuity.QueryPerson";
        let caller = self.credentials.caller_of(&request)?;
        let r = request.into_inner();
        let purpose = format!("{} {}", r.municipality, r.resident_number);
        self.auditor.require(&caller, caller.is_municipality(&r.municipality), ACTION, &purpose).await?;
        let person = crate::state::person_of_resident(&self.state, &r.municipality, &r.resident_number)
            .map_err(|e| Status::internal(e.to_string()))?;
        self.auditor.answered(&caller, ACTION, person.iter().map(|p| p.pref_id.clone()).collect(), &purpose).await?;
        Ok(Response::new(match person {
            Some(p) => view(&p, &r.municipality),
            None => pb::QueryPersonResponse::default(),
        }))
    }
}
