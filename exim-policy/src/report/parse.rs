//! One main-log line in, one event out: no allocation, no regex, and only the fields the report
//! needs are looked at.
//!
//! A line is `STAMP [PID] [MSGID] TEXT` (see `reference/exim.md` §1.4). Fields are separated by
//! single spaces, but a value may itself contain spaces: Exim writes a subject as a C-like
//! string (`T="a \"quoted\" U=x"`: `"` and `\` escaped with a backslash), quoted local parts keep
//! their quotes (`"a U=b"@example.com`), and the HELO name sits in parentheses after `H=`. The
//! field scanner ([`Fields`]) honours all three, so ` U=` inside any of them is never taken for
//! the ident. The ident of an arrival is the first `U=` field between the sender and `P=`, which
//! is where Exim writes it (after the host information, before the protocol).

use super::stamp::stamp_shape;
use memchr::{memchr, memchr2, memmem};
use std::hash::{Hash, Hasher};

/// Longest Exim message id: 23 characters since 4.97 (`6-11-4`), 16 before (`6-6-2`).
pub const ID_MAX: usize = 23;

/// An Exim message id, stored inline as three words (zero-padded): compared and hashed without
/// a call to `memcmp`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MsgId([u64; 3]);

impl MsgId {
    /// The id from its text; `None` unless it has the shape of an Exim id.
    #[inline]
    pub fn from_bytes(b: &[u8]) -> Option<MsgId> {
        let ok = match b.len() {
            16 => b[6] == b'-' && b[13] == b'-',
            23 => b[6] == b'-' && b[18] == b'-',
            _ => false,
        };
        // The dashes and the space after the id are checked by the caller; its letters are not
        // (a per-character check costs more than the rest of a delivery line).
        if !ok || !b[0].is_ascii_alphanumeric() {
            return None;
        }
        let w = |x: &[u8]| {
            let mut v = 0u64;
            for (i, &c) in x.iter().enumerate().take(8) {
                v |= u64::from(c) << (8 * i);
            }
            v
        };
        let (a, rest) = b.split_at(8);
        let (m, tail) = rest.split_at(8);
        Some(MsgId([w(a), w(m), w(tail)]))
    }

    /// The id's text.
    pub fn as_bytes(&self) -> Vec<u8> {
        let mut v: Vec<u8> = self.0.iter().flat_map(|w| w.to_le_bytes()).collect();
        let n = memchr(0, &v).unwrap_or(ID_MAX);
        v.truncate(n);
        v
    }
}

impl Hash for MsgId {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0[0] ^ self.0[1].rotate_left(21) ^ self.0[2].rotate_left(43));
    }
}

/// Why a connection, sender, recipient or message was refused. The order is the column order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Reason {
    /// The per-user rate limit.
    RateLimit,
    /// An origin header that disagrees with the ident.
    Forged,
    /// No ident, or an unusable one.
    NoIdent,
    /// The user is blocked by policy.
    Blocked,
    /// The envelope sender's domain is not allowed for the user.
    SenderDomain,
    /// Anything else (relay denied, unknown recipient, content scanning, ...).
    Other,
}

impl Reason {
    /// Every reason, in column order.
    pub const ALL: [Reason; 6] = [
        Reason::RateLimit,
        Reason::Forged,
        Reason::NoIdent,
        Reason::Blocked,
        Reason::SenderDomain,
        Reason::Other,
    ];

    /// Short name used in CSV/JSON keys and Prometheus labels.
    pub fn name(self) -> &'static str {
        match self {
            Reason::RateLimit => "ratelimit",
            Reason::Forged => "forged",
            Reason::NoIdent => "noident",
            Reason::Blocked => "blocked",
            Reason::SenderDomain => "sender_domain",
            Reason::Other => "other",
        }
    }
}

