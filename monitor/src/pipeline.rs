//! The userspace pipeline: kernel records in, JSON events and metrics out. It keeps the
//! process table and watched set, reassembles servers' stdio into MCP sessions, gives
//! side effects to the calls in flight, and judges each call against the policy.
use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    path::{Path, PathBuf},
    rc::Rc,
    sync::atomic::Ordering,
};

use base64::Engine as _;
use log::{info, warn};
use serde_json::json;

use crate::{
    host::{
        effects::{self, Effect},
        environ::{self, EnvNames},
        fds::{FdKind, FdTable},
        identity::{self, ClientProcess},
        procs::{self, Process, ProcessTable, read_cmdline},
        reconcile::Reconciler,
        secret_inodes::SecretInodes,
        tls_probes::TlsProbes,
        watch::{DetectedBy, WatchPatterns},
        workload::{self, Workload},
    },
    kernel::{
        Kernel, KernelStats,
        id_map::IdMap,
        records::{Data, Direction, Record},
    },
    mcp::{
        detect,
        session::{Output, PeerInfo},
    },
    output::{
        events::EventWriter,
        metrics::{self, Metrics, OTHER},
        render::{self, event_type},
    },
    policy::{EffectKind, Policy, SecretHit, StaticSecret, UNREGISTERED, refs::refs_of, verdict},
    record::facts::Facts,
    servers::{Server, ServerHost, Stream},
    transport::{
        Gap, SessionKey,
        tls::{Socket, TlsMap},
    },
};

mod hostile;
mod telemetry;
mod tls;

/// What the pipeline needs to know from the command line.
pub struct Settings {
    /// `--watch`: command-line globs of processes to watch as servers from their exec
    /// (a policy file's `match.cmdline` globs are added to them).
    pub watch: Vec<String>,
    /// Find servers by what they speak (else only by policy match and `--watch`).
    pub discovery: bool,
    /// Read watched processes' TLS plaintext through uprobes on their OpenSSL.
    pub tls: bool,
    pub debug_captures: bool,
    /// Longest JSON-RPC message reassembled; longer ones are dropped and counted.
    pub max_message_bytes: usize,
    /// Arguments and error texts longer than this are cut in events.
    pub max_field_bytes: usize,
    /// The policy in force at start, and the file it came from (reloaded on SIGHUP).
    pub policy: Policy,
    pub policy_path: Option<PathBuf>,
}

/// Userspace view of loss: what the kernel counted, and gaps seen in the streams.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
struct Loss {
    kernel: KernelStats,
    parse_errors: u64,
    stream_gaps: u64,
    bytes_missing: u64,
    /// Records whose stream offset went back over bytes already delivered.
    stream_overlaps: u64,
    /// Lines on a server's stdio that were not JSON-RPC, or were over the size limit.
    message_errors: u64,
    /// HTTP framing that did not parse, bodies that could not be read.
    http_errors: u64,
    /// HTTP connections not followed (too many open on one server).
    http_untracked: u64,
    /// Messages of sessions that could not be opened (too many on one server).
    sessions_full: u64,
    /// TLS plaintext whose socket could not be found.
    tls_unmapped: u64,
    /// Requests in flight forgotten to keep sessions within their bounds.
    requests_evicted: u64,
    /// Kernel watched-set entries dropped because no record backed them (see
    /// `host::reconcile`).
    reconciled: u64,
    /// Processes found gone without their exit record (by `reconcile`, or because a
    /// new process took their pid).
    exits_unseen: u64,
}

impl Loss {
    /// The counts exported as `events_lost{where}`, in `metrics::LOSS_WHERE` order.
    fn counts(&self) -> [(&'static str, u64); 18] {
        let k = &self.kernel;
        [
            ("kernel_ringbuf_full_data", k.ringbuf_full_data),
            ("kernel_ringbuf_full_lifecycle", k.ringbuf_full_lifecycle),
            ("kernel_ringbuf_full_other", k.ringbuf_full_other),
            ("kernel_data_headroom", k.data_headroom),
            ("kernel_transfer_cut_ring", k.cut_ring),
            ("kernel_transfer_cut_read", k.cut_read),
            ("kernel_transfer_cut_limit", k.cut_limit),
            ("kernel_transfer_cut_invisible", k.cut_invisible),
            ("kernel_read_failed", k.read_failed),
            ("kernel_watch_full", k.watch_full),
            ("kernel_tls_unpaired", k.tls_unpaired),
            ("userspace_stream_gap", self.stream_gaps),
            ("userspace_stream_overlap", self.stream_overlaps),
            ("http_connections_full", self.http_untracked),
            ("sessions_full", self.sessions_full),
            ("tls_unmapped", self.tls_unmapped),
            ("requests_evicted", self.requests_evicted),
            ("exits_unseen", self.exits_unseen),
        ]
    }
}

/// A stream of bytes of a process: a file descriptor's, or the plaintext of a TLS
/// connection (by its `SSL*`), which has offsets of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum StreamId {
    Fd(i32),
    Tls(u64),
}

/// One direction of one stream of one process.
type StreamKey = (u32, StreamId, Direction);

fn stream_id(d: &Data<'_>, fd: i32) -> StreamId {
    match d.tls_conn {
        Some(ssl) => StreamId::Tls(ssl),
        None => StreamId::Fd(fd),
    }
}

/// Records held for the ones before them (see `Pipeline::bytes`): per stream, and in
/// all (16 KiB each at most).
const MAX_HELD_PER_STREAM: usize = 8;
const MAX_HELD: usize = 256;

/// Everything between the kernel's records and the events: the process table and
/// watched set, server sessions, policy decisions, loss accounting. Driven by the daemon
/// with the real kernel, and by benches and tests with recorded records.
pub struct Pipeline {
    kernel: Box<dyn Kernel>,
    /// Every answer read from the host (recorded, or replayed).
    facts: Rc<Facts>,
    procs: ProcessTable,
    fds: FdTable,
    patterns: WatchPatterns,
    pub events: EventWriter,
    pub metrics: Metrics,
    debug_captures: bool,
    /// Next expected stream offset per (pid, stream, direction).
    streams: IdMap<StreamKey, u64>,
    /// Records ahead of their stream's position, waiting for the ones before them.
    held: IdMap<StreamKey, Vec<(Data<'static>, i32)>>,
    held_records: usize,
    /// Which socket TLS plaintext belongs to; which sockets carry ciphertext.
    tls: TlsMap,
    /// Watched processes with the OpenSSL uprobes.
    tls_probes: TlsProbes,
    reconciler: Reconciler,
    /// The same check for the watched processes of the process table.
    exits_unseen: Reconciler,
    /// The newest kernel timestamp seen: when a process found gone is said to end.
    last_ts_ns: u64,
    /// `report_loss` calls so far (the daemon's 1 s ticks).
    ticks: u64,
    loss: Loss,
    reported: Loss,
    self_pid: u32,
    /// The daemon and its ancestors (a shell, sudo, a test harness): their command
    /// lines hold the watch patterns themselves, so they are never watched.
    never_watch: Vec<u32>,
    /// Servers by pid.
    servers: IdMap<u32, Server>,
    max_message_bytes: usize,
    max_field_bytes: usize,
    /// Policies by epoch: calls are judged by the policy in force when they started.
    /// The newest is in force; older ones stay while calls in flight started under them.
    policies: BTreeMap<u64, Rc<Policy>>,
    policy_path: Option<PathBuf>,
    /// Requests that were not MCP per unwatched HTTP server, until `HTTP_MISSES`.
    http_misses: HashMap<u32, u32>,
    /// Compat syscalls flagged, forged stdin writes (see `hostile`).
    hostile: hostile::Hostile,
    /// Secret files by inode, for hard links to them.
    secret_inodes: SecretInodes,
    /// Whether processes are found by what they speak (`--no-discovery`: only by the
    /// watch patterns and the policy).
    discovery: bool,
    /// Spans and metrics over OTLP (`--otlp-endpoint`).
    pub otlp: Option<crate::output::otlp::Otlp>,
    /// Processes pending since their exec that are no server, released from the kernel
    /// at the end of the batch (`release_pending`) rather than one syscall each at their
    /// exec record: most exec'ed programs are short-lived and their exit record, in
    /// the same batch, says the kernel dropped them already.
    to_release: Vec<u32>,
}

/// `to_release` is flushed at this length even within a batch (a caller that never
/// ends batches, such as a bench, keeps it bounded).
const MAX_TO_RELEASE: usize = 256;

/// The kernel's watched set is checked against userspace every this many ticks (1 s).
const RECONCILE_EVERY: u64 = 5;

/// Non-MCP requests an HTTP server answers before its connections stop being looked at.
const HTTP_MISSES: u32 = 16;

impl Pipeline {
    /// `procs`: the processes running at start (`ProcessTable::scan`, as a fact).
    pub fn new(
        settings: Settings,
        kernel: Box<dyn Kernel>,
        facts: Rc<Facts>,
        procs: ProcessTable,
        mut events: EventWriter,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let self_pid = facts.look(|| "self_pid".into(), std::process::id);
        let clock = facts.clone();
        events.set_clock(Box::new(move || {
            clock.look(
                || "now".into(),
                || {
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos() as u64)
                },
            )
        }));
        let mut p = Self {
            kernel,
            facts: facts.clone(),
            never_watch: procs.ancestry(self_pid),
            procs,
            fds: FdTable::new(facts.clone()),
            // The built-in policy's entries only name servers found otherwise: they are
            // no reason to watch a process.
            patterns: WatchPatterns::new(
                &match settings.policy_path {
                    Some(_) => settings.policy.cmdline_globs(),
                    None => Vec::new(),
                },
                &settings.watch,
            )?,
            events,
            metrics,
            debug_captures: settings.debug_captures,
            streams: IdMap::default(),
            held: IdMap::default(),
            held_records: 0,
            tls: TlsMap::default(),
            tls_probes: TlsProbes::new(settings.tls, facts),
            reconciler: Reconciler::default(),
            exits_unseen: Reconciler::default(),
            last_ts_ns: 0,
            ticks: 0,
            loss: Loss::default(),
            reported: Loss::default(),
            self_pid,
            servers: IdMap::default(),
            max_message_bytes: settings.max_message_bytes,
            max_field_bytes: settings.max_field_bytes,
            policies: BTreeMap::from([(0, Rc::new(settings.policy))]),
            policy_path: settings.policy_path,
            http_misses: HashMap::new(),
            hostile: hostile::Hostile::default(),
            secret_inodes: SecretInodes::default(),
            discovery: settings.discovery,
            otlp: None,
            to_release: Vec::new(),
        };
        p.watch_existing(settings.discovery);
        Ok(p)
    }

