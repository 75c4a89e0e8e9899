//! One module per probe family.
mod process;
mod syscalls;

pub use syscalls::Copy;
