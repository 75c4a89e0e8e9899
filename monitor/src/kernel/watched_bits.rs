//! Userspace's half of `WATCHED_BITS`, the kernel's filter in front of `WATCHED`: the
//! map is mmap'd, and a pid's bit is set with an atomic OR on that shared memory (the
//! kernel sets and clears bits of the same words with its own atomics, so a plain map
//! update of a word could undo them).
use std::{
    os::fd::AsFd as _,
    ptr::NonNull,
    sync::atomic::{AtomicU64, Ordering},
};

use anyhow::{Context as _, anyhow};
use aya::maps::{Map, MapData};
use monitor_common::WATCHED_BITS_WORDS;

pub struct WatchedBits {
    words: NonNull<AtomicU64>,
    len: usize,
    // The mapping keeps the map alive by itself; held to say whose memory this is.
    _map: MapData,
}

impl WatchedBits {
    pub fn new(map: Map) -> anyhow::Result<Self> {
        let Map::Array(map) = map else {
            return Err(anyhow!("WATCHED_BITS is not an array map"));
        };
        let len = WATCHED_BITS_WORDS as usize * 8;
        // Safety: a fresh shared mapping of the map's fd, of the map's size (an
        // mmapable array of WATCHED_BITS_WORDS u64 values); unmapped in Drop.
        let addr = unsafe {
            nix::sys::mman::mmap(
                None,
                std::num::NonZeroUsize::new(len).context("empty WATCHED_BITS")?,
                nix::sys::mman::ProtFlags::PROT_READ | nix::sys::mman::ProtFlags::PROT_WRITE,
                nix::sys::mman::MapFlags::MAP_SHARED,
                map.fd().as_fd(),
                0,
            )
        }
        .context("mmap of WATCHED_BITS")?;
        Ok(Self {
            words: addr.cast(),
            len,
            _map: map,
        })
    }

    /// Sets `pid`'s bit: after it is put in `WATCHED`.
    pub fn mark(&self, pid: u32) {
        let word = (pid >> 6) as usize;
        if word < WATCHED_BITS_WORDS as usize {
            // Safety: `word` is inside the mapping, which lives as long as `self`; u64
            // words of a page-aligned mapping are aligned for AtomicU64.
            unsafe { self.words.add(word).as_ref() }.fetch_or(1 << (pid & 63), Ordering::SeqCst);
        }
    }
}

impl Drop for WatchedBits {
    fn drop(&mut self) {
        // Safety: the mapping made in `new`, of `len` bytes, not used after this.
        let _ = unsafe { nix::sys::mman::munmap(self.words.cast(), self.len) };
    }
}
