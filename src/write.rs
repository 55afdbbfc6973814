//! The web root: the only code that creates, replaces or removes files nginx serves.
//!
//! Every write goes through [`write_atomic`]: a dot-named temp file in the
//! target's directory, mode 0644, fsync'd, then renamed over the target, so
//! nginx sees the old file or the new one, never a partial one (guarantee 1).
//! Compressed siblings are written before the main file and removed with it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::config::Encoding;

/// Prefix of kiln's temp files; swept at start.
pub const TEMP_PREFIX: &str = ".kiln-tmp-";

/// A filesystem failure, with what kiln was doing and to which file.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// An I/O operation failed.
    #[error("failed to {action} `{path}`")]
    Io {
        /// What kiln was doing.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The resolved directory lies outside the root (a symlink inside the root points out).
    #[error("refusing to write `{0}`: it resolves outside the output root")]
    OutsideRoot(PathBuf),
    /// A file exists where a directory is needed (or the reverse).
    #[error("cannot write `{path}`: `{conflict}` is a file, not a directory")]
    Conflict {
        /// The file we wanted.
        path: PathBuf,
        /// The blocking path.
        conflict: PathBuf,
    },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> WriteError + 'a {
    move |source| WriteError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The file was created or its content changed.
    Written,
    /// Identical content was already there; nothing was touched.
    Unchanged,
}

/// The output directory nginx serves.
#[derive(Debug, Clone)]
pub struct WebRoot {
    root: PathBuf,
    /// Directories (relative) already checked to be real directories.
    verified: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<PathBuf>>>,
    precompress: Vec<Encoding>,
    precompress_min_bytes: u64,
}

impl WebRoot {
    /// Creates the root if needed. The root may be a symlink (`current` of a
    /// release layout): it is resolved at each write, so a release switch is
    /// followed by a running daemon.
    pub fn open(
        root: &Path,
        precompress: Vec<Encoding>,
        precompress_min_bytes: u64,
    ) -> Result<WebRoot, WriteError> {
        fs::create_dir_all(root).map_err(io("create output directory", root))?;
        let root = std::path::absolute(root).map_err(io("resolve output directory", root))?;
        Ok(WebRoot {
            root,
            verified: Default::default(),
            precompress,
            precompress_min_bytes,
        })
    }

    /// The canonical root directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Removes temp files a crashed kiln left behind. Temp file names carry
    /// the writer's PID; files of a process that is still running (a daemon
    /// beside a `build`) are left alone. Returns how many were removed.
    pub fn sweep_temp_files(&self) -> Result<usize, WriteError> {
        let mut swept = 0;
        for entry in walkdir::WalkDir::new(&self.root).follow_links(false) {
            let Ok(entry) = entry else { continue };
            if !entry.file_type().is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy();
            let Some(rest) = name.strip_prefix(TEMP_PREFIX) else {
                continue;
            };
            let writer: Option<i32> = rest.split('-').next().and_then(|p| p.parse().ok());
            if writer.is_some_and(process_is_alive) {
                continue;
            }
            fs::remove_file(entry.path()).map_err(io("remove stale temp file", entry.path()))?;
            swept += 1;
        }
        Ok(swept)
    }

    /// Writes `body` to `rel` (a path from [`crate::urlmap::file_for`]) with its
    /// compressed siblings. Identical content is left untouched (guarantee 3).
    pub fn write_page(&self, rel: &Path, body: &[u8]) -> Result<WriteOutcome, WriteError> {
        match self.write_page_once(rel, body) {
            // A directory vanished under us (removed by hand, or a release
            // switch): forget what was verified and try once more.
            Err(WriteError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                self.forget_verified();
                self.write_page_once(rel, body)
            }
            other => other,
        }
    }

    fn write_page_once(&self, rel: &Path, body: &[u8]) -> Result<WriteOutcome, WriteError> {
        let target = self.root.join(rel);
        let dir = self.prepare_dir(rel)?;
        let existing = fs::symlink_metadata(&target).ok();
        if existing.as_ref().is_some_and(|m| m.is_dir()) {
            return Err(WriteError::Conflict {
                path: target.clone(),
                conflict: target,
            });
        }
        let unchanged = existing.as_ref().is_some_and(|m| {
            m.is_file()
                && m.len() == body.len() as u64
                && fs::read(&target).is_ok_and(|old| old == body)
        });
        let wanted: &[Encoding] = if (body.len() as u64) >= self.precompress_min_bytes {
            &self.precompress
        } else {
            &[]
        };
        for enc in Encoding::ALL {
            let sibling = sibling_path(&target, enc);
            if wanted.contains(&enc) {
                if !unchanged || !sibling.exists() {
                    let compressed = compress(enc, body).map_err(io("compress", &sibling))?;
                    write_atomic(&dir, &sibling, &compressed)?;
                }
            } else if existing.is_some() && sibling.exists() {
                // Stale or no longer wanted: nginx must not serve an old .gz.
                fs::remove_file(&sibling).map_err(io("remove stale compressed file", &sibling))?;
            }
        }
        if unchanged {
            return Ok(WriteOutcome::Unchanged);
        }
        write_atomic(&dir, &target, body)?;
        Ok(WriteOutcome::Written)
    }

