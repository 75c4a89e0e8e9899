//! One module per probe family.
mod bench;
mod process;
mod syscalls;

pub use syscalls::Copy;
