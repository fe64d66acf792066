//! `build`: host → master. Resolves the manifest into a plan (memory tier and disk tier), adds
//! every ELF file's libraries (and NSS modules), then brings the master (and the disk tier) in
//! line with it and writes VERSION, ChangeLog and list.txt at the master's root.

use crate::elf::{self, Resolver, Root};
use crate::error::{Error, Result};
use crate::manifest::{Manifest, DISK_MOUNT};
use crate::tree::{Entry, Kind, Plan, Src};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Files at the master's root that describe the build (not compared as content).
pub const META_FILES: [&str; 3] = ["VERSION", "ChangeLog", "list.txt"];

/// The resolved plan for both tiers.
#[derive(Debug, Default)]
pub struct Planned {
    /// Memory tier (→ master → live tmpfs).
    pub mem: Plan,
    /// Disk tier (→ `[paths] disk`, bind-mounted at `/chroot`).
    pub disk: Plan,
    /// Names the manifest asks for that the host lacks.
    pub missing: Vec<String>,
    /// Everything else worth telling (unresolved libraries, skipped files).
    pub warnings: Vec<String>,
    /// Where the tree paths came from when they are not the same path on the host.
    pub origin: HashMap<PathBuf, &'static str>,
}

struct Planner<'a> {
    m: &'a Manifest,
    mem: Plan,
    resolver: Resolver,
    queue: VecDeque<PathBuf>,
    missing: Vec<String>,
    warnings: Vec<String>,
    setuid_allow: HashSet<PathBuf>,
}

fn rel(p: &Path) -> PathBuf {
    p.strip_prefix("/").unwrap_or(p).to_path_buf()
}

fn mtime(md: &std::fs::Metadata) -> Option<(i64, i64)> {
    Some((md.mtime(), md.mtime_nsec()))
}

/// Expands `*`/`?` per component against the host; a path without globs is returned as is.
pub fn expand_glob(pattern: &str) -> Vec<PathBuf> {
    if !crate::glob::is_glob(pattern) {
        return vec![PathBuf::from(pattern)];
    }
    let mut cur = vec![PathBuf::from("/")];
    for comp in Path::new(pattern).components() {
        let Component::Normal(c) = comp else { continue };
        let c = c.to_string_lossy();
        let mut next = Vec::new();
        for base in &cur {
            if crate::glob::is_glob(&c) {
                let Ok(rd) = std::fs::read_dir(base) else {
                    continue;
                };
                let mut names: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| crate::glob::matches(&c, n))
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| base.join(n)));
            } else {
                next.push(base.join(c.as_ref()));
            }
        }
        cur = next;
    }
    cur
}

