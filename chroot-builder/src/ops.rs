//! The subcommands: build, load, sync, unload, status, exec, mysql-socket. Each returns the
//! text it reports (printed by main) or an error naming the fix.

use crate::build::{self, META_FILES};
use crate::error::{Error, Result};
use crate::manifest::{self, Loaded, DISK_MOUNT};
use crate::sys;
use crate::tree::{self, Changes, Entry, Plan};
use rustix::fd::AsFd;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The manifest and the effective tree paths.
pub struct Ctx {
    /// The manifest.
    pub loaded: Loaded,
    /// Master (memory tier on disk).
    pub master: PathBuf,
    /// Live tmpfs tree.
    pub live: PathBuf,
    /// Disk tier.
    pub disk: PathBuf,
    /// Show progress bars (on a terminal).
    pub progress: bool,
}

impl Ctx {
    /// Loads the manifest, applies the command-line overrides and checks the paths.
    pub fn new(
        manifest_path: &Path,
        master: Option<PathBuf>,
        live: Option<PathBuf>,
        disk: Option<PathBuf>,
        progress: bool,
    ) -> Result<Self> {
        let loaded = manifest::load(manifest_path)?;
        let p = &loaded.manifest.paths;
        let master = master.unwrap_or_else(|| p.master.clone());
        let live = live.unwrap_or_else(|| p.live.clone());
        let disk = disk.unwrap_or_else(|| p.disk.clone());
        manifest::check_tree_paths(&master, &live, &disk)?;
        Ok(Ctx {
            loaded,
            master,
            live,
            disk,
            progress,
        })
    }
}

fn read_beneath(root: &Path, rel: &str) -> Option<String> {
    let fd = sys::open_root(root).ok()?;
    let f = sys::open_beneath(fd.as_fd(), Path::new(rel)).ok()?;
    let mut s = String::new();
    std::fs::File::from(f).read_to_string(&mut s).ok()?;
    Some(s)
}

/// The VERSION file of a tree, if it has one.
pub fn version_of(root: &Path) -> Option<String> {
    read_beneath(root, "VERSION")
}

