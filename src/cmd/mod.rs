//! One module per subcommand, each with one `run`.

pub mod build;
pub mod check;
pub mod daemon;
pub mod delete;
pub mod enqueue;
pub mod explain;
pub mod nginx;
pub mod regen;
pub mod rollback;
pub mod status;

use std::io::Read;

use crate::cli::UsageError;
use crate::targets::Target;

/// Parses target arguments; `-` reads more from stdin. Any bad target is a usage error.
pub fn parse_target_args(args: &[String]) -> anyhow::Result<Vec<Target>> {
    let mut targets = Vec::new();
    let mut errors = Vec::new();
    for a in args {
        if a == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| anyhow::anyhow!("failed to read targets from stdin: {e}"))?;
            let (good, bad) = Target::parse_lines(&text);
            targets.extend(good);
            errors.extend(bad.into_iter().map(|(n, e)| format!("stdin line {n}: {e}")));
        } else {
            match Target::parse(a) {
                Ok(t) => targets.push(t),
                Err(e) => errors.push(e.to_string()),
            }
        }
    }
    if !errors.is_empty() {
        return Err(UsageError(errors.join("\n")).into());
    }
    if targets.is_empty() {
        return Err(UsageError("no targets given: pass /path/, tag:NAME, glob:PATTERN, delete:/path/, all, or - to read them from stdin".into()).into());
    }
    Ok(targets)
}
