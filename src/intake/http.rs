//! The loopback HTTP endpoint: `POST /v1/regen`, `GET /v1/jobs/{id}`,
//! `GET /v1/status`, `GET /metrics`, `GET /healthz`, and `GET /v1/fill/…`
//! for nginx's anonymous misses ([`crate::fill`]). A bearer token guards
//! everything but `/healthz` and the fill whenever one is configured.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::index::Index;
use crate::metrics::Metrics;
use crate::schedule::{Request as WorkRequest, Submitter};
use crate::targets::Target;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct ApiState {
    /// Submits work to the scheduler.
    pub(crate) submit: Submitter,
    /// Reads status.
    pub(crate) index: Index,
    /// Counters.
    pub(crate) metrics: Arc<Metrics>,
    /// Required bearer token, if any.
    pub(crate) token: Option<String>,
    /// Spool directory (for queue depth).
    pub(crate) queue: std::path::PathBuf,
    /// The scheduler's backlog, read for `/v1/status`.
    pub(crate) backlog: Arc<crate::schedule::Backlog>,
    /// Most targets one request may name.
    pub(crate) max_targets: usize,
    /// Where accepted requests are made durable before the 202.
    pub(crate) journal: crate::intake::spool::Journal,
    /// The outputs' counts, when there are outputs.
    pub(crate) outputs: Option<Arc<crate::output::OutputStats>>,
    /// Answers nginx's anonymous misses, when fill is on (fetch mode).
    pub(crate) filler: Option<Arc<crate::fill::Filler>>,
    /// The Redis intake's connection, when there is one.
    pub(crate) redis: Option<Arc<super::redis::RedisStatus>>,
    /// Where the fleet view is read (Redis), when this host is in one.
    pub(crate) fleet: Option<crate::fleet::FleetSource>,
}

/// Largest `POST /v1/regen` body read.
pub(crate) const MAX_BODY_BYTES: usize = 1 << 20;

/// The loopback endpoint as an [`crate::schedule::Intake`].
pub(crate) struct HttpIntake {
    /// The bound listener.
    pub(crate) listener: tokio::net::TcpListener,
    /// Everything the handlers need but the submitter.
    pub(crate) state: ApiState,
}

impl crate::schedule::Intake for HttpIntake {
    fn run(
        self: Box<Self>,
        submit: Submitter,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> crate::schedule::Running {
        let HttpIntake {
            listener,
            mut state,
        } = *self;
        state.submit = submit;
        Box::pin(serve(listener, router(state), shutdown))
    }
}

/// Most connections served at once: half the process's file descriptor
/// limit (within 32..=1024); more wait in the kernel's backlog, so a flood
/// of idle or slow clients cannot take the descriptors the spool, the
/// index and the writer need. Idle keep-alive connections close after
/// [`HEADER_TIMEOUT`], so waiting clients get their turn quickly.
fn max_connections() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    usize::try_from(limit / 2)
        .unwrap_or(usize::MAX)
        .clamp(32, 1024)
}
/// Time a client has to send a request's headers (slowloris).
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a client has to send a request body.
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a connection stays open, idle keep-alive included.
pub(crate) const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// The accept loop: bounded connections, each with header and lifetime
/// limits; graceful on shutdown (in-flight requests finish).
async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: tokio_util::sync::CancellationToken,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections()));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors (EMFILE) or a reset before accept:
                    // back off instead of spinning; other intakes go on.
                    tracing::warn!(error = %e, "HTTP endpoint could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let stop = shutdown.clone();
        connections.spawn(async move {
            let _permit = permit;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let lifetime = tokio::time::sleep(CONNECTION_LIFETIME);
            tokio::pin!(lifetime);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = stop.cancelled() => {}
                _ = &mut lifetime => {}
            }
            // Finish the request in flight, then close.
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(BODY_TIMEOUT, conn).await;
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Builds the router.
pub(crate) fn router(state: ApiState) -> Router {
    let guarded = Router::new()
        .route("/v1/regen", post(regen))
        .route("/v1/jobs/{id}", get(job))
        .route("/v1/status", get(status))
        .route("/metrics", get(metrics))
        .route("/v1/fleet", get(fleet))
        .route("/status", get(status_page))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(healthz))
        // Not behind the token: nginx calls it for anonymous visitors, and
        // all it can do is what any visitor through nginx can (fetch a
        // public page of the origin, bake it if the privacy rules pass).
        .route("/v1/fill", get(fill))
        .route("/v1/fill/", get(fill))
        .route("/v1/fill/{*path}", get(fill))
        .merge(guarded)
        .with_state(state)
}

/// `ok`, or 503 with the reason while the daemon cannot keep its promise
/// (its index is damaged: what it accepted could not be recorded).
async fn healthz(State(s): State<ApiState>) -> Response {
    match s.index.broken() {
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
        None => "ok\n".into_response(),
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

async fn require_token(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    if s.token.is_none() && !host_is_loopback(&req) {
        // Without a token only a local process may talk to the daemon; a
        // page in a browser that rebinds its own name to 127.0.0.1 still
        // sends its own name as Host, and is refused here.
        return error(
            StatusCode::FORBIDDEN,
            "the Host header must name the loopback address the daemon listens on (127.0.0.1, localhost or [::1]); set a token (`daemon.token-env`) to accept other names",
        );
    }
    if let Some(token) = &s.token {
        // The scheme is case-insensitive (RFC 7235), the token is not.
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim_start());
        let ok = given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes()));
        if !ok {
            return error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token: send `Authorization: Bearer $TOKEN`",
            );
        }
    }
    next.run(req).await
}

