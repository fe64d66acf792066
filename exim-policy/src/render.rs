//! `exim-policy render`: writes the Exim configuration for ident-based per-user limits.
//!
//! # Log lines written by the rendered configuration (the contract with `report`)
//!
//! Every line below is a normal Exim mainlog line: `YYYY-MM-DD HH:MM:SS` (`.mmm` with
//! `+millisec`), then ` [pid]` when `log_selector` has `+pid`, then the text. Lines about a
//! message carry the Exim message id (e.g. `1xZ6T6-00064g-31`, written by Exim itself) before
//! the text, the same id as that message's `<=` line, which comes just AFTER the
//! `BASEOS-ORIGIN` line of the same message (both from the same process).
//!
//! Accepted origin (DATA ACL `logwrite`, only for a loopback message that carried one valid
//! `X-BaseOS-Origin` whose user/uid agree with the ident; a message without the header, e.g.
//! direct SMTP, has no such line). Real line (as produced by Exim 4.96):
//!
//! ```text
//! 2026-12-03 14:51:01 [19275] 1xZ89F-00050t-33 BASEOS-ORIGIN U=daemon uid=1 user=daemon script="/home/d/www/a \"q\" b\\c\303\251.php" cwd="/home/d"
//! ```
//!
//! Fields, always all of them, always in this order, separated by one space:
//! - `U=<ident>`: `$sender_ident`, a plain login (`^[a-z_][a-z0-9_.-]{0,31}$`) or a uid
//!   (`^[0-9]{1,10}$`) — the same value as the `U=` of the `<=` line.
//! - `uid=<digits>`: the header's uid (checked against the ident).
//! - `user=<login>`, or `user=-` when the header had no `user=`.
//! - `script="<text>"`, `cwd="<text>"`: the header's values, `""` when absent. Inside the quotes
//!   `\"` is a quote, `\\` a backslash, and `\NNN` (backslash + exactly 3 octal digits) is a
//!   byte >= 0x80 that Exim's log writer escaped (above: `\303\251` = UTF-8 `é`). No other
//!   escapes occur and the values never contain control characters (such a header is refused
//!   as malformed before logging).
//!
//! Forged, malformed or repeated origin header, policy `forged = "reject"` (Exim's own reject
//! line, in mainlog and rejectlog):
//!
//! ```text
//! 2026-12-03 14:51:01 [19278] 1xZ89F-00050w-36 H=(x) [127.0.0.1]:40312 U=daemon F=<d@x.example> rejected after DATA: BASEOS-FORGED U=daemon claimed="uid=2 user=bin"
//! ```
//!
//! policy `forged = "strip"` (the header is removed, the mail accepted, and `logwrite` says):
//!
//! ```text
//! 2026-12-03 14:51:01 [19278] 1xZ89F-00050w-36 BASEOS-FORGED U=daemon action=stripped claimed="uid=2 user=bin"
//! ```
//!
//! `claimed="..."` is the header value(s) (several headers joined by `\n`), with `\"`, `\\`,
//! and Exim's `${escape:}` (`\n`, `\t`, `\NNN` octal) for anything else. It is always last.
//!
//! Other refusals (Exim's `rejected ...` lines; the text after the colon is ours):
//! - `BASEOS-NOIDENT` (connect: loopback connection without ident; Exim says
//!   `temporarily rejected connection in "connect" ACL: BASEOS-NOIDENT`),
//! - `BASEOS-BADIDENT ident="<ident>"` (connect/MAIL: ident not a plain login or uid),
//! - `BASEOS-BLOCKED U=<ident>` (MAIL),
//! - `BASEOS-SENDER U=<ident> sender=<addr>` (MAIL, sender domain not allowed; with mode `log`
//!   the same text is a `logwrite` line ending in ` action=logged`, without a message id),
//! - `BASEOS-LIMIT U=<ident> what=messages|recipients rate=<r> limit=<m> period=<p>` (MAIL for
//!   messages, predata for recipients),
//! - `BASEOS-BADDATA U=<ident> ...` (a hand-edited data file row is not valid).
//!
//! # What is rendered
//!
//! One set of ACLs (connect, MAIL, predata, DATA) and three lookup data files:
//! - `limits`: `<user>: kind=user msgs=<n>/<period> rcpts=<n>/<period>` (either limit may be
//!   missing; the row `*: kind=default ...` holds the default, `kind=unlimited` marks a user
//!   without limits),
//! - `blocked`: `<user>: blocked`,
//! - `senders`: `<user>: <domain> : <domain> ...`.
//!
//! `<user>` is a login or a uid. Exim looks a user up by `$sender_ident`, then (only when the
//! policy keys some user by uid) by the ident's uid (Exim's `passwd` lookup, i.e. `getpwnam`,
//! live), then falls back to `*`. The files are
//! `lsearch` files read by each SMTP connection: a change applies to the next connection
//! without a reload or restart. Every value read from them is syntax-checked in the ACL before
//! it reaches `ratelimit` (a hand-edited bad row defers the user's mail with `BASEOS-BADDATA`).
//!
//! Origin check: the header's `user=` must equal the ident (or, for a numeric ident, map to it
//! through `passwd`), and its `uid=` must equal the ident's uid (`passwd` lookup of the ident;
//! the ident itself when numeric). A malformed or repeated header counts as forged.
//!
//! Layouts:
//! - `standalone`: `exim.conf` (ACLs inline, so `exim -bV` parses them) + the data files.
//! - `debian`: `conf.d/main/00_baseos-policy` (split config) and `exim4.conf.localmacros`
//!   (unsplit; same text), which set `rfc1413_*`, `acl_smtp_connect`, `acl_smtp_predata` and
//!   the `MAIN_ACL_CHECK_MAIL`/`MAIN_ACL_CHECK_DATA` macros to ACL *files* under the data dir;
//!   those ACLs run Debian's `acl_check_mail`/`acl_check_data` at their end. Nothing depends
//!   on the RCPT ACL, whose `accept hosts = +relay_from_hosts` skips loopback.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::policy::{Forged, OriginHeader, OverLimit, Policy, SenderMode};