/// The one classifier table: the start of the rejection's log text (the ACL's `log_message`
/// written by `exim-policy render`; the formats are documented at the top of `render.rs`) to
/// the reason. The unprefixed names are those of the hand-written configuration in
/// `reference/exim.md` §3.
pub const REASONS: &[(&[u8], Reason)] = &[
    (b"BASEOS-LIMIT ", Reason::RateLimit),
    (b"BASEOS-FORGED ", Reason::Forged),
    (b"BASEOS-NOIDENT", Reason::NoIdent),
    (b"BASEOS-BADIDENT ", Reason::NoIdent),
    (b"BASEOS-BLOCKED ", Reason::Blocked),
    (b"BASEOS-SENDER ", Reason::SenderDomain),
    (b"BASEOS-BADDATA ", Reason::Other),
    (b"RATELIMIT ", Reason::RateLimit),
    (b"NOIDENT:", Reason::NoIdent),
    (b"BADIDENT:", Reason::NoIdent),
];

/// The reason for a rejection's log text.
pub fn classify(text: &[u8]) -> Reason {
    for (prefix, reason) in REASONS {
        if text.starts_with(prefix) {
            return *reason;
        }
    }
    Reason::Other
}

/// A `<=` (or `(=`) line.
#[derive(Debug, PartialEq, Eq)]
pub struct Arrival<'a> {
    /// Exim's message id.
    pub id: MsgId,
    /// The `U=` field: ident of the SMTP connection or login of a local sender.
    pub user: Option<&'a [u8]>,
    /// Exim's own message (bounce, delay warning): null sender and no remote host.
    pub system: bool,
    /// `S=`.
    pub bytes: u64,
    /// Number of addresses in the `for` list (`+received_recipients`), if logged.
    pub rcpts: Option<u32>,
}

/// The origin that the policy's DATA ACL logs for an accepted message.
#[derive(Debug, PartialEq, Eq)]
pub struct Origin<'a> {
    /// The ident (`U=` field; not `user=`, which is the header's claim).
    pub user: &'a [u8],
    /// The script, as logged (quotes removed, escapes kept: see [`unescape`]).
    pub script: &'a [u8],
}

/// What a line says.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A message arrived.
    Arrival(Arrival<'a>),
    /// `=>`, `->`, `>>`, `*>`: one address delivered.
    Delivery(MsgId),
    /// `==`: a delivery attempt deferred.
    Defer(MsgId),
    /// `**`: an address failed (bounce).
    Bounce(MsgId),
    /// The message left the queue.
    Completed(MsgId),
    /// `rejected ...` (or `temporarily rejected ...`), with the connection's ident if any.
    Rejection {
        /// `U=` on the line.
        user: Option<&'a [u8]>,
        /// Classified from the log text.
        reason: Reason,
    },
    /// The policy's origin line.
    Origin(Origin<'a>),
    /// A policy violation that was logged but not refused (`BASEOS-FORGED ... action=stripped`,
    /// `BASEOS-SENDER ... action=logged`).
    Logged {
        /// `U=` of the policy line.
        user: &'a [u8],
        /// What was violated.
        reason: Reason,
    },
    /// A well-formed line the report does not need.
    Other,
    /// Indented continuation of a multi-line entry.
    Continuation,
    /// A line that cannot be read: no timestamp, or an arrival/rejection with missing or
    /// unterminated fields (a truncated line).
    Unparseable,
}

/// Start of the lines the policy writes with `logwrite` (see `render.rs`).
pub const POLICY_MARKER: &[u8] = b"BASEOS-";

/// Parses a line (without its newline).
#[inline]
///
/// The first value says whether the line starts with a timestamp's shape; its digits are read
/// by [`super::stamp::stamp_value`] only for the lines that matter (not for `Other`).
pub fn parse_line(line: &[u8]) -> (bool, Event<'_>) {
    let Some(mut i) = stamp_shape(line) else {
        let ev = match line.first() {
            Some(b' ' | b'\t') => Event::Continuation,
            _ => Event::Unparseable,
        };
        return (false, ev);
    };
    // `[pid] ` (+pid): a few digits, a byte loop.
    if line.get(i) == Some(&b'[') {
        let mut j = i + 1;
        while line.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        if line.get(j) != Some(&b']') || line.get(j + 1) != Some(&b' ') {
            return (true, Event::Unparseable);
        }
        i = j + 2;
    }
    let rest = &line[i..];
    (true, parse_text(rest))
}

#[inline]
fn id_len(b: &[u8]) -> usize {
    if b.len() > 17 && b[6] == b'-' && b[13] == b'-' && b[16] == b' ' {
        16
    } else if b.len() > 24 && b[6] == b'-' && b[18] == b'-' && b[23] == b' ' {
        23
    } else {
        0
    }
}

#[inline]
fn parse_text(rest: &[u8]) -> Event<'_> {
    let n = id_len(rest);
    if n == 0 {
        // Lines without a message id: SMTP-time rejections, the origin line, everything else.
        return match rest.first() {
            Some(b'H' | b'U' | b'F') if rest.get(1) == Some(&b'=') => parse_rejection(rest),
            Some(b'B') if rest.starts_with(POLICY_MARKER) => parse_policy(rest),
            _ => Event::Other,
        };
    }
    let Some(id) = MsgId::from_bytes(&rest[..n]) else {
        return Event::Other;
    };
    let t = &rest[n + 1..];
    if t.len() >= 3 && t[2] == b' ' {
        match (t[0], t[1]) {
            (b'<' | b'(', b'=') => return parse_arrival(id, &t[3..]),
            (b'=', b'>') | (b'-', b'>') | (b'>', b'>') | (b'*', b'>') => {
                return Event::Delivery(id)
            }
            (b'=', b'=') => return Event::Defer(id),
            (b'*', b'*') => return Event::Bounce(id),
            _ => {}
        }
    }
    if t == b"Completed" || t.starts_with(b"Completed ") {
        return Event::Completed(id);
    }
    match t.first() {
        Some(b'H' | b'U' | b'F') if t.get(1) == Some(&b'=') => parse_rejection(t),
        Some(b'B') if t.starts_with(POLICY_MARKER) => parse_policy(t),
        _ => Event::Other,
    }
}