/// Whether a request's Host names a loopback address (any port: the
/// listener already fixed it), as a local client's always does.
fn host_is_loopback(req: &Request) -> bool {
    let Some(host) = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
    else {
        // HTTP/1.0 without Host: only a local tool sends that.
        return true;
    };
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !name.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Token comparison in constant time (subtle), so response timing does
/// not reveal how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegenBody {
    targets: Vec<String>,
    /// Consent to removals over the mass-delete limit (resets the guard).
    #[serde(default)]
    allow_mass_delete: bool,
}

async fn regen(State(s): State<ApiState>, req: Request) -> Response {
    // A browser's cross-site form can only send form or text bodies without
    // a preflight; insisting on JSON keeps a page elsewhere from triggering
    // regenerations on a daemon without a token.
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send `Content-Type: application/json` with a body like {\"targets\": [\"/blog/\"]}",
        );
    }
    let body = match tokio::time::timeout(
        BODY_TIMEOUT,
        axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                format!("the body did not arrive within {BODY_TIMEOUT:?}"),
            );
        }
        Ok(Err(_)) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body is over {MAX_BODY_BYTES} bytes; send fewer targets per request"),
            );
        }
    };
    let parsed: RegenBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "body must be JSON like {{\"targets\": [\"/blog/\", \"tag:post:42\"]}}: {e}"
                ),
            );
        }
    };
    if parsed.targets.is_empty() {
        return error(StatusCode::BAD_REQUEST, "`targets` is empty");
    }
    let mut targets = Vec::new();
    let mut bad = Vec::new();
    for t in &parsed.targets {
        match Target::parse(t) {
            Ok(t) => targets.push(t),
            Err(e) => bad.push(e.to_string()),
        }
    }
    if !bad.is_empty() {
        let shown: Vec<String> = bad
            .iter()
            .take(10)
            .map(|b| crate::text::excerpt(b, 600))
            .collect();
        let more = bad.len().saturating_sub(shown.len());
        let tail = if more > 0 {
            format!("; and {more} more")
        } else {
            String::new()
        };
        return error(
            StatusCode::BAD_REQUEST,
            format!("{}{tail}", shown.join("; ")),
        );
    }
    let targets = crate::targets::dedup(targets);
    if targets.len() > s.max_targets {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} distinct targets, over `daemon.max-targets` ({}); split them into several requests",
                targets.len(),
                s.max_targets
            ),
        );
    }
    // A 202 promises the work will be done; with a damaged index it could
    // not be recorded (the caller retries, or queues it in the spool).
    if let Some(why) = s.index.broken() {
        return error(StatusCode::SERVICE_UNAVAILABLE, why);
    }
    // Durable first: a 202 promises the work survives a kill -9.
    let (reply, report) = tokio::sync::oneshot::channel();
    if let Err(e) = s.journal.append(targets.clone(), report).await {
        return error(StatusCode::SERVICE_UNAVAILABLE, e);
    }
    match s
        .submit
        .submit(WorkRequest {
            targets,
            reply: Some(reply),
            allow_mass_delete: parsed.allow_mass_delete,
        })
        .await
    {
        Some(id) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "job": id, "status": format!("/v1/jobs/{id}") })),
        )
            .into_response(),
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is shutting down",
        ),
    }
}

async fn job(State(s): State<ApiState>, Path(id): Path<u64>) -> Response {
    match s.submit.jobs().get(id) {
        Some(info) => Json(info).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no job {id}")),
    }
}

/// Prefix nginx puts before the visitor's request URI.
const FILL_PREFIX: &str = "/v1/fill";

