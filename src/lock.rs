//! One writer per output: an exclusive `flock` on `.kiln.lock` in the
//! output directory itself (guarantee 11, docs/architecture.md), so two
//! configs with their own state directories, or a CLI run from another
//! directory, still meet the same lock. It is a dot-file (nginx's block
//! denies those) and in a release layout it sits beside `current`, outside
//! what is served. The daemon holds it for its whole life; `build`, `regen` and
//! `delete` hold it while they write. The file names the holder (PID, role,
//! HTTP address) so a second daemon can say who is in the way and a CLI
//! `regen` can hand its targets to the daemon instead of racing it. Because
//! every writer holds the lock, the holder may treat every temp file it did
//! not make as stale, whatever PID wrote it.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

/// Who holds the lock, as written in the lock file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Holder {
    /// Process id.
    pub(crate) pid: u32,
    /// `daemon`, `build`, `regen`, `delete`.
    pub(crate) role: String,
    /// The daemon's HTTP endpoint, when it has one.
    pub(crate) http: Option<String>,
}

/// A lock problem.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LockError {
    /// Another kiln holds the lock.
    #[error("another kiln ({} with PID {}) owns this output (lock `{}`){}", .holder.role, .holder.pid, .path.display(), hint(.holder))]
    Held {
        /// The lock file.
        path: PathBuf,
        /// Who holds it.
        holder: Holder,
    },
    /// The output path is taken by something that is not a directory.
    #[error(
        "the output `{}` is a file, not a directory: move it away, or point `[site] out` (or --out) at a directory", .out.display()
    )]
    NotADirectory {
        /// The output path.
        out: PathBuf,
    },
    /// The lock file could not be used.
    #[error(
        "failed to create or lock kiln's lock file `{path}` in the output directory (is the output a writable directory?)"
    )]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl LockError {
    /// 2 when another kiln owns the output (the user runs one at a time),
    /// 1 when the lock file itself failed.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            LockError::Held { .. } | LockError::NotADirectory { .. } => 2,
            LockError::Io { .. } => 1,
        }
    }
}

fn hint(holder: &Holder) -> &'static str {
    if holder.role == "daemon" {
        "; stop it first, or send it work with `kiln regen` / `kiln enqueue`"
    } else {
        ""
    }
}

/// The held lock; released when dropped (and by the kernel if kiln dies).
#[derive(Debug)]
pub(crate) struct OutputLock {
    file: File,
    holder: Holder,
}

/// The lock file of an output directory (`--out`, the parent of `current`).
pub(crate) fn lock_path(out: &Path) -> PathBuf {
    out.join(".kiln.lock")
}

/// Refuses an output path that exists and is not a directory (a stray
/// file named like the output), before anything is created; `kiln check`
/// asks too.
pub(crate) fn check_output(out: &Path) -> Result<(), LockError> {
    match std::fs::metadata(out) {
        Ok(m) if !m.is_dir() => Err(LockError::NotADirectory {
            out: out.to_path_buf(),
        }),
        _ => Ok(()),
    }
}

fn open(path: &Path) -> Result<File, LockError> {
    let io = |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        check_output(dir)?;
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(io)
}

fn read_holder(file: &mut File) -> Holder {
    let mut text = String::new();
    let _ = file.rewind();
    let _ = file.take(4096).read_to_string(&mut text);
    serde_json::from_str(&text).unwrap_or(Holder {
        pid: 0,
        role: "unknown".into(),
        http: None,
    })
}

/// Who seems to hold the lock, without touching it (for `kiln status`): the
/// holder written in the file, if that process is still alive.
pub(crate) fn peek(out: &Path) -> Option<Holder> {
    let mut file = std::fs::File::open(lock_path(out)).ok()?;
    let holder = read_holder(&mut file);
    // Signal 0 only checks that the process exists; a PID that does not fit
    // a positive pid_t (0, or above i32::MAX) is no process at all.
    let alive = i32::try_from(holder.pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .is_some_and(|pid| {
            matches!(
                rustix::process::test_kill_process(pid),
                Ok(()) | Err(rustix::io::Errno::PERM)
            )
        });
    alive.then_some(holder)
}

/// Takes the lock without waiting; `Held` names the holder.
pub(crate) fn try_lock(out: &Path, role: &str) -> Result<OutputLock, LockError> {
    let path = lock_path(out);
    let mut file = open(&path)?;
    match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            return Err(LockError::Held {
                holder: read_holder(&mut file),
                path,
            });
        }
        Err(e) => {
            return Err(LockError::Io {
                path,
                source: e.into(),
            });
        }
    }
    let lock = OutputLock {
        file,
        holder: Holder {
            pid: std::process::id(),
            role: role.to_string(),
            http: None,
        },
    };
    lock.publish()
        .map_err(|source| LockError::Io { path, source })?;
    Ok(lock)
}

/// Takes the lock, waiting while another one-shot command holds it; a
/// daemon holding it is returned as `Held` at once (it never lets go).
pub(crate) async fn lock(out: &Path, role: &str) -> Result<OutputLock, LockError> {
    loop {
        match try_lock(out, role) {
            Err(LockError::Held { holder, path }) if holder.role != "daemon" => {
                tracing::warn!(pid = holder.pid, role = %holder.role, "waiting for another kiln (`kiln {}`, PID {}) to finish with this output", holder.role, holder.pid);
                let file = open(&path)?;
                let waited = tokio::task::spawn_blocking(move || {
                    rustix::fs::flock(&file, FlockOperation::LockShared)
                        .and_then(|()| rustix::fs::flock(&file, FlockOperation::Unlock))
                })
                .await;
                if let Ok(Err(e)) = waited {
                    return Err(LockError::Io {
                        path,
                        source: e.into(),
                    });
                }
            }
            other => return other,
        }
    }
}

impl OutputLock {
    /// Records the daemon's HTTP address for commands that hand work over.
    pub(crate) fn set_http(&mut self, http: String) -> std::io::Result<()> {
        self.holder.http = Some(http);
        self.publish()
    }

    fn publish(&self) -> std::io::Result<()> {
        let mut f = &self.file;
        f.set_len(0)?;
        f.rewind()?;
        f.write_all(serde_json::to_string(&self.holder)?.as_bytes())?;
        f.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_told_who_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("public");
        let mut first = try_lock(&state, "daemon").unwrap();
        first.set_http("http://127.0.0.1:7878".into()).unwrap();
        match try_lock(&state, "daemon") {
            Err(LockError::Held { holder, .. }) => {
                assert_eq!(holder.pid, std::process::id());
                assert_eq!(holder.role, "daemon");
                assert_eq!(holder.http.as_deref(), Some("http://127.0.0.1:7878"));
            }
            other => panic!("expected Held, got {other:?}"),
        }
        drop(first);
        // Released with the file (a fork elsewhere in the test process can
        // hold a copy of the descriptor for a moment: allow for that).
        let free = (0..200).any(|_| {
            let ok = try_lock(&state, "regen").is_ok();
            if !ok {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            ok
        });
        assert!(free, "the lock was not released");
    }
}
