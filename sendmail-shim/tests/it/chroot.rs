//! The static binary inside an EMPTY chroot (no /etc, /proc, libraries) as a throwaway user:
//! it must still submit, with `user` omitted from the origin tag and a `uid<N>@...` sender,
//! while Exim learns the real user from ident.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use baseos_tests::{bin_path, require_root, Exim, EximConfig, ThrowawayUser};

use crate::exim::{arrival, split};
use crate::pipe;

#[test]
#[ignore = "system: needs root+exim"]
fn static_binary_in_an_empty_chroot() {
    require_root();
    let exim = Exim::start(EximConfig::default());
    let user = ThrowawayUser::create("shc");
    let root = tempfile::tempdir().expect("chroot dir");
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let shim = root.path().join("sendmail");
    std::fs::copy(bin_path("sendmail"), &shim).expect("copy the static shim");
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let entries: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "the chroot holds only the binary");

    let mut cmd = Command::new("/usr/sbin/chroot");
    cmd.arg(format!("--userspec={}:{}", user.uid, user.gid))
        .arg(root.path())
        .args([
            "/sendmail",
            "-p",
            &exim.port().to_string(),
            "bob@test.example",
        ])
        .env_clear();
    let out = pipe(
        cmd,
        b"Subject: from an empty chroot\n\nhello from nowhere\n",
    );
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);

    let a = arrival(&exim, "from an empty chroot");
    // No /etc/passwd, no /etc/mailname, no config: uid<N>@<kernel node name>.
    let node = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(a.sender, format!("uid{}@{}", user.uid, node.trim()));
    assert_eq!(
        a.ident.as_deref(),
        Some(user.name.as_str()),
        "Exim still knows who it was: {}",
        a.line
    );
    let mails = exim.wait_for_deliveries("bob", 1, Duration::from_secs(10));
    let (head, body) = split(&mails[0]);
    assert_eq!(body, b"hello from nowhere\n");
    let origin: Vec<&String> = head
        .iter()
        .filter(|l| l.starts_with("X-BaseOS-Origin:"))
        .collect();
    assert_eq!(origin.len(), 1, "{head:#?}");
    assert!(
        origin[0].starts_with(&format!("X-BaseOS-Origin: uid={} ", user.uid)),
        "{}",
        origin[0]
    );
    assert!(
        !origin[0].contains("user="),
        "user unknown inside the chroot: {}",
        origin[0]
    );
}
