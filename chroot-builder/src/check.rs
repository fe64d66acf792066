//! `check`: audits the live tree (or the master when live is not loaded): setuid/setgid bits,
//! files and folders writable by users, owners, unexpected device nodes, symlinks that escape,
//! libraries that do not resolve inside the tree, and whole-file BLAKE3 drift from the master.
//! Mount points (the `/tmp` bind, `/chroot`) are never descended into.

use crate::elf::{self, Resolver, Root};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::sys;
use crate::tree::{self, TMP_PREFIX};
use rustix::fd::AsFd;
use rustix::fs::FileType;
use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Short kind (`setuid`, `writable`, `device`, `symlink`, `library`, `drift`, `owner`).
    pub kind: &'static str,
    /// The path inside the tree.
    pub path: String,
    /// What is wrong and what to do.
    pub detail: String,
}

struct Meta {
    ft: FileType,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    rdev: u64,
    link: Option<PathBuf>,
}

fn scan(root: &Path) -> Result<(BTreeMap<PathBuf, Meta>, Vec<PathBuf>)> {
    let mut map = BTreeMap::new();
    let mounts = tree::walk(root, &mut |rel, st, dir, name| {
        if name.as_bytes().starts_with(TMP_PREFIX.as_bytes()) {
            return Ok(());
        }
        let ft = FileType::from_raw_mode(st.st_mode);
        let link = if ft == FileType::Symlink {
            rustix::fs::readlinkat(dir, name, Vec::new())
                .ok()
                .map(|t| PathBuf::from(std::ffi::OsStr::from_bytes(t.as_bytes())))
        } else {
            None
        };
        map.insert(
            rel.to_path_buf(),
            Meta {
                ft,
                mode: st.st_mode & 0o7777,
                uid: st.st_uid,
                gid: st.st_gid,
                size: st.st_size as u64,
                rdev: st.st_rdev,
                link,
            },
        );
        Ok(())
    })
    .map_err(|e| Error::io(root, e))?;
    Ok((map, mounts))
}

