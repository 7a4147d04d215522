//! Sign-in, the session and its CSRF token, and the error pages.

use askama::Template;
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use kokuho_client::{ClientError, Code};
use kokuho_runtime::credentials::Caller;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use crate::AppState;

const SIGNED: &str = "signed";
const CSRF: &str = "csrf";

/// Who is signed in: the role their token names, and the token the pages act with.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Signed {
    pub(crate) token: String,
    pub(crate) role: Role,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Role {
    /// A clerk of this municipality (its code).
    Municipality(String),
    /// An operator of the federation (by name).
    Operator(String),
}

impl Signed {
    /// The API client acting as this caller.
    pub(crate) fn client(&self, state: &AppState) -> kokuho_client::Client {
        state.api.with_token(self.token.clone())
    }

    /// The clerk's municipality, or a refusal for an operator.
    pub(crate) fn municipality(&self) -> Result<&str, Failure> {
        match &self.role {
            Role::Municipality(m) => Ok(m),
            Role::Operator(_) => Err(Failure::Forbidden("市区町村の職員としてサインインしてください".into())),
        }
    }

    /// The operator's name, or a refusal for a clerk.
    pub(crate) fn operator(&self) -> Result<&str, Failure> {
        match &self.role {
            Role::Operator(name) => Ok(name),
            Role::Municipality(_) => Err(Failure::Forbidden("運用担当者の画面です".into())),
        }
    }
}

/// What every page shows around its content: who is signed in, and the token its forms carry.
pub(crate) struct Chrome {
    pub(crate) who: String,
    pub(crate) operator: bool,
    pub(crate) csrf: String,
}

/// The signed-in caller of `session` with the chrome of their pages, or the sign-in page.
pub(crate) async fn signed(state: &AppState, session: &Session) -> Result<(Signed, Chrome), Failure> {
    let signed: Signed = session.get(SIGNED).await.map_err(internal)?.ok_or(Failure::SignIn)?;
    let csrf = csrf(session).await?;
    let who = match &signed.role {
        Role::Municipality(m) => match crate::view::municipality(&state.registry, m) {
            Some(entry) => format!("{m} {}", entry.name),
            None => m.clone(),
        },
        Role::Operator(name) => format!("運用担当 {name}"),
    };
    let operator = matches!(signed.role, Role::Operator(_));
    Ok((signed, Chrome { who, operator, csrf }))
}

/// The session's CSRF token, made on first use (32 random bytes).
pub(crate) async fn csrf(session: &Session) -> Result<String, Failure> {
    if let Some(t) = session.get::<String>(CSRF).await.map_err(internal)? {
        return Ok(t);
    }
    let token = fresh_token()?;
    session.insert(CSRF, &token).await.map_err(internal)?;
    Ok(token)
}

