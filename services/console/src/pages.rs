//! The clerk's pages: one municipality's submissions, result files, candidates and residents.

use askama::Template;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use kokuho_client::{CandidateSummary, SubmissionStatus};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use crate::AppState;
use crate::session::{Chrome, Failure, check_csrf, internal, render, signed};
use crate::view;

/// Rows of a receipt kept for its page (the whole list goes out in RE).
const RECEIPT_ROWS: usize = 500;

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    chrome: Chrome,
    undecided: usize,
    candidates: usize,
    relay: Option<kokuho_client::relay::PartitionStatus>,
}

pub(crate) async fn home(State(state): State<AppState>, session: Session) -> Result<Response, Failure> {
    let (signed, chrome) = signed(&state, &session).await?;
    if signed.operator().is_ok() {
        return Ok(Redirect::to("/ops").into_response());
    }
    let m = signed.municipality()?.to_string();
    let mut api = signed.client(&state);
    let list = api.list_candidates(Some(&m), false).await?;
    let relay = api.relay_status(Some(&m)).await.ok().and_then(|s| s.partitions.into_iter().next());
    render(HomePage {
        chrome,
        undecided: list.iter().filter(|c| !c.withdrawn && c.decision.is_empty()).count(),
        candidates: list.iter().filter(|c| !c.withdrawn).count(),
        relay,
    })
}

#[derive(Template)]
#[template(path = "upload.html")]
struct UploadPage {
    chrome: Chrome,
}

pub(crate) async fn upload_page(State(state): State<AppState>, session: Session) -> Result<Response, Failure> {
    let (signed, chrome) = signed(&state, &session).await?;
    signed.municipality()?;
    render(UploadPage { chrome })
}

/// What the page of a receipt shows of its answer (kept in the session: the status call does
/// not repeat the rows).
#[derive(Serialize, Deserialize)]
struct Answer {
    rows: Vec<Vec<String>>,
    more: usize,
}

fn receipt_key(receipt: &str) -> String {
    format!("receipt:{receipt}")
}

/// POST /upload (multipart): the CSRF token and one submission's files (KS, KK, KG, KT).
pub(crate) async fn upload(
    State(state): State<AppState>,
    session: Session,
    mut form: Multipart,
) -> Result<Response, Failure> {
    let (signed, _) = signed(&state, &session).await?;
    let m = signed.municipality()?.to_string();
    let (mut given, mut files) = (String::new(), Vec::new());
    while let Some(field) = form.next_field().await.map_err(|e| Failure::BadRequest(e.to_string()))? {
        match field.name().unwrap_or_default() {
            "csrf" => given = field.text().await.map_err(|e| Failure::BadRequest(e.to_string()))?,
            "files" => {
                let name = field.file_name().unwrap_or_default().to_string();
                let bytes = field.bytes().await.map_err(|e| Failure::BadRequest(e.to_string()))?;
                if !name.is_empty() {
                    files.push((name, bytes.to_vec()));
                }
            }
            _ => {}
        }
    }
    // The token is checked before anything is sent on.
    check_csrf(&session, &given).await?;
    if files.is_empty() {
        return Err(Failure::BadRequest("提出するファイルを選んでください".into()));
    }
    let answer = signed.client(&state).submit(&m, files).await?;
    let rows: Vec<Vec<String>> = answer.rows.iter().map(|r| view::receipt_row(&r.fields)).collect();
    let more = rows.len().saturating_sub(RECEIPT_ROWS);
    let kept = Answer { rows: rows.into_iter().take(RECEIPT_ROWS).collect(), more };
    session.insert(&receipt_key(&answer.receipt), kept).await.map_err(internal)?;
    Ok(Redirect::to(&format!("/receipts/{}", answer.receipt)).into_response())
}

#[derive(Template)]
#[template(path = "receipt.html")]
struct ReceiptPage {
    chrome: Chrome,
    status: kokuho_client::GetStatusResponse,
    status_name: &'static str,
    columns: &'static [&'static str],
    answer: Option<Answer>,
    /// Each service's progress: its consumers together.
    services: Vec<ServiceLine>,
    done: bool,
}

