//! The optional config file and the final [`Settings`].
//!
//! The file is TOML, default `/etc/baseos/sendmail.toml` inside the chroot, overridable only by
//! the environment variable `BASEOS_SENDMAIL_CONFIG` (see `args` for why there is no option).
//! A missing *default* file is fine (every key has a default); a file named by the environment
//! variable must exist. Unknown keys are an error, not ignored: a misspelt `max_sise` silently
//! ignored would leave the administrator believing a limit holds. Every error is
//! [`Error::Config`] (exit 78) and names the file, the line, the key and the fix.
//!
//! ```toml
//! server = "127.0.0.1"      # SMTP server (IP literal or name)
//! port = 25
//! domain = "example.com"    # for user@domain and Message-ID; else /etc/mailname, else uname
//! timeout = 60              # seconds per connect/read/write (-T overrides)
//! deadline = 120            # seconds for the whole submission, retries included
//! retry_for = 15            # seconds to retry a refused connection or a 421
//! max_size = 52428800       # octets; larger mail is refused with 65
//! origin_header = true      # add X-BaseOS-Origin
//! ```
//!
//! Flags (`-s`, `-p`, `-T`, `-v`) override the file.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::args::{Invocation, DEFAULT_CONFIG};
use crate::error::{Error, Result};
use crate::identity;
use crate::submission::Settings;

/// Default server.
pub const DEFAULT_SERVER: &str = "127.0.0.1";
/// Default port.
pub const DEFAULT_PORT: u16 = 25;
/// Default per-step timeout (mini_sendmail's 60 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default overall deadline: two full steps; a PHP worker must not hang on a mail for longer.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(120);
/// Default retry window for a refused connection or a 421 (an Exim restart).
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(15);
/// Default size cap: 50 MiB, Exim's default `message_size_limit`.
pub const DEFAULT_MAX_SIZE: u64 = 50 * 1024 * 1024;

/// The config file's keys, all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// SMTP server host.
    pub server: Option<String>,
    /// SMTP server port.
    pub port: Option<u16>,
    /// Mail domain for the default sender, unqualified addresses and the Message-ID.
    pub domain: Option<String>,
    /// Per-step timeout in seconds.
    pub timeout: Option<u64>,
    /// Overall deadline in seconds.
    pub deadline: Option<u64>,
    /// Retry window in seconds.
    pub retry_for: Option<u64>,
    /// Largest mail in octets.
    pub max_size: Option<u64>,
    /// Whether to add the `X-BaseOS-Origin` header (default true).
    pub origin_header: Option<bool>,
}

/// Everything resolved: the submission settings plus what message preparation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where and how to submit (the contract with the SMTP side).
    pub settings: Settings,
    /// Add the `X-BaseOS-Origin` header (config `origin_header`, default true).
    pub origin_header: bool,
}

/// The config file to read: `$BASEOS_SENDMAIL_CONFIG` when set and non-empty, else the
/// default. The flag says whether the file was named explicitly (then it must exist).
pub fn config_path(env_value: Option<&OsStr>) -> (PathBuf, bool) {
    match env_value.filter(|v| !v.is_empty()) {
        Some(v) => (PathBuf::from(v), true),
        None => (PathBuf::from(DEFAULT_CONFIG), false),
    }
}

/// Reads and checks the config file. A missing file is an empty config unless `required`.
pub fn load(path: &Path, required: bool) -> Result<FileConfig> {
    match std::fs::read(path) {
        Ok(bytes) => parse(&bytes, path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            Ok(FileConfig::default())
        }
        Err(e) => Err(Error::Config(format!(
            "cannot read config file {}: {e}; fix the path in {} or the file's permissions",
            path.display(),
            crate::args::CONFIG_ENV
        ))),
    }
}

