//! RFC 5322 address lists, for `-t` and for recipient arguments.
//!
//! Why a hand-written tokenizer and not `mail-parser`: mail-parser is built to *read* any mail
//! a client may meet, so it is lenient and lossy (it repairs, decodes encoded words and drops
//! what it cannot place) and it never says "this header is malformed". A submitter has the
//! opposite job: it must send exactly the recipients the header names, and refuse (exit 65,
//! naming the header) when it cannot tell what they are, because a wrong guess either loses
//! mail or sends it to the wrong place. The grammar needed is small (RFC 5322 §3.4 plus the
//! obsolete forms of §4.4 that real mailers still write), so ~300 lines of code that say no
//! clearly beat a dependency that says yes to everything, and keep the static binary small.
//!
//! What is handled: quoted strings with quoted-pairs, comments (nested, with quoted-pairs, also
//! inside an address: `<a(c)@x(c)>`), groups (`undisclosed-recipients:;`, groups with members),
//! display names of atoms and quoted strings (`"Doe, John" <j@x>`, `"\"a@b\"" <a@b>`), encoded
//! words left alone (they are atoms), obsolete routes (`<@r1,@r2:a@x>`), empty list elements
//! (`a@x,,b@y,`), domain literals (`a@[192.0.2.1]`), and UTF-8 in local parts and domains
//! (RFC 6532). An address without `@` (`root`) is returned unqualified; the caller qualifies it
//! with the configured domain, as Exim does for locally submitted mail.
//!
//! Two mistakes PHP scripts make are accepted because their meaning is not in doubt: `;`
//! between addresses outside a group (read as `,`), and an address used as an unquoted display
//! name, `a@x <b@y>` (the angle-addr `b@y` is the address, as every mail client reads it).
//! An unquoted `Doe, John <j@x>` is read as RFC 5322 and sendmail read it: two addresses, the
//! first the unqualified local part `Doe`.

use std::fmt;

/// RFC 5321 §4.5.3.1: 64 octets of local part, 255 of domain, 256 for the whole path
/// including `<>`, so 254 for the bare address.
const MAX_LOCAL: usize = 64;
const MAX_DOMAIN: usize = 255;
const MAX_ADDRESS: usize = 254;

/// One mailbox, ready for the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The local part in its canonical form: a dot-atom as is, anything else as a quoted
    /// string (`"john smith"`).
    pub local: String,
    /// The domain (or `[literal]`), `None` when the address had no `@`.
    pub domain: Option<String>,
}

impl Mailbox {
    /// The address as `local@domain`, qualifying a bare local part with `default_domain`.
    pub fn qualified(&self, default_domain: &str) -> String {
        format!(
            "{}@{}",
            self.local,
            self.domain.as_deref().unwrap_or(default_domain)
        )
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.domain {
            Some(d) => write!(f, "{}@{}", self.local, d),
            None => f.write_str(&self.local),
        }
    }
}

/// Parses an address list (the unfolded value of `To:`, `Cc:`, `Bcc:` or a recipient
/// argument). Groups contribute their members; empty groups and empty elements contribute
/// nothing. On error, a short reason for the user.
pub fn parse_address_list(value: &[u8]) -> Result<Vec<Mailbox>, String> {
    let tokens = lex(value)?;
    let mut p = Parser { t: &tokens, pos: 0 };
    let mut out = Vec::new();
    p.list(&mut out, false)?;
    if let Some(tok) = p.peek() {
        return Err(format!("unexpected {tok}"));
    }
    Ok(out)
}

/// Parses one bare address (`local@domain` or `local`, no display name, no angle brackets),
/// as given to `-f`.
pub fn parse_addr_spec(value: &str) -> Result<Mailbox, String> {
    let tokens = lex(value.as_bytes())?;
    let mut p = Parser { t: &tokens, pos: 0 };
    let mb = p.addr_spec()?;
    if let Some(tok) = p.peek() {
        return Err(format!("unexpected {tok}"));
    }
    Ok(mb)
}

/// True when `s` is an RFC 5322 dot-atom (atoms joined by single dots; UTF-8 allowed).
pub fn is_dot_atom(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|a| !a.is_empty() && a.bytes().all(is_atext))
}