impl Planner<'_> {
    fn excluded(&self, p: &Path) -> bool {
        let s = p.to_string_lossy();
        self.m
            .exclude
            .iter()
            .any(|pat| crate::glob::matches(pat, &s))
    }

    fn sanitize(&self, p: &Path, mode: u32, is_dir: bool) -> u32 {
        let mut mode = mode & 0o7777;
        if !is_dir && !self.setuid_allow.contains(p) {
            mode &= !0o6000;
        }
        mode & !0o022
    }

    fn add_dir(&mut self, p: &Path, md: &std::fs::Metadata) {
        let mode = self.sanitize(p, md.mode(), true);
        self.mem.entry(rel(p)).or_insert(Entry {
            kind: Kind::Dir,
            mode,
            uid: 0,
            gid: 0,
            mtime: None,
            caps: None,
        });
    }

    fn add_symlink(&mut self, p: &Path, target: &Path) {
        self.mem
            .entry(rel(p))
            .or_insert_with(|| Entry::symlink(target));
    }

    fn add_file(&mut self, p: &Path, md: &std::fs::Metadata) {
        let r = rel(p);
        if self.mem.contains_key(&r) {
            return;
        }
        let mode = self.sanitize(p, md.mode(), false);
        if md.mode() & 0o6000 != 0 && mode & 0o6000 == 0 {
            self.warnings.push(format!(
                "{}: setuid/setgid stripped (mode {:o} -> {mode:o}; list it in [setuid] allow to keep it)",
                p.display(),
                md.mode() & 0o7777
            ));
        }
        let caps = if md.mode() & 0o111 != 0 {
            crate::sys::get_caps_path(p)
        } else {
            None
        };
        self.mem.insert(
            r,
            Entry {
                kind: Kind::File {
                    src: Src::Host(p.to_path_buf()),
                    size: md.len(),
                    link: (md.nlink() > 1).then_some((md.dev(), md.ino())),
                },
                mode,
                uid: 0,
                gid: 0,
                mtime: mtime(md),
                caps,
            },
        );
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        if md.mode() & 0o111 != 0 || name.contains(".so") {
            let mut head = [0u8; 4];
            if std::fs::File::open(p)
                .and_then(|mut f| f.read_exact(&mut head))
                .is_ok()
                && elf::is_elf(&head)
            {
                self.queue.push_back(p.to_path_buf());
            }
        }
    }

    /// Follows `path` component by component, reproducing every symlink on the way; returns the
    /// real path (`None` if it does not exist).
    fn resolve(&mut self, path: &Path) -> Option<PathBuf> {
        let mut real = PathBuf::from("/");
        let mut rest: VecDeque<OsString> = VecDeque::new();
        let push_comps = |p: &Path, q: &mut VecDeque<OsString>, front: bool| {
            let comps: Vec<OsString> = p
                .components()
                .filter_map(|c| match c {
                    Component::Normal(n) => Some(n.to_os_string()),
                    Component::ParentDir => Some(OsString::from("..")),
                    _ => None,
                })
                .collect();
            if front {
                for c in comps.into_iter().rev() {
                    q.push_front(c);
                }
            } else {
                q.extend(comps);
            }
        };
        push_comps(path, &mut rest, false);
        let mut hops = 0;
        while let Some(c) = rest.pop_front() {
            if c == ".." {
                real.pop();
                continue;
            }
            let cand = real.join(&c);
            let md = std::fs::symlink_metadata(&cand).ok()?;
            if md.file_type().is_symlink() {
                hops += 1;
                if hops > 40 {
                    self.warnings
                        .push(format!("{}: too many symlinks", path.display()));
                    return None;
                }
                let target = std::fs::read_link(&cand).ok()?;
                self.add_symlink(&cand, &target);
                if target.is_absolute() {
                    real = PathBuf::from("/");
                }
                push_comps(&target, &mut rest, true);
            } else {
                if !rest.is_empty() {
                    if !md.is_dir() {
                        return None;
                    }
                    self.add_dir(&cand, &md);
                }
                real = cand;
            }
        }
        Some(real)
    }

    /// Adds a host path (folders recursively when `recursive`); `false` if it does not exist.
    fn add_path(&mut self, path: &Path, recursive: bool) -> bool {
        let Some(real) = self.resolve(path) else {
            return false;
        };
        let Ok(md) = std::fs::symlink_metadata(&real) else {
            return false;
        };
        if md.is_dir() {
            self.add_dir(&real, &md);
            if recursive {
                self.walk(&real);
            }
        } else if md.is_file() {
            self.add_file(&real, &md);
        } else {
            self.warnings
                .push(format!("{}: not a file or folder, skipped", real.display()));
        }
        true
    }

    fn walk(&mut self, dir: &Path) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            self.warnings
                .push(format!("{}: cannot read folder", dir.display()));
            return;
        };
        let mut names: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        names.sort();
        for p in names {
            if self.excluded(&p) {
                continue;
            }
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let ft = md.file_type();
            if ft.is_symlink() {
                let Ok(target) = std::fs::read_link(&p) else {
                    continue;
                };
                self.add_symlink(&p, &target);
                let abs = dir.join(&target);
                // Pull in what the link points to when it is a file (certificates, alternatives).
                if let Ok(tmd) = std::fs::metadata(&abs) {
                    if tmd.is_file() && !self.excluded(&abs) {
                        self.add_path(&abs, false);
                    }
                }
            } else if ft.is_dir() {
                self.add_dir(&p, &md);
                self.walk(&p);
            } else if ft.is_file() {
                self.add_file(&p, &md);
            }
        }
    }

    fn drain_elf(&mut self) {
        let mut seen: HashSet<PathBuf> = HashSet::new();
        while let Some(p) = self.queue.pop_front() {
            if !seen.insert(p.clone()) {
                continue;
            }
            let Some(info) = self.resolver.info(&p) else {
                continue;
            };
            if info.machine != goblin::elf::header::EM_X86_64 {
                continue;
            }
            if let Some(interp) = &info.interpreter {
                if !self.add_path(Path::new(interp), false) {
                    self.warnings.push(format!(
                        "{}: interpreter {interp} not found on the host",
                        p.display()
                    ));
                }
            }
            for name in &info.needed {
                match self.resolver.find(name, &info, &p) {
                    Some(lib) => {
                        self.add_path(&lib, false);
                    }
                    None => self.warnings.push(format!(
                        "{}: needs {name}, which is not on the host (unresolved)",
                        p.display()
                    )),
                }
            }
        }
    }
}

