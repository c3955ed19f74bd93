//! Command-line definitions (clap) and the checked configuration built from them.
//! Every flag is defined once here, with its help beside it.
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "portflow",
    version,
    about = "Which ports are open, who uses them, how much, how fast: from pcap/pcapng files or live traffic.",
    after_help = "Exit status: 0 success, 2 error (bad input, bad flags, unreadable file)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Analyse capture files (pcap, pcapng, gzip-compressed, folders, `-` for stdin).
    Read(ReadArgs),
    /// Look up service names and ports in the embedded IANA registry.
    Services(ServicesArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned human-readable table.
    Table,
    /// The versioned JSON report (docs/SCHEMA.md).
    Json,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Capture files or folders; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// BPF filter expression, as with `tcpdump -r FILE EXPR`.
    #[arg(short = 'f', long = "filter", value_name = "EXPR")]
    pub filter: Option<String>,

    /// Report format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,

    /// Print one JSON object per flow (NDJSON) instead of the port report.
    #[arg(long)]
    pub flows: bool,

    /// Ports shown in the table (0 for all). The JSON report always has all.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub top: usize,

    /// Worker threads (default: the number of CPU cores).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// A services(5) file whose names override or add to the IANA registry.
    #[arg(long, value_name = "FILE")]
    pub services: Option<PathBuf>,

    /// After a file error, go on with the next file and print the report (exit status stays 2).
    #[arg(long)]
    pub keep_going: bool,

    /// Write the report to FILE (written to a temporary name, then renamed).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Most flows held in memory at once; beyond it the least recently seen are ended (and counted).
    #[arg(long, default_value_t = 4_000_000, value_name = "N")]
    pub flow_cap: usize,

    /// TCP idle timeout in seconds (packet time).
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub tcp_timeout: u64,

    /// UDP (and SCTP, DCCP) idle timeout in seconds (packet time).
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub udp_timeout: u64,

    /// No progress bar, even on a terminal.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ServicesArgs {
    /// Port numbers (`443`, `53/udp`) or names (`ssh`); all matching entries are listed.
    #[arg(required = true, value_name = "PORT|NAME")]
    pub queries: Vec<String>,

    /// A services(5) file to consult as well.
    #[arg(long, value_name = "FILE")]
    pub services: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}
