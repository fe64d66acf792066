//! Faults injected by the scripted server, and refused input, through the shim binary.
//! Each test asserts the exit code, the one-line error on stderr, and what the server got:
//! never a second copy, and nothing at all for a mail the shim refused.

use std::time::Duration;

use crate::scripted::{Plan, Scripted};
use crate::{dev_binary, run_shim, Output, TestConfig};

const MAIL: &[u8] = b"Subject: fault test\nTo: bob@test.example\n\nline 1\n.line 2\n";

fn config(retry_for: u64) -> TestConfig {
    TestConfig::new(&format!(
        "domain = \"test.example\"\nretry_for = {retry_for}\ndeadline = 30\n"
    ))
}

/// Sends MAIL to the server with `-T 2`, sender alice, recipients bob (+ `extra`).
fn send(server: &Scripted, extra: &[&str]) -> Output {
    send_with(server, &config(1), "2", extra)
}

/// One mail from alice to bob through `server`, with config `cfg` and `-T step_timeout`.
fn send_with(server: &Scripted, cfg: &TestConfig, step_timeout: &str, extra: &[&str]) -> Output {
    let port = server.port.to_string();
    let mut args = vec![
        "-p",
        &port,
        "-T",
        step_timeout,
        "-f",
        "alice@test.example",
        "bob@test.example",
    ];
    args.extend_from_slice(extra);
    run_shim(&dev_binary(), cfg, &args, &[], MAIL)
}

fn assert_fails(out: &Output, code: i32, needles: &[&str]) {
    assert_eq!(out.code, code, "exit code; stderr: {}", out.stderr);
    let line = out.stderr.trim_end();
    assert!(
        !line.contains('\n'),
        "one line expected on stderr: {line:?}"
    );
    assert!(line.starts_with("sendmail: "), "{line:?}");
    for n in needles {
        assert!(line.contains(n), "stderr lacks {n:?}: {line:?}");
    }
}

#[test]
fn normal_submission_to_the_scripted_server() {
    let server = Scripted::start(Plan::default());
    let out = send(&server, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr, "");
    let seen = server.settled();
    assert_eq!(seen.connections, 1);
    assert_eq!(seen.messages.len(), 1);
    let msg = String::from_utf8(seen.messages[0].clone()).unwrap();
    assert!(msg.contains("\r\nSubject: fault test\r\n"), "{msg}");
    assert!(
        msg.ends_with("\r\n\r\nline 1\r\n..line 2\r\n"),
        "dot-stuffed, CRLF: {msg:?}"
    );
    assert_eq!(
        seen.commands.first().map(String::as_str),
        Some("EHLO localhost")
    );
    assert!(
        seen.commands
            .iter()
            .any(|c| c.starts_with("MAIL FROM:<alice@test.example> SIZE=")),
        "{:?}",
        seen.commands
    );
    assert_eq!(seen.commands.last().map(String::as_str), Some("QUIT"));
}

#[test]
fn greeting_421_is_retried_then_fails_with_69() {
    let server = Scripted::start(Plan {
        busy_first: usize::MAX,
        ..Plan::default()
    });
    let out = send(&server, &[]);
    assert_fails(&out, 69, ["421", "busy"].as_slice());
    let seen = server.settled();
    assert!(
        seen.connections >= 2,
        "retried: {} connections",
        seen.connections
    );
    assert!(seen.messages.is_empty());
}

