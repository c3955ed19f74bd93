//! The `portflow` binary: parse the arguments, run the command, map errors to
//! exit codes. The command-line definitions (`cli`) and what each command
//! does (`app`) belong to the binary; everything else is the `portflow`
//! library.
mod app;
mod cli;

use clap::Parser;
use cli::{Cli, Command};
use std::process::ExitCode;

/// mimalloc: see Cargo.toml for why.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Read(args) => app::read::run(args),
        Command::Capture(args) => app::capture::run(*args),
        Command::Learn(args) => app::learn::run(args),
        Command::Firewall(args) => app::firewall::run(args),
        Command::Diff(args) => app::diff::run(args),
        Command::Interfaces(args) => app::listings::interfaces(args),
        Command::Services(args) => app::listings::services(args),
        Command::Completions(args) => app::docs::completions(args),
        Command::Man(args) => app::docs::man(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portflow: {e}");
            ExitCode::from(2)
        }
    }
}
