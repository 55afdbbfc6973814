//! `kiln status`: what the index knows.

use super::{Exit, GlobalArgs, UsageError};

/// `kiln status` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kiln status                 pages by state, failing pages, queue, and the daemon if one runs
  kiln status --json | jq .pages
  kiln status --fleet         every host's lag, pending events, dead letters and outbox (Redis)")]
pub struct StatusArgs {
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// Show the fleet as Redis sees it: each consumer group's lag and
    /// pending entries, each worker's outbox, the dead letters by host
    #[arg(long)]
    pub fleet: bool,
}

/// Prints counts by status, failing URLs, tag count and queue depth.
pub async fn run(g: &GlobalArgs, args: StatusArgs) -> anyhow::Result<Exit> {
    let cfg = g.load_config()?;
    if args.fleet {
        return fleet(&cfg, args.json).await;
    }
    let summary = match super::existing_index(&cfg)? {
        Some(index) => index.summary().await?,
        None => Default::default(),
    };
    let queue_depth = crate::intake::spool::queue_depth(&cfg.queue);
    let daemon = daemon_state(&cfg).await;
    if args.json {
        let mut v = summary.to_json(queue_depth);
        v["index"] = serde_json::json!(cfg.state);
        v["output"] = serde_json::json!(cfg.out);
        v["daemon"] = daemon.clone().unwrap_or(serde_json::Value::Null);
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(Exit::Clean);
    }
    println!("output: {}", cfg.out.display());
    println!(" index: {}", cfg.state.display());
    if !cfg.state.is_file() {
        println!("{}", super::no_state_yet(&cfg));
    } else if summary.by_status.is_empty() {
        println!("no pages yet: run `kiln build`");
    }
    // Redirecting URLs are said once, as the redirects nginx returns.
    for (status, n) in summary.by_status.iter().filter(|(s, _)| s != "redirect") {
        match status.as_str() {
            "missing" => println!("{status:>9}: {n} (linked URLs the origin answers 404 for)"),
            _ => println!("{status:>9}: {n}"),
        }
    }
    println!("redirects: {}", summary.redirects);
    println!("     tags: {}", summary.tags);
    println!(
        "    queue: {queue_depth} accepted requests not done (spool files and journal entries)"
    );
    match &daemon {
        Some(d) => println!(
            "   daemon: PID {} running; {} URLs pending, {} in flight, {} retrying after failures",
            d["pid"], d["pending_urls"], d["in_flight_urls"], d["retrying_urls"]
        ),
        None => println!("   daemon: not running"),
    }
    for (url, status, err) in &summary.problems {
        println!("  {status} {url}: {err}");
    }
    Ok(Exit::Clean)
}

/// `kiln status --fleet`.
async fn fleet(cfg: &crate::config::Config, json: bool) -> anyhow::Result<Exit> {
    let Some(src) = crate::fleet::FleetSource::of(cfg) else {
        return Err(UsageError(
            "no fleet to show: this site has no `[intake] redis`, `[pool]` or `[mirror]` (the fleet is read from Redis)".into(),
        )
        .into());
    };
    let fleet = crate::fleet::read(&src)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the fleet: {e}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&fleet)?);
    } else {
        print!("{}", fleet.to_text());
    }
    Ok(Exit::Clean)
}

/// The running daemon's backlog, asked over its HTTP endpoint (found in
/// the lock file); `None` when no daemon runs.
async fn daemon_state(cfg: &crate::config::Config) -> Option<serde_json::Value> {
    let holder = crate::lock::peek(&cfg.out).filter(|h| h.role == "daemon")?;
    let mut state = serde_json::json!({ "pid": holder.pid });
    if let Some(http) = &holder.http {
        let mut req = reqwest::Client::new()
            .get(format!("{http}/v1/status"))
            .timeout(std::time::Duration::from_secs(2));
        if let Ok(t) = std::env::var(&cfg.daemon.token_env) {
            req = req.bearer_auth(t);
        }
        if let Ok(resp) = req.send().await {
            if let Ok(v) = resp.json::<serde_json::Value>().await {
                for k in ["pending_urls", "in_flight_urls", "retrying_urls"] {
                    state[k] = v[k].clone();
                }
            }
        }
    }
    Some(state)
}
