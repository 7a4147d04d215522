//! The clerk console (issue 15): server-rendered Japanese pages for municipal clerks and the
//! federation's operators, over the services' gRPC APIs.
//!
//! The console holds no data of its own and no credential of its own: a clerk signs in with
//! the token file the CLI uses, the console checks it with the issuer's public key (as every
//! service does, security.md S5) and keeps it in a server-side session; every page is made of
//! gRPC calls with that token, so each service applies its access rules and writes its audit
//! entries (S8) exactly as for the CLI. The browser holds only an opaque session cookie
//! (HttpOnly, SameSite=Strict); every form carries the session's CSRF token. No page renders a
//! 個人番号: no API a municipality or an operator may call returns one (S1).

mod ops;
mod pages;
mod session;
mod view;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};
use kokuho_client::Client;
use kokuho_ids::Registry;
use kokuho_runtime::credentials::Credentials;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, MemoryStore, SessionManagerLayer};

/// Where the console finds the system and how it checks sign-ins.
pub struct ConsoleConfig {
    /// The gRPC endpoint of the services (`kokuho up`'s, or the API's Service in a cluster).
    pub api: String,
    /// What the console trusts and shows when the API speaks mutual TLS.
    pub client_tls: Option<kokuho_runtime::tls::ClientTls>,
    /// The directory with the issuer's public key (`issuer.pub`) and the revocation list.
    pub credentials: PathBuf,
    /// The municipalities (their names on the pages).
    pub registry: Arc<Registry>,
    /// Send the session cookie only over HTTPS (a deployment behind TLS; off on loopback).
    pub secure_cookies: bool,
    /// Rows on one page of a long list (open anomalies' residents, waiting records, stored
    /// result files); 0: [`DEFAULT_PAGE`].
    pub page_size: u32,
}

/// Rows on a page of a long list unless configured.
pub const DEFAULT_PAGE: u32 = 100;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    /// Connected without a credential: each page acts with the signed-in caller's token.
    api: Client,
    credentials: Credentials,
    registry: Arc<Registry>,
    /// Rows on one page of a long list.
    page: u32,
}

/// A session ends after this long without a request.
const IDLE_MINUTES: i64 = 30;
/// The largest upload (a submission's files together); intake applies its own limits (S9).
const MAX_UPLOAD: usize = 256 << 20;

/// The console's routes on `state`.
fn router(state: AppState, secure_cookies: bool) -> Router {
    let sessions = SessionManagerLayer::new(MemoryStore::default())
        .with_name("kokuho_console")
        .with_secure(secure_cookies)
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_expiry(Expiry::OnInactivity(time::Duration::minutes(IDLE_MINUTES)));
    Router::new()
        .route("/", get(pages::home))
        .route("/signin", get(session::signin_page).post(session::signin))
        .route("/signout", post(session::signout))
        .route("/upload", get(pages::upload_page).post(pages::upload))
        .route("/receipts/{receipt}", get(pages::receipt))
        .route("/results", get(pages::results))
        .route("/results/acknowledge", post(pages::acknowledge))
        .route("/results/{name}", get(pages::result_file))
        .route("/results/{name}/download", get(pages::download))
        .route("/candidates", get(pages::candidates))
        .route("/candidates/print", get(pages::print))
        .route("/candidates/{number}", get(pages::candidate))
        .route("/candidates/{number}/confirm", get(pages::confirm))
        .route("/candidates/{number}/decide", post(pages::decide))
        .route("/residents", get(pages::resident))
        .route("/anomalies", get(pages::anomalies))
        .route("/relay", get(pages::relay))
        .route("/ops", get(ops::board))
        .route("/ops/close-day", post(ops::close_day))
        .route("/ops/audit", post(ops::verify_audit))
        .route("/ops/reviews", get(ops::reviews))
        .route("/ops/reviews/{case}", post(ops::resolve))
        .route("/ops/persons", get(ops::person))
        .route("/console.css", get(stylesheet))
        .route("/healthz", get(healthz))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD))
        .layer(axum::middleware::map_response(security_headers))
        .layer(sessions)
        .with_state(state)
}

/// Every response: no framing, no sniffing, no referrer, scripts and styles from the console
/// only, and nothing kept in caches (pages carry personal data).
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let fixed = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The probe's answer: the console serves (each page's calls say whether the API does).
async fn healthz() -> &'static str {
    "ok"
}

async fn stylesheet() -> Response {
    let mut r = axum::response::IntoResponse::into_response(include_str!("../static/console.css"));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=3600"));
    r
}

/// A running console.
pub struct Console {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Console {
    /// Connects to the API and serves the console on `listen` (port 0: a free one).
    pub async fn start(listen: SocketAddr, config: ConsoleConfig) -> anyhow::Result<Self> {
        let credentials = Credentials::load(&config.credentials)
            .with_context(|| format!("the issuer's public key in {}", config.credentials.display()))?;
        let api = Client::connect_trusting(&config.api, config.client_tls.as_ref())
            .await
            .with_context(|| format!("the console's API at {}", config.api))?;
        let page = if config.page_size == 0 { DEFAULT_PAGE } else { config.page_size };
        let state = AppState { api, credentials, registry: config.registry, page };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("bind the console's address {listen}"))?;
        let url = format!("http://{}/", listener.local_addr()?);
        let app = router(state, config.secure_cookies);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "The console stopped");
            }
        });
        tracing::info!(%url, "Console");
        Ok(Self { url, stop, task })
    }

    /// The console's address (`http://host:port/`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops taking requests and lets those under way finish — a few seconds at most: a browser
    /// holding a connection open does not keep the console up.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let abort = self.task.abort_handle();
        if tokio::time::timeout(std::time::Duration::from_secs(5), self.task).await.is_err() {
            abort.abort();
        }
    }
}
