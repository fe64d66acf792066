//! Reading a mail and turning it into a checked [`Message`].
//!
//! The steps, each for a reason given in sendmail-compat.md §4:
//! 1. **Read with a cap.** Input is read in chunks into one buffer that never grows past
//!    `max_size` (+ one line): a 60 MiB mail under the 50 MiB cap is refused (65) after reading
//!    50 MiB, never buffered whole. A read error is 74.
//! 2. **Normalise line ends while reading.** LF, CRLF and a lone CR each end a line (as Exim
//!    does); the buffer holds CRLF only, so neither a bare CR nor a bare LF can reach the wire
//!    (CVE-2023-51764 smuggling needs one). A missing final newline is added. NUL and lines
//!    over 998 octets are refused (65) with the line number, never stripped or split.
//! 3. **`.` ends the input without `-i`/`-oi`**, as sendmail does (and reading stops there).
//!    With `-i` a `.` line is data; the SMTP layer dot-stuffs it.
//! 4. **mbox `From ` line** (first line only) is dropped: it is not a header.
//! 5. **Header block**: header lines (`Name:` with the obsolete `Name :` accepted, RFC 5322
//!    §4.5) and their continuation lines, up to a blank line, or up to the first line that is
//!    neither: that line starts the body and the shim inserts the blank line (nullmailer's
//!    rule). A mail of headers only is fine.
//! 6. **Recipients** with `-t`: `To`/`Cc`/`Bcc`, or only the first `Resent-` block's
//!    `Resent-To`/`-Cc`/`-Bcc` when one exists (msmtp, Postfix, Exim), united with argument
//!    recipients and deduplicated (local part exact, domain case-insensitive). A malformed
//!    address field is refused (65) naming the field.
//! 7. **Header fix-ups**: `Bcc`, `Resent-Bcc` and any caller-written `X-BaseOS-Origin` are
//!    removed whole (continuation lines included) whether or not `-t` was given; our
//!    `X-BaseOS-Origin` goes first; `From`, `Date`, `Message-ID` are added at the end of the
//!    header when missing.
//!
//! Dot-stuffing is the SMTP layer's job (`smtp::dot_stuff`), after all of this.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::address::{self, Mailbox};
use crate::args::{Invocation, SenderArg};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::identity::{Identity, ORIGIN_HEADER};
use crate::submission::{Envelope, Message};

/// RFC 5322 §2.1.1: at most 998 octets per line, CRLF excluded.
pub const MAX_LINE: usize = 998;

/// What makes generated headers unique: the time, the pid and a random number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Seconds since the epoch (UTC), for `Date:` and `Message-ID:`.
    pub unix_secs: u64,
    /// Nanoseconds within the second.
    pub nanos: u32,
    /// The process id.
    pub pid: u32,
    /// 64 random bits.
    pub random: u64,
}

impl Stamp {
    /// The current time, pid and 64 bits from std's `RandomState` (seeded by the kernel's
    /// `getrandom`, so no `/dev/urandom` is needed inside the chroot).
    pub fn now() -> Stamp {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let pid = std::process::id();
        let random = RandomState::new().hash_one((since, pid));
        Stamp {
            unix_secs: since.as_secs(),
            nanos: since.subsec_nanos(),
            pid,
            random,
        }
    }
}

/// `sendmail [-t] [-i] [rcpt...] < mail`: reads the mail from `input` and builds the checked
/// message. Argument recipients are checked (64) before anything is read, and a call that can
/// have no recipient (no `-t`, no arguments) fails (64) without reading stdin.
pub fn prepare<R: Read>(
    inv: &Invocation,
    id: &Identity,
    cfg: &Config,
    input: R,
) -> Result<Message> {
    prepare_with(inv, id, cfg, input, Stamp::now())
}

