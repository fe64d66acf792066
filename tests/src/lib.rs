//! The test harness shared by every crate's system tests: real parts on loopback.
//!
//! - [`Exim`]: a private Exim 4 daemon on a free loopback port with its own spool, log and
//!   maildirs under a temporary folder, stopped (and its trusted-config entry removed) on drop.
//! - [`ensure_oidentd`]: an oidentd answering on 127.0.0.1:113 and \[::1\]:113. Port 113 is
//!   fixed by RFC 1413, so one instance serves every test on the machine; it is started once
//!   (under a file lock) and left running; `scripts/test.sh` stops it at the end.
//! - [`ThrowawayUser`]: a real Unix user, removed on drop.
//! - [`bin_path`]: the release binaries `scripts/build.sh` builds (the shim must be static).
//!
//! Nothing here skips a test: a missing prerequisite panics with the command that fixes it.
//! These helpers need root; tests call [`require_root`] first so the failure says so.

#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)] // test support: a failed setup step should abort the test loudly

pub mod scenario;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where Debian's Exim looks for configuration files that keep root privilege under `-C`.
const TRUSTED_CONFIGS: &str = "/etc/exim4/trusted_configs";
/// Where the harness keeps machine-wide state (the shared oidentd's config and lock).
const STATE_DIR: &str = "/run/baseos-tests";

/// Panics with a clear message unless the test runs as root.
pub fn require_root() {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or("?");
    assert_eq!(
        uid, "0",
        "this test needs root (real users, chroots, Exim, oidentd): run it via scripts/test.sh as root"
    );
}

/// The workspace root (the folder holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A release binary built by `scripts/build.sh` (the shim statically linked).
///
/// `$BASEOS_BIN_DIR` overrides the folder; default `target/x86_64-unknown-linux-gnu/release`.
pub fn bin_path(name: &str) -> PathBuf {
    let dir = std::env::var_os("BASEOS_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/x86_64-unknown-linux-gnu/release"));
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the release binaries with scripts/build.sh first (or set BASEOS_BIN_DIR)",
        path.display()
    );
    if executable_by_anyone(&path) {
        return path;
    }
    // The checkout may sit where only root can go (e.g. /root): throwaway users could not run
    // the binary from there, so hand out a copy in a folder everyone may enter.
    let copies = Path::new(STATE_DIR).join(format!("bin-{}", std::process::id()));
    let copy = copies.join(name);
    static COPYING: Mutex<()> = Mutex::new(());
    let _guard = COPYING.lock().unwrap_or_else(|e| e.into_inner());
    let stale = fs::metadata(&copy).and_then(|m| m.modified()).ok()
        != fs::metadata(&path).and_then(|m| m.modified()).ok();
    if stale {
        fs::create_dir_all(&copies).expect("create /run/baseos-tests/bin-<pid>");
        for d in [Path::new(STATE_DIR), copies.as_path()] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod 755");
        }
        let tmp = copies.join(format!(".{name}.tmp"));
        fs::copy(&path, &tmp).expect("copy binary");
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).expect("chmod binary");
        let mtime = fs::metadata(&path)
            .and_then(|m| m.modified())
            .expect("mtime");
        File::options()
            .write(true)
            .open(&tmp)
            .and_then(|f| f.set_modified(mtime))
            .expect("set mtime");
        fs::rename(&tmp, &copy).expect("rename binary copy");
    }
    copy
}

/// Whether every folder above `path` lets others through and `path` lets others execute it.
fn executable_by_anyone(path: &Path) -> bool {
    let mode = |p: &Path| fs::metadata(p).map(|m| m.permissions().mode()).unwrap_or(0);
    mode(path) & 0o001 != 0 && path.ancestors().skip(1).all(|dir| mode(dir) & 0o001 != 0)
}

/// An unused loopback TCP port, free on both 127.0.0.1 and \[::1\] (daemons here listen on
/// both; Exim waits 30 s per try for an address in use).
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        if TcpListener::bind(("::1", port)).is_ok() {
            return port;
        }
    }
}

