//! `-bs`: an SMTP session on stdin/stdout (the default of Symfony Mailer, Swiftmailer, Laravel
//! and Nextcloud), relayed to the real server.
//!
//! The shim acts as a small SMTP server on stdio: greeting, EHLO/HELO, MAIL, RCPT, DATA, RSET,
//! NOOP, QUIT. Each message collected by DATA goes through the same preparation as a mail read
//! by `sendmail -t` (origin header, Bcc removed, NUL/line/size checks: the caller's `deliver`
//! closure) and is submitted with our SMTP client, one connection per message. The server's
//! answer to that submission becomes our answer to the final `.`, so a refusal upstream (even of
//! a recipient) reaches the client as a refused message, never as a silent loss.
//!
//! Symfony's `SmtpTransport` over `ProcessStream` sends `HELO`/`EHLO`, `MAIL FROM:<a>`,
//! `RCPT TO:<b>`..., `DATA`, the dot-stuffed message, `.`, and `QUIT` when it stops; it may
//! send `NOOP` (ping) and `RSET` (after an error). Swiftmailer sends `EHLO` and falls back to
//! `HELO`.

use std::io::{BufRead, Read, Write};

use crate::error::Error;
use crate::smtp::{Failure, Reply};
use crate::submission::Envelope;

/// Longest command line we read (RFC 5321: 512; allow SMTPUTF8 and long parameters).
const MAX_COMMAND_LINE: u64 = 4096;
/// Most recipients per message.
const MAX_RECIPIENTS: usize = 1000;
/// Longest reply text we send.
const MAX_REPLY_TEXT: usize = 400;

/// How the relay presents itself.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Name in the greeting and the EHLO reply.
    pub hostname: String,
    /// Largest message accepted (octets, as collected): advertised as `SIZE`.
    pub max_size: u64,
}

