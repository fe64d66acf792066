//! End to end, as root on loopback: PHP's mail() inside a BaseOS chroot reaches Exim as its
//! user, is limited per user, and is counted by `exim-policy report` (issue 6).
//!
//! Each test sets up its own [`Scenario`] (tree built from this host and loaded into tmpfs in a
//! private mount namespace, the rendered policy on a private Exim, oidentd, throwaway users)
//! and tears everything down on drop, also when an assertion fails.
#![allow(clippy::unwrap_used)]

use baseos_tests::scenario::{Scenario, ScenarioOptions};
use baseos_tests::{run, ThrowawayUser};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The header block of a delivered mail, unfolded lines.
fn header_value(mail: &[u8], name: &str) -> Option<String> {
    let mail = text(mail);
    let head = mail.split("\n\n").next().unwrap_or_default().to_string();
    let prefix = format!("{}:", name.to_ascii_lowercase());
    let mut value: Option<String> = None;
    for line in head.lines() {
        if let Some(v) = value.as_mut() {
            if line.starts_with([' ', '\t']) {
                v.push_str(line);
                continue;
            }
            break;
        }
        if line.to_ascii_lowercase().starts_with(&prefix) {
            value = Some(line[prefix.len()..].trim().to_string());
        }
    }
    value
}

