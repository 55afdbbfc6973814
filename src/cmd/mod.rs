//! One module per subcommand, each with one `run`.

mod global;

pub mod build;
pub mod check;
pub mod daemon;
pub mod delete;
pub mod enqueue;
pub mod explain;
pub mod index;
pub mod init;
pub mod mirror;
pub mod nginx;
pub mod publish;
pub mod regen;
pub mod releases;
pub mod rollback;
pub mod serve;
pub mod status;

use std::io::Read;

pub use global::{Exit, GlobalArgs, LogFormat, UsageError, exit_code};

use crate::targets::Target;

/// Parses target arguments; `-` reads more from stdin. Any bad target is a usage error.
pub(crate) fn parse_target_args(args: &[String]) -> anyhow::Result<Vec<Target>> {
    let mut targets = Vec::new();
    let mut errors = Vec::new();
    for a in args {
        if a == "-" {
            let mut text = String::new();
            std::io::stdin()
                .take(MAX_STDIN_BYTES + 1)
                .read_to_string(&mut text)
                .map_err(|e| anyhow::anyhow!("failed to read targets from stdin: {e}"))?;
            if text.len() as u64 > MAX_STDIN_BYTES {
                return Err(UsageError(format!(
                    "more than {MAX_STDIN_BYTES} bytes of targets on stdin; split them into several runs (or use `kiln regen all`)"
                ))
                .into());
            }
            let (good, bad) = Target::parse_lines(&text);
            targets.extend(good);
            errors.extend(bad.into_iter().map(|(n, e)| format!("stdin line {n}: {e}")));
        } else {
            match Target::parse(a) {
                Ok(t) => targets.push(t),
                Err(e) => errors.push(e.to_string()),
            }
        }
    }
    if !errors.is_empty() {
        let more = errors.len().saturating_sub(20);
        errors.truncate(20);
        if more > 0 {
            errors.push(format!("... and {more} more bad targets"));
        }
        return Err(UsageError(errors.join("\n")).into());
    }
    if targets.is_empty() {
        return Err(UsageError("no targets given: pass /path/, tag:NAME, glob:PATTERN, delete:/path/, all, or - to read them from stdin".into()).into());
    }
    Ok(targets)
}

/// The output and state directories a command is about to create. A
/// command that fails before baking anything removes them again, so a typo
/// in `--origin` leaves no `public/` or `.kiln/` behind.
pub(crate) struct FreshDirs {
    out: Option<std::path::PathBuf>,
    state_dir: Option<std::path::PathBuf>,
}

impl FreshDirs {
    /// Notes which of the two do not exist yet.
    pub(crate) fn note(cfg: &crate::config::Config) -> FreshDirs {
        let missing = |p: &std::path::Path| {
            (!p.as_os_str().is_empty() && std::fs::symlink_metadata(p).is_err())
                .then(|| p.to_path_buf())
        };
        // The state directory is `.kiln/<name>/`: the outermost directory
        // that does not exist yet is the one the run creates.
        let state_dir = cfg
            .state
            .parent()
            .into_iter()
            .flat_map(std::path::Path::ancestors)
            .take_while(|p| missing(p).is_some())
            .last()
            .map(std::path::Path::to_path_buf);
        FreshDirs {
            out: missing(&cfg.out),
            state_dir,
        }
    }

    /// After a failed run: removes what it created, if the output holds
    /// nothing but kiln's lock file (no page was written).
    pub(crate) fn clean_up_after(&self, result: &anyhow::Result<Exit>) {
        if matches!(result, Ok(Exit::Clean)) {
            return;
        }
        let Some(out) = &self.out else { return };
        let only_lock = std::fs::read_dir(out).is_ok_and(|d| {
            d.filter_map(Result::ok)
                .all(|e| e.file_name() == ".kiln.lock")
        });
        if !only_lock {
            return;
        }
        let _ = std::fs::remove_file(crate::lock::lock_path(out));
        let _ = std::fs::remove_dir(out);
        if let Some(state) = &self.state_dir {
            let _ = std::fs::remove_dir_all(state);
        }
    }
}

