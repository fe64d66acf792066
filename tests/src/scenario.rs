//! The whole product on one machine: a BaseOS tree built from this host and loaded into tmpfs,
//! the default policy rendered for a private Exim, oidentd, and throwaway site users who send
//! mail with PHP from inside the chroot. The end-to-end tests and `baseos-demo` (the README's
//! main job) both drive this one code path.
//!
//! Everything runs in a private mount namespace of the calling thread (so a failed run leaves
//! no mount behind on the host), under `/var/lib/baseos-tests/<name>` (chroot-builder refuses
//! trees under world-writable folders such as /tmp), and is removed on drop.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::{bin_path, ensure_oidentd, require_root, run, workspace_root, Exim, ThrowawayUser};

/// Where scenarios keep their trees (root-owned, not world-writable).
const SCENARIO_ROOT: &str = "/var/lib/baseos-tests";

/// What a scenario sets up.
#[derive(Debug, Clone)]
pub struct ScenarioOptions {
    /// A short lowercase name: the scenario's folder and its users' name prefix.
    pub name: String,
    /// How many throwaway site users to create.
    pub users: usize,
    /// Messages per hour each user may send (the policy's default limit).
    pub messages_per_hour: u32,
    /// The shim's retry window for a refused connection, in seconds.
    pub retry_for_secs: u32,
    /// The shim's overall deadline, in seconds.
    pub deadline_secs: u32,
}

impl ScenarioOptions {
    /// Two users, a limit of 3 messages per hour.
    pub fn new(name: &str) -> ScenarioOptions {
        ScenarioOptions {
            name: name.to_string(),
            users: 2,
            messages_per_hour: 3,
            retry_for_secs: 15,
            deadline_secs: 30,
        }
    }
}

/// A running BaseOS mail installation in miniature. Dropping it stops Exim, unloads the tree,
/// removes the users and the scenario's folder.
#[derive(Debug)]
pub struct Scenario {
    /// The scenario's folder.
    pub dir: PathBuf,
    /// The on-disk master tree.
    pub master: PathBuf,
    /// The tmpfs tree users are chrooted into.
    pub live: PathBuf,
    /// The on-disk tier bind-mounted at `<live>/chroot`.
    pub disk: PathBuf,
    /// The manifest used (the repository's default, with the scenario's paths).
    pub manifest: PathBuf,
    /// The policy used (the shipped example, with the scenario's Exim settings).
    pub policy: PathBuf,
    /// The private Exim running the rendered policy.
    pub exim: Exim,
    /// The site users, in creation order.
    pub users: Vec<ThrowawayUser>,
    /// The folder (on the host's /tmp, bound into the tree) holding the PHP scripts.
    pub www: PathBuf,
    loaded: bool,
}

/// Enters a private mount namespace for the calling thread and the processes it starts, with
/// every mount private, so that nothing mounted from here propagates to the host and all of it
/// disappears when the thread's last process ends.
pub fn private_mount_namespace() {
    use nix::mount::{mount, MsFlags};
    use nix::sched::{unshare, CloneFlags};
    unshare(CloneFlags::CLONE_NEWNS).expect("unshare(CLONE_NEWNS): needs root");
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .expect("make / rprivate in the new mount namespace");
}