    /// The final status event, once the kernel's queue is drained.
    pub fn stopped(&mut self) {
        let now = self.events.now();
        self.events
            .emit("monitor_status", now, json!({"status": "stopped"}));
        self.events.flush();
    }

    /// Processes running at start: watched when a pattern matches; with discovery, the
    /// others' pipe and socket read ends are looked at like a stdin (a server that
    /// moved its stdin before the daemon started is found by its next request).
    fn watch_existing(&mut self, discovery: bool) {
        let mut candidates: Vec<(u32, String)> =
            self.procs.iter().map(|p| (p.pid, p.cmdline_string())).collect();
        // By pid, so that a replay finds them in the same order.
        candidates.sort_unstable();
        for (pid, cmdline) in candidates {
            self.consider(pid, &cmdline);
            if discovery
                && !self.never_watch.contains(&pid)
                && !self.procs.get(pid).is_some_and(|p| p.watched)
            {
                let fds = self.facts.look(
                    || format!("read_ends/{pid}"),
                    || identity::stream_read_ends(Path::new("/proc"), pid),
                );
                if fds != 0 {
                    self.kernel.probe(pid, fds);
                }
            }
        }
    }

    /// Watches `pid` as a server if its command line matches a pattern.
    fn consider(&mut self, pid: u32, cmdline: &str) {
        if self.never_watch.contains(&pid) {
            return;
        }
        let Some((pattern, how)) = self.patterns.matches(cmdline).map(|(p, h)| (p.to_string(), h)) else {
            return;
        };
        self.make_server(pid, Found::Pattern { how, pattern });
    }

    /// Makes `pid` a watched server; false when it cannot be one (gone, or a child on
    /// the stdio of a server that already is).
    fn make_server(&mut self, pid: u32, found: Found) -> bool {
        let Some(p) = self.procs.get(pid) else {
            return false;
        };
        if p.server_pattern.is_some() {
            return true;
        }
        let mut stdio = self.facts.look(
            || format!("stdio/{pid}"),
            || identity::stdio_of(Path::new("/proc"), pid),
        );
        let mut stdin_fd = 0;
        if let Found::Protocol {
            transport: "stdio",
            fd,
            ..
        } = &found
        {
            let fd = *fd;
            // It read its stdin elsewhere than on fd 0 (Python's SDK moves stdin and
            // stdout to new fds and puts /dev/null in their place): its stdout is
            // learnt from its first response.
            let inode = match self.fds.classify(pid, fd) {
                FdKind::Pipe { inode } | FdKind::Socket { inode } => Some(*inode),
                _ => None,
            };
            if stdio.stdin != inode {
                stdio = identity::Stdio {
                    stdin: inode,
                    stdout: None,
                };
            }
            stdin_fd = fd;
        }
        // A child of a server on the same stdio (node under npx, a shell wrapper) is part
        // of that server; one with stdio of its own is a server its parent talks to.
        if let Some(outer) = self.server_root(pid)
            && self
                .servers
                .get(&outer)
                .is_some_and(|s| s.stdio.stdio.stdin == stdio.stdin)
        {
            return false;
        }
        if !p.watched {
            if let Err(e) = self.kernel.watch(pid) {
                warn!("{e:#}");
                return false;
            }
            // Gone already (its exit record is still queued): the kernel's exit
            // handler ran before this entry existed and would leave it behind.
            if !self.is_running(p) {
                self.kernel.unwatch(pid);
            }
            self.metrics.processes_watched.inc();
        }
        let Some(p) = self.procs.get_mut(pid) else {
            return false;
        };
        p.watched = true;
        p.server_pattern = Some(found.label());
        self.procs.adopt_tree(pid);
        let Some(p) = self.procs.get(pid) else {
            return false;
        };
        let process = p.clone();
        info!(
            "watching pid {pid} ({}) as a server: {}",
            render::cmdline(&process.cmdline_string()),
            found.label()
        );
        self.start_server(&process, stdio, stdin_fd, &found);
        if self.tls_eager(pid) {
            self.tls_probes.probe(&mut *self.kernel, Path::new("/proc"), pid);
        }
        true
    }

    /// A new server session: its client, its policy entry, `server_started`, and the
    /// `unregistered_server` violation when no entry matches.
    fn start_server(&mut self, p: &Process, stdio: identity::Stdio, stdin_fd: i32, found: &Found) {
        // A server found on a connection has its clients on the connections.
        let client = match found {
            Found::Protocol {
                transport: "http", ..
            } => None,
            _ => self.find_client(p, stdio, stdin_fd),
        };
        let client_json = client.as_ref().map(|c| {
            // Its parent chain says which agent host started it.
            let parents: Vec<_> = self.procs.ancestry(c.pid)[1..]
                .iter()
                .map(|&pid| json!({"pid": pid, "exe": self.procs.get(pid).map(|p| p.exe.clone())}))
                .collect();
            let mut client = json!({"pid": c.pid, "uid": c.uid, "exe": c.exe, "cmdline": render::cmdline(&c.cmdline), "parents": parents});
            if let Some(w) = &c.workload {
                client["workload"] = json!(w);
            }
            client
        });
        let policy = self.policy().clone();
        let host = self
            .facts
            .look(|| format!("server_host/{}", p.pid), || ServerHost::read(p));
        let mut server = Server::new(p, stdio, client, host, self.max_message_bytes, self.epoch());
        server.workload = workload_of(&self.facts, p.pid);
        server.rule = policy.entry_name(&server.cmdline, &p.exe, server.workload.as_ref());
        server.named = matches!(found, Found::Pattern { .. });
        let mut server_json = render::server_json(&server);
        server_json["uid"] = json!(p.uid);
        server_json["ppid"] = json!(p.ppid);
        // Running before the daemon: found now.
        let ts = match p.start_ns {
            0 => self.events.now(),
            _ if p.predates => self.events.now(),
            ns => self.events.kernel_time(ns),
        };
        let mut fields =
            json!({"server": server_json, "detected_by": found.how().as_str(), "client": client_json});
        match found {
            Found::Pattern { pattern, .. } => fields["matched"] = json!(pattern),
            Found::Protocol {
                method, transport, ..
            } => {
                fields["first_method"] = json!(method);
                fields["transport"] = json!(transport);
            }
        }
        // Names only, never values: this is what `--record` writes too.
        let env: Option<EnvNames> = self.facts.look(
            || format!("server_environ/{}", p.pid),
            || environ::names(Path::new("/proc"), p.pid),
        );
        let statics = self.static_secrets(&mut server, &policy, env.as_ref(), &mut fields);
        self.events.emit("server_started", ts.clone(), fields);
        let detail = format!(
            "found as an MCP server ({}) but no server entry of {} matches it",
            found.label(),
            policy.source
        );
        if server.rule.is_none()
            && let Some(v) = policy.unregistered_violation(detail)
        {
            let fields = json!({"server": render::server_json(&server), "kind": v.kind, "detail": v.detail, "rule": v.rule, "refs": refs_of(v.kind)});
            self.events.emit("violation", ts.clone(), fields);
            self.metrics
                .violations
                .with_label_values(&[UNREGISTERED, "unknown", v.kind])
                .inc();
        }
        let index = policy.server_index(server.rule.as_deref());
        if let Some(v) = policy.static_secret_violation(index, &statics) {
            let fields = json!({"server": render::server_json(&server), "kind": v.kind, "detail": v.detail, "rule": v.rule, "refs": refs_of(v.kind), "static_secrets": statics});
            self.events.emit("violation", ts, fields);
            self.metrics
                .violations
                .with_label_values(&[server.label(), "unknown", v.kind])
                .inc();
        }
        if let Some(old) = self.servers.insert(p.pid, server) {
            // Its pid started another server (an exec): the old one holds nothing now.
            self.release_static_secrets(&old);
        }
        self.metrics.servers_watched.set(self.servers.len() as i64);
    }

    /// Takes a server's static secrets out of `mcp_server_static_secrets`, under the
    /// labels they were added with (a reload may have renamed its entry since).
    fn release_static_secrets(&self, server: &Server) {
        for (label, class, n) in &server.static_secret_gauges {
            self.metrics
                .static_secrets
                .with_label_values(&[label, class])
                .sub(*n);
        }
    }

