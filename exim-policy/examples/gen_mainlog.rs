//! Writes a realistic synthetic Exim 4.96 main log of a shared-hosting server, for the
//! `report` benchmark (bench/report-bench.sh), and the true per-user counts beside it.
//!
//! `cargo run --release --example gen_mainlog -- OUT [--size-mb N] [--users N] [--seed N] [--truth FILE]`
//!
//! The mix: local submissions over 127.0.0.1 and [::1] with ident (`U=`), the policy's origin
//! lines, 1-3 recipients (sometimes many), deliveries, deferrals that resolve hundreds of
//! messages later, bounces with Exim's own `<= <>` bounce message, forged envelope senders,
//! subjects and quoted local parts containing ` U=`, HELO names with spaces, inbound mail from
//! remote hosts (no ident), SMTP connection lines, rejections of every reason (rate limit,
//! forged origin, blocked, sender domain, relay, no ident, bad ident), and a few truncated and
//! garbage lines. The truth file (TSV: user, mails, recipients, bytes, rejections) counts what
//! the generator wrote, by construction.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::io::{BufWriter, Write};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn b62(mut n: u64, width: usize, out: &mut Vec<u8>) {
    let start = out.len();
    for _ in 0..width {
        out.push(B62[(n % 62) as usize]);
        n /= 62;
    }
    out[start..].reverse();
}

#[derive(Default, Clone)]
struct Truth {
    mails: u64,
    rcpts: u64,
    bytes: u64,
    rejections: u64,
}

struct Gen {
    rng: Rng,
    users: Vec<String>,
    scripts: Vec<Vec<String>>,
    truth: Vec<Truth>,
    secs: i64,
    stamp: Vec<u8>,
    stamp_secs: i64,
    seq: u64,
    pid: u32,
    line: Vec<u8>,
}

const SUBJECTS: &[&str] = &[
    "Order confirmation #%",
    "Your password reset link",
    "Newsletter: December offers",
    "Re: invoice %",
    "Contact form: new message from website",
    "[WordPress] New comment on \\\"Hello world\\\"",
    "Ticket % U=support updated",
    "Weekly report",
];

impl Gen {
    fn stamp(&mut self) -> &[u8] {
        if self.stamp_secs != self.secs {
            let t = chrono::DateTime::from_timestamp(self.secs, 0)
                .unwrap()
                .naive_utc();
            self.stamp = t.format("%Y-%m-%d %H:%M:%S").to_string().into_bytes();
            self.stamp_secs = self.secs;
        }
        &self.stamp
    }

    /// Starts a line: stamp and pid.
    fn start(&mut self, pid: u32) {
        self.line.clear();
        let s = self.stamp().to_vec();
        self.line.extend_from_slice(&s);
        self.line.extend_from_slice(format!(" [{pid}] ").as_bytes());
    }

    fn id(&mut self) -> Vec<u8> {
        self.seq += 1;
        let mut v = Vec::with_capacity(16);
        b62(self.secs as u64, 6, &mut v);
        v.push(b'-');
        b62(self.seq, 6, &mut v);
        v.push(b'-');
        b62(self.seq.wrapping_mul(7919) % 3844, 2, &mut v);
        v
    }