/// NSS service names in an nsswitch.conf text.
pub fn nss_services(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let Some((_, rest)) = line.split_once(':') else {
            continue;
        };
        let mut in_bracket = false;
        for tok in rest.split_whitespace() {
            if tok.starts_with('[') {
                in_bracket = !tok.ends_with(']');
                continue;
            }
            if in_bracket {
                in_bracket = !tok.ends_with(']');
                continue;
            }
            out.insert(tok.to_string());
        }
    }
    out
}

fn filter_accounts(m: &Manifest, passwd: &str, group: &str) -> (String, String) {
    let mut users = Vec::new();
    let mut names = HashSet::new();
    let mut gids = HashSet::new();
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 {
            continue;
        }
        let Ok(uid) = f[2].parse::<u32>() else {
            continue;
        };
        if uid == 0
            || (uid >= m.users.min_uid && uid < 65534)
            || m.users.names.iter().any(|n| n == f[0])
        {
            names.insert(f[0].to_string());
            gids.insert(f[3].to_string());
            users.push(format!(
                "{}:x:{}:{}:{}:{}:{}",
                f[0], f[2], f[3], f[4], f[5], f[6]
            ));
        }
    }
    let mut groups = Vec::new();
    for line in group.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 {
            continue;
        }
        if f[2] == "0" || gids.contains(f[2]) || m.users.groups.iter().any(|g| g == f[0]) {
            let members: Vec<&str> = f[3].split(',').filter(|u| names.contains(*u)).collect();
            groups.push(format!("{}:x:{}:{}", f[0], f[2], members.join(",")));
        }
    }
    (users.join("\n") + "\n", groups.join("\n") + "\n")
}

/// Sets `key = value` in an ini text: the first line setting it (or commented out) is replaced;
/// otherwise it is appended.
pub fn ini_set(text: &str, key: &str, value: &str) -> String {
    let mut done = false;
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let t = line.trim_start().trim_start_matches(';').trim_start();
        let is_key = t
            .strip_prefix(key)
            .is_some_and(|r| r.trim_start().starts_with('='));
        if is_key && !done {
            out.push(format!("{key} = {value}"));
            done = true;
        } else if is_key && !line.trim_start().starts_with(';') {
            out.push(format!("; {line} ; overridden above by chroot-builder"));
        } else {
            out.push(line.to_string());
        }
    }
    if !done {
        out.push(format!("{key} = {value}"));
    }
    out.join("\n") + "\n"
}

/// Relative symlink target from folder `from_dir` to `to` (both absolute).
pub fn relative(from_dir: &Path, to: &Path) -> PathBuf {
    let a: Vec<_> = from_dir.components().collect();
    let b: Vec<_> = to.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for c in &b[common..] {
        out.push(c.as_os_str());
    }
    out
}

/// Finds the shim: `--shim`, else the manifest's candidates (relative to the manifest folder).
pub fn shim_source(m: &Manifest, manifest_dir: &Path, cli: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = cli {
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        return Err(Error::State {
            message: format!("--shim {}: no such file", p.display()),
            fix: "build the shim with scripts/build.sh and pass its path".to_string(),
        });
    }
    for c in &m.shim.source {
        let p = manifest_dir.join(c);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::State {
        message: format!(
            "the sendmail shim is not at any of: {}",
            m.shim.source.join(", ")
        ),
        fix: "build it with scripts/build.sh (or install baseos-mail), or pass --shim PATH"
            .to_string(),
    })
}

