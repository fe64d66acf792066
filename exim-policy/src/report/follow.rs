//! `--follow`: keep reading the live main log as Exim appends to it, across rotation (the path
//! names a new file: the old one is read to its end first) and truncation (the file shrank:
//! start again at its beginning), and print the report every interval.

use super::aggregate::Aggregate;
use crate::error::{Error, Result};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Feeds the complete lines at the front of `pending` into `agg`, keeping the unterminated rest.
fn feed(pending: &mut Vec<u8>, label: &str, at: &mut u64, agg: &mut Aggregate) {
    let mut start = 0;
    for nl in memchr::memchr_iter(b'\n', pending) {
        if !agg.line(&pending[start..nl]) {
            agg.sample(label, *at, &pending[start..nl]);
        }
        *at += (nl + 1 - start) as u64;
        start = nl + 1;
    }
    pending.drain(..start);
}

/// Reads what is there now; returns whether anything was read.
fn drain(
    f: &mut File,
    pending: &mut Vec<u8>,
    label: &str,
    at: &mut u64,
    agg: &mut Aggregate,
) -> io::Result<bool> {
    let mut buf = vec![0u8; 256 << 10];
    let mut any = false;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => return Ok(any),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        any = true;
        pending.extend_from_slice(&buf[..n]);
        feed(pending, label, at, agg);
    }
}

/// Follows `path` from `resume_at` (default: its current end), printing with `emit` every
/// `interval`. Returns only on error.
pub fn follow(
    path: &Path,
    mut agg: Aggregate,
    resume_at: Option<u64>,
    interval: Duration,
    emit: impl Fn(&Aggregate) -> Result<()>,
) -> Result<i32> {
    let io_err = |e: io::Error| Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let label = path.display().to_string();
    let mut f = File::open(path).map_err(io_err)?;
    let mut ino = f.metadata().map_err(io_err)?.ino();
    let mut at = match resume_at {
        Some(p) => p,
        None => f.metadata().map_err(io_err)?.len(),
    };
    f.seek(SeekFrom::Start(at)).map_err(io_err)?;
    let mut pending = Vec::new();
    emit(&agg)?;
    let mut last_emit = Instant::now();
    loop {
        let got = drain(&mut f, &mut pending, &label, &mut at, &mut agg).map_err(io_err)?;
        let consumed = at + pending.len() as u64;
        match std::fs::metadata(path) {
            Ok(m) if m.ino() != ino => {
                // Rotated: finish the old file (Exim may have written a last line), then switch.
                drain(&mut f, &mut pending, &label, &mut at, &mut agg).map_err(io_err)?;
                if !pending.is_empty() {
                    if !agg.line(&pending) {
                        agg.sample(&label, at, &pending);
                    }
                    pending.clear();
                }
                if let Ok(nf) = File::open(path) {
                    ino = nf.metadata().map_err(io_err)?.ino();
                    f = nf;
                    at = 0;
                }
            }
            Ok(m) if m.len() < consumed => {
                // Truncated in place (copytruncate): start again.
                f.seek(SeekFrom::Start(0)).map_err(io_err)?;
                pending.clear();
                at = 0;
            }
            // Between rename and re-creation the path may not exist: keep the old file.
            _ => {}
        }
        if last_emit.elapsed() >= interval {
            emit(&agg)?;
            last_emit = Instant::now();
        }
        if !got {
            std::thread::sleep(interval.min(Duration::from_millis(200)));
        }
    }
}
