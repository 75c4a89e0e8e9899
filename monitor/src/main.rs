//! mcp-monitor: watches MCP servers from the kernel.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use monitor::{daemon, pipeline, policy::Policy, replay};

// mimalloc, tuned for a small resident set (monitor::allocator).
monitor::daemon_allocator!();

#[derive(Parser)]
#[command(
    name = "mcp-monitor",
    version,
    about = "Watches every MCP server on this host from the kernel"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (as root): attach the kernel programs and write events.
    Run(RunArgs),
    /// Check a policy file: exit 0 with a summary, or list every mistake (file:line:column).
    CheckPolicy {
        /// The YAML policy file.
        file: PathBuf,
    },
    /// Print the built-in policy (a starting point for your own).
    DefaultPolicy,
    /// Run a recording (`run --record FILE`) through the pipeline again, without root:
    /// the same events, or those another policy gives.
    Replay {
        /// The recording.
        file: PathBuf,
        /// Judge calls by this policy instead of the recorded one.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Where JSON events go: a file (appended to) or `-` for stdout.
        #[arg(long, value_name = "PATH|-", default_value = "-")]
        events: String,
        /// `json`, `text`, or `auto` (text on a terminal's stdout), as for `run`.
        #[arg(long, value_name = "FORMAT", default_value = "auto", value_parser = ["auto", "text", "json"])]
        format: String,
    },
    /// A least-privilege policy from event logs: per server the tools each agent
    /// called, the files, secrets, programs and connections seen; with --policy, what
    /// it declares but was never used and what was used but not declared.
    SuggestPolicy {
        /// Event logs (JSON lines, plain or gzip; rotated files too).
        #[arg(long, value_name = "FILE", required = true, num_args = 1..)]
        events: Vec<PathBuf>,
        /// The policy in force: its matches and secret patterns are kept, and the
        /// differences listed at the top of the suggestion.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Only events at or after T (RFC 3339, or a duration back from now: 24h).
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// Only events before T.
        #[arg(long, value_name = "T")]
        until: Option<String>,
        /// Where the policy goes (default: stdout).
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
    /// The access review from event logs: servers, agents, tools, violations, secrets,
    /// consistency and every call, as Markdown, JSON or one HTML page.
    Report(monitor::review::report::ReportArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// The policy (YAML). Without it, the built-in policy (`mcp-monitor default-policy`).
    /// SIGHUP reloads it, and so does a change of the file (its folder is watched: a
    /// file replaced by rename, a ConfigMap update); an invalid new version is refused
    /// and the old one kept.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Also watch processes whose command line matches this glob from their exec, as
    /// servers (repeatable; `*` crosses `/`). Without it, servers are found by what
    /// they speak, and by the `match.cmdline` of a policy given with --policy.
    #[arg(long = "watch", value_name = "GLOB")]
    watch: Vec<String>,
    /// Do not look for MCP servers by what they speak: only processes matched by the
    /// policy or --watch are servers (and other processes pay only the hook's lookup).
    #[arg(long)]
    no_discovery: bool,
    /// Do not put uprobes on watched processes' OpenSSL: their HTTPS stays ciphertext
    /// (each is reported once as `tls_unreadable`, reason `disabled`).
    #[arg(long)]
    no_tls: bool,
    /// Where JSON events go: a file (appended to) or `-` for stdout.
    #[arg(long, value_name = "PATH|-", default_value = "-")]
    events: String,
    /// How events are written: `json` (one object per line), `text` (one readable
    /// line, coloured on a terminal unless NO_COLOR is set), or `auto`: text when they
    /// go to stdout and it is a terminal, else JSON.
    #[arg(long, value_name = "FORMAT", default_value = "auto", value_parser = ["auto", "text", "json"])]
    format: String,
    /// Address of the Prometheus /metrics endpoint.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
    metrics_addr: SocketAddr,
    /// Also write every captured chunk of bytes as a `capture` event (base64).
    #[arg(long)]
    debug_captures: bool,
    /// Size of the kernel ring buffer in MiB (a power of two).
    #[arg(long, value_name = "MIB", default_value_t = 16, value_parser = ring_size)]
    ring_buffer_mb: u32,
    /// Longest JSON-RPC message reassembled, in MiB; a longer one is dropped and counted.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    max_message_mb: usize,
    /// Arguments and error texts longer than this many bytes are cut in events.
    #[arg(long, value_name = "BYTES", default_value_t = 4096)]
    max_field_bytes: usize,
    /// Distinct tool names (and client names) per server in metric labels; the rest
    /// are counted as `__other__`.
    #[arg(long, value_name = "N", default_value_t = 200)]
    max_label_values: usize,
    /// Also send every MCP request seen as an OpenTelemetry span (MCP semantic
    /// conventions; a child of the agent's span when its `_meta` has `traceparent`) and
    /// the `mcp.server.*.duration` metrics, over OTLP/HTTP (protobuf) to this receiver,
    /// e.g. http://127.0.0.1:4318 (/v1/traces and /v1/metrics are added).
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// With --otlp-endpoint: put tool-call arguments in spans
    /// (`gen_ai.tool.call.arguments`, redacted as in events). Off by default: the
    /// conventions make them opt-in, since they may hold secrets.
    #[arg(long, requires = "otlp_endpoint")]
    otlp_arguments: bool,
    /// With --otlp-endpoint: seconds between two exports of the OTLP metrics.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 10,
        requires = "otlp_endpoint"
    )]
    otlp_metrics_interval: u64,
    /// Also write what the kernel delivers, with every host fact looked up, to FILE,
    /// for `mcp-monitor replay` (it grows with the traffic watched: a diagnostic).
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
}

