//! `exim-policy`: argv in, exit code out. The work is in the library.
use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "exim-policy",
    version,
    about = "Per-user ident-based rate limits for Exim on loopback, and per-user mail reports"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the Exim configuration (standalone or Debian layout) from a policy file.
    Render(exim_policy::render::RenderArgs),
    /// Render into a scratch directory and prove it with the real exim (-bV, -bh sessions).
    Check(exim_policy::check::CheckArgs),
    /// Per-user mail counts from Exim main logs (plain and gzip-rotated).
    Report(exim_policy::report::ReportArgs),
    /// Write man pages (man8/) and bash/zsh/fish completions (completions/) into a folder.
    #[command(hide = true)]
    GenerateDocs {
        /// Output folder.
        #[arg(long)]
        out: std::path::PathBuf,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Render(args) => exim_policy::render::run(&args),
        Command::Check(args) => exim_policy::check::run(&args),
        Command::Report(args) => exim_policy::report::run(&args),
        Command::GenerateDocs { out } => {
            exim_policy::docs::generate(Cli::command(), &out).map(|()| 0)
        }
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("exim-policy: {err}");
            std::process::exit(err.exit_code());
        }
    }
}
