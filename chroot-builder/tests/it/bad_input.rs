//! Bad input: each gives a clear error naming the fix, and changes nothing outside the tree.

use crate::common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn write_manifest(dir: &Path, body: &str) -> std::path::PathBuf {
    let p = dir.join("m.toml");
    std::fs::write(&p, body).expect("write manifest");
    p
}

fn paths(dir: &Path) -> String {
    format!(
        "[paths]\nmaster = \"{0}/master\"\nlive = \"{0}/live\"\ndisk = \"{0}/disk\"\n",
        dir.display()
    )
}

#[test]
fn unknown_manifest_key_is_refused_with_line_and_fix() {
    let d = scratch("badkey");
    let m = write_manifest(
        d.path(),
        &format!(
            "{}[binaries]\nnames = [\"ls\"]\nsearhc = [\"/usr/bin\"]\n",
            paths(d.path())
        ),
    );
    let o = cb(&["--manifest", m.to_str().expect("utf8"), "build"]);
    assert_eq!(o.status.code(), Some(78), "{}", text(&o));
    let err = text(&o);
    assert!(err.contains("m.toml:7: unknown field `searhc`"), "{err}");
    assert!(
        err.contains("fix: remove the key or correct its spelling"),
        "{err}"
    );
    assert!(!d.path().join("master").exists(), "nothing built");
}

#[test]
fn dotdot_path_is_refused_with_line_and_fix() {
    let d = scratch("dotdot");
    let m = write_manifest(
        d.path(),
        &format!(
            "{}[memory]\npaths = [\"/usr/share/../../etc/shadow\"]\n",
            paths(d.path())
        ),
    );
    let o = cb(&["--manifest", m.to_str().expect("utf8"), "build"]);
    assert_eq!(o.status.code(), Some(78), "{}", text(&o));
    let err = text(&o);
    assert!(
        err.contains("m.toml:6: [memory] paths `/usr/share/../../etc/shadow` contains `..`"),
        "{err}"
    );
    assert!(err.contains("fix: write the path without `..`"), "{err}");
    assert!(!d.path().join("master").exists());
}

#[test]
fn missing_binary_is_reported_and_strict_makes_it_an_error() {
    baseos_tests::require_root();
    let t = small("missing", &[], "");
    let text0 = std::fs::read_to_string(&t.manifest).expect("manifest");
    std::fs::write(
        &t.manifest,
        text0.replace("\"sleep\"]", "\"sleep\", \"no-such-tool-cb\"]"),
    )
    .expect("rewrite");
    let o = cb(&refs(&t.args(&["build", "--strict"])));
    assert_eq!(o.status.code(), Some(69), "{}", text(&o));
    let err = text(&o);
    assert!(err.contains("missing on this host: no-such-tool-cb; fix: install them or remove them from the manifest"), "{err}");
    assert!(!t.master().exists(), "strict build wrote nothing");
    let o = cb(&refs(&t.args(&["build"])));
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(
            "missing on this host (skipped; --strict makes this an error): no-such-tool-cb"
        ),
        "{}",
        text(&o)
    );
    assert!(t.master().join("usr/bin/ls").is_file());
}

#[test]
fn master_or_live_under_world_writable_folder_is_refused() {
    let d = scratch("ww");
    let m = write_manifest(d.path(), &paths(d.path()));
    let m = m.to_str().expect("utf8");
    let o = cb(&[
        "--manifest",
        m,
        "--master",
        "/var/tmp/cb-test-master",
        "build",
    ]);
    assert_eq!(o.status.code(), Some(77), "{}", text(&o));
    assert!(
        text(&o)
            .contains("master /var/tmp/cb-test-master is under /var/tmp which is world-writable"),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains("fix: put the master tree under a root-owned folder"),
        "{}",
        text(&o)
    );
    assert!(!Path::new("/var/tmp/cb-test-master").exists());
    let o = cb(&["--manifest", m, "--live", "/tmp/cb-test-live", "load"]);
    assert_eq!(o.status.code(), Some(77), "{}", text(&o));
    assert!(
        text(&o).contains("live /tmp/cb-test-live is under /tmp which is world-writable"),
        "{}",
        text(&o)
    );
    assert!(!Path::new("/tmp/cb-test-live").exists());
    // A group-writable folder of our own is refused too.
    let gw = d.path().join("gw");
    std::fs::create_dir(&gw).expect("mkdir");
    std::fs::set_permissions(&gw, std::fs::Permissions::from_mode(0o775)).expect("chmod");
    let live = gw.join("live");
    let o = cb(&[
        "--manifest",
        m,
        "--live",
        live.to_str().expect("utf8"),
        "load",
    ]);
    assert_eq!(o.status.code(), Some(77), "{}", text(&o));
    assert!(text(&o).contains("group-writable"), "{}", text(&o));
}

