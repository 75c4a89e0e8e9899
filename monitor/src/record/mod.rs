//! Recordings: what the kernel delivered, in order, with every fact the pipeline looked
//! up on the host while handling it (fd kinds, stdio inodes, peers, environment, the
//! clock), so that `mcp-monitor replay` runs the same pipeline without root or the
//! processes and gives the same events.
//!
//! A recording is `MAGIC` then frames: a tag byte, a little-endian u32 length, the
//! payload. The facts looked up while the pipeline handled a frame follow that frame.
pub mod facts;

use std::{
    fs::File,
    io::{self, BufReader, BufWriter, Read, Write},
    path::Path,
};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 12] = b"MCPMONREC01\n";

/// Longest frame a reader accepts: a kernel record is at most a few KiB plus a 16 KiB
/// chunk; the process table at start is the largest fact.
const MAX_FRAME: u32 = 256 << 20;

/// What the daemon was started with: replay runs the pipeline the same way.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Header {
    pub version: String,
    /// Wall-clock nanoseconds since the epoch of CLOCK_BOOTTIME zero.
    pub boot_epoch_ns: u64,
    pub watch: Vec<String>,
    pub discovery: bool,
    pub tls: bool,
    pub debug_captures: bool,
    pub max_message_bytes: usize,
    pub max_field_bytes: usize,
    pub max_label_values: usize,
    pub metrics_addr: String,
    /// The policy file's text and path; None: the built-in policy.
    pub policy: Option<String>,
    pub policy_path: Option<String>,
}

/// One step of a recording.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Header(Box<Header>),
    /// A record as the ring buffer delivered it.
    Record(Vec<u8>),
    /// A fact looked up while handling the frame before: its key, the how-many-th ask
    /// of that key in that frame, and the answer (answers equal to the type's default
    /// are not written: a missing fact is the default).
    Fact {
        key: String,
        nth: u32,
        value: serde_json::Value,
    },
    /// The once-a-second loss report.
    Tick,
    /// The poll for uprobe attach outcomes.
    TlsTick,
    /// SIGHUP: reopen the event file, reload the policy.
    Hangup,
    /// The policy file changed on disk (inotify): reload the policy.
    PolicyChanged,
    /// The daemon stopped.
    End,
}

impl Frame {
    fn tag(&self) -> u8 {
        match self {
            Self::Header(_) => b'H',
            Self::Record(_) => b'R',
            Self::Fact { .. } => b'F',
            Self::Tick => b'T',
            Self::TlsTick => b'L',
            Self::Hangup => b'S',
            Self::PolicyChanged => b'P',
            Self::End => b'E',
        }
    }
}

