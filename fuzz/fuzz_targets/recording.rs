//! The recording reader (`mcp-monitor replay FILE`): any file is frames up to where it
//! is damaged or cut, or an error, never a panic; and it allocates for the bytes the
//! file holds, not for the lengths it claims. Input: the file's bytes after the magic
//! (the target writes the magic, so the fuzzer need not find it).
#![no_main]

use std::{io::Write as _, path::PathBuf, sync::OnceLock};

use libfuzzer_sys::fuzz_target;
use monitor::{kernel::records::Record, record::Frame, record::Reader};
use monitor_fuzz::{peak_bytes, reset_peak};

const MAGIC: &[u8] = b"MCPMONREC01\n";

fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|d| d.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        dir.join(format!("mcp-monitor-fuzz-{}.mcprec", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = path();
    {
        let mut f = std::fs::File::create(path).expect("creating the temporary recording");
        f.write_all(MAGIC).unwrap();
        f.write_all(data).unwrap();
    }
    reset_peak();
    let base = peak_bytes();
    // The reader's own 1 MiB buffer and up to 64 KiB for a frame before its bytes come;
    // anything past that must be backed by the file's bytes (JSON facts expand: a
    // generous factor).
    let allowed = (1 << 20) + (64 << 10) + 64 * (data.len() + 64);
    let check = |what: &str| {
        let peak = peak_bytes().saturating_sub(base);
        assert!(
            peak <= allowed,
            "{what}: the heap reached {peak} bytes more for a recording of {} bytes",
            data.len()
        );
    };
    let opened = Reader::open(path);
    check("open");
    let Ok((mut reader, header, facts)) = opened else {
        return;
    };
    let _ = (header, facts);
    loop {
        let next = reader.next_with_facts();
        check("a frame");
        let Ok(Some((frame, facts))) = next else {
            break;
        };
        if let Frame::Record(bytes) = &frame {
            let _ = Record::try_from(bytes.as_slice());
        }
        drop((frame, facts));
    }
    let _ = reader.truncated;
});
