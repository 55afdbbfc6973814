//! The spool directory: a durable, maildir-style event queue.
//!
//! Producers write a file into `queue/tmp/` and rename it into `queue/new/`
//! ([`Spool::enqueue`] does this), so the daemon only ever sees complete files.
//! A file stays in `new/` until every target in it is done, so a crash or
//! `kill -9` loses nothing: the next start reads it again. Lines that do not
//! parse, and targets that failed for good, are written to `queue/failed/`
//! with the reason. [`worker`] is the daemon's spool intake.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::schedule::{Request, Submitter};
use crate::targets::{Target, TargetError};

/// A spool directory problem.
pub(crate) type SpoolError = FsError;

use crate::files::{FsError, fs_err as err};

/// A spool file read from `new/`.
#[derive(Debug)]
pub(crate) struct SpoolFile {
    /// Targets that parsed.
    pub(crate) targets: Vec<Target>,
    /// Lines that did not, with line numbers (the first
    /// [`MAX_LISTED_BAD_LINES`]; the rest are only counted).
    pub(crate) bad: Vec<(usize, TargetError)>,
    /// Bad lines beyond those kept in `bad`.
    pub(crate) more_bad: usize,
}

/// Longest spool line kept; longer lines are bad lines.
pub(crate) const MAX_LINE_BYTES: usize = 8192;
/// How much of a bad line a failure record quotes.
const EXCERPT_CHARS: usize = 120;
/// Bad lines listed one by one in a failure record; the rest are counted.
const MAX_LISTED_BAD_LINES: usize = 100;

/// What reading a spool file gave.
#[derive(Debug)]
pub(crate) enum Intake {
    /// A regular file of acceptable size, parsed.
    Parsed(SpoolFile),
    /// Not read: moved to `failed/` as it is, with this reason.
    Rejected(String),
}

/// Handle to `queue/{tmp,new,failed}`.
#[derive(Debug, Clone)]
pub(crate) struct Spool {
    root: PathBuf,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// How old a file in `queue/tmp/` is before it counts as abandoned.
pub(crate) const STALE_TMP: std::time::Duration = std::time::Duration::from_secs(3600);

impl Spool {
    /// Creates the directories if needed.
    pub(crate) fn open(root: &Path) -> Result<Spool, SpoolError> {
        for d in ["tmp", "new", "failed", "journal"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(err("create spool directory", &p))?;
        }
        // Canonical, so paths from notify (absolute) compare equal to ours.
        let root = root
            .canonicalize()
            .map_err(err("resolve spool directory", root))?;
        Ok(Spool { root })
    }

    /// Removes what writers left in `tmp/` long ago (a process killed
    /// between its write and its rename, a refused write): a producer
    /// renames its file within moments, so anything older than
    /// [`STALE_TMP`] is nobody's. The daemon does this at start. Returns
    /// how many went.
    pub(crate) fn sweep_tmp(&self) -> usize {
        let dir = self.root.join("tmp");
        let Ok(entries) = fs::read_dir(&dir) else {
            return 0;
        };
        let now = std::time::SystemTime::now();
        let mut swept = 0;
        for entry in entries.filter_map(Result::ok) {
            let old = entry
                .metadata()
                .ok()
                .filter(|m| m.is_file())
                .and_then(|m| m.modified().ok())
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > STALE_TMP);
            if old && fs::remove_file(entry.path()).is_ok() {
                swept += 1;
            }
        }
        swept
    }

    /// `queue/new`, the directory the daemon watches.
    pub(crate) fn new_dir(&self) -> PathBuf {
        self.root.join("new")
    }

    /// `queue/failed`.
    pub(crate) fn failed_dir(&self) -> PathBuf {
        self.root.join("failed")
    }

    /// Writes targets durably: tmp file, fsync, rename into `new/`.
    pub(crate) fn enqueue(&self, targets: &[Target]) -> Result<PathBuf, SpoolError> {
        let mut text = String::new();
        for t in targets {
            text.push_str(&t.to_string());
            text.push('\n');
        }
        self.deliver(&self.new_dir(), "", &text)
    }

