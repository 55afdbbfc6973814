//! `kiln check`: validate the config.

use super::{Exit, GlobalArgs};

/// `kiln check` flags.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Checks what a build would hit before it starts: site.toml (keys, globs,
durations, URLs), and in render mode every template (parses, includes found)
and every data file (readable, front matter valid, URL placeholders filled).
Exits 2 on the first problem.

Examples:
  kiln check
  kiln --config /srv/site/site.toml check"
)]
pub struct CheckArgs {}

/// Loads and validates site.toml; prints the resolved essentials.
pub async fn run(g: &GlobalArgs, _args: CheckArgs) -> anyhow::Result<Exit> {
    let cfg = g.load_config()?;
    crate::lock::check_output(&cfg.out).map_err(|e| super::UsageError(e.to_string()))?;
    let pages = if cfg.renders() {
        // Exactly what a build loads first: templates, data, URLs.
        let renderer = crate::source::render::Renderer::load(&cfg).map_err(|e| {
            super::UsageError(format!(
                "the site would not build: {}",
                crate::bake::error_chain(&e)
            ))
        })?;
        Some(renderer.urls().len())
    } else {
        None
    };
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
    if let Some(n) = pages {
        println!("pages:   {n} from the render routes; every template and data file loads");
    }
    if cfg.origin.is_none() && cfg.render.is_empty() {
        println!("warning: nothing to bake: set [origin] url or add [[render]] routes");
    }
    Ok(Exit::Clean)
}
