//! The link attributes of an HTML page, found in one pass by a small
//! tokenizer that follows the HTML tokenizer's rules wherever they decide what
//! is a tag: comments, bogus comments, raw-text elements (`script`, `style`,
//! `title`, `textarea`, ...), quoted attribute values, first-of-duplicate
//! attributes, foreign content (`svg`, `math`) with its CDATA sections and
//! integration points. It allocates only for the links it returns.
//!
//! It replaced lol_html here (a general streaming rewriter, which cost about a
//! sixth of a full crawl's CPU); the tests feed both thousands of generated
//! documents and require the same links. Unlike lol_html's raw attribute
//! values, the character references URLs use (`&amp;`, `&#38;`, ...) are
//! decoded, as a browser does.

use memchr::{memchr, memmem};

/// What a page links to.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Found {
    /// The first `<base href>`.
    pub(crate) base: Option<String>,
    /// Link targets as written (entities decoded), in document order.
    pub(crate) links: Vec<String>,
}

/// A tag whose content cannot be found in one buffer is kept whole for the
/// next chunk up to this size; a longer one is skipped (memory stays bounded).
const MAX_TAG: usize = 1 << 20;

/// The links of a whole document in memory.
pub(crate) fn scan(html: &[u8], assets: bool) -> Found {
    let mut s = Scanner::new(assets);
    s.feed(html, true);
    s.found
}

/// A resumable scan: [`Scanner::feed`] chunks of a document in order.
pub(crate) struct Scanner {
    assets: bool,
    state: State,
    /// The namespaces of open foreign-content elements (HTML at the bottom).
    ns: Vec<Ns>,
    /// Bytes of an unfinished construct carried to the next chunk.
    carry: Vec<u8>,
    pub(crate) found: Found,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    Html,
    Svg,
    Math,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Data,
    Comment,
    Bogus,
    Cdata,
    /// Raw text or RCDATA, ended by `</name`.
    RawText(&'static [u8]),
    /// A `<script>`'s text: ended by `</script` too, unless inside a
    /// `<!-- <script>` of the script (the spec's double-escaped state).
    Script(ScriptMode),
    /// `<plaintext>`: the rest is text.
    Plaintext,
    /// A tag longer than [`MAX_TAG`], skipped to its `>`.
    SkipTag,
}

/// Where a script's text is, by the HTML spec's script data states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScriptMode {
    /// Script data.
    Data,
    /// After `<!--` (escaped): `</script` ends it, `<script` nests.
    Escaped,
    /// After `<!-- … <script`: `</script` only leaves this state.
    DoubleEscaped,
}

/// What starts at a `<`.
enum Markup<'a> {
    /// Not markup: the `<` is text.
    Text,
    /// More bytes are needed to tell.
    Incomplete,
    /// A construct whose end is searched for in `state`; `len` bytes opened it.
    Enter(State, usize),
    /// A whole tag of `len` bytes.
    Tag(Tag<'a>, usize),
}

/// A parsed tag, with the attributes link discovery reads (first of each).
#[derive(Default)]
struct Tag<'a> {
    end: bool,
    self_closing: bool,
    /// The lowercased name (names longer than this buffer matter to no rule).
    name: [u8; 16],
    name_len: usize,
    href: Option<&'a [u8]>,
    src: Option<&'a [u8]>,
    srcset: Option<&'a [u8]>,
    rel: Option<&'a [u8]>,
    /// `<font color|size|face>` leaves foreign content.
    font_attr: bool,
}