/// Splits a line's text into fields (see the module comment).
pub struct Fields<'a> {
    b: &'a [u8],
    pos: usize,
}

/// A field ran into the end of the line inside quotes or parentheses: the line is truncated.
#[derive(Debug, PartialEq, Eq)]
pub struct Unterminated;

impl<'a> Fields<'a> {
    /// Fields of `b`.
    pub fn new(b: &'a [u8]) -> Fields<'a> {
        Fields { b, pos: 0 }
    }

    /// What follows the last field returned (without the separating space).
    pub fn rest(&self) -> &'a [u8] {
        let b = self.b;
        let mut p = self.pos;
        while b.get(p) == Some(&b' ') {
            p += 1;
        }
        &b[p.min(b.len())..]
    }

    /// The next field, or `None` at the end.
    #[inline]
    pub fn next_field(&mut self) -> Option<Result<&'a [u8], Unterminated>> {
        let b = self.b;
        let mut i = self.pos;
        while b.get(i) == Some(&b' ') {
            i += 1;
        }
        if i >= b.len() {
            self.pos = i;
            return None;
        }
        let start = i;
        loop {
            // Most fields are short: a byte loop beats the set-up of a SIMD search, which
            // takes over for long ones (ids, host names).
            let short = (i + 16).min(b.len());
            while i < short && !matches!(b[i], b' ' | b'"' | b'(') {
                i += 1;
            }
            if i == short {
                match memchr::memchr3(b' ', b'"', b'(', &b[i..]) {
                    Some(k) => i += k,
                    None => {
                        i = b.len();
                        break;
                    }
                }
            }
            match b[i] {
                b' ' => break,
                b'"' => {
                    // C-like string: `\` escapes the next byte.
                    i += 1;
                    loop {
                        match memchr2(b'"', b'\\', &b[i..]) {
                            None => {
                                self.pos = b.len();
                                return Some(Err(Unterminated));
                            }
                            // A backslash as the last byte: the line was cut inside quotes.
                            Some(k) if b[i + k] == b'\\' && i + k + 2 > b.len() => {
                                self.pos = b.len();
                                return Some(Err(Unterminated));
                            }
                            Some(k) if b[i + k] == b'\\' => i += k + 2,
                            Some(k) => {
                                i += k + 1;
                                break;
                            }
                        }
                    }
                }
                _ => {
                    // `(` opens a HELO name only at the start of a field or right after `=`.
                    if i == start || b[i - 1] == b'=' {
                        match memchr(b')', &b[i..]) {
                            None => {
                                self.pos = b.len();
                                return Some(Err(Unterminated));
                            }
                            Some(k) => i += k + 1,
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            if i >= b.len() {
                i = b.len();
                break;
            }
        }
        self.pos = i;
        Some(Ok(&b[start..i]))
    }
}

#[inline]
fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    let mut n = 0u64;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n * 10 + u64::from(d);
    }
    Some(n)
}

#[inline]
fn is_field_word(w: &[u8]) -> bool {
    memchr(b'=', w).is_some()
        || matches!(w.first(), Some(b'(' | b'['))
        || w.iter().all(u8::is_ascii_uppercase)
}

/// `<= sender [R=id] [H=host (helo) [ip]:port] [I=..] [U=ident] P=proto ... S=size ... [for rcpt...]`
fn parse_arrival(id: MsgId, t: &[u8]) -> Event<'_> {
    let mut f = Fields::new(t);
    let Some(Ok(sender)) = f.next_field() else {
        return Event::Unparseable;
    };
    let mut user = None;
    let mut has_host = false;
    let mut proto = None;
    let mut bytes = None;
    let mut rcpts = None;
    while let Some(field) = f.next_field() {
        let Ok(field) = field else {
            return Event::Unparseable;
        };
        if field.len() < 2 {
            if !is_field_word(field) {
                return Event::Unparseable;
            }
            continue;
        }
        match (field[0], field[1]) {
            (b'H', b'=') => has_host = true,
            (b'U', b'=') if proto.is_none() && user.is_none() => user = Some(&field[2..]),
            (b'P', b'=') if proto.is_none() => proto = Some(&field[2..]),
            (b'S', b'=') if bytes.is_none() => match parse_u64(&field[2..]) {
                Some(n) => bytes = Some(n),
                None => return Event::Unparseable,
            },
            (b'f', b'o') if field == b"for" => {
                // Exim qualifies every recipient: a word without `@` here is the start of
                // another entry glued to a truncated line. Without quotes the words are split by
                // single spaces and hold one `@` each: count both in one pass.
                let rest = f.rest();
                if memchr(b'"', rest).is_none() {
                    let words = memchr::memchr_iter(b' ', rest).count() + 1;
                    let ats = memchr::memchr_iter(b'@', rest).count();
                    if rest.is_empty() || words != ats {
                        return Event::Unparseable;
                    }
                    rcpts = Some(words as u32);
                    break;
                }
                let mut n = 0u32;
                while let Some(r) = f.next_field() {
                    match r {
                        Ok(r) if memchr(b'@', r).is_some() => n += 1,
                        _ => return Event::Unparseable,
                    }
                }
                if n == 0 {
                    return Event::Unparseable;
                }
                rcpts = Some(n);
                break;
            }
            // `NAME=value`, `(helo)`, `[ip]:port`, and flags such as `K`, `DS`, `CHUNKING`:
            // anything else (a timestamp, a message id, `=>`) means this line was cut short and
            // the next entry was written after it.
            _ if is_field_word(field) => {}
            _ => return Event::Unparseable,
        }
    }
    let (Some(_), Some(bytes)) = (proto, bytes) else {
        return Event::Unparseable;
    };
    let user = user.filter(|u| !u.is_empty());
    Event::Arrival(Arrival {
        id,
        user,
        system: sender == b"<>" && !has_host,
        bytes,
        rcpts,
    })
}

