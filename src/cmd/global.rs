//! What every command shares: the global flags, how a run ends, and the
//! exit status an error means.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::config::{Config, ConfigError, Overrides};

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

/// The process exit status for an error that ended a command: 2 for a
/// usage or configuration mistake the user fixes (a bad flag or key, no
/// page source, a second daemon, the wrong origin), 1 for everything else.
/// Each error type says which of its cases are usage errors; this is the
/// one list of the types that can carry one.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if is_usage_error(e) {
        2
    } else {
        1
    }
}

fn is_usage_error(e: &anyhow::Error) -> bool {
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
