//! Page sources: fetching from the origin and rendering from templates.

pub(crate) mod diagnostic;
pub(crate) mod fetch;
pub(crate) mod highlight;
pub(crate) mod render;