/// `H=... [U=ident] [F=<sender>] [temporarily] rejected WHAT ...: log text`
fn parse_rejection(t: &[u8]) -> Event<'_> {
    let mut f = Fields::new(t);
    let mut user = None;
    loop {
        let field = match f.next_field() {
            None => return Event::Other,
            Some(Err(_)) => return Event::Unparseable,
            Some(Ok(x)) => x,
        };
        match field {
            b"rejected" => break,
            b"temporarily" => {
                if f.next_field() == Some(Ok(b"rejected")) {
                    break;
                }
                return Event::Other;
            }
            _ if field.starts_with(b"U=") && user.is_none() => user = Some(&field[2..]),
            _ if field.contains(&b'=') || field.starts_with(b"(") || field.starts_with(b"[") => {}
            // Any other word before `rejected` (e.g. "sender verify fail for"): not a rejection.
            _ => return Event::Other,
        }
    }
    let rest = f.rest();
    let text: &[u8] = if rest.starts_with(b"MAIL ") || rest.starts_with(b"RCPT ") {
        let mut g = Fields::new(&rest[5..]);
        match g.next_field() {
            Some(Ok(_addr)) => {}
            Some(Err(_)) => return Event::Unparseable,
            None => return Event::Unparseable,
        }
        let r = g.rest();
        match r.strip_prefix(b":") {
            Some(x) => x.strip_prefix(b" ").unwrap_or(x),
            None => r,
        }
    } else {
        match memmem::find(rest, b": ") {
            Some(k) => &rest[k + 2..],
            None => rest,
        }
    };
    Event::Rejection {
        user: user.filter(|u| !u.is_empty()),
        reason: classify(text),
    }
}

