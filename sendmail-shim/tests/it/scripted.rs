//! A scripted SMTP server for the faults a real Exim will not produce on demand: 421 greetings,
//! 4xx/5xx at each step, a dropped connection mid-DATA, a stall. Plain threads, one per
//! connection; it records every command and every complete message (final `.` received), so a
//! test can assert that nothing was sent twice.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What the server answers. Each reply is the full text without the final CRLF
/// (multiline replies use `\r\n` inside).
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub(crate) greeting: String,
    /// The first N connections get `421` as greeting and are closed.
    pub(crate) busy_first: usize,
    /// The first N connections are closed at once, without a greeting.
    pub(crate) close_first: usize,
    pub(crate) ehlo: String,
    pub(crate) mail: String,
    pub(crate) rcpt: String,
    /// Replies for particular recipients (address inside the brackets), overriding `rcpt`.
    pub(crate) rcpt_for: Vec<(String, String)>,
    pub(crate) data: String,
    pub(crate) dot: String,
    /// Do not answer this step ("GREETING", "EHLO", "MAIL", "RCPT", "DATA", "DOT", "QUIT").
    pub(crate) stall_on: Option<&'static str>,
    /// Close the connection after this many octets of message data.
    pub(crate) drop_after: Option<usize>,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            greeting: "220 scripted.test ESMTP".into(),
            busy_first: 0,
            close_first: 0,
            ehlo: "250-scripted.test\r\n250-SIZE 52428800\r\n250-8BITMIME\r\n250 HELP".into(),
            mail: "250 OK".into(),
            rcpt: "250 Accepted".into(),
            rcpt_for: Vec::new(),
            data: "354 Enter message".into(),
            dot: "250 OK id=scripted".into(),
            stall_on: None,
            drop_after: None,
        }
    }
}

/// What the server saw.
#[derive(Default, Debug, Clone)]
pub(crate) struct Seen {
    /// Connections accepted.
    pub(crate) connections: usize,
    /// Every command line, in order, over all connections.
    pub(crate) commands: Vec<String>,
    /// Complete messages (the final `.` arrived), raw as on the wire, without the `.` line.
    pub(crate) messages: Vec<Vec<u8>>,
}

pub(crate) struct Scripted {
    pub(crate) port: u16,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
}

impl Scripted {
    /// Listens on a fresh loopback port at once.
    pub(crate) fn start(plan: Plan) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind scripted server");
        let port = listener.local_addr().expect("addr").port();
        Self::serve(listener, plan, port)
    }

    /// Starts listening on `port` only after `delay` (a server that comes up late).
    pub(crate) fn start_late(plan: Plan, port: u16, delay: Duration) -> Scripted {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        thread::spawn(move || {
            thread::sleep(delay);
            if st.load(Ordering::SeqCst) {
                return;
            }
            let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind late server");
            accept_loop(listener, plan, s, st);
        });
        Scripted { port, seen, stop }
    }

    fn serve(listener: TcpListener, plan: Plan, port: u16) -> Scripted {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        thread::spawn(move || accept_loop(listener, plan, s, st));
        Scripted { port, seen, stop }
    }

    /// A snapshot of what the server saw so far.
    pub(crate) fn seen(&self) -> Seen {
        self.seen.lock().expect("lock").clone()
    }

    /// Waits a little for connection threads to record what they got, then snapshots.
    pub(crate) fn settled(&self) -> Seen {
        thread::sleep(Duration::from_millis(100));
        self.seen()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn accept_loop(listener: TcpListener, plan: Plan, seen: Arc<Mutex<Seen>>, stop: Arc<AtomicBool>) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let n = {
            let mut s = seen.lock().expect("lock");
            s.connections += 1;
            s.connections
        };
        let (plan, seen, stop) = (plan.clone(), seen.clone(), stop.clone());
        thread::spawn(move || {
            let _ = connection(stream, &plan, n, &seen, &stop);
        });
    }
}

fn stall(stop: &AtomicBool) {
    let start = Instant::now();
    while !stop.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(120) {
        thread::sleep(Duration::from_millis(20));
    }
}

fn connection(
    stream: TcpStream,
    plan: &Plan,
    n: usize,
    seen: &Mutex<Seen>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut input = BufReader::new(stream);
    let reply = |out: &mut TcpStream, text: &str| out.write_all(format!("{text}\r\n").as_bytes());
    if n <= plan.close_first {
        return Ok(());
    }
    if n <= plan.busy_first {
        reply(&mut out, "421 scripted.test busy, try later")?;
        return Ok(());
    }
    if plan.stall_on == Some("GREETING") {
        stall(stop);
        return Ok(());
    }
    reply(&mut out, &plan.greeting)?;
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        seen.lock().expect("lock").commands.push(cmd.clone());
        let verb = cmd
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        if plan.stall_on == Some(verb.as_str()) {
            stall(stop);
            return Ok(());
        }
        match verb.as_str() {
            "EHLO" => reply(&mut out, &plan.ehlo)?,
            "HELO" => reply(&mut out, "250 scripted.test")?,
            "MAIL" => reply(&mut out, &plan.mail)?,
            "RCPT" => {
                let addr = cmd
                    .split_once('<')
                    .and_then(|(_, r)| r.split_once('>'))
                    .map(|(a, _)| a.to_string())
                    .unwrap_or_default();
                let text = plan
                    .rcpt_for
                    .iter()
                    .find(|(a, _)| *a == addr)
                    .map_or(plan.rcpt.as_str(), |(_, r)| r.as_str());
                reply(&mut out, text)?;
            }
            "DATA" => {
                reply(&mut out, &plan.data)?;
                if !plan.data.starts_with("354") {
                    continue;
                }
                let mut message = Vec::new();
                loop {
                    let mut l = Vec::new();
                    if input.read_until(b'\n', &mut l)? == 0 {
                        return Ok(());
                    }
                    if l == b".\r\n" {
                        break;
                    }
                    message.extend_from_slice(&l);
                    if plan.drop_after.is_some_and(|limit| message.len() >= limit) {
                        // Drop the connection hard, mid-DATA.
                        let _ = out.shutdown(Shutdown::Both);
                        return Ok(());
                    }
                }
                seen.lock().expect("lock").messages.push(message);
                if plan.stall_on == Some("DOT") {
                    stall(stop);
                    return Ok(());
                }
                reply(&mut out, &plan.dot)?;
            }
            "RSET" => reply(&mut out, "250 Reset OK")?,
            "NOOP" => reply(&mut out, "250 OK")?,
            "QUIT" => {
                reply(&mut out, "221 scripted.test closing connection")?;
                // Drain until the client closes (it half-closed after QUIT).
                let mut rest = Vec::new();
                let _ = input.read_to_end(&mut rest);
                return Ok(());
            }
            _ => reply(&mut out, "500 unrecognized command")?,
        }
    }
}
