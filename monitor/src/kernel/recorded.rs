//! The kernel as the pipeline sees it when its answers are facts: live (the real
//! `Capture`, answers recorded when recording) or replayed (answers from a recording,
//! commands dropped: there is no kernel to tell).
use std::{net::SocketAddr, path::Path, rc::Rc};

use super::{Kernel, KernelStats, TlsAttached};
use crate::record::facts::Facts;

pub struct FactKernel {
    /// None: replaying.
    live: Option<Box<dyn Kernel>>,
    facts: Rc<Facts>,
    attached: Vec<(String, u32)>,
}

impl FactKernel {
    pub fn live(kernel: Box<dyn Kernel>, facts: Rc<Facts>) -> Self {
        let attached = facts.look(|| "kernel.attached".into(), || kernel.attached().to_vec());
        Self {
            live: Some(kernel),
            facts,
            attached,
        }
    }

    pub fn replayed(facts: Rc<Facts>) -> Self {
        let attached = facts.look(|| "kernel.attached".into(), Vec::new);
        Self {
            live: None,
            facts,
            attached,
        }
    }
}

impl Kernel for FactKernel {
    fn watch(&mut self, pid: u32) -> anyhow::Result<()> {
        let live = &mut self.live;
        let failed: Option<String> = self.facts.look(
            || format!("kernel.watch/{pid}"),
            || live.as_mut()?.watch(pid).err().map(|e| format!("{e:#}")),
        );
        match failed {
            Some(e) => Err(anyhow::anyhow!(e)),
            None => Ok(()),
        }
    }

    fn unwatch(&mut self, pid: u32) {
        if let Some(k) = &mut self.live {
            k.unwatch(pid);
        }
    }

    fn stop_probing(&mut self, pid: u32) {
        if let Some(k) = &mut self.live {
            k.stop_probing(pid);
        }
    }

    fn probe(&mut self, pid: u32, fds: u64) {
        if let Some(k) = &mut self.live {
            k.probe(pid, fds);
        }
    }

    fn stats(&self) -> anyhow::Result<KernelStats> {
        let stats: Option<Result<KernelStats, String>> = self.facts.look(
            || "kernel.stats".into(),
            || Some(self.live.as_ref()?.stats().map_err(|e| format!("{e:#}"))),
        );
        match stats {
            Some(Ok(s)) => Ok(s),
            Some(Err(e)) => Err(anyhow::anyhow!(e)),
            None => Ok(KernelStats::default()),
        }
    }

    fn attached(&self) -> &[(String, u32)] {
        &self.attached
    }

    fn attach_tls(&mut self, pid: u32, path: &Path, functions: &[(u64, u64)]) {
        if let Some(k) = &mut self.live {
            k.attach_tls(pid, path, functions);
        }
    }

    fn detach_tls(&mut self, pid: u32) {
        if let Some(k) = &mut self.live {
            k.detach_tls(pid);
        }
    }

    fn tls_attached(&mut self) -> Vec<TlsAttached> {
        let live = &mut self.live;
        self.facts.look(
            || "kernel.tls_attached".into(),
            || live.as_mut().map(|k| k.tls_attached()).unwrap_or_default(),
        )
    }

    fn connector(&self, local: SocketAddr) -> Option<u32> {
        self.facts.look(
            || format!("kernel.connector/{local}"),
            || self.live.as_ref()?.connector(local),
        )
    }

    fn watched_set(&self) -> Vec<(u32, u32)> {
        self.facts.look(
            || "kernel.watched_set".into(),
            || self.live.as_ref().map(|k| k.watched_set()).unwrap_or_default(),
        )
    }

    fn stream_end(&self, pid: u32, fd: i32, write: bool) -> Option<u64> {
        self.facts.look(
            || format!("kernel.stream_end/{pid}/{fd}/{write}"),
            || self.live.as_ref()?.stream_end(pid, fd, write),
        )
    }
}
