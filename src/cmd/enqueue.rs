//! `kiln enqueue`: hand targets to a running (or future) daemon, durably.

use super::{Exit, GlobalArgs};
use crate::intake::spool::Spool;

/// `kiln enqueue` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kiln enqueue tag:post:42                     a durable spool file; the daemon takes it now or at its next start
  kiln enqueue /about/ /
  kiln enqueue --redis tag:post:42             every web host reading the stream regenerates it
  git diff --name-only | sed 's|^content|tag:data:content|' | kiln enqueue -")]
pub struct EnqueueArgs {
    /// Add the targets to the Redis stream (`[intake] redis`) instead of the spool
    #[arg(long)]
    pub redis: bool,
    /// Targets: /path/, tag:NAME, glob:PATTERN, delete:/path/, all, or - for stdin
    #[arg(required = true, value_name = "TARGET")]
    pub targets: Vec<String>,
}

/// Validates the targets and writes one spool file (tmp + rename into new/).
pub async fn run(g: &GlobalArgs, args: EnqueueArgs) -> anyhow::Result<Exit> {
    let targets = super::parse_target_args(&args.targets)?;
    let cfg = g.load_config()?;
    if args.redis {
        let Some(redis) = &cfg.redis else {
            return Err(super::UsageError(
                "--redis needs `[intake] redis = \"redis://HOST:6379/0\"` in site.toml".into(),
            )
            .into());
        };
        let id = crate::intake::redis::enqueue(redis, &targets)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "failed to add the targets to `{}` at {}: {e}",
                    redis.stream,
                    redis.url
                )
            })?;
        if !g.quiet {
            println!(
                "queued {} target(s) as entry {id} of {}",
                targets.len(),
                redis.stream
            );
        }
        return Ok(Exit::Clean);
    }
    let spool = Spool::open(&cfg.queue)?;
    let path = spool.enqueue(&targets)?;
    if !g.quiet {
        println!("queued {} target(s) in {}", targets.len(), path.display());
    }
    Ok(Exit::Clean)
}
