//! One module per probe family.
mod bench;
mod connects;
mod discover;
mod process;
mod syscalls;
mod task;
mod tls;

pub use syscalls::Copy;
