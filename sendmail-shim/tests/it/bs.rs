//! `-bs`: Symfony Mailer's real `SendmailTransport` (Debian's php-symfony-mailer) drives the
//! static shim, which relays to a real Exim and adds the origin tag. And a session against the
//! scripted server: an upstream refusal reaches the SMTP client as a refusal.

use std::process::Command;
use std::time::Duration;

use baseos_tests::{bin_path, require_root, Exim, EximConfig, ThrowawayUser};

use crate::exim::{arrival, split};
use crate::scripted::{Plan, Scripted};
use crate::{dev_binary, pipe, run_shim, TestConfig};

const SYMFONY: &str = "/usr/share/php/Symfony/Component/Mailer/autoload.php";

const SCRIPT: &str = r#"<?php
require '/usr/share/php/Symfony/Component/Mailer/autoload.php';
use Symfony\Component\Mailer\Mailer;
use Symfony\Component\Mailer\Transport\SendmailTransport;
use Symfony\Component\Mime\Email;
// SendmailTransport insists on " -bs" in the command: it then runs an SMTP session over the
// process's stdin/stdout (SmtpTransport over ProcessStream).
$transport = new SendmailTransport($argv[1] . ' -bs');
$mailer = new Mailer($transport);
$email = (new Email())
    ->from('app@test.example')
    ->to($argv[3] ?? 'bob@test.example')
    ->bcc('hidden@test.example')
    ->subject($argv[2])
    ->text("Hello from Symfony.\n.leading dot\n");
try {
    $mailer->send($email);
    echo "sent\n";
} catch (\Throwable $e) {
    echo "failed: ", $e->getMessage(), "\n";
    exit(3);
}
"#;