/// True if a relative symlink at `rel` (inside the tree) climbs above the tree's root.
pub fn escapes(rel: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false; // resolved against the tree's root after chroot
    }
    let mut depth: i64 = rel.parent().map_or(0, |p| p.components().count() as i64);
    for c in target.components() {
        match c {
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    false
}

fn hash_file(root: &rustix::fd::OwnedFd, rel: &Path) -> Option<blake3::Hash> {
    let fd = sys::open_beneath(root.as_fd(), rel).ok()?;
    tree::hash_reader(std::fs::File::from(fd)).ok()
}

/// Audits the tree at `target` against the manifest and (when given) the master.
pub fn check(
    m: &Manifest,
    target: &Path,
    master: Option<&Path>,
    disk: Option<&Path>,
) -> Result<Vec<Finding>> {
    let mut found = Vec::new();
    let (tree_map, mounts) = scan(target)?;
    let setuid_allow: HashSet<PathBuf> = m
        .setuid
        .allow
        .iter()
        .map(|p| PathBuf::from(p.trim_start_matches('/')))
        .collect();
    let mut host_devs: BTreeMap<PathBuf, u64> = BTreeMap::new();
    for d in &m.devices.allow {
        if let Ok(md) = std::fs::symlink_metadata(Path::new("/dev").join(d)) {
            use std::os::unix::fs::MetadataExt;
            host_devs.insert(Path::new("dev").join(d), md.rdev());
        }
    }
    let mount_set: HashSet<&PathBuf> = mounts.iter().collect();
    let root_fd = sys::open_root(target).map_err(|e| Error::io(target, e))?;
    let mut resolver = Resolver::new(
        Root::Tree(sys::open_root(target).map_err(|e| Error::io(target, e))?),
        if tree_map.contains_key(Path::new("etc/ld.so.cache")) {
            Resolver::ld_so_conf_dirs(&Root::Tree(
                sys::open_root(target).map_err(|e| Error::io(target, e))?,
            ))
        } else {
            Vec::new()
        },
    );
    for (rel, meta) in &tree_map {
        let shown = format!("/{}", rel.display());
        if meta.ft != FileType::Directory
            && meta.ft != FileType::Symlink
            && meta.mode & 0o6000 != 0
            && !setuid_allow.contains(rel)
        {
            found.push(Finding {
                kind: "setuid",
                path: shown.clone(),
                detail: format!("mode {:o}: remove the bit (chroot-builder sync restores the master's mode) or allow-list it in [setuid]", meta.mode),
            });
        }
        if meta.ft != FileType::Symlink && (meta.uid != 0 || meta.gid != 0) {
            found.push(Finding {
                kind: "owner",
                path: shown.clone(),
                detail: format!(
                    "owned by {}:{}, not root: run chroot-builder sync",
                    meta.uid, meta.gid
                ),
            });
        }
        if meta.ft != FileType::Symlink && meta.mode & 0o022 != 0 {
            let sticky_tmp = rel == Path::new("tmp") && meta.mode == 0o1777;
            let is_dev = matches!(meta.ft, FileType::CharacterDevice | FileType::BlockDevice);
            if !sticky_tmp && !is_dev {
                found.push(Finding {
                    kind: "writable",
                    path: shown.clone(),
                    detail: format!(
                        "mode {:o} lets other users write it: chmod go-w, or sync from master",
                        meta.mode
                    ),
                });
            }
        }
        match meta.ft {
            FileType::CharacterDevice | FileType::BlockDevice
                if host_devs.get(rel) != Some(&meta.rdev) =>
            {
                found.push(Finding {
                    kind: "device",
                    path: shown.clone(),
                    detail: "device node not in [devices] allow (or not the host's): remove it"
                        .to_string(),
                });
            }
            FileType::Fifo | FileType::Socket => found.push(Finding {
                kind: "device",
                path: shown.clone(),
                detail: "fifo or socket in the tree: remove it".to_string(),
            }),
            FileType::Symlink => {
                if let Some(t) = &meta.link {
                    if escapes(rel, t) {
                        found.push(Finding {
                            kind: "symlink",
                            path: shown.clone(),
                            detail: format!(
                                "-> {} climbs out of the tree: make it absolute or remove it",
                                t.display()
                            ),
                        });
                    }
                }
            }
            FileType::RegularFile => {
                check_elf(&mut resolver, &root_fd, rel, &shown, &mut found);
            }
            _ => {}
        }
    }
    let _ = mount_set;
    // The disk tier (bind-mounted read-only at /chroot): same rules; its ELF modules must
    // resolve against the tree.
    if let Some(disk) = disk.filter(|d| d.is_dir()) {
        let (disk_map, _) = scan(disk)?;
        let disk_fd = sys::open_root(disk).map_err(|e| Error::io(disk, e))?;
        for (rel, meta) in &disk_map {
            let shown = format!("/chroot/{}", rel.display());
            if meta.ft == FileType::Symlink {
                if let Some(t) = &meta.link {
                    if escapes(&Path::new("chroot").join(rel), t) {
                        found.push(Finding {
                            kind: "symlink",
                            path: shown.clone(),
                            detail: format!(
                                "-> {} climbs out of the tree: make it absolute or remove it",
                                t.display()
                            ),
                        });
                    }
                }
                continue;
            }
            if meta.ft != FileType::Directory && meta.mode & 0o6000 != 0 {
                found.push(Finding {
                    kind: "setuid",
                    path: shown.clone(),
                    detail: format!(
                        "mode {:o} on the disk tier: chmod ug-s, then build",
                        meta.mode
                    ),
                });
            }
            if meta.mode & 0o022 != 0 || meta.uid != 0 {
                found.push(Finding {
                    kind: "writable",
                    path: shown.clone(),
                    detail: format!("mode {:o} owner {}: the disk tier must be root's and not writable by others: build", meta.mode, meta.uid),
                });
            }
            match meta.ft {
                FileType::RegularFile => {
                    check_elf_at(
                        &mut resolver,
                        &disk_fd,
                        rel,
                        &Path::new("/").join(rel),
                        &shown,
                        &mut found,
                    );
                }
                FileType::CharacterDevice
                | FileType::BlockDevice
                | FileType::Fifo
                | FileType::Socket => {
                    found.push(Finding {
                        kind: "device",
                        path: shown.clone(),
                        detail: "special file on the disk tier: remove it".to_string(),
                    });
                }
                _ => {}
            }
        }
    }
    if let Some(master) = master {
        let (master_map, _) = scan(master)?;
        let master_fd = sys::open_root(master).map_err(|e| Error::io(master, e))?;
        for (rel, mm) in &master_map {
            let shown = format!("/{}", rel.display());
            if mounts.iter().any(|m| rel.starts_with(m)) && rel.components().count() > 1 {
                continue;
            }
            let Some(lm) = tree_map.get(rel) else {
                if !mount_set.contains(rel) {
                    found.push(Finding {
                        kind: "drift",
                        path: shown,
                        detail: "in master, missing in live: run chroot-builder sync".to_string(),
                    });
                }
                continue;
            };
            if lm.ft != mm.ft {
                found.push(Finding {
                    kind: "drift",
                    path: shown,
                    detail: "type differs from master: run chroot-builder sync".to_string(),
                });
                continue;
            }
            if lm.mode != mm.mode || lm.uid != mm.uid || lm.gid != mm.gid {
                found.push(Finding {
                    kind: "drift",
                    path: shown.clone(),
                    detail: format!("mode/owner {:o} {}:{} differ from master's {:o} {}:{}: run chroot-builder sync", lm.mode, lm.uid, lm.gid, mm.mode, mm.uid, mm.gid),
                });
            }
            match mm.ft {
                FileType::RegularFile
                    if lm.size != mm.size
                        || hash_file(&root_fd, rel) != hash_file(&master_fd, rel) =>
                {
                    found.push(Finding {
                        kind: "drift",
                        path: shown,
                        detail: "content differs from master (BLAKE3): run chroot-builder sync --checksum".to_string(),
                    });
                }
                FileType::Symlink if lm.link != mm.link => {
                    found.push(Finding {
                        kind: "drift",
                        path: shown,
                        detail: "symlink target differs from master: run chroot-builder sync"
                            .to_string(),
                    });
                }
                _ => {}
            }
        }
        for rel in tree_map.keys() {
            if !master_map.contains_key(rel) {
                found.push(Finding {
                    kind: "drift",
                    path: format!("/{}", rel.display()),
                    detail: "not in master: run chroot-builder sync to remove it".to_string(),
                });
            }
        }
    }
    Ok(found)
}

fn check_elf(
    resolver: &mut Resolver,
    root: &rustix::fd::OwnedFd,
    rel: &Path,
    shown: &str,
    found: &mut Vec<Finding>,
) {
    check_elf_at(resolver, root, rel, &Path::new("/").join(rel), shown, found)
}

fn check_elf_at(
    resolver: &mut Resolver,
    root: &rustix::fd::OwnedFd,
    rel: &Path,
    in_tree: &Path,
    shown: &str,
    found: &mut Vec<Finding>,
) {
    let Ok(fd) = sys::open_beneath(root.as_fd(), rel) else {
        return;
    };
    let mut f = std::fs::File::from(fd);
    let mut head = [0u8; 4];
    if f.read_exact(&mut head).is_err() || !elf::is_elf(&head) {
        return;
    }
    let mut bytes = head.to_vec();
    if f.read_to_end(&mut bytes).is_err() {
        return;
    }
    let Some(info) = elf::parse(&bytes) else {
        return;
    };
    if info.machine != goblin::elf::header::EM_X86_64 {
        return;
    }
    if let Some(interp) = &info.interpreter {
        if resolver.root().open(Path::new(interp)).is_none() {
            found.push(Finding {
                kind: "library",
                path: shown.to_string(),
                detail: format!("interpreter {interp} is missing in the tree: rebuild"),
            });
        }
    }
    for name in &info.needed {
        if resolver.find(name, &info, in_tree).is_none() {
            found.push(Finding {
                kind: "library",
                path: shown.to_string(),
                detail: format!("needs {name}, which does not resolve inside the tree: rebuild"),
            });
        }
    }
}

/// Renders findings as a readable list.
pub fn render(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!("{:<9} {}  {}\n", f.kind, f.path, f.detail));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escapes;
    use std::path::Path;

    #[test]
    fn symlink_escape() {
        assert!(!escapes(
            Path::new("usr/lib/sendmail"),
            Path::new("../sbin/sendmail")
        ));
        assert!(escapes(
            Path::new("usr/lib/x"),
            Path::new("../../../etc/shadow")
        ));
        assert!(!escapes(Path::new("bin"), Path::new("usr/bin")));
        assert!(escapes(Path::new("bin"), Path::new("../etc")));
        assert!(!escapes(Path::new("a"), Path::new("/etc/passwd")));
    }
}