#[test]
fn greeting_421_then_ready_succeeds_once() {
    let server = Scripted::start(Plan {
        busy_first: 2,
        ..Plan::default()
    });
    let out = send(&server, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let seen = server.settled();
    assert_eq!(seen.connections, 3);
    assert_eq!(seen.messages.len(), 1);
}

#[test]
fn connection_closed_before_the_greeting_is_retried() {
    let server = Scripted::start(Plan {
        close_first: 2,
        ..Plan::default()
    });
    let out = send(&server, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let seen = server.settled();
    assert_eq!(seen.connections, 3);
    assert_eq!(seen.messages.len(), 1);

    let server = Scripted::start(Plan {
        close_first: usize::MAX,
        ..Plan::default()
    });
    let out = send(&server, &[]);
    assert_fails(&out, 69, &["greeting", "closed the connection"]);
    assert!(server.settled().connections >= 2);
}

#[test]
fn server_coming_up_3s_late_is_retried() {
    let port = baseos_tests::free_port();
    let server = Scripted::start_late(Plan::default(), port, Duration::from_secs(3));
    let p = port.to_string();
    let out = run_shim(
        &dev_binary(),
        &config(15),
        &["-p", &p, "-f", "alice@test.example", "bob@test.example"],
        &[],
        MAIL,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let seen = server.settled();
    assert_eq!(seen.connections, 1);
    assert_eq!(seen.messages.len(), 1);
}

#[test]
fn connection_refused_after_retries_is_69() {
    let port = baseos_tests::free_port();
    let p = port.to_string();
    let out = run_shim(
        &dev_binary(),
        &config(1),
        &["-p", &p, "-f", "alice@test.example", "bob@test.example"],
        &[],
        MAIL,
    );
    assert_fails(
        &out,
        69,
        &[
            "connection refused",
            &format!("127.0.0.1:{port}"),
            "attempts",
        ],
    );
}

/// (plan change, exit code, words the error must contain, DATA transactions the server saw)
fn step_case(plan: Plan, code: i32, needles: &[&str], messages: usize, rcpt_extra: &[&str]) {
    let server = Scripted::start(plan);
    let out = send(&server, rcpt_extra);
    assert_fails(&out, code, needles);
    let seen = server.settled();
    assert_eq!(seen.connections, 1, "never reconnects after the greeting");
    assert_eq!(seen.messages.len(), messages, "messages the server got");
    assert_eq!(
        seen.commands.last().map(String::as_str),
        Some("QUIT"),
        "{:?}",
        seen.commands
    );
}

#[test]
fn mail_from_4xx_and_5xx() {
    step_case(
        Plan {
            mail: "451 4.3.0 try later".into(),
            ..Plan::default()
        },
        69,
        &["alice@test.example", "451 4.3.0 try later", "temporarily"],
        0,
        &[],
    );
    step_case(
        Plan {
            mail: "550 5.7.1 sender rejected".into(),
            ..Plan::default()
        },
        65,
        &["MAIL FROM", "550 5.7.1 sender rejected"],
        0,
        &[],
    );
}

#[test]
fn one_refused_recipient_aborts_the_whole_mail() {
    let server = Scripted::start(Plan {
        rcpt_for: vec![(
            "nobody@test.example".into(),
            "550 5.1.1 <nobody@test.example>: unknown user".into(),
        )],
        ..Plan::default()
    });
    let out = send(&server, &["nobody@test.example", "carol@test.example"]);
    assert_fails(
        &out,
        67,
        &["<nobody@test.example>", "550 5.1.1", "NOT sent to anyone"],
    );
    let seen = server.settled();
    assert!(seen.messages.is_empty());
    assert!(
        !seen.commands.iter().any(|c| c == "DATA"),
        "{:?}",
        seen.commands
    );
    let tail: Vec<&str> = seen
        .commands
        .iter()
        .rev()
        .take(2)
        .map(String::as_str)
        .collect();
    assert_eq!(tail, ["QUIT", "RSET"]);
}

#[test]
fn rcpt_4xx_is_69() {
    step_case(
        Plan {
            rcpt: "450 4.2.0 greylisted".into(),
            ..Plan::default()
        },
        69,
        &["bob@test.example", "450 4.2.0 greylisted"],
        0,
        &[],
    );
}

#[test]
fn data_4xx_and_5xx() {
    step_case(
        Plan {
            data: "451 4.3.0 no spool".into(),
            ..Plan::default()
        },
        69,
        &["DATA", "451 4.3.0 no spool"],
        0,
        &[],
    );
    step_case(
        Plan {
            data: "554 5.5.1 no valid recipients".into(),
            ..Plan::default()
        },
        65,
        &["DATA", "554 5.5.1"],
        0,
        &[],
    );
}

#[test]
fn refusal_after_the_final_dot_is_not_resent() {
    step_case(
        Plan {
            dot: "550 5.7.1 content rejected".into(),
            ..Plan::default()
        },
        65,
        &["final '.'", "550 5.7.1 content rejected"],
        1,
        &[],
    );
    step_case(
        Plan {
            dot: "452 4.3.1 spool full".into(),
            ..Plan::default()
        },
        69,
        &["final '.'", "452 4.3.1 spool full", "try again later"],
        1,
        &[],
    );
}

#[test]
fn connection_dropped_mid_data() {
    let server = Scripted::start(Plan {
        drop_after: Some(20),
        ..Plan::default()
    });
    let out = send(&server, &[]);
    assert_fails(&out, 69, &["closed the connection", "NOT sent again"]);
    let seen = server.settled();
    assert_eq!(seen.connections, 1);
    assert!(seen.messages.is_empty());
}

#[test]
fn connection_dropped_during_a_big_write_is_epipe_not_a_signal() {
    // 8 MiB: far more than the socket buffers, so our one big write hits the closed socket
    // (EPIPE / ECONNRESET). Rust ignores SIGPIPE: the shim must exit 69, not die of a signal.
    let server = Scripted::start(Plan {
        drop_after: Some(1000),
        ..Plan::default()
    });
    let port = server.port.to_string();
    let line = format!("{}\n", "y".repeat(99));
    let input = format!("Subject: big\n\n{}", line.repeat(80 * 1024));
    let out = run_shim(
        &dev_binary(),
        &config(1),
        &["-p", &port, "-f", "alice@test.example", "bob@test.example"],
        &[],
        input.as_bytes(),
    );
    assert_fails(&out, 69, &["closed the connection", "NOT sent again"]);
    let seen = server.settled();
    assert_eq!(seen.connections, 1);
    assert!(seen.messages.is_empty());
}

#[test]
fn mail_larger_than_the_servers_size_is_65_before_mail_from() {
    let server = Scripted::start(Plan {
        ehlo: "250-scripted.test\r\n250-SIZE 100\r\n250 8BITMIME".into(),
        ..Plan::default()
    });
    let out = send(&server, &[]);
    assert_fails(&out, 65, &["accepts at most 100", "SIZE"]);
    let seen = server.settled();
    assert!(
        !seen.commands.iter().any(|c| c.starts_with("MAIL")),
        "{:?}",
        seen.commands
    );
}

#[test]
fn stalled_server_times_out_per_step() {
    let server = Scripted::start(Plan {
        stall_on: Some("MAIL"),
        ..Plan::default()
    });
    let out = send_with(&server, &config(1), "1", &[]);
    assert_fails(&out, 69, &["MAIL FROM", "1 s step timeout (-T"]);
    assert_eq!(server.settled().connections, 1);
}

#[test]
fn overall_deadline_bounds_a_slow_server() {
    let server = Scripted::start(Plan {
        stall_on: Some("RCPT"),
        ..Plan::default()
    });
    let cfg = TestConfig::new("domain = \"test.example\"\ndeadline = 2\n");
    let out = send_with(&server, &cfg, "30", &[]);
    assert_fails(&out, 69, &["RCPT TO", "overall deadline"]);
    assert!(server.settled().messages.is_empty());
}

#[test]
fn utf8_address_needs_smtputf8() {
    let server = Scripted::start(Plan::default());
    let port = server.port.to_string();
    let rcpt = "jos\u{e9}@test.example";
    let out = run_shim(
        &dev_binary(),
        &config(1),
        &["-p", &port, "-f", "alice@test.example", rcpt],
        &[],
        MAIL,
    );
    assert_fails(&out, 65, &["SMTPUTF8", "not ASCII"]);
    let seen = server.settled();
    assert!(
        !seen.commands.iter().any(|c| c.starts_with("MAIL")),
        "{:?}",
        seen.commands
    );

    // Offered: asked for, and the address goes out as UTF-8.
    let server = Scripted::start(Plan {
        ehlo: "250-scripted.test\r\n250-8BITMIME\r\n250 SMTPUTF8".into(),
        ..Plan::default()
    });
    let port = server.port.to_string();
    let out = run_shim(
        &dev_binary(),
        &config(1),
        &["-p", &port, "-f", "alice@test.example", rcpt],
        &[],
        MAIL,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let seen = server.settled();
    let mail = seen
        .commands
        .iter()
        .find(|c| c.starts_with("MAIL"))
        .unwrap();
    assert!(mail.ends_with(" SMTPUTF8"), "{mail}");
    assert!(
        seen.commands.contains(&format!("RCPT TO:<{rcpt}>")),
        "{:?}",
        seen.commands
    );
    assert_eq!(seen.messages.len(), 1);
}

#[test]
fn stall_after_the_final_dot_is_69_and_not_resent() {
    let server = Scripted::start(Plan {
        stall_on: Some("DOT"),
        ..Plan::default()
    });
    let out = send_with(&server, &config(1), "1", &[]);
    assert_fails(&out, 69, &["step timeout", "NOT sent again"]);
    let seen = server.settled();
    assert_eq!(seen.connections, 1);
    assert_eq!(seen.messages.len(), 1);
}

#[test]
fn no_answer_to_quit_is_still_success() {
    let server = Scripted::start(Plan {
        stall_on: Some("QUIT"),
        ..Plan::default()
    });
    let out = send(&server, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(server.settled().messages.len(), 1);
}

#[test]
fn garbled_greeting_is_76() {
    let server = Scripted::start(Plan {
        greeting: "HTTP/1.1 400 Bad Request".into(),
        ..Plan::default()
    });
    let out = send(&server, &[]);
    assert_fails(&out, 76, &["garbled", "HTTP/1.1"]);
    assert!(server.settled().messages.is_empty());
}

#[test]
fn ehlo_refused_falls_back_to_helo() {
    let server = Scripted::start(Plan {
        ehlo: "502 5.5.2 EHLO not implemented".into(),
        ..Plan::default()
    });
    let out = send(&server, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let seen = server.settled();
    assert_eq!(seen.commands[..2], ["EHLO localhost", "HELO localhost"]);
    assert_eq!(seen.messages.len(), 1);
}

#[test]
fn eight_bit_body_asks_for_8bitmime() {
    let server = Scripted::start(Plan::default());
    let port = server.port.to_string();
    let out = run_shim(
        &dev_binary(),
        &config(1),
        &["-p", &port, "-f", "alice@test.example", "bob@test.example"],
        &[],
        "Subject: caf\u{e9}\n\nna\u{ef}ve\n".as_bytes(),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let seen = server.settled();
    let mail = seen
        .commands
        .iter()
        .find(|c| c.starts_with("MAIL"))
        .unwrap();
    assert!(mail.contains(" BODY=8BITMIME"), "{mail}");
}

#[test]
fn verbose_prints_the_dialogue() {
    let server = Scripted::start(Plan::default());
    let port = server.port.to_string();
    let out = run_shim(
        &dev_binary(),
        &config(1),
        &[
            "-v",
            "-p",
            &port,
            "-f",
            "alice@test.example",
            "bob@test.example",
        ],
        &[],
        MAIL,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    for needle in [
        "<<< 220 scripted.test ESMTP",
        ">>> EHLO localhost",
        ">>> RCPT TO:<bob@test.example>",
        "<<< 250 OK id=scripted",
        ">>> QUIT",
    ] {
        assert!(
            out.stderr.contains(needle),
            "{needle:?} missing in:\n{}",
            out.stderr
        );
    }
}

/// Refused input: the exit code and message, and no connection at all to the server.
#[test]
fn refused_mail_never_reaches_the_server() {
    let server = Scripted::start(Plan::default());
    let port = server.port.to_string();
    let long_line = [b"Subject: x\n\n".as_slice(), &[b'a'; 1200], b"\n"].concat();
    let cases: Vec<(Vec<&str>, Vec<u8>, i32)> = vec![
        (
            vec!["-f", "a@test.example", "bob@test.example"],
            b"Subject: x\n\nnul \0 here\n".to_vec(),
            65,
        ),
        (
            vec!["-f", "a@test.example", "bob@test.example"],
            long_line,
            65,
        ),
        (vec!["-f", "a@test.example"], MAIL.to_vec(), 64),
        (vec!["-t"], b"Subject: no recipients\n\nbody\n".to_vec(), 64),
        (
            vec!["-C", "/tmp/x.conf", "bob@test.example"],
            MAIL.to_vec(),
            64,
        ),
        (
            vec!["-X", "/var/www/shell.php", "bob@test.example"],
            MAIL.to_vec(),
            64,
        ),
        (
            vec!["-f", "a@test.example\r\nRCPT TO:<x@y>", "bob@test.example"],
            MAIL.to_vec(),
            64,
        ),
        (
            vec!["-t"],
            b"To: \"unterminated <bob@test.example>\n\nbody\n".to_vec(),
            65,
        ),
    ];
    for (args, input, code) in cases {
        let mut full = vec!["-p", &port];
        full.extend(args.iter().copied());
        let out = run_shim(&dev_binary(), &config(1), &full, &[], &input);
        assert_fails(&out, code, &[]);
        assert!(
            out.stderr.len() > 30,
            "a message that says what to do: {:?}",
            out.stderr
        );
    }
    assert_eq!(
        server.settled().connections,
        0,
        "a refused mail must not even connect"
    );
}

#[test]
fn name_instead_of_ip_is_refused_without_connecting() {
    let out = run_shim(
        &dev_binary(),
        &config(1),
        &[
            "-s",
            "mail.example.com",
            "-f",
            "a@test.example",
            "bob@test.example",
        ],
        &[],
        MAIL,
    );
    assert_fails(&out, 64, &["mail.example.com", "IP"]);
}

#[test]
fn mailq_and_version() {
    let cfg = config(1);
    let out = run_shim(&dev_binary(), &cfg, &["-bp"], &[], b"");
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("no mail queue"), "{}", out.stdout);
    let out = run_shim(&dev_binary(), &cfg, &["-V"], &[], b"");
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains(env!("CARGO_PKG_VERSION")),
        "{}",
        out.stdout
    );
}