    /// The static secrets of a starting server, from its environment's names (None:
    /// unknown, as in a recording made before environments were recorded): into its
    /// `server_started` fields and `mcp_server_static_secrets`; environments that did
    /// not parse are counted. Returns them, for the policy's `static_secrets`.
    fn static_secrets(
        &mut self,
        server: &mut Server,
        policy: &Policy,
        env: Option<&EnvNames>,
        fields: &mut serde_json::Value,
    ) -> Vec<StaticSecret> {
        let Some(env) = env else {
            return Vec::new();
        };
        let found = policy.secret_env.static_secrets(env);
        fields["static_secrets"] = json!(found.found);
        if found.dropped > 0 {
            fields["static_secrets_dropped"] = json!(found.dropped);
        }
        if !env.problems.is_empty() {
            fields["environ_problems"] = json!(env.problems);
            self.metrics
                .parse_errors
                .with_label_values(&["environ"])
                .inc_by(env.problems.total());
        }
        let mut by_class: BTreeMap<&str, i64> = BTreeMap::new();
        for s in &found.found {
            *by_class.entry(s.class.as_str()).or_default() += 1;
        }
        // Past the listed ones, the rest still count, under no class of their own.
        if found.dropped > 0 {
            *by_class.entry(OTHER).or_default() += found.dropped as i64;
        }
        let label = server.label().to_string();
        for (class, n) in by_class {
            self.metrics
                .static_secrets
                .with_label_values(&[&label, class])
                .add(n);
            server
                .static_secret_gauges
                .push((label.clone(), class.to_string(), n));
        }
        found.found
    }

    fn policy(&self) -> &Rc<Policy> {
        self.policies
            .last_key_value()
            .map(|(_, p)| p)
            .expect("at least one policy")
    }

    fn epoch(&self) -> u64 {
        self.policies.last_key_value().map_or(0, |(e, _)| *e)
    }

    /// The policy a call that started at `epoch` is judged by, and the server's entry in
    /// it (which a reload may have renamed or removed since).
    fn call_policy(&self, server: &Server, epoch: u64) -> (Rc<Policy>, Option<usize>) {
        if epoch == self.epoch() {
            let policy = self.policy().clone();
            let index = policy.server_index(server.rule.as_deref());
            return (policy, index);
        }
        let policy = match self.policies.get(&epoch) {
            Some(p) => p.clone(),
            None => {
                // Policies are kept while a call uses them (`forget_unused_policies`).
                warn!("no policy of epoch {epoch} for a call in flight; judging it under the current one");
                self.policy().clone()
            }
        };
        let index = policy.match_server(&server.cmdline, &server.exe, server.workload.as_ref());
        (policy, index)
    }

    /// Drops the policies that neither the current epoch nor any call in flight uses.
    fn forget_unused_policies(&mut self) {
        if self.policies.len() < 2 {
            return;
        }
        let current = self.epoch();
        let oldest = self
            .servers
            .values()
            .filter_map(Server::oldest_epoch)
            .min()
            .unwrap_or(current)
            .min(current);
        self.policies.retain(|&e, _| e >= oldest);
    }

    /// SIGHUP: a valid new policy applies to calls that start after it; an invalid one
    /// is refused, logged and reported, and the old one stays. Calls in flight keep
    /// the policy they started under for as long as they run.
    pub fn reload_policy(&mut self) {
        self.reload_policy_because("SIGHUP");
    }

    /// [`Pipeline::reload_policy`], with `cause` (SIGHUP, a change of the file) in the
    /// log; the events are the same whatever the cause.
    pub fn reload_policy_because(&mut self, cause: &str) {
        let ts = self.events.now();
        let Some(path) = self.policy_path.clone() else {
            info!("{cause}: running with the built-in policy, nothing to reload");
            return;
        };
        let text: Option<String> = self
            .facts
            .look(|| "policy_file".into(), || Policy::read_file(&path).ok());
        let loaded = match text {
            Some(text) => Policy::parse(&path.display().to_string(), &text),
            // Unreadable, or refused (others can write it): the loader says why.
            None => Policy::load_file(&path),
        };
        match loaded {
            Err(e) => {
                warn!("{cause}: keeping the current policy; the new one is invalid:\n{e}");
                let errors: Vec<String> = e.to_string().lines().map(str::to_string).collect();
                self.events.emit(
                    "monitor_status",
                    ts,
                    json!({"status": "policy_rejected", "policy": path, "errors": errors}),
                );
            }
            Ok(policy) => {
                info!("{cause}: {}", policy.summary());
                let epoch = self.epoch() + 1;
                for s in self.servers.values_mut() {
                    s.set_epoch(epoch);
                    s.rule = policy.entry_name(&s.cmdline, &s.exe, s.workload.as_ref());
                }
                let summary = policy.summary();
                self.policies.insert(epoch, Rc::new(policy));
                self.forget_unused_policies();
                self.events.emit(
                    "monitor_status",
                    ts,
                    json!({"status": "policy_loaded", "policy": path, "epoch": epoch, "summary": summary, "policies_in_use": self.policies.len()}),
                );
            }
        }
    }

    /// The process on the other end of the server's stdin (else its parent).
    fn find_client(&self, server: &Process, stdio: identity::Stdio, stdin_fd: i32) -> Option<ClientProcess> {
        let candidates = match stdio.stdin {
            Some(_) => self.facts.look(
                || format!("client_candidates/{}/{stdin_fd}", server.pid),
                || {
                    identity::client_candidates(
                        Path::new("/proc"),
                        server.pid,
                        stdin_fd,
                        &[server.pid, self.self_pid],
                        server.ppid,
                    )
                },
            ),
            None => Vec::new(),
        };
        let pid = identity::pick_client(&candidates, server.ppid)?;
        let mut client = match self.procs.get(pid) {
            Some(p) => ClientProcess::from_process(p),
            None => ClientProcess {
                pid,
                uid: 0,
                exe: String::new(),
                cmdline: String::new(),
                workload: None,
            },
        };
        client.workload = workload_of(&self.facts, pid);
        Some(client)
    }

    /// The nearest process in `pid`'s ancestry (itself included) that is a server; else,
    /// when the processes between them have exited, the server it was forked under.
    fn server_root(&self, pid: u32) -> Option<u32> {
        let is_server = |p: u32| self.procs.get(p).is_some_and(|p| p.server_pattern.is_some());
        self.procs.ancestors(pid).find(|&p| is_server(p)).or_else(|| {
            let root = self.procs.get(pid)?.tree_root?;
            is_server(root).then_some(root)
        })
    }

    pub fn ready(&mut self, metrics_addr: SocketAddr) {
        self.metrics.ready.store(true, Ordering::Relaxed);
        let programs: Vec<_> = self
            .kernel
            .attached()
            .iter()
            .map(|(name, id)| json!({"name": name, "id": id}))
            .collect();
        let mut watched: Vec<u32> = self.procs.iter().filter(|p| p.watched).map(|p| p.pid).collect();
        watched.sort_unstable();
        let now = self.events.now();
        self.events.emit(
            "monitor_status",
            now,
            json!({
                "status": "ready",
                "pid": self.self_pid,
                "programs": programs,
                "watch_patterns": self.patterns.patterns(),
                "watched_pids": watched,
                "metrics_addr": metrics_addr.to_string(),
                "version": env!("CARGO_PKG_VERSION"),
            }),
        );
        self.events.flush();
    }

    /// Releases the processes found no server since the last call (see `to_release`),
    /// unless one became watched meanwhile. The daemon calls it after each drain of
    /// the ring.
    pub fn release_pending(&mut self) {
        for pid in std::mem::take(&mut self.to_release) {
            if !self.procs.get(pid).is_some_and(|p| p.watched) {
                self.kernel.unwatch(pid);
            }
        }
    }

    /// Decodes one kernel record and acts on it; a bad record is counted, never fatal.
    pub fn handle(&mut self, raw: &[u8]) {
        self.tls_outcomes();
        let record = match Record::try_from(raw) {
            Ok(r) => r,
            Err(e) => {
                self.loss.parse_errors += 1;
                self.metrics.parse_errors.with_label_values(&["record"]).inc();
                warn!("dropping a kernel record: {e}");
                return;
            }
        };
        self.dispatch(record);
    }