    /// Puts `text` into `dir` as a new file, durably and whole: written to
    /// `tmp/`, synced, renamed into `dir`, and `dir` synced, so a reader
    /// never sees a partial file and a power loss keeps the entry. Names
    /// start with a timestamp (oldest sorts first).
    fn deliver(&self, dir: &Path, suffix: &str, text: &str) -> Result<PathBuf, SpoolError> {
        let name = format!(
            "{}.{}.{}{suffix}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let tmp = self.root.join("tmp").join(&name);
        let dest = dir.join(&name);
        let mut f = fs::File::create(&tmp).map_err(err("create spool file", &tmp))?;
        f.write_all(text.as_bytes())
            .map_err(err("write spool file", &tmp))?;
        f.sync_data().map_err(err("sync spool file", &tmp))?;
        fs::rename(&tmp, &dest).map_err(err("move spool file into", &dest))?;
        sync_dir(dir)?;
        Ok(dest)
    }

    /// Spool files waiting in `new/`, oldest first (names start with a timestamp).
    pub(crate) fn pending(&self) -> Result<Vec<PathBuf>, SpoolError> {
        let dir = self.new_dir();
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .map_err(err("list", &dir))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| is_spool_name(p))
            .collect();
        files.sort();
        Ok(files)
    }

    /// Reads and parses one spool file, as a stream with caps: a symlink is
    /// never followed and a FIFO or device never read (only regular files),
    /// a file over `max_bytes` or naming more than `max_targets` targets is
    /// not parsed, and an over-long line is a bad line.
    pub(crate) fn read(
        &self,
        path: &Path,
        max_bytes: u64,
        max_targets: usize,
    ) -> Result<Intake, SpoolError> {
        let opened = fs::OpenOptions::new()
            .read(true)
            // O_NONBLOCK: opening a FIFO must not wait for a writer.
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path);
        let file = match opened {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Ok(Intake::Rejected(
                    "is a symlink; spool files are never followed".into(),
                ));
            }
            Err(e) => return Err(err("open spool file", path)(e)),
        };
        let meta = file.metadata().map_err(err("inspect spool file", path))?;
        if !meta.is_file() {
            let kind = if meta.file_type().is_fifo() {
                "a FIFO"
            } else {
                "not a regular file"
            };
            return Ok(Intake::Rejected(format!(
                "is {kind}; only regular files are read"
            )));
        }
        if meta.len() > max_bytes {
            return Ok(Intake::Rejected(format!(
                "is {} bytes, over `daemon.max-spool-file` ({max_bytes} bytes); split it into smaller files",
                meta.len()
            )));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(max_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(err("read spool file", path))?;
        if bytes.len() as u64 > max_bytes {
            return Ok(Intake::Rejected(format!(
                "grew over `daemon.max-spool-file` ({max_bytes} bytes) while being read"
            )));
        }
        // Memory stays bounded by the file's size: distinct targets only (a
        // file over the cap is rejected as soon as it gets there), and only
        // the first bad lines are kept, the rest counted.
        let mut targets = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut bad = Vec::new();
        let mut more_bad = 0;
        let mut note_bad = |bad: &mut Vec<(usize, TargetError)>, n: usize, e: TargetError| {
            if bad.len() < MAX_LISTED_BAD_LINES {
                bad.push((n, e));
            } else {
                more_bad += 1;
            }
        };
        for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
            if line.len() > MAX_LINE_BYTES {
                let e = TargetError {
                    text: String::from_utf8_lossy(&line[..EXCERPT_CHARS]).into_owned(),
                    reason: format!("line is {} bytes, over {MAX_LINE_BYTES}", line.len()),
                };
                note_bad(&mut bad, i + 1, e);
                continue;
            }
            let text = String::from_utf8_lossy(line);
            let text = text.trim();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            match Target::parse(text) {
                Ok(t) => {
                    if seen.insert(t.clone()) {
                        targets.push(t);
                        if targets.len() > max_targets {
                            return Ok(Intake::Rejected(format!(
                                "names more than {max_targets} distinct targets, over `daemon.max-targets`; split it into smaller files"
                            )));
                        }
                    }
                }
                Err(mut e) => {
                    e.text = crate::text::excerpt(&e.text, EXCERPT_CHARS);
                    note_bad(&mut bad, i + 1, e);
                }
            }
        }
        Ok(Intake::Parsed(SpoolFile {
            targets,
            bad,
            more_bad,
        }))
    }

    /// Moves a spool file kiln will not read into `failed/` as it is (a
    /// symlink moves as a link, its target never opened) with a `.reason`
    /// file beside it. Nothing is lost and nothing is retried forever.
    pub(crate) fn reject(&self, path: &Path, reason: &str) -> Result<PathBuf, SpoolError> {
        let name = path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "unnamed".into());
        let dest = self.failed_dir().join(&name);
        fs::rename(path, &dest).map_err(err("move rejected spool file to", &dest))?;
        self.write_record(
            &dest.with_file_name(format!("{}.reason", name.to_string_lossy())),
            &format!("# from spool file {}\n{reason}\n", path.display()),
        )?;
        Ok(dest)
    }

    /// Writes a failure record, readable by its owner only: it quotes what
    /// producers sent, which is nobody else's business.
    fn write_record(&self, out: &Path, text: &str) -> Result<(), SpoolError> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(out)
            .map_err(err("write failure record", out))?;
        f.write_all(text.as_bytes())
            .map_err(err("write failure record", out))
    }

    /// Records problems of `path` in `failed/<name>.<kind>` (one line per
    /// problem with its reason); the original stays until [`Spool::done`].
    pub(crate) fn record_failures(
        &self,
        path: &Path,
        kind: &str,
        lines: &[String],
        unlisted: usize,
    ) -> Result<PathBuf, SpoolError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "unnamed".into());
        let out = self.failed_dir().join(format!("{name}.{kind}"));
        let mut text = format!("# from spool file {}\n", path.display());
        for l in lines.iter().take(MAX_LISTED_BAD_LINES) {
            text.push_str(&crate::text::excerpt(l, EXCERPT_CHARS * 3));
            text.push('\n');
        }
        let more = lines.len().saturating_sub(MAX_LISTED_BAD_LINES) + unlisted;
        if more > 0 {
            text.push_str(&format!("# ... and {more} more\n"));
        }
        self.write_record(&out, &text)?;
        Ok(out)
    }

    /// Removes a fully processed spool file.
    pub(crate) fn done(&self, path: &Path) -> Result<(), SpoolError> {
        match fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(err("remove processed spool file", path)(e))
            }
            _ => Ok(()),
        }
    }
}

