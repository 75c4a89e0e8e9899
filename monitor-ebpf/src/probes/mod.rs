//! One module per probe family.
mod bench;
mod discover;
mod process;
mod syscalls;

pub use syscalls::Copy;