    fn dispatch(&mut self, record: Record<'_>) {
        self.last_ts_ns = self.last_ts_ns.max(record.header().ts_ns);
        self.metrics.records.with_label_values(&[record.kind()]).inc();
        match record {
            Record::Exec(e) => {
                let pid = e.header.pid;
                if self.procs.get(pid).is_some_and(|p| p.watched && self.replaced(p)) {
                    // Another process on a watched pid: the watched one's exit and this
                    // one's fork records were lost. It is not the watched one.
                    self.loss.exits_unseen += 1;
                    self.process_gone(pid, e.header.ts_ns);
                }
                let mut argv: Vec<String> = e
                    .argv
                    .iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                if e.argv_truncated || argv.is_empty() {
                    // The kernel could not give all of argv: /proc has it while the process lives.
                    let from_proc = self.facts.look(|| format!("cmdline/{pid}"), || read_cmdline(pid));
                    if !from_proc.is_empty() {
                        argv = from_proc;
                    }
                }
                let exe = String::from_utf8_lossy(&e.filename).into_owned();
                let facts = &self.facts;
                let ppid = || {
                    facts.look(
                        || format!("ppid/{pid}"),
                        || procs::read_ppid(Path::new("/proc"), pid).unwrap_or(0),
                    )
                };
                let cmdline = self
                    .procs
                    .exec(pid, e.uid, exe, argv, e.header.ts_ns, ppid)
                    .cmdline_string();
                self.fds.forget_process(pid);
                self.tls_probes.forget(&mut *self.kernel, pid);
                self.tls.forget_process(pid);
                // A server's own exec (a shell it turns into) is an effect of its calls.
                let was_server = self.servers.contains_key(&pid);
                self.consider(pid, &cmdline);
                // The kernel watches every new image until told otherwise (see
                // `WatchState::pending`): release the ones that are not ours, once the
                // batch is handled.
                if !self.procs.get(pid).is_some_and(|p| p.watched) {
                    self.to_release.push(pid);
                    if self.to_release.len() >= MAX_TO_RELEASE {
                        self.release_pending();
                    }
                } else if self.tls_eager(pid) {
                    // A new image in a server's tree (node under npx, a wrapper that
                    // execs its server): its own OpenSSL.
                    self.tls_probes.probe(&mut *self.kernel, Path::new("/proc"), pid);
                }
                if let Some(root) = self.server_root(pid)
                    && (root != pid || was_server)
                {
                    let argv = self.procs.get(pid).map(|p| p.cmdline.clone()).unwrap_or_default();
                    let path = String::from_utf8_lossy(&e.filename).into_owned();
                    self.effect(root, e.header.ts_ns, Effect::Exec { path, argv }, None);
                }
            }
            Record::Fork {
                header,
                child_pid,
                watched,
            } => {
                if self
                    .procs
                    .get(child_pid)
                    .is_some_and(|p| !procs::same_start(p.start_ns, header.ts_ns))
                {
                    // A new process on a pid the table holds: its last holder's exit
                    // record was lost. That process is gone; this one is not it.
                    self.loss.exits_unseen += 1;
                    self.process_gone(child_pid, header.ts_ns);
                }
                self.procs.fork(header.pid, child_pid, header.ts_ns, watched);
                if watched {
                    self.metrics.processes_watched.inc();
                    // A uprobe for one process does not follow its fork (a worker).
                    if self.tls_eager(child_pid) {
                        self.tls_probes.forked(&mut *self.kernel, header.pid, child_pid);
                    }
                }
            }
            Record::Exit { header } => {
                // Its exit dropped its kernel entry (sched_process_exit): nothing to release.
                self.to_release.retain(|&pid| pid != header.pid);
                self.process_gone(header.pid, header.ts_ns);
            }
            Record::Data(d) => self.data(d),
            Record::FdChange { header, fd, .. } => {
                // What waited was written before the change.
                self.release_held(|k| k.0 == header.pid);
                if let Some(stream) = self.fds.cached(header.pid, fd).and_then(stream_of) {
                    self.socket_closed(header.pid, stream, header.ts_ns);
                }
                self.fds.changed(header.pid, fd);
                let ssls = self.tls.closed(header.pid, fd);
                if self.tls.blind(header.pid)
                    && let Some(reason) = self.tls_probes.blind(header.pid)
                {
                    self.report_unreadable(header.pid, reason);
                }
                if fd < 0 {
                    self.streams.retain(|&(pid, _, _), _| pid != header.pid);
                } else {
                    self.streams.retain(|&(pid, s, _), _| {
                        pid != header.pid
                            || match s {
                                StreamId::Fd(f) => f != fd,
                                StreamId::Tls(ssl) => !ssls.contains(&ssl),
                            }
                    });
                }
            }
            Record::CompatSyscall { header, nr } => self.compat_syscall(header.pid, nr, header.ts_ns),
            Record::IoUring { header } => self.io_uring(header.pid, header.ts_ns),
            Record::Open(o) => self.open(o),
            Record::Accept(a) => self.accept(a),
            Record::Connect(c) => {
                if let Some(root) = self.server_root(c.header.pid)
                    && let Some(address) = effects::sockaddr(&c.addr)
                {
                    let ok = effects::connect_ok(c.ret);
                    self.effect(root, c.header.ts_ns, Effect::Connect { address, ok }, None);
                }
            }
        }
    }

    /// When the process now on `p`'s pid started, as /proc says (None: no process).
    fn started_now(&self, pid: u32) -> Option<u64> {
        self.facts.look(
            || format!("start/{pid}"),
            || procs::read_start_ns(Path::new("/proc"), pid),
        )
    }

    /// Whether `p` still runs: its pid is there, and not taken by another process.
    fn is_running(&self, p: &Process) -> bool {
        self.started_now(p.pid)
            .is_some_and(|s| p.start_ns == 0 || procs::same_start(p.start_ns, s))
    }

    /// Whether another process holds `p`'s pid now (not merely: `p` exited).
    fn replaced(&self, p: &Process) -> bool {
        self.started_now(p.pid)
            .is_some_and(|s| p.start_ns != 0 && !procs::same_start(p.start_ns, s))
    }

    /// `pid` exited (its exit record, or found gone by `reconcile` or by a new process
    /// on its pid): forgotten everywhere; a server's open calls end incomplete.
    fn process_gone(&mut self, pid: u32, ts_ns: u64) {
        self.release_held(|k| k.0 == pid);
        self.trailing_gaps(pid, ts_ns);
        self.http_misses.remove(&pid);
        self.hostile.forget(pid);
        self.tls_probes.exited(&mut *self.kernel, pid);
        self.tls.forget_process(pid);
        if let Some(p) = self.procs.exit(pid) {
            if p.watched {
                self.metrics.processes_watched.dec();
            }
            if let Some(mut server) = self.servers.remove(&p.pid) {
                self.metrics.servers_watched.set(self.servers.len() as i64);
                self.release_static_secrets(&server);
                let outputs = server.close(ts_ns);
                self.emit_outputs(&server, outputs);
                let ts = self.events.kernel_time(ts_ns);
                let (lost, discarded) = server.stdio.stream_loss();
                let fields = json!({
                    "server": render::server_json(&server),
                    "session": server.stdio.key().to_string(),
                    "requests": server.request_stats(),
                    "parse_errors": server.parse_errors,
                    "bytes_lost": lost,
                    "bytes_discarded": discarded,
                });
                self.events.emit("server_exited", ts, fields);
                self.forget_unused_policies();
            }
        }
        self.fds.forget_process(pid);
        self.streams.retain(|&(p, _, _), _| p != pid);
    }

    /// Bytes the kernel claimed on a stream of `pid` that never arrived, not even as a
    /// cut marker (the ring was full): all its records are in by its exit, so what the
    /// kernel's count holds beyond the stream's position is lost. Each becomes a cut
    /// marker, counted like any gap, so that the call whose response it held ends
    /// `lost` rather than unanswered.
    fn trailing_gaps(&mut self, pid: u32, ts_ns: u64) {
        let mut ends: Vec<(i32, Direction, u64)> = self
            .streams
            .iter()
            .filter_map(|(&(p, id, dir), &expected)| match id {
                StreamId::Fd(fd) if p == pid => Some((fd, dir, expected)),
                _ => None,
            })
            .collect();
        ends.sort_by_key(|&(fd, dir, _)| (fd, dir));
        for (fd, direction, expected) in ends {
            let end = self.kernel.stream_end(pid, fd, direction == Direction::Write);
            let Some(missing) = end.and_then(|end| end.checked_sub(expected)).filter(|&m| m > 0) else {
                continue;
            };
            log::debug!("pid {pid} fd {fd} {direction:?}: {missing} bytes lost at the end of the stream");
            self.data(Data {
                header: monitor_common::Header {
                    kind: monitor_common::kind::DATA,
                    pid,
                    tid: pid,
                    _pad: 0,
                    ts_ns,
                },
                fd,
                syscall: 0,
                direction,
                truncated: true,
                total: missing,
                chunk_offset: 0,
                stream_offset: expected,
                tls_conn: None,
                file: None,
                bytes: Default::default(),
            });
        }
    }

    fn data(&mut self, d: Data<'_>) {
        if d.tls_conn.is_some() {
            // Plaintext from the OpenSSL uprobes: on its socket once that is known.
            if let Some((d, fd)) = self.tls.plaintext(d) {
                self.bytes(d, fd);
            }
            return;
        }
        let pid = d.header.pid;
        // What the fd was at the syscall, as the kernel read it (else /proc, later).
        self.fds.at_syscall(pid, d.fd, d.file);
        let candidate = candidate(&d);
        if d.is_cut() && !self.procs.get(pid).is_some_and(|p| p.watched) {
            // Bytes missing from a stream nobody follows.
            return;
        }
        if !self.procs.get(pid).is_some_and(|p| p.watched) {
            // A read the kernel found worth a look (or one of a process pending at its
            // exec that is no server): a server from here when it is MCP, else dropped.
            // Without discovery, a read captured while the process was pending at its
            // exec (the kernel waits for the decision) is no reason to watch it.
            match candidate {
                Some(c) if self.discovery && self.discover(&d, c) => {}
                _ => return,
            }
        } else if candidate == Some(Candidate::Stdio) && self.server_root(pid).is_some_and(|root| root != pid)
        {
            // A process started by a server, with a stdin of its own that carries MCP:
            // a server of its own (a gateway's stdio server).
            self.discover_nested(&d);
        }
        let fd = d.fd;
        self.bytes(d, fd);
    }

    /// Bytes a watched process transferred on `fd`: a syscall's, or TLS plaintext that
    /// belongs to that socket. Taken in the order of their stream offsets: a record
    /// ahead of its stream's position waits (a few records, or until the next loss
    /// report) for the ones before it, since threads writing one fd reach the ring in
    /// another order than their offsets.
    fn bytes(&mut self, d: Data<'_>, fd: i32) {
        let key = (d.header.pid, stream_id(&d, fd), d.direction);
        if self
            .streams
            .get(&key)
            .is_some_and(|&expected| d.stream_offset > expected)
        {
            let held = self.held.entry(key).or_default();
            // Kept past the ring entry: its bytes are copied now.
            held.push((d.into_owned(), fd));
            self.held_records += 1;
            if held.len() > MAX_HELD_PER_STREAM || self.held_records > MAX_HELD {
                // No crossing this long: bytes were lost. Taken as they are.
                self.release_held(|k| *k == key);
            }
            return;
        }
        self.bytes_in_order(d, fd);
        self.drain_held(key);
    }

