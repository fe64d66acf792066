//! The static shim against a real Exim daemon (harness config: ident on loopback via oidentd,
//! local domains to one maildir). What Exim received must match what the caller meant: the
//! envelope in the mainlog's `<=` line, headers and body in the delivered file (Exim stores
//! LF line ends), byte for byte for the body.

use std::time::Duration;

use baseos_tests::{bin_path, require_root, Exim, EximConfig, ThrowawayUser};

use crate::{pipe, Output, TestConfig};

/// One `<=` line of the mainlog, by its subject.
#[derive(Debug)]
pub(crate) struct Arrival {
    pub(crate) sender: String,
    pub(crate) ident: Option<String>,
    pub(crate) recipients: Vec<String>,
    pub(crate) line: String,
}

pub(crate) fn arrival(exim: &Exim, subject: &str) -> Arrival {
    let wanted = format!("T=\"{subject}\"");
    assert!(
        exim.wait_for_log(&wanted, Duration::from_secs(10)),
        "no arrival with subject {subject:?} in mainlog:\n{}",
        exim.mainlog()
    );
    let log = exim.mainlog();
    let line = log
        .lines()
        .find(|l| l.contains(" <= ") && l.contains(&wanted))
        .expect("arrival line")
        .to_string();
    let after = line.split_once(" <= ").unwrap().1;
    let sender = after.split(' ').next().unwrap().to_string();
    let ident = line
        .split(' ')
        .find_map(|w| w.strip_prefix("U="))
        .map(str::to_string);
    let recipients = line
        .rsplit_once(" for ")
        .map(|(_, r)| r.split(' ').map(str::to_string).collect())
        .unwrap_or_default();
    Arrival {
        sender,
        ident,
        recipients,
        line,
    }
}

/// Splits a delivered file into its header lines (unfolded not needed here) and body.
pub(crate) fn split(mail: &[u8]) -> (Vec<String>, Vec<u8>) {
    let text = mail;
    let pos = text
        .windows(2)
        .position(|w| w == b"\n\n")
        .expect("blank line after header");
    let head = String::from_utf8_lossy(&text[..pos])
        .lines()
        .map(str::to_string)
        .collect();
    (head, text[pos + 2..].to_vec())
}

fn header<'a>(head: &'a [String], name: &str) -> Vec<&'a str> {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    head.iter()
        .filter(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(|l| l[prefix.len()..].trim())
        .collect()
}

fn config() -> TestConfig {
    TestConfig::new("domain = \"test.example\"\nretry_for = 5\n")
}

/// Runs the static shim as `user` with `args` (port added first) and `stdin`.
fn shim_as(
    user: &ThrowawayUser,
    exim: &Exim,
    cfg: &TestConfig,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &[u8],
) -> Output {
    let mut cmd = user.command(bin_path("sendmail"));
    cmd.arg("-p").arg(exim.port().to_string()).args(args);
    cmd.env_remove("SCRIPT_FILENAME")
        .env("BASEOS_SENDMAIL_CONFIG", &cfg.path);
    cmd.envs(env.iter().copied());
    pipe(cmd, stdin)
}

