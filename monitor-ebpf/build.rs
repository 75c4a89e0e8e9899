use which::which;

/// Building this crate depends on the `bpf-linker` binary, which cargo does not know
/// about: rebuild when the one on PATH changes (xtask puts the project's own on PATH).
fn main() {
    // Only the bpf-target build (run by monitor/build.rs with the linker on PATH) links;
    // the host build of this crate's library does not need bpf-linker.
    if let Ok(path) = which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
