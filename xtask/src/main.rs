//! Project tasks: `cargo xtask setup | build | run | test | bench | fuzz`.
//!
//! Every task installs what it needs first (idempotently), so each works on a fresh
//! machine of the kind described in ../shared/TOOLCHAIN.md.
mod toolchain;

use std::{
    env,
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    time::Instant,
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the eBPF toolchain (nightly rust-src, bpf-linker) if missing.
    Setup,
    /// Set up, then build the daemon (release).
    Build,
    /// Set up, build, and run `mcp-monitor run ARGS` as root.
    Run {
        /// Arguments for `mcp-monitor run` (after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, then fmt, clippy, unit tests, the root integration tests and each fuzz
    /// target for 15 s.
    Test,
    /// Set up, then run every benchmark as root and print one summary table (BENCHMARKS.md).
    Bench,
    /// Set up (cargo-fuzz too), build the fuzz targets (fuzz/) and run each for SECONDS.
    Fuzz {
        /// Seconds each target runs.
        #[arg(default_value_t = 300)]
        seconds: u64,
        /// Targets to run (default: all of fuzz/fuzz_targets).
        targets: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup => setup().map(|_| ()),
        Task::Build => setup().and_then(|env| build(&env)),
        Task::Run { args } => run(args),
        Task::Test => test(),
        Task::Bench => bench(),
        Task::Fuzz { seconds, targets } => setup().and_then(|env| fuzz(&env, seconds, &targets, false)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn step(msg: &str) {
    eprintln!("xtask: {msg}");
}

/// Runs a command, failing with its command line when it fails.
fn run_cmd(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

fn output_of(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What set-up leaves for the later steps: the PATH with bpf-linker on it.
struct BuildEnv {
    path: OsString,
}

impl BuildEnv {
    fn cargo(&self) -> Command {
        let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.current_dir(workspace_root()).env("PATH", &self.path);
        cmd
    }

    /// cargo of the nightly toolchain, for the bpf target.
    fn nightly_cargo(&self) -> Command {
        let mut cmd = Command::new("rustup");
        cmd.args(["run", toolchain::NIGHTLY, "cargo"])
            .current_dir(workspace_root())
            .env("PATH", &self.path)
            .env_remove("RUSTC")
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO");
        cmd
    }
}

fn setup() -> anyhow::Result<BuildEnv> {
    let started = Instant::now();
    let components = output_of(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        toolchain::NIGHTLY,
    ]))
    .context("is the nightly toolchain installed? (`rustup toolchain install nightly`)")?;
    if components.lines().any(|l| l.starts_with("rust-src")) {
        step("nightly rust-src: present");
    } else {
        step("installing nightly rust-src (needed for -Z build-std=core on bpfel-unknown-none)");
        run_cmd(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            toolchain::NIGHTLY,
        ]))?;
    }

    let linker = toolchain::BpfLinker::locate()?;
    let works = Command::new(linker.binary())
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        step(&format!(
            "bpf-linker {}: present in {}",
            toolchain::BPF_LINKER_VERSION,
            linker.root.display()
        ));
    } else {
        install_bpf_linker(&linker)?;
    }
    let path = env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![linker.bin_dir()];
    dirs.extend(env::split_paths(&path));
    let path = env::join_paths(dirs)?;
    step(&format!("set-up done in {:.1}s", started.elapsed().as_secs_f64()));
    Ok(BuildEnv { path })
}

/// bpf-linker linked dynamically against the nightly toolchain's own libLLVM
/// (Debian has no LLVM 22): LLVM_PREFIX points at a folder of links to it.
fn install_bpf_linker(linker: &toolchain::BpfLinker) -> anyhow::Result<()> {
    step(&format!(
        "installing bpf-linker {} against {} into {} (about a minute)",
        toolchain::BPF_LINKER_VERSION,
        linker.llvm_lib.display(),
        linker.root.display()
    ));
    let lib = linker.llvm_prefix().join("lib");
    std::fs::create_dir_all(&lib).with_context(|| format!("creating {}", lib.display()))?;
    let versioned = linker
        .llvm_lib
        .file_name()
        .context("libLLVM path has no file name")?;
    for name in [OsString::from("libLLVM.so"), versioned.to_os_string()] {
        let link = lib.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&linker.llvm_lib, &link)
            .with_context(|| format!("linking {} to {}", link.display(), linker.llvm_lib.display()))?;
    }
    let llvm_major = versioned
        .to_string_lossy()
        .strip_prefix("libLLVM.so.")
        .and_then(|v| v.split('.').next().map(str::to_string))
        .unwrap_or_else(|| "22".to_string());
    run_cmd(
        Command::new("cargo")
            .args([
                "install",
                &format!("bpf-linker@{}", toolchain::BPF_LINKER_VERSION),
            ])
            .args([
                "--no-default-features",
                "--features",
                &format!("llvm-{llvm_major}"),
            ])
            .arg("--root")
            .arg(&linker.root)
            .env("LLVM_PREFIX", linker.llvm_prefix())
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO_TARGET_DIR"),
    )
}

