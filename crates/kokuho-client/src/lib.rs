//! The gRPC client of kokuho: what the `kokuho` CLI, the demo and the tests call. Thin: each
//! method is one call of the API (spec/cli.md names the commands built on them).

pub mod anchors;
pub mod scenario;

use std::path::{Path, PathBuf};
use std::time::Duration;

use kokuho_proto::continuity::v1 as cpb;
use kokuho_proto::continuity::v1::continuity_service_client::ContinuityServiceClient;
use kokuho_proto::history::v1 as hpb;
use kokuho_proto::history::v1::history_service_client::HistoryServiceClient;
use kokuho_proto::identity::v1 as ipb;
use kokuho_proto::identity::v1::identity_service_client::IdentityServiceClient;
use kokuho_proto::intake::v1 as pb;
use kokuho_proto::intake::v1::intake_service_client::IntakeServiceClient;
use kokuho_proto::results::v1 as rpb;
use kokuho_proto::results::v1::result_service_client::ResultServiceClient;
use kokuho_runtime::credentials::{AUTHORIZATION, Caller, Credentials};
use tonic::transport::Channel;

pub use kokuho_proto::continuity::v1::QueryPersonResponse;
pub use kokuho_proto::history::v1::{ExplainLinkResponse, Fact, HistoryResponse};
pub use kokuho_proto::identity::v1::{LookupIdsResponse, ReviewAction, ReviewCase, VerifyAuditResponse};
pub use kokuho_proto::intake::v1::{
    GetStatusResponse, ServiceProgress, SubmissionStatus, SubmitResponse, WaitIdleResponse,
};
use kokuho_proto::kogaku::v1::kogaku_service_client::KogakuServiceClient;
pub use kokuho_proto::kogaku::v1::{CandidateSummary, CountMonthsResponse, ExplainResponse};
pub use kokuho_proto::midserver::v1 as midserver;
use kokuho_proto::midserver::v1::mid_server_service_client::MidServerServiceClient;
pub use kokuho_proto::relay::v1 as relay;
use kokuho_proto::relay::v1::relay_service_client::RelayServiceClient;
pub use kokuho_proto::results::v1::{FileInfo, ListFilesResponse, ResultFile};
pub use tonic::{Code, Status};

/// Whose history ([`Client::history`]).
#[derive(Debug, Clone, Copy)]
pub enum HistorySubject<'a> {
    Resident {
        municipality: &'a str,
        resident: &'a str,
    },
    /// 都道府県被保険者ID (operators).
    Person(&'a str),
}

/// Bytes per upload chunk.
const CHUNK: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {endpoint}: {source}")]
    Connect { endpoint: String, source: tonic::transport::Error },
    #[error("{}", .0.message())]
    Status(#[from] Status),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl ClientError {
    /// True if the server answered (the request was refused), false if it could not be reached.
    pub fn is_answer(&self) -> bool {
        matches!(self, ClientError::Status(s) if s.code() != Code::Unavailable)
    }
}

#[derive(Clone)]
pub struct Client {
    intake: IntakeServiceClient<Channel>,
    results: ResultServiceClient<Channel>,
    identity: IdentityServiceClient<Channel>,
    continuity: ContinuityServiceClient<Channel>,
    kogaku: KogakuServiceClient<Channel>,
    midserver: MidServerServiceClient<Channel>,
    relay: RelayServiceClient<Channel>,
    history: HistoryServiceClient<Channel>,
    /// Sent as `authorization: Bearer <token>` (the caller's credential).
    token: Option<String>,
    /// Without a token: the dev credentials of `kokuho up` (a token per role), from which each
    /// request takes the role it acts as (the municipality it names, the operator, relay).
    dev_credentials: Option<PathBuf>,
}

/// Where a deployment's endpoint names the service ([`Client::connect_trusting`]).
pub const SERVICE_PLACEHOLDER: &str = "{service}";

/// The services a client calls, by the name a deployment gives each (its Kubernetes Service):
/// intake (which serves the result files too), identity, continuity, kogaku, relay, history,
/// and the intermediate server's simulator.
pub const SERVICES: [&str; 7] = ["intake", "identity", "continuity", "kogaku", "relay", "history", "midserver-sim"];

