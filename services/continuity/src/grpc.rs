//! gRPC glue of continuity: the caller's municipality, one query, the answer.

use kokuho_continuity_contract::pb;
use kokuho_continuity_domain::PersonState;
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
pub fn view(person: &PersonState, municipality: &str) -> pb::QueryPersonResponse {
    let ymd = |d: Option<kokuho_ids::Date>| d.map(|d| d.to_string()).unwrap_or_default();
    let date = |d: Option<kokuho_ids::Date>| d.map(kokuho_ids::Date::to_yyyymmdd).unwrap_or(0);
    let periods = person
        .periods
        .iter()
        .map(|t| {
            let p = &t.period;
            let mut v = pb::PeriodView {
                municipality: p.municipality.clone(),
                start: p.start.to_yyyymmdd(),
                end: date(p.end),
                ..Default::default()
            };
            if p.municipality == municipality {
                v.resident_number = p.resident.clone();
                v.start_reason = p.start_reason.code().into();
                v.end_reason = p.end_reason.map(|r| r.code()).unwrap_or_default().into();
                if let Some(sent) = &t.sent {
                    v.acquired_on = sent.acquired_on.to_string();
                    v.acquired_reason = sent.acquired_reason.code().into();
                    v.lost_on = ymd(sent.lost_on);
                    v.lost_reason = sent.lost_reason.map(|r| r.code()).unwrap_or_default().into();
                    v.kubun = sent.judgement.code().into();
                }
            }
            v
        })
        .collect();
    let open = person
        .open
        .iter()
        .filter(|a| a.to == municipality)
        .map(|a| pb::AnomalyView {
            code: a.code.code().into(),
            counterpart: a.counterpart.clone(),
            counterpart_start: date(a.counterpart_start),
            counterpart_end: date(a.counterpart_end),
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
            .map_err(|e| kokuho_runtime::errors::status(&crate::ContinuityError::from(e)))?;
        self.auditor.answered(&caller, ACTION, person.iter().map(|p| p.pref_id.clone()).collect(), &purpose).await?;
        Ok(Response::new(match person {
            Some(p) => view(&p, &r.municipality),
            None => pb::QueryPersonResponse::default(),
        }))
    }

    async fn list_anomalies(
        &self,
        request: Request<pb::ListAnomaliesRequest>,
    ) -> Result<Response<pb::ListAnomaliesResponse>, Status> {
        const ACTION: &str = "continuity.ListAnomalies";
        let caller = self.credentials.caller_of(&request)?;
        let r = request.into_inner();
        let purpose = r.municipality.clone();
        let allowed = caller.is_municipality(&r.municipality) || caller.is_operator();
        self.auditor.require(&caller, allowed, ACTION, &purpose).await?;
        let store = |e| kokuho_runtime::errors::status(&crate::ContinuityError::from(e));
        let limit = match r.limit as usize {
            0 => DEFAULT_LISTED,
            n => n.min(MAX_LISTED),
        };
        let crate::state::OpenAnomalies { page: listed, residents, next_after } =
            crate::state::with_open_anomalies(&self.state, &r.municipality, &r.after, limit).map_err(store)?;
        let day = crate::state::business_date(&self.state).map_err(store)?;
        let mut anomalies = Vec::new();
        let mut persons = Vec::new();
        for (resident, pref) in listed {
            let (Some(person), Some(day)) = (crate::state::person_state(&self.state, &pref).map_err(store)?, day)
            else {
                continue;
            };
            anomalies.extend(open_anomalies(&person, &r.municipality, &resident, day));
            persons.push(pref);
        }
        self.auditor.answered(&caller, ACTION, persons, &purpose).await?;
        Ok(Response::new(pb::ListAnomaliesResponse { anomalies, residents, next_after }))
    }

    async fn explain(&self, request: Request<pb::ExplainRequest>) -> Result<Response<pb::ExplainResponse>, Status> {
        const ACTION: &str = "continuity.Explain";
        let caller = self.credentials.caller_of(&request)?;
        let r = request.into_inner();
        let purpose = format!("{} {}", r.municipality, r.resident_number);
        let allowed = caller.is_municipality(&r.municipality) || caller.is_operator();
        self.auditor.require(&caller, allowed, ACTION, &purpose).await?;
        let store = |e| kokuho_runtime::errors::status(&crate::ContinuityError::from(e));
        let person =
            crate::state::person_of_resident(&self.state, &r.municipality, &r.resident_number).map_err(store)?;
        let day = crate::state::business_date(&self.state).map_err(store)?;
        self.auditor.answered(&caller, ACTION, person.iter().map(|p| p.pref_id.clone()).collect(), &purpose).await?;
        Ok(Response::new(match (person, day) {
            (Some(p), Some(day)) => explain(&p, &r, day),
            _ => pb::ExplainResponse::default(),
        }))
    }
}

/// Most residents one `ListAnomalies` answers, and how many when the caller does not say.
const MAX_LISTED: usize = 2_000;
const DEFAULT_LISTED: usize = 500;

/// The open anomalies of `person` sent to `municipality` for `resident`, each with its why.
fn open_anomalies(
    person: &PersonState,
    municipality: &str,
    resident: &str,
    day: kokuho_ids::Date,
) -> Vec<pb::OpenAnomaly> {
    let request = pb::ExplainRequest {
        municipality: municipality.into(),
        resident_number: resident.into(),
        anomaly: "all".into(),
        ..Default::default()
    };
    let why = explain(person, &request, day).explanations;
    let date = |d: Option<kokuho_ids::Date>| d.map(kokuho_ids::Date::to_yyyymmdd).unwrap_or(0);
    person
        .open
        .iter()
        .filter(|a| a.to == municipality && a.resident == resident)
        .zip(why)
        .map(|(a, why)| pb::OpenAnomaly {
            resident_number: resident.into(),
            anomaly: Some(pb::AnomalyView {
                code: a.code.code().into(),
                counterpart: a.counterpart.clone(),
                counterpart_start: date(a.counterpart_start),
                counterpart_end: date(a.counterpart_end),
            }),
            why: Some(why),
        })
        .collect()
}

/// The explanations `r` asks for, of the resident's periods and open anomalies (C1–C10).
fn explain(person: &PersonState, r: &pb::ExplainRequest, day: kokuho_ids::Date) -> pb::ExplainResponse {
    use kokuho_continuity_domain::explain;
    let periods: Vec<_> = person.periods.iter().map(|t| t.period.clone()).collect();
    let own = |m: &str, res: &str| m == r.municipality && res == r.resident_number;
    let mut out = Vec::new();
    if r.rs {
        for t in person.periods.iter().filter(|t| own(&t.period.municipality, &t.period.resident)) {
            if r.rs_start != 0 && t.period.start.to_yyyymmdd() != r.rs_start {
                continue;
            }
            let Some(reason) = explain::period(&periods, &t.period.key(), day) else { continue };
            let mut lines = reason.lines;
            lines.push(match &t.sent {
                Some(rs) => format!(
                    "最後に送った RS: 判定区分 {} 資格取得 {}({}) 資格喪失 {} 訂正 {}",
                    rs.judgement.code(),
                    rs.acquired_on,
                    rs.acquired_reason.code(),
                    rs.lost_on.map(|d| d.to_string()).unwrap_or_else(|| "なし".into()),
                    rs.correction.code()
                ),
                None => "この期間の RS はまだ送っていません".to_string(),
            });
            out.push(pb::Explanation {
                subject: format!("RS {} {} {}", r.municipality, r.resident_number, t.period.start),
                rules: reason.rules.iter().map(|s| s.to_string()).collect(),
                lines,
            });
        }
    }
    if !r.anomaly.is_empty() {
        for a in person.open.iter().filter(|a| own(&a.to, &a.resident)) {
            if r.anomaly != "all" && a.code.code() != r.anomaly {
                continue;
            }
            let reason = explain::anomaly(&periods, a, day);
            out.push(pb::Explanation {
                subject: format!("{} {} {} 相手先 {}", a.code.code(), r.municipality, r.resident_number, a.counterpart),
                rules: reason.rules.iter().map(|s| s.to_string()).collect(),
                lines: reason.lines,
            });
        }
    }
    pb::ExplainResponse { found: true, explanations: out }
}
