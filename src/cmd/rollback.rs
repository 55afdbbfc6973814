//! `kiln rollback`: switch `current` back to the previous release.

use crate::cli::{Exit, GlobalArgs};
use crate::release::Releases;

/// `kiln rollback` flags.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {}

/// Points `<out>/current` at the release before the live one.
pub async fn run(g: &GlobalArgs, _args: RollbackArgs) -> anyhow::Result<Exit> {
    let cfg = g.load_config()?;
    let releases = Releases::new(&cfg.out);
    let id = releases.rollback()?;
    println!("current -> releases/{id}");
    Ok(Exit::Clean)
}
