//! Real trees from this Debian host: build, load into a real tmpfs (in a private mount
//! namespace), run programs inside as a throwaway user, sync under readers, check.

use crate::common::*;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

#[test]
fn programs_run_inside_the_loaded_tree_as_a_site_user() {
    let t = full();
    let dir = scratch("exec");
    let live = dir.path().join("live");
    let ns = Ns::new();
    let o = ns.cb(&refs(&t.args_live(&live, &["load"])));
    assert!(o.status.success(), "load: {}", text(&o));
    assert!(text(&o).contains("loaded version 1"), "{}", text(&o));
    assert_eq!(
        ns.mounts_below(&live).len(),
        3,
        "tmpfs + /chroot + /tmp: {:?}",
        ns.mounts_below(&live)
    );
    // A second load changes nothing and says so.
    let o = ns.cb(&refs(&t.args_live(&live, &["load"])));
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("nothing changed"), "{}", text(&o));
    assert_eq!(ns.mounts_below(&live).len(), 3);

    let user = baseos_tests::ThrowawayUser::create("cbx");
    let run = |cmd: &[&str]| -> String {
        let mut args = vec!["exec", "--user", user.name.as_str(), "--"];
        args.extend_from_slice(cmd);
        let o = ns.cb(&refs(&t.args_live(&live, &args)));
        assert!(o.status.success(), "{cmd:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let out = run(&["bash", "-c", "ls / && id"]);
    assert!(out.contains("usr\n") && out.contains("chroot\n"), "{out}");
    // `id` prints the name only when the tree's passwd (a snapshot taken at build) has the uid.
    let has = |key: &str, id: u32| {
        let needle = format!("{key}={id}");
        out.match_indices(&needle)
            .any(|(i, _)| matches!(out.as_bytes().get(i + needle.len()), Some(b' ' | b'(')))
    };
    assert!(has("uid", user.uid) && has("gid", user.gid), "{out}");
    let out = run(&["php", "-r", "echo PHP_VERSION;"]);
    assert!(out.starts_with("8."), "{out}");
    let out = run(&["php", "-r", "echo ini_get('sendmail_path');"]);
    assert_eq!(out, "/usr/sbin/sendmail -t -i");
    run(&["perl", "-MPOSIX", "-e1"]);
    run(&["python3", "-c", "import ssl"]);
    let out = run(&["curl", "--version"]);
    assert!(out.starts_with("curl "), "{out}");
    let out = run(&["convert", "-version"]);
    assert!(out.contains("ImageMagick"), "{out}");
    let out = run(&["mysql", "--print-defaults"]);
    assert!(out.contains("--socket=/tmp/mysql.sock"), "{out}");
    let out = run(&[
        "sh",
        "-c",
        "grep -h '^pdo_mysql.default_socket' /etc/php/*/cli/php.ini",
    ]);
    assert_eq!(out, "pdo_mysql.default_socket = /tmp/mysql.sock\n");
    // The shim is the sendmail inside, and it is ours.
    let out = run(&["sh", "-c", "cmp /usr/sbin/sendmail /usr/lib/sendmail && cmp /usr/sbin/sendmail /usr/bin/mini_sendmail && echo same"]);
    assert_eq!(out, "same\n");
    let inside = std::fs::read(ns.path(&live.join("usr/sbin/sendmail"))).expect("shim in live");
    assert_eq!(inside, std::fs::read(shim()).expect("shim"));
    // The site user cannot write the tree.
    let args = [
        "exec",
        "--user",
        user.name.as_str(),
        "--",
        "sh",
        "-c",
        "touch /usr/bin/x 2>/dev/null",
    ];
    let o = ns.cb(&refs(&t.args_live(&live, &args)));
    assert!(!o.status.success());
    // The tree's meta files are there.
    let list = std::fs::read_to_string(ns.path(&live.join("list.txt"))).expect("list.txt");
    assert!(
        list.contains("/usr/bin/bash\tbash\tmemory"),
        "bash's package"
    );
    assert!(
        list.contains("x86_64-linux-gnu/libc.so.6\tlibc6\tmemory"),
        "merged-/usr alias"
    );
    assert!(list.contains("/usr/sbin/sendmail\t(baseos-mail: sendmail shim)"));
    let o = ns.cb(&refs(&t.args_live(&live, &["check"])));
    assert_eq!(
        o.status.code(),
        Some(0),
        "fresh tree checks clean: {}",
        text(&o)
    );
    let o = ns.cb(&refs(&t.args_live(&live, &["unload"])));
    assert!(o.status.success(), "{}", text(&o));
    assert!(ns.mounts_below(&live).is_empty());
}

#[test]
fn check_catches_libc_edit_and_setuid_and_sync_repairs() {
    let t = full();
    let dir = scratch("check");
    let live = dir.path().join("live");
    let ns = Ns::new();
    let o = ns.cb(&refs(&t.args_live(&live, &["load"])));
    assert!(o.status.success(), "load: {}", text(&o));
    let real = live.join("usr/lib/x86_64-linux-gnu/libc.so.6");
    let o = ns.sh(&format!(
        "test -f {} -a ! -L {}",
        real.display(),
        real.display()
    ));
    assert!(o.status.success(), "libc.so.6 is a plain file in Debian 12");
    // A same-size, one-byte edit in the middle, mtime put back: jk_check misses this.
    let md = std::fs::metadata(ns.path(&real)).expect("md");
    let mut bytes = std::fs::read(ns.path(&real)).expect("read libc");
    let mid = bytes.len() / 2 + 12345;
    bytes[mid] ^= 0x01;
    let mut child = ns
        .command("sh")
        .args([
            "-c",
            &format!(
                "cat > {0}.new && chmod 755 {0}.new && touch -r {0} {0}.new && mv {0}.new {0}",
                real.display()
            ),
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&bytes).expect("write libc");
    }
    assert!(child.wait().expect("wait").success());
    let after = std::fs::metadata(ns.path(&real)).expect("md");
    assert_eq!(
        (after.len(), after.modified().ok()),
        (md.len(), md.modified().ok()),
        "same size and mtime"
    );
    let o = ns.sh(&format!("chmod u+s {}/usr/bin/ls", live.display()));
    assert!(o.status.success());
    let o = ns.cb(&refs(&t.args_live(&live, &["check"])));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    let libc_rel = real
        .strip_prefix(&live)
        .expect("in live")
        .display()
        .to_string();
    assert!(
        out.lines().any(|l| l.starts_with("drift")
            && l.contains(&libc_rel)
            && l.contains("content differs")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("setuid") && l.contains("/usr/bin/ls")),
        "{out}"
    );
    assert!(
        out.contains("check found 2 problem(s)") || out.lines().count() >= 3,
        "{out}"
    );
    // sync --checksum puts both right.
    let o = ns.cb(&refs(&t.args_live(&live, &["sync", "--checksum"])));
    assert!(o.status.success(), "{}", text(&o));
    let o = ns.cb(&refs(&t.args_live(&live, &["check"])));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // A library gone from the tree: every ELF file needing it is named.
    let o = ns.sh(&format!(
        "rm {}/usr/lib/x86_64-linux-gnu/libzstd.so.1",
        live.display()
    ));
    assert!(o.status.success(), "{}", text(&o));
    let o = ns.cb(&refs(&t.args_live(&live, &["check"])));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.lines().any(|l| l.starts_with("library")
            && l.contains("needs libzstd.so.1, which does not resolve inside the tree")),
        "{out}"
    );
    // An extra device node, a world-writable folder, a symlink climbing out, a user-owned file.
    let o = ns.sh(&format!(
        "mknod {0}/dev/sda b 8 0 && chmod 777 {0}/usr/share && ln -s ../../../../../etc/shadow {0}/usr/bin/esc && touch {0}/etc/mine && chown 1234:1234 {0}/etc/mine",
        live.display()
    ));
    assert!(o.status.success(), "{}", text(&o));
    let o = ns.cb(&refs(&t.args_live(&live, &["check"])));
    let out = text(&o);
    for (kind, path) in [
        ("device", "/dev/sda"),
        ("writable", "/usr/share"),
        ("symlink", "/usr/bin/esc"),
        ("owner", "/etc/mine"),
        ("drift", "/etc/mine"),
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(kind) && l.contains(&format!(" {path} "))),
            "{kind} {path}: {out}"
        );
    }
    let o = ns.cb(&refs(&t.args_live(&live, &["sync"])));
    assert!(
        text(&o).contains("- /dev/sda") && text(&o).contains("~ /usr/share"),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains("+ /usr/lib/x86_64-linux-gnu/libzstd.so.1"),
        "{}",
        text(&o)
    );
    let o = ns.cb(&refs(&t.args_live(&live, &["check"])));
    assert_eq!(
        o.status.code(),
        Some(0),
        "sync repaired everything: {}",
        text(&o)
    );
}