/// The two file layouts `render` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// A complete `exim.conf` plus data files, for a private Exim (`exim -C`).
    Standalone,
    /// Files for Debian's `/etc/exim4` (split and unsplit configuration).
    Debian,
}

/// Arguments of `exim-policy render`.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// The policy file.
    #[arg(long, default_value = "/etc/baseos/policy.toml")]
    pub policy: PathBuf,
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// File layout.
    #[arg(long, value_enum, default_value = "standalone")]
    pub layout: Layout,
    /// Where the ACL/data files live at run time (default: the policy's `standalone.data_dir`
    /// or `debian.data_dir`; for standalone without it, the absolute `--out`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Write only the data files (limits, blocked, senders): the live change, no reload.
    #[arg(long)]
    pub data_only: bool,
}

/// What a rendered file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Exim configuration text (changing it needs a reload, or `update-exim4.conf` on Debian).
    Config,
    /// An ACL file read at run time (Debian layout).
    Acl,
    /// A lookup data file read per connection.
    Data,
}

/// One rendered file, path relative to the output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    /// Relative path.
    pub path: PathBuf,
    /// Contents.
    pub text: String,
    /// What kind of file.
    pub kind: Kind,
}

/// Data file names (relative to the data dir).
pub const LIMITS_FILE: &str = "limits";
/// See [`LIMITS_FILE`].
pub const BLOCKED_FILE: &str = "blocked";
/// See [`LIMITS_FILE`].
pub const SENDERS_FILE: &str = "senders";

/// Ident syntax accepted anywhere (login or uid), as a PCRE in `\N...\N`.
const IDENT_RE: &str = r"\N^(?:[a-z_][a-z0-9_.-]{0,31}|[0-9]{1,10})\z\N";
/// A limit value in the data file: `<count>/<period>`.
const RATE_RE: &str = r"\N^[1-9][0-9]{0,9}/[1-9][0-9]{0,5}[smhdw]\z\N";
/// The whole `X-BaseOS-Origin` value (raw): uid, optional user, then `key="value"` pairs whose
/// values only use `\"` and `\\` escapes and no control characters. One header only.
const ORIGIN_RE: &str = r#"\N^[ \t]*uid=([0-9]{1,10})(?: user=([a-z_][a-z0-9_.-]{0,31}))?((?: [a-z][a-z0-9_-]{0,31}="(?:[^"\\\x00-\x1f\x7f]|\\["\\])*")*)[ \t]*\r?\n?\z\N"#;

