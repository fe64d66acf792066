//! Helpers: scratch folders safe for trees, a private mount namespace, running the binary.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_chroot-builder");

/// The shipped manifest.
pub(crate) fn shipped_manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("baseos.toml")
}

/// A scratch folder under the target dir (root-owned parents, not world-writable: the builder
/// refuses trees under /tmp).
pub(crate) fn scratch(name: &str) -> tempfile::TempDir {
    let mut base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chroot-builder");
    if !safe_ancestors(&base) {
        // A clone below /tmp (or another shared folder): use a root-only folder instead.
        base = PathBuf::from("/var/lib/chroot-builder-tests");
    }
    std::fs::create_dir_all(&base).expect("create scratch base");
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).expect("chmod base");
    tempfile::Builder::new()
        .prefix(&format!("{name}-"))
        .tempdir_in(&base)
        .expect("scratch dir")
}

/// True if every existing folder above `p` is root's and not writable by group or others.
fn safe_ancestors(p: &Path) -> bool {
    p.ancestors()
        .skip(1)
        .all(|a| match std::fs::symlink_metadata(a) {
            Ok(md) => !md.file_type().is_symlink() && md.uid() == 0 && md.mode() & 0o022 == 0,
            Err(_) => true,
        })
}

/// The static shim built by scripts/build.sh (the harness names the fix when it is missing).
pub(crate) fn shim() -> PathBuf {
    baseos_tests::bin_path("sendmail")
}

pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs the binary (outside any namespace) with the given arguments.
pub(crate) fn cb(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run chroot-builder")
}

/// A private mount namespace held open by a sleeping process; commands enter it with nsenter.
/// Mounts made inside vanish when it is dropped (or when the holder's timer runs out after a
/// crash), so the host never keeps a test's tmpfs or binds.
pub(crate) struct Ns {
    holder: Child,
}

impl Ns {
    pub(crate) fn new() -> Ns {
        let holder = Command::new("unshare")
            .args(["-m", "--propagation", "private", "--", "sleep", "900"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare -m");
        let pid = holder.id();
        let mine = std::fs::read_link("/proc/self/ns/mnt").expect("own ns");
        let ok = baseos_tests::wait_until(std::time::Duration::from_secs(5), || {
            std::fs::read_link(format!("/proc/{pid}/ns/mnt")).is_ok_and(|n| n != mine)
        });
        assert!(ok, "unshare did not create a mount namespace");
        Ns { holder }
    }

    /// A command run inside the namespace.
    pub(crate) fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t")
            .arg(self.holder.id().to_string())
            .args(["-m", "--", program]);
        c
    }

    /// chroot-builder inside the namespace.
    pub(crate) fn cb(&self, args: &[&str]) -> Output {
        self.command(BIN)
            .args(args)
            .output()
            .expect("run chroot-builder in ns")
    }

    /// A shell script inside the namespace.
    pub(crate) fn sh(&self, script: &str) -> Output {
        self.command("sh")
            .args(["-c", script])
            .output()
            .expect("run sh in ns")
    }

    /// `p` as seen inside the namespace (through /proc/PID/root), for reading from the test.
    pub(crate) fn path(&self, p: &Path) -> PathBuf {
        Path::new(&format!("/proc/{}/root", self.holder.id()))
            .join(p.strip_prefix("/").unwrap_or(p))
    }

    /// Mount points inside the namespace at or below `root`.
    pub(crate) fn mounts_below(&self, root: &Path) -> Vec<String> {
        let info = std::fs::read_to_string(format!("/proc/{}/mountinfo", self.holder.id()))
            .expect("mountinfo");
        info.lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| Path::new(m).starts_with(root))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// The trees of one scratch build: `--manifest M --master .. --live .. --disk ..` arguments.
pub(crate) struct Trees {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) manifest: PathBuf,
}

impl Trees {
    pub(crate) fn master(&self) -> PathBuf {
        self.dir.path().join("master")
    }
    pub(crate) fn disk(&self) -> PathBuf {
        self.dir.path().join("disk")
    }
    pub(crate) fn live(&self) -> PathBuf {
        self.dir.path().join("live")
    }
    /// Global arguments with a given live path.
    pub(crate) fn args_live<'a>(&'a self, live: &'a Path, rest: &[&'a str]) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "--manifest".into(),
            self.manifest.display().to_string(),
            "--master".into(),
            self.master().display().to_string(),
            "--disk".into(),
            self.disk().display().to_string(),
            "--live".into(),
            live.display().to_string(),
        ];
        v.extend(rest.iter().map(|s| s.to_string()));
        v
    }
    pub(crate) fn args(&self, rest: &[&str]) -> Vec<String> {
        self.args_live(&self.live(), rest)
    }
}

pub(crate) fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The shipped manifest built once from this host (shared by the tests; they load it into
/// their own live paths and never change the master).
pub(crate) fn full() -> &'static Trees {
    static FULL: OnceLock<Trees> = OnceLock::new();
    FULL.get_or_init(|| {
        baseos_tests::require_root();
        // The fixture lives as long as the process (statics are never dropped): remove the
        // ones of test processes that are gone, so runs do not pile up 500 MB each.
        remove_stale_full();
        let t = Trees {
            dir: scratch(&format!("full-{}", std::process::id())),
            manifest: shipped_manifest(),
        };
        let shim = shim();
        let o = cb(&refs(&t.args(&[
            "build",
            "--shim",
            &shim.display().to_string(),
        ])));
        assert!(o.status.success(), "build failed: {}", text(&o));
        t
    })
}

fn remove_stale_full() {
    let base = scratch("probe");
    let Some(parent) = base.path().parent().map(Path::to_path_buf) else {
        return;
    };
    drop(base);
    let Ok(rd) = std::fs::read_dir(&parent) else {
        return;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("full-").and_then(|r| r.split('-').next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A small manifest (fast) whose memory tier holds `extra` host paths.
pub(crate) fn small(name: &str, extra_memory: &[&Path], extra: &str) -> Trees {
    let dir = scratch(name);
    let manifest = dir.path().join("m.toml");
    let paths: Vec<String> = extra_memory
        .iter()
        .map(|p| format!("\"{}\"", p.display()))
        .collect();
    let shim = shim();
    let text = format!(
        r#"empty_dirs = ["/tmp", "/chroot"]
[paths]
master = "{d}/master"
live = "{d}/live"
disk = "{d}/disk"
[tmpfs]
size = "64m"
[binaries]
names = ["sh", "cat", "ls", "id", "mkdir", "sleep"]
[memory]
paths = [{paths}]
[shim]
source = ["{shim}"]
{extra}
"#,
        d = dir.path().display(),
        paths = paths.join(", "),
        shim = shim.display(),
    );
    std::fs::write(&manifest, text).expect("write manifest");
    Trees { dir, manifest }
}
