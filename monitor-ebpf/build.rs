use which::which;

/// Building this crate depends on the `bpf-linker` binary, which cargo does not know
/// about: rebuild when the one on PATH changes (xtask puts the project's own on PATH).
fn main() {
    match which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(err) => println!("cargo:warning=bpf-linker not found on PATH ({err}); run `cargo xtask setup`"),
    }
}
