//! Man pages and shell completions generated from the clap definition, so that `--help`, the
//! man pages and the completions can never disagree (`exim-policy generate-docs --out DIR`,
//! run by `packaging/build-deb.sh`).

use std::path::Path;

use crate::error::{Error, Result};

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `<name>.8` and `<name>-<subcommand>.8` man pages into `<out>/man8/` and bash, zsh and
/// fish completions into `<out>/completions/`.
pub fn generate(mut cmd: clap::Command, out: &Path) -> Result<()> {
    let name = cmd.get_name().to_string();
    let man_dir = out.join("man8");
    let completions = out.join("completions");
    for dir in [&man_dir, &completions] {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    }
    cmd.build();
    let mut pages = vec![(name.clone(), cmd.clone())];
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let page = format!("{name}-{}", sub.get_name());
        pages.push((page.clone(), sub.clone().name(page)));
    }
    for (page, command) in pages {
        let path = man_dir.join(format!("{page}.8"));
        let mut text = Vec::new();
        clap_mangen::Man::new(command)
            .section("8")
            .render(&mut text)
            .map_err(|e| io(&path, e))?;
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
    }
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        clap_complete::generate_to(shell, &mut cmd, &name, &completions)
            .map_err(|e| io(&completions, e))?;
    }
    Ok(())
}
