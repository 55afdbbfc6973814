//! The web root: the only code that creates, replaces or removes files nginx serves.
//!
//! Every path is resolved *at the moment of the operation*, one component at
//! a time from a directory file descriptor, with `O_NOFOLLOW`: a symlink met
//! anywhere below the root is an error for that page ([`WriteError::Symlink`]),
//! never followed, so no swap of a directory for a symlink between two
//! operations can lead a create, rename or unlink outside the root
//! (guarantee 4, docs/architecture.md). Files are created, renamed and unlinked relative
//! to the directory descriptor they live in (`openat`, `renameat`,
//! `unlinkat`, `linkat`).
//!
//! Every write is a dot-named temp file in the target's directory, mode
//! 0644, synced, then renamed over the target, so nginx sees the old file or
//! the new one, never a partial one (guarantee 1). Compressed siblings are
//! written before the main file and removed with it.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::body::Body;
use crate::config::{Durability, Encoding};
use crate::files::{FsError, fs_err};

/// Prefix of kiln's temp files; swept at start.
pub(crate) const TEMP_PREFIX: &str = ".kiln-tmp-";

/// A filesystem failure, with what kiln was doing and to which file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    /// An I/O operation failed.
    #[error(transparent)]
    Io(#[from] FsError),
    /// A path that is not a plain relative path under the root.
    #[error("refusing to write `{0}`: it is not a plain path inside the output root")]
    OutsideRoot(PathBuf),
    /// A symlink sits where kiln needs a directory or file; it is never followed.
    #[error(
        "refusing to touch `{path}`: `{link}` is a symlink, and kiln never follows symlinks inside the output root (remove it)"
    )]
    Symlink {
        /// The file kiln wanted.
        path: PathBuf,
        /// The symlink met on the way.
        link: PathBuf,
    },
    /// `<out>/current` is a symlink kiln did not write (not `releases/<id>`).
    #[error(
        "refusing to use `{link}`: it points at `{target}`, and kiln only follows the `current` link it writes itself (`releases/<id>`); run `kiln rollback` or `kiln build --release` to point it back, or remove it"
    )]
    ForeignCurrent {
        /// The `current` link.
        link: PathBuf,
        /// Where it points.
        target: PathBuf,
    },
    /// A file exists where a directory is needed (or the reverse).
    #[error("{}", conflict_message(path, conflict))]
    Conflict {
        /// The file we wanted.
        path: PathBuf,
        /// The blocking path.
        conflict: PathBuf,
    },
}

impl WriteError {
    /// The machine, not the page: a full, read-only, failing or
    /// unwritable disk. Such a write is retried like an origin outage
    /// (docs/architecture.md, guarantee 2), never given up after a few tries.
    pub(crate) fn is_local_outage(&self) -> bool {
        match self {
            WriteError::Io(e) => crate::files::is_local_outage(&e.source),
            _ => false,
        }
    }
}

/// Names the blocking path once, what kiln needs there, and the fix.
fn conflict_message(path: &Path, conflict: &Path) -> String {
    match path.strip_prefix(conflict) {
        Ok(tail) if !tail.as_os_str().is_empty() => format!(
            "`{}` is a file where kiln needs a directory (to write `{}` in it): move it away; kiln never removes files it did not write",
            conflict.display(),
            tail.display()
        ),
        _ => format!(
            "`{}` is a directory where kiln writes a file: move it away; kiln never removes files it did not write",
            conflict.display()
        ),
    }
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WriteError + 'a {
    move |source| WriteError::Io(fs_err(action, path)(source))
}

fn errno<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(rustix::io::Errno) -> WriteError + 'a {
    move |e| io_err(action, path)(e.into())
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteOutcome {
    /// The file was created or its content changed.
    Written,
    /// Identical content was already there; nothing was touched (stale or
    /// missing compressed siblings were repaired).
    Unchanged,
}

/// An open directory under the root with the path it was reached by.
struct Dir {
    fd: OwnedFd,
    path: PathBuf,
    /// Made by this walk: it holds nothing kiln did not just put there.
    created: bool,
}

/// The output directory nginx serves.
#[derive(Debug, Clone)]
pub(crate) struct WebRoot {
    root: PathBuf,
    /// The part of `root` kiln follows as given (the operator's own path);
    /// everything below it is walked without following symlinks.
    trusted: PathBuf,
    /// How new files are made durable before they are renamed into place.
    durability: Durability,
    /// Shared by every writer of this root: one `syncfs` covers them all.
    group: Arc<GroupSync>,
    precompress: Vec<Encoding>,
    precompress_min_bytes: u64,
}

const DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::RDONLY)
    .union(OFlags::CLOEXEC);

impl WebRoot {
    /// Creates the root if needed. The root may be a symlink: `current` of a
    /// release layout (relative, `releases/<id>`) is resolved at each
    /// operation component by component without following anything inside,
    /// so a release switch is followed by a running daemon; an absolute
    /// symlink is the operator's own choice of location and is followed.
    pub(crate) fn open(
        root: &Path,
        precompress: Vec<Encoding>,
        precompress_min_bytes: u64,
    ) -> Result<WebRoot, WriteError> {
        if fs::symlink_metadata(root).is_err() {
            fs::create_dir_all(root).map_err(io_err("create output directory", root))?;
        }
        let root = std::path::absolute(root).map_err(io_err("resolve output directory", root))?;
        let trusted = root.parent().unwrap_or(&root).to_path_buf();
        let web = WebRoot {
            root,
            trusted,
            durability: Durability::Page,
            group: Arc::default(),
            precompress,
            precompress_min_bytes,
        };
        web.probe()?;
        Ok(web)
    }

