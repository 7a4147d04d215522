//! gRPC glue of history: who may ask, the audit of every answer and refusal (S8), the query.

use kokuho_proto::history::v1 as pb;
use kokuho_proto::history::v1::history_service_server::{HistoryService, HistoryServiceServer};
use kokuho_runtime::audit::Auditor;
use kokuho_runtime::credentials::{Caller, Credentials};
use tonic::{Request, Response, Status};

use crate::query::{Query, Subject};
use crate::{HistoryError, Stores};

pub type HistoryServer = HistoryServiceServer<HistoryGrpc>;

pub struct HistoryGrpc {
    bus: kokuho_bus::Bus,
    stores: Stores,
    credentials: Credentials,
    auditor: Auditor,
}

pub(crate) fn server(
    bus: kokuho_bus::Bus,
    stores: Stores,
    credentials: Credentials,
    auditor: Auditor,
) -> HistoryServer {
    HistoryServiceServer::new(HistoryGrpc { bus, stores, credentials, auditor })
}

fn status(e: HistoryError) -> Status {
    kokuho_runtime::errors::status(&e)
}

/// Whose facts a caller sees: a municipality its own, an operator every municipality's.
fn viewer(caller: &Caller) -> Option<String> {
    if caller.is_operator() { None } else { Some(caller.name()) }
}

#[tonic::async_trait]
impl HistoryService for HistoryGrpc {
    async fn history(&self, request: Request<pb::HistoryRequest>) -> Result<Response<pb::HistoryResponse>, Status> {
        const ACTION: &str = "history.History";
        let caller = self.credentials.caller_of(&request)?;
        let r = request.into_inner();
        let (subject, allowed, purpose) = if r.person.is_empty() {
            let purpose = format!("{} {} as of {}", r.municipality, r.resident_number, r.as_of);
            let allowed = caller.is_operator() || caller.is_municipality(&r.municipality);
            (Subject::Resident { municipality: r.municipality, resident: r.resident_number }, allowed, purpose)
        } else {
            // A person across municipalities: the operator's (a municipality names its resident).
            let purpose = format!("person {} as of {}", r.person, r.as_of);
            (Subject::Person(r.person), caller.is_operator(), purpose)
        };
        self.auditor.require(&caller, allowed, ACTION, &purpose).await?;
        let q = Query { subject, viewer: viewer(&caller), as_of: (r.as_of != 0).then_some(r.as_of) };
        let complete = self.stores.caught_up(&self.bus).await;
        let mut answer = self.stores.history(&self.bus, &q).await.map_err(status)?;
        answer.complete = complete;
        // Nothing known: no person to record (the refusal or the miss is still audited).
        self.auditor.answered(&caller, ACTION, answer.persons.clone(), &purpose).await?;
        Ok(Response::new(answer))
    }

    async fn explain_link(
        &self,
        request: Request<pb::ExplainLinkRequest>,
    ) -> Result<Response<pb::ExplainLinkResponse>, Status> {
        const ACTION: &str = "history.ExplainLink";
        let caller = self.credentials.caller_of(&request)?;
        let r = request.into_inner();
        let purpose = format!("{} {}", r.municipality, r.resident_number);
        let allowed = caller.is_operator() || caller.is_municipality(&r.municipality);
        self.auditor.require(&caller, allowed, ACTION, &purpose).await?;
        let viewer = viewer(&caller);
        // A link asked about right after its submission: wait for it a little, then answer
        // with what there is (a link that is not there yet reads as not linked).
        let _ = self.stores.caught_up(&self.bus).await;
        let answer =
            self.stores.explain_link(&r.municipality, &r.resident_number, viewer.as_deref()).map_err(status)?;
        let persons = if answer.person.is_empty() { Vec::new() } else { vec![answer.person.clone()] };
        self.auditor.answered(&caller, ACTION, persons, &purpose).await?;
        Ok(Response::new(answer))
    }
}