/// Runs the tree's /usr/sbin/sendmail as `user` with `args`, feeding `stdin`.
fn sendmail_in_tree(
    s: &Scenario,
    user: &ThrowawayUser,
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    let mut cmd = Command::new(baseos_tests::bin_path("chroot-builder"));
    cmd.arg("exec")
        .arg("--manifest")
        .arg(&s.manifest)
        .arg("--master")
        .arg(&s.master)
        .arg("--live")
        .arg(&s.live)
        .arg("--disk")
        .arg(&s.disk)
        .arg("--user")
        .arg(&user.name)
        .arg("--")
        .arg("/usr/sbin/sendmail")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn php_mail_in_the_chroot_arrives_as_its_user_is_limited_and_counted() {
    let s = Scenario::start(ScenarioOptions::new("ea"));
    let (a, b) = (&s.users[0], &s.users[1]);

    // 1. PHP mail() with the stock sendmail_path returns true; the mail carries the origin.
    let (ok, out) = s.php_mail(a, "inbox@test.example", "from php", "Hello from PHP.\n");
    assert!(
        ok,
        "mail() returned false: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let mails = s.delivered("inbox", 1);
    let origin = header_value(&mails[0], "X-BaseOS-Origin").expect("X-BaseOS-Origin header");
    let script = s.www.join(&a.name).join("send.php");
    assert_eq!(
        origin,
        format!(
            "uid={} user={} script=\"{}\" cwd=\"{}\"",
            a.uid,
            a.name,
            script.display(),
            s.www.join(&a.name).display()
        )
    );
    assert!(
        s.exim.mainlog().contains(&format!("U={} P=esmtp", a.name)),
        "mainlog has no U={}:\n{}",
        a.name,
        s.exim.mainlog()
    );

    // 2. PHPMailer-style: sendmail -oi -t -f addr.
    let out = sendmail_in_tree(
        &s,
        a,
        &["-oi", "-t", "-f", &format!("{}@test.example", a.name)],
        "To: inbox@test.example\nSubject: phpmailer style\n\nbody\n",
    );
    assert!(
        out.status.success(),
        "phpmailer-style: {}",
        text(&out.stderr)
    );
    // 3. cron-style: sendmail <user> with the body on stdin.
    let out = sendmail_in_tree(&s, a, &["inbox"], "Subject: cron output\n\nall good\n");
    assert!(out.status.success(), "cron-style: {}", text(&out.stderr));
    let mails = s.delivered("inbox", 3);
    let subjects: Vec<String> = mails
        .iter()
        .filter_map(|m| header_value(m, "Subject"))
        .collect();
    assert!(
        subjects.contains(&"phpmailer style".to_string()),
        "{subjects:?}"
    );
    assert!(
        subjects.contains(&"cron output".to_string()),
        "{subjects:?}"
    );

    // 4. Past the limit (3 per hour) mail() returns false and says why; nothing is delivered.
    let (ok, out) = s.php_mail(a, "inbox@test.example", "one too many", "x\n");
    assert!(!ok, "mail() past the limit returned true");
    let why = text(&out.stderr) + &text(&out.stdout);
    assert!(
        why.contains("BASEOS") || why.to_lowercase().contains("limit"),
        "{why}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.exim.delivered("inbox").len(), 3);

    // 5. The other user is unaffected: a Symfony-style -bs session, then mail().
    let bs = format!(
        "EHLO localhost\r\nMAIL FROM:<{b}@test.example>\r\nRCPT TO:<inbox@test.example>\r\nDATA\r\n\
         From: {b}@test.example\r\nTo: inbox@test.example\r\nSubject: symfony style\r\n\r\nhi\r\n.\r\nQUIT\r\n",
        b = b.name
    );
    let out = sendmail_in_tree(&s, b, &["-bs"], &bs);
    let dialogue = text(&out.stdout);
    assert!(
        dialogue.contains("\n250") && dialogue.contains("221"),
        "{dialogue}"
    );
    let (ok, out) = s.php_mail(b, "inbox@test.example", "b via php", "hi\n");
    assert!(ok, "user B's mail() failed: {}", text(&out.stderr));
    let mails = s.delivered("inbox", 5);
    let symfony = mails
        .iter()
        .find(|m| header_value(m, "Subject").as_deref() == Some("symfony style"))
        .expect("the -bs mail arrived");
    assert!(header_value(symfony, "X-BaseOS-Origin")
        .unwrap()
        .starts_with(&format!("uid={} user={}", b.uid, b.name)));

    // 6. The report counts both users exactly and names A's script.
    let json = s.report(&["--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let users = report["users"].as_array().expect("users array");
    let find = |name: &str| {
        users
            .iter()
            .find(|u| u["user"] == name)
            .unwrap_or_else(|| panic!("{name} missing from report: {json}"))
    };
    assert_eq!(find(&a.name)["mails"], 3, "{json}");
    assert_eq!(find(&b.name)["mails"], 2, "{json}");
    assert_eq!(
        find(&a.name)["rejections_by_reason"]["ratelimit"],
        1,
        "{json}"
    );
    assert_eq!(find(&b.name)["rejections"], 0, "{json}");
    let a_scripts = find(&a.name)["top_scripts"].to_string();
    assert!(
        a_scripts.contains(&format!("{}\"", script.display())),
        "{a_scripts}"
    );
}

#[test]
fn exim_down_fails_mail_in_time_and_a_restart_within_the_retry_window_delivers() {
    let mut options = ScenarioOptions::new("eb");
    options.users = 1;
    options.retry_for_secs = 6;
    options.deadline_secs = 20;
    let mut s = Scenario::start(options);
    let a = &s.users[0];
    // Exim down: mail() returns false once the retry window is over, well within the deadline.
    s.exim.stop();
    let started = Instant::now();
    let (ok, out) = s.php_mail(a, "inbox@test.example", "while down", "x\n");
    let took = started.elapsed();
    assert!(!ok, "mail() returned true with Exim stopped");
    assert!(
        took < Duration::from_secs(20),
        "mail() took {took:?}, beyond the 20 s deadline"
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains("sendmail:"), "no clear error: {stderr}");

    // Nothing half-sent: Exim's spool is empty and nothing was delivered.
    s.exim.restart();
    let spool = run(Command::new("exim4")
        .arg("-C")
        .arg(&s.exim.paths().config)
        .arg("-bpc"));
    assert_eq!(spool.trim(), "0");
    assert!(s.exim.delivered("inbox").is_empty());

    // Exim restarts while a mail is being retried: it goes through, exactly once.
    s.exim.stop();
    std::thread::scope(|scope| {
        let sender = scope.spawn(|| s.php_mail(a, "inbox@test.example", "during restart", "x\n"));
        std::thread::sleep(Duration::from_millis(1500));
        // Can't borrow s mutably while the sender runs: restart through a fresh daemon handle.
        run(Command::new("sh").arg("-c").arg(format!(
            "exim4 -C {} -bd -oP {}/restart.pid",
            s.exim.paths().config.display(),
            s.exim.paths().dir.display()
        )));
        let (ok, out) = sender.join().unwrap();
        assert!(
            ok,
            "mail() during the restart failed: {}",
            text(&out.stderr)
        );
    });
    let mails = s.delivered("inbox", 1);
    assert_eq!(mails.len(), 1);
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "kill $(cat {}/restart.pid)",
            s.exim.paths().dir.display()
        ))
        .status();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.exim.delivered("inbox").len(), 1, "a second copy arrived");
}