/// Resolves the manifest against the host into the two tiers' plans.
pub fn plan(m: &Manifest, shim: &Path) -> Result<Planned> {
    let host_dirs = Resolver::ld_so_conf_dirs(&Root::Host);
    let mut p = Planner {
        m,
        mem: Plan::new(),
        resolver: Resolver::new(Root::Host, host_dirs),
        queue: VecDeque::new(),
        missing: Vec::new(),
        warnings: Vec::new(),
        setuid_allow: m.setuid.allow.iter().map(PathBuf::from).collect(),
    };
    let mut origin: HashMap<PathBuf, &'static str> = HashMap::new();
    p.mem.insert(PathBuf::new(), Entry::dir(0o755));

    // Binaries.
    for name in &m.binaries.names {
        let found = if name.starts_with('/') {
            Path::new(name).exists().then(|| PathBuf::from(name))
        } else {
            m.binaries
                .search
                .iter()
                .map(|d| Path::new(d).join(name))
                .find(|c| c.exists())
        };
        match found {
            Some(path) => {
                p.add_path(&path, false);
            }
            None => p.missing.push(name.clone()),
        }
    }
    // Memory-tier paths.
    for pat in &m.memory.paths {
        let found = expand_glob(pat);
        let mut any = false;
        for path in found {
            if !p.excluded(&path) && p.add_path(&path, true) {
                any = true;
            }
        }
        if !any {
            p.missing.push(pat.clone());
        }
    }
    // Disk-tier paths: copied below /chroot, replaced in memory by symlinks.
    let mut disk_roots: Vec<PathBuf> = Vec::new();
    for pat in &m.disk.paths {
        let mut any = false;
        for path in expand_glob(pat) {
            if p.excluded(&path) {
                continue;
            }
            if let Some(real) = p.resolve(&path) {
                if real.is_dir() {
                    if !disk_roots.iter().any(|d| real.starts_with(d)) {
                        disk_roots.retain(|d| !d.starts_with(&real));
                        disk_roots.push(real.clone());
                    }
                    if let Ok(md) = std::fs::symlink_metadata(&real) {
                        p.add_dir(&real, &md);
                    }
                    p.walk(&real);
                    any = true;
                }
            }
        }
        if !any {
            p.missing.push(pat.clone());
        }
    }
    // /etc essentials copied as plain files.
    for pat in &m.etc.copy {
        let mut any = false;
        for path in expand_glob(pat) {
            let Ok(md) = std::fs::metadata(&path) else {
                continue;
            };
            if !md.is_file() {
                continue;
            }
            let Ok(canon) = std::fs::canonicalize(&path) else {
                continue;
            };
            if let Some(parent) = path.parent() {
                p.add_path(parent, false);
            }
            p.mem.insert(
                rel(&path),
                Entry {
                    kind: Kind::File {
                        src: Src::Host(canon),
                        size: md.len(),
                        link: None,
                    },
                    mode: md.mode() & 0o755,
                    uid: 0,
                    gid: 0,
                    mtime: mtime(&md),
                    caps: None,
                },
            );
            any = true;
        }
        if !any {
            p.missing.push(pat.clone());
        }
    }
    let mut generated: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    // passwd / group.
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| Error::io("/etc/passwd", e))?;
    let group = std::fs::read_to_string("/etc/group").map_err(|e| Error::io("/etc/group", e))?;
    let (pw, gr) = filter_accounts(m, &passwd, &group);
    generated.push(("/etc/passwd".into(), pw.into_bytes()));
    generated.push(("/etc/group".into(), gr.into_bytes()));
    for (path, content) in &m.etc.generate {
        generated.push((PathBuf::from(path), content.clone().into_bytes()));
    }
    // PHP ini files with sendmail_path set.
    for pat in &m.php.ini {
        let mut any = false;
        for path in expand_glob(pat) {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let t = ini_set(&text, "sendmail_path", &m.php.sendmail_path);
            let t = ini_set(&t, "mysqli.default_socket", &m.mysql.socket);
            let t = ini_set(&t, "pdo_mysql.default_socket", &m.mysql.socket);
            generated.push((path.clone(), t.into_bytes()));
            any = true;
        }
        if !any {
            p.warnings
                .push(format!("[php] ini {pat}: no such file on the host"));
        }
    }
    // MySQL client configuration.
    generated.push((
        PathBuf::from(&m.mysql.client_conf),
        format!(
            "# Written by chroot-builder: clients in the BaseOS reach the host's server here.\n[client]\nsocket = {}\n",
            m.mysql.socket
        )
        .into_bytes(),
    ));
    for (path, content) in generated {
        if let Some(parent) = path.parent() {
            if !p.add_path(parent, false) {
                ensure_dirs(&mut p.mem, parent);
            }
        }
        origin.insert(rel(&path), "(generated by chroot-builder)");
        p.mem.insert(rel(&path), Entry::bytes(content, 0o644));
    }
    // NSS modules named by the tree's nsswitch.conf.
    let nss_text = match p.mem.get(Path::new("etc/nsswitch.conf")).map(|e| &e.kind) {
        Some(Kind::File {
            src: Src::Bytes(b), ..
        }) => String::from_utf8_lossy(b).into_owned(),
        Some(Kind::File {
            src: Src::Host(h), ..
        }) => std::fs::read_to_string(h).unwrap_or_default(),
        _ => String::new(),
    };
    let probe = elf::ElfInfo {
        interpreter: None,
        needed: vec![],
        rpath: vec![],
        runpath: vec![],
        is_64: true,
        machine: goblin::elf::header::EM_X86_64,
    };
    for svc in nss_services(&nss_text) {
        let lib = format!("libnss_{svc}.so.2");
        match p.resolver.find(&lib, &probe, Path::new("/")) {
            Some(path) => {
                p.add_path(&path, false);
            }
            None => p.warnings.push(format!(
                "nsswitch.conf names `{svc}` but {lib} is not on the host: lookups through it will fail"
            )),
        }
    }
    // The shim.
    if let Some((first, rest)) = m.shim.install.split_first() {
        let md = std::fs::metadata(shim).map_err(|e| Error::io(shim, e))?;
        let first = PathBuf::from(first);
        if let Some(parent) = first.parent() {
            if !p.add_path(parent, false) {
                ensure_dirs(&mut p.mem, parent);
            }
        }
        p.mem.insert(
            rel(&first),
            Entry {
                kind: Kind::File {
                    src: Src::Host(shim.to_path_buf()),
                    size: md.len(),
                    link: None,
                },
                mode: 0o755,
                uid: 0,
                gid: 0,
                mtime: mtime(&md),
                caps: None,
            },
        );
        origin.insert(rel(&first), "(baseos-mail: sendmail shim)");
        if let Some(info) = p.resolver.info(shim) {
            if info.interpreter.is_some() || !info.needed.is_empty() {
                p.warnings.push(format!(
                    "the shim {} is dynamically linked; build it static with scripts/build.sh",
                    shim.display()
                ));
                p.queue.push_back(shim.to_path_buf());
            }
        }
        for other in rest {
            let other = PathBuf::from(other);
            if let Some(parent) = other.parent() {
                if !p.add_path(parent, false) {
                    ensure_dirs(&mut p.mem, parent);
                }
                p.mem
                    .insert(rel(&other), Entry::symlink(relative(parent, &first)));
                origin.insert(rel(&other), "(baseos-mail: sendmail shim)");
            }
        }
    }
    // Libraries of every ELF file so far.
    p.drain_elf();
    // Devices.
    for name in &m.devices.allow {
        let host = Path::new("/dev").join(name);
        match std::fs::symlink_metadata(&host) {
            Ok(md) => {
                use std::os::unix::fs::FileTypeExt;
                let kind = if md.file_type().is_char_device() {
                    Kind::Char(md.rdev())
                } else if md.file_type().is_block_device() {
                    Kind::Block(md.rdev())
                } else {
                    p.warnings
                        .push(format!("{}: not a device node, skipped", host.display()));
                    continue;
                };
                ensure_dirs(&mut p.mem, Path::new("/dev"));
                p.mem.insert(
                    rel(&host),
                    Entry {
                        kind,
                        mode: md.mode() & 0o666,
                        uid: 0,
                        gid: 0,
                        mtime: None,
                        caps: None,
                    },
                );
            }
            Err(_) => p.missing.push(host.display().to_string()),
        }
    }
    // Empty folders and mount points.
    for d in &m.empty_dirs {
        let mode = if d == "/tmp" { 0o1777 } else { 0o755 };
        ensure_dirs(&mut p.mem, Path::new(d));
        if let Some(e) = p.mem.get_mut(&rel(Path::new(d))) {
            e.mode = mode;
        }
    }
    ensure_dirs(&mut p.mem, Path::new(DISK_MOUNT));
    for (link, target) in &m.symlinks {
        let link = Path::new(link);
        if let Some(parent) = link.parent() {
            ensure_dirs(&mut p.mem, parent);
        }
        p.mem.insert(rel(link), Entry::symlink(target));
    }

    // Split off the disk tier.
    let mut disk = Plan::new();
    disk.insert(PathBuf::new(), Entry::dir(0o755));
    let keys: Vec<PathBuf> = p.mem.keys().cloned().collect();
    for k in keys {
        let abs = Path::new("/").join(&k);
        if let Some(root) = disk_roots.iter().find(|r| abs.starts_with(r)) {
            if let Some(e) = p.mem.remove(&k) {
                disk.insert(k.clone(), e);
            }
            if &abs == root {
                p.mem
                    .insert(k.clone(), Entry::symlink(Path::new(DISK_MOUNT).join(&k)));
            }
        }
    }
    for r in &disk_roots {
        let mut cur = PathBuf::new();
        for c in rel(r).parent().unwrap_or(Path::new("")).components() {
            cur.push(c);
            disk.entry(cur.clone()).or_insert_with(|| Entry::dir(0o755));
        }
    }
    // Bind targets: folders in the tier they land in.
    for b in &m.bind {
        if let Ok(below) = b.target.strip_prefix(DISK_MOUNT) {
            let mut cur = PathBuf::new();
            for c in below.components() {
                cur.push(c);
                disk.entry(cur.clone()).or_insert_with(|| Entry::dir(0o755));
            }
        } else {
            ensure_dirs(&mut p.mem, &b.target);
        }
    }
    p.missing.sort();
    p.missing.dedup();
    Ok(Planned {
        mem: p.mem,
        disk,
        missing: p.missing,
        warnings: p.warnings,
        origin,
    })
}

