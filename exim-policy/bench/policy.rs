//! Benchmark: mails per second accepted by a private Exim from concurrent local senders, with
//! the rendered policy (ident lookup + ACLs + two ratelimit updates per mail) versus the same
//! Exim with no ident and no ACL, side by side in one run, plus the added time per connection.
//!
//! Run as root: `cargo bench -p exim-policy --bench policy` (env: BENCH_USERS, BENCH_THREADS,
//! BENCH_MAILS, BENCH_ROUNDS). Each sender is a throwaway Unix user running this binary as a
//! client (ident names the socket's owner), one mail per connection, TCP_NODELAY, half-close
//! after QUIT (as the BaseOS shim does). Both Exims queue instead of delivering (`queue_only`)
//! so that only acceptance is measured.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use baseos_tests::{ensure_oidentd, require_root, Exim, EximPaths, ThrowawayUser};
use exim_policy::policy::Policy;
use exim_policy::render::{self, Layout};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The policy config: high limits (never reached), so every mail pays the full ACL cost.
fn policy_conf(paths: &EximPaths) -> String {
    let text = format!(
        "[limits]\nmessages = 1000000\nmessages_period = \"1d\"\nrecipients = 1000000\nrecipients_period = \"1d\"\n\
         [standalone]\nprimary_hostname = \"test.example\"\nport = {port}\nspool_directory = \"{spool}\"\n\
         log_file_path = \"{log}/%slog\"\npid_file = \"{dir}/exim.pid\"\nlocal_domains = [\"test.example\"]\n\
         mail_dir = \"{mail}\"\nrelay = false\n",
        port = paths.port,
        spool = paths.spool.display(),
        log = paths.log.display(),
        dir = paths.dir.display(),
        mail = paths.mail.display(),
    );
    let p = Policy::parse(&text, Path::new("bench.toml")).unwrap();
    let data_dir = paths.dir.join("policy");
    let files = render::render(&p, Layout::Standalone, &data_dir);
    render::write_files(&data_dir, &files, false).unwrap();
    let conf = std::fs::read_to_string(data_dir.join("exim.conf")).unwrap();
    conf.replacen(
        "never_users = root\n",
        "never_users = root\nqueue_only = true\n",
        1,
    )
}

/// The same configuration without ident and without the policy ACLs (RCPT ACL kept: Exim
/// refuses every recipient without one).
fn plain_conf(paths: &EximPaths) -> String {
    let conf = policy_conf(paths);
    let mut out = String::new();
    for line in conf.lines() {
        if line.starts_with("rfc1413_hosts")
            || line.starts_with("acl_smtp_connect")
            || line.starts_with("acl_smtp_mail")
            || line.starts_with("acl_smtp_predata")
            || line.starts_with("acl_smtp_data")
        {
            continue;
        }
        if line.starts_with("rfc1413_query_timeout") {
            out.push_str("rfc1413_query_timeout = 0s\n");
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The policy's ident lookup but none of its ACLs: what the ident lookup alone costs.
fn ident_only_conf(paths: &EximPaths) -> String {
    policy_conf(paths)
        .lines()
        .filter(|l| {
            !(l.starts_with("acl_smtp_connect")
                || l.starts_with("acl_smtp_mail")
                || l.starts_with("acl_smtp_predata")
                || l.starts_with("acl_smtp_data"))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Client mode: `BENCH_CLIENT="<port> <mails> <threads> <user>"`; prints `LAT <µs> <code>`.
fn client(spec: &str) {
    let v: Vec<&str> = spec.split_whitespace().collect();
    let port: u16 = v[0].parse().unwrap();
    let mails: usize = v[1].parse().unwrap();
    let threads: usize = v[2].parse().unwrap();
    let user = v[3].to_string();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let out = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n >= mails {
                    return;
                }
                let t = Instant::now();
                let code = send(port, &user, n);
                out.lock().unwrap().push((t.elapsed().as_micros(), code));
            });
        }
    });
    let mut stdout = std::io::stdout().lock();
    for (us, code) in out.into_inner().unwrap() {
        let _ = writeln!(stdout, "LAT {us} {code}");
    }
}

fn send(port: u16, user: &str, n: usize) -> String {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut r = BufReader::new(stream.try_clone().unwrap());
    let mut w = stream;
    let mut reply = || -> String {
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return "EOF".into();
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return line.get(..3).unwrap_or("???").to_string();
            }
        }
    };
    let mut code = reply();
    if code != "220" {
        return code;
    }
    let body = format!(
        "From: {user}@test.example\r\nTo: inbox@test.example\r\nSubject: bench {n}\r\n\r\n{}\r\n.\r\n",
        "x".repeat(1000)
    );
    let steps = [
        "EHLO bench.test\r\n".to_string(),
        format!("MAIL FROM:<{user}@test.example>\r\n"),
        "RCPT TO:<inbox@test.example>\r\n".to_string(),
        "DATA\r\n".to_string(),
        body,
    ];
    for s in &steps {
        w.write_all(s.as_bytes()).unwrap();
        code = reply();
        if !(code.starts_with('2') || code == "354") {
            break;
        }
    }
    let _ = w.write_all(b"QUIT\r\n");
    let _ = w.shutdown(Shutdown::Write);
    let _ = reply();
    code
}

struct Round {
    secs: f64,
    ok: usize,
    failed: usize,
    lat_us: Vec<u128>,
}

