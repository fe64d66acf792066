//! A tree as a plan (path → entry), and the one engine that brings a target folder in line with
//! a plan: used by `build` (host → master), `load` and `sync` (master → live).
//!
//! Safety rules, kept by construction:
//! - every folder in the target is opened one component at a time with `O_NOFOLLOW`, from the
//!   target's root fd, so a symlink planted in the target is never followed (it is replaced);
//! - a folder on another device (a mount point: the `/tmp` bind, `/chroot`) is never entered,
//!   changed or removed;
//! - files, symlinks and device nodes are created under a temporary name in the same folder
//!   and renamed over the old one, so a running process sees the old or the new file, never
//!   none or half of one.

use crate::sys;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Prefix of temporary names; leftovers from a crash are removed by the next run.
pub const TMP_PREFIX: &str = ".cb-tmp.";

/// Where a file's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Src {
    /// A host path (final component not followed).
    Host(PathBuf),
    /// A path relative to the source tree's root (opened beneath it, no symlinks).
    Tree(PathBuf),
    /// Generated content.
    Bytes(Vec<u8>),
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A folder.
    Dir,
    /// A regular file.
    File {
        /// Content.
        src: Src,
        /// Size in bytes.
        size: u64,
        /// Hardlink group (source device, inode) when the source has several links.
        link: Option<(u64, u64)>,
    },
    /// A symlink with this target (never followed by us).
    Symlink(PathBuf),
    /// A character device.
    Char(u64),
    /// A block device.
    Block(u64),
}

/// One path of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// What it is.
    pub kind: Kind,
    /// Permission bits (with setuid/setgid/sticky).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time (seconds, nanoseconds); `None`: now.
    pub mtime: Option<(i64, i64)>,
    /// `security.capability` value.
    pub caps: Option<Vec<u8>>,
}

impl Entry {
    /// A root-owned folder.
    pub fn dir(mode: u32) -> Self {
        Entry {
            kind: Kind::Dir,
            mode,
            uid: 0,
            gid: 0,
            mtime: None,
            caps: None,
        }
    }

    /// A root-owned generated file.
    pub fn bytes(content: Vec<u8>, mode: u32) -> Self {
        Entry {
            kind: Kind::File {
                size: content.len() as u64,
                src: Src::Bytes(content),
                link: None,
            },
            mode,
            uid: 0,
            gid: 0,
            mtime: None,
            caps: None,
        }
    }

    /// A root-owned symlink.
    pub fn symlink(target: impl Into<PathBuf>) -> Self {
        Entry {
            kind: Kind::Symlink(target.into()),
            mode: 0o777,
            uid: 0,
            gid: 0,
            mtime: None,
            caps: None,
        }
    }

    /// Size for reporting.
    pub fn size(&self) -> u64 {
        match &self.kind {
            Kind::File { size, .. } => *size,
            _ => 0,
        }
    }
}

/// Paths are relative (no leading `/`); the BTreeMap order puts parents before children.
pub type Plan = BTreeMap<PathBuf, Entry>;

/// What an apply did (or would do, in a dry run).
#[derive(Debug, Default, Clone)]
pub struct Changes {
    /// Created.
    pub added: Vec<PathBuf>,
    /// Replaced or metadata fixed.
    pub changed: Vec<PathBuf>,
    /// Removed (not in the plan).
    pub removed: Vec<PathBuf>,
    /// Left alone because they are on another mount (with a reason).
    pub skipped: Vec<String>,
    /// Bytes of file content written.
    pub bytes_written: u64,
}