    /// Held records that are next in their stream now.
    fn drain_held(&mut self, key: StreamKey) {
        loop {
            let Some(&expected) = self.streams.get(&key) else {
                return;
            };
            let Some(list) = self.held.get_mut(&key) else {
                return;
            };
            let Some(i) = list.iter().position(|(d, _)| d.stream_offset <= expected) else {
                return;
            };
            let (d, fd) = list.swap_remove(i);
            if list.is_empty() {
                self.held.remove(&key);
            }
            self.held_records -= 1;
            self.bytes_in_order(d, fd);
        }
    }

    /// Stops waiting for the streams `which` selects: their held records are taken in
    /// offset order, the gaps before them counted.
    fn release_held(&mut self, which: impl Fn(&StreamKey) -> bool) {
        let mut keys: Vec<StreamKey> = self.held.keys().filter(|k| which(k)).copied().collect();
        // In a fixed order, so that a replay writes its events in the same order.
        keys.sort_unstable();
        for key in keys {
            let Some(mut list) = self.held.remove(&key) else {
                continue;
            };
            self.held_records -= list.len();
            list.sort_by_key(|(d, _)| d.stream_offset);
            for (d, fd) in list {
                self.bytes_in_order(d, fd);
            }
        }
    }

    fn bytes_in_order(&mut self, mut d: Data<'_>, fd: i32) {
        let dir_label = match d.direction {
            Direction::Read => "read",
            Direction::Write => "write",
        };
        self.metrics
            .captured_bytes
            .with_label_values(&[dir_label])
            .inc_by(d.bytes.len() as u64);
        let gap = self.stream_position(&d, stream_id(&d, fd));
        let kind = self.fds.at_syscall(d.header.pid, fd, d.file).clone();
        // A server's tree writing into its own stdin, and what it reads back of it.
        self.own_stdin(&mut d, &kind);
        let mut ciphertext = false;
        if let Some(stream) = stream_of(&kind) {
            let socket = matches!(stream, Stream::Accepted(_) | Stream::Socket(_));
            if d.tls_conn.is_none() && socket && self.server_root(d.header.pid).is_some() {
                match self.tls.socket_bytes(&d) {
                    Socket::Clear => self.transport_bytes(&d, stream, gap, false),
                    Socket::Ciphertext { first, released } => {
                        ciphertext = true;
                        self.metrics.tls_ciphertext_dropped.inc();
                        if first {
                            self.tls_socket(d.header.pid);
                        }
                        for (plain, fd) in released {
                            self.bytes(plain, fd);
                        }
                    }
                }
            } else {
                self.transport_bytes(&d, stream, gap, d.tls_conn.is_some());
            }
        }
        if !self.debug_captures {
            return;
        }
        let mut fields = json!({
            "pid": d.header.pid,
            "tid": d.header.tid,
            "fd": fd,
            "fd_kind": kind.name(),
            "direction": d.direction,
            "syscall": match d.tls_conn {
                Some(_) => tls_function_name(d.syscall),
                None => syscall_name(d.syscall),
            },
            "offset": d.stream_offset,
            "length": d.bytes.len(),
            "total": d.total,
            "chunk_offset": d.chunk_offset,
            "truncated": d.truncated,
            "data": base64::engine::general_purpose::STANDARD.encode(&d.bytes),
        });
        if let Some(ssl) = d.tls_conn {
            fields["tls"] = json!("plaintext");
            fields["ssl"] = json!(format!("{ssl:#x}"));
        } else if ciphertext {
            fields["tls"] = json!("ciphertext");
        }
        match kind {
            FdKind::Pipe { inode } | FdKind::Socket { inode } => fields["inode"] = json!(inode),
            FdKind::Accepted { conn } => fields["connection"] = json!(conn),
            FdKind::File { path } | FdKind::Tty { path } => fields["path"] = json!(path),
            FdKind::Other { target } => fields["target"] = json!(target),
            FdKind::Unknown => {}
        }
        let ts = self.events.kernel_time(d.header.ts_ns);
        self.events.emit("capture", ts, fields)
    }

    /// Moves the stream's expected offset past `d`; returns what was lost before `d`'s
    /// bytes. A cut marker (a transfer whose copy stopped short) loses the rest of its
    /// transfer; a record behind the expected offset (an LRU-evicted kernel position,
    /// or threads whose records crossed) restarts the stream there, counted.
    fn stream_position(&mut self, d: &Data<'_>, id: StreamId) -> Gap {
        let start = d.stream_offset;
        let cut = if d.is_cut() { d.missing_after() } else { 0 };
        let end = start.saturating_add(d.bytes.len() as u64).saturating_add(cut);
        let mut lost = cut;
        let mut resync = false;
        match self.streams.insert((d.header.pid, id, d.direction), end) {
            Some(expected) if start > expected => lost = lost.saturating_add(start - expected),
            Some(expected) if start < expected => {
                self.loss.stream_overlaps += 1;
                resync = true;
            }
            // A new stream (or one reset by close/dup) starts wherever the kernel is.
            _ => {}
        }
        if lost > 0 {
            self.loss.stream_gaps += 1;
            self.loss.bytes_missing = self.loss.bytes_missing.saturating_add(lost);
        }
        Gap {
            // After an overlap, where the stream stands is unknown: resynchronise.
            bytes: if resync { lost.max(1) } else { lost },
            // The bytes at hand begin a transfer; a cut's loss runs to the next one.
            ends_at_transfer: d.chunk_offset == 0 || cut > 0,
            // The kernel copies at most MAX_CAPTURE_PER_SYSCALL bytes of one transfer.
            transfer_rest: d
                .total
                .min(monitor_common::MAX_CAPTURE_PER_SYSCALL)
                .saturating_sub(d.chunk_offset.saturating_add(d.bytes.len() as u64)),
        }
    }

    /// The first request-like read of a process nobody watches (the kernel made it
    /// pending for this read): MCP makes it a server, anything else releases it.
    fn discover(&mut self, d: &Data<'_>, candidate: Candidate) -> bool {
        let pid = d.header.pid;
        // Nobody told us of its fd changes while it was not watched.
        self.fds.forget_process(pid);
        self.fds.at_syscall(pid, d.fd, d.file);
        let found = match candidate {
            _ if self.never_watch.contains(&pid) => None,
            Candidate::Stdio => self.stdio_request(d).map(|f| (f, "stdio")),
            // A socket; or gone already (a short connection), which a file is not.
            Candidate::Http => match self.fds.classify(pid, d.fd) {
                FdKind::Socket { .. } | FdKind::Unknown => detect::http(&d.bytes).map(|f| (f, "http")),
                _ => None,
            },
        };
        let Some((f, transport)) = found else {
            self.metrics.discovery.with_label_values(&["not_mcp"]).inc();
            self.kernel.unwatch(pid);
            self.not_mcp(pid, d.fd, candidate);
            return false;
        };
        let found = Found::Protocol {
            method: f.method,
            transport,
            fd: d.fd,
        };
        if !self.make_server(pid, found) {
            self.kernel.unwatch(pid);
            return false;
        }
        let result = match candidate {
            Candidate::Stdio => "stdio_server",
            Candidate::Http => {
                self.adopt_connection(pid, d.fd);
                "http_server"
            }
        };
        self.metrics.discovery.with_label_values(&[result]).inc();
        true
    }

    /// The MCP request a read on a pipe or socket opens, if any. `ping` is every
    /// JSON-RPC peer's word: it counts only on fd 0 (a client reads a server's pings
    /// on other fds).
    fn stdio_request(&mut self, d: &Data<'_>) -> Option<detect::Detected> {
        if !matches!(
            self.fds.classify(d.header.pid, d.fd),
            FdKind::Pipe { .. } | FdKind::Socket { .. }
        ) {
            return None;
        }
        detect::stdio(&d.bytes).filter(|f| f.method != "ping" || d.fd == 0)
    }

    /// A candidate read that was not MCP. A file says nothing of the process; JSON on
    /// a pipe or socket that is not MCP says it speaks something else there, and its
    /// other reads are not looked at any more (an HTTP server after a few requests:
    /// the first ones may be for other routes).
    fn not_mcp(&mut self, pid: u32, fd: i32, candidate: Candidate) {
        if !matches!(
            self.fds.cached(pid, fd),
            Some(FdKind::Pipe { .. } | FdKind::Socket { .. })
        ) {
            return;
        }
        let misses = self.http_misses.entry(pid).or_default();
        *misses += 1;
        if candidate == Candidate::Stdio || *misses >= HTTP_MISSES {
            self.http_misses.remove(&pid);
            self.kernel.stop_probing(pid);
        }
    }