/// atext (RFC 5322 §3.2.3) plus the octets of UTF-8 (RFC 6532 §3.2).
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// A run of atext (also an encoded word, which is never decoded here).
    Atom(String),
    /// A quoted string, quoted-pairs resolved.
    Quoted(String),
    /// `[...]`, kept verbatim including the brackets.
    Literal(String),
    /// One of `< > @ , ; : .`
    Special(u8),
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Atom(a) => write!(f, "word {a:?}"),
            Tok::Quoted(q) => write!(f, "quoted string \"{q}\""),
            Tok::Literal(l) => write!(f, "domain literal {l}"),
            Tok::Special(c) => write!(f, "'{}'", *c as char),
        }
    }
}

/// Splits an unfolded header value into tokens, dropping white space and comments.
/// Folding (CRLF before white space) is treated as white space, so folded values work too.
fn lex(v: &[u8]) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let b = v[i];
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'(' => i = skip_comment(v, i)?,
            b'"' => {
                let (s, next) = quoted(v, i + 1, b'"', "quoted string")?;
                out.push(Tok::Quoted(utf8(s)?));
                i = next;
            }
            b'[' => {
                let (s, next) = quoted(v, i + 1, b']', "domain literal")?;
                if s.iter().any(|&c| c == b'[' || c == b' ' || c == b'\t') {
                    return Err("malformed domain literal".into());
                }
                out.push(Tok::Literal(format!("[{}]", utf8(s)?)));
                i = next;
            }
            b'<' | b'>' | b'@' | b',' | b';' | b':' | b'.' => {
                out.push(Tok::Special(b));
                i += 1;
            }
            _ if is_atext(b) => {
                let start = i;
                while i < v.len() && is_atext(v[i]) {
                    i += 1;
                }
                out.push(Tok::Atom(utf8(v[start..i].to_vec())?));
            }
            b')' => return Err("')' without '('".into()),
            b'\\' => return Err("backslash outside a quoted string".into()),
            b']' => return Err("']' without '['".into()),
            _ => return Err(format!("control character 0x{b:02x}")),
        }
    }
    Ok(out)
}

/// Skips a comment starting at `v[i] == '('`, nested comments and quoted-pairs included.
fn skip_comment(v: &[u8], mut i: usize) -> Result<usize, String> {
    let mut depth = 0usize;
    while i < v.len() {
        match v[i] {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i + 1);
                }
            }
            b'\\' => i += 1,
            0 => return Err("NUL in a comment".into()),
            _ => {}
        }
        i += 1;
    }
    Err("unclosed comment '('".into())
}

/// Reads up to the closing `end`, resolving quoted-pairs; returns the content and the index
/// after `end`. Control characters other than tab are refused: they cannot go on the wire.
fn quoted(v: &[u8], mut i: usize, end: u8, what: &str) -> Result<(Vec<u8>, usize), String> {
    let mut s = Vec::new();
    while i < v.len() {
        let b = v[i];
        if b == end {
            return Ok((s, i + 1));
        }
        let c = if b == b'\\' {
            i += 1;
            match v.get(i) {
                Some(&c) => c,
                None => break,
            }
        } else {
            b
        };
        if c == b'\r' || c == b'\n' {
            // A folded quoted string: the CRLF goes, the white space after it stays.
            i += 1;
            continue;
        }
        if (c < 0x20 && c != b'\t') || c == 0x7f {
            return Err(format!("control character 0x{c:02x} in a {what}"));
        }
        s.push(c);
        i += 1;
    }
    Err(format!("unclosed {what}"))
}

fn utf8(s: Vec<u8>) -> Result<String, String> {
    String::from_utf8(s).map_err(|_| "bytes that are not UTF-8".to_string())
}