impl Client {
    pub async fn connect(endpoint: &str) -> Result<Self, ClientError> {
        Self::connect_trusting(endpoint, None).await
    }

    /// Connects to `endpoint`; an `https://` endpoint is trusted when its certificate was signed
    /// by the CA of `tls`, and is shown the client certificate of `tls` (mutual TLS).
    ///
    /// One endpoint serves every API under `kokuho up`. A deployment has one per service: an
    /// endpoint with `{service}` in it (`https://{service}.kokuho.svc:50051`) is the endpoint of
    /// each service with its name there (intake — which serves the result files too —,
    /// identity, continuity, kogaku, relay, history, midserver-sim: the Kubernetes Services of
    /// k8s/base). Those channels connect on first use, so a service that is down fails the calls
    /// made to it (Unavailable), not the client.
    pub async fn connect_trusting(
        endpoint: &str,
        tls: Option<&kokuho_runtime::tls::ClientTls>,
    ) -> Result<Self, ClientError> {
        let configured = |url: &str| {
            Ok::<_, ClientError>(
                kokuho_runtime::tls::endpoint(url, tls)
                    .map_err(|e| ClientError::Status(Status::invalid_argument(e)))?
                    .connect_timeout(Duration::from_secs(5)),
            )
        };
        if endpoint.contains(SERVICE_PLACEHOLDER) {
            return Self::of_channels(|service| {
                Ok(configured(&endpoint.replace(SERVICE_PLACEHOLDER, service))?.connect_lazy())
            });
        }
        let channel = configured(endpoint)?
            .connect()
            .await
            .map_err(|source| ClientError::Connect { endpoint: endpoint.to_string(), source })?;
        Self::of_channels(|_| Ok(channel.clone()))
    }

    /// A client whose API for each service goes over `channel(<service name>)`.
    fn of_channels(mut channel: impl FnMut(&str) -> Result<Channel, ClientError>) -> Result<Self, ClientError> {
        let [intake, identity, continuity, kogaku, relay, history, midserver] = SERVICES;
        let intake = channel(intake)?;
        Ok(Self {
            intake: IntakeServiceClient::new(intake.clone()).max_decoding_message_size(64 << 20),
            results: ResultServiceClient::new(intake).max_decoding_message_size(256 << 20),
            identity: IdentityServiceClient::new(channel(identity)?),
            continuity: ContinuityServiceClient::new(channel(continuity)?),
            kogaku: KogakuServiceClient::new(channel(kogaku)?),
            midserver: MidServerServiceClient::new(channel(midserver)?),
            relay: RelayServiceClient::new(channel(relay)?),
            history: HistoryServiceClient::new(channel(history)?).max_decoding_message_size(64 << 20),
            token: None,
            dev_credentials: None,
        })
    }

