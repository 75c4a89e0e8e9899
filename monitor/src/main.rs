//! mcp-monitor: watches MCP servers from the kernel.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use monitor::{daemon, pipeline, policy::Policy, replay};

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
    let opts = daemon::Options {
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
