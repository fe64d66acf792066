//! The rendered configuration against the real parts: a private Exim daemon on a loopback
//! port, the shared oidentd on 127.0.0.1:113, throwaway Unix users sending with swaks (direct
//! SMTP, no shim), and Debian's own `update-exim4.conf`. Needs root: CI runs these with
//! `--include-ignored`.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use baseos_tests::{ensure_oidentd, require_root, Exim, EximPaths, ThrowawayUser};
use exim_policy::policy::Policy;
use exim_policy::render::{self, Layout};

/// The policy text `extra` plus a `[standalone]` section for the harness's folders.
fn policy_text(paths: &EximPaths, extra: &str) -> String {
    format!(
        "{extra}\n[standalone]\nprimary_hostname = \"test.example\"\nport = {port}\n\
         spool_directory = \"{spool}\"\nlog_file_path = \"{log}/%slog\"\npid_file = \"{dir}/exim.pid\"\n\
         local_domains = [\"test.example\", \"localhost\"]\nmail_dir = \"{mail}\"\nrelay = false\n\
         data_dir = \"{dir}/policy\"\n",
        port = paths.port,
        spool = paths.spool.display(),
        log = paths.log.display(),
        dir = paths.dir.display(),
        mail = paths.mail.display(),
    )
}

fn load(paths: &EximPaths, extra: &str) -> Policy {
    Policy::parse(&policy_text(paths, extra), Path::new("test-policy.toml")).expect("test policy")
}

/// Renders the policy into `<dir>/policy` and returns the exim.conf text for the harness.
fn render_into(paths: &EximPaths, extra: &str) -> String {
    let p = load(paths, extra);
    let data_dir = paths.dir.join("policy");
    let files = render::render(&p, Layout::Standalone, &data_dir);
    render::write_files(&data_dir, &files, false).expect("write rendered files");
    std::fs::read_to_string(data_dir.join("exim.conf")).unwrap()
}

/// Starts a private Exim running the rendered policy.
fn start(extra: &str) -> Exim {
    ensure_oidentd();
    let extra = extra.to_string();
    Exim::start_raw(move |paths| render_into(paths, &extra))
}

/// The live change: re-render with a new policy, writing only the data files.
fn change_policy_live(exim: &Exim, extra: &str) -> Vec<PathBuf> {
    let p = load(exim.paths(), extra);
    let data_dir = exim.paths().dir.join("policy");
    let files = render::render(&p, Layout::Standalone, &data_dir);
    render::write_files(&data_dir, &files, true).expect("write data files")
}

struct Sent {
    ok: bool,
    transcript: String,
}

