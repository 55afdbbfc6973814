//! `kiln serve`'s preview server: the output served with the same rules as
//! the generated nginx block (recorded redirects, `$uri`, `$uri/index.html`,
//! recorded content types, a 404 page), what is not baked proxied to the
//! origin in fetch mode, and open HTML pages reloaded live. The reload
//! script is added to responses only; it is never written to the output.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::index::Index;
use crate::schedule::Backlog;
use crate::write::WebRoot;

/// Where the browser listens for reloads.
const EVENTS_PATH: &str = "/__kiln/events";

/// The script added before `</body>` of HTML responses: reload on change,
/// show a template error as an overlay (the last good page stays under it).
const LIVE_RELOAD: &str = r#"<script data-kiln-live-reload>
(() => {
  const overlay = (text) => {
    let box = document.getElementById("kiln-error");
    if (!text) { if (box) box.remove(); return; }
    if (!box) {
      box = document.createElement("pre");
      box.id = "kiln-error";
      box.style.cssText = "position:fixed;inset:auto 1rem 1rem 1rem;z-index:2147483647;margin:0;padding:1rem;max-height:50vh;overflow:auto;background:#2b0a0a;color:#ffd7d7;font:14px/1.4 ui-monospace,monospace;border-left:6px solid #ff5c5c;white-space:pre-wrap;box-shadow:0 8px 30px rgba(0,0,0,.4)";
      document.body.appendChild(box);
    }
    box.textContent = "kiln: " + text;
  };
  // On (re)connecting: a restarted `kiln serve` (site.toml changed), or a
  // reload sent before this page's stream was open, reloads it too.
  const servedAt = __KILN_GENERATION__;
  let instance = null;
  const connect = () => {
    const events = new EventSource("/__kiln/events");
    events.addEventListener("reload", () => location.reload());
    events.addEventListener("hello", (e) => {
      const [run, generation] = e.data.split(":");
      if ((instance !== null && instance !== run) || Number(generation) > servedAt) location.reload();
      instance = run;
    });
    events.addEventListener("error-message", (e) => overlay(e.data));
    events.addEventListener("ok", () => overlay(null));
    // A stream the browser gave up on (a restart answered it with an
    // error) is opened again.
    events.onerror = () => {
      if (events.readyState === EventSource.CLOSED) setTimeout(connect, 300);
    };
  };
  connect();
})();
</script>"#;

/// What the browser is told.
#[derive(Debug, Clone)]
pub(crate) enum LiveEvent {
    /// Files changed: reload.
    Reload,
    /// The templates do not load: show why.
    Error(String),
    /// They load again.
    Ok,
    /// This run of `kiln serve` ends (Ctrl-C, or site.toml changed).
    Closing,
}

/// The preview server's view of the site.
#[derive(Clone)]
pub(crate) struct Preview {
    /// The output, read without following symlinks.
    pub(crate) root: WebRoot,
    /// Redirects and content types.
    pub(crate) index: Index,
    /// The origin for what is not baked (fetch mode).
    pub(crate) origin: Option<url::Url>,
    /// Live events for open pages.
    pub(crate) events: broadcast::Sender<LiveEvent>,
    /// The current template error, sent to pages that connect while it lasts.
    pub(crate) error: Arc<std::sync::Mutex<Option<String>>>,
    /// Which run of `kiln serve` this is: a page that reconnects to another
    /// one (site.toml changed) reloads.
    instance: String,
    /// How many reloads were sent: a page served before the last one
    /// whose event stream opened after it reloads when it connects.
    generation: Arc<std::sync::atomic::AtomicU64>,
    client: reqwest::Client,
}

impl Preview {
    /// A preview of `root`.
    pub(crate) fn new(
        root: WebRoot,
        index: Index,
        origin: Option<url::Url>,
        closing: CancellationToken,
    ) -> Preview {
        let events = broadcast::channel(64).0;
        {
            let events = events.clone();
            let closing = closing.clone();
            tokio::spawn(async move {
                closing.cancelled().await;
                let _ = events.send(LiveEvent::Closing);
            });
        }
        Preview {
            root,
            index,
            origin,
            events,
            error: Arc::default(),
            generation: Arc::default(),
            instance: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos().to_string())
                .unwrap_or_default(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        }
    }
}

/// The router: live events and everything else as nginx would serve it.
pub(crate) fn router(preview: Preview) -> Router {
    Router::new()
        .route(EVENTS_PATH, get(events))
        .fallback(serve)
        .with_state(preview)
}

