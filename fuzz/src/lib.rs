//! Shared by the fuzz targets: a heap counter (so a target can tell a parser that keeps
//! what it was fed from one that stays within its bounds) and the op-stream format the
//! transport targets read.
//!
//! Op stream (`stdio_session`, `http`): a config byte, then ops until the input ends:
//!
//! ```text
//! op      u8   bit 0: direction (0: client to server, the server read it; 1: server
//!                     to client, it wrote it)
//!              bit 1: bytes were lost before this chunk (a `Gap`; its size is the next
//!                     byte + 1)
//!              bit 2: the gap ends where a transfer starts
//!              bits 3-4: 0, 1: data; 2: the data repeated (count: from the next byte
//!                     b, b + 1 below 128, else (b - 127) * 64: up to 8,192); 3: an
//!                     event of the target's (a close, say) instead of data
//!              bits 5-7: which stream (target-specific; 0 is the main one)
//! len     u16  little-endian, cut to what is left
//! bytes   len
//! ```
//!
//! The seeds (examples/seeds.rs) are real captures written in this format: one op per
//! kernel DATA record.
use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicUsize, Ordering::Relaxed},
};

/// Counts the bytes the Rust heap holds (libFuzzer's own allocations are not Rust's).
pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Relaxed) + by;
    PEAK.fetch_max(now, Relaxed);
}

// Safety: defers to `System`, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Bytes the Rust heap holds now.
pub fn live_bytes() -> usize {
    LIVE.load(Relaxed)
}

/// Starts measuring the peak anew (at what the heap holds now).
pub fn reset_peak() {
    PEAK.store(LIVE.load(Relaxed), Relaxed);
}

/// The most the Rust heap held since `reset_peak`.
pub fn peak_bytes() -> usize {
    PEAK.load(Relaxed)
}

/// One op of the stream.
#[derive(Debug, Clone, Copy)]
pub struct Op<'a> {
    /// False: client to server (the server read it); true: server to client.
    pub to_client: bool,
    /// Bytes lost just before this op's bytes.
    pub gap: u64,
    pub gap_ends_at_transfer: bool,
    /// The target's own event instead of data.
    pub event: bool,
    /// How many times `bytes` are fed, one after the other.
    pub repeat: usize,
    pub stream: u8,
    pub bytes: &'a [u8],
}

impl Op<'_> {
    /// The gap before the `i`-th feeding of its bytes: its own before the first, none
    /// between repeats.
    pub fn gap_before(&self, i: usize) -> monitor::transport::Gap {
        if i == 0 {
            monitor::transport::Gap {
                bytes: self.gap,
                ends_at_transfer: self.gap_ends_at_transfer,
                ..monitor::transport::Gap::none()
            }
        } else {
            monitor::transport::Gap::none()
        }
    }
}

/// The config byte and the ops of an input.
pub fn ops(data: &[u8]) -> (u8, Vec<Op<'_>>) {
    let Some((&config, mut rest)) = data.split_first() else {
        return (0, Vec::new());
    };
    let mut out = Vec::new();
    let take = |rest: &mut &[u8]| {
        let (&b, r) = rest.split_first()?;
        *rest = r;
        Some(b)
    };
    while let Some(op) = take(&mut rest) {
        let gap = if op & 2 != 0 {
            take(&mut rest).map_or(1, |b| u64::from(b) + 1)
        } else {
            0
        };
        let action = (op >> 3) & 3;
        let repeat = match (action == 2).then(|| take(&mut rest)).flatten() {
            Some(b @ 0..128) => usize::from(b) + 1,
            Some(b) => (usize::from(b) - 127) * 64,
            None => 1,
        };
        let lo = take(&mut rest).unwrap_or(0);
        let hi = take(&mut rest).unwrap_or(0);
        let len = usize::from(u16::from_le_bytes([lo, hi])).min(rest.len());
        let (bytes, r) = rest.split_at(len);
        rest = r;
        out.push(Op {
            to_client: op & 1 != 0,
            gap,
            gap_ends_at_transfer: op & 4 != 0,
            event: action == 3,
            repeat,
            stream: op >> 5,
            bytes,
        });
    }
    (config, out)
}

/// Writes ops in the format `ops` reads (for the seeds).
pub fn encode_op(out: &mut Vec<u8>, to_client: bool, stream: u8, bytes: &[u8]) {
    for part in bytes.chunks(usize::from(u16::MAX)) {
        out.push(u8::from(to_client) | (stream << 5));
        out.extend_from_slice(&(part.len() as u16).to_le_bytes());
        out.extend_from_slice(part);
    }
}

/// The longest message the config byte asks for (bits 0-1).
pub fn max_message(config: u8) -> usize {
    [256, 4096, 64 << 10, 1 << 20][usize::from(config & 3)]
}

/// Bytes an input may feed in all (repeats included): enough to outgrow the bounds the
/// targets check, little enough to keep executions fast.
pub const BUDGET: usize = 1 << 20;

/// Cuts the repeats of ops so that the input feeds at most about `BUDGET` bytes.
pub fn within_budget(ops: &mut [Op]) {
    let mut left = BUDGET;
    for op in ops {
        let each = op.bytes.len().max(1);
        op.repeat = op.repeat.min(left / each).max(1);
        left = left.saturating_sub(each * op.repeat);
    }
}

/// Checks that a target's parsers hold at most `allowed` bytes more than at `base`
/// (what `live_bytes` said before they were made), once what they returned is dropped.
pub fn check_held(base: usize, allowed: usize, what: &str) {
    let held = live_bytes().saturating_sub(base);
    assert!(
        held <= allowed,
        "{what} holds {held} bytes after the input, more than its bounds allow ({allowed}): \
         something keeps what it is fed"
    );
}

/// A watched server's process (built from JSON, so that fields the table gains later,
/// defaulted there, need no change here).
pub fn process(exe: &str, cmdline: &[&str], predates: bool) -> monitor::host::procs::Process {
    serde_json::from_value(serde_json::json!({
        "pid": 4242,
        "ppid": 1,
        "uid": 1000,
        "exe": exe,
        "cmdline": cmdline,
        "start_ns": 0,
        "predates": predates,
        "watched": true,
        "server_pattern": null,
    }))
    .expect("a process")
}
