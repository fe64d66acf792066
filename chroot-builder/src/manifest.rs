//! The manifest: what goes into the BaseOS tree, and where the trees live.
//!
//! TOML, unknown keys refused (`deny_unknown_fields`). Every path is absolute and free of `..`;
//! errors name the manifest line and the fix.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// Where the manifest is looked for when `--manifest` is not given.
pub const DEFAULT_MANIFEST: &str = "/etc/baseos/baseos.toml";

/// Where the disk tier is bind-mounted inside the tree.
pub const DISK_MOUNT: &str = "/chroot";

/// The whole manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Where the trees live.
    pub paths: Paths,
    /// The tmpfs the live tree is loaded into.
    #[serde(default)]
    pub tmpfs: Tmpfs,
    /// Executables, looked up by name in `search`.
    #[serde(default)]
    pub binaries: Binaries,
    /// Host files and folders copied into the memory tier (folders recursively; `*` in a
    /// component is a glob). Every ELF file's libraries are added.
    #[serde(default)]
    pub memory: Tier,
    /// Host folders copied into the disk tier (`[paths] disk`, bind-mounted at `/chroot`) and
    /// replaced in the memory tier by a symlink to `/chroot/<path>`.
    #[serde(default)]
    pub disk: Tier,
    /// Patterns (`*` matches anything, `/` included) of tree paths never copied.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Empty folders created in the tree (mount points, `/Z`, `/tmp`).
    #[serde(default)]
    pub empty_dirs: Vec<String>,
    /// `/etc` essentials.
    #[serde(default)]
    pub etc: Etc,
    /// Which host users and groups appear in the tree's passwd and group.
    #[serde(default)]
    pub users: Users,
    /// PHP configuration fix-ups.
    #[serde(default)]
    pub php: Php,
    /// MySQL client configuration.
    #[serde(default)]
    pub mysql: Mysql,
    /// Allow-listed device nodes.
    #[serde(default)]
    pub devices: Devices,
    /// setuid/setgid allow-list.
    #[serde(default)]
    pub setuid: Setuid,
    /// The static sendmail shim.
    #[serde(default)]
    pub shim: Shim,
    /// Symlinks created in the memory tier (path = target), e.g. `/var/run` = `/run`.
    #[serde(default)]
    pub symlinks: BTreeMap<String, String>,
    /// Bind mounts made by `load` (besides the disk tier at `/chroot`).
    #[serde(default)]
    pub bind: Vec<Bind>,
}

/// `[paths]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paths {
    /// The on-disk master copy of the memory tier.
    pub master: PathBuf,
    /// The tmpfs tree users are chrooted into.
    pub live: PathBuf,
    /// The on-disk tier, bind-mounted at `<live>/chroot`.
    pub disk: PathBuf,
}

/// `[tmpfs]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tmpfs {
    /// tmpfs `size=` option (e.g. `512m`, `25%`).
    #[serde(default = "default_size")]
    pub size: String,
}

impl Default for Tmpfs {
    fn default() -> Self {
        Tmpfs {
            size: default_size(),
        }
    }
}

fn default_size() -> String {
    "512m".to_string()
}

/// `[binaries]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binaries {
    /// Folders searched for bare names, in order.
    #[serde(default = "default_search")]
    pub search: Vec<String>,
    /// Names (or absolute paths) of executables.
    #[serde(default)]
    pub names: Vec<String>,
}

impl Default for Binaries {
    fn default() -> Self {
        Binaries {
            search: default_search(),
            names: Vec::new(),
        }
    }
}

fn default_search() -> Vec<String> {
    ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// `[memory]` and `[disk]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Host paths (globs allowed per component).
    #[serde(default)]
    pub paths: Vec<String>,
}

/// `[etc]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Etc {
    /// Host files copied as plain files (symlinks dereferenced: `/etc/localtime` becomes a file).
    #[serde(default)]
    pub copy: Vec<String>,
    /// Files written with the given content (path = content).
    #[serde(default)]
    pub generate: BTreeMap<String, String>,
}

/// `[users]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Users {
    /// Host users with a uid at or above this (and below 65534) are included; root always is.
    #[serde(default = "default_min_uid")]
    pub min_uid: u32,
    /// Further user names to include.
    #[serde(default)]
    pub names: Vec<String>,
    /// Further group names to include.
    #[serde(default)]
    pub groups: Vec<String>,
}