/// Runs the session until QUIT or the end of input. `deliver` prepares and submits one
/// message (envelope from MAIL/RCPT, raw data as the client sent it, un-dot-stuffed) and
/// returns the server's reply to the final `.`.
///
/// Failures of single messages are answered over SMTP and do not end the session; only a
/// failure to read the input (74) or write the output (74) is an error here.
pub fn serve<R: BufRead, W: Write>(
    mut input: R,
    mut output: W,
    opts: &RelayOptions,
    mut deliver: impl FnMut(Envelope, Vec<u8>) -> Result<Reply, Failure>,
) -> Result<(), Error> {
    let out = |output: &mut W, text: &str| -> Result<(), Error> {
        output
            .write_all(text.as_bytes())
            .and_then(|()| output.flush())
            .map_err(|e| Error::Input(format!("-bs: cannot write the SMTP reply to stdout: {e}")))
    };
    out(
        &mut output,
        &format!(
            "220 {} ESMTP BaseOS sendmail (-bs relay)\r\n",
            opts.hostname
        ),
    )?;

    let mut sender: Option<String> = None;
    let mut recipients: Vec<String> = Vec::new();
    let mut line = Vec::with_capacity(512);
    loop {
        line.clear();
        let n = (&mut input)
            .take(MAX_COMMAND_LINE)
            .read_until(b'\n', &mut line)
            .map_err(|e| {
                Error::Input(format!(
                    "-bs: reading the SMTP session from stdin failed: {e}"
                ))
            })?;
        if n == 0 {
            // The client went away without QUIT: nothing is pending, that is not an error.
            return Ok(());
        }
        if line.last() != Some(&b'\n') && n as u64 == MAX_COMMAND_LINE {
            // Skip the rest of the over-long line, a bounded piece at a time.
            loop {
                line.clear();
                let n = (&mut input)
                    .take(MAX_COMMAND_LINE)
                    .read_until(b'\n', &mut line)
                    .map_err(|e| Error::Input(format!("-bs: reading stdin failed: {e}")))?;
                if n == 0 || line.last() == Some(&b'\n') {
                    break;
                }
            }
            out(&mut output, "500 5.5.2 line too long\r\n")?;
            continue;
        }
        let text = String::from_utf8_lossy(line.trim_ascii_end()).into_owned();
        let (verb, arg) = match text.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim()),
            None => (text.to_ascii_uppercase(), ""),
        };
        let reply = match verb.as_str() {
            "EHLO" => {
                sender = None;
                recipients.clear();
                format!(
                    "250-{}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-SIZE {}\r\n250 HELP\r\n",
                    opts.hostname, opts.max_size
                )
            }
            "HELO" => {
                sender = None;
                recipients.clear();
                format!("250 {}\r\n", opts.hostname)
            }
            "MAIL" => {
                if sender.is_some() {
                    "503 5.5.1 MAIL already given; send RSET first\r\n".to_string()
                } else {
                    match path_arg(arg, "FROM:") {
                        Ok(addr) => {
                            sender = Some(addr);
                            "250 2.1.0 OK\r\n".to_string()
                        }
                        Err(why) => format!("501 5.5.4 {why}\r\n"),
                    }
                }
            }
            "RCPT" => {
                if sender.is_none() {
                    "503 5.5.1 send MAIL first\r\n".to_string()
                } else if recipients.len() >= MAX_RECIPIENTS {
                    "452 4.5.3 too many recipients\r\n".to_string()
                } else {
                    match path_arg(arg, "TO:") {
                        Ok(addr) if addr.is_empty() => {
                            "501 5.1.3 empty recipient address\r\n".to_string()
                        }
                        Ok(addr) => {
                            if !recipients.contains(&addr) {
                                recipients.push(addr);
                            }
                            "250 2.1.5 OK\r\n".to_string()
                        }
                        Err(why) => format!("501 5.5.4 {why}\r\n"),
                    }
                }
            }
            "DATA" => {
                if sender.is_none() || recipients.is_empty() {
                    "503 5.5.1 send MAIL and RCPT first\r\n".to_string()
                } else {
                    out(&mut output, "354 end data with <CR><LF>.<CR><LF>\r\n")?;
                    let data = read_data(&mut input, opts.max_size)?;
                    let envelope = Envelope {
                        sender: sender.take().unwrap_or_default(),
                        recipients: std::mem::take(&mut recipients),
                    };
                    match data {
                        None => format!(
                            "552 5.3.4 message larger than {} octets; it was not sent\r\n",
                            opts.max_size
                        ),
                        Some(data) => match deliver(envelope, data) {
                            Ok(reply) => format!(
                                "250 2.0.0 accepted by the mail server: {}\r\n",
                                one_line(&reply.lines.join(" / "))
                            ),
                            Err(failure) => failure_reply(&failure),
                        },
                    }
                }
            }
            "RSET" => {
                sender = None;
                recipients.clear();
                "250 2.0.0 OK\r\n".to_string()
            }
            "NOOP" => "250 2.0.0 OK\r\n".to_string(),
            "QUIT" => {
                out(&mut output, "221 2.0.0 bye\r\n")?;
                return Ok(());
            }
            "VRFY" => "252 2.1.5 cannot verify; send the mail\r\n".to_string(),
            "HELP" => "214 2.0.0 commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT\r\n".to_string(),
            "STARTTLS" | "AUTH" | "BDAT" | "ETRN" | "EXPN" | "TURN" => {
                format!("502 5.5.1 {verb} not implemented\r\n")
            }
            _ => "500 5.5.2 unknown command\r\n".to_string(),
        };
        out(&mut output, &reply)?;
    }
}

/// The address in `FROM:<a@b> PARAMS` / `TO:<a@b>` (parameters ignored; `FROM: <a>` and a
/// bare address without brackets are tolerated).
fn path_arg(arg: &str, keyword: &str) -> Result<String, String> {
    let head = arg.get(..keyword.len()).unwrap_or("");
    if !head.eq_ignore_ascii_case(keyword) {
        return Err(format!("syntax: expected {keyword}<address>"));
    }
    let rest = arg[keyword.len()..].trim_start();
    let addr = if let Some(inner) = rest.strip_prefix('<') {
        match inner.find('>') {
            Some(end) => &inner[..end],
            None => return Err("syntax: missing '>'".into()),
        }
    } else {
        rest.split_ascii_whitespace().next().unwrap_or("")
    };
    // Source routes (`<@a,@b:user@c>`) are obsolete: keep the mailbox.
    let addr = match addr.split_once(':') {
        Some((route, mailbox)) if route.starts_with('@') => mailbox,
        _ => addr,
    };
    if addr
        .chars()
        .any(|c| c.is_control() || c == '<' || c == '>' || c == ' ')
    {
        return Err("address contains a space, control character or bracket".into());
    }
    Ok(addr.to_string())
}

