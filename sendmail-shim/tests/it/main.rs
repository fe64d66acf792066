//! Integration tests of the `sendmail` binary: against a real Exim (with oidentd ident, a real
//! chroot and throwaway users), with Symfony Mailer's real `-bs` transport, and against a
//! scripted SMTP server for the faults a real Exim will not produce.
//!
//! Fault and bad-input tests run the binary cargo builds for this test (`CARGO_BIN_EXE_sendmail`);
//! the Exim, chroot and `-bs` tests run the static release binary (`scripts/build.sh`), the one
//! that is installed in the chroot. Those need root and the system parts; scripts/test.sh runs them.
#![allow(clippy::unwrap_used)]

mod bs;
mod chroot;
mod exim;
mod faults;
mod scripted;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What one run of the shim gave.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The binary cargo built for these tests (dynamic; same code as the static one).
pub fn dev_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sendmail"))
}

/// A config file in a temp dir, named by `BASEOS_SENDMAIL_CONFIG`.
pub struct TestConfig {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl TestConfig {
    pub fn new(text: &str) -> TestConfig {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sendmail.toml");
        std::fs::write(&path, text).expect("write config");
        // Readable by the throwaway users the system tests run the shim as.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        TestConfig { _dir: dir, path }
    }
}

/// Runs `binary args...` with `stdin`, the config named by the environment, and a clean
/// environment otherwise (no SCRIPT_FILENAME unless given in `env`).
pub fn run_shim(
    binary: &Path,
    config: &TestConfig,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &[u8],
) -> Output {
    let mut cmd = Command::new(binary);
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("BASEOS_SENDMAIL_CONFIG", &config.path)
        .envs(env.iter().copied());
    pipe(cmd, stdin)
}

/// Runs a prepared command, feeding `stdin`; collects exit code and output.
pub fn pipe(mut cmd: Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    // Write from a thread: the shim may refuse early and close stdin (EPIPE is fine then).
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait for the shim");
    let _ = writer.join();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
