//! The sendmail command line, parsed by hand.
//!
//! sendmail's legacy syntax (`-oi`, `-fADDR` next to `-f ADDR`, `-odb`, grouped `-ti`) is
//! beyond clap, and callers (PHP's `sendmail_path`, cron, lettre, PHPMailer) pass flags that
//! must be accepted and ignored rather than refused. This module is a pure function from argv
//! to an [`Invocation`]: no files, no environment, no syscalls (ripgrep's `LowArgs` split).
//!
//! Rules, in the order a reader needs them:
//! - Options come first. The first argument that does not start with `-` (or everything after
//!   `--`) is a recipient, as in mini_sendmail and BSD sendmail. An option-looking argument
//!   *after* a recipient is refused (64) rather than sent as a recipient `-i`: the message tells
//!   the caller to move it before the recipients or to put `--` before recipients.
//! - Flags may be grouped (`-ti`, `-tiv`); a flag that takes a value ends the group and takes
//!   the rest of the argument (`-fADDR`) or, when that is empty, the next argument (`-f ADDR`).
//!   That is getopt's behaviour, so `-o`, `-A`, `-B`, `-h`, `-L`, `-N`, `-R` with nothing
//!   attached eat the next argument too (msmtp does the same for bare `-o`).
//! - `-C`, `-X`, `-O`, `-D`, `-d` are refused with 64: PHP passes `mail()`'s 5th parameter
//!   through `escapeshellcmd`, which keeps options, so a config or log-file option is an attack
//!   path (CVE-2016-10033: `-X/var/www/shell.php` wrote a PHP file through sendmail's log).
//! - Unknown options are refused with 64 and named: silently ignoring `-q` or `-bv` would
//!   pretend to do something we don't do.
//!
//! **Config file.** There is deliberately no option to choose the config file: every option
//! can be injected through PHP's 5th parameter, and a caller-chosen config could point the shim
//! at another server or turn the origin tag off. The path is `/etc/baseos/sendmail.toml`
//! unless the environment variable [`CONFIG_ENV`] (`BASEOS_SENDMAIL_CONFIG`) names another file;
//! the environment is set by whoever starts PHP (the administrator), not by the script's
//! `mail()` arguments. See `config::config_path`.

use std::ffi::{OsStr, OsString};
use std::time::Duration;

use crate::address::{self, Mailbox};
use crate::error::{Error, Result};

/// Environment variable naming the config file (instead of [`DEFAULT_CONFIG`]).
pub const CONFIG_ENV: &str = "BASEOS_SENDMAIL_CONFIG";
/// The config file read when [`CONFIG_ENV`] is not set; a missing default file is fine.
pub const DEFAULT_CONFIG: &str = "/etc/baseos/sendmail.toml";

/// What the caller asked the shim to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `-bm` (the default): read a mail from stdin and submit it.
    Deliver,
    /// `-bs`: an SMTP session on stdin/stdout, relayed to the server.
    SmtpSession,
    /// `-bp` or invoked as `mailq`: there is no queue; say so and exit 0.
    ListQueue,
    /// `-V` or `--version`: print the version and exit 0.
    Version,
}

/// The envelope sender the caller asked for with `-f`/`-r`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderArg {
    /// No `-f`: use `user@domain` of the real uid.
    Default,
    /// `-f '<>'` or `-f ''`: the null sender `MAIL FROM:<>`.
    Null,
    /// A checked address; without a domain it is qualified with the configured domain later.
    Address(Mailbox),
}

/// A parsed command line. Pure data: resolve it with `config` and `identity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// What to do.
    pub mode: Mode,
    /// `-t`: take recipients from the header too (union with `recipients`).
    pub extract_recipients: bool,
    /// `-i`/`-oi`: a lone `.` line does not end the input. Without it, it does (sendmail).
    pub ignore_dots: bool,
    /// `-f`/`-r`.
    pub sender: SenderArg,
    /// `-F NAME`: full name for a `From:` the shim adds. Checked: no control characters.
    pub full_name: Option<String>,
    /// `-s HOST`.
    pub server: Option<String>,
    /// `-p PORT`.
    pub port: Option<u16>,
    /// `-T SECS`; `Some(Duration::ZERO)` is mini_sendmail's `-T0`, "no per-step timeout".
    pub timeout: Option<Duration>,
    /// `-v`: SMTP dialogue on stderr.
    pub verbose: bool,
    /// Recipient arguments as given (each may be an address list, `Name <a@x>, b@y`).
    pub recipients: Vec<String>,
    /// Options that were accepted and ignored, for `-v` diagnostics.
    pub ignored: Vec<String>,
}

