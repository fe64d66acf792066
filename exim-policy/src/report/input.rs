//! Log files: finding the rotations, telling plain from gzip by magic bytes, streaming lines,
//! and spreading the work over threads (gzip files whole, plain files in newline-aligned
//! chunks), with the partial aggregates merged in chronological order.

use super::aggregate::{Aggregate, Window};
use super::stamp::{stamp_shape, stamp_value};
use crate::error::{Error, Result};
use flate2::read::MultiGzDecoder;
use memchr::memchr_iter;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

/// How a log file is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Plain text.
    Plain,
    /// gzip, possibly several members (`MultiGzDecoder`).
    Gzip,
}

fn io_err(path: &Path, source: io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Tells plain text from gzip by the first bytes; other compressions are refused with a hint.
pub fn detect(path: &Path) -> Result<Kind> {
    let mut f = File::open(path).map_err(|e| io_err(path, e))?;
    let mut magic = [0u8; 6];
    let mut n = 0;
    while n < magic.len() {
        match f.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(path, e)),
        }
    }
    let m = &magic[..n];
    let other = if m.starts_with(&[0x1f, 0x8b]) {
        return Ok(Kind::Gzip);
    } else if m.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        "xz"
    } else if m.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "zstd"
    } else if m.starts_with(b"BZh") {
        "bzip2"
    } else {
        return Ok(Kind::Plain);
    };
    Err(Error::Usage(format!(
        "{}: compressed with {other}, which report does not read: decompress it (or rotate with gzip, Debian's default) and pass the result",
        path.display()
    )))
}

/// The Debian main log and its rotations in `dir`: `mainlog`, `mainlog.1`, `mainlog.N.gz`.
pub fn default_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| {
        Error::Usage(format!(
            "cannot read {}: {e}; pass the main log files as arguments",
            dir.display()
        ))
    })?;
    let mut found: Vec<(u32, PathBuf)> = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let rank = if name == "mainlog" {
            Some(0)
        } else if let Some(rest) = name.strip_prefix("mainlog.") {
            let num = rest.strip_suffix(".gz").unwrap_or(rest);
            num.parse::<u32>()
                .ok()
                .filter(|_| !num.is_empty() && num.bytes().all(|c| c.is_ascii_digit()))
        } else {
            None
        };
        if let Some(r) = rank {
            let path = entry.path();
            if entry.file_type().map_err(|e| io_err(&path, e))?.is_file() {
                found.push((r, path));
            }
        }
    }
    if found.is_empty() {
        return Err(Error::Usage(format!(
            "no Exim main log in {} (looked for mainlog, mainlog.N, mainlog.N.gz): pass the log files as arguments",
            dir.display()
        )));
    }
    // Oldest first.
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

const BUF: usize = 1 << 20;
/// Longer lines are counted as unparseable and skipped (Exim's own limit is far below).
const MAX_LINE: usize = 16 << 20;

/// Where a scan stopped.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScanEnd {
    /// Offset after the last complete line read.
    pub complete: u64,
}

/// Streams the lines of `r` into `agg`. `pos` is the offset of `r`'s first byte; lines that
/// start at or after `end` are left alone; an unterminated last line is counted when
/// `last_partial` (a finished file), left unread otherwise (a log still being written).
pub fn scan(
    r: &mut dyn Read,
    label: &str,
    pos: u64,
    end: u64,
    last_partial: bool,
    agg: &mut Aggregate,
) -> io::Result<ScanEnd> {
    let mut buf = vec![0u8; BUF];
    let mut filled = 0usize;
    let mut at = pos; // offset of buf[0]
    let mut skipping = false;
    loop {
        if filled == buf.len() {
            if buf.len() < MAX_LINE {
                buf.resize(buf.len() * 2, 0);
            } else {
                if !skipping {
                    agg.totals.lines += 1;
                    agg.totals.unparseable += 1;
                    agg.sample(label, at, &buf[..120]);
                }
                skipping = true;
                at += filled as u64;
                filled = 0;
            }
        }
        let n = match r.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            if filled > 0 && last_partial && at < end && !skipping {
                if !agg.line(&buf[..filled]) {
                    agg.sample(label, at, &buf[..filled]);
                }
                at += filled as u64;
            }
            return Ok(ScanEnd { complete: at });
        }
        let stop = filled + n;
        let mut start = 0usize;
        for nl in memchr_iter(b'\n', &buf[filled..stop]) {
            let e = filled + nl;
            let line_at = at + start as u64;
            if line_at >= end {
                return Ok(ScanEnd { complete: line_at });
            }
            if skipping {
                skipping = false;
            } else if !agg.line(&buf[start..e]) {
                agg.sample(label, line_at, &buf[start..e]);
            }
            start = e + 1;
        }
        buf.copy_within(start..stop, 0);
        at += start as u64;
        filled = stop - start;
    }
}

type JobResult = Result<(Aggregate, u64)>;

/// One unit of work: a gzip file, or a chunk of a plain file.
#[derive(Clone, Debug)]
struct Job {
    file: usize,
    kind: Kind,
    start: u64,
    end: u64,
}

