//! The loopback HTTP endpoint: `POST /v1/regen`, `GET /v1/jobs/{id}`,
//! `GET /v1/status`, `GET /metrics`, `GET /healthz`. A bearer token guards
//! everything but `/healthz` whenever one is configured.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
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
        Box::pin(async move {
            if let Err(e) = axum::serve(listener, router(state))
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
            {
                tracing::error!(error = %e, "HTTP endpoint stopped");
            }
        })
    }
}

/// Builds the router.
pub(crate) fn router(state: ApiState) -> Router {
    let guarded = Router::new()
        .route("/v1/regen", post(regen))
        .route("/v1/jobs/{id}", get(job))
        .route("/v1/status", get(status))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(guarded)
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

async fn require_token(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    if let Some(token) = &s.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
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
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body is over {MAX_BODY_BYTES} bytes; send fewer targets per request"),
            )
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
            )
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
            .map(|b| crate::queue::excerpt(b, 200))
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
    match s
        .submit
        .submit(WorkRequest {
            targets,
            reply: None,
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

async fn status(State(s): State<ApiState>) -> Response {
    match s.index.summary().await {
        Ok(sum) => {
            let mut v = sum.to_json(crate::queue::queue_depth(&s.queue));
            if let (Some(v), serde_json::Value::Object(b)) =
                (v.as_object_mut(), s.backlog.to_json())
            {
                v.extend(b);
                v.insert(
                    "daemon".into(),
                    serde_json::json!({"pid": std::process::id()}),
                );
            }
            Json(v).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn metrics(State(s): State<ApiState>) -> Response {
    match s.index.summary().await {
        Ok(sum) => s.metrics.set_index_pages(&sum.by_status),
        Err(e) => tracing::warn!(error = %e, "index counts unavailable for /metrics"),
    }
    s.metrics.redis_connected.set(i64::from(
        s.backlog
            .redis_connected
            .load(std::sync::atomic::Ordering::Relaxed),
    ));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}