/// Accepted requests not done yet: spool files waiting in `<queue>/new`
/// and journal entries in `<queue>/journal` (0 when there is no spool yet).
pub(crate) fn queue_depth(queue: &Path) -> usize {
    fs::read_dir(queue.join("new"))
        .map(|d| d.count())
        .unwrap_or(0)
        + journal_depth(queue)
}

/// Skips dot-files and editor or partial files that are not ours. Looks at
/// the name only: what the entry is, [`Spool::read`] checks without
/// following it.
pub(crate) fn is_spool_name(p: &Path) -> bool {
    !crate::files::is_editor_junk(p)
}

/// Makes a rename or unlink in `dir` durable (the new entry survives a
/// power loss), as a maildir delivery must.
fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err("sync spool directory", dir))
}

/// The journal behind the HTTP intake and the CLI hand-off
/// (guarantee 9, docs/architecture.md): what a request names is written to
/// `queue/journal/` and made durable *before* the request is answered 202,
/// and the file goes only when every job it holds is done. A daemon killed
/// at any point finds the files at its next start and replays them through
/// the spool ([`Spool::replay_journal`]).
///
/// Group commit: requests that arrive while a batch is being synced wait
/// for the next one, so a burst costs one file and one sync per batch, not
/// per request.
#[derive(Debug, Clone)]
pub(crate) struct Journal {
    tx: mpsc::Sender<Append>,
}