    /// A process of a server's tree read MCP on a stdin that is not the server's.
    fn discover_nested(&mut self, d: &Data<'_>) {
        let pid = d.header.pid;
        if self.procs.get(pid).is_some_and(|p| p.server_pattern.is_some()) {
            return;
        }
        // The server's own stdin, read by a child (node under npx): the server's bytes.
        let inode = match self.fds.classify(pid, d.fd) {
            FdKind::Pipe { inode } | FdKind::Socket { inode } => *inode,
            _ => return,
        };
        if let Some(root) = self.server_root(pid)
            && self
                .servers
                .get(&root)
                .is_some_and(|s| s.stdio.direction_of(inode, true).is_some())
        {
            return;
        }
        if let Some(f) = self.stdio_request(d) {
            let found = Found::Protocol {
                method: f.method,
                transport: "stdio",
                fd: d.fd,
            };
            if self.make_server(pid, found) {
                self.metrics.discovery.with_label_values(&["stdio_server"]).inc();
            }
        }
    }

    /// The connection an HTTP server was found on, followed from its first request
    /// as if the kernel had said it was accepted (it was, before anyone watched).
    fn adopt_connection(&mut self, pid: u32, fd: i32) {
        let (peer, addr) = match self.fds.cached(pid, fd) {
            Some(&FdKind::Socket { inode }) => tcp_client(
                &*self.kernel,
                &self.facts,
                &self.procs,
                inode,
                &[pid, self.self_pid],
                None,
            ),
            _ => (None, None),
        };
        if let Some(server) = self.servers.get_mut(&pid)
            && let Some(conn) = server.accepted(peer, addr)
        {
            self.fds.set(pid, fd, FdKind::Accepted { conn });
        }
    }

    /// Bytes on a pipe or socket of a server's tree: MCP messages when they are its
    /// stdio or a connection it accepted that speaks HTTP.
    fn transport_bytes(&mut self, d: &Data<'_>, stream: Stream, gap: Gap, tls: bool) {
        let Some(root) = self.server_root(d.header.pid) else {
            return;
        };
        let Some(server) = self.servers.get_mut(&root) else {
            return;
        };
        let before = server.messages;
        let evicted_before = server.requests_evicted;
        let read = d.direction == Direction::Read;
        let (kernel, facts, procs, self_pid) = (&*self.kernel, &*self.facts, &self.procs, self.self_pid);
        let peer_of = |inode| tcp_client(kernel, facts, procs, inode, &[root, self_pid], None);
        let received = server.receive(stream, read, &d.bytes, d.header.ts_ns, gap, tls, peer_of);
        self.loss.requests_evicted += server.requests_evicted - evicted_before;
        for (i, direction) in metrics::MESSAGE_DIRECTIONS.iter().enumerate() {
            let n = server.messages[i] - before[i];
            if n > 0 {
                self.metrics.messages.with_label_values(&[direction]).inc_by(n);
            }
        }
        let requests = server.take_requests();
        let label = server.label();
        for (from, method) in requests {
            let from = if from == crate::mcp::session::Direction::ClientToServer {
                "client"
            } else {
                "server"
            };
            self.metrics
                .requests
                .with_label_values(&[label, method, from])
                .inc();
        }
        for e in &received.errors {
            self.loss.message_errors += 1;
            self.metrics.parse_errors.with_label_values(&["message"]).inc();
            log::debug!("server {root}: skipping a message: {e}");
        }
        self.count_http(&received);
        let outputs = received.outputs;
        if outputs.is_empty() {
            return;
        }
        // Take the server out while its events are written (they borrow both).
        let Some(server) = self.servers.remove(&root) else {
            return;
        };
        self.emit_outputs(&server, outputs);
        self.servers.insert(root, server);
        // Back in the table first: its own calls in flight may still need old policies.
        self.forget_unused_policies();
    }

    /// What the HTTP framing of a server's connections counted: malformed framing,
    /// bodies it could not read, connections it could not track.
    fn count_http(&mut self, r: &crate::servers::Received) {
        if r.oversized > 0 {
            // Not read, like a line that is not JSON-RPC: the call it held goes unseen.
            self.loss.message_errors += r.oversized;
            self.metrics
                .parse_errors
                .with_label_values(&["message_oversized"])
                .inc_by(r.oversized);
        }
        let counts = [
            ("http", r.http.malformed),
            ("http_encoded_body", r.http.encoded_bodies),
            ("http_oversized", r.http.oversized),
        ];
        for (what, n) in counts {
            if n > 0 {
                self.loss.http_errors += n;
                self.metrics.parse_errors.with_label_values(&[what]).inc_by(n);
            }
        }
        if r.untracked {
            self.loss.http_untracked += 1;
        }
        self.loss.sessions_full += r.sessions_full;
    }

    /// A connection accepted by a process of a server's tree: numbered now, with its
    /// client looked up while the connection still exists, so that bytes read after
    /// it closed are still the server's HTTP.
    fn accept(&mut self, a: crate::kernel::records::Accept) {
        let pid = a.header.pid;
        let Some(root) = self.server_root(pid) else {
            return;
        };
        // The kernel's sockaddr when the caller asked for one (libuv does not).
        let from_kernel = effects::sockaddr(&a.addr);
        let (peer, addr) = match self.fds.classify(pid, a.fd).clone() {
            FdKind::Socket { inode } => tcp_client(
                &*self.kernel,
                &self.facts,
                &self.procs,
                inode,
                &[root, self.self_pid],
                from_kernel.as_deref(),
            ),
            _ => (None, None),
        };
        let Some(server) = self.servers.get_mut(&root) else {
            return;
        };
        match server.accepted(peer, from_kernel.or(addr)) {
            Some(conn) => self.fds.set(pid, a.fd, FdKind::Accepted { conn }),
            None => {
                // Too many accepted and not yet read: this one is looked up in /proc.
                self.fds.changed(pid, a.fd);
            }
        }
    }

    /// A socket of a server's tree was closed: an HTTP response that ran until then
    /// ends, and the connection is forgotten.
    fn socket_closed(&mut self, pid: u32, stream: Stream, ts_ns: u64) {
        let Some(root) = self.server_root(pid) else {
            return;
        };
        let Some(mut server) = self.servers.remove(&root) else {
            return;
        };
        let outputs = server.close_connection(stream, ts_ns);
        self.emit_outputs(&server, outputs);
        server.forget_closed_sessions();
        self.servers.insert(root, server);
    }

    /// An open by a process of a server's tree: runtime noise is counted, failed opens
    /// matter only for secrets, the rest is an effect. The file is judged by the path
    /// the kernel opened, and is a secret if any of its names is one: the path asked
    /// for (a symlink named like a secret) or a secret it is a hard link of.
    fn open(&mut self, o: crate::kernel::records::Open) {
        let Some(root) = self.server_root(o.header.pid) else {
            return;
        };
        let raw = String::from_utf8_lossy(&o.path);
        let (pid, dirfd) = (o.header.pid, o.dirfd);
        let asked = effects::resolve(&raw, || {
            self.facts.look(
                || format!("start_dir/{pid}/{dirfd}"),
                || effects::start_dir(pid, dirfd),
            )
        });
        // Through /proc/*/root: judged as the file it names, not as noise under /proc.
        let asked = effects::through_proc_root(&asked).unwrap_or(asked);
        let (path, mut other) = effects::opened_path(asked, o.opened.as_ref());
        if o.ret >= 0 && self.tls_eager(o.header.pid) {
            // Python imports `ssl` after it starts: its libssl is probed as it loads.
            self.tls_probes
                .opened(&mut *self.kernel, Path::new("/proc"), o.header.pid, &path);
        }
        let policy = self.policy().clone();
        let Some(server) = self.servers.get_mut(&root) else {
            return;
        };
        let index = policy.server_index(server.rule.as_deref());
        let mut secret = policy
            .secret_named(index, other.with(&path), &server.homes)
            .map(|(hit, _)| hit);
        if secret.is_none()
            && let Some(f) = o.opened.as_ref().filter(|f| effects::is_hard_linked(f))
        {
            let globs = policy.secret_globs(&server.homes);
            let (dev, ino) = (f.dev, f.ino);
            let inodes = &mut self.secret_inodes;
            other.hard_link_of = self.facts.look(
                || format!("secret_inode/{dev}/{ino}"),
                || inodes.find(globs, dev, ino),
            );
            secret = other
                .hard_link_of
                .as_deref()
                .and_then(|name| policy.secret(index, name, &server.homes));
        }
        let ok = o.ret >= 0;
        let write = effects::is_write(o.flags);
        if secret.is_none() {
            if !ok {
                return;
            }
            // The runtime loading its own program (by either name), or what the noise
            // list covers (by the path opened only: a symlink in a noise folder, such
            // as a node_modules the server can write, must not hide its target).
            let own = !write
                && std::iter::once(path.as_str())
                    .chain(other.asked.as_deref())
                    .any(|p| server.program_files.iter().any(|f| f == p));
            if own || policy.is_noise(&path, &server.homes) {
                server.attach_noise();
                self.metrics.noise_opens.inc();
                return;
            }
        }
        let effect = Effect::File {
            path,
            write,
            ok,
            other,
        };
        self.effect(root, o.header.ts_ns, effect, secret);
    }