/// Most bytes of targets read from stdin (`kiln regen -`).
const MAX_STDIN_BYTES: u64 = 16 << 20;

/// Refuses more distinct targets than `daemon.max-targets`, as the daemon's
/// intakes do, so a one-shot run is bounded the same way.
pub(crate) fn check_target_count(targets: &[Target], max: usize) -> Result<(), UsageError> {
    if targets.len() > max {
        return Err(UsageError(format!(
            "{} distinct targets, over `daemon.max-targets` ({max}); split them into several runs, or name them with tag:, glob: or all",
            targets.len()
        )));
    }
    Ok(())
}

/// Flags of commands that may remove pages or switch origins.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct GuardFlags {
    /// Remove pages even when more than the mass-delete limit would go
    /// (`safety.max-delete-pages` / `safety.max-delete-percent`)
    #[arg(long)]
    pub allow_mass_delete: bool,
    /// Bake from an origin other than the one this output was baked from
    #[arg(long)]
    pub force: bool,
}

impl GuardFlags {
    /// Options for a one-shot run: removals are held back for the guard.
    pub(crate) fn run_options(&self) -> crate::bake::RunOptions {
        crate::bake::RunOptions {
            defer_removals: true,
            force_origin: self.force,
            single_attempt: false,
            allow_mass_change: self.allow_mass_delete,
        }
    }
}

/// Takes the output lock for a one-shot command. `Ok(Err(holder))` when a
/// daemon owns the output (the caller hands its work over or refuses).
pub(crate) async fn lock_output(
    cfg: &crate::config::Config,
    role: &str,
) -> anyhow::Result<Result<crate::lock::OutputLock, crate::lock::Holder>> {
    match crate::lock::lock(&cfg.out, role).await {
        Ok(l) => Ok(Ok(l)),
        Err(crate::lock::LockError::Held { holder, .. }) if holder.role == "daemon" => {
            Ok(Err(holder))
        }
        Err(e) => Err(e.into()),
    }
}