    /// Checks once, before any work, that files can be created in the root:
    /// an unwritable output is one clear error, not one failure per page.
    fn probe(&self) -> Result<(), WriteError> {
        let dir = self.root_dir()?;
        let name = temp_name("probe");
        let fd = rustix::fs::openat(
            &dir.fd,
            &name,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(errno("create files in the output directory", &self.root))?;
        drop(fd);
        let _ = rustix::fs::unlinkat(&dir.fd, &name, AtFlags::empty());
        Ok(())
    }

    /// A root `rel` below `base` (a release directory under `<out>`): `base`
    /// is followed as given, every component of `rel` is walked without
    /// following a symlink, so a release directory swapped for a symlink is
    /// refused.
    pub(crate) fn open_within(
        base: &Path,
        rel: &Path,
        precompress: Vec<Encoding>,
        precompress_min_bytes: u64,
    ) -> Result<WebRoot, WriteError> {
        let trusted =
            std::path::absolute(base).map_err(io_err("resolve output directory", base))?;
        let web = WebRoot {
            root: trusted.join(rel),
            trusted,
            durability: Durability::Page,
            group: Arc::default(),
            precompress,
            precompress_min_bytes,
        };
        web.root_dir()?;
        Ok(web)
    }

    /// The same root, making files durable as `durability` says.
    pub(crate) fn with_durability(mut self, durability: Durability) -> WebRoot {
        self.durability = durability;
        self
    }

    /// The root directory (the `current` link itself in a release layout).
    pub(crate) fn path(&self) -> &Path {
        &self.root
    }

    /// Opens the root directory for one operation: the trusted base as
    /// given, then each component below it without following a symlink. The
    /// root's own last component may be a symlink: a relative one (`current`
    /// → `releases/<id>`) is expanded the same careful way; an absolute one
    /// is the operator's choice of location and is followed, but only for a
    /// root given whole to [`WebRoot::open`].
    fn root_dir(&self) -> Result<Dir, WriteError> {
        let root = &self.root;
        let trusted = &self.trusted;
        if root.parent() == Some(trusted.as_path()) {
            // The common case, in one call: the root's parents are the
            // operator's (followed), the root itself a real directory (not
            // followed). A symlinked root takes the careful way below.
            if let Ok(fd) = rustix::fs::open(root, DIR_FLAGS, Mode::empty()) {
                return Ok(Dir {
                    fd,
                    path: root.clone(),
                    created: false,
                });
            }
        }
        let base = rustix::fs::open(
            trusted,
            DIR_FLAGS.difference(OFlags::NOFOLLOW),
            Mode::empty(),
        )
        .map_err(errno("open output directory", trusted))?;
        let mut dir = Dir {
            fd: base,
            path: trusted.clone(),
            created: false,
        };
        let below: Vec<&OsStr> = match root.strip_prefix(trusted) {
            Ok(rel) => rel
                .components()
                .map(|c| match c {
                    Component::Normal(n) => Ok(n),
                    _ => Err(WriteError::OutsideRoot(root.clone())),
                })
                .collect::<Result<_, _>>()?,
            Err(_) => return Err(WriteError::OutsideRoot(root.clone())),
        };
        let whole_root_given = self.root.parent() == Some(trusted.as_path());
        for (i, name) in below.iter().enumerate() {
            let last = i + 1 == below.len();
            let link = if last {
                match rustix::fs::readlinkat(&dir.fd, *name, Vec::new()) {
                    Ok(target) => Some(PathBuf::from(std::ffi::OsString::from_vec(
                        target.into_bytes(),
                    ))),
                    Err(_) => None,
                }
            } else {
                None
            };
            // The release link (`<out>/current`) is followed only in the
            // one form kiln writes; an absolute or odd `current` was planted.
            if let Some(target) = &link {
                if *name == "current" && crate::release::release_id_of(target).is_none() {
                    return Err(WriteError::ForeignCurrent {
                        link: dir.path.join(name),
                        target: target.clone(),
                    });
                }
            }
            dir = match link {
                Some(target) if target.is_relative() => {
                    let mut d = dir;
                    for comp in target.components() {
                        let Component::Normal(n) = comp else {
                            return Err(WriteError::OutsideRoot(root.clone()));
                        };
                        d = self.step(&d, n, false, root)?.ok_or_else(|| {
                            io_err("open output directory", root)(io::ErrorKind::NotFound.into())
                        })?;
                    }
                    d
                }
                Some(_) if whole_root_given => Dir {
                    fd: rustix::fs::open(
                        root,
                        DIR_FLAGS.difference(OFlags::NOFOLLOW),
                        Mode::empty(),
                    )
                    .map_err(errno("open output directory", root))?,
                    path: root.clone(),
                    created: false,
                },
                _ => self.step(&dir, name, false, root)?.ok_or_else(|| {
                    io_err("open output directory", root)(io::ErrorKind::NotFound.into())
                })?,
            };
        }
        Ok(Dir {
            fd: dir.fd,
            path: root.clone(),
            created: false,
        })
    }

    /// Opens `name` inside `dir` as a directory without following a symlink;
    /// creates it when `create`. `None` when it does not exist and `!create`.
    fn step(
        &self,
        dir: &Dir,
        name: &OsStr,
        create: bool,
        wanted: &Path,
    ) -> Result<Option<Dir>, WriteError> {
        let path = dir.path.join(name);
        let mut created = false;
        for _ in 0..2 {
            match rustix::fs::openat(&dir.fd, name, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => return Ok(Some(Dir { fd, path, created })),
                Err(rustix::io::Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(&dir.fd, name, Mode::from_raw_mode(0o755)) {
                        Ok(()) => {
                            created = true;
                            continue;
                        }
                        Err(rustix::io::Errno::EXIST) => continue,
                        Err(e) => return Err(errno("create directory", &path)(e)),
                    }
                }
                Err(rustix::io::Errno::NOENT) => return Ok(None),
                Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
                    return Err(self.blocked(dir, name, wanted));
                }
                Err(e) => return Err(errno("open directory", &path)(e)),
            }
        }
        Err(io_err("create directory", &path)(
            io::ErrorKind::NotFound.into(),
        ))
    }

