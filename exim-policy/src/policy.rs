//! The policy file (TOML): which loopback addresses get an ident lookup, per-user limits,
//! blocks, allowed sender domains, and what to do with the `X-BaseOS-Origin` header.
//!
//! [`Policy::parse`] refuses anything Exim would only reject at run time (zero or negative
//! counts, bad periods), user names that are not plain logins or uids, and unknown keys,
//! with the line number and the fix. See `examples/policy.toml` for the commented example.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result};

/// Largest count accepted for a limit (Exim keeps rates as doubles; this keeps them exact).
const MAX_COUNT: i64 = 1_000_000_000;

/// What happens to mail over a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverLimit {
    /// 4xx: the sender retries later (the default; a hacked script's mail waits, nothing lost).
    Defer,
    /// 5xx: the mail is refused for good.
    Reject,
}

/// What happens to a mail whose `X-BaseOS-Origin` disagrees with the ident (or is malformed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Forged {
    /// 5xx after DATA (the default).
    Reject,
    /// Remove the header, accept the mail, log it.
    Strip,
}

/// Whether the origin header stays in the mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OriginHeader {
    /// Keep the (checked) header in the mail (the default).
    Keep,
    /// Remove it on arrival, after it was checked and logged: it never leaves the host.
    Remove,
}

/// How per-user allowed envelope-sender domains are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SenderMode {
    /// Not checked (the default).
    Off,
    /// A sender outside the user's domains is logged, the mail accepted.
    Log,
    /// A sender outside the user's domains is refused at MAIL.
    Enforce,
}

/// One rate: `count` per `period` (an Exim time like `1h`, `30m`, `1d`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rate {
    /// How many per period (1 or more).
    pub count: u32,
    /// Exim time value, validated: digits then one of `s m h d w`.
    pub period: String,
}

/// Messages and recipients per period; `None` = no limit of that kind.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Limits {
    /// Messages (MAIL commands) per period.
    pub messages: Option<Rate>,
    /// Recipients per period (counted per message at DATA time).
    pub recipients: Option<Rate>,
}

/// The validated settings for one user (defaults merged in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPolicy {
    /// The user's limits (the default limits with this user's overrides applied).
    pub limits: Limits,
    /// Refused at MAIL.
    pub blocked: bool,
    /// Allowed envelope-sender domains (empty: not restricted).
    pub sender_domains: Vec<String>,
}

/// Settings for the standalone layout (a complete `exim.conf`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standalone {
    /// `primary_hostname` and `qualify_domain`.
    pub primary_hostname: String,
    /// `daemon_smtp_ports`.
    pub port: u16,
    /// `local_interfaces`.
    pub interfaces: Vec<IpAddr>,
    /// `spool_directory`.
    pub spool_directory: PathBuf,
    /// `log_file_path` (may contain `%s`).
    pub log_file_path: PathBuf,
    /// `pid_file_path`.
    pub pid_file: PathBuf,
    /// Domains delivered locally, all into the one maildir `<mail_dir>/Maildir`.
    pub local_domains: Vec<String>,
    /// Root of the local maildirs.
    pub mail_dir: PathBuf,
    /// `exim_user` / `exim_group`.
    pub exim_user: String,
    /// `exim_group`.
    pub exim_group: String,
    /// Mail from loopback to other domains goes out by DNS (`dnslookup` + `remote_smtp`).
    pub relay: bool,
    /// Where the data files live at run time (None: the render output directory).
    pub data_dir: Option<PathBuf>,
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Client addresses that get an ident lookup and all the per-user rules.
    pub ident_hosts: Vec<IpAddr>,
    /// `rfc1413_query_timeout` (an Exim time, e.g. `2s`).
    pub ident_timeout: String,
    /// Limits of every user without an override.
    pub default_limits: Limits,
    /// Defer or reject over a limit.
    pub over_limit: OverLimit,
    /// Reject or strip a forged origin header.
    pub forged: Forged,
    /// Keep or remove the origin header.
    pub origin_header: OriginHeader,
    /// Sender-domain checking mode.
    pub sender_mode: SenderMode,
    /// Per-user settings, keyed by login name or uid (as written in the file).
    pub users: BTreeMap<String, UserPolicy>,
    /// Standalone layout settings.
    pub standalone: Standalone,
    /// Where the Debian layout's ACL and data files live (default `/etc/exim4/baseos`).
    pub debian_data_dir: PathBuf,
}

