//! gRPC glue of identity: who is calling, one operation, the answer.

use kokuho_proto::identity::v1 as pb;
use kokuho_proto::identity::v1::identity_service_server::{IdentityService, IdentityServiceServer};
use kokuho_runtime::audit::Auditor;
use kokuho_runtime::credentials::{Caller, Credentials};
use tonic::{Request, Response, Status};

use crate::service::{Action, Identity, IdentityError};

pub type IdentityServer = IdentityServiceServer<IdentityGrpc>;

pub struct IdentityGrpc {
    identity: Identity,
    credentials: Credentials,
    /// Every read of personal data, and every refusal, is audited (security.md S6, S8).
    auditor: Auditor,
}

pub(crate) fn server(identity: Identity, credentials: Credentials, auditor: Auditor) -> IdentityServer {
    IdentityServiceServer::new(IdentityGrpc { identity, credentials, auditor })
}

impl From<IdentityError> for Status {
    fn from(e: IdentityError) -> Self {
        kokuho_runtime::errors::status(&e)
    }
}

#[tonic::async_trait]
impl IdentityService for IdentityGrpc {
    async fn lookup_ids(
        &self,
        request: Request<pb::LookupIdsRequest>,
    ) -> Result<Response<pb::LookupIdsResponse>, Status> {
        const ACTION: &str = "identity.LookupIds";
        let caller = self.credentials.caller_of(&request)?;
        let r = request.into_inner();
        let purpose = format!("{} {}", r.municipality, r.resident_number);
        self.auditor.require(&caller, caller.is_municipality(&r.municipality), ACTION, &purpose).await?;
        let found =
            crate::link_of(&self.identity.state, &r.municipality, &r.resident_number).map_err(IdentityError::from)?;
        let persons = found.iter().map(|l| l.pref_id.clone()).collect();
        self.auditor.answered(&caller, ACTION, persons, &purpose).await?;
        Ok(Response::new(match found {
            Some(l) => {
                pb::LookupIdsResponse { found: true, pref_id: l.pref_id, muni_id: l.muni_id.unwrap_or_default() }
            }
            None => pb::LookupIdsResponse { found: false, ..Default::default() },
        }))
    }

    async fn list_reviews(
        &self,
        request: Request<pb::ListReviewsRequest>,
    ) -> Result<Response<pb::ListReviewsResponse>, Status> {
        const ACTION: &str = "identity.ListReviews";
        let caller = self.credentials.caller_of(&request)?;
        self.auditor.require(&caller, caller.is_operator(), ACTION, "the review queue").await?;
        let held = crate::held_cases(&self.identity.state).map_err(IdentityError::from)?;
        let persons = held.iter().filter(|h| !h.pref_id.is_empty()).map(|h| h.pref_id.clone()).collect();
        self.auditor.allowed(&caller, ACTION, persons, "the review queue").await?;
        let cases = held
            .into_iter()
            .map(|h| pb::ReviewCase {
                case_id: h.case_id,
                code: h.code,
                municipality: h.municipality,
                resident_number: h.resident_number,
                line: h.line,
                pref_id: h.pref_id,
            })
            .collect();
        Ok(Response::new(pb::ListReviewsResponse { cases }))
    }

    async fn resolve_review(
        &self,
        request: Request<pb::ResolveReviewRequest>,
    ) -> Result<Response<pb::ResolveReviewResponse>, Status> {
        const ACTION: &str = "identity.ResolveReview";
        let caller = self.credentials.caller_of(&request)?;
        let r = request.into_inner();
        let purpose = format!("case {}: {}", r.case_id, r.reason);
        self.auditor.require(&caller, caller.is_operator(), ACTION, &purpose).await?;
        let action = match pb::ReviewAction::try_from(r.action) {
            Ok(pb::ReviewAction::Link) => Action::Link,
            Ok(pb::ReviewAction::Relink) => Action::Relink,
            Ok(pb::ReviewAction::Reject) => Action::Reject,
            _ => return Err(Status::invalid_argument("action: link, relink or reject")),
        };
        let pref_id = self.identity.resolve(&r.case_id, action, &r.reason, &r.operator).await?;
        let persons = if pref_id.is_empty() { Vec::new() } else { vec![pref_id.clone()] };
        self.auditor.allowed(&caller, ACTION, persons, &purpose).await?;
        Ok(Response::new(pb::ResolveReviewResponse { pref_id }))
    }

    async fn release_number(
        &self,
        request: Request<pb::ReleaseNumberRequest>,
    ) -> Result<Response<pb::ReleaseNumberResponse>, Status> {
        let caller = self.credentials.caller_of(&request)?;
        let r = request.into_inner();
        // An allowed release is audited in its own chain before the number leaves (R6).
        self.auditor.require(&caller, caller == Caller::Relay, "identity.ReleaseNumber", &r.pref_id).await?;
        let number = self.identity.release(&r.pref_id, &r.purpose, "relay").await?;
        // The one answer that carries a plain number (security.md S1, rules.md R6).
        let digits = String::from_utf8_lossy(&number.expose()).into_owned();
        Ok(Response::new(pb::ReleaseNumberResponse { individual_number: digits }))
    }

    async fn release_numbers(
        &self,
        request: Request<pb::ReleaseNumbersRequest>,
    ) -> Result<Response<pb::ReleaseNumbersResponse>, Status> {
        let caller = self.credentials.caller_of(&request)?;
        let r = request.into_inner();
        let what = format!("{} releases", r.releases.len());
        self.auditor.require(&caller, caller == Caller::Relay, "identity.ReleaseNumbers", &what).await?;
        let asked: Vec<(String, String)> = r.releases.into_iter().map(|r| (r.pref_id, r.purpose)).collect();
        let released = self.identity.release_all(&asked, "relay").await?;
        let mut out = pb::ReleaseNumbersResponse::default();
        for r in released {
            match r {
                // The one answer that carries plain numbers (security.md S1, rules.md R6).
                Ok(number) => {
                    out.individual_numbers.push(String::from_utf8_lossy(&number.expose()).into_owned());
                    out.missing.push(String::new());
                }
                Err(why) => {
                    out.individual_numbers.push(String::new());
                    out.missing.push(why);
                }
            }
        }
        Ok(Response::new(out))
    }

    async fn verify_audit(
        &self,
        request: Request<pb::VerifyAuditRequest>,
    ) -> Result<Response<pb::VerifyAuditResponse>, Status> {
        let caller = self.credentials.caller_of(&request)?;
        self.auditor.require(&caller, caller.is_operator(), "identity.VerifyAudit", "").await?;
        Ok(Response::new(self.identity.verify_audit(request.into_inner().anchors).await?))
    }

    async fn audit_heads(
        &self,
        request: Request<pb::AuditHeadsRequest>,
    ) -> Result<Response<pb::AuditHeadsResponse>, Status> {
        let caller = self.credentials.caller_of(&request)?;
        self.auditor.require(&caller, caller.is_operator(), "identity.AuditHeads", "").await?;
        Ok(Response::new(self.identity.audit_heads().await?))
    }
}
