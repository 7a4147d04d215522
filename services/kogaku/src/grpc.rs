//! gRPC glue of kogaku: the caller's municipality, one query, the answer (audited, S6, S8).

use std::collections::BTreeSet;

use kokuho_ids::Month;
use kokuho_proto::kogaku::v1 as pb;
use kokuho_proto::kogaku::v1::kogaku_service_server::{KogakuService, KogakuServiceServer};
use kokuho_runtime::audit::Auditor;
use kokuho_runtime::credentials::Credentials;
use kokuho_store::ProjectionHandle;
use tonic::{Request, Response, Status};

use crate::KogakuError;

pub type KogakuServer = KogakuServiceServer<KogakuGrpc>;

pub struct KogakuGrpc {
    months: ProjectionHandle,
    credentials: Credentials,
    auditor: Auditor,
}

pub(crate) fn server(months: ProjectionHandle, credentials: Credentials, auditor: Auditor) -> KogakuServer {
    KogakuServiceServer::new(KogakuGrpc { months, credentials, auditor })
}

fn status(e: KogakuError) -> Status {
    kokuho_runtime::errors::status(&e)
}

#[tonic::async_trait]
impl KogakuService for KogakuGrpc {
    async fn count_months(
        &self,
        request: Request<pb::CountMonthsRequest>,
    ) -> Result<Response<pb::CountMonthsResponse>, Status> {
        const ACTION: &str = "kogaku.CountMonths";
        let caller = self.credentials.caller_of(&request)?;
        let r = request.into_inner();
        let purpose = format!("{} {} {}", r.municipality, r.household_number, r.month);
        self.auditor.require(&caller, caller.is_municipality(&r.municipality), ACTION, &purpose).await?;
        let x = Month::new((r.month / 100) as i32, (r.month % 100) as u8)
            .map_err(|_| status(KogakuError::Invalid(format!("{} is not a month (YYYYMM)", r.month))))?;
        let records = crate::state::records(self.months.store(), &r.municipality, &r.household_number)
            .map_err(|e| status(e.into()))?;
        // Inherited months (K3) come with the handover.
        let (months, count, many_times) = kokuho_kogaku_domain::months::query(&records, &BTreeSet::new(), x);
        self.auditor.allowed(&caller, ACTION, Vec::new(), &purpose).await?;
        Ok(Response::new(pb::CountMonthsResponse {
            months: months
                .into_iter()
                .map(|(m, inherited)| pb::CountedMonth { month: m.to_yyyymm(), inherited })
                .collect(),
            count,
            many_times,
        }))
    }
}