fn field_re(key: &str) -> String {
    format!(r#"\N(?:^| ){key}="((?:[^"\\]|\\["\\])*)"\N"#)
}

fn host_list(hosts: &[IpAddr]) -> String {
    let items: Vec<String> = hosts.iter().map(ToString::to_string).collect();
    format!("<; {}", items.join(" ; "))
}

/// The per-user lookup: ident, then the ident's uid, then `fallback`.
/// With `by_uid` false (no user in the policy is keyed by uid) the uid step, and with it the
/// `passwd` lookup per message, is left out.
fn user_lookup(file: &Path, found: &str, fallback: &str, by_uid: bool) -> String {
    let f = file.display();
    if by_uid {
        format!(
            "${{lookup{{$sender_ident}}lsearch{{{f}}}{{{found}}}{{${{lookup{{$acl_m_baseos_uid}}lsearch{{{f}}}{{{found}}}{{{fallback}}}}}}}}}"
        )
    } else {
        format!("${{lookup{{$sender_ident}}lsearch{{{f}}}{{{found}}}{{{fallback}}}}}")
    }
}

struct AclSet {
    connect: String,
    mail: String,
    predata: String,
    data: String,
}

fn statement(out: &mut String, lines: &[&str]) {
    for (i, l) in lines.iter().enumerate() {
        if i == 0 {
            let _ = writeln!(out, "  {l}");
        } else {
            let _ = writeln!(out, "          {l}");
        }
    }
    out.push('\n');
}

fn ident_guard(out: &mut String, hosts: &str) {
    let h = format!("hosts       = {hosts}");
    statement(
        out,
        &[
            "defer   ",
            &h,
            "condition   = ${if def:sender_ident {no}{yes}}",
            "message     = Local mail needs an RFC 1413 ident of the sending user (is oidentd running?); try again later",
            "log_message = BASEOS-NOIDENT",
        ],
    );
    let c = format!("condition   = ${{if match{{$sender_ident}}{{{IDENT_RE}}}{{no}}{{yes}}}}");
    statement(
        out,
        &[
            "deny    ",
            &h,
            &c,
            "message     = Unacceptable ident: not a plain login name or uid",
            "log_message = BASEOS-BADIDENT ident=\"$sender_ident\"",
        ],
    );
}

/// The ident's uid (the ident itself when numeric; else Exim's `passwd` lookup, getpwnam).
const UID_EXPR: &str = r"set acl_m_baseos_uid = ${if match{$sender_ident}{\N^[0-9]+\z\N}{$sender_ident}{${extract{2}{:}{${lookup passwd{$sender_ident}{$value}{}}}}}}";

/// `set acl_m_baseos_uid` as a statement of its own.
fn set_uid(out: &mut String, hosts: &str) {
    let h = format!("hosts       = {hosts}");
    statement(out, &["warn    ", &h, UID_EXPR]);
}

fn fix_first(out: &mut String) {
    // Fix the look of the first line of each statement: "defer   " + first modifier on one line.
    let fixed = out
        .replace("  defer   \n          ", "  defer   ")
        .replace("  deny    \n          ", "  deny    ")
        .replace("  warn    \n          ", "  warn    ")
        .replace("  accept  \n          ", "  accept  ")
        .replace("  require \n          ", "  require ");
    *out = fixed
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
}

fn render_acls(p: &Policy, data_dir: &Path, debian: bool) -> AclSet {
    let hosts = host_list(&p.ident_hosts);
    let h = format!("hosts       = {hosts}");
    let limits = data_dir.join(LIMITS_FILE);
    let blocked = data_dir.join(BLOCKED_FILE);
    let senders = data_dir.join(SENDERS_FILE);
    let over = match p.over_limit {
        OverLimit::Defer => "defer   ",
        OverLimit::Reject => "deny    ",
    };
    // No ": " in the texts below: Exim splits a long SMTP reply into continuation lines at
    // ": ", and clients (the shim, PHP's logs) show those as one line again, badly joined.
    let later = match p.over_limit {
        OverLimit::Defer => "; try again later",
        OverLimit::Reject => "",
    };

    // ---- connect
    let mut connect = String::new();
    connect.push_str("  # BaseOS: identity is $sender_ident and nothing else.\n");
    ident_guard(&mut connect, &hosts);
    statement(&mut connect, &["accept  "]);

    // ---- MAIL
    let mut mail = String::new();
    mail.push_str(
        "  # BaseOS: the ident is checked again here, before any lookup or ratelimit key.\n",
    );
    ident_guard(&mut mail, &hosts);
    let by_uid = p.users.keys().any(|k| crate::policy::is_uid(k));
    if by_uid {
        set_uid(&mut mail, &hosts);
    }
    let cond = format!(
        "condition   = {}",
        user_lookup(&blocked, "yes", "no", by_uid)
    );
    statement(
        &mut mail,
        &[
            "deny    ",
            &h,
            &cond,
            "message     = Local user $sender_ident is blocked from sending mail; ask the administrator",
            "log_message = BASEOS-BLOCKED U=$sender_ident",
        ],
    );
    if p.sender_mode != SenderMode::Off {
        let set = format!(
            "set acl_m_baseos_sd = {}",
            user_lookup(&senders, "$value", "", by_uid)
        );
        let (verb, tail): (&str, Vec<String>) = match p.sender_mode {
            SenderMode::Enforce => (
                "deny    ",
                vec![
                    "message     = Local user $sender_ident may not use the sender <$sender_address>".to_string(),
                    "log_message = BASEOS-SENDER U=$sender_ident sender=<$sender_address>".to_string(),
                ],
            ),
            _ => (
                "warn    ",
                vec!["logwrite    = BASEOS-SENDER U=$sender_ident sender=<$sender_address> action=logged".to_string()],
            ),
        };
        let mut lines: Vec<String> = vec![
            verb.to_string(),
            h.clone(),
            "condition   = ${if def:sender_address {yes}{no}}".to_string(),
            set,
            "condition   = ${if def:acl_m_baseos_sd {yes}{no}}".to_string(),
            "!sender_domains = $acl_m_baseos_sd".to_string(),
        ];
        lines.extend(tail);
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        statement(&mut mail, &refs);
    }
    let set_lim = format!(
        "set acl_m_baseos_lim = {}",
        user_lookup(
            &limits,
            "$value",
            &format!("${{lookup{{*}}lsearch{{{}}}}}", limits.display()),
            by_uid,
        )
    );
    statement(
        &mut mail,
        &[
            "warn    ",
            &h,
            &set_lim,
            "set acl_m_baseos_msgs = ${extract{msgs}{$acl_m_baseos_lim}}",
            "set acl_m_baseos_rcpts = ${extract{rcpts}{$acl_m_baseos_lim}}",
        ],
    );
    for var in ["msgs", "rcpts"] {
        let c1 = format!("condition   = ${{if def:acl_m_baseos_{var} {{yes}}{{no}}}}");
        let c2 =
            format!("condition   = ${{if match{{$acl_m_baseos_{var}}}{{{RATE_RE}}}{{no}}{{yes}}}}");
        let lm = format!(
            "log_message = BASEOS-BADDATA U=$sender_ident file={} {var}=\"$acl_m_baseos_{var}\"",
            limits.display()
        );
        statement(
            &mut mail,
            &[
                "defer   ",
                &h,
                &c1,
                &c2,
                "message     = The mail policy data for this user is broken; the administrator has to fix it",
                &lm,
            ],
        );
    }
    // Exim counts a rate that reaches the limit as over it, and a new key starts at the
    // count itself: `m` alone would refuse the m-th message of a burst when it is also the
    // first event (a limit of 1 would block everything). `m.5` makes exactly m pass.
    let msg = format!(
        "message     = Message limit reached for local user $sender_ident (at most ${{extract{{1}}{{/}}{{$acl_m_baseos_msgs}}}} messages per $sender_rate_period){later}"
    );
    statement(
        &mut mail,
        &[
            over,
            &h,
            "condition   = ${if def:acl_m_baseos_msgs {yes}{no}}",
            "ratelimit   = ${extract{1}{/}{$acl_m_baseos_msgs}}.5 / ${extract{2}{/}{$acl_m_baseos_msgs}} / per_mail / leaky / baseos-msgs:$sender_ident",
            &msg,
            "log_message = BASEOS-LIMIT U=$sender_ident what=messages rate=$sender_rate limit=${extract{1}{/}{$acl_m_baseos_msgs}} period=$sender_rate_period",
        ],
    );
    if debian {
        statement(&mut mail, &["require ", "acl         = acl_check_mail"]);
    }
    statement(&mut mail, &["accept  "]);

    // ---- predata (recipients: counted per message, before the body is sent)
    let mut predata = String::new();
    ident_guard(&mut predata, &hosts);
    let c2 =
        format!("condition   = ${{if match{{$acl_m_baseos_rcpts}}{{{RATE_RE}}}{{no}}{{yes}}}}");
    statement(
        &mut predata,
        &[
            "defer   ",
            &h,
            "condition   = ${if def:acl_m_baseos_rcpts {yes}{no}}",
            &c2,
            "message     = The mail policy data for this user is broken; the administrator has to fix it",
            "log_message = BASEOS-BADDATA U=$sender_ident rcpts=\"$acl_m_baseos_rcpts\"",
        ],
    );
    let msg = format!(
        "message     = Recipient limit reached for local user $sender_ident (at most ${{extract{{1}}{{/}}{{$acl_m_baseos_rcpts}}}} recipients per $sender_rate_period, this message has $recipients_count){later}"
    );
    statement(
        &mut predata,
        &[
            over,
            &h,
            "condition   = ${if def:acl_m_baseos_rcpts {yes}{no}}",
            "ratelimit   = ${extract{1}{/}{$acl_m_baseos_rcpts}}.5 / ${extract{2}{/}{$acl_m_baseos_rcpts}} / per_rcpt / leaky / baseos-rcpts:$sender_ident",
            &msg,
            "log_message = BASEOS-LIMIT U=$sender_ident what=recipients rate=$sender_rate limit=${extract{1}{/}{$acl_m_baseos_rcpts}} period=$sender_rate_period",
        ],
    );
    statement(&mut predata, &["accept  "]);

    // ---- DATA: the origin header
    let mut data = String::new();
    data.push_str("  # BaseOS: the origin header is only believed from local senders, after the check below.\n");
    let not_h = format!("!hosts      = {hosts}");
    statement(
        &mut data,
        &["warn    ", &not_h, "remove_header = X-BaseOS-Origin"],
    );
    ident_guard(&mut data, &hosts);
    let m = |n: &str| format!("${{if match{{$rh_X-BaseOS-Origin:}}{{{ORIGIN_RE}}}{{{n}}}{{}}}}");
    let set_ouid = format!("set acl_m_baseos_ouid = {}", m("$1"));
    let set_ouser = format!("set acl_m_baseos_ouser = {}", m("$2"));
    let set_orest = format!("set acl_m_baseos_orest = {}", m("$3"));
    let ok = concat!(
        "set acl_m_baseos_ook = ${if and{",
        "{def:acl_m_baseos_ouid}",
        "{eq{$acl_m_baseos_ouid}{$acl_m_baseos_uid}}",
        r"{or{{!def:acl_m_baseos_ouser}{eq{$acl_m_baseos_ouser}{$sender_ident}}{and{{match{$sender_ident}{\N^[0-9]+\z\N}}{eq{${extract{2}{:}{${lookup passwd{$acl_m_baseos_ouser}{$value}{}}}}}{$sender_ident}}}}}}",
        "} {yes}{no}}"
    );
    statement(
        &mut data,
        &[
            "warn    ",
            &h,
            "condition   = ${if def:h_X-BaseOS-Origin: {yes}{no}}",
            "set acl_m_baseos_ohdr = yes",
            UID_EXPR,
            &set_ouid,
            &set_ouser,
            &set_orest,
            ok,
        ],
    );
    let claimed = r#"claimed="${escape:${sg{$h_X-BaseOS-Origin:}{\N(["\\])\N}{\\\\\$1}}}""#;
    if p.forged == Forged::Reject {
        let lm = format!("log_message = BASEOS-FORGED U=$sender_ident {claimed}");
        statement(
            &mut data,
            &[
                "deny    ",
                &h,
                "condition   = ${if eq{$acl_m_baseos_ohdr}{yes} {yes}{no}}",
                "condition   = ${if eq{$acl_m_baseos_ook}{yes} {no}{yes}}",
                "message     = X-BaseOS-Origin does not match the sending user (RFC 1413 ident $sender_ident)",
                &lm,
            ],
        );
    }
    if debian {
        statement(&mut data, &["require ", "acl         = acl_check_data"]);
    }
    if p.forged == Forged::Strip {
        let lw = format!("logwrite    = BASEOS-FORGED U=$sender_ident action=stripped {claimed}");
        statement(
            &mut data,
            &[
                "warn    ",
                &h,
                "condition   = ${if eq{$acl_m_baseos_ohdr}{yes} {yes}{no}}",
                "condition   = ${if eq{$acl_m_baseos_ook}{yes} {no}{yes}}",
                "remove_header = X-BaseOS-Origin",
                &lw,
                "set acl_m_baseos_ohdr = stripped",
            ],
        );
    }
    let script = field_re("script");
    let cwd = field_re("cwd");
    let lw = format!(
        "logwrite    = BASEOS-ORIGIN U=$sender_ident uid=$acl_m_baseos_ouid user=${{if def:acl_m_baseos_ouser {{$acl_m_baseos_ouser}}{{-}}}} script=\"${{if match{{$acl_m_baseos_orest}}{{{script}}}{{$1}}{{}}}}\" cwd=\"${{if match{{$acl_m_baseos_orest}}{{{cwd}}}{{$1}}{{}}}}\""
    );
    let mut lines = vec![
        "warn    ".to_string(),
        h.clone(),
        "condition   = ${if eq{$acl_m_baseos_ohdr}{yes} {yes}{no}}".to_string(),
        "condition   = ${if eq{$acl_m_baseos_ook}{yes} {yes}{no}}".to_string(),
        lw,
    ];
    if p.origin_header == OriginHeader::Remove {
        lines.push("remove_header = X-BaseOS-Origin".to_string());
    }
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    statement(&mut data, &refs);
    statement(&mut data, &["accept  "]);

    for s in [&mut connect, &mut mail, &mut predata, &mut data] {
        fix_first(s);
    }
    AclSet {
        connect,
        mail,
        predata,
        data,
    }
}

/// The three data files.
pub fn render_data(p: &Policy) -> Vec<RenderedFile> {
    let rate = |r: &Option<crate::policy::Rate>, key: &str| {
        r.as_ref()
            .map(|r| format!(" {key}={}/{}", r.count, r.period))
            .unwrap_or_default()
    };
    let head = "# Generated by exim-policy render from the policy file; read by Exim on every connection.\n\
                # A change here applies to the next connection (no reload). Prefer re-rendering with --data-only.\n";
    let mut limits = String::from(head);
    limits.push_str(
        "# <user or uid>: msgs=<count>/<period> rcpts=<count>/<period>   (missing = no limit)\n",
    );
    let d = &p.default_limits;
    let _ = writeln!(
        limits,
        "*: kind=default{}{}",
        rate(&d.messages, "msgs"),
        rate(&d.recipients, "rcpts")
    );
    let mut blocked = String::from(head);
    blocked.push_str("# <user or uid>: blocked\n");
    let mut senders = String::from(head);
    senders.push_str("# <user or uid>: <domain> : <domain> ...\n");
    for (name, u) in &p.users {
        let l = &u.limits;
        if l.messages.is_none() && l.recipients.is_none() {
            let _ = writeln!(limits, "{name}: kind=unlimited");
        } else {
            let _ = writeln!(
                limits,
                "{name}: kind=user{}{}",
                rate(&l.messages, "msgs"),
                rate(&l.recipients, "rcpts")
            );
        }
        if u.blocked {
            let _ = writeln!(blocked, "{name}: blocked");
        }
        if !u.sender_domains.is_empty() {
            let _ = writeln!(senders, "{name}: {}", u.sender_domains.join(" : "));
        }
    }
    vec![
        RenderedFile {
            path: LIMITS_FILE.into(),
            text: limits,
            kind: Kind::Data,
        },
        RenderedFile {
            path: BLOCKED_FILE.into(),
            text: blocked,
            kind: Kind::Data,
        },
        RenderedFile {
            path: SENDERS_FILE.into(),
            text: senders,
            kind: Kind::Data,
        },
    ]
}

fn join_list(items: &[String]) -> String {
    items.join(" : ")
}

/// The complete standalone `exim.conf`; `data_dir` is where the data files are at run time.
pub fn render_standalone_conf(p: &Policy, data_dir: &Path) -> String {
    let s = &p.standalone;
    let acls = render_acls(p, data_dir, false);
    let hosts = host_list(&p.ident_hosts);
    let mut c = String::new();
    let _ = write!(
        c,
        "# Generated by exim-policy render (standalone layout). Do not edit: edit the policy file
# and re-render. Per-user limits, blocks and sender domains are in {datadir} (no reload needed).

primary_hostname = {host}
qualify_domain = {host}
domainlist local_domains = {domains}
exim_user = {user}
exim_group = {group}
never_users = root
spool_directory = {spool}
log_file_path = {log}
pid_file_path = {pid}
daemon_smtp_ports = {port}
local_interfaces = {ifaces}
host_lookup =
keep_environment =
tls_advertise_hosts =
smtp_accept_max = 200
# Bursts of local connections (many sites at once): the default backlog of 20 makes the
# kernel hold the handshake of the 21st for up to 31 s (SYN-ACK retries).
smtp_connect_backlog = 256
smtp_accept_queue_per_connection = 0
rfc1413_hosts = {hosts}
rfc1413_query_timeout = {timeout}
log_selector = +smtp_connection +incoming_port +received_recipients +sender_on_delivery \\
               +ident_timeout +pid +subject +smtp_no_mail +deliver_time

acl_smtp_connect = acl_baseos_connect
acl_smtp_mail = acl_baseos_mail
acl_smtp_rcpt = acl_baseos_rcpt
acl_smtp_predata = acl_baseos_predata
acl_smtp_data = acl_baseos_data

begin acl

acl_baseos_connect:
{connect}
acl_baseos_mail:
{mail}
acl_baseos_rcpt:
  # Local users may send anywhere (their limits are in MAIL and predata); others only to us.
  accept  hosts       = {hosts}

  accept  domains     = +local_domains
          verify      = recipient

  deny    message     = relay not permitted

acl_baseos_predata:
{predata}
acl_baseos_data:
{data}
begin routers
",
        datadir = data_dir.display(),
        host = s.primary_hostname,
        domains = join_list(&s.local_domains),
        user = s.exim_user,
        group = s.exim_group,
        spool = s.spool_directory.display(),
        log = s.log_file_path.display(),
        pid = s.pid_file.display(),
        port = s.port,
        ifaces = host_list(&s.interfaces),
        timeout = p.ident_timeout,
        connect = acls.connect,
        mail = acls.mail,
        predata = acls.predata,
        data = acls.data,
    );
    if s.relay {
        c.push_str(
            "
remote:
  driver = dnslookup
  domains = ! +local_domains
  transport = remote_smtp
  ignore_target_hosts = 0.0.0.0 : 127.0.0.0/8 : ::1
  no_more
",
        );
    }
    let _ = write!(
        c,
        "
local_maildir:
  driver = accept
  domains = +local_domains
  transport = local_maildir

begin transports

remote_smtp:
  driver = smtp

local_maildir:
  driver = appendfile
  # One maildir for all local domains (a path built from $local_part would be tainted);
  # Envelope-to: tells the recipients apart.
  directory = {mail}/Maildir
  maildir_format = true
  create_directory = true
  user = {user}
  group = {group}
  mode = 0640
  envelope_to_add = true
  return_path_add = true

begin retry

*   *   F,2h,15m; G,16h,1h,1.5; F,4d,6h
",
        mail = s.mail_dir.display(),
        user = s.exim_user,
        group = s.exim_group,
    );
    c
}

/// The Debian main-section snippet (split: `conf.d/main/00_baseos-policy`; unsplit:
/// `exim4.conf.localmacros`).
pub fn render_debian_main(p: &Policy, data_dir: &Path) -> String {
    let d = data_dir.display();
    format!(
        "# Generated by exim-policy render (debian layout): ident on loopback, per-user limits.
# Split config: /etc/exim4/conf.d/main/00_baseos-policy. Unsplit: /etc/exim4/exim4.conf.localmacros.
# Then run update-exim4.conf and reload exim4. The ACLs and data files are in {d}.
rfc1413_hosts = {hosts}
rfc1413_query_timeout = {timeout}
acl_smtp_connect = {d}/acl_connect
acl_smtp_predata = {d}/acl_predata
MAIN_ACL_CHECK_MAIL = {d}/acl_mail
MAIN_ACL_CHECK_DATA = {d}/acl_data
",
        hosts = host_list(&p.ident_hosts),
        timeout = p.ident_timeout,
    )
}

/// Every file of a layout, paths relative to the output directory.
pub fn render(p: &Policy, layout: Layout, data_dir: &Path) -> Vec<RenderedFile> {
    let mut files = Vec::new();
    match layout {
        Layout::Standalone => {
            files.push(RenderedFile {
                path: "exim.conf".into(),
                text: render_standalone_conf(p, data_dir),
                kind: Kind::Config,
            });
            files.extend(render_data(p));
        }
        Layout::Debian => {
            let main = render_debian_main(p, data_dir);
            files.push(RenderedFile {
                path: "conf.d/main/00_baseos-policy".into(),
                text: main.clone(),
                kind: Kind::Config,
            });
            files.push(RenderedFile {
                path: "exim4.conf.localmacros".into(),
                text: main,
                kind: Kind::Config,
            });
            let acls = render_acls(p, data_dir, true);
            let head = "# Generated by exim-policy render (debian layout). An Exim ACL file, read at run time.\n";
            for (name, body) in [
                ("acl_connect", acls.connect),
                ("acl_mail", acls.mail),
                ("acl_predata", acls.predata),
                ("acl_data", acls.data),
            ] {
                files.push(RenderedFile {
                    path: PathBuf::from("baseos").join(name),
                    text: format!("{head}{body}"),
                    kind: Kind::Acl,
                });
            }
            for mut f in render_data(p) {
                f.path = PathBuf::from("baseos").join(&f.path);
                files.push(f);
            }
        }
    }
    files
}

/// Writes `text` to `path` atomically: a new temp file beside it (never through a symlink),
/// fsync, rename over the old file, fsync the directory. Returns false if the file already
/// had exactly this content (then nothing is written).
pub fn write_atomic(path: &Path, text: &str) -> Result<bool> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_symlink() || !meta.is_file() {
            return Err(Error::Usage(format!(
                "{}: exists and is not a regular file (symlink?); fix: remove it, render will not write through it",
                path.display()
            )));
        }
        if std::fs::read(path).map_err(io)? == text.as_bytes() {
            return Ok(false);
        }
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc_o_nofollow())
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(true)
}

