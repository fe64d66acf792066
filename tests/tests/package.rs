//! The Debian package `baseos-mail`, installed for real with dpkg on this machine (issue 7).
//!
//! `scripts/test.sh` builds it with `packaging/build-deb.sh` before `cargo test` and passes its
//! path in `$BASEOS_DEB` (default: the newest `target/debian/baseos-mail_*.deb`). One test does
//! install → checks → trigger → remove → purge in order: it is the only test that uses dpkg, and
//! the steps depend on each other. Everything runs in a private mount namespace of the test
//! thread, so the BaseOS tree it loads never shows on the host and vanishes with the thread.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use baseos_tests::scenario::private_mount_namespace;
use baseos_tests::{bin_path, require_root, run, workspace_root};

const PKG: &str = "baseos-mail";
const CONFFILES: [&str; 4] = [
    "/etc/baseos/baseos.toml",
    "/etc/baseos/policy.toml",
    "/etc/baseos/sendmail.toml",
    "/etc/baseos/oidentd.conf",
];
const UNIT_DIR: &str = "/usr/lib/systemd/system";
const UNITS: [&str; 3] = [
    "baseos-load.service",
    "exim-policy-report.service",
    "exim-policy-report.timer",
];
const DROPIN: &str = "/usr/lib/systemd/system/oidentd.service.d/baseos-mail.conf";
/// Files the package owns outside /etc: all gone after `dpkg -r`.
const PROGRAM_FILES: [&str; 13] = [
    "/usr/sbin/chroot-builder",
    "/usr/sbin/exim-policy",
    "/usr/lib/baseos-mail/sendmail",
    "/usr/share/man/man8/baseos-sendmail.8.gz",
    "/usr/share/man/man8/chroot-builder.8.gz",
    "/usr/share/man/man8/chroot-builder-sync.8.gz",
    "/usr/share/man/man8/exim-policy.8.gz",
    "/usr/share/man/man8/exim-policy-report.8.gz",
    "/usr/share/bash-completion/completions/chroot-builder",
    "/usr/share/zsh/vendor-completions/_exim-policy",
    "/usr/share/doc/baseos-mail/README.md",
    "/usr/share/doc/baseos-mail/INSTALL.md",
    DROPIN,
];

fn deb_path() -> PathBuf {
    if let Some(p) = std::env::var_os("BASEOS_DEB").filter(|p| !p.is_empty()) {
        // A relative path (as packaging/build-deb.sh prints it) is relative to the workspace.
        let p = workspace_root().join(p);
        assert!(p.is_file(), "$BASEOS_DEB={} is not a file", p.display());
        return p;
    }
    let dir = workspace_root().join("target/debian");
    let newest = fs::read_dir(&dir).ok().and_then(|entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                name.starts_with("baseos-mail_") && name.ends_with(".deb")
            })
            .max_by_key(|p| fs::metadata(p).and_then(|m| m.modified()).ok())
    });
    newest.unwrap_or_else(|| {
        panic!(
            "no baseos-mail_*.deb in {}: build it with packaging/build-deb.sh (scripts/test.sh does)",
            dir.display()
        )
    })
}

fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// dpkg's abbreviated status of the package ("ii ", "rc ") or None when dpkg does not know it.
fn package_status() -> Option<String> {
    let o = output(Command::new("dpkg-query").args(["-W", "-f=${db:Status-Abbrev}", PKG]));
    let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
    (o.status.success() && !s.is_empty() && s != "un").then_some(s)
}

/// Purges the package when the test ends, passed or not, so a failed run leaves no package.
struct PurgeOnDrop;
impl Drop for PurgeOnDrop {
    fn drop(&mut self) {
        if package_status().is_some() {
            let _ = Command::new("dpkg").args(["-P", PKG]).output();
        }
    }
}

/// The mount points of the test thread's mount namespace.
fn mount_points() -> Vec<PathBuf> {
    fs::read_to_string("/proc/thread-self/mountinfo")
        .expect("read mountinfo")
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .collect()
}

/// The test's scratch folder: on drop (passed or not), unmounts whatever the test left mounted
/// below it in the thread's namespace, and removes it only when nothing is mounted there any
/// more (never delete through a mount).
struct Scratch(PathBuf);
impl Drop for Scratch {
    fn drop(&mut self) {
        let live = self.0.join("live");
        if mount_points().iter().any(|m| m.starts_with(&live)) {
            let _ = Command::new("umount").arg("-R").arg(&live).output();
        }
        if mount_points().iter().all(|m| !m.starts_with(&self.0)) {
            let _ = fs::remove_dir_all(&self.0);
        }
        let _ = fs::remove_file(tmp_file());
    }
}

