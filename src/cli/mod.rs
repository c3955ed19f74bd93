//! Command-line definitions (clap). Every flag is defined once here, with its
//! help beside it; values are checked as they are parsed, so a bad one is
//! refused with one plain line (never silently changed).
use clap::{Args, Parser, Subcommand, ValueEnum};
use portflow::stats::flow::MIN_FLOWS;
use std::path::PathBuf;

mod values;

pub use values::parse_duration;
use values::{at_least, count, in_range, seconds};

/// The most threads `--workers` may ask for.
pub const MAX_WORKERS: u64 = 256;

#[derive(Debug, Parser)]
#[command(
    name = "portflow",
    version,
    about = "Which ports are open, who uses them, how much, how fast: from pcap/pcapng files or live traffic.",
    after_help = "Exit status: 0 success (also when a file ends inside its last record: a warning says where), \
                  1 a finding at or above --fail-on, 2 error (bad flags, an unreadable or damaged file, capture \
                  failure), 130 a capture quit by a second Ctrl-C; a run ended by a signal ends as the signal \
                  does (130 for Ctrl-C, 143 for SIGTERM)."
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
    Capture(Box<CaptureArgs>),
    /// List the interfaces that can be captured on.
    Interfaces(InterfacesArgs),
    /// Learn a policy (docs/POLICY.md) from captures of normal traffic: the ports each host served.
    Learn(LearnArgs),
    /// What changed between two periods: servers and ports that appeared or went, protocols,
    /// volumes (from two JSON reports or two sets of captures).
    Diff(DiffArgs),
    /// Write the firewall rules (nftables, iptables) that enforce a policy.
    Firewall(FirewallArgs),
    /// Look up service names and ports in the embedded IANA registry.
    Services(ServicesArgs),
    /// Print the shell completion script for bash, zsh or fish (`make install` installs them).
    Completions(CompletionsArgs),
    /// Write the manual pages (portflow.1 and one per command) to a folder, or portflow.1 to stdout.
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write portflow.1 and portflow-COMMAND.1 here (made if missing) instead of portflow.1 to stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// How a report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned human-readable table.
    Table,
    /// The versioned JSON report (docs/SCHEMA.md), indented.
    Json,
    /// The same report on one line, after one line per interval.
    Ndjson,
    /// One of the report's tables as CSV.
    Csv(portflow::report::csv::Table),
}

/// `read --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReadFormat {
    /// Aligned human-readable table.
    Table,
    /// The versioned JSON report (docs/SCHEMA.md).
    Json,
    /// One table as CSV with a header row (`--table`; with `--flows`, the flows).
    Csv,
}

/// `read --format csv --table`: which of the report's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CsvTable {
    /// Per transport and port: the port table.
    Ports,
    /// The open-port inventory: per host, transport and port seen serving.
    Services,
    /// The findings, most severe first.
    Findings,
    /// Hosts and ports that answered with ICMP port unreachable.
    ClosedPorts,
}

impl From<CsvTable> for portflow::report::csv::Table {
    fn from(t: CsvTable) -> Self {
        use portflow::report::csv::Table;
        match t {
            CsvTable::Ports => Table::Ports,
            CsvTable::Services => Table::Services,
            CsvTable::Findings => Table::Findings,
            CsvTable::ClosedPorts => Table::ClosedPorts,
        }
    }
}

/// `capture --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CaptureFormat {
    /// The live view on a terminal, then the table.
    Table,
    /// The final report as JSON only.
    Json,
    /// One JSON object per interval, then the report as the last object.
    Ndjson,
}

/// `interfaces --format` and `services --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// Aligned columns with a header.
    Table,
    /// A JSON array.
    Json,
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

/// How packets are analysed: threads, the flow table, service names
/// (`read`, `capture`, `learn`).
#[derive(Debug, Args)]
pub struct EngineArgs {
    /// Threads that analyse packets (1 to 256; default: the number of CPU cores): pcap and pcapng
    /// files are read in chunks on every thread, gzip and stdin by one reader and N-1 flow workers,
    /// a live capture by N threads that each have their own socket in a kernel fanout group.
    #[arg(long, value_name = "N", allow_negative_numbers = true,
          value_parser = |s: &str| in_range(s, 1, MAX_WORKERS, "workers"))]
    pub workers: Option<u64>,

    /// A services(5) file whose names override or add to the IANA registry.
    #[arg(long, value_name = "FILE")]
    pub services: Option<PathBuf>,

    /// Most flows held in memory at once, at least 16 per flow worker (about 97 bytes each); beyond
    /// it the least recently seen are ended (and counted).
    #[arg(long, default_value_t = portflow::pipeline::DEFAULT_FLOW_CAP as u64, value_name = "N",
          allow_negative_numbers = true, value_parser = |s: &str| at_least(s, MIN_FLOWS as u64, "flows"))]
    pub flow_cap: u64,

    /// TCP idle timeout (packet time): seconds, or a duration (5m).
    #[arg(long, default_value_t = 300, value_name = "SECONDS", allow_hyphen_values = true,
          value_parser = seconds)]
    pub tcp_timeout: u64,

    /// UDP (and SCTP, DCCP) idle timeout (packet time): seconds, or a duration (1m).
    #[arg(long, default_value_t = 60, value_name = "SECONDS", allow_hyphen_values = true,
          value_parser = seconds)]
    pub udp_timeout: u64,
}

