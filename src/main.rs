//! The `portflow` binary: parse arguments, run, map errors to exit codes.
use clap::Parser;
use portflow::cli::{Cli, Command};
use std::process::ExitCode;

/// mimalloc: see Cargo.toml for why.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Read(args) => portflow::app::read(args),
        Command::Capture(args) => portflow::app::capture(args),
        Command::Interfaces(args) => portflow::app::interfaces(args),
        Command::Services(args) => portflow::app::services(args),
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