    /// The same client acting with `token` as its credential.
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Self { token: Some(token.into()), ..self.clone() }
    }

    /// The same client acting, request by request, with the dev token of the role each request
    /// is made in (`dir`: the `credentials/` of `kokuho up`'s data dir). A token given with
    /// [`Client::with_token`] wins.
    pub fn with_dev_credentials(&self, dir: impl Into<PathBuf>) -> Self {
        Self { dev_credentials: Some(dir.into()), ..self.clone() }
    }

    /// `message` with the credential of `caller` (security.md S5).
    fn request<T>(&self, caller: &Caller, message: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        let token = self
            .token
            .clone()
            .or_else(|| self.dev_credentials.as_ref().and_then(|dir| Credentials::token_of(dir, caller).ok()));
        if let Some(t) = token
            && let Ok(v) = format!("Bearer {t}").parse()
        {
            r.metadata_mut().insert(AUTHORIZATION, v);
        }
        r
    }

    /// K5: a household's counted 高額 months before `month` (YYYYMM), for its own municipality.
    pub async fn count_months(
        &mut self,
        municipality: &str,
        household: &str,
        month: u32,
    ) -> Result<CountMonthsResponse, ClientError> {
        let m = kokuho_proto::kogaku::v1::CountMonthsRequest {
            municipality: municipality.into(),
            household_number: household.into(),
            month,
        };
        let r = self.kogaku.count_months(self.request(&Caller::Municipality(municipality.into()), m)).await?;
        Ok(r.into_inner())
    }

    /// H3: B's decision on one of its candidates (`decision` "1" 継続, "2" 非継続).
    pub async fn decide(
        &mut self,
        municipality: &str,
        candidate: &str,
        decision: &str,
    ) -> Result<kokuho_proto::kogaku::v1::CandidateSummary, ClientError> {
        let m = kokuho_proto::kogaku::v1::DecideRequest {
            municipality: municipality.into(),
            candidate: candidate.into(),
            decision: decision.into(),
            ..Default::default()
        };
        let r = self.kogaku.decide(self.request(&Caller::Municipality(municipality.into()), m)).await?;
        Ok(r.into_inner().candidate.unwrap_or_default())
    }

    /// H3: the operator's reversal of a decision, with who and why (audited).
    pub async fn reverse_decision(
        &mut self,
        municipality: &str,
        candidate: &str,
        decision: &str,
        operator: &str,
        reason: &str,
    ) -> Result<kokuho_proto::kogaku::v1::CandidateSummary, ClientError> {
        let m = kokuho_proto::kogaku::v1::DecideRequest {
            municipality: municipality.into(),
            candidate: candidate.into(),
            decision: decision.into(),
            operator: operator.into(),
            reason: reason.into(),
        };
        let r = self.kogaku.decide(self.request(&Caller::operator(), m)).await?;
        Ok(r.into_inner().candidate.unwrap_or_default())
    }

    /// The candidates of `municipality` (its own credential), or of all (`None`, the operator).
    pub async fn list_candidates(
        &mut self,
        municipality: Option<&str>,
        changed_only: bool,
    ) -> Result<Vec<kokuho_proto::kogaku::v1::CandidateSummary>, ClientError> {
        let caller = match municipality {
            Some(m) => Caller::Municipality(m.into()),
            None => Caller::operator(),
        };
        let m = kokuho_proto::kogaku::v1::ListCandidatesRequest {
            municipality: municipality.unwrap_or_default().into(),
            changed_only,
        };
        Ok(self.kogaku.list_candidates(self.request(&caller, m)).await?.into_inner().candidates)
    }

    /// Why a candidate's RK and RG rows say what they say (its municipality's credential).
    pub async fn explain_candidate(
        &mut self,
        municipality: &str,
        candidate: &str,
    ) -> Result<kokuho_proto::kogaku::v1::ExplainResponse, ClientError> {
        let m =
            kokuho_proto::kogaku::v1::ExplainRequest { municipality: municipality.into(), candidate: candidate.into() };
        Ok(self.kogaku.explain(self.request(&Caller::Municipality(municipality.into()), m)).await?.into_inner())
    }

    /// The intermediate server (its simulator under `kokuho up`): one Apply as `caller` (relay,
    /// or the partition's municipality).
    pub async fn midserver_apply(
        &mut self,
        caller: &Caller,
        request: midserver::ApplyRequest,
    ) -> Result<midserver::ApplyResponse, ClientError> {
        Ok(self.midserver.apply(self.request(caller, request)).await?.into_inner())
    }

    /// The intermediate server: many Applies in one call, answered in order.
    pub async fn midserver_apply_batch(
        &mut self,
        caller: &Caller,
        requests: Vec<midserver::ApplyRequest>,
    ) -> Result<Vec<midserver::ApplyResponse>, ClientError> {
        let m = midserver::ApplyBatchRequest { requests };
        Ok(self.midserver.apply_batch(self.request(caller, m)).await?.into_inner().answers)
    }

    /// オンライン資格確認 as a clinic asks it (with the operator's credential under `kokuho up`).
    pub async fn eligibility(
        &mut self,
        request: midserver::EligibilityRequest,
    ) -> Result<midserver::EligibilityResponse, ClientError> {
        Ok(self.midserver.eligibility(self.request(&Caller::operator(), request)).await?.into_inner())
    }

    /// What a partition of the intermediate server holds (its municipality's credential).
    pub async fn midserver_partition(&mut self, partition: &str) -> Result<Vec<midserver::Subscriber>, ClientError> {
        Ok(self.midserver_listing(partition).await?.subscribers)
    }

    /// What a partition holds, with how many Apply calls it applied (each key once).
    pub async fn midserver_listing(
        &mut self,
        partition: &str,
    ) -> Result<midserver::ListPartitionResponse, ClientError> {
        let m = midserver::ListPartitionRequest { partition: partition.into() };
        let r = self.midserver.list_partition(self.request(&Caller::Municipality(partition.into()), m)).await?;
        Ok(r.into_inner())
    }

    /// Operator: the faults the simulator injects from now on.
    pub async fn midserver_faults(&mut self, faults: midserver::Faults) -> Result<midserver::Faults, ClientError> {
        let m = midserver::SetFaultsRequest { faults: Some(faults) };
        Ok(self
            .midserver
            .set_faults(self.request(&Caller::operator(), m))
            .await?
            .into_inner()
            .faults
            .unwrap_or_default())
    }

    /// The IDs of (municipality, 宛名番号); only the municipality's own credential may ask.
    pub async fn lookup_ids(
        &mut self,
        municipality: &str,
        resident: &str,
    ) -> Result<ipb::LookupIdsResponse, ClientError> {
        let m = ipb::LookupIdsRequest { municipality: municipality.into(), resident_number: resident.into() };
        Ok(self.identity.lookup_ids(self.request(&Caller::Municipality(municipality.into()), m)).await?.into_inner())
    }

    /// A person's periods, determinations and open anomalies, for the municipality's own credential.
    pub async fn query_person(
        &mut self,
        municipality: &str,
        resident: &str,
    ) -> Result<QueryPersonResponse, ClientError> {
        let m = cpb::QueryPersonRequest { municipality: municipality.into(), resident_number: resident.into() };
        Ok(self
            .continuity
            .query_person(self.request(&Caller::Municipality(municipality.into()), m))
            .await?
            .into_inner())
    }

    /// A resident's history (its municipality's credential, or the operator's when
    /// `as_operator`), or with `person` a person's (the operator's): every fact in order.
    pub async fn history(
        &mut self,
        subject: HistorySubject<'_>,
        as_of: u32,
        as_operator: bool,
    ) -> Result<HistoryResponse, ClientError> {
        let (m, caller) = match subject {
            HistorySubject::Resident { municipality, resident } => (
                hpb::HistoryRequest {
                    municipality: municipality.into(),
                    resident_number: resident.into(),
                    as_of,
                    ..Default::default()
                },
                Caller::Municipality(municipality.into()),
            ),
            HistorySubject::Person(p) => {
                (hpb::HistoryRequest { person: p.into(), as_of, ..Default::default() }, Caller::operator())
            }
        };
        let caller = if as_operator { Caller::operator() } else { caller };
        Ok(self.history.history(self.request(&caller, m)).await?.into_inner())
    }

    /// Why a resident is linked to its person (I1–I6), with its municipality's credential.
    pub async fn explain_link(
        &mut self,
        municipality: &str,
        resident: &str,
    ) -> Result<ExplainLinkResponse, ClientError> {
        let m = hpb::ExplainLinkRequest { municipality: municipality.into(), resident_number: resident.into() };
        Ok(self.history.explain_link(self.request(&Caller::Municipality(municipality.into()), m)).await?.into_inner())
    }

    /// Why a resident's RS rows (`rs`: the period starting on `rs_start`, 0 every period) and open
    /// anomalies (`anomaly`: a code or "all") say what they say (C1–C10), with its municipality's
    /// credential.
    pub async fn explain_periods(
        &mut self,
        municipality: &str,
        resident: &str,
        rs: Option<u32>,
        anomaly: Option<&str>,
    ) -> Result<cpb::ExplainResponse, ClientError> {
        let m = cpb::ExplainRequest {
            municipality: municipality.into(),
            resident_number: resident.into(),
            rs: rs.is_some(),
            rs_start: rs.unwrap_or(0),
            anomaly: anomaly.unwrap_or_default().into(),
        };
        Ok(self.continuity.explain(self.request(&Caller::Municipality(municipality.into()), m)).await?.into_inner())
    }

    /// The municipality's open anomalies (`limit` residents after 宛名番号 `after` — empty:
    /// from the first —, 宛名番号 order), each with its why (C3–C7), how many residents have
    /// one, and where the next page starts.
    pub async fn list_anomalies(
        &mut self,
        municipality: &str,
        after: &str,
        limit: u32,
    ) -> Result<cpb::ListAnomaliesResponse, ClientError> {
        let m = cpb::ListAnomaliesRequest { municipality: municipality.into(), limit, after: after.into() };
        Ok(self
            .continuity
            .list_anomalies(self.request(&Caller::Municipality(municipality.into()), m))
            .await?
            .into_inner())
    }

    /// Operator: the held records (I6).
    pub async fn list_reviews(&mut self) -> Result<Vec<ipb::ReviewCase>, ClientError> {
        Ok(self
            .identity
            .list_reviews(self.request(&Caller::operator(), ipb::ListReviewsRequest {}))
            .await?
            .into_inner()
            .cases)
    }

    /// Operator: link, relink or reject a held record.
    pub async fn resolve_review(
        &mut self,
        case_id: &str,
        action: ipb::ReviewAction,
        reason: &str,
        operator: &str,
    ) -> Result<String, ClientError> {
        let m = ipb::ResolveReviewRequest {
            case_id: case_id.into(),
            action: action as i32,
            reason: reason.into(),
            operator: operator.into(),
        };
        Ok(self.identity.resolve_review(self.request(&Caller::operator(), m)).await?.into_inner().pref_id)
    }

    /// relay only: a person's 個人番号 (audited by identity).
    pub async fn release_number(&mut self, pref_id: &str, purpose: &str) -> Result<String, ClientError> {
        let m = ipb::ReleaseNumberRequest { pref_id: pref_id.into(), purpose: purpose.into() };
        Ok(self.identity.release_number(self.request(&Caller::Relay, m)).await?.into_inner().individual_number)
    }

    /// Operator: checks the audit log's chains, signatures and `anchors` (security.md S8).
    pub async fn verify_audit(
        &mut self,
        anchors: Vec<ipb::AuditAnchor>,
    ) -> Result<ipb::VerifyAuditResponse, ClientError> {
        let request = self.request(&Caller::operator(), ipb::VerifyAuditRequest { anchors });
        Ok(self.identity.verify_audit(request).await?.into_inner())
    }

    /// Operator: the head of every audit chain now.
    pub async fn audit_heads(&mut self) -> Result<Vec<ipb::AuditAnchor>, ClientError> {
        let request = self.request(&Caller::operator(), ipb::AuditHeadsRequest {});
        Ok(self.identity.audit_heads(request).await?.into_inner().heads)
    }

    /// Operator: appends the head of every audit chain to the anchor file `path` (one JSON line
    /// per chain, with when), a file kept outside NATS (S8). Returns the heads.
    pub async fn anchor_audit(&mut self, path: &std::path::Path) -> Result<Vec<ipb::AuditAnchor>, ClientError> {
        let heads = self.audit_heads().await?;
        anchors::append(path, &heads).map_err(|source| ClientError::Io { path: path.display().to_string(), source })?;
        Ok(heads)
    }

    /// One submission of `municipality`: (file name, bytes) pairs.
    pub async fn submit(
        &mut self,
        municipality: &str,
        files: Vec<(String, Vec<u8>)>,
    ) -> Result<SubmitResponse, ClientError> {
        let mut parts = vec![pb::SubmitRequest {
            part: Some(pb::submit_request::Part::Header(pb::SubmitHeader {
                municipality: municipality.to_string(),
                file_names: files.iter().map(|(n, _)| n.clone()).collect(),
            })),
        }];
        for (i, (_, bytes)) in files.into_iter().enumerate() {
            for chunk in bytes.chunks(CHUNK) {
                parts.push(pb::SubmitRequest {
                    part: Some(pb::submit_request::Part::Chunk(pb::FileChunk {
                        file_index: i as u32,
                        data: chunk.to_vec(),
                    })),
                });
            }
        }
        let request = self.request(&Caller::Municipality(municipality.into()), tokio_stream::iter(parts));
        Ok(self.intake.submit(request).await?.into_inner())
    }

    pub async fn status(&mut self, receipt: &str) -> Result<GetStatusResponse, ClientError> {
        let municipality = kokuho_ids::receipt_municipality(receipt);
        let request =
            self.request(&Caller::Municipality(municipality.into()), pb::GetStatusRequest { receipt: receipt.into() });
        Ok(self.intake.get_status(request).await?.into_inner())
    }

    /// Waits until nothing is pending anywhere: every consumer of the log, and relay's deliveries
    /// to the intermediate server (an operation backing off while the server is down counts as
    /// pending). Two idle looks at both in a row; a system without relay is idle by the log alone.
    pub async fn wait_idle(&mut self, timeout: Duration) -> Result<WaitIdleResponse, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut settled = false;
        loop {
            // Each call well inside the server's request timeout (grpc_timeout_seconds).
            let left = deadline.saturating_duration_since(tokio::time::Instant::now()).min(Duration::from_secs(300));
            let timeout_ms = left.as_millis().min(u128::from(u32::MAX)) as u32;
            let r = self
                .intake
                .wait_idle(self.request(&Caller::operator(), pb::WaitIdleRequest { timeout_ms }))
                .await?
                .into_inner();
            if !r.idle {
                if tokio::time::Instant::now() >= deadline {
                    return Ok(r);
                }
                continue;
            }
            let relay_idle =
                match self.relay.status(self.request(&Caller::operator(), relay::StatusRequest::default())).await {
                    Ok(s) => s.into_inner().idle,
                    Err(s) if s.code() == Code::Unimplemented => return Ok(r),
                    Err(s) => return Err(s.into()),
                };
            if relay_idle && settled {
                return Ok(r);
            }
            settled = relay_idle;
            if tokio::time::Instant::now() >= deadline {
                return Ok(WaitIdleResponse { idle: false, ..r });
            }
            if !relay_idle {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// relay's liveness per partition (a municipality: its own; the operator: every one).
    pub async fn relay_status(&mut self, municipality: Option<&str>) -> Result<relay::StatusResponse, ClientError> {
        let caller = municipality.map(|m| Caller::Municipality(m.into())).unwrap_or_else(Caller::operator);
        let request =
            relay::StatusRequest { municipality: municipality.unwrap_or_default().into(), ..Default::default() };
        Ok(self.relay.status(self.request(&caller, request)).await?.into_inner())
    }

    /// A municipality's relay partition with `limit` of its waiting records (R01–R04) from
    /// `after` (a partition's `waiting_next`; empty: the first).
    pub async fn relay_waiting(
        &mut self,
        municipality: &str,
        after: &str,
        limit: u32,
    ) -> Result<relay::StatusResponse, ClientError> {
        let request = relay::StatusRequest {
            municipality: municipality.into(),
            waiting_records: limit,
            waiting_after: after.into(),
        };
        Ok(self.relay.status(self.request(&Caller::Municipality(municipality.into()), request)).await?.into_inner())
    }

    /// P1: a provision request (operator, for the institution asking), recorded (P2).
    pub async fn provide(&mut self, request: relay::ProvideRequest) -> Result<relay::ProvideResponse, ClientError> {
        Ok(self.relay.provide(self.request(&Caller::operator(), request)).await?.into_inner())
    }

    /// P2: the record of provision requests (operator).
    pub async fn provision_log(&mut self) -> Result<Vec<relay::ProvisionRecorded>, ClientError> {
        let request = relay::ProvisionLogRequest {};
        Ok(self.relay.provision_log(self.request(&Caller::operator(), request)).await?.into_inner().entries)
    }

    pub async fn close_day(&mut self, date: u32) -> Result<pb::CloseDayResponse, ClientError> {
        Ok(self.intake.close_day(self.request(&Caller::operator(), pb::CloseDayRequest { date })).await?.into_inner())
    }

    /// Every pending result file of `municipality`, not yet acknowledged.
    pub async fn fetch_files(&mut self, municipality: &str) -> Result<Vec<ResultFile>, ClientError> {
        let m = rpb::FetchFilesRequest { municipality: municipality.to_string() };
        let r = self.results.fetch_files(self.request(&Caller::Municipality(municipality.into()), m)).await?;
        Ok(r.into_inner().files)
    }

    /// The result files of `municipality` without content: pending ones, and up to `limit`
    /// acknowledged ones below file sequence `before` (0: the newest), newest first.
    pub async fn list_files(
        &mut self,
        municipality: &str,
        before: u32,
        limit: u32,
    ) -> Result<rpb::ListFilesResponse, ClientError> {
        let m = rpb::ListFilesRequest { municipality: municipality.to_string(), before, limit };
        Ok(self.results.list_files(self.request(&Caller::Municipality(municipality.into()), m)).await?.into_inner())
    }

    /// One result file by name, pending or acknowledged (a stored one again, for a clerk who
    /// lost it).
    pub async fn get_file(&mut self, municipality: &str, name: &str) -> Result<ResultFile, ClientError> {
        let m = rpb::GetFileRequest { municipality: municipality.to_string(), name: name.to_string() };
        let r = self.results.get_file(self.request(&Caller::Municipality(municipality.into()), m)).await?;
        r.into_inner().file.ok_or_else(|| ClientError::Status(Status::internal("GetFile answered without a file")))
    }

    pub async fn acknowledge(&mut self, municipality: &str, names: Vec<String>) -> Result<u32, ClientError> {
        let m = rpb::AcknowledgeFilesRequest { municipality: municipality.to_string(), names };
        let r = self.results.acknowledge_files(self.request(&Caller::Municipality(municipality.into()), m)).await?;
        Ok(r.into_inner().acknowledged)
    }

    /// Writes every pending file of `municipality` into `dir` (synced to disk), then
    /// acknowledges them. Returns the files written, in order.
    pub async fn fetch_into(&mut self, municipality: &str, dir: &Path) -> Result<Vec<ResultFile>, ClientError> {
        let files = self.fetch_files(municipality).await?;
        save_files(&files, dir).await?;
        if !files.is_empty() {
            self.acknowledge(municipality, files.iter().map(|f| f.name.clone()).collect()).await?;
        }
        Ok(files)
    }
}

/// Writes result files into `dir` under their names, each synced to disk before returning.
pub async fn save_files(files: &[ResultFile], dir: &Path) -> Result<(), ClientError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ClientError::Io { path, source }
    };
    tokio::fs::create_dir_all(dir).await.map_err(io(dir))?;
    for f in files {
        let path = dir.join(&f.name);
        let mut out = tokio::fs::File::create(&path).await.map_err(io(&path))?;
        tokio::io::AsyncWriteExt::write_all(&mut out, &f.content).await.map_err(io(&path))?;
        out.sync_all().await.map_err(io(&path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every service a templated endpoint names is a Service of k8s/base with the API port.
    #[test]
    fn templated_names_are_the_manifests_services() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../k8s/base");
        let mut manifests = String::new();
        for entry in walk(std::path::Path::new(dir)) {
            manifests.push_str(&std::fs::read_to_string(entry).unwrap());
            manifests.push_str("\n---\n");
        }
        for service in SERVICES {
            let found = manifests.split("\n---\n").any(|doc| {
                doc.contains("kind: Service\n")
                    && doc.contains(&format!("  name: {service}\n"))
                    && doc.contains("port: 50051")
            });
            assert!(found, "no Service {service} with port 50051 in k8s/base");
        }
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else if path.extension().is_some_and(|e| e == "yaml") {
                out.push(path);
            }
        }
        out
    }

    /// A templated endpoint connects nothing up front: a service that is down fails its calls
    /// (Unavailable, the CLI's "could not be reached"), not the client.
    #[tokio::test]
    async fn a_templated_endpoint_connects_on_use() {
        let mut client = Client::connect_trusting("http://{service}.invalid:50051", None).await.unwrap();
        let e = client.list_reviews().await.unwrap_err();
        assert!(!e.is_answer(), "{e}");
        let e = Client::connect("http://127.0.0.1:1").await.map(|_| ()).unwrap_err();
        assert!(matches!(e, ClientError::Connect { .. }), "one endpoint is connected up front: {e}");
    }
}