    /// Removes the baked file of `rel` and its siblings; true when something was removed.
    pub fn remove_page(&self, rel: &Path) -> Result<bool, WriteError> {
        let target = self.root.join(rel);
        let mut removed = false;
        for path in std::iter::once(target.clone())
            .chain(Encoding::ALL.iter().map(|e| sibling_path(&target, *e)))
        {
            match fs::remove_file(&path) {
                Ok(()) => removed = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {}
                Err(e) => return Err(io("remove", &path)(e)),
            }
        }
        // Tidy empty directories up to the root so nginx falls through cleanly.
        let mut dir = target.parent().map(Path::to_path_buf);
        while let Some(d) = dir {
            if d == self.root || fs::remove_dir(&d).is_err() {
                break;
            }
            self.forget_verified();
            dir = d.parent().map(Path::to_path_buf);
        }
        Ok(removed)
    }

    /// Replaces every file that is byte-identical to the same path under
    /// `previous` with a hard link to it, so a new release shares unchanged
    /// files (same inode, mtime and ETag) with the one before. Returns how many.
    pub fn share_unchanged_with(&self, previous: &Path) -> Result<usize, WriteError> {
        let mut shared = 0;
        for entry in walkdir::WalkDir::new(&self.root).follow_links(false) {
            let Ok(entry) = entry else { continue };
            if !entry.file_type().is_file() {
                continue;
            }
            let Ok(rel) = entry.path().strip_prefix(&self.root) else {
                continue;
            };
            let old = previous.join(rel);
            let same = match (fs::metadata(&old), entry.metadata()) {
                (Ok(a), Ok(b)) if a.is_file() && a.len() == b.len() => {
                    fs::read(&old).ok() == fs::read(entry.path()).ok()
                }
                _ => false,
            };
            if !same {
                continue;
            }
            let dir = entry.path().parent().unwrap_or(&self.root);
            let tmp = dir.join(format!("{TEMP_PREFIX}{}-link", std::process::id()));
            let _ = fs::remove_file(&tmp);
            fs::hard_link(&old, &tmp).map_err(io("hard-link", &old))?;
            fs::rename(&tmp, entry.path()).map_err(io("rename hard link over", entry.path()))?;
            shared += 1;
        }
        Ok(shared)
    }

    /// Creates the parent directories of `rel`, checking that none of them is
    /// a symlink (which could lead outside the root) or a file. Directories
    /// already checked in this run are remembered, so a page costs one
    /// `lstat` per new directory rather than a full path resolution.
    fn prepare_dir(&self, rel: &Path) -> Result<PathBuf, WriteError> {
        let Some(parent) = rel.parent() else {
            return Ok(self.root.clone());
        };
        let mut prefix = PathBuf::new();
        for comp in parent.components() {
            match comp {
                std::path::Component::Normal(c) => prefix.push(c),
                _ => return Err(WriteError::OutsideRoot(self.root.join(rel))),
            }
            if self.is_verified(&prefix) {
                continue;
            }
            let abs = self.root.join(&prefix);
            match fs::symlink_metadata(&abs) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(WriteError::OutsideRoot(self.root.join(rel)))
                }
                Ok(_) => {
                    return Err(WriteError::Conflict {
                        path: self.root.join(rel),
                        conflict: abs,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => match fs::create_dir(&abs) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && abs.is_dir() => {}
                    Err(e) => return Err(io("create directory", &abs)(e)),
                },
                Err(e) => return Err(io("inspect directory", &abs)(e)),
            }
            if let Ok(mut v) = self.verified.lock() {
                v.insert(prefix.clone());
            }
        }
        Ok(self.root.join(parent))
    }

    fn is_verified(&self, prefix: &Path) -> bool {
        self.verified.lock().is_ok_and(|v| v.contains(prefix))
    }