// ---- the file as written ------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    ident: RawIdent,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    origin: RawOrigin,
    #[serde(default)]
    sender_domains: RawSenderDomains,
    #[serde(default)]
    users: BTreeMap<String, Spanned<RawUser>>,
    #[serde(default)]
    standalone: RawStandalone,
    #[serde(default)]
    debian: RawDebian,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIdent {
    hosts: Option<Spanned<Vec<String>>>,
    timeout: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    messages: Option<Spanned<i64>>,
    messages_period: Option<Spanned<String>>,
    recipients: Option<Spanned<i64>>,
    recipients_period: Option<Spanned<String>>,
    over_limit: Option<OverLimit>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOrigin {
    forged: Option<Forged>,
    header: Option<OriginHeader>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSenderDomains {
    mode: Option<SenderMode>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawUser {
    messages: Option<Spanned<i64>>,
    messages_period: Option<Spanned<String>>,
    recipients: Option<Spanned<i64>>,
    recipients_period: Option<Spanned<String>>,
    #[serde(default)]
    unlimited: bool,
    #[serde(default)]
    blocked: bool,
    sender_domains: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStandalone {
    primary_hostname: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    interfaces: Option<Spanned<Vec<String>>>,
    spool_directory: Option<Spanned<String>>,
    log_file_path: Option<Spanned<String>>,
    pid_file: Option<Spanned<String>>,
    local_domains: Option<Spanned<Vec<String>>>,
    mail_dir: Option<Spanned<String>>,
    exim_user: Option<Spanned<String>>,
    exim_group: Option<Spanned<String>>,
    relay: Option<bool>,
    data_dir: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDebian {
    data_dir: Option<Spanned<String>>,
}

// ---- validation helpers (also used by render for defence in depth) ------------------------

/// A plain login name: `^[a-z_][a-z0-9_.-]{0,31}$`.
pub fn is_login(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b[1..].iter().all(|&c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b'-')
        })
}

/// A numeric uid: 1 to 10 digits.
pub fn is_uid(s: &str) -> bool {
    !s.is_empty() && s.len() <= 10 && s.bytes().all(|c| c.is_ascii_digit())
}

/// An Exim time with one unit, as `ratelimit` and `rfc1413_query_timeout` accept: `1h`, `30m`.
pub fn is_period(s: &str) -> bool {
    let (digits, unit) = s.split_at(s.len().saturating_sub(1));
    !digits.is_empty()
        && digits.len() <= 6
        && digits.bytes().all(|c| c.is_ascii_digit())
        && digits.bytes().any(|c| c != b'0')
        && matches!(unit, "s" | "m" | "h" | "d" | "w")
}

/// A domain name (lowercase, letters/digits/hyphens), optionally starting with `*.`.
pub fn is_domain(s: &str) -> bool {
    let rest = s.strip_prefix("*.").unwrap_or(s);
    !rest.is_empty()
        && rest.len() <= 253
        && rest.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        })
}

/// An absolute path safe to write into an Exim configuration unquoted.
fn is_config_path(s: &str) -> bool {
    s.starts_with('/')
        && s.bytes().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, b'/' | b'.' | b'_' | b'-' | b'%' | b'+')
        })
        && !s.split('/').any(|part| part == "..")
}