impl Default for Invocation {
    fn default() -> Self {
        Invocation {
            mode: Mode::Deliver,
            extract_recipients: false,
            ignore_dots: false,
            sender: SenderArg::Default,
            full_name: None,
            server: None,
            port: None,
            timeout: None,
            verbose: false,
            recipients: Vec::new(),
            ignored: Vec::new(),
        }
    }
}

/// Why a refused option is refused: the one-line explanation in the usage error.
const REFUSED_WHY: &str = "config, log-file and debug options are refused because they are an \
     attack path through PHP mail()'s 5th parameter (CVE-2016-10033); remove it";

/// Parses sendmail's argv. `argv0` picks `mailq` mode; `args` excludes argv0.
pub fn parse(argv0: &OsStr, args: &[OsString]) -> Result<Invocation> {
    let mut inv = Invocation::default();
    if program_name(argv0) == "mailq" {
        inv.mode = Mode::ListQueue;
    }
    let mut i = 0;
    let mut options_done = false;
    while i < args.len() {
        let arg = text(&args[i], "argument")?;
        i += 1;
        if arg == "--" {
            // Never an address; after a recipient it is harmless, so skip it there too.
            options_done = true;
            continue;
        }
        if options_done {
            push_recipient(&mut inv, arg);
            continue;
        }
        if arg == "--version" {
            inv.mode = Mode::Version;
            continue;
        }
        if !arg.starts_with('-') || arg == "-" {
            // The first recipient ends the options (mini_sendmail, BSD getopt).
            options_done = true;
            push_recipient(&mut inv, arg);
            // Catch `sendmail a@x -i`: an option after a recipient is a mistake, not a recipient.
            if let Some(late) = args[i..]
                .iter()
                .filter_map(|a| a.to_str())
                .take_while(|a| *a != "--")
                .find(|a| a.starts_with('-') && a.len() > 1)
            {
                return Err(Error::Usage(format!(
                    "option {late:?} comes after the recipient {arg:?}: put all options before \
                     the recipients (or put -- before recipients that start with '-')"
                )));
            }
            continue;
        }
        if arg.starts_with("--") {
            return Err(Error::Usage(format!(
                "unknown option {arg:?}: only --version and -- are long options; see \
                 man baseos-sendmail (or the flag table in the README)"
            )));
        }
        parse_group(&mut inv, arg, args, &mut i)?;
    }
    Ok(inv)
}