fn ensure_dirs(plan: &mut Plan, abs: &Path) {
    let mut cur = PathBuf::new();
    for c in rel(abs).components() {
        cur.push(c);
        match plan.get(&cur) {
            Some(Entry {
                kind: Kind::Symlink(_),
                ..
            }) => return,
            Some(_) => {}
            None => {
                plan.insert(cur.clone(), Entry::dir(0o755));
            }
        }
    }
}

/// path → Debian package, from `/var/lib/dpkg/info/*.list`.
pub fn dpkg_map(info_dir: &Path) -> HashMap<String, String> {
    let mut map = HashMap::new();
    let Ok(rd) = std::fs::read_dir(info_dir) else {
        return map;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pkg) = name.strip_suffix(".list") else {
            continue;
        };
        let pkg = pkg.split(':').next().unwrap_or(pkg).to_string();
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        for line in text.lines() {
            map.entry(line.to_string()).or_insert_with(|| pkg.clone());
        }
    }
    map
}

/// The package owning `path`, looking through merged-/usr aliases (`/lib` ↔ `/usr/lib`...).
pub fn package_of<'a>(map: &'a HashMap<String, String>, path: &str) -> Option<&'a str> {
    if let Some(p) = map.get(path) {
        return Some(p);
    }
    for top in ["/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/libx32/"] {
        if let Some(rest) = path.strip_prefix("/usr").filter(|r| r.starts_with(top)) {
            return map.get(rest).map(String::as_str);
        }
        if path.starts_with(top) {
            return map.get(&format!("/usr{path}")).map(String::as_str);
        }
    }
    None
}