/// Turns the daemon's signals into browser events: a reload once a burst of
/// regenerations is over, an overlay while the templates are broken.
pub(crate) async fn follow(
    preview: Preview,
    backlog: Arc<Backlog>,
    mut config: tokio::sync::watch::Receiver<Option<String>>,
    stop: CancellationToken,
) {
    let mut changes = backlog.changes.subscribe();
    let mut errors = backlog.template_error.subscribe();
    let mut pages = backlog.render_errors.subscribe();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = changes.changed() => {
                if changed.is_err() { return; }
                // Wait for the rest of the burst: one reload per edit.
                while !backlog.is_idle() {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = changes.changed() => {}
                        _ = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
                    }
                }
                preview
                    .generation
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = preview.events.send(LiveEvent::Reload);
            }
            changed = errors.changed() => {
                if changed.is_err() { return; }
                errors.borrow_and_update();
                show_error(&preview, &backlog, &config);
            }
            changed = pages.changed() => {
                if changed.is_err() { return; }
                pages.borrow_and_update();
                show_error(&preview, &backlog, &config);
            }
            changed = config.changed() => {
                if changed.is_err() { return; }
                config.borrow_and_update();
                show_error(&preview, &backlog, &config);
            }
        }
    }
}

/// What the overlay shows: why site.toml does not load, else why the
/// templates do not, else the first page that fails to render (and how many
/// more), else nothing.
fn show_error(
    preview: &Preview,
    backlog: &Backlog,
    config: &tokio::sync::watch::Receiver<Option<String>>,
) {
    let error = config
        .borrow()
        .clone()
        .or_else(|| backlog.template_error.borrow().clone())
        .or_else(|| {
            let pages = backlog.render_errors.borrow();
            pages.iter().next().map(|(url, problem)| {
                let more = pages.len() - 1;
                let more = if more > 0 {
                    format!(
                        "\n\n(and {more} more page{} failing)",
                        if more == 1 { "" } else { "s" }
                    )
                } else {
                    String::new()
                };
                format!("{url} does not render:\n{problem}{more}")
            })
        });
    if let Ok(mut e) = preview.error.lock() {
        if *e == error {
            return;
        }
        e.clone_from(&error);
    }
    let _ = preview.events.send(match error {
        Some(e) => LiveEvent::Error(e),
        None => LiveEvent::Ok,
    });
}

/// Watches the config file; when it changes and `loads` (the caller's
/// config loader) accepts it, cancels `restart`
/// (kiln serve starts over with it); when it does not load, says why in
/// `errors` (the overlay) and on stderr, and keeps the running config.
pub(crate) fn watch_config(
    loads: impl Fn() -> Result<(), String> + Send + 'static,
    file: PathBuf,
    restart: CancellationToken,
    errors: tokio::sync::watch::Sender<Option<String>>,
) -> Option<notify::RecommendedWatcher> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = file.file_name()?.to_owned();
    let handle = crate::intake::watch::watch_dirs(
        std::slice::from_ref(&dir),
        notify::RecursiveMode::NonRecursive,
        "edits to site.toml need a restart of kiln serve",
    )
    .ok()?;
    // The watcher goes to the caller (it lives as long as this run); the
    // events to this task.
    let crate::intake::watch::WatchHandle {
        watcher, mut rx, ..
    } = handle;
    let mut seen = std::fs::read(&file).ok();
    tokio::spawn(async move {
        loop {
            let path = tokio::select! {
                _ = restart.cancelled() => return,
                p = rx.recv() => match p { Some(p) => p, None => return },
            };
            if path.file_name() != Some(name.as_os_str()) {
                continue;
            }
            // An editor's save arrives as several events: let them settle.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            while rx.try_recv().is_ok() {}
            let now = std::fs::read(&file).ok();
            if now.is_none() || now == seen {
                continue;
            }
            seen = now;
            match loads() {
                Ok(()) => {
                    errors.send_replace(None);
                    restart.cancel();
                    return;
                }
                Err(e) => {
                    eprintln!("error: {e}\n(still serving with the previous site.toml)");
                    errors.send_replace(Some(format!(
                        "{e}\n\n(still serving with the previous site.toml)"
                    )));
                }
            }
        }
    });
    Some(watcher)
}