    /// The error for an entry that is not the directory kiln needs.
    fn blocked(&self, dir: &Dir, name: &OsStr, wanted: &Path) -> WriteError {
        let at = dir.path.join(name);
        match rustix::fs::statat(&dir.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                WriteError::Symlink {
                    path: wanted.to_path_buf(),
                    link: at,
                }
            }
            _ => WriteError::Conflict {
                path: wanted.to_path_buf(),
                conflict: at,
            },
        }
    }

    /// Walks to the directory holding `rel`, returning every directory on
    /// the way (root first) and the file name. `None` when a directory is
    /// missing and `create` is false.
    fn walk(&self, rel: &Path, create: bool) -> Result<Option<(Vec<Dir>, OsString)>, WriteError> {
        let wanted = self.root.join(rel);
        let mut names: Vec<&OsStr> = Vec::new();
        for comp in rel.components() {
            match comp {
                Component::Normal(c) => names.push(c),
                _ => return Err(WriteError::OutsideRoot(wanted)),
            }
        }
        let Some(file) = names.pop() else {
            return Err(WriteError::OutsideRoot(wanted));
        };
        let mut chain = vec![self.root_dir()?];
        for name in names {
            let parent = chain.last().expect("the root is always there");
            match self.step(parent, name, create, &wanted)? {
                Some(d) => chain.push(d),
                None => return Ok(None),
            }
        }
        Ok(Some((chain, file.to_os_string())))
    }

    /// Removes temp files left by a writer that is gone. The caller holds
    /// the output's lock ([`crate::lock`]), so every temp file but this
    /// process's own belongs to a dead writer, whatever its PID (a kiln that
    /// ran as PID 1 in a container included). Returns how many were removed.
    pub(crate) fn sweep_temp_files(&self) -> Result<usize, WriteError> {
        let mine = format!("{TEMP_PREFIX}{}-", std::process::id());
        let root = self.root_dir()?;
        let mut swept = 0;
        for entry in walkdir::WalkDir::new(&root.path).follow_links(false) {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name().to_string_lossy();
            if !entry.file_type().is_file()
                || !name.starts_with(TEMP_PREFIX)
                || name.starts_with(&mine)
            {
                continue;
            }
            let Ok(rel) = entry.path().strip_prefix(&root.path) else {
                continue;
            };
            if let Some((chain, file)) = self.walk(rel, false)? {
                let dir = chain.last().expect("the root is always there");
                match rustix::fs::unlinkat(&dir.fd, &file, AtFlags::empty()) {
                    Ok(()) => swept += 1,
                    Err(rustix::io::Errno::NOENT) => {}
                    Err(e) => return Err(errno("remove stale temp file", entry.path())(e)),
                }
            }
        }
        Ok(swept)
    }

    /// Every page file in the root (relative paths), without the
    /// precompressed siblings, temp files and dot files: what rebuilding
    /// the index from the output starts from. Does not follow symlinks.
    pub(crate) fn page_files(&self) -> Result<Vec<PathBuf>, WriteError> {
        let root = self.root_dir()?;
        let mut files = Vec::new();
        let walk = walkdir::WalkDir::new(&root.path)
            .follow_links(false)
            .into_iter()
            .filter_entry(|e| {
                let name = e.file_name().to_string_lossy();
                e.depth() == 0
                    || !name.starts_with('.')
                    || (e.depth() == 1
                        && (name == crate::urlmap::TYPED_TREE || name == crate::urlmap::QUERY_TREE))
            });
        for entry in walk {
            let Ok(entry) = entry else { continue };
            if !entry.file_type().is_file() {
                continue;
            }
            let path = entry.path();
            let sibling = Encoding::ALL.iter().any(|enc| {
                let name = path.to_string_lossy();
                name.strip_suffix(enc.suffix())
                    .is_some_and(|page| Path::new(page).is_file())
            });
            if sibling {
                continue;
            }
            if let Ok(rel) = path.strip_prefix(&root.path) {
                files.push(rel.to_path_buf());
            }
        }
        files.sort();
        Ok(files)
    }

    /// The baker's three steps in one call, for tests: [`WebRoot::stage_page`],
    /// [`WebRoot::make_durable`] (on a runtime of its own), [`Staged::place`].
    #[cfg(test)]
    pub(crate) fn write_page(&self, rel: &Path, body: &Body) -> Result<WriteOutcome, WriteError> {
        let staged = self.stage_page(rel, body)?;
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a test runtime")
            .block_on(self.make_durable(&staged))?;
        staged.place()
    }

    /// True when each file is synced while it is written (`page`
    /// durability): staging then blocks on the disk.
    pub(crate) fn syncs_each_file(&self) -> bool {
        self.durability == Durability::Page
    }

    /// Writes the new files of a page (the body, its compressed siblings) to
    /// temp files beside their targets; nothing is in place until
    /// [`Staged::place`]. Identical content is left untouched (guarantee 3),
    /// but siblings that do not match it are rewritten.
    pub(crate) fn stage_page(&self, rel: &Path, body: &Body) -> Result<Staged, WriteError> {
        let target = self.root.join(rel);
        let (mut chain, name) = self
            .walk(rel, true)?
            .expect("walk with create always reaches the directory");
        let dir = chain.pop().expect("the root is always there");
        let existing = match rustix::fs::statat(&dir.fd, &name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Some(st),
            Err(rustix::io::Errno::NOENT) => None,
            Err(e) => return Err(errno("inspect", &target)(e)),
        };
        if let Some(st) = &existing {
            match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => {}
                FileType::Symlink => {
                    return Err(WriteError::Symlink {
                        path: target.clone(),
                        link: target,
                    });
                }
                _ => {
                    return Err(WriteError::Conflict {
                        path: target.clone(),
                        conflict: target,
                    });
                }
            }
        }
        let unchanged = match &existing {
            Some(st) if st.st_size as u64 == body.len() => {
                let mut old = open_file(&dir, &name).map_err(io_err("read", &target))?;
                body.same_as(&mut old).map_err(io_err("read", &target))?
            }
            _ => false,
        };
        let wanted: &[Encoding] = if body.len() >= self.precompress_min_bytes {
            &self.precompress
        } else {
            &[]
        };
        // Every new file is written to a temp file first; they are made
        // durable together and only then put in place ([`Staged::place`]),
        // so nginx never sees a partial file or a sibling of another
        // version than its page, and a crash leaves old or new complete files.
        // Dropping `staged` on an error below removes its temp files.
        let mut staged = Staged {
            dir,
            temps: Vec::new(),
            unchanged,
            replaced_len: existing.as_ref().map(|st| st.st_size as u64),
        };
        for enc in Encoding::ALL {
            let sibling = sibling_name(&name, enc);
            let sibling_path = sibling_path(&target, enc);
            if wanted.contains(&enc) {
                let current = unchanged
                    && sibling_matches(&staged.dir, &sibling, enc, body)
                        .map_err(io_err("read", &sibling_path))?;
                if !current {
                    let tmp =
                        self.write_temp(&staged.dir, &sibling_path, |w| compress(enc, body, w))?;
                    staged.temps.push((tmp, sibling, sibling_path));
                }
            } else if !staged.dir.created {
                // Stale or no longer wanted: nginx must not serve an old .gz
                // (even an orphan a crash left beside no page). A directory
                // this write created has none.
                match rustix::fs::unlinkat(&staged.dir.fd, &sibling, AtFlags::empty()) {
                    Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                    Err(e) => return Err(errno("remove stale compressed file", &sibling_path)(e)),
                }
            }
        }
        if !unchanged {
            let tmp = self.write_temp(&staged.dir, &target, |w| {
                io::copy(&mut body.reader(), w).map(drop)
            })?;
            staged.temps.push((tmp, name, target));
        }
        Ok(staged)
    }

    /// Waits until the staged files are durable (`batch`: one `syncfs`
    /// shared with every writer that staged meanwhile), without holding a
    /// runtime thread.
    pub(crate) async fn make_durable(&self, staged: &Staged) -> Result<(), WriteError> {
        if self.durability != Durability::Batch || staged.temps.is_empty() {
            return Ok(());
        }
        self.group
            .sync_after_write(&staged.dir.fd)
            .await
            .map_err(|e| self.sync_error(staged, e))
    }

    fn sync_error(&self, staged: &Staged, e: io::Error) -> WriteError {
        let target = staged
            .temps
            .last()
            .map_or_else(|| self.root.clone(), |(_, _, path)| path.clone());
        io_err("sync the output filesystem for", &target)(e)
    }

    /// A temp file in `dir` (the target's own directory, so the rename is
    /// atomic) with `O_EXCL | O_NOFOLLOW`, mode 0644, filled by `fill`, and
    /// synced on its own when durability is `page`. Returns its name; on any
    /// error it is removed.
    fn write_temp(
        &self,
        dir: &Dir,
        target: &Path,
        fill: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> Result<OsString, WriteError> {
        let tmp = temp_name("w");
        let fd = rustix::fs::openat(
            &dir.fd,
            &tmp,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(errno("create temp file for", target))?;
        let mut file = File::from(fd);
        let result = (|| {
            fill(&mut file).map_err(io_err("write", target))?;
            // The umask may have narrowed the mode; nginx must be able to read it.
            if umask_narrows_0644() {
                rustix::fs::fchmod(file.as_fd(), Mode::from_raw_mode(0o644))
                    .map_err(errno("set permissions on", target))?;
            }
            if self.durability == Durability::Page {
                file.sync_data().map_err(io_err("sync", target))?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok(tmp),
            Err(e) => {
                let _ = rustix::fs::unlinkat(&dir.fd, &tmp, AtFlags::empty());
                Err(e)
            }
        }
    }

    /// The bytes of the regular file `rel`, read without following a
    /// symlink anywhere below the root; `None` when there is no such file
    /// (a directory, a symlink, nothing).
    pub(crate) fn read_page(&self, rel: &Path) -> Option<Vec<u8>> {
        let (chain, name) = self.walk(rel, false).ok()??;
        let dir = chain.last()?;
        let mut file = open_file(dir, &name).ok()?;
        if !file.metadata().ok()?.is_file() {
            return None;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).ok()?;
        Some(bytes)
    }

    /// True when `rel` is a baked file (not following symlinks); a symlink
    /// on the way is the same error a write or removal would meet.
    pub(crate) fn has_page(&self, rel: &Path) -> Result<bool, WriteError> {
        Ok(match self.walk(rel, false)? {
            Some((chain, name)) => {
                let dir = chain.last().expect("the root is always there");
                rustix::fs::statat(&dir.fd, &name, AtFlags::SYMLINK_NOFOLLOW).is_ok()
            }
            None => false,
        })
    }

    /// Removes the baked file of `rel` and its siblings; true when a file
    /// was actually removed. Empty directories are tidied up to the root.
    pub(crate) fn remove_page(&self, rel: &Path) -> Result<bool, WriteError> {
        let target = self.root.join(rel);
        let Some((chain, name)) = self.walk(rel, false)? else {
            return Ok(false);
        };
        let dir = chain.last().expect("the root is always there");
        let mut removed = false;
        // Siblings first, the page last: a crash in between leaves the page
        // (removed again when its event is replayed), never a `.gz` of a
        // page that is gone.
        let names = Encoding::ALL
            .iter()
            .map(|e| sibling_name(&name, *e))
            .chain(std::iter::once(name.clone()));
        for n in names {
            match rustix::fs::unlinkat(&dir.fd, &n, AtFlags::empty()) {
                Ok(()) => removed |= n == name,
                Err(rustix::io::Errno::NOENT) => {}
                Err(rustix::io::Errno::ISDIR) => {
                    return Err(WriteError::Conflict {
                        path: target.clone(),
                        conflict: dir.path.join(&n),
                    });
                }
                Err(e) => return Err(errno("remove", &dir.path.join(&n))(e)),
            }
        }
        // Tidy empty directories up to the root so nginx falls through cleanly.
        for pair in chain.windows(2).rev() {
            let Some(child) = pair[1].path.file_name() else {
                break;
            };
            if rustix::fs::unlinkat(&pair[0].fd, child, AtFlags::REMOVEDIR).is_err() {
                break;
            }
        }
        Ok(removed)
    }

    /// Replaces every file that is byte-identical to the same path under
    /// `previous` with a hard link to it, so a new release shares unchanged
    /// files (same inode, mtime and ETag) with the one before. Returns how many.
    pub(crate) fn share_unchanged_with(&self, previous: &WebRoot) -> Result<usize, WriteError> {
        let root = self.root_dir()?;
        let mut shared = 0;
        for entry in walkdir::WalkDir::new(&root.path).follow_links(false) {
            let Ok(entry) = entry else { continue };
            if !entry.file_type().is_file() {
                continue;
            }
            let Ok(rel) = entry.path().strip_prefix(&root.path) else {
                continue;
            };
            let (Some((new_chain, name)), Some((old_chain, _))) =
                (self.walk(rel, false)?, previous.walk(rel, false)?)
            else {
                continue;
            };
            let (new_dir, old_dir) = (
                new_chain.last().expect("root"),
                old_chain.last().expect("root"),
            );
            let (Ok(mut new), Ok(mut old)) = (open_file(new_dir, &name), open_file(old_dir, &name))
            else {
                continue;
            };
            if !same_content(&mut new, &mut old).map_err(io_err("compare", entry.path()))? {
                continue;
            }
            let tmp = temp_name("link");
            rustix::fs::linkat(&old_dir.fd, &name, &new_dir.fd, &tmp, AtFlags::empty())
                .map_err(errno("hard-link", &old_dir.path.join(&name)))?;
            rustix::fs::renameat(&new_dir.fd, &tmp, &new_dir.fd, &name)
                .map_err(errno("rename hard link over", entry.path()))?;
            shared += 1;
        }
        Ok(shared)
    }
}

/// A page's new files, written to temp files beside their targets and not
/// yet in place ([`WebRoot::stage_page`]). Dropped without
/// [`Staged::place`], its temp files are removed.
pub(crate) struct Staged {
    /// The targets' directory.
    dir: Dir,
    /// (temp name, final name, final path), siblings before the page.
    temps: Vec<(OsString, OsString, PathBuf)>,
    /// The page's bytes were already in place.
    unchanged: bool,
    /// The size of the file the page replaces, when there was one.
    replaced_len: Option<u64>,
}

impl Staged {
    /// The size of the baked file this write replaces, if any (the
    /// mass-change guard compares it with the new body).
    pub(crate) fn replaced_len(&self) -> Option<u64> {
        self.replaced_len
    }

    /// Puts the staged files in place so that a `.gz` beside a page is
    /// always that page's own, whenever a kill comes: the old siblings go
    /// first (nginx then serves the page uncompressed for a moment), then
    /// the page is renamed into place, then its new siblings. A page that
    /// was already in place only has its siblings renamed (a repair).
    pub(crate) fn place(mut self) -> Result<WriteOutcome, WriteError> {
        let temps = std::mem::take(&mut self.temps);
        let (siblings, page) = match (self.unchanged, temps.split_last()) {
            (false, Some((page, siblings))) => (siblings.to_vec(), Some(page.clone())),
            _ => (temps.clone(), None),
        };
        if page.is_some() {
            let old: Vec<OsString> = siblings.iter().map(|(_, n, _)| n.clone()).collect();
            remove_quietly(&self.dir, &old);
        }
        if let Some((tmp, final_name, path)) = &page {
            if let Err(e) = rustix::fs::renameat(&self.dir.fd, tmp, &self.dir.fd, final_name) {
                // The old page stays, without siblings: consistent. The
                // staged files go with `self` (Drop).
                self.temps = temps;
                return Err(errno("rename temp file over", path)(e));
            }
        }
        for (i, (tmp, final_name, path)) in siblings.iter().enumerate() {
            if let Err(e) = rustix::fs::renameat(&self.dir.fd, tmp, &self.dir.fd, final_name) {
                // The rest are dropped; the page is served uncompressed
                // where its sibling is missing, and the next write repairs it.
                self.temps = siblings[i..].to_vec();
                return Err(errno("rename temp file over", path)(e));
            }
        }
        Ok(if self.unchanged {
            WriteOutcome::Unchanged
        } else {
            WriteOutcome::Written
        })
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let names: Vec<OsString> = self.temps.iter().map(|(t, _, _)| t.clone()).collect();
        remove_quietly(&self.dir, &names);
    }
}

/// Opens a regular file in `dir` for reading, never through a symlink.
fn open_file(dir: &Dir, name: &OsStr) -> io::Result<File> {
    let fd = rustix::fs::openat(
        &dir.fd,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(File::from(fd))
}

fn same_content(a: &mut File, b: &mut File) -> io::Result<bool> {
    if a.metadata()?.len() != b.metadata()?.len() {
        return Ok(false);
    }
    let mut buf = Vec::new();
    a.read_to_end(&mut buf)?;
    Body::from(buf).same_as(b)
}

/// True when the sibling decompresses to exactly `body`: a crash between
/// writing a sibling and its page, or a page restored by hand, leaves a
/// sibling that disagrees, and nginx would serve it.
fn sibling_matches(dir: &Dir, sibling: &OsStr, enc: Encoding, body: &Body) -> io::Result<bool> {
    let file = match open_file(dir, sibling) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(false),
        Err(e) => return Err(e),
    };
    let file = io::BufReader::new(file);
    let matched = match enc {
        Encoding::Gzip => body.same_as(&mut flate2::read::GzDecoder::new(file)),
        Encoding::Brotli => body.same_as(&mut brotli::Decompressor::new(file, 4096)),
    };
    // Garbage in the sibling is a mismatch, not an error: it gets rewritten.
    Ok(matched.unwrap_or(false))
}

fn remove_quietly(dir: &Dir, names: &[OsString]) {
    for n in names {
        let _ = rustix::fs::unlinkat(&dir.fd, n, AtFlags::empty());
    }
}

/// `index.html` → `index.html.gz`.
fn sibling_name(name: &OsStr, enc: Encoding) -> OsString {
    let mut s = name.to_owned();
    s.push(enc.suffix());
    s
}

/// `a/index.html` → `a/index.html.gz`.
pub(crate) fn sibling_path(target: &Path, enc: Encoding) -> PathBuf {
    let mut s = target.as_os_str().to_owned();
    s.push(enc.suffix());
    PathBuf::from(s)
}

fn compress(enc: Encoding, body: &Body, out: &mut File) -> io::Result<()> {
    let mut input = body.reader();
    match enc {
        Encoding::Gzip => {
            let mut e =
                flate2::write::GzEncoder::new(io::BufWriter::new(out), flate2::Compression::best());
            io::copy(&mut input, &mut e)?;
            e.finish()?.flush()
        }
        Encoding::Brotli => {
            let params = brotli::enc::BrotliEncoderParams {
                quality: 11,
                lgwin: 22,
                ..Default::default()
            };
            let mut w = io::BufWriter::new(out);
            brotli::BrotliCompress(&mut input, &mut w, &params)?;
            w.flush()
        }
    }
}

/// Whether files created with mode 0644 come out narrower (the process
/// umask has bits of 0644), so they need a `fchmod`. Read from
/// `/proc/self/status` (setting the umask to read it would race with other
/// threads creating files); when unknown, assume it does.
fn umask_narrows_0644() -> bool {
    static NARROWS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *NARROWS.get_or_init(|| {
        let umask = fs::read_to_string("/proc/self/status").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        });
        umask.is_none_or(|m| m & 0o644 != 0)
    })
}

/// A fresh temp file name: the prefix nginx's dot-file rule denies, the PID
/// (so a sweep can tell our own files apart) and a random part.
fn temp_name(kind: &str) -> OsString {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    OsString::from(format!(
        "{TEMP_PREFIX}{}-{kind}-{nanos:x}{:x}",
        PID.get_or_init(std::process::id),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Group sync: writers whose temp files are written wait for one `syncfs`
/// that started after their writes; while one runs, the next gathers
/// everyone who arrives meanwhile (as git's `core.fsyncMethod=batch` and
/// database group commit do). Waiters hold no runtime thread; the first
/// writer to find no sync running runs the next one.
#[derive(Debug)]
pub(crate) struct GroupSync {
    state: std::sync::Mutex<SyncState>,
    /// The newest finished generation, for waiters.
    finished: tokio::sync::watch::Sender<u64>,
}

impl Default for GroupSync {
    fn default() -> Self {
        GroupSync {
            state: Default::default(),
            finished: tokio::sync::watch::Sender::new(0),
        }
    }
}

#[derive(Debug, Default)]
struct SyncState {
    /// Syncs started so far (generation numbers).
    started: u64,
    /// The newest generation that has finished.
    finished: u64,
    /// Whether a sync is running now.
    running: bool,
    /// The outcome of the newest finished sync.
    last_error: Option<io::ErrorKind>,
}

/// What a writer waiting for generation `need` does next.
enum SyncStep {
    Done(io::Result<()>),
    /// Run sync number `generation` (no other is running).
    Run(u64),
    Wait,
}

fn poisoned() -> io::Error {
    io::Error::other("the sync lock was poisoned")
}

impl GroupSync {
    /// The generation a writer whose files are written now must wait for:
    /// the first sync that starts after this call.
    fn ticket(&self) -> io::Result<u64> {
        Ok(self.state.lock().map_err(|_| poisoned())?.started + 1)
    }

    fn step(&self, need: u64) -> io::Result<SyncStep> {
        let mut s = self.state.lock().map_err(|_| poisoned())?;
        if s.finished >= need {
            return Ok(SyncStep::Done(match s.last_error {
                None => Ok(()),
                Some(kind) => Err(io::Error::from(kind)),
            }));
        }
        if s.running {
            return Ok(SyncStep::Wait);
        }
        s.running = true;
        s.started += 1;
        Ok(SyncStep::Run(s.started))
    }

    fn finish(&self, generation: u64, result: rustix::io::Result<()>) {
        if let Ok(mut s) = self.state.lock() {
            s.running = false;
            s.finished = generation;
            s.last_error = result.err().map(|e| io::Error::from(e).kind());
        }
        self.finished.send_replace(generation);
    }

    /// Returns once a `syncfs` that began after this call has finished.
    async fn sync_after_write(self: &Arc<Self>, fs: &impl AsFd) -> io::Result<()> {
        let need = self.ticket()?;
        // Let the other runnable pages finish staging first: they take
        // tickets for the same sync, so one `syncfs` covers more files
        // (one per page otherwise on a fast disk: each costs a journal
        // commit). A page written alone goes straight on.
        tokio::task::yield_now().await;
        loop {
            // Subscribed before looking, so a sync finishing in between is seen.
            let mut finished = self.finished.subscribe();
            match self.step(need)? {
                SyncStep::Done(result) => return result,
                SyncStep::Run(generation) => {
                    // The leader of a round syncs on its own thread, handed
                    // over by the runtime meanwhile; the others just wait.
                    let result =
                        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
                            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                                tokio::task::block_in_place(|| rustix::fs::syncfs(fs))
                            }
                            _ => rustix::fs::syncfs(fs),
                        };
                    self.finish(generation, result);
                    continue;
                }
                SyncStep::Wait => {}
            }
            if finished.changed().await.is_err() {
                return Err(io::Error::other("the sync coordinator is gone"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    fn body(s: &str) -> Body {
        Body::from(s.to_string())
    }

    #[test]
    fn writes_atomically_with_mode_0644_and_skips_identical() {
        let dir = tempfile::tempdir().unwrap();
        let root = WebRoot::open(dir.path(), vec![Encoding::Gzip], 10).unwrap();
        let rel = Path::new("a/index.html");
        assert_eq!(
            root.write_page(rel, &body("hello world, hello")).unwrap(),
            WriteOutcome::Written
        );
        let file = dir.path().join(rel);
        let meta = fs::metadata(&file).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        assert!(sibling_path(&file, Encoding::Gzip).exists());
        let mtime = meta.modified().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            root.write_page(rel, &body("hello world, hello")).unwrap(),
            WriteOutcome::Unchanged
        );
        assert_eq!(fs::metadata(&file).unwrap().modified().unwrap(), mtime);
        // A body below the threshold drops the sibling rather than leave it stale.
        assert_eq!(
            root.write_page(rel, &body("tiny")).unwrap(),
            WriteOutcome::Written
        );
        assert!(!sibling_path(&file, Encoding::Gzip).exists());
        assert!(root.remove_page(rel).unwrap());
        assert!(!file.exists());
        assert!(!dir.path().join("a").exists(), "empty dirs are tidied");
        assert!(!root.remove_page(rel).unwrap(), "nothing left to remove");
        let leftovers: Vec<_> = walkdir::WalkDir::new(dir.path())
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn sweeps_every_temp_file_but_our_own() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("x")).unwrap();
        fs::write(dir.path().join("x/.kiln-tmp-abc"), "partial").unwrap();
        fs::write(dir.path().join("x/.kiln-tmp-999999999-abc"), "dead writer").unwrap();
        // PID 1 is alive on every machine: a container's kiln that crashed.
        fs::write(dir.path().join("x/.kiln-tmp-1-abc"), "pid 1 in a container").unwrap();
        let mine = format!(".kiln-tmp-{}-abc", std::process::id());
        fs::write(dir.path().join("x").join(&mine), "ours").unwrap();
        fs::write(dir.path().join("x/keep.html"), "ok").unwrap();
        let root = WebRoot::open(dir.path(), vec![], 0).unwrap();
        assert_eq!(root.sweep_temp_files().unwrap(), 3);
        assert!(dir.path().join("x/keep.html").exists());
        assert!(dir.path().join("x").join(&mine).exists());
    }

    #[test]
    fn never_writes_or_removes_through_a_symlinked_directory() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("index.html"), "outside").unwrap();
        let root = WebRoot::open(dir.path(), vec![Encoding::Gzip], 0).unwrap();
        // Baked once as a real directory, then swapped for a symlink: the
        // next write and remove resolve the path again and refuse.
        root.write_page(Path::new("p/77/index.html"), &body("v1"))
            .unwrap();
        fs::remove_dir_all(dir.path().join("p/77")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("p/77")).unwrap();
        let err = root
            .write_page(Path::new("p/77/index.html"), &body("v2"))
            .unwrap_err();
        assert!(matches!(err, WriteError::Symlink { .. }), "{err}");
        let err = root.remove_page(Path::new("p/77/index.html")).unwrap_err();
        assert!(matches!(err, WriteError::Symlink { .. }), "{err}");
        assert_eq!(
            fs::read_to_string(outside.path().join("index.html")).unwrap(),
            "outside"
        );
        assert_eq!(
            fs::read_dir(outside.path()).unwrap().count(),
            1,
            "no sibling or temp file outside"
        );
        // A symlink in the page's own place is not written through either.
        std::os::unix::fs::symlink(
            outside.path().join("index.html"),
            dir.path().join("p/x.html"),
        )
        .unwrap();
        let err = root
            .write_page(Path::new("p/x.html"), &body("v3"))
            .unwrap_err();
        assert!(matches!(err, WriteError::Symlink { .. }), "{err}");
        assert_eq!(
            fs::read_to_string(outside.path().join("index.html")).unwrap(),
            "outside"
        );
    }

    #[test]
    fn a_release_directory_swapped_for_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("releases")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("releases/1")).unwrap();
        std::os::unix::fs::symlink("releases/1", dir.path().join("current")).unwrap();
        let err = WebRoot::open(&dir.path().join("current"), vec![], 0).unwrap_err();
        assert!(matches!(err, WriteError::Symlink { .. }), "{err}");
        let err = WebRoot::open_within(dir.path(), Path::new("releases/1"), vec![], 0).unwrap_err();
        assert!(matches!(err, WriteError::Symlink { .. }), "{err}");
        // The whole `releases` directory swapped for a symlink, too.
        fs::rename(dir.path().join("releases"), dir.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("releases")).unwrap();
        fs::create_dir(outside.path().join("2")).unwrap();
        let err = WebRoot::open_within(dir.path(), Path::new("releases/2"), vec![], 0).unwrap_err();
        assert!(matches!(err, WriteError::Symlink { .. }), "{err}");
        fs::remove_file(dir.path().join("releases")).unwrap();
        fs::rename(dir.path().join("elsewhere"), dir.path().join("releases")).unwrap();
        fs::remove_file(dir.path().join("releases/1")).unwrap();
        fs::create_dir(dir.path().join("releases/1")).unwrap();
        let root = WebRoot::open(&dir.path().join("current"), vec![], 0).unwrap();
        root.write_page(Path::new("index.html"), &body("live"))
            .unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("releases/1/index.html")).unwrap(),
            "live"
        );
    }

    #[test]
    fn siblings_that_disagree_with_an_unchanged_page_are_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let root = WebRoot::open(dir.path(), vec![Encoding::Gzip, Encoding::Brotli], 0).unwrap();
        let rel = Path::new("a.html");
        root.write_page(rel, &body("old page")).unwrap();
        // A crash after the siblings of a newer version were written, before the page.
        let newer = WebRoot::open(dir.path(), vec![Encoding::Gzip, Encoding::Brotli], 0).unwrap();
        newer
            .write_page(Path::new("b.html"), &body("new page"))
            .unwrap();
        for enc in Encoding::ALL {
            fs::rename(
                sibling_path(&dir.path().join("b.html"), enc),
                sibling_path(&dir.path().join(rel), enc),
            )
            .unwrap();
        }
        assert_eq!(
            root.write_page(rel, &body("old page")).unwrap(),
            WriteOutcome::Unchanged
        );
        let gz = fs::read(sibling_path(&dir.path().join(rel), Encoding::Gzip)).unwrap();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "old page");
        let br = fs::read(sibling_path(&dir.path().join(rel), Encoding::Brotli)).unwrap();
        let mut text = String::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "old page");
    }

    #[test]
    fn batch_durability_writes_concurrent_pages_with_shared_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let root = WebRoot::open(dir.path(), vec![Encoding::Gzip], 0)
            .unwrap()
            .with_durability(Durability::Batch);
        std::thread::scope(|s| {
            for t in 0..8 {
                let root = &root;
                s.spawn(move || {
                    for i in 0..25 {
                        let rel = PathBuf::from(format!("t{t}/p{i}/index.html"));
                        let out = root
                            .write_page(&rel, &body(&format!("page {t}/{i}")))
                            .unwrap();
                        assert_eq!(out, WriteOutcome::Written);
                    }
                });
            }
        });
        let syncs = root.group.state.lock().unwrap().finished;
        assert!(
            (1..200).contains(&syncs),
            "{syncs} syncs for 200 pages: they were shared"
        );
        for t in 0..8 {
            for i in 0..25 {
                let f = dir.path().join(format!("t{t}/p{i}/index.html"));
                assert_eq!(fs::read_to_string(&f).unwrap(), format!("page {t}/{i}"));
                let mut gz = String::new();
                flate2::read::GzDecoder::new(
                    fs::File::open(sibling_path(&f, Encoding::Gzip)).unwrap(),
                )
                .read_to_string(&mut gz)
                .unwrap();
                assert_eq!(gz, format!("page {t}/{i}"));
            }
        }
        let temps = walkdir::WalkDir::new(dir.path())
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
            .count();
        assert_eq!(temps, 0);
    }

    /// The path the baker takes: tasks stage pages, wait for a shared sync
    /// without holding a thread, then place them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tasks_staging_at_once_share_syncs_and_place_complete_pages() {
        let dir = tempfile::tempdir().unwrap();
        let root = Arc::new(
            WebRoot::open(dir.path(), vec![Encoding::Gzip], 0)
                .unwrap()
                .with_durability(Durability::Batch),
        );
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..200 {
            let root = Arc::clone(&root);
            tasks.spawn(async move {
                let rel = PathBuf::from(format!("p/{i}/index.html"));
                let staged = root.stage_page(&rel, &body(&format!("page {i}"))).unwrap();
                // Nothing is in place before the sync.
                assert!(!root.root.join(&rel).exists());
                root.make_durable(&staged).await.unwrap();
                staged.place().unwrap()
            });
        }
        while let Some(outcome) = tasks.join_next().await {
            assert_eq!(outcome.unwrap(), WriteOutcome::Written);
        }
        let syncs = root.group.state.lock().unwrap().finished;
        assert!(
            (1..200).contains(&syncs),
            "{syncs} syncs for 200 pages: they were shared"
        );
        for i in 0..200 {
            let f = dir.path().join(format!("p/{i}/index.html"));
            assert_eq!(fs::read_to_string(&f).unwrap(), format!("page {i}"));
        }
        // A staged page dropped before its sync leaves nothing behind.
        let staged = root
            .stage_page(Path::new("p/x/index.html"), &body("never placed"))
            .unwrap();
        drop(staged);
        let leftovers: Vec<_> = walkdir::WalkDir::new(dir.path())
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| {
                let n = e.file_name().to_string_lossy();
                n.starts_with(TEMP_PREFIX) || e.path().ends_with("p/x/index.html")
            })
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn file_dir_conflict_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let root = WebRoot::open(dir.path(), vec![], 0).unwrap();
        root.write_page(Path::new("api"), &body("{}")).unwrap();
        let err = root
            .write_page(Path::new("api/x/index.html"), &body("x"))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("is a file where kiln needs a directory"),
            "{err}"
        );
    }
}
