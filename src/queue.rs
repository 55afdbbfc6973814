//! The spool directory: a durable, maildir-style event queue.
//!
//! Producers write a file into `queue/tmp/` and rename it into `queue/new/`
//! ([`Spool::enqueue`] does this), so the daemon only ever sees complete files.
//! A file stays in `new/` until every target in it is done, so a crash or
//! `kill -9` loses nothing: the next start reads it again. Lines that do not
//! parse, and targets that failed for good, are written to `queue/failed/`
//! with the reason.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::targets::{Target, TargetError};

/// A spool directory problem.
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} `{path}`")]
pub struct SpoolError {
    action: &'static str,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

fn err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SpoolError + 'a {
    move |source| SpoolError {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// A spool file read from `new/`.
#[derive(Debug)]
pub struct SpoolFile {
    /// Its path in `new/`.
    pub path: PathBuf,
    /// Targets that parsed.
    pub targets: Vec<Target>,
    /// Lines that did not, with line numbers.
    pub bad: Vec<(usize, TargetError)>,
}

/// Handle to `queue/{tmp,new,failed}`.
#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl Spool {
    /// Creates the directories if needed.
    pub fn open(root: &Path) -> Result<Spool, SpoolError> {
        for d in ["tmp", "new", "failed"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(err("create spool directory", &p))?;
        }
        // Canonical, so paths from notify (absolute) compare equal to ours.
        let root = root
            .canonicalize()
            .map_err(err("resolve spool directory", root))?;
        Ok(Spool { root })
    }

    /// `queue/new`, the directory the daemon watches.
    pub fn new_dir(&self) -> PathBuf {
        self.root.join("new")
    }

    /// `queue/failed`.
    pub fn failed_dir(&self) -> PathBuf {
        self.root.join("failed")
    }

    /// Writes targets durably: tmp file, fsync, rename into `new/`.
    pub fn enqueue(&self, targets: &[Target]) -> Result<PathBuf, SpoolError> {
        let name = format!(
            "{}.{}.{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let tmp = self.root.join("tmp").join(&name);
        let new = self.new_dir().join(&name);
        let mut text = String::new();
        for t in targets {
            text.push_str(&t.to_string());
            text.push('\n');
        }
        let mut f = fs::File::create(&tmp).map_err(err("create spool file", &tmp))?;
        f.write_all(text.as_bytes())
            .map_err(err("write spool file", &tmp))?;
        f.sync_all().map_err(err("sync spool file", &tmp))?;
        fs::rename(&tmp, &new).map_err(err("move spool file into", &new))?;
        Ok(new)
    }

    /// Spool files waiting in `new/`, oldest first (names start with a timestamp).
    pub fn pending(&self) -> Result<Vec<PathBuf>, SpoolError> {
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

    /// Reads and parses one spool file.
    pub fn read(&self, path: &Path) -> Result<SpoolFile, SpoolError> {
        let bytes = fs::read(path).map_err(err("read spool file", path))?;
        let text = String::from_utf8_lossy(&bytes);
        let (targets, bad) = Target::parse_lines(&text);
        Ok(SpoolFile {
            path: path.to_path_buf(),
            targets,
            bad,
        })
    }

    /// Records problems of `path` in `failed/<name>.<kind>` (one line per
    /// problem with its reason); the original stays until [`Spool::done`].
    pub fn record_failures(
        &self,
        path: &Path,
        kind: &str,
        lines: &[String],
    ) -> Result<PathBuf, SpoolError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "unnamed".into());
        let out = self.failed_dir().join(format!("{name}.{kind}"));
        let mut text = format!("# from spool file {}\n", path.display());
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        fs::write(&out, text).map_err(err("write failure record", &out))?;
        Ok(out)
    }

    /// Removes a fully processed spool file.
    pub fn done(&self, path: &Path) -> Result<(), SpoolError> {
        match fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(err("remove processed spool file", path)(e))
            }
            _ => Ok(()),
        }
    }
}

/// Spool files waiting in `<queue>/new` (0 when there is no spool yet).
pub fn queue_depth(queue: &Path) -> usize {
    fs::read_dir(queue.join("new"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Skips dot-files and editor or partial files that are not ours.
pub fn is_spool_name(p: &Path) -> bool {
    p.file_name()
        .map(|n| {
            let n = n.to_string_lossy();
            !n.starts_with('.') && !n.ends_with('~') && !n.ends_with(".swp") && !n.ends_with(".tmp")
        })
        .unwrap_or(false)
        && p.is_file()
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
        let f = spool.read(&p).unwrap();
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
        let f = spool.read(&p).unwrap();
        assert_eq!(f.targets.len(), 1);
        assert_eq!(f.bad[0].0, 2);
        let rec = spool
            .record_failures(&p, "bad-lines", &[format!("line 2: {}", f.bad[0].1)])
            .unwrap();
        assert!(fs::read_to_string(rec)
            .unwrap()
            .contains("bad target `not a target`"));
    }
}
