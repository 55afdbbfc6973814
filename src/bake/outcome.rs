//! What became of one page, and why: the typed outcome every caller (the
//! scheduler, the fill, the summaries) decides from, never its text.

use std::sync::Arc;
use std::time::Duration;

use crate::source::fetch::FetchError;

/// Why a page failed; the last good file is kept. Typed, so callers decide
/// (retry or give up) from the error, not from its text.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum PageError {
    /// The origin could not be fetched (down, slow, 5xx, 429, too big...).
    #[error(transparent)]
    Fetch(Arc<FetchError>),
    /// The origin answered a status kiln cannot bake or remove for.
    #[error("{url} answered {status}")]
    Answered {
        /// Full URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// The origin answered a success with no body at all.
    #[error(
        "{url} answered {status} with an empty body; the last good file is kept (set `origin.allow-empty = true` if empty pages are real)"
    )]
    Empty {
        /// Full URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// The template did not render.
    #[error(transparent)]
    Render(Arc<crate::source::render::RenderError>),
    /// Writing or removing the file failed.
    #[error(transparent)]
    Write(Arc<crate::write::WriteError>),
    /// Refused, but the old file could not be removed.
    #[error("refused ({reason}), and its old file could not be removed")]
    StaleRefused {
        /// The refusal.
        reason: String,
        /// The removal error.
        #[source]
        source: Arc<crate::write::WriteError>,
    },
    /// The work for this page stopped on a bug (a panic); the last good
    /// file is kept and nothing else is affected.
    #[error(
        "internal error while regenerating this page ({0}); the last good file is kept (please report this)"
    )]
    Internal(String),
    /// The daemon's mass-delete guard kept the file.
    #[error(
        "{why}, but removing its file would make more than {limit} removals within {window} (`safety.max-delete-pages` / `safety.max-delete-percent`), so the mass-delete guard kept it; a wrong origin or a broken app looks like this. If the pages are really gone, run `kiln regen --allow-mass-delete failed`"
    )]
    RemovalHeld {
        /// What asked for the removal.
        why: String,
        /// The limit.
        limit: usize,
        /// The window, human readable.
        window: String,
    },
    /// The mass-change guard kept the file of a page that shrank.
    #[error(
        "the page shrank from {old} to {new} bytes, and more than {limit} pages shrank to a tenth or less within {window} (`safety.max-delete-pages` / `safety.max-delete-percent`), so the mass-change guard kept its file; a broken template or app looks like this. If the pages really are this small now, run `kiln regen --allow-mass-delete failed`"
    )]
    ShrinkHeld {
        /// The file's size before.
        old: u64,
        /// The new body's size.
        new: u64,
        /// The limit.
        limit: usize,
        /// The window, human readable.
        window: String,
    },
    /// The daemon retried until its policy gave up.
    #[error("{last} (gave up after {attempts} attempts)")]
    GaveUp {
        /// The last attempt's error.
        last: Box<PageError>,
        /// Attempts made.
        attempts: u32,
    },
}

impl PageError {
    /// Whether retrying may help, and after how long the origin asked.
    pub(crate) fn retry(&self) -> Retry {
        match self {
            PageError::Fetch(e) if e.is_transient() => Retry::Transient(e.retry_after()),
            // An app answering nothing is broken for now; so is a disk
            // that is full, read-only or failing: the page keeps its last
            // good file and is tried until it can be written.
            PageError::Empty { .. } => Retry::Transient(None),
            PageError::Write(e) | PageError::StaleRefused { source: e, .. }
                if e.is_local_outage() =>
            {
                Retry::Transient(None)
            }
            _ => Retry::No,
        }
    }

    /// Nothing answered at the origin's address.
    pub(crate) fn is_unreachable(&self) -> bool {
        match self {
            PageError::Fetch(e) => matches!(**e, FetchError::Connect { .. }),
            PageError::GaveUp { last, .. } => last.is_unreachable(),
            _ => false,
        }
    }

    /// `error: cause: cause`, for reports and the index.
    pub(crate) fn chain(&self) -> String {
        error_chain(self)
    }
}

impl PartialEq for PageError {
    fn eq(&self, other: &PageError) -> bool {
        self.chain() == other.chain()
    }
}

impl Eq for PageError {}

/// What happened to one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// New or changed content written.
    Written,
    /// Same content as on disk; nothing touched.
    Unchanged,
    /// Removed (origin 404/410, or `delete:`).
    Deleted,
    /// Refused by a privacy check; the reason.
    Refused(String),
    /// Failed; the last good file is kept.
    Failed(PageError),
    /// The URL redirects; where to.
    Redirected(String),
    /// Not bakeable by policy (e.g. a query string); why.
    Skipped(String),
}

impl Outcome {
    /// One word per outcome, for logs and metric labels.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Outcome::Written => "written",
            Outcome::Unchanged => "unchanged",
            Outcome::Deleted => "deleted",
            Outcome::Refused(_) => "refused",
            Outcome::Failed(_) => "failed",
            Outcome::Redirected(_) => "redirected",
            Outcome::Skipped(_) => "skipped",
        }
    }

    /// Whether the outcome is a failure worth retrying.
    pub(crate) fn retry(&self) -> Retry {
        match self {
            Outcome::Failed(e) => e.retry(),
            _ => Retry::No,
        }
    }
}

/// Whether a failure is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Retry {
    /// Permanent (or not a failure at all).
    #[default]
    No,
    /// Transient (origin down, slow, 5xx, 429): retry, after the origin's
    /// `Retry-After` when it sent one.
    Transient(Option<Duration>),
}

/// The result of baking one URL.
#[derive(Debug, Clone)]
pub(crate) struct PageResult {
    /// URL path asked for.
    pub(crate) url: String,
    /// URL path baked after redirects.
    pub(crate) final_path: Option<String>,
    /// What happened.
    pub(crate) outcome: Outcome,
    /// In-scope links (or sitemap entries) found in the page.
    pub(crate) links: Vec<String>,
    /// Redirect hops recorded on the way.
    pub(crate) hops: usize,
    /// The tags the stored page was recorded with.
    pub(crate) tags: Vec<String>,
}

impl PageResult {
    /// A result for `url` before anything happened.
    pub(crate) fn new(url: &str) -> PageResult {
        PageResult {
            url: url.to_string(),
            final_path: None,
            outcome: Outcome::Skipped(String::new()),
            links: Vec::new(),
            hops: 0,
            tags: Vec::new(),
        }
    }
}

/// `error: cause: cause`, for one-line reports.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        src = cause.source();
    }
    s
}
