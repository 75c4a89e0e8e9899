//! The JSON event stream: one object per line on stdout or a file.
use std::{
    fs::OpenOptions,
    io::{self, BufWriter, Write},
    path::Path,
    time::{Duration, SystemTime},
};

use serde_json::Value;

pub struct EventWriter {
    out: BufWriter<Box<dyn Write + Send>>,
    /// Wall-clock time of CLOCK_BOOTTIME zero, to turn kernel timestamps into dates.
    boot_epoch: SystemTime,
}

impl EventWriter {
    /// `-` is stdout; anything else a file opened for appending.
    pub fn open(target: &str) -> anyhow::Result<Self> {
        let out: Box<dyn Write + Send> = if target == "-" {
            Box::new(io::stdout())
        } else {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(Path::new(target))
                .map_err(|e| anyhow::anyhow!("opening event file {target}: {e}"))?;
            Box::new(f)
        };
        Ok(Self {
            out: BufWriter::new(out),
            boot_epoch: boot_epoch(),
        })
    }

    /// Events to any writer (a bench's sink, a test's buffer).
    pub fn from_writer(out: Box<dyn Write + Send>) -> Self {
        Self {
            out: BufWriter::new(out),
            boot_epoch: boot_epoch(),
        }
    }

    /// RFC 3339 UTC time of a CLOCK_BOOTTIME timestamp from the kernel.
    pub fn kernel_time(&self, ts_ns: u64) -> String {
        humantime::format_rfc3339_nanos(self.boot_epoch + Duration::from_nanos(ts_ns)).to_string()
    }

    pub fn now(&self) -> String {
        humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
    }

    /// Writes one event; `type` and `ts` come first so lines read well.
    pub fn emit(&mut self, kind: &str, ts: String, fields: Value) -> io::Result<()> {
        let mut obj = serde_json::Map::new();
        obj.insert("type".into(), Value::String(kind.into()));
        obj.insert("ts".into(), Value::String(ts));
        if let Value::Object(rest) = fields {
            obj.extend(rest);
        }
        serde_json::to_writer(&mut self.out, &Value::Object(obj))?;
        self.out.write_all(b"\n")
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn boot_epoch() -> SystemTime {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // Safety: clock_gettime writes into the timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    let since_boot = Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
    SystemTime::now() - since_boot
}