fn build(env: &BuildEnv) -> anyhow::Result<()> {
    let started = Instant::now();
    // Quiet: no line per crate (monitor/build.rs drops the eBPF sub-build's progress
    // too); warnings and errors still show, and a failed eBPF build shows all of it.
    step("building the daemon (eBPF programs and userspace)...");
    run_cmd(
        env.cargo()
            .args(["build", "--release", "--quiet", "--package", "monitor"]),
    )?;
    step(&format!("done in {:.0} s", started.elapsed().as_secs_f64()));
    Ok(())
}

fn daemon_binary() -> PathBuf {
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("release").join("mcp-monitor")
}

fn is_root() -> bool {
    // Reading our own /proc status avoids a libc dependency for one call.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Uid:")
                    .map(|v| v.split_whitespace().nth(1) == Some("0"))
            })
        })
        .unwrap_or(false)
}

fn run(args: Vec<String>) -> anyhow::Result<()> {
    let env = setup()?;
    build(&env)?;
    let bin = daemon_binary();
    let mut cmd = if is_root() {
        Command::new(&bin)
    } else {
        step("not root: running the daemon through sudo");
        let mut c = Command::new("sudo");
        c.arg(&bin);
        c
    };
    cmd.arg("run").args(&args);
    step(&format!("starting {cmd:?} (Ctrl-C to stop)"));
    run_cmd(&mut cmd)
}

fn test() -> anyhow::Result<()> {
    let started = Instant::now();
    if !is_root() {
        bail!("the integration tests load eBPF programs: run `cargo xtask test` as root");
    }
    let env = setup()?;
    step("cargo fmt --check");
    run_cmd(env.cargo().args(["fmt", "--all", "--", "--check"]))?;
    step("clippy -D warnings");
    run_cmd(
        env.cargo()
            .args(["clippy", "--release", "--all-targets", "--", "-D", "warnings"]),
    )?;
    step("clippy -D warnings on the eBPF crate (bpf target)");
    run_cmd(
        env.nightly_cargo()
            .args(["clippy", "--release", "--package", "monitor-ebpf"])
            .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
            .args(["--target-dir", "target/bpf-clippy", "--", "-D", "warnings"]),
    )?;
    step("real MCP peers for the tests (tests/mcp/setup.sh: npm ci, Python venv)");
    run_cmd(Command::new("bash").arg(workspace_root().join("tests/mcp/setup.sh")))?;
    ensure_prometheus()?;
    // tests/tests/deploy.rs checks the unit's system call filter with strace;
    // tests/tests/package.rs packages with cargo-deb (which strips with binutils) and
    // compares build IDs with readelf; tests/tests/report_html.rs renders the access
    // review's HTML page in headless Chromium.
    ensure_debian_tools(&[
        ("strace", "strace"),
        ("readelf", "binutils"),
        ("chromium", "chromium"),
    ])?;
    ensure_cargo_deb()?;
    // One release build serves the daemon binary and every test below.
    build(&env)?;
    if env::var_os("CI").is_some_and(|v| v == "true") {
        unmount_tracefs()?;
    }
    step("unit and integration tests");
    let (passed, failed) = run_tests(
        env.cargo()
            .args(["test", "--release"])
            .env("MCP_MONITOR_BIN", daemon_binary()),
    )?;
    fuzz(&env, FUZZ_TEST_SECONDS, &[], true)?;
    step(&format!(
        "all checks passed in {:.0}s",
        started.elapsed().as_secs_f64()
    ));
    println!("xtask: {passed} passed, {failed} failed");
    Ok(())
}