/// `BASEOS-ORIGIN U=<ident> uid=.. user=.. script="<path>" cwd=".."`,
/// `BASEOS-FORGED U=<ident> action=stripped claimed=".."`,
/// `BASEOS-SENDER U=<ident> sender=<addr> action=logged`.
fn parse_policy(t: &[u8]) -> Event<'_> {
    let (kind, body) = if let Some(b) = t.strip_prefix(b"BASEOS-ORIGIN ") {
        (None, b)
    } else if let Some(b) = t.strip_prefix(b"BASEOS-FORGED ") {
        (Some(Reason::Forged), b)
    } else if let Some(b) = t.strip_prefix(b"BASEOS-SENDER ") {
        (Some(Reason::SenderDomain), b)
    } else {
        return Event::Other;
    };
    let mut f = Fields::new(body);
    let mut user = None;
    let mut script: Option<&[u8]> = None;
    let mut logged = false;
    while let Some(field) = f.next_field() {
        let Ok(field) = field else {
            return Event::Unparseable;
        };
        if let Some(v) = field.strip_prefix(b"U=") {
            user = user.or(Some(v));
        } else if let Some(v) = field.strip_prefix(b"script=") {
            script = Some(
                v.strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                    .unwrap_or(v),
            );
        } else if field == b"action=stripped" || field == b"action=logged" {
            logged = true;
        }
        if kind.is_none() && user.is_some() && script.is_some() {
            break; // `cwd=` and anything after it are not needed
        }
    }
    let Some(user) = user.filter(|u| !u.is_empty()) else {
        return Event::Unparseable;
    };
    match kind {
        None => match script {
            Some(script) => Event::Origin(Origin { user, script }),
            None => Event::Unparseable,
        },
        Some(reason) if logged => Event::Logged { user, reason },
        Some(_) => Event::Other,
    }
}