struct Parser<'a> {
    t: &'a [Tok],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.t.get(self.pos)
    }

    fn is(&self, c: u8) -> bool {
        self.peek() == Some(&Tok::Special(c))
    }

    fn expect(&mut self, c: u8, context: &str) -> Result<(), String> {
        if self.is(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(match self.peek() {
                Some(t) => format!("expected '{}' {context}, found {t}", c as char),
                None => format!("expected '{}' {context}, found the end", c as char),
            })
        }
    }

    /// address-list (or, inside a group, mailbox-list up to ';'), empty elements allowed.
    fn list(&mut self, out: &mut Vec<Mailbox>, in_group: bool) -> Result<(), String> {
        loop {
            // Outside a group a ';' can only be a mistyped ',' (Outlook's separator):
            // accepted, the intent is clear.
            while self.is(b',') || (!in_group && self.is(b';')) {
                self.pos += 1;
            }
            match self.peek() {
                None => return Ok(()),
                Some(Tok::Special(b';')) if in_group => return Ok(()),
                _ => {}
            }
            self.address(out, in_group)?;
            match self.peek() {
                None => return Ok(()),
                Some(Tok::Special(b',')) => {}
                Some(Tok::Special(b';')) if in_group => return Ok(()),
                Some(Tok::Special(b';')) => {}
                Some(t) => {
                    return Err(format!(
                        "unexpected {t} after an address (missing comma or <>?)"
                    ))
                }
            }
        }
    }

    /// One address: `phrase <addr>`, `<addr>`, `phrase: members;`, or a bare addr-spec.
    fn address(&mut self, out: &mut Vec<Mailbox>, in_group: bool) -> Result<(), String> {
        // Look ahead over words and dots to see what follows them.
        let start = self.pos;
        let mut words = 0;
        while let Some(t) = self.peek() {
            match t {
                Tok::Atom(_) | Tok::Quoted(_) => words += 1,
                Tok::Special(b'.') => {}
                _ => break,
            }
            self.pos += 1;
        }
        match self.peek() {
            Some(Tok::Special(b'<')) => {
                // name-addr; an empty display name is fine (`<a@x>`).
                self.pos += 1;
                let mb = self.angle_addr()?;
                out.push(mb);
                Ok(())
            }
            Some(Tok::Special(b':')) => {
                if in_group {
                    return Err("a group inside a group".into());
                }
                if words == 0 {
                    return Err("a group without a name before ':'".into());
                }
                self.pos += 1;
                self.list(out, true)?;
                self.expect(b';', "to end the group")
            }
            _ => {
                if words == 0 {
                    return Err(match self.peek() {
                        Some(t) => format!("unexpected {t}"),
                        None => "an empty address".into(),
                    });
                }
                self.pos = start;
                let mb = self.addr_spec()?;
                if self.is(b'<') {
                    // `a@x <a@x>`: an address written as an unquoted display name. The
                    // angle-addr is the address, as every mail client reads it.
                    self.pos += 1;
                    out.push(self.angle_addr()?);
                } else {
                    out.push(mb);
                }
                Ok(())
            }
        }
    }

    /// After `<`: optional obsolete route, addr-spec, `>`.
    fn angle_addr(&mut self) -> Result<Mailbox, String> {
        if self.is(b'@') {
            // obs-route: `@r1,@r2:` is dropped (RFC 5322 §4.4).
            while self.is(b'@') || self.is(b',') {
                self.pos += 1;
                if matches!(self.peek(), Some(Tok::Atom(_)) | Some(Tok::Literal(_))) {
                    self.domain()?;
                }
            }
            self.expect(b':', "after a source route")?;
        }
        if self.is(b'>') {
            return Err("empty <> as a recipient".into());
        }
        let mb = self.addr_spec()?;
        self.expect(b'>', "to close '<'")?;
        Ok(mb)
    }

    /// local-part [ "@" domain ].
    fn addr_spec(&mut self) -> Result<Mailbox, String> {
        let local = self.local_part()?;
        let domain = if self.is(b'@') {
            self.pos += 1;
            Some(self.domain()?)
        } else {
            None
        };
        if local.len() > MAX_LOCAL {
            return Err(format!(
                "local part {}... is longer than {MAX_LOCAL} octets",
                prefix(&local)
            ));
        }
        let mb = Mailbox { local, domain };
        if mb.to_string().len() > MAX_ADDRESS {
            return Err(format!(
                "address {}... is longer than {MAX_ADDRESS} octets",
                prefix(&mb.to_string())
            ));
        }
        Ok(mb)
    }

    /// word *("." word); the obsolete form allows quoted words between dots.
    fn local_part(&mut self) -> Result<String, String> {
        let mut content = String::new();
        let mut any_quoted = false;
        loop {
            match self.peek() {
                Some(Tok::Atom(a)) => content.push_str(a),
                Some(Tok::Quoted(q)) => {
                    any_quoted = true;
                    content.push_str(q);
                }
                Some(t) => return Err(format!("expected an address, found {t}")),
                None => return Err("expected an address, found the end".into()),
            }
            self.pos += 1;
            if self.is(b'.') {
                self.pos += 1;
                content.push('.');
            } else {
                break;
            }
        }
        if !any_quoted || is_dot_atom(&content) {
            if !is_dot_atom(&content) {
                return Err(format!("malformed local part {content:?}"));
            }
            return Ok(content);
        }
        // Canonical quoted form: only `"` and `\` need escaping.
        let mut q = String::with_capacity(content.len() + 2);
        q.push('"');
        for c in content.chars() {
            if c == '"' || c == '\\' {
                q.push('\\');
            }
            q.push(c);
        }
        q.push('"');
        Ok(q)
    }

    /// dot-atom or a domain literal.
    fn domain(&mut self) -> Result<String, String> {
        if let Some(Tok::Literal(l)) = self.peek() {
            let l = l.clone();
            self.pos += 1;
            return Ok(l);
        }
        let mut d = String::new();
        loop {
            match self.peek() {
                Some(Tok::Atom(a)) => d.push_str(a),
                Some(t) => return Err(format!("expected a domain after '@', found {t}")),
                None => return Err("expected a domain after '@', found the end".into()),
            }
            self.pos += 1;
            if self.is(b'.') {
                self.pos += 1;
                d.push('.');
            } else {
                break;
            }
        }
        if d.len() > MAX_DOMAIN {
            return Err(format!(
                "domain {}... is longer than {MAX_DOMAIN} octets",
                prefix(&d)
            ));
        }
        Ok(d)
    }
}