/// [`prepare`] with a given [`Stamp`] (tests).
pub fn prepare_with<R: Read>(
    inv: &Invocation,
    id: &Identity,
    cfg: &Config,
    input: R,
    stamp: Stamp,
) -> Result<Message> {
    let mut recipients = Recipients::new(&id.domain);
    for arg in &inv.recipients {
        let list = address::parse_address_list(arg.as_bytes()).map_err(|why| {
            Error::Usage(format!(
                "invalid recipient {arg:?} ({why}): give addresses such as user@example.com or \
                 \"Name <user@example.com>\""
            ))
        })?;
        recipients.extend(list);
    }
    if !inv.extract_recipients && recipients.is_empty() {
        return Err(no_recipients());
    }
    let sender = match &inv.sender {
        SenderArg::Default => id.default_sender(),
        SenderArg::Null => String::new(),
        SenderArg::Address(mb) => mb.qualified(&id.domain),
    };
    let raw = read_mail(input, !inv.ignore_dots, cfg.settings.max_size)?;
    let fix = Fixup {
        extract: inv.extract_recipients,
        full_name: inv.full_name.as_deref(),
        from_address: if sender.is_empty() {
            id.default_sender()
        } else {
            sender.clone()
        },
    };
    build(raw, sender, recipients, &fix, id, cfg, stamp)
}

/// For `-bs`: prepares one message received over SMTP. `data` is the DATA content as the
/// client sent it, already un-dot-stuffed (CRLF or LF lines); the envelope is the client's
/// MAIL/RCPT. The same checks and fix-ups as [`prepare`] apply; a `.` line is data.
pub fn prepare_relayed(
    envelope: Envelope,
    data: &[u8],
    id: &Identity,
    cfg: &Config,
) -> Result<Message> {
    prepare_relayed_with(envelope, data, id, cfg, Stamp::now())
}

/// [`prepare_relayed`] with a given [`Stamp`] (tests).
pub fn prepare_relayed_with(
    envelope: Envelope,
    data: &[u8],
    id: &Identity,
    cfg: &Config,
    stamp: Stamp,
) -> Result<Message> {
    let raw = read_mail(data, false, cfg.settings.max_size)?;
    let mut recipients = Recipients::new(&id.domain);
    for r in envelope.recipients {
        recipients.push_qualified(r);
    }
    let fix = Fixup {
        extract: false,
        full_name: None,
        from_address: if envelope.sender.is_empty() {
            id.default_sender()
        } else {
            envelope.sender.clone()
        },
    };
    build(raw, envelope.sender, recipients, &fix, id, cfg, stamp)
}

fn no_recipients() -> Error {
    Error::Usage(
        "no valid recipients: give them as arguments, or use -t with To:/Cc:/Bcc: headers that \
         name at least one address (an empty group such as undisclosed-recipients:; names none)"
            .into(),
    )
}

/// Reads the whole mail from `input`: line ends normalised to CRLF, mbox `From ` line dropped,
/// NUL / long lines / size checked. With `dot_ends`, a line of a lone `.` ends the input (and
/// is not part of the mail). Never holds more than `max_size` + one line in memory.
pub fn read_mail<R: Read>(input: R, dot_ends: bool, max_size: u64) -> Result<Vec<u8>> {
    let mut r = BufReader::with_capacity(64 * 1024, input);
    let mut out: Vec<u8> = Vec::new();
    let mut n = Normaliser {
        line_start: 0,
        line_no: 1,
        pending_cr: false,
        dot_ends,
        max_size,
    };
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Input(format!(
                    "reading the mail from stdin failed: {e}; nothing was sent"
                )))
            }
        };
        if chunk.is_empty() {
            break;
        }
        let len = chunk.len();
        let done = n.feed(&mut out, chunk)?;
        r.consume(len);
        if done {
            return finish(out);
        }
    }
    // EOF: a last line without a newline still counts (edge case 13); a last "." ends it
    // either way.
    if out.len() > n.line_start {
        n.end_line(&mut out)?;
    }
    finish(out)
}

fn finish(out: Vec<u8>) -> Result<Vec<u8>> {
    if out.is_empty() {
        return Err(Error::Data(
            "the mail is empty (stdin was closed before any line was written): nothing was \
             sent; write the mail to sendmail's stdin"
                .into(),
        ));
    }
    Ok(out)
}

/// State of the line-end normaliser between chunks.
struct Normaliser {
    /// Where the current (unfinished) line starts in `out`.
    line_start: usize,
    /// 1-based number of the current input line, for messages.
    line_no: u64,
    /// The previous chunk ended in CR: a LF at the start of this one belongs to it.
    pending_cr: bool,
    dot_ends: bool,
    max_size: u64,
}