/// A log file to read, and what the initial read found.
#[derive(Clone, Debug)]
pub struct Input {
    /// Path as given.
    pub path: PathBuf,
    /// Plain or gzip.
    pub kind: Kind,
    /// Size on disk when planned.
    pub size: u64,
}

/// The result of reading all inputs.
pub struct Loaded {
    /// Everything, merged oldest file first.
    pub agg: Aggregate,
    /// The inputs, in the chronological order used.
    pub inputs: Vec<Input>,
    /// For the last input given (the one `--follow` follows): the offset after its last
    /// complete line (plain files only).
    pub resume_at: Option<u64>,
}

/// Smallest piece a plain file is cut into.
const MIN_CHUNK: u64 = 16 << 20;

/// Reads `paths` with up to `threads` threads and merges the results chronologically: files
/// are ordered by their first timestamp (read up front, cheaply), then by the order given, and
/// the work is handed out in that order. Partial aggregates are merged as soon as every part
/// before them is merged, and no thread runs more than [`WINDOW_PER_THREAD`] jobs ahead of
/// the merge: memory stays bounded however many rotations are read. When `follow` is set,
/// the unterminated last line of the last file given is left for the follower.
pub fn load(
    paths: &[PathBuf],
    window: Window,
    cap: usize,
    threads: usize,
    follow: bool,
) -> Result<Loaded> {
    let mut inputs = Vec::with_capacity(paths.len());
    let mut keys = Vec::with_capacity(paths.len());
    for p in paths {
        let kind = detect(p)?;
        let size = std::fs::metadata(p).map_err(|e| io_err(p, e))?.len();
        keys.push(first_stamp(p, kind));
        inputs.push(Input {
            path: p.clone(),
            kind,
            size,
        });
    }
    let newest_guess = inputs.len().saturating_sub(1);
    let mut file_order: Vec<usize> = (0..inputs.len()).collect();
    file_order.sort_by_key(|&f| (keys[f], f));
    let threads = threads.max(1);
    let total_plain: u64 = inputs
        .iter()
        .filter(|i| i.kind == Kind::Plain)
        .map(|i| i.size)
        .sum();
    let chunk = (total_plain / (threads as u64 * 4)).max(MIN_CHUNK);
    let mut jobs = Vec::new();
    for &fi in &file_order {
        let inp = &inputs[fi];
        match inp.kind {
            Kind::Gzip => jobs.push(Job {
                file: fi,
                kind: Kind::Gzip,
                start: 0,
                end: u64::MAX,
            }),
            Kind::Plain => {
                let n = inp.size.div_ceil(chunk).max(1);
                for c in 0..n {
                    let end = if c + 1 == n {
                        u64::MAX
                    } else {
                        (c + 1) * chunk
                    };
                    jobs.push(Job {
                        file: fi,
                        kind: Kind::Plain,
                        start: c * chunk,
                        end,
                    });
                }
            }
        }
    }
    let window_jobs = threads * WINDOW_PER_THREAD;
    let workers = threads.min(jobs.len());
    let state = Mutex::new(Sched {
        next: 0,
        merged: 0,
        failed: false,
        alive: workers,
        done: (0..jobs.len()).map(|_| None).collect(),
    });
    let cv = Condvar::new();
    let mut agg = Aggregate::new(window, cap);
    let mut resume_at = None;
    let mut error = None;
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let _alive = Alive(&state, &cv);
                loop {
                    let j = {
                        let Ok(mut st) = state.lock() else { return };
                        while !st.failed
                            && st.next < jobs.len()
                            && st.next >= st.merged + window_jobs
                        {
                            st = match cv.wait(st) {
                                Ok(g) => g,
                                Err(_) => return,
                            };
                        }
                        if st.failed || st.next >= jobs.len() {
                            return;
                        }
                        st.next += 1;
                        st.next - 1
                    };
                    let job = &jobs[j];
                    let keep_tail = follow && job.file == newest_guess && job.end == u64::MAX;
                    let r = run_job(job, &inputs[job.file], window, cap, keep_tail);
                    if let Ok(mut st) = state.lock() {
                        st.done[j] = Some(r);
                    }
                    cv.notify_all();
                }
            });
        }
        // Merge in order, as the parts arrive.
        for (j, job) in jobs.iter().enumerate() {
            let take = || -> Option<JobResult> {
                let mut st = state.lock().ok()?;
                while st.done[j].is_none() {
                    if st.alive == 0 {
                        return None;
                    }
                    st = cv.wait(st).ok()?;
                }
                st.merged = j + 1;
                st.done[j].take()
            };
            let r = take();
            cv.notify_all();
            match r {
                Some(Ok((part, end))) => {
                    agg.merge(part);
                    if job.file == newest_guess && inputs[job.file].kind == Kind::Plain {
                        resume_at = Some(end);
                    }
                }
                Some(Err(e)) => {
                    error = Some(e);
                    if let Ok(mut st) = state.lock() {
                        st.failed = true;
                    }
                    cv.notify_all();
                    break;
                }
                None => {
                    error = Some(Error::Usage("report: a worker thread stopped early".into()));
                    break;
                }
            }
        }
    });
    if let Some(e) = error {
        return Err(e);
    }
    let inputs = file_order.iter().map(|&f| inputs[f].clone()).collect();
    Ok(Loaded {
        agg,
        inputs,
        resume_at,
    })
}

