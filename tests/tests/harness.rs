//! The harness itself, against the real programs: a private Exim delivers a mail that a
//! throwaway user sent over loopback, and the main log names that user from its ident.
#![allow(clippy::unwrap_used)]

use baseos_tests::{require_root, Exim, EximConfig, ThrowawayUser};
use std::time::Duration;

#[test]
fn private_exim_delivers_and_logs_the_ident_of_a_throwaway_user() {
    require_root();
    let exim = Exim::start(EximConfig::default());
    let user = ThrowawayUser::create("hx");
    let out = user
        .command("swaks")
        .args(["--server", "127.0.0.1", "--port", &exim.port().to_string()])
        .args([
            "--to",
            "inbox@test.example",
            "--from",
            "someone@test.example",
        ])
        .args(["--header", "Subject: harness check"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "swaks failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mails = exim.wait_for_deliveries("inbox", 1, Duration::from_secs(10));
    assert_eq!(mails.len(), 1, "mainlog:\n{}", exim.mainlog());
    assert!(String::from_utf8_lossy(&mails[0]).contains("Subject: harness check"));
    let log = exim.mainlog();
    assert!(
        log.contains(&format!("U={} P=esmtp", user.name)),
        "no U={} in mainlog:\n{log}",
        user.name
    );
}

#[test]
fn a_private_mount_namespace_keeps_mounts_off_the_host() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().to_path_buf();
    let seen_inside = std::thread::spawn({
        let target = target.clone();
        move || {
            baseos_tests::scenario::private_mount_namespace();
            baseos_tests::run(
                std::process::Command::new("mount")
                    .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
                    .arg(&target),
            );
            baseos_tests::run(std::process::Command::new("findmnt").arg(&target))
        }
    })
    .join()
    .unwrap();
    assert!(seen_inside.contains("tmpfs"), "{seen_inside}");
    // The host (this thread, and processes it starts) never saw the mount.
    let host = std::process::Command::new("findmnt")
        .arg(&target)
        .output()
        .unwrap();
    assert!(
        !host.status.success(),
        "the mount leaked to the host: {}",
        String::from_utf8_lossy(&host.stdout)
    );
}