fn fresh_token() -> Result<String, Failure> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Failure::Internal(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// Refuses a form whose token is not the session's (a request forged by another site). The
/// comparison takes the same time wherever the tokens differ (subtle), so timing tells nothing.
pub(crate) async fn check_csrf(session: &Session, given: &str) -> Result<(), Failure> {
    use subtle::ConstantTimeEq as _;
    match session.get::<String>(CSRF).await.map_err(internal)? {
        Some(t) if !given.is_empty() && bool::from(t.as_bytes().ct_eq(given.as_bytes())) => Ok(()),
        _ => {
            tracing::warn!("Console: a form without the session's CSRF token was refused");
            Err(Failure::Forbidden("フォームの有効期限が切れたか、不正な送信です。画面を開き直してください".into()))
        }
    }
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SigninPage {
    csrf: String,
    message: String,
}

pub(crate) async fn signin_page(session: Session) -> Result<Response, Failure> {
    let csrf = csrf(&session).await?;
    render(SigninPage { csrf, message: String::new() })
}

/// POST /signin (multipart): the token file, or its text pasted, and the CSRF token.
pub(crate) async fn signin(
    State(state): State<AppState>,
    session: Session,
    mut form: Multipart,
) -> Result<Response, Failure> {
    let (mut token, mut given) = (String::new(), String::new());
    while let Some(field) = form.next_field().await.map_err(bad_form)? {
        let name = field.name().unwrap_or_default().to_string();
        let text = field.text().await.map_err(bad_form)?;
        match name.as_str() {
            "csrf" => given = text,
            "token_file" | "token" if !text.trim().is_empty() => token = text.trim().to_string(),
            _ => {}
        }
    }
    check_csrf(&session, &given).await?;
    let role = match state.credentials.caller(Some(&format!("Bearer {token}"))) {
        Some(Caller::Municipality(m)) => Some(Role::Municipality(m)),
        Some(Caller::Operator(name)) => Some(Role::Operator(name)),
        Some(Caller::Relay) | None => None,
    };
    let Some(role) = role else {
        tracing::warn!("Console: a sign-in with an invalid credential was refused");
        let csrf = csrf(&session).await?;
        let page = SigninPage {
            csrf,
            message: "資格情報が無効です（期限切れ・失効・別の発行元、またはコンソールで使えない資格）".into(),
        };
        let mut r = render(page)?;
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(r);
    };
    // A new session id and a new CSRF token at sign-in (no fixation).
    session.cycle_id().await.map_err(internal)?;
    session.insert(CSRF, fresh_token()?).await.map_err(internal)?;
    tracing::info!(role = ?role_name(&role), "Console: signed in");
    session.insert(SIGNED, Signed { token, role }).await.map_err(internal)?;
    Ok(Redirect::to("/").into_response())
}

fn role_name(role: &Role) -> String {
    match role {
        Role::Municipality(m) => m.clone(),
        Role::Operator(name) => format!("operator {name}"),
    }
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    pub(crate) csrf: String,
}

pub(crate) async fn signout(session: Session, axum::Form(form): axum::Form<CsrfForm>) -> Result<Response, Failure> {
    check_csrf(&session, &form.csrf).await?;
    session.flush().await.map_err(internal)?;
    Ok(Redirect::to("/signin").into_response())
}

/// Renders a page.
pub(crate) fn render(page: impl Template) -> Result<Response, Failure> {
    Ok(Html(page.render().map_err(|e| Failure::Internal(e.to_string()))?).into_response())
}

/// Why a page could not be shown.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Not signed in (or the session ended).
    SignIn,
    Forbidden(String),
    NotFound(String),
    BadRequest(String),
    /// The system could not be reached or failed.
    Unavailable(String),
    Internal(String),
}

pub(crate) fn internal(e: impl std::fmt::Display) -> Failure {
    Failure::Internal(e.to_string())
}

fn bad_form(e: impl std::fmt::Display) -> Failure {
    Failure::BadRequest(format!("フォームを読めません: {e}"))
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match &e {
            ClientError::Status(s) => match s.code() {
                Code::PermissionDenied | Code::Unauthenticated => {
                    Failure::Forbidden(format!("この操作は許可されていません（{}）", s.message()))
                }
                Code::NotFound => Failure::NotFound(s.message().to_string()),
                Code::InvalidArgument | Code::FailedPrecondition | Code::AlreadyExists | Code::OutOfRange => {
                    Failure::BadRequest(s.message().to_string())
                }
                _ => Failure::Unavailable(s.message().to_string()),
            },
            _ => Failure::Unavailable(e.to_string()),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self {
            Failure::SignIn => return Redirect::to("/signin").into_response(),
            Failure::Forbidden(m) => (StatusCode::FORBIDDEN, "許可されていません", m.as_str()),
            Failure::NotFound(m) => (StatusCode::NOT_FOUND, "見つかりません", m.as_str()),
            Failure::BadRequest(m) => (StatusCode::BAD_REQUEST, "受け付けられません", m.as_str()),
            Failure::Unavailable(m) => (StatusCode::BAD_GATEWAY, "システムに接続できません", m.as_str()),
            Failure::Internal(m) => {
                tracing::error!(error = %m, "Console: a page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "内部エラー",
                    "画面を表示できませんでした。運用担当者に連絡してください",
                )
            }
        };
        let body = ErrorPage { title, message }.render().unwrap_or_else(|_| title.to_string());
        (status, Html(body)).into_response()
    }
}
