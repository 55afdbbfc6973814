//! `kiln enqueue`: hand targets to a running (or future) daemon, durably.

use crate::cli::{Exit, GlobalArgs};
use crate::queue::Spool;

/// `kiln enqueue` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kiln enqueue tag:post:42                     a durable spool file; the daemon takes it now or at its next start
  kiln enqueue /about/ /
  git diff --name-only | sed 's|^content|tag:data:content|' | kiln enqueue -")]
pub struct EnqueueArgs {
    /// Targets: /path/, tag:NAME, glob:PATTERN, delete:/path/, all, or - for stdin
    #[arg(required = true, value_name = "TARGET")]
    pub targets: Vec<String>,
}

/// Validates the targets and writes one spool file (tmp + rename into new/).
pub async fn run(g: &GlobalArgs, args: EnqueueArgs) -> anyhow::Result<Exit> {
    let targets = super::parse_target_args(&args.targets)?;
    let cfg = g.load_config()?;
    let spool = Spool::open(&cfg.queue)?;
    let path = spool.enqueue(&targets)?;
    if !g.quiet {
        println!("queued {} target(s) in {}", targets.len(), path.display());
    }
    Ok(Exit::Clean)
}