/// Options shared by `read` and `capture`: analysis and report.
#[derive(Debug, Args)]
pub struct AnalysisArgs {
    /// Rows of each list shown in the table (0 for all). The JSON report always has all.
    #[arg(long, default_value_t = 20, value_name = "N", allow_negative_numbers = true,
          value_parser = |s: &str| count(s, "rows"))]
    pub top: u64,

    #[command(flatten)]
    pub engine: EngineArgs,

    /// A TOML file saying which ports each host or network may serve (docs/POLICY.md);
    /// services outside it are `unexpected-port` findings.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// Exit with status 1 when a finding at or above this severity was found.
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<FailOn>,

    /// port-scan: distinct ports of one host a source must fail to reach within --scan-window (Zeek's default).
    #[arg(long, default_value_t = 15, value_name = "N", allow_negative_numbers = true,
          value_parser = |s: &str| at_least(s, 1, "ports"))]
    pub scan_ports: u64,

    /// host-sweep: distinct hosts a source must fail to reach on one port within --scan-window (Zeek's default).
    #[arg(long, default_value_t = 25, value_name = "N", allow_negative_numbers = true,
          value_parser = |s: &str| at_least(s, 1, "hosts"))]
    pub sweep_hosts: u64,

    /// The time line's buckets (JSON `timeline`): at least this wide (the next step of 1ms, 2ms,
    /// 10ms, 20ms, 100ms, 200ms, 1s, 2s, 10s, 30s, 1m, 5m, 10m, 30m, 1h, 2h, 6h, 12h, 1d, 2d...);
    /// default: the finest at which the capture fits 360 buckets.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub bucket: Option<std::time::Duration>,

    /// The window for --scan-ports and --sweep-hosts.
    #[arg(long, default_value = "5m", value_name = "DURATION", allow_hyphen_values = true,
          value_parser = parse_duration)]
    pub scan_window: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// Interface to capture on (`any` for all; default: libpcap's default device).
    #[arg(value_name = "IFACE")]
    pub interface: Option<String>,

    /// Interface, as with tcpdump -i (same as the positional IFACE); give -i several times to
    /// capture several interfaces into one report (per-interface counts in `live.interfaces`).
    #[arg(
        short = 'i',
        long = "interface",
        value_name = "IFACE",
        conflicts_with = "interface"
    )]
    pub interface_flag: Vec<String>,

    /// BPF filter expression, compiled into the kernel.
    #[arg(short = 'f', long = "filter", value_name = "EXPR")]
    pub filter: Option<String>,

    /// Stop after this long (30s, 5m, 1h).
    #[arg(short = 'd', long, value_name = "DURATION", allow_hyphen_values = true,
          value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,

    /// Stop after this many packets.
    #[arg(short = 'c', long, value_name = "N", allow_negative_numbers = true,
          value_parser = |s: &str| at_least(s, 1, "packets"))]
    pub count: Option<u64>,

    /// Also write the packets to a pcap file (complete and readable whenever the capture stops;
    /// a device or FIFO is written in place).
    #[arg(short = 'w', long, value_name = "FILE")]
    pub write: Option<PathBuf>,

    /// With -w: start a new file before one would pass MB million bytes (tcpdump -C): FILE,
    /// FILE1, FILE2...; each file whole.
    #[arg(short = 'C', value_name = "MB", requires = "write",
          value_parser = |s: &str| in_range(s, 1, 1_000_000, "MB"))]
    pub file_size: Option<u64>,

    /// With -w: start a new file every SECONDS of packet time (tcpdump -G); FILE may hold
    /// strftime(3) conversions (dump-%Y%m%d-%H%M%S.pcap), filled with each file's start.
    #[arg(short = 'G', value_name = "SECONDS", requires = "write",
          value_parser = |s: &str| in_range(s, 1, 366 * 86_400, "seconds"))]
    pub rotate_seconds: Option<u64>,

    /// Nanosecond timestamps from the kernel, and a nanosecond pcap for -w (tcpdump --nano).
    #[arg(long)]
    pub nano: bool,

    /// With -C or -G: keep COUNT files (tcpdump -W): -C writes FILE0..FILE{COUNT-1} over in turn,
    /// -G removes the oldest file past COUNT.
    #[arg(short = 'W', value_name = "COUNT",
          value_parser = |s: &str| in_range(s, 1, 1_000_000, "files"))]
    pub file_count: Option<u64>,

    /// Bytes kept per packet (tcpdump -s; 1 to 262144).
    #[arg(short = 's', long, default_value_t = portflow::source::MAX_SNAPLEN as u64,
          value_name = "BYTES", allow_negative_numbers = true,
          value_parser = |s: &str| in_range(s, 1, portflow::source::MAX_SNAPLEN as u64, "bytes"))]
    pub snaplen: u64,

    /// Kernel capture buffer in KiB (tcpdump -B).
    #[arg(short = 'B', long = "buffer-size", default_value_t = 65_536, value_name = "KIB",
          allow_negative_numbers = true,
          value_parser = |s: &str| in_range(s, 1, i32::MAX as u64 / 1024, "KiB"))]
    pub buffer_kib: u64,

    /// Do not put the interface into promiscuous mode (tcpdump -p).
    #[arg(short = 'p', long = "no-promisc")]
    pub no_promisc: bool,

    /// Once the capture is open, run as USER (tcpdump -Z). As root the default is the
    /// user who ran sudo, else `nobody`; `-Z root` keeps root. A -w file in a folder
    /// USER cannot write is created before, as root, and handed to USER; -o files are
    /// created as USER. Without root, capabilities are cleared instead.
    #[arg(short = 'Z', long = "user", value_name = "USER")]
    pub user: Option<String>,

    /// How often the view refreshes (and interval objects are written).
    #[arg(long, default_value = "1s", value_name = "DURATION", allow_hyphen_values = true,
          value_parser = parse_duration)]
    pub interval: std::time::Duration,

    /// Serve Prometheus metrics at http://ADDR/metrics while capturing, updated every --interval
    /// (PORT or :PORT listens on 127.0.0.1; name another address to listen there).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,

    /// Ports with metric series of their own; the others are counted as port="other".
    #[arg(long, default_value_t = portflow::report::metrics::DEFAULT_TOP as u64, value_name = "N",
          value_parser = |s: &str| in_range(s, 1, 10_000, "metrics-top"))]
    pub metrics_top: u64,

    /// Write each flow as it ends (idle, closed or evicted; the ones still open when the capture
    /// stops at the end) as an NDJSON line, the `read --flows` record; `-` for standard output
    /// (then the report needs -o).
    #[arg(long, value_name = "FILE")]
    pub flows: Option<PathBuf>,

    /// When the capture stops, learn a policy from what it saw (as `portflow learn` does) and
    /// write it to FILE, whole (--min-flows, --min-clients and --group apply).
    #[arg(long, value_name = "FILE")]
    pub learn: Option<PathBuf>,

    #[command(flatten)]
    pub learning: LearnOptions,

    /// Write each finding when it is raised (within a second of the flows that show it ending;
    /// the report's findings not raised yet when the capture stops) as an NDJSON line, the
    /// report's finding object; `-` for standard output (then the report needs -o).
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,

    /// Send each flow as it ends to an IPFIX collector (HOST:PORT), one record per direction.
    #[arg(long, value_name = "HOST:PORT")]
    pub ipfix: Option<String>,

    /// With --ipfix: report a flow open this long in parts while it lasts (active timeout, as
    /// softflowd's maxlife); 0 reports flows only when they end.
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_duration)]
    pub ipfix_active: std::time::Duration,

    /// The seed of each streamed flow's `community_id` (Community ID v1).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub community_id_seed: u16,

    /// `table`: the live view on a terminal, then the table (not on a terminal: the table only);
    /// `json`: the final report as JSON; `ndjson`: one JSON object per interval, then the report
    /// as the last object. Default: `table` on a terminal, `ndjson` otherwise.
    #[arg(long, value_enum)]
    pub format: Option<CaptureFormat>,

    /// Write the final report to FILE (complete when it appears; a device or FIFO is written in place).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    #[command(flatten)]
    pub analysis: AnalysisArgs,
}