/// Parses and checks config bytes; `path` is only used in messages.
pub fn parse(bytes: &[u8], path: &Path) -> Result<FileConfig> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Error::Config(format!(
            "config file {} is not UTF-8 text (at byte {}); save it as UTF-8",
            path.display(),
            e.valid_up_to()
        ))
    })?;
    let cfg: FileConfig = toml::from_str(text).map_err(|e| {
        // Name the line and, for a `key = value` line, the key (toml's type errors do not).
        let start = e.span().map_or(0, |s| s.start.min(text.len()));
        let line_no = text.as_bytes()[..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        let line_text = text.lines().nth(line_no - 1).unwrap_or("");
        let key = match line_text.split_once('=') {
            Some((k, _)) if !k.trim().is_empty() && e.span().is_some() => {
                format!(" ({})", k.trim())
            }
            _ => String::new(),
        };
        let at = if e.span().is_some() {
            format!(" line {line_no}{key}")
        } else {
            String::new()
        };
        // toml's message is one sentence; keep the error on one line.
        let msg = e.message().trim().replace('\n', " ");
        let fix = if msg.contains("unknown field") {
            "fix the key's spelling or remove it"
        } else {
            "fix the value (see the README for each key's type)"
        };
        Error::Config(format!("config file {}{at}: {msg}; {fix}", path.display()))
    })?;
    check(&cfg, path)?;
    Ok(cfg)
}

/// Value checks that TOML types cannot express.
fn check(cfg: &FileConfig, path: &Path) -> Result<()> {
    let bad = |key: &str, why: &str| {
        Err(Error::Config(format!(
            "config file {}: {key} {why}",
            path.display()
        )))
    };
    if let Some(s) = &cfg.server {
        if s.is_empty() || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return bad(
                "server",
                "must be a host name or IP address, e.g. server = \"127.0.0.1\"",
            );
        }
    }
    if cfg.port == Some(0) {
        return bad("port", "must be 1 to 65535, e.g. port = 25");
    }
    if let Some(d) = &cfg.domain {
        if !identity::is_domain(d) {
            return bad("domain", "must be a domain name such as \"example.com\"");
        }
    }
    for (key, v) in [("timeout", cfg.timeout), ("deadline", cfg.deadline)] {
        if let Some(v) = v {
            if v == 0 || v > 86_400 {
                return bad(key, "must be 1 to 86400 seconds");
            }
        }
    }
    if cfg.retry_for.is_some_and(|v| v > 86_400) {
        return bad("retry_for", "must be 0 to 86400 seconds");
    }
    if cfg.max_size == Some(0) {
        return bad(
            "max_size",
            "must be a size in octets above 0, e.g. max_size = 52428800",
        );
    }
    Ok(())
}