/// ISO-8601 UTC time for a Unix time.
pub fn iso8601(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// list.txt: every non-folder entry of both tiers with its package.
pub fn list_txt(planned: &Planned, dpkg: &HashMap<String, String>) -> String {
    let mut out = String::from("# path\tpackage\ttier (written by chroot-builder build)\n");
    for (tier, plan) in [("memory", &planned.mem), ("disk", &planned.disk)] {
        for (k, e) in plan {
            if e.kind == Kind::Dir || k.as_os_str().is_empty() {
                continue;
            }
            let abs = format!("/{}", k.display());
            let pkg = planned
                .origin
                .get(k)
                .copied()
                .or_else(|| package_of(dpkg, &abs))
                .unwrap_or("-");
            out.push_str(&format!("{abs}\t{pkg}\t{tier}\n"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn nss_services_skip_actions() {
        let s = nss_services(
            "passwd: files systemd\nhosts: files [NOTFOUND=return] dns\n# x: y\nnetgroup: nis\n",
        );
        assert_eq!(
            s.into_iter().collect::<Vec<_>>(),
            ["dns", "files", "nis", "systemd"]
        );
    }

    #[test]
    fn ini_set_replaces_commented_and_appends() {
        let t = "[PHP]\n;sendmail_path =\nfoo = 1\n";
        let out = ini_set(t, "sendmail_path", "/usr/sbin/sendmail -t -i");
        assert_eq!(
            out,
            "[PHP]\nsendmail_path = /usr/sbin/sendmail -t -i\nfoo = 1\n"
        );
        let out = ini_set("a = 1\n", "b", "2");
        assert_eq!(out, "a = 1\nb = 2\n");
        let out = ini_set("x = 1\nx = 2\n", "x", "3");
        assert!(out.starts_with("x = 3\n; x = 2"), "{out}");
    }

    #[test]
    fn relative_targets() {
        assert_eq!(
            relative(Path::new("/usr/lib"), Path::new("/usr/sbin/sendmail")),
            Path::new("../sbin/sendmail")
        );
        assert_eq!(
            relative(Path::new("/usr/bin"), Path::new("/usr/sbin/sendmail")),
            Path::new("../sbin/sendmail")
        );
    }

    #[test]
    fn accounts_filtered() {
        let m = crate::manifest::parse(
            "[paths]\nmaster=\"/a\"\nlive=\"/b\"\ndisk=\"/c\"\n[users]\nnames=[\"www-data\"]\n",
            Path::new("m"),
        )
        .unwrap();
        let (pw, gr) = filter_accounts(
            &m,
            "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/:/usr/sbin/nologin\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\nalice:$6$secret:1001:1001::/home/alice:/bin/bash\nnobody:x:65534:65534::/:/usr/sbin/nologin\n",
            "root:x:0:\ndaemon:x:1:\nwww-data:x:33:\nalice:x:1001:\nstaff:x:50:alice,daemon\n",
        );
        assert_eq!(pw, "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\nalice:x:1001:1001::/home/alice:/bin/bash\n");
        assert_eq!(gr, "root:x:0:\nwww-data:x:33:\nalice:x:1001:\n");
    }

    #[test]
    fn merged_usr_package_lookup() {
        let mut map = HashMap::new();
        map.insert(
            "/lib/x86_64-linux-gnu/libc.so.6".to_string(),
            "libc6".to_string(),
        );
        map.insert("/usr/bin/perl".to_string(), "perl-base".to_string());
        assert_eq!(
            package_of(&map, "/usr/lib/x86_64-linux-gnu/libc.so.6"),
            Some("libc6")
        );
        assert_eq!(package_of(&map, "/bin/perl"), Some("perl-base"));
        assert_eq!(package_of(&map, "/usr/bin/perl"), Some("perl-base"));
        assert_eq!(package_of(&map, "/opt/x"), None);
    }

    #[test]
    fn dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn resolve_reproduces_merged_usr() {
        let m = crate::manifest::parse(
            "[paths]\nmaster=\"/a\"\nlive=\"/b\"\ndisk=\"/c\"\n[binaries]\nnames=[\"/bin/bash\"]\n",
            Path::new("m"),
        )
        .unwrap();
        let planned = plan(&m, Path::new("/bin/true")).unwrap();
        assert_eq!(
            planned.mem.get(Path::new("bin")).unwrap().kind,
            Kind::Symlink("usr/bin".into())
        );
        assert!(matches!(
            planned.mem.get(Path::new("usr/bin/bash")).unwrap().kind,
            Kind::File { .. }
        ));
        assert_eq!(
            planned.mem.get(Path::new("lib64")).unwrap().kind,
            Kind::Symlink("usr/lib64".into())
        );
        let has_libc = planned
            .mem
            .keys()
            .any(|k| k.to_string_lossy().ends_with("x86_64-linux-gnu/libc.so.6"));
        assert!(has_libc);
        assert!(planned.mem.contains_key(Path::new("dev/null")));
        assert!(planned.mem.contains_key(Path::new("usr/sbin/sendmail")));
        assert_eq!(
            planned.mem.get(Path::new("usr/lib/sendmail")).unwrap().kind,
            Kind::Symlink("../sbin/sendmail".into())
        );
    }
}