#[test]
#[ignore = "system: needs root+exim"]
fn php8_mail_crlf_headers_lf_body() {
    require_root();
    let exim = Exim::start(EximConfig::default());
    let user = ThrowawayUser::create("shs");
    let cfg = config();
    // What PHP 8's mail() writes to `sendmail -t -i`: CRLF after its headers, the script's
    // own LF line ends in the body, a lone "." line and a leading dot.
    let input = b"To: bob@test.example\r\nSubject: php8 style\r\nX-Mailer: PHP/8.2\r\n\r\nline one\n.\n..two dots\nlast line\n";
    let out = shim_as(
        &user,
        &exim,
        &cfg,
        &["-t", "-i"],
        &[("SCRIPT_FILENAME", "/home/site/www/contact.php")],
        input,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr, "");
    let a = arrival(&exim, "php8 style");
    assert_eq!(a.sender, format!("{}@test.example", user.name));
    assert_eq!(a.ident.as_deref(), Some(user.name.as_str()), "{}", a.line);
    assert_eq!(a.recipients, ["bob@test.example"]);

    let mails = exim.wait_for_deliveries("bob", 1, Duration::from_secs(10));
    assert_eq!(mails.len(), 1);
    let (head, body) = split(&mails[0]);
    assert_eq!(
        body, b"line one\n.\n..two dots\nlast line\n",
        "body byte for byte"
    );
    let origin = header(&head, "X-BaseOS-Origin");
    assert_eq!(
        origin,
        [format!(
            "uid={} user={} script=\"/home/site/www/contact.php\" cwd=\"{}\"",
            user.uid,
            user.name,
            user.home.display()
        )
        .as_str()]
    );
    // Our first header comes right after Exim's own trace headers.
    let first_ours = head
        .iter()
        .position(|l| {
            !l.starts_with(['\t', ' '])
                && ![
                    "Return-path:",
                    "Envelope-to:",
                    "Delivery-date:",
                    "Received:",
                ]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .unwrap();
    assert!(
        head[first_ours].starts_with("X-BaseOS-Origin: "),
        "{head:#?}"
    );
    assert_eq!(header(&head, "Subject"), ["php8 style"]);
    assert_eq!(header(&head, "X-Mailer"), ["PHP/8.2"]);
    assert_eq!(header(&head, "To"), ["bob@test.example"]);
    assert_eq!(header(&head, "Date").len(), 1, "Date added");
    assert_eq!(header(&head, "Message-ID").len(), 1, "Message-ID added");
    assert_eq!(header(&head, "From").len(), 1, "From added");
    assert!(
        !mails[0].contains(&b'\r'),
        "no CR leaked into the stored mail"
    );
}

#[test]
#[ignore = "system: needs root+exim"]
fn phpmailer_style_with_cc_and_bcc() {
    require_root();
    let exim = Exim::start(EximConfig::default());
    let user = ThrowawayUser::create("shs");
    let cfg = config();
    let input = b"Date: Thu, 03 Dec 2026 12:00:00 +0000\nTo: Bob <bob@test.example>\nFrom: \"Shop, Inc.\" <shop@test.example>\n\
Cc: carol@test.example (Carol)\nBcc: hidden@test.example,\n  secret@test.example\nSubject: phpmailer style\n\
Message-ID: <abc@test.example>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\nHello.\n";
    let out = shim_as(
        &user,
        &exim,
        &cfg,
        &["-oi", "-t", "-f", "shop@test.example"],
        &[],
        input,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let a = arrival(&exim, "phpmailer style");
    assert_eq!(a.sender, "shop@test.example");
    let mut rcpts = a.recipients.clone();
    rcpts.sort();
    assert_eq!(
        rcpts,
        [
            "bob@test.example",
            "carol@test.example",
            "hidden@test.example",
            "secret@test.example"
        ]
    );
    for who in ["bob", "carol", "hidden", "secret"] {
        let mails = exim.wait_for_deliveries(who, 1, Duration::from_secs(10));
        assert_eq!(mails.len(), 1, "{who}");
        let text = String::from_utf8_lossy(&mails[0]);
        assert!(
            !text.to_ascii_lowercase().contains("\nbcc:"),
            "Bcc removed for {who}:\n{text}"
        );
        assert!(
            !text.contains("secret@test.example") || who == "secret",
            "folded Bcc line removed too:\n{text}"
        );
        let (head, body) = split(&mails[0]);
        assert_eq!(body, b"Hello.\n");
        // Present headers are kept as given, not added twice.
        assert_eq!(header(&head, "Message-ID"), ["<abc@test.example>"]);
        assert_eq!(header(&head, "Date"), ["Thu, 03 Dec 2026 12:00:00 +0000"]);
        assert_eq!(
            header(&head, "From"),
            ["\"Shop, Inc.\" <shop@test.example>"]
        );
    }
}

#[test]
#[ignore = "system: needs root+exim"]
fn cron_style_bare_user_and_8bit_body() {
    require_root();
    let exim = Exim::start(EximConfig::default());
    let user = ThrowawayUser::create("shs");
    let cfg = config();
    // cron: `sendmail -i <user>` with its own few headers; the address gets the domain.
    let out = shim_as(
        &user,
        &exim,
        &cfg,
        &["-i", "bob"],
        &[],
        b"Subject: cron output\n\n/etc/cron.daily/x:\nok\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let a = arrival(&exim, "cron output");
    assert_eq!(a.recipients, ["bob@test.example"]);
    assert_eq!(
        split(&exim.wait_for_deliveries("bob", 1, Duration::from_secs(10))[0]).1,
        b"/etc/cron.daily/x:\nok\n"
    );

    // 8-bit body: BODY=8BITMIME offered by Exim and asked for; the octets arrive intact.
    let body = "Gr\u{fc}\u{df}e, caf\u{e9} \u{2014} na\u{ef}ve\n".as_bytes();
    let input = [b"Subject: eight bit\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n".as_slice(), body].concat();
    let out = shim_as(
        &user,
        &exim,
        &cfg,
        &["-v", "-f", "a@test.example", "carol@test.example"],
        &[],
        &input,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("BODY=8BITMIME"), "{}", out.stderr);
    assert!(out.stderr.contains("<<< 250-8BITMIME"), "{}", out.stderr);
    let mails = exim.wait_for_deliveries("carol", 1, Duration::from_secs(10));
    assert_eq!(split(&mails[0]).1, body);
}

#[test]
#[ignore = "system: needs root+exim"]
fn ipv6_loopback_literal() {
    require_root();
    let exim = Exim::start(EximConfig::default());
    let user = ThrowawayUser::create("shs");
    let cfg = config();
    let out = shim_as(
        &user,
        &exim,
        &cfg,
        &["-s", "[::1]", "bob@test.example"],
        &[],
        b"Subject: over ipv6\n\nsix\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let a = arrival(&exim, "over ipv6");
    assert!(a.line.contains("[::1]"), "{}", a.line);
    assert_eq!(a.ident.as_deref(), Some(user.name.as_str()), "{}", a.line);
}

#[test]
#[ignore = "system: needs root+exim"]
fn refused_recipient_at_real_exim_is_67_and_nothing_delivered() {
    require_root();
    let exim = Exim::start(EximConfig::default());
    let user = ThrowawayUser::create("shs");
    let cfg = config();
    let out = shim_as(
        &user,
        &exim,
        &cfg,
        &[
            "-f",
            "a@test.example",
            "bob@test.example",
            "someone@elsewhere.invalid",
        ],
        &[],
        b"Subject: partly refused\n\nx\n",
    );
    assert_eq!(out.code, 67, "{}", out.stderr);
    assert!(
        out.stderr.contains("<someone@elsewhere.invalid>")
            && out.stderr.contains("relay not permitted"),
        "{}",
        out.stderr
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        exim.delivered("bob").is_empty(),
        "the whole mail is aborted"
    );
    assert!(!exim.mainlog().contains("T=\"partly refused\""));
}

#[test]
#[ignore = "system: needs root+exim"]
fn exim_restart_during_submission_window_is_retried() {
    require_root();
    let mut exim = Exim::start(EximConfig::default());
    let user = ThrowawayUser::create("shs");
    // The default 15 s window, written out: the restart comes after 2 s.
    let cfg = TestConfig::new("domain = \"test.example\"\nretry_for = 15\n");
    exim.stop();
    let port = exim.port();
    let restarter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        exim.restart();
        exim
    });
    let mut cmd = user.command(bin_path("sendmail"));
    cmd.args(["-p", &port.to_string(), "bob@test.example"])
        .env("BASEOS_SENDMAIL_CONFIG", &cfg.path);
    let out = pipe(cmd, b"Subject: after restart\n\nx\n");
    let exim = restarter.join().unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    arrival(&exim, "after restart");
}

/// PHP's own `mail()` (php-cli, `sendmail_path` = the static shim) as a site user: it returns
/// true only for exit 0, and false when Exim refuses the recipient.
#[test]
#[ignore = "system: needs root+exim+php"]
fn real_php_mail_function() {
    require_root();
    let exim = Exim::start(EximConfig::default());
    let user = ThrowawayUser::create("shp");
    let cfg = config();
    let sendmail_path = format!(
        "{} -p {} -t -i",
        bin_path("sendmail").display(),
        exim.port()
    );
    let php = |to: &str, subject: &str| {
        let mut cmd = user.command("php");
        cmd.arg("-n")
            .arg("-d")
            .arg(format!("sendmail_path={sendmail_path}"))
            .arg("-r")
            .arg(format!(
                "var_export(mail('{to}', '{subject}', \"line 1\\n.\\nline 3\\n\", \
                 \"From: Site <site@test.example>\\r\\nBcc: hid@test.example\")); echo \"\\n\";"
            ))
            .env("BASEOS_SENDMAIL_CONFIG", &cfg.path);
        pipe(cmd, b"")
    };
    let out = php("bob@test.example", "php mail()");
    assert_eq!(out.stdout.trim(), "true", "{} {}", out.stdout, out.stderr);
    let a = arrival(&exim, "php mail()");
    let mut rcpts = a.recipients.clone();
    rcpts.sort();
    assert_eq!(rcpts, ["bob@test.example", "hid@test.example"]);
    assert_eq!(a.sender, format!("{}@test.example", user.name));
    for who in ["bob", "hid"] {
        let mails = exim.wait_for_deliveries(who, 1, Duration::from_secs(10));
        let (head, body) = split(&mails[0]);
        // PHP ends the message with its own CRLF: one empty line more.
        assert_eq!(body, b"line 1\n.\nline 3\n\n", "{who}");
        assert_eq!(header(&head, "From"), ["Site <site@test.example>"]);
        assert!(header(&head, "Bcc").is_empty());
        assert_eq!(header(&head, "X-BaseOS-Origin").len(), 1);
    }

    let out = php("someone@elsewhere.invalid", "php refused");
    assert_eq!(out.stdout.trim(), "false", "{} {}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("relay not permitted"),
        "the shim's line reaches PHP's stderr: {}",
        out.stderr
    );
}