    fn user(&mut self) -> usize {
        // Skewed: a few users send most of the mail.
        let r = (self.rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((r * r * r) * self.users.len() as f64) as usize % self.users.len()
    }

    fn subject(&mut self) -> String {
        let s = SUBJECTS[self.rng.below(SUBJECTS.len() as u64) as usize];
        s.replace('%', &self.rng.below(100_000).to_string())
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut out_path = None;
    let mut size_mb = 1024u64;
    let mut nusers = 2000usize;
    let mut seed = 42u64;
    let mut truth_path = None;
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--size-mb" => size_mb = val().parse().expect("--size-mb N"),
            "--users" => nusers = val().parse().expect("--users N"),
            "--seed" => seed = val().parse().expect("--seed N"),
            "--truth" => truth_path = Some(val()),
            _ if out_path.is_none() => out_path = Some(a.clone()),
            _ => {
                panic!("usage: gen_mainlog OUT [--size-mb N] [--users N] [--seed N] [--truth FILE]")
            }
        }
    }
    let out_path = out_path
        .expect("usage: gen_mainlog OUT [--size-mb N] [--users N] [--seed N] [--truth FILE]");
    let file = std::fs::File::create(&out_path).expect("create output");
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut g = Gen {
        rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
        users: (0..nusers).map(|i| format!("web{i:04}")).collect(),
        scripts: Vec::new(),
        truth: vec![Truth::default(); nusers],
        secs: 1_793_491_200, // 2026-11-01 00:00:00 UTC
        stamp: Vec::new(),
        stamp_secs: -1,
        seq: 0,
        pid: 1000,
        line: Vec::with_capacity(1024),
    };
    g.scripts = (0..nusers)
        .map(|i| {
            let n = 1 + (i % 4);
            (0..n)
                .map(|k| {
                    [
                        "wp-includes/class-phpmailer.php",
                        "contact.php",
                        "wp-cron.php",
                        "vendor/swiftmailer/lib/Transport.php",
                    ][k % 4]
                        .to_string()
                })
                .map(|s| format!("/home/web{i:04}/www/{s}"))
                .collect()
        })
        .collect();
    let limit = size_mb << 20;
    let mut written = 0u64;
    // Deferred messages that finish later: (id, user, rcpt, deliver or bounce, countdown).
    let mut pending: VecDeque<(Vec<u8>, usize, String, bool, u32)> = VecDeque::new();
    macro_rules! emit {
        () => {{
            g.line.push(b'\n');
            w.write_all(&g.line).unwrap();
            written += g.line.len() as u64;
        }};
    }
    while written < limit {
        // ~6 s of server time per 10 messages: a 1 GB log spans about two weeks.
        g.secs += (g.rng.below(1000) < 600) as i64;
        g.pid = 1000 + (g.rng.below(60_000) as u32);
        let pid = g.pid;
        let kind = g.rng.below(1000);
        let port = 32768 + g.rng.below(28_000);
        let v6 = g.rng.chance(300);
        let ip = if v6 { "[::1]" } else { "[127.0.0.1]" };
        if kind < 780 {
            // A local user's mail.
            let u = g.user();
            let name = g.users[u].clone();
            g.start(pid);
            g.line.extend_from_slice(
                format!(
                    "SMTP connection from {ip}:{port} (TCP/IP connection count = {})",
                    1 + g.rng.below(9)
                )
                .as_bytes(),
            );
            emit!();
            let id = g.id();
            let ids = String::from_utf8(id.clone()).unwrap();
            if g.rng.chance(700) {
                let sc = &g.scripts[u];
                let script = sc[g.rng.below(sc.len() as u64) as usize].clone();
                g.start(pid);
                g.line.extend_from_slice(
                    format!("{ids} BASEOS-ORIGIN U={name} uid={} user={name} script=\"{script}\" cwd=\"/home/{name}/www\"", 2000 + u).as_bytes(),
                );
                emit!();
            }
            let nrcpt = if g.rng.chance(20) {
                5 + g.rng.below(40)
            } else {
                1 + g.rng.below(3)
            };
            let rcpts: Vec<String> = (0..nrcpt)
                .map(|k| {
                    if g.rng.chance(5) {
                        format!("\"x U=evil{k}\"@example.com")
                    } else {
                        format!(
                            "user{}@example{}.com",
                            g.rng.below(100_000),
                            g.rng.below(500)
                        )
                    }
                })
                .collect();
            let sender = if g.rng.chance(20) {
                // Forged envelope sender: another user's address.
                let o = g.user();
                format!("{}@{}.example", g.users[o], g.users[o])
            } else if g.rng.chance(5) {
                format!("\"{name} U=web0000\"@{name}.example")
            } else {
                format!("{name}@{name}.example")
            };
            let helo = if g.rng.chance(10) {
                "(web U=web0001)".to_string()
            } else {
                format!("({name}.example)")
            };
            let size = 800 + g.rng.below(60_000);
            let subject = if g.rng.chance(10) {
                format!("Re: U=web0002 {}", g.subject())
            } else {
                g.subject()
            };
            g.start(pid);
            g.line.extend_from_slice(
                format!(
                    "{ids} <= {sender} H={helo} {ip}:{port} U={name} P=esmtp S={size} id={}.{}@{name}.example T=\"{subject}\" for {}",
                    g.secs,
                    g.seq,
                    rcpts.join(" ")
                )
                .as_bytes(),
            );
            if g.rng.below(200_000) == 0 {
                // A line cut short by a crash: what was written is not ended by a newline, the
                // next entry (here this message's delivery) continues on the same line. Not a
                // mail (and not in the truth).
                let cut = 30 + g.rng.below(g.line.len() as u64 - 30) as usize;
                g.line.truncate(cut);
                w.write_all(&g.line).unwrap();
                written += g.line.len() as u64;
                g.start(pid);
                g.line.extend_from_slice(format!("{ids} => {} R=dnslookup T=remote_smtp H=mx.example.com [192.0.2.9] C=\"250 OK\" DT=0s", rcpts[0]).as_bytes());
                emit!();
                continue;
            }
            emit!();
            let t = &mut g.truth[u];
            t.mails += 1;
            t.rcpts += nrcpt;
            t.bytes += size;
            let dpid = 1000 + (g.rng.below(60_000) as u32);
            let mut open = false;
            for (k, r) in rcpts.iter().enumerate() {
                g.start(dpid);
                if g.rng.chance(40) {
                    g.line.extend_from_slice(
                        format!("{ids} == {r} R=dnslookup T=remote_smtp defer (-44) H=mx.example.com [192.0.2.{}]: SMTP error from remote mail server after RCPT TO:<{r}>: 451 4.7.1 Greylisted, please try again later", g.rng.below(250)).as_bytes(),
                    );
                    emit!();
                    let bounce = g.rng.chance(150);
                    pending.push_back((
                        id.clone(),
                        u,
                        r.clone(),
                        bounce,
                        50 + g.rng.below(2000) as u32,
                    ));
                    open = true;
                    continue;
                }
                if g.rng.chance(15) {
                    g.line.extend_from_slice(format!("{ids} ** {r} R=dnslookup T=remote_smtp H=mx.example.com [192.0.2.7]: SMTP error from remote mail server after RCPT TO:<{r}>: 550 5.1.1 User unknown").as_bytes());
                    emit!();
                    continue;
                }
                let flag = if k == 0 { "=>" } else { "->" };
                g.line.extend_from_slice(
                    format!("{ids} {flag} {r} F=<{sender}> R=dnslookup T=remote_smtp H=mx{}.example.com [192.0.2.{}] X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=yes C=\"250 2.0.0 OK  {} d9443c01a7336-{:x}si{}.{} - gsmtp\" DT={}s", g.rng.below(9), g.rng.below(250), g.secs, g.rng.next(), g.rng.below(100_000_000), g.rng.below(1000), g.rng.below(3)).as_bytes(),
                );
                emit!();
            }
            if !open {
                g.start(dpid);
                g.line
                    .extend_from_slice(format!("{ids} Completed").as_bytes());
                emit!();
            }
            g.start(pid);
            g.line.extend_from_slice(
                format!("SMTP connection from ({name}.example) {ip}:{port} closed by QUIT")
                    .as_bytes(),
            );
            emit!();
        } else if kind < 900 {
            // Inbound mail from a remote host: no ident, not a user's mail.
            let id = g.id();
            let ids = String::from_utf8(id).unwrap();
            let u = g.user();
            let name = g.users[u].clone();
            let rip = format!("198.51.100.{}", g.rng.below(250));
            let subject = g.subject();
            g.start(pid);
            let text = format!(
                    "{ids} <= news@list{}.example.org H=mail.list.example.org [{rip}]:{port} P=esmtps X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=no S={} id=m{}@list.example.org T=\"{}\" for {name}@{name}.example",
                    g.rng.below(50),
                    2000 + g.rng.below(80_000),
                    g.seq,
                    subject
                );
            g.line.extend_from_slice(text.as_bytes());
            emit!();
            g.start(pid + 1);
            g.line.extend_from_slice(
                format!(
                    "{ids} => {name} <{name}@{name}.example> R=local_user T=maildir_home DT=0s"
                )
                .as_bytes(),
            );
            emit!();
            g.start(pid + 1);
            g.line
                .extend_from_slice(format!("{ids} Completed").as_bytes());
            emit!();
        } else {
            // Rejections.
            let u = g.user();
            let name = g.users[u].clone();
            g.start(pid);
            let r = g.rng.below(100);
            let text = if r < 40 {
                format!("H=({name}.example) {ip}:{port} U={name} F=<{name}@{name}.example> rejected MAIL <{name}@{name}.example>: BASEOS-LIMIT U={name} what=messages rate=101.0 limit=100 period=1h")
            } else if r < 50 {
                let id = g.id();
                format!("{} H=({name}.example) {ip}:{port} U={name} F=<{name}@{name}.example> rejected after DATA: BASEOS-FORGED U={name} claimed=\"uid=33 user=www-data\"", String::from_utf8(id).unwrap())
            } else if r < 58 {
                format!("H=({name}.example) {ip}:{port} U={name} F=<{name}@{name}.example> rejected MAIL <{name}@{name}.example>: BASEOS-BLOCKED U={name}")
            } else if r < 70 {
                format!("H=({name}.example) {ip}:{port} U={name} F=<ceo@bank.example> rejected MAIL <ceo@bank.example>: BASEOS-SENDER U={name} sender=<ceo@bank.example>")
            } else if r < 85 {
                format!("H=({name}.example) {ip}:{port} U={name} F=<{name}@{name}.example> rejected RCPT <\"a: U=evil\"@x.example>: relay not permitted")
            } else if r < 97 {
                g.line.extend_from_slice(format!("H={ip}:{port} temporarily rejected connection in \"connect\" ACL: BASEOS-NOIDENT").as_bytes());
                emit!();
                continue;
            } else {
                g.line.extend_from_slice(format!("H={ip}:{port} U=evil/x rejected connection in \"connect\" ACL: BASEOS-BADIDENT ident=\"evil/x\"").as_bytes());
                emit!();
                continue;
            };
            g.line.extend_from_slice(text.as_bytes());
            emit!();
            g.truth[u].rejections += 1;
        }
        // Finish deferred messages whose time has come.
        for p in pending.iter_mut() {
            p.4 = p.4.saturating_sub(1);
        }
        while pending.front().is_some_and(|p| p.4 == 0) {
            let (id, u, r, bounce, _) = pending.pop_front().unwrap();
            let ids = String::from_utf8(id).unwrap();
            let dpid = 1000 + (g.rng.below(60_000) as u32);
            g.start(dpid);
            if bounce {
                g.line.extend_from_slice(
                    format!("{ids} ** {r} R=dnslookup T=remote_smtp: retry timeout exceeded")
                        .as_bytes(),
                );
                emit!();
                let bid = g.id();
                let bids = String::from_utf8(bid).unwrap();
                let name = g.users[u].clone();
                g.start(dpid);
                g.line.extend_from_slice(format!("{bids} <= <> R={ids} U=Debian-exim P=local S={} T=\"Mail delivery failed: returning message to sender\" for {name}@{name}.example", 2000 + g.rng.below(3000)).as_bytes());
                emit!();
                g.start(dpid + 1);
                g.line.extend_from_slice(format!("{bids} => {name} <{name}@{name}.example> R=local_user T=maildir_home DT=0s").as_bytes());
                emit!();
                g.start(dpid + 1);
                g.line
                    .extend_from_slice(format!("{bids} Completed").as_bytes());
                emit!();
            } else {
                g.line.extend_from_slice(format!("{ids} => {r} R=dnslookup T=remote_smtp H=mx.example.com [192.0.2.9] C=\"250 OK\" DT=0s").as_bytes());
                emit!();
            }
            g.start(dpid);
            g.line
                .extend_from_slice(format!("{ids} Completed").as_bytes());
            emit!();
        }
        if g.rng.below(500_000) == 0 {
            g.line.clear();
            g.line
                .extend_from_slice(b"\x00\x00\x00 garbage after a crash \xff\xfe");
            emit!();
        }
    }
    w.flush().unwrap();
    if let Some(p) = truth_path {
        let mut t = BufWriter::new(std::fs::File::create(p).expect("create truth file"));
        writeln!(t, "user\tmails\trecipients\tbytes\trejections").unwrap();
        for (name, tr) in g.users.iter().zip(&g.truth) {
            if tr.mails + tr.rejections > 0 {
                writeln!(
                    t,
                    "{name}\t{}\t{}\t{}\t{}",
                    tr.mails, tr.rcpts, tr.bytes, tr.rejections
                )
                .unwrap();
            }
        }
        t.flush().unwrap();
    }
}
