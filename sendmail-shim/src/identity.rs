//! Who is sending: the real uid, its name, the mail domain, and the `X-BaseOS-Origin` tag.
//!
//! Inside the chroot NSS is absent or wrong, so nothing here calls `getpwuid`, `getlogin` or
//! `gethostname` through libc's resolver: the uid comes from the kernel (`getuid`), the name
//! from parsing `<root>/etc/passwd` ourselves, the node name from `uname`. The parsing and
//! formatting functions are pure (bytes in, text out) so they are unit-tested on their own;
//! [`Identity::detect`] is the one place that touches the system.
//!
//! The identity is a *claim* the shim writes into the mail; Exim checks it against the ident
//! of the connection (contract 3), so nothing here needs to be trusted, only to be accurate and
//! unable to break the header it is written into.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::address;

/// Longest value written for `script=` and `cwd=` (after escaping), in bytes.
pub const MAX_VALUE: usize = 255;

/// The sending user as far as the shim can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Real uid of the process.
    pub uid: u32,
    /// Login name from the chroot's `/etc/passwd`; `None` when absent or not a safe name.
    pub user: Option<String>,
    /// Mail domain: config `domain`, else `/etc/mailname`, else the kernel node name.
    pub domain: String,
    /// `SCRIPT_FILENAME` from the environment (PHP-FPM/CGI), raw bytes.
    pub script: Option<Vec<u8>>,
    /// The working directory, raw bytes; `None` if it could not be read.
    pub cwd: Option<Vec<u8>>,
}

impl Identity {
    /// Reads the identity from the running system. `root` is `/` in production (the chroot is
    /// already the root); tests pass a temp dir. `configured_domain` is the config's `domain`.
    /// Never fails: every missing piece has a fallback (edge case 49: no passwd, no /proc).
    pub fn detect(root: &Path, configured_domain: Option<&str>) -> Identity {
        let uid = rustix::process::getuid().as_raw();
        let user = std::fs::read(root.join("etc/passwd"))
            .ok()
            .and_then(|p| user_from_passwd(&p, uid));
        let domain = match configured_domain {
            Some(d) => d.to_owned(),
            None => std::fs::read(root.join("etc/mailname"))
                .ok()
                .and_then(|m| domain_from_mailname(&m))
                .or_else(|| {
                    let uname = rustix::system::uname();
                    domain_from_mailname(uname.nodename().to_bytes())
                })
                .unwrap_or_else(|| "localhost".to_owned()),
        };
        let script = script_from_env(std::env::var_os("SCRIPT_FILENAME").as_deref());
        let cwd = std::env::current_dir()
            .ok()
            .map(|p| p.as_os_str().as_bytes().to_vec());
        Identity {
            uid,
            user,
            domain,
            script,
            cwd,
        }
    }

    /// The local part of the default sender: the user name, else `uid<N>`.
    pub fn local_part(&self) -> String {
        match &self.user {
            Some(u) => u.clone(),
            None => format!("uid{}", self.uid),
        }
    }

    /// The default envelope sender, `user@domain`.
    pub fn default_sender(&self) -> String {
        format!("{}@{}", self.local_part(), self.domain)
    }

    /// The `X-BaseOS-Origin` field value (without the name and without CRLF):
    /// `uid=1001 user=alice script="/home/alice/www/wp-mail.php" cwd="/home/alice/www"`.
    pub fn origin_value(&self) -> String {
        let mut v = format!("uid={}", self.uid);
        if let Some(u) = &self.user {
            v.push_str(" user=");
            v.push_str(u);
        }
        if let Some(s) = &self.script {
            v.push_str(" script=");
            v.push_str(&quote_value(s));
        }
        if let Some(c) = &self.cwd {
            v.push_str(" cwd=");
            v.push_str(&quote_value(c));
        }
        v
    }

    /// The whole header line, CRLF included, ready to go first in the mail.
    pub fn origin_header(&self) -> String {
        format!("{ORIGIN_HEADER}: {}\r\n", self.origin_value())
    }
}

/// The name of the origin tag header.
pub const ORIGIN_HEADER: &str = "X-BaseOS-Origin";

/// Finds `uid`'s login name in passwd(5) bytes. The first matching line wins, as with
/// `getpwuid`. Names that are not plain login names (which could break the origin header or
/// make an odd local part) are treated as unknown.
pub fn user_from_passwd(passwd: &[u8], uid: u32) -> Option<String> {
    passwd.split(|&b| b == b'\n').find_map(|line| {
        let mut fields = line.split(|&b| b == b':');
        let name = fields.next()?;
        let _password = fields.next()?;
        let line_uid = std::str::from_utf8(fields.next()?)
            .ok()?
            .parse::<u32>()
            .ok()?;
        (line_uid == uid && is_login_name(name)).then(|| String::from_utf8_lossy(name).into_owned())
    })
}