/// The first few characters of a long value, for error messages.
fn prefix(s: &str) -> &str {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn list(v: &str) -> Vec<String> {
        parse_address_list(v.as_bytes())
            .unwrap_or_else(|e| panic!("{v:?}: {e}"))
            .iter()
            .map(|m| m.qualified("dflt.example"))
            .collect()
    }

    fn bad(v: &str) -> String {
        match parse_address_list(v.as_bytes()) {
            Err(e) => e,
            Ok(l) => panic!("{v:?} should be refused, got {l:?}"),
        }
    }

    #[test]
    fn simple() {
        assert_eq!(list("a@x.org"), ["a@x.org"]);
        assert_eq!(list(" a@x.org , b@y.org "), ["a@x.org", "b@y.org"]);
        assert_eq!(list("root"), ["root@dflt.example"]);
    }

    #[test]
    fn edge_17_name_angle_addr() {
        assert_eq!(list("Name <a@x>"), ["a@x"]);
        assert_eq!(list("Some One <a@x>, Other <b@y>"), ["a@x", "b@y"]);
        assert_eq!(list("<a@x>"), ["a@x"]);
    }

    #[test]
    fn lenient_but_unambiguous_forms() {
        // An address as unquoted display name: the angle-addr counts.
        assert_eq!(list("a@x.org <b@y.org>"), ["b@y.org"]);
        assert_eq!(
            list("john.doe@x.org (J) <j@y.org>, c@z"),
            ["j@y.org", "c@z"]
        );
        // ';' between addresses outside a group.
        assert_eq!(list("a@x; b@y;"), ["a@x", "b@y"]);
        assert_eq!(list("G: a@x; ; b@y"), ["a@x", "b@y"]);
        // Still refused: anything where the address is not clear.
        assert!(!bad("Name@Company Inc <a@x>").is_empty());
        assert!(!bad("a@x <b@y").is_empty());
    }

    #[test]
    fn edge_18_quoted_comma_in_name() {
        assert_eq!(list("\"Doe, John\" <j@x>, b@y"), ["j@x", "b@y"]);
    }

    #[test]
    fn edge_19_quoted_pair_in_name() {
        assert_eq!(list(r#""\"a@b\"" <a@b>"#), ["a@b"]);
        assert_eq!(
            list(r#""A; \"Quoted\" Name" <to5@example.com>"#),
            ["to5@example.com"]
        );
    }

    #[test]
    fn edge_20_comments_dropped() {
        assert_eq!(list("a@x (Al)"), ["a@x"]);
        assert_eq!(
            list(r"Some(wonderful \) chap) <to10(his account)@localhost(this host)>"),
            ["to10@localhost"]
        );
        assert_eq!(list("a@x (outer (nested) comment), b@y"), ["a@x", "b@y"]);
        assert_eq!(bad("a@x (unclosed"), "unclosed comment '('");
    }

    #[test]
    fn edge_21_empty_group_is_no_recipient() {
        assert!(list("undisclosed-recipients:;").is_empty());
        assert!(list("Undisclosed recipients:;").is_empty());
        assert!(
            list("(Empty list)(start)Undisclosed recipients  :(nobody(that I know))  ;").is_empty()
        );
    }

    #[test]
    fn groups_with_members() {
        assert_eq!(
            list("A Group:Person 1 <to6@example.com>,to7@example.com,SomeOne <to8@example.com>;"),
            ["to6@example.com", "to7@example.com", "to8@example.com"]
        );
        assert_eq!(list("G: a@x; , b@y"), ["a@x", "b@y"]);
        assert!(bad("G: a@x").contains("to end the group"));
        assert!(bad("G: H: a@x;;").contains("group inside a group"));
    }

    #[test]
    fn edge_22_encoded_words_left_alone() {
        assert_eq!(
            list("=?utf-8?B?VGVzdCDDnHNlcg==?= <to2@example.com>"),
            ["to2@example.com"]
        );
        assert_eq!(list("=?iso-8859-1?q?J=F6rg?= <j@x>"), ["j@x"]);
    }

    #[test]
    fn edge_26_trailing_and_empty_elements() {
        assert_eq!(list("a@x,"), ["a@x"]);
        assert_eq!(list(",a@x,,b@y,,"), ["a@x", "b@y"]);
        assert!(list("").is_empty());
        assert!(list(" , ").is_empty());
    }

    #[test]
    fn quoted_local_parts() {
        assert_eq!(list("\"john smith\"@x"), ["\"john smith\"@x"]);
        // A quoted local part that is a plain dot-atom is sent unquoted.
        assert_eq!(list("\"john\"@x"), ["john@x"]);
        assert_eq!(list(r#""a\"b"@x"#), [r#""a\"b"@x"#]);
    }

    #[test]
    fn domain_literal_and_route() {
        assert_eq!(list("a@[192.0.2.1]"), ["a@[192.0.2.1]"]);
        assert_eq!(list("<@r1.example,@r2.example:a@x>"), ["a@x"]);
    }

    #[test]
    fn phrase_without_address_refused() {
        assert!(bad("John Smith").contains("unexpected"));
        assert!(!bad("a@x b@y").is_empty());
        assert!(!bad("a@").is_empty());
        assert!(!bad("@x").is_empty());
        assert!(!bad("a@x..y").is_empty());
        assert!(!bad("<a@x").is_empty());
        assert!(!bad("a@x>").is_empty());
        assert!(!bad("<>").is_empty());
        assert!(!bad("\"unclosed@x").is_empty());
        assert!(!bad("a\\b@x").is_empty());
    }

    #[test]
    fn edge_07_control_characters_refused() {
        assert!(bad("a@x\u{1}").contains("control"));
        assert!(bad("\"a\u{0}\"@x").contains("control"));
    }

    #[test]
    fn edge_24_utf8_addresses() {
        assert_eq!(list("Jörg <jörg@bücher.example>"), ["jörg@bücher.example"]);
        assert!(parse_address_list(b"a@\xff").is_err());
    }

    #[test]
    fn edge_31_long_addresses_refused() {
        let local = "a".repeat(65);
        assert!(bad(&format!("{local}@x")).contains("longer than 64"));
        let dom = format!("{}.example", "d".repeat(250));
        assert!(bad(&format!("a@{dom}")).contains("longer"));
        let long = format!("{}@{}.{}", "a".repeat(60), "b".repeat(100), "c".repeat(100));
        assert!(bad(&long).contains("longer than 254"));
    }

    #[test]
    fn folded_values() {
        assert_eq!(
            list("a@x,\r\n\tb@y, Some\r\n One <c@z>"),
            ["a@x", "b@y", "c@z"]
        );
        assert_eq!(list("\"Doe,\r\n John\" <j@x>"), ["j@x"]);
    }

    #[test]
    fn addr_spec_for_f() {
        assert_eq!(parse_addr_spec("a@x.org").unwrap().to_string(), "a@x.org");
        let bare = parse_addr_spec("webmaster").unwrap();
        assert_eq!(
            (bare.local.as_str(), bare.domain.as_deref()),
            ("webmaster", None)
        );
        assert_eq!(bare.qualified("d.example"), "webmaster@d.example");
        // A quoted local part holding '@' is still unqualified.
        assert_eq!(
            parse_addr_spec(r#""a@b""#).unwrap().qualified("d"),
            r#""a@b"@d"#
        );
        assert!(parse_addr_spec("Name <a@x>").is_err());
        assert!(parse_addr_spec("a@x,b@y").is_err());
        assert!(parse_addr_spec("").is_err());
    }
}
