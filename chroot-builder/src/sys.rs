//! The few system calls that need care: mounts, the mount table, and opening paths inside a
//! tree without following symlinks. All through rustix's safe wrappers.
//!
//! Preconditions are stated per function; every path handed to the mount calls has been checked
//! by `manifest::check_tree_paths` (absolute, no symlink component, root-owned parents).

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::mount::{MountFlags, UnmountFlags};
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The xattr holding file capabilities.
pub const CAP_XATTR: &str = "security.capability";

fn to_io(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// Mounts a fresh tmpfs at `target` (an existing, empty, root-owned folder). `nodev` when no
/// device nodes are needed; `nosuid` unless setuid files are allow-listed.
pub fn mount_tmpfs(target: &Path, size: &str, nodev: bool, nosuid: bool) -> io::Result<()> {
    let mut flags = MountFlags::empty();
    if nodev {
        flags |= MountFlags::NODEV;
    }
    if nosuid {
        flags |= MountFlags::NOSUID;
    }
    let data = CString::new(format!("size={size},mode=0755,uid=0,gid=0"))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in tmpfs size"))?;
    rustix::mount::mount("tmpfs", target, "tmpfs", flags, Some(data.as_c_str())).map_err(to_io)
}

/// Bind-mounts host folder `source` at `target` (a folder inside the live tree, opened and
/// checked by the caller not to be a symlink); read-only when asked. nosuid and nodev always.
pub fn bind(source: &Path, target: &Path, readonly: bool) -> io::Result<()> {
    rustix::mount::mount_bind(source, target).map_err(to_io)?;
    let mut flags = MountFlags::BIND | MountFlags::NOSUID | MountFlags::NODEV;
    if readonly {
        flags |= MountFlags::RDONLY;
    }
    if let Err(e) = rustix::mount::mount_remount(target, flags, "") {
        let _ = rustix::mount::unmount(target, UnmountFlags::empty());
        return Err(to_io(e));
    }
    Ok(())
}

/// Unmounts `target` (a mount point read from the mount table). Never lazy: a busy mount is
/// reported, not hidden.
pub fn unmount(target: &Path) -> io::Result<()> {
    rustix::mount::unmount(target, UnmountFlags::NOFOLLOW).map_err(to_io)
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Filesystem type (`tmpfs`, `ext4`...).
    pub fstype: String,
    /// Root of the mount within its filesystem (for binds: the source folder).
    pub root: PathBuf,
}

fn unescape(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

/// Parses mountinfo text.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let f: Vec<&str> = pre.split(' ').collect();
            let fstype = post.split(' ').next()?;
            Some(MountInfo {
                root: unescape(f.get(3)?),
                mount_point: unescape(f.get(4)?),
                fstype: fstype.to_string(),
            })
        })
        .collect()
}

/// The current mount table, in mount order.
pub fn mounts() -> io::Result<Vec<MountInfo>> {
    Ok(parse_mountinfo(&std::fs::read_to_string(
        "/proc/self/mountinfo",
    )?))
}

/// Opens a tree root (a folder that must not be a symlink).
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(to_io)
}

/// Opens folder `name` (one component) in `dir` without following a symlink.
pub fn open_subdir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(to_io)
}

/// Opens `rel` below `root` for reading, refusing any symlink or `..` on the way and at the
/// end (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS).
pub fn open_beneath(root: BorrowedFd<'_>, rel: &Path) -> io::Result<OwnedFd> {
    rustix::fs::openat2(
        root,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(to_io)
}

/// Opens `path` as the tree's programs would see it after chroot (symlinks resolved with the
/// tree as `/`: RESOLVE_IN_ROOT). Used to check that libraries resolve inside the tree.
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path) -> io::Result<OwnedFd> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    rustix::fs::openat2(
        root,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(to_io)
}

/// lstat of `name` in `dir`; `None` if it does not exist.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<rustix::fs::Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(to_io(e)),
    }
}

/// fstat.
pub fn fstat(fd: impl AsFd) -> io::Result<rustix::fs::Stat> {
    rustix::fs::fstat(fd).map_err(to_io)
}

/// Names in a folder (without `.` and `..`), sorted.
pub fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let mut d = rustix::fs::Dir::read_from(dir).map_err(to_io)?;
    let mut names = Vec::new();
    while let Some(ent) = d.read() {
        let ent = ent.map_err(to_io)?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    names.sort();
    Ok(names)
}

/// File capabilities of an open file, if any.
pub fn get_caps(fd: BorrowedFd<'_>) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    match rustix::fs::fgetxattr(fd, CAP_XATTR, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => None,
    }
}

/// File capabilities of a path (not following a final symlink), if any.
pub fn get_caps_path(path: &Path) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    match rustix::fs::lgetxattr(path, CAP_XATTR, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => None,
    }
}

/// Sets file capabilities on an open file (after chown, which clears them).
pub fn set_caps(fd: BorrowedFd<'_>, caps: &[u8]) -> io::Result<()> {
    rustix::fs::fsetxattr(fd, CAP_XATTR, caps, rustix::fs::XattrFlags::empty()).map_err(to_io)
}

/// Bytes used and inodes used of the filesystem holding `path`.
pub fn fs_usage(path: &Path) -> io::Result<(u64, u64)> {
    let v = rustix::fs::statvfs(path).map_err(to_io)?;
    Ok((
        (v.f_blocks - v.f_bfree) * v.f_frsize,
        v.f_files.saturating_sub(v.f_ffree),
    ))
}

/// Effective uid.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_parsed_and_unescaped() {
        let t = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                 30 22 0:40 /tmp /var/suexec/base\\040os/tmp rw,nosuid - ext4 /dev/vda rw\n";
        let m = parse_mountinfo(t);
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].mount_point, Path::new("/var/suexec/base os/tmp"));
        assert_eq!(m[1].root, Path::new("/tmp"));
        assert_eq!(m[0].fstype, "ext4");
    }
}
