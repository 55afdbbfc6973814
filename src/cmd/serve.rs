//! `kiln serve`: preview the site as nginx would serve it, with live reload.

use std::sync::Arc;

use super::{Exit, GlobalArgs, UsageError};
use crate::serve::{self, Preview};

/// `kiln serve` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kiln serve                         render the site, serve it on http://127.0.0.1:1111, reload on edits
  kiln serve --listen 127.0.0.1:8080
  kiln --origin http://127.0.0.1:8000 serve   browse baked files, the rest proxied to the app")]
pub struct ServeArgs {
    /// Address to serve on
    #[arg(long, default_value = "127.0.0.1:1111", value_name = "ADDR")]
    pub listen: String,
}

/// Render mode: builds everything, then watches templates and data like the
/// daemon and reloads open pages. Fetch mode: serves the baked files and
/// proxies everything else to the origin.
pub async fn run(g: &GlobalArgs, args: ServeArgs) -> anyhow::Result<Exit> {
    let mut cfg = g.load_config()?;
    let addr: std::net::SocketAddr = args.listen.parse().map_err(|_| {
        UsageError(format!(
            "--listen `{}` is not an address like 127.0.0.1:1111",
            args.listen
        ))
    })?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("failed to listen on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    if cfg.renders() {
        // Everything once, then only what edits affect.
        let built = super::build::run(
            g,
            super::build::BuildArgs {
                release: false,
                guard: super::GuardFlags {
                    allow_mass_delete: false,
                    force: false,
                },
            },
        )
        .await?;
        if built == Exit::PagesFailed {
            eprintln!("some pages failed to render; serving the rest (fix them and save to retry)");
        }
    }
    let out = crate::release::live_root(&cfg.out);
    let root = crate::write::WebRoot::open(&out, Vec::new(), 0)?;
    let index = crate::index::Index::open(&cfg.state)?;
    let preview = Preview::new(root, index, cfg.origin.as_ref().map(|o| o.url.clone()));
    println!("kiln serve: http://{bound}/ (live reload on)");
    if !cfg.renders() {
        axum::serve(listener, serve::router(preview))
            .with_graceful_shutdown(super::daemon::shutdown_signal())
            .await?;
        return Ok(Exit::Clean);
    }
    // The daemon's watcher and scheduler keep the output fresh; its HTTP
    // endpoint stays off (the preview server is the one people open).
    cfg.daemon.listen = None;
    cfg.daemon.watch = true;
    let server: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>> = Arc::default();
    let slot = server.clone();
    crate::daemon::run(
        Arc::new(cfg),
        None,
        Default::default(),
        super::daemon::shutdown_signal(),
        move |ready| {
            let stop = ready.stopping.clone();
            let follow = serve::follow(preview.clone(), ready.backlog, stop.clone());
            let app = serve::router(preview);
            let handle = tokio::spawn(async move {
                let serving =
                    axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned());
                let (served, ()) = tokio::join!(serving, follow);
                if let Err(e) = served {
                    tracing::error!(error = %e, "preview server stopped");
                }
            });
            if let Ok(mut s) = slot.lock() {
                *s = Some(handle);
            }
        },
    )
    .await?;
    let handle = server.lock().ok().and_then(|mut s| s.take());
    if let Some(h) = handle {
        let _ = h.await;
    }
    Ok(Exit::Clean)
}