impl Tag<'_> {
    fn name(&self) -> &[u8] {
        &self.name[..self.name_len.min(self.name.len())]
    }

    fn is(&self, names: &[&[u8]]) -> bool {
        self.name_len <= self.name.len() && names.contains(&self.name())
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

/// Start tags that end foreign content (HTML's "breakout" elements).
#[rustfmt::skip]
const BREAKOUT: &[&[u8]] = &[
    b"b", b"big", b"blockquote", b"body", b"br", b"center", b"code", b"dd", b"div", b"dl", b"dt",
    b"em", b"embed", b"h1", b"h2", b"h3", b"h4", b"h5", b"h6", b"head", b"hr", b"i", b"img",
    b"li", b"listing", b"menu", b"meta", b"nobr", b"ol", b"p", b"pre", b"ruby", b"s", b"small",
    b"span", b"strong", b"strike", b"sub", b"sup", b"table", b"tt", b"u", b"ul", b"var",
];
const SVG_HTML_POINTS: &[&[u8]] = &[b"desc", b"title", b"foreignobject"];
const MATH_TEXT_POINTS: &[&[u8]] = &[b"mi", b"mo", b"mn", b"ms", b"mtext"];

impl Scanner {
    pub(crate) fn new(assets: bool) -> Scanner {
        Scanner {
            assets,
            state: State::Data,
            ns: vec![Ns::Html],
            carry: Vec::new(),
            found: Found::default(),
        }
    }

    /// Scans the next chunk; `eof` on the last one.
    pub(crate) fn feed(&mut self, chunk: &[u8], eof: bool) {
        if self.carry.is_empty() {
            let used = self.scan(chunk, eof);
            self.carry.extend_from_slice(&chunk[used..]);
        } else {
            let mut buf = std::mem::take(&mut self.carry);
            buf.extend_from_slice(chunk);
            let used = self.scan(&buf, eof);
            buf.drain(..used);
            self.carry = buf;
        }
    }

    fn current_ns(&self) -> Ns {
        *self.ns.last().unwrap_or(&Ns::Html)
    }

    /// Scans `buf` from the current state; returns how many bytes are done
    /// with (the rest is carried to the next chunk).
    fn scan(&mut self, buf: &[u8], eof: bool) -> usize {
        let mut pos = 0;
        loop {
            match self.state {
                State::Data => {
                    let Some(i) = memchr(b'<', &buf[pos..]) else {
                        return buf.len();
                    };
                    let at = pos + i;
                    match self.markup(&buf[at..], eof) {
                        Markup::Text => pos = at + 1,
                        Markup::Incomplete if eof => return buf.len(),
                        Markup::Incomplete if buf.len() - at > MAX_TAG => {
                            self.state = State::SkipTag;
                            pos = at + 1;
                        }
                        Markup::Incomplete => return at,
                        Markup::Enter(state, len) => {
                            self.state = state;
                            pos = at + len;
                        }
                        Markup::Tag(tag, len) => {
                            pos = at + len;
                            self.tag(&tag);
                        }
                    }
                }
                State::Comment => {
                    // Ends at `-->` or `--!>`.
                    let mut from = pos;
                    let end = loop {
                        match memchr(b'>', &buf[from..]) {
                            Some(i) => {
                                let gt = from + i;
                                let before = &buf[pos..gt];
                                if before.ends_with(b"--") || before.ends_with(b"--!") {
                                    break Some(gt + 1);
                                }
                                from = gt + 1;
                            }
                            None => break None,
                        }
                    };
                    match end {
                        Some(e) => {
                            self.state = State::Data;
                            pos = e;
                        }
                        None => return keep_tail(buf, pos, 3, eof),
                    }
                }
                State::Bogus | State::SkipTag => match memchr(b'>', &buf[pos..]) {
                    Some(i) => {
                        self.state = State::Data;
                        pos += i + 1;
                    }
                    None => return buf.len(),
                },
                State::Cdata => match memmem::find(&buf[pos..], b"]]>") {
                    Some(i) => {
                        self.state = State::Data;
                        pos += i + 3;
                    }
                    None => return keep_tail(buf, pos, 2, eof),
                },
                State::RawText(name) => match raw_text_end(&buf[pos..], name, eof) {
                    RawEnd::At(i) => {
                        self.state = State::Data;
                        pos += i;
                    }
                    RawEnd::Incomplete(i) => return pos + i,
                    RawEnd::None => return keep_tail(buf, pos, name.len() + 2, eof),
                },
                State::Script(mut mode) => {
                    let end = script_end(&buf[pos..], &mut mode, eof);
                    self.state = State::Script(mode);
                    match end {
                        ScriptEnd::At(i) => {
                            self.state = State::Data;
                            pos += i;
                        }
                        ScriptEnd::Consumed(n) => return pos + n,
                    }
                }
                State::Plaintext => return buf.len(),
            }
        }
    }

    /// Classifies what starts at `b[0] == '<'`.
    fn markup<'a>(&self, b: &'a [u8], eof: bool) -> Markup<'a> {
        let need = |n: usize| b.len() < n && !eof;
        let Some(&c) = b.get(1) else {
            return if eof {
                Markup::Text
            } else {
                Markup::Incomplete
            };
        };
        match c {
            b'!' => {
                if b[1..].len() < 3 && b"!--".starts_with(&b[1..]) && !eof {
                    return Markup::Incomplete;
                }
                if b.starts_with(b"<!--") {
                    // `<!-->` and `<!--->` are whole (empty) comments.
                    if need(6) {
                        return Markup::Incomplete;
                    }
                    if b.get(4) == Some(&b'>') {
                        return Markup::Enter(State::Data, 5);
                    }
                    if b.get(4) == Some(&b'-') && b.get(5) == Some(&b'>') {
                        return Markup::Enter(State::Data, 6);
                    }
                    return Markup::Enter(State::Comment, 4);
                }
                if self.current_ns() != Ns::Html {
                    if b.len() < 9 && b"<![CDATA[".starts_with(b) && !eof {
                        return Markup::Incomplete;
                    }
                    if b.starts_with(b"<![CDATA[") {
                        return Markup::Enter(State::Cdata, 9);
                    }
                }
                Markup::Enter(State::Bogus, 2)
            }
            b'?' => Markup::Enter(State::Bogus, 2),
            b'/' => match b.get(2) {
                None if eof => Markup::Text,
                None => Markup::Incomplete,
                Some(b'>') => Markup::Enter(State::Data, 3),
                Some(c) if c.is_ascii_alphabetic() => parse_tag(b, 2, true, eof),
                Some(_) => Markup::Enter(State::Bogus, 2),
            },
            c if c.is_ascii_alphabetic() => parse_tag(b, 1, false, eof),
            _ => Markup::Text,
        }
    }

    /// Applies a tag: its links, and how it changes what follows
    /// (raw text, foreign content), as an HTML tree builder would.
    fn tag(&mut self, t: &Tag<'_>) {
        if t.end {
            self.end_tag(t);
            return;
        }
        self.links_of(t);
        if t.is(&[b"svg"]) {
            self.ns.push(Ns::Svg);
            return;
        }
        if t.is(&[b"math"]) {
            self.ns.push(Ns::Math);
            return;
        }
        match self.current_ns() {
            Ns::Html => {
                self.state = match t.name() {
                    b"textarea" => State::RawText(b"textarea"),
                    b"title" => State::RawText(b"title"),
                    b"plaintext" => State::Plaintext,
                    b"script" => State::Script(ScriptMode::Data),
                    b"style" => State::RawText(b"style"),
                    b"iframe" => State::RawText(b"iframe"),
                    b"xmp" => State::RawText(b"xmp"),
                    b"noembed" => State::RawText(b"noembed"),
                    b"noframes" => State::RawText(b"noframes"),
                    b"noscript" => State::RawText(b"noscript"),
                    _ => State::Data,
                };
                if t.name_len > t.name.len() {
                    self.state = State::Data;
                }
            }
            ns => {
                if t.is(BREAKOUT) || (t.is(&[b"font"]) && t.font_attr) {
                    self.leave();
                } else if !t.self_closing
                    && ((ns == Ns::Svg && t.is(SVG_HTML_POINTS))
                        || (ns == Ns::Math && t.is(MATH_TEXT_POINTS)))
                {
                    self.ns.push(Ns::Html);
                }
            }
        }
    }

    fn end_tag(&mut self, t: &Tag<'_>) {
        match self.current_ns() {
            Ns::Html => {
                let prev = self.ns.len().checked_sub(2).map(|i| self.ns[i]);
                if (prev == Some(Ns::Math) && t.is(MATH_TEXT_POINTS))
                    || (prev == Some(Ns::Svg) && t.is(SVG_HTML_POINTS))
                {
                    self.leave();
                }
            }
            ns => {
                if (ns == Ns::Svg && t.is(&[b"svg"]))
                    || (ns == Ns::Math && t.is(&[b"math"]))
                    || t.is(&[b"p", b"br"])
                {
                    self.leave();
                }
            }
        }
    }

    fn leave(&mut self) {
        if self.ns.len() > 1 {
            self.ns.pop();
        }
    }

    fn links_of(&mut self, t: &Tag<'_>) {
        let push = |links: &mut Vec<String>, v: &[u8]| links.push(decode(v));
        let links = &mut self.found.links;
        if t.is(&[b"base"]) {
            if let (None, Some(h)) = (&self.found.base, t.href) {
                self.found.base = Some(decode(h));
            }
        } else if t.is(&[b"a", b"area"]) {
            if let Some(h) = t.href {
                push(links, h);
            }
        } else if t.is(&[b"link"]) {
            if let Some(h) = t.href {
                let rel = t.rel.map(decode).unwrap_or_default().to_ascii_lowercase();
                let is_page = rel
                    .split_whitespace()
                    .any(|r| r == "alternate" || r == "next" || r == "prev");
                if is_page || self.assets {
                    push(links, h);
                }
            }
        }
        if !self.assets {
            return;
        }
        if t.is(&[b"script", b"img", b"source", b"video", b"audio"]) {
            if let Some(s) = t.src {
                push(links, s);
            }
        }
        if t.is(&[b"img", b"source"]) {
            if let Some(set) = t.srcset {
                for candidate in decode(set).split(',') {
                    if let Some(u) = candidate.split_whitespace().next() {
                        links.push(u.to_string());
                    }
                }
            }
        }
    }
}