impl Scenario {
    /// Sets everything up; panics with the failing step's output on any error.
    pub fn start(options: ScenarioOptions) -> Scenario {
        require_root();
        private_mount_namespace();
        ensure_oidentd();
        let dir = Path::new(SCENARIO_ROOT).join(format!("{}-{}", options.name, std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create scenario folder");
        fs::set_permissions(SCENARIO_ROOT, fs::Permissions::from_mode(0o755)).expect("chmod");

        // Site users first: the tree's filtered /etc/passwd is taken from the host at build.
        let users: Vec<ThrowawayUser> = (0..options.users)
            .map(|_| ThrowawayUser::create(&options.name))
            .collect();

        // The policy: the shipped example's rules, the scenario's limit, and a standalone
        // Exim with the harness's folders and port.
        let policy = dir.join("policy.toml");
        let rendered = dir.join("exim-policy");
        let exim = Exim::start_raw(|paths| {
            fs::write(&policy, scenario_policy(&options, paths)).expect("write policy");
            let _ = fs::remove_dir_all(&rendered);
            run(Command::new(bin_path("exim-policy"))
                .arg("render")
                .arg("--policy")
                .arg(&policy)
                .arg("--out")
                .arg(&rendered)
                .args(["--layout", "standalone"]));
            fs::read_to_string(rendered.join("exim.conf")).expect("rendered exim.conf")
        });

        let master = dir.join("master");
        let live = dir.join("live");
        let disk = dir.join("disk");
        // Until the Scenario exists (and its drop takes over), a failed step removes the trees.
        let mut half_built = TreeGuard(Some(dir.clone()));
        let manifest = workspace_root().join("chroot-builder/baseos.toml");
        let builder = |sub: &str| {
            let mut cmd = Command::new(bin_path("chroot-builder"));
            cmd.arg(sub)
                .arg("--manifest")
                .arg(&manifest)
                .arg("--master")
                .arg(&master)
                .arg("--live")
                .arg(&live)
                .arg("--disk")
                .arg(&disk);
            cmd
        };
        run(builder("build").arg("--shim").arg(bin_path("sendmail")));
        // The shim inside the tree submits to the private Exim's port.
        fs::create_dir_all(master.join("etc/baseos")).expect("mkdir etc/baseos");
        fs::write(
            master.join("etc/baseos/sendmail.toml"),
            format!(
                "port = {}\ndomain = \"test.example\"\nretry_for = {}\ndeadline = {}\n",
                exim.port(),
                options.retry_for_secs,
                options.deadline_secs
            ),
        )
        .expect("write sendmail.toml");
        run(&mut builder("load"));

        let www = PathBuf::from("/tmp").join(format!(
            "baseos-www-{}-{}",
            options.name,
            std::process::id()
        ));
        fs::create_dir_all(&www).expect("create www");
        fs::set_permissions(&www, fs::Permissions::from_mode(0o755)).expect("chmod www");

        half_built.0 = None;
        Scenario {
            dir,
            master,
            live,
            disk,
            manifest,
            policy,
            exim,
            users,
            www,
            loaded: true,
        }
    }

    fn builder(&self, sub: &str) -> Command {
        let mut cmd = Command::new(bin_path("chroot-builder"));
        cmd.arg(sub)
            .arg("--manifest")
            .arg(&self.manifest)
            .arg("--master")
            .arg(&self.master)
            .arg("--live")
            .arg(&self.live)
            .arg("--disk")
            .arg(&self.disk);
        cmd
    }

    /// Runs `args` inside the live tree as `user`, the way suexec would
    /// (`chroot-builder exec --user NAME -- ARGS`), with `env` added to its environment.
    pub fn exec(&self, user: &ThrowawayUser, env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut cmd = self.builder("exec");
        cmd.arg("--user").arg(&user.name).arg("--");
        if !env.is_empty() {
            // exec starts from a clean environment, as suexec does; the tree's env(1) adds
            // what a CGI request would carry.
            cmd.arg("/usr/bin/env");
            cmd.args(env.iter().map(|(k, v)| format!("{k}={v}")));
        }
        cmd.args(args);
        cmd.output().expect("run chroot-builder exec")
    }

    /// Writes a PHP script for `user` under the shared /tmp (visible at the same path inside
    /// the tree) and returns its path.
    pub fn php_script(&self, user: &ThrowawayUser, name: &str, code: &str) -> PathBuf {
        let dir = self.www.join(&user.name);
        fs::create_dir_all(&dir).expect("create user www");
        run(Command::new("chown")
            .arg(format!("{}:{}", user.uid, user.gid))
            .arg(&dir));
        let path = dir.join(name);
        fs::write(&path, code).expect("write php script");
        run(Command::new("chown")
            .arg(format!("{}:{}", user.uid, user.gid))
            .arg(&path));
        path
    }

    /// Runs `mail($to, $subject, $body)` with PHP inside the tree as `user`, from a script
    /// file whose path the shim reports as the origin (`SCRIPT_FILENAME`, as CGI/suexec set it).
    /// Returns whether `mail()` returned true, and PHP's output.
    pub fn php_mail(
        &self,
        user: &ThrowawayUser,
        to: &str,
        subject: &str,
        body: &str,
    ) -> (bool, Output) {
        let code = format!(
            "<?php\n$ok = mail({to:?}, {subject:?}, {body:?}, \"From: {user}@test.example\");\necho $ok ? \"MAIL-TRUE\\n\" : \"MAIL-FALSE\\n\";\n",
            user = user.name
        );
        let script = self.php_script(user, "send.php", &code);
        let script_str = script.to_string_lossy().into_owned();
        let out = self.exec(
            user,
            &[("SCRIPT_FILENAME", &script_str)],
            &[
                "/bin/sh",
                "-c",
                &format!(
                    "cd {} && php {}",
                    shell_quote(&self.www.join(&user.name).to_string_lossy()),
                    shell_quote(&script_str)
                ),
            ],
        );
        let ok = String::from_utf8_lossy(&out.stdout).contains("MAIL-TRUE");
        (ok, out)
    }

    /// Runs `exim-policy report` on the private Exim's mainlog with `args`; returns stdout.
    pub fn report(&self, args: &[&str]) -> String {
        run(Command::new(bin_path("exim-policy"))
            .arg("report")
            .args(args)
            .arg(self.exim.paths().log.join("mainlog")))
    }

    /// Waits until `n` messages were delivered to `local_part`, then returns them.
    pub fn delivered(&self, local_part: &str, n: usize) -> Vec<Vec<u8>> {
        self.exim
            .wait_for_deliveries(local_part, n, Duration::from_secs(15))
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        self.exim.stop();
        if self.loaded {
            let _ = self.builder("unload").output();
            self.loaded = false;
        }
        let _ = fs::remove_dir_all(&self.www);
        remove_scenario_dir(&self.dir);
    }
}

/// Removes a scenario's folder, unless something is still mounted below it: removing a tree
/// with /tmp still bound into it would delete host files through the bind (the mounts go away
/// with the thread's mount namespace anyway). After a failure only the trees are removed: the
/// small files (policy, rendered config) stay for a post-mortem.
fn remove_scenario_dir(dir: &Path) {
    let mounted = mounts_below(dir);
    if !mounted.is_empty() {
        eprintln!(
            "scenario: {} still has mounts ({}); nothing removed",
            dir.display(),
            mounted.join(", ")
        );
        return;
    }
    if std::thread::panicking() {
        for tree in ["master", "live", "disk"] {
            let _ = fs::remove_dir_all(dir.join(tree));
        }
        eprintln!(
            "scenario failed: its policy and rendered config are kept in {}",
            dir.display()
        );
    } else {
        let _ = fs::remove_dir_all(dir);
    }
}

/// Cleans up a scenario folder whose setup failed before the [`Scenario`] existed.
struct TreeGuard(Option<PathBuf>);

impl Drop for TreeGuard {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = Command::new(bin_path("chroot-builder"))
                .arg("unload")
                .arg("--live")
                .arg(dir.join("live"))
                .arg("--master")
                .arg(dir.join("master"))
                .arg("--disk")
                .arg(dir.join("disk"))
                .arg("--manifest")
                .arg(workspace_root().join("chroot-builder/baseos.toml"))
                .output();
            remove_scenario_dir(dir);
        }
    }
}

/// Mount points at or below `dir` in this thread's mount namespace.
fn mounts_below(dir: &Path) -> Vec<String> {
    let info = fs::read_to_string("/proc/thread-self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(dir))
        .map(str::to_string)
        .collect()
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The shipped example policy with the scenario's limit and the private Exim's settings.
fn scenario_policy(options: &ScenarioOptions, paths: &crate::EximPaths) -> String {
    format!(
        r#"[ident]
hosts = ["127.0.0.1", "::1"]
timeout = "2s"

[limits]
messages = {limit}
messages_period = "1h"
over_limit = "defer"

[origin]
forged = "reject"
header = "keep"

[standalone]
primary_hostname = "test.example"
port = {port}
interfaces = ["127.0.0.1", "::1"]
spool_directory = "{spool}"
log_file_path = "{log}/%slog"
pid_file = "{dir}/exim.pid"
local_domains = ["test.example", "localhost"]
mail_dir = "{mail}"
exim_user = "Debian-exim"
exim_group = "Debian-exim"
relay = false
"#,
        limit = options.messages_per_hour,
        port = paths.port,
        spool = paths.spool.display(),
        log = paths.log.display(),
        dir = paths.dir.display(),
        mail = paths.mail.display(),
    )
}