#[test]
fn mysql_socket_patches_a_copy_of_my_cnf_idempotently() {
    let d = scratch("mycnf");
    let cnf = d.path().join("50-server.cnf");
    let old = d.path().join("mysqld.sock");
    let original = format!("[server]\n\n[mysqld]\nuser = mysql\npid-file = /run/mysqld/mysqld.pid\nsocket = {}\nbasedir = /usr\n", old.display());
    std::fs::write(&cnf, &original).expect("write");
    let m = shipped_manifest();
    let args = [
        "--manifest",
        m.to_str().expect("utf8"),
        "mysql-socket",
        "--mycnf",
        cnf.to_str().expect("utf8"),
    ];
    let o = cb(&args);
    assert!(o.status.success(), "{}", text(&o));
    let patched = std::fs::read_to_string(&cnf).expect("read");
    assert!(
        patched.contains("\nsocket = /tmp/mysql.sock\n") && !patched.contains("mysqld.sock"),
        "{patched}"
    );
    assert_eq!(
        std::fs::read_to_string(format!("{}.baseos-orig", cnf.display())).expect("backup"),
        original
    );
    assert_eq!(
        std::fs::read_link(&old).expect("symlink at the old path"),
        Path::new("/tmp/mysql.sock")
    );
    let o = cb(&args);
    assert!(text(&o).contains("nothing changed"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&cnf).expect("read"), patched);
}