/// Parses one `-xyz` argument; `i` points at the next argument (for values given apart).
fn parse_group(inv: &mut Invocation, arg: &str, args: &[OsString], i: &mut usize) -> Result<()> {
    let body = &arg[1..];
    for (pos, flag) in body.char_indices() {
        let rest = &body[pos + flag.len_utf8()..];
        match flag {
            't' => inv.extract_recipients = true,
            'i' => inv.ignore_dots = true,
            'v' => inv.verbose = true,
            // Sendmail no-op flags without a value: -U (initial submission), -m (me too),
            // -n (no aliasing), -G (gateway). Keep reading the group.
            'U' | 'm' | 'n' | 'G' => inv.ignored.push(format!("-{flag}")),
            'V' if rest.is_empty() => {
                inv.mode = Mode::Version;
            }
            'b' => {
                let mode = value(rest, args, i, "-b", "a mode such as -bm")?;
                inv.mode = match mode.as_str() {
                    "m" => Mode::Deliver,
                    "s" => Mode::SmtpSession,
                    "p" => Mode::ListQueue,
                    other => {
                        return Err(Error::Usage(format!(
                            "unsupported mode -b{}: this sendmail only does -bm (deliver \
                             a mail from stdin, the default), -bs (SMTP on stdin) and -bp \
                             (there is no queue)",
                            other.escape_debug()
                        )))
                    }
                };
                return Ok(());
            }
            'o' => {
                // -oi / -o i: the -i of old; every other -oX is a sendmail config option that
                // means nothing here (-oem, -odb, -odi, -oQ...).
                let opt = value(rest, args, i, "-o", "an option letter such as -oi")?;
                if opt == "i" {
                    inv.ignore_dots = true;
                } else {
                    inv.ignored.push(format!("-o{opt}"));
                }
                return Ok(());
            }
            'f' | 'r' => {
                let addr = value(rest, args, i, &format!("-{flag}"), "an address")?;
                inv.sender = parse_sender(&addr, flag)?;
                return Ok(());
            }
            'F' => {
                let name = value(rest, args, i, "-F", "a full name")?;
                if name.chars().any(char::is_control) {
                    return Err(Error::Usage(
                        "-F name contains a control character (CR, LF, tab...): give the \
                         name on one line"
                            .into(),
                    ));
                }
                inv.full_name = Some(name);
                return Ok(());
            }
            's' => {
                let host = value(rest, args, i, "-s", "a server host")?;
                if host.is_empty() || host.chars().any(|c| c.is_control() || c.is_whitespace()) {
                    return Err(Error::Usage(format!(
                        "-s {host:?} is not a host name or IP address: give e.g. -s127.0.0.1"
                    )));
                }
                inv.server = Some(host);
                return Ok(());
            }
            'p' => {
                let port = value(rest, args, i, "-p", "a port number")?;
                match port.parse::<u16>() {
                    Ok(p) if p > 0 => inv.port = Some(p),
                    _ => {
                        return Err(Error::Usage(format!(
                            "-p {port:?} is not a TCP port: give a number from 1 to 65535, \
                             e.g. -p25"
                        )))
                    }
                }
                return Ok(());
            }
            'T' => {
                let secs = value(rest, args, i, "-T", "a number of seconds")?;
                match secs.parse::<u64>() {
                    Ok(s) if s <= 86_400 => inv.timeout = Some(Duration::from_secs(s)),
                    _ => {
                        return Err(Error::Usage(format!(
                            "-T {secs:?} is not a timeout: give whole seconds from 0 to 86400, \
                             e.g. -T60"
                        )))
                    }
                }
                return Ok(());
            }
            // Sendmail options with a value that mean nothing to a relay-only submitter:
            // -A (submit.cf), -B (body type), -h (hop count), -L (syslog tag),
            // -N (DSN notify), -R (DSN return), -V<envid> (DSN envelope id).
            'A' | 'B' | 'h' | 'L' | 'N' | 'R' | 'V' => {
                let v = value(rest, args, i, &format!("-{flag}"), "a value")?;
                inv.ignored.push(format!("-{flag}{v}"));
                return Ok(());
            }
            'C' | 'X' | 'O' | 'D' | 'd' => {
                return Err(Error::Usage(format!(
                    "option -{flag} refused: {REFUSED_WHY}"
                )));
            }
            other => {
                return Err(Error::Usage(format!(
                    "unknown option -{}: this sendmail knows -t -i -oi -f -r -F -s -p -T \
                     -v -V -bm -bs -bp and ignores -o* -U -m -n -G -A -B -h -L -N -R; remove \
                     it",
                    other.escape_debug()
                )));
            }
        }
    }
    Ok(())
}

/// The value of an option: the rest of its argument, else the next argument.
fn value(rest: &str, args: &[OsString], i: &mut usize, flag: &str, what: &str) -> Result<String> {
    if !rest.is_empty() {
        return Ok(rest.to_owned());
    }
    let Some(next) = args.get(*i) else {
        return Err(Error::Usage(format!("{flag} needs {what} after it")));
    };
    *i += 1;
    Ok(text(next, flag)?.to_owned())
}

/// Checks `-f`/`-r`: control characters, spaces or a malformed address are refused (64),
/// `<>` and the empty string are the null sender.
fn parse_sender(raw: &str, flag: char) -> Result<SenderArg> {
    if raw.chars().any(|c| c.is_control()) {
        return Err(Error::Usage(format!(
            "-{flag} address {raw:?} contains a control character (CR, LF...): refused, as it \
             could inject SMTP commands; give a plain address such as -f user@example.com"
        )));
    }
    if raw.chars().any(char::is_whitespace) {
        return Err(Error::Usage(format!(
            "-{flag} address {raw:?} contains a space: give only the address, such as \
             -f user@example.com (no display name)"
        )));
    }
    let inner = match raw.strip_prefix('<') {
        Some(r) => match r.strip_suffix('>') {
            Some(inner) => inner,
            None => {
                return Err(Error::Usage(format!(
                    "-{flag} address {raw:?} has '<' without '>': give -f user@example.com"
                )))
            }
        },
        None => raw,
    };
    if inner.is_empty() {
        return Ok(SenderArg::Null);
    }
    match address::parse_addr_spec(inner) {
        Ok(addr) => Ok(SenderArg::Address(addr)),
        Err(why) => Err(Error::Usage(format!(
            "-{flag} address {raw:?} is malformed ({why}): give an address such as \
             -f user@example.com"
        ))),
    }
}