/// One request to journal: its targets, where to say it is durable, and
/// the report that says its job is done.
type Append = (
    Vec<Target>,
    oneshot::Sender<Result<(), String>>,
    oneshot::Receiver<crate::schedule::JobReport>,
);

/// A journal file and the jobs in it that are not done yet.
struct JournalFile {
    path: PathBuf,
    open_jobs: AtomicU64,
}

impl Journal {
    /// Records `targets` durably; `done` is the job's report channel, whose
    /// completion retires the entry. Err when the journal cannot write (the
    /// caller must not acknowledge).
    pub(crate) async fn append(
        &self,
        targets: Vec<Target>,
        done: oneshot::Receiver<crate::schedule::JobReport>,
    ) -> Result<(), String> {
        let (ack, durable) = oneshot::channel();
        self.tx
            .send((targets, ack, done))
            .await
            .map_err(|_| "the daemon is shutting down".to_string())?;
        durable
            .await
            .map_err(|_| "the daemon is shutting down".to_string())?
    }
}

/// Most requests written in one journal batch.
const JOURNAL_BATCH: usize = 1024;

impl Spool {
    /// `queue/journal`.
    pub(crate) fn journal_dir(&self) -> PathBuf {
        self.root.join("journal")
    }

    /// Moves what a previous run journaled but did not finish into `new/`,
    /// where the spool intake replays it. Call before the intakes start.
    pub(crate) fn replay_journal(&self) -> Result<usize, SpoolError> {
        let dir = self.journal_dir();
        fs::create_dir_all(&dir).map_err(err("create spool directory", &dir))?;
        let mut moved = 0;
        for entry in fs::read_dir(&dir).map_err(err("list", &dir))? {
            let entry = entry.map_err(err("list", &dir))?;
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let to = self.new_dir().join(entry.file_name());
            fs::rename(entry.path(), &to).map_err(err("move journal entry into", &to))?;
            moved += 1;
        }
        if moved > 0 {
            sync_dir(&self.new_dir())?;
            sync_dir(&dir)?;
        }
        Ok(moved)
    }

    /// Starts the journal: the handle for intakes and the writer task for
    /// the supervisor. The task ends when `shutdown` fires and every handle
    /// is gone, once the jobs it waits for are done or dropped (a dropped
    /// job keeps its file for the next start).
    pub(crate) fn journal(
        &self,
        shutdown: CancellationToken,
    ) -> (
        Journal,
        impl std::future::Future<Output = ()> + Send + 'static + use<>,
    ) {
        let (tx, rx) = mpsc::channel::<Append>(JOURNAL_BATCH);
        let spool = self.clone();
        (Journal { tx }, journal_writer(spool, rx, shutdown))
    }

    /// Writes one batch into `journal/` ([`Spool::deliver`]).
    fn write_journal(&self, text: &str) -> Result<PathBuf, SpoolError> {
        self.deliver(&self.journal_dir(), ".journal", text)
    }
}

/// Files in `queue/journal` (accepted, not done).
pub(crate) fn journal_depth(queue: &Path) -> usize {
    fs::read_dir(queue.join("journal"))
        .map(|d| d.count())
        .unwrap_or(0)
}