    fn forget_verified(&self) {
        if let Ok(mut v) = self.verified.lock() {
            v.clear();
        }
    }
}

fn process_is_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // Signal 0 checks existence; EPERM means it exists but is not ours.
    // SAFETY: kill with signal 0 sends nothing.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// `a/index.html` → `a/index.html.gz`.
pub fn sibling_path(target: &Path, enc: Encoding) -> PathBuf {
    let mut s = target.as_os_str().to_owned();
    s.push(enc.suffix());
    PathBuf::from(s)
}

fn compress(enc: Encoding, body: &[u8]) -> std::io::Result<Vec<u8>> {
    match enc {
        Encoding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 3),
                flate2::Compression::best(),
            );
            e.write_all(body)?;
            e.finish()
        }
        Encoding::Brotli => {
            let mut out = Vec::with_capacity(body.len() / 3);
            let params = brotli::enc::BrotliEncoderParams {
                quality: 11,
                lgwin: 22,
                ..Default::default()
            };
            brotli::BrotliCompress(&mut std::io::Cursor::new(body), &mut out, &params)?;
            Ok(out)
        }
    }
}

/// The one function that puts bytes into the web root: temp file in `dir`
/// (the target's own directory, so rename is atomic), mode 0644, data synced,
/// renamed over `target`. On any error the temp file is removed.
fn write_atomic(dir: &Path, target: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!("{TEMP_PREFIX}{}-", std::process::id()))
        .tempfile_in(dir)
        .map_err(io("create temp file for", target))?;
    tmp.write_all(bytes).map_err(io("write", target))?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(io("set permissions on", target))?;
    tmp.as_file().sync_data().map_err(io("sync", target))?;
    tmp.persist(target)
        .map_err(|e| io("rename temp file over", target)(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn writes_atomically_with_mode_0644_and_skips_identical() {
        let dir = tempfile::tempdir().unwrap();
        let root = WebRoot::open(dir.path(), vec![Encoding::Gzip], 10).unwrap();
        let rel = Path::new("a/index.html");
        assert_eq!(
            root.write_page(rel, b"hello world, hello").unwrap(),
            WriteOutcome::Written
        );
        let file = dir.path().join(rel);
        let meta = fs::metadata(&file).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        assert!(sibling_path(&file, Encoding::Gzip).exists());
        let mtime = meta.modified().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            root.write_page(rel, b"hello world, hello").unwrap(),
            WriteOutcome::Unchanged
        );
        assert_eq!(fs::metadata(&file).unwrap().modified().unwrap(), mtime);
        // A body below the threshold drops the sibling rather than leave it stale.
        assert_eq!(
            root.write_page(rel, b"tiny").unwrap(),
            WriteOutcome::Written
        );
        assert!(!sibling_path(&file, Encoding::Gzip).exists());
        assert!(root.remove_page(rel).unwrap());
        assert!(!file.exists());
        assert!(!dir.path().join("a").exists(), "empty dirs are tidied");
        let leftovers: Vec<_> = walkdir::WalkDir::new(dir.path())
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn sweeps_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("x")).unwrap();
        fs::write(dir.path().join("x/.kiln-tmp-abc"), "partial").unwrap();
        fs::write(dir.path().join("x/.kiln-tmp-999999999-abc"), "dead writer").unwrap();
        let mine = format!(".kiln-tmp-{}-abc", std::process::id());
        fs::write(dir.path().join("x").join(&mine), "live writer").unwrap();
        fs::write(dir.path().join("x/keep.html"), "ok").unwrap();
        let root = WebRoot::open(dir.path(), vec![], 0).unwrap();
        assert_eq!(root.sweep_temp_files().unwrap(), 2);
        assert!(dir.path().join("x/keep.html").exists());
        assert!(
            dir.path().join("x").join(&mine).exists(),
            "a running writer's file is kept"
        );
    }

    #[test]
    fn refuses_symlink_escape() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        let root = WebRoot::open(dir.path(), vec![], 0).unwrap();
        let err = root
            .write_page(Path::new("link/index.html"), b"x")
            .unwrap_err();
        assert!(matches!(err, WriteError::OutsideRoot(_)), "{err}");
        assert!(!outside.path().join("index.html").exists());
    }

    #[test]
    fn file_dir_conflict_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let root = WebRoot::open(dir.path(), vec![], 0).unwrap();
        root.write_page(Path::new("api"), b"{}").unwrap();
        let err = root
            .write_page(Path::new("api/x/index.html"), b"x")
            .unwrap_err();
        assert!(err.to_string().contains("is a file"), "{err}");
    }
}