/// Line (1-based) of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&c| c == b'\n')
        .count()
        + 1
}

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: std::ops::Range<usize>, what: &str) -> Error {
        Error::Policy {
            path: self.path.to_path_buf(),
            message: format!("line {}: {what}", line_of(self.text, span.start)),
        }
    }

    fn count(&self, v: &Spanned<i64>, key: &str) -> Result<u32> {
        let n = *v.get_ref();
        if !(1..=MAX_COUNT).contains(&n) {
            return Err(self.err(
                v.span(),
                &format!(
                    "{key} = {n} is not a usable limit (Exim would refuse every mail or fail at run time); \
                     fix: a whole number from 1 to {MAX_COUNT}, or remove the key for no limit"
                ),
            ));
        }
        u32::try_from(n).map_err(|_| self.err(v.span(), &format!("{key} = {n} is too large")))
    }

    fn period(&self, v: &Spanned<String>, key: &str) -> Result<String> {
        let p = v.get_ref();
        if !is_period(p) {
            return Err(self.err(
                v.span(),
                &format!(
                    "{key} = {p:?} is not an Exim period; fix: digits and one unit, like \"30m\", \"1h\", \"1d\" \
                     (units s, m, h, d, w; not zero)"
                ),
            ));
        }
        Ok(p.clone())
    }

    fn rate(
        &self,
        count: Option<&Spanned<i64>>,
        period: Option<&Spanned<String>>,
        inherited: Option<&Rate>,
        key: &str,
    ) -> Result<Option<Rate>> {
        let period_key = format!("{key}_period");
        match (count, period) {
            (Some(c), Some(p)) => Ok(Some(Rate {
                count: self.count(c, key)?,
                period: self.period(p, &period_key)?,
            })),
            (Some(c), None) => {
                let count = self.count(c, key)?;
                let period = inherited.map_or_else(|| "1h".to_string(), |r| r.period.clone());
                Ok(Some(Rate { count, period }))
            }
            (None, Some(p)) => {
                let period = self.period(p, &period_key)?;
                match inherited {
                    Some(r) => Ok(Some(Rate {
                        count: r.count,
                        period,
                    })),
                    None => Err(self.err(
                        p.span(),
                        &format!("{period_key} is set but there is no {key} count; fix: add {key} = <count> or remove {period_key}"),
                    )),
                }
            }
            (None, None) => Ok(inherited.cloned()),
        }
    }

    fn path(&self, v: Option<&Spanned<String>>, key: &str, default: &str) -> Result<PathBuf> {
        match v {
            None => Ok(PathBuf::from(default)),
            Some(v) if is_config_path(v.get_ref()) => Ok(PathBuf::from(v.get_ref())),
            Some(v) => Err(self.err(
                v.span(),
                &format!(
                    "{key} = {:?} is not a plain absolute path; fix: start with / and use only letters, digits, / . _ - % +",
                    v.get_ref()
                ),
            )),
        }
    }

    fn ips(
        &self,
        v: Option<&Spanned<Vec<String>>>,
        key: &str,
        default: &[&str],
    ) -> Result<Vec<IpAddr>> {
        let Some(v) = v else {
            return default
                .iter()
                .map(|s| {
                    s.parse()
                        .map_err(|_| self.err(0..0, "bad built-in default"))
                })
                .collect();
        };
        if v.get_ref().is_empty() {
            return Err(self.err(
                v.span(),
                &format!(
                    "{key} is empty; fix: list at least one address, e.g. [\"127.0.0.1\", \"::1\"]"
                ),
            ));
        }
        v.get_ref()
            .iter()
            .map(|s| {
                s.parse::<IpAddr>().map_err(|_| {
                    self.err(v.span(), &format!("{key}: {s:?} is not an IP address; fix: write addresses like \"127.0.0.1\" or \"::1\""))
                })
            })
            .collect()
    }

    fn name(&self, v: Option<&Spanned<String>>, key: &str, default: &str) -> Result<String> {
        match v {
            None => Ok(default.to_string()),
            Some(v)
                if !v.get_ref().is_empty()
                    && v.get_ref().len() <= 253
                    && v
                        .get_ref()
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_')) =>
            {
                Ok(v.get_ref().clone())
            }
            Some(v) => Err(self.err(
                v.span(),
                &format!("{key} = {:?} has characters Exim would misread; fix: use letters, digits, . - _", v.get_ref()),
            )),
        }
    }
}