#[test]
#[ignore = "system: needs root+exim+php-symfony-mailer"]
fn symfony_sendmail_transport_bs_reaches_exim_tagged() {
    require_root();
    assert!(
        std::path::Path::new(SYMFONY).exists(),
        "php-symfony-mailer is missing: apt-get install php-symfony-mailer (scripts/install-deps.sh)"
    );
    let exim = Exim::start(EximConfig::default());
    let user = ThrowawayUser::create("shb");
    let cfg = TestConfig::new("domain = \"test.example\"\n");
    let script = user.home.join("send.php");
    std::fs::write(&script, SCRIPT).unwrap();
    let shim = format!("{} -p {}", bin_path("sendmail").display(), exim.port());
    let mut cmd = user.command("php");
    cmd.arg(&script)
        .arg(&shim)
        .arg("symfony bs")
        .env("BASEOS_SENDMAIL_CONFIG", &cfg.path)
        .env("SCRIPT_FILENAME", &script);
    let out = pipe(cmd, b"");
    assert_eq!(out.code, 0, "php: {} {}", out.stdout, out.stderr);
    assert_eq!(out.stdout.trim(), "sent");

    let a = arrival(&exim, "symfony bs");
    assert_eq!(a.sender, "app@test.example");
    assert_eq!(a.ident.as_deref(), Some(user.name.as_str()));
    let mut rcpts = a.recipients.clone();
    rcpts.sort();
    assert_eq!(rcpts, ["bob@test.example", "hidden@test.example"]);
    for who in ["bob", "hidden"] {
        let mails = exim.wait_for_deliveries(who, 1, Duration::from_secs(10));
        assert_eq!(mails.len(), 1, "{who}");
        let (head, body) = split(&mails[0]);
        let origin: Vec<&String> = head
            .iter()
            .filter(|l| l.starts_with("X-BaseOS-Origin:"))
            .collect();
        assert_eq!(
            origin,
            [&format!(
                "X-BaseOS-Origin: uid={} user={} script=\"{}\" cwd=\"{}\"",
                user.uid,
                user.name,
                script.display(),
                user.home.display()
            )],
        );
        assert!(!head
            .iter()
            .any(|l| l.to_ascii_lowercase().starts_with("bcc:")));
        assert!(
            String::from_utf8_lossy(&body).contains("Hello from Symfony.\n.leading dot\n"),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }

    // A recipient Exim refuses: Symfony gets our 550 answer to the final '.', naming it.
    let mut cmd = user.command("php");
    cmd.arg(&script)
        .arg(&shim)
        .arg("symfony refused")
        .arg("someone@elsewhere.invalid")
        .env("BASEOS_SENDMAIL_CONFIG", &cfg.path);
    let out = pipe(cmd, b"");
    assert_eq!(out.code, 3, "php: {} {}", out.stdout, out.stderr);
    assert!(
        out.stdout.starts_with("failed:")
            && out.stdout.contains("550")
            && out.stdout.contains("<someone@elsewhere.invalid>")
            && out.stdout.contains("relay not permitted"),
        "{}",
        out.stdout
    );
    assert!(!exim.mainlog().contains("T=\"symfony refused\""));
}

#[test]
fn bs_session_relays_upstream_refusal_and_accepts_the_next_mail() {
    let server = Scripted::start(Plan {
        rcpt_for: vec![(
            "nobody@test.example".into(),
            "550 5.1.1 unknown user".into(),
        )],
        ..Plan::default()
    });
    let cfg = TestConfig::new("domain = \"test.example\"\nretry_for = 1\n");
    let port = server.port.to_string();
    let session = "EHLO [127.0.0.1]\r\nMAIL FROM:<app@test.example>\r\nRCPT TO:<nobody@test.example>\r\n\
DATA\r\nSubject: one\r\n\r\nfirst\r\n.\r\n\
MAIL FROM:<app@test.example>\r\nRCPT TO:<bob@test.example>\r\nDATA\r\nSubject: two\r\nBcc: x@test.example\r\n\r\n..second\r\n.\r\nQUIT\r\n";
    let out = run_shim(
        &dev_binary(),
        &cfg,
        &["-p", &port, "-bs"],
        &[],
        session.as_bytes(),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Last lines of each reply only (the EHLO reply is multiline).
    let replies: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.as_bytes().get(3) != Some(&b'-'))
        .collect();
    let codes: Vec<&str> = replies.iter().map(|l| &l[..3]).collect();
    assert_eq!(
        codes,
        ["220", "250", "250", "250", "354", "550", "250", "250", "354", "250", "221"],
        "{}",
        out.stdout
    );
    assert!(
        replies[5].contains("<nobody@test.example>")
            && replies[5].contains("550 5.1.1 unknown user"),
        "{}",
        replies[5]
    );
    let seen = server.settled();
    assert_eq!(seen.messages.len(), 1, "only the second mail was sent");
    let msg = String::from_utf8_lossy(&seen.messages[0]);
    assert!(msg.starts_with("X-BaseOS-Origin: uid="), "{msg}");
    assert!(!msg.contains("Bcc:"), "{msg}");
    assert!(msg.ends_with("\r\n\r\n..second\r\n"), "{msg:?}");
    assert_eq!(
        seen.commands
            .iter()
            .filter(|c| c.starts_with("RCPT TO:<bob@"))
            .count(),
        1
    );
}

#[test]
#[ignore = "system: needs root+exim"]
fn bs_by_hand_against_exim() {
    require_root();
    let exim = Exim::start(EximConfig::default());
    let cfg = TestConfig::new("domain = \"test.example\"\n");
    let mut cmd = Command::new(bin_path("sendmail"));
    cmd.args(["-p", &exim.port().to_string(), "-bs"])
        .env("BASEOS_SENDMAIL_CONFIG", &cfg.path);
    let out = pipe(
        cmd,
        b"HELO x\r\nMAIL FROM:<root@test.example>\r\nRCPT TO:<bob@test.example>\r\nDATA\r\nSubject: by hand\r\n\r\nhi\r\n.\r\nQUIT\r\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("\r\n250 2.0.0 accepted by the mail server: OK id="),
        "{}",
        out.stdout
    );
    arrival(&exim, "by hand");
}