#[test]
fn live_root_is_refused() {
    let d = scratch("liveroot");
    let m = write_manifest(d.path(), &paths(d.path()));
    for cmd in ["load", "sync", "unload", "check"] {
        let o = cb(&["--manifest", m.to_str().expect("utf8"), "--live", "/", cmd]);
        assert_eq!(o.status.code(), Some(77), "{cmd}: {}", text(&o));
        assert!(text(&o).contains("live path is `/`: the tree would replace the host's root; fix: use a dedicated folder"), "{}", text(&o));
    }
}

#[test]
fn load_on_a_file_fails_cleanly() {
    baseos_tests::require_root();
    let t = small("livefile", &[], "");
    let o = cb(&refs(&t.args(&["build"])));
    assert!(o.status.success(), "{}", text(&o));
    std::fs::write(t.live(), b"not a folder").expect("write");
    let ns = Ns::new();
    let o = ns.cb(&refs(&t.args(&["load"])));
    assert_eq!(o.status.code(), Some(69), "{}", text(&o));
    assert!(
        text(&o).contains("is not a folder: a tmpfs cannot be mounted there; fix: remove"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read(t.live()).expect("read"), b"not a folder");
    assert!(ns.mounts_below(&t.live()).is_empty());
}

#[test]
fn load_where_mounting_is_not_permitted_fails_cleanly() {
    baseos_tests::require_root();
    let t = small("nomount", &[], "");
    let o = cb(&refs(&t.args(&["build"])));
    assert!(o.status.success(), "{}", text(&o));
    // A user namespace without its own mount namespace: root there may not mount.
    let o = std::process::Command::new("unshare")
        .args(["-U", "-r", "--"])
        .arg(BIN)
        .args(t.args(&["load"]))
        .output()
        .expect("unshare -U");
    assert_eq!(o.status.code(), Some(71), "{}", text(&o));
    let err = text(&o);
    assert!(err.contains("mounting a tmpfs at"), "{err}");
    assert!(
        err.contains("fix: run as root (CAP_SYS_ADMIN) in the host's mount namespace"),
        "{err}"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mounts.contains(t.live().to_str().expect("utf8")));
    assert_eq!(
        std::fs::read_dir(t.live()).expect("live exists").count(),
        0,
        "live left empty"
    );
}

/// Runs a script with /etc read-only in a private namespace: a write through a planted
/// symlink would fail loudly instead of damaging the host.
fn with_ro_etc(ns: &Ns) {
    let o = ns.sh("mount --bind /etc /etc && mount -o remount,bind,ro /etc");
    assert!(o.status.success(), "ro /etc: {}", text(&o));
}

fn etc_snapshot() -> Vec<(String, u64, i64)> {
    let mut v: Vec<(String, u64, i64)> = std::fs::read_dir("/etc")
        .expect("/etc")
        .filter_map(|e| e.ok())
        // Other tests create and remove users meanwhile: leave the account files out.
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            ![
                "passwd",
                "group",
                "shadow",
                "gshadow",
                "subuid",
                "subgid",
                ".pwd.lock",
            ]
            .iter()
            .any(|p| n.starts_with(p))
        })
        .filter_map(|e| {
            let md = e.path().symlink_metadata().ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                md.ino(),
                md.mtime(),
            ))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn symlink_planted_in_master_or_live_is_replaced_not_followed() {
    baseos_tests::require_root();
    let t = small("planted", &[], "");
    std::fs::create_dir_all(t.master()).expect("master");
    std::os::unix::fs::symlink("/etc", t.master().join("etc")).expect("plant in master");
    let before = etc_snapshot();
    let ns = Ns::new();
    with_ro_etc(&ns);
    let o = ns.cb(&refs(&t.args(&["build"])));
    assert!(o.status.success(), "build: {}", text(&o));
    assert!(
        t.master()
            .join("etc")
            .symlink_metadata()
            .expect("etc")
            .is_dir(),
        "symlink replaced by a folder"
    );
    assert!(t.master().join("etc/passwd").is_file());
    // Now plant one in live and sync.
    let o = ns.cb(&refs(&t.args(&["load"])));
    assert!(o.status.success(), "load: {}", text(&o));
    let live = t.live();
    let o = ns.sh(&format!(
        "rm -r {0}/etc && ln -s /etc {0}/etc",
        live.display()
    ));
    assert!(o.status.success(), "{}", text(&o));
    let o = ns.cb(&refs(&t.args(&["sync"])));
    assert!(o.status.success(), "sync: {}", text(&o));
    assert!(text(&o).contains("/etc"), "{}", text(&o));
    let o = ns.sh(&format!(
        "test -d {0}/etc -a ! -L {0}/etc && cat {0}/etc/passwd",
        live.display()
    ));
    assert!(
        o.status.success(),
        "live etc is a folder again: {}",
        text(&o)
    );
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("root:x:0:0:"));
    assert_eq!(etc_snapshot(), before, "/etc unchanged");
    // The tree's passwd is filtered (no daemon): the host's was not replaced by it.
    let host_passwd = std::fs::read_to_string("/etc/passwd").expect("passwd");
    assert!(
        host_passwd.lines().any(|l| l.starts_with("daemon:x:1:1:")),
        "host passwd intact"
    );
}

