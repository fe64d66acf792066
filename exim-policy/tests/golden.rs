//! Golden files for the rendered configuration: a change in the generated text shows up in
//! review. `UPDATE_GOLDEN=1 cargo test -p exim-policy --test golden` rewrites them. The
//! standalone configuration is also parsed by the real `exim -bV`.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use exim_policy::policy::{Forged, OriginHeader, Policy, SenderMode};
use exim_policy::render::{self, Layout};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn policy() -> Policy {
    let path = data().join("golden-policy.toml");
    Policy::load(&path).expect("golden policy is valid")
}

fn compare(layout: &str, files: &[render::RenderedFile]) {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    for f in files {
        let name = f.path.to_string_lossy().replace('/', "__");
        let golden = data().join(format!("{layout}__{name}.ref"));
        if update {
            std::fs::write(&golden, &f.text).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
                golden.display()
            )
        });
        if want != f.text {
            mismatches.push(golden.display().to_string());
        }
    }
    assert!(
        mismatches.is_empty(),
        "rendered output differs from {mismatches:?}; review the change and rerun with UPDATE_GOLDEN=1"
    );
}

#[test]
fn standalone_matches_golden() {
    let p = policy();
    let files = render::render(&p, Layout::Standalone, Path::new("/etc/baseos/exim"));
    assert_eq!(files.len(), 4);
    compare("standalone", &files);
}

#[test]
fn debian_matches_golden() {
    let p = policy();
    let files = render::render(&p, Layout::Debian, Path::new("/etc/exim4/baseos"));
    assert_eq!(files.len(), 9);
    compare("debian", &files);
}

/// The golden standalone configuration is a configuration the real Exim accepts.
#[test]
fn golden_standalone_passes_exim_bv() {
    let conf = data().join("standalone__exim.conf.ref");
    let out = Command::new("exim")
        .arg("-C")
        .arg(&conf)
        .arg("-bV")
        .output()
        .expect("run exim -bV (exim4-daemon-heavy must be installed)");
    assert!(
        out.status.success(),
        "exim -bV refused {}: {}",
        conf.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_policy_variant_renders_a_config_exim_accepts() {
    // Each switch changes the ACL text; every combination must still parse.
    let dir = tempfile::tempdir().unwrap();
    let base = policy();
    let mut n = 0;
    for forged in [Forged::Reject, Forged::Strip] {
        for header in [OriginHeader::Keep, OriginHeader::Remove] {
            for mode in [SenderMode::Off, SenderMode::Log, SenderMode::Enforce] {
                for over in [
                    exim_policy::policy::OverLimit::Defer,
                    exim_policy::policy::OverLimit::Reject,
                ] {
                    let mut p = base.clone();
                    p.forged = forged;
                    p.origin_header = header;
                    p.sender_mode = mode;
                    p.over_limit = over;
                    let conf = dir.path().join(format!("exim-{n}.conf"));
                    std::fs::write(&conf, render::render_standalone_conf(&p, dir.path())).unwrap();
                    let out = Command::new("exim")
                        .arg("-C")
                        .arg(&conf)
                        .arg("-bV")
                        .output()
                        .unwrap();
                    assert!(
                        out.status.success(),
                        "{forged:?}/{header:?}/{mode:?}/{over:?}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    n += 1;
                }
            }
        }
    }
    assert_eq!(n, 24);
}

/// The command line: render writes every file once, then with --data-only only the changed
/// data file, and says that it needs no reload; a bad policy exits 78 naming the line.
#[test]
fn render_cli_rewrites_only_changed_data_files() {
    let bin = env!("CARGO_BIN_EXE_exim-policy");
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let out = dir.path().join("out");
    std::fs::write(&policy, "[limits]\nmessages = 10\n").unwrap();
    let run = |extra: &[&str]| {
        let o = Command::new(bin)
            .args(["render", "--policy"])
            .arg(&policy)
            .arg("--out")
            .arg(&out)
            .args(extra)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let (code, stdout, _) = run(&[]);
    assert_eq!(code, Some(0));
    assert_eq!(stdout.matches("wrote ").count(), 4, "{stdout}");
    let conf_before = std::fs::read(out.join("exim.conf")).unwrap();
    std::fs::write(
        &policy,
        "[limits]\nmessages = 10\n[users.alice]\nmessages = 50\n",
    )
    .unwrap();
    let (code, stdout, _) = run(&["--data-only"]);
    assert_eq!(code, Some(0));
    assert_eq!(stdout.matches("wrote ").count(), 1, "{stdout}");
    assert!(
        stdout.contains("limits (data: applies to the next connection, no reload)"),
        "{stdout}"
    );
    assert!(std::fs::read_to_string(out.join("limits"))
        .unwrap()
        .contains("\nalice: kind=user msgs=50/1h\n"));
    assert_eq!(std::fs::read(out.join("exim.conf")).unwrap(), conf_before);
    let (_, stdout, _) = run(&[]);
    assert!(stdout.contains("is up to date"), "{stdout}");
    // The first uid-keyed user changes the ACL too: --data-only says so.
    std::fs::write(
        &policy,
        "[limits]\nmessages = 10\n[users.\"1001\"]\nmessages = 50\n",
    )
    .unwrap();
    let (code, _, stderr) = run(&["--data-only"]);
    assert_eq!(code, Some(0));
    assert!(
        stderr.contains("warning")
            && stderr.contains("exim.conf")
            && stderr.contains("without --data-only"),
        "{stderr}"
    );
    std::fs::write(
        &policy,
        "[limits]\nmessages = 10\nmessages_period = \"1 hour\"\n",
    )
    .unwrap();
    let (code, _, stderr) = run(&[]);
    assert_eq!(code, Some(78));
    assert!(
        stderr.contains("line 3") && stderr.contains("fix:") && stderr.lines().count() == 1,
        "{stderr}"
    );
}