/// The cargo-fuzz targets (fuzz/fuzz_targets/<name>.rs).
const FUZZ_TARGETS: &[&str] = &[
    "records",
    "stdio_session",
    "http",
    "jsonrpc",
    "policy",
    "recording",
    "suggest",
];
/// Seconds each fuzz target runs in `cargo xtask test`.
const FUZZ_TEST_SECONDS: u64 = 15;
const CARGO_FUZZ_VERSION: &str = "0.13.2";
/// Safe Rust: no sanitizer (AddressSanitizer's memcmp hooks made the HTTP target 8x
/// slower); the targets count the heap themselves. Debug assertions and overflow checks
/// are on (cargo-fuzz's default).
const FUZZ_FLAGS: &[&str] = &["--sanitizer", "none"];

/// `cargo fuzz` from `cargo install`, skipped when `cargo fuzz --version` works.
fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    let present = Command::new("cargo")
        .args(["fuzz", "--version"])
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        step("cargo-fuzz: present");
        return Ok(());
    }
    step(&format!(
        "installing cargo-fuzz {CARGO_FUZZ_VERSION} (cargo install --locked, about a minute)"
    ));
    run_cmd(
        Command::new("cargo")
            .args(["install", &format!("cargo-fuzz@{CARGO_FUZZ_VERSION}"), "--locked"])
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO_TARGET_DIR"),
    )
}

/// cargo-deb for tests/tests/package.rs, which runs `cargo deb -p monitor --no-build`
/// on the release build `test` makes (monitor/Cargo.toml's `[package.metadata.deb]`).
const CARGO_DEB_VERSION: &str = "3.8.0";

/// `cargo deb` from `cargo install`, skipped when `cargo deb --version` names the pinned
/// version.
fn ensure_cargo_deb() -> anyhow::Result<()> {
    let present = Command::new("cargo")
        .args(["deb", "--version"])
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains(CARGO_DEB_VERSION));
    if present {
        step(&format!("cargo-deb {CARGO_DEB_VERSION}: present"));
        return Ok(());
    }
    step(&format!(
        "installing cargo-deb {CARGO_DEB_VERSION} (cargo install --locked, about two minutes)"
    ));
    run_cmd(
        Command::new("cargo")
            .args(["install", &format!("cargo-deb@{CARGO_DEB_VERSION}"), "--locked"])
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO_TARGET_DIR"),
    )
}

