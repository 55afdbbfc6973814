//! Intakes: everything that turns arrivals into [`crate::schedule::Request`]s.
//! The scheduler does not know which is which (docs/architecture.md, "From
//! an event to a file"). Each forgets what arrived only when its request's
//! reply says the work is done (guarantee 9).
//!
//! - [`spool`]: the durable spool directory and the journal behind the HTTP 202;
//! - [`http`]: the loopback API (and nginx's fill, [`crate::fill`]);
//! - [`redis`]: a Redis Streams consumer group (fan-out to every web host);
//! - [`watch`]: templates and data files in render mode;
//! - [`clock`]: `[[revalidate]]`, for pages no event names;
//! - [`status_page`]: the HTTP listener's read-only HTML status page.

pub(crate) mod clock;
pub(crate) mod http;
pub(crate) mod redis;
pub(crate) mod spool;
pub(crate) mod status_page;
pub(crate) mod watch;
