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
    /// Render mode: include data files marked `draft: true`
    #[arg(long, global = true)]
    pub drafts: bool,
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
    /// `kiln check` found what a build would trip on (exit code 2, as a
    /// configuration mistake).
    Problems,
}

/// A usage error found after parsing (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The process exit status for an error that ended a command: 2 for a
/// usage or configuration mistake the user fixes (a bad flag or key, no
/// page source, a second daemon, the wrong origin), 1 for everything else.
/// The error types decide (each has an `exit_code`); this is only the list
/// of the types that can end a command with a usage error.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    macro_rules! carried_by {
        ($($t:ty),* $(,)?) => {
            $(
                if let Some(e) = e.downcast_ref::<$t>() {
                    return e.exit_code();
                }
            )*
        };
    }
    carried_by!(
        ConfigError,
        UsageError,
        crate::bake::SetupError,
        crate::daemon::DaemonError,
        crate::lock::LockError,
    );
    1
}

impl UsageError {
    /// Always 2: the command line was wrong.
    pub fn exit_code(&self) -> u8 {
        2
    }
}

impl GlobalArgs {
    /// Loads and validates the config with the flag overrides.
    pub(crate) fn load_config(&self) -> Result<Config, ConfigError> {
        let cfg = Config::load(
            self.config.as_deref(),
            &Overrides {
                origin: self.origin.clone(),
                out: self.out.clone(),
            },
        )?;
        for notice in &cfg.notices {
            eprintln!("note: {notice}");
        }
        let mut cfg = cfg;
        cfg.drafts = self.drafts;
        Ok(cfg)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_says_its_exit_status() {
        let code = |e: anyhow::Error| exit_code(&e);
        assert_eq!(code(UsageError("bad flag".into()).into()), 2);
        assert_eq!(code(crate::bake::SetupError::NoSource.into()), 2);
        let io = || std::io::Error::other("disk");
        assert_eq!(
            code(
                crate::lock::LockError::Io {
                    path: "x".into(),
                    source: io()
                }
                .into()
            ),
            1,
            "a lock file that cannot be made is the machine's problem"
        );
        let no_token = crate::daemon::DaemonError::NoToken(([0, 0, 0, 0], 80).into());
        assert_eq!(code(no_token.into()), 2);
        let bind = crate::daemon::DaemonError::Bind {
            addr: ([127, 0, 0, 1], 80).into(),
            source: io(),
        };
        assert_eq!(code(bind.into()), 1);
        // Context on top does not hide what the error is.
        let wrapped =
            anyhow::Error::from(crate::bake::SetupError::NoSource).context("while building");
        assert_eq!(code(wrapped), 2);
        assert_eq!(code(anyhow::anyhow!("anything else")), 1);
    }
}