fn version_number(v: &str) -> u64 {
    v.lines()
        .next()
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn mkdir_root_owned(p: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if p.is_dir() {
        return Ok(());
    }
    if std::fs::symlink_metadata(p).is_ok() {
        return Err(Error::UnsafePath {
            message: format!("{} exists and is not a folder", p.display()),
            fix: format!("remove {} or choose another path", p.display()),
        });
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(p)
        .map_err(|e| Error::io(p, e))
}

/// Options of `build`.
#[derive(Debug, Default, Clone)]
pub struct BuildArgs {
    /// Only print the plan and what would change.
    pub dry_run: bool,
    /// Missing binaries and paths are an error.
    pub strict: bool,
    /// The shim binary (overrides the manifest).
    pub shim: Option<PathBuf>,
    /// Compare contents, not size and mtime.
    pub checksum: bool,
}

fn without_meta(ch: &mut Changes) {
    for v in [&mut ch.added, &mut ch.changed, &mut ch.removed] {
        v.retain(|p| !META_FILES.iter().any(|m| p == Path::new(m)));
    }
}

fn summary(plan: &Plan) -> (usize, usize, usize, u64) {
    let (mut files, mut links, mut dirs, mut bytes) = (0, 0, 0, 0);
    for e in plan.values() {
        match e.kind {
            tree::Kind::File { size, .. } => {
                files += 1;
                bytes += size;
            }
            tree::Kind::Symlink(_) => links += 1,
            tree::Kind::Dir => dirs += 1,
            _ => {}
        }
    }
    (files, links, dirs, bytes)
}

/// `build`: host → master (and the disk tier).
pub fn build(ctx: &Ctx, args: &BuildArgs) -> Result<String> {
    let m = &ctx.loaded.manifest;
    let mdir = ctx.loaded.path.parent().unwrap_or(Path::new("."));
    let shim = build::shim_source(m, mdir, args.shim.as_deref())?;
    let mut planned = build::plan(m, &shim)?;
    let mut out = String::new();
    if !planned.missing.is_empty() {
        if args.strict {
            return Err(Error::Missing {
                names: planned.missing.join(", "),
            });
        }
        let _ = writeln!(
            out,
            "missing on this host (skipped; --strict makes this an error): {}",
            planned.missing.join(", ")
        );
    }
    for w in &planned.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let (f, l, d, b) = summary(&planned.mem);
    let (df, dl, dd, db) = summary(&planned.disk);
    let _ = writeln!(
        out,
        "plan: memory tier {f} files, {l} symlinks, {d} folders, {} MB; disk tier {df} files, {dl} symlinks, {dd} folders, {} MB",
        b / 1_000_000,
        db / 1_000_000
    );
    let opts = |dry: bool| tree::Options {
        dry_run: dry,
        checksum: args.checksum,
        remove_extra: true,
        src_root: None,
        progress: ctx.progress && !dry,
    };
    let diff = |plan: &Plan, root: &Path| -> Result<Changes> {
        if root.is_dir() {
            let mut ch = tree::apply(plan, root, &opts(true)).map_err(|e| Error::io(root, e))?;
            without_meta(&mut ch);
            Ok(ch)
        } else {
            Ok(Changes {
                added: plan
                    .keys()
                    .filter(|k| !k.as_os_str().is_empty())
                    .cloned()
                    .collect(),
                ..Default::default()
            })
        }
    };
    let ch_mem = diff(&planned.mem, &ctx.master)?;
    let ch_disk = diff(&planned.disk, &ctx.disk)?;
    let prev = version_of(&ctx.master);
    if args.dry_run {
        let _ = writeln!(out, "shim: {}", shim.display());
        for (tier, root, ch) in [
            ("master", &ctx.master, &ch_mem),
            ("disk", &ctx.disk, &ch_disk),
        ] {
            let _ = writeln!(
                out,
                "{tier} {}: would add {}, change {}, remove {}",
                root.display(),
                ch.added.len(),
                ch.changed.len(),
                ch.removed.len()
            );
            for p in &ch.added {
                let _ = writeln!(out, "  + /{}", p.display());
            }
            for p in &ch.changed {
                let _ = writeln!(out, "  ~ /{}", p.display());
            }
            for p in &ch.removed {
                let _ = writeln!(out, "  - /{}", p.display());
            }
        }
        return Ok(out);
    }
    if ch_mem.is_empty() && ch_disk.is_empty() {
        if let Some(v) = &prev {
            let _ = writeln!(
                out,
                "master {} is up to date (version {})",
                ctx.master.display(),
                version_number(v)
            );
            return Ok(out);
        }
    }
    mkdir_root_owned(&ctx.master)?;
    mkdir_root_owned(&ctx.disk)?;
    let number = prev.as_deref().map_or(0, version_number) + 1;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let version = format!(
        "BaseOS {number}\nbuilt {} on {host} from {}\n",
        build::iso8601(now),
        ctx.loaded.path.display()
    );
    let mut log = format!("version {number}, {}\n", build::iso8601(now));
    if prev.is_none() {
        let _ = writeln!(
            log,
            "  initial build: {} entries in memory, {} on disk (see list.txt)",
            planned.mem.len(),
            planned.disk.len()
        );
    } else {
        for (tier, ch) in [("", &ch_mem), (DISK_MOUNT, &ch_disk)] {
            for (sign, v) in [
                ("added", &ch.added),
                ("changed", &ch.changed),
                ("removed", &ch.removed),
            ] {
                for p in v.iter() {
                    let _ = writeln!(log, "  {sign} {tier}/{}", p.display());
                }
            }
        }
    }
    log.push('\n');
    if let Some(old) = read_beneath(&ctx.master, "ChangeLog") {
        log.push_str(&old);
    }
    let dpkg = build::dpkg_map(Path::new("/var/lib/dpkg/info"));
    let list = build::list_txt(&planned, &dpkg);
    planned
        .mem
        .insert("VERSION".into(), Entry::bytes(version.into_bytes(), 0o644));
    planned
        .mem
        .insert("ChangeLog".into(), Entry::bytes(log.into_bytes(), 0o644));
    planned
        .mem
        .insert("list.txt".into(), Entry::bytes(list.into_bytes(), 0o644));
    let ch =
        tree::apply(&planned.disk, &ctx.disk, &opts(false)).map_err(|e| Error::io(&ctx.disk, e))?;
    let _ = writeln!(
        out,
        "disk {}: added {}, changed {}, removed {}",
        ctx.disk.display(),
        ch.added.len(),
        ch.changed.len(),
        ch.removed.len()
    );
    let mut ch = tree::apply(&planned.mem, &ctx.master, &opts(false))
        .map_err(|e| Error::io(&ctx.master, e))?;
    without_meta(&mut ch);
    let _ = writeln!(
        out,
        "master {} version {number}: added {}, changed {}, removed {} ({} MB written)",
        ctx.master.display(),
        ch.added.len(),
        ch.changed.len(),
        ch.removed.len(),
        ch.bytes_written / 1_000_000
    );
    Ok(out)
}

/// Mounts at or below `root`, deepest (latest) first.
fn mounts_below(root: &Path) -> Result<Vec<sys::MountInfo>> {
    let all = sys::mounts().map_err(|e| Error::io("/proc/self/mountinfo", e))?;
    let mut v: Vec<_> = all
        .into_iter()
        .filter(|m| m.mount_point.starts_with(root))
        .collect();
    v.reverse();
    Ok(v)
}

fn live_tmpfs(live: &Path) -> Result<Option<sys::MountInfo>> {
    let all = sys::mounts().map_err(|e| Error::io("/proc/self/mountinfo", e))?;
    Ok(all.into_iter().rev().find(|m| m.mount_point == live))
}

struct BindSpec {
    source: PathBuf,
    target: PathBuf,
    readonly: bool,
    optional: bool,
}

fn binds(ctx: &Ctx) -> Vec<BindSpec> {
    let mut v = vec![BindSpec {
        source: ctx.disk.clone(),
        target: PathBuf::from(DISK_MOUNT),
        readonly: true,
        optional: false,
    }];
    for b in &ctx.loaded.manifest.bind {
        v.push(BindSpec {
            source: b.source.clone(),
            target: b.target.clone(),
            readonly: b.readonly,
            optional: b.optional,
        });
    }
    v
}

fn make_binds(ctx: &Ctx, out: &mut String) -> Result<Vec<PathBuf>> {
    let mut made: Vec<PathBuf> = Vec::new();
    let present = mounts_below(&ctx.live)?;
    for b in binds(ctx) {
        let target = ctx
            .live
            .join(b.target.strip_prefix("/").unwrap_or(&b.target));
        if present.iter().any(|m| m.mount_point == target) {
            continue;
        }
        if !b.source.is_dir() {
            if b.optional {
                let _ = writeln!(
                    out,
                    "bind {}: skipped, no {} on this host",
                    b.target.display(),
                    b.source.display()
                );
                continue;
            }
            rollback(&made);
            return Err(Error::State {
                message: format!("bind source {} is not a folder", b.source.display()),
                fix: format!(
                    "create {} (or run build for the disk tier), or mark the [[bind]] optional",
                    b.source.display()
                ),
            });
        }
        // The mount point must be a real folder inside the tree: no symlink on the way.
        let root = sys::open_root(&ctx.live).map_err(|e| Error::io(&ctx.live, e))?;
        let rel = b.target.strip_prefix("/").unwrap_or(&b.target);
        let ok = sys::open_beneath(root.as_fd(), rel)
            .ok()
            .and_then(|fd| sys::fstat(&fd).ok())
            .is_some_and(|st| {
                rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
            });
        if !ok {
            rollback(&made);
            return Err(Error::State {
                message: format!(
                    "mount point {} is missing or not a plain folder in the tree",
                    target.display()
                ),
                fix: "run chroot-builder build (it creates the mount points) then load again"
                    .to_string(),
            });
        }
        if let Err(e) = sys::bind(&b.source, &target, b.readonly) {
            rollback(&made);
            return Err(Error::Mount {
                what: format!(
                    "bind-mounting {} at {}",
                    b.source.display(),
                    target.display()
                ),
                source: e,
                fix: "run as root in the host's mount namespace".to_string(),
            });
        }
        let _ = writeln!(
            out,
            "bind {} at {}{}",
            b.source.display(),
            target.display(),
            if b.readonly { " (read-only)" } else { "" }
        );
        made.push(target);
    }
    Ok(made)
}

fn rollback(made: &[PathBuf]) {
    for t in made.iter().rev() {
        let _ = sys::unmount(t);
    }
}

/// `load`: tmpfs at live, master copied in, bind mounts made. Idempotent.
pub fn load(ctx: &Ctx) -> Result<String> {
    let m = &ctx.loaded.manifest;
    let mut out = String::new();
    let Some(master_version) = version_of(&ctx.master) else {
        return Err(Error::State {
            message: format!("master {} is not built (no VERSION)", ctx.master.display()),
            fix: "run chroot-builder build first".to_string(),
        });
    };
    if let Ok(md) = std::fs::symlink_metadata(&ctx.live) {
        if !md.is_dir() {
            return Err(Error::State {
                message: format!(
                    "live path {} is not a folder: a tmpfs cannot be mounted there",
                    ctx.live.display()
                ),
                fix: format!("remove {} or choose another --live", ctx.live.display()),
            });
        }
    }
    match live_tmpfs(&ctx.live)? {
        Some(mi) if mi.fstype == "tmpfs" => {
            let made = make_binds(ctx, &mut out)?;
            let live_version = version_of(&ctx.live).unwrap_or_default();
            if live_version == master_version && made.is_empty() {
                let _ = writeln!(
                    out,
                    "already loaded at {} (version {}): nothing changed",
                    ctx.live.display(),
                    version_number(&master_version)
                );
            } else if live_version != master_version {
                let _ = writeln!(
                    out,
                    "already loaded at {} with version {}, master is version {}: run chroot-builder sync",
                    ctx.live.display(),
                    version_number(&live_version),
                    version_number(&master_version)
                );
            }
            return Ok(out);
        }
        Some(mi) => {
            return Err(Error::State {
                message: format!(
                    "{} is already a {} mount, not a tmpfs",
                    ctx.live.display(),
                    mi.fstype
                ),
                fix: format!(
                    "unmount it (umount {}) or choose another --live",
                    ctx.live.display()
                ),
            })
        }
        None => {}
    }
    mkdir_root_owned(&ctx.live)?;
    if std::fs::read_dir(&ctx.live)
        .map_err(|e| Error::io(&ctx.live, e))?
        .next()
        .is_some()
    {
        return Err(Error::State {
            message: format!(
                "live folder {} is not empty: a tmpfs mounted there would hide its files",
                ctx.live.display()
            ),
            fix: format!(
                "move the files out of {} or choose another --live",
                ctx.live.display()
            ),
        });
    }
    sys::mount_tmpfs(
        &ctx.live,
        &m.tmpfs.size,
        m.devices.allow.is_empty(),
        m.setuid.allow.is_empty(),
    )
    .map_err(|e| Error::Mount {
        what: format!("mounting a tmpfs at {}", ctx.live.display()),
        source: e,
        fix: "run as root (CAP_SYS_ADMIN) in the host's mount namespace, outside a user namespace"
            .to_string(),
    })?;
    let copied = (|| -> Result<Changes> {
        let plan = tree::plan_from_tree(&ctx.master).map_err(|e| Error::io(&ctx.master, e))?;
        let opts = tree::Options {
            src_root: Some(sys::open_root(&ctx.master).map_err(|e| Error::io(&ctx.master, e))?),
            progress: ctx.progress,
            ..Default::default()
        };
        tree::apply(&plan, &ctx.live, &opts).map_err(|e| Error::io(&ctx.live, e))
    })();
    let ch = match copied {
        Ok(ch) => ch,
        Err(e) => {
            let _ = sys::unmount(&ctx.live);
            return Err(e);
        }
    };
    if let Err(e) = make_binds(ctx, &mut out) {
        let _ = sys::unmount(&ctx.live);
        return Err(e);
    }
    let (used, inodes) = sys::fs_usage(&ctx.live).unwrap_or((0, 0));
    let _ = writeln!(
        out,
        "loaded version {} at {}: {} entries, {} MB copied; tmpfs uses {} MB, {} inodes",
        version_number(&master_version),
        ctx.live.display(),
        ch.added.len(),
        ch.bytes_written / 1_000_000,
        used / 1_000_000,
        inodes
    );
    Ok(out)
}

/// `sync`: live brought in line with master while processes run in it.
pub fn sync(ctx: &Ctx, checksum: bool, dry_run: bool) -> Result<String> {
    match live_tmpfs(&ctx.live)? {
        Some(mi) if mi.fstype == "tmpfs" => {}
        _ => {
            return Err(Error::State {
                message: format!("{} is not loaded", ctx.live.display()),
                fix: "run chroot-builder load".to_string(),
            })
        }
    }
    let master_version = version_of(&ctx.master).unwrap_or_default();
    let plan = tree::plan_from_tree(&ctx.master).map_err(|e| Error::io(&ctx.master, e))?;
    let opts = tree::Options {
        dry_run,
        checksum,
        remove_extra: true,
        src_root: Some(sys::open_root(&ctx.master).map_err(|e| Error::io(&ctx.master, e))?),
        progress: ctx.progress,
    };
    let ch = tree::apply(&plan, &ctx.live, &opts).map_err(|e| Error::io(&ctx.live, e))?;
    let mut out = String::new();
    if ch.is_empty() {
        let _ = writeln!(
            out,
            "live {} already matches master (version {}): nothing changed",
            ctx.live.display(),
            version_number(&master_version)
        );
    } else {
        let verb = if dry_run { "would be " } else { "" };
        for (sign, v) in [("+", &ch.added), ("~", &ch.changed), ("-", &ch.removed)] {
            for p in v {
                let _ = writeln!(out, "  {sign} /{}", p.display());
            }
        }
        let _ = writeln!(
            out,
            "sync {}: {verb}added {}, changed {}, removed {}; live is version {}",
            ctx.live.display(),
            ch.added.len(),
            ch.changed.len(),
            ch.removed.len(),
            version_number(&master_version)
        );
    }
    Ok(out)
}

/// `unload`: unmounts the binds, then the tmpfs. Never deletes anything.
pub fn unload(ctx: &Ctx) -> Result<String> {
    let mut out = String::new();
    let mounts = mounts_below(&ctx.live)?;
    if mounts.is_empty() {
        let _ = writeln!(out, "{} is not loaded: nothing to do", ctx.live.display());
        return Ok(out);
    }
    for mi in mounts {
        sys::unmount(&mi.mount_point).map_err(|e| Error::Mount {
            what: format!("unmounting {}", mi.mount_point.display()),
            fix: if e.raw_os_error() == Some(16) {
                format!(
                    "stop the processes using it (fuser -vm {}) and run unload again",
                    mi.mount_point.display()
                )
            } else {
                "run as root in the host's mount namespace".to_string()
            },
            source: e,
        })?;
        let _ = writeln!(out, "unmounted {}", mi.mount_point.display());
    }
    Ok(out)
}

/// `status`: versions, mounts, tmpfs use.
pub fn status(ctx: &Ctx) -> Result<String> {
    let mut out = String::new();
    let mv = version_of(&ctx.master);
    let _ = writeln!(
        out,
        "master {}: {}",
        ctx.master.display(),
        mv.as_deref().map_or("not built".to_string(), |v| format!(
            "version {}",
            version_number(v)
        ))
    );
    let _ = writeln!(
        out,
        "disk   {}: {}",
        ctx.disk.display(),
        if ctx.disk.is_dir() {
            "present"
        } else {
            "missing"
        }
    );
    match live_tmpfs(&ctx.live)? {
        Some(mi) if mi.fstype == "tmpfs" => {
            let lv = version_of(&ctx.live).unwrap_or_default();
            let (used, inodes) = sys::fs_usage(&ctx.live).unwrap_or((0, 0));
            let _ = writeln!(
                out,
                "live   {}: loaded, version {}{}; tmpfs uses {} MB, {} inodes",
                ctx.live.display(),
                version_number(&lv),
                if Some(&lv) == mv.as_ref() {
                    ""
                } else {
                    " (differs from master: run sync)"
                },
                used / 1_000_000,
                inodes
            );
            for b in binds(ctx) {
                let t = ctx
                    .live
                    .join(b.target.strip_prefix("/").unwrap_or(&b.target));
                let mounted = mounts_below(&ctx.live)?.iter().any(|m| m.mount_point == t);
                let _ = writeln!(
                    out,
                    "  bind {} <- {}: {}",
                    t.display(),
                    b.source.display(),
                    if mounted { "mounted" } else { "not mounted" }
                );
            }
        }
        Some(mi) => {
            let _ = writeln!(
                out,
                "live   {}: a {} mount, not ours",
                ctx.live.display(),
                mi.fstype
            );
        }
        None => {
            let _ = writeln!(out, "live   {}: not loaded", ctx.live.display());
        }
    }
    Ok(out)
}

/// A host account, parsed from /etc/passwd (never NSS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Login name.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Home.
    pub home: String,
    /// Shell.
    pub shell: String,
    /// Supplementary gids (from /etc/group).
    pub groups: Vec<u32>,
}

/// Finds `name` in passwd/group texts.
pub fn find_account(passwd: &str, group: &str, name: &str) -> Option<Account> {
    let line = passwd.lines().find(|l| l.split(':').next() == Some(name))?;
    let f: Vec<&str> = line.split(':').collect();
    if f.len() < 7 {
        return None;
    }
    let uid = f[2].parse().ok()?;
    let gid: u32 = f[3].parse().ok()?;
    let mut groups = vec![gid];
    for g in group.lines() {
        let gf: Vec<&str> = g.split(':').collect();
        if gf.len() >= 4 && gf[3].split(',').any(|u| u == name) {
            if let Ok(n) = gf[2].parse() {
                if !groups.contains(&n) {
                    groups.push(n);
                }
            }
        }
    }
    Some(Account {
        name: name.to_string(),
        uid,
        gid,
        home: f[5].to_string(),
        shell: f[6].to_string(),
        groups,
    })
}

/// `exec`: the command line that runs `cmd` in live as `user`, the way suexec would: coreutils
/// `chroot --userspec` does setgid, setgroups, chroot, chdir("/"), setuid in that order, with a
/// clean environment.
pub fn exec_command(ctx: &Ctx, user: &str, cmd: &[String]) -> Result<std::process::Command> {
    if cmd.is_empty() {
        return Err(Error::Usage("exec needs a command after --".to_string()));
    }
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| Error::io("/etc/passwd", e))?;
    let group = std::fs::read_to_string("/etc/group").map_err(|e| Error::io("/etc/group", e))?;
    let acct = find_account(&passwd, &group, user).ok_or_else(|| Error::Usage(format!(
        "no user `{user}` in the host's /etc/passwd; fix: create it (useradd) or name an existing site user"
    )))?;
    if acct.uid == 0 || acct.gid == 0 {
        return Err(Error::Usage(format!(
            "user `{user}` has uid or gid 0; fix: exec runs site users, never root"
        )));
    }
    if version_of(&ctx.live).is_none() {
        return Err(Error::State {
            message: format!("{} is not loaded", ctx.live.display()),
            fix: "run chroot-builder load".to_string(),
        });
    }
    let groups: Vec<String> = acct.groups.iter().map(u32::to_string).collect();
    let mut c = std::process::Command::new("/usr/sbin/chroot");
    c.arg(format!("--userspec={}:{}", acct.uid, acct.gid))
        .arg(format!("--groups={}", groups.join(",")))
        .arg("--")
        .arg(&ctx.live)
        .args(cmd)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &acct.home)
        .env("USER", &acct.name)
        .env("LOGNAME", &acct.name)
        .env("SHELL", &acct.shell)
        .env("LANG", "C.UTF-8")
        .current_dir("/");
    Ok(c)
}

