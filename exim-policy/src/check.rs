//! `exim-policy check`: renders the policy into a scratch directory and proves it with the
//! real Exim: `exim -C <conf> -bV`, then `exim -C <conf> -bh 127.0.0.1 -oMt <ident>` SMTP
//! sessions (one per rule) against a scratch spool. `-bV` misses bad `ratelimit` options (they
//! only fail at run time), and `-bh` writes the real ratelimit database: hence the scratch spool.

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use crate::error::{Error, Result};
use crate::policy::{Forged, OverLimit, Policy, Rate};
use crate::render::{self, Layout};

/// Above this many messages/recipients a limit is only checked for being usable (one mail
/// accepted), not driven to its end.
const EXHAUSTIVE_MAX: u32 = 2000;

/// Arguments of `exim-policy check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The policy file.
    #[arg(long, default_value = "/etc/baseos/policy.toml")]
    pub policy: PathBuf,
    /// The exim binary.
    #[arg(long, default_value = "exim")]
    pub exim: PathBuf,
    /// Keep the scratch directory (its path is printed).
    #[arg(long)]
    pub keep: bool,
}

/// One result line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Passed?
    pub ok: bool,
    /// What was checked and what Exim said.
    pub text: String,
}

/// An `exim -bh` SMTP session driven line by line.
struct BhSession {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl BhSession {
    fn start(exim: &Path, conf: &Path, ident: Option<&str>) -> Result<(BhSession, String)> {
        let mut cmd = Command::new(exim);
        cmd.arg("-C").arg(conf).args(["-bh", "127.0.0.1"]);
        if let Some(i) = ident {
            cmd.arg("-oMt").arg(i);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| Error::Io {
                path: exim.to_path_buf(),
                source,
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(Error::CheckFailed("exim -bh: no stdio pipes".into()));
        };
        let mut s = BhSession {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        };
        let banner = s.reply();
        Ok((s, banner))
    }

    /// Reads one SMTP reply (all its lines); other output of -bh (`****` lines) is skipped.
    /// Returns "" at end of output.
    fn reply(&mut self) -> String {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            match self.stdout.read_line(&mut line) {
                Ok(0) | Err(_) => return text,
                Ok(_) => {}
            }
            let l = line.trim_end();
            let b = l.as_bytes();
            if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) {
                continue;
            }
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(if b.len() > 4 { &l[4..] } else { "" });
            if b.get(3) != Some(&b'-') {
                return format!("{} {}", &l[..3], text);
            }
        }
    }

    fn cmd(&mut self, line: &str) -> String {
        if self
            .stdin
            .write_all(format!("{line}\r\n").as_bytes())
            .is_err()
        {
            return String::new();
        }
        let _ = self.stdin.flush();
        self.reply()
    }

    fn finish(mut self) {
        let _ = self.stdin.write_all(b"QUIT\r\n");
        drop(self.stdin);
        let _ = self.child.wait();
    }
}

fn code(reply: &str) -> u16 {
    reply.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0)
}

fn is_euid_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Finds a passwd user (name, uid) among a few system accounts, for the origin-header check.
fn system_user() -> Option<(String, String)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    for want in ["nobody", "daemon", "bin"] {
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() > 2 && f[0] == want {
                return Some((f[0].to_string(), f[2].to_string()));
            }
        }
    }
    None
}

struct Checker<'a> {
    exim: &'a Path,
    conf: PathBuf,
    over_code: u16,
    findings: Vec<Finding>,
    domain: String,
    spool: PathBuf,
}