/// How far one service has got with a submission.
pub(crate) struct ServiceLine {
    pub(crate) name: String,
    pub(crate) done: bool,
    pub(crate) pending: u64,
}

/// The per-consumer progress of a status, one line per service (a consumer is named
/// `<service>-<what it reads>`), in the order the services first appear.
fn per_service(progress: &[kokuho_client::ServiceProgress]) -> Vec<ServiceLine> {
    let mut lines: Vec<ServiceLine> = Vec::new();
    for p in progress {
        let service = p.service.split('-').next().unwrap_or(&p.service);
        let name = view::service_name(service);
        match lines.iter_mut().find(|l| l.name == name) {
            Some(l) => {
                l.done &= p.done;
                l.pending += p.pending;
            }
            None => lines.push(ServiceLine { name, done: p.done, pending: p.pending }),
        }
    }
    lines
}

fn status_name(status: i32) -> &'static str {
    match SubmissionStatus::try_from(status) {
        Ok(SubmissionStatus::Accepted) => "受付済み",
        Ok(SubmissionStatus::Partial) => "一部受付（エラーの行は受け付けていません）",
        Ok(SubmissionStatus::Rejected) => "受付不可（提出全体を受け付けていません）",
        Ok(SubmissionStatus::Duplicate) => "受付済みの提出と同じ内容です（変更はありません）",
        _ => "不明",
    }
}

/// A receipt: its status, its rows, and how far each service has got (the page reloads itself
/// every two seconds until every service is done).
pub(crate) async fn receipt(
    State(state): State<AppState>,
    session: Session,
    Path(receipt): Path<String>,
) -> Result<Response, Failure> {
    let (signed, chrome) = signed(&state, &session).await?;
    signed.municipality()?;
    let status = signed.client(&state).status(&receipt).await?;
    let answer = session.get::<Answer>(&receipt_key(&receipt)).await.map_err(internal)?;
    let done = status.progress.iter().all(|p| p.done);
    let services = per_service(&status.progress);
    render(ReceiptPage {
        chrome,
        status_name: status_name(status.status),
        status,
        columns: view::columns("RE"),
        answer,
        services,
        done,
    })
}

/// A result file as listed (no content is read to list it).
struct Listed {
    name: String,
    kind: String,
    kind_name: &'static str,
    rows: u32,
    date: String,
}

impl From<kokuho_client::FileInfo> for Listed {
    fn from(f: kokuho_client::FileInfo) -> Self {
        Self {
            kind_name: view::kind_name(&f.kind),
            date: view::date(f.business_date),
            name: f.name,
            kind: f.kind,
            rows: f.rows,
        }
    }
}

#[derive(Template)]
#[template(path = "results.html")]
struct ResultsPage {
    chrome: Chrome,
    files: Vec<Listed>,
    /// Stored files, newest first, a page at a time.
    stored: Vec<Listed>,
    /// The query of the next page of stored files; empty when there is none.
    older: String,
}

#[derive(Deserialize)]
pub(crate) struct ResultsQuery {
    /// Stored files below this file sequence (the next page).
    #[serde(default)]
    before: u32,
}

pub(crate) async fn results(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<ResultsQuery>,
) -> Result<Response, Failure> {
    let (signed, chrome) = signed(&state, &session).await?;
    let m = signed.municipality()?.to_string();
    let listing = signed.client(&state).list_files(&m, q.before, state.page).await?;
    let older = match listing.next_before {
        0 => String::new(),
        before => format!("?before={before}"),
    };
    render(ResultsPage {
        chrome,
        files: listing.pending.into_iter().map(Listed::from).collect(),
        stored: listing.acknowledged.into_iter().map(Listed::from).collect(),
        older,
    })
}

#[derive(Deserialize)]
pub(crate) struct AcknowledgeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    names: String,
}

