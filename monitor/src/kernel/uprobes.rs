//! The TLS uprobes, attached and detached on a thread of their own. Attaching one
//! takes milliseconds to hundreds of them (the kernel walks every mapping of the file)
//! and detaching waits for uprobe grace periods (about 0.2 s each here): on the
//! pipeline's thread that would stall the ring buffer's reader long enough for short
//! processes to be gone from /proc before their records are read. The thread owns the
//! loaded object (its programs and every link); requests and outcomes go by channel.
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::mpsc::{Receiver, Sender, channel},
    thread::JoinHandle,
};

use anyhow::{Context as _, anyhow};
use aya::{
    Ebpf,
    programs::{
        UProbe,
        uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeLink, UProbeLinkId, UProbeScope},
    },
};

use super::TlsAttached;

pub const TLS_ENTRY: &str = "ssl_enter";
pub const TLS_RETURN: &str = "ssl_return";

enum Request {
    Attach {
        pid: u32,
        path: PathBuf,
        functions: Vec<(u64, u64)>,
    },
    Detach {
        pid: u32,
    },
}

/// The uprobes attached for one process: per file, its links.
type Links = Vec<(PathBuf, Vec<(&'static str, UProbeLinkId)>)>;

pub struct Uprobes {
    requests: Option<Sender<Request>>,
    outcomes: Receiver<TlsAttached>,
    thread: Option<JoinHandle<()>>,
}

impl Uprobes {
    /// Takes over `ebpf` (with `TLS_ENTRY` and `TLS_RETURN` loaded): it lives on the
    /// thread from now on, and everything attached goes when `Uprobes` is dropped.
    pub fn start(ebpf: Ebpf) -> anyhow::Result<Self> {
        let (requests, rx) = channel();
        let (tx, outcomes) = channel();
        let thread = std::thread::Builder::new()
            .name("uprobes".into())
            .spawn(move || serve(ebpf, rx, tx))
            .context("starting the uprobe thread")?;
        Ok(Self {
            requests: Some(requests),
            outcomes,
            thread: Some(thread),
        })
    }

    pub fn attach(&self, pid: u32, path: &Path, functions: &[(u64, u64)]) {
        self.send(Request::Attach {
            pid,
            path: path.to_path_buf(),
            functions: functions.to_vec(),
        });
    }

    pub fn detach(&self, pid: u32) {
        self.send(Request::Detach { pid });
    }

    fn send(&self, r: Request) {
        if let Some(tx) = &self.requests {
            // The thread only ends when `requests` is dropped.
            let _ = tx.send(r);
        }
    }

    /// Outcomes of the attaches done since the last call.
    pub fn done(&self) -> Vec<TlsAttached> {
        self.outcomes.try_iter().collect()
    }
}

impl Drop for Uprobes {
    /// Waits for the thread to detach everything (the daemon's exit says it did).
    fn drop(&mut self) {
        self.requests = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut ebpf: Ebpf, requests: Receiver<Request>, outcomes: Sender<TlsAttached>) {
    let mut attached: HashMap<u32, Links> = HashMap::new();
    // Each link's drop waits for the kernel: they are dropped on a thread of their
    // own, so that a process that exits does not hold up the next one's attach.
    let (reap, reaped) = channel::<Vec<UProbeLink>>();
    let reaper = std::thread::Builder::new()
        .name("uprobe-detach".into())
        .spawn(move || reaped.into_iter().for_each(drop));
    let reap = match reaper {
        Ok(_) => Some(reap),
        Err(e) => {
            log::warn!("no uprobe detach thread ({e}): detaching in place");
            None
        }
    };
    let mut detach = |ebpf: &mut Ebpf, links| {
        let owned = take_links(ebpf, links);
        if let Some(reap) = &reap {
            // The reaper ends only when `reap` is dropped.
            let _ = reap.send(owned);
        }
    };
    for r in requests {
        match r {
            Request::Attach { pid, path, functions } => {
                let result = attach(&mut ebpf, &mut attached, pid, &path, &functions, &mut detach);
                let _ = outcomes.send(TlsAttached {
                    pid,
                    path,
                    result: result.map_err(|e| format!("{e:#}")),
                });
            }
            Request::Detach { pid } => {
                for (_, links) in attached.remove(&pid).unwrap_or_default() {
                    detach(&mut ebpf, links);
                }
            }
        }
    }
}

/// Attaches both programs at each (file offset, cookie) of `path`, for `pid` only:
/// other processes mapping the file get no breakpoint. False when that file is
/// attached for `pid` already. All or nothing.
fn attach(
    ebpf: &mut Ebpf,
    attached: &mut HashMap<u32, Links>,
    pid: u32,
    path: &Path,
    functions: &[(u64, u64)],
    detach: &mut impl FnMut(&mut Ebpf, Vec<(&'static str, UProbeLinkId)>),
) -> anyhow::Result<bool> {
    if attached
        .get(&pid)
        .is_some_and(|files| files.iter().any(|(p, _)| p == path))
    {
        return Ok(false);
    }
    let scope = UProbeScope::OneProcess(std::num::NonZeroU32::new(pid).context("pid 0")?);
    let mut links = Vec::new();
    for &(offset, cookie) in functions {
        for prog in [TLS_ENTRY, TLS_RETURN] {
            let point = UProbeAttachPoint {
                location: UProbeAttachLocation::AbsoluteOffset(offset),
                cookie: Some(cookie),
            };
            let result = uprobe(ebpf, prog).and_then(|p| {
                p.attach(point, path, scope).map_err(|e| {
                    anyhow!(
                        "attaching `{prog}` at {}+{offset:#x} for pid {pid}: {e}",
                        path.display()
                    )
                })
            });
            match result {
                Ok(id) => links.push((prog, id)),
                Err(e) => {
                    detach(ebpf, links);
                    return Err(e);
                }
            }
        }
    }
    attached.entry(pid).or_default().push((path.to_path_buf(), links));
    Ok(true)
}

fn uprobe<'a>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut UProbe> {
    ebpf.program_mut(name)
        .with_context(|| format!("no program `{name}` in the eBPF object"))?
        .try_into()
        .with_context(|| format!("`{name}` is not a uprobe"))
}

/// Takes `links` from their programs: dropping them detaches.
fn take_links(ebpf: &mut Ebpf, links: Vec<(&'static str, UProbeLinkId)>) -> Vec<UProbeLink> {
    links
        .into_iter()
        .filter_map(|(prog, id)| uprobe(ebpf, prog).ok()?.take_link(id).ok())
        .collect()
}