/// swaks as `user` to inbox@test.example; `extra` are more swaks arguments.
fn swaks(user: &ThrowawayUser, port: u16, subject: &str, extra: &[&str]) -> Sent {
    let out = user
        .command("swaks")
        .args(["--server", "127.0.0.1", "--port", &port.to_string()])
        .args(["--to", "inbox@test.example", "--from"])
        .arg(format!("{}@test.example", user.name))
        .args(["--header", &format!("Subject: {subject}")])
        .args(["--timeout", "20"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run swaks");
    let transcript = String::from_utf8_lossy(&out.stdout).to_string();
    Sent {
        ok: out.status.success(),
        transcript,
    }
}

/// The first failing reply of a swaks run (the one that ended the transaction).
/// The refusal as one line, `451 text…`: Exim wraps a long reply into continuation lines
/// (`451-…`), whose codes are dropped here so the sentence reads as written in the ACL.
fn refusal(s: &Sent) -> String {
    let lines: Vec<&str> = s
        .transcript
        .lines()
        .filter_map(|l| l.strip_prefix("<** "))
        .collect();
    let Some(first) = lines.first() else {
        return String::new();
    };
    let code = first.get(..3).unwrap_or_default();
    let mut text = code.to_string();
    for line in &lines {
        let rest = line.get(4..).unwrap_or_default();
        if line.starts_with(code) && !rest.is_empty() {
            text.push(' ');
            text.push_str(rest);
        }
    }
    text
}

fn subjects_delivered(exim: &Exim) -> Vec<String> {
    exim.delivered("inbox")
        .iter()
        .filter_map(|m| {
            String::from_utf8_lossy(m)
                .lines()
                .take_while(|l| !l.is_empty())
                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
        })
        .collect()
}

fn daemon_starts(exim: &Exim) -> usize {
    exim.mainlog().matches("daemon started").count()
}

#[test]
#[ignore = "system: needs root+exim"]
fn a_is_deferred_at_its_limit_while_b_sends_and_an_override_applies_without_restart() {
    require_root();
    let a = ThrowawayUser::create("pta");
    let b = ThrowawayUser::create("ptb");
    // B is keyed by uid from the start (that puts the uid lookup into the ACL).
    let base = format!(
        "[limits]\nmessages = 3\nmessages_period = \"1d\"\n[users.\"{}\"]\nmessages = 3\n",
        b.uid
    );
    let exim = start(&base);
    let port = exim.port();

    for n in 1..=3 {
        let s = swaks(&a, port, &format!("a{n}"), &[]);
        assert!(
            s.ok,
            "A mail {n} within the limit refused: {}",
            s.transcript
        );
    }
    let over = swaks(&a, port, "a4", &[]);
    assert!(!over.ok, "A's 4th mail was accepted: {}", over.transcript);
    let r = refusal(&over);
    assert!(
        r.starts_with("451")
            && r.contains("Message limit reached for local user")
            && r.contains("at most 3 messages per 1d"),
        "A's 4th mail: want a 451 naming the limit, got {r:?}"
    );
    // B is not affected by A's bucket.
    for n in 1..=3 {
        let s = swaks(&b, port, &format!("b{n}"), &[]);
        assert!(s.ok, "B mail {n} refused while A is over: {}", s.transcript);
    }
    assert!(exim
        .mainlog()
        .contains(&format!("U={} temporarily rejected MAIL", a.name)));
    assert!(exim
        .mainlog()
        .contains(&format!("BASEOS-LIMIT U={} what=messages", a.name)));

    // Raise A's limit (by login) and set B's by uid: only data files change, no restart.
    let changed = change_policy_live(
        &exim,
        &format!(
            "[limits]\nmessages = 3\nmessages_period = \"1d\"\n[users.{}]\nmessages = 5\n[users.\"{}\"]\nmessages = 4\n",
            a.name, b.uid
        ),
    );
    assert_eq!(
        changed,
        vec![PathBuf::from("limits")],
        "only the limits data file may change"
    );
    for n in 5..=6 {
        let s = swaks(&a, port, &format!("a{n}"), &[]);
        assert!(
            s.ok,
            "A mail {n} refused after raising the limit to 5: {}",
            s.transcript
        );
    }
    let over = swaks(&a, port, "a7", &[]);
    assert!(
        refusal(&over).contains("at most 5 messages"),
        "{}",
        over.transcript
    );
    let s = swaks(&b, port, "b4", &[]);
    assert!(s.ok, "B's 4th mail (uid override 4): {}", s.transcript);
    let over = swaks(&b, port, "b5", &[]);
    assert!(
        refusal(&over).contains("at most 4 messages"),
        "{}",
        over.transcript
    );
    assert_eq!(daemon_starts(&exim), 1, "Exim was restarted");

    let want: BTreeSet<String> = ["a1", "a2", "a3", "b1", "b2", "b3", "a5", "a6", "b4"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    exim.wait_for_deliveries("inbox", want.len(), Duration::from_secs(30));
    let got: BTreeSet<String> = subjects_delivered(&exim).into_iter().collect();
    assert_eq!(got, want, "delivered mails differ from the accepted ones");
}

#[test]
#[ignore = "system: needs root+exim"]
fn forged_origin_is_refused_and_logged_and_the_honest_one_is_logged() {
    require_root();
    let a = ThrowawayUser::create("pto");
    let b = ThrowawayUser::create("ptp");
    let exim = start("[limits]\nmessages = 50\n");
    let port = exim.port();

    let forged = format!("X-BaseOS-Origin: uid={} user={}", b.uid, b.name);
    let s = swaks(&a, port, "forged", &["--header", &forged]);
    assert!(!s.ok, "forged origin accepted: {}", s.transcript);
    assert!(refusal(&s).starts_with("550"), "{}", s.transcript);
    let line = format!(
        "BASEOS-FORGED U={} claimed=\"uid={} user={}\"",
        a.name, b.uid, b.name
    );
    assert!(
        exim.rejectlog().contains(&line),
        "rejectlog lacks {line:?}:\n{}",
        exim.rejectlog()
    );
    // Only the uid forged, the user honest: still refused.
    let s = swaks(
        &a,
        port,
        "forged-uid",
        &[
            "--header",
            &format!("X-BaseOS-Origin: uid={} user={}", b.uid, a.name),
        ],
    );
    assert!(!s.ok, "{}", s.transcript);
    // Two headers, the first honest: refused (a repeated header is a forgery).
    let honest = format!(
        "X-BaseOS-Origin: uid={} user={} script=\"/home/{}/www/wp \\\"mail\\\".php\" cwd=\"/home/{}/www\"",
        a.uid, a.name, a.name, a.name
    );
    let s = swaks(
        &a,
        port,
        "twice",
        &["--header", &honest, "--add-header", &forged],
    );
    assert!(
        !s.ok,
        "a repeated origin header was accepted: {}",
        s.transcript
    );

    let s = swaks(&a, port, "honest", &["--header", &honest]);
    assert!(s.ok, "honest origin refused: {}", s.transcript);
    let line = format!(
        "BASEOS-ORIGIN U={} uid={} user={} script=\"/home/{}/www/wp \\\"mail\\\".php\" cwd=\"/home/{}/www\"",
        a.name, a.uid, a.name, a.name, a.name
    );
    assert!(
        exim.wait_for_log(&line, Duration::from_secs(5)),
        "mainlog lacks {line:?}:\n{}",
        exim.mainlog()
    );
    // The origin line carries the same message id as the message's arrival line.
    let log = exim.mainlog();
    let origin = log.lines().find(|l| l.contains("BASEOS-ORIGIN")).unwrap();
    let id = origin.split_whitespace().nth(3).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains(&format!("{id} <= ")) && l.contains(&format!("U={}", a.name))),
        "{log}"
    );
    // Direct mail without the header is accepted (limits still apply) and not logged as origin.
    let s = swaks(&a, port, "plain", &[]);
    assert!(s.ok, "{}", s.transcript);
    let mails = exim.wait_for_deliveries("inbox", 2, Duration::from_secs(30));
    assert_eq!(
        mails.len(),
        2,
        "only the honest and the plain mail may be delivered"
    );
    assert!(
        mails
            .iter()
            .any(|m| String::from_utf8_lossy(m).contains(&honest)),
        "header = keep: the honest header stays"
    );
}

#[test]
#[ignore = "system: needs root+exim"]
fn strip_policy_removes_a_forged_origin_and_logs_it() {
    require_root();
    let a = ThrowawayUser::create("pts");
    let exim = start("[origin]\nforged = \"strip\"\nheader = \"remove\"\n");
    let s = swaks(
        &a,
        exim.port(),
        "stripped",
        &["--header", "X-BaseOS-Origin: uid=0 user=root"],
    );
    assert!(s.ok, "strip policy refused the mail: {}", s.transcript);
    let s = swaks(
        &a,
        exim.port(),
        "removed",
        &[
            "--header",
            &format!("X-BaseOS-Origin: uid={} user={}", a.uid, a.name),
        ],
    );
    assert!(s.ok, "{}", s.transcript);
    let mails = exim.wait_for_deliveries("inbox", 2, Duration::from_secs(30));
    assert_eq!(mails.len(), 2);
    for m in &mails {
        assert!(
            !String::from_utf8_lossy(m).contains("X-BaseOS-Origin"),
            "origin header left in a delivered mail"
        );
    }
    let log = exim.mainlog();
    assert!(
        log.contains(&format!(
            "BASEOS-FORGED U={} action=stripped claimed=\"uid=0 user=root\"",
            a.name
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "BASEOS-ORIGIN U={} uid={} user={} script=\"\" cwd=\"\"",
            a.name, a.uid, a.name
        )),
        "{log}"
    );
}

#[test]
#[ignore = "system: needs root+exim"]
fn blocked_user_and_foreign_sender_domain_are_refused_at_mail() {
    require_root();
    let a = ThrowawayUser::create("ptd");
    let b = ThrowawayUser::create("pte");
    let c = ThrowawayUser::create("ptf");
    let policy = format!(
        "[sender_domains]\nmode = \"enforce\"\n[users.{}]\nsender_domains = [\"a.example\"]\n[users.{}]\nsender_domains = [\"b.example\"]\n[users.{}]\nblocked = true\n",
        a.name, b.name, c.name
    );
    let exim = start(&policy);
    let port = exim.port();
    let s = swaks(&a, port, "as-b", &["--from", "info@b.example"]);
    assert!(!s.ok, "A sent as B's domain: {}", s.transcript);
    let r = refusal(&s);
    assert!(
        r.starts_with("550") && r.contains("may not use the sender <info@b.example>"),
        "{r}"
    );
    assert!(
        s.transcript.contains("MAIL FROM:<info@b.example>") && !s.transcript.contains("RCPT TO"),
        "not refused at MAIL"
    );
    let s = swaks(&a, port, "as-a", &["--from", "info@a.example"]);
    assert!(s.ok, "A refused its own domain: {}", s.transcript);
    let s = swaks(&b, port, "as-b-own", &["--from", "info@b.example"]);
    assert!(s.ok, "{}", s.transcript);
    let s = swaks(&c, port, "blocked", &[]);
    let r = refusal(&s);
    assert!(
        r.starts_with("550") && r.contains("is blocked"),
        "{}",
        s.transcript
    );
    assert!(
        !s.transcript.contains("RCPT TO"),
        "blocked user not refused at MAIL"
    );
    assert!(exim
        .rejectlog()
        .contains(&format!("BASEOS-BLOCKED U={}", c.name)));
    assert!(exim.rejectlog().contains(&format!(
        "BASEOS-SENDER U={} sender=<info@b.example>",
        a.name
    )));
}

/// `exim -C conf -bh 127.0.0.1 -oMt ident` with `smtp` on stdin; returns stdout.
fn bh(exim: &str, conf: &Path, extra_args: &[&str], ident: &str, smtp: &str) -> String {
    use std::io::Write as _;
    let mut child = Command::new(exim)
        .arg("-C")
        .arg(conf)
        .args(extra_args)
        .args(["-bh", "127.0.0.1", "-oMt", ident])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run exim -bh");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(smtp.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// One -bh session per MAIL (no pipelining sync trouble); returns the MAIL reply codes.
fn mail_codes(conf: &Path, extra: &[&str], ident: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let out = bh(
                "exim",
                conf,
                extra,
                ident,
                "EHLO t\r\nMAIL FROM:<x@test.example>\r\nQUIT\r\n",
            );
            let codes: Vec<&str> = out
                .lines()
                .filter(|l| l.len() > 3 && l.as_bytes()[3] == b' ')
                .map(|l| &l[..3])
                .collect();
            // 220, 250 (EHLO), MAIL reply, 221
            codes.get(2).copied().unwrap_or("none").to_string()
        })
        .collect()
}

