//! Kernel half of mcp-monitor: process lifecycle for the whole host, and the bytes,
//! opens and connects of watched processes, all sent to userspace through one ring buffer.
#![no_std]
#![no_main]
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

mod atomics;
mod bounds;
mod emit;
mod maps;
mod probes;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
