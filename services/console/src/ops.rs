//! The operator's pages: the liveness board, day close, audit verification, the review queue
//! and a person's history.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use crate::AppState;
use crate::pages::FactRow;
use crate::session::{Chrome, CsrfForm, Failure, check_csrf, render, signed};
use crate::view;

/// One municipality's line on the board.
struct Line {
    code: String,
    name: String,
    last_submission: String,
    last_delivery: String,
    lag_seconds: i64,
    undelivered: u64,
    waiting: u64,
    records: u64,
    stalled: bool,
}

#[derive(Template)]
#[template(path = "ops.html")]
struct BoardPage {
    chrome: Chrome,
    lines: Vec<Line>,
    server_reachable: bool,
    server_last_contact: String,
    server_last_error: String,
    alerts: usize,
    message: String,
}

#[derive(Deserialize)]
pub(crate) struct BoardQuery {
    #[serde(default)]
    message: String,
}

/// The liveness board of every municipality (relay's view: last submission, lag, waiting
/// records, stall alerts) with the operator's forms.
pub(crate) async fn board(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<BoardQuery>,
) -> Result<Response, Failure> {
    let (signed, chrome) = signed(&state, &session).await?;
    signed.operator()?;
    let status = signed.client(&state).relay_status(None).await?;
    let lines: Vec<Line> = status
        .partitions
        .iter()
        .map(|p| Line {
            name: view::municipality(&state.registry, &p.municipality).map(|m| m.name.clone()).unwrap_or_default(),
            code: p.municipality.clone(),
            last_submission: view::unix_time(p.last_submission_at),
            last_delivery: view::unix_time(p.last_delivery_at),
            lag_seconds: p.lag_seconds,
            undelivered: p.undelivered,
            waiting: p.waiting,
            records: p.records,
            stalled: p.stalled,
        })
        .collect();
    render(BoardPage {
        chrome,
        alerts: lines.iter().filter(|l| l.stalled).count(),
        lines,
        server_reachable: status.server_reachable,
        server_last_contact: view::unix_time(status.server_last_contact_at),
        server_last_error: status.server_last_error,
        message: q.message,
    })
}

#[derive(Deserialize)]
pub(crate) struct CloseDayForm {
    #[serde(default)]
    csrf: String,
    date: String,
}

/// POST: closes the business day (rules.md T1).
pub(crate) async fn close_day(
    State(state): State<AppState>,
    session: Session,
    axum::Form(form): axum::Form<CloseDayForm>,
) -> Result<Response, Failure> {
    let (signed, _) = signed(&state, &session).await?;
    signed.operator()?;
    check_csrf(&session, &form.csrf).await?;
    let date = view::parse_date(&form.date).ok_or_else(|| Failure::BadRequest("日付は YYYY-MM-DD です".into()))?;
    let closed = signed.client(&state).close_day(date).await?;
    let message = format!(
        "処理日を {} に進めました（前の処理日 {}）",
        view::date(closed.business_date),
        view::date(closed.previous)
    );
    let query = serde_urlencoded::to_string([("message", &message)]).map_err(|e| Failure::Internal(e.to_string()))?;
    Ok(Redirect::to(&format!("/ops?{query}")).into_response())
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    result: kokuho_client::VerifyAuditResponse,
}

/// POST: checks the audit log's chains and signatures (security.md S8).
pub(crate) async fn verify_audit(
    State(state): State<AppState>,
    session: Session,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Result<Response, Failure> {
    let (signed, chrome) = signed(&state, &session).await?;
    signed.operator()?;
    check_csrf(&session, &form.csrf).await?;
    let result = signed.client(&state).verify_audit(vec![]).await?;
    render(AuditPage { chrome, result })
}

#[derive(Template)]
#[template(path = "reviews.html")]
struct ReviewsPage {
    chrome: Chrome,
    cases: Vec<kokuho_client::ReviewCase>,
}

pub(crate) async fn reviews(State(state): State<AppState>, session: Session) -> Result<Response, Failure> {
    let (signed, chrome) = signed(&state, &session).await?;
    signed.operator()?;
    let cases = signed.client(&state).list_reviews().await?;
    render(ReviewsPage { chrome, cases })
}

#[derive(Deserialize)]
pub(crate) struct ResolveForm {
    #[serde(default)]
    csrf: String,
    action: String,
    #[serde(default)]
    reason: String,
}

/// POST: link, relink or reject a held record (I6), with a reason, as the signed-in operator.
pub(crate) async fn resolve(
    State(state): State<AppState>,
    session: Session,
    Path(case): Path<String>,
    axum::Form(form): axum::Form<ResolveForm>,
) -> Result<Response, Failure> {
    let (signed, _) = signed(&state, &session).await?;
    let operator = signed.operator()?.to_string();
    check_csrf(&session, &form.csrf).await?;
    let action = match form.action.as_str() {
        "link" => kokuho_client::ReviewAction::Link,
        "relink" => kokuho_client::ReviewAction::Relink,
        "reject" => kokuho_client::ReviewAction::Reject,
        _ => return Err(Failure::BadRequest("処理を選んでください".into())),
    };
    if form.reason.trim().is_empty() {
        return Err(Failure::BadRequest("理由を入力してください".into()));
    }
    signed.client(&state).resolve_review(&case, action, form.reason.trim(), &operator).await?;
    Ok(Redirect::to("/ops/reviews").into_response())
}

#[derive(Deserialize)]
pub(crate) struct PersonQuery {
    #[serde(default)]
    person: String,
}

#[derive(Template)]
#[template(path = "person.html")]
struct PersonPage {
    chrome: Chrome,
    person: String,
    persons: Vec<String>,
    facts: Vec<FactRow>,
    complete: bool,
}

/// A person's history by 都道府県被保険者ID (audited by history, S8).
pub(crate) async fn person(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<PersonQuery>,
) -> Result<Response, Failure> {
    let (signed, chrome) = signed(&state, &session).await?;
    signed.operator()?;
    let person = q.person.trim().to_string();
    if person.is_empty() {
        return render(PersonPage { chrome, person, persons: vec![], facts: vec![], complete: true });
    }
    let h = signed.client(&state).history(kokuho_client::HistorySubject::Person(&person), 0, true).await?;
    render(PersonPage {
        chrome,
        person,
        persons: h.persons,
        facts: h.facts.iter().map(FactRow::from).collect(),
        complete: h.complete,
    })
}