/// A host /tmp file standing for the sites' data in the host's /tmp.
fn tmp_file() -> PathBuf {
    PathBuf::from(format!(
        "/tmp/baseos-package-test-{}.txt",
        std::process::id()
    ))
}

/// A loaded tree's data that must outlive any package operation.
struct HostData {
    /// master VERSION, a host file in the memory tier, a file bind-mounted into the tree, a /tmp file.
    files: Vec<(PathBuf, Vec<u8>)>,
}
impl HostData {
    fn snapshot(paths: &[PathBuf]) -> HostData {
        HostData {
            files: paths
                .iter()
                .map(|p| {
                    let bytes = fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
                    (p.clone(), bytes)
                })
                .collect(),
        }
    }
    fn assert_intact(&self, when: &str) {
        for (p, want) in &self.files {
            let got =
                fs::read(p).unwrap_or_else(|e| panic!("{when}: {} is gone ({e})", p.display()));
            assert_eq!(&got, want, "{when}: {} changed", p.display());
        }
    }
}

/// The oidentd command line of the drop-in, as systemd would run it: `${OIDENT_USER}` and
/// `${OIDENT_GROUP}` from /etc/default/oidentd (the unit's defaults otherwise), `$$` → `$`.
fn oidentd_command(dropin: &str) -> String {
    let line = dropin
        .lines()
        .find(|l| l.starts_with("ExecStart=/"))
        .expect("the drop-in sets ExecStart");
    assert!(
        dropin.lines().any(|l| l == "ExecStart="),
        "the drop-in must reset Debian's ExecStart with an empty ExecStart= first"
    );
    let inner = line
        .strip_prefix("ExecStart=/bin/sh -c '")
        .and_then(|s| s.strip_suffix('\''))
        .expect("ExecStart=/bin/sh -c '...'");
    let defaults = fs::read_to_string("/etc/default/oidentd").unwrap_or_default();
    let var = |name: &str, dflt: &str| {
        defaults
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| dflt.to_string())
    };
    inner
        .replace("${OIDENT_USER}", &var("OIDENT_USER", "nobody"))
        .replace("${OIDENT_GROUP}", &var("OIDENT_GROUP", "nogroup"))
        .replace("$$", "$")
}

/// Runs the drop-in's oidentd (in the foreground) in a network namespace of its own, where it
/// can have port 113 without disturbing the shared test oidentd, and returns what `ss` lists on
/// port 113 and the reply to an ident query for a root-owned loopback connection.
fn run_oidentd_in_netns(command: &str) -> (String, String) {
    let script = r#"
set -e
ip link set lo up
/bin/sh -c "$1 -i" &
pid=$!
i=0
until ss -ltnH 'sport = :113' | grep -q 127.0.0.1; do
  i=$((i+1)); [ $i -lt 100 ] || { echo "oidentd did not listen"; kill $pid; exit 1; }
  kill -0 $pid 2>/dev/null || { echo "oidentd exited"; exit 1; }
  sleep 0.05
done
echo "--- listening"
ss -ltnH 'sport = :113' | awk '{print $4}' | sort
echo "--- reply"
python3 -c '
import socket
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
c = socket.create_connection(srv.getsockname()); a, _ = srv.accept()
q = socket.create_connection(("127.0.0.1", 113), timeout=5)
q.sendall(b"%d, %d\r\n" % (c.getsockname()[1], srv.getsockname()[1]))
print(q.recv(512).decode().strip())
'
kill $pid
"#;
    let o = output(Command::new("unshare").args(["-n", "--", "sh", "-c", script, "sh", command]));
    assert!(o.status.success(), "oidentd from the drop-in: {}", text(&o));
    // oidentd logs to stderr (-S); the script's findings are on stdout.
    let t = String::from_utf8_lossy(&o.stdout);
    let listening = t
        .split("--- listening\n")
        .nth(1)
        .and_then(|s| s.split("--- reply\n").next())
        .unwrap_or_default()
        .to_string();
    let reply = t
        .split("--- reply\n")
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_string();
    (listening, reply)
}