async fn events(State(p): State<Preview>) -> impl IntoResponse {
    use tokio_stream::StreamExt;
    // A page that connects while the templates are broken sees why at once.
    let current = p.error.lock().ok().and_then(|e| e.clone());
    let hello = Event::default()
        .event("hello")
        .retry(std::time::Duration::from_millis(300))
        .data(format!(
            "{}:{}",
            p.instance,
            p.generation.load(std::sync::atomic::Ordering::SeqCst)
        ));
    let first = tokio_stream::iter(current.map(LiveEvent::Error));
    let live =
        tokio_stream::wrappers::BroadcastStream::new(p.events.subscribe()).filter_map(Result::ok);
    let stream = first.chain(live).map(|ev| {
        Ok::<_, Infallible>(match ev {
            LiveEvent::Reload => Some(Event::default().event("reload").data("1")),
            LiveEvent::Error(e) => Some(Event::default().event("error-message").data(e)),
            LiveEvent::Ok => Some(Event::default().event("ok").data("1")),
            // The end of this run: the stream ends.
            LiveEvent::Closing => None,
        })
    });
    let stream = tokio_stream::once(Ok::<_, Infallible>(Some(hello)))
        .chain(stream)
        .take_while(|ev| !matches!(ev, Ok(None)))
        .map(|ev| ev.map(Option::unwrap_or_default));
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn serve(State(p): State<Preview>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let Ok(canonical) = crate::urlpath::canonical(&path) else {
        return not_found(&p);
    };
    if req.method() == axum::http::Method::GET || req.method() == axum::http::Method::HEAD {
        if let Ok(redirects) = p.index.redirects().await {
            if let Some(r) = redirects.iter().find(|r| r.from == canonical) {
                return Response::builder()
                    .status(StatusCode::from_u16(r.code).unwrap_or(StatusCode::MOVED_PERMANENTLY))
                    .header(header::LOCATION, &r.to)
                    .body(Body::empty())
                    .unwrap_or_default();
            }
        }
        let record = p.index.page(&canonical).await.ok().flatten();
        // As nginx does: the file the path names, else the page's file in
        // the typed tree.
        let found = find_file(&p.root, &canonical).or_else(|| {
            let rel = PathBuf::from(record.as_ref()?.file.as_ref()?);
            let typed = rel.starts_with(crate::urlmap::TYPED_TREE);
            typed.then(|| p.root.read_page(&rel).map(|b| (rel, b)))?
        });
        if let Some((rel, bytes)) = found {
            let content_type = match record.and_then(|r| r.content_type) {
                Some(ct) => ct,
                None => crate::urlmap::content_type_of(&rel).to_string(),
            };
            return file_response(&p, StatusCode::OK, &content_type, bytes);
        }
    }
    match &p.origin {
        Some(origin) => proxy(&p, origin, req).await,
        None => not_found(&p),
    }
}

/// `try_files $uri $uri/index.html`, without following symlinks.
fn find_file(root: &WebRoot, canonical: &str) -> Option<(PathBuf, Vec<u8>)> {
    let segments = crate::urlmap::segments(canonical).ok()?;
    let mut rel: PathBuf = segments.iter().collect();
    if !canonical.ends_with('/') && !segments.is_empty() {
        if let Some(bytes) = root.read_page(&rel) {
            return Some((rel, bytes));
        }
    }
    rel.push("index.html");
    root.read_page(&rel).map(|b| (rel, b))
}

fn file_response(
    p: &Preview,
    status: StatusCode,
    content_type: &str,
    mut bytes: Vec<u8>,
) -> Response {
    if crate::urlmap::media_type(content_type) == "text/html" {
        bytes = inject_live_reload(
            bytes,
            p.generation.load(std::sync::atomic::Ordering::SeqCst),
        );
    }
    Response::builder()
        .status(status)
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type)
                .unwrap_or(HeaderValue::from_static("application/octet-stream")),
        )
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-kiln", "static")
        .body(Body::from(bytes))
        .unwrap_or_default()
}

/// Puts the live-reload script before `</body>` (or at the end).
fn inject_live_reload(mut html: Vec<u8>, generation: u64) -> Vec<u8> {
    let at = html
        .windows(7)
        .rposition(|w| w.eq_ignore_ascii_case(b"</body>"))
        .unwrap_or(html.len());
    let script = LIVE_RELOAD.replace("__KILN_GENERATION__", &generation.to_string());
    html.splice(at..at, script.into_bytes());
    html
}

fn not_found(p: &Preview) -> Response {
    match p.root.read_page(std::path::Path::new("404.html")) {
        Some(bytes) => file_response(p, StatusCode::NOT_FOUND, "text/html; charset=utf-8", bytes),
        None => (
            StatusCode::NOT_FOUND,
            "404 not found (and no 404.html in the output)\n",
        )
            .into_response(),
    }
}

/// Passes the request to the origin as nginx's `@origin` would.
async fn proxy(p: &Preview, origin: &url::Url, req: Request) -> Response {
    let target = match crate::urlpath::request_url(
        origin,
        &req.uri()
            .path_and_query()
            .map(|x| x.to_string())
            .unwrap_or_default(),
    ) {
        Ok(u) => u,
        Err(_) => return not_found(p),
    };
    let method = req.method().clone();
    let mut headers = req.headers().clone();
    headers.remove(header::HOST);
    let body = axum::body::to_bytes(req.into_body(), 16 << 20)
        .await
        .unwrap_or_default();
    let sent = p
        .client
        .request(method, target)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let upstream = match sent {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!("kiln serve: the origin did not answer: {e}\n"),
            )
                .into_response();
        }
    };
    let status = upstream.status();
    let headers = upstream.headers().clone();
    let bytes = upstream.bytes().await.unwrap_or_default().to_vec();
    let is_html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| crate::urlmap::media_type(ct) == "text/html");
    let bytes = if is_html {
        inject_live_reload(
            bytes,
            p.generation.load(std::sync::atomic::Ordering::SeqCst),
        )
    } else {
        bytes
    };
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    for (k, v) in &headers {
        if k != header::CONTENT_LENGTH && k != header::TRANSFER_ENCODING && k != header::CONNECTION
        {
            resp.headers_mut().append(k, v.clone());
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_goes_before_the_body_end() {
        let out = inject_live_reload(b"<html><body><p>x</p></BODY></html>".to_vec(), 0);
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("<p>x</p><script data-kiln-live-reload>"), "{s}");
        assert!(s.ends_with("</script></BODY></html>"), "{s}");
    }
}