impl Normaliser {
    /// Appends one chunk; returns true when a `.` line ended the input.
    fn feed(&mut self, out: &mut Vec<u8>, mut chunk: &[u8]) -> Result<bool> {
        if self.pending_cr {
            self.pending_cr = false;
            if chunk.first() == Some(&b'\n') {
                chunk = &chunk[1..];
            }
        }
        while !chunk.is_empty() {
            let stop = chunk
                .iter()
                .position(|&b| b == b'\r' || b == b'\n' || b == 0);
            let text = &chunk[..stop.unwrap_or(chunk.len())];
            if out.len() - self.line_start + text.len() > MAX_LINE {
                return Err(Error::Data(format!(
                    "line {} is longer than {MAX_LINE} octets, which SMTP forbids (RFC 5322 \
                     2.1.1); nothing was sent: wrap long lines or send the body \
                     quoted-printable or base64 encoded",
                    self.line_no
                )));
            }
            out.extend_from_slice(text);
            let Some(at) = stop else { break };
            match chunk[at] {
                0 => {
                    return Err(Error::Data(format!(
                        "line {} contains a NUL byte, which mail cannot carry; nothing was sent: \
                         send binary data as a base64-encoded attachment",
                        self.line_no
                    )))
                }
                b'\r' => {
                    if self.end_line(out)? {
                        return Ok(true);
                    }
                    match chunk.get(at + 1) {
                        Some(b'\n') => chunk = &chunk[at + 2..],
                        Some(_) => chunk = &chunk[at + 1..],
                        None => {
                            self.pending_cr = true;
                            chunk = &[];
                        }
                    }
                }
                _ => {
                    if self.end_line(out)? {
                        return Ok(true);
                    }
                    chunk = &chunk[at + 1..];
                }
            }
        }
        Ok(false)
    }

    /// Ends the current line with CRLF; returns true when it was the `.` that ends input.
    fn end_line(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        let line = &out[self.line_start..];
        if self.dot_ends && line == b"." {
            out.truncate(self.line_start);
            return Ok(true);
        }
        if self.line_no == 1 && line.starts_with(b"From ") {
            // mbox separator, not a header (edge case 29).
            out.truncate(self.line_start);
        } else {
            out.extend_from_slice(b"\r\n");
        }
        self.line_start = out.len();
        self.line_no += 1;
        if out.len() as u64 > self.max_size {
            return Err(too_large(self.max_size));
        }
        Ok(false)
    }
}

fn too_large(max: u64) -> Error {
    Error::Data(format!(
        "the mail is larger than the {max}-octet limit (max_size); nothing was sent: send a \
         smaller mail (link large files instead of attaching them) or raise max_size in the \
         config file"
    ))
}

/// One header field in the normalised buffer: `start..end` covers all its lines and CRLFs.
struct Field {
    name_end: usize,
    start: usize,
    colon: usize,
    end: usize,
}

impl Field {
    fn name<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        &data[self.start..self.name_end]
    }
    /// The value with folding CRLFs still in (the address lexer treats them as white space).
    fn value<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        &data[self.colon + 1..self.end]
    }
    fn is(&self, data: &[u8], name: &str) -> bool {
        self.name(data).eq_ignore_ascii_case(name.as_bytes())
    }
}

/// Splits the normalised mail into header fields and the start of the body. Returns the
/// fields and the body offset; the separating blank line (if any) is in neither.
fn split_header(data: &[u8]) -> (Vec<Field>, usize) {
    let mut fields: Vec<Field> = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        // Every line ends in CRLF (read_mail guarantees it).
        let eol = find_crlf(data, pos);
        let line = &data[pos..eol];
        let next = (eol + 2).min(data.len());
        if line.is_empty() {
            return (fields, next);
        }
        if line[0] == b' ' || line[0] == b'\t' {
            match fields.last_mut() {
                Some(f) => {
                    f.end = next;
                    pos = next;
                    continue;
                }
                None => return (fields, pos),
            }
        }
        match header_name(line) {
            Some((name_len, colon)) => fields.push(Field {
                name_end: pos + name_len,
                start: pos,
                colon: pos + colon,
                end: next,
            }),
            None => return (fields, pos),
        }
        pos = next;
    }
    (fields, pos)
}