/// `O_NOFOLLOW` on Linux (create_new already refuses an existing symlink; belt and braces).
const fn libc_o_nofollow() -> i32 {
    0o400000
}

/// Writes rendered files under `out`; returns the files that changed (relative paths).
pub fn write_files(out: &Path, files: &[RenderedFile], data_only: bool) -> Result<Vec<PathBuf>> {
    let mut changed = Vec::new();
    for f in files {
        if data_only && f.kind != Kind::Data {
            continue;
        }
        let path = out.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        if write_atomic(&path, &f.text)? {
            changed.push(f.path.clone());
        }
    }
    Ok(changed)
}

/// Resolves the run-time data directory for a layout.
pub fn data_dir_for(
    p: &Policy,
    layout: Layout,
    out: &Path,
    flag: Option<&Path>,
) -> Result<PathBuf> {
    let dir = match (flag, layout) {
        (Some(d), _) => d.to_path_buf(),
        (None, Layout::Standalone) => match &p.standalone.data_dir {
            Some(d) => d.clone(),
            None => std::path::absolute(out).map_err(|source| Error::Io {
                path: out.to_path_buf(),
                source,
            })?,
        },
        (None, Layout::Debian) => p.debian_data_dir.join(""),
    };
    let s = dir.to_string_lossy();
    let s = s.trim_end_matches('/');
    if !s.starts_with('/')
        || !s
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'/' | b'.' | b'_' | b'-' | b'+'))
    {
        return Err(Error::Usage(format!(
            "data directory {s:?} is not a plain absolute path; fix: use only letters, digits, / . _ - +"
        )));
    }
    Ok(PathBuf::from(s))
}

