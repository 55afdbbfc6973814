//! The command line: the subcommand list and [`run`], which hands off to
//! `cmd::<name>::run`. What the commands share (flags, exit statuses) lives
//! in [`crate::cmd`], so commands never import this module back.

use clap::{Parser, Subcommand};

use crate::cmd;
pub use crate::cmd::{GlobalArgs, LogFormat};

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
    /// Rebuild a damaged or lost index from the output and the origin
    Index(cmd::index::IndexArgs),
    /// Queue targets for the daemon (durable spool file)
    Enqueue(cmd::enqueue::EnqueueArgs),
    /// Run beside nginx: watch the spool, serve the HTTP endpoint, regenerate on events
    Daemon(cmd::daemon::DaemonArgs),
    /// Make the S3-compatible bucket of `[[publish]]` equal the output
    Publish(cmd::publish::PublishArgs),
    /// Copy a pool's pages from its bucket into the output as they are published
    Mirror(cmd::mirror::MirrorArgs),
    /// Switch `current` back to the previous release
    Rollback(cmd::rollback::RollbackArgs),
    /// List the releases of a `build --release` layout and which is live
    Releases(cmd::releases::ReleasesArgs),
    /// Print an nginx server block that serves the baked files and falls through to the origin
    Nginx(cmd::nginx::NginxArgs),
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<cmd::Exit> {
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
        Command::Index(a) => cmd::index::run(g, a).await,
        Command::Enqueue(a) => cmd::enqueue::run(g, a).await,
        Command::Daemon(a) => cmd::daemon::run(g, a).await,
        Command::Rollback(a) => cmd::rollback::run(g, a).await,
        Command::Releases(a) => cmd::releases::run(g, a).await,
        Command::Publish(a) => cmd::publish::run(g, a).await,
        Command::Nginx(a) => cmd::nginx::run(g, a).await,
        Command::Mirror(a) => cmd::mirror::run(g, a).await,
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
