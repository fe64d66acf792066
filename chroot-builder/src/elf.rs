//! Shared-library closure by parsing ELF (interpreter, DT_NEEDED, RPATH/RUNPATH, `$ORIGIN`), as
//! `ld.so` would search, inside any root: the host (`/`) for `build`, the tree for `check`.
//! Nothing is ever executed (unlike `ldd`).

use crate::sys;
use rustix::fd::{AsFd, OwnedFd};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The compiled-in search folders of Debian's x86-64 `ld.so` (used when no cache applies).
pub const SYSTEM_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib",
    "/usr/lib",
    "/lib64",
    "/usr/lib64",
];

/// What the loader needs from one ELF object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    /// PT_INTERP.
    pub interpreter: Option<String>,
    /// DT_NEEDED.
    pub needed: Vec<String>,
    /// DT_RPATH entries.
    pub rpath: Vec<String>,
    /// DT_RUNPATH entries.
    pub runpath: Vec<String>,
    /// 64-bit.
    pub is_64: bool,
    /// e_machine.
    pub machine: u16,
}

/// True if the bytes start with the ELF magic.
pub fn is_elf(head: &[u8]) -> bool {
    head.starts_with(b"\x7fELF")
}

/// (class 64?, machine) from an ELF header, if it is one.
pub fn header_kind(head: &[u8]) -> Option<(bool, u16)> {
    if !is_elf(head) || head.len() < 20 {
        return None;
    }
    let is_64 = head[4] == 2;
    let machine = if head[5] == 1 {
        u16::from_le_bytes([head[18], head[19]])
    } else {
        u16::from_be_bytes([head[18], head[19]])
    };
    Some((is_64, machine))
}

