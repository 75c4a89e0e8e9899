//! One module per probe family.
mod bench;
mod connects;
mod discover;
mod paths;
mod process;
mod syscalls;
mod task;
mod tls;

pub use paths::PathWalk;
pub use syscalls::Copy;
