//! The shipped systemd unit, verified by the real systemd-analyze.

use std::path::Path;
use std::process::Command;

fn verify(unit_text: &str) -> (bool, String) {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path().join("baseos-load.service");
    std::fs::write(&p, unit_text).expect("write unit");
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&p)
        .output()
        .expect("systemd-analyze (package systemd; scripts/install-deps.sh installs it)");
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn shipped_unit_verifies_with_systemd_analyze() {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/baseos-load.service"),
    )
    .expect("unit");
    assert!(unit.contains("Type=oneshot") && unit.contains("RemainAfterExit=yes"));
    assert!(unit.contains("ExecStart=/usr/sbin/chroot-builder --quiet load"));
    assert!(unit.contains("ExecStop=/usr/sbin/chroot-builder --quiet unload"));
    let before = unit
        .lines()
        .find(|l| l.starts_with("Before="))
        .expect("Before=");
    for svc in ["php8.2-fpm.service", "apache2.service", "nginx.service"] {
        assert!(before.contains(svc), "{before}");
    }
    // systemd-analyze checks that ExecStart exists: point it at the binary under test.
    let here = unit.replace(
        "/usr/sbin/chroot-builder",
        env!("CARGO_BIN_EXE_chroot-builder"),
    );
    let (ok, out) = verify(&here);
    assert!(ok, "systemd-analyze verify: {out}");
    // And it does reject a broken unit (so the check above means something).
    let (ok, out) = verify(&here.replace("Type=oneshot", "Type=oneshoot"));
    assert!(!ok || out.contains("Failed to parse"), "{out}");
}