/// Runs a command, panicking with its output if it fails. Returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `f` every 20 ms until it returns true or `timeout` passes; returns the last result.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn port_open(addr: &str) -> bool {
    let addr: SocketAddr = addr.parse().expect("socket address");
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Holds an exclusive lock on a file under [`STATE_DIR`] for as long as it lives, so that test
/// binaries running at the same time serialise machine-wide edits (trusted_configs, users).
struct MachineLock(File);

impl MachineLock {
    fn take(name: &str) -> MachineLock {
        fs::create_dir_all(STATE_DIR).expect("create /run/baseos-tests");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(Path::new(STATE_DIR).join(format!("{name}.lock")))
            .expect("open lock file");
        file.lock().expect("lock");
        MachineLock(file)
    }
}

impl Drop for MachineLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Oidentd settings for tests: Debian's default (no spoofing, no hiding, no numeric replies).
const OIDENTD_CONF: &str = "default {\n\tdefault {\n\t\tdeny spoof\n\t\tdeny spoof_all\n\t\t\
deny spoof_privport\n\t\tdeny random\n\t\tdeny random_numeric\n\t\tdeny numeric\n\t\tdeny hide\n\t\t\
deny forward\n\t}\n}\n";

/// Makes sure an oidentd answers on 127.0.0.1:113 and \[::1\]:113, starting one if needed.
///
/// The instance is shared by all tests on the machine and left running (`scripts/test.sh`
/// stops it with `pkill -F /run/baseos-tests/oidentd.pid`). Never stop it from a test: a test
/// that needs "no identd" runs its Exim in a network namespace of its own.
pub fn ensure_oidentd() {
    static LOCAL: Mutex<()> = Mutex::new(());
    let _local = LOCAL.lock().unwrap_or_else(|e| e.into_inner());
    let _machine = MachineLock::take("oidentd");
    if port_open("127.0.0.1:113") {
        return;
    }
    let conf = Path::new(STATE_DIR).join("oidentd.conf");
    fs::write(&conf, OIDENTD_CONF).expect("write oidentd.conf");
    let pid_file = Path::new(STATE_DIR).join("oidentd.pid");
    // Without -i, oidentd forks into the background and survives this test process.
    // -l: Debian's unit allows only 10 concurrent lookups; load tests need more.
    run(Command::new("oidentd")
        .args([
            "-a",
            "127.0.0.1",
            "-a",
            "::1",
            "-u",
            "oident",
            "-g",
            "oident",
            "-l",
            "256",
        ])
        .arg("-C")
        .arg(&conf)
        .arg("-p")
        .arg("113")
        .stdin(Stdio::null()));
    let up = wait_until(Duration::from_secs(10), || port_open("127.0.0.1:113"));
    assert!(
        up,
        "oidentd did not start listening on 127.0.0.1:113 within 10 s"
    );
    if let Ok(out) = Command::new("pgrep").args(["-n", "-x", "oidentd"]).output() {
        let _ = fs::write(pid_file, out.stdout);
    }
}

/// A real Unix user for one test, removed (`userdel -r`, processes killed) on drop.
#[derive(Debug)]
pub struct ThrowawayUser {
    /// Login name.
    pub name: String,
    /// Numeric user id.
    pub uid: u32,
    /// Numeric primary group id.
    pub gid: u32,
    /// Home folder (created).
    pub home: PathBuf,
}

impl ThrowawayUser {
    /// Creates a user named `<prefix><pid><n>` with a home folder and `/bin/sh` as shell.
    /// `prefix` should be short lowercase letters (names are at most 32 characters).
    pub fn create(prefix: &str) -> ThrowawayUser {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("{prefix}{}x{n}", std::process::id());
        assert!(
            name.len() <= 32,
            "user name {name} too long: use a shorter prefix"
        );
        let home = PathBuf::from("/home").join(&name);
        {
            // useradd locks /etc/passwd and fails rather than waits when another holds it.
            let _machine = MachineLock::take("users");
            run(Command::new("useradd")
                .args(["-m", "-U", "-s", "/bin/sh", "-d"])
                .arg(&home)
                .arg(&name));
        }
        let uid = run(Command::new("id").args(["-u", &name]))
            .trim()
            .parse()
            .unwrap();
        let gid = run(Command::new("id").args(["-g", &name]))
            .trim()
            .parse()
            .unwrap();
        ThrowawayUser {
            name,
            uid,
            gid,
            home,
        }
    }