async fn journal_writer(spool: Spool, mut rx: mpsc::Receiver<Append>, shutdown: CancellationToken) {
    let mut open: JoinSet<()> = JoinSet::new();
    loop {
        let first = tokio::select! {
            biased;
            Some(_) = open.join_next(), if !open.is_empty() => continue,
            next = rx.recv() => match next {
                Some(a) => a,
                None => break,
            },
            _ = shutdown.cancelled(), if rx.is_empty() => break,
        };
        let mut batch = vec![first];
        while batch.len() < JOURNAL_BATCH {
            match rx.try_recv() {
                Ok(a) => batch.push(a),
                Err(_) => break,
            }
        }
        let mut text = String::new();
        for (targets, _, _) in &batch {
            for t in targets {
                text.push_str(&t.to_string());
                text.push('\n');
            }
        }
        let writer = spool.clone();
        let written = tokio::task::spawn_blocking(move || writer.write_journal(&text))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        match written {
            Ok(path) => {
                let file = Arc::new(JournalFile {
                    path,
                    open_jobs: AtomicU64::new(batch.len() as u64),
                });
                for (_, ack, done) in batch {
                    let _ = ack.send(Ok(()));
                    let file = file.clone();
                    open.spawn(async move {
                        // A dropped report is a job the daemon did not
                        // finish (shutdown): its entry stays for the replay.
                        if done.await.is_ok()
                            && file.open_jobs.fetch_sub(1, Ordering::AcqRel) == 1
                        {
                            if let Err(e) = fs::remove_file(&file.path) {
                                tracing::error!(file = %file.path.display(), error = %e, "could not retire a journal entry; it will be replayed at the next start");
                            }
                        }
                    });
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "could not write the journal; requests are refused until it can");
                for (_, ack, _) in batch {
                    let _ = ack.send(Err(format!("could not make the request durable: {e}")));
                }
            }
        }
    }
    // Wait for the jobs in flight to end (done, or dropped by the stopping
    // scheduler) so finished entries are retired before the process exits.
    while open.join_next().await.is_some() {}
}

/// The spool as an [`crate::schedule::Intake`].
pub(crate) struct SpoolIntake {
    /// The spool directory.
    pub(crate) spool: Spool,
    /// Its caps and rescan interval.
    pub(crate) limits: SpoolLimits,
}

impl crate::schedule::Intake for SpoolIntake {
    fn run(
        self: Box<Self>,
        submit: Submitter,
        shutdown: CancellationToken,
    ) -> crate::schedule::Running {
        Box::pin(worker(self.spool, submit, self.limits, shutdown))
    }
}

/// Caps and timing of the spool intake.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpoolLimits {
    /// Periodic rescan (notify can miss events).
    pub(crate) rescan: Duration,
    /// Largest spool file read.
    pub(crate) max_bytes: u64,
    /// Most targets per file.
    pub(crate) max_targets: usize,
}

/// Watches `queue/new` (notify, with periodic rescans because notify can
/// miss events) and submits each spool file as one job. A file is removed
/// only when its job completes; failed URLs are recorded in `failed/`.
pub(crate) async fn worker(
    spool: Spool,
    submit: Submitter,
    limits: SpoolLimits,
    shutdown: CancellationToken,
) {
    let rescan_every = limits.rescan;
    // Waits for the reports of submitted files; owned here, so shutdown
    // drops them (and their files stay for the next start).
    let mut waiting: JoinSet<()> = JoinSet::new();
    let fallback = format!("the spool is rescanned every {rescan_every:?}");
    let new_dir = [spool.new_dir()];
    let (_watcher, mut hints, overflow) = match crate::intake::watch::watch_dirs(
        &new_dir,
        notify::RecursiveMode::NonRecursive,
        &fallback,
    ) {
        Ok(h) => (Some(h.watcher), h.rx, h.overflow),
        Err(e) => {
            crate::intake::watch::report_watch_error(&e, &new_dir[0], &fallback);
            // A closed channel: only the periodic rescan finds files.
            (None, mpsc::channel(1).1, Arc::new(AtomicBool::new(false)))
        }
    };
    let (done_tx, mut done_rx) = mpsc::channel::<PathBuf>(1024);
    let mut claimed: HashSet<PathBuf> = HashSet::new();
    let mut tick = tokio::time::interval(rescan_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut scanned_once = false;
    loop {
        let mut to_check: Vec<PathBuf> = Vec::new();
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(p) = done_rx.recv() => { claimed.remove(&p); }
            Some(_) = waiting.join_next(), if !waiting.is_empty() => {}
            Some(p) = hints.recv() => {
                to_check.push(p);
                while let Ok(p) = hints.try_recv() {
                    to_check.push(p);
                }
            }
            _ = tick.tick() => {
                // Start-up scan, periodic safety net, and recovery from overflow.
                overflow.store(false, Ordering::Relaxed);
                match spool.pending() {
                    Ok(files) => to_check.extend(files),
                    Err(e) => tracing::error!(error = %e, "spool rescan failed"),
                }
                if !scanned_once {
                    scanned_once = true;
                    tracing::debug!(dir = %spool.new_dir().display(), "spool start-up scan done; new files arrive through notify");
                }
            }
        }
        if overflow.swap(false, Ordering::Relaxed) {
            if let Ok(files) = spool.pending() {
                to_check.extend(files);
            }
        }
        for path in to_check {
            if claimed.contains(&path)
                || !path.starts_with(spool.new_dir())
                || !crate::intake::spool::is_spool_name(&path)
            {
                continue;
            }
            claimed.insert(path.clone());
            take_spool_file(&spool, &submit, path, limits, done_tx.clone(), &mut waiting).await;
        }
    }
}

