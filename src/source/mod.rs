//! Page sources: fetching from the origin and rendering from templates.

pub mod fetch;
pub mod render;