impl Checker<'_> {
    /// Every check starts from an empty ratelimit database (several checks use one user).
    fn reset_db(&self) {
        let _ = std::fs::remove_dir_all(self.spool.join("db"));
    }

    fn note(&mut self, ok: bool, text: String) {
        self.findings.push(Finding { ok, text });
    }

    fn session(&mut self, ident: Option<&str>) -> Option<(BhSession, String)> {
        match BhSession::start(self.exim, &self.conf, ident) {
            Ok(s) => Some(s),
            Err(e) => {
                self.note(
                    false,
                    format!("could not run {} -bh: {e}", self.exim.display()),
                );
                None
            }
        }
    }

    /// EHLO + MAIL; returns the session and the MAIL reply.
    fn mail(&mut self, ident: &str, from: &str) -> Option<(BhSession, String)> {
        let (mut s, banner) = self.session(Some(ident))?;
        if code(&banner) != 220 {
            self.note(
                false,
                format!("ident {ident:?}: banner {banner:?}, expected 220"),
            );
            s.finish();
            return None;
        }
        s.cmd("EHLO check.invalid");
        let r = s.cmd(&format!("MAIL FROM:<{from}>"));
        Some((s, r))
    }

    fn check_no_ident(&mut self) {
        self.reset_db();
        if let Some((s, banner)) = self.session(None) {
            let ok = (400..500).contains(&code(&banner));
            self.note(
                ok,
                format!("no ident on loopback: {banner:?} (want 4xx at connect)"),
            );
            s.finish();
        }
    }

    fn check_bad_ident(&mut self) {
        self.reset_db();
        for bad in ["evil/count=0", "Root", "a b"] {
            if let Some((s, banner)) = self.session(Some(bad)) {
                let ok = (500..600).contains(&code(&banner));
                self.note(
                    ok,
                    format!("ident {bad:?}: {banner:?} (want 5xx at connect)"),
                );
                s.finish();
            }
        }
    }

    fn check_messages(&mut self, ident: &str, who: &str, rate: &Rate, domains: &[String]) {
        self.reset_db();
        let from = match domains.first() {
            Some(d) => format!(
                "{ident}@{}",
                d.strip_prefix("*.")
                    .map_or(d.clone(), |d| format!("www.{d}"))
            ),
            None => format!("{ident}@{}", self.domain),
        };
        let total = if rate.count > EXHAUSTIVE_MAX {
            1
        } else {
            rate.count
        };
        // Exim drops a session after smtp_accept_max_nonmail (10) RSETs: 8 MAILs per session.
        let mut sent = 0;
        while sent < total {
            let Some((mut s, r)) = self.mail(ident, &from) else {
                return;
            };
            let mut r = r;
            loop {
                if code(&r) != 250 {
                    self.note(
                        false,
                        format!(
                            "{who}: MAIL {} of {} got {r:?}, want 250",
                            sent + 1,
                            rate.count
                        ),
                    );
                    s.finish();
                    return;
                }
                sent += 1;
                if sent >= total || sent % 8 == 0 {
                    break;
                }
                s.cmd("RSET");
                r = s.cmd(&format!("MAIL FROM:<{from}>"));
            }
            s.finish();
        }
        if rate.count > EXHAUSTIVE_MAX {
            self.note(
                true,
                format!(
                    "{who}: {}/{} messages: first MAIL accepted (limit too large to drive)",
                    rate.count, rate.period
                ),
            );
            return;
        }
        let Some((s, r)) = self.mail(ident, &from) else {
            return;
        };
        let ok = code(&r) == self.over_code && r.contains("limit");
        self.note(
            ok,
            format!(
                "{who}: {} messages per {} accepted, next MAIL {r:?} (want {} naming the limit)",
                rate.count, rate.period, self.over_code
            ),
        );
        s.finish();
    }

    fn check_recipients(&mut self, ident: &str, who: &str, rate: &Rate) {
        self.reset_db();
        let n = if rate.count > EXHAUSTIVE_MAX {
            1
        } else {
            rate.count
        };
        let Some((mut s, first)) = self.mail(ident, "") else {
            return;
        };
        if code(&first) != 250 {
            self.note(false, format!("{who}: MAIL got {first:?}, want 250"));
            s.finish();
            return;
        }
        for i in 0..n {
            let r = s.cmd(&format!("RCPT TO:<r{i}@{}>", self.domain));
            if code(&r) != 250 {
                self.note(false, format!("{who}: RCPT {} got {r:?}", i + 1));
                s.finish();
                return;
            }
        }
        let d = s.cmd("DATA");
        if code(&d) != 354 {
            self.note(
                false,
                format!(
                    "{who}: {n} recipients (within {}/{}): DATA got {d:?}, want 354",
                    rate.count, rate.period
                ),
            );
            s.finish();
            return;
        }
        let end = s.cmd("Subject: exim-policy check\r\n\r\ncheck\r\n.");
        if code(&end) != 250 {
            self.note(
                false,
                format!("{who}: message with {n} recipients: {end:?}, want 250"),
            );
            s.finish();
            return;
        }
        if rate.count > EXHAUSTIVE_MAX {
            self.note(
                true,
                format!(
                    "{who}: {}/{} recipients: one message accepted (limit too large to drive)",
                    rate.count, rate.period
                ),
            );
            s.finish();
            return;
        }
        s.cmd("RSET");
        let _ = s.cmd("MAIL FROM:<>");
        let _ = s.cmd(&format!("RCPT TO:<over@{}>", self.domain));
        let r = s.cmd("DATA");
        let ok = code(&r) == self.over_code && r.contains("limit");
        self.note(
            ok,
            format!("{who}: {} recipients per {} accepted, the next one at DATA {r:?} (want {} naming the limit)", rate.count, rate.period, self.over_code),
        );
        s.finish();
    }

    fn check_blocked(&mut self, ident: &str) {
        self.reset_db();
        if let Some((s, r)) = self.mail(ident, "") {
            let ok = (500..600).contains(&code(&r)) && r.contains("blocked");
            self.note(ok, format!("blocked user {ident}: MAIL {r:?} (want 5xx)"));
            s.finish();
        }
    }

    fn check_senders(&mut self, ident: &str, domains: &[String], enforce: bool) {
        self.reset_db();
        let Some(first) = domains.first() else { return };
        let good = format!(
            "{ident}@{}",
            first
                .strip_prefix("*.")
                .map_or(first.clone(), |d| format!("www.{d}"))
        );
        if let Some((s, r)) = self.mail(ident, &good) {
            self.note(
                code(&r) == 250,
                format!("user {ident} sending as <{good}>: {r:?} (want 250)"),
            );
            s.finish();
        }
        let bad = format!("{ident}@not-{ident}.invalid");
        if let Some((s, r)) = self.mail(ident, &bad) {
            let (ok, want) = if enforce {
                ((500..600).contains(&code(&r)), "5xx")
            } else {
                (code(&r) == 250, "250, logged")
            };
            self.note(
                ok,
                format!("user {ident} sending as <{bad}>: {r:?} (want {want})"),
            );
            s.finish();
        }
    }

    fn check_origin(&mut self, forged: Forged) {
        self.reset_db();
        let Some((user, uid)) = system_user() else {
            self.note(
                false,
                "no system user (nobody/daemon/bin) in /etc/passwd for the origin check".into(),
            );
            return;
        };
        for (header, honest) in [
            (format!("uid={uid} user={user} script=\"/check.php\""), true),
            (format!("uid={uid} user=not{user}"), false),
        ] {
            let Some((mut s, r)) = self.mail(&user, "") else {
                return;
            };
            if code(&r) != 250 {
                self.note(
                    true,
                    format!("origin check skipped: {user} may not send ({r:?})"),
                );
                s.finish();
                return;
            }
            s.cmd(&format!("RCPT TO:<origin@{}>", self.domain));
            let d = s.cmd("DATA");
            if code(&d) != 354 {
                self.note(
                    true,
                    format!("origin check skipped: DATA {d:?} (limits of {user})"),
                );
                s.finish();
                return;
            }
            let end = s.cmd(&format!(
                "X-BaseOS-Origin: {header}\r\nSubject: check\r\n\r\ncheck\r\n."
            ));
            let (ok, want) = match (honest, forged) {
                (true, _) | (false, Forged::Strip) => (code(&end) == 250, "250"),
                (false, Forged::Reject) => ((500..600).contains(&code(&end)), "5xx"),
            };
            self.note(
                ok,
                format!("ident {user}, X-BaseOS-Origin: {header}: {end:?} (want {want})"),
            );
            s.finish();
        }
    }
}