fn find_crlf(data: &[u8], from: usize) -> usize {
    data[from..]
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(data.len(), |p| from + p)
}

/// `Name:` or the obsolete `Name :` (RFC 5322 §4.5.3 obs-optional: WSP before the colon).
/// Returns the name's length and the colon's offset, or `None` for a line that is not a header.
fn header_name(line: &[u8]) -> Option<(usize, usize)> {
    let name_len = line
        .iter()
        .position(|&b| b == b':' || b == b' ' || b == b'\t')?;
    if name_len == 0 || !line[..name_len].iter().all(|&b| (33..=126).contains(&b)) {
        return None;
    }
    let colon = name_len
        + line[name_len..]
            .iter()
            .position(|&b| b != b' ' && b != b'\t')?;
    (line[colon] == b':').then_some((name_len, colon))
}

/// Envelope recipients in order, deduplicated.
struct Recipients<'a> {
    domain: &'a str,
    list: Vec<String>,
    seen: HashSet<(String, String)>,
}

impl<'a> Recipients<'a> {
    fn new(domain: &'a str) -> Self {
        Recipients {
            domain,
            list: Vec::new(),
            seen: HashSet::new(),
        }
    }
    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    fn extend(&mut self, mbs: Vec<Mailbox>) {
        for mb in mbs {
            self.push_qualified(mb.qualified(self.domain));
        }
    }
    /// Local part compared exactly (it is the receiving site's business), domain without case.
    fn push_qualified(&mut self, addr: String) {
        let (local, domain) = match addr.rfind('@') {
            Some(at) => (addr[..at].to_owned(), addr[at + 1..].to_lowercase()),
            None => (addr.clone(), String::new()),
        };
        if self.seen.insert((local, domain)) {
            self.list.push(addr);
        }
    }
}

/// What the header fix-ups need besides the identity.
struct Fixup<'a> {
    extract: bool,
    full_name: Option<&'a str>,
    /// Address for an added `From:`.
    from_address: String,
}

fn build(
    raw: Vec<u8>,
    sender: String,
    mut recipients: Recipients<'_>,
    fix: &Fixup<'_>,
    id: &Identity,
    cfg: &Config,
    stamp: Stamp,
) -> Result<Message> {
    let (fields, body) = split_header(&raw);

    if fix.extract {
        let resent = fields
            .iter()
            .position(|f| starts_with_ci(f.name(&raw), b"resent-"));
        let chosen: Vec<&Field> = match resent {
            Some(first) => first_resent_block(&fields[first..], &raw)
                .iter()
                .filter(|f| {
                    f.is(&raw, "Resent-To") || f.is(&raw, "Resent-Cc") || f.is(&raw, "Resent-Bcc")
                })
                .collect(),
            None => fields
                .iter()
                .filter(|f| f.is(&raw, "To") || f.is(&raw, "Cc") || f.is(&raw, "Bcc"))
                .collect(),
        };
        for f in chosen {
            let list = address::parse_address_list(f.value(&raw)).map_err(|why| {
                Error::Data(format!(
                    "malformed address in the {}: header ({why}); nothing was sent: fix the \
                     header (quote display names that hold commas or colons: \"Doe, John\" \
                     <j@example.com>)",
                    String::from_utf8_lossy(f.name(&raw))
                ))
            })?;
            recipients.extend(list);
        }
    }
    if recipients.is_empty() {
        return Err(no_recipients());
    }

    let has = |name: &str| fields.iter().any(|f| f.is(&raw, name));
    let mut header = Vec::with_capacity(body + 1024);
    if cfg.origin_header {
        header.extend_from_slice(id.origin_header().as_bytes());
    }
    for f in &fields {
        // Bcc must never reach the recipients; a caller's origin tag must not stand beside
        // ours (Exim checks the first one against ident, a second could mislead a reader).
        if f.is(&raw, "Bcc") || f.is(&raw, "Resent-Bcc") || f.is(&raw, ORIGIN_HEADER) {
            continue;
        }
        header.extend_from_slice(&raw[f.start..f.end]);
    }
    if !has("From") {
        header.extend_from_slice(from_header(fix.full_name, &fix.from_address).as_bytes());
    }
    if !has("Date") {
        let date = rfc5322_date(stamp.unix_secs);
        header.extend_from_slice(format!("Date: {date}\r\n").as_bytes());
    }
    if !has("Message-ID") {
        let mid = message_id(&stamp, &id.domain);
        header.extend_from_slice(format!("Message-ID: {mid}\r\n").as_bytes());
    }
    header.extend_from_slice(b"\r\n");
    // Replace the old header in place: the body (up to max_size) is moved, not copied into
    // a second buffer, so peak memory stays near one copy of the mail.
    let mut data = raw;
    data.splice(..body, header);

    if data.len() as u64 > cfg.settings.max_size {
        return Err(too_large(cfg.settings.max_size));
    }
    let envelope = Envelope {
        sender,
        recipients: recipients.list,
    };
    let smtputf8 = !envelope.sender.is_ascii() || envelope.recipients.iter().any(|r| !r.is_ascii());
    let eight_bit = !data.is_ascii();
    Ok(Message {
        envelope,
        data,
        eight_bit,
        smtputf8,
    })
}