    /// A command that runs `program` as this user (real and effective ids, own groups),
    /// with HOME, USER and LOGNAME set and the rest of the environment kept.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg("--")
            .arg(program)
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .current_dir(&self.home);
        cmd
    }
}

impl Drop for ThrowawayUser {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .args(["-KILL", "-u", &self.name])
            .status();
        let _machine = MachineLock::take("users");
        let _ = Command::new("userdel")
            .args(["-r", "-f", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// The folders and port of a private Exim.
#[derive(Debug, Clone)]
pub struct EximPaths {
    /// The temporary folder holding everything below.
    pub dir: PathBuf,
    /// `spool_directory` (owned by Debian-exim).
    pub spool: PathBuf,
    /// The folder of `mainlog`, `rejectlog`, `paniclog`.
    pub log: PathBuf,
    /// Holds the one maildir, `<mail>/Maildir`.
    pub mail: PathBuf,
    /// The configuration file (root-owned, listed in trusted_configs while the daemon runs).
    pub config: PathBuf,
    /// The loopback port the daemon listens on (127.0.0.1 and ::1).
    pub port: u16,
}

/// Options for the harness's default Exim configuration.
#[derive(Debug, Clone, Default)]
pub struct EximConfig {
    main: String,
    acl: Option<String>,
}

impl EximConfig {
    /// Adds lines to the main section (e.g. `acl_smtp_mail = acl_mail`).
    pub fn main(mut self, text: &str) -> EximConfig {
        self.main.push_str(text);
        self.main.push('\n');
        self
    }

    /// Replaces the default ACL section body (everything after `begin acl`). The default is an
    /// `acl_rcpt` that accepts the local domains and refuses relaying.
    pub fn acl(mut self, text: &str) -> EximConfig {
        self.acl = Some(text.to_string());
        self
    }

    /// The whole configuration text for `paths`.
    pub fn render(&self, paths: &EximPaths) -> String {
        let acl = self.acl.clone().unwrap_or_else(|| {
            "acl_rcpt:\n  accept domains = +local_domains\n  deny message = relay not permitted\n"
                .to_string()
        });
        let acl_rcpt_line = if self.main.contains("acl_smtp_rcpt") {
            ""
        } else {
            "acl_smtp_rcpt = acl_rcpt\n"
        };
        format!(
            "{main_section}{main}{acl_rcpt_line}\nbegin acl\n{acl}\n{tail}",
            main_section = default_main_section(paths),
            main = self.main,
            tail = default_delivery_sections(paths),
        )
    }
}

/// The main section every harness config starts with (exim.md §3).
pub fn default_main_section(paths: &EximPaths) -> String {
    format!(
        "primary_hostname = test.example
qualify_domain = test.example
domainlist local_domains = test.example : localhost
hostlist loopback = <; 127.0.0.1 ; ::1
exim_user = Debian-exim
exim_group = Debian-exim
never_users = root
spool_directory = {spool}
log_file_path = {log}/%slog
daemon_smtp_ports = {port}
local_interfaces = <; 127.0.0.1 ; ::1
host_lookup =
queue_only = false
keep_environment =
tls_advertise_hosts =
smtp_accept_max = 200
smtp_accept_queue_per_connection = 0
rfc1413_hosts = +loopback
rfc1413_query_timeout = 2s
message_size_limit = 50M
log_selector = +smtp_connection +incoming_port +received_recipients +sender_on_delivery \\
               +ident_timeout +pid +subject +smtp_no_mail +deliver_time
",
        spool = paths.spool.display(),
        log = paths.log.display(),
        port = paths.port,
    )
}

/// Routers, transports and retry rules that deliver every local-domain address to the one
/// maildir `<mail>/Maildir`, one file per recipient, each with its `Envelope-to:` header (a
/// path built from the local part would be tainted data, which Exim refuses).
pub fn default_delivery_sections(paths: &EximPaths) -> String {
    format!(
        "begin routers
local_inbox:
  driver = accept
  domains = +local_domains
  transport = local_maildir

begin transports
local_maildir:
  driver = appendfile
  directory = {mail}/Maildir
  maildir_format = true
  create_directory = true
  user = Debian-exim
  group = Debian-exim
  mode = 0640
  envelope_to_add = true
  return_path_add = true

begin retry
* * F,1h,5m
",
        mail = paths.mail.display()
    )
}

/// A private Exim daemon (`exim4 -C <config> -bdf`), stopped on drop.
#[derive(Debug)]
pub struct Exim {
    paths: EximPaths,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

impl Exim {
    /// Starts a daemon with the harness's default configuration plus `config`'s additions.
    /// Also makes sure oidentd runs, since the default config asks loopback clients for ident.
    pub fn start(config: EximConfig) -> Exim {
        ensure_oidentd();
        Exim::start_raw(|paths| config.render(paths))
    }

    /// Starts a daemon whose whole configuration is `make_config(paths)`.
    pub fn start_raw(make_config: impl Fn(&EximPaths) -> String) -> Exim {
        require_root();
        let mut last_error = String::new();
        // A free port can be taken between choosing it and the daemon binding it: try again.
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("baseos-exim-")
                .tempdir()
                .expect("temp dir");
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
            let paths = EximPaths {
                dir: dir.path().to_path_buf(),
                spool: dir.path().join("spool"),
                log: dir.path().join("log"),
                mail: dir.path().join("mail"),
                config: dir.path().join("exim.conf"),
                port: free_port(),
            };
            for d in [&paths.spool, &paths.log, &paths.mail] {
                fs::create_dir(d).unwrap();
                run(Command::new("chown").arg("Debian-exim:Debian-exim").arg(d));
            }
            fs::write(&paths.config, make_config(&paths)).unwrap();
            fs::set_permissions(&paths.config, fs::Permissions::from_mode(0o644)).unwrap();
            let check = Command::new("exim4")
                .arg("-C")
                .arg(&paths.config)
                .arg("-bV")
                .output()
                .expect("run exim4 -bV");
            assert!(
                check.status.success(),
                "exim4 -bV refused the test configuration {}:\n{}{}",
                paths.config.display(),
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&check.stderr)
            );
            trust_config(&paths.config);
            let mut exim = Exim {
                child: Some(
                    Command::new("exim4")
                        .arg("-C")
                        .arg(&paths.config)
                        .arg("-bdf")
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped())
                        .spawn()
                        .expect("spawn exim4 -bdf"),
                ),
                paths,
                _dir: Some(dir),
            };
            // Ready when the daemon says so: a socket can accept connections into its backlog
            // while Exim still waits to bind its other address.
            let up = wait_until(Duration::from_secs(10), || {
                exim.mainlog().contains("daemon started")
                    || exim.child.as_mut().unwrap().try_wait().unwrap().is_some()
            });
            if up && exim.mainlog().contains("daemon started") {
                return exim;
            }
            let mut child = exim.child.take().unwrap();
            let _ = child.kill();
            let _ = child.wait();
            let mut err = String::new();
            if let Some(mut s) = child.stderr.take() {
                let _ = s.read_to_string(&mut err);
            }
            last_error = format!(
                "{err}\n{}",
                fs::read_to_string(exim.paths.log.join("paniclog")).unwrap_or_default()
            );
        }
        panic!("the private Exim daemon did not start: {last_error}");
    }

    /// The daemon's loopback port.
    pub fn port(&self) -> u16 {
        self.paths.port
    }

    /// Its folders and config file.
    pub fn paths(&self) -> &EximPaths {
        &self.paths
    }

    /// The main log so far.
    pub fn mainlog(&self) -> String {
        fs::read_to_string(self.paths.log.join("mainlog")).unwrap_or_default()
    }

    /// The reject log so far.
    pub fn rejectlog(&self) -> String {
        fs::read_to_string(self.paths.log.join("rejectlog")).unwrap_or_default()
    }

    /// Waits until the main log contains `pattern`.
    pub fn wait_for_log(&self, pattern: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.mainlog().contains(pattern))
    }

