//! One bake of a URL at a time: per-URL async locks, kept only while
//! someone holds or waits for one.

use std::sync::{Arc, Mutex};

/// Per-URL async locks.
#[derive(Default)]
pub(super) struct PathLocks(Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

/// Held while a URL is baked; the entry goes when nobody else waits.
pub(super) struct PathGuard<'a> {
    locks: &'a PathLocks,
    path: String,
    lock: Arc<tokio::sync::Mutex<()>>,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl PathLocks {
    /// Waits for `path`'s lock and holds it until the guard drops.
    pub(super) async fn lock(&self, path: &str) -> PathGuard<'_> {
        let lock = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(path.to_string()).or_default().clone()
        };
        let held = Some(lock.clone().lock_owned().await);
        PathGuard {
            locks: self,
            path: path.to_string(),
            lock,
            held,
        }
    }
}

impl Drop for PathGuard<'_> {
    fn drop(&mut self) {
        self.held.take();
        let mut map = self.locks.0.lock().unwrap_or_else(|e| e.into_inner());
        // The map's handle and ours: nobody else holds or waits.
        if Arc::strong_count(&self.lock) == 2 {
            map.remove(&self.path);
        }
    }
}
