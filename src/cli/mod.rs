//! Command-line definitions (clap) and the checked configuration built from them.
//! Every flag is defined once here, with its help beside it.
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "portflow",
    version,
    about = "Which ports are open, who uses them, how much, how fast: from pcap/pcapng files or live traffic.",
    after_help = "Exit status: 0 success, 1 a finding at or above --fail-on, 2 error (bad input, bad flags, unreadable file, capture failure),\n130 a capture quit by a second Ctrl-C."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Analyse capture files (pcap, pcapng, gzip-compressed, folders, `-` for stdin).
    Read(ReadArgs),
    /// Capture live from an interface: a refreshing view, the report when stopped (Ctrl-C, -c, -d).
    Capture(CaptureArgs),
    /// List the interfaces that can be captured on.
    Interfaces(InterfacesArgs),
    /// Look up service names and ports in the embedded IANA registry.
    Services(ServicesArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned human-readable table.
    Table,
    /// The versioned JSON report (docs/SCHEMA.md).
    Json,
    /// `capture` only: one JSON object per interval, then the report on one line.
    Ndjson,
}

/// A finding's severity, as `--fail-on` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    Info,
    Low,
    Medium,
    High,
}

impl From<FailOn> for portflow::detect::Severity {
    fn from(f: FailOn) -> Self {
        use portflow::detect::Severity;
        match f {
            FailOn::Info => Severity::Info,
            FailOn::Low => Severity::Low,
            FailOn::Medium => Severity::Medium,
            FailOn::High => Severity::High,
        }
    }
}

/// `60`, `60s`, `500ms`, `5m`, `1h`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (e.g. 30s, 5m, 500ms)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" | "" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (ms, s, m, h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("'{s}' is not a duration"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// Options shared by `read` and `capture`: analysis and report.
#[derive(Debug, Args)]
pub struct AnalysisArgs {
    /// Ports shown in the table (0 for all). The JSON report always has all.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub top: usize,

    /// Threads that analyse packets: the reader and N-1 flow workers; 1 analyses a file in one thread (default: the number of CPU cores).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// A services(5) file whose names override or add to the IANA registry.
    #[arg(long, value_name = "FILE")]
    pub services: Option<PathBuf>,

    /// Most flows held in memory at once (about 97 bytes each); beyond it the least recently seen are ended (and counted).
    #[arg(long, default_value_t = portflow::pipeline::DEFAULT_FLOW_CAP, value_name = "N")]
    pub flow_cap: usize,

    /// TCP idle timeout in seconds (packet time).
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub tcp_timeout: u64,

    /// UDP (and SCTP, DCCP) idle timeout in seconds (packet time).
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub udp_timeout: u64,

    /// A TOML file saying which ports each host or network may serve (docs/POLICY.md);
    /// services outside it are `unexpected-port` findings.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// Exit with status 1 when a finding at or above this severity was found.
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<FailOn>,

    /// port-scan: distinct ports of one host a source must fail to reach within --scan-window (Zeek's default).
    #[arg(long, default_value_t = 15, value_name = "N")]
    pub scan_ports: usize,

    /// host-sweep: distinct hosts a source must fail to reach on one port within --scan-window (Zeek's default).
    #[arg(long, default_value_t = 25, value_name = "N")]
    pub sweep_hosts: usize,

    /// The window for --scan-ports and --sweep-hosts.
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = parse_duration)]
    pub scan_window: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// Interface to capture on (`any` for all; default: libpcap's default device).
    #[arg(value_name = "IFACE")]
    pub interface: Option<String>,

    /// Interface, as with tcpdump -i (same as the positional IFACE).
    #[arg(
        short = 'i',
        long = "interface",
        value_name = "IFACE",
        conflicts_with = "interface"
    )]
    pub interface_flag: Option<String>,

    /// BPF filter expression, compiled into the kernel.
    #[arg(short = 'f', long = "filter", value_name = "EXPR")]
    pub filter: Option<String>,

    /// Stop after this long (30s, 5m, 1h).
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,

    /// Stop after this many packets.
    #[arg(short = 'c', long, value_name = "N")]
    pub count: Option<u64>,

    /// Also write the packets to a pcap file (complete and readable whenever the capture stops).
    #[arg(short = 'w', long, value_name = "FILE")]
    pub write: Option<PathBuf>,

    /// Bytes kept per packet (tcpdump -s).
    #[arg(short = 's', long, default_value_t = portflow::source::MAX_SNAPLEN as i32, value_name = "BYTES")]
    pub snaplen: i32,

    /// Kernel capture buffer in KiB (tcpdump -B).
    #[arg(
        short = 'B',
        long = "buffer-size",
        default_value_t = 65_536,
        value_name = "KIB"
    )]
    pub buffer_kib: i32,

    /// Do not put the interface into promiscuous mode (tcpdump -p).
    #[arg(short = 'p', long = "no-promisc")]
    pub no_promisc: bool,

    /// Once the capture is open, run as USER (tcpdump -Z). As root the default is the
    /// user who ran sudo, else `nobody`; `-Z root` keeps root. -w and -o files are
    /// created as that user. Without root, capabilities are cleared instead.
    #[arg(short = 'Z', long = "user", value_name = "USER")]
    pub user: Option<String>,

    /// How often the view refreshes (and interval objects are written).
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse_duration)]
    pub interval: std::time::Duration,

    /// `table`: the live view on a terminal (interval objects otherwise), then the table;
    /// `json`: the final report as JSON; `ndjson`: one JSON object per interval, then the report on one line.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,

    /// Write the final report to FILE (written to a temporary name, then renamed).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    #[command(flatten)]
    pub analysis: AnalysisArgs,
}

#[derive(Debug, Args)]
pub struct InterfacesArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
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

    #[command(flatten)]
    pub analysis: AnalysisArgs,

    /// After a file error, go on with the next file and print the report (exit status stays 2).
    #[arg(long)]
    pub keep_going: bool,

    /// Write the report to FILE (written to a temporary name, then renamed).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// No progress bar, even on a terminal.
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// Then print to standard error where the time went: wall time per phase (reading,
    /// ending the flows still open, merge, report, writing) and CPU time per thread.
    #[arg(long)]
    pub timings: bool,
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
