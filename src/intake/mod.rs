//! Intakes: everything that turns arrivals into [`crate::schedule::Request`]s.
//! The scheduler does not know which is which (docs/architecture.md, "From
//! an event to a file"). Each forgets what arrived only when its request's
//! reply says the work is done (guarantee 9).
//!
//! - [`spool`]: the durable spool directory and the journal behind the HTTP 202;
//! - [`http`]: the loopback API (and nginx's fill, [`crate::fill`]);
//! - [`redis`]: a Redis Streams consumer group (fan-out to every web host);
//! - [`watch`]: templates and data files in render mode;
//! - [`clock`]: `[[revalidate]]`, for pages no event names.

pub(crate) mod clock;
pub(crate) mod http;
pub(crate) mod redis;
pub(crate) mod spool;
pub(crate) mod watch;

/// At most `max` characters quoting `s`, marked when cut, with control
/// characters escaped (`\u{1b}`): a record or log line quoting hostile
/// input can never drive the terminal that shows it, and an escaped byte
/// counts at its escaped length, so the bound holds whatever the input.
pub(crate) fn excerpt(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max * 4) + 8);
    let mut shown = 0;
    for c in s.chars() {
        let escaped: Option<std::char::EscapeDefault> = c.is_control().then(|| c.escape_default());
        let len = escaped.clone().map_or(1, Iterator::count);
        if shown + len > max {
            out.push_str("… (cut)");
            return out;
        }
        match escaped {
            Some(e) => out.extend(e),
            None => out.push(c),
        }
        shown += len;
    }
    out
}