/// Consumes `buf` up to all but its last `keep` bytes (from `pos`): a
/// terminator may begin there and end in the next chunk.
fn keep_tail(buf: &[u8], pos: usize, keep: usize, eof: bool) -> usize {
    if eof {
        buf.len()
    } else {
        buf.len().saturating_sub(keep).max(pos)
    }
}

enum RawEnd {
    /// The end tag starts here.
    At(usize),
    /// A possible end tag starts here but the chunk ends first.
    Incomplete(usize),
    None,
}

/// Where a script's text ends in a chunk.
enum ScriptEnd {
    /// Its end tag starts here.
    At(usize),
    /// The first `n` bytes are script text (`mode` updated for them); the
    /// rest may start a sequence the next chunk completes.
    Consumed(usize),
}

/// Scans script text from `mode` for its end tag: `</script` followed by
/// a space, `/` or `>`, except in the double-escaped state, which
/// `<!-- <script>` enters and `</script` or `-->` leaves (as browsers and
/// lol_html read it).
fn script_end(b: &[u8], mode: &mut ScriptMode, eof: bool) -> ScriptEnd {
    /// `pattern` (ASCII case-insensitive) then a space, `/` or `>`:
    /// `Some(true)`; the chunk ends first: `None`; else `Some(false)`.
    fn tag_at(b: &[u8], pattern: &[u8], eof: bool) -> Option<bool> {
        let n = b.len().min(pattern.len());
        if !b[..n].eq_ignore_ascii_case(&pattern[..n]) {
            return Some(false);
        }
        match b.get(pattern.len()) {
            Some(&c) => Some(is_space(c) || c == b'/' || c == b'>'),
            None if eof => Some(false),
            None => None,
        }
    }
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        match rest[0] {
            b'<' => {
                let end = tag_at(rest, b"</script", eof);
                let open = tag_at(rest, b"<script", eof);
                let comment = rest.len() < 4 && !eof && b"<!--".starts_with(rest);
                if end.is_none() || open.is_none() || comment {
                    return ScriptEnd::Consumed(i);
                }
                match *mode {
                    ScriptMode::Data | ScriptMode::Escaped if end == Some(true) => {
                        return ScriptEnd::At(i);
                    }
                    ScriptMode::DoubleEscaped if end == Some(true) => {
                        *mode = ScriptMode::Escaped;
                        i += 8;
                    }
                    ScriptMode::Escaped if open == Some(true) => {
                        *mode = ScriptMode::DoubleEscaped;
                        i += 7;
                    }
                    // Past `<!` only: its `--` may close at once (`<!-->`).
                    ScriptMode::Data if rest.starts_with(b"<!--") => {
                        *mode = ScriptMode::Escaped;
                        i += 2;
                    }
                    _ => i += 1,
                }
            }
            b'-' if *mode != ScriptMode::Data => {
                if rest.len() < 3 && !eof && b"-->".starts_with(rest) {
                    return ScriptEnd::Consumed(i);
                }
                if rest.starts_with(b"-->") {
                    *mode = ScriptMode::Data;
                    i += 3;
                } else {
                    i += 1;
                }
            }
            _ => {
                // Nothing before the next `<` (or `-`) matters.
                let skip = if *mode == ScriptMode::Data {
                    memchr(b'<', rest)
                } else {
                    memchr::memchr2(b'<', b'-', rest)
                };
                match skip {
                    Some(n) => i += n,
                    None => return ScriptEnd::Consumed(b.len()),
                }
            }
        }
    }
    ScriptEnd::Consumed(b.len())
}

