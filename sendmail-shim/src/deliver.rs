//! The whole program as one function: argv, stdin, stdout and stderr in, exit code out.
//! `main.rs` only calls [`run`] with the real streams; tests call it with buffers.
//!
//! Order matters: options, config and the server address are checked before stdin is read,
//! and the mail is read whole and checked before any connection is made, so a refused mail
//! never reaches the server.

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::path::Path;

use crate::args::{self, Mode};
use crate::config;
use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::message;
use crate::relay::{self, RelayOptions};
use crate::smtp::{self, Failure};

/// The name we give in EHLO. Not the mail domain: Exim does a reverse DNS lookup of the client
/// (then a forward one to verify it) whenever the EHLO name is one of its own names
/// (`helo_lookup_domains = @ : @[]`), and on a hosting server the mail domain usually is the
/// primary hostname. That lookup cost up to 5 s (a resolver timeout) per mail in the
/// benchmark. `localhost` is true for a loopback submission and what msmtp sends by default.
pub const EHLO_NAME: &str = "localhost";

/// What `-bp` / `mailq` says.
pub const NO_QUEUE: &str = "no mail queue: this sendmail submits directly over SMTP";

/// Runs the shim. `argv[0]` is the program name (`mailq` selects `-bp`). Returns the exit code;
/// on failure one line `sendmail: <what went wrong and what to do>` goes to `stderr`.
pub fn run(
    argv: &[OsString],
    stdin: &mut dyn BufRead,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let result = run_inner(argv, stdin, stdout, stderr);
    let flushed = stdout.flush();
    match result {
        Ok(()) => {
            if let Err(e) = flushed {
                let _ = writeln!(stderr, "sendmail: cannot write to stdout: {e}");
                return Error::Input(String::new()).exit_code();
            }
            0
        }
        Err(e) => {
            let text: String = e
                .to_string()
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            let _ = writeln!(stderr, "sendmail: {text}");
            let _ = stderr.flush();
            e.exit_code()
        }
    }
}

fn run_inner(
    argv: &[OsString],
    stdin: &mut dyn BufRead,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<()> {
    let default_name = OsString::from("sendmail");
    let (argv0, rest) = argv.split_first().unwrap_or((&default_name, &[]));
    let inv = args::parse(argv0, rest)?;
    match inv.mode {
        Mode::Version => {
            writeln!(
                stdout,
                "sendmail (BaseOS sendmail-shim) {}: submits mail over SMTP, tagged with the \
                 caller's uid",
                env!("CARGO_PKG_VERSION")
            )
            .map_err(write_error)?;
            return Ok(());
        }
        Mode::ListQueue => {
            writeln!(stdout, "{NO_QUEUE}").map_err(write_error)?;
            return Ok(());
        }
        Mode::Deliver | Mode::SmtpSession => {}
    }

    let env_config = std::env::var_os(args::CONFIG_ENV);
    let (path, required) = config::config_path(env_config.as_deref());
    let file = config::load(&path, required)?;
    let id = Identity::detect(Path::new("/"), file.domain.as_deref());
    let cfg = config::resolve(&file, &inv, EHLO_NAME);
    // A server name we cannot use is refused before anything is read.
    smtp::resolve(&cfg.settings.server)?;
    if cfg.settings.verbose && !inv.ignored.is_empty() {
        let _ = writeln!(stderr, "--- ignored options: {}", inv.ignored.join(" "));
    }

    match inv.mode {
        Mode::SmtpSession => {
            let opts = RelayOptions {
                hostname: id.domain.clone(),
                max_size: cfg.settings.max_size,
            };
            let verbose = cfg.settings.verbose;
            relay::serve(stdin, stdout, &opts, |envelope, data| {
                let msg = message::prepare_relayed(envelope, &data, &id, &cfg)
                    .map_err(Failure::from_error)?;
                let log: Option<&mut dyn Write> = if verbose { Some(&mut *stderr) } else { None };
                smtp::submit(&msg, &cfg.settings, log)
            })
        }
        _ => {
            let msg = message::prepare(&inv, &id, &cfg, stdin)?;
            let log: Option<&mut dyn Write> = if cfg.settings.verbose {
                Some(stderr)
            } else {
                None
            };
            smtp::submit(&msg, &cfg.settings, log)?;
            Ok(())
        }
    }
}

fn write_error(e: std::io::Error) -> Error {
    Error::Input(format!("cannot write to stdout: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run_args(args: &[&str], input: &[u8]) -> (i32, String, String) {
        let argv: Vec<OsString> = args.iter().map(OsString::from).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut stdin = input;
        let code = run(&argv, &mut stdin, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn mailq_and_bp_say_there_is_no_queue() {
        for argv in [&["mailq"][..], &["sendmail", "-bp"], &["/usr/bin/mailq"]] {
            let (code, out, err) = run_args(argv, b"");
            assert_eq!(
                (code, out.trim(), err.as_str()),
                (0, NO_QUEUE, ""),
                "{argv:?}"
            );
        }
    }

    #[test]
    fn version() {
        let (code, out, _) = run_args(&["sendmail", "-V"], b"");
        assert_eq!(code, 0);
        assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
    }

    #[test]
    fn usage_errors_are_one_line_with_the_code() {
        let (code, out, err) = run_args(&["sendmail", "-X", "/tmp/log", "a@b.example"], b"x\n");
        assert_eq!(code, 64);
        assert_eq!(out, "");
        assert!(
            err.starts_with("sendmail: ") && err.ends_with('\n'),
            "{err:?}"
        );
        assert_eq!(err.matches('\n').count(), 1, "{err:?}");
    }
}
