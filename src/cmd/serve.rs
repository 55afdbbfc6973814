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
/// proxies everything else to the origin. An edited site.toml restarts it
/// with the new config (a broken one is shown and the old one kept).
pub async fn run(g: &GlobalArgs, args: ServeArgs) -> anyhow::Result<Exit> {
    let addr: std::net::SocketAddr = args.listen.parse().map_err(|_| {
        UsageError(format!(
            "--listen `{}` is not an address like 127.0.0.1:1111",
            args.listen
        ))
    })?;
    // One Ctrl-C ends every round.
    let stop = tokio_util::sync::CancellationToken::new();
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            super::daemon::shutdown_signal().await;
            stop.cancel();
        });
    }
    let mut first = true;
    loop {
        let cfg = g.load_config()?;
        if cfg.file.is_none() && cfg.origin.is_none() {
            return Err(UsageError(format!(
                "no site.toml in {}: `kiln init --render` makes a site to preview here (or pass --config FILE, or --origin URL to browse a running app's baked pages)",
                std::env::current_dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|_| ".".into())
            ))
            .into());
        }
        let listener = bind(addr, first).await?;
        first = false;
        let restart = stop.child_token();
        let exit = serve_once(g, cfg, listener, restart.clone()).await?;
        if stop.is_cancelled() || !restart.is_cancelled() {
            return Ok(exit);
        }
        println!("site.toml changed: serving with the new config");
    }
}

/// Binds the preview's address; after a restart the old socket may take a
/// moment to go.
async fn bind(addr: std::net::SocketAddr, first: bool) -> anyhow::Result<tokio::net::TcpListener> {
    let mut tries = if first { 1 } else { 50 };
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) if tries > 1 && e.kind() == std::io::ErrorKind::AddrInUse => {
                tries -= 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => return Err(anyhow::anyhow!("failed to listen on {addr}: {e}")),
        }
    }
}

/// One round of serving with one config, until `restart` (site.toml
/// changed and loads) or Ctrl-C.
async fn serve_once(
    g: &GlobalArgs,
    mut cfg: crate::config::Config,
    listener: tokio::net::TcpListener,
    restart: tokio_util::sync::CancellationToken,
) -> anyhow::Result<Exit> {
    let bound = listener.local_addr()?;
    if cfg.renders() {
        // Into a preview output of its own, never the one nginx serves.
        cfg = cfg.preview();
        // Everything once, then only what edits affect.
        let built = super::build::run_with(
            g,
            super::build::BuildArgs {
                release: false,
                guard: super::GuardFlags {
                    allow_mass_delete: false,
                    force: false,
                },
            },
            Arc::new(cfg.clone()),
        )
        .await?;
        if built == Exit::PagesFailed {
            eprintln!("some pages failed to render; serving the rest (fix them and save to retry)");
        }
    }
    let out = crate::release::live_root(&cfg.out);
    let root = crate::write::WebRoot::open(&out, Vec::new(), 0)?;
    let index = crate::index::Index::open(&cfg.state)?;
    let preview = Preview::new(
        root,
        index,
        cfg.origin.as_ref().map(|o| o.url.clone()),
        restart.clone(),
    );
    println!("kiln serve: http://{bound}/ (live reload on)");
    let config_errors = tokio::sync::watch::Sender::new(None::<String>);
    let _config_watch = cfg.file.clone().map(|file| {
        let g = g.clone();
        let loads = move || g.load_config().map(|_| ()).map_err(|e| e.to_string());
        serve::watch_config(loads, file, restart.clone(), config_errors.clone())
    });
    if !cfg.renders() {
        axum::serve(listener, serve::router(preview))
            .with_graceful_shutdown(restart.cancelled_owned())
            .await?;
        return Ok(Exit::Clean);
    }
    // The daemon's watcher and scheduler keep the output fresh; its HTTP
    // endpoint stays off (the preview server is the one people open).
    cfg.daemon.listen = None;
    cfg.daemon.watch = true;
    let server: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>> = Arc::default();
    let slot = server.clone();
    let done = restart.clone();
    crate::daemon::run(
        Arc::new(cfg),
        None,
        Default::default(),
        async move { done.cancelled().await },
        move |ready| {
            let stop = ready.stopping.clone();
            let follow = serve::follow(
                preview.clone(),
                ready.backlog,
                config_errors.subscribe(),
                stop.clone(),
            );
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