    /// The raw messages delivered to `<local_part>@<a local domain>` so far, oldest first
    /// (selected by their `Envelope-to:` header).
    pub fn delivered(&self, local_part: &str) -> Vec<Vec<u8>> {
        let wanted = format!("Envelope-to: {local_part}@");
        // The harness's own config uses one maildir; rendered standalone configs (exim-policy)
        // use one per local part.
        let own = self.paths.mail.join(local_part).join("Maildir");
        let maildir = if own.is_dir() {
            own
        } else {
            self.paths.mail.join("Maildir")
        };
        let mut files: Vec<PathBuf> = ["new", "cur"]
            .iter()
            .filter_map(|sub| fs::read_dir(maildir.join(sub)).ok())
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        // Maildir names start with the delivery time in seconds, then microseconds: sort by
        // modification time first, name second.
        files.sort_by_key(|p| (fs::metadata(p).and_then(|m| m.modified()).ok(), p.clone()));
        files
            .iter()
            .filter_map(|p| fs::read(p).ok())
            .filter(|mail| {
                !maildir.starts_with(self.paths.mail.join("Maildir"))
                    || String::from_utf8_lossy(mail)
                        .lines()
                        .take_while(|l| !l.is_empty())
                        .any(|l| l.starts_with(&wanted))
            })
            .collect()
    }

