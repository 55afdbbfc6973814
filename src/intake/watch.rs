//! Render mode: watch `templates/` and the data directories with notify,
//! debounce the burst an editor save produces, reload templates and data, and
//! regenerate only the pages that depend on what changed. A template that no
//! longer compiles is reported with file and line; every last good file stays
//! and the next save that fixes it recovers.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use notify::Watcher;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bake::Baker;
use crate::config::Config;
use crate::files::is_editor_junk;
use crate::schedule::{Request, Submitter};
use crate::source::render::Renderer;
use crate::tag::Tag;
use crate::targets::Target;

/// What a changed path means.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Change {
    /// A template, by name relative to the templates directory.
    Template(String),
    /// A data file, relative to the site directory.
    Data(String),
}

/// Classifies a changed path; `None` for anything kiln does not care about
/// (editor temp files, files outside templates and data globs).
pub(crate) fn classify(cfg: &Config, path: &Path) -> Option<Change> {
    if is_editor_junk(path) {
        return None;
    }
    let rel_to = |base: &Path| -> Option<String> {
        let base = base.canonicalize().unwrap_or_else(|_| base.to_path_buf());
        let p = path
            .parent()
            .and_then(|d| d.canonicalize().ok())
            .map(|d| d.join(path.file_name().unwrap_or_default()))
            .unwrap_or_else(|| path.to_path_buf());
        p.strip_prefix(&base)
            .ok()
            .map(|r| r.to_string_lossy().replace('\\', "/"))
    };
    if let Some(name) = rel_to(&cfg.templates) {
        return Some(Change::Template(name));
    }
    let rel = rel_to(&cfg.base_dir)?;
    // A file under static/ is the "data" of its own page.
    if rel_to(&cfg.static_dir).is_some() {
        return Some(Change::Data(rel));
    }
    cfg.render
        .iter()
        .filter_map(|r| r.data.as_ref())
        .any(|g| g.matcher.is_match(&rel))
        .then_some(Change::Data(rel))
}

/// Targets that regenerate everything a set of changes affects.
pub(crate) fn targets_for(
    cfg: &Config,
    renderer: &Renderer,
    changes: &BTreeSet<Change>,
) -> Vec<Target> {
    let mut out = BTreeSet::new();
    for c in changes {
        match c {
            Change::Template(name) => {
                out.insert(Target::Tag(Tag::Template(name.clone()).into()));
            }
            Change::Data(rel) => {
                out.insert(Target::Tag(Tag::Data(rel.clone()).into()));
                // A directory moved or made in one go: its files' pages.
                for url in renderer.urls_under(rel) {
                    out.insert(Target::Url(url));
                }
                for coll in renderer.collections_of_data(cfg, rel) {
                    out.insert(Target::Tag(Tag::Collection(coll).into()));
                }
            }
        }
    }
    out.into_iter().collect()
}

fn watched_dirs(cfg: &Config) -> Vec<PathBuf> {
    let mut dirs = vec![cfg.templates.clone()];
    if cfg.static_dir.is_dir() {
        dirs.push(cfg.static_dir.clone());
    }
    for r in &cfg.render {
        if let Some(g) = &r.data {
            if !dirs.contains(&g.dir) {
                dirs.push(g.dir.clone());
            }
        }
    }
    dirs
}

/// How long the watched files must be still before a burst of events is
/// taken as one change (an editor's save is a few events within a
/// millisecond or two).
const QUIET: Duration = Duration::from_millis(15);

/// Template and data watching as an [`crate::schedule::Intake`].
pub(crate) struct WatchIntake {
    /// The live watcher.
    pub(crate) handle: WatchHandle,
    /// The config (templates, data globs, debounce).
    pub(crate) cfg: Arc<Config>,
    /// The baker whose renderer is swapped on change.
    pub(crate) baker: Arc<Baker>,
    /// Where template errors are shown.
    pub(crate) backlog: Arc<crate::schedule::Backlog>,
}

