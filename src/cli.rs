//! The command line: shared flags, the subcommand list, and [`run`], which
//! loads the config once and hands off to `cmd::<name>::run`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cmd;
use crate::config::{Config, ConfigError, Overrides};

/// kiln: bake a dynamic site or templates into static files for nginx, and keep them fresh.
#[derive(Debug, Parser)]
#[command(
    name = "kiln",
    version,
    about,
    propagate_version = true,
    after_help = "Start here:
  kiln init --render            a template site (or: kiln init --origin http://127.0.0.1:8000)
  kiln serve                    preview it with live reload
  kiln build                    bake it into the output nginx serves
  kiln nginx > site.conf        the nginx server block
  kiln daemon                   keep it fresh as content changes

`kiln <command> --help` shows each command's examples."
)]
pub struct Cli {
    /// Flags every subcommand takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags shared by all subcommands.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Site config file [default: ./site.toml when present]
    #[arg(long, short = 'c', global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Origin base URL, overriding `[origin] url` (e.g. http://127.0.0.1:8000)
    #[arg(long, global = true, value_name = "URL")]
    pub origin: Option<String>,
    /// Output directory, overriding `[site] out`
    #[arg(long, global = true, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// More logging (-v debug, -vv trace)
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only warnings and errors; no progress bar
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
}

/// Log output style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a site here: a commented site.toml (and templates/ and content/ with --render)
    Init(cmd::init::InitArgs),
    /// Bake the whole site: render routes and crawl the origin from the seeds
    Build(cmd::build::BuildArgs),
    /// Preview the site as nginx would serve it, reloading open pages on edits
    Serve(cmd::serve::ServeArgs),
    /// Regenerate only what the targets name (/path/, tag:NAME, glob:PAT, delete:/path/, all, or - for stdin)
    Regen(cmd::regen::RegenArgs),
    /// Remove baked pages (nginx then falls through to the origin)
    Delete(cmd::delete::DeleteArgs),
    /// Show index counts, failing pages and queue depth
    Status(cmd::status::StatusArgs),
    /// Validate site.toml and print the resolved settings
    Check(cmd::check::CheckArgs),
    /// Show the tags and state kiln holds for a URL
    Explain(cmd::explain::ExplainArgs),
    /// Queue targets for the daemon (durable spool file)
    Enqueue(cmd::enqueue::EnqueueArgs),
    /// Run beside nginx: watch the spool, serve the HTTP endpoint, regenerate on events
    Daemon(cmd::daemon::DaemonArgs),
    /// Make the S3-compatible bucket of [[publish]] equal the output
    Publish(cmd::publish::PublishArgs),
    /// Switch `current` back to the previous release
    Rollback(cmd::rollback::RollbackArgs),
    /// Print an nginx server block that serves the baked files and falls through to the origin
    Nginx(cmd::nginx::NginxArgs),
}

/// How a successful run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything worked.
    Clean,
    /// Some pages failed (exit code 1).
    PagesFailed,
}

/// A usage error found after parsing (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// True when an error should exit with code 2.
pub fn is_usage_error(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ConfigError>().is_some()
        || e.downcast_ref::<UsageError>().is_some()
        || matches!(
            e.downcast_ref::<crate::bake::SetupError>(),
            Some(crate::bake::SetupError::NoSource | crate::bake::SetupError::OtherOrigin { .. })
        )
        || matches!(
            e.downcast_ref::<crate::daemon::DaemonError>(),
            Some(
                crate::daemon::DaemonError::NoToken(_)
                    | crate::daemon::DaemonError::Locked(crate::lock::LockError::Held { .. })
                    | crate::daemon::DaemonError::Setup(
                        crate::bake::SetupError::OtherOrigin { .. }
                    )
            )
        )
}

impl GlobalArgs {
    /// Loads and validates the config with the flag overrides.
    pub(crate) fn load_config(&self) -> Result<Config, ConfigError> {
        Config::load(
            self.config.as_deref(),
            &Overrides {
                origin: self.origin.clone(),
                out: self.out.clone(),
            },
        )
    }

    /// A progress bar on a terminal, hidden otherwise.
    pub fn progress(&self) -> indicatif::ProgressBar {
        use std::io::IsTerminal;
        if self.quiet || !std::io::stderr().is_terminal() {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} pages ({per_sec})",
        ) {
            bar.set_style(style);
        }
        bar
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<Exit> {
    let g = &cli.global;
    match cli.command {
        Command::Init(a) => cmd::init::run(g, a).await,
        Command::Build(a) => cmd::build::run(g, a).await,
        Command::Serve(a) => cmd::serve::run(g, a).await,
        Command::Regen(a) => cmd::regen::run(g, a).await,
        Command::Delete(a) => cmd::delete::run(g, a).await,
        Command::Status(a) => cmd::status::run(g, a).await,
        Command::Check(a) => cmd::check::run(g, a).await,
        Command::Explain(a) => cmd::explain::run(g, a).await,
        Command::Enqueue(a) => cmd::enqueue::run(g, a).await,
        Command::Daemon(a) => cmd::daemon::run(g, a).await,
        Command::Rollback(a) => cmd::rollback::run(g, a).await,
        Command::Publish(a) => cmd::publish::run(g, a).await,
        Command::Nginx(a) => cmd::nginx::run(g, a).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_subcommand_help_ends_with_real_examples() {
        let mut cli = Cli::command();
        for sub in cli.get_subcommands_mut() {
            let name = sub.get_name().to_string();
            if name == "help" {
                continue;
            }
            let help = sub.render_long_help().to_string();
            let examples = help
                .split("Examples:")
                .nth(1)
                .unwrap_or_else(|| panic!("`kiln {name} --help` has no examples:\n{help}"));
            let count = examples.lines().filter(|l| l.contains("kiln ")).count();
            assert!((2..=5).contains(&count), "`kiln {name}`: {count} examples");
        }
    }
}