/// Finds `</name` followed by a space, `/` or `>` (ASCII case-insensitive).
fn raw_text_end(b: &[u8], name: &[u8], eof: bool) -> RawEnd {
    let mut from = 0;
    while let Some(i) = memmem::find(&b[from..], b"</") {
        let at = from + i;
        let rest = &b[at + 2..];
        if rest.len() <= name.len() {
            let n = rest.len().min(name.len());
            if !eof && rest[..n].eq_ignore_ascii_case(&name[..n]) {
                return RawEnd::Incomplete(at);
            }
            return RawEnd::None;
        }
        if rest[..name.len()].eq_ignore_ascii_case(name) {
            let next = rest[name.len()];
            if is_space(next) || next == b'/' || next == b'>' {
                return RawEnd::At(at);
            }
        }
        from = at + 2;
    }
    RawEnd::None
}

/// Parses a start or end tag whose name begins at `b[start]` (a letter).
fn parse_tag(b: &[u8], start: usize, end: bool, eof: bool) -> Markup<'_> {
    let mut t = Tag {
        end,
        ..Tag::default()
    };
    let mut i = start;
    while i < b.len() && !is_space(b[i]) && b[i] != b'/' && b[i] != b'>' {
        if t.name_len < t.name.len() {
            t.name[t.name_len] = b[i].to_ascii_lowercase();
        }
        t.name_len += 1;
        i += 1;
    }
    // Attributes (an end tag's are parsed too: they decide where it ends).
    let mut seen: [bool; 4] = [false; 4];
    loop {
        while i < b.len() && (is_space(b[i]) || b[i] == b'/') {
            t.self_closing = b[i] == b'/' && b.get(i + 1) == Some(&b'>');
            i += 1;
        }
        let Some(&c) = b.get(i) else {
            return incomplete(eof);
        };
        if c == b'>' {
            return Markup::Tag(t, i + 1);
        }
        // The name; a leading `=` belongs to it.
        let name_start = i;
        i += 1;
        while i < b.len() && !is_space(b[i]) && !matches!(b[i], b'/' | b'>' | b'=') {
            i += 1;
        }
        let name = &b[name_start..i];
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        let mut value: &[u8] = b"";
        if b.get(i) == Some(&b'=') {
            i += 1;
            while i < b.len() && is_space(b[i]) {
                i += 1;
            }
            match b.get(i) {
                None => return incomplete(eof),
                Some(&q @ (b'"' | b'\'')) => match memchr(q, &b[i + 1..]) {
                    Some(n) => {
                        value = &b[i + 1..i + 1 + n];
                        i += n + 2;
                    }
                    None => return incomplete(eof),
                },
                Some(b'>') => {}
                Some(_) => {
                    let s = i;
                    while i < b.len() && !is_space(b[i]) && b[i] != b'>' {
                        i += 1;
                    }
                    value = &b[s..i];
                }
            }
        } else if i >= b.len() {
            return incomplete(eof);
        }
        let slot = [&b"href"[..], b"src", b"srcset", b"rel"]
            .iter()
            .position(|n| name.eq_ignore_ascii_case(n));
        if let Some(k) = slot {
            // Duplicates are dropped: the first one counts.
            if !seen[k] {
                seen[k] = true;
                match k {
                    0 => t.href = Some(value),
                    1 => t.src = Some(value),
                    2 => t.srcset = Some(value),
                    _ => t.rel = Some(value),
                }
            }
        }
        if [&b"color"[..], b"size", b"face"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
        {
            t.font_attr = true;
        }
    }
}

