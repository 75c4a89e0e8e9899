//! Atomic read-modify-writes on map values. The bpf target has no atomics in `core`, so
//! these are the instructions themselves (BPF_ATOMIC, kernel 5.12+). Off the bpf
//! target (host builds of the crate, never run) they are plain updates.

/// `*p += n`; returns the old value.
#[inline(always)]
pub fn fetch_add(p: *mut u64, n: u64) -> u64 {
    #[cfg(target_arch = "bpf")]
    {
        let mut v = n;
        // Safety: `p` is a map value pointer, aligned for u64; the kernel keeps it alive
        // for the program's run (an LRU eviction meanwhile only loses this update).
        unsafe {
            core::arch::asm!(
                "{v} = atomic_fetch_add((u64 *)({p} + 0), {v})",
                v = inout(reg) v,
                p = in(reg) p,
            );
        }
        v
    }
    #[cfg(not(target_arch = "bpf"))]
    {
        // Safety: as above; only the bpf build runs.
        unsafe {
            let old = *p;
            *p = old.wrapping_add(n);
            old
        }
    }
}

/// `*p |= bits`.
#[inline(always)]
pub fn or(p: *mut u64, bits: u64) {
    #[cfg(target_arch = "bpf")]
    // Safety: as in `fetch_add`.
    unsafe {
        core::arch::asm!("lock *(u64 *)({p} + 0) |= {v}", v = in(reg) bits, p = in(reg) p);
    }
    #[cfg(not(target_arch = "bpf"))]
    // Safety: as in `fetch_add`.
    unsafe {
        *p |= bits
    }
}

/// `*p &= bits`.
#[inline(always)]
pub fn and(p: *mut u64, bits: u64) {
    #[cfg(target_arch = "bpf")]
    // Safety: as in `fetch_add`.
    unsafe {
        core::arch::asm!("lock *(u64 *)({p} + 0) &= {v}", v = in(reg) bits, p = in(reg) p);
    }
    #[cfg(not(target_arch = "bpf"))]
    // Safety: as in `fetch_add`.
    unsafe {
        *p &= bits
    }
}
