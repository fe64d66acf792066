//! `exim-policy report` on log fixtures written the way Exim 4.96 writes them: golden output per
//! format (UPDATE_GOLDEN=1 regenerates), exact hand-counted totals, gzip rotations (one of
//! them multi-member) found by content, joins across files, bad input, `--output` and
//! `--follow` across rotation.
#![allow(clippy::unwrap_used)]

use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/report")
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A Debian-style log folder: mainlog, mainlog.1 (plain), mainlog.2.gz, mainlog.3.gz (two gzip
/// members, as `cat a.gz b.gz` makes).
fn logdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = data();
    let read = |n: &str| std::fs::read(d.join(n)).unwrap();
    std::fs::write(dir.path().join("mainlog"), read("mainlog.log")).unwrap();
    std::fs::write(dir.path().join("mainlog.1"), read("mainlog.1.log")).unwrap();
    std::fs::write(dir.path().join("mainlog.2.gz"), gz(&read("mainlog.2.log"))).unwrap();
    let mut multi = gz(&read("mainlog.3a.log"));
    multi.extend(gz(&read("mainlog.3b.log")));
    std::fs::write(dir.path().join("mainlog.3.gz"), multi).unwrap();
    dir
}

fn report(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_exim-policy"))
        .arg("report")
        .args(args)
        .current_dir(dir)
        .env("TZ", "UTC")
        .output()
        .expect("run exim-policy")
}

fn ok_stdout(dir: &Path, args: &[&str]) -> String {
    let out = report(dir, args);
    assert!(
        out.status.success(),
        "exim-policy report {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn golden(name: &str, actual: &str) {
    let path = data().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs (UPDATE_GOLDEN=1 regenerates it after checking the change):\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

#[test]
fn golden_table() {
    let dir = logdir();
    golden(
        "report-table.ref",
        &ok_stdout(dir.path(), &["--log-dir", "."]),
    );
}

#[test]
fn golden_json() {
    let dir = logdir();
    golden(
        "report-json.ref",
        &ok_stdout(dir.path(), &["--log-dir", ".", "--format", "json"]),
    );
}

#[test]
fn golden_csv() {
    let dir = logdir();
    golden(
        "report-csv.ref",
        &ok_stdout(dir.path(), &["--log-dir", ".", "--format", "csv"]),
    );
    // The CSV has no room for the unparseable lines: they are reported on stderr.
    let err = report(dir.path(), &["--log-dir", ".", "--format", "csv"]).stderr;
    assert_eq!(
        String::from_utf8_lossy(&err),
        "exim-policy report: 4 unparseable lines (first: ./mainlog at byte 1336)\n"
    );
}

#[test]
fn golden_prometheus() {
    let dir = logdir();
    golden(
        "report-prometheus.ref",
        &ok_stdout(dir.path(), &["--log-dir", ".", "--format", "prometheus"]),
    );
}

#[test]
fn golden_window_sort_top() {
    let dir = logdir();
    let args = [
        "--log-dir",
        ".",
        "--since",
        "2026-12-01",
        "--until",
        "2026-12-02 09:45",
        "--sort",
        "rejections",
        "--top",
        "2",
    ];
    golden("report-window.ref", &ok_stdout(dir.path(), &args));
}

fn json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--format", "json"];
    a.extend_from_slice(args);
    // File names as given: `--log-dir .` gives `./mainlog`.
    serde_json::from_str(&ok_stdout(dir, &a).replace("\"./", "\"")).expect("json output")
}

fn user<'a>(j: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    j["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"] == name)
        .unwrap_or_else(|| panic!("user {name} in {j}"))
}