/// Reads DATA up to the `.` line, undoing dot-stuffing. `None` when the message exceeded
/// `max_size` (the rest is read and dropped, so the session stays in step).
fn read_data<R: BufRead>(input: &mut R, max_size: u64) -> Result<Option<Vec<u8>>, Error> {
    let mut data = Vec::with_capacity(16 * 1024);
    let mut too_big = false;
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        // Bound each read so that one endless line cannot exhaust memory.
        let n = input
            .by_ref()
            .take(max_size.saturating_add(3))
            .read_until(b'\n', &mut line)
            .map_err(|e| {
                Error::Input(format!(
                    "-bs: reading the message (DATA) from stdin failed: {e}"
                ))
            })?;
        if n == 0 {
            return Err(Error::Input(
                "-bs: stdin ended inside DATA, before the final '.' line; nothing was sent".into(),
            ));
        }
        let content = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        if content == Some(b".") {
            return Ok((!too_big).then_some(data));
        }
        let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
        if too_big || (data.len() + unstuffed.len()) as u64 > max_size {
            too_big = true;
            data = Vec::new();
            continue;
        }
        data.extend_from_slice(unstuffed);
    }
}

/// One line of reply text: control characters out, cut at [`MAX_REPLY_TEXT`].
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REPLY_TEXT)
        .collect()
}

