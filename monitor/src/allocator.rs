//! The daemon's allocator: mimalloc, tuned for a small resident set.
//!
//! A small call allocates dozens of times (parsed messages, the event), and glibc's
//! malloc and free were about a tenth of the pipeline's instructions; mimalloc's take
//! about a third of that. With mimalloc's defaults, though, start-up (the kernel's
//! BTF, the eBPF object) left the daemon's peak RSS at 90 MiB, against 60 MiB with
//! glibc and a 64 MiB budget: freed memory now goes back to the kernel at once, and
//! arenas are committed as they are used (peak 55.5 MiB).
//!
//! `daemon_allocator!()` installs it in a binary: the daemon, and the pipeline bench
//! (so that its figures are the daemon's).

/// mimalloc's options as `mimalloc.h` numbers them (`mi_option_e`).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

pub use mimalloc::MiMalloc;

/// Sets mimalloc's options; run from the ELF constructors (`daemon_allocator!`), before
/// `main` allocates, so that the first arena is made with them.
pub extern "C" fn tune() {
    // Safety: plain setters of mimalloc's global options, before any thread starts.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
    }
}

/// Makes mimalloc, tuned by `tune`, the binary's global allocator.
#[macro_export]
macro_rules! daemon_allocator {
    () => {
        #[global_allocator]
        static ALLOCATOR: $crate::allocator::MiMalloc = $crate::allocator::MiMalloc;

        #[used]
        #[unsafe(link_section = ".init_array")]
        static TUNE_ALLOCATOR: extern "C" fn() = $crate::allocator::tune;
    };
}