/// POST /results/acknowledge: the files listed (names separated by spaces) are stored by the
/// municipality and not offered again.
pub(crate) async fn acknowledge(
    State(state): State<AppState>,
    session: Session,
    axum::Form(form): axum::Form<AcknowledgeForm>,
) -> Result<Response, Failure> {
    let (signed, _) = signed(&state, &session).await?;
    let m = signed.municipality()?.to_string();
    check_csrf(&session, &form.csrf).await?;
    let names: Vec<String> = form.names.split_whitespace().map(str::to_string).collect();
    if !names.is_empty() {
        signed.client(&state).acknowledge(&m, names).await?;
    }
    Ok(Redirect::to("/results").into_response())
}

/// One of the municipality's result files, pending or stored (GetFile: audited).
async fn result_file_named(
    state: &AppState,
    session: &Session,
    name: &str,
) -> Result<(Chrome, kokuho_client::ResultFile), Failure> {
    let (signed, chrome) = signed(state, session).await?;
    let m = signed.municipality()?.to_string();
    let file = signed.client(state).get_file(&m, name).await.map_err(|e| match e {
        kokuho_client::ClientError::Status(s) if s.code() == kokuho_client::Code::NotFound => {
            Failure::NotFound(format!("{name} はこの市区町村の結果ファイルにありません"))
        }
        e => e.into(),
    })?;
    Ok((chrome, file))
}

#[derive(Template)]
#[template(path = "result_file.html")]
struct ResultFilePage {
    chrome: Chrome,
    name: String,
    kind: String,
    kind_name: &'static str,
    columns: &'static [&'static str],
    rows: Vec<Vec<String>>,
    /// The column of the 宛名番号, linked to the resident's page (periods, anomalies and why);
    /// `usize::MAX` when the file has none.
    resident_col: usize,
}

pub(crate) async fn result_file(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
) -> Result<Response, Failure> {
    let (chrome, file) = result_file_named(&state, &session, &name).await?;
    let rows = view::data_rows(&view::decode(&file.content));
    let columns = view::columns(&file.kind);
    render(ResultFilePage {
        chrome,
        kind_name: view::kind_name(&file.kind),
        resident_col: columns.iter().position(|c| *c == "宛名番号").unwrap_or(usize::MAX),
        columns,
        name: file.name,
        kind: file.kind,
        rows,
    })
}

/// The file's bytes as the system wrote them (the municipality's encoding).
pub(crate) async fn download(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
) -> Result<Response, Failure> {
    let (_, file) = result_file_named(&state, &session, &name).await?;
    let content_type = format!("text/csv; charset={}", view::charset(&file.content));
    let mut r = file.content.into_response();
    let headers = r.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(&content_type).map_err(internal)?);
    // Result file names are ASCII (formats.md).
    let disposition = format!("attachment; filename=\"{}\"", name.replace(['"', '\\'], "_"));
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).map_err(internal)?);
    Ok(r)
}

/// A candidate as the pages show it.
pub(crate) struct Row {
    pub(crate) c: CandidateSummary,
    pub(crate) from_name: String,
}

impl Row {
    fn new(state: &AppState, c: CandidateSummary) -> Self {
        let from_name =
            view::municipality(&state.registry, &c.from_municipality).map(|m| m.name.clone()).unwrap_or_default();
        Self { c, from_name }
    }
    pub(crate) fn moved_in(&self) -> String {
        view::date(self.c.moved_in_on)
    }
    pub(crate) fn recommended(&self) -> &'static str {
        view::decision(&self.c.recommended)
    }
    pub(crate) fn reason(&self) -> &'static str {
        view::reason(&self.c.reason)
    }
    pub(crate) fn former_householder(&self) -> &'static str {
        view::former_householder(&self.c.former_householder)
    }
    pub(crate) fn decision(&self) -> &'static str {
        view::decision(&self.c.decision)
    }
    pub(crate) fn decided_on(&self) -> String {
        view::date(self.c.decided_on)
    }
    pub(crate) fn decided_by(&self) -> &'static str {
        view::decided_by(&self.c.decided_by)
    }
    pub(crate) fn inherited(&self) -> String {
        self.c.inherited.iter().map(|m| view::month(*m)).collect::<Vec<_>>().join("、")
    }
    pub(crate) fn undecided(&self) -> bool {
        self.c.decision.is_empty() && !self.c.withdrawn
    }
}