    /// Gives an effect to the server's calls in flight (judged with the call); outside
    /// any call, a secret read (`secret`: what the policy in force says of the file) is
    /// a `secret_access` event and an out-of-scope effect a `violation` event.
    fn effect(&mut self, root: u32, ts_ns: u64, effect: Effect, secret: Option<SecretHit>) {
        let policy = self.policy().clone();
        let Some(server) = self.servers.get_mut(&root) else {
            return;
        };
        if server.attach(&effect) > 0 {
            return;
        }
        let index = policy.server_index(server.rule.as_deref());
        let ts = self.events.kernel_time(ts_ns);
        let server_json = render::server_json(server);
        let starter = server.stdio_session();
        let agent = starter.and_then(|s| s.peer.as_ref()).map(|c| {
            let mut agent = json!({"pid": c.pid, "uid": c.uid, "exe": c.exe});
            if let Some(w) = &c.workload {
                agent["workload"] = json!(w);
            }
            agent
        });
        let starter_client = starter.and_then(|s| s.client.as_deref());
        let (kind, what) = match (&effect, secret) {
            (
                Effect::File {
                    path,
                    write,
                    ok,
                    other,
                },
                Some(hit),
            ) => {
                let mut fields = json!({
                    "server": server_json,
                    "agent": agent,
                    "path": path,
                    "access": if *write { "write" } else { "read" },
                    "ok": ok,
                    "class": hit.class,
                    "rule": hit.rule,
                    "allowed_by": hit.allowed_by,
                });
                other.add_to(&mut fields);
                let agent = agent_label(&self.metrics, server.label(), None, starter_client);
                self.metrics
                    .secret_access
                    .with_label_values(&[server.label(), &agent])
                    .inc();
                self.events.emit("secret_access", ts, fields);
                return;
            }
            (Effect::File { path, .. }, None) => (EffectKind::File, path.as_str()),
            (Effect::Exec { path, .. }, _) => (EffectKind::Exec, path.as_str()),
            (Effect::Connect { address, .. }, _) => (EffectKind::Connect, address.as_str()),
        };
        let Some(v) = policy.check_effect(index, kind, what, &server.homes) else {
            return;
        };
        let label = agent_label(&self.metrics, server.label(), None, starter_client);
        self.metrics
            .violations
            .with_label_values(&[server.label(), &label, v.kind])
            .inc();
        let fields = json!({"server": server_json, "agent": agent, "kind": v.kind, "detail": v.detail, "rule": v.rule, "refs": refs_of(v.kind), "effect": redacted_effect(&effect)});
        self.events.emit("violation", ts, fields);
    }

    fn emit_outputs(&mut self, server: &Server, outputs: Vec<(SessionKey, Output)>) {
        for (key, out) in outputs {
            let mut c = match out {
                Output::Completed(c) => c,
                Output::Operation(c) => {
                    self.operation_telemetry(server, &key, &c);
                    continue;
                }
                Output::Ended {
                    start_ts_ns,
                    end_ts_ns,
                    protocol_version,
                } => {
                    self.session_telemetry(&key, start_ts_ns, end_ts_ns, protocol_version.as_deref());
                    continue;
                }
            };
            let Some(session) = server.sessions.get(&key) else {
                continue;
            };
            // Under the policy in force when the call started, whatever a reload did since.
            let (policy, index) = self.call_policy(server, c.epoch);
            let entry = index.map_or(UNREGISTERED, |i| policy.servers[i].name.as_str());
            let caller = verdict::Caller {
                client: session.client.as_deref(),
                process: session.peer.as_ref(),
            };
            let verdict =
                (c.method == "tools/call").then(|| verdict::judge(&policy, index, &server.homes, caller, &c));
            if let Some(v) = &verdict {
                let client = c.client.as_deref().or(session.client.as_deref());
                count_call(&self.metrics, entry, client, &c, v);
            }
            let arguments = std::mem::take(&mut c.arguments);
            let call_unix_s =
                (self.events.boot_epoch_ns().saturating_add(c.start_ts_ns) / 1_000_000_000) as i64;
            let fields = render::call_fields(
                server,
                (&key, session),
                &c,
                arguments,
                entry,
                self.max_field_bytes,
                verdict.as_ref(),
                &policy,
                call_unix_s,
            );
            self.call_telemetry(server, (&key, session), &c, entry, &fields, verdict.as_ref());
            let ts = self.events.kernel_time(c.start_ts_ns);
            self.events.emit(event_type(&c.method), ts, fields);
        }
    }

    /// Drops the kernel's watched-set entries userspace does not stand by (a lost exec
    /// left a process pending; a lost exit left a dead pid), two checks in a row.
    fn reconcile(&mut self) {
        let entries = self.kernel.watched_set();
        let (procs, facts) = (&self.procs, &self.facts);
        let stands_by = |pid: u32, state: u32| {
            facts.look(
                || format!("alive/{pid}"),
                || Path::new("/proc").join(pid.to_string()).exists(),
            ) && (state == monitor_common::watch_state::PROBED || procs.get(pid).is_some_and(|p| p.watched))
        };
        for pid in self.reconciler.check(&entries, stands_by) {
            warn!("pid {pid}: in the kernel's watched set with no record behind it; dropped");
            self.kernel.unwatch(pid);
            self.loss.reconciled += 1;
            self.metrics.watch_reconciled.inc();
        }
        // Userspace's own watched processes: one that is gone, or whose pid another
        // process holds now (its exit record was lost), is gone here too.
        let watched: Vec<(u32, u32)> = self
            .procs
            .iter()
            .filter(|p| p.watched)
            .map(|p| (p.pid, 0))
            .collect();
        let mut checker = std::mem::take(&mut self.exits_unseen);
        let gone = checker.check(&watched, |pid, _| {
            self.procs.get(pid).is_some_and(|p| self.is_running(p))
        });
        self.exits_unseen = checker;
        for pid in gone {
            warn!("pid {pid}: watched, but gone without its exit record; forgotten");
            self.loss.exits_unseen += 1;
            self.process_gone(pid, self.last_ts_ns);
        }
    }

    /// A `monitor_status` event whenever something was lost since the last one.
    pub fn report_loss(&mut self) {
        self.ticks += 1;
        // A second is far longer than threads' records take to cross: what still waits
        // is after a loss.
        self.release_held(|_| true);
        if self.ticks.is_multiple_of(RECONCILE_EVERY) {
            self.reconcile();
        }
        match self.kernel.stats() {
            Ok(k) => self.loss.kernel = k,
            Err(e) => warn!("reading kernel loss counters: {e:#}"),
        }
        self.count_compat();
        self.report_otlp_drops();
        // Read here: held writes are lost at an exit or exec too, not only as plaintext comes.
        self.loss.tls_unmapped = self.tls.stats.unmapped_records;
        if self.loss == self.reported {
            return;
        }
        let (now, before) = (self.loss, self.reported);
        for ((label, n), (_, b)) in now.counts().into_iter().zip(before.counts()) {
            if n > b {
                self.metrics.events_lost.with_label_values(&[label]).inc_by(n - b);
            }
        }
        let ts = self.events.now();
        self.events.emit(
            "monitor_status",
            ts,
            json!({
                "status": "loss",
                "kernel": now.kernel,
                "tls_unmapped": now.tls_unmapped,
                "requests_evicted": now.requests_evicted,
                "reconciled": now.reconciled,
                "exits_unseen": now.exits_unseen,
                "parse_errors": now.parse_errors,
                "message_errors": now.message_errors,
                "http_errors": now.http_errors,
                "http_untracked": now.http_untracked,
                "sessions_full": now.sessions_full,
                "stream_gaps": now.stream_gaps,
                "stream_overlaps": now.stream_overlaps,
                "bytes_missing": now.bytes_missing,
            }),
        );
        self.reported = now;
    }
}

/// How a server was found.
enum Found {
    /// Its command line matched a policy entry's or a `--watch` glob.
    Pattern { how: DetectedBy, pattern: String },
    /// It read an MCP request (`method`) on fd `fd`: its stdin (or a dup of it), or a
    /// connection it accepted.
    Protocol {
        method: String,
        transport: &'static str,
        fd: i32,
    },
}

impl Found {
    fn how(&self) -> DetectedBy {
        match self {
            Self::Pattern { how, .. } => *how,
            Self::Protocol { .. } => DetectedBy::Protocol,
        }
    }

    /// For logs and the `unregistered_server` detail.
    fn label(&self) -> String {
        match self {
            Self::Pattern { how, pattern } => format!("{} {pattern:?}", how.as_str()),
            Self::Protocol {
                method, transport, ..
            } => format!("it read {method:?} over {transport}"),
        }
    }
}

/// Reads that could open an MCP session, by their first bytes: the kernel makes an
/// unwatched process pending on exactly these (see `probes::discover`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Candidate {
    /// A read that opens a JSON object or array (MCP only on the process's stdin).
    Stdio,
    /// A read of another fd that starts an HTTP POST.
    Http,
}

fn candidate(d: &Data<'_>) -> Option<Candidate> {
    if d.direction != Direction::Read || d.fd == 1 || d.fd == 2 {
        return None;
    }
    let text = d.bytes.trim_ascii_start();
    if text.starts_with(b"{") || text.starts_with(b"[") {
        Some(Candidate::Stdio)
    } else if d.fd > 2 && d.bytes.starts_with(b"POST ") {
        Some(Candidate::Http)
    } else {
        None
    }
}

/// The stream an fd is, for the transports: pipes and sockets.
fn stream_of(kind: &FdKind) -> Option<Stream> {
    match *kind {
        FdKind::Pipe { inode } => Some(Stream::Pipe(inode)),
        FdKind::Socket { inode } => Some(Stream::Socket(inode)),
        FdKind::Accepted { conn } => Some(Stream::Accepted(conn)),
        _ => None,
    }
}