/// Undoes the escaping of a logged quoted value: `\"`, `\\`, `\NNN` (octal byte), `\n`, `\t`.
pub fn unescape(v: &[u8]) -> Vec<u8> {
    let mut o = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] != b'\\' || i + 1 >= v.len() {
            o.push(v[i]);
            i += 1;
            continue;
        }
        let n = v[i + 1];
        if i + 3 < v.len() && v[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let x = u32::from(v[i + 1] - b'0') * 64
                + u32::from(v[i + 2] - b'0') * 8
                + u32::from(v[i + 3] - b'0');
            o.push(x as u8);
            i += 4;
            continue;
        }
        o.push(match n {
            b'n' => b'\n',
            b't' => b'\t',
            c => c,
        });
        i += 2;
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(line: &str) -> Event<'_> {
        parse_line(line.as_bytes()).1
    }

    fn id(s: &str) -> MsgId {
        MsgId::from_bytes(s.as_bytes()).expect("id")
    }

    #[test]
    fn arrival_fields() {
        let l = r#"2026-12-03 13:03:24 [23354] 1xZ6T6-00064g-31 <= web1@test.example H=(vm) [127.0.0.1]:49814 U=web1 P=esmtp S=517 id=20261203130324.023302@vm T="u1 msg1" for inbox@test.example"#;
        assert_eq!(
            ev(l),
            Event::Arrival(Arrival {
                id: id("1xZ6T6-00064g-31"),
                user: Some(b"web1"),
                system: false,
                bytes: 517,
                rcpts: Some(1)
            })
        );
    }

    #[test]
    fn subject_and_local_part_with_u_field_do_not_count() {
        let l = r#"2026-12-03 13:03:24 1xZ6T6-00064g-31 <= "x U=evil"@test.example H=(vm) [::1]:49814 U=web1 P=esmtp S=5 T="hi U=evil \"q\" \\" for a@b "c U=d"@e"#;
        let Event::Arrival(a) = ev(l) else {
            panic!("arrival")
        };
        assert_eq!((a.user, a.rcpts), (Some(&b"web1"[..]), Some(2)));
        // No ident: a subject with U= is not one.
        let l = r#"2026-12-03 13:03:24 1xZ6T6-00064g-31 <= a@b H=[10.0.0.1]:25 P=esmtp S=5 T=" U=evil" for a@b"#;
        let Event::Arrival(a) = ev(l) else {
            panic!("arrival")
        };
        assert_eq!(a.user, None);
        // HELO in parentheses with U= inside.
        let l = "2026-12-03 13:03:24 1xZ6T6-00064g-31 <= a@b H=(x U=evil) [127.0.0.1]:5 U=web2 P=esmtp S=5";
        let Event::Arrival(a) = ev(l) else {
            panic!("arrival")
        };
        assert_eq!((a.user, a.rcpts), (Some(&b"web2"[..]), None));
    }

    #[test]
    fn truncated_arrivals_are_unparseable() {
        for l in [
            r#"2026-12-03 13:03:24 1xZ6T6-00064g-31 <= a@b H=(vm) [127.0.0.1]:5 U=web1 P=esmtp S=5 T="cut her"#,
            "2026-12-03 13:03:24 1xZ6T6-00064g-31 <= a@b H=(vm) [127.0.0.1]:5 U=web1 P=es",
            r#"2026-12-03 13:03:24 1xZ6T6-00064g-31 <= a@b H=(vm) [127.0.0.1]:5 U=web1 P=esmtp S=5 T="ends in \"#,
            r#"2026-12-03 13:03:24 1xZ6T6-00064g-31 <= a@b H=(vm) [127.0.0.1]:5 U=web1 P=esmtp S=5 T="ends in "#,
            "2026-12-03 13:03:24 1xZ6T6-00064g-31 <= a@b H=(vm",
            "2026-12-03 13:03:24 1xZ6T6-00064g-31 <= a@b H=(vm) [127.0.0.1]:5 U=web1 P=esmtp S=5x",
            "2026-12-03 13:03:24 1xZ6T6-00064g-31 <= ",
            // Cut short, and the next entry glued on.
            "2026-12-03 13:03:24 1xZ6T6-00064g-31 <= a@b H=(vm) [127.0.0.1]:5 U=web1 P=esmtp S=5 id=x@y2026-12-03 13:03:25 [7] 1xZ6T6-00064g-31 => a@b R=r T=t",
            "2026-12-03 13:03:24 1xZ6T6-00064g-31 <= a@b H=(vm) [127.0.0.1]:5 U=web1 P=esmtp S=5 for a@b c@d2026-12-03 13:03:25 [7] 1xZ6T6-00064g-31 Completed",
            "2026-12-03 13:03:24 1xZ6T6-00064g-31 <= a@b H=(vm) [127.0.0.1]:5 U=web1 P=esmtp S=5 for a@b us",
            "2026-12-03 13:",
            "garbage",
        ] {
            assert_eq!(ev(l), Event::Unparseable, "{l}");
        }
        assert_eq!(ev("  continuation"), Event::Continuation);
    }

    #[test]
    fn exim_bounce_is_system() {
        let l = "2026-12-03 13:05:00 [1] 1xZ6TA-0000AA-01 <= <> R=1xZ6T6-00064g-31 U=Debian-exim P=local S=1800 T=\"Mail delivery failed: returning message to sender\" for web1@test.example";
        let Event::Arrival(a) = ev(l) else {
            panic!("arrival")
        };
        assert!(a.system);
        // A user sending with a null sender over SMTP is not Exim.
        let l =
            "2026-12-03 13:05:00 1xZ6TA-0000AA-01 <= <> H=(vm) [127.0.0.1]:5 U=web1 P=esmtp S=18";
        let Event::Arrival(a) = ev(l) else {
            panic!("arrival")
        };
        assert!(!a.system);
    }

    #[test]
    fn deliveries_and_ids() {
        assert_eq!(
            ev("2026-12-03 13:03:24 [1] 1xZ6T6-00064g-31 => inbox <inbox@test.example> R=r T=t"),
            Event::Delivery(id("1xZ6T6-00064g-31"))
        );
        assert_eq!(
            ev("2026-12-03 13:03:24 1xZ6T6-00064g-31 -> b@c R=r T=t"),
            Event::Delivery(id("1xZ6T6-00064g-31"))
        );
        assert_eq!(
            ev("2026-12-03 13:03:24 1xZ6T6-00064g-31 == b@c R=r T=t defer (-1): x"),
            Event::Defer(id("1xZ6T6-00064g-31"))
        );
        assert_eq!(
            ev("2026-12-03 13:03:24 1xZ6T6-00064g-31 ** b@c: unknown"),
            Event::Bounce(id("1xZ6T6-00064g-31"))
        );
        assert_eq!(
            ev("2026-12-03 13:03:24 1xZ6T6-00064g-31 Completed"),
            Event::Completed(id("1xZ6T6-00064g-31"))
        );
        let long = "1xZ6T6-00064g4ABCD-31Xy";
        assert_eq!(
            ev(&format!("2026-12-03 13:03:24 {long} Completed QT=1s")),
            Event::Completed(id(long))
        );
        assert_eq!(id(long).as_bytes(), long.as_bytes().to_vec());
        assert_eq!(
            ev("2026-12-03 13:03:24 1xZ6T6-00064g-31 Message is frozen"),
            Event::Other
        );
    }

    #[test]
    fn rejections() {
        let r = |l| match ev(l) {
            Event::Rejection { user, reason } => (
                user.map(|u| String::from_utf8_lossy(u).into_owned()),
                reason,
            ),
            e => panic!("{l}: {e:?}"),
        };
        assert_eq!(
            r("2026-12-03 13:03:25 [24092] H=(vm) [127.0.0.1]:49830 U=web1 rejected MAIL <web1@test.example>: RATELIMIT ident=web1 rate=4.0/1h max=3"),
            (Some("web1".into()), Reason::RateLimit)
        );
        assert_eq!(
            r("2026-12-03 13:04:32 [14137] H=[127.0.0.1]:41786 temporarily rejected connection in \"connect\" ACL: NOIDENT: loopback connection without ident"),
            (None, Reason::NoIdent)
        );
        assert_eq!(
            r("2026-12-03 13:04:37 [14271] H=[127.0.0.1]:41964 U=evil/count=0 rejected connection in \"connect\" ACL: BADIDENT: \"evil/count=0\""),
            (Some("evil/count=0".into()), Reason::NoIdent)
        );
        assert_eq!(
            r("2026-12-03 13:04:37 H=(vm) [::1]:41964 U=web2 F=<\"a: b\"@x> rejected RCPT <\"c: d\"@y>: relay not permitted"),
            (Some("web2".into()), Reason::Other)
        );
        assert_eq!(
            r("2026-12-03 13:04:37 1xZ6T6-00064g-31 H=(vm) [::1]:41964 U=web2 F=<a@x> rejected after DATA: BASEOS-FORGED U=web2 claimed=\"uid=1 user=web1\""),
            (Some("web2".into()), Reason::Forged)
        );
        assert_eq!(
            ev("2026-12-03 13:04:37 H=(vm) [::1]:41964 U=web2 sender verify fail for <a@b>: x"),
            Event::Other
        );
        assert_eq!(ev("2026-12-03 13:04:37 SMTP connection from [127.0.0.1]:41964 (TCP/IP connection count = 1)"), Event::Other);
    }

    /// Every prefix of every fixture line (a line cut anywhere), and lines with bytes replaced
    /// by the characters the parser cares about: no panic, whatever the input.
    #[test]
    fn any_cut_or_mutation_parses_without_panic() {
        let fixtures = [
            include_str!("../../tests/data/report/mainlog.log"),
            include_str!("../../tests/data/report/mainlog.1.log"),
            include_str!("../../tests/data/report/mainlog.2.log"),
            include_str!("../../tests/data/report/mainlog.3a.log"),
            include_str!("../../tests/data/report/mainlog.3b.log"),
        ];
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let specials = b" \"\\()[]<>=@:-\t\0\xff";
        for line in fixtures.iter().flat_map(|f| f.lines()) {
            let b = line.as_bytes();
            for cut in 0..=b.len() {
                let _ = parse_line(&b[..cut]);
            }
            for _ in 0..200 {
                let mut m = b.to_vec();
                for _ in 0..3 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let at = (seed % m.len().max(1) as u64) as usize;
                    if let Some(c) = m.get_mut(at) {
                        *c = specials[(seed >> 32) as usize % specials.len()];
                    }
                }
                let _ = parse_line(&m);
            }
        }
    }

    #[test]
    fn policy_lines() {
        let l = r#"2026-12-03 14:51:01 [19275] 1xZ89F-00050t-33 BASEOS-ORIGIN U=daemon uid=1 user=bin script="/home/d/www/a \"q\" U=x b\\c\303\251.php" cwd="/home/d""#;
        let Event::Origin(o) = ev(l) else {
            panic!("origin")
        };
        assert_eq!(
            o.user, b"daemon",
            "U= is the ident, user= only the header's claim"
        );
        assert_eq!(
            String::from_utf8(unescape(o.script)).expect("utf8"),
            "/home/d/www/a \"q\" U=x b\\c\u{e9}.php"
        );
        let l = r#"2026-12-03 14:51:01 [19278] 1xZ89F-00050w-36 BASEOS-FORGED U=daemon action=stripped claimed="uid=2 user=bin""#;
        assert_eq!(
            ev(l),
            Event::Logged {
                user: b"daemon",
                reason: Reason::Forged
            }
        );
        let l = "2026-12-03 14:51:01 [19278] BASEOS-SENDER U=web1 sender=<a@evil.example> action=logged";
        assert_eq!(
            ev(l),
            Event::Logged {
                user: b"web1",
                reason: Reason::SenderDomain
            }
        );
        let l = r#"2026-12-03 14:51:01 [19278] 1xZ89F-00050w-36 H=(x) [127.0.0.1]:40312 U=daemon F=<d@x.example> rejected after DATA: BASEOS-FORGED U=daemon claimed="uid=2 user=bin""#;
        assert_eq!(
            ev(l),
            Event::Rejection {
                user: Some(b"daemon"),
                reason: Reason::Forged
            }
        );
        let l = "2026-12-03 14:51:01 H=(x) [::1]:40312 U=web1 F=<a@b> rejected MAIL <a@b>: BASEOS-LIMIT U=web1 what=messages rate=4.0 limit=3 period=1h";
        assert_eq!(
            ev(l),
            Event::Rejection {
                user: Some(b"web1"),
                reason: Reason::RateLimit
            }
        );
        let l = "2026-12-03 14:51:01 H=(x) [::1]:40312 U=web1 F=<a@b> rejected MAIL <a@b>: BASEOS-BLOCKED U=web1";
        assert_eq!(
            ev(l),
            Event::Rejection {
                user: Some(b"web1"),
                reason: Reason::Blocked
            }
        );
        let l = "2026-12-03 14:51:01 H=(x) [::1]:40312 U=web1 F=<a@b> rejected MAIL <a@b>: BASEOS-SENDER U=web1 sender=<a@b>";
        assert_eq!(
            ev(l),
            Event::Rejection {
                user: Some(b"web1"),
                reason: Reason::SenderDomain
            }
        );
        assert_eq!(
            ev("2026-12-03 14:51:01 BASEOS-ORIGIN uid=1"),
            Event::Unparseable
        );
    }
}
