//! Our own small SMTP client (DESIGN.md, "Speed").
//!
//! Why not lettre's `SmtpTransport`: it waits for the 221 to QUIT without half-closing, and a
//! real Exim then polls the connection for up to 200 ms before answering: ~207 ms per mail.
//! This client sets `TCP_NODELAY`, writes the whole dot-stuffed message in one write, sends
//! QUIT and half-closes (`shutdown(SHUT_WR)`) at once, and reads the 221 only best-effort.
//!
//! The core works on bytes: [`ReplyParser`], [`Extensions`], [`dot_stuff`] and the dialogue
//! ([`Session`]) run over the [`Transport`] trait, which tests implement in memory. The socket
//! edge ([`TcpTransport`], [`submit`]) adds name handling without NSS, timeouts, the overall
//! deadline and the retry of refused connections and 421 greetings.
//!
//! Nothing is ever sent twice: retries happen only before MAIL FROM.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::submission::{Message, Settings};

/// Longest reply line we accept (RFC 5321 says 512; be generous).
const MAX_REPLY_LINE: usize = 4096;
/// Most lines in one multiline reply.
const MAX_REPLY_LINES: usize = 200;
/// How long we wait for the 221 after QUIT at most: the mail is already accepted then.
const QUIT_WAIT: Duration = Duration::from_secs(5);
/// First retry delay after a refused connection or a 421 greeting; doubled up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Advice when the server refuses to talk to us at all.
const NO_HELLO: &str = "nothing was delivered: check the server's log and its ACL for this host";
/// Timers fire a little early or late: a timeout this close to the deadline is the deadline's.
const TIMER_SLACK: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------------

/// One SMTP reply: a three-digit code and its text lines (without the code and separator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The reply code, 200..=599.
    pub code: u16,
    /// The text of each line, control characters replaced by `?`.
    pub lines: Vec<String>,
}

impl Reply {
    /// 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }
    /// 4xx.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }
    /// 5xx.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }
}

impl fmt::Display for Reply {
    /// `550 first line second line`, on one line, for error messages: Exim wraps a long
    /// reply text into continuation lines (at ": " and spaces), so the lines are joined with
    /// a space to give the sentence back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        for line in self.lines.iter().filter(|l| !l.is_empty()) {
            write!(f, " {line}")?;
        }
        Ok(())
    }
}

/// Assembles replies from lines, checking their syntax (RFC 5321 4.2).
#[derive(Debug, Default)]
pub struct ReplyParser {
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyParser {
    /// A parser waiting for the first line of a reply.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one line (with or without its CRLF / LF). Returns the reply when this was its
    /// last line; an error text describing the garbled line otherwise.
    pub fn feed_line(&mut self, raw: &[u8]) -> Result<Option<Reply>, String> {
        let line = raw
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(raw);
        let garbled = || format!("garbled reply line \"{}\"", printable(line, 80));
        if line.len() > MAX_REPLY_LINE {
            return Err(format!(
                "reply line of {} octets (longer than {MAX_REPLY_LINE})",
                line.len()
            ));
        }
        if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
            return Err(garbled());
        }
        let code = u16::from(line[0] - b'0') * 100
            + u16::from(line[1] - b'0') * 10
            + u16::from(line[2] - b'0');
        if !(200..600).contains(&code) {
            return Err(garbled());
        }
        let (last, text) = match line.get(3) {
            None => (true, &line[3..]),
            Some(b' ') => (true, &line[4..]),
            Some(b'-') => (false, &line[4..]),
            Some(_) => return Err(garbled()),
        };
        if let Some(first) = self.code {
            if first != code {
                return Err(format!(
                    "multiline reply changes its code from {first} to {code}: \"{}\"",
                    printable(line, 80)
                ));
            }
        }
        self.code = Some(code);
        self.lines.push(printable(text, MAX_REPLY_LINE));
        if self.lines.len() > MAX_REPLY_LINES {
            return Err(format!("reply of more than {MAX_REPLY_LINES} lines"));
        }
        if last {
            self.code = None;
            Ok(Some(Reply {
                code,
                lines: std::mem::take(&mut self.lines),
            }))
        } else {
            Ok(None)
        }
    }
}

/// `bytes` as text for messages: invalid UTF-8 and control characters become `?`, cut at
/// `max` characters (with `...`).
fn printable(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > max {
        out.push_str("...");
    }
    out
}

/// What the server offers in its EHLO reply (the ones we use).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    /// `8BITMIME`.
    pub eight_bit_mime: bool,
    /// `SMTPUTF8`.
    pub smtputf8: bool,
    /// `SIZE` was offered; `Some(0)` = no fixed limit.
    pub size: Option<u64>,
    /// `PIPELINING`.
    pub pipelining: bool,
}

impl Extensions {
    /// Reads the extension lines of an EHLO reply (the first line is the greeting text).
    pub fn from_ehlo(reply: &Reply) -> Self {
        let mut ext = Self::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "8BITMIME" => ext.eight_bit_mime = true,
                "SMTPUTF8" => ext.smtputf8 = true,
                "PIPELINING" => ext.pipelining = true,
                "SIZE" => ext.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                _ => {}
            }
        }
        ext
    }
}