    /// Waits until at least `n` messages were delivered to `local_part`, then returns them all.
    pub fn wait_for_deliveries(
        &self,
        local_part: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<Vec<u8>> {
        wait_until(timeout, || self.delivered(local_part).len() >= n);
        self.delivered(local_part)
    }

    /// Stops the daemon now (the drop does it too).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            if !wait_until(Duration::from_secs(5), || {
                child.try_wait().ok().flatten().is_some()
            }) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }

    /// Starts the daemon again with the same configuration and port (e.g. after `stop`).
    pub fn restart(&mut self) {
        self.stop();
        let started_before = self.mainlog().matches("daemon started").count();
        self.child = Some(
            Command::new("exim4")
                .arg("-C")
                .arg(&self.paths.config)
                .arg("-bdf")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn exim4 -bdf"),
        );
        assert!(
            wait_until(Duration::from_secs(10), || {
                self.mainlog().matches("daemon started").count() > started_before
            }),
            "restarted Exim did not start listening on port {} within 10 s",
            self.paths.port
        );
    }
}

impl Drop for Exim {
    fn drop(&mut self) {
        self.stop();
        untrust_config(&self.paths.config);
        if std::thread::panicking() {
            // Keep the spool and logs of a failed test for a post-mortem.
            if let Some(dir) = self._dir.take() {
                let kept = dir.keep();
                eprintln!("test failed: private Exim files kept in {}", kept.display());
            }
        }
    }
}

/// Lists a config file in Debian's TRUSTED_CONFIG_LIST so that the daemon keeps root for
/// deliveries started with `-C` (exim.md §1.5).
pub fn trust_config(config: &Path) {
    let _machine = MachineLock::take("trusted-configs");
    let line = format!("{}\n", config.display());
    let current = fs::read_to_string(TRUSTED_CONFIGS).unwrap_or_default();
    if !current.lines().any(|l| l == config.to_string_lossy()) {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(TRUSTED_CONFIGS)
            .expect("open trusted_configs");
        f.write_all(line.as_bytes())
            .expect("append trusted_configs");
    }
}

/// Removes a config file from Debian's TRUSTED_CONFIG_LIST.
pub fn untrust_config(config: &Path) {
    let _machine = MachineLock::take("trusted-configs");
    if let Ok(current) = fs::read_to_string(TRUSTED_CONFIGS) {
        let kept: String = current
            .lines()
            .filter(|l| *l != config.to_string_lossy())
            .map(|l| format!("{l}\n"))
            .collect();
        let _ = fs::write(TRUSTED_CONFIGS, kept);
    }
}

/// Sends one SMTP transaction over a plain socket and returns every reply line. The socket is
/// owned by the calling process: run the test binary's helper as the right user when ident
/// matters, or use swaks through [`ThrowawayUser::command`].
pub fn smtp_dialogue(port: u16, commands: &[&str]) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut replies = Vec::new();
    let read_reply = |reader: &mut BufReader<TcpStream>, replies: &mut Vec<String>| loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let done = line.as_bytes().get(3) != Some(&b'-');
        replies.push(line.trim_end().to_string());
        if done {
            return;
        }
    };
    read_reply(&mut reader, &mut replies);
    for c in commands {
        writer.write_all(format!("{c}\r\n").as_bytes()).unwrap();
        read_reply(&mut reader, &mut replies);
    }
    replies
}