#[test]
#[ignore = "system: needs root+exim"]
fn injected_ident_is_refused_before_ratelimit() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    Command::new("chown")
        .arg("Debian-exim:Debian-exim")
        .arg(&spool)
        .status()
        .unwrap();
    let text = format!(
        "[limits]\nmessages = 2\n[standalone]\nspool_directory = \"{}\"\nlocal_domains = [\"test.example\"]\n",
        spool.display()
    );
    let p = Policy::parse(&text, Path::new("p.toml")).unwrap();
    let files = render::render(&p, Layout::Standalone, dir.path());
    render::write_files(dir.path(), &files, false).unwrap();
    let conf = dir.path().join("exim.conf");
    for ident in [
        "evil/count=0",
        "evil/per_rcpt",
        "Evil",
        "ev il",
        "../x",
        "a:b",
    ] {
        let out = bh(
            "exim",
            &conf,
            &[],
            ident,
            "EHLO t\r\nMAIL FROM:<x@test.example>\r\nQUIT\r\n",
        );
        assert!(
            out.contains("550 Unacceptable ident"),
            "ident {ident:?} not refused at connect:\n{out}"
        );
        assert!(
            !out.contains("250 OK"),
            "ident {ident:?} reached MAIL:\n{out}"
        );
    }
    // Nothing reached a ratelimit key.
    let dump = Command::new("exim_dumpdb")
        .arg(&spool)
        .arg("ratelimit")
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&dump.stdout).contains("evil"),
        "{}",
        String::from_utf8_lossy(&dump.stdout)
    );
    // The same config limits a plain ident: 2 accepted, the 3rd deferred.
    assert_eq!(mail_codes(&conf, &[], "carol", 3), ["250", "250", "451"]);
}

