//! gRPC glue: decode the request, call one operation of [`Intake`], map the answer.

use std::time::Duration;

use futures::StreamExt as _;
use kokuho_ids::LocalGovCode;
use kokuho_proto::intake::v1 as pb;
use kokuho_proto::intake::v1::intake_service_server::{IntakeService, IntakeServiceServer};
use kokuho_proto::results::v1 as rpb;
use kokuho_proto::results::v1::result_service_server::{ResultService, ResultServiceServer};
use kokuho_runtime::audit::Auditor;
use kokuho_runtime::credentials::Credentials;
use tonic::{Request, Response, Status, Streaming};

use crate::{AppError, Intake, SubmitFile};

pub type IntakeServer = IntakeServiceServer<IntakeGrpc>;
pub type ResultServer = ResultServiceServer<ResultGrpc>;

/// Largest gRPC message intake accepts (a chunk of a file).
const MAX_MESSAGE: usize = 4 << 20;

pub(crate) fn services(intake: Intake, credentials: Credentials, auditor: Auditor) -> (IntakeServer, ResultServer) {
    let grpc = || IntakeGrpc { intake: intake.clone(), credentials: credentials.clone(), auditor: auditor.clone() };
    (
        IntakeServiceServer::new(grpc()).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(64 << 20),
        ResultServiceServer::new(ResultGrpc(grpc())).max_encoding_message_size(256 << 20),
    )
}

/// Who may do what (security.md S5): a municipality submits, asks for the status of its own
/// receipts and fetches its own result files; operators close the day and may ask for any
/// status; waiting for the system to settle needs any valid credential. Reads of personal data
/// (statuses with their rows, result files) and refusals are audited (S6, S8).
pub struct IntakeGrpc {
    intake: Intake,
    credentials: Credentials,
    auditor: Auditor,
}

pub struct ResultGrpc(IntakeGrpc);

impl From<AppError> for Status {
    fn from(e: AppError) -> Self {
        kokuho_runtime::errors::status(&e)
    }
}

fn municipality(code: &str) -> Result<LocalGovCode, Status> {
    LocalGovCode::parse(code).map_err(|e| Status::invalid_argument(format!("municipality code {code:?}: {e}")))
}

#[tonic::async_trait]
impl IntakeService for IntakeGrpc {
    async fn submit(
        &self,
        request: Request<Streaming<pb::SubmitRequest>>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        let limits = &self.intake.inner.config.limits;
        let caller = self.credentials.caller_of(&request)?;
        let mut stream = request.into_inner();
        let header = match stream.next().await {
            Some(Ok(pb::SubmitRequest { part: Some(pb::submit_request::Part::Header(h)) })) => h,
            Some(Err(e)) => return Err(e),
            _ => return Err(Status::invalid_argument("a submission starts with its header")),
        };
        let purpose = format!("a submission of {}", header.municipality);
        self.auditor.require(&caller, caller.is_municipality(&header.municipality), "intake.Submit", &purpose).await?;
        let submitter = municipality(&header.municipality)?;
        if header.file_names.is_empty() || header.file_names.len() > limits.max_files {
            return Err(Status::invalid_argument(format!("a submission holds 1 to {} files", limits.max_files)));
        }
        // S9: one submission per municipality at a time, then a small permit before any file is
        // read, and a large one once its files grow past a small submission's bytes; held until
        // decided.
        let slot = self.intake.inner.receiving.lock().await.entry(header.municipality.clone()).or_default().clone();
        let _own = slot.lock_owned().await;
        let stopping = |_| Status::unavailable("intake is stopping");
        let _small = self.intake.inner.small.acquire().await.map_err(stopping)?;
        let mut large = None;
        let mut received = 0usize;
        let mut files: Vec<SubmitFile> =
            header.file_names.into_iter().map(|name| SubmitFile { name, bytes: Vec::new() }).collect();
        while let Some(part) = stream.next().await {
            match part?.part {
                Some(pb::submit_request::Part::Chunk(chunk)) => {
                    let file = files
                        .get_mut(chunk.file_index as usize)
                        .ok_or_else(|| Status::invalid_argument(format!("no file {}", chunk.file_index)))?;
                    if file.bytes.len() + chunk.data.len() > limits.max_file_bytes {
                        return Err(Status::resource_exhausted(format!(
                            "file {}: more than the limit of {} bytes",
                            file.name, limits.max_file_bytes
                        )));
                    }
                    received += chunk.data.len();
                    if received > crate::SMALL_BYTES && large.is_none() {
                        large = Some(self.intake.inner.uploads.acquire().await.map_err(stopping)?);
                    }
                    file.bytes.extend_from_slice(&chunk.data);
                }
                _ => return Err(Status::invalid_argument("only file chunks may follow the header")),
            }
        }
        let s = self.intake.submit(submitter, files).await?;
        Ok(Response::new(pb::SubmitResponse {
            receipt: s.receipt,
            status: s.status as i32,
            code: s.code.unwrap_or_default(),
            accepted: s.accepted,
            rejected: s.rejected,
            warnings: s.warnings,
            rows: s.rows,
        }))
    }

    async fn get_status(
        &self,
        request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        let caller = self.credentials.caller_of(&request)?;
        let receipt = request.into_inner().receipt;
        let own = caller.is_municipality(kokuho_ids::receipt_municipality(&receipt));
        self.auditor.require(&caller, own || caller.is_operator(), "intake.GetStatus", &receipt).await?;
        let status = self.intake.status(&receipt).await?;
        self.auditor.allowed(&caller, "intake.GetStatus", Vec::new(), &receipt).await?;
        Ok(Response::new(status))
    }

