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
            precompress,
            precompress_min_bytes,
        })
    }

    /// The canonical root directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Removes temp files a crash left behind. Returns how many.
    pub fn sweep_temp_files(&self) -> Result<usize, WriteError> {
        let mut swept = 0;
        for entry in walkdir::WalkDir::new(&self.root).follow_links(false) {
            let Ok(entry) = entry else { continue };
            let is_temp = entry.file_type().is_file()
                && entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX);
            if is_temp {
                fs::remove_file(entry.path())
                    .map_err(io("remove stale temp file", entry.path()))?;
                swept += 1;
            }
        }
        Ok(swept)
    }

    /// Writes `body` to `rel` (a path from [`crate::urlmap::file_for`]) with its
    /// compressed siblings. Identical content is left untouched (guarantee 3).
    pub fn write_page(&self, rel: &Path, body: &[u8]) -> Result<WriteOutcome, WriteError> {
        let target = self.root.join(rel);
        let dir = self.prepare_dir(&target)?;
        let unchanged = is_same_content(&target, body);
        let wanted: Vec<Encoding> = if (body.len() as u64) >= self.precompress_min_bytes {
            self.precompress.clone()
        } else {
            Vec::new()
        };
        for enc in Encoding::ALL {
            let sibling = sibling_path(&target, enc);
            if wanted.contains(&enc) {
                if !unchanged || !sibling.exists() {
                    let compressed = compress(enc, body).map_err(io("compress", &sibling))?;
                    write_atomic(&dir, &sibling, &compressed)?;
                }
            } else if sibling.exists() {
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
            let tmp = dir.join(format!("{TEMP_PREFIX}link-{}", std::process::id()));
            let _ = fs::remove_file(&tmp);
            fs::hard_link(&old, &tmp).map_err(io("hard-link", &old))?;
            fs::rename(&tmp, entry.path()).map_err(io("rename hard link over", entry.path()))?;
            shared += 1;
        }
        Ok(shared)
    }

    /// Creates the parent directories of `target` and checks they stay inside the root.
    fn prepare_dir(&self, target: &Path) -> Result<PathBuf, WriteError> {
        let dir = target
            .parent()
            .ok_or_else(|| WriteError::OutsideRoot(target.to_path_buf()))?;
        if let Err(e) = fs::create_dir_all(dir) {
            // Find the ancestor that is a file, for a useful message.
            let mut probe = dir.to_path_buf();
            while probe.starts_with(&self.root) && probe != self.root {
                if probe.is_file() {
                    return Err(WriteError::Conflict {
                        path: target.to_path_buf(),
                        conflict: probe,
                    });
                }
                if !probe.pop() {
                    break;
                }
            }
            return Err(io("create directory", dir)(e));
        }
        let real = dir.canonicalize().map_err(io("resolve directory", dir))?;
        let real_root = self
            .root
            .canonicalize()
            .map_err(io("resolve output directory", &self.root))?;
        if !real.starts_with(&real_root) {
            return Err(WriteError::OutsideRoot(target.to_path_buf()));
        }
        if target.is_dir() {
            return Err(WriteError::Conflict {
                path: target.to_path_buf(),
                conflict: target.to_path_buf(),
            });
        }
        Ok(real)
    }
}

/// `a/index.html` → `a/index.html.gz`.
pub fn sibling_path(target: &Path, enc: Encoding) -> PathBuf {
    let mut s = target.as_os_str().to_owned();
    s.push(enc.suffix());
    PathBuf::from(s)
}

fn is_same_content(target: &Path, body: &[u8]) -> bool {
    match fs::metadata(target) {
        Ok(m) if m.is_file() && m.len() == body.len() as u64 => {
            fs::read(target).map(|old| old == body).unwrap_or(false)
        }
        _ => false,
    }
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
        .prefix(TEMP_PREFIX)
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
        fs::write(dir.path().join("x/keep.html"), "ok").unwrap();
        let root = WebRoot::open(dir.path(), vec![], 0).unwrap();
        assert_eq!(root.sweep_temp_files().unwrap(), 1);
        assert!(dir.path().join("x/keep.html").exists());
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