/// `GET /v1/fill/<visitor's path and query>`: nginx's anonymous miss
/// ([`crate::fill`]).
async fn fill(State(s): State<ApiState>, req: Request) -> Response {
    let Some(filler) = &s.filler else {
        return to_app("fill is off");
    };
    let uri = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let visitor = uri.strip_prefix(FILL_PREFIX).unwrap_or(uri);
    let visitor = if visitor.is_empty() || visitor.starts_with('?') {
        format!("/{visitor}")
    } else {
        visitor.to_string()
    };
    let answer = filler.answer(&visitor).await;
    match &*answer {
        crate::fill::Answer::Shared {
            status,
            content_type,
            body,
            baked: _,
        } => (
            StatusCode::from_u16(*status).unwrap_or(StatusCode::OK),
            [
                (header::CONTENT_TYPE, content_type.as_str()),
                // As the baked file will be served: always revalidated.
                (header::CACHE_CONTROL, "public, max-age=0, must-revalidate"),
                (header::HeaderName::from_static("x-kiln"), answer.label()),
            ],
            body.clone(),
        )
            .into_response(),
        crate::fill::Answer::ToApp(why) => to_app(why),
        crate::fill::Answer::Unavailable { status, reason: _ } => (
            StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY),
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
                (header::RETRY_AFTER, "2"),
                (header::HeaderName::from_static("x-kiln"), answer.label()),
            ],
            "<!doctype html><title>Try again shortly</title><h1>This page cannot be shown right now</h1><p>The site is having trouble. Please try again in a moment.</p>\n",
        )
            .into_response(),
    }
}

/// nginx proxies the visitor's own request to the app instead
/// (`X-Accel-Redirect` to the block's `@origin` location).
fn to_app(why: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (
                header::HeaderName::from_static("x-accel-redirect"),
                "@origin",
            ),
            (header::HeaderName::from_static("x-kiln"), why),
        ],
    )
        .into_response()
}

/// `/v1/status`'s document.
async fn status_json(
    s: &ApiState,
) -> Result<(serde_json::Value, crate::index::Summary), crate::index::IndexError> {
    let sum = s.index.summary().await?;
    let mut v = sum.to_json(crate::intake::spool::queue_depth(&s.queue));
    if let (Some(v), serde_json::Value::Object(b)) = (v.as_object_mut(), s.backlog.to_json()) {
        v.extend(b);
        v.insert(
            "daemon".into(),
            serde_json::json!({"pid": std::process::id()}),
        );
        v.insert(
            "journal_entries".into(),
            crate::intake::spool::journal_depth(&s.queue).into(),
        );
        if let Some(stats) = &s.outputs {
            let depth = s.index.outbox_depth().await.unwrap_or(0);
            v.insert("outputs".into(), stats.to_json(depth));
        }
        v.insert("revalidated".into(), s.metrics.revalidations.get().into());
        v.insert(
            "redis".into(),
            s.redis
                .as_ref()
                .map_or(serde_json::Value::Null, |r| r.to_json()),
        );
        if let Some(filler) = &s.filler {
            v.insert("fill".into(), filler.stats.to_json());
        }
    }
    Ok((v, sum))
}

/// `GET /v1/fleet`: the fleet as Redis sees it.
async fn fleet(State(s): State<ApiState>) -> Response {
    let Some(src) = &s.fleet else {
        return error(
            StatusCode::NOT_FOUND,
            "this daemon is in no fleet: it has no `[intake] redis` or `[pool]`",
        );
    };
    match crate::fleet::read(src).await {
        Ok(f) => Json(f).into_response(),
        Err(e) => error(StatusCode::BAD_GATEWAY, e),
    }
}

/// `GET /status`: the read-only HTML page.
async fn status_page(State(s): State<ApiState>) -> Response {
    let (status, summary) = match status_json(&s).await {
        Ok(v) => v,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let fleet = match &s.fleet {
        Some(src) => Some(crate::fleet::read(src).await),
        None => None,
    };
    let jobs = s.submit.jobs().recent(20);
    let page = super::status_page::render(&super::status_page::StatusView {
        status: &status,
        fleet: fleet.as_ref().map(|f| f.as_ref().map_err(String::as_str)),
        jobs: &jobs,
        problems: &summary.problems,
    });
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page,
    )
        .into_response()
}

async fn status(State(s): State<ApiState>) -> Response {
    match status_json(&s).await {
        Ok((v, _)) => Json(v).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn metrics(State(s): State<ApiState>) -> Response {
    match s.index.summary().await {
        Ok(sum) => s.metrics.set_index_pages(&sum.by_status),
        Err(e) => tracing::warn!(error = %e, "index counts unavailable for /metrics"),
    }
    if let Some(redis) = &s.redis {
        s.metrics.redis_connected.set(i64::from(
            redis.connected.load(std::sync::atomic::Ordering::Relaxed),
        ));
    }
    s.metrics
        .journal_entries
        .set(crate::intake::spool::queue_depth(&s.queue) as i64);
    if let Some(stats) = &s.outputs {
        let depth = s.index.outbox_depth().await.unwrap_or(0);
        s.metrics.set_outputs(&stats.to_json(depth), depth);
    }
    s.metrics
        .index_write_failures
        .set(crate::index::write_failures() as i64);
    if let Some(src) = &s.fleet {
        match crate::fleet::read(src).await {
            Ok(f) => s.metrics.set_fleet(&f),
            Err(e) => tracing::debug!(error = %e, "the fleet is not in this scrape"),
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}