/// How often a CLI waiting for the daemon says how far its job is, when
/// stderr is not a terminal.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Sends targets to the daemon that owns the output and waits for its
/// report, so a CLI `regen` never races the daemon's fresher writes.
pub(crate) async fn hand_to_daemon(
    cfg: &crate::config::Config,
    holder: &crate::lock::Holder,
    targets: &[Target],
    allow_mass_delete: bool,
    g: &GlobalArgs,
) -> anyhow::Result<Exit> {
    let quiet = g.quiet;
    let Some(http) = &holder.http else {
        let spool = crate::intake::spool::Spool::open(&cfg.queue)?;
        let path = spool.enqueue(targets)?;
        println!(
            "a daemon (PID {}) owns this output and has no HTTP endpoint to report back on; queued the targets for it in {}",
            holder.pid,
            path.display()
        );
        return Ok(Exit::Clean);
    };
    let token = std::env::var(&cfg.daemon.token_env)
        .ok()
        .filter(|t| !t.is_empty());
    let client = reqwest::Client::new();
    let handed = std::time::Instant::now();
    let with_token = |r: reqwest::RequestBuilder| match &token {
        Some(t) => r.bearer_auth(t),
        None => r,
    };
    let body = serde_json::json!({
        "targets": targets.iter().map(Target::to_string).collect::<Vec<_>>(),
        "allow_mass_delete": allow_mass_delete,
    });
    let resp = with_token(client.post(format!("{http}/v1/regen")).json(&body))
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "a daemon (PID {}) owns this output, but {http} did not take the targets: {e}",
                holder.pid
            )
        })?;
    let status = resp.status();
    let reply: serde_json::Value = resp.json().await.unwrap_or_default();
    let Some(id) = reply["job"].as_u64() else {
        anyhow::bail!(
            "the daemon (PID {}) at {http} refused the targets ({status}): {}",
            holder.pid,
            reply["error"]
        );
    };
    if !quiet {
        eprintln!(
            "a daemon (PID {}) owns this output: handed the targets to it as job {id}",
            holder.pid
        );
    }
    // A bar on a terminal; elsewhere (a deploy hook's log) a line now and
    // then, so a long job is visibly moving.
    let bar = g.progress();
    let mut last_line = std::time::Instant::now();
    let mut unreachable_for = 0;
    loop {
        // The daemon may stop while we wait: what it accepted is in its
        // journal (the 202 said so) and is applied at its next start; say
        // that instead of polling a dead or restarted daemon forever.
        let asked = with_token(client.get(format!("{http}/v1/jobs/{id}")))
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await;
        let job: serde_json::Value = match asked {
            Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => {
                eprintln!(
                    "the daemon at {http} no longer knows job {id}: it restarted; the targets were journaled before it answered and are applied by the new daemon (`kiln status` shows the queue)"
                );
                return Ok(Exit::PagesFailed);
            }
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(e) => {
                unreachable_for += 1;
                if unreachable_for >= 20 {
                    eprintln!(
                        "the daemon (PID {}) stopped answering at {http} before job {id} was done ({e}); its targets are in its journal and are applied when it starts again",
                        holder.pid
                    );
                    return Ok(Exit::PagesFailed);
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                continue;
            }
        };
        unreachable_for = 0;
        let done = job["done"].as_u64().unwrap_or(0);
        let urls = job["report"]["urls"].as_u64().unwrap_or(0);
        bar.set_length(urls);
        bar.set_position(done);
        if job["state"] != "done"
            && bar.is_hidden()
            && !quiet
            && last_line.elapsed() >= PROGRESS_EVERY
        {
            last_line = std::time::Instant::now();
            eprintln!("daemon job {id}: {done} of {urls} pages done");
        }
        if job["state"] == "done" {
            bar.finish_and_clear();
            // The same summary, in the same words, as a run of its own.
            let mut report: crate::schedule::JobReport =
                serde_json::from_value(job["report"].clone()).map_err(|e| {
                    anyhow::anyhow!(
                        "the daemon's report for job {id} is not one this kiln reads: {e}"
                    )
                })?;
            report.tally.elapsed = handed.elapsed();
            println!("daemon job {id}: {}", report.tally.render());
            return Ok(if report.tally.has_failures() {
                Exit::PagesFailed
            } else {
                Exit::Clean
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Prints the summary of a one-shot run (unless `-q`) and turns a tripped
/// mass-delete guard into the error it is, with a truthful summary.
pub(crate) fn finish_run(
    g: &GlobalArgs,
    cfg: &crate::config::Config,
    mut summary: crate::bake::Summary,
    guarded: Result<usize, crate::bake::MassDelete>,
) -> anyhow::Result<Exit> {
    let blocked = guarded.err();
    if blocked.is_some() {
        summary.deleted = 0;
    }
    if !g.quiet || summary.has_failures() {
        println!("{}", summary.render());
    }
    // Every page failing to connect is one problem, said once.
    if !summary.failed.is_empty()
        && summary.written + summary.unchanged == 0
        && summary.unreachable == summary.failed.len()
    {
        if let Some(o) = &cfg.origin {
            eprintln!(
                "hint: nothing answered at {} (`[origin] url`, or --origin): is the app running there?",
                o.url
            );
        }
    }
    if let Some(e) = blocked {
        return Err(e.into());
    }
    let index_failures = crate::index::write_failures();
    if index_failures > 0 {
        eprintln!(
            "error: {index_failures} index write(s) failed and were rolled back (see the log); run the command again"
        );
    }
    Ok(if summary.has_failures() || index_failures > 0 {
        Exit::PagesFailed
    } else {
        Exit::Clean
    })
}

/// How long a one-shot run keeps trying its outputs before it leaves the
/// rest to the daemon or the next run.
const DELIVER_FOR: std::time::Duration = std::time::Duration::from_secs(20);

/// After a one-shot run that changed pages: delivers the outbox (bucket,
/// then CDN purge) like the daemon would. What cannot be delivered now
/// stays in the outbox for the daemon or the next run, said out loud, and
/// the run exits 1.
pub(crate) async fn deliver_outputs(
    cfg: &crate::config::Config,
    exit: Exit,
) -> anyhow::Result<Exit> {
    update_types_map(cfg).await;
    if cfg.publish.is_empty() && cfg.purge.is_empty() {
        return Ok(exit);
    }
    let out = crate::release::live_root(&cfg.out);
    let root = crate::write::WebRoot::open(&out, Vec::new(), 0)?;
    let index = crate::index::Index::open(&cfg.state)?;
    let shared = match &cfg.pool {
        Some(pool) => Some(crate::pool::SharedIndex::connect(pool).await.map_err(|e| {
            anyhow::anyhow!(
                "pool mode needs its shared index in Redis at {}, which cannot be reached: {e}",
                pool.redis
            )
        })?),
        None => None,
    };
    let outbox = match crate::output::Outbox::new(
        cfg,
        index.clone(),
        root,
        crate::daemon::output_retry_policy(cfg),
        shared,
    ) {
        Ok(Some(outbox)) => outbox,
        Ok(None) => return Ok(exit),
        Err(e) => {
            let waiting = index.outbox_depth().await.unwrap_or(0);
            eprintln!(
                "warning: the pages are baked, but the outputs cannot be used: {e}; {waiting} page change(s) wait in the outbox for the daemon or the next run"
            );
            return Ok(Exit::PagesFailed);
        }
    };
    let waiting = outbox.deliver_for(DELIVER_FOR).await?;
    let stats = outbox.stats.to_json(waiting);
    println!(
        "outputs: {} uploaded, {} deleted in the bucket, {} purge request(s) sent",
        stats["uploaded"], stats["deleted"], stats["purges_sent"]
    );
    if waiting > 0 {
        eprintln!(
            "warning: {waiting} page change(s) could not reach the bucket or the CDN yet; they stay in the outbox and the daemon (or the next run) retries them; `kiln status` shows them"
        );
        return Ok(Exit::PagesFailed);
    }
    Ok(exit)
}

/// The index of the configured output for a command that only reads it:
/// `None` (and nothing created) when nothing was ever baked there.
pub(crate) fn existing_index(
    cfg: &crate::config::Config,
) -> Result<Option<crate::index::Index>, crate::index::IndexError> {
    if !cfg.state.is_file() {
        return Ok(None);
    }
    crate::index::Index::open(&cfg.state).map(Some)
}

/// What a read-only command says when [`existing_index`] found nothing.
pub(crate) fn no_state_yet(cfg: &crate::config::Config) -> String {
    format!(
        "nothing has been baked into {} yet: there is no index at {} (`kiln build` makes it; a site.toml that sets `[site] state` needs the same --config)",
        cfg.out.display(),
        cfg.state.display()
    )
}

/// After a one-shot run, the nginx types map follows the pages, and nginx
/// is reloaded (`daemon.nginx-reload`) or the need said, when it changed.
async fn update_types_map(cfg: &crate::config::Config) {
    let path = cfg.types_map();
    let existed = path.exists();
    let Ok(Some(index)) = existing_index(cfg) else {
        return;
    };
    match crate::nginx::refresh_types_map(&index, &path).await {
        Ok((true, _)) if existed => match &cfg.daemon.nginx_reload {
            Some(command) => crate::nginx::reload_nginx(command).await,
            None => eprintln!(
                "note: new non-HTML files: nginx serves them with their type after `nginx -s reload` (or set `daemon.nginx-reload`)"
            ),
        },
        Ok(_) => {}
        Err(e) => eprintln!(
            "warning: could not write the nginx types map {}: {e}",
            path.display()
        ),
    }
}