/// The numbers below are counted by hand from the fixture files (see the comments in them).
#[test]
fn fixture_counts_are_exact() {
    let dir = logdir();
    let j = json(dir.path(), &["--log-dir", "."]);
    let names: Vec<&str> = j["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user"].as_str().unwrap())
        .collect();
    // No user invented from subjects, quoted local parts, HELO names; Exim's bounce and the
    // unusable ident "1005x" are not users.
    assert_eq!(names, ["alice", "bob", "carol", "dave"]);

    let a = user(&j, "alice");
    // A1 (2 rcpts), A2 (3 rcpts, deferred in mainlog.3.gz and mainlog.2.gz), a local
    // submission, and one still open; the truncated arrival is not counted.
    assert_eq!(
        (
            a["mails"].as_u64(),
            a["recipients"].as_u64(),
            a["bytes"].as_u64()
        ),
        (Some(4), Some(7), Some(7944))
    );
    assert_eq!(
        (
            a["deferrals"].as_u64(),
            a["bounces"].as_u64(),
            a["rejections"].as_u64()
        ),
        (Some(4), Some(0), Some(0))
    );
    assert_eq!(a["first_seen"], "2026-11-30 08:00:01");
    assert_eq!(a["last_seen"], "2026-12-03 09:20:00");
    let scripts: Vec<(&str, u64)> = a["top_scripts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["script"].as_str().unwrap(), s["mails"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        scripts,
        [
            ("/home/alice/www/newsletter.php", 1),
            ("/home/alice/www/wp-mail.php", 1)
        ]
    );

    let b = user(&j, "bob");
    // B1 over [::1], and the mail with the forged envelope sender alice@ (ident bob).
    assert_eq!(
        (
            b["mails"].as_u64(),
            b["recipients"].as_u64(),
            b["bytes"].as_u64()
        ),
        (Some(2), Some(2), Some(1900))
    );
    assert_eq!(b["rejections_by_reason"]["ratelimit"], 1);
    assert_eq!(b["rejections_by_reason"]["forged"], 1);
    assert_eq!(b["rejections"], 2);
    assert_eq!(b["top_scripts"][0]["script"], "(no script)");

    let c = user(&j, "carol");
    // C1 arrived and deferred in mainlog.2.gz, bounced in mainlog.1; c2 has no `for` list, so
    // its recipients are its 2 deliveries and 1 failure.
    assert_eq!(
        (
            c["mails"].as_u64(),
            c["recipients"].as_u64(),
            c["bytes"].as_u64()
        ),
        (Some(2), Some(4), Some(1500))
    );
    assert_eq!(
        (c["deferrals"].as_u64(), c["bounces"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(c["rejections_by_reason"]["sender_domain"], 1);
    assert_eq!(c["rejections_by_reason"]["other"], 1);
    assert_eq!(c["logged_only_by_reason"]["forged"], 1);

    let d = user(&j, "dave");
    assert_eq!(
        (
            d["mails"].as_u64(),
            d["recipients"].as_u64(),
            d["bytes"].as_u64()
        ),
        (Some(2), Some(2), Some(400))
    );
    assert_eq!(d["rejections_by_reason"]["blocked"], 1);

    assert_eq!(j["system_messages"], 1, "Exim's bounce to carol");
    assert_eq!(j["mails_without_ident"], 1, "the partner's inbound mail");
    assert_eq!(
        j["rejections_without_ident"]["noident"], 2,
        "NOIDENT and BADIDENT"
    );
    assert_eq!(j["unattributed_bounces"], 1);
    assert_eq!(j["unattributed_deferrals"], 0);
    assert_eq!(j["unparseable_lines"], 4);
    assert_eq!(j["open_messages"], 1);
    assert_eq!(j["lines"], 66);
}

#[test]
fn files_in_any_order_and_any_thread_count_give_the_same_report() {
    let dir = logdir();
    let default = json(dir.path(), &["--log-dir", "."]);
    for args in [
        vec![
            "mainlog",
            "mainlog.3.gz",
            "mainlog.1",
            "mainlog.2.gz",
            "--jobs",
            "1",
        ],
        vec![
            "mainlog.1",
            "mainlog.3.gz",
            "mainlog.2.gz",
            "mainlog",
            "--jobs",
            "4",
        ],
    ] {
        let mut j = json(dir.path(), &args);
        // Files are listed oldest first however they were given.
        assert_eq!(
            j["files"],
            serde_json::json!(["mainlog.3.gz", "mainlog.2.gz", "mainlog.1", "mainlog"])
        );
        j["files"] = default["files"].clone();
        assert_eq!(j, default, "{args:?}");
    }
}

#[test]
fn gzip_is_found_by_content_not_name() {
    let dir = logdir();
    // A plain file named .gz and a gzip file without the suffix.
    std::fs::rename(dir.path().join("mainlog.1"), dir.path().join("x.gz")).unwrap();
    std::fs::rename(dir.path().join("mainlog.2.gz"), dir.path().join("y")).unwrap();
    let j = json(dir.path(), &["mainlog.3.gz", "y", "x.gz", "mainlog"]);
    assert_eq!(user(&j, "carol")["bounces"], 2);
    assert_eq!(j["unparseable_lines"], 4);
}

#[test]
fn user_filter_and_output_file() {
    let dir = logdir();
    let stdout = ok_stdout(
        dir.path(),
        &[
            "--log-dir",
            ".",
            "--format",
            "prometheus",
            "--user",
            "bob,carol",
        ],
    );
    assert!(stdout.contains("exim_policy_user_mails{user=\"bob\"} 2\n"));
    assert!(!stdout.contains("user=\"alice\""));
    let out = dir.path().join("textfile").join("exim_policy.prom");
    std::fs::create_dir(out.parent().unwrap()).unwrap();
    let o = report(
        dir.path(),
        &[
            "--log-dir",
            ".",
            "--format",
            "prometheus",
            "--user",
            "bob,carol",
            "--output",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success());
    assert!(o.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), stdout);
    let names: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["exim_policy.prom"], "no temporary file left behind");
}

#[test]
fn bad_input_is_a_one_line_error() {
    let dir = logdir();
    let cases: [(&[&str], i32, &str); 5] = [
        (&["--log-dir", ".", "--since", "yesterday"], 64, "--since"),
        (
            &["--log-dir", ".", "--since", "2h", "--until", "3h"],
            64,
            "before --until",
        ),
        (&["no-such-file"], 74, "no-such-file"),
        (&["--log-dir", "/nonexistent"], 64, "as arguments"),
        (&["--log-dir", ".", "--format", "xml"], 2, "xml"),
    ];
    for (args, code, needle) in cases {
        let o = report(dir.path(), args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // A damaged gzip file names the file.
    std::fs::write(
        dir.path().join("bad.gz"),
        &gz(b"2026-12-03 10:00:00 x\n")[..15],
    )
    .unwrap();
    let o = report(dir.path(), &["bad.gz"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.gz"));
}

fn wait_for(
    path: &Path,
    timeout: Duration,
    want: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        if let Some(j) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        {
            if want(&j) || start.elapsed() > timeout {
                return j;
            }
        } else if start.elapsed() > timeout {
            panic!("{} never appeared", path.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn arrival(id: &str, user: &str) -> String {
    format!("2026-12-03 10:00:00 [1] {id} <= {user}@x.example H=(vm) [127.0.0.1]:4000 U={user} P=esmtp S=10 for a@b.example\n")
}

#[test]
fn follow_reads_appends_and_survives_rotation_and_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mainlog");
    std::fs::write(&log, arrival("1xZa00-000000-00", "web1")).unwrap();
    let out = dir.path().join("out.json");
    let child = Command::new(env!("CARGO_BIN_EXE_exim-policy"))
        .args([
            "report",
            "--follow",
            "--interval",
            "1",
            "--format",
            "json",
            "--output",
        ])
        .arg(&out)
        .arg(&log)
        .spawn()
        .unwrap();
    let _child = Kill(child);
    let mails = |j: &serde_json::Value, u: &str| {
        j["users"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["user"] == u))
            .and_then(|x| x["mails"].as_u64())
            .unwrap_or(0)
    };
    let t = Duration::from_secs(10);
    assert_eq!(
        mails(&wait_for(&out, t, |j| mails(j, "web1") == 1), "web1"),
        1
    );

    // Appended, including a line written in two pieces.
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let line = arrival("1xZa00-000001-00", "web1");
    f.write_all(&line.as_bytes()[..30]).unwrap();
    f.flush().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    f.write_all(&line.as_bytes()[30..]).unwrap();
    f.write_all(b"2026-12-03 10:00:01 [1] 1xZa00-000001-00 == a@b.example R=r T=t defer (-1): x\n")
        .unwrap();
    drop(f);
    let j = wait_for(&out, t, |j| {
        mails(j, "web1") == 2 && j["unparseable_lines"] == 0
    });
    assert_eq!(
        (mails(&j, "web1"), j["unparseable_lines"].as_u64()),
        (2, Some(0))
    );
    assert_eq!(user(&j, "web1")["deferrals"], 1);

    // Rotation as logrotate does it (rename, new file); a last line lands in the old file.
    let mut old = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::fs::rename(&log, dir.path().join("mainlog.1")).unwrap();
    old.write_all(arrival("1xZa00-000002-00", "web1").as_bytes())
        .unwrap();
    drop(old);
    std::fs::write(&log, arrival("1xZa00-000003-00", "web2")).unwrap();
    let j = wait_for(&out, t, |j| mails(j, "web1") == 3 && mails(j, "web2") == 1);
    assert_eq!((mails(&j, "web1"), mails(&j, "web2")), (3, 1));
    // The message that arrived before the rotation bounces after it.
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(b"2026-12-03 10:00:05 [1] 1xZa00-000001-00 ** a@b.example: gone\n")
        .unwrap();
    drop(f);
    let j = wait_for(&out, t, |j| {
        j["users"]
            .as_array()
            .is_some_and(|_| user(j, "web1")["bounces"] == 1)
    });
    assert_eq!(user(&j, "web1")["bounces"], 1);

    // Truncation in place (copytruncate): reading starts again at the beginning.
    std::fs::write(&log, arrival("1xZa00-000004-00", "web3")).unwrap();
    let j = wait_for(&out, t, |j| mails(j, "web3") == 1);
    assert_eq!(mails(&j, "web3"), 1);
}

#[test]
fn since_skips_default_rotations_written_long_before() {
    let dir = logdir();
    for (f, t) in [
        ("mainlog.3.gz", "2026-11-30 22:00:31"),
        ("mainlog.2.gz", "2026-12-01 12:00:01"),
        ("mainlog.1", "2026-12-02 10:20:00"),
    ] {
        let ok = Command::new("touch")
            .args(["-d", t])
            .arg(dir.path().join(f))
            .env("TZ", "UTC")
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let j = json(
        dir.path(),
        &["--log-dir", ".", "--since", "2026-12-02 12:00"],
    );
    // mainlog.3.gz ended more than a day before; mainlog.2.gz exactly a day before is kept.
    assert_eq!(
        j["files"],
        serde_json::json!(["mainlog.2.gz", "mainlog.1", "mainlog"])
    );
    // Explicit files are always read.
    let j = json(
        dir.path(),
        &["--since", "2026-12-02 12:00", "mainlog.3.gz", "mainlog"],
    );
    assert_eq!(j["files"], serde_json::json!(["mainlog.3.gz", "mainlog"]));
}

#[test]
fn many_rotations_merge_in_order_and_a_damaged_one_is_named() {
    // 40 rotations of one message each; message k bounces in the file after its arrival.
    let dir = tempfile::tempdir().unwrap();
    let n = 40;
    for k in 0..n {
        let mut text = String::new();
        let t = |m: u32| format!("2026-11-{:02} {:02}:{:02}:00", 1 + k / 24, k % 24, m);
        text.push_str(&format!(
            "{} [1] 1xZa{k:02}-000000-00 <= a@x H=(vm) [::1]:4000 U=web{} P=esmtp S=10 for r@y.example\n",
            t(0),
            k % 3
        ));
        if k > 0 {
            text.push_str(&format!(
                "{} [1] 1xZa{:02}-000000-00 ** r@y.example: gone\n",
                t(1),
                k - 1
            ));
            text.push_str(&format!(
                "{} [1] 1xZa{:02}-000000-00 Completed\n",
                t(1),
                k - 1
            ));
        }
        let name = dir.path().join(format!("mainlog.{}.gz", n - k));
        std::fs::write(name, gz(text.as_bytes())).unwrap();
    }
    let j = json(dir.path(), &["--log-dir", ".", "--jobs", "2"]);
    let total = |f: &str| {
        j["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u[f].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!((total("mails"), total("bounces")), (40, 39), "{j}");
    assert_eq!(j["unattributed_bounces"], 0);
    assert_eq!(j["open_messages"], 1);
    // A damaged file in the middle: a one-line error naming it, no hang.
    std::fs::write(
        dir.path().join("mainlog.20.gz"),
        &gz(b"2026-11-01 10:00:00 x\n")[..12],
    )
    .unwrap();
    let o = report(dir.path(), &["--log-dir", ".", "--jobs", "2"]);
    assert_eq!(o.status.code(), Some(64));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("mainlog.20.gz") && err.lines().count() == 1,
        "{err}"
    );
}
