//! The submit command: decide a submission and append its events.

use kokuho_bus::event;
use kokuho_bus::{Append, BusErrorKind, MAX_BATCH};
use kokuho_crypto::Sealer;
use kokuho_ids::LocalGovCode;
use kokuho_intake_domain::submission::{self, FileInput, Input, Outcome};
use kokuho_intake_domain::{ReRow, file};
use kokuho_proto::intake::v1 as pb;
use kokuho_proto::results::v1::ResultRow;
use prost::Message as _;

use crate::{AppError, Event, Events, INTAKE, Intake, PATIENCE, convert, records_subject, state, submission_subject};
use kokuho_intake_contract::sealed_subject;

/// One file as the caller sent it.
#[derive(Debug, Clone)]
pub struct SubmitFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// What the caller gets back at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    pub receipt: String,
    pub status: pb::SubmissionStatus,
    pub code: Option<String>,
    pub accepted: u32,
    pub rejected: u32,
    pub warnings: u32,
    pub rows: Vec<ResultRow>,
}

/// Most records in one log message, and most bytes of records in one message.
const CHUNK_RECORDS: usize = 1_000;

impl Intake {
    /// Checks the caller's files against the size limits (S9) before any parsing.
    pub fn check_limits(&self, files: &[SubmitFile]) -> Result<(), AppError> {
        let limits = &self.inner.config.limits;
        if files.is_empty() {
            return Err(AppError::TooLarge("a submission needs at least one file".into()));
        }
        if files.len() > limits.max_files {
            return Err(AppError::TooLarge(format!(
                "a submission holds at most {} files; this one has {}",
                limits.max_files,
                files.len()
            )));
        }
        for f in files {
            if f.bytes.len() > limits.max_file_bytes {
                return Err(AppError::TooLarge(format!(
                    "file {}: {} bytes, more than the limit of {} bytes",
                    f.name,
                    f.bytes.len(),
                    limits.max_file_bytes
                )));
            }
            if let Some((i, _)) =
                f.bytes.split(|b| *b == b'\n').enumerate().find(|(_, line)| line.len() > limits.max_line_bytes)
            {
                return Err(AppError::TooLarge(format!(
                    "file {}, line {}: longer than the limit of {} bytes",
                    f.name,
                    i + 1,
                    limits.max_line_bytes
                )));
            }
            let lines = f.bytes.iter().filter(|b| **b == b'\n').count();
            if lines > limits.max_records + 2 {
                return Err(AppError::TooLarge(format!(
                    "file {}: more than the limit of {} records",
                    f.name, limits.max_records
                )));
            }
        }
        Ok(())
    }

    /// Decides one submission of `caller` and appends it: rejected whole, a duplicate (nothing
    /// appended), or accepted records with their rows in one atomic batch.
    #[tracing::instrument(skip_all, fields(municipality = %caller, files = files.len()))]
    pub async fn submit(&self, caller: LocalGovCode, files: Vec<SubmitFile>) -> Result<Submission, AppError> {
        if !self.inner.config.registry.contains(caller) {
            return Err(AppError::Denied(format!("{caller} is not a municipality of this prefecture")));
        }
        self.check_limits(&files)?;
        let inputs: Vec<FileInput> =
            files.iter().map(|f| FileInput { name: f.name.clone(), parsed: file::parse(&f.bytes) }).collect();
        let lookups = submission::lookups(&inputs);
        let muni = caller.to_string();
        let lock = self.inner.locks.lock().await.entry(muni.clone()).or_default().clone();
        let _guard = lock.lock().await;
        loop {
            let expected = self.inner.bus.last_subject_seq(INTAKE.name, &submission_subject(&muni)).await?;
            self.catch_up_for(&muni).await?;
            let store = self.inner.state.store();
            let facts = state::facts(store, &muni, &lookups)?;
            let business_date = state::business_date(store)?.unwrap_or(0);
            let receipt = state::next_receipt(store, &muni)?;
            let outcome =
                submission::decide(Input { caller, registry: &self.inner.config.registry, facts: &facts }, &inputs);
            let (batch, sealed, answer) = match self.events(&muni, &receipt, business_date, outcome)? {
                Plan::Nothing(answer) => return Ok(answer),
                Plan::Append(batch, sealed, answer) => (batch, sealed, answer),
            };
            // The sealed numbers first, on subjects only identity reads (S7): stored before the
            // chunks that name them. A batch that loses the race below leaves them unused.
            for part in sealed.chunks(MAX_BATCH) {
                self.inner.bus.append_atomic(part.to_vec()).await?;
            }
            let mut batch = batch;
            batch[0] = batch[0].clone().expect_last_subject_seq(expected);
            match self.inner.bus.append_atomic(batch).await {
                Ok(appended) => {
                    self.inner.state.wait_for(appended.seq, PATIENCE).await;
                    tracing::info!(receipt = %answer.receipt, status = ?answer.status, accepted = answer.accepted,
                        rejected = answer.rejected, warnings = answer.warnings, "Submission recorded");
                    return Ok(answer);
                }
                // Another intake appended for this municipality first: decide again.
                Err(e) if e.kind() == BusErrorKind::WrongLastSequence => continue,
                Err(e) => return Err(AppError::from(e)),
            }
        }
    }

