//! Atomic releases (guarantee 7, docs/architecture.md): `build --release` bakes a full
//! tree into `releases/<id>/` beside the live one, hard-links files that did
//! not change, then switches the `current` symlink with one rename. nginx's
//! root is `<out>/current`; it never sees a half-built site.

use std::fs;
use std::path::{Path, PathBuf};

/// Release layout problems.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReleaseError {
    /// Filesystem failure.
    #[error(transparent)]
    Io(#[from] crate::files::FsError),
    /// Nothing to roll back to.
    #[error("no earlier release to roll back to in `{0}`")]
    NothingToRollBack(PathBuf),
    /// `out` exists but is a plain site, not a release layout.
    #[error(
        "`{0}` holds a plain (non-release) site; use a new --out for release builds or move it aside"
    )]
    NotReleaseLayout(PathBuf),
}

fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> ReleaseError + 'a {
    move |source| ReleaseError::Io(crate::files::fs_err(action, path)(source))
}

/// The `<out>/releases/*` + `<out>/current` layout.
#[derive(Debug, Clone)]
pub(crate) struct Releases {
    out: PathBuf,
}

impl Releases {
    /// The layout under `out`.
    pub(crate) fn new(out: &Path) -> Releases {
        Releases {
            out: out.to_path_buf(),
        }
    }

    /// `<out>/current`, the symlink nginx serves.
    pub(crate) fn current_link(&self) -> PathBuf {
        self.out.join("current")
    }

    fn dir(&self) -> PathBuf {
        self.out.join("releases")
    }

