//! Bounds the verifier can see. LLVM is free to turn `min()` into a form the verifier
//! cannot follow, so the clamp is written in BPF assembly on the very register used next.

/// `value` if it is at most `max`, else `max`.
#[inline(always)]
pub fn clamp(value: u64, max: u64) -> u64 {
    #[cfg(target_arch = "bpf")]
    {
        let mut v = value;
        // Safety: two ALU/jump instructions on registers, no memory access.
        unsafe {
            core::arch::asm!(
                "if {v} <= {max} goto +1",
                "{v} = {max}",
                v = inout(reg) v,
                max = in(reg) max,
            );
        }
        v
    }
    #[cfg(not(target_arch = "bpf"))]
    {
        value.min(max)
    }
}
