//! `exim-policy report`: per-user mail counts from Exim main logs.
//!
//! The user is the ident Exim logs as `U=` (DESIGN.md contract 3): envelope senders and headers
//! are claims, `U=` is what the connection's RFC 1413 lookup said. Lines are parsed field by
//! field ([`parse`]), streamed ([`input`]) into per-file or per-chunk aggregates that are merged
//! oldest first ([`aggregate`]), and printed as a table, JSON, CSV or a Prometheus textfile
//! ([`format`]). `--follow` keeps reading the live main log ([`follow`]).

pub mod aggregate;
pub mod follow;
pub mod format;
pub mod input;
pub mod parse;
pub mod stamp;

use crate::error::{Error, Result};
use aggregate::Window;
use format::{Format, Select, SortKey, Summary};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Arguments of `exim-policy report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Main log files, plain or gzip (told apart by content). Default: mainlog, mainlog.N and
    /// mainlog.N.gz in --log-dir. They are read in parallel and joined oldest first.
    pub files: Vec<PathBuf>,
    /// Where the default files are.
    #[arg(long, default_value = "/var/log/exim4", value_name = "DIR")]
    pub log_dir: PathBuf,
    /// Count from this time on: "YYYY-MM-DD[ HH:MM[:SS]]" (local time, as Exim logs) or a
    /// duration ago like 1h, 30m, 7d, 1h30m. Default files last written more than a day
    /// before it are not read.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Count up to (not including) this time; same forms as --since.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only these users (repeat, or separate with commas).
    #[arg(long, value_name = "USER", value_delimiter = ',')]
    pub user: Vec<String>,
    /// Only the first N users after sorting.
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    /// Sort users by this (descending; `user` sorts by name).
    #[arg(long, value_enum, default_value = "mails")]
    pub sort: SortKey,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write the report to FILE atomically (temporary file, fsync, rename in the same folder)
    /// instead of standard output: point it at node_exporter's textfile folder.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Keep reading the newest log (the last file, default mainlog) as it grows and across
    /// rotation, printing the report every --interval seconds.
    #[arg(long)]
    pub follow: bool,
    /// Seconds between reports with --follow.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub interval: u64,
    /// Scripts listed per user.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub scripts: usize,
    /// Threads (default: the number of CPUs).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Most open messages (arrived, not completed) remembered for joining deferrals and
    /// bounces to their sender; bounds memory.
    #[arg(long, default_value_t = 2_000_000, value_name = "N")]
    pub max_open: usize,
}

/// Runs `exim-policy report`; returns the exit code.
pub fn run(args: &ReportArgs) -> Result<i32> {
    let now = stamp::local_now();
    let bound = |v: &Option<String>, flag: &str| -> Result<Option<stamp::Stamp>> {
        v.as_deref()
            .map(|t| stamp::parse_bound(t, now).map_err(|e| Error::Usage(format!("--{flag}: {e}"))))
            .transpose()
    };
    let window = Window {
        since: bound(&args.since, "since")?,
        until: bound(&args.until, "until")?,
    };
    if let (Some(a), Some(b)) = (window.since, window.until) {
        if a >= b {
            return Err(Error::Usage("--since must be before --until".into()));
        }
    }
    if args.follow && args.interval == 0 {
        return Err(Error::Usage("--interval must be at least 1 second".into()));
    }
    if args.max_open < 2 {
        return Err(Error::Usage("--max-open must be at least 2".into()));
    }
    let files = if args.files.is_empty() {
        let mut all = input::default_files(&args.log_dir)?;
        // A rotation last written more than a day before --since holds nothing to count (the
        // day of slack keeps the arrivals whose bounces fall in the window). The newest file
        // is always read.
        if let Some(since) = window.since {
            let newest = all.pop();
            all.retain(|p| {
                std::fs::metadata(p)
                    .and_then(|m| m.modified())
                    .map_or(true, |t| stamp::system_time_stamp(t, 86_400) >= since)
            });
            all.extend(newest);
        }
        all
    } else {
        args.files.clone()
    };
    let threads = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let loaded = input::load(&files, window, args.max_open, threads, args.follow)?;
    let names: Vec<String> = loaded
        .inputs
        .iter()
        .map(|i| i.path.display().to_string())
        .collect();
    let sel = Select {
        users: args.user.clone(),
        sort: args.sort,
        top: args.top,
        scripts: args.scripts,
    };
    let emit = |agg: &aggregate::Aggregate| -> Result<()> {
        let text = Summary::new(agg, names.clone(), window, &sel).render(args.format);
        write_output(args.output.as_deref(), text.as_bytes())
    };
    if args.follow {
        let live = files
            .last()
            .cloned()
            .unwrap_or_else(|| args.log_dir.join("mainlog"));
        return follow::follow(
            &live,
            loaded.agg,
            loaded.resume_at,
            std::time::Duration::from_secs(args.interval),
            emit,
        );
    }
    let t = &loaded.agg.totals;
    if t.lines > 0 && t.unparseable + t.continuations == t.lines {
        eprintln!(
            "exim-policy report: none of the {} lines is an Exim main log line (YYYY-MM-DD HH:MM:SS ...): pass Exim's mainlog, not a syslog file or the rejectlog",
            t.lines
        );
    }
    emit(&loaded.agg)?;
    if args.format == Format::Csv && t.unparseable > 0 {
        // The CSV has one row per user and no room for it: say it where a person sees it.
        let first = loaded
            .agg
            .samples
            .first()
            .map(|s| format!(" (first: {} at byte {})", s.file, s.offset));
        eprintln!(
            "exim-policy report: {} unparseable lines{}",
            t.unparseable,
            first.unwrap_or_default()
        );
    }
    Ok(0)
}

/// Writes the report to standard output, or atomically to `path`: a temporary file in the same
/// folder, fsync'd, then renamed over the target, so a reader (node_exporter) never sees half.
pub fn write_output(path: Option<&Path>, data: &[u8]) -> Result<()> {
    let Some(path) = path else {
        let mut out = std::io::stdout().lock();
        return match out.write_all(data).and_then(|()| out.flush()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            r => r.map_err(|e| Error::Io {
                path: "<stdout>".into(),
                source: e,
            }),
        };
    };
    let io = |p: &Path, e: std::io::Error| Error::Io {
        path: p.to_path_buf(),
        source: e,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| {
        Error::Usage(format!(
            "--output {}: give a file name, not a folder",
            path.display()
        ))
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| io(&tmp, e))?;
        f.write_all(data).map_err(|e| io(&tmp, e))?;
        f.sync_all().map_err(|e| io(&tmp, e))?;
        drop(f);
        let mut perm = std::fs::metadata(&tmp)
            .map_err(|e| io(&tmp, e))?
            .permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o644);
        std::fs::set_permissions(&tmp, perm).map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