#[derive(Template)]
#[template(path = "candidates.html")]
struct CandidatesPage {
    chrome: Chrome,
    rows: Vec<Row>,
}

pub(crate) async fn candidates(State(state): State<AppState>, session: Session) -> Result<Response, Failure> {
    let (signed, chrome) = signed(&state, &session).await?;
    let m = signed.municipality()?.to_string();
    let list = signed.client(&state).list_candidates(Some(&m), false).await?;
    let rows = list.into_iter().map(|c| Row::new(&state, c)).collect();
    render(CandidatesPage { chrome, rows })
}

#[derive(Template)]
#[template(path = "print.html")]
struct PrintPage {
    municipality: String,
    printed: String,
    candidates: Vec<Row>,
    confirmed: Vec<Row>,
}

/// The 継続候補世帯 list and the 継続世帯確定 list on A4 (landscape), to keep on paper.
pub(crate) async fn print(State(state): State<AppState>, session: Session) -> Result<Response, Failure> {
    let (signed, chrome) = signed(&state, &session).await?;
    let m = signed.municipality()?.to_string();
    let list = signed.client(&state).list_candidates(Some(&m), false).await?;
    let rows: Vec<Row> = list.into_iter().filter(|c| !c.withdrawn).map(|c| Row::new(&state, c)).collect();
    let confirmed = rows
        .iter()
        .filter(|r| r.c.decision == "1")
        .map(|r| Row { c: r.c.clone(), from_name: r.from_name.clone() })
        .collect();
    let now = time::OffsetDateTime::now_utc().to_offset(time::UtcOffset::from_hms(9, 0, 0).map_err(internal)?);
    let printed = format!("{}年{}月{}日", now.year(), u8::from(now.month()), now.day());
    render(PrintPage { municipality: chrome.who, printed, candidates: rows, confirmed })
}

#[derive(Template)]
#[template(path = "candidate.html")]
struct CandidatePage {
    chrome: Chrome,
    row: Row,
    rule: u32,
    lines: Vec<String>,
    movers: Vec<String>,
    householder: String,
    decided: bool,
}

#[derive(Deserialize)]
pub(crate) struct DecidedQuery {
    #[serde(default)]
    decided: Option<String>,
}

pub(crate) async fn candidate(
    State(state): State<AppState>,
    session: Session,
    Path(number): Path<String>,
    Query(q): Query<DecidedQuery>,
) -> Result<Response, Failure> {
    let (signed, chrome) = signed(&state, &session).await?;
    let m = signed.municipality()?.to_string();
    let e = signed.client(&state).explain_candidate(&m, &number).await?;
    let c = e.candidate.unwrap_or_default();
    render(CandidatePage {
        chrome,
        row: Row::new(&state, c),
        rule: e.rule,
        lines: e.lines,
        movers: e.movers,
        householder: e.householder,
        decided: q.decided.is_some(),
    })
}

