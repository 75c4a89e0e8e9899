//! Where the project's eBPF toolchain lives. Shared by xtask (which installs it) and
//! monitor/build.rs (which puts it on PATH), so both agree on one folder.
//!
//! bpf-linker must use the same LLVM as the nightly rustc that compiles the eBPF crate;
//! it is linked against that nightly's own libLLVM, so the folder is named after it:
//! `$MCP_MONITOR_TOOLCHAIN_DIR` (default `~/.cache/mcp-monitor/toolchain`)
//! `/bpf-linker-<version>-<libLLVM file name>/{bin,llvm/lib}`.
#![allow(dead_code)]

use std::{
    env, io,
    path::{Path, PathBuf},
    process::Command,
};

pub const BPF_LINKER_VERSION: &str = "0.13.0";
pub const NIGHTLY: &str = "nightly";

pub struct BpfLinker {
    /// The nightly toolchain's shared libLLVM.
    pub llvm_lib: PathBuf,
    /// Install root: `bin/bpf-linker` and `llvm/lib` (the LLVM_PREFIX it was built with).
    pub root: PathBuf,
}

impl BpfLinker {
    /// Computes the folder for the installed nightly; does not check that it exists.
    pub fn locate() -> io::Result<Self> {
        let llvm_lib = nightly_llvm_lib()?;
        let name = llvm_lib.file_name().and_then(|n| n.to_str()).unwrap_or("libLLVM");
        let root = toolchain_root().join(format!("bpf-linker-{BPF_LINKER_VERSION}-{name}"));
        Ok(Self { llvm_lib, root })
    }

    pub fn bin_dir(&self) -> PathBuf {
        self.root.join("bin")
    }

    pub fn binary(&self) -> PathBuf {
        self.bin_dir().join("bpf-linker")
    }

    pub fn llvm_prefix(&self) -> PathBuf {
        self.root.join("llvm")
    }
}

pub fn toolchain_root() -> PathBuf {
    if let Some(dir) = env::var_os("MCP_MONITOR_TOOLCHAIN_DIR") {
        return PathBuf::from(dir);
    }
    let cache = env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    cache.join("mcp-monitor").join("toolchain")
}

pub fn nightly_sysroot() -> io::Result<PathBuf> {
    let out = Command::new("rustup")
        .args(["run", NIGHTLY, "rustc", "--print", "sysroot"])
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "`rustup run {NIGHTLY} rustc --print sysroot` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// `<sysroot>/lib/libLLVM.so.<version>`: the versioned name rustc itself loads.
pub fn nightly_llvm_lib() -> io::Result<PathBuf> {
    let lib = nightly_sysroot()?.join("lib");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&lib)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("libLLVM.so.") || (n.starts_with("libLLVM-") && n.ends_with(".so"))
            })
        })
        .collect();
    // Prefer the `libLLVM.so.X` spelling, which is what bpf-linker's build looks for.
    found.sort_by_key(|p| !p.to_string_lossy().contains("libLLVM.so."));
    found
        .into_iter()
        .next()
        .ok_or_else(|| io::Error::other(format!("no libLLVM shared library in {}", lib.display())))
}
