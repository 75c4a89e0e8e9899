//! Builds the eBPF programs (monitor-ebpf) with aya-build, using the bpf-linker that
//! `cargo xtask setup` installed, so that a plain `cargo build` works after set-up.
use std::{env, path::PathBuf};

#[path = "../xtask/src/toolchain.rs"]
mod toolchain;

fn main() -> anyhow::Result<()> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let ebpf_dir = manifest_dir.join("../monitor-ebpf");
    if let Ok(bin) = toolchain::BpfLinker::locate().map(|l| l.bin_dir()) {
        let path = env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![bin];
        dirs.extend(env::split_paths(&path));
        // Safety: build scripts are single-threaded; the child cargo inherits PATH.
        unsafe { env::set_var("PATH", env::join_paths(dirs)?) };
    }
    println!("cargo:rerun-if-env-changed=PATH");
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