/// Parses an ELF executable or shared object; `None` for other files (and relocatable objects,
/// which the loader never loads).
pub fn parse(bytes: &[u8]) -> Option<ElfInfo> {
    if !is_elf(bytes) {
        return None;
    }
    let elf = goblin::elf::Elf::parse(bytes).ok()?;
    if !matches!(
        elf.header.e_type,
        goblin::elf::header::ET_EXEC | goblin::elf::header::ET_DYN
    ) {
        return None;
    }
    let split = |v: &Vec<&str>| -> Vec<String> {
        v.iter()
            .flat_map(|s| s.split(':'))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    Some(ElfInfo {
        interpreter: elf.interpreter.map(str::to_string),
        needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
        rpath: split(&elf.rpaths),
        runpath: split(&elf.runpaths),
        is_64: elf.is_64,
        machine: elf.header.e_machine,
    })
}

/// A root in which paths are looked up: the host, or a tree seen as after chroot.
pub enum Root {
    /// The host's `/`.
    Host,
    /// A tree; symlinks resolve with it as `/`.
    Tree(OwnedFd),
}

impl Root {
    /// Opens a file as a program in this root would.
    pub fn open(&self, path: &Path) -> Option<std::fs::File> {
        match self {
            Root::Host => std::fs::File::open(path).ok(),
            Root::Tree(fd) => sys::open_in_root(fd.as_fd(), path)
                .ok()
                .map(std::fs::File::from),
        }
    }

    fn read_dir(&self, path: &Path) -> Vec<String> {
        let fd = match self {
            Root::Host => sys::open_root(path).ok(),
            Root::Tree(root) => sys::open_in_root(root.as_fd(), path).ok(),
        };
        let Some(fd) = fd else { return Vec::new() };
        sys::list_dir(fd.as_fd())
            .unwrap_or_default()
            .into_iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect()
    }
}

/// Finds libraries as `ld.so` does, caching what it has read.
pub struct Resolver {
    root: Root,
    dirs: Vec<PathBuf>,
    headers: HashMap<PathBuf, Option<(bool, u16)>>,
}

impl Resolver {
    /// A resolver over `root` searching `extra_dirs` (e.g. from ld.so.conf) then the system dirs.
    pub fn new(root: Root, extra_dirs: Vec<PathBuf>) -> Self {
        let mut dirs = extra_dirs;
        for d in SYSTEM_DIRS {
            let d = PathBuf::from(d);
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
        Resolver {
            root,
            dirs,
            headers: HashMap::new(),
        }
    }

    /// The root.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// Folders named by the root's `/etc/ld.so.conf` (with `include`s).
    pub fn ld_so_conf_dirs(root: &Root) -> Vec<PathBuf> {
        let mut out = Vec::new();
        read_ld_conf(root, Path::new("/etc/ld.so.conf"), &mut out, 0);
        out
    }

    fn header(&mut self, path: &Path) -> Option<(bool, u16)> {
        if let Some(h) = self.headers.get(path) {
            return *h;
        }
        let h = self.root.open(path).and_then(|mut f| {
            if !f.metadata().ok()?.is_file() {
                return None;
            }
            let mut buf = [0u8; 64];
            let n = f.read(&mut buf).ok()?;
            header_kind(&buf[..n])
        });
        self.headers.insert(path.to_path_buf(), h);
        h
    }

    /// Reads and parses an object in this root.
    pub fn info(&self, path: &Path) -> Option<ElfInfo> {
        let mut f = self.root.open(path)?;
        let mut head = [0u8; 4];
        f.read_exact(&mut head).ok()?;
        if !is_elf(&head) {
            return None;
        }
        let mut bytes = head.to_vec();
        f.read_to_end(&mut bytes).ok()?;
        parse(&bytes)
    }

    /// Where `name`, needed by `obj` (found at `obj_path`), is loaded from; `None` if nowhere.
    pub fn find(&mut self, name: &str, obj: &ElfInfo, obj_path: &Path) -> Option<PathBuf> {
        let want = (obj.is_64, obj.machine);
        if name.contains('/') {
            let p = PathBuf::from(name);
            return (self.header(&p) == Some(want)).then_some(p);
        }
        let origin = obj_path
            .parent()
            .unwrap_or(Path::new("/"))
            .to_string_lossy()
            .into_owned();
        let expand = |d: &String| -> PathBuf {
            PathBuf::from(
                d.replace("${ORIGIN}", &origin)
                    .replace("$ORIGIN", &origin)
                    .replace("${LIB}", "lib/x86_64-linux-gnu")
                    .replace("$LIB", "lib/x86_64-linux-gnu")
                    .replace("${PLATFORM}", "x86_64")
                    .replace("$PLATFORM", "x86_64"),
            )
        };
        let mut search: Vec<PathBuf> = Vec::new();
        if obj.runpath.is_empty() {
            search.extend(obj.rpath.iter().map(expand));
        }
        search.extend(obj.runpath.iter().map(expand));
        search.extend(self.dirs.iter().cloned());
        for d in search {
            let p = d.join(name);
            if self.header(&p) == Some(want) {
                return Some(p);
            }
        }
        None
    }
}

fn read_ld_conf(root: &Root, file: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    if depth > 8 {
        return;
    }
    let Some(mut f) = root.open(file) else { return };
    let mut text = String::new();
    if f.read_to_string(&mut text).is_err() {
        return;
    }
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(pat) = line.strip_prefix("include") {
            let pat = pat.trim();
            let pat = if pat.starts_with('/') {
                PathBuf::from(pat)
            } else {
                Path::new("/etc").join(pat)
            };
            let (Some(dir), Some(glob)) = (pat.parent(), pat.file_name()) else {
                continue;
            };
            let glob = glob.to_string_lossy();
            let mut names: Vec<String> = root
                .read_dir(dir)
                .into_iter()
                .filter(|n| crate::glob::matches(&glob, n))
                .collect();
            names.sort();
            for n in names {
                read_ld_conf(root, &dir.join(n), out, depth + 1);
            }
        } else if line.starts_with('/') {
            let p = PathBuf::from(line);
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_bash_like_the_loader() {
        let bytes = std::fs::read("/bin/bash").unwrap();
        let info = parse(&bytes).unwrap();
        assert_eq!(
            info.interpreter.as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        assert!(info.needed.iter().any(|n| n == "libc.so.6"), "{info:?}");
        assert!(info.is_64);
    }

    #[test]
    fn not_elf_is_none() {
        assert!(parse(b"#!/bin/sh\necho hi\n").is_none());
        assert!(header_kind(b"\x7fEL").is_none());
    }

    #[test]
    fn finds_libc_on_host() {
        let mut r = Resolver::new(Root::Host, Resolver::ld_so_conf_dirs(&Root::Host));
        let info = parse(&std::fs::read("/bin/ls").unwrap()).unwrap();
        let libc = r.find("libc.so.6", &info, Path::new("/bin/ls")).unwrap();
        assert!(libc.ends_with("libc.so.6"), "{libc:?}");
        assert!(r
            .find("libdoesnotexist.so.9", &info, Path::new("/bin/ls"))
            .is_none());
    }
}
