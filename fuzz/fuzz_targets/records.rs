//! The ring-buffer record decoder: any bytes (the kernel's, or a damaged recording's)
//! decode to a record or an error, never a panic; what it decodes stays within the
//! bytes it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::kernel::records::Record;

fuzz_target!(|data: &[u8]| {
    let Ok(record) = Record::try_from(data) else {
        return;
    };
    let _ = (record.kind(), record.header());
    match &record {
        Record::Data(d) => {
            assert!(d.bytes.len() <= monitor_common::MAX_CHUNK);
            assert!(d.bytes.len() <= data.len());
            let _ = (d.is_cut(), d.missing_after());
        }
        Record::Exec(e) => {
            let argv: usize = e.argv.iter().map(Vec::len).sum();
            assert!(e.filename.len() + argv <= data.len());
        }
        Record::Open(o) => assert!(o.path.len() <= data.len()),
        Record::Connect(c) => assert!(c.addr.len() <= data.len()),
        Record::Accept(a) => assert!(a.addr.len() <= data.len()),
        _ => {}
    }
});