fn incomplete(eof: bool) -> Markup<'static> {
    if eof {
        // A tag cut by the end of the document is dropped.
        Markup::Enter(State::Plaintext, 0)
    } else {
        Markup::Incomplete
    }
}

/// An attribute value as a browser reads it: the character references that
/// occur in URLs decoded (named ones need their `;`, as in attributes).
fn decode(v: &[u8]) -> String {
    let s = String::from_utf8_lossy(v);
    if !s.contains('&') {
        return s.into_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest: &str = &s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let (ch, len) = reference(rest).unwrap_or(('&', 1));
        out.push(ch);
        rest = &rest[len..];
    }
    out.push_str(rest);
    out
}

/// The character a reference at the start of `s` (`&...`) stands for, and
/// its length.
fn reference(s: &str) -> Option<(char, usize)> {
    const NAMED: &[(&str, char)] = &[
        ("&amp;", '&'),
        ("&AMP;", '&'),
        ("&lt;", '<'),
        ("&LT;", '<'),
        ("&gt;", '>'),
        ("&GT;", '>'),
        ("&quot;", '"'),
        ("&QUOT;", '"'),
        ("&apos;", '\''),
        ("&nbsp;", '\u{a0}'),
    ];
    if let Some((name, ch)) = NAMED.iter().find(|(name, _)| s.starts_with(name)) {
        return Some((*ch, name.len()));
    }
    let body = s.strip_prefix("&#")?;
    let (digits, radix, skip) = match body.as_bytes().first() {
        Some(b'x' | b'X') => (&body[1..], 16, 3),
        _ => (body, 10, 2),
    };
    let n = digits
        .bytes()
        .take_while(|b| (*b as char).is_digit(radix))
        .count();
    if n == 0 || n > 8 {
        return None;
    }
    let code = u32::from_str_radix(&digits[..n], radix).ok()?;
    let semi = usize::from(digits.as_bytes().get(n) == Some(&b';'));
    let ch = match code {
        0 => '\u{fffd}',
        c => char::from_u32(c).unwrap_or('\u{fffd}'),
    };
    Some((ch, skip + n + semi))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(html: &str) -> Vec<String> {
        scan(html.as_bytes(), true).links
    }

    #[test]
    fn tags_in_comments_scripts_and_quotes_are_not_links() {
        let cases: &[(&str, &[&str])] = &[
            (r#"<a href="/a/">x</a>"#, &["/a/"]),
            (r#"<A HREF='/a/'>"#, &["/a/"]),
            (r#"<a href=/a/ class=x>"#, &["/a/"]),
            (r#"<a title="x>y" href="/a/">"#, &["/a/"]),
            (r#"<a href="/a/" href="/b/">"#, &["/a/"]),
            (r#"<!-- <a href="/no/"> --><a href="/yes/">"#, &["/yes/"]),
            (r#"<!--><a href="/yes/">"#, &["/yes/"]),
            (r#"<!-- x --!><a href="/yes/">"#, &["/yes/"]),
            (
                r#"<script>var s = '<a href="/no/">';</script><a href="/yes/">"#,
                &["/yes/"],
            ),
            (r#"<script src="/app.js"></script>"#, &["/app.js"]),
            // `<!-- <script>` inside a script: its `</script>` does not end
            // the outer one (the spec's double-escaped state); `-->` leaves.
            (
                r#"<script><!--<script></script><a href="/no/"></script><a href="/yes/">"#,
                &["/yes/"],
            ),
            (
                r#"<script><!-- x --><script></script><a href="/yes/">"#,
                &["/yes/"],
            ),
            (r#"<script><!--></script><a href="/yes/">"#, &["/yes/"]),
            (r#"<style>a[href="/no/"]{}</style>"#, &[]),
            (
                r#"<title><a href="/no/"></title><a href=/yes/>"#,
                &["/yes/"],
            ),
            (
                r#"<textarea></textareax><a href=/no/></TEXTAREA ><a href=/yes/>"#,
                &["/yes/"],
            ),
            (
                r#"<!DOCTYPE html><?php echo 1 ?><a href=/yes/>"#,
                &["/yes/"],
            ),
            (r#"</a href=">"><a href=/yes/>"#, &["/yes/"]),
            (
                r#"<svg><![CDATA[<a href="/no/">]]><a href="/svg/"></svg>"#,
                &["/svg/"],
            ),
            (r#"<![CDATA[<a href="/no/">]]><a href=/yes/>"#, &["/yes/"]),
            (
                r#"<a href="/q?a=1&amp;b=2&#38;c=&#x26;">"#,
                &["/q?a=1&b=2&c=&"],
            ),
            (r#"<a href="/q?a=1&copy=2">"#, &["/q?a=1&copy=2"]),
            (
                r#"<img src="/i.png" srcset="/i2.png 2x, /i3.png 3x">"#,
                &["/i.png", "/i2.png", "/i3.png"],
            ),
            (r#"<link rel="stylesheet" href="/s.css">"#, &["/s.css"]),
            (r#"<a href="/cut/""#, &[]),
            (r#"<plaintext><a href=/no/>"#, &[]),
            (r#"<style href=></style ><a href=/yes/>"#, &["/yes/"]),
            (r#"<style href=><a href=/no/>"#, &[]),
        ];
        for (html, want) in cases {
            assert_eq!(links(html), *want, "{html}");
        }
        let pages = scan(
            br#"<link rel="Next" href="/2/"><link rel=icon href=/f.ico>"#,
            false,
        );
        assert_eq!(pages.links, vec!["/2/"]);
        let based = scan(br#"<base href="/b/"><base href="/c/"><a href=x>"#, false);
        assert_eq!(based.base.as_deref(), Some("/b/"));
    }

    #[test]
    fn any_chunking_finds_the_same_links() {
        let html =
            br#"<!doctype html><html><head><title>A <b> title</title><script>if (a</b) {}</script>
            <link rel=alternate href="/feed.xml"><!-- <a href="/no/"> --></head><body>
            <a href="/a/?x=1&amp;y=2">A</a><svg><a href="/s/"/><![CDATA[ <a href="/no/"> ]]></svg>
            <textarea><a href="/no/"></textarea><a title='>' href=/b/>B</a></body></html>"#;
        let whole = scan(html, true);
        assert_eq!(
            whole.links,
            vec!["/feed.xml", "/a/?x=1&y=2", "/s/", "/b/"],
            "{whole:?}"
        );
        for size in 1..40 {
            let mut s = Scanner::new(true);
            let chunks: Vec<&[u8]> = html.chunks(size).collect();
            for (i, c) in chunks.iter().enumerate() {
                s.feed(c, i + 1 == chunks.len());
            }
            assert_eq!(s.found, whole, "chunks of {size}");
        }
    }

    #[test]
    fn memory_stays_bounded_for_unending_constructs() {
        for opener in [&b"<!--"[..], b"<script>", b"<a href=\"", b"<svg><![CDATA["] {
            let mut s = Scanner::new(true);
            s.feed(opener, false);
            let junk = vec![b'x'; 64 << 10];
            for _ in 0..40 {
                s.feed(&junk, false);
            }
            assert!(s.carry.len() <= MAX_TAG + junk.len(), "{}", s.carry.len());
            s.feed(b"><a href=/after/>", true);
        }
    }

    pub(crate) mod against_lol_html {
        //! Differential test: on generated documents the scanner finds what
        //! lol_html (a full HTML5 tokenizer) finds.
        use super::*;
        use proptest::prelude::*;
        use std::cell::RefCell;

        pub(crate) fn lol(html: &[u8], assets: bool) -> Found {
            use lol_html::{HtmlRewriter, Settings, element};
            let links = RefCell::new(Vec::new());
            let base = RefCell::new(None);
            let push = |v: Option<String>| {
                if let Some(v) = v {
                    links.borrow_mut().push(decode(v.as_bytes()));
                }
            };
            let mut handlers = vec![
                element!("base[href]", |el| {
                    base.borrow_mut().get_or_insert(decode(
                        el.get_attribute("href").unwrap_or_default().as_bytes(),
                    ));
                    Ok(())
                }),
                element!("a[href], area[href]", |el| {
                    push(el.get_attribute("href"));
                    Ok(())
                }),
                element!("link[href]", |el| {
                    let rel = el
                        .get_attribute("rel")
                        .unwrap_or_default()
                        .to_ascii_lowercase();
                    let page = rel
                        .split_whitespace()
                        .any(|r| r == "alternate" || r == "next" || r == "prev");
                    if page || assets {
                        push(el.get_attribute("href"));
                    }
                    Ok(())
                }),
            ];
            if assets {
                handlers.push(element!(
                    "script[src], img[src], source[src], video[src], audio[src]",
                    |el| {
                        push(el.get_attribute("src"));
                        Ok(())
                    }
                ));
                handlers.push(element!("img[srcset], source[srcset]", |el| {
                    if let Some(set) = el.get_attribute("srcset") {
                        for c in decode(set.as_bytes()).split(',') {
                            if let Some(u) = c.split_whitespace().next() {
                                links.borrow_mut().push(u.to_string());
                            }
                        }
                    }
                    Ok(())
                }));
            }
            let mut rw = HtmlRewriter::new(
                Settings {
                    element_content_handlers: handlers,
                    ..Settings::new()
                },
                |_: &[u8]| {},
            );
            let _ = rw.write(html);
            let _ = rw.end();
            Found {
                base: base.into_inner(),
                links: links.into_inner(),
            }
        }

        fn piece() -> impl Strategy<Value = String> {
            let name = prop::sample::select(vec![
                "a",
                "A",
                "area",
                "link",
                "base",
                "img",
                "script",
                "style",
                "title",
                "textarea",
                "noscript",
                "iframe",
                "div",
                "p",
                "svg",
                "math",
                "source",
                "video",
                "font",
                "desc",
                "foreignObject",
                "mi",
                "b",
                "xmp",
                "span",
            ]);
            let attr_name = prop::sample::select(vec![
                "href", "HREF", "src", "srcset", "rel", "class", "title", "color", "=x", "data-x",
            ]);
            let value = prop::sample::select(vec![
                "/a/",
                "/b/?q=1&amp;r=2",
                "x>y",
                "a b",
                "alternate",
                "next icon",
                "/i.png 2x, /j.png",
                "",
                "'",
                "\"",
                "/c/#f",
            ]);
            let attr = (attr_name, value, 0..4u8).prop_map(|(n, v, q)| match q {
                0 => format!(" {n}=\"{}\"", v.replace('"', "")),
                1 => format!(" {n}='{}'", v.replace('\'', "")),
                // Never `name=>`: lol_html does not switch to raw text after
                // such a tag (`<style href=>`), where the HTML spec and
                // browsers do, as the scanner does (a unit test above).
                2 => format!(
                    " {n}={}",
                    Some(v.replace([' ', '>', '"', '\'', '='], ""))
                        .filter(|v| !v.is_empty())
                        .unwrap_or_else(|| "v".into())
                ),
                _ => format!(" {n}"),
            });
            let tag = (
                name.clone(),
                prop::collection::vec(attr, 0..4),
                any::<bool>(),
            )
                .prop_map(|(n, attrs, selfclose)| {
                    format!(
                        "<{n}{}{}>",
                        attrs.concat(),
                        if selfclose { "/" } else { "" }
                    )
                });
            let end = name.prop_map(|n| format!("</{n}>"));
            let other = prop::sample::select(vec![
                "<!-- c -->",
                "<!-->",
                "<!--->",
                "<!-- <a href=/in-comment/> -->",
                "<!doctype html>",
                "<?x y?>",
                "<![CDATA[ <a href=/cdata/> ]]>",
                "text",
                " < ",
                "a < b > c",
                "</>",
                "</ x>",
                "&amp;",
                "-->",
                "</script >",
                "</style>",
                "</title>",
                "<a href=/t/>",
                "<!--",
                "--!>",
                "<!-- x > <a href=/gt-in-comment/> -->",
                "<![CDATA[ x > <a href=/gt/> ]]>",
                "]]>",
                "<!x > <a href=/after-bogus/>",
                "</SCRIPT>",
                "</textarea/>",
                "</noscript\t>",
                "if (a > b) { <a href=/js/> }",
                "<a href='/q/' title=\"'\">",
                "<a\nhref\n=\n/nl/>",
            ]);
            prop_oneof![3 => tag, 2 => end, 2 => other.prop_map(str::to_string)]
        }

        /// The project's own templates and examples (real markup with
        /// scripts, forms, comments and template syntax): the same links.
        #[test]
        fn same_links_as_lol_html_on_the_repository_templates() {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
            let mut checked = 0;
            for dir in ["templates", "examples", "integrations"] {
                for entry in walkdir::WalkDir::new(root.join(dir))
                    .into_iter()
                    .filter_map(Result::ok)
                {
                    if entry.path().extension().is_some_and(|e| e == "html") {
                        let html = std::fs::read(entry.path()).unwrap();
                        for assets in [false, true] {
                            assert_eq!(
                                scan(&html, assets),
                                lol(&html, assets),
                                "{}",
                                entry.path().display()
                            );
                        }
                        checked += 1;
                    }
                }
            }
            assert!(checked >= 15, "only {checked} templates found");
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4000))]
            #[test]
            fn same_links_as_lol_html(pieces in prop::collection::vec(piece(), 0..24), assets in any::<bool>(), chunk in 1..48usize) {
                let html = pieces.concat();
                let whole = scan(html.as_bytes(), assets);
                prop_assert_eq!(&whole, &lol(html.as_bytes(), assets), "{}", html);
                // Fed in chunks (a large page is streamed), the same.
                let mut s = Scanner::new(assets);
                for c in html.as_bytes().chunks(chunk) {
                    s.feed(c, false);
                }
                s.feed(&[], true);
                prop_assert_eq!(&s.found, &whole, "chunks of {}: {}", chunk, html);
            }
        }
    }
}