/// The client of a TCP connection server `exclude[0]` accepted: the process holding the
/// other end when it is on this host (not the server, not the daemon), and its address,
/// as the server's network namespace shows them.
fn tcp_client(
    kernel: &dyn Kernel,
    facts: &Facts,
    procs: &ProcessTable,
    inode: u64,
    exclude: &[u32],
    accepted_from: Option<&str>,
) -> (Option<ClientProcess>, Option<String>) {
    let net = Path::new("/proc").join(exclude[0].to_string()).join("net");
    let ends = facts.look(
        || format!("tcp_ends/{}/{inode}", exclude[0]),
        || identity::tcp_ends(&net, inode),
    );
    let address = ends
        .as_ref()
        .map(|e| e.peer.clone())
        .or_else(|| accepted_from.map(str::to_string));
    // The kernel saw the client connect (a connection already closed included); else
    // the process holding the other end now, if it is still open.
    let pid = address
        .as_deref()
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .and_then(|a| connector(kernel, a))
        .filter(|pid| {
            !exclude.contains(pid)
                && facts.look(
                    || format!("same_netns/{pid}/{}", exclude[0]),
                    || identity::same_netns(Path::new("/proc"), *pid, exclude[0]),
                )
        })
        .or_else(|| {
            let peer = ends.as_ref()?.peer_inode?;
            facts.look(
                || format!("socket_holder/{peer}"),
                || identity::socket_holder(Path::new("/proc"), peer, exclude),
            )
        });
    let process = pid.and_then(|pid| procs.get(pid)).map(|p| ClientProcess {
        workload: workload_of(facts, p.pid),
        ..ClientProcess::from_process(p)
    });
    (process, address)
}

/// Where `pid` runs (cgroup, container, pod): its cgroup path from /proc, recorded as
/// a fact and parsed on every run, so a replay parses it the same way.
fn workload_of(facts: &Facts, pid: u32) -> Option<Workload> {
    let path = facts.look(
        || format!("cgroup/{pid}"),
        || workload::cgroup_path(Path::new("/proc"), pid),
    );
    Workload::from_path(&path)
}

/// Who connected from `local`; an IPv4 client of a server on `::` shows as `::ffff:a.b.c.d`.
fn connector(kernel: &dyn Kernel, local: SocketAddr) -> Option<u32> {
    kernel.connector(local).or_else(|| match local {
        SocketAddr::V6(v6) => {
            let v4 = v6.ip().to_ipv4_mapped()?;
            kernel.connector(SocketAddr::new(v4.into(), v6.port()))
        }
        SocketAddr::V4(_) => None,
    })
}

/// An effect as a violation event shows it: an exec's argv redacted like a call's.
fn redacted_effect(effect: &Effect) -> serde_json::Value {
    let mut v = effect.to_json(false);
    let n = v
        .get_mut("argv")
        .and_then(serde_json::Value::as_array_mut)
        .map_or(0, |argv| crate::output::redact::redact_argv(argv));
    if n > 0 {
        v["argv_redacted"] = json!(n);
    }
    v
}

/// Metrics of one judged tool call; names from watched processes are capped.
/// `s` is the server's entry under the call's policy, as its event names it; `client`
/// the caller's clientInfo.
fn count_call(
    m: &Metrics,
    s: &str,
    client: Option<&PeerInfo>,
    c: &crate::mcp::session::Completed,
    v: &verdict::Verdict,
) {
    let agent = agent_label(m, s, v.agent.as_deref(), client);
    let tool = m.bounded(s, "tool", c.target.as_deref().unwrap_or(""));
    m.tool_calls
        .with_label_values(&[s, &agent, &tool, v.decision()])
        .inc();
    let seconds = c.end_ts_ns.saturating_sub(c.start_ts_ns) as f64 / 1e9;
    m.call_duration.with_label_values(&[s, &tool]).observe(seconds);
    for violation in &v.violations {
        m.violations.with_label_values(&[s, &agent, violation.kind]).inc();
    }
    let secrets = v.effects.secrets.len();
    if secrets > 0 {
        m.secret_access
            .with_label_values(&[s, &agent])
            .inc_by(secrets as u64);
    }
}

/// The agent label: the policy's agent entry, else the client's name (capped), else
/// `unknown`.
fn agent_label<'a>(
    m: &Metrics,
    s: &str,
    entry: Option<&'a str>,
    client: Option<&'a PeerInfo>,
) -> Cow<'a, str> {
    match (entry, client) {
        (Some(a), _) => Cow::Borrowed(a),
        (None, Some(c)) => m.bounded(s, "agent", &c.name),
        (None, None) => Cow::Borrowed("unknown"),
    }
}

fn syscall_name(nr: u32) -> &'static str {
    match nr {
        0 => "read",
        1 => "write",
        17 => "pread64",
        18 => "pwrite64",
        19 => "readv",
        20 => "writev",
        44 => "sendto",
        45 => "recvfrom",
        46 => "sendmsg",
        47 => "recvmsg",
        295 => "preadv",
        296 => "pwritev",
        327 => "preadv2",
        328 => "pwritev2",
        40 => "sendfile",
        275 => "splice",
        276 => "tee",
        278 => "vmsplice",
        299 => "recvmmsg",
        307 => "sendmmsg",
        326 => "copy_file_range",
        _ => "other",
    }
}

/// The OpenSSL function TLS plaintext came through, from its record's `syscall`.
fn tls_function_name(nr: u32) -> &'static str {
    let cookie = u64::from(nr.wrapping_sub(monitor_common::TLS_SYSCALL_BASE));
    crate::host::tls::SSL_FUNCTIONS
        .iter()
        .find(|&&(_, c)| c == cookie)
        .map_or("other", |&(name, _)| name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_exec_in_a_violation_event_has_its_argv_redacted() {
        let effect = crate::host::effects::Effect::Exec {
            path: "/usr/bin/curl".into(),
            argv: vec![
                "curl".into(),
                "--password".into(),
                "hunter2".into(),
                "ghp_0123456789abcdefghijABCDEFGHIJ012345".into(),
            ],
        };
        let v = super::redacted_effect(&effect);
        let text = v.to_string();
        assert!(!text.contains("hunter2") && !text.contains("ghp_0123"), "{text}");
        assert_eq!(v["argv"][0], "curl");
        assert_eq!(v["argv_redacted"], 2, "{v:#}");
    }

    /// A kernel that only remembers which pids it was told to release.
    struct Releases(std::rc::Rc<std::cell::RefCell<Vec<u32>>>);

    impl crate::kernel::Kernel for Releases {
        fn watch(&mut self, _pid: u32) -> anyhow::Result<()> {
            Ok(())
        }
        fn unwatch(&mut self, pid: u32) {
            self.0.borrow_mut().push(pid);
        }
        fn stop_probing(&mut self, _pid: u32) {}
        fn probe(&mut self, _pid: u32, _fds: u64) {}
        fn stats(&self) -> anyhow::Result<crate::kernel::KernelStats> {
            Ok(crate::kernel::KernelStats::default())
        }
        fn attached(&self) -> &[(String, u32)] {
            &[]
        }
        fn attach_tls(&mut self, _pid: u32, _path: &std::path::Path, _functions: &[(u64, u64)]) {}
        fn detach_tls(&mut self, _pid: u32) {}
        fn tls_attached(&mut self) -> Vec<crate::kernel::TlsAttached> {
            Vec::new()
        }
        fn connector(&self, _local: std::net::SocketAddr) -> Option<u32> {
            None
        }
        fn watched_set(&self) -> Vec<(u32, u32)> {
            Vec::new()
        }
        fn stream_end(&self, _pid: u32, _fd: i32, _write: bool) -> Option<u64> {
            None
        }
    }

    #[test]
    fn pending_execs_are_released_after_the_batch_unless_they_exited_or_are_servers() {
        use crate::kernel::encode;
        let released = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let settings = super::Settings {
            watch: vec!["*the-server-marker*".into()],
            discovery: false,
            tls: false,
            debug_captures: false,
            max_message_bytes: 1 << 20,
            max_field_bytes: 1024,
            policy: crate::policy::Policy::builtin(),
            policy_path: None,
        };
        let mut p = super::Pipeline::new(
            settings,
            Box::new(Releases(released.clone())),
            crate::record::facts::Facts::live(),
            crate::host::procs::ProcessTable::default(),
            crate::output::events::EventWriter::from_writer(Box::new(std::io::sink())),
            crate::output::metrics::Metrics::new(100).unwrap(),
        )
        .unwrap();
        // The server must be running (a server found gone is released at once); the
        // others are pids no process has (pid_max is at most 2^22).
        let mut child = std::process::Command::new("sleep").arg("10").spawn().unwrap();
        let server = child.id();
        let started = crate::host::procs::read_start_ns(std::path::Path::new("/proc"), server).unwrap();
        let (short, long) = (4_200_001, 4_200_002);
        let exec = |pid: u32, argv: &[&str]| {
            let meta = monitor_common::ExecMeta {
                header: encode::header(pid, pid, started),
                old_tid: pid,
                ..Default::default()
            };
            encode::exec(meta, argv[0], argv)
        };
        p.handle(&exec(short, &["/bin/true"]));
        p.handle(&exec(long, &["/bin/sleep", "10"]));
        p.handle(&exec(server, &["/usr/bin/node", "the-server-marker.js"]));
        p.handle(&encode::exit(monitor_common::ExitRecord {
            header: encode::header(short, short, started + 1_000),
        }));
        assert!(
            released.borrow().is_empty(),
            "released before the batch ended: {:?}",
            released.borrow()
        );
        p.release_pending();
        // `short` exited (the kernel dropped it then) and `server` is watched.
        assert_eq!(*released.borrow(), vec![long]);
        p.release_pending();
        assert_eq!(*released.borrow(), vec![long], "released twice");
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn every_loss_count_is_exported_under_a_label_created_at_zero() {
        let labels: Vec<&str> = super::Loss::default().counts().iter().map(|(l, _)| *l).collect();
        assert_eq!(labels, crate::output::metrics::LOSS_WHERE);
    }
}