#[test]
fn sync_under_readers_never_shows_a_missing_or_partial_file() {
    baseos_tests::require_root();
    let data_dir = scratch("syncdata");
    let data = data_dir.path().join("data");
    std::fs::create_dir(&data).expect("data");
    let files = ["a.bin", "b.bin", "c.bin"];
    let size = 2 * 1024 * 1024;
    let fill = |v: u8| {
        for f in files {
            std::fs::write(data.join(f), vec![v; size]).expect("write data");
        }
    };
    fill(1);
    let t = small("sync", &[&data], "");
    let o = cb(&refs(&t.args(&["build"])));
    assert!(o.status.success(), "{}", text(&o));
    let ns = Ns::new();
    let o = ns.cb(&refs(&t.args(&["load"])));
    assert!(o.status.success(), "{}", text(&o));
    let in_live = ns.path(&t.live().join(data.strip_prefix("/").expect("abs")));
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for i in 0..4 {
        let stop = stop.clone();
        let reads = reads.clone();
        let path = in_live.join(files[i % files.len()]);
        readers.push(std::thread::spawn(move || -> Result<(), String> {
            let mut buf = Vec::with_capacity(size);
            while !stop.load(Ordering::Relaxed) {
                buf.clear();
                let mut f =
                    std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                f.read_to_end(&mut buf).map_err(|e| e.to_string())?;
                if buf.len() != size {
                    return Err(format!("partial file: {} bytes", buf.len()));
                }
                let first = buf[0];
                if buf.iter().any(|&b| b != first) {
                    return Err("mixed content".to_string());
                }
                reads.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    // A loop of readers inside the tree too, as a site user would run them.
    let user = baseos_tests::ThrowawayUser::create("cbr");
    let script = format!(
        "i=0; while [ $i -lt 400 ]; do cat {0}/a.bin > /dev/null || exit 1; i=$((i+1)); done",
        data.display()
    );
    let shell_reader = ns
        .command(BIN)
        .args(t.args(&["exec", "--user", &user.name, "--", "sh", "-c", &script]))
        .spawn()
        .expect("shell reader");
    for round in 2..8u8 {
        fill(round);
        let o = cb(&refs(&t.args(&["build"])));
        assert!(o.status.success(), "{}", text(&o));
        let o = ns.cb(&refs(&t.args(&["sync"])));
        assert!(o.status.success(), "{}", text(&o));
        for f in files {
            let line = format!("  ~ {}", data.join(f).display());
            assert!(
                text(&o).lines().any(|l| l == line),
                "round {round}: {}",
                text(&o)
            );
        }
    }
    let o = shell_reader.wait_with_output().expect("shell reader");
    assert!(
        o.status.success(),
        "shell reader inside the tree failed: {}",
        text(&o)
    );
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join()
            .expect("reader thread")
            .expect("reader saw a whole file every time");
    }
    assert!(reads.load(Ordering::Relaxed) > 20, "readers ran");
    let got = std::fs::read(in_live.join("b.bin")).expect("b");
    assert!(got.iter().all(|&b| b == 7), "live has the last content");
    // Nothing changed since: sync says so.
    let o = ns.cb(&refs(&t.args(&["sync"])));
    assert!(text(&o).contains("nothing changed"), "{}", text(&o));
    // A file gone from the host goes from master, then from live.
    std::fs::remove_file(data.join("c.bin")).expect("rm");
    let o = cb(&refs(&t.args(&["build"])));
    assert!(o.status.success(), "{}", text(&o));
    let o = ns.cb(&refs(&t.args(&["sync"])));
    let line = format!("  - {}", data.join("c.bin").display());
    assert!(text(&o).lines().any(|l| l == line), "{}", text(&o));
    assert!(!in_live.join("c.bin").exists() && in_live.join("a.bin").exists());
    // ChangeLog names what each build changed; list.txt lists the files.
    let log = std::fs::read_to_string(t.master().join("ChangeLog")).expect("ChangeLog");
    assert!(log.starts_with("version 8, "), "{log}");
    assert!(
        log.contains(&format!(
            "  removed /{}/c.bin",
            data.strip_prefix("/").expect("abs").display()
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "  changed /{}/a.bin",
            data.strip_prefix("/").expect("abs").display()
        )),
        "{log}"
    );
    assert!(log.contains("initial build"), "{log}");
}

#[test]
fn build_is_idempotent_and_strips_setuid() {
    baseos_tests::require_root();
    let data_dir = scratch("suid");
    let data = data_dir.path().join("bin");
    std::fs::create_dir(&data).expect("bin");
    std::fs::copy("/usr/bin/true", data.join("suidtool")).expect("copy");
    std::fs::set_permissions(
        data.join("suidtool"),
        std::fs::Permissions::from_mode(0o4775),
    )
    .expect("chmod");
    std::fs::copy("/usr/bin/true", data.join("allowed")).expect("copy");
    std::fs::set_permissions(
        data.join("allowed"),
        std::fs::Permissions::from_mode(0o2755),
    )
    .expect("chmod");
    // Only root in passwd: other tests add users meanwhile, which would be a real change.
    let t = small(
        "idem",
        &[&data],
        &format!(
            "[users]\nmin_uid = 65000\nnames = []\ngroups = []\n[setuid]\nallow = [\"{}\"]\n",
            data.join("allowed").display()
        ),
    );
    let o = cb(&refs(&t.args(&["build"])));
    assert!(o.status.success(), "{}", text(&o));
    let inside = t
        .master()
        .join(data.strip_prefix("/").expect("abs"))
        .join("suidtool");
    let mode = std::fs::metadata(&inside)
        .expect("tool")
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o755, "setuid and group-write stripped");
    let allowed = inside.with_file_name("allowed");
    let mode = std::fs::metadata(&allowed)
        .expect("allowed")
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o2755, "allow-listed setgid kept");
    let version = std::fs::read_to_string(t.master().join("VERSION")).expect("VERSION");
    let o = cb(&refs(&t.args(&["build"])));
    assert!(
        text(&o).contains("is up to date (version 1)"),
        "{}",
        text(&o)
    );
    assert_eq!(
        std::fs::read_to_string(t.master().join("VERSION")).expect("VERSION"),
        version
    );
    // dry run prints the plan and changes nothing.
    std::fs::remove_file(data.join("suidtool")).expect("rm");
    let o = cb(&refs(&t.args(&["build", "--dry-run"])));
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("would add 0, change 0, remove 1"),
        "{}",
        text(&o)
    );
    assert!(inside.exists(), "dry run removed nothing");
    let o = cb(&refs(&t.args(&["build"])));
    assert!(o.status.success());
    assert!(!inside.exists());
    let log = std::fs::read_to_string(t.master().join("ChangeLog")).expect("log");
    assert!(log.starts_with("version 2, "), "{log}");
    assert!(
        log.contains(&format!(
            "removed /{}",
            Path::new(data.strip_prefix("/").expect("abs"))
                .join("suidtool")
                .display()
        )),
        "{log}"
    );
}