#[test]
#[ignore = "system: needs root+exim"]
fn without_identd_loopback_mail_is_deferred_at_once() {
    require_root();
    // An Exim in its own network namespace: its loopback has no identd (the shared oidentd
    // keeps running for the other tests).
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for d in ["spool", "log", "mail"] {
        std::fs::create_dir(dir.path().join(d)).unwrap();
        Command::new("chown")
            .arg("Debian-exim:Debian-exim")
            .arg(dir.path().join(d))
            .status()
            .unwrap();
    }
    let text = format!(
        "[ident]\ntimeout = \"10s\"\n[standalone]\nport = 2525\nspool_directory = \"{d}/spool\"\nlog_file_path = \"{d}/log/%slog\"\n\
         pid_file = \"{d}/exim.pid\"\nmail_dir = \"{d}/mail\"\nlocal_domains = [\"test.example\"]\nrelay = false\n",
        d = dir.path().display()
    );
    let p = Policy::parse(&text, Path::new("p.toml")).unwrap();
    let files = render::render(&p, Layout::Standalone, dir.path());
    render::write_files(dir.path(), &files, false).unwrap();
    let conf = dir.path().join("exim.conf");
    let mut daemon = Command::new("unshare")
        .args(["-n", "--", "sh", "-c"])
        .arg(format!(
            "ip link set lo up && exec exim4 -C {} -bdf",
            conf.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("unshare -n exim4 -bdf");
    let netns = format!("--net=/proc/{}/ns/net", daemon.id());
    let up = baseos_tests::wait_until(Duration::from_secs(10), || {
        Command::new("nsenter")
            .arg(&netns)
            .args(["--", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/2525"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    });
    let start = Instant::now();
    let out = if up {
        Command::new("nsenter")
            .arg(&netns)
            .args([
                "--",
                "swaks",
                "--server",
                "127.0.0.1",
                "--port",
                "2525",
                "--to",
                "inbox@test.example",
            ])
            .output()
            .unwrap()
    } else {
        Command::new("false").output().unwrap()
    };
    let elapsed = start.elapsed();
    let _ = Command::new("kill").arg(daemon.id().to_string()).status();
    let _ = daemon.wait();
    assert!(up, "the namespaced Exim did not listen");
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(
        transcript.contains("<** 451") && transcript.contains("needs an RFC 1413 ident"),
        "want 451 at connect without identd, got:\n{transcript}"
    );
    // "At once": the refused ident connection fails immediately, not after the 10 s timeout.
    assert!(
        elapsed < Duration::from_secs(5),
        "deferral took {elapsed:?} (the ident timeout is 10 s)"
    );
    let log = std::fs::read_to_string(dir.path().join("log/mainlog")).unwrap_or_default();
    assert!(
        log.contains("temporarily rejected connection in \"connect\" ACL: BASEOS-NOIDENT"),
        "{log}"
    );
}

/// `update-exim4.conf` on a copy of /etc/exim4 with the debian layout installed, for both
/// `dc_use_split_config` values: `exim -bV` passes and the limit fires (`-bh -oMt`).
#[test]
#[ignore = "system: needs root+exim"]
fn debian_layout_works_split_and_unsplit() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("exim4");
    let st = Command::new("cp")
        .arg("-a")
        .arg("/etc/exim4")
        .arg(&copy)
        .status()
        .unwrap();
    assert!(st.success());
    let policy_file = dir.path().join("policy.toml");
    std::fs::write(
        &policy_file,
        "[limits]\nmessages = 2\nmessages_period = \"1d\"\n",
    )
    .unwrap();
    let p = Policy::load(&policy_file).unwrap();
    let data_dir = copy.join("baseos");
    let out = dir.path().join("out");
    let files = render::render(&p, Layout::Debian, &data_dir);
    render::write_files(&out, &files, false).unwrap();
    // Install as the README says.
    std::fs::create_dir_all(&data_dir).unwrap();
    for f in files.iter().filter(|f| f.path.starts_with("baseos")) {
        std::fs::copy(out.join(&f.path), copy.join(&f.path)).unwrap();
    }
    std::fs::copy(
        out.join("conf.d/main/00_baseos-policy"),
        copy.join("conf.d/main/00_baseos-policy"),
    )
    .unwrap();
    std::fs::copy(
        out.join("exim4.conf.localmacros"),
        copy.join("exim4.conf.localmacros"),
    )
    .unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    Command::new("chown")
        .arg("Debian-exim:Debian-exim")
        .arg(&spool)
        .status()
        .unwrap();
    let spool_macro = format!("-DSPOOLDIR={}", spool.display());

    let conf_conf = copy.join("update-exim4.conf.conf");
    let original = std::fs::read_to_string(&conf_conf).unwrap();
    for split in ["true", "false"] {
        let text: String = original
            .lines()
            .filter(|l| !l.starts_with("dc_use_split_config="))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            + &format!("dc_use_split_config='{split}'\n");
        std::fs::write(&conf_conf, text).unwrap();
        let generated = dir.path().join(format!("exim4-{split}.conf"));
        // update-exim4.conf reads /etc/exim4/exim4.conf.localmacros whatever -d says: run it
        // in a private mount namespace where the copy is mounted over /etc/exim4.
        let st = Command::new("unshare")
            .args(["-m", "--", "sh", "-c"])
            .arg(format!(
                "mount --bind {} /etc/exim4 && update-exim4.conf -o {}",
                copy.display(),
                generated.display()
            ))
            .status()
            .unwrap();
        assert!(st.success(), "update-exim4.conf failed (split={split})");
        let text = std::fs::read_to_string(&generated).unwrap();
        assert!(
            text.contains(&format!(
                "MAIN_ACL_CHECK_MAIL = {}/acl_mail",
                data_dir.display()
            )),
            "split={split}: the policy macros are not in the generated config"
        );
        let bv = Command::new("exim")
            .arg("-C")
            .arg(&generated)
            .arg("-bV")
            .output()
            .unwrap();
        assert!(
            bv.status.success(),
            "split={split}: exim -bV: {}",
            String::from_utf8_lossy(&bv.stderr)
        );
        let _ = std::fs::remove_dir_all(spool.join("db"));
        let ident = format!("deb{split}");
        assert_eq!(
            mail_codes(&generated, &[&spool_macro], &ident, 3),
            ["250", "250", "451"],
            "split={split}: the limit did not fire"
        );
        let out = bh(
            "exim",
            &generated,
            &[&spool_macro],
            "evil/count=0",
            "EHLO t\r\nQUIT\r\n",
        );
        // The check command against the generated (installed) configuration.
        let check = Command::new(env!("CARGO_BIN_EXE_exim-policy"))
            .args(["check", "--policy"])
            .arg(&policy_file)
            .arg("--installed-config")
            .arg(&generated)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&check.stdout);
        assert!(
            check.status.success(),
            "split={split}: check --installed-config:\n{report}"
        );
        assert!(
            report.contains("ok   default limit: 2 messages per 1d accepted"),
            "{report}"
        );
        assert!(
            out.contains("550 Unacceptable ident"),
            "split={split}: {out}"
        );
    }
    // A stale install (the data file of limits lost) is caught by check: exit 1, FAIL lines.
    std::fs::remove_file(data_dir.join("limits")).unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_exim-policy"))
        .args(["check", "--policy"])
        .arg(&policy_file)
        .arg("--installed-config")
        .arg(dir.path().join("exim4-false.conf"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "{report}");
    assert!(report.contains("FAIL default limit"), "{report}");
    // The real system files were not touched.
    assert!(!Path::new("/etc/exim4/baseos").exists());
}

#[test]
#[ignore = "system: needs root+exim"]
fn check_command_passes_on_the_shipped_example_and_fails_on_a_bad_policy() {
    require_root();
    let bin = env!("CARGO_BIN_EXE_exim-policy");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policy.toml");
    let out = Command::new(bin)
        .args(["check", "--policy"])
        .arg(&example)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check failed on the example:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ok   default limit: 100 messages per 1h accepted, next MAIL \"451"),
        "{stdout}"
    );
    assert!(stdout.contains("ok   blocked user hacked"), "{stdout}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[limits]\nmessages = 0\n").unwrap();
    let out = Command::new(bin)
        .args(["check", "--policy"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2") && err.contains("fix:"), "{err}");
}

/// 20 users x 50 mails over concurrent connections (5 per user at a time), each user limited
/// to 30 per day: every 250 is delivered, each user gets exactly 30 accepted, nothing else.
#[test]
#[ignore = "system: needs root+exim"]
fn load_20_users_50_mails_each_exact_limits() {
    require_root();
    const USERS: usize = 20;
    const MAILS: usize = 50;
    const LIMIT: usize = 30;
    let users: Vec<ThrowawayUser> = (0..USERS).map(|_| ThrowawayUser::create("ptl")).collect();
    let exim = start(&format!(
        "[limits]\nmessages = {LIMIT}\nmessages_period = \"1d\"\n"
    ));
    let port = exim.port();
    let (_copy, client) = world_executable_copy();
    let client = &client;
    let results: Vec<(String, Vec<(usize, String)>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = users
            .iter()
            .map(|u| {
                scope.spawn(move || {
                    // The client runs as the user: ident names the socket's owner.
                    let out = u
                        .command(client)
                        .args([
                            "--ignored",
                            "--exact",
                            "load_client",
                            "--nocapture",
                            "--test-threads=1",
                        ])
                        .env(
                            "EXIM_POLICY_LOAD_CLIENT",
                            format!("{port} {MAILS} {}", u.name),
                        )
                        .output()
                        .expect("run the load client as the user");
                    let text = String::from_utf8_lossy(&out.stdout).to_string();
                    let replies: Vec<(usize, String)> = text
                        .lines()
                        .filter_map(|l| l.find("RESULT ").map(|i| &l[i + 7..]))
                        .map(|l| {
                            let (n, r) = l.split_once(' ').unwrap();
                            (n.parse().unwrap(), r.to_string())
                        })
                        .collect();
                    assert_eq!(
                        replies.len(),
                        MAILS,
                        "load client output for {}:\n{text}{}",
                        u.name,
                        String::from_utf8_lossy(&out.stderr)
                    );
                    (u.name.clone(), replies)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut accepted: BTreeSet<String> = BTreeSet::new();
    let mut per_user: BTreeMap<String, usize> = BTreeMap::new();
    for (name, replies) in &results {
        for (n, reply) in replies {
            if reply.starts_with("250") {
                accepted.insert(format!("load {name} {n}"));
                *per_user.entry(name.clone()).or_default() += 1;
            } else {
                assert!(
                    reply.starts_with("451") && reply.contains("at most 30 messages"),
                    "{name} mail {n}: unexpected reply {reply:?}"
                );
            }
        }
    }
    for (name, _) in &results {
        assert_eq!(
            per_user.get(name).copied().unwrap_or(0),
            LIMIT,
            "user {name}: accepted count differs from the limit"
        );
    }
    let delivered = exim.wait_for_deliveries("inbox", accepted.len(), Duration::from_secs(120));
    let subjects: Vec<String> = subjects_delivered(&exim);
    let unique: BTreeSet<String> = subjects.iter().cloned().collect();
    assert_eq!(
        delivered.len(),
        accepted.len(),
        "delivered count differs from the 250s"
    );
    assert_eq!(unique.len(), subjects.len(), "a mail was delivered twice");
    assert_eq!(
        unique, accepted,
        "the delivered mails are not exactly the accepted ones"
    );
}

/// Not a test on its own: the load test runs this test binary as each throwaway user with
/// EXIM_POLICY_LOAD_CLIENT="<port> <mails> <user>"; it then sends that many mails, 5
/// connections at a time, one mail per connection, and prints one RESULT line per mail.
#[test]
#[ignore = "helper of load_20_users_50_mails_each_exact_limits"]
fn load_client() {
    let Ok(spec) = std::env::var("EXIM_POLICY_LOAD_CLIENT") else {
        return;
    };
    let mut it = spec.split_whitespace();
    let port: u16 = it.next().unwrap().parse().unwrap();
    let mails: usize = it.next().unwrap().parse().unwrap();
    let user = it.next().unwrap().to_string();
    let next = std::sync::atomic::AtomicUsize::new(1);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..5 {
            scope.spawn(|| loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n > mails {
                    return;
                }
                let reply = send_one(port, &user, n);
                results.lock().unwrap().push((n, reply));
            });
        }
    });
    for (n, r) in results.into_inner().unwrap() {
        println!("RESULT {n} {r}");
    }
}

/// One SMTP transaction; returns the reply that decided it (MAIL's if refused, else the final one).
fn send_one(port: u16, user: &str, n: usize) -> String {
    use std::io::{BufRead, BufReader, Write};
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut w = stream;
    let mut reply = || {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return if text.is_empty() {
                    "EOF".to_string()
                } else {
                    text
                };
            }
            let more = line.as_bytes().get(3) == Some(&b'-');
            text.push_str(line.trim_end());
            text.push(' ');
            if !more {
                return text.trim_end().to_string();
            }
        }
    };
    let banner = reply();
    if !banner.starts_with("220") {
        return banner;
    }
    let steps = [
        "EHLO load.test".to_string(),
        format!("MAIL FROM:<{user}@test.example>"),
        "RCPT TO:<inbox@test.example>".to_string(),
        "DATA".to_string(),
        format!("Subject: load {user} {n}\r\n\r\nmail {n} of {user}\r\n."),
    ];
    let mut last = String::new();
    for s in &steps {
        w.write_all(format!("{s}\r\n").as_bytes()).unwrap();
        last = reply();
        let ok = last.starts_with('2') || last.starts_with("354");
        if !ok {
            break;
        }
    }
    let _ = w.write_all(b"QUIT\r\n");
    let _ = w.shutdown(std::net::Shutdown::Write);
    last
}

/// The BaseOS shim and direct SMTP share one bucket: the limit holds whichever way a user
/// sends, and the shim's honest origin header is logged with the script.
#[test]
#[ignore = "system: needs root+exim"]
fn shim_and_direct_smtp_share_the_limit_and_the_shim_origin_is_logged() {
    use std::io::Write as _;
    require_root();
    let shim = baseos_tests::bin_path("sendmail");
    let a = ThrowawayUser::create("ptk");
    let exim = start("[limits]\nmessages = 3\nmessages_period = \"1d\"\n");
    let port = exim.port().to_string();
    let send_shim = |subject: &str| {
        let mut child = a
            .command(&shim)
            .args(["-s", "127.0.0.1", "-p", &port, "-t", "-i"])
            .env(
                "SCRIPT_FILENAME",
                format!("/home/{}/www/wp-mail.php", a.name),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the shim");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("To: inbox@test.example\nSubject: {subject}\n\nhello\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    for n in 1..=2 {
        let out = send_shim(&format!("shim{n}"));
        assert!(
            out.status.success(),
            "shim mail {n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let s = swaks(&a, exim.port(), "direct3", &[]);
    assert!(s.ok, "{}", s.transcript);
    let s = swaks(&a, exim.port(), "direct4", &[]);
    assert!(
        refusal(&s).starts_with("451"),
        "direct SMTP over the limit: {}",
        s.transcript
    );
    let out = send_shim("shim5");
    assert_eq!(
        out.status.code(),
        Some(69),
        "shim over the limit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = format!(
        "BASEOS-ORIGIN U={} uid={} user={} script=\"/home/{}/www/wp-mail.php\"",
        a.name, a.uid, a.name, a.name
    );
    assert_eq!(
        exim.mainlog().matches(&line).count(),
        2,
        "{}",
        exim.mainlog()
    );
    exim.wait_for_deliveries("inbox", 3, Duration::from_secs(30));
    let got: BTreeSet<String> = subjects_delivered(&exim).into_iter().collect();
    let want: BTreeSet<String> = ["shim1", "shim2", "direct3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, want);
}

/// 127.0.0.1 and ::1 are one user, one bucket.
#[test]
#[ignore = "system: needs root+exim"]
fn ipv4_and_ipv6_loopback_share_the_bucket() {
    require_root();
    let a = ThrowawayUser::create("ptv");
    let exim = start("[limits]\nmessages = 2\nmessages_period = \"1d\"\n");
    let port = exim.port();
    let s = swaks(&a, port, "v4", &[]);
    assert!(s.ok, "{}", s.transcript);
    let s = swaks(&a, port, "v6", &["--server", "::1"]);
    assert!(s.ok, "{}", s.transcript);
    assert!(
        exim.mainlog().contains("[::1]"),
        "the mail did not arrive over ::1"
    );
    let s = swaks(&a, port, "v6-over", &["--server", "::1"]);
    assert!(refusal(&s).starts_with("451"), "{}", s.transcript);
    let s = swaks(&a, port, "v4-over", &[]);
    assert!(refusal(&s).starts_with("451"), "{}", s.transcript);
}

/// A hand edit of the data file applies to the next connection; a row the ACL cannot
/// validate defers the user's mail (logged) instead of letting it through unlimited.
#[test]
#[ignore = "system: needs root+exim"]
fn hand_edited_data_file_applies_live_and_bad_rows_fail_closed() {
    require_root();
    let a = ThrowawayUser::create("pth");
    let exim = start("[limits]\nmessages = 1\nmessages_period = \"1d\"\n");
    let port = exim.port();
    assert!(swaks(&a, port, "one", &[]).ok);
    assert!(refusal(&swaks(&a, port, "two", &[])).starts_with("451"));
    let limits = exim.paths().dir.join("policy/limits");
    let text = std::fs::read_to_string(&limits).unwrap();
    std::fs::write(&limits, format!("{text}{}: kind=user msgs=3/1d\n", a.name)).unwrap();
    let s = swaks(&a, port, "three", &[]);
    assert!(s.ok, "hand-raised limit not applied: {}", s.transcript);
    std::fs::write(
        &limits,
        format!("{text}{}: kind=user msgs=9/1d/count=0\n", a.name),
    )
    .unwrap();
    let s = swaks(&a, port, "four", &[]);
    let r = refusal(&s);
    assert!(
        r.starts_with("451") && r.contains("policy data"),
        "bad row: {}",
        s.transcript
    );
    assert!(
        exim.mainlog()
            .contains(&format!("BASEOS-BADDATA U={}", a.name)),
        "{}",
        exim.mainlog()
    );
}

/// A copy of this binary that any user can run (the build tree may sit below a folder only
/// root can enter, e.g. /root): the clients run as throwaway users.
fn world_executable_copy() -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("exim-policy-client-")
        .tempdir()
        .expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.path().join("client");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).expect("copy the test binary");
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, exe)
}