async fn take_spool_file(
    spool: &Spool,
    submit: &Submitter,
    path: PathBuf,
    limits: SpoolLimits,
    done: mpsc::Sender<PathBuf>,
    waiting: &mut JoinSet<()>,
) {
    let file = match spool.read(&path, limits.max_bytes, limits.max_targets) {
        Ok(Intake::Parsed(f)) => f,
        Ok(Intake::Rejected(why)) => {
            match spool.reject(&path, &why) {
                Ok(dest) => {
                    tracing::warn!(file = %path.display(), moved_to = %dest.display(), reason = %why, "spool file not read")
                }
                Err(e) => {
                    tracing::error!(error = %e, reason = %why, "could not move an unreadable spool file aside")
                }
            }
            let _ = done.send(path).await;
            return;
        }
        Err(e) => {
            // Gone between the hint and the read: already processed (a late
            // notify hint for a file this daemon finished), nothing to say.
            if std::fs::symlink_metadata(&path).is_err() {
                tracing::debug!(file = %path.display(), "spool file already gone");
            } else {
                tracing::warn!(error = %e, "skipping an unreadable spool file");
            }
            let _ = done.send(path).await;
            return;
        }
    };
    if !file.bad.is_empty() {
        let lines: Vec<String> = file
            .bad
            .iter()
            .map(|(n, e)| format!("line {n}: {} # {}", e.text, e.reason))
            .collect();
        match spool.record_failures(&path, "bad-lines", &lines, file.more_bad) {
            Ok(rec) => {
                tracing::warn!(file = %path.display(), record = %rec.display(), bad = lines.len(), "spool file has bad lines; kept them in failed/")
            }
            Err(e) => {
                tracing::error!(error = %e, "could not record bad spool lines; leaving the file in place");
                return;
            }
        }
    }
    if file.targets.is_empty() {
        if let Err(e) = spool.done(&path) {
            tracing::error!(error = %e, "could not remove spool file");
        }
        let _ = done.send(path).await;
        return;
    }
    let (reply, report) = oneshot::channel();
    let submitted = submit
        .submit(Request {
            targets: file.targets,
            reply: Some(reply),
            allow_mass_delete: false,
        })
        .await;
    if submitted.is_none() {
        return; // shutting down; the file stays for the next start
    }
    let spool = spool.clone();
    waiting.spawn(async move {
        // Dropped reply = shutdown before completion: keep the file.
        let Ok(report) = report.await else { return };
        if !report.tally.failed.is_empty() {
            let lines: Vec<String> = report
                .tally
                .failed
                .iter()
                .map(|(u, e)| format!("{u} # {e}"))
                .collect();
            if let Err(e) = spool.record_failures(&path, "failed-urls", &lines, 0) {
                tracing::error!(error = %e, "could not record failed URLs; leaving the spool file in place");
                return;
            }
        }
        if let Err(e) = spool.done(&path) {
            tracing::error!(error = %e, "could not remove processed spool file");
        }
        let _ = done.send(path).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enqueue_then_read_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let targets = vec![Target::Url("/a/".into()), Target::Tag("post:1".into())];
        let p = spool.enqueue(&targets).unwrap();
        assert!(p.starts_with(spool.new_dir()));
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert_eq!(spool.pending().unwrap(), vec![p.clone()]);
        let Intake::Parsed(f) = spool.read(&p, 1 << 20, 100).unwrap() else {
            panic!("parsed")
        };
        assert_eq!(f.targets, targets);
        spool.done(&p).unwrap();
        assert!(spool.pending().unwrap().is_empty());
    }

    #[test]
    fn bad_lines_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let p = spool.new_dir().join("1.x");
        fs::write(&p, "/ok/\nnot a target\n").unwrap();
        let Intake::Parsed(f) = spool.read(&p, 1 << 20, 100).unwrap() else {
            panic!("parsed")
        };
        assert_eq!(f.targets.len(), 1);
        assert_eq!(f.bad[0].0, 2);
        let rec = spool
            .record_failures(&p, "bad-lines", &[format!("line 2: {}", f.bad[0].1)], 0)
            .unwrap();
        assert!(
            fs::read_to_string(&rec)
                .unwrap()
                .contains("bad target `not a target`")
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&rec).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
        /// Hostile spool files: long lines, control bytes, invalid UTF-8,
        /// floods of targets. Reading never panics, and what it keeps is
        /// bounded by the caps whatever the file holds.
        #[test]
        fn hostile_spool_files_are_read_within_the_caps(
            lines in proptest::collection::vec(
                proptest::prop_oneof![
                    "[/a-z0-9{},*\\x00\\x1b\\r:]{0,40}".prop_map(|s| s.into_bytes()),
                    (0usize..20_000).prop_map(|n| vec![b'/'; n]),
                    proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
                    (0usize..3000).prop_map(|n| format!("/t/{n}/").into_bytes()),
                ],
                0..400,
            ),
            copies in 1usize..20,
        ) {
            use proptest::prelude::*;
            let dir = tempfile::tempdir().unwrap();
            let spool = Spool::open(&dir.path().join("q")).unwrap();
            let path = spool.new_dir().join("f");
            let mut bytes = Vec::new();
            for _ in 0..copies {
                for l in &lines {
                    bytes.extend_from_slice(l);
                    bytes.push(b'\n');
                }
            }
            std::fs::write(&path, &bytes).unwrap();
            match spool.read(&path, 1 << 20, 50).unwrap() {
                Intake::Parsed(f) => {
                    prop_assert!(f.targets.len() <= 50);
                    prop_assert!(f.bad.len() <= MAX_LISTED_BAD_LINES);
                    for (_, e) in &f.bad {
                        prop_assert!(e.text.chars().count() <= EXCERPT_CHARS + 8);
                    }
                }
                Intake::Rejected(why) => prop_assert!(!why.is_empty()),
            }
        }
    }

    #[test]
    fn symlinks_fifos_and_oversize_files_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let secret = dir.path().join("secret");
        fs::write(&secret, "/top-secret-line/\n").unwrap();
        let link = spool.new_dir().join("1.link");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let fifo = spool.new_dir().join("2.fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let big = spool.new_dir().join("3.big");
        fs::write(&big, "/a/\n".repeat(1000)).unwrap();
        for (p, want) in [
            (&link, "symlink"),
            (&fifo, "FIFO"),
            (&big, "max-spool-file"),
        ] {
            match spool.read(p, 1000, 100).unwrap() {
                Intake::Rejected(why) => {
                    assert!(why.contains(want), "{why}");
                    spool.reject(p, &why).unwrap();
                }
                Intake::Parsed(f) => panic!("{p:?} was read: {f:?}"),
            }
        }
        assert!(spool.pending().unwrap().is_empty());
        for entry in fs::read_dir(spool.failed_dir()).unwrap() {
            let p = entry.unwrap().path();
            if fs::symlink_metadata(&p).unwrap().is_file() {
                assert!(
                    !fs::read_to_string(&p).unwrap().contains("top-secret-line"),
                    "{p:?}"
                );
            }
        }
        assert_eq!(fs::read_to_string(&secret).unwrap(), "/top-secret-line/\n");
    }
}