#[derive(Serialize, Deserialize)]
struct FactPayload {
    k: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    i: u32,
    v: serde_json::Value,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Writes frames to a file.
pub struct Writer {
    out: BufWriter<File>,
    pub bytes: u64,
}

impl Writer {
    /// Readable by its owner only: it holds what watched processes sent (secrets too).
    pub fn create(path: &Path, header: &Header) -> anyhow::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("creating the recording {}", path.display()))?;
        let mut w = Self {
            out: BufWriter::with_capacity(1 << 20, f),
            bytes: 0,
        };
        w.out.write_all(MAGIC)?;
        w.write(&Frame::Header(Box::new(header.clone())))?;
        Ok(w)
    }

    /// A record as the ring buffer delivered it (no copy into a `Frame`).
    pub fn write_record(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_raw(b'R', bytes)
    }

    fn write_raw(&mut self, tag: u8, payload: &[u8]) -> io::Result<()> {
        let len = u32::try_from(payload.len()).map_err(|_| io::Error::other("frame over 4 GiB"))?;
        self.out.write_all(&[tag])?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(payload)?;
        self.bytes += 5 + payload.len() as u64;
        Ok(())
    }

    pub fn write(&mut self, frame: &Frame) -> io::Result<()> {
        let json;
        let payload: &[u8] = match frame {
            Frame::Header(h) => {
                json = serde_json::to_vec(h)?;
                &json
            }
            Frame::Record(bytes) => bytes,
            Frame::Fact { key, nth, value } => {
                json = serde_json::to_vec(&FactPayload {
                    k: key.clone(),
                    i: *nth,
                    v: value.clone(),
                })?;
                &json
            }
            Frame::Tick | Frame::TlsTick | Frame::Hangup | Frame::PolicyChanged | Frame::End => &[],
        };
        self.write_raw(frame.tag(), payload)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Reads frames back; a recording cut short (the daemon killed) ends at its last whole
/// frame.
pub struct Reader {
    input: BufReader<File>,
    /// A frame read ahead (`next_with_facts` reads one past the facts).
    peeked: Option<Frame>,
    pub truncated: bool,
}

impl Reader {
    /// The recording's header, and the facts looked up before its first frame.
    pub fn open(path: &Path) -> anyhow::Result<(Self, Header, Vec<Frame>)> {
        let f = File::open(path).with_context(|| format!("opening the recording {}", path.display()))?;
        let mut input = BufReader::with_capacity(1 << 20, f);
        let mut magic = [0u8; MAGIC.len()];
        input
            .read_exact(&mut magic)
            .with_context(|| format!("{}: not a recording (too short)", path.display()))?;
        if &magic != MAGIC {
            bail!(
                "{}: not an mcp-monitor recording (or another version of one)",
                path.display()
            );
        }
        let mut r = Self {
            input,
            peeked: None,
            truncated: false,
        };
        let Some(Frame::Header(h)) = r.frame()? else {
            bail!("{}: the recording has no header", path.display());
        };
        let facts = r.facts()?;
        Ok((r, *h, facts))
    }

    /// The next frame that is not a fact, with the facts that follow it.
    pub fn next_with_facts(&mut self) -> anyhow::Result<Option<(Frame, Vec<Frame>)>> {
        let Some(frame) = self.next()? else {
            return Ok(None);
        };
        Ok(Some((frame, self.facts()?)))
    }

    fn facts(&mut self) -> anyhow::Result<Vec<Frame>> {
        let mut facts = Vec::new();
        while let Some(f) = self.next()? {
            if matches!(f, Frame::Fact { .. }) {
                facts.push(f);
            } else {
                self.peeked = Some(f);
                break;
            }
        }
        Ok(facts)
    }

    fn next(&mut self) -> anyhow::Result<Option<Frame>> {
        match self.peeked.take() {
            Some(f) => Ok(Some(f)),
            None => self.frame(),
        }
    }

    fn frame(&mut self) -> anyhow::Result<Option<Frame>> {
        let mut head = [0u8; 5];
        match read_full(&mut self.input, &mut head)? {
            0 => return Ok(None),
            5 => {}
            _ => {
                self.truncated = true;
                return Ok(None);
            }
        }
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
        if len > MAX_FRAME {
            bail!("a frame of {len} bytes: the recording is damaged");
        }
        // Grown as the bytes come: a damaged length does not allocate what the file lacks.
        let mut payload = Vec::with_capacity((len as usize).min(64 << 10));
        (&mut self.input).take(u64::from(len)).read_to_end(&mut payload)?;
        if payload.len() < len as usize {
            self.truncated = true;
            return Ok(None);
        }
        Ok(Some(match head[0] {
            b'H' => Frame::Header(Box::new(serde_json::from_slice(&payload).context("the header")?)),
            b'R' => Frame::Record(payload),
            b'F' => {
                let f: FactPayload = serde_json::from_slice(&payload).context("a fact")?;
                Frame::Fact {
                    key: f.k,
                    nth: f.i,
                    value: f.v,
                }
            }
            b'T' => Frame::Tick,
            b'L' => Frame::TlsTick,
            b'S' => Frame::Hangup,
            b'P' => Frame::PolicyChanged,
            b'E' => Frame::End,
            t => bail!("unknown frame tag {t:#x}: the recording is damaged"),
        }))
    }
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match input.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_back_in_order_with_the_facts_that_follow_them() {
        let path = std::env::temp_dir().join(format!("rec-{}.mcprec", std::process::id()));
        let header = Header {
            version: "x".into(),
            boot_epoch_ns: 7,
            ..Header::default()
        };
        let mut w = Writer::create(&path, &header).unwrap();
        let fact = |k: &str, v| Frame::Fact {
            key: k.into(),
            nth: 0,
            value: v,
        };
        w.write(&fact("procs", serde_json::json!({"a": 1}))).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        w.write(&Frame::Record(vec![1, 2, 3])).unwrap();
        w.write(&fact("fd/1/3", serde_json::json!("pipe"))).unwrap();
        w.write(&Frame::Tick).unwrap();
        w.write(&Frame::PolicyChanged).unwrap();
        w.write(&Frame::End).unwrap();
        w.flush().unwrap();
        // Cut inside the last frame's header: the reader stops at the last whole one.
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.set_len(len + 2).unwrap();
        let (mut r, h, first) = Reader::open(&path).unwrap();
        assert_eq!(h, header);
        assert_eq!(first, [fact("procs", serde_json::json!({"a": 1}))]);
        let mut got = Vec::new();
        while let Some((frame, facts)) = r.next_with_facts().unwrap() {
            got.push((frame, facts.len()));
        }
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            got,
            [
                (Frame::Record(vec![1, 2, 3]), 1),
                (Frame::Tick, 0),
                (Frame::PolicyChanged, 0),
                (Frame::End, 0),
            ]
        );
        assert!(r.truncated);
    }
}