#[test]
#[ignore = "system: installs, triggers, removes and purges the baseos-mail package with dpkg (scripts/test.sh runs it as root)"]
fn package_installs_verifies_triggers_and_removes_without_touching_a_loaded_tree() {
    require_root();
    private_mount_namespace();
    let deb = deb_path();
    assert!(
        package_status().is_none(),
        "{PKG} is already installed here; this test installs and purges it: remove it first (dpkg -P {PKG})"
    );

    // The package never ships the host's sendmail (that stays Exim's): its only `sendmail` is
    // the shim under /usr/lib/baseos-mail.
    let contents = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    let sendmails: Vec<&str> = contents
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|p| p.ends_with("/sendmail") || p.ends_with("/mini_sendmail"))
        .collect();
    assert_eq!(sendmails, ["./usr/lib/baseos-mail/sendmail"], "{contents}");
    let host_sendmail = fs::read("/usr/sbin/sendmail").ok();

    let _purge = PurgeOnDrop;
    let o = output(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(
        o.status.success(),
        "dpkg -i {}: {}",
        deb.display(),
        text(&o)
    );
    assert_eq!(package_status().as_deref(), Some("ii"));
    assert_eq!(
        fs::read("/usr/sbin/sendmail").ok(),
        host_sendmail,
        "installing {PKG} changed the host's /usr/sbin/sendmail"
    );

    // Conffiles: exactly the four configs, root-owned, not writable by others.
    let conffiles = run(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", PKG]));
    let mut listed: Vec<&str> = conffiles
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    listed.sort_unstable();
    let mut want = CONFFILES.to_vec();
    want.sort_unstable();
    assert_eq!(listed, want, "dpkg-query ${{Conffiles}}:\n{conffiles}");
    for f in CONFFILES {
        let md = fs::metadata(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!((md.uid(), md.mode() & 0o7777), (0, 0o644), "{f} owner/mode");
    }

    for f in PROGRAM_FILES {
        assert!(Path::new(f).is_file(), "{f} not installed");
    }

    // The binaries run, and they are the ones scripts/build.sh just built (not a stale .deb).
    for (installed, built) in [
        ("/usr/sbin/chroot-builder", "chroot-builder"),
        ("/usr/sbin/exim-policy", "exim-policy"),
        ("/usr/lib/baseos-mail/sendmail", "sendmail"),
    ] {
        assert!(
            fs::read(installed).unwrap() == fs::read(bin_path(built)).unwrap(),
            "{installed} differs from {}: the .deb is stale, rebuild it with packaging/build-deb.sh",
            bin_path(built).display()
        );
        let md = fs::metadata(installed).unwrap();
        assert_eq!(
            (md.uid(), md.mode() & 0o7777),
            (0, 0o755),
            "{installed} owner/mode"
        );
    }
    let help = run(Command::new("/usr/sbin/chroot-builder").arg("--help"));
    assert!(help.contains("Usage: chroot-builder"), "{help}");
    for sub in ["build", "load", "sync", "check", "status", "unload"] {
        assert!(
            help.contains(sub),
            "chroot-builder --help lacks {sub}:\n{help}"
        );
    }
    let help = run(Command::new("/usr/sbin/exim-policy").arg("--help"));
    assert!(help.contains("Usage: exim-policy"), "{help}");
    let version = run(Command::new("/usr/lib/baseos-mail/sendmail").arg("-V"));
    assert!(version.contains("BaseOS sendmail-shim"), "{version}");
    let man = run(Command::new("man")
        .args(["-P", "cat", "baseos-sendmail"])
        .env("MANWIDTH", "100"));
    for section in [
        "SYNOPSIS",
        "OPTIONS",
        "EXIT STATUS",
        "FILES",
        "SECURITY",
        "SEE ALSO",
    ] {
        assert!(
            man.contains(section),
            "man baseos-sendmail lacks {section}:\n{man}"
        );
    }
    for code in ["64", "65", "67", "69", "74", "76", "78"] {
        assert!(
            man.contains(&format!("\n       {code} ")),
            "man baseos-sendmail: no exit code {code}:\n{man}"
        );
    }

    // Each shipped config is accepted by the program that reads it.
    let manifest = fs::read_to_string("/etc/baseos/baseos.toml").unwrap();
    assert!(
        manifest.contains("source = [\"/usr/lib/baseos-mail/sendmail\"]"),
        "the packaged manifest must take the shim from the package only:\n{manifest}"
    );
    let scratch =
        Path::new("/var/lib/baseos-tests").join(format!("package-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch).unwrap();
    let _scratch = Scratch(scratch.clone());
    fs::set_permissions("/var/lib/baseos-tests", fs::Permissions::from_mode(0o755)).unwrap();
    let dry = run(Command::new("/usr/sbin/chroot-builder")
        .arg("--master")
        .arg(scratch.join("dry/master"))
        .arg("--live")
        .arg(scratch.join("dry/live"))
        .arg("--disk")
        .arg(scratch.join("dry/disk"))
        .args(["build", "--dry-run"]));
    assert!(dry.contains("shim: /usr/lib/baseos-mail/sendmail"), "{dry}");
    assert!(
        dry.lines().any(|l| l == "  + /etc/baseos/sendmail.toml"),
        "the packaged manifest copies the shim's config into the tree:\n{dry}"
    );
    assert!(
        !scratch.join("dry").exists(),
        "build --dry-run wrote {}",
        scratch.join("dry").display()
    );
    let check = run(Command::new("/usr/sbin/exim-policy").args([
        "check",
        "--policy",
        "/etc/baseos/policy.toml",
    ]));
    assert!(
        check.contains("checks passed"),
        "exim-policy check on the packaged policy:\n{check}"
    );
    // sendmail.toml ships every key commented: as shipped and with every key set it is a valid
    // config (exit 64: no recipients, read after the config), a misspelt key is not (78).
    let shipped = fs::read_to_string("/etc/baseos/sendmail.toml").unwrap();
    let uncommented: String = shipped
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.contains(" = ") && !rest.starts_with(' ') => rest,
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    for key in [
        "server",
        "port",
        "domain",
        "timeout",
        "deadline",
        "retry_for",
        "max_size",
        "origin_header",
    ] {
        assert!(
            uncommented
                .lines()
                .any(|l| l.starts_with(&format!("{key} = "))),
            "sendmail.toml documents no {key}:\n{shipped}"
        );
    }
    let misspelt = uncommented.replace("max_size = ", "max_sise = ");
    for (name, body, code) in [
        ("shipped", shipped.as_str(), 64),
        ("all keys", &uncommented, 64),
        ("misspelt", &misspelt, 78),
    ] {
        let f = scratch.join(format!("sendmail-{}.toml", name.replace(' ', "-")));
        fs::write(&f, body).unwrap();
        let o = output(
            Command::new("/usr/lib/baseos-mail/sendmail")
                .env("BASEOS_SENDMAIL_CONFIG", &f)
                .stdin(std::process::Stdio::null()),
        );
        assert_eq!(
            o.status.code(),
            Some(code),
            "sendmail with the {name} sendmail.toml: {}",
            text(&o)
        );
    }

    // systemd: the units and oidentd.service with the package's drop-in pass offline
    // verification (no PID-1 systemd needed: it loads the unit files and checks the commands).
    for unit in UNITS {
        assert!(
            Path::new(UNIT_DIR).join(unit).is_file(),
            "{unit} not installed"
        );
    }
    let o = output(
        Command::new("systemd-analyze")
            .arg("verify")
            .args(UNITS.iter().map(|u| Path::new(UNIT_DIR).join(u)))
            .arg("oidentd.service"),
    );
    assert!(
        o.status.success() && text(&o).trim().is_empty(),
        "systemd-analyze verify: {}",
        text(&o)
    );
    // The report service's command, run as systemd would but on a scratch log and textfile
    // folder: the flags are the report's, and the textfile is what node_exporter reads.
    let report_unit =
        fs::read_to_string(Path::new(UNIT_DIR).join("exim-policy-report.service")).unwrap();
    let exec: Vec<&str> = report_unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart in exim-policy-report.service")
        .split_whitespace()
        .collect();
    let collector = "/var/lib/prometheus/node-exporter";
    for line in [
        format!("ConditionPathIsDirectory={collector}"),
        format!("ReadWritePaths={collector}"),
    ] {
        assert!(
            report_unit.lines().any(|l| l == line),
            "exim-policy-report.service lacks {line}"
        );
    }
    let report_dir = scratch.join("report");
    fs::create_dir_all(report_dir.join("log")).unwrap();
    fs::create_dir_all(report_dir.join("textfile")).unwrap();
    // One mail, logged now (the unit may count only a recent window, e.g. --since 1h).
    let now = run(Command::new("date").arg("+%Y-%m-%d %H:%M:%S"));
    let now = now.trim();
    fs::write(
        report_dir.join("log/mainlog"),
        format!(
            "{now} [100] 1xZ0aa-000001-AB <= alice@example.com H=localhost [127.0.0.1]:40000 \
             I=[127.0.0.1]:25 U=alice P=esmtp S=500 id=x@y T=\"hi\" for bob@example.com\n\
             {now} [100] 1xZ0aa-000001-AB Completed\n"
        ),
    )
    .unwrap();
    // The unit's arguments with the log folder (given, or the default /var/log/exim4) and the
    // collector folder moved to scratch.
    let scratch_log = report_dir.join("log").display().to_string();
    let mut args: Vec<String> = exec[1..]
        .iter()
        .map(|a| {
            a.replace("/var/log/exim4", &scratch_log).replace(
                collector,
                &report_dir.join("textfile").display().to_string(),
            )
        })
        .collect();
    assert!(
        args.iter()
            .any(|a| a.starts_with(&report_dir.join("textfile").display().to_string())),
        "ExecStart does not write into {collector}: {exec:?}"
    );
    if !args
        .iter()
        .any(|a| a == "--log-dir" || a.starts_with("--log-dir="))
    {
        args.extend(["--log-dir".to_string(), scratch_log.clone()]);
    }
    run(Command::new(exec[0]).args(&args));
    let prom_name = exec
        .iter()
        .find_map(|a| a.strip_prefix(&format!("{collector}/")))
        .expect("the textfile goes to the collector folder");
    assert!(
        prom_name.ends_with(".prom"),
        "node_exporter reads only *.prom: {prom_name}"
    );
    let prom_path = report_dir.join("textfile").join(prom_name);
    let prom = fs::read_to_string(&prom_path).unwrap();
    assert!(
        prom.contains("exim_policy_user_mails{user=\"alice\"} 1"),
        "{prom}"
    );
    assert_eq!(
        fs::metadata(&prom_path).unwrap().mode() & 0o777,
        0o644,
        "node_exporter must read it"
    );

    // The timer is enabled; the tree's unit is not (the master must be built first).
    assert!(Path::new("/etc/systemd/system/timers.target.wants/exim-policy-report.timer").exists());
    assert!(!Path::new("/etc/systemd/system/multi-user.target.wants/baseos-load.service").exists());

    // oidentd as the drop-in starts it: loopback only, and it answers truthfully.
    let dropin = fs::read_to_string(DROPIN).unwrap();
    let cmd = oidentd_command(&dropin);
    for forbidden in [" -m", " -f", " -P", " -r", " -R", "OIDENT_OPTIONS"] {
        assert!(
            !cmd.contains(forbidden),
            "oidentd command has {forbidden}: {cmd}"
        );
    }
    assert!(
        cmd.contains("-l 256") && cmd.contains("-C /etc/baseos/oidentd.conf"),
        "{cmd}"
    );
    let (listening, reply) = run_oidentd_in_netns(&cmd);
    let mut addrs: Vec<&str> = listening.lines().collect();
    addrs.sort_unstable();
    let ipv6 = fs::read_to_string("/proc/sys/net/ipv6/conf/lo/disable_ipv6")
        .is_ok_and(|v| v.trim() == "0");
    let want: Vec<&str> = if ipv6 {
        vec!["127.0.0.1:113", "[::1]:113"]
    } else {
        vec!["127.0.0.1:113"]
    };
    assert_eq!(addrs, want, "oidentd must listen on loopback only");
    assert!(
        reply.replace(' ', "").ends_with(":USERID:UNIX:root"),
        "ident reply for a root-owned connection: {reply:?}"
    );

    // A loaded tree with host data: a small manifest in place of the packaged one (a changed
    // conffile, kept by dpkg -r), a host folder in the memory tier, a host folder bind-mounted
    // into the tree, a /tmp file.
    let hostlib = scratch.join("hostlib");
    let hostdata = scratch.join("hostdata");
    fs::create_dir_all(&hostlib).unwrap();
    fs::create_dir_all(&hostdata).unwrap();
    fs::write(hostlib.join("libfake.txt"), "version 1\n").unwrap();
    fs::write(hostdata.join("customer.txt"), "a site's data\n").unwrap();
    let tmp_file = tmp_file();
    fs::write(&tmp_file, "host /tmp data\n").unwrap();
    let small = format!(
        r#"# written by tests/tests/package.rs
empty_dirs = ["/tmp", "/chroot", "/home"]
[paths]
master = "{d}/master"
live = "{d}/live"
disk = "{d}/disk"
[tmpfs]
size = "64m"
[binaries]
names = ["sh", "cat"]
[memory]
paths = ["{lib}"]
[shim]
source = ["/usr/lib/baseos-mail/sendmail"]
[[bind]]
source = "{data}"
target = "/home"
"#,
        d = scratch.display(),
        lib = hostlib.display(),
        data = hostdata.display(),
    );
    fs::write("/etc/baseos/baseos.toml", &small).unwrap();
    let live = scratch.join("live");
    let live_lib = live
        .join(hostlib.strip_prefix("/").unwrap())
        .join("libfake.txt");

    // The trigger without a loaded tree does nothing (and builds nothing).
    let fire = || {
        run(Command::new("dpkg-trigger").args([
            "--by-package=libc6",
            "--no-await",
            "/usr/lib/x86_64-linux-gnu",
        ]));
        let o = output(Command::new("dpkg").args(["--triggers-only", PKG]));
        assert!(
            o.status.success(),
            "dpkg --triggers-only {PKG}: {}",
            text(&o)
        );
        text(&o)
    };
    let out = fire();
    assert!(
        out.contains("no BaseOS tree loaded: nothing to sync"),
        "{out}"
    );
    assert!(
        !scratch.join("master").exists(),
        "the trigger built a master without a loaded tree"
    );

    run(Command::new("/usr/sbin/chroot-builder").args(["--quiet", "build"]));
    run(Command::new("/usr/sbin/chroot-builder").args(["--quiet", "load"]));
    let status = run(Command::new("/usr/sbin/chroot-builder").arg("status"));
    assert!(status.contains(": loaded"), "{status}");
    assert_eq!(fs::read_to_string(&live_lib).unwrap(), "version 1\n");
    assert_eq!(
        fs::read_to_string(live.join("home/customer.txt")).unwrap(),
        "a site's data\n"
    );
    assert!(
        live.join("usr/sbin/sendmail").is_file(),
        "the tree's /usr/sbin/sendmail (from /usr/lib/baseos-mail/sendmail) is missing"
    );

    // A "library upgrade": the trigger rebuilds the master and syncs the loaded tree.
    fs::write(hostlib.join("libfake.txt"), "version 2\n").unwrap();
    let out = fire();
    assert!(
        out.contains("rebuilding the BaseOS master and syncing the loaded tree"),
        "{out}"
    );
    assert_eq!(
        fs::read_to_string(&live_lib).unwrap(),
        "version 2\n",
        "the trigger did not sync the loaded tree:\n{out}"
    );

    // An upgrade (here: the same .deb again) brings its shim into a loaded tree: the tree's
    // /usr/sbin/sendmail, made stale here, is the package's again after `dpkg -i`.
    let tree_shim = live.join("usr/sbin/sendmail");
    fs::write(&tree_shim, "#!/bin/sh\necho stale shim\n").unwrap();
    let o = output(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(o.status.success(), "dpkg -i again (upgrade): {}", text(&o));
    assert!(
        text(&o).contains("configure: rebuilding the BaseOS master and syncing the loaded tree"),
        "{}",
        text(&o)
    );
    assert!(
        fs::read(&tree_shim).unwrap() == fs::read("/usr/lib/baseos-mail/sendmail").unwrap(),
        "the upgrade did not bring the package's shim into the loaded tree: {}",
        text(&o)
    );

    let host_data = HostData::snapshot(&[
        scratch.join("master/VERSION"),
        hostlib.join("libfake.txt"),
        hostdata.join("customer.txt"),
        live.join("home/customer.txt"),
        live_lib.clone(),
        tmp_file.clone(),
    ]);
    let mounts_before: Vec<PathBuf> = mount_points()
        .into_iter()
        .filter(|m| m.starts_with(&live))
        .collect();
    assert!(
        mounts_before.contains(&live) && mounts_before.contains(&live.join("home")),
        "{mounts_before:?}"
    );

    // dpkg -r: programs, units and drop-in gone; conffiles (with the admin's change) kept; the
    // loaded tree still mounted, its host data untouched.
    let o = output(Command::new("dpkg").args(["-r", PKG]));
    assert!(o.status.success(), "dpkg -r: {}", text(&o));
    assert_eq!(package_status().as_deref(), Some("rc"));
    let unit_files = UNITS.iter().map(|u| Path::new(UNIT_DIR).join(u));
    for f in PROGRAM_FILES.iter().map(PathBuf::from).chain(unit_files) {
        assert!(!f.exists(), "{} still there after dpkg -r", f.display());
    }
    for f in CONFFILES {
        assert!(
            Path::new(f).is_file(),
            "{f} removed by dpkg -r (conffiles stay until purge)"
        );
    }
    assert_eq!(
        fs::read_to_string("/etc/baseos/baseos.toml").unwrap(),
        small
    );
    host_data.assert_intact("after dpkg -r");
    let mounts: Vec<PathBuf> = mount_points()
        .into_iter()
        .filter(|m| m.starts_with(&live))
        .collect();
    assert_eq!(mounts, mounts_before, "dpkg -r changed the tree's mounts");

    // dpkg -P: the configuration goes too; the tree and its data stay.
    let o = output(Command::new("dpkg").args(["-P", PKG]));
    assert!(o.status.success(), "dpkg -P: {}", text(&o));
    assert_eq!(package_status(), None);
    for f in CONFFILES {
        assert!(!Path::new(f).exists(), "{f} still there after dpkg -P");
    }
    assert!(
        !Path::new("/etc/baseos").exists(),
        "/etc/baseos left behind after purge"
    );
    assert!(
        !Path::new("/etc/systemd/system/timers.target.wants/exim-policy-report.timer").exists()
    );
    // Nothing of the units is left in /etc/systemd or deb-systemd-helper's state.
    for unit in UNITS {
        let mask = Path::new("/etc/systemd/system").join(unit);
        assert!(
            fs::symlink_metadata(&mask).is_err(),
            "{} left after purge",
            mask.display()
        );
    }
    let leftovers = run(Command::new("find").args([
        "/etc/systemd/system",
        "/var/lib/systemd",
        "-name",
        "*exim-policy-report*",
        "-o",
        "-name",
        "*baseos-load*",
    ]));
    assert!(
        leftovers.trim().is_empty(),
        "left after purge:\n{leftovers}"
    );
    host_data.assert_intact("after dpkg -P");
    let mounts: Vec<PathBuf> = mount_points()
        .into_iter()
        .filter(|m| m.starts_with(&live))
        .collect();
    assert_eq!(mounts, mounts_before, "dpkg -P changed the tree's mounts");
    assert_eq!(
        fs::read("/usr/sbin/sendmail").ok(),
        host_sendmail,
        "removing {PKG} changed the host's /usr/sbin/sendmail"
    );

    // Clean up: unmount (never delete through a mount), then remove the scratch folders.
    let o = output(Command::new("umount").arg("-R").arg(&live));
    assert!(
        o.status.success(),
        "umount -R {}: {}",
        live.display(),
        text(&o)
    );
    assert!(mount_points().iter().all(|m| !m.starts_with(&scratch)));
}

/// The man page as `man` renders it (plain text, no line wrapping inside a paragraph's tag).
fn rendered_man_page() -> String {
    let page = workspace_root().join("packaging/man/baseos-sendmail.8");
    run(Command::new("man")
        .args(["-P", "cat", "-l"])
        .arg(&page)
        .env("MANWIDTH", "200"))
}

/// The lines of one section of a rendered man page (headings start in column 0).
fn man_section<'a>(page: &'a str, heading: &str) -> Vec<&'a str> {
    page.lines()
        .skip_while(|l| *l != heading)
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .collect()
}

/// The option words of the OPTIONS tags (`-f addr, -faddr, -r addr` → -f, -faddr, -r).
fn option_tags(options: &[&str]) -> Vec<String> {
    options
        .iter()
        .filter(|l| l.starts_with("       -") && !l.starts_with("        "))
        .flat_map(|l| l.trim().split(", "))
        .filter_map(|t| t.split_whitespace().next())
        .filter(|t| t.starts_with('-'))
        .map(str::to_string)
        .collect()
}

/// The hand-written baseos-sendmail(8) against the shim: every flag the shim knows is documented,
/// every flag documented as ignored or refused is ignored or refused by the real binary, and the
/// EXIT STATUS list is exactly the shim's exit-code mapping (sendmail-shim/src/error.rs) plus 0.
#[test]
fn sendmail_man_page_matches_the_shim() {
    let page = rendered_man_page();
    let options = man_section(&page, "OPTIONS");
    let tags = option_tags(&options);
    assert!(tags.len() > 20, "OPTIONS tags: {tags:?}");
    let shim = bin_path("sendmail");
    let run_shim = |arg: &str| {
        let o = output(
            Command::new(&shim)
                .arg(arg)
                .stdin(std::process::Stdio::null()),
        );
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };

    // The shim's own list of what it knows and ignores, from its unknown-option error.
    let (code, err) = run_shim("-q");
    assert_eq!(code, Some(64), "{err}");
    let known = err
        .split("this sendmail knows ")
        .nth(1)
        .and_then(|s| s.split("; ").next())
        .unwrap_or_else(|| panic!("unexpected unknown-option message: {err}"));
    for flag in known.split_whitespace().filter(|w| w.starts_with('-')) {
        let documented = match flag.strip_suffix('*') {
            Some(prefix) => tags
                .iter()
                .any(|t| t.starts_with(prefix) && t.len() > prefix.len()),
            None => tags.iter().any(|t| t == flag || *t == format!("{flag}x")),
        };
        assert!(
            documented,
            "the shim knows {flag}, baseos-sendmail(8) OPTIONS does not: {tags:?}"
        );
    }

    // Documented as accepted and ignored: the shim goes on (and stops at "no recipients").
    let ignored_at = options
        .iter()
        .position(|l| l.trim() == "Accepted and ignored (sendmail compatibility).")
        .expect("an 'Accepted and ignored' entry");
    let ignored: Vec<&str> = options[ignored_at - 1].trim().split(", ").collect();
    assert!(ignored.len() >= 10, "{ignored:?}");
    for flag in ignored {
        let (code, err) = run_shim(flag);
        assert!(
            code == Some(64) && err.contains("no valid recipients"),
            "man page says {flag} is ignored; the shim said ({code:?}): {err}"
        );
    }
    // Documented as refused: the shim refuses them.
    let refused_at = options
        .iter()
        .position(|l| l.trim().starts_with("Refused with exit 64"))
        .expect("a 'Refused with exit 64' entry");
    let refused: Vec<&str> = options[refused_at - 1].trim().split(", ").collect();
    assert_eq!(refused, ["-C", "-X", "-O", "-D", "-d"]);
    for flag in refused {
        let (code, err) = run_shim(flag);
        assert!(
            code == Some(64) && err.contains("refused"),
            "man page says {flag} is refused; the shim said ({code:?}): {err}"
        );
    }

    // EXIT STATUS = 0 + the one mapping in sendmail-shim/src/error.rs.
    let documented: Vec<u32> = man_section(&page, "EXIT STATUS")
        .iter()
        .filter_map(|l| l.strip_prefix("       "))
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|w| w.parse().ok())
        .collect();
    let source = fs::read_to_string(workspace_root().join("sendmail-shim/src/error.rs"))
        .expect("read sendmail-shim/src/error.rs");
    let mut mapped: Vec<u32> = source
        .lines()
        .filter_map(|l| l.split("=> ").nth(1))
        .filter_map(|r| r.trim_end_matches(',').trim().parse().ok())
        .collect();
    mapped.insert(0, 0);
    mapped.sort_unstable();
    mapped.dedup();
    assert!(mapped.len() >= 7, "exit codes in error.rs: {mapped:?}");
    assert_eq!(
        documented, mapped,
        "baseos-sendmail(8) EXIT STATUS vs sendmail-shim/src/error.rs"
    );
    assert!(
        !documented.contains(&75),
        "75 means 'queued' to PHP 8.5: never documented, never used"
    );
}

/// Subcommand names listed under `Commands:` in a clap `--help`.
fn help_subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // Deeper indentation continues a wrapped description.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// Long options (`--name`) in a `--help` text.
fn help_long_flags(help: &str) -> Vec<String> {
    let mut flags: Vec<String> = help
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("--"))
        .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-'))
        .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .map(|w| format!("--{w}"))
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

#[test]
fn generated_man_pages_and_completions_cover_every_subcommand_and_flag() {
    for tool in ["chroot-builder", "exim-policy"] {
        let out = tempfile::tempdir().unwrap();
        run(Command::new(bin_path(tool))
            .arg("generate-docs")
            .arg("--out")
            .arg(out.path()));
        let help = run(Command::new(bin_path(tool)).arg("--help"));
        let subcommands = help_subcommands(&help);
        assert!(
            subcommands.len() >= 3,
            "{tool} --help lists no subcommands:\n{help}"
        );
        let bash = fs::read_to_string(out.path().join(format!("completions/{tool}.bash"))).unwrap();
        for sub in &subcommands {
            let page = out.path().join(format!("man8/{tool}-{sub}.8"));
            let man =
                fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
            let sub_help = run(Command::new(bin_path(tool)).args([sub.as_str(), "--help"]));
            for flag in help_long_flags(&sub_help) {
                // roff escapes '-' as '\-'.
                let in_man = man.contains(&flag) || man.contains(&flag.replace('-', "\\-"));
                assert!(in_man, "{} does not document {flag}", page.display());
                assert!(
                    bash.contains(&flag),
                    "bash completion of {tool} lacks {flag}"
                );
            }
            assert!(
                bash.contains(sub.as_str()),
                "bash completion of {tool} lacks {sub}"
            );
        }
    }
}