/// Jobs a thread may run ahead of the in-order merge.
const WINDOW_PER_THREAD: usize = 4;

struct Sched {
    next: usize,
    merged: usize,
    failed: bool,
    /// Worker threads still running: when none is left, nothing more will arrive.
    alive: usize,
    done: Vec<Option<JobResult>>,
}

/// Counts a worker out when it ends, normally or by a panic, and wakes the merger.
struct Alive<'a>(&'a Mutex<Sched>, &'a Condvar);

impl Drop for Alive<'_> {
    fn drop(&mut self) {
        if let Ok(mut st) = self.0.lock() {
            st.alive -= 1;
        }
        self.1.notify_all();
    }
}

/// The stamp of the first timestamped line within the first 64 KiB of a file (decompressed),
/// 0 if none or unreadable (the worker then reports the error).
fn first_stamp(path: &Path, kind: Kind) -> u64 {
    let Ok(f) = File::open(path) else { return 0 };
    let mut buf = Vec::with_capacity(64 << 10);
    let read = match kind {
        Kind::Plain => f.take(64 << 10).read_to_end(&mut buf),
        Kind::Gzip => MultiGzDecoder::new(f).take(64 << 10).read_to_end(&mut buf),
    };
    if read.is_err() && buf.is_empty() {
        return 0;
    }
    buf.split(|&c| c == b'\n')
        .find_map(|l| stamp_shape(l).and_then(|_| stamp_value(l)))
        .unwrap_or(0)
}

fn run_job(
    job: &Job,
    inp: &Input,
    window: Window,
    cap: usize,
    keep_tail: bool,
) -> Result<(Aggregate, u64)> {
    let path = &inp.path;
    let label = path.display().to_string();
    let mut agg = Aggregate::new(window, cap);
    let mut f = File::open(path).map_err(|e| io_err(path, e))?;
    let end = match job.kind {
        Kind::Gzip => {
            let mut d = MultiGzDecoder::new(io::BufReader::with_capacity(256 << 10, f));
            scan(&mut d, &label, 0, u64::MAX, true, &mut agg)
                .map_err(|e| {
                    Error::Usage(format!(
                        "{label}: cannot decompress: {e} (truncated or damaged gzip file?)"
                    ))
                })?
                .complete
        }
        Kind::Plain => {
            let mut pos = job.start;
            if job.start > 0 {
                // Start after the first newline at or after start-1: the line that crosses the
                // boundary belongs to the chunk before.
                f.seek(SeekFrom::Start(job.start - 1))
                    .map_err(|e| io_err(path, e))?;
                let mut b = [0u8; 64 << 10];
                pos = job.start - 1;
                'find: loop {
                    let n = f.read(&mut b).map_err(|e| io_err(path, e))?;
                    if n == 0 {
                        return Ok((agg, pos));
                    }
                    if let Some(k) = memchr::memchr(b'\n', &b[..n]) {
                        pos += k as u64 + 1;
                        f.seek(SeekFrom::Start(pos)).map_err(|e| io_err(path, e))?;
                        break 'find;
                    }
                    pos += n as u64;
                }
                if pos >= job.end {
                    return Ok((agg, pos));
                }
            }
            scan(&mut f, &label, pos, job.end, !keep_tail, &mut agg)
                .map_err(|e| io_err(path, e))?
                .complete
        }
    };
    Ok((agg, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn line(i: usize) -> String {
        format!(
            "2026-12-03 10:00:00 1xZ6T6-{i:06}-31 <= a@b H=[::1]:5 U=u{} P=esmtp S=10 for x@y\n",
            i % 7
        )
    }

    #[test]
    fn chunked_scan_counts_every_line_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("mainlog");
        let mut f = File::create(&p).expect("create");
        let mut n = 0;
        while f.metadata().expect("meta").len() < 3 * MIN_CHUNK + 12345 {
            for _ in 0..10_000 {
                f.write_all(line(n).as_bytes()).expect("write");
                n += 1;
            }
        }
        f.write_all(b"2026-12-03 10:00:01 unterminated")
            .expect("write");
        drop(f);
        let loaded = load(&[p], Window::default(), 1 << 20, 3, false).expect("load");
        let mails: u64 = loaded.agg.users().map(|(_, s)| s.mails).sum();
        assert_eq!(mails, n as u64);
        assert_eq!(loaded.agg.totals.lines, n as u64 + 1);
    }

    #[test]
    fn magic_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.gz");
        std::fs::write(&p, b"plain text despite the name\n").expect("write");
        assert_eq!(detect(&p).expect("detect"), Kind::Plain);
        std::fs::write(&p, [0x28, 0xb5, 0x2f, 0xfd, 0, 0]).expect("write");
        assert!(detect(&p).expect_err("zstd").to_string().contains("zstd"));
    }
}