/// `mysql-socket`: points the host's MySQL/MariaDB config at the socket the tree uses, after a
/// backup, and leaves a symlink at the old socket path. Idempotent.
pub fn mysql_socket(mycnf: &Path, socket: &str) -> Result<String> {
    let mut out = String::new();
    let text = std::fs::read_to_string(mycnf).map_err(|e| Error::io(mycnf, e))?;
    let mut old_paths: Vec<String> = Vec::new();
    let mut lines: Vec<String> = Vec::new();
    let mut changed = false;
    for line in text.lines() {
        let t = line.trim();
        let is_socket = !t.starts_with('#')
            && !t.starts_with(';')
            && t.split_once('=').is_some_and(|(k, _)| k.trim() == "socket");
        if is_socket {
            let old = t
                .split_once('=')
                .map(|(_, v)| v.trim().trim_matches('"').to_string())
                .unwrap_or_default();
            if old != socket {
                if !old_paths.contains(&old) {
                    old_paths.push(old);
                }
                lines.push(format!("socket = {socket}"));
                changed = true;
                continue;
            }
        }
        lines.push(line.to_string());
    }
    if !changed
        && !text.lines().any(|l| {
            l.split_once('=')
                .is_some_and(|(k, v)| k.trim() == "socket" && v.trim() == socket)
        })
    {
        lines.push(String::new());
        lines.push("[client-server]".to_string());
        lines.push(format!("socket = {socket}"));
        old_paths.push("/run/mysqld/mysqld.sock".to_string());
        changed = true;
    }
    if changed {
        let backup = PathBuf::from(format!("{}.baseos-orig", mycnf.display()));
        if !backup.exists() {
            std::fs::copy(mycnf, &backup).map_err(|e| Error::io(&backup, e))?;
            let _ = writeln!(out, "backed up {} to {}", mycnf.display(), backup.display());
        }
        let md = std::fs::metadata(mycnf).map_err(|e| Error::io(mycnf, e))?;
        let tmp = PathBuf::from(format!("{}.baseos-tmp", mycnf.display()));
        std::fs::write(&tmp, lines.join("\n") + "\n").map_err(|e| Error::io(&tmp, e))?;
        std::fs::set_permissions(&tmp, md.permissions()).map_err(|e| Error::io(&tmp, e))?;
        {
            use std::os::unix::fs::MetadataExt;
            std::os::unix::fs::chown(&tmp, Some(md.uid()), Some(md.gid()))
                .map_err(|e| Error::io(&tmp, e))?;
        }
        std::fs::rename(&tmp, mycnf).map_err(|e| Error::io(mycnf, e))?;
        let _ = writeln!(out, "{}: socket = {socket}", mycnf.display());
        // Remember the old paths next to the backup, for the next (idempotent) run.
        let note = PathBuf::from(format!("{}.baseos-old-sockets", mycnf.display()));
        let mut known = std::fs::read_to_string(&note).unwrap_or_default();
        for p in &old_paths {
            if !known.lines().any(|l| l == p) {
                known.push_str(p);
                known.push('\n');
            }
        }
        std::fs::write(&note, known).map_err(|e| Error::io(&note, e))?;
    }
    let note = PathBuf::from(format!("{}.baseos-old-sockets", mycnf.display()));
    let known = std::fs::read_to_string(&note).unwrap_or_default();
    for old in known.lines().filter(|l| !l.is_empty() && *l != socket) {
        let old = Path::new(old);
        match std::fs::symlink_metadata(old) {
            Ok(md) if md.file_type().is_symlink() => {
                if std::fs::read_link(old).ok().as_deref() != Some(Path::new(socket)) {
                    let _ = writeln!(out, "{} is a symlink elsewhere: left alone", old.display());
                }
            }
            Ok(_) => {
                let _ = writeln!(
                    out,
                    "{} exists (server still running there?): restart the server, remove it, run mysql-socket again",
                    old.display()
                );
            }
            Err(_) => {
                if let Some(parent) = old.parent() {
                    if parent.is_dir() {
                        std::os::unix::fs::symlink(socket, old).map_err(|e| Error::io(old, e))?;
                        let _ = writeln!(out, "symlink {} -> {socket}", old.display());
                    } else {
                        let _ =
                            writeln!(out, "{}: folder missing, no symlink made", parent.display());
                    }
                }
            }
        }
    }
    if out.is_empty() {
        let _ = writeln!(
            out,
            "{} already uses {socket}: nothing changed",
            mycnf.display()
        );
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn account_from_passwd_and_group() {
        let a = find_account(
            "root:x:0:0::/root:/bin/bash\nalice:x:1001:1002:Alice:/home/alice:/bin/sh\n",
            "alice:x:1002:\nwww:x:33:bob,alice\nstaff:x:50:bob\n",
            "alice",
        )
        .unwrap();
        assert_eq!(
            (a.uid, a.gid, a.groups.clone()),
            (1001, 1002, vec![1002, 33])
        );
        assert!(find_account("root:x:0:0::/root:/bin/bash\n", "", "bob").is_none());
    }

    #[test]
    fn mysql_socket_patches_once_with_backup_and_symlink() {
        let d = tempfile::tempdir().unwrap();
        let cnf = d.path().join("my.cnf");
        let old = d.path().join("mysqld.sock");
        std::fs::write(
            &cnf,
            format!(
                "[mysqld]\nuser = mysql\nsocket = {}\n# socket = /x\n[client]\nsocket={}\n",
                old.display(),
                old.display()
            ),
        )
        .unwrap();
        let first = mysql_socket(&cnf, "/tmp/mysql.sock").unwrap();
        assert!(first.contains("backed up"), "{first}");
        let text = std::fs::read_to_string(&cnf).unwrap();
        assert_eq!(text, "[mysqld]\nuser = mysql\nsocket = /tmp/mysql.sock\n# socket = /x\n[client]\nsocket = /tmp/mysql.sock\n");
        assert_eq!(
            std::fs::read_link(&old).unwrap(),
            Path::new("/tmp/mysql.sock")
        );
        let orig = std::fs::read_to_string(d.path().join("my.cnf.baseos-orig")).unwrap();
        assert!(orig.contains(&format!("socket = {}", old.display())));
        let second = mysql_socket(&cnf, "/tmp/mysql.sock").unwrap();
        assert!(second.contains("nothing changed"), "{second}");
        assert_eq!(std::fs::read_to_string(&cnf).unwrap(), text);
        assert_eq!(
            std::fs::read_to_string(d.path().join("my.cnf.baseos-orig")).unwrap(),
            orig
        );
    }
}