#[test]
fn user_files_in_the_tmp_bind_survive_sync_check_and_unload() {
    baseos_tests::require_root();
    let t = small("tmpbind", &[], "");
    let hosttmp = t.dir.path().join("hosttmp");
    std::fs::create_dir(&hosttmp).expect("hosttmp");
    std::fs::set_permissions(&hosttmp, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let manifest = std::fs::read_to_string(&t.manifest).expect("m");
    std::fs::write(
        &t.manifest,
        format!(
            "{manifest}\n[[bind]]\nsource = \"{}\"\ntarget = \"/tmp\"\n",
            hosttmp.display()
        ),
    )
    .expect("m");
    let user = baseos_tests::ThrowawayUser::create("cbt");
    let o = cb(&refs(&t.args(&["build"])));
    assert!(o.status.success(), "{}", text(&o));
    let ns = Ns::new();
    let o = ns.cb(&refs(&t.args(&["load"])));
    assert!(o.status.success(), "load: {}", text(&o));
    // A site user writes into /tmp inside the tree (it is the host folder).
    let o = ns.cb(&refs(&t.args(&[
        "exec",
        "--user",
        &user.name,
        "--",
        "sh",
        "-c",
        "echo session > /tmp/sess_1 && mkdir /tmp/upload && echo data > /tmp/upload/f",
    ])));
    assert!(o.status.success(), "exec: {}", text(&o));
    std::fs::write(hosttmp.join("host-file"), b"host data").expect("write");
    let snapshot = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        let mut v = Vec::new();
        for p in ["sess_1", "upload/f", "host-file"] {
            v.push((
                p.to_string(),
                std::fs::read(dir.join(p)).unwrap_or_default(),
            ));
        }
        v
    };
    let before = snapshot(&hosttmp);
    assert_eq!(before[0].1, b"session\n");
    let o = ns.cb(&refs(&t.args(&["sync"])));
    assert!(o.status.success(), "sync: {}", text(&o));
    assert!(text(&o).contains("nothing changed"), "{}", text(&o));
    let o = ns.cb(&refs(&t.args(&["check"])));
    assert!(
        !text(&o).contains("sess_1") && !text(&o).contains("upload"),
        "check does not descend into /tmp: {}",
        text(&o)
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = ns.cb(&refs(&t.args(&["unload"])));
    assert!(o.status.success(), "unload: {}", text(&o));
    assert!(ns.mounts_below(&t.live()).is_empty());
    assert_eq!(snapshot(&hosttmp), before, "user files survive");
    assert_eq!(
        std::fs::metadata(hosttmp.join("sess_1"))
            .expect("sess")
            .uid(),
        user.uid
    );
}

#[test]
fn exec_as_unknown_user_or_root_is_refused() {
    let d = scratch("execuser");
    let m = write_manifest(d.path(), &paths(d.path()));
    let m = m.to_str().expect("utf8");
    let o = cb(&[
        "--manifest",
        m,
        "exec",
        "--user",
        "no-such-user-cb",
        "--",
        "id",
    ]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(
        text(&o).contains("no user `no-such-user-cb` in the host's /etc/passwd; fix: create it"),
        "{}",
        text(&o)
    );
    let o = cb(&["--manifest", m, "exec", "--user", "root", "--", "id"]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(
        text(&o).contains("fix: exec runs site users, never root"),
        "{}",
        text(&o)
    );
}