fn round(exim: &Exim, users: &[ThrowawayUser], mails: usize, threads: usize) -> Round {
    let (_copy, exe) = world_executable_copy();
    let start = Instant::now();
    let outputs: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = users
            .iter()
            .map(|u| {
                let exe = exe.clone();
                s.spawn(move || {
                    let out = u
                        .command(exe)
                        .env(
                            "BENCH_CLIENT",
                            format!("{} {mails} {threads} {}", exim.port(), u.name),
                        )
                        .output()
                        .unwrap();
                    String::from_utf8_lossy(&out.stdout).to_string()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let mut r = Round {
        secs,
        ok: 0,
        failed: 0,
        lat_us: Vec::new(),
    };
    for o in &outputs {
        for l in o.lines().filter_map(|l| l.strip_prefix("LAT ")) {
            let (us, code) = l.split_once(' ').unwrap();
            r.lat_us.push(us.parse().unwrap());
            if code == "250" {
                r.ok += 1;
            } else {
                r.failed += 1;
            }
        }
    }
    r.lat_us.sort_unstable();
    r
}

fn pct(v: &[u128], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i] as f64 / 1000.0
}

fn main() {
    if let Ok(spec) = std::env::var("BENCH_CLIENT") {
        client(&spec);
        return;
    }
    require_root();
    ensure_oidentd();
    let n_users = env_usize("BENCH_USERS", 8);
    let threads = env_usize("BENCH_THREADS", 2);
    let mails = env_usize("BENCH_MAILS", 150);
    let rounds = env_usize("BENCH_ROUNDS", 3);
    let users: Vec<ThrowawayUser> = (0..n_users).map(|_| ThrowawayUser::create("bq")).collect();
    let with_policy = Exim::start_raw(policy_conf);
    let with_tmpfs = Exim::start_raw(policy_conf);
    let ident_only = Exim::start_raw(ident_only_conf);
    let plain = Exim::start_raw(plain_conf);
    // Exim 4.96 has no hints_directory: the ratelimit database lives in <spool>/db, and
    // Berkeley DB syncs it to disk on every close. The tmpfs variant points <spool>/db at
    // /dev/shm (created before the first mail; the database is opened lazily).
    let shm = tempfile::Builder::new()
        .prefix("exim-policy-bench-db-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let chown = std::process::Command::new("chown")
        .arg("Debian-exim:Debian-exim")
        .arg(shm.path())
        .status()
        .unwrap();
    assert!(chown.success());
    let db = with_tmpfs.paths().spool.join("db");
    let _ = std::fs::remove_dir_all(&db);
    std::os::unix::fs::symlink(shm.path(), &db).unwrap();
    println!(
        "exim-policy bench: {n_users} users x {threads} concurrent connections, {mails} mails per user per round, \
         one mail (1 KB) per connection, {rounds} rounds, alternating"
    );
    println!(
        "{:<28} {:>8} {:>10} {:>9} {:>9} {:>9}",
        "config", "mails", "mails/s", "p50 ms", "p95 ms", "failed"
    );
    let configs: [(&str, &Exim); 4] = [
        ("policy, hints db on disk", &with_policy),
        ("policy, hints db on tmpfs", &with_tmpfs),
        ("ident lookup only, no ACL", &ident_only),
        ("plain (no ident, no ACL)", &plain),
    ];
    let mut totals: Vec<(usize, f64, Vec<u128>, usize)> =
        vec![(0, 0.0, Vec::new(), 0); configs.len()];
    for _ in 0..rounds {
        for (i, (name, exim)) in configs.iter().enumerate() {
            let r = round(exim, &users, mails, threads);
            println!(
                "{:<28} {:>8} {:>10.1} {:>9.2} {:>9.2} {:>9}",
                name,
                r.ok,
                r.ok as f64 / r.secs,
                pct(&r.lat_us, 0.5),
                pct(&r.lat_us, 0.95),
                r.failed
            );
            totals[i].0 += r.ok;
            totals[i].1 += r.secs;
            totals[i].2.extend(r.lat_us);
            totals[i].3 += r.failed;
        }
    }
    println!("--- totals");
    for (i, (name, _)) in configs.iter().enumerate() {
        let t = &mut totals[i];
        t.2.sort_unstable();
        println!(
            "{:<28} {:>8} {:>10.1} {:>9.2} {:>9.2} {:>9}",
            name,
            t.0,
            t.0 as f64 / t.1,
            pct(&t.2, 0.5),
            pct(&t.2, 0.95),
            t.3
        );
    }
    let q = &totals[3];
    for (i, (name, _)) in configs.iter().enumerate().take(3) {
        let p = &totals[i];
        println!(
            "{name}: added per connection p50 {:+.2} ms, p95 {:+.2} ms; throughput {:.0}% of plain",
            pct(&p.2, 0.5) - pct(&q.2, 0.5),
            pct(&p.2, 0.95) - pct(&q.2, 0.95),
            100.0 * (p.0 as f64 / p.1) / (q.0 as f64 / q.1)
        );
    }
    // A sequential client alone: the latency a single PHP mail() sees.
    println!("--- one sender, one connection at a time ({mails} mails)");
    let mut seq_ok = Vec::new();
    for (name, exim) in &configs {
        let r = round(exim, &users[..1], mails, 1);
        seq_ok.push(r.ok);
        println!(
            "{:<28} {:>8} {:>10.1} {:>9.2} {:>9.2} {:>9}",
            name,
            r.ok,
            r.ok as f64 / r.secs,
            pct(&r.lat_us, 0.5),
            pct(&r.lat_us, 0.95),
            r.failed
        );
    }
    let queued = with_policy.mainlog().matches(" <= ").count();
    assert_eq!(
        queued,
        totals[0].0 + seq_ok[0],
        "policy Exim: accepted count in the log differs from the 250s"
    );
}

/// A copy of this binary that any user can run (the build tree may sit below a folder only
/// root can enter, e.g. /root): the clients run as throwaway users.
fn world_executable_copy() -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("exim-policy-client-")
        .tempdir()
        .expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.path().join("client");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).expect("copy the test binary");
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, exe)
}