impl crate::schedule::Intake for WatchIntake {
    fn run(
        self: Box<Self>,
        submit: Submitter,
        shutdown: CancellationToken,
    ) -> crate::schedule::Running {
        let WatchIntake {
            handle,
            cfg,
            baker,
            backlog,
        } = *self;
        Box::pin(worker(handle, cfg, baker, submit, backlog, shutdown))
    }
}

/// A live notify watcher and the channel it feeds. Created before the
/// daemon reports ready, so no edit made after that is missed.
pub(crate) struct WatchHandle {
    /// Kept alive for as long as events are wanted.
    pub(crate) watcher: notify::RecommendedWatcher,
    /// Changed paths, as notify reports them (absolute).
    pub(crate) rx: mpsc::Receiver<PathBuf>,
    /// Set when events were dropped (channel full or a notify error): rescan.
    pub(crate) overflow: Arc<AtomicBool>,
}

/// Watches `dirs` with notify. The callback only converts and `try_send`s,
/// never blocking notify's thread; anything it cannot pass on sets
/// `overflow`. A directory that cannot be watched is reported (naming the
/// sysctl when the inotify limit is the cause) with `fallback`, what kiln
/// does instead; the others are still watched.
pub(crate) fn watch_dirs(
    dirs: &[PathBuf],
    mode: notify::RecursiveMode,
    fallback: &str,
) -> Result<WatchHandle, notify::Error> {
    let (tx, rx) = mpsc::channel::<PathBuf>(4096);
    let overflow = Arc::new(AtomicBool::new(false));
    let overflow_cb = overflow.clone();
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(ev) if ev.kind.is_access() => {}
            Ok(ev) => {
                for p in ev.paths {
                    if tx.try_send(p).is_err() {
                        overflow_cb.store(true, Ordering::Relaxed);
                    }
                }
            }
            Err(_) => overflow_cb.store(true, Ordering::Relaxed),
        })?;
    for dir in dirs {
        if let Err(e) = watcher.watch(dir, mode) {
            report_watch_error(&e, dir, fallback);
        }
    }
    Ok(WatchHandle {
        watcher,
        rx,
        overflow,
    })
}

/// Logs why `dir` cannot be watched and what kiln does instead.
pub(crate) fn report_watch_error(e: &notify::Error, dir: &Path, fallback: &str) {
    if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) {
        tracing::warn!(dir = %dir.display(), "inotify watch limit reached: raise it with `sysctl fs.inotify.max_user_watches=524288` (and fs.inotify.max_user_instances); {fallback}");
    } else {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory; {fallback}");
    }
}

/// Starts watching the templates directory and every data directory.
pub(crate) fn start(cfg: &Config) -> Result<WatchHandle, notify::Error> {
    watch_dirs(
        &watched_dirs(cfg),
        notify::RecursiveMode::Recursive,
        "edits there need `kiln regen tag:template:NAME`",
    )
}