#[derive(Deserialize)]
pub(crate) struct DecisionQuery {
    decision: String,
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage {
    chrome: Chrome,
    row: Row,
    decision: String,
    decision_name: &'static str,
}

/// The confirmation before a decision is sent (it cannot be taken back by the clerk, H3).
pub(crate) async fn confirm(
    State(state): State<AppState>,
    session: Session,
    Path(number): Path<String>,
    Query(q): Query<DecisionQuery>,
) -> Result<Response, Failure> {
    let (signed, chrome) = signed(&state, &session).await?;
    let m = signed.municipality()?.to_string();
    if q.decision != "1" && q.decision != "2" {
        return Err(Failure::BadRequest("判定は 1（継続）か 2（非継続）です".into()));
    }
    let e = signed.client(&state).explain_candidate(&m, &number).await?;
    let row = Row::new(&state, e.candidate.unwrap_or_default());
    render(ConfirmPage { chrome, row, decision_name: view::decision(&q.decision), decision: q.decision })
}

#[derive(Deserialize)]
pub(crate) struct DecideForm {
    #[serde(default)]
    csrf: String,
    decision: String,
}

/// POST: 継続世帯確定指示 (H3), as `kokuho decide` sends it.
pub(crate) async fn decide(
    State(state): State<AppState>,
    session: Session,
    Path(number): Path<String>,
    axum::Form(form): axum::Form<DecideForm>,
) -> Result<Response, Failure> {
    let (signed, _) = signed(&state, &session).await?;
    let m = signed.municipality()?.to_string();
    check_csrf(&session, &form.csrf).await?;
    signed.client(&state).decide(&m, &number, &form.decision).await?;
    Ok(Redirect::to(&format!("/candidates/{number}?decided=1")).into_response())
}

#[derive(Deserialize)]
pub(crate) struct ResidentQuery {
    #[serde(default)]
    resident: String,
}

/// Why lines of one explanation.
pub(crate) struct Why {
    pub(crate) subject: String,
    pub(crate) rules: String,
    pub(crate) lines: Vec<String>,
}

/// A fact of a history.
pub(crate) struct FactRow {
    pub(crate) date: String,
    pub(crate) kind: String,
    pub(crate) rules: String,
    pub(crate) text: String,
}

impl FactRow {
    pub(crate) fn from(f: &kokuho_client::Fact) -> Self {
        Self { date: view::date(f.business_date), kind: f.kind.clone(), rules: f.rules.join(" "), text: f.text.clone() }
    }
}

#[derive(Template)]
#[template(path = "resident.html")]
struct ResidentPage {
    chrome: Chrome,
    resident: String,
    periods: Vec<Why>,
    anomalies: Vec<Why>,
    link: Option<Why>,
    facts: Vec<FactRow>,
}

/// One resident of the municipality: why its RS rows and open anomalies say what they say
/// (C1–C10), why it is linked as it is (I1–I6), and its history. Every part is audited by the
/// service that answers it.
pub(crate) async fn resident(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<ResidentQuery>,
) -> Result<Response, Failure> {
    let (signed, chrome) = signed(&state, &session).await?;
    let m = signed.municipality()?.to_string();
    let resident = q.resident.trim().to_string();
    let mut page = ResidentPage {
        chrome,
        resident: resident.clone(),
        periods: vec![],
        anomalies: vec![],
        link: None,
        facts: vec![],
    };
    if resident.is_empty() {
        return render(page);
    }
    let mut api = signed.client(&state);
    let periods = api.explain_periods(&m, &resident, Some(0), None).await?;
    page.periods = periods
        .explanations
        .into_iter()
        .map(|e| Why { subject: e.subject, rules: e.rules.join(" "), lines: e.lines })
        .collect();
    let anomalies = api.explain_periods(&m, &resident, None, Some("all")).await?;
    page.anomalies = anomalies
        .explanations
        .into_iter()
        .map(|e| Why { subject: e.subject, rules: e.rules.join(" "), lines: e.lines })
        .collect();
    let link = api.explain_link(&m, &resident).await?;
    page.link = Some(Why { subject: link.person.clone(), rules: link.rules.join(" "), lines: link.lines });
    let history = api
        .history(kokuho_client::HistorySubject::Resident { municipality: &m, resident: &resident }, 0, false)
        .await?;
    page.facts = history.facts.iter().map(FactRow::from).collect();
    render(page)
}

#[derive(Template)]
#[template(path = "relay.html")]
struct RelayPage {
    chrome: Chrome,
    status: kokuho_client::relay::StatusResponse,
    waiting: Vec<WaitingRow>,
    /// Waiting records in all.
    total: u64,
    /// The next page's query (`?after=…`); empty on the last page.
    next: String,
    /// This is a later page (a link back to the first).
    paged: bool,
}

/// A record of the partition that waits (an open R row).
pub(crate) struct WaitingRow {
    pub(crate) resident: String,
    pub(crate) start: String,
    pub(crate) code: String,
    pub(crate) reason: &'static str,
    pub(crate) receipt: String,
    pub(crate) line: u32,
}

/// `?after=…` of a list's next page (a cursor the service gave), or empty on the last page.
fn next_page(after: &str) -> String {
    if after.is_empty() {
        return String::new();
    }
    format!("?{}", serde_urlencoded::to_string([("after", after)]).unwrap_or_default())
}

#[derive(Deserialize)]
pub(crate) struct PageQuery {
    /// Where the page starts (the cursor of the previous page's "next" link).
    #[serde(default)]
    after: String,
}

impl RelayPage {
    fn time(&self, seconds: &i64) -> String {
        view::unix_time(*seconds)
    }
}

pub(crate) async fn relay(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<PageQuery>,
) -> Result<Response, Failure> {
    let (signed, chrome) = signed(&state, &session).await?;
    let m = signed.municipality()?.to_string();
    let status = signed.client(&state).relay_waiting(&m, &q.after, state.page).await?;
    let mut waiting = Vec::new();
    let mut total = 0;
    let mut next = String::new();
    for p in &status.partitions {
        total += p.waiting;
        next = next_page(&p.waiting_next);
        for w in &p.waiting_records {
            let open = w.wait.clone().unwrap_or_default();
            waiting.push(WaitingRow {
                resident: w.resident_number.clone(),
                start: view::date(w.start),
                reason: kokuho_relay_domain::wait_reason(&open.code),
                code: open.code,
                receipt: open.receipt,
                line: open.line,
            });
        }
    }
    render(RelayPage { chrome, status, waiting, total, next, paged: !q.after.is_empty() })
}

/// An open anomaly on the municipality's list.
pub(crate) struct AnomalyRow {
    pub(crate) resident: String,
    pub(crate) code: String,
    pub(crate) counterpart: String,
    pub(crate) counterpart_period: String,
    pub(crate) why: Why,
}

#[derive(Template)]
#[template(path = "anomalies.html")]
struct AnomaliesPage {
    chrome: Chrome,
    rows: Vec<AnomalyRow>,
    /// Residents with open anomalies in all.
    residents: u64,
    /// The next page's query; empty on the last page.
    next: String,
    /// This is a later page.
    paged: bool,
}

/// The municipality's open anomalies (A01–A07), each with its why: the clerk's work list.
pub(crate) async fn anomalies(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<PageQuery>,
) -> Result<Response, Failure> {
    let (signed, chrome) = signed(&state, &session).await?;
    let m = signed.municipality()?.to_string();
    let list = signed.client(&state).list_anomalies(&m, &q.after, state.page).await?;
    let next = next_page(&list.next_after);
    let rows = list
        .anomalies
        .into_iter()
        .map(|a| {
            let view = a.anomaly.unwrap_or_default();
            let why = a.why.unwrap_or_default();
            let period = match (view.counterpart_start, view.counterpart_end) {
                (0, _) => String::new(),
                (s, 0) => format!("{} 〜", view::date(s)),
                (s, e) => format!("{} 〜 {}", view::date(s), view::date(e)),
            };
            AnomalyRow {
                resident: a.resident_number,
                counterpart: match view::municipality(&state.registry, &view.counterpart) {
                    Some(entry) => format!("{} {}", view.counterpart, entry.name),
                    None => view.counterpart.clone(),
                },
                code: view.code,
                counterpart_period: period,
                why: Why { subject: why.subject, rules: why.rules.join(" "), lines: why.lines },
            }
        })
        .collect();
    render(AnomaliesPage { chrome, rows, residents: list.residents, next, paged: !q.after.is_empty() })
}