/// The first Resent- block (RFC 5322 §3.6.6): consecutive `Resent-*` fields, up to the first
/// other field or the first field name seen twice (the next block, prepended before it, starts
/// with its own `Resent-Date`/`Resent-From`).
fn first_resent_block<'f>(fields: &'f [Field], data: &[u8]) -> &'f [Field] {
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let mut end = 0;
    for f in fields {
        let name = f.name(data).to_ascii_lowercase();
        if !name.starts_with(b"resent-") || seen.contains(&name) {
            break;
        }
        seen.push(name);
        end += 1;
    }
    &fields[..end]
}

fn starts_with_ci(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// `From: Name <addr>` (name quoted or RFC 2047-encoded as needed) or `From: addr`, CRLF ended.
pub fn from_header(full_name: Option<&str>, addr: &str) -> String {
    match full_name.map(str::trim).filter(|n| !n.is_empty()) {
        None => format!("From: {addr}\r\n"),
        Some(name) => format!("From: {} <{addr}>\r\n", display_name(name)),
    }
}

/// A display name as RFC 5322 wants it: atoms as they are, else a quoted string, and
/// non-ASCII as RFC 2047 `B` encoded words (at most 75 characters each, folded between).
pub fn display_name(name: &str) -> String {
    if name.is_ascii() {
        let plain = name.split(' ').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b))
        });
        if plain {
            return name.to_owned();
        }
        let mut q = String::with_capacity(name.len() + 2);
        q.push('"');
        for c in name.chars() {
            if c == '"' || c == '\\' {
                q.push('\\');
            }
            q.push(c);
        }
        q.push('"');
        return q;
    }
    // 45 octets of UTF-8 → 60 base64 characters + 12 for `=?UTF-8?B?` and `?=` = 72 ≤ 75.
    let mut words = Vec::new();
    let mut rest = name;
    while !rest.is_empty() {
        let mut cut = rest.len().min(45);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        words.push(format!("=?UTF-8?B?{}?=", base64(&rest.as_bytes()[..cut])));
        rest = &rest[cut..];
    }
    words.join("\r\n ")
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// RFC 5322 §3.3 date in UTC: `Thu, 03 Dec 2026 14:42:52 +0000`. UTC avoids reading the
/// zone database, which the chroot may not have; the numeric zone keeps it exact.
pub fn rfc5322_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31), Howard Hinnant's algorithm.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// `<secs.nanos.pid.random@domain>`: unique across processes (pid), within a process over
/// time (nanos) and across pid reuse and clock steps (64 random bits).
pub fn message_id(stamp: &Stamp, domain: &str) -> String {
    format!(
        "<{}.{:09}.{}.{:016x}@{}>",
        stamp.unix_secs, stamp.nanos, stamp.pid, stamp.random, domain
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