// ---------------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------------

/// The DATA payload for the wire: every line ends in CRLF (a lone LF or CR, which shim-core
/// should already have removed, becomes CRLF too: no `<LF>.<CR><LF>` smuggling), a line
/// starting with `.` gets a second `.`, and the terminating `.` line is appended.
pub fn dot_stuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 512 + 8);
    let mut rest = data;
    while !rest.is_empty() {
        // `rest` starts a line here.
        if rest[0] == b'.' {
            out.push(b'.');
        }
        match rest.iter().position(|&b| b == b'\r' || b == b'\n') {
            None => {
                out.extend_from_slice(rest);
                out.extend_from_slice(b"\r\n");
                rest = &[];
            }
            Some(end) => {
                out.extend_from_slice(&rest[..end]);
                out.extend_from_slice(b"\r\n");
                let skip = if rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[end + skip..];
            }
        }
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Refuses an envelope address that could break the command line it goes into.
fn check_address(what: &str, addr: &str) -> Result<(), Error> {
    if addr.chars().any(|c| c.is_control() || c == '<' || c == '>') {
        return Err(Error::Usage(format!(
            "{what} address \"{}\" contains a control character or angle bracket; \
             give a plain address such as user@example.com",
            printable(addr.as_bytes(), 100)
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Transport and the dialogue
// ---------------------------------------------------------------------------------------------

/// What the dialogue needs from a connection. [`TcpTransport`] is the real one.
pub trait Transport {
    /// Reads some bytes, giving up at `until` (None: wait forever). Ok(0) = connection closed.
    fn read_until(&mut self, buf: &mut [u8], until: Option<Instant>) -> io::Result<usize>;
    /// Writes all of `data`, giving up at `until`.
    fn write_until(&mut self, data: &[u8], until: Option<Instant>) -> io::Result<()>;
    /// Half-closes: no more data from us (`shutdown(SHUT_WR)`).
    fn shutdown_write(&mut self) -> io::Result<()>;
}

/// The failure of one submission, with what the relay (`-bs`) needs to answer its client.
#[derive(Debug)]
pub struct Failure {
    /// The error, with its exit code and message.
    pub error: Error,
    /// The server's reply that caused it, if any.
    pub reply: Option<Reply>,
    /// The final `.` had been sent: the server may have the mail.
    pub after_dot: bool,
}

impl Failure {
    /// A failure before anything reached the server (no reply, nothing sent).
    pub fn from_error(error: Error) -> Self {
        fail(error)
    }
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        f.error
    }
}

fn fail(error: Error) -> Failure {
    Failure {
        error,
        reply: None,
        after_dot: false,
    }
}

/// The dialogue of one connection: reads replies, writes commands, logs with `-v`.
pub struct Session<'a, T: Transport> {
    transport: T,
    /// `server:port` for messages.
    peer: String,
    step_timeout: Option<Duration>,
    deadline: Option<Instant>,
    verbose: Option<&'a mut dyn Write>,
    buf: Vec<u8>,
    start: usize,
    /// The kind of the last read failure (EOF counts as `UnexpectedEof`).
    last_read_error: Option<io::ErrorKind>,
}

impl<'a, T: Transport> Session<'a, T> {
    /// A session on an open connection. `step_timeout` bounds each read and write,
    /// `deadline` the whole submission; `verbose` receives the dialogue (`-v`).
    pub fn new(
        transport: T,
        peer: String,
        step_timeout: Option<Duration>,
        deadline: Option<Instant>,
        verbose: Option<&'a mut dyn Write>,
    ) -> Self {
        Self {
            transport,
            peer,
            step_timeout,
            deadline,
            verbose,
            buf: Vec::with_capacity(1024),
            start: 0,
            last_read_error: None,
        }
    }

    fn step_end(&self) -> Option<Instant> {
        let step = self.step_timeout.map(|t| Instant::now() + t);
        match (step, self.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn log(&mut self, prefix: &str, text: &str) {
        if let Some(w) = self.verbose.as_mut() {
            // The dialogue log is best-effort: a closed stderr must not fail the mail.
            let _ = writeln!(w, "{prefix}{text}");
        }
    }

    /// Explains an I/O error of `step` as an exit-69 error.
    fn io_error(&self, step: &str, e: &io::Error, after_dot: bool) -> Failure {
        let what = match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                // Which limit ran out: the overall deadline when it is (about) reached now.
                let deadline_hit = self
                    .deadline
                    .is_some_and(|d| d.saturating_duration_since(Instant::now()) < TIMER_SLACK);
                match self.step_timeout {
                    Some(t) if !deadline_hit => format!(
                        "no answer within the {} s step timeout (-T or `timeout`)",
                        t.as_secs_f64()
                    ),
                    _ => "timed out: the overall deadline (`deadline` in the config) ran out"
                        .to_string(),
                }
            }
            io::ErrorKind::UnexpectedEof => "the server closed the connection".to_string(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {
                "the server closed the connection".to_string()
            }
            _ => e.to_string(),
        };
        let advice = if after_dot {
            "the mail may or may not have been accepted; it was NOT sent again: check the \
             server's log before resending"
        } else {
            "nothing was delivered; check that the mail server is running and try again"
        };
        Failure {
            error: Error::Unavailable(format!(
                "SMTP server {} at {step}: {what}; {advice}",
                self.peer
            )),
            reply: None,
            after_dot,
        }
    }

    /// Reads one whole reply.
    pub fn read_reply(&mut self, step: &str) -> Result<Reply, Failure> {
        self.read_reply_until(step, self.step_end(), false)
    }

    fn read_reply_until(
        &mut self,
        step: &str,
        until: Option<Instant>,
        after_dot: bool,
    ) -> Result<Reply, Failure> {
        let mut parser = ReplyParser::new();
        loop {
            // One line from the buffer, reading more when needed.
            let line_end = loop {
                if let Some(pos) = self.buf[self.start..].iter().position(|&b| b == b'\n') {
                    break self.start + pos + 1;
                }
                if self.buf.len() - self.start > MAX_REPLY_LINE + 2 {
                    return Err(self.protocol(step, "a reply line without end", after_dot));
                }
                if self.start > 0 {
                    self.buf.drain(..self.start);
                    self.start = 0;
                }
                let old = self.buf.len();
                self.buf.resize(old + 4096, 0);
                let n = match self.transport.read_until(&mut self.buf[old..], until) {
                    Ok(n) => n,
                    Err(e) => {
                        self.buf.truncate(old);
                        self.last_read_error = Some(e.kind());
                        return Err(self.io_error(step, &e, after_dot));
                    }
                };
                self.buf.truncate(old + n);
                if n == 0 {
                    let e = io::Error::from(io::ErrorKind::UnexpectedEof);
                    self.last_read_error = Some(e.kind());
                    return Err(self.io_error(step, &e, after_dot));
                }
            };
            let line = self.buf[self.start..line_end].to_vec();
            self.start = line_end;
            if self.verbose.is_some() {
                let text = printable(line.trim_ascii_end(), MAX_REPLY_LINE);
                self.log("<<< ", &text);
            }
            match parser.feed_line(&line) {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
                Err(what) => return Err(self.protocol(step, &what, after_dot)),
            }
        }
    }

    fn protocol(&self, step: &str, what: &str, after_dot: bool) -> Failure {
        let advice = if after_dot {
            "the mail may or may not have been accepted; it was NOT sent again"
        } else {
            "nothing was delivered; check that -s/-p point at an SMTP server"
        };
        Failure {
            error: Error::Protocol(format!(
                "SMTP server {} at {step}: {what}; {advice}",
                self.peer
            )),
            reply: None,
            after_dot,
        }
    }

    /// Writes raw bytes within one step.
    fn write(&mut self, step: &str, data: &[u8], after_dot: bool) -> Result<(), Failure> {
        let until = self.step_end();
        self.transport
            .write_until(data, until)
            .map_err(|e| self.io_error(step, &e, after_dot))
    }

    /// Sends one command line (CRLF added) and reads its reply.
    pub fn command(&mut self, step: &str, line: &str) -> Result<Reply, Failure> {
        self.log(">>> ", line);
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.write(step, &bytes, false)?;
        self.read_reply(step)
    }

    /// Ends the session politely after a failure: RSET (when a transaction is open), then QUIT.
    /// Best-effort: errors here are ignored, the first failure is what counts.
    fn abort(&mut self, rset: bool) {
        if rset {
            // The outcome is decided: wait for this reply no longer than for the 221.
            self.log(">>> ", "RSET");
            let until = Instant::now() + QUIT_WAIT.min(self.step_timeout.unwrap_or(QUIT_WAIT));
            if self
                .transport
                .write_until(b"RSET\r\n", Some(until))
                .is_err()
                || self.read_reply_until("RSET", Some(until), false).is_err()
            {
                return;
            }
        }
        self.quit();
    }

    /// QUIT, half-close at once, read the 221 best-effort (bounded by [`QUIT_WAIT`]).
    pub fn quit(&mut self) {
        self.log(">>> ", "QUIT");
        let until = Instant::now() + QUIT_WAIT.min(self.step_timeout.unwrap_or(QUIT_WAIT));
        if self
            .transport
            .write_until(b"QUIT\r\n", Some(until))
            .is_err()
        {
            return;
        }
        let _ = self.transport.shutdown_write();
        let _ = self.read_reply_until("QUIT", Some(until), true);
    }

    /// An error for an unwanted reply at `step`; `exit` picks the kind for 5xx.
    fn refused(
        &mut self,
        step: &str,
        reply: Reply,
        permanent: fn(String) -> Error,
        advice5: &str,
        rset: bool,
    ) -> Failure {
        let error = if reply.is_permanent() {
            permanent(format!(
                "SMTP server {} refused {step}: {reply}; {advice5}",
                self.peer
            ))
        } else if reply.is_transient() {
            // Exim's own texts often end in "try again later" already: don't say it twice.
            let later = if reply.to_string().to_ascii_lowercase().contains("try again") {
                ""
            } else {
                ", try again later"
            };
            Error::Unavailable(format!(
                "SMTP server {} temporarily refused {step}: {reply}; nothing was delivered{later}",
                self.peer
            ))
        } else {
            Error::Protocol(format!(
                "SMTP server {} answered {step} with unexpected {reply}; nothing was delivered",
                self.peer
            ))
        };
        self.abort(rset);
        Failure {
            error,
            reply: Some(reply),
            after_dot: false,
        }
    }

    /// Everything after a 220 greeting: EHLO, MAIL, RCPT..., DATA, the data, QUIT.
    /// Returns the server's reply to the final `.`.
    pub fn transaction(&mut self, msg: &Message, helo_name: &str) -> Result<Reply, Failure> {
        let env = &msg.envelope;
        check_address("sender", &env.sender).map_err(fail)?;
        if env.recipients.is_empty() {
            return Err(fail(Error::Usage(
                "no recipients: give them as arguments or use -t to read To:/Cc:/Bcc:".into(),
            )));
        }
        for rcpt in &env.recipients {
            check_address("recipient", rcpt).map_err(fail)?;
        }

        // EHLO, or HELO when the server refuses EHLO with 5xx.
        let helo_name = if helo_name.is_empty() {
            "localhost"
        } else {
            helo_name
        };
        let ehlo = self.command("EHLO", &format!("EHLO {helo_name}"))?;
        let ext = if ehlo.is_positive() {
            Extensions::from_ehlo(&ehlo)
        } else if ehlo.is_permanent() {
            let helo = self.command("HELO", &format!("HELO {helo_name}"))?;
            if !helo.is_positive() {
                return Err(self.refused("HELO", helo, Error::Unavailable, NO_HELLO, false));
            }
            Extensions::default()
        } else {
            return Err(self.refused("EHLO", ehlo, Error::Unavailable, NO_HELLO, false));
        };

        if msg.smtputf8 && !ext.smtputf8 {
            self.quit();
            return Err(fail(Error::Data(format!(
                "an envelope address is not ASCII, and SMTP server {} does not offer SMTPUTF8; \
                 nothing was sent: use an ASCII address (punycode domain) or enable \
                 smtputf8_advertise_hosts in Exim",
                self.peer
            ))));
        }
        let stuffed = dot_stuff(&msg.data);
        if let Some(limit) = ext.size.filter(|&l| l > 0) {
            if stuffed.len() as u64 > limit {
                self.quit();
                return Err(fail(Error::Data(format!(
                    "the mail is {} octets but SMTP server {} accepts at most {limit} \
                     (SIZE); nothing was sent: make the mail smaller",
                    stuffed.len(),
                    self.peer
                ))));
            }
        }

        let mut mail = format!("MAIL FROM:<{}>", env.sender);
        if msg.eight_bit && ext.eight_bit_mime {
            mail.push_str(" BODY=8BITMIME");
        }
        if msg.smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        if ext.size.is_some() {
            mail.push_str(&format!(" SIZE={}", stuffed.len()));
        }
        let reply = self.command("MAIL FROM", &mail)?;
        if reply.code != 250 {
            let step = format!("the sender <{}> (MAIL FROM)", env.sender);
            return Err(self.refused(
                &step,
                reply,
                Error::Data,
                "nothing was delivered: use a sender address the server accepts (-f)",
                true,
            ));
        }

        for rcpt in &env.recipients {
            let reply = self.command("RCPT TO", &format!("RCPT TO:<{rcpt}>"))?;
            if reply.code != 250 && reply.code != 251 {
                let step = format!("recipient <{rcpt}> (RCPT TO)");
                return Err(self.refused(
                    &step,
                    reply,
                    Error::RecipientRefused,
                    "the whole mail was NOT sent to anyone: fix or remove that address",
                    true,
                ));
            }
        }

        let reply = self.command("DATA", "DATA")?;
        if reply.code != 354 {
            return Err(self.refused("DATA", reply, Error::Data, "nothing was delivered", true));
        }

        self.log(
            ">>> ",
            &format!("[message: {} octets, dot-stuffed]", stuffed.len()),
        );
        self.log(">>> ", ".");
        // From here on the server may have the mail: never send it again.
        let until = self.step_end();
        if let Err(e) = self.transport.write_until(&stuffed, until) {
            return Err(self.io_error("sending the message (DATA)", &e, true));
        }
        let until = self.step_end();
        let reply = self.read_reply_until("the end of data (final .)", until, true)?;
        if reply.code != 250 {
            let error = if reply.is_permanent() {
                Error::Data(format!(
                    "SMTP server {} refused the message after the final '.': {reply}; \
                     it was not delivered: fix what the server names and resend",
                    self.peer
                ))
            } else if reply.is_transient() {
                Error::Unavailable(format!(
                    "SMTP server {} temporarily refused the message after the final '.': \
                     {reply}; it was not delivered: try again later",
                    self.peer
                ))
            } else {
                Error::Protocol(format!(
                    "SMTP server {} answered the final '.' with unexpected {reply}; the mail \
                     may or may not have been accepted; it was NOT sent again",
                    self.peer
                ))
            };
            self.quit();
            return Err(Failure {
                error,
                reply: Some(reply),
                after_dot: true,
            });
        }
        self.quit();
        Ok(reply)
    }
}

// ---------------------------------------------------------------------------------------------
// The socket edge
// ---------------------------------------------------------------------------------------------

/// A TCP connection with per-call timeouts.
pub struct TcpTransport {
    stream: TcpStream,
}

fn remaining(until: Option<Instant>) -> io::Result<Option<Duration>> {
    match until {
        None => Ok(None),
        Some(t) => {
            let left = t.saturating_duration_since(Instant::now());
            if left.is_zero() {
                Err(io::Error::from(io::ErrorKind::TimedOut))
            } else {
                Ok(Some(left))
            }
        }
    }
}

impl TcpTransport {
    /// Connects within `timeout`, with `TCP_NODELAY`.
    pub fn connect(addr: SocketAddr, timeout: Option<Duration>) -> io::Result<Self> {
        let stream = match timeout {
            Some(t) => TcpStream::connect_timeout(&addr, t)?,
            None => TcpStream::connect(addr)?,
        };
        stream.set_nodelay(true)?;
        Ok(Self { stream })
    }
}

impl Transport for TcpTransport {
    fn read_until(&mut self, buf: &mut [u8], until: Option<Instant>) -> io::Result<usize> {
        self.stream.set_read_timeout(remaining(until)?)?;
        loop {
            match self.stream.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }

    fn write_until(&mut self, mut data: &[u8], until: Option<Instant>) -> io::Result<()> {
        while !data.is_empty() {
            self.stream.set_write_timeout(remaining(until)?)?;
            match self.stream.write(data) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }
}

/// The server's address without NSS: an IP literal (`127.0.0.1`, `::1`, `[::1]`) or
/// `localhost` (127.0.0.1). Any other name is refused: inside a chroot there is no
/// reliable resolver, and the shim never loads NSS.
pub fn resolve(server: &str) -> Result<IpAddr, Error> {
    let s = server.trim();
    if s.eq_ignore_ascii_case("localhost") || s.is_empty() {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let literal = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    literal.parse().map_err(|_| {
        Error::Usage(format!(
            "server \"{}\" is not an IP address; this sendmail does not look up names \
             (no DNS or /etc/hosts inside the chroot): give an IP literal such as 127.0.0.1 \
             with -s or `server` in the config",
            printable(server.as_bytes(), 100)
        ))
    })
}

/// `Duration::ZERO` means "no limit" (as `-T0` does in mini_sendmail).
fn limit(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// Submits `msg` per `settings`: connects (retrying refused connections and 421 greetings
/// for `retry_for`), then runs the [`Session::transaction`]. `verbose` gets the dialogue.
/// Returns the server's reply to the final `.`.
pub fn submit(
    msg: &Message,
    settings: &Settings,
    mut verbose: Option<&mut dyn Write>,
) -> Result<Reply, Failure> {
    let ip = resolve(&settings.server).map_err(fail)?;
    let addr = SocketAddr::new(ip, settings.port);
    let peer = if ip.is_ipv6() {
        format!("[{ip}]:{}", settings.port)
    } else {
        format!("{ip}:{}", settings.port)
    };
    let start = Instant::now();
    let deadline = limit(settings.deadline).map(|d| start + d);
    let step_timeout = limit(settings.timeout);
    let retry_until = start + settings.retry_for;
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 0u32;

    loop {
        attempt += 1;
        let give_up = |what: String| {
            fail(Error::Unavailable(format!(
                "SMTP server {peer}: {what}{}; nothing was delivered: check that the mail \
                 server is running (and -s/-p), then try again",
                if attempt > 1 {
                    format!(
                        " (after {attempt} attempts in {:.1} s)",
                        start.elapsed().as_secs_f64()
                    )
                } else {
                    String::new()
                }
            )))
        };
        // How long we may wait before the next attempt, if one is allowed at all.
        let may_retry = |backoff: Duration| {
            let next = Instant::now() + backoff;
            next < retry_until && deadline.is_none_or(|d| next < d)
        };

        let connect_timeout = match (step_timeout, deadline) {
            (Some(t), Some(d)) => Some(t.min(d.saturating_duration_since(Instant::now()))),
            (t, d) => t.or(d.map(|d| d.saturating_duration_since(Instant::now()))),
        };
        if connect_timeout.is_some_and(|t| t.is_zero()) {
            return Err(give_up("timed out (overall deadline)".into()));
        }
        if let Some(w) = verbose.as_mut() {
            let _ = writeln!(w, "--- connecting to {peer}");
        }
        let transport = match TcpTransport::connect(addr, connect_timeout) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused && may_retry(backoff) => {
                if let Some(w) = verbose.as_mut() {
                    let _ = writeln!(w, "--- connection refused; retrying in {backoff:?}");
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            Err(e) => {
                let what = match e.kind() {
                    io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                        "connect timed out".to_string()
                    }
                    _ => format!("cannot connect: {e}"),
                };
                return Err(give_up(what));
            }
        };
        let mut session = Session::new(
            transport,
            peer.clone(),
            step_timeout,
            deadline,
            verbose.as_mut().map(|w| &mut **w as &mut dyn Write),
        );
        let greeting = match session.read_reply("the greeting") {
            Ok(greeting) => greeting,
            // Closed before the greeting (a daemon stopping or over its connection limit):
            // nothing was sent yet, so trying again is safe.
            Err(_)
                if matches!(
                    session.last_read_error,
                    Some(
                        io::ErrorKind::UnexpectedEof
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::ConnectionAborted
                    )
                ) && may_retry(backoff) =>
            {
                drop(session);
                if let Some(w) = verbose.as_mut() {
                    let _ = writeln!(w, "--- closed before the greeting; retrying in {backoff:?}");
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            Err(failure) => return Err(failure),
        };
        if greeting.code == 220 {
            return session.transaction(msg, &settings.helo_name);
        }
        if greeting.code == 421 && may_retry(backoff) {
            session.quit();
            drop(session);
            if let Some(w) = verbose.as_mut() {
                let _ = writeln!(w, "--- 421 greeting; retrying in {backoff:?}");
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        }
        return Err(session.refused(
            "the connection (greeting)",
            greeting,
            Error::Unavailable,
            "nothing was delivered: check the server's log",
            false,
        ));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::submission::Envelope;

    fn parse_all(text: &[u8]) -> Result<Vec<Reply>, String> {
        let mut p = ReplyParser::new();
        let mut out = Vec::new();
        for line in text.split_inclusive(|&b| b == b'\n') {
            if let Some(r) = p.feed_line(line)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    #[test]
    fn parses_single_and_multiline_replies() {
        let r = parse_all(b"220 mx ESMTP\r\n250-mx hello\r\n250-SIZE 52428800\r\n250-8BITMIME\r\n250 HELP\r\n354\n").unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].code, 220);
        assert_eq!(r[0].lines, vec!["mx ESMTP"]);
        assert_eq!(r[1].code, 250);
        assert_eq!(r[1].lines.len(), 4);
        assert_eq!(r[1].to_string(), "250 mx hello SIZE 52428800 8BITMIME HELP");
        assert_eq!(r[2].code, 354);
        let ext = Extensions::from_ehlo(&r[1]);
        assert_eq!(
            ext,
            Extensions {
                eight_bit_mime: true,
                smtputf8: false,
                size: Some(52_428_800),
                pipelining: false
            }
        );
    }

    #[test]
    fn garbled_replies_are_errors() {
        for bad in [
            &b"hello\r\n"[..],
            b"25\r\n",
            b"2500 x\r\n",
            b"250x\r\n",
            b"650 x\r\n",
            b"099 x\r\n",
            b"250-a\r\n251 b\r\n",
            b"\x00\x01\x02\r\n",
        ] {
            assert!(
                parse_all(bad).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
        let long = [b"250 ".as_slice(), &[b'x'; 5000], b"\r\n"].concat();
        assert!(parse_all(&long).is_err());
    }

    #[test]
    fn control_characters_in_replies_are_neutralised() {
        let r = parse_all(b"550 bad\x1b[31m user\r\n").unwrap();
        assert_eq!(r[0].lines[0], "bad?[31m user");
    }

    #[test]
    fn dot_stuffing() {
        assert_eq!(
            dot_stuff(b"a\r\n.b\r\n..\r\n.\r\n"),
            b"a\r\n..b\r\n...\r\n..\r\n.\r\n"
        );
        assert_eq!(dot_stuff(b".\r\n"), b"..\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b".\r\n");
        // Missing final CRLF is added.
        assert_eq!(dot_stuff(b"x\r\ny"), b"x\r\ny\r\n.\r\n");
        // Lone LF / CR (contract says there are none) become CRLF: no smuggling.
        assert_eq!(
            dot_stuff(b"a\n.\r\nb\r.c\r\n"),
            b"a\r\n..\r\nb\r\n..c\r\n.\r\n"
        );
        assert_eq!(
            dot_stuff(b"x\r\n\r\n.\r\nMAIL FROM:<a>\r\n"),
            b"x\r\n\r\n..\r\nMAIL FROM:<a>\r\n.\r\n"
        );
    }

    #[test]
    fn resolve_without_nss() {
        assert_eq!(
            resolve("127.0.0.1").unwrap(),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(
            resolve("localhost").unwrap(),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(resolve("[::1]").unwrap().to_string(), "::1");
        assert_eq!(resolve("::1").unwrap().to_string(), "::1");
        let e = resolve("mail.example.com").unwrap_err();
        assert_eq!(e.exit_code(), 64);
        assert!(e.to_string().contains("not an IP address"), "{e}");
    }

    /// A server script in memory: its replies are read in order, our writes are recorded.
    struct Script {
        input: Vec<u8>,
        pos: usize,
        output: Vec<u8>,
        half_closed: bool,
        /// Fail writes once output reaches this many bytes (a dropped connection).
        break_at: Option<usize>,
    }

    impl Script {
        fn new(replies: &str) -> Self {
            Self {
                input: replies.as_bytes().to_vec(),
                pos: 0,
                output: Vec::new(),
                half_closed: false,
                break_at: None,
            }
        }
    }

    impl Transport for &mut Script {
        fn read_until(&mut self, buf: &mut [u8], _: Option<Instant>) -> io::Result<usize> {
            // Hand out one byte at a time: the parser must cope with fragments.
            if self.pos == self.input.len() {
                return Ok(0);
            }
            buf[0] = self.input[self.pos];
            self.pos += 1;
            Ok(1)
        }
        fn write_until(&mut self, data: &[u8], _: Option<Instant>) -> io::Result<()> {
            assert!(!self.half_closed, "write after half-close");
            if let Some(limit) = self.break_at {
                if self.output.len() + data.len() > limit {
                    return Err(io::Error::from(io::ErrorKind::BrokenPipe));
                }
            }
            self.output.extend_from_slice(data);
            Ok(())
        }
        fn shutdown_write(&mut self) -> io::Result<()> {
            self.half_closed = true;
            Ok(())
        }
    }

    fn message(data: &[u8], eight_bit: bool) -> Message {
        Message {
            envelope: Envelope {
                sender: "alice@test.example".into(),
                recipients: vec!["bob@test.example".into(), "carol@test.example".into()],
            },
            data: data.to_vec(),
            eight_bit,
            smtputf8: false,
        }
    }

    fn run(script: &mut Script, msg: &Message) -> Result<Reply, Failure> {
        let mut session = Session::new(script, "127.0.0.1:25".into(), None, None, None);
        let greeting = session.read_reply("greeting")?;
        assert_eq!(greeting.code, 220);
        session.transaction(msg, "host.test")
    }

    const EHLO_8BIT: &str =
        "220 mx ESMTP\r\n250-mx\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250 HELP\r\n";

    #[test]
    fn full_dialogue_on_the_wire() {
        let mut s = Script::new(&format!(
            "{EHLO_8BIT}250 OK\r\n250 Accepted\r\n250 Accepted\r\n354 go\r\n250 OK id=1\r\n221 bye\r\n"
        ));
        let reply = run(&mut s, &message(b"Subject: \xc3\xa9\r\n\r\n.hi\r\n", true)).unwrap();
        assert_eq!(reply.code, 250);
        assert!(s.half_closed);
        assert_eq!(
            String::from_utf8(s.output.clone()).unwrap(),
            "EHLO host.test\r\nMAIL FROM:<alice@test.example> BODY=8BITMIME SIZE=24\r\n\
             RCPT TO:<bob@test.example>\r\nRCPT TO:<carol@test.example>\r\nDATA\r\n\
             Subject: \u{e9}\r\n\r\n..hi\r\n.\r\nQUIT\r\n"
        );
    }

    #[test]
    fn seven_bit_mail_asks_for_no_body_type_and_null_sender() {
        let mut s = Script::new(&format!(
            "{EHLO_8BIT}250 OK\r\n250 OK\r\n250 OK\r\n354 go\r\n250 OK\r\n"
        ));
        let mut msg = message(b"x\r\n", false);
        msg.envelope.sender.clear();
        // No 221 at all: still a success.
        run(&mut s, &msg).unwrap();
        assert!(String::from_utf8_lossy(&s.output).contains("MAIL FROM:<> SIZE=6\r\n"));
    }

    #[test]
    fn helo_fallback_when_ehlo_refused() {
        let mut s = Script::new(
            "220 old\r\n500 what\r\n250 hi\r\n250 OK\r\n250 OK\r\n250 OK\r\n354 go\r\n250 OK\r\n221 bye\r\n",
        );
        run(&mut s, &message(b"\xff\r\n", true)).unwrap();
        let out = String::from_utf8_lossy(&s.output);
        assert!(
            out.starts_with(
                "EHLO host.test\r\nHELO host.test\r\nMAIL FROM:<alice@test.example>\r\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn refused_hello_is_69_naming_the_reply() {
        let mut s = Script::new("220 x\r\n550 no EHLO for you\r\n550 nor HELO\r\n221 bye\r\n");
        let f = run(&mut s, &message(b"x\r\n", false)).unwrap_err();
        assert_eq!(f.error.exit_code(), 69);
        let text = f.error.to_string();
        assert!(
            text.contains("refused HELO: 550 nor HELO; nothing was delivered"),
            "{text}"
        );
        assert!(!String::from_utf8_lossy(&s.output).contains("MAIL"));
    }

    #[test]
    fn refused_recipient_aborts_with_rset_and_quit() {
        let mut s = Script::new(&format!(
            "{EHLO_8BIT}250 OK\r\n250 OK\r\n550 5.1.1 no such user\r\n250 reset\r\n221 bye\r\n"
        ));
        let f = run(&mut s, &message(b"x\r\n", false)).unwrap_err();
        assert_eq!(f.error.exit_code(), 67);
        let text = f.error.to_string();
        assert!(
            text.contains("<carol@test.example>") && text.contains("550 5.1.1 no such user"),
            "{text}"
        );
        assert!(String::from_utf8_lossy(&s.output)
            .ends_with("RCPT TO:<carol@test.example>\r\nRSET\r\nQUIT\r\n"));
        assert!(!String::from_utf8_lossy(&s.output).contains("DATA"));
    }

    #[test]
    fn exit_codes_per_step() {
        // (replies after EHLO, expected exit code)
        let cases = [
            ("550 sender no\r\n250 r\r\n221 b\r\n", 65),
            ("451 later\r\n250 r\r\n221 b\r\n", 69),
            ("250 OK\r\n450 greylisted\r\n250 r\r\n221 b\r\n", 69),
            (
                "250 OK\r\n250 OK\r\n250 OK\r\n554 no data\r\n250 r\r\n221 b\r\n",
                65,
            ),
            (
                "250 OK\r\n250 OK\r\n250 OK\r\n451 no data\r\n250 r\r\n221 b\r\n",
                69,
            ),
            (
                "250 OK\r\n250 OK\r\n250 OK\r\n354 go\r\n552 too big\r\n221 b\r\n",
                65,
            ),
            (
                "250 OK\r\n250 OK\r\n250 OK\r\n354 go\r\n452 full\r\n221 b\r\n",
                69,
            ),
            ("250 OK\r\n250 OK\r\n250 OK\r\n354 go\r\n", 69),
            ("250 OK\r\n250 OK\r\n250 OK\r\n354 go\r\nfoo\r\n", 76),
            ("250 OK\r\n250 OK\r\n250 OK\r\n354 go\r\n354 again\r\n", 76),
            ("250 OK\r\n", 69),
        ];
        for (replies, code) in cases {
            let mut s = Script::new(&format!("{EHLO_8BIT}{replies}"));
            let f = run(&mut s, &message(b"x\r\n", false)).unwrap_err();
            assert_eq!(f.error.exit_code(), code, "{replies:?}: {}", f.error);
            let sent = String::from_utf8_lossy(&s.output);
            assert!(
                sent.matches("\r\n.\r\n").count() <= 1,
                "message sent twice: {sent}"
            );
        }
    }

    #[test]
    fn smtputf8_needed_but_not_offered() {
        let mut s = Script::new(&format!("{EHLO_8BIT}221 bye\r\n"));
        let mut msg = message(b"x\r\n", false);
        msg.smtputf8 = true;
        let f = run(&mut s, &msg).unwrap_err();
        assert_eq!(f.error.exit_code(), 65);
        assert!(f.error.to_string().contains("SMTPUTF8"));
        assert!(!String::from_utf8_lossy(&s.output).contains("MAIL FROM"));
    }

    #[test]
    fn smtputf8_offered_is_requested() {
        let mut s = Script::new(
            "220 x\r\n250-x\r\n250 SMTPUTF8\r\n250 OK\r\n250 OK\r\n250 OK\r\n354 go\r\n250 OK\r\n",
        );
        let mut msg = message(b"x\r\n", false);
        msg.smtputf8 = true;
        msg.envelope.sender = "jos\u{e9}@test.example".into();
        run(&mut s, &msg).unwrap();
        assert!(String::from_utf8_lossy(&s.output)
            .contains("MAIL FROM:<jos\u{e9}@test.example> SMTPUTF8\r\n"));
    }

    #[test]
    fn too_large_for_server_size_is_refused_before_mail() {
        let mut s = Script::new(&format!("{EHLO_8BIT}221 bye\r\n"));
        let f = run(&mut s, &message(&[b'x'; 2000], false)).unwrap_err();
        assert_eq!(f.error.exit_code(), 65);
        assert!(!String::from_utf8_lossy(&s.output).contains("MAIL FROM"));
    }

    #[test]
    fn dropped_connection_while_sending_data() {
        let mut s = Script::new(&format!(
            "{EHLO_8BIT}250 OK\r\n250 OK\r\n250 OK\r\n354 go\r\n"
        ));
        s.break_at = Some(300);
        let f = run(&mut s, &message(&[b'x'; 500], false)).unwrap_err();
        assert_eq!(f.error.exit_code(), 69);
        assert!(f.after_dot);
        assert!(
            f.error.to_string().contains("NOT sent again"),
            "{}",
            f.error
        );
    }

    #[test]
    fn injection_in_addresses_is_refused() {
        let mut s = Script::new(EHLO_8BIT);
        let mut msg = message(b"x\r\n", false);
        msg.envelope.recipients = vec!["a@b>\r\nRCPT TO:<c@d".into()];
        let f = run(&mut s, &msg).unwrap_err();
        assert_eq!(f.error.exit_code(), 64);
        assert!(s.output.is_empty());
    }

    #[test]
    fn verbose_log_shows_the_dialogue() {
        let mut s = Script::new(&format!(
            "{EHLO_8BIT}250 OK\r\n250 OK\r\n250 OK\r\n354 go\r\n250 OK\r\n221 bye\r\n"
        ));
        let mut log = Vec::new();
        {
            let mut session = Session::new(
                &mut s,
                "p".into(),
                None,
                None,
                Some(&mut log as &mut dyn Write),
            );
            session.read_reply("greeting").unwrap();
            session.transaction(&message(b"x\r\n", false), "h").unwrap();
        }
        let log = String::from_utf8(log).unwrap();
        assert!(
            log.starts_with("<<< 220 mx ESMTP\n>>> EHLO h\n<<< 250-mx\n"),
            "{log}"
        );
        assert!(
            log.contains(">>> RCPT TO:<carol@test.example>\n<<< 250 OK\n"),
            "{log}"
        );
        assert!(log.ends_with(">>> QUIT\n<<< 221 bye\n"), "{log}");
    }
}
