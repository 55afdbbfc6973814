//! Small filesystem rules shared by the stages that touch disk (the web
//! root, the spool, releases, the template watcher): the error that says
//! what kiln was doing to which path, and which file names are editor junk.

use std::io;
use std::path::{Path, PathBuf};

/// A filesystem operation that failed: ``failed to {action} `{path}` ``,
/// with the OS error as its source.
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} `{}`", path.display())]
pub(crate) struct FsError {
    /// What kiln was doing, e.g. "write".
    pub(crate) action: &'static str,
    /// The file or directory.
    pub(crate) path: PathBuf,
    /// The cause.
    #[source]
    pub(crate) source: io::Error,
}

/// An I/O error that says the disk (or its permissions), not the data, is
/// at fault: full (ENOSPC, EDQUOT), read-only (EROFS), failing (EIO) or
/// not writable by kiln (EACCES, EPERM). It goes away when an operator
/// acts, so work waiting on it is kept and retried.
pub(crate) fn is_local_outage(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC | libc::EDQUOT | libc::EROFS | libc::EIO | libc::EACCES | libc::EPERM)
    )
}

/// `map_err(fs_err("read", path))`.
pub(crate) fn fs_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> FsError + 'a {
    move |source| FsError {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Editor swap, backup, lock and partial files that must not trigger or
/// feed anything (templates, data files, spool entries).
pub(crate) fn is_editor_junk(p: &Path) -> bool {
    let Some(name) = p.file_name().map(|n| n.to_string_lossy()) else {
        return true;
    };
    name.starts_with('.')
        || name.starts_with('#')
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".tmp")
        || name == "4913"
}