/// Runs `exim-policy render`.
pub fn run(args: &RenderArgs) -> Result<i32> {
    let policy = Policy::load(&args.policy)?;
    let data_dir = data_dir_for(&policy, args.layout, &args.out, args.data_dir.as_deref())?;
    let files = render(&policy, args.layout, &data_dir);
    let changed = write_files(&args.out, &files, args.data_only)?;
    if args.data_only {
        let stale: Vec<String> = files
            .iter()
            .filter(|f| f.kind != Kind::Data)
            .filter(|f| {
                std::fs::read(args.out.join(&f.path)).ok().as_deref() != Some(f.text.as_bytes())
            })
            .map(|f| args.out.join(&f.path).display().to_string())
            .collect();
        if !stale.is_empty() {
            eprintln!(
                "exim-policy: warning: this policy also changes {} (e.g. the first user keyed by uid, or a changed \
                 action), which --data-only does not write; fix: run render without --data-only and reload Exim",
                stale.join(", ")
            );
        }
    }
    let mut out = std::io::stdout().lock();
    if changed.is_empty() {
        let _ = writeln!(out, "exim-policy: {} is up to date", args.out.display());
    }
    for c in &changed {
        let kind = files.iter().find(|f| &f.path == c).map(|f| f.kind);
        let note = match kind {
            Some(Kind::Data) => "data: applies to the next connection, no reload",
            Some(Kind::Acl) => "ACL file: applies to the next connection",
            _ => "configuration: needs an Exim reload",
        };
        let _ = writeln!(out, "wrote {} ({note})", args.out.join(c).display());
    }
    if args.layout == Layout::Debian && !args.data_only {
        let _ = writeln!(
            out,
            "\nInstall (Debian exim4):\n  1. copy {out}/baseos/* to {d}/ (root-owned, mode 0644)\n  2. split config (dc_use_split_config='true'): copy {out}/conf.d/main/00_baseos-policy to /etc/exim4/conf.d/main/\n     unsplit config: copy {out}/exim4.conf.localmacros to /etc/exim4/exim4.conf.localmacros (or append it)\n     Either sets MAIN_ACL_CHECK_MAIL, MAIN_ACL_CHECK_DATA, acl_smtp_connect, acl_smtp_predata and rfc1413_*.\n  3. update-exim4.conf && exim4 -bV && systemctl reload exim4\n  4. exim-policy check --policy {p} --installed-config /var/lib/exim4/config.autogenerated",
            out = args.out.display(),
            d = data_dir.display(),
            p = args.policy.display(),
        );
    }
    Ok(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Policy {
        Policy::parse(text, Path::new("p.toml")).unwrap()
    }

    #[test]
    fn data_files_hold_merged_user_rows() {
        let p = policy(
            "[limits]\nmessages = 10\nrecipients = 20\nrecipients_period = \"1d\"\n[users.alice]\nmessages = 99\nsender_domains = [\"a.example\", \"*.a.example\"]\n[users.\"1001\"]\nunlimited = true\n[users.bob]\nblocked = true\n",
        );
        let files = render_data(&p);
        let text = |name: &str| {
            files
                .iter()
                .find(|f| f.path == Path::new(name))
                .unwrap()
                .text
                .clone()
        };
        let limits = text("limits");
        assert!(
            limits.contains("\n*: kind=default msgs=10/1h rcpts=20/1d\n"),
            "{limits}"
        );
        assert!(
            limits.contains("\nalice: kind=user msgs=99/1h rcpts=20/1d\n"),
            "{limits}"
        );
        assert!(limits.contains("\n1001: kind=unlimited\n"), "{limits}");
        assert!(text("blocked").contains("\nbob: blocked\n"));
        assert!(!text("blocked").contains("alice"));
        assert!(text("senders").contains("\nalice: a.example : *.a.example\n"));
    }

    #[test]
    fn no_default_limits_means_no_ratelimit_values() {
        let files = render_data(&policy(""));
        assert!(files[0].text.contains("\n*: kind=default\n"));
    }

    #[test]
    fn debian_layout_chains_debian_acls_and_standalone_does_not() {
        let p = policy("");
        let deb = render(&p, Layout::Debian, Path::new("/etc/exim4/baseos"));
        let mail = deb
            .iter()
            .find(|f| f.path == Path::new("baseos/acl_mail"))
            .unwrap();
        assert!(mail.text.contains("acl         = acl_check_mail"));
        let main = deb
            .iter()
            .find(|f| f.path == Path::new("exim4.conf.localmacros"))
            .unwrap();
        assert!(main
            .text
            .contains("MAIN_ACL_CHECK_MAIL = /etc/exim4/baseos/acl_mail\n"));
        assert!(main
            .text
            .contains("acl_smtp_connect = /etc/exim4/baseos/acl_connect\n"));
        let conf = render_standalone_conf(&p, Path::new("/d"));
        assert!(!conf.contains("acl_check_mail"));
        // The ident is validated in every ACL that uses it, before any ratelimit key.
        let before_ratelimit = &conf[..conf.find("ratelimit   =").unwrap()];
        assert!(
            before_ratelimit.contains("acl_baseos_mail:")
                && before_ratelimit.matches("BASEOS-BADIDENT").count() >= 2
        );
    }

    #[test]
    fn rerender_rewrites_only_changed_files_and_data_only_skips_config() {
        let dir = tempfile::tempdir().unwrap();
        let p1 = policy("[limits]\nmessages = 10\n");
        let files = render(&p1, Layout::Standalone, dir.path());
        assert_eq!(write_files(dir.path(), &files, false).unwrap().len(), 4);
        assert!(write_files(dir.path(), &files, false).unwrap().is_empty());
        let p2 = policy("[limits]\nmessages = 10\n[users.alice]\nmessages = 20\n");
        let files = render(&p2, Layout::Standalone, dir.path());
        assert_eq!(
            write_files(dir.path(), &files, true).unwrap(),
            vec![PathBuf::from("limits")]
        );
        // a change of the ACL text (policy switch) is not written with --data-only
        let p3 = policy("[limits]\nmessages = 10\nover_limit = \"reject\"\n");
        let files = render(&p3, Layout::Standalone, dir.path());
        let changed = write_files(dir.path(), &files, true).unwrap();
        assert!(!changed.contains(&PathBuf::from("exim.conf")));
    }

    #[test]
    fn atomic_write_refuses_symlinks_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("limits");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = write_atomic(&link, "x").unwrap_err().to_string();
        assert!(err.contains("symlink") && err.contains("fix:"), "{err}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        let f = dir.path().join("new");
        assert!(write_atomic(&f, "hello").unwrap());
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "hello");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn data_dir_must_be_plain_absolute() {
        let p = policy("");
        assert!(data_dir_for(
            &p,
            Layout::Standalone,
            Path::new("/x"),
            Some(Path::new("/a b"))
        )
        .is_err());
        assert!(data_dir_for(
            &p,
            Layout::Standalone,
            Path::new("/x"),
            Some(Path::new("rel"))
        )
        .is_err());
        assert_eq!(
            data_dir_for(&p, Layout::Debian, Path::new("/x"), None).unwrap(),
            PathBuf::from("/etc/exim4/baseos")
        );
    }
}
