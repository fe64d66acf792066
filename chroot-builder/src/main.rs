//! `chroot-builder`: argv in, exit code out. The work is in the library.
//!
//! DESCRIPTION: builds the BaseOS master from the host per a manifest, loads it into a tmpfs with
//! its bind mounts, keeps it in sync while sites run in it, audits it, and runs commands in it.
//! SECURITY: run as root. Never writes through a symlink or into a mount point inside the trees;
//! never deletes host data. EXIT STATUS: 0 ok, 1 check found problems, 64 usage, 69 missing or
//! wrong state, 71 mount failed, 74 I/O, 77 unsafe path, 78 bad manifest; `exec` returns the
//! command's status.
use chroot_builder::{check, manifest, ops, Error};
use clap::{CommandFactory, Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "chroot-builder",
    version,
    about = "Build, load, sync and audit the BaseOS chroot"
)]
struct Cli {
    /// The manifest.
    #[arg(long, global = true, default_value = manifest::DEFAULT_MANIFEST)]
    manifest: PathBuf,
    /// Override [paths] master.
    #[arg(long, global = true)]
    master: Option<PathBuf>,
    /// Override [paths] live.
    #[arg(long, global = true)]
    live: Option<PathBuf>,
    /// Override [paths] disk.
    #[arg(long, global = true)]
    disk: Option<PathBuf>,
    /// No progress bars (they only show on a terminal anyway).
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Host → master (and the disk tier).
    Build {
        /// Print the plan and what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// A binary or path missing on the host is an error.
        #[arg(long)]
        strict: bool,
        /// The static sendmail shim to install.
        #[arg(long)]
        shim: Option<PathBuf>,
        /// Compare file contents, not size and mtime.
        #[arg(long)]
        checksum: bool,
    },
    /// Mount a tmpfs at live, copy master in, make the bind mounts (idempotent).
    Load,
    /// Bring live in line with master while processes run in it.
    Sync {
        /// Compare file contents, not size and mtime.
        #[arg(long)]
        checksum: bool,
        /// Only print what would change.
        #[arg(long)]
        dry_run: bool,
    },
    /// Audit live (or master when live is not loaded); exit 1 with a list of problems.
    Check,
    /// Versions, mounts and tmpfs use.
    Status,
    /// Unmount the binds, then the tmpfs.
    Unload,
    /// Run a command inside live as a site user (as suexec would).
    Exec {
        /// The host user to run as.
        #[arg(long)]
        user: String,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Point the host's MySQL config at the tree's socket (/tmp/mysql.sock), with a backup and a
    /// symlink at the old socket path.
    MysqlSocket {
        /// The config file holding `socket =`.
        #[arg(long, default_value = "/etc/mysql/mariadb.conf.d/50-server.cnf")]
        mycnf: PathBuf,
    },
    /// Write man pages (man8/) and bash/zsh/fish completions (completions/) into a folder.
    #[command(hide = true)]
    GenerateDocs {
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
}

fn run(cli: Cli) -> Result<i32, Error> {
    let progress = !cli.quiet && std::io::stderr().is_terminal();
    let ctx = || {
        ops::Ctx::new(
            &cli.manifest,
            cli.master.clone(),
            cli.live.clone(),
            cli.disk.clone(),
            progress,
        )
    };
    let out = match cli.command {
        Command::Build {
            dry_run,
            strict,
            shim,
            checksum,
        } => ops::build(
            &ctx()?,
            &ops::BuildArgs {
                dry_run,
                strict,
                shim,
                checksum,
            },
        )?,
        Command::Load => ops::load(&ctx()?)?,
        Command::Sync { checksum, dry_run } => ops::sync(&ctx()?, checksum, dry_run)?,
        Command::Unload => ops::unload(&ctx()?)?,
        Command::Status => ops::status(&ctx()?)?,
        Command::Check => {
            let c = ctx()?;
            let loaded = ops::version_of(&c.live).is_some();
            let (target, master) = if loaded {
                (&c.live, Some(c.master.as_path()))
            } else {
                (&c.master, None)
            };
            let findings = check::check(&c.loaded.manifest, target, master, Some(&c.disk))?;
            if findings.is_empty() {
                println!("check {}: no problems", target.display());
                return Ok(0);
            }
            print!("{}", check::render(&findings));
            return Err(Error::CheckFailed(findings.len()));
        }
        Command::Exec { user, cmd } => {
            let status = ops::exec_command(&ctx()?, &user, &cmd)?
                .status()
                .map_err(|e| Error::io("/usr/sbin/chroot", e))?;
            use std::os::unix::process::ExitStatusExt;
            return Ok(status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)));
        }
        Command::GenerateDocs { out } => {
            chroot_builder::docs::generate(Cli::command(), &out)?;
            format!("wrote man pages and completions to {}\n", out.display())
        }
        Command::MysqlSocket { mycnf } => {
            let socket = manifest::load(&cli.manifest).map_or_else(
                |_| "/tmp/mysql.sock".to_string(),
                |l| l.manifest.mysql.socket,
            );
            ops::mysql_socket(&mycnf, &socket)?
        }
    };
    print!("{out}");
    Ok(0)
}

fn main() {
    let code = match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("chroot-builder: {err}");
            err.exit_code()
        }
    };
    std::process::exit(code);
}