#[derive(Debug, Args)]
pub struct InterfacesArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: ListFormat,
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
    pub format: ReadFormat,

    /// Print one JSON object per flow (NDJSON; with `--format csv`, CSV) instead of the port report.
    #[arg(long)]
    pub flows: bool,

    /// Also send every flow to an IPFIX collector (NetFlow v10 over UDP: nfcapd, goflow2, ntopng...),
    /// one record per direction; HOST:PORT, e.g. 127.0.0.1:4739.
    #[arg(long, value_name = "HOST:PORT")]
    pub ipfix: Option<String>,

    /// With `--format csv`: the table to write (default: ports).
    #[arg(long, value_enum, value_name = "TABLE")]
    pub table: Option<CsvTable>,

    /// The seed of each flow's `community_id` (Community ID v1; 0 unless the tools you pivot
    /// to use another).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub community_id_seed: u16,

    #[command(flatten)]
    pub analysis: AnalysisArgs,

    /// After a file error, go on with the next file and print the report (exit status stays 2).
    #[arg(long)]
    pub keep_going: bool,

    /// Write the report to FILE (complete when it appears; a device or FIFO is written in place).
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
pub struct DiffArgs {
    /// The earlier period: a JSON report (`read`/`capture --format json`), or a capture file or
    /// folder.
    #[arg(value_name = "BEFORE")]
    pub before: PathBuf,