    /// Release ids, oldest first: real directories in a real `releases/`
    /// (a symlink there, or a `releases/` that is one, is never a release).
    pub(crate) fn list(&self) -> Vec<String> {
        if !fs::symlink_metadata(self.dir()).is_ok_and(|m| m.is_dir()) {
            return Vec::new();
        }
        let mut ids: Vec<String> = fs::read_dir(self.dir())
            .map(|d| {
                d.filter_map(Result::ok)
                    // `DirEntry::file_type` does not follow symlinks.
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// The id `current` points at, when it is a link kiln wrote.
    pub(crate) fn live(&self) -> Option<String> {
        let target = fs::read_link(self.current_link()).ok()?;
        release_id_of(&target).map(str::to_owned)
    }

    /// Creates a fresh, empty release directory.
    pub(crate) fn begin(&self) -> Result<(String, PathBuf), ReleaseError> {
        if self.out.join("index.html").exists() && !self.current_link().exists() {
            return Err(ReleaseError::NotReleaseLayout(self.out.clone()));
        }
        let mut stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        let dir = self.dir();
        fs::create_dir_all(&self.out).map_err(io("create output directory", &self.out))?;
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io("create releases directory", &dir)(e)),
        }
        if fs::symlink_metadata(&dir).is_ok_and(|m| !m.is_dir()) {
            // Never create a release through a symlink (or over a file).
            return Err(ReleaseError::NotReleaseLayout(dir));
        }
        // Ids are UTC times to the microsecond, newer sorts later; two
        // builds in the same microsecond (or a clock step back) take the
        // next free one.
        if let Some(newest) = self.list().last().and_then(|l| micros_of_id(l)) {
            stamp = stamp.max(newest + 1);
        }
        loop {
            let id = id_of_micros(stamp);
            let path = dir.join(&id);
            match fs::create_dir(&path) {
                Ok(()) => return Ok((id, path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => stamp += 1,
                Err(e) => return Err(io("create release directory", &path)(e)),
            }
        }
    }

    /// Removes a release that will not go live (its build failed).
    pub(crate) fn discard(&self, id: &str) -> Result<(), ReleaseError> {
        let p = self.dir().join(id);
        fs::remove_dir_all(&p).map_err(io("remove failed release", &p))
    }

    /// Points `current` at `id` atomically: a new symlink renamed over the old.
    pub(crate) fn switch(&self, id: &str) -> Result<(), ReleaseError> {
        let link = self.current_link();
        let tmp = self.out.join(format!(".current-{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(Path::new("releases").join(id), &tmp)
            .map_err(io("create symlink", &tmp))?;
        fs::rename(&tmp, &link).map_err(io("switch symlink", &link))?;
        Ok(())
    }

    /// Removes all but the newest `keep` releases, never the live one.
    pub(crate) fn prune(&self, keep: usize) -> Result<usize, ReleaseError> {
        let live = self.live();
        let ids = self.list();
        let mut removed = 0;
        let excess = ids.len().saturating_sub(keep);
        for id in ids.into_iter().take(excess) {
            if Some(&id) == live.as_ref() {
                continue;
            }
            let p = self.dir().join(&id);
            fs::remove_dir_all(&p).map_err(io("remove old release", &p))?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Switches `current` to the release before the live one; returns its id.
    pub(crate) fn rollback(&self) -> Result<String, ReleaseError> {
        let ids = self.list();
        let live = self.live();
        let pos = live
            .as_ref()
            .and_then(|l| ids.iter().position(|i| i == l))
            .unwrap_or(ids.len());
        if fs::symlink_metadata(self.dir()).is_ok_and(|m| !m.is_dir()) {
            return Err(ReleaseError::NotReleaseLayout(self.dir()));
        }
        if pos == 0 {
            return Err(ReleaseError::NothingToRollBack(self.out.clone()));
        }
        let prev = ids[pos - 1].clone();
        self.switch(&prev)?;
        Ok(prev)
    }
}

/// A release id for a time: `20261201T143512.123456Z` (UTC), readable
/// and sorting as time does (also after the plain microsecond numbers of
/// earlier kiln versions).
pub(crate) fn id_of_micros(micros: u128) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(micros as u64);
    humantime::format_rfc3339_micros(t)
        .to_string()
        .replace(['-', ':'], "")
}

/// The time a release id stands for (either form), in microseconds.
pub(crate) fn micros_of_id(id: &str) -> Option<u128> {
    if id.bytes().all(|b| b.is_ascii_digit()) {
        return id.parse().ok();
    }
    // 20261201T143512.123456Z → 2026-12-01T14:35:12.123456Z
    let (date, time) = id.split_once('T')?;
    if date.len() != 8 || time.len() < 7 {
        return None;
    }
    let rfc = format!(
        "{}-{}-{}T{}:{}:{}",
        &date[..4],
        &date[4..6],
        &date[6..],
        &time[..2],
        &time[2..4],
        &time[4..]
    );
    let t = humantime::parse_rfc3339(&rfc).ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_micros())
}

/// The release id a `current` link names, when it is the only form kiln
/// writes (guarantee 11, docs/architecture.md): the relative path
/// `releases/<id>`, two plain components, the id not hidden. Anything else
/// (an absolute path, `..`, a deeper path) was not written by kiln and is
/// never followed.
pub(crate) fn release_id_of(target: &Path) -> Option<&str> {
    let mut parts = target.components();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(std::path::Component::Normal(dir)), Some(std::path::Component::Normal(id)), None)
            if dir == "releases" =>
        {
            id.to_str().filter(|id| !id.starts_with('.'))
        }
        _ => None,
    }
}

/// Where pages are regenerated: `<out>/current` when a release layout
/// exists, `<out>` otherwise.
pub(crate) fn live_root(out: &Path) -> PathBuf {
    let current = out.join("current");
    if fs::symlink_metadata(&current).is_ok_and(|m| m.file_type().is_symlink()) {
        current
    } else {
        out.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_ids_read_as_times_and_sort_as_times() {
        let id = id_of_micros(1_796_134_063_369_041);
        assert_eq!(id, "20261201T140743.369041Z");
        assert_eq!(micros_of_id(&id), Some(1_796_134_063_369_041));
        assert_eq!(
            micros_of_id("1796134063369041"),
            Some(1_796_134_063_369_041),
            "the old form"
        );
        assert!(
            id.as_str() > "1796134063369041",
            "new ids sort after old ones"
        );
        assert!(id_of_micros(1_796_134_063_369_042) > id);
        assert_eq!(micros_of_id("nonsense"), None);
    }

    #[test]
    fn switch_prune_rollback() {
        let dir = tempfile::tempdir().unwrap();
        let r = Releases::new(dir.path());
        let mut ids = Vec::new();
        for n in 0..4 {
            let (id, path) = r.begin().unwrap();
            fs::write(path.join("index.html"), format!("v{n}")).unwrap();
            r.switch(&id).unwrap();
            ids.push(id);
        }
        assert_eq!(
            fs::read_to_string(r.current_link().join("index.html")).unwrap(),
            "v3"
        );
        assert_eq!(r.prune(2).unwrap(), 2);
        assert_eq!(r.list(), ids[2..].to_vec());
        assert_eq!(r.rollback().unwrap(), ids[2]);
        assert_eq!(
            fs::read_to_string(r.current_link().join("index.html")).unwrap(),
            "v2"
        );
        assert!(r.rollback().is_err());
        assert_eq!(live_root(dir.path()), dir.path().join("current"));
    }

    #[test]
    fn only_links_kiln_writes_name_a_release() {
        for (target, id) in [
            ("releases/123", Some("123")),
            ("/tmp/releases/123", None),
            ("/etc", None),
            ("releases/../x", None),
            ("../releases/1", None),
            ("releases/1/2", None),
            ("releases/.hidden", None),
            ("other/1", None),
            ("releases", None),
        ] {
            assert_eq!(release_id_of(Path::new(target)), id, "{target}");
        }
    }

    #[test]
    fn rollback_never_switches_onto_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let r = Releases::new(dir.path());
        let (id, _) = r.begin().unwrap();
        r.switch(&id).unwrap();
        // A planted release id that is a symlink to outside content.
        std::os::unix::fs::symlink(outside.path(), dir.path().join("releases/0")).unwrap();
        assert!(r.rollback().is_err());
        assert_eq!(r.live().as_deref(), Some(id.as_str()));
        // The whole `releases/` swapped for a symlink to a tree with ids.
        fs::create_dir_all(outside.path().join("0")).unwrap();
        fs::create_dir_all(outside.path().join(&id)).unwrap();
        fs::rename(dir.path().join("releases"), dir.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("releases")).unwrap();
        assert!(r.list().is_empty());
        assert!(r.rollback().is_err());
    }
}
