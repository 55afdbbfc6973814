//! `kiln rollback`: switch `current` back to the previous release.

use super::{Exit, GlobalArgs};
use crate::release::Releases;

/// `kiln rollback` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kiln rollback                        point `current` at the release before the live one
  kiln --out /srv/site rollback        the same for another output")]
pub struct RollbackArgs {}

/// Points `<out>/current` at the release before the live one.
pub async fn run(g: &GlobalArgs, _args: RollbackArgs) -> anyhow::Result<Exit> {
    let cfg = g.load_config()?;
    let releases = Releases::new(&cfg.out);
    let id = releases.rollback()?;
    println!("current -> releases/{id}");
    Ok(Exit::Clean)
}