    /// The later period, as BEFORE.
    #[arg(value_name = "AFTER")]
    pub after: PathBuf,

    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: ListFormat,

    /// Exit with status 1 when a change at or above this severity was found (a new server or
    /// service is `medium`).
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<FailOn>,

    /// A volume (bytes, flows, clients) changed a lot when it grew or shrank by this factor.
    #[arg(long, default_value_t = 4.0, value_name = "X",
          value_parser = |s: &str| values::factor(s))]
    pub factor: f64,

    /// ...and the larger side has at least this many flows or clients (or 1 MB).
    #[arg(long, default_value_t = 10, value_name = "N", allow_negative_numbers = true,
          value_parser = |s: &str| at_least(s, 1, "flows"))]
    pub min_flows: u64,

    /// BPF filter expression for capture inputs.
    #[arg(short = 'f', long = "filter", value_name = "EXPR")]
    pub filter: Option<String>,

    #[command(flatten)]
    pub engine: EngineArgs,

    /// Write the diff to FILE (complete when it appears) instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `firewall --target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FirewallTarget {
    /// An `nft -f` script: IPv4 and IPv6 in one `inet portflow` table.
    Nftables,
    /// An `iptables-restore` file (IPv4; it replaces the filter table).
    Iptables,
    /// An `ip6tables-restore` file (IPv6; it replaces the filter table).
    Ip6tables,
}

#[derive(Debug, Args)]
pub struct FirewallArgs {
    /// The policy to enforce (docs/POLICY.md).
    #[arg(value_name = "POLICY")]
    pub policy: PathBuf,

    /// The rule language.
    #[arg(long, value_enum, default_value = "nftables")]
    pub target: FirewallTarget,

    /// Inbound rules for this host (the policy entry that decides for it); without it, a
    /// gateway's forward rules for the policy's networks.
    #[arg(long, value_name = "ADDR")]
    pub host: Option<std::net::IpAddr>,

    /// Log dropped packets (at most 10 a second) before dropping them.
    #[arg(long)]
    pub log: bool,

    /// Write a host's rules even when its policy does not allow tcp/22 (ssh): loading them over
    /// SSH cuts your own session.
    #[arg(long)]
    pub allow_lockout: bool,

    /// Write the rules to FILE (complete when it appears) instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// What makes a port part of a learned policy (`learn`, `capture --learn`).
#[derive(Debug, Args)]
pub struct LearnOptions {
    /// Flows a port must have served to be allowed; ports with fewer are listed commented out.
    #[arg(long, default_value_t = portflow::detect::learn::Thresholds::default().min_flows,
          value_name = "N", allow_negative_numbers = true,
          value_parser = |s: &str| at_least(s, 1, "flows"))]
    pub min_flows: u64,

    /// Distinct clients a port must have served to be allowed; ports with fewer are listed
    /// commented out.
    #[arg(long, default_value_t = portflow::detect::learn::Thresholds::default().min_clients,
          value_name = "N", allow_negative_numbers = true,
          value_parser = |s: &str| at_least(s, 1, "clients"))]
    pub min_clients: u64,

    /// Fold hosts of one network that serve the same ports into one network entry: the IPv4
    /// prefix length, and after a comma the IPv6 one (default 64), e.g. 24 or 24,56.
    #[arg(long, value_name = "V4[,V6]", value_parser = values::group)]
    pub group: Option<portflow::detect::learn::Group>,
}

#[derive(Debug, Args)]
pub struct LearnArgs {
    /// Capture files or folders of normal traffic; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// BPF filter expression: learn from the packets it keeps.
    #[arg(short = 'f', long = "filter", value_name = "EXPR")]
    pub filter: Option<String>,

    #[command(flatten)]
    pub learn: LearnOptions,

    /// Add what is learned to this policy, keeping its entries, edits and comments; written back
    /// to it (whole, when done) unless -o names another file.
    #[arg(long, value_name = "POLICY")]
    pub update: Option<PathBuf>,

    #[command(flatten)]
    pub engine: EngineArgs,

    /// Write the policy to FILE (complete when it appears) instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
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
    pub format: ListFormat,
}