/// A conservative login name, the one `exim-policy`'s origin check accepts
/// (`[a-z_][a-z0-9_.-]{0,31}`, Debian's default `NAME_REGEX` plus `.`), and a valid dot-atom
/// so it can be a local part unquoted. Anything else is written as "unknown" (`uid` only)
/// rather than as a `user=` the policy would take for a forgery.
fn is_login_name(name: &[u8]) -> bool {
    match name.split_first() {
        Some((&first, rest)) => {
            name.len() <= 32
                && (first.is_ascii_lowercase() || first == b'_')
                && rest
                    .iter()
                    .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
                && std::str::from_utf8(name).is_ok_and(address::is_dot_atom)
        }
        None => false,
    }
}

/// The domain from `/etc/mailname`-style bytes (first line, trimmed), or from a node name.
/// `None` when empty or not a plausible domain (`(none)`, spaces, control characters).
pub fn domain_from_mailname(bytes: &[u8]) -> Option<String> {
    let line = bytes.split(|&b| b == b'\n').next()?;
    let s = std::str::from_utf8(line).ok()?.trim();
    is_domain(s).then(|| s.to_owned())
}

/// A host name or domain usable after `@` and in EHLO: dot-separated labels of letters, digits,
/// `-` and `_` (UTF-8 labels allowed), at most 253 bytes.
pub fn is_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b >= 0x80)
        })
        && std::str::from_utf8(s.as_bytes()).is_ok()
}

/// Quotes a value for the origin header: `"` and `\` escaped, control characters (C0, DEL,
/// C1) and bytes that are not UTF-8 replaced by `?`, cut at [`MAX_VALUE`] bytes on a character
/// boundary (never between a backslash and the character it escapes).
pub fn quote_value(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(raw.len().min(MAX_VALUE) + 2);
    out.push('"');
    let mut used = 0;
    for c in text.chars() {
        let piece: &str = &match c {
            '"' => "\\\"".to_owned(),
            '\\' => "\\\\".to_owned(),
            '\u{FFFD}' => "?".to_owned(),
            c if c.is_control() => "?".to_owned(),
            c => c.to_string(),
        };
        if used + piece.len() > MAX_VALUE {
            break;
        }
        used += piece.len();
        out.push_str(piece);
    }
    out.push('"');
    out
}

