//! `kiln check`: what a build would hit, found without writing anything.

use std::collections::BTreeMap;

use super::{Exit, GlobalArgs, UsageError};
use crate::source::render::{PageCheck, Renderer};

/// `kiln check` flags.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Checks what a build would hit before it starts: site.toml (keys, globs,
durations, URLs), the output directory, and in render mode every template and
data file, then renders every page in memory exactly as a build would and
reports every failing page (template file, line, the source line with a
caret, the undefined name or unknown filter). Warnings: a data glob that
matches no file, a list naming no collection, a page printing an undefined
value (a post without the `title` its template uses), drafts left out.
Exits 2 on an error, and on a warning with --strict.

Examples:
  kiln check
  kiln check --strict --links       warnings are errors; internal links must reach a page
  kiln --config /srv/site/site.toml check"
)]
pub struct CheckArgs {
    /// Treat warnings as errors (exit 2)
    #[arg(long)]
    pub strict: bool,
    /// Also report internal links (a, link, img, script) that reach no page
    #[arg(long)]
    pub links: bool,
}

/// Loads and validates site.toml, then (render mode) renders every page.
pub async fn run(g: &GlobalArgs, args: CheckArgs) -> anyhow::Result<Exit> {
    let cfg = g.load_config()?;
    crate::lock::check_output(&cfg.out).map_err(|e| UsageError(e.to_string()))?;
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
    if let Some(public) = cfg.origin.as_ref().and_then(|o| o.public.as_ref()) {
        println!("public:  {public}");
    }
    println!(
        "routes:  {} render routes, {} depend rules",
        cfg.render.len(),
        cfg.depend.len()
    );
    if let Some(r) = &cfg.redis {
        println!(
            "intake:  redis {} stream {} group {} consumer {}",
            without_secret(&r.url),
            r.stream,
            r.group,
            r.consumer
        );
    }
    if let Some(p) = &cfg.pool {
        println!("pool:    {} (published on {})", p.name, p.published);
    }
    for p in &cfg.publish {
        println!(
            "publish: s3 {} bucket {} prefix `{}`",
            p.endpoint, p.bucket, p.prefix
        );
    }
    for h in &cfg.purge {
        println!("purge:   {:?} {}", h.kind, without_secret(&h.url));
    }
    if let Some(m) = &cfg.mirror {
        println!(
            "mirror:  {} group {} from bucket {} at {}",
            without_secret(&m.redis),
            m.group,
            m.bucket.bucket,
            m.bucket.endpoint
        );
    }
    if cfg.origin.is_none() && cfg.render.is_empty() {
        println!("warning: nothing to bake: set [origin] url or add [[render]] routes");
        return Ok(if args.strict {
            Exit::Problems
        } else {
            Exit::Clean
        });
    }
    if !cfg.renders() {
        return Ok(Exit::Clean);
    }
    // Exactly what a build loads first: templates, data, URLs.
    let loaded = {
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || Renderer::load(&cfg)).await?
    };
    let renderer = match loaded {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: the site would not build:\n{}", e.detailed());
            return Ok(Exit::Problems);
        }
    };
    let renderer = std::sync::Arc::new(renderer);
    let check = {
        let r = renderer.clone();
        tokio::task::spawn_blocking(move || r.check_every_page()).await?
    };
    let mut warnings: Vec<String> = renderer.warnings.clone();
    warnings.extend(undefined_warnings(&check));
    let broken = if args.links {
        broken_links(&cfg, &renderer, &check)
    } else {
        Vec::new()
    };
    let errors = failing_pages(&check);
    for e in &errors {
        eprintln!("error: {e}");
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    for b in &broken {
        eprintln!("error: {b}");
    }
    println!(
        "pages:   {} rendered in memory, {} failing; {} warning(s){}",
        check.rendered.len() + check.errors.len(),
        check.errors.len(),
        warnings.len(),
        if args.links {
            format!("; {} broken internal link(s)", broken.len())
        } else {
            String::new()
        }
    );
    Ok(
        if !errors.is_empty() || !broken.is_empty() || (args.strict && !warnings.is_empty()) {
            Exit::Problems
        } else {
            Exit::Clean
        },
    )
}

/// Each distinct problem once, with every page it breaks.
fn failing_pages(check: &PageCheck) -> Vec<String> {
    let mut by_problem: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (url, e) in &check.errors {
        by_problem.entry(e.detailed()).or_default().push(url);
    }
    by_problem
        .into_iter()
        .map(|(problem, urls)| format!("{problem}\n  {}", pages_list(&urls)))
        .collect()
}

fn pages_list(urls: &[&str]) -> String {
    let shown: Vec<&str> = urls.iter().take(10).copied().collect();
    let more = urls.len().saturating_sub(shown.len());
    format!(
        "in {} page{}: {}{}",
        urls.len(),
        if urls.len() == 1 { "" } else { "s" },
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )
}

/// A value a template prints that the page's data does not have: each
/// place once, with the pages (and their data files) that miss it.
fn undefined_warnings(check: &PageCheck) -> Vec<String> {
    let mut by_place: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (url, data, problem) in &check.undefined {
        let subject = problem.subject.clone().unwrap_or_else(|| "a value".into());
        let place = format!(
            "{}{}",
            problem.file.display(),
            problem.line.map(|l| format!(":{l}")).unwrap_or_default()
        );
        let who = match data {
            Some(d) => format!("{url} ({d})"),
            None => url.clone(),
        };
        by_place.entry((place, subject)).or_default().push(who);
    }
    by_place
        .into_iter()
        .map(|((place, subject), pages)| {
            let refs: Vec<&str> = pages.iter().map(String::as_str).collect();
            format!(
                "{place}: `{subject}` is undefined, so it prints nothing, {}; give the data that field, or write `{{{{ {subject} | default(\"…\") }}}}`",
                pages_list(&refs)
            )
        })
        .collect()
}

/// Internal links of rendered HTML pages that no page (or file) answers.
fn broken_links(
    cfg: &crate::config::Config,
    renderer: &Renderer,
    check: &PageCheck,
) -> Vec<String> {
    let scope = crate::links::Scope::new(&cfg.crawl, cfg.output.query_strings, None);
    let known: std::collections::HashSet<String> = renderer.urls().into_iter().collect();
    // nginx's try_files $uri $uri/index.html: `/about` reaches `/about/`.
    let reaches = |u: &str| known.contains(u) || known.contains(&format!("{u}/"));
    let mut by_target: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (url, page) in &check.rendered {
        if !page.is_html {
            continue;
        }
        let found = crate::linkscan::scan(&page.body, true);
        let Some(page_scope) = scope.page(url, found.base.as_deref()) else {
            continue;
        };
        for raw in &found.links {
            if let Some(target) = page_scope.admit(raw) {
                if !reaches(&target) {
                    by_target.entry(target).or_default().push(url);
                }
            }
        }
    }
    by_target
        .into_iter()
        .map(|(target, pages)| {
            let mut pages = pages;
            pages.dedup();
            format!("link to {target} reaches no page, {}", pages_list(&pages))
        })
        .collect()
}

/// A URL as `kiln check` may print it: any password in it replaced.
fn without_secret(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