fn push_recipient(inv: &mut Invocation, arg: &str) {
    inv.recipients.push(arg.to_owned());
}

/// Arguments must be UTF-8: addresses and host names on the wire are text.
fn text<'a>(arg: &'a OsStr, what: &str) -> Result<&'a str> {
    arg.to_str().ok_or_else(|| {
        Error::Usage(format!(
            "{what} {:?} is not valid UTF-8: give addresses and values as UTF-8 text",
            arg.to_string_lossy()
        ))
    })
}

/// The file name part of argv0 (`/usr/bin/mailq` → `mailq`).
fn program_name(argv0: &OsStr) -> &str {
    let s = argv0.to_str().unwrap_or("");
    s.rsplit('/').next().unwrap_or(s)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Invocation> {
        let v: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(OsStr::new("/usr/sbin/sendmail"), &v)
    }

    fn addr(local: &str, domain: Option<&str>) -> SenderArg {
        SenderArg::Address(Mailbox {
            local: local.into(),
            domain: domain.map(str::to_owned),
        })
    }

    fn usage(args: &[&str]) -> String {
        match p(args) {
            Err(e @ Error::Usage(_)) => {
                assert_eq!(e.exit_code(), 64);
                e.to_string()
            }
            other => panic!("{args:?}: expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn php_default_t_i() {
        let inv = p(&["-t", "-i"]).unwrap();
        assert!(inv.extract_recipients && inv.ignore_dots);
        assert_eq!(inv.mode, Mode::Deliver);
        assert!(inv.recipients.is_empty());
        assert_eq!(inv.sender, SenderArg::Default);
    }

    #[test]
    fn grouped_flags() {
        let inv = p(&["-ti"]).unwrap();
        assert!(inv.extract_recipients && inv.ignore_dots && !inv.verbose);
        let inv = p(&["-tiv", "a@x"]).unwrap();
        assert!(inv.verbose);
        assert_eq!(inv.recipients, ["a@x"]);
    }

    #[test]
    fn oi_and_o_i() {
        assert!(p(&["-oi"]).unwrap().ignore_dots);
        assert!(p(&["-o", "i"]).unwrap().ignore_dots);
        assert!(!p(&["-oem"]).unwrap().ignore_dots);
    }

    #[test]
    fn bare_o_eats_next_argument() {
        // msmtp/getopt: `-o X` is `-oX`, so "em" is not a recipient.
        let inv = p(&["-o", "em", "a@x"]).unwrap();
        assert_eq!(inv.recipients, ["a@x"]);
        assert_eq!(inv.ignored, ["-oem"]);
    }

    #[test]
    fn edge_36_f_both_forms() {
        assert_eq!(p(&["-fa@x.org"]).unwrap().sender, addr("a", Some("x.org")));
        assert_eq!(
            p(&["-f", "a@x.org"]).unwrap().sender,
            addr("a", Some("x.org"))
        );
        assert_eq!(
            p(&["-r", "a@x.org"]).unwrap().sender,
            addr("a", Some("x.org"))
        );
        assert_eq!(p(&["-ra@x.org"]).unwrap().sender, addr("a", Some("x.org")));
        assert_eq!(
            p(&["-f", "<a@x.org>"]).unwrap().sender,
            addr("a", Some("x.org"))
        );
    }

    #[test]
    fn edge_35_null_sender() {
        assert_eq!(p(&["-f<>"]).unwrap().sender, SenderArg::Null);
        assert_eq!(p(&["-f", "<>"]).unwrap().sender, SenderArg::Null);
        assert_eq!(p(&["-f", ""]).unwrap().sender, SenderArg::Null);
    }

    #[test]
    fn edge_37_f_without_at_is_kept_for_qualifying() {
        assert_eq!(
            p(&["-f", "webmaster"]).unwrap().sender,
            addr("webmaster", None)
        );
    }

    #[test]
    fn edge_34_f_with_crlf_refused() {
        let msg = usage(&["-fa@b>\r\nRCPT TO:<evil@x"]);
        assert!(msg.contains("control character"), "{msg}");
        let msg = usage(&["-f", "a@b\n"]);
        assert!(msg.contains("control character"), "{msg}");
        usage(&["-f", "a@b\0"]);
    }

    #[test]
    fn f_with_spaces_refused() {
        let msg = usage(&["-f", "John <j@x.org>"]);
        assert!(msg.contains("space"), "{msg}");
        usage(&["-f", "a@x.org "]);
        usage(&["-f", "a\t@x"]);
    }

    #[test]
    fn f_malformed_refused() {
        for bad in ["a@", "@x", "a@@x", "a@x..org", "<a@x", "a,b@x", "a@x>"] {
            let msg = usage(&["-f", bad]);
            assert!(msg.contains("-f"), "{bad}: {msg}");
        }
    }

    #[test]
    fn f_missing_value() {
        let msg = usage(&["-f"]);
        assert!(msg.contains("needs an address"), "{msg}");
    }

    #[test]
    fn full_name() {
        assert_eq!(
            p(&["-F", "Jo Doe"]).unwrap().full_name.as_deref(),
            Some("Jo Doe")
        );
        assert_eq!(p(&["-FJo"]).unwrap().full_name.as_deref(), Some("Jo"));
        let msg = usage(&["-F", "Jo\r\nBcc: x@y"]);
        assert!(msg.contains("control character"), "{msg}");
    }

    #[test]
    fn server_port_timeout() {
        let inv = p(&["-s10.0.0.1", "-p", "2525", "-T5"]).unwrap();
        assert_eq!(inv.server.as_deref(), Some("10.0.0.1"));
        assert_eq!(inv.port, Some(2525));
        assert_eq!(inv.timeout, Some(Duration::from_secs(5)));
        let inv = p(&["-s", "mx", "-p25", "-T", "0"]).unwrap();
        assert_eq!(inv.server.as_deref(), Some("mx"));
        assert_eq!(inv.timeout, Some(Duration::ZERO));
        usage(&["-p", "0"]);
        usage(&["-p", "65536"]);
        usage(&["-psmtp"]);
        usage(&["-T", "-1"]);
        usage(&["-T", "soon"]);
        usage(&["-s", "a b"]);
    }

    #[test]
    fn version_and_modes() {
        assert_eq!(p(&["-V"]).unwrap().mode, Mode::Version);
        assert_eq!(p(&["--version"]).unwrap().mode, Mode::Version);
        // -V with a value is sendmail's DSN envelope id: ignored, not --version.
        assert_eq!(p(&["-Vabc", "a@x"]).unwrap().mode, Mode::Deliver);
        assert_eq!(p(&["-bm", "a@x"]).unwrap().mode, Mode::Deliver);
        assert_eq!(p(&["-bs"]).unwrap().mode, Mode::SmtpSession);
        assert_eq!(p(&["-b", "s"]).unwrap().mode, Mode::SmtpSession);
        assert_eq!(p(&["-bp"]).unwrap().mode, Mode::ListQueue);
        let mailq = parse(OsStr::new("/usr/bin/mailq"), &[]).unwrap();
        assert_eq!(mailq.mode, Mode::ListQueue);
        let mailq = parse(OsStr::new("mailq"), &[]).unwrap();
        assert_eq!(mailq.mode, Mode::ListQueue);
    }

    #[test]
    fn edge_41_bs_is_an_smtp_session_without_recipients() {
        // Symfony/Swiftmailer: `sendmail -bs`, also with -i or -oi around it.
        for argv in [&["-bs"][..], &["-bs", "-i"], &["-oi", "-bs"]] {
            let inv = p(argv).unwrap();
            assert_eq!(inv.mode, Mode::SmtpSession, "{argv:?}");
            assert!(inv.recipients.is_empty());
        }
    }

    #[test]
    fn unknown_b_mode_refused() {
        for m in ["-bv", "-bd", "-bt", "-bi", "-bx", "-b"] {
            let msg = usage(&[m]);
            assert!(msg.contains("-b"), "{m}: {msg}");
        }
        assert!(usage(&["-bv"]).contains("unsupported mode -bv"));
    }

    #[test]
    fn edge_38_noop_flags_ignored() {
        let inv = p(&[
            "-oem", "-odi", "-odb", "-U", "-v", "-bm", "-m", "-n", "-G", "a@x",
        ])
        .unwrap();
        assert_eq!(inv.recipients, ["a@x"]);
        assert!(inv.verbose);
        assert_eq!(inv.mode, Mode::Deliver);
        let inv = p(&[
            "-Afoo", "-B", "8BITMIME", "-h", "17", "-Ltag", "-N", "never", "-Rhdrs", "a@x",
        ])
        .unwrap();
        assert_eq!(inv.recipients, ["a@x"]);
        assert_eq!(inv.ignored.len(), 6);
    }

    #[test]
    fn edge_42_refused_file_options() {
        for (args, flag) in [
            (&["-X/var/www/shell.php"][..], "-X"),
            (&["-X", "/tmp/log"], "-X"),
            (&["-C", "/tmp/evil.cf"], "-C"),
            (&["-C/tmp/evil.cf"], "-C"),
            (&["-O", "QueueDirectory=/tmp"], "-O"),
            (&["-DFOO"], "-D"),
            (&["-d0"], "-d"),
            (&["-tX/tmp/x"], "-X"),
        ] {
            let msg = usage(args);
            assert!(
                msg.contains(flag) && msg.contains("5th parameter"),
                "{args:?}: {msg}"
            );
        }
    }

    #[test]
    fn unknown_options_refused() {
        assert!(usage(&["-q"]).contains("unknown option -q"));
        assert!(usage(&["--config=/x"]).contains("unknown option \"--config=/x\""));
    }

    #[test]
    fn double_dash_ends_options() {
        let inv = p(&["-i", "-f", "a@x", "--", "-weird@x", "b@y"]).unwrap();
        assert_eq!(inv.recipients, ["-weird@x", "b@y"]);
        // lettre: sendmail -i -f FROM -- RCPT
        let inv = p(&["-i", "-f", "from@x", "--", "to@y"]).unwrap();
        assert_eq!(inv.recipients, ["to@y"]);
    }

    #[test]
    fn option_after_recipient_refused_loudly() {
        let msg = usage(&["a@x", "-i"]);
        assert!(msg.contains("-i") && msg.contains("before"), "{msg}");
        // but after -- they are recipients
        assert_eq!(
            p(&["a@x", "--", "-b@y"]).unwrap().recipients,
            ["a@x", "-b@y"]
        );
    }

    #[test]
    fn edge_39_t_with_argv_recipients() {
        let inv = p(&["-t", "-i", "extra@x"]).unwrap();
        assert!(inv.extract_recipients);
        assert_eq!(inv.recipients, ["extra@x"]);
    }

    #[test]
    fn recipients_keep_lists_for_later_parsing() {
        let inv = p(&["Jo <a@x>, b@y", "c@z"]).unwrap();
        assert_eq!(inv.recipients, ["Jo <a@x>, b@y", "c@z"]);
    }

    #[test]
    fn fuzz_no_panic() {
        // Random argv from sendmail's alphabet: every outcome is Ok or a usage error (64).
        const ALPHABET: &[&str] = &[
            "-", "--", "t", "i", "o", "f", "r", "F", "s", "p", "T", "b", "V", "v", "C", "X", "A",
            "e", "é", "<>", "@", "a@x", "1", "\r\n", " ", "m", "s", "p", "0", "\0",
        ];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let argc = (next() % 5) as usize;
            let argv: Vec<OsString> = (0..argc)
                .map(|_| {
                    let parts = 1 + (next() % 4) as usize;
                    let s: String = (0..parts)
                        .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                        .collect();
                    OsString::from(s)
                })
                .collect();
            if let Err(e) = parse(OsStr::new("sendmail"), &argv) {
                assert_eq!(e.exit_code(), 64, "{argv:?}: {e}");
                assert!(!e.to_string().contains('\n'), "one line: {e}");
            }
        }
    }

    #[test]
    fn non_utf8_argument_is_usage_error() {
        use std::os::unix::ffi::OsStringExt;
        let v = vec![OsString::from_vec(vec![b'a', 0xff, b'@', b'x'])];
        let err = parse(OsStr::new("sendmail"), &v).unwrap_err();
        assert_eq!(err.exit_code(), 64);
    }
}