/// The `script=` value from `SCRIPT_FILENAME` (set by PHP-FPM/CGI, absent for PHP CLI and
/// cron); an empty value counts as absent.
pub fn script_from_env(value: Option<&OsStr>) -> Option<Vec<u8>> {
    value
        .filter(|s| !s.is_empty())
        .map(|s| s.as_bytes().to_vec())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/bash\n\
        # a comment line\n\
        +nis::::::\n\
        alice:x:1001:1001:Alice,,,:/home/alice:/bin/sh\n\
        bob:x:1002:1002::/home/bob:/bin/sh\n\
        alias:x:1002:1002::/home/bob:/bin/sh\n\
        evil user:x:1003:1003::/:/bin/sh\n\
        broken-line-without-fields\n\
        carol:x:notanumber:1:::\n\
        dave:x:1004:1004::/:/bin/sh";

    #[test]
    fn passwd_lookup() {
        assert_eq!(user_from_passwd(PASSWD, 0).as_deref(), Some("root"));
        assert_eq!(user_from_passwd(PASSWD, 1001).as_deref(), Some("alice"));
        // First match wins, like getpwuid.
        assert_eq!(user_from_passwd(PASSWD, 1002).as_deref(), Some("bob"));
        // Unsafe names are unknown rather than written into a header.
        assert_eq!(user_from_passwd(PASSWD, 1003), None);
        assert_eq!(user_from_passwd(PASSWD, 4242), None);
        // Last line without a newline.
        assert_eq!(user_from_passwd(PASSWD, 1004).as_deref(), Some("dave"));
        assert_eq!(user_from_passwd(b"", 0), None);
        assert_eq!(user_from_passwd(b"\xff\xfe:x:5:5::/:/\n", 5), None);
        for odd in ["Alice", "1abc", "-x", "a..b", "a.", "_ok"] {
            let line = format!("{odd}:x:7:7::/:/bin/sh\n");
            let want = (odd == "_ok").then(|| odd.to_owned());
            assert_eq!(user_from_passwd(line.as_bytes(), 7), want, "{odd}");
        }
        let long = format!("{}:x:8:8::/:/bin/sh\n", "a".repeat(33));
        assert_eq!(user_from_passwd(long.as_bytes(), 8), None);
    }

    fn ident(user: Option<&str>) -> Identity {
        Identity {
            uid: 1001,
            user: user.map(str::to_owned),
            domain: "host.example".into(),
            script: Some(b"/home/alice/www/wp-mail.php".to_vec()),
            cwd: Some(b"/home/alice/www".to_vec()),
        }
    }

    #[test]
    fn origin_header_exact_format() {
        assert_eq!(
            ident(Some("alice")).origin_header(),
            "X-BaseOS-Origin: uid=1001 user=alice script=\"/home/alice/www/wp-mail.php\" \
             cwd=\"/home/alice/www\"\r\n"
        );
    }

    #[test]
    fn edge_49_unknown_user() {
        let id = ident(None);
        assert_eq!(
            id.origin_value(),
            "uid=1001 script=\"/home/alice/www/wp-mail.php\" cwd=\"/home/alice/www\""
        );
        assert_eq!(id.default_sender(), "uid1001@host.example");
        let mut id = ident(Some("alice"));
        id.script = None;
        id.cwd = None;
        assert_eq!(id.origin_value(), "uid=1001 user=alice");
        assert_eq!(id.default_sender(), "alice@host.example");
    }

    #[test]
    fn quoting_escapes_and_replaces() {
        assert_eq!(quote_value(br#"/a "b" \c"#), r#""/a \"b\" \\c""#);
        assert_eq!(quote_value(b"/a\r\nX-Evil: 1\t\x7f"), "\"/a??X-Evil: 1??\"");
        assert_eq!(quote_value(b"/caf\xc3\xa9/\xff"), "\"/caf\u{e9}/?\"");
        assert_eq!(quote_value("/a\u{85}b".as_bytes()), "\"/a?b\"");
    }

    #[test]
    fn quoting_cuts_at_255_bytes_on_boundaries() {
        let v = quote_value(&[b'a'; 1000]);
        assert_eq!(v.len(), MAX_VALUE + 2);
        // 2-byte characters: never cut inside one.
        let v = quote_value("é".repeat(200).as_bytes());
        assert_eq!(v.len(), 254 + 2);
        assert!(v.ends_with("é\""));
        // Never cut between a backslash and what it escapes.
        let mut raw = vec![b'a'; 254];
        raw.push(b'"');
        let v = quote_value(&raw);
        assert_eq!(v, format!("\"{}\"", "a".repeat(254)));
    }

    #[test]
    fn origin_header_stays_one_short_line() {
        let id = Identity {
            uid: u32::MAX,
            user: Some("a".repeat(32)),
            domain: "x".into(),
            script: Some(vec![b'\n'; 5000]),
            cwd: Some(vec![b'\\'; 5000]),
        };
        let h = id.origin_header();
        assert!(h.len() < 998);
        assert_eq!(h.matches("\r\n").count(), 1);
        assert!(!h[..h.len() - 2].bytes().any(|b| b == b'\r' || b == b'\n'));
    }

    #[test]
    fn mailname_parsing() {
        assert_eq!(
            domain_from_mailname(b"mail.example.com\n").as_deref(),
            Some("mail.example.com")
        );
        assert_eq!(
            domain_from_mailname(b"  host \nsecond\n").as_deref(),
            Some("host")
        );
        assert_eq!(domain_from_mailname(b""), None);
        assert_eq!(domain_from_mailname(b"(none)"), None);
        assert_eq!(domain_from_mailname(b"a b"), None);
        assert_eq!(domain_from_mailname(b"a..b"), None);
    }

    #[test]
    fn detect_in_an_empty_root_falls_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let id = Identity::detect(dir.path(), None);
        assert_eq!(id.uid, rustix::process::getuid().as_raw());
        assert_eq!(id.user, None);
        assert!(is_domain(&id.domain), "{}", id.domain);
        assert_eq!(id.local_part(), format!("uid{}", id.uid));
    }

    #[test]
    fn detect_reads_passwd_and_mailname_under_root() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("etc")).expect("mkdir");
        let uid = rustix::process::getuid().as_raw();
        std::fs::write(
            dir.path().join("etc/passwd"),
            format!("someone:x:{uid}:0::/:/bin/sh\n"),
        )
        .expect("write passwd");
        std::fs::write(dir.path().join("etc/mailname"), "mail.test.example\n").expect("write");
        let id = Identity::detect(dir.path(), None);
        assert_eq!(id.user.as_deref(), Some("someone"));
        assert_eq!(id.domain, "mail.test.example");
        let id = Identity::detect(dir.path(), Some("configured.example"));
        assert_eq!(id.domain, "configured.example");
    }

    #[test]
    fn script_env() {
        assert_eq!(script_from_env(None), None);
        assert_eq!(script_from_env(Some(OsStr::new(""))), None);
        assert_eq!(
            script_from_env(Some(OsStr::new("/x.php"))),
            Some(b"/x.php".to_vec())
        );
    }
}