    fn events(&self, muni: &str, receipt: &str, business_date: u32, outcome: Outcome) -> Result<Plan, AppError> {
        let rows = |rows: &[ReRow]| rows.iter().map(|r| convert::re_row(r, receipt)).collect::<Vec<_>>();
        match outcome {
            Outcome::Duplicate { receipt } => Ok(Plan::Nothing(Submission {
                receipt,
                status: pb::SubmissionStatus::Duplicate,
                code: None,
                accepted: 0,
                rejected: 0,
                warnings: 0,
                rows: Vec::new(),
            })),
            Outcome::Rejected { code, files, rows: re } => {
                let rows = rows(&re);
                let payload = Event::SubmissionRejected(pb::SubmissionRejected {
                    receipt: receipt.to_string(),
                    municipality: muni.to_string(),
                    code: code.code().to_string(),
                    files: files.iter().map(convert::file_info).collect(),
                    rows: rows.clone(),
                    business_date,
                });
                let envelope = event::envelope::<Events>(payload, muni, receipt, "");
                let answer = Submission {
                    receipt: receipt.to_string(),
                    status: pb::SubmissionStatus::Rejected,
                    code: Some(code.code().to_string()),
                    accepted: 0,
                    rejected: files.iter().map(|f| f.data_records).sum(),
                    warnings: 0,
                    rows,
                };
                Ok(Plan::Append(vec![Append::event(submission_subject(muni), &envelope)], Vec::new(), answer))
            }
            Outcome::Accepted(a) => {
                let all_rows = rows(&a.rows);
                let record_chunks: Vec<_> = a.records.chunks(CHUNK_RECORDS).collect();
                let row_chunks: Vec<_> = all_rows.chunks(CHUNK_RECORDS).collect();
                let chunks = record_chunks.len().max(row_chunks.len());
                if chunks + 1 > MAX_BATCH {
                    return Err(AppError::TooLarge(format!(
                        "a submission holds at most {} records",
                        (MAX_BATCH - 1) * CHUNK_RECORDS
                    )));
                }
                let head = event::envelope::<Events>(
                    Event::SubmissionAccepted(pb::SubmissionAccepted {
                        receipt: receipt.to_string(),
                        municipality: muni.to_string(),
                        files: a.files.iter().map(convert::file_info).collect(),
                        accepted: a.accepted,
                        rejected: a.rejected,
                        warnings: a.warnings,
                        chunks: chunks as u32,
                        business_date,
                    }),
                    muni,
                    receipt,
                    "",
                );
                let mut batch = vec![Append::event(submission_subject(muni), &head)];
                let mut sealed = Vec::new();
                for i in 0..chunks {
                    let records = record_chunks.get(i).copied().unwrap_or(&[]);
                    // One data key per message: identity unwraps it once for the chunk (S2).
                    let sealer =
                        Sealer::new(&self.inner.config.identity_key).map_err(|e| AppError::Internal(e.into()))?;
                    let mut sealed_any = false;
                    let mut out = Vec::with_capacity(records.len());
                    for r in records {
                        let rec = convert::change_record(muni, r, &sealer).map_err(|e| AppError::Internal(e.into()))?;
                        if let Some(pb::change_record::Record::Person(p)) = &rec.record {
                            sealed_any |= p.individual_number.is_some();
                        }
                        out.push(rec);
                    }
                    let number = i as u32 + 1;
                    if sealed_any {
                        // Out of the records, into the chunk's NumbersSealed (S7).
                        let numbers = out
                            .iter_mut()
                            .filter_map(|r| match &mut r.record {
                                Some(pb::change_record::Record::Person(p)) => {
                                    p.individual_number.take().map(|n| pb::LineNumber { line: r.line, number: Some(n) })
                                }
                                _ => None,
                            })
                            .collect();
                        let apart = pb::NumbersSealed {
                            receipt: receipt.to_string(),
                            chunk: number,
                            data_key: Some(convert::wrapped_key(&sealer)),
                            numbers,
                        };
                        let id = format!("sealed:{receipt}:{number}:{}", uuid::Uuid::now_v7().simple());
                        sealed.push(Append::new(sealed_subject(muni, receipt, number), apart.encode_to_vec(), id));
                    }
                    let chunk = pb::RecordsAccepted {
                        receipt: receipt.to_string(),
                        municipality: muni.to_string(),
                        chunk: number,
                        records: out,
                        rows: row_chunks.get(i).map(|c| c.to_vec()).unwrap_or_default(),
                        data_key: None,
                        business_date,
                        numbers_apart: sealed_any,
                    };
                    let envelope =
                        event::envelope::<Events>(Event::RecordsAccepted(chunk), muni, receipt, &head.event_id);
                    batch.push(Append::event(records_subject(muni), &envelope));
                }
                let status =
                    if a.rejected == 0 { pb::SubmissionStatus::Accepted } else { pb::SubmissionStatus::Partial };
                let answer = Submission {
                    receipt: receipt.to_string(),
                    status,
                    code: None,
                    accepted: a.accepted,
                    rejected: a.rejected,
                    warnings: a.warnings,
                    rows: all_rows,
                };
                Ok(Plan::Append(batch, sealed, answer))
            }
        }
    }