    async fn close_day(&self, request: Request<pb::CloseDayRequest>) -> Result<Response<pb::CloseDayResponse>, Status> {
        let caller = self.credentials.caller_of(&request)?;
        caller.require(caller.is_operator(), "a day close")?;
        let (business_date, previous) = self.intake.close_day(request.into_inner().date).await?;
        Ok(Response::new(pb::CloseDayResponse { business_date, previous }))
    }

    async fn wait_idle(&self, request: Request<pb::WaitIdleRequest>) -> Result<Response<pb::WaitIdleResponse>, Status> {
        self.credentials.caller_of(&request)?;
        let patience = Duration::from_millis(u64::from(request.into_inner().timeout_ms.clamp(1, 3_600_000)));
        let idle = self.intake.wait_idle(patience).await?;
        let progress = self
            .intake
            .progress()
            .await?
            .into_iter()
            .map(|p| pb::ServiceProgress {
                service: p.consumer,
                done: p.pending == 0 && p.ack_pending == 0,
                pending: p.pending + p.ack_pending,
            })
            .collect();
        Ok(Response::new(pb::WaitIdleResponse { idle, progress }))
    }
}

#[tonic::async_trait]
impl ResultService for ResultGrpc {
    async fn fetch_files(
        &self,
        request: Request<rpb::FetchFilesRequest>,
    ) -> Result<Response<rpb::FetchFilesResponse>, Status> {
        const ACTION: &str = "intake.FetchFiles";
        let g = &self.0;
        let caller = g.credentials.caller_of(&request)?;
        let r = request.into_inner();
        g.auditor.require(&caller, caller.is_municipality(&r.municipality), ACTION, &r.municipality).await?;
        let muni = municipality(&r.municipality)?;
        let files: Vec<rpb::ResultFile> = g
            .intake
            .fetch(muni)
            .await?
            .into_iter()
            .map(|f| rpb::ResultFile { name: f.name, kind: f.kind, content: f.content, rows: f.rows })
            .collect();
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        let purpose = format!("{}: {}", r.municipality, names.join(" "));
        g.auditor.allowed(&caller, ACTION, Vec::new(), &purpose).await?;
        Ok(Response::new(rpb::FetchFilesResponse { files }))
    }

    async fn acknowledge_files(
        &self,
        request: Request<rpb::AcknowledgeFilesRequest>,
    ) -> Result<Response<rpb::AcknowledgeFilesResponse>, Status> {
        let g = &self.0;
        let caller = g.credentials.caller_of(&request)?;
        let r = request.into_inner();
        g.auditor
            .require(&caller, caller.is_municipality(&r.municipality), "intake.AcknowledgeFiles", &r.municipality)
            .await?;
        let muni = municipality(&r.municipality)?;
        let acknowledged = g.intake.acknowledge(muni, r.names).await?;
        Ok(Response::new(rpb::AcknowledgeFilesResponse { acknowledged }))
    }

    async fn list_files(
        &self,
        request: Request<rpb::ListFilesRequest>,
    ) -> Result<Response<rpb::ListFilesResponse>, Status> {
        /// How many acknowledged files a page names: by default, and at most.
        const PAGE: u32 = 50;
        const MAX_PAGE: u32 = 500;
        let g = &self.0;
        let caller = g.credentials.caller_of(&request)?;
        let r = request.into_inner();
        g.auditor
            .require(&caller, caller.is_municipality(&r.municipality), "intake.ListFiles", &r.municipality)
            .await?;
        let muni = municipality(&r.municipality)?;
        let limit = if r.limit == 0 { PAGE } else { r.limit.min(MAX_PAGE) };
        let listing = g.intake.list_files(muni, r.before, limit as usize).await?;
        let info = |f: kokuho_outbox::FileInfo| rpb::FileInfo {
            name: f.name,
            kind: f.kind,
            rows: f.rows,
            business_date: f.business_date,
            file_sequence: f.file_sequence,
            acknowledged: f.acknowledged,
        };
        Ok(Response::new(rpb::ListFilesResponse {
            pending: listing.pending.into_iter().map(info).collect(),
            acknowledged: listing.acknowledged.into_iter().map(info).collect(),
            next_before: listing.next_before,
        }))
    }

    async fn get_file(&self, request: Request<rpb::GetFileRequest>) -> Result<Response<rpb::GetFileResponse>, Status> {
        const ACTION: &str = "intake.GetFile";
        let g = &self.0;
        let caller = g.credentials.caller_of(&request)?;
        let r = request.into_inner();
        g.auditor.require(&caller, caller.is_municipality(&r.municipality), ACTION, &r.municipality).await?;
        let muni = municipality(&r.municipality)?;
        let f = g
            .intake
            .file(muni, &r.name)
            .await?
            .ok_or_else(|| Status::not_found(format!("{} has no result file {:?}", r.municipality, r.name)))?;
        g.auditor.allowed(&caller, ACTION, Vec::new(), &format!("{}: {}", r.municipality, f.name)).await?;
        let file = rpb::ResultFile { name: f.name, kind: f.kind, content: f.content, rows: f.rows };
        Ok(Response::new(rpb::GetFileResponse { file: Some(file) }))
    }
}