impl Default for Users {
    fn default() -> Self {
        Users {
            min_uid: default_min_uid(),
            names: Vec::new(),
            groups: Vec::new(),
        }
    }
}

fn default_min_uid() -> u32 {
    1000
}

/// `[php]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Php {
    /// Host php.ini files (globs allowed) copied with `sendmail_path` (and the MySQL sockets) set.
    #[serde(default)]
    pub ini: Vec<String>,
    /// The `sendmail_path` written into them.
    #[serde(default = "default_sendmail_path")]
    pub sendmail_path: String,
}

impl Default for Php {
    fn default() -> Self {
        Php {
            ini: Vec::new(),
            sendmail_path: default_sendmail_path(),
        }
    }
}

fn default_sendmail_path() -> String {
    "/usr/sbin/sendmail -t -i".to_string()
}

/// `[mysql]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mysql {
    /// The socket clients in the tree use (the host's server must listen there: `mysql-socket`).
    #[serde(default = "default_mysql_socket")]
    pub socket: String,
    /// The client configuration file written into the tree.
    #[serde(default = "default_mysql_conf")]
    pub client_conf: String,
}

impl Default for Mysql {
    fn default() -> Self {
        Mysql {
            socket: default_mysql_socket(),
            client_conf: default_mysql_conf(),
        }
    }
}

fn default_mysql_socket() -> String {
    "/tmp/mysql.sock".to_string()
}

fn default_mysql_conf() -> String {
    "/etc/mysql/my.cnf".to_string()
}

/// `[devices]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Devices {
    /// Names under `/dev` recreated in the tree (same major/minor as the host's).
    #[serde(default = "default_devices")]
    pub allow: Vec<String>,
}

impl Default for Devices {
    fn default() -> Self {
        Devices {
            allow: default_devices(),
        }
    }
}

fn default_devices() -> Vec<String> {
    ["null", "zero", "random", "urandom", "tty", "full"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// `[setuid]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setuid {
    /// Tree paths that keep their setuid/setgid bits (everything else loses them).
    #[serde(default)]
    pub allow: Vec<String>,
}

/// `[shim]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shim {
    /// Candidate locations of the static shim, first existing wins; relative paths are relative
    /// to the manifest's folder. `--shim PATH` overrides.
    #[serde(default = "default_shim_source")]
    pub source: Vec<String>,
    /// Where it is installed in the tree: the first is the file, the others symlinks to it.
    #[serde(default = "default_shim_install")]
    pub install: Vec<String>,
}

impl Default for Shim {
    fn default() -> Self {
        Shim {
            source: default_shim_source(),
            install: default_shim_install(),
        }
    }
}

fn default_shim_source() -> Vec<String> {
    vec![
        "/usr/lib/baseos-mail/sendmail".to_string(),
        "../target/x86_64-unknown-linux-gnu/release/sendmail".to_string(),
    ]
}