/// Builds the fuzz targets once, then runs each for `seconds`, failing on a crash, a
/// hang or a target over its memory bounds (the input is left in fuzz/artifacts/).
/// The committed seeds (fuzz/corpus/<target>) are only read; what runs add goes to
/// fuzz/target/corpus/<target>, kept between `cargo xtask fuzz` runs, started afresh by
/// `cargo xtask test` (`fresh`) so that its time does not grow.
fn fuzz(env: &BuildEnv, seconds: u64, targets: &[String], fresh: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = workspace_root().join("fuzz");
    let targets: Vec<&str> = if targets.is_empty() {
        FUZZ_TARGETS.to_vec()
    } else {
        targets.iter().map(String::as_str).collect()
    };
    if let Some(t) = targets.iter().find(|t| !FUZZ_TARGETS.contains(t)) {
        bail!("no fuzz target {t}: the targets are {}", FUZZ_TARGETS.join(", "));
    }
    ensure_cargo_fuzz()?;
    let fuzz_cargo = || {
        let mut cmd = env.nightly_cargo();
        cmd.arg("fuzz").env_remove("CARGO_TARGET_DIR");
        cmd
    };
    step("cargo fuzz build (fuzz/: its own workspace, nightly, coverage instrumented)");
    run_cmd(
        fuzz_cargo()
            .args(["build", "--fuzz-dir"])
            .arg(&dir)
            .args(FUZZ_FLAGS),
    )?;
    step(&format!(
        "fuzz build done in {:.0}s",
        started.elapsed().as_secs_f64()
    ));
    let logs = dir.join("target/logs");
    std::fs::create_dir_all(&logs)?;
    for target in targets {
        let corpus = dir.join("target/corpus").join(target);
        if fresh && corpus.exists() {
            std::fs::remove_dir_all(&corpus).with_context(|| format!("emptying {}", corpus.display()))?;
        }
        std::fs::create_dir_all(&corpus)?;
        let log = logs.join(format!("{target}.log"));
        step(&format!(
            "cargo fuzz run {target} for {seconds}s (log: {})",
            log.display()
        ));
        let out = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let status = fuzz_cargo()
            .args(["run", "--fuzz-dir"])
            .arg(&dir)
            .args(FUZZ_FLAGS)
            .arg(target)
            .arg(&corpus)
            .arg(dir.join("corpus").join(target))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            // A hang: one input running this long. Memory: the targets check what the
            // parsers hold themselves; this is the backstop.
            .args(["-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1"])
            .stdout(out.try_clone()?)
            .stderr(out)
            .status()
            .with_context(|| format!("starting cargo fuzz run {target}"))?;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if !status.success() {
            let lines: Vec<&str> = text.lines().collect();
            for line in &lines[lines.len().saturating_sub(60)..] {
                eprintln!("{line}");
            }
            bail!(
                "fuzz target {target} failed ({status}): the input is in {}, the log in {}",
                dir.join("artifacts").join(target).display(),
                log.display()
            );
        }
        let stat = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("stat::{name}:")))
                .map_or("?", str::trim)
                .to_string()
        };
        step(&format!(
            "fuzz {target}: {} runs ({}/s), {} new inputs, no crash",
            stat("number_of_executed_units"),
            stat("average_exec_per_sec"),
            stat("new_units_added"),
        ));
    }
    step(&format!(
        "fuzzing done in {:.0}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// CI starts the integration tests the way a fresh machine does: with tracefs not
/// mounted, so the daemons they start must mount it themselves, several at once.
fn unmount_tracefs() -> anyhow::Result<()> {
    let tracefs = Path::new("/sys/kernel/tracing");
    if !tracefs.join("events").exists() {
        step("CI: tracefs is not mounted (as on a fresh machine)");
        return Ok(());
    }
    step("CI: unmounting tracefs so the daemons under test mount it, as on a fresh machine");
    // It may be mounted more than once on the same folder; a few rounds undo that.
    for _ in 0..4 {
        if !tracefs.join("events").exists() {
            return Ok(());
        }
        run_cmd(Command::new("umount").arg(tracefs))?;
    }
    bail!("{} is still mounted after 4 umounts", tracefs.display())
}

/// Each `(command, Debian package)` whose command is missing, installed with apt-get.
fn ensure_debian_tools(tools: &[(&str, &str)]) -> anyhow::Result<()> {
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(command, _)| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {command}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|&(_, package)| package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    step(&format!(
        "installing {} (apt-get update, install)",
        missing.join(", ")
    ));
    run_cmd(Command::new("apt-get").arg("update"))?;
    run_cmd(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Debian's `prometheus` package (prometheus, promtool) for tests/tests/prometheus.rs;
/// skipped when `promtool --version` works. Installed without starting its service.
fn ensure_prometheus() -> anyhow::Result<()> {
    let present = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        step("prometheus and promtool: present");
        return Ok(());
    }
    step("installing Debian's prometheus package (apt-get update, install; service not started)");
    // invoke-rc.d asks policy-rc.d whether to start services: 101 says no. One already
    // there (containers have one) is left alone.
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let ours = !policy.exists();
    if ours {
        std::fs::write(policy, "#!/bin/sh\nexit 101\n").context("writing /usr/sbin/policy-rc.d")?;
        std::fs::set_permissions(policy, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    }
    let installed = run_cmd(Command::new("apt-get").arg("update")).and_then(|()| {
        run_cmd(
            Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends", "prometheus"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    });
    if ours {
        let _ = std::fs::remove_file(policy);
    }
    installed?;
    // A service started anyway (policy-rc.d allowing it) would hold port 9090: stop it.
    if Path::new("/run/systemd/system").exists() {
        let _ = Command::new("systemctl").args(["stop", "prometheus"]).status();
    }
    if let Ok(pid) = std::fs::read_to_string("/run/prometheus/prometheus.pid") {
        let pid = pid.trim();
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        if exe.ends_with("prometheus") {
            step(&format!("stopping the packaged prometheus service (pid {pid})"));
            let _ = Command::new("kill").arg(pid).status();
        }
    }
    Ok(())
}

fn bench() -> anyhow::Result<()> {
    if !is_root() {
        bail!("the benchmark loads and attaches eBPF programs: run `cargo xtask bench` as root");
    }
    let env = setup()?;
    let mut summary = Vec::new();
    for bench in ["hook_cost", "pipeline"] {
        step(&format!("cargo bench --package monitor --bench {bench}"));
        summary.extend(run_bench(env.cargo().args([
            "bench",
            "--package",
            "monitor",
            "--bench",
            bench,
        ]))?);
    }
    // These start the real daemon: build it first, as `test()` does.
    build(&env)?;
    step("real MCP peers for the benches (tests/mcp/setup.sh: npm ci, Python venv)");
    run_cmd(Command::new("bash").arg(workspace_root().join("tests/mcp/setup.sh")))?;
    // real_server compares with strace -f and a C relay it compiles.
    ensure_debian_tools(&[("strace", "strace"), ("cc", "gcc")])?;
    let benches = [
        "stdio_roundtrip",
        "real_server",
        "exec_storm",
        "load",
        "tls_cost",
        "hostile_peer",
    ];
    for bench in benches {
        step(&format!(
            "cargo bench --package integration-tests --bench {bench}"
        ));
        summary.extend(run_bench(
            env.cargo()
                .args(["bench", "--package", "integration-tests", "--bench", bench])
                .env("MCP_MONITOR_BIN", daemon_binary()),
        )?);
    }
    print_summary(&summary);
    Ok(())
}

/// Runs a bench, passing its output through; returns its `summary | ...` lines (what,
/// now, baseline, ratio, budget), the rows of the table `cargo xtask bench` ends with.
fn run_bench(cmd: &mut Command) -> anyhow::Result<Vec<Vec<String>>> {
    use std::io::{BufRead as _, BufReader};
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {shown}"))?;
    let stdout = child.stdout.take().context("bench stdout")?;
    let mut rows = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(row) = line.strip_prefix("summary | ") {
            rows.push(row.split(" | ").map(str::to_string).collect());
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(rows)
}

/// One table of every bench's headline figures against the performance budget.
fn print_summary(rows: &[Vec<String>]) {
    let header = ["what", "now", "baseline, same run", "ratio", "budget"];
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    println!();
    println!(
        "SUMMARY (medians of interleaved rounds; ratio as its budget is stated: for times per \
         operation, the baseline's over now's (the rate relative to it); for latencies, now's \
         over the baseline's)"
    );
    println!("{}", line(&header));
    println!(
        "{}",
        "-".repeat(widths.iter().sum::<usize>() + 3 * (widths.len() - 1))
    );
    for r in rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        println!("{}", line(&cells));
    }
}

/// Runs `cargo test`, passing its output through, and adds up its `test result:` lines
/// so the run ends with one total over every test binary.
fn run_tests(cmd: &mut Command) -> anyhow::Result<(u64, u64)> {
    use std::io::{BufRead as _, BufReader};
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {shown}"))?;
    let (mut passed, mut failed) = (0, 0);
    let stdout = child.stdout.take().context("test stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some((p, f)) = parse_test_result(&line) {
            passed += p;
            failed += f;
        }
    }
    let status = child.wait()?;
    if !status.success() {
        println!("xtask: {passed} passed, {failed} failed");
        bail!("{shown} failed ({status})");
    }
    Ok((passed, failed))
}

/// `test result: ok. 7 passed; 0 failed; ...` -> (7, 0).
fn parse_test_result(line: &str) -> Option<(u64, u64)> {
    let rest = line.strip_prefix("test result: ")?;
    let count = |word: &str| {
        rest.split(['.', ';'])
            .find_map(|part| part.trim().strip_suffix(word))
            .and_then(|n| n.trim().parse::<u64>().ok())
    };
    Some((count(" passed")?, count(" failed")?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn adds_up_cargo_test_results() {
        let ok =
            "test result: ok. 7 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.61s";
        assert_eq!(super::parse_test_result(ok), Some((7, 0)));
        let bad = "test result: FAILED. 5 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out";
        assert_eq!(super::parse_test_result(bad), Some((5, 2)));
        assert_eq!(super::parse_test_result("test foo ... ok"), None);
    }
}