impl Policy {
    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Policy> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Policy::parse(&text, path)
    }

    /// Validates policy text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Policy> {
        let cx = Ctx { path, text };
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            let msg = e.message().trim().replace('\n', " ");
            let fix = if msg.contains("unknown field") {
                "; fix: remove or rename the key (see examples/policy.toml for every key)"
            } else if msg.contains("unknown variant") {
                "; fix: use one of the listed values"
            } else if msg.contains("duplicate key") {
                "; fix: keep only one of the two"
            } else if msg.contains("invalid type") {
                "; fix: write the value as examples/policy.toml shows (numbers bare, text and periods in quotes, lists in [ ])"
            } else {
                "; fix: correct the TOML syntax on that line"
            };
            Error::Policy {
                path: path.to_path_buf(),
                message: match line {
                    Some(l) => format!("line {l}: {msg}{fix}"),
                    None => format!("{msg}{fix}"),
                },
            }
        })?;

        let ident_hosts = cx.ips(
            raw.ident.hosts.as_ref(),
            "ident.hosts",
            &["127.0.0.1", "::1"],
        )?;
        let ident_timeout = match &raw.ident.timeout {
            None => "2s".to_string(),
            Some(t) => cx.period(t, "ident.timeout")?,
        };

        let l = &raw.limits;
        let default_limits = Limits {
            messages: cx.rate(
                l.messages.as_ref(),
                l.messages_period.as_ref(),
                None,
                "messages",
            )?,
            recipients: cx.rate(
                l.recipients.as_ref(),
                l.recipients_period.as_ref(),
                None,
                "recipients",
            )?,
        };

        let mut users = BTreeMap::new();
        for (name, u) in &raw.users {
            if !is_login(name) && !is_uid(name) {
                return Err(cx.err(
                    u.span(),
                    &format!(
                        "user {name:?} is neither a plain login name (^[a-z_][a-z0-9_.-]{{0,31}}$) nor a numeric uid; \
                         fix: write the login exactly as in /etc/passwd, or its uid, e.g. [users.alice] or [users.\"1001\"]"
                    ),
                ));
            }
            let r = u.get_ref();
            let limits = if r.unlimited {
                if let Some(c) = r.messages.as_ref().or(r.recipients.as_ref()) {
                    return Err(cx.err(
                        c.span(),
                        &format!(
                            "user {name:?} has unlimited = true and a limit; fix: keep one of them"
                        ),
                    ));
                }
                Limits::default()
            } else {
                Limits {
                    messages: cx.rate(
                        r.messages.as_ref(),
                        r.messages_period.as_ref(),
                        default_limits.messages.as_ref(),
                        "messages",
                    )?,
                    recipients: cx.rate(
                        r.recipients.as_ref(),
                        r.recipients_period.as_ref(),
                        default_limits.recipients.as_ref(),
                        "recipients",
                    )?,
                }
            };
            let mut sender_domains = Vec::new();
            if let Some(d) = &r.sender_domains {
                for dom in d.get_ref() {
                    if !is_domain(dom) {
                        return Err(cx.err(
                            d.span(),
                            &format!(
                                "user {name:?}: sender domain {dom:?} is not a domain name; \
                                 fix: lowercase names like \"example.com\" or \"*.example.com\""
                            ),
                        ));
                    }
                    sender_domains.push(dom.clone());
                }
            }
            users.insert(
                name.clone(),
                UserPolicy {
                    limits,
                    blocked: r.blocked,
                    sender_domains,
                },
            );
        }

        let s = &raw.standalone;
        let port = match &s.port {
            None => 25,
            Some(p) => u16::try_from(*p.get_ref())
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| {
                    cx.err(
                        p.span(),
                        "standalone.port is not a TCP port; fix: a number from 1 to 65535",
                    )
                })?,
        };
        let local_domains = match &s.local_domains {
            None => vec!["localhost".to_string()],
            Some(d) => {
                for dom in d.get_ref() {
                    if !is_domain(dom) {
                        return Err(cx.err(
                            d.span(),
                            &format!("standalone.local_domains: {dom:?} is not a domain name; fix: lowercase names like \"example.com\""),
                        ));
                    }
                }
                d.get_ref().clone()
            }
        };
        let standalone = Standalone {
            primary_hostname: cx.name(
                s.primary_hostname.as_ref(),
                "standalone.primary_hostname",
                "localhost",
            )?,
            port,
            interfaces: cx.ips(
                s.interfaces.as_ref(),
                "standalone.interfaces",
                &["127.0.0.1", "::1"],
            )?,
            spool_directory: cx.path(
                s.spool_directory.as_ref(),
                "standalone.spool_directory",
                "/var/spool/exim-baseos",
            )?,
            log_file_path: cx.path(
                s.log_file_path.as_ref(),
                "standalone.log_file_path",
                "/var/log/exim-baseos/%slog",
            )?,
            pid_file: cx.path(
                s.pid_file.as_ref(),
                "standalone.pid_file",
                "/run/exim-baseos.pid",
            )?,
            local_domains,
            mail_dir: cx.path(
                s.mail_dir.as_ref(),
                "standalone.mail_dir",
                "/var/mail/baseos",
            )?,
            exim_user: cx.name(s.exim_user.as_ref(), "standalone.exim_user", "Debian-exim")?,
            exim_group: cx.name(
                s.exim_group.as_ref(),
                "standalone.exim_group",
                "Debian-exim",
            )?,
            relay: s.relay.unwrap_or(true),
            data_dir: match &s.data_dir {
                None => None,
                Some(d) => Some(cx.path(Some(d), "standalone.data_dir", "")?),
            },
        };
        let debian_data_dir = cx.path(
            raw.debian.data_dir.as_ref(),
            "debian.data_dir",
            "/etc/exim4/baseos",
        )?;

        Ok(Policy {
            ident_hosts,
            ident_timeout,
            default_limits,
            over_limit: raw.limits.over_limit.unwrap_or(OverLimit::Defer),
            forged: raw.origin.forged.unwrap_or(Forged::Reject),
            origin_header: raw.origin.header.unwrap_or(OriginHeader::Keep),
            sender_mode: raw.sender_domains.mode.unwrap_or(SenderMode::Off),
            users,
            standalone,
            debian_data_dir,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Policy> {
        Policy::parse(s, Path::new("p.toml"))
    }

    fn err(s: &str) -> String {
        parse(s).expect_err("must be refused").to_string()
    }

    #[test]
    fn empty_policy_has_safe_defaults() {
        let p = parse("").unwrap();
        assert_eq!(p.ident_hosts.len(), 2);
        assert_eq!(p.ident_timeout, "2s");
        assert_eq!(p.over_limit, OverLimit::Defer);
        assert_eq!(p.forged, Forged::Reject);
        assert_eq!(p.origin_header, OriginHeader::Keep);
        assert_eq!(p.sender_mode, SenderMode::Off);
        assert_eq!(p.default_limits, Limits::default());
    }

    #[test]
    fn shipped_example_is_valid() {
        let text = include_str!("../examples/policy.toml");
        let p = parse(text).unwrap();
        assert!(p.default_limits.messages.is_some());
        assert!(!p.users.is_empty());
    }

    #[test]
    fn overrides_inherit_default_periods() {
        let p = parse(
            "[limits]\nmessages = 10\nmessages_period = \"1d\"\nrecipients = 50\n[users.alice]\nmessages = 99\n[users.\"1001\"]\nunlimited = true\n",
        )
        .unwrap();
        let a = &p.users["alice"];
        assert_eq!(
            a.limits.messages,
            Some(Rate {
                count: 99,
                period: "1d".into()
            })
        );
        assert_eq!(
            a.limits.recipients,
            Some(Rate {
                count: 50,
                period: "1h".into()
            })
        );
        assert_eq!(p.users["1001"].limits, Limits::default());
    }

    #[test]
    fn zero_and_negative_counts_refused_with_line() {
        let e = err("# c\n[limits]\nmessages = 0\n");
        assert!(e.contains("line 3") && e.contains("fix:"), "{e}");
        let e = err("[users.bob]\nrecipients = -5\n");
        assert!(e.contains("line 2") && e.contains("-5"), "{e}");
    }

    #[test]
    fn bad_periods_refused() {
        for bad in ["1 hour", "0h", "h", "1h30m", "-1h", "1x", "", "10/per_rcpt"] {
            let e = err(&format!(
                "[limits]\nmessages = 5\nmessages_period = {bad:?}\n"
            ));
            assert!(
                e.contains("line 3") && e.contains("not an Exim period"),
                "{bad}: {e}"
            );
        }
        for good in ["1h", "30m", "1d", "45s", "2w"] {
            parse(&format!(
                "[limits]\nmessages = 5\nmessages_period = {good:?}\n"
            ))
            .unwrap();
        }
    }

    #[test]
    fn user_names_must_be_plain() {
        for bad in [
            "evil/count=0",
            "Alice",
            "a b",
            "9abc",
            "x:y",
            "averyveryveryveryverylongusername33",
        ] {
            let e = err(&format!("[users.{bad:?}]\nblocked = true\n"));
            assert!(
                e.contains("line 1") && e.contains("plain login"),
                "{bad}: {e}"
            );
        }
        parse("[users.\"1001\"]\nblocked = true\n[users.www-data]\nblocked = true\n").unwrap();
    }

    #[test]
    fn unknown_keys_refused_with_line_and_fix() {
        let e = err("[limits]\nmessages = 5\nmesages_period = \"1h\"\n");
        assert!(
            e.contains("line 3") && e.contains("mesages_period") && e.contains("fix:"),
            "{e}"
        );
        let e = err("[nonsense]\n");
        assert!(e.contains("nonsense"), "{e}");
        let e = err("[origin]\nforged = \"drop\"\n");
        assert!(e.contains("line 2") && e.contains("drop"), "{e}");
    }

    #[test]
    fn syntax_and_type_errors_are_one_line_with_a_fix() {
        for bad in [
            "[limits",
            "[limits]\nmessages = 5\nmessages = 6\n",
            "[limits]\nmessages = \"ten\"\n",
        ] {
            let e = err(bad);
            assert!(
                e.contains("line ") && e.contains("fix:") && !e.contains('\n'),
                "{e}"
            );
        }
    }

    #[test]
    fn period_without_count_and_unlimited_conflicts() {
        let e = err("[limits]\nrecipients_period = \"1h\"\n");
        assert!(e.contains("no recipients count"), "{e}");
        let e = err("[users.a]\nunlimited = true\nmessages = 3\n");
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn domains_and_paths_validated() {
        let e = err("[users.a]\nsender_domains = [\"ex ample.com\"]\n");
        assert!(e.contains("not a domain"), "{e}");
        let e = err("[standalone]\nspool_directory = \"relative/x\"\n");
        assert!(e.contains("absolute path"), "{e}");
        let e = err("[standalone]\nspool_directory = \"/var/${run{x}}\"\n");
        assert!(e.contains("absolute path"), "{e}");
        let e = err("[ident]\nhosts = [\"localhost\"]\n");
        assert!(e.contains("not an IP address"), "{e}");
    }
}
