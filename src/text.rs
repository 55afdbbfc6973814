//! Quoting untrusted text (a spool line, a stream entry, a link) in logs,
//! records and messages: bounded, with control characters escaped. One
//! owner, whichever stage quotes.

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