/// Our answer to the final `.` when the message failed: the server's code when it gave one,
/// else one that fits the error; the text is our one-line explanation.
fn failure_reply(f: &Failure) -> String {
    let code = match (&f.reply, &f.error) {
        (Some(r), _) if r.is_permanent() || r.is_transient() => r.code,
        (_, Error::Unavailable(_)) => 451,
        (_, Error::Protocol(_)) => 451,
        (_, Error::Input(_)) => 451,
        (_, Error::Config(_)) => 451,
        (_, Error::RecipientRefused(_)) => 550,
        (_, Error::Data(_)) => 554,
        (_, Error::Usage(_)) => 554,
    };
    // A reply we cannot classify (3xx after the dot) is a temporary failure for the client.
    let code = if (400..600).contains(&code) {
        code
    } else {
        451
    };
    format!("{code} {}\r\n", one_line(&f.error.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn opts() -> RelayOptions {
        RelayOptions {
            hostname: "relay.test".into(),
            max_size: 1000,
        }
    }

    /// Runs a session; returns our output and what was delivered.
    fn session(
        input: &str,
        mut answer: impl FnMut(&Envelope, &[u8]) -> Result<Reply, Failure>,
    ) -> (String, Vec<(Envelope, Vec<u8>)>) {
        let mut out = Vec::new();
        let mut got = Vec::new();
        serve(input.as_bytes(), &mut out, &opts(), |env, data| {
            let r = answer(&env, &data);
            got.push((env, data));
            r
        })
        .unwrap();
        (String::from_utf8(out).unwrap(), got)
    }

    fn ok(_: &Envelope, _: &[u8]) -> Result<Reply, Failure> {
        Ok(Reply {
            code: 250,
            lines: vec!["OK id=1abc".into()],
        })
    }

    #[test]
    fn symfony_style_session() {
        let (out, got) = session(
            "HELO [127.0.0.1]\r\nMAIL FROM:<app@site.test>\r\nRCPT TO:<a@x.test>\r\n\
             RCPT TO:<b@x.test>\r\nDATA\r\nSubject: hi\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n",
            ok,
        );
        assert_eq!(
            out,
            "220 relay.test ESMTP BaseOS sendmail (-bs relay)\r\n250 relay.test\r\n\
             250 2.1.0 OK\r\n250 2.1.5 OK\r\n250 2.1.5 OK\r\n\
             354 end data with <CR><LF>.<CR><LF>\r\n250 2.0.0 accepted by the mail server: OK id=1abc\r\n221 2.0.0 bye\r\n"
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.sender, "app@site.test");
        assert_eq!(got[0].0.recipients, vec!["a@x.test", "b@x.test"]);
        assert_eq!(got[0].1, b"Subject: hi\r\n\r\n.dot\r\nbody\r\n");
    }

    #[test]
    fn ehlo_two_messages_rset_noop_and_lf_only_client() {
        let (out, got) = session(
            "EHLO me\nNOOP\nMAIL FROM:<> SIZE=10 BODY=8BITMIME\nRCPT TO:<a@x>\nRSET\n\
             MAIL FROM:<s@x>\nRCPT TO:<b@x>\nRCPT TO:<b@x>\nDATA\nhello\n.\n\
             MAIL FROM: <t@x>\nRCPT TO:c@x\nDATA\nsecond\n.\n",
            ok,
        );
        assert!(
            out.contains("250-8BITMIME\r\n250-SMTPUTF8\r\n250-SIZE 1000\r\n250 HELP\r\n"),
            "{out}"
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0.sender, "s@x");
        assert_eq!(got[0].0.recipients, vec!["b@x"], "dedup");
        assert_eq!(got[0].1, b"hello\n");
        assert_eq!(got[1].0.recipients, vec!["c@x"]);
    }

    #[test]
    fn sequence_errors_and_unknown_commands() {
        let (out, got) = session(
            "DATA\r\nRCPT TO:<a@x>\r\nMAIL TO:<a@x>\r\nMAIL FROM:<a@x>\r\nMAIL FROM:<b@x>\r\n\
             RCPT TO:<>\r\nDATA\r\nAUTH PLAIN x\r\nFOO\r\nQUIT\r\nNOOP\r\n",
            ok,
        );
        let codes: Vec<&str> = out.lines().map(|l| &l[..3]).collect();
        assert_eq!(
            codes,
            ["220", "503", "503", "501", "250", "503", "501", "503", "502", "500", "221"]
        );
        assert!(got.is_empty());
    }

    #[test]
    fn upstream_refusal_is_relayed_with_its_code() {
        let (out, _) = session(
            "HELO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<nobody@x>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n",
            |_, _| {
                Err(Failure {
                    error: Error::RecipientRefused(
                        "SMTP server refused recipient <nobody@x>".into(),
                    ),
                    reply: Some(Reply {
                        code: 550,
                        lines: vec!["unknown user".into()],
                    }),
                    after_dot: false,
                })
            },
        );
        assert!(
            out.contains("\r\n550 SMTP server refused recipient <nobody@x>\r\n221"),
            "{out}"
        );
    }

    #[test]
    fn local_refusal_and_unreachable_server() {
        let (out, _) = session(
            "HELO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\nx\r\n.\r\n\
             MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\ny\r\n.\r\nQUIT\r\n",
            |_, data| {
                let error = if data.starts_with(b"x") {
                    Error::Data("the mail contains a NUL byte".into())
                } else {
                    Error::Unavailable("connection refused".into())
                };
                Err(Failure {
                    error,
                    reply: None,
                    after_dot: false,
                })
            },
        );
        assert!(
            out.contains("554 the mail contains a NUL byte\r\n"),
            "{out}"
        );
        assert!(out.contains("451 connection refused\r\n"), "{out}");
    }

    #[test]
    fn oversized_message_is_refused_and_session_continues() {
        let big = "x".repeat(600);
        let (out, got) = session(
            &format!(
                "HELO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n{big}\r\n{big}\r\n.\r\nNOOP\r\nQUIT\r\n"
            ),
            ok,
        );
        assert!(out.contains("552 5.3.4"), "{out}");
        assert!(out.ends_with("250 2.0.0 OK\r\n221 2.0.0 bye\r\n"), "{out}");
        assert!(got.is_empty());
    }

    #[test]
    fn eof_inside_data_is_an_input_error_and_sends_nothing() {
        let mut out = Vec::new();
        let mut called = false;
        let r = serve(
            &b"HELO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\npartial"[..],
            &mut out,
            &opts(),
            |_, _| {
                called = true;
                ok(
                    &Envelope {
                        sender: String::new(),
                        recipients: vec![],
                    },
                    b"",
                )
            },
        );
        assert_eq!(r.unwrap_err().exit_code(), 74);
        assert!(!called);
    }

    #[test]
    fn over_long_command_line_is_refused_and_skipped_whole() {
        let long = format!("MAIL FROM:<{}@x>", "a".repeat(10_000));
        let (out, got) = session(&format!("HELO x\r\n{long}\r\nNOOP\r\nQUIT\r\n"), ok);
        assert!(
            out.ends_with(
                "250 relay.test\r\n500 5.5.2 line too long\r\n250 2.0.0 OK\r\n221 2.0.0 bye\r\n"
            ),
            "{out}"
        );
        assert!(got.is_empty());
    }

    #[test]
    fn eof_without_quit_is_fine() {
        let (out, got) = session("HELO x\r\n", ok);
        assert!(out.ends_with("250 relay.test\r\n"));
        assert!(got.is_empty());
    }
}