/// Combines file and flags into the final settings; flags win. `helo_name` is the name given
/// in EHLO (the identity's domain).
pub fn resolve(file: &FileConfig, inv: &Invocation, helo_name: &str) -> Config {
    let deadline = file.deadline.map_or(DEFAULT_DEADLINE, Duration::from_secs);
    let timeout = match inv.timeout {
        // mini_sendmail's -T0 means "no per-step timeout": the overall deadline still holds.
        Some(t) if t.is_zero() => deadline,
        Some(t) => t,
        None => file.timeout.map_or(DEFAULT_TIMEOUT, Duration::from_secs),
    };
    Config {
        settings: Settings {
            server: inv
                .server
                .clone()
                .or_else(|| file.server.clone())
                .unwrap_or_else(|| DEFAULT_SERVER.to_owned()),
            port: inv.port.or(file.port).unwrap_or(DEFAULT_PORT),
            timeout,
            deadline,
            retry_for: file
                .retry_for
                .map_or(DEFAULT_RETRY_FOR, Duration::from_secs),
            max_size: file.max_size.unwrap_or(DEFAULT_MAX_SIZE),
            helo_name: helo_name.to_owned(),
            verbose: inv.verbose,
        },
        origin_header: file.origin_header.unwrap_or(true),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<FileConfig> {
        parse(s.as_bytes(), Path::new("/etc/baseos/sendmail.toml"))
    }

    fn config_err(s: &str) -> String {
        match parse_str(s) {
            Err(e @ Error::Config(_)) => {
                assert_eq!(e.exit_code(), 78);
                let m = e.to_string();
                assert!(!m.contains('\n'), "one line: {m}");
                m
            }
            other => panic!("{s:?}: expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn full_file() {
        let cfg = parse_str(
            "server = \"10.1.2.3\"\nport = 2525\ndomain = \"example.com\"\ntimeout = 30\n\
             deadline = 90\nretry_for = 5\nmax_size = 1000\norigin_header = false\n",
        )
        .unwrap();
        let c = resolve(&cfg, &Invocation::default(), "example.com");
        assert_eq!(c.settings.server, "10.1.2.3");
        assert_eq!(c.settings.port, 2525);
        assert_eq!(c.settings.timeout, Duration::from_secs(30));
        assert_eq!(c.settings.deadline, Duration::from_secs(90));
        assert_eq!(c.settings.retry_for, Duration::from_secs(5));
        assert_eq!(c.settings.max_size, 1000);
        assert!(!c.origin_header);
    }

    #[test]
    fn defaults() {
        let c = resolve(&FileConfig::default(), &Invocation::default(), "h.example");
        assert_eq!(
            c.settings,
            Settings {
                server: "127.0.0.1".into(),
                port: 25,
                timeout: Duration::from_secs(60),
                deadline: Duration::from_secs(120),
                retry_for: Duration::from_secs(15),
                max_size: 50 * 1024 * 1024,
                helo_name: "h.example".into(),
                verbose: false,
            }
        );
        assert!(c.origin_header);
    }

    #[test]
    fn flags_override_file() {
        let cfg = parse_str("server = \"10.1.2.3\"\nport = 2525\ntimeout = 30\n").unwrap();
        let inv = Invocation {
            server: Some("::1".into()),
            port: Some(26),
            timeout: Some(Duration::from_secs(7)),
            verbose: true,
            ..Invocation::default()
        };
        let s = resolve(&cfg, &inv, "h").settings;
        assert_eq!(
            (s.server.as_str(), s.port, s.timeout, s.verbose),
            ("::1", 26, Duration::from_secs(7), true)
        );
        // -T0: bounded by the deadline only.
        let inv = Invocation {
            timeout: Some(Duration::ZERO),
            ..Invocation::default()
        };
        assert_eq!(resolve(&cfg, &inv, "h").settings.timeout, DEFAULT_DEADLINE);
    }

    #[test]
    fn unknown_key_named() {
        let m = config_err("server = \"x\"\nmax_sise = 5\n");
        assert!(
            m.contains("max_sise") && m.contains("line 2") && m.contains("max_size"),
            "{m}"
        );
    }

    #[test]
    fn wrong_types_and_values_named() {
        let m = config_err("server = \"x\"\nport = \"25\"");
        assert!(m.contains("line 2 (port): invalid type"), "{m}");
        assert!(config_err("port = 70000").contains("line 1"));
        assert!(config_err("port = 0").contains("port"));
        assert!(config_err("timeout = 0").contains("timeout"));
        assert!(config_err("max_size = 0").contains("max_size"));
        assert!(config_err("max_size = -1").contains("line 1"));
        assert!(config_err("domain = \"a b\"").contains("domain"));
        assert!(config_err("server = \"\"").contains("server"));
        assert!(config_err("this is not toml").contains("sendmail.toml"));
        let e = parse(b"\xff", Path::new("/c.toml")).unwrap_err();
        assert!(e.to_string().contains("UTF-8"));
    }

    #[test]
    fn missing_default_file_is_fine_missing_named_file_is_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("none.toml");
        assert_eq!(load(&missing, false).unwrap(), FileConfig::default());
        let e = load(&missing, true).unwrap_err();
        assert_eq!(e.exit_code(), 78);
        assert!(e.to_string().contains("none.toml"));
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "port = 2526\n").expect("write");
        assert_eq!(load(&f, true).unwrap().port, Some(2526));
    }

    #[test]
    fn path_from_environment() {
        assert_eq!(
            config_path(None),
            (PathBuf::from("/etc/baseos/sendmail.toml"), false)
        );
        assert_eq!(
            config_path(Some(OsStr::new(""))),
            (PathBuf::from("/etc/baseos/sendmail.toml"), false)
        );
        assert_eq!(
            config_path(Some(OsStr::new("/x.toml"))),
            (PathBuf::from("/x.toml"), true)
        );
    }
}