fn default_shim_install() -> Vec<String> {
    [
        "/usr/sbin/sendmail",
        "/usr/lib/sendmail",
        "/usr/bin/mini_sendmail",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `[[bind]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bind {
    /// Host folder.
    pub source: PathBuf,
    /// Where it appears in the tree.
    pub target: PathBuf,
    /// Mount it read-only.
    #[serde(default)]
    pub readonly: bool,
    /// Skip it (with a note) when the host folder does not exist.
    #[serde(default)]
    pub optional: bool,
}

/// A manifest with the file it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The parsed manifest.
    pub manifest: Manifest,
    /// Its file.
    pub path: PathBuf,
    /// Its text (for line numbers).
    pub text: String,
}

/// 1-based line of the first occurrence of `needle` (quoted, as TOML writes strings), else 0.
pub fn line_of(text: &str, needle: &str) -> usize {
    let quoted = format!("\"{needle}\"");
    let single = format!("'{needle}'");
    text.lines()
        .position(|l| l.contains(&quoted) || l.contains(&single))
        .map_or(0, |i| i + 1)
}

fn line_of_offset(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map_or(0, |t| t.matches('\n').count() + 1)
}

/// Parses and validates manifest text. `path` is only used in messages.
pub fn parse(text: &str, path: &Path) -> Result<Manifest> {
    let manifest: Manifest = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of_offset(text, s.start));
        let msg = e.message().trim().to_string();
        let fix = if msg.contains("unknown field") {
            "remove the key or correct its spelling (see chroot-builder/README.md for the keys)"
        } else if msg.contains("missing field") {
            "add the key (see chroot-builder/README.md)"
        } else {
            "correct the TOML syntax or value type"
        };
        Error::Manifest {
            path: path.to_path_buf(),
            line,
            message: msg.replace('\n', " "),
            fix: fix.to_string(),
        }
    })?;
    validate(&manifest, text, path)?;
    Ok(manifest)
}

/// Reads, parses and validates a manifest file.
pub fn load(path: &Path) -> Result<Loaded> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::State {
                message: format!("no manifest at {}", path.display()),
                fix: format!(
                    "copy chroot-builder/baseos.toml to {DEFAULT_MANIFEST} or pass --manifest PATH"
                ),
            }
        } else {
            Error::io(path, e)
        }
    })?;
    let manifest = parse(&text, path)?;
    Ok(Loaded {
        manifest,
        path: path.to_path_buf(),
        text,
    })
}

/// Checks that `p` is absolute and has no `.`/`..` components. `what` names the key.
pub fn check_abs_path(p: &str, what: &str) -> std::result::Result<(), (String, String)> {
    let path = Path::new(p);
    if !path.is_absolute() {
        return Err((
            format!("{what} `{p}` is not an absolute path"),
            format!(
                "write it from the root, e.g. `/{}`",
                p.trim_start_matches("./")
            ),
        ));
    }
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        || p.split('/').any(|c| c == "..")
    {
        return Err((
            format!("{what} `{p}` contains `..` or `.`"),
            "write the path without `..` (spell out the folder it means)".to_string(),
        ));
    }
    Ok(())
}

fn validate(m: &Manifest, text: &str, path: &Path) -> Result<()> {
    let err = |needle: &str, (message, fix): (String, String)| Error::Manifest {
        path: path.to_path_buf(),
        line: line_of(text, needle),
        message,
        fix,
    };
    for (key, p) in [
        ("[paths] master", &m.paths.master),
        ("[paths] live", &m.paths.live),
        ("[paths] disk", &m.paths.disk),
    ] {
        let s = p.to_string_lossy();
        check_abs_path(&s, key).map_err(|e| err(&s, e))?;
    }
    let mut lists: Vec<(&str, &String)> = Vec::new();
    lists.extend(m.memory.paths.iter().map(|p| ("[memory] paths", p)));
    lists.extend(m.disk.paths.iter().map(|p| ("[disk] paths", p)));
    lists.extend(m.empty_dirs.iter().map(|p| ("empty_dirs", p)));
    lists.extend(m.etc.copy.iter().map(|p| ("[etc] copy", p)));
    lists.extend(m.etc.generate.keys().map(|p| ("[etc.generate]", p)));
    lists.extend(m.symlinks.keys().map(|p| ("[symlinks]", p)));
    lists.extend(m.php.ini.iter().map(|p| ("[php] ini", p)));
    lists.extend(m.setuid.allow.iter().map(|p| ("[setuid] allow", p)));
    lists.extend(m.shim.install.iter().map(|p| ("[shim] install", p)));
    lists.extend(m.binaries.search.iter().map(|p| ("[binaries] search", p)));
    lists.push(("[mysql] client_conf", &m.mysql.client_conf));
    lists.push(("[mysql] socket", &m.mysql.socket));
    for (what, p) in lists {
        check_abs_path(p, what).map_err(|e| err(p, e))?;
    }
    for name in &m.binaries.names {
        if name.starts_with('/') {
            check_abs_path(name, "[binaries] names").map_err(|e| err(name, e))?;
        } else if name.contains('/') || name.is_empty() || name == ".." {
            return Err(err(
                name,
                (
                    format!(
                        "[binaries] names `{name}` is neither a bare name nor an absolute path"
                    ),
                    "write a bare name (looked up in `search`) or an absolute path".to_string(),
                ),
            ));
        }
    }
    for b in &m.bind {
        for (what, p) in [
            ("[[bind]] source", &b.source),
            ("[[bind]] target", &b.target),
        ] {
            let s = p.to_string_lossy();
            check_abs_path(&s, what).map_err(|e| err(&s, e))?;
        }
        if b.target == Path::new("/") {
            return Err(err(
                "/",
                (
                    "[[bind]] target `/` would hide the whole tree".to_string(),
                    "bind to a folder inside the tree such as `/tmp`".to_string(),
                ),
            ));
        }
    }
    for d in &m.devices.allow {
        if d.is_empty() || d.contains('/') || d == ".." || d == "." {
            return Err(err(
                d,
                (
                    format!("[devices] allow `{d}` is not a plain name under /dev"),
                    "write names such as `null`, `urandom`".to_string(),
                ),
            ));
        }
    }
    if parse_size(&m.tmpfs.size).is_none() {
        return Err(err(
            &m.tmpfs.size,
            (
                format!("[tmpfs] size `{}` is not a size", m.tmpfs.size),
                "write e.g. `512m`, `2g` or `25%`".to_string(),
            ),
        ));
    }
    Ok(())
}

/// Parses a tmpfs size (`123`, `512k`, `512m`, `2g`, `25%`); `None` if malformed.
pub fn parse_size(s: &str) -> Option<()> {
    let s = s.trim();
    let digits = s.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G', '%']);
    if digits.is_empty()
        || s.len() - digits.len() > 1
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some(())
}

/// Checks the effective master/live/disk paths: not `/`, not overlapping, not under a folder
/// that is group/world-writable or owned by someone other than root (a local user could swap
/// a component and redirect our writes).
pub fn check_tree_paths(master: &Path, live: &Path, disk: &Path) -> Result<()> {
    for (what, p) in [("master", master), ("live", live), ("disk", disk)] {
        let s = p.to_string_lossy();
        check_abs_path(&s, what).map_err(|(message, fix)| Error::UnsafePath { message, fix })?;
        if p == Path::new("/") {
            return Err(Error::UnsafePath {
                message: format!("{what} path is `/`: the tree would replace the host's root"),
                fix: format!(
                    "use a dedicated folder, e.g. --{what} {}",
                    match what {
                        "master" => "/root/baseos",
                        "live" => "/var/suexec/baseos",
                        _ => "/chroot",
                    }
                ),
            });
        }
        check_parents(what, p)?;
    }
    for (a, pa, b, pb) in [
        ("master", master, "live", live),
        ("master", master, "disk", disk),
        ("live", live, "disk", disk),
    ] {
        if pa.starts_with(pb) || pb.starts_with(pa) {
            return Err(Error::UnsafePath {
                message: format!("{a} {} and {b} {} overlap", pa.display(), pb.display()),
                fix: "give each tree its own folder, none inside another".to_string(),
            });
        }
    }
    Ok(())
}

fn check_parents(what: &str, p: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut cur = PathBuf::from("/");
    let comps: Vec<_> = p.components().skip(1).collect();
    for (i, c) in comps.iter().enumerate() {
        let md = match std::fs::symlink_metadata(&cur) {
            Ok(md) => md,
            Err(e) => return Err(Error::io(&cur, e)),
        };
        if md.file_type().is_symlink() {
            return Err(Error::UnsafePath {
                message: format!(
                    "{what} {}: component {} is a symlink",
                    p.display(),
                    cur.display()
                ),
                fix: format!(
                    "use the real path ({})",
                    std::fs::canonicalize(p)
                        .unwrap_or_else(|_| p.to_path_buf())
                        .display()
                ),
            });
        }
        if md.mode() & 0o022 != 0
            || (md.uid() != 0 && md.uid() != rustix::process::geteuid().as_raw())
        {
            let how = if md.mode() & 0o002 != 0 {
                "world-writable"
            } else if md.mode() & 0o020 != 0 {
                "group-writable"
            } else {
                "not owned by root"
            };
            return Err(Error::UnsafePath {
                message: format!(
                    "{what} {} is under {} which is {how} (mode {:o}): another user could swap the tree",
                    p.display(),
                    cur.display(),
                    md.mode() & 0o7777
                ),
                fix: format!(
                    "put the {what} tree under a root-owned folder that only root can write (e.g. /var/lib or /root), or pass --{what}"
                ),
            });
        }
        cur.push(c);
        if i + 1 == comps.len() {
            // The path itself: checked too when it exists.
            match std::fs::symlink_metadata(&cur) {
                Ok(md) if md.file_type().is_symlink() => {
                    return Err(Error::UnsafePath {
                        message: format!("{what} {} is a symlink", p.display()),
                        fix: "point the manifest at the real folder".to_string(),
                    })
                }
                Ok(md) if md.mode() & 0o022 != 0 => {
                    return Err(Error::UnsafePath {
                        message: format!(
                            "{what} {} is writable by group or others (mode {:o})",
                            p.display(),
                            md.mode() & 0o7777
                        ),
                        fix: format!("chmod go-w {}", p.display()),
                    })
                }
                _ => {}
            }
        } else if std::fs::symlink_metadata(&cur).is_err() {
            break; // the rest does not exist yet: created by us, root-owned
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MINIMAL: &str =
        "[paths]\nmaster = \"/var/lib/m\"\nlive = \"/var/lib/l\"\ndisk = \"/var/lib/d\"\n";

    #[test]
    fn minimal_manifest_parses_with_defaults() {
        let m = parse(MINIMAL, Path::new("m.toml")).unwrap();
        assert_eq!(m.devices.allow.len(), 6);
        assert_eq!(m.shim.install[0], "/usr/sbin/sendmail");
        assert_eq!(m.php.sendmail_path, "/usr/sbin/sendmail -t -i");
    }

    #[test]
    fn unknown_key_names_line_and_fix() {
        let text = format!("{MINIMAL}\n[binaries]\nnames = [\"ls\"]\nnmaes = [\"x\"]\n");
        let e = parse(&text, Path::new("m.toml")).unwrap_err().to_string();
        assert!(e.starts_with("m.toml:8: unknown field `nmaes`"), "{e}");
        assert!(e.contains("fix: remove the key"), "{e}");
    }

    #[test]
    fn dotdot_path_names_line_and_fix() {
        let text = format!("{MINIMAL}[memory]\npaths = [\"/usr/share/../../etc/shadow\"]\n");
        let e = parse(&text, Path::new("m.toml")).unwrap_err().to_string();
        assert!(
            e.starts_with("m.toml:6: [memory] paths `/usr/share/../../etc/shadow` contains `..`"),
            "{e}"
        );
        assert!(e.contains("fix: write the path without `..`"), "{e}");
    }

    #[test]
    fn relative_master_refused() {
        let text = MINIMAL.replace("/var/lib/m", "var/lib/m");
        let e = parse(&text, Path::new("m.toml")).unwrap_err().to_string();
        assert!(
            e.contains("m.toml:2: [paths] master `var/lib/m` is not an absolute path"),
            "{e}"
        );
    }

    #[test]
    fn live_root_refused() {
        let e = check_tree_paths(
            Path::new("/var/lib/m"),
            Path::new("/"),
            Path::new("/var/lib/d"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("live path is `/`"), "{e}");
        assert!(e.contains("fix: use a dedicated folder"), "{e}");
    }

    #[test]
    fn world_writable_parent_refused() {
        let e = check_tree_paths(
            Path::new("/var/lib/m"),
            Path::new("/tmp/baseos-live"),
            Path::new("/var/lib/d"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("live /tmp/baseos-live is under /tmp which is world-writable"),
            "{e}"
        );
        let e = check_tree_paths(
            Path::new("/var/tmp/x/master"),
            Path::new("/var/lib/l"),
            Path::new("/var/lib/d"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("master /var/tmp/x/master is under /var/tmp which is world-writable"),
            "{e}"
        );
    }

    #[test]
    fn overlapping_trees_refused() {
        let e = check_tree_paths(
            Path::new("/var/lib/b"),
            Path::new("/var/lib/b/live"),
            Path::new("/var/lib/d"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("overlap"), "{e}");
    }

    #[test]
    fn bad_size_refused() {
        let text = format!("{MINIMAL}[tmpfs]\nsize = \"lots\"\n");
        let e = parse(&text, Path::new("m.toml")).unwrap_err().to_string();
        assert!(
            e.contains("m.toml:6: [tmpfs] size `lots` is not a size"),
            "{e}"
        );
    }

    #[test]
    fn shipped_manifest_is_valid() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("baseos.toml");
        let text = std::fs::read_to_string(&p).unwrap();
        let m = parse(&text, &p).unwrap();
        assert!(m.binaries.names.iter().any(|n| n == "php"));
        assert!(m.bind.iter().any(|b| b.target == Path::new("/tmp")));
    }
}