/// Renders `policy` into `scratch` (standalone layout, scratch spool/log/mail) and runs every
/// check. Needs root (Exim's -C with a scratch spool owned by the Exim user).
pub fn check_policy(policy: &Policy, exim: &Path, scratch: &Path) -> Result<Vec<Finding>> {
    let mut p = policy.clone();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    for d in ["spool", "log", "mail"] {
        let dir = scratch.join(d);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        if is_euid_root() {
            let st = Command::new("chown")
                .arg(format!(
                    "{}:{}",
                    p.standalone.exim_user, p.standalone.exim_group
                ))
                .arg(&dir)
                .status()
                .map_err(io(Path::new("chown")))?;
            if !st.success() {
                return Err(Error::CheckFailed(format!(
                    "chown {} {} failed",
                    p.standalone.exim_user,
                    dir.display()
                )));
            }
        }
    }
    p.standalone.spool_directory = scratch.join("spool");
    p.standalone.log_file_path = scratch.join("log/%slog");
    p.standalone.pid_file = scratch.join("exim.pid");
    p.standalone.mail_dir = scratch.join("mail");
    p.standalone.data_dir = Some(scratch.to_path_buf());
    p.standalone.relay = false;
    let files = render::render(&p, Layout::Standalone, scratch);
    render::write_files(scratch, &files, false)?;
    let conf = scratch.join("exim.conf");

    let mut c = Checker {
        exim,
        conf: conf.clone(),
        over_code: if p.over_limit == OverLimit::Defer {
            451
        } else {
            550
        },
        findings: Vec::new(),
        spool: scratch.join("spool"),
        domain: p
            .standalone
            .local_domains
            .first()
            .cloned()
            .unwrap_or_else(|| "localhost".into()),
    };
    let bv = Command::new(exim)
        .arg("-C")
        .arg(&conf)
        .arg("-bV")
        .output()
        .map_err(io(exim))?;
    let bv_ok = bv.status.success();
    let detail = String::from_utf8_lossy(&bv.stderr).trim().to_string();
    c.note(
        bv_ok,
        format!(
            "{} -C {} -bV: {}",
            exim.display(),
            conf.display(),
            if bv_ok {
                "configuration valid".to_string()
            } else {
                detail
            }
        ),
    );
    if !bv_ok {
        return Ok(c.findings);
    }
    c.check_no_ident();
    c.check_bad_ident();
    let d = &p.default_limits;
    if let Some(r) = &d.messages {
        c.check_messages("baseos-check-m", "default limit", r, &[]);
    }
    if let Some(r) = &d.recipients {
        c.check_recipients("baseos-check-r", "default limit", r);
    }
    if d.messages.is_none() && d.recipients.is_none() {
        c.note(
            true,
            "no default limits set: users without an override are not limited".into(),
        );
    }
    for (name, u) in &p.users {
        if u.blocked {
            c.check_blocked(name);
            continue;
        }
        if u.limits != p.default_limits {
            if let Some(r) = &u.limits.messages {
                c.check_messages(name, &format!("user {name}"), r, &u.sender_domains);
            }
            if let Some(r) = &u.limits.recipients {
                c.check_recipients(name, &format!("user {name}"), r);
            }
        }
        if p.sender_mode != crate::policy::SenderMode::Off && !u.sender_domains.is_empty() {
            c.check_senders(
                name,
                &u.sender_domains,
                p.sender_mode == crate::policy::SenderMode::Enforce,
            );
        }
    }
    c.check_origin(p.forged);
    Ok(c.findings)
}

/// Runs `exim-policy check`.
pub fn run(args: &CheckArgs) -> Result<i32> {
    let policy = Policy::load(&args.policy)?;
    if !is_euid_root() {
        return Err(Error::Usage(
            "check runs the real exim with a scratch spool and needs root; fix: run it as root (sudo exim-policy check ...)".into(),
        ));
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let scratch =
        std::env::temp_dir().join(format!("exim-policy-check.{}.{nanos}", std::process::id()));
    std::fs::create_dir(&scratch).map_err(|source| Error::Io {
        path: scratch.clone(),
        source,
    })?;
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&scratch, std::fs::Permissions::from_mode(0o755));
    let result = check_policy(&policy, &args.exim, &scratch);
    if args.keep {
        println!("scratch directory kept: {}", scratch.display());
    } else {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    let findings = result?;
    let failed = findings.iter().filter(|f| !f.ok).count();
    for f in &findings {
        println!("{} {}", if f.ok { "ok  " } else { "FAIL" }, f.text);
    }
    if failed > 0 {
        return Err(Error::CheckFailed(format!(
            "{failed} of {} checks failed",
            findings.len()
        )));
    }
    println!("all {} checks passed", findings.len());
    Ok(0)
}
