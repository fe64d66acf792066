//! `exim-policy report` on a main log written by a real Exim 4.96 daemon: two throwaway users
//! send mail over 127.0.0.1 and [::1] (ident from oidentd), one of them over its rate limit,
//! with a forged envelope sender, a subject containing ` U=evil`, a relay attempt, a bounce (with
//! Exim's own bounce message) and a deferral; the report's counts must be exactly what was sent.
//! Needs root (throwaway users, oidentd on port 113, Exim's trusted config): CI runs as root.
#![allow(clippy::unwrap_used)]

use baseos_tests::{
    default_main_section, ensure_oidentd, require_root, Exim, EximPaths, ThrowawayUser,
};
use std::process::Command;
use std::time::Duration;

fn config(paths: &EximPaths) -> String {
    format!(
        "{main}acl_smtp_mail = acl_mail
acl_smtp_rcpt = acl_rcpt

begin acl
acl_mail:
  deny    hosts       = +loopback
          ratelimit   = 5 / 1h / per_mail / ident:$sender_ident
          message     = Rate limit exceeded for $sender_ident
          log_message = BASEOS-LIMIT U=$sender_ident what=messages rate=$sender_rate limit=$sender_rate_limit period=$sender_rate_period
  accept
acl_rcpt:
  accept  domains     = +local_domains
  deny    message     = relay not permitted

begin routers
bounce:
  driver      = redirect
  local_parts = bounceme
  data        = :fail: no such user here
  allow_fail
defer:
  driver      = redirect
  local_parts = deferme
  data        = :defer: mailbox busy, try later
  allow_defer
local_inbox:
  driver      = accept
  domains     = +local_domains
  transport   = local_maildir

begin transports
local_maildir:
  driver           = appendfile
  directory        = {mail}/$local_part_data/Maildir
  maildir_format   = true
  create_directory = true
  user             = Debian-exim
  group            = Debian-exim
  mode             = 0640

begin retry
* * F,1h,5m
",
        main = default_main_section(paths),
        mail = paths.mail.display()
    )
}

/// Sends one mail with swaks as `user`; returns whether the server accepted it.
fn send(
    user: &ThrowawayUser,
    port: u16,
    server: &str,
    from: &str,
    to: &[&str],
    subject: &str,
) -> bool {
    let mut cmd = user.command("swaks");
    cmd.args([
        "--server",
        server,
        "--port",
        &port.to_string(),
        "--from",
        from,
        "--helo",
        "web.test",
    ]);
    cmd.args(["--to", &to.join(",")]);
    cmd.args([
        "--header",
        &format!("Subject: {subject}"),
        "--body",
        "hello from the report test",
    ]);
    let out = cmd.output().expect("run swaks");
    out.status.success()
}

#[test]
fn counts_from_a_real_exim_mainlog_match_what_was_sent() {
    require_root();
    ensure_oidentd();
    let exim = Exim::start_raw(config);
    let port = exim.port();
    let a = ThrowawayUser::create("rp");
    let b = ThrowawayUser::create("rp");
    let a_addr = format!("{}@test.example", a.name);
    let b_addr = format!("{}@test.example", b.name);

    // A: seven mails, the limit is 5 MAIL commands per hour per ident: two are refused.
    let accepted: Vec<bool> = (0..7)
        .map(|i| {
            let server = if i % 2 == 0 { "127.0.0.1" } else { "::1" };
            send(
                &a,
                port,
                server,
                &a_addr,
                &["inbox@test.example"],
                &format!("a {i}"),
            )
        })
        .collect();
    assert_eq!(
        accepted,
        [true, true, true, true, true, false, false],
        "rate limit as configured"
    );

    // B (five MAIL commands, within the limit): two recipients over IPv6; a forged envelope sender (A's address); a subject with
    // " U=evil"; a relay attempt (refused at RCPT); a bounce; a deferral.
    assert!(send(
        &b,
        port,
        "::1",
        &b_addr,
        &["inbox@test.example", "other@localhost"],
        "b two rcpts"
    ));
    assert!(send(
        &b,
        port,
        "127.0.0.1",
        &a_addr,
        &["inbox@test.example"],
        "b forged sender"
    ));
    assert!(!send(
        &b,
        port,
        "127.0.0.1",
        &b_addr,
        &["x@relay.example"],
        "b relay"
    ));
    assert!(send(
        &b,
        port,
        "127.0.0.1",
        &b_addr,
        &["bounceme@test.example"],
        "hello U=evil U=root"
    ));
    assert!(send(
        &b,
        port,
        "127.0.0.1",
        &b_addr,
        &["deferme@test.example"],
        "b deferred"
    ));

    assert!(
        exim.wait_for_log("Mail delivery failed", Duration::from_secs(20)),
        "Exim's bounce:\n{}",
        exim.mainlog()
    );
    assert!(
        exim.wait_for_log("mailbox busy", Duration::from_secs(20)),
        "the deferral:\n{}",
        exim.mainlog()
    );
    let log = exim.paths().log.join("mainlog");
    // Exim's bounce to b_addr is delivered and completed: wait for it so the log is settled.
    assert!(
        baseos_tests::wait_until(Duration::from_secs(20), || exim
            .mainlog()
            .matches(" Completed")
            .count()
            >= 9),
        "{}",
        exim.mainlog()
    );

    let out = Command::new(env!("CARGO_BIN_EXE_exim-policy"))
        .args(["report", "--format", "json"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mainlog = exim.mainlog();
    let user = |name: &str| {
        j["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["user"] == name)
            .unwrap_or_else(|| panic!("{name} not in report {j}\nmainlog:\n{mainlog}"))
            .clone()
    };
    let names: Vec<&str> = j["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user"].as_str().unwrap())
        .collect();
    let mut want = vec![a.name.as_str(), b.name.as_str()];
    want.sort();
    let mut got = names.clone();
    got.sort();
    assert_eq!(
        got, want,
        "only the two senders are users (no Debian-exim, no evil/root)\n{mainlog}"
    );

    let ua = user(&a.name);
    assert_eq!(
        (ua["mails"].as_u64(), ua["recipients"].as_u64()),
        (Some(5), Some(5)),
        "{mainlog}"
    );
    assert_eq!(ua["rejections_by_reason"]["ratelimit"], 2, "{mainlog}");
    assert_eq!(
        (
            ua["rejections"].as_u64(),
            ua["bounces"].as_u64(),
            ua["deferrals"].as_u64()
        ),
        (Some(2), Some(0), Some(0))
    );

    let ub = user(&b.name);
    assert_eq!(
        (ub["mails"].as_u64(), ub["recipients"].as_u64()),
        (Some(4), Some(5)),
        "{mainlog}"
    );
    assert_eq!(
        ub["rejections_by_reason"]["other"], 1,
        "the relay attempt\n{mainlog}"
    );
    assert_eq!(ub["rejections"], 1);
    assert_eq!(
        (ub["bounces"].as_u64(), ub["deferrals"].as_u64()),
        (Some(1), Some(1)),
        "{mainlog}"
    );
    for u in [&ua, &ub] {
        let (mails, bytes) = (u["mails"].as_u64().unwrap(), u["bytes"].as_u64().unwrap());
        assert!(
            (300 * mails..5000 * mails).contains(&bytes),
            "S= sums to {bytes} for {mails} mails"
        );
    }
    assert_eq!(
        j["system_messages"], 1,
        "Exim's bounce is counted apart\n{mainlog}"
    );
    assert_eq!(j["unparseable_lines"], 0, "{mainlog}");
    assert_eq!(j["open_messages"], 1, "the deferred mail is still queued");
}
