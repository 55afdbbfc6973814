//! Page sources: fetching from the origin and rendering from templates.

pub(crate) mod diagnostic;
pub(crate) mod fetch;
pub(crate) mod highlight;
pub(crate) mod render;

use fetch::Validators;

/// What kiln records about a page's body beside its bytes, read once from
/// the response (or the route) that produced it.
#[derive(Debug, Clone, Default)]
pub(crate) struct PageMeta {
    /// Maps to `index.html` and has links.
    pub(crate) is_html: bool,
    /// The origin's (or the route's) `Content-Type`.
    pub(crate) content_type: Option<String>,
    /// The origin's `ETag` / `Last-Modified`, for the next conditional fetch.
    pub(crate) validators: Option<Validators>,
    /// The status it came with.
    pub(crate) status: Option<u16>,
    /// The origin's shared-cache lifetime (seconds).
    pub(crate) max_age: Option<u32>,
    /// Its dependency tags (the origin's tags header, or the route's).
    pub(crate) tags: Vec<String>,
}