impl Changes {
    /// True if nothing was (or would be) changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// Options for [`apply`].
#[derive(Default)]
pub struct Options {
    /// Only report.
    pub dry_run: bool,
    /// Compare file contents (BLAKE3) instead of size and mtime.
    pub checksum: bool,
    /// Remove target entries that are not in the plan.
    pub remove_extra: bool,
    /// Root of the source tree for [`Src::Tree`].
    pub src_root: Option<OwnedFd>,
    /// Show a progress bar (on a terminal only).
    pub progress: bool,
}

fn io_err(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

fn ctx(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

enum DirState {
    Open(Rc<OwnedFd>),
    Missing,
    MountPoint,
}

struct Target {
    dev: u64,
    dirs: HashMap<PathBuf, Option<Rc<OwnedFd>>>,
}

impl Target {
    fn dir(&mut self, rel: &Path) -> io::Result<DirState> {
        if let Some(d) = self.dirs.get(rel) {
            return Ok(match d {
                Some(fd) => DirState::Open(fd.clone()),
                None => DirState::MountPoint,
            });
        }
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Ok(DirState::Missing);
        };
        let parent = match self.dir(parent)? {
            DirState::Open(fd) => fd,
            other => return Ok(other),
        };
        match sys::open_subdir(parent.as_fd(), name) {
            Ok(fd) => {
                let st = sys::fstat(&fd)?;
                let state = if st.st_dev != self.dev {
                    self.dirs.insert(rel.to_path_buf(), None);
                    DirState::MountPoint
                } else {
                    let fd = Rc::new(fd);
                    self.dirs.insert(rel.to_path_buf(), Some(fd.clone()));
                    DirState::Open(fd)
                };
                Ok(state)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(DirState::Missing),
            // A symlink or a file where a folder should be: never followed; the plan replaces
            // it with a folder before its children come (a dry run treats it as missing).
            Err(e) if matches!(e.raw_os_error(), Some(20) | Some(40)) => Ok(DirState::Missing),
            Err(e) => Err(ctx(rel, e)),
        }
    }

    fn forget(&mut self, rel: &Path) {
        self.dirs.retain(|k, _| !k.starts_with(rel));
    }
}

fn file_type(st: &rustix::fs::Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

fn mtime_of(st: &rustix::fs::Stat) -> (i64, i64) {
    (st.st_mtime, st.st_mtime_nsec as i64)
}

fn timestamps(m: (i64, i64)) -> Timestamps {
    let ts = Timespec {
        tv_sec: m.0,
        tv_nsec: m.1 as _,
    };
    Timestamps {
        last_access: ts,
        last_modification: ts,
    }
}

/// Opens a file's source content.
fn open_src(src: &Src, src_root: Option<&OwnedFd>) -> io::Result<Box<dyn Read>> {
    Ok(match src {
        Src::Host(p) => {
            let fd = rustix::fs::open(
                p,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| {
                if e == rustix::io::Errno::NOENT {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!(
                            "{}: vanished from the host during the build (a package upgrade running?); run build again",
                            p.display()
                        ),
                    )
                } else {
                    ctx(p, io_err(e))
                }
            })?;
            Box::new(std::fs::File::from(fd))
        }
        Src::Tree(rel) => {
            let root = src_root.ok_or_else(|| io::Error::other("no source tree"))?;
            let fd = sys::open_beneath(root.as_fd(), rel).map_err(|e| ctx(rel, e))?;
            Box::new(std::fs::File::from(fd))
        }
        Src::Bytes(b) => Box::new(io::Cursor::new(b.clone())),
    })
}

/// BLAKE3 of everything a reader yields.
pub fn hash_reader(mut r: impl Read) -> io::Result<blake3::Hash> {
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize())
}

fn open_existing(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<std::fs::File> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .map_err(io_err)?;
    Ok(std::fs::File::from(fd))
}

fn same_content(
    e: &Entry,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    st: &rustix::fs::Stat,
    opts: &Options,
) -> io::Result<bool> {
    let Kind::File { src, size, .. } = &e.kind else {
        return Ok(false);
    };
    if *size != st.st_size as u64 {
        return Ok(false);
    }
    if let Src::Bytes(b) = src {
        let mut cur = Vec::with_capacity(b.len());
        open_existing(dir, name)?.read_to_end(&mut cur)?;
        return Ok(&cur == b);
    }
    if opts.checksum {
        let a = hash_reader(open_src(src, opts.src_root.as_ref())?)?;
        let b = hash_reader(open_existing(dir, name)?)?;
        return Ok(a == b);
    }
    Ok(e.mtime.is_none_or(|m| m == mtime_of(st)))
}

fn caps_differ(e: &Entry, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<bool> {
    if e.caps.is_none() {
        return Ok(false);
    }
    let f = open_existing(dir, name)?;
    Ok(sys::get_caps(f.as_fd()) != e.caps)
}

fn meta_differs(e: &Entry, st: &rustix::fs::Stat) -> bool {
    (st.st_mode & 0o7777) != e.mode || st.st_uid != e.uid || st.st_gid != e.gid
}

fn fix_meta(e: &Entry, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    match e.kind {
        Kind::Dir | Kind::File { .. } => {
            let fd = rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
                Mode::empty(),
            )
            .map_err(io_err)?;
            rustix::fs::fchown(
                &fd,
                Some(rustix::fs::Uid::from_raw(e.uid)),
                Some(rustix::fs::Gid::from_raw(e.gid)),
            )
            .map_err(io_err)?;
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(e.mode)).map_err(io_err)?;
            if let Some(c) = &e.caps {
                sys::set_caps(fd.as_fd(), c)?;
            }
        }
        Kind::Symlink(_) => {
            rustix::fs::chownat(
                dir,
                name,
                Some(rustix::fs::Uid::from_raw(e.uid)),
                Some(rustix::fs::Gid::from_raw(e.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(io_err)?;
        }
        Kind::Char(_) | Kind::Block(_) => {
            rustix::fs::chownat(
                dir,
                name,
                Some(rustix::fs::Uid::from_raw(e.uid)),
                Some(rustix::fs::Gid::from_raw(e.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(io_err)?;
            rustix::fs::chmodat(dir, name, Mode::from_raw_mode(e.mode), AtFlags::empty())
                .map_err(io_err)?;
        }
    }
    Ok(())
}

struct Writer<'a> {
    opts: &'a Options,
    counter: u64,
}

impl Writer<'_> {
    fn tmp_name(&mut self) -> OsString {
        self.counter += 1;
        OsString::from(format!(
            "{TMP_PREFIX}{}.{}",
            std::process::id(),
            self.counter
        ))
    }

    /// Creates the entry under a temporary name and renames it over `name`.
    fn put(
        &mut self,
        e: &Entry,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        link_to: Option<&(Rc<OwnedFd>, OsString)>,
    ) -> io::Result<u64> {
        let tmp = self.tmp_name();
        let r = self.put_tmp(e, dir, &tmp, link_to);
        match r {
            Ok(n) => {
                if let Err(err) = rustix::fs::renameat(dir, &tmp, dir, name) {
                    let _ = rustix::fs::unlinkat(dir, &tmp, AtFlags::empty());
                    return Err(io_err(err));
                }
                Ok(n)
            }
            Err(err) => {
                let _ = rustix::fs::unlinkat(dir, &tmp, AtFlags::empty());
                Err(err)
            }
        }
    }

    fn put_tmp(
        &mut self,
        e: &Entry,
        dir: BorrowedFd<'_>,
        tmp: &OsStr,
        link_to: Option<&(Rc<OwnedFd>, OsString)>,
    ) -> io::Result<u64> {
        let uid = Some(rustix::fs::Uid::from_raw(e.uid));
        let gid = Some(rustix::fs::Gid::from_raw(e.gid));
        match &e.kind {
            Kind::File { src, .. } => {
                if let Some((ldir, lname)) = link_to {
                    rustix::fs::linkat(ldir.as_fd(), lname, dir, tmp, AtFlags::empty())
                        .map_err(io_err)?;
                    return Ok(0);
                }
                let fd = rustix::fs::openat(
                    dir,
                    tmp,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(io_err)?;
                let mut out = std::fs::File::from(fd);
                let mut input = open_src(src, self.opts.src_root.as_ref())?;
                let n = io::copy(&mut input, &mut out)?;
                out.flush()?;
                rustix::fs::fchown(&out, uid, gid).map_err(io_err)?;
                rustix::fs::fchmod(&out, Mode::from_raw_mode(e.mode)).map_err(io_err)?;
                if let Some(c) = &e.caps {
                    sys::set_caps(out.as_fd(), c)?;
                }
                if let Some(m) = e.mtime {
                    rustix::fs::futimens(&out, &timestamps(m)).map_err(io_err)?;
                }
                Ok(n)
            }
            Kind::Symlink(target) => {
                rustix::fs::symlinkat(target.as_path(), dir, tmp).map_err(io_err)?;
                rustix::fs::chownat(dir, tmp, uid, gid, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(io_err)?;
                if let Some(m) = e.mtime {
                    rustix::fs::utimensat(dir, tmp, &timestamps(m), AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(io_err)?;
                }
                Ok(0)
            }
            Kind::Char(rdev) | Kind::Block(rdev) => {
                let ft = if matches!(e.kind, Kind::Char(_)) {
                    FileType::CharacterDevice
                } else {
                    FileType::BlockDevice
                };
                rustix::fs::mknodat(dir, tmp, ft, Mode::from_raw_mode(0o600), *rdev)
                    .map_err(io_err)?;
                rustix::fs::chownat(dir, tmp, uid, gid, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(io_err)?;
                rustix::fs::chmodat(dir, tmp, Mode::from_raw_mode(e.mode), AtFlags::empty())
                    .map_err(io_err)?;
                if let Some(m) = e.mtime {
                    rustix::fs::utimensat(dir, tmp, &timestamps(m), AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(io_err)?;
                }
                Ok(0)
            }
            Kind::Dir => Err(io::Error::other("folders are not renamed into place")),
        }
    }
}

/// Removes `name` in `dir` and everything below it, never crossing into another mount.
pub fn remove_all(dir: BorrowedFd<'_>, name: &OsStr, dev: u64) -> io::Result<()> {
    let Some(st) = sys::lstat_at(dir, name)? else {
        return Ok(());
    };
    if file_type(&st) == FileType::Directory {
        if st.st_dev != dev {
            return Err(io::Error::other(format!(
                "{} is a mount point: not removed",
                Path::new(name).display()
            )));
        }
        let sub = sys::open_subdir(dir, name)?;
        if sys::fstat(&sub)?.st_dev != dev {
            return Err(io::Error::other("mount point: not removed"));
        }
        for child in sys::list_dir(sub.as_fd())? {
            remove_all(sub.as_fd(), &child, dev)?;
        }
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(io_err)
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(io_err)
    }
}

/// Brings the folder `target` in line with `plan`.
pub fn apply(plan: &Plan, target: &Path, opts: &Options) -> io::Result<Changes> {
    let root = sys::open_root(target).map_err(|e| ctx(target, e))?;
    let dev = sys::fstat(&root)?.st_dev;
    let mut t = Target {
        dev,
        dirs: HashMap::new(),
    };
    t.dirs.insert(PathBuf::new(), Some(Rc::new(root)));
    let mut w = Writer { opts, counter: 0 };
    let mut ch = Changes::default();
    let mut links: HashMap<(u64, u64), (Rc<OwnedFd>, OsString)> = HashMap::new();
    let bar = if opts.progress {
        let b = indicatif::ProgressBar::new(plan.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };

    for (rel, e) in plan {
        bar.inc(1);
        if rel.as_os_str().is_empty() {
            continue;
        }
        let (Some(parent_rel), Some(name)) = (rel.parent(), rel.file_name()) else {
            continue;
        };
        let dir = match t.dir(parent_rel)? {
            DirState::Open(fd) => fd,
            DirState::MountPoint => {
                ch.skipped.push(format!(
                    "{}: below a mount point, left alone",
                    rel.display()
                ));
                continue;
            }
            DirState::Missing => {
                if opts.dry_run {
                    ch.added.push(rel.clone());
                    continue;
                }
                return Err(io::Error::other(format!(
                    "{}: parent folder missing (is it a symlink in the plan?)",
                    rel.display()
                )));
            }
        };
        let dfd = dir.as_fd();
        let existing = sys::lstat_at(dfd, name).map_err(|e| ctx(rel, e))?;
        let link_to = match &e.kind {
            Kind::File { link: Some(k), .. } => links.get(k).cloned(),
            _ => None,
        };
        // Decide.
        enum Act {
            Keep,
            Meta,
            Put,
            ReplaceDir,
        }
        let act = match (&e.kind, &existing) {
            (_, None) => Act::Put,
            (Kind::Dir, Some(st)) if file_type(st) == FileType::Directory => {
                if st.st_dev != dev {
                    ch.skipped
                        .push(format!("{}: mount point, left alone", rel.display()));
                    Act::Keep
                } else if meta_differs(e, st) {
                    Act::Meta
                } else {
                    Act::Keep
                }
            }
            (_, Some(st)) if file_type(st) == FileType::Directory => {
                if st.st_dev != dev {
                    ch.skipped
                        .push(format!("{}: mount point, left alone", rel.display()));
                    continue;
                }
                Act::ReplaceDir
            }
            (Kind::File { .. }, Some(st)) if file_type(st) == FileType::RegularFile => {
                if let Some((ldir, lname)) = &link_to {
                    match sys::lstat_at(ldir.as_fd(), lname)? {
                        Some(l) if l.st_ino == st.st_ino && l.st_dev == st.st_dev => Act::Keep,
                        _ => Act::Put,
                    }
                } else if !same_content(e, dfd, name, st, opts).map_err(|er| ctx(rel, er))? {
                    Act::Put
                } else if meta_differs(e, st) || caps_differ(e, dfd, name)? {
                    Act::Meta
                } else {
                    Act::Keep
                }
            }
            (Kind::Symlink(target), Some(st)) if file_type(st) == FileType::Symlink => {
                let cur = rustix::fs::readlinkat(dfd, name, Vec::new()).map_err(io_err)?;
                if cur.as_bytes() != target.as_os_str().as_bytes() {
                    Act::Put
                } else if st.st_uid != e.uid || st.st_gid != e.gid {
                    Act::Meta
                } else {
                    Act::Keep
                }
            }
            (Kind::Char(r) | Kind::Block(r), Some(st))
                if file_type(st) == device_file_type(&e.kind) =>
            {
                if st.st_rdev != *r {
                    Act::Put
                } else if meta_differs(e, st) {
                    Act::Meta
                } else {
                    Act::Keep
                }
            }
            _ => Act::Put,
        };
        match act {
            Act::Keep => {}
            Act::Meta => {
                ch.changed.push(rel.clone());
                if !opts.dry_run {
                    fix_meta(e, dfd, name).map_err(|er| ctx(rel, er))?;
                }
            }
            Act::Put | Act::ReplaceDir => {
                if existing.is_some() {
                    ch.changed.push(rel.clone());
                } else {
                    ch.added.push(rel.clone());
                }
                if opts.dry_run {
                    if let Kind::File { size, .. } = e.kind {
                        ch.bytes_written += size;
                    }
                } else {
                    if matches!(act, Act::ReplaceDir) {
                        // A folder where a non-folder belongs (not atomic, rare).
                        t.forget(rel);
                        remove_all(dfd, name, dev).map_err(|er| ctx(rel, er))?;
                    }
                    if let Kind::Dir = e.kind {
                        if existing.is_some() && !matches!(act, Act::ReplaceDir) {
                            // A symlink or file where a folder belongs: remove the link itself
                            // (never what it points to).
                            rustix::fs::unlinkat(dfd, name, AtFlags::empty())
                                .map_err(|er| ctx(rel, io_err(er)))?;
                        }
                        rustix::fs::mkdirat(dfd, name, Mode::from_raw_mode(0o700))
                            .map_err(|er| ctx(rel, io_err(er)))?;
                        fix_meta(e, dfd, name).map_err(|er| ctx(rel, er))?;
                    } else {
                        ch.bytes_written += w
                            .put(e, dfd, name, link_to.as_ref())
                            .map_err(|er| ctx(rel, er))?;
                    }
                }
            }
        }
        if let Kind::File { link: Some(k), .. } = &e.kind {
            links
                .entry(*k)
                .or_insert_with(|| (dir.clone(), name.to_os_string()));
        }
    }
    bar.finish_and_clear();

    if opts.remove_extra {
        let mut extras = Vec::new();
        find_extras(&mut t, Path::new(""), plan, &mut extras, &mut ch.skipped)?;
        for rel in extras {
            let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
                continue;
            };
            if let DirState::Open(dir) = t.dir(parent)? {
                if !opts.dry_run {
                    t.forget(&rel);
                    if let Err(e) = remove_all(dir.as_fd(), name, dev) {
                        ch.skipped.push(format!("{}: {e}", rel.display()));
                        continue;
                    }
                }
                ch.removed.push(rel);
            }
        }
    }

    // Folder times last (writing inside a folder changes its mtime).
    if !opts.dry_run {
        for (rel, e) in plan.iter().rev() {
            let (Kind::Dir, Some(m)) = (&e.kind, e.mtime) else {
                continue;
            };
            let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
                continue;
            };
            if let DirState::Open(dir) = t.dir(parent)? {
                if let Some(st) = sys::lstat_at(dir.as_fd(), name)? {
                    if st.st_dev == dev
                        && file_type(&st) == FileType::Directory
                        && mtime_of(&st) != m
                    {
                        let _ = rustix::fs::utimensat(
                            dir.as_fd(),
                            name,
                            &timestamps(m),
                            AtFlags::SYMLINK_NOFOLLOW,
                        );
                    }
                }
            }
        }
    }
    Ok(ch)
}

fn find_extras(
    t: &mut Target,
    rel: &Path,
    plan: &Plan,
    out: &mut Vec<PathBuf>,
    skipped: &mut Vec<String>,
) -> io::Result<()> {
    let dir = match t.dir(rel)? {
        DirState::Open(fd) => fd,
        DirState::MountPoint => return Ok(()),
        DirState::Missing => return Ok(()),
    };
    for name in sys::list_dir(dir.as_fd())? {
        let child = rel.join(&name);
        match plan.get(&child) {
            None => out.push(child),
            Some(e) if e.kind == Kind::Dir => {
                if let Some(st) = sys::lstat_at(dir.as_fd(), &name)? {
                    if file_type(&st) == FileType::Directory {
                        if st.st_dev != t.dev {
                            skipped
                                .push(format!("{}: mount point, not descended", child.display()));
                        } else {
                            find_extras(t, &child, plan, out, skipped)?;
                        }
                    }
                }
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Visits every entry of a tree (not following symlinks, not entering other mounts).
/// The callback gets the relative path, the lstat, and the folder fd holding the entry.
pub fn walk(
    root: &Path,
    f: &mut dyn FnMut(&Path, &rustix::fs::Stat, BorrowedFd<'_>, &OsStr) -> io::Result<()>,
) -> io::Result<Vec<PathBuf>> {
    let fd = sys::open_root(root).map_err(|e| ctx(root, e))?;
    let dev = sys::fstat(&fd)?.st_dev;
    let mut mounts = Vec::new();
    walk_dir(&fd, Path::new(""), dev, f, &mut mounts)?;
    Ok(mounts)
}

fn walk_dir(
    dir: &OwnedFd,
    rel: &Path,
    dev: u64,
    f: &mut dyn FnMut(&Path, &rustix::fs::Stat, BorrowedFd<'_>, &OsStr) -> io::Result<()>,
    mounts: &mut Vec<PathBuf>,
) -> io::Result<()> {
    for name in sys::list_dir(dir.as_fd())? {
        let child = rel.join(&name);
        let Some(st) = sys::lstat_at(dir.as_fd(), &name)? else {
            continue;
        };
        if file_type(&st) == FileType::Directory && st.st_dev != dev {
            mounts.push(child);
            continue;
        }
        f(&child, &st, dir.as_fd(), &name)?;
        if file_type(&st) == FileType::Directory {
            let sub = sys::open_subdir(dir.as_fd(), &name).map_err(|e| ctx(&child, e))?;
            if sys::fstat(&sub)?.st_dev != dev {
                mounts.push(child);
                continue;
            }
            walk_dir(&sub, &child, dev, f, mounts)?;
        }
    }
    Ok(())
}

/// Reads a tree (the master) into a plan whose files come from it ([`Src::Tree`]).
pub fn plan_from_tree(root: &Path) -> io::Result<Plan> {
    let mut plan = Plan::new();
    let rootfd = sys::open_root(root).map_err(|e| ctx(root, e))?;
    let st = sys::fstat(&rootfd)?;
    plan.insert(
        PathBuf::new(),
        Entry {
            kind: Kind::Dir,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: Some(mtime_of(&st)),
            caps: None,
        },
    );
    walk(root, &mut |rel, st, dir, name| {
        if name.as_bytes().starts_with(TMP_PREFIX.as_bytes()) {
            return Ok(());
        }
        let kind = match file_type(st) {
            FileType::Directory => Kind::Dir,
            FileType::RegularFile => Kind::File {
                src: Src::Tree(rel.to_path_buf()),
                size: st.st_size as u64,
                link: (st.st_nlink > 1).then_some((st.st_dev, st.st_ino)),
            },
            FileType::Symlink => {
                let t = rustix::fs::readlinkat(dir, name, Vec::new()).map_err(io_err)?;
                Kind::Symlink(PathBuf::from(OsString::from_vec(t.into_bytes())))
            }
            FileType::CharacterDevice => Kind::Char(st.st_rdev),
            FileType::BlockDevice => Kind::Block(st.st_rdev),
            _ => return Ok(()),
        };
        let caps = if matches!(kind, Kind::File { .. }) && st.st_mode & 0o111 != 0 {
            let f = open_existing(dir, name)?;
            sys::get_caps(f.as_fd())
        } else {
            None
        };
        plan.insert(
            rel.to_path_buf(),
            Entry {
                kind,
                mode: st.st_mode & 0o7777,
                uid: st.st_uid,
                gid: st.st_gid,
                mtime: Some(mtime_of(st)),
                caps,
            },
        );
        Ok(())
    })?;
    Ok(plan)
}

/// The file type a device entry must have on disk to be kept as it is.
fn device_file_type(kind: &Kind) -> FileType {
    if matches!(kind, Kind::Char(_)) {
        FileType::CharacterDevice
    } else {
        FileType::BlockDevice
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn scratch() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("cb-tree")
            .tempdir()
            .unwrap()
    }

    #[test]
    fn apply_creates_replaces_and_removes() {
        let d = scratch();
        let t = d.path().join("t");
        std::fs::create_dir(&t).unwrap();
        std::fs::write(t.join("stale"), b"x").unwrap();
        let mut plan = Plan::new();
        plan.insert("a".into(), Entry::dir(0o755));
        plan.insert("a/f".into(), Entry::bytes(b"hello".to_vec(), 0o644));
        plan.insert("a/l".into(), Entry::symlink("f"));
        let ch = apply(
            &plan,
            &t,
            &Options {
                remove_extra: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(ch.added.len(), 3);
        assert_eq!(ch.removed, vec![PathBuf::from("stale")]);
        assert_eq!(std::fs::read(t.join("a/f")).unwrap(), b"hello");
        assert_eq!(std::fs::read_link(t.join("a/l")).unwrap(), Path::new("f"));
        assert_eq!(
            std::fs::metadata(t.join("a/f"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o644
        );
        // Second run: nothing to do.
        let ch = apply(
            &plan,
            &t,
            &Options {
                remove_extra: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(ch.is_empty(), "{ch:?}");
        // Changed content is replaced by rename: a new inode.
        let ino = std::fs::metadata(t.join("a/f")).unwrap().ino();
        plan.insert("a/f".into(), Entry::bytes(b"world".to_vec(), 0o644));
        let ch = apply(&plan, &t, &Options::default()).unwrap();
        assert_eq!(ch.changed, vec![PathBuf::from("a/f")]);
        assert_ne!(std::fs::metadata(t.join("a/f")).unwrap().ino(), ino);
        assert_eq!(std::fs::read(t.join("a/f")).unwrap(), b"world");
    }

    #[test]
    fn planted_symlink_is_replaced_not_followed() {
        let d = scratch();
        let t = d.path().join("t");
        let victim = d.path().join("victim");
        std::fs::create_dir(&t).unwrap();
        std::fs::create_dir(&victim).unwrap();
        std::fs::write(victim.join("passwd"), b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, t.join("etc")).unwrap();
        let mut plan = Plan::new();
        plan.insert("etc".into(), Entry::dir(0o755));
        plan.insert(
            "etc/passwd".into(),
            Entry::bytes(b"root:x:0:0::/:/bin/sh\n".to_vec(), 0o644),
        );
        apply(
            &plan,
            &t,
            &Options {
                remove_extra: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(std::fs::read(victim.join("passwd")).unwrap(), b"precious");
        assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 1);
        assert!(std::fs::symlink_metadata(t.join("etc")).unwrap().is_dir());
        assert_eq!(
            std::fs::read(t.join("etc/passwd")).unwrap(),
            b"root:x:0:0::/:/bin/sh\n"
        );
    }

    #[test]
    fn plan_from_tree_round_trips_with_hardlinks() {
        let d = scratch();
        let a = d.path().join("a");
        let b = d.path().join("b");
        std::fs::create_dir_all(a.join("x")).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(a.join("x/one"), b"1").unwrap();
        std::fs::hard_link(a.join("x/one"), a.join("two")).unwrap();
        std::os::unix::fs::symlink("/x/one", a.join("abs")).unwrap();
        let plan = plan_from_tree(&a).unwrap();
        let opts = Options {
            remove_extra: true,
            src_root: Some(sys::open_root(&a).unwrap()),
            ..Default::default()
        };
        apply(&plan, &b, &opts).unwrap();
        let m1 = std::fs::metadata(b.join("x/one")).unwrap();
        let m2 = std::fs::metadata(b.join("two")).unwrap();
        assert_eq!(m1.ino(), m2.ino(), "hardlink kept");
        assert_eq!(
            std::fs::read_link(b.join("abs")).unwrap(),
            Path::new("/x/one")
        );
        assert_eq!(
            m1.modified().unwrap(),
            std::fs::metadata(a.join("x/one"))
                .unwrap()
                .modified()
                .unwrap()
        );
        let ch = apply(&plan, &b, &opts).unwrap();
        assert!(ch.is_empty(), "{ch:?}");
    }
}