    /// A receipt's status and how far each consumer of the log has got.
    pub async fn status(&self, receipt: &str) -> Result<pb::GetStatusResponse, AppError> {
        self.catch_up().await?;
        let (payload, last_seq) = state::receipt(self.inner.state.store(), receipt)?
            .ok_or_else(|| AppError::NotFound(format!("no receipt {receipt}")))?;
        let mut response = match payload {
            Event::SubmissionAccepted(s) => pb::GetStatusResponse {
                receipt: s.receipt,
                municipality: s.municipality,
                status: if s.rejected == 0 { pb::SubmissionStatus::Accepted } else { pb::SubmissionStatus::Partial }
                    as i32,
                code: String::new(),
                accepted: s.accepted,
                rejected: s.rejected,
                warnings: s.warnings,
                files: s.files.iter().map(|f| format!("{} {} 通番{}", f.name, f.kind, f.sequence_number)).collect(),
                progress: Vec::new(),
            },
            Event::SubmissionRejected(s) => pb::GetStatusResponse {
                receipt: s.receipt,
                municipality: s.municipality,
                status: pb::SubmissionStatus::Rejected as i32,
                code: s.code,
                accepted: 0,
                rejected: s.files.iter().map(|f| f.data_records).sum(),
                warnings: 0,
                files: s.files.iter().map(|f| format!("{} {}", f.name, f.kind)).collect(),
                progress: Vec::new(),
            },
            _ => return Err(AppError::Internal(anyhow::anyhow!("receipt {receipt} holds no submission"))),
        };
        for p in self.progress().await? {
            let done =
                if p.stream == INTAKE.name { p.ack_floor >= last_seq } else { p.pending == 0 && p.ack_pending == 0 };
            response.progress.push(pb::ServiceProgress {
                service: p.consumer,
                done,
                pending: p.pending + p.ack_pending,
            });
        }
        Ok(response)
    }
}

enum Plan {
    /// Nothing to append (an identical resubmission).
    Nothing(Submission),
    /// The intake stream's batch, the chunks' sealed numbers (stored first), the answer.
    Append(Vec<Append>, Vec<Append>, Submission),
}
