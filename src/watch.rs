//! Render mode: watch `templates/` and data directories, debounced, and
//! regenerate only the pages that depend on what changed.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::bake::Baker;
use crate::config::Config;
use crate::schedule::Submitter;

/// The watcher task.
pub async fn worker(
    _cfg: Arc<Config>,
    _baker: Arc<Baker>,
    _submit: Submitter,
    shutdown: CancellationToken,
) {
    shutdown.cancelled().await;
}
