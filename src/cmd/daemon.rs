//! `kiln daemon`: run beside nginx and regenerate pages as events arrive.

use std::sync::Arc;

use super::{Exit, GlobalArgs};

/// `kiln daemon` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kiln daemon                                  spool + HTTP on 127.0.0.1:7878 (+ template watching)
  KILN_TOKEN=secret kiln daemon --listen 0.0.0.0:7878
  kiln daemon --listen off                     spool and watcher only")]
pub struct DaemonArgs {
    /// HTTP listen address, overriding `[daemon] listen` ("off" disables it)
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Bake from an origin other than the one this output was baked from
    #[arg(long)]
    pub force: bool,
}

/// Runs the daemon until SIGTERM or Ctrl-C.
pub async fn run(g: &GlobalArgs, args: DaemonArgs) -> anyhow::Result<Exit> {
    let mut cfg = g.load_config()?;
    if let Some(l) = args.listen {
        cfg.daemon.listen = crate::config::parse_listen(&l).map_err(|_| {
            super::UsageError(format!(
                "--listen `{l}` is not an address like 127.0.0.1:7878 (or \"off\")"
            ))
        })?;
    }
    let token = std::env::var(&cfg.daemon.token_env)
        .ok()
        .filter(|t| !t.is_empty());
    let opts = crate::bake::RunOptions {
        force_origin: args.force,
        ..Default::default()
    };
    // A daemon that fails to start on a new site leaves nothing behind
    // (no empty output with a lock file, no state directory).
    let fresh = super::FreshDirs::note(&cfg);
    let result = crate::daemon::run(Arc::new(cfg), token, opts, shutdown_signal(), |ready| {
        if let Some(addr) = ready.http {
            // One line on stdout that scripts and tests can wait for.
            println!("kiln daemon listening on http://{addr}");
        } else {
            println!("kiln daemon running (HTTP endpoint off)");
        }
    })
    .await
    .map(|()| Exit::Clean)
    .map_err(anyhow::Error::from);
    fresh.clean_up_after(&result);
    result
}

/// Completes on SIGTERM or SIGINT. The handlers are installed when this is
/// called, not when the future is first polled: a process that says it is
/// ready must already handle the signal that stops it (a SIGTERM in
/// between would otherwise get the inherited disposition — ignored, if the
/// parent ignored it — and the daemon would never stop).
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate()).ok();
    let int = signal(SignalKind::interrupt()).ok();
    async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = wait(term) => {},
            _ = wait(int) => {},
        }
    }
}
