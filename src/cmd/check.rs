//! `kiln check`: validate the config.

use crate::cli::{Exit, GlobalArgs};

/// `kiln check` flags.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {}

/// Loads and validates site.toml; prints the resolved essentials.
pub async fn run(g: &GlobalArgs, _args: CheckArgs) -> anyhow::Result<Exit> {
    let cfg = g.load_config()?;
    match &cfg.file {
        Some(f) => println!("config `{}` is valid", f.display()),
        None => println!("no site.toml: using defaults and flags"),
    }
    println!("output:  {}", cfg.out.display());
    println!("index:   {}", cfg.state.display());
    println!("queue:   {}", cfg.queue.display());
    match &cfg.origin {
        Some(o) => println!(
            "origin:  {} (concurrency {}, timeout {:?}, retries {})",
            o.url, o.concurrency, o.timeout, o.retries
        ),
        None => println!("origin:  none"),
    }
    println!(
        "routes:  {} render routes, {} depend rules",
        cfg.render.len(),
        cfg.depend.len()
    );
    if cfg.origin.is_none() && cfg.render.is_empty() {
        println!("warning: nothing to bake: set [origin] url or add [[render]] routes");
    }
    Ok(Exit::Clean)
}
