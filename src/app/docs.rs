//! `portflow completions` and `portflow man`: shell completions and manual
//! pages generated from the command-line definitions, so they cannot drift
//! from the flags (clap_complete, clap_mangen).
use super::AppError;
use crate::cli::{Cli, CompletionsArgs, ManArgs};
use clap::CommandFactory;
use std::io::Write;

/// The completion script for one shell, on stdout.
pub fn completions(args: CompletionsArgs) -> Result<u8, AppError> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, "portflow", &mut out);
    out.flush()?;
    Ok(0)
}

/// portflow.1 on stdout, or it and one page per command in `--dir`.
pub fn man(args: ManArgs) -> Result<u8, AppError> {
    let cmd = Cli::command();
    let Some(dir) = args.dir else {
        let mut out = std::io::stdout().lock();
        clap_mangen::Man::new(cmd).render(&mut out)?;
        out.flush()?;
        return Ok(0);
    };
    std::fs::create_dir_all(&dir).map_err(|error| AppError::Output {
        path: dir.clone(),
        error,
    })?;
    let write = |name: String, page: clap::Command| -> Result<(), AppError> {
        let path = dir.join(format!("{name}.1"));
        let mut text = Vec::new();
        clap_mangen::Man::new(page).render(&mut text)?;
        std::fs::write(&path, text).map_err(|error| AppError::Output { path, error })
    };
    for sub in cmd.get_subcommands() {
        let name = format!("portflow-{}", sub.get_name());
        write(
            name.clone(),
            sub.clone().display_name(name.clone()).bin_name(name),
        )?;
    }
    write("portflow".into(), cmd)?;
    Ok(0)
}
