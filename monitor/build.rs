//! Builds the eBPF programs (monitor-ebpf) with aya-build, using the bpf-linker that
//! `cargo xtask setup` installed, so that a plain `cargo build` works after set-up.
//!
//! aya-build forwards everything the eBPF sub-build prints as `cargo:warning=` lines,
//! its progress too: some 35 `warning: monitor@0.1.0: Compiling ...` lines on every
//! build of it. The sub-build runs in a child of this script, whose output is read
//! here: when it succeeds, its progress lines are left out (its compiler diagnostics
//! and everything else are kept); when it fails, every line is passed on.
use std::{
    env,
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
};

#[path = "../xtask/src/toolchain.rs"]
mod toolchain;

/// Set in the child that runs aya-build.
const CHILD: &str = "MCP_MONITOR_EBPF_BUILD_CHILD";

/// Cargo's status words: a forwarded line starting with one is the sub-build's progress.
const PROGRESS: &[&str] = &[
    "Compiling",
    "Finished",
    "Fresh",
    "Blocking",
    "Updating",
    "Locking",
    "Downloading",
    "Downloaded",
    "Adding",
    "Checking",
];

fn main() -> anyhow::Result<()> {
    if env::var_os(CHILD).is_some() {
        return build_ebpf();
    }
    println!("cargo:rerun-if-env-changed=PATH");
    let mut child = Command::new(env::current_exe()?)
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let lines: Vec<String> = BufReader::new(stdout).lines().collect::<Result<_, _>>()?;
    let status = child.wait()?;
    for line in &lines {
        if status.success() && is_progress(line) {
            continue;
        }
        println!("{line}");
    }
    if !status.success() {
        // The child said why on stderr, which cargo shows with the lines above.
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}

fn is_progress(line: &str) -> bool {
    line.strip_prefix("cargo:warning=")
        .and_then(|l| l.trim_start().split(' ').next())
        .is_some_and(|word| PROGRESS.contains(&word))
}

fn build_ebpf() -> anyhow::Result<()> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let ebpf_dir = manifest_dir.join("../monitor-ebpf");
    if let Ok(bin) = toolchain::BpfLinker::locate().map(|l| l.bin_dir()) {
        let path = env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![bin];
        dirs.extend(env::split_paths(&path));
        // Safety: build scripts are single-threaded; the child cargo inherits PATH.
        unsafe { env::set_var("PATH", env::join_paths(dirs)?) };
    }
    let root_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "monitor-ebpf",
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