/// The watcher task: debounce, classify, reload, submit.
pub(crate) async fn worker(
    handle: WatchHandle,
    cfg: Arc<Config>,
    baker: Arc<Baker>,
    submit: Submitter,
    backlog: Arc<crate::schedule::Backlog>,
    shutdown: CancellationToken,
) {
    let WatchHandle {
        watcher: _watcher,
        mut rx,
        overflow,
    } = handle;
    let debounce = cfg.daemon.debounce;
    // The data files the baker's renderer was loaded from, parsed: a
    // reload re-reads only what changed.
    let cache = baker.data_cache();
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = rx.recv() => match p { Some(p) => p, None => return },
        };
        // The rest of the burst one save makes (write, rename, chmod):
        // until the files are quiet for QUIET, at most `debounce`.
        let mut paths = vec![first];
        let deadline = tokio::time::Instant::now() + debounce;
        loop {
            let quiet = (tokio::time::Instant::now() + QUIET).min(deadline);
            tokio::select! {
                _ = tokio::time::sleep_until(quiet) => break,
                p = rx.recv() => match p { Some(p) => paths.push(p), None => break },
            }
        }
        let started = std::time::Instant::now();
        let before = baker.renderer();
        let mut changes: BTreeSet<Change> = paths
            .iter()
            .filter_map(|p| Some((classify(&cfg, p)?, p)))
            .filter(|(change, path)| {
                // Came and went within the debounce, never loaded: a tool's
                // temp file (`sed -i`'s `sedXXXXXX`), not a change.
                let passing = !path.exists()
                    && before.as_ref().is_some_and(|r| match change {
                        Change::Template(name) => !r.has_template(name),
                        Change::Data(rel) => !r.has_data(rel),
                    });
                if passing {
                    tracing::debug!(path = %path.display(), "ignoring a file that came and went");
                }
                !passing
            })
            .map(|(change, _)| change)
            .collect();
        let everything = overflow.swap(false, Ordering::Relaxed);
        if changes.is_empty() && !everything {
            continue;
        }
        let cfg2 = cfg.clone();
        let cache2 = cache.clone();
        // Only data files edited in place: patch the loaded renderer
        // instead of reading the whole site again.
        let edited: Option<Vec<String>> = changes
            .iter()
            .map(|c| match c {
                Change::Data(rel) => Some(rel.clone()),
                Change::Template(_) => None,
            })
            .collect();
        let current = baker.renderer();
        let loaded = tokio::task::spawn_blocking(move || {
            let patched = match (&current, edited) {
                (Some(r), Some(rels)) if !rels.is_empty() && !everything => {
                    r.with_data_changed(&cfg2, &cache2, &rels)
                }
                _ => None,
            };
            patched.unwrap_or_else(|| Renderer::load_with(&cfg2, Some(&cache2)))
        })
        .await;
        let renderer = match loaded {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "templates or data do not load; every baked file is kept as it was until this is fixed");
                backlog.template_error.send_replace(Some(e.detailed()));
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "template reload task failed");
                continue;
            }
        };
        let mut targets = targets_for(&cfg, &renderer, &changes);
        if everything {
            targets = vec![Target::All];
            changes.clear();
        }
        let changed: Vec<&str> = changes
            .iter()
            .map(|c| match c {
                Change::Template(name) => name.as_str(),
                Change::Data(rel) => rel.as_str(),
            })
            .collect();
        tracing::info!(files = %changed.join(" "), targets = targets.len(), reload_ms = started.elapsed().as_millis() as u64, "templates or data changed");
        baker.set_renderer(renderer);
        backlog.template_error.send_replace(None);
        if submit
            .submit(Request {
                targets,
                reply: None,
                allow_mass_delete: false,
            })
            .await
            .is_none()
        {
            return;
        }
        // Bursts from a single save often arrive as several events; let them settle.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Overrides};

    #[test]
    fn classifies_changes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("templates/partials")).unwrap();
        std::fs::create_dir_all(dir.path().join("content/posts")).unwrap();
        let raw = Config::parse_raw(
            "[[render]]\ntemplate = \"post.html\"\ndata = \"content/posts/*.md\"\nurl = \"/p/{slug}/\"\n",
            Path::new("site.toml"),
        )
        .unwrap();
        let cfg =
            Config::from_raw(raw, None, dir.path().to_path_buf(), &Overrides::default()).unwrap();
        let p = |rel: &str| dir.path().join(rel);
        let cases = [
            (
                "templates/post.html",
                Some(Change::Template("post.html".into())),
            ),
            (
                "templates/partials/nav.html",
                Some(Change::Template("partials/nav.html".into())),
            ),
            ("templates/.post.html.swp", None),
            ("templates/post.html~", None),
            (
                "content/posts/a.md",
                Some(Change::Data("content/posts/a.md".into())),
            ),
            ("content/posts/a.txt", None),
            ("content/other/a.md", None),
            ("README.md", None),
        ];
        for (rel, want) in cases {
            assert_eq!(classify(&cfg, &p(rel)), want, "{rel}");
        }
    }
}
