// The library target lets the userspace crate name this one as a build-dependency, so
// cargo rebuilds it when the eBPF sources change; the programs are in the binary target.
#![no_std]