fn ring_size(s: &str) -> Result<u32, String> {
    let n: u32 = s.parse().map_err(|e| format!("{e}"))?;
    if !(1..=1024).contains(&n) || !n.is_power_of_two() {
        return Err(format!("{n} is not a power of two between 1 and 1024"));
    }
    Ok(n)
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::CheckPolicy { file } => match Policy::load_file(&file) {
            Ok(p) => {
                println!("{}", p.summary());
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("{e}");
                eprintln!("mcp-monitor: {} mistake(s) in {}", e.errors.len(), file.display());
                return ExitCode::FAILURE;
            }
        },
        Command::DefaultPolicy => {
            print!("{}", monitor::policy::DEFAULT_POLICY);
            return ExitCode::SUCCESS;
        }
        Command::Replay {
            file,
            policy,
            events,
            format,
        } => format
            .parse()
            .map_err(anyhow::Error::msg)
            .and_then(|format| replay::main(&file, policy, &events, format)),
        Command::SuggestPolicy {
            events,
            policy,
            since,
            until,
            out,
        } => monitor::review::suggest::main(monitor::review::suggest::Args {
            events,
            policy,
            since,
            until,
            out,
        }),
        Command::Report(args) => monitor::review::report::main(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-monitor: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let policy = match &args.policy {
        Some(path) => Policy::load_file(path).map_err(|e| anyhow::anyhow!("invalid policy:\n{e}"))?,
        None => Policy::builtin(),
    };
    log::info!("{}", policy.summary());
    let otlp = args
        .otlp_endpoint
        .as_deref()
        .map(|url| {
            let mut c = monitor::output::otlp::Config::new(url, args.otlp_arguments)?;
            c.metrics_interval = std::time::Duration::from_secs(args.otlp_metrics_interval.max(1));
            anyhow::Ok(c)
        })
        .transpose()?;
    let opts = daemon::Options {
        otlp,
        events: args.events,
        format: args.format.parse().map_err(anyhow::Error::msg)?,
        metrics_addr: args.metrics_addr,
        ring_buffer_bytes: args.ring_buffer_mb * 1024 * 1024,
        max_label_values: args.max_label_values,
        record: args.record,
        settings: pipeline::Settings {
            watch: args.watch,
            discovery: !args.no_discovery,
            tls: !args.no_tls,
            debug_captures: args.debug_captures,
            max_message_bytes: args.max_message_mb * 1024 * 1024,
            max_field_bytes: args.max_field_bytes,
            policy,
            policy_path: args.policy,
        },
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(daemon::run(opts))
}
