//! The deployment files (deploy/systemd, deploy/kubernetes, deploy/container), checked
//! the way they are used, as root with the real daemon:
//!
//! - the systemd unit passes `systemd-analyze verify` and keeps its `security`
//!   exposure; started by systemd when systemd is PID 1, otherwise run with exactly its
//!   ExecStart arguments, capability bounding set and NoNewPrivileges, in a mount
//!   namespace as read-only as ProtectSystem=strict and ProtectHome=read-only make it
//!   (but /var/log/mcp-monitor), under strace reporting every system call and socket
//!   family its SystemCallFilter and RestrictAddressFamilies would refuse; there a
//!   server of another user, reached through a Unix socketpair, with its OpenSSL in a
//!   0700 folder, must be found with its client and get its TLS uprobes, which takes
//!   each of the three capabilities (each one's absence is shown to break it);
//! - the DaemonSet's container runs the same way with its own arguments, capabilities,
//!   no_new_privs and read-only root, its policy laid out as the kubelet lays out a
//!   ConfigMap volume;
//! - every Kubernetes manifest passes kubernetes-validate (PyPI, strict, Kubernetes 1.30
//!   and 1.37), or, for the Prometheus Operator's kinds, which it has no schema for,
//!   the CRD models of PyPI cloudcoil-models-prometheus-operator with unknown fields
//!   refused; the PrometheusRule's groups pass `promtool check rules`; the objects
//!   refer to each other consistently;
//! - the PrometheusRule and the policy ConfigMap are generated from
//!   deploy/prometheus/alerts.yml and the built-in policy, and up to date;
//! - the Containerfile copies enough of the workspace for cargo to load it.
mod common;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fs,
    io::{BufRead as _, BufReader, Write as _},
    os::unix::{fs::PermissionsExt as _, net::UnixStream},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::OnceLock,
    thread,
    time::{Duration, Instant},
};

use common::{TempDir, http_get};
use integration_tests::{daemon_binary, read_events, require_root, unique_tag};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// The command that rewrites the generated manifests from their sources.
const REGENERATE: &str =
    "MCP_MONITOR_REGENERATE=1 cargo test --release -p integration-tests --test deploy generated";

/// Packages of the validation venv (~/.cache/mcp-monitor/deploy-venv). cloudcoil's
/// prometheus-operator models: 0.80.1.0 is the last release for Python < 3.14.
const VENV_PACKAGES: &[&str] = &[
    "kubernetes-validate==1.37.0",
    "cloudcoil-models-prometheus-operator==0.80.1.0",
];

/// Kubernetes versions the core manifests are validated against: the oldest with the
/// container securityContext's `appArmorProfile`, and the newest kubernetes-validate knows.
const KUBERNETES_VERSIONS: &str = "1.30.0,1.37.0";

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn read(rel: &str) -> String {
    fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// Runs a command to its end; panics with its output unless it succeeded.
fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed ({}):\n{text}", out.status);
    text
}

/// The built daemon, by an absolute path.
fn binary() -> PathBuf {
    let bin = daemon_binary();
    fs::canonicalize(&bin)
        .unwrap_or_else(|e| panic!("{}: {e} (build it with `cargo xtask build`)", bin.display()))
}

// ---------------------------------------------------------------------------------
// Generated manifests

/// `text` as the body of a YAML literal block scalar indented by `by`: it must end with
/// exactly one newline (what `|` keeps) and not start with spaces (which would be
/// taken for the block's indentation).
fn literal_block(text: &str, by: usize) -> String {
    assert!(
        text.ends_with('\n') && !text.ends_with("\n\n"),
        "a literal block keeps exactly one final newline"
    );
    assert!(!text.starts_with([' ', '\t']) && !text.contains('\r'));
    indent(text, by)
}

fn indent(text: &str, by: usize) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_string()
            } else {
                format!("{:by$}{l}\n", "")
            }
        })
        .collect()
}

/// deploy/kubernetes/50-prometheusrule.yaml: the `groups` of deploy/prometheus/alerts.yml
/// as the spec of a PrometheusRule, moved two columns right and otherwise as written.
fn prometheus_rule(alerts: &str) -> String {
    let start = if alerts.starts_with("groups:\n") {
        0
    } else {
        alerts
            .find("\ngroups:\n")
            .expect("alerts.yml has a top-level `groups:`")
            + 1
    };
    format!(
        "# Generated from deploy/prometheus/alerts.yml (its `groups`) by tests/tests/deploy.rs:\n\
         # change that file, then regenerate this one with\n\
         #   {REGENERATE}\n\
         # The Prometheus Operator gives it to the Prometheus whose ruleSelector matches\n\
         # its labels (kube-prometheus-stack: add `release: <its release name>`).\n\
         apiVersion: monitoring.coreos.com/v1\n\
         kind: PrometheusRule\n\
         metadata:\n  name: mcp-monitor\n  namespace: mcp-monitor\n  labels:\n    \
         app.kubernetes.io/name: mcp-monitor\n\
         spec:\n{}",
        indent(&alerts[start..], 2)
    )
}

/// deploy/kubernetes/10-policy.yaml: the built-in policy in the ConfigMap the DaemonSet
/// mounts.
fn policy_configmap(policy: &str) -> String {
    format!(
        "# The policy the DaemonSet's daemons read (/etc/mcp-monitor/policy.yaml): the\n\
         # built-in one (`mcp-monitor default-policy`), generated from\n\
         # monitor/src/policy/default-policy.yaml by tests/tests/deploy.rs; regenerate with\n\
         #   {REGENERATE}\n\
         # On a cluster: check a new version with `mcp-monitor check-policy FILE`, then\n\
         # apply it: once the kubelet updates the mounted file (up to a minute or so), each\n\
         # daemon reloads it by itself (a `policy_loaded` event), or refuses an invalid one\n\
         # (a `policy_rejected` event) and keeps the policy in force. No restart needed.\n\
         apiVersion: v1\n\
         kind: ConfigMap\n\
         metadata:\n  name: mcp-monitor-policy\n  namespace: mcp-monitor\n  labels:\n    \
         app.kubernetes.io/name: mcp-monitor\n\
         data:\n  policy.yaml: |\n{}",
        literal_block(policy, 4)
    )
}

#[test]
fn generated_manifests_are_up_to_date() {
    let outputs = [
        (
            "deploy/kubernetes/50-prometheusrule.yaml",
            prometheus_rule(&read("deploy/prometheus/alerts.yml")),
        ),
        (
            "deploy/kubernetes/10-policy.yaml",
            policy_configmap(&read("monitor/src/policy/default-policy.yaml")),
        ),
    ];
    let regenerate = std::env::var_os("MCP_MONITOR_REGENERATE").is_some_and(|v| v == "1");
    for (path, want) in outputs {
        if regenerate {
            fs::write(repo(path), &want).unwrap();
            continue;
        }
        let have = fs::read_to_string(repo(path)).unwrap_or_default();
        let first_difference = have
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(have.lines().count().min(want.lines().count()))
            + 1;
        assert!(
            have == want,
            "{path} is not what its source generates (first difference at line \
             {first_difference}); regenerate it with\n  {REGENERATE}"
        );
    }
}

// ---------------------------------------------------------------------------------
// The systemd unit

const UNIT: &str = "deploy/systemd/mcp-monitor.service";
/// Where the unit and the Containerfile install the daemon.
const INSTALLED_BINARY: &str = "/usr/bin/mcp-monitor";

/// The `[Service]` settings of the unit, in order (comments and blank lines left out).
fn unit_service() -> Vec<(String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in read(UNIT).lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            section = line.to_string();
            continue;
        }
        if section == "[Service]" {
            let (k, v) = line.split_once('=').expect("Key=Value");
            out.push((k.to_string(), v.to_string()));
        }
    }
    out
}

fn unit_value(key: &str) -> String {
    let values: Vec<String> = unit_service()
        .into_iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values.len(), 1, "{UNIT} sets {key} once");
    values[0].clone()
}

/// ExecStart's arguments after the program (the unit quotes nothing).
fn unit_args() -> Vec<String> {
    let exec = unit_value("ExecStart");
    assert!(!exec.contains(['"', '\'', '\\', '$', '%']), "{exec}");
    let mut words = exec.split_whitespace().map(str::to_string);
    assert_eq!(words.next().as_deref(), Some(INSTALLED_BINARY));
    words.collect()
}

/// The unit's capability bounding set, as setpriv names them (`sys_admin`).
fn unit_caps() -> BTreeSet<String> {
    unit_value("CapabilityBoundingSet")
        .split_whitespace()
        .map(|c| {
            c.strip_prefix("CAP_")
                .expect("capabilities are spelled CAP_...")
                .to_lowercase()
        })
        .collect()
}

/// Capability numbers (linux/capability.h) of the names this file meets.
fn cap_number(name: &str) -> u32 {
    match name {
        "dac_override" => 1,
        "dac_read_search" => 2,
        "setpcap" => 8,
        "net_admin" => 12,
        "sys_module" => 16,
        "sys_ptrace" => 19,
        "sys_admin" => 21,
        "sys_resource" => 24,
        "perfmon" => 38,
        "bpf" => 39,
        other => panic!("capability {other}: add its number to cap_number"),
    }
}

fn cap_mask(caps: &BTreeSet<String>) -> u64 {
    caps.iter().map(|c| 1u64 << cap_number(c)).sum()
}

#[test]
fn systemd_unit_passes_systemd_analyze() {
    let dir = TempDir::new(&unique_tag("unitverify"));
    // `verify` wants ExecStart's program to exist: the built one, in a copy of the unit.
    let unit = dir.path().join("mcp-monitor.service");
    let text = read(UNIT).replace(INSTALLED_BINARY, binary().to_str().unwrap());
    fs::write(&unit, text).unwrap();
    let out = run_ok(Command::new("systemd-analyze").arg("verify").arg(&unit));
    // Unknown keys and bad values are only warned about: none is accepted.
    assert!(out.trim().is_empty(), "systemd-analyze verify {UNIT}:\n{out}");
    // Its exposure (0-100, shown /10): what the hardening options achieve, kept.
    let out = run_ok(
        Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=32"])
            .arg(&unit),
    );
    assert!(out.contains("Overall exposure level"), "{out}");

    // The documented command line, with flags the daemon has.
    let args = unit_args();
    assert_eq!(
        args,
        [
            "run",
            "--policy",
            "/etc/mcp-monitor/policy.yaml",
            "--events",
            "/var/log/mcp-monitor/events.jsonl"
        ]
    );
    let help = run_ok(Command::new(binary()).args(["run", "--help"]));
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        assert!(help.contains(&format!("{flag} ")), "`run` has no {flag}:\n{help}");
    }
    assert_eq!(unit_value("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(unit_value("LogsDirectory"), "mcp-monitor");
    assert_eq!(unit_value("Restart"), "on-failure");
    assert_eq!(unit_value("NoNewPrivileges"), "yes");
    assert_eq!(
        unit_caps(),
        BTreeSet::from(["sys_admin", "sys_ptrace", "dac_read_search"].map(String::from))
    );
}

// ---------------------------------------------------------------------------------
// Running the daemon as deployed

/// The mount namespace of a hardened unit (ProtectSystem=strict, ProtectHome=read-only,
/// ProtectKernelTunables, ProtectControlGroups) or of a container with a read-only
/// root: every mount read-only but /proc and /dev, and the logs folder, if any,
/// writable. /etc and /var/log are overlays whose upper folders (given) hold what
/// systemd or the kubelet would put there (the policy, the logs folder). Arguments:
/// ETC_UPPER ETC_WORK LOG_UPPER|- LOG_WORK|- COMMAND...
const SANDBOX: &str = r#"set -eu
eu=$1 ew=$2 lu=$3 lw=$4
shift 4
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$eu,workdir=$ew" /etc
if [ "$lu" != - ]; then
  mount -t overlay overlay -o "lowerdir=/var/log,upperdir=$lu,workdir=$lw" /var/log
  mount --bind /var/log/mcp-monitor /var/log/mcp-monitor
fi
findmnt -rn -o TARGET,OPTIONS | while read -r target opts; do
  case "$target" in /proc|/proc/*|/dev|/dev/*) continue ;; esac
  case ",$opts," in *,ro,*) continue ;; esac
  mount -o remount,bind,ro "$target"
done
if [ "$lu" != - ]; then mount -o remount,bind,rw /var/log/mcp-monitor; fi
exec "$@"
"#;

struct Overlay {
    upper: PathBuf,
    work: PathBuf,
}

impl Overlay {
    fn new(dir: &Path, name: &str) -> Self {
        let o = Self {
            upper: dir.join(format!("{name}-upper")),
            work: dir.join(format!("{name}-work")),
        };
        fs::create_dir_all(&o.upper).unwrap();
        fs::create_dir_all(&o.work).unwrap();
        fs::set_permissions(&o.upper, fs::Permissions::from_mode(0o755)).unwrap();
        o
    }
}

/// `unshare` into a private mount namespace laid out by [`SANDBOX`], running `command`.
fn sandboxed(etc: &Overlay, logs: Option<&Overlay>, command: &[String]) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        SANDBOX,
        "sh",
    ])
    .arg(&etc.upper)
    .arg(&etc.work);
    match logs {
        Some(l) => cmd.arg(&l.upper).arg(&l.work),
        None => cmd.args(["-", "-"]),
    };
    cmd.args(command);
    cmd
}

/// `setpriv` giving the rest of `command` only `caps` (root: its bounding set is all it
/// can hold), and no_new_privs when `nnp`.
fn with_caps(caps: &BTreeSet<String>, nnp: bool) -> Vec<String> {
    let set: String = caps.iter().map(|c| format!(",+{c}")).collect();
    let mut v = vec!["setpriv".to_string()];
    if nnp {
        v.push("--no-new-privs".into());
    }
    v.extend([
        "--inh-caps=-all".to_string(),
        "--ambient-caps=-all".to_string(),
        format!("--bounding-set=-all{set}"),
        "--".to_string(),
    ]);
    v
}

/// How a daemon under test was started, and so how it is reloaded and stopped.
enum Started {
    /// A process chain (unshare, setpriv, strace...) ending in the daemon, in a process
    /// group of its own (see [`spawn_group`]).
    Chain(Child),
    /// A unit systemd runs.
    Unit(String),
}

/// A running daemon whose events go to a file this test reads.
struct Deployed {
    started: Option<Started>,
    events: PathBuf,
    stderr: PathBuf,
    ready: Value,
}

impl Deployed {
    /// Waits for the `ready` event in `events`.
    fn new(started: Started, events: PathBuf, stderr: PathBuf) -> Self {
        Self::start(started, events, stderr).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits for the `ready` event in `events`; the daemon's log if it ended first.
    fn start(mut started: Started, events: PathBuf, stderr: PathBuf) -> Result<Self, String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = read_events(&events).ok().and_then(|evs| {
                evs.into_iter()
                    .find(|e| e["type"] == "monitor_status" && e["status"] == "ready")
            });
            if let Some(ready) = ready {
                return Ok(Self {
                    started: Some(started),
                    events,
                    stderr,
                    ready,
                });
            }
            let exited = match &mut started {
                Started::Chain(child) => child.try_wait().unwrap().map(|s| s.to_string()),
                Started::Unit(name) => {
                    let state = unit_property(name, "ActiveState");
                    (state == "failed" || state == "inactive").then_some(state)
                }
            };
            let log = || match &started {
                Started::Unit(name) => Command::new("journalctl")
                    .args(["-u", name, "-o", "cat", "--no-pager"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default(),
                Started::Chain(_) => fs::read_to_string(&stderr).unwrap_or_default(),
            };
            let failed = match exited {
                Some(how) => format!("the daemon ended ({how}) before `ready`:\n{}", log()),
                None if Instant::now() > deadline => format!("no `ready` within 60 s:\n{}", log()),
                None => {
                    thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            end(started);
            return Err(failed);
        }
    }

    fn pid(&self) -> u32 {
        self.ready["pid"].as_u64().unwrap() as u32
    }

    fn addr(&self) -> String {
        self.ready["metrics_addr"].as_str().unwrap().to_string()
    }

    /// The daemon's log: its stderr, or the unit's journal.
    fn log(&self) -> String {
        match &self.started {
            Some(Started::Unit(name)) => Command::new("journalctl")
                .args(["-u", name, "-o", "cat", "--no-pager"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default(),
            _ => fs::read_to_string(&self.stderr).unwrap_or_default(),
        }
    }

    fn events(&self) -> Vec<Value> {
        read_events(&self.events).unwrap_or_default()
    }

    /// The first event matching `pred` within `timeout`.
    fn wait_for(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.events().into_iter().find(|e| pred(e)) {
                return Some(e);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: i32) {
        // Safety: signalling the daemon this test started.
        assert_eq!(unsafe { libc::kill(self.pid() as i32, sig) }, 0);
    }

    /// Reloads it as its deployment does (ExecReload: SIGHUP).
    fn reload(&self) {
        match self.started.as_ref().unwrap() {
            Started::Chain(_) => self.signal(libc::SIGHUP),
            Started::Unit(name) => {
                run_ok(Command::new("systemctl").args(["reload", name]));
            }
        }
    }

    /// Stops it (SIGTERM, or `systemctl stop`); whether it exited 0.
    fn stop(mut self) -> bool {
        match self.started.take().unwrap() {
            Started::Chain(mut child) => {
                self.signal(libc::SIGTERM);
                let status = wait_child(&mut child, WAIT);
                if status.is_none() {
                    end(Started::Chain(child));
                }
                status.is_some_and(|s| s.success())
            }
            Started::Unit(name) => {
                run_ok(Command::new("systemctl").args(["stop", &name]));
                let ok = unit_property(&name, "ExecMainStatus") == "0"
                    && unit_property(&name, "Result") == "success";
                remove_unit(&name);
                ok
            }
        }
    }
}

impl Drop for Deployed {
    fn drop(&mut self) {
        if let Some(started) = self.started.take() {
            end(started);
        }
    }
}

/// Ends what a failed test left running: the chain's whole process group (a killed
/// strace would leave the daemon it traced running), or the unit.
fn end(started: Started) {
    match started {
        Started::Chain(mut child) => {
            // Safety: the process group this test made for the chain it started.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
        }
        Started::Unit(name) => {
            let _ = Command::new("systemctl").args(["stop", &name]).status();
            remove_unit(&name);
        }
    }
}

/// Spawns `cmd` as the leader of a new process group, so that everything it starts
/// can be ended together.
fn spawn_group(cmd: &mut Command) -> Child {
    use std::os::unix::process::CommandExt as _;
    cmd.process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"))
}

fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A process's capability sets and no_new_privs, from /proc.
fn proc_status(pid: u32) -> HashMap<String, String> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn hex(status: &HashMap<String, String>, key: &str) -> u64 {
    u64::from_str_radix(&status[key], 16).unwrap()
}

/// The daemon holds nothing outside `caps`, and no_new_privs as asked.
fn assert_confined(d: &Deployed, caps: &BTreeSet<String>, nnp: bool) {
    let s = proc_status(d.pid());
    let allowed = cap_mask(caps);
    for set in ["CapBnd", "CapPrm", "CapEff"] {
        assert_eq!(hex(&s, set) & !allowed, 0, "{set} {} beyond {caps:?}", s[set]);
    }
    assert_eq!(hex(&s, "CapAmb"), 0);
    assert_eq!(s["NoNewPrivs"], if nnp { "1" } else { "0" });
}

/// A server the daemon can only fully handle with all three capabilities: run by
/// `nobody` (reading its /proc/PID/fd, 0500 nobody's, takes CAP_DAC_READ_SEARCH, and
/// following the links in it CAP_SYS_PTRACE), with the libssl.so.3 it loads in a 0700
/// folder of nobody's (CAP_DAC_READ_SEARCH again), probed with perf_event_open() of the
/// uprobe PMU (CAP_SYS_ADMIN). Its command line names it like the built-in policy's
/// `modelcontextprotocol` entry, so that it is watched from its exec and probed at
/// once. Its stdin and stdout are a Unix socketpair whose other end this test holds,
/// and it is not this test's child: its client is only found through sock_diag
/// (AF_NETLINK).
struct ProofServer {
    pid: u32,
    ssl_dir: TempDir,
    _socket: UnixStream,
}

const PROOF_SERVER: &str = r#"
import json, os, ssl, sys, time
sys.stdin.readline()
print(json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"pid": os.getpid()}}), flush=True)
time.sleep(120)
"#;

fn libssl() -> PathBuf {
    let found = [
        "/usr/lib/x86_64-linux-gnu/libssl.so.3",
        "/lib/x86_64-linux-gnu/libssl.so.3",
        "/usr/lib/aarch64-linux-gnu/libssl.so.3",
        "/usr/lib64/libssl.so.3",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists());
    found.expect("libssl.so.3 (Debian: libssl3), which /usr/bin/python3's ssl module loads")
}

impl ProofServer {
    fn start(tag: &str) -> Self {
        let ssl_dir = TempDir::new(&format!("{tag}-ssl"));
        fs::copy(libssl(), ssl_dir.path().join("libssl.so.3")).unwrap();
        run_ok(
            Command::new("chown")
                .args(["-R", "65534:65534"])
                .arg(ssl_dir.path()),
        );
        fs::set_permissions(ssl_dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let (mine, theirs) = UnixStream::pair().unwrap();
        // setsid --fork: the server's parent is gone at once (it is not this test's
        // child). The name the policy matches is only on python's command line, passed
        // through the environment: setsid, setpriv and sh are not servers.
        let status = Command::new("setsid")
            .args([
                "--fork",
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
            ])
            .args([
                "/bin/sh",
                "-c",
                r#"exec /usr/bin/python3 -c "$0" "$MARKER""#,
                PROOF_SERVER,
            ])
            .env(
                "MARKER",
                format!("/srv/node_modules/@modelcontextprotocol/deploy-{tag}"),
            )
            .env("LD_LIBRARY_PATH", ssl_dir.path())
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(
                theirs.try_clone().unwrap(),
            )))
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .status()
            .unwrap();
        assert!(status.success());
        let request = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "deploy-test", "version": "1"}}});
        (&mine).write_all(format!("{request}\n").as_bytes()).unwrap();
        mine.set_read_timeout(Some(WAIT)).unwrap();
        let mut line = String::new();
        BufReader::new(&mine).read_line(&mut line).unwrap();
        let answer: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let pid = answer["result"]["pid"].as_u64().unwrap() as u32;
        Self {
            pid,
            ssl_dir,
            _socket: mine,
        }
    }

    /// Whether the daemon found this server and its client (through sock_diag, read
    /// through /proc) and attached its uprobes to the OpenSSL in the 0700 folder.
    /// `patience`: how long to wait for the uprobes once the server is found.
    fn handled_by(&self, d: &Deployed, patience: Duration) -> Result<(), String> {
        let started = d
            .wait_for(WAIT, |e| {
                e["type"] == "server_started" && e["server"]["pid"] == self.pid
            })
            .ok_or_else(|| format!("no server_started for {}", self.pid))?;
        let client = &started["client"];
        if client["pid"] != std::process::id() || client["exe"].as_str().is_none_or(str::is_empty) {
            return Err(format!("client not found (this test's process): {started}"));
        }
        let probed = d
            .wait_for(patience, |e| e["status"] == "tls_probed" && e["pid"] == self.pid)
            .ok_or_else(|| format!("no tls_probed for {}", self.pid))?;
        let library = probed["library"].as_str().unwrap_or_default();
        if !library.starts_with(self.ssl_dir.path().to_str().unwrap()) {
            return Err(format!("probed another OpenSSL: {probed}"));
        }
        Ok(())
    }
}

impl Drop for ProofServer {
    fn drop(&mut self) {
        // Safety: the server this test started (it runs as nobody, not as our child).
        unsafe { libc::kill(self.pid as i32, libc::SIGKILL) };
    }
}

/// Every system call the unit's SystemCallFilter lets through (its groups expanded by
/// systemd-analyze), but socket() and socketpair(), which strace is to show for their
/// address family.
fn unit_syscalls() -> BTreeSet<String> {
    fn expand(item: &str, out: &mut BTreeSet<String>, seen: &mut BTreeSet<String>) {
        if !item.starts_with('@') {
            out.insert(item.to_string());
            return;
        }
        if !seen.insert(item.to_string()) {
            return;
        }
        let listing = run_ok(Command::new("systemd-analyze").args(["syscall-filter", item]));
        let mut lines = listing.lines();
        assert_eq!(lines.next().map(str::trim), Some(item), "{listing}");
        for l in lines.map(str::trim) {
            if !l.is_empty() && !l.starts_with('#') {
                expand(l, out, seen);
            }
        }
    }
    let mut out = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for item in unit_value("SystemCallFilter").split_whitespace() {
        assert!(!item.starts_with('~'), "an allow-list");
        expand(item, &mut out, &mut seen);
    }
    assert!(out.contains("read") && out.contains("bpf"), "{out:?}");
    out.remove("socket");
    out.remove("socketpair");
    out
}

/// What strace (tracing only calls outside the unit's filter, and socket families)
/// saw that the unit would refuse: each call (or socket family) once, with a line of it.
fn refused_by_unit(strace: &str) -> BTreeMap<String, String> {
    let families = unit_value("RestrictAddressFamilies");
    let families: BTreeSet<&str> = families.split_whitespace().collect();
    let mut refused = BTreeMap::new();
    for line in strace.lines() {
        let call = line.split_once(' ').map_or(line, |(_, rest)| rest).trim_start();
        if call.starts_with("---") || call.starts_with("+++") || call.starts_with("<...") {
            continue;
        }
        let Some((name, args)) = call.split_once('(') else {
            continue;
        };
        let mut what = name.to_string();
        if name == "socket" || name == "socketpair" {
            let family = args.split([',', ')']).next().unwrap_or_default();
            if families.contains(family) {
                continue;
            }
            what = format!("{name}({family})");
        }
        refused.entry(what).or_insert_with(|| line.to_string());
    }
    refused
}

#[test]
fn systemd_unit_runs_as_documented() {
    require_root();
    let tag = unique_tag("unitrun");
    let dir = TempDir::new(&tag);
    let policy = read("monitor/src/policy/default-policy.yaml");
    let caps = unit_caps();
    let d = if Path::new("/run/systemd/system").is_dir() {
        start_with_systemd(&tag, dir.path(), &policy)
    } else {
        // Not booted with systemd (a Firecracker VM's init): its settings, by hand.
        start_like_systemd(dir.path(), &policy, &caps)
    };
    let (status, body) = http_get(&d.addr(), "/healthz").unwrap();
    assert_eq!(status, 200, "{body}");
    assert_confined(&d, &caps, true);

    let server = ProofServer::start(&tag);
    server
        .handled_by(&d, WAIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", d.log()));

    // ExecReload: the policy read again, a moved event file replaced (logrotate) in the
    // logs folder, which is writable.
    let logs = d.events.parent().unwrap().to_path_buf();
    let rotated = match d.started.as_ref().unwrap() {
        Started::Chain(_) => {
            let inside = PathBuf::from(format!("/proc/{}/root/var/log/mcp-monitor", d.pid()));
            fs::rename(inside.join("events.jsonl"), inside.join("events.jsonl.1")).unwrap();
            logs.join("events.jsonl.1")
        }
        Started::Unit(_) => {
            fs::rename(&d.events, logs.join("events.jsonl.1")).unwrap();
            logs.join("events.jsonl.1")
        }
    };
    d.reload();
    let loaded = d.wait_for(WAIT, |e| e["status"] == "policy_loaded");
    assert!(loaded.is_some(), "no policy_loaded after reload:\n{}", d.log());
    let mode = fs::metadata(&d.events).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the new event file");
    assert!(
        read_events(&rotated)
            .unwrap()
            .iter()
            .any(|e| e["status"] == "tls_probed")
    );
    drop(server);

    let events = d.events.clone();
    // strace's report, where the unit's system call filter was emulated.
    let strace = matches!(d.started, Some(Started::Chain(_))).then(|| logs.join("strace.out"));
    let log = d.log();
    assert!(d.stop(), "the daemon did not stop cleanly:\n{log}");
    let last = read_events(&events).unwrap();
    assert!(last.iter().any(|e| e["status"] == "stopped"), "{log}");

    if let Some(strace) = strace {
        let refused = refused_by_unit(&fs::read_to_string(&strace).unwrap());
        assert!(
            refused.is_empty(),
            "calls {UNIT}'s SystemCallFilter or RestrictAddressFamilies refuse:\n{}",
            refused.values().cloned().collect::<Vec<_>>().join("\n")
        );
    }
}

/// The daemon as the unit runs it, without systemd: ExecStart's arguments (plus an
/// ephemeral metrics port, so that it never meets a daemon on 9464), root with the
/// unit's bounding set and NoNewPrivileges, in [`SANDBOX`] with /etc/mcp-monitor/policy.yaml
/// and LogsDirectory's /var/log/mcp-monitor (0750), under strace stopping at every call
/// outside the unit's SystemCallFilter (and at socket calls, for their family).
fn start_like_systemd(dir: &Path, policy: &str, caps: &BTreeSet<String>) -> Deployed {
    let etc = Overlay::new(dir, "etc");
    let policy_dir = etc.upper.join("mcp-monitor");
    fs::create_dir(&policy_dir).unwrap();
    fs::write(policy_dir.join("policy.yaml"), policy).unwrap();
    fs::set_permissions(policy_dir.join("policy.yaml"), fs::Permissions::from_mode(0o644)).unwrap();
    let logs = Overlay::new(dir, "log");
    let logs_dir = logs.upper.join("mcp-monitor");
    fs::create_dir(&logs_dir).unwrap();
    fs::set_permissions(&logs_dir, fs::Permissions::from_mode(0o750)).unwrap();

    let traced: Vec<String> = unit_syscalls().iter().map(|s| format!("?{s}")).collect();
    let mut command = with_caps(caps, true);
    command.extend(
        [
            "strace",
            "-f",
            "-qq",
            "--seccomp-bpf",
            "-o",
            "/var/log/mcp-monitor/strace.out",
        ]
        .map(String::from),
    );
    command.push("-e".into());
    command.push(format!("trace=!{}", traced.join(",")));
    command.push("--".into());
    command.push(binary().to_str().unwrap().to_string());
    command.extend(unit_args());
    command.extend(["--metrics-addr".to_string(), "127.0.0.1:0".to_string()]);
    let stderr = dir.join("stderr.log");
    // unshare and setpriv: util-linux; strace: Debian's strace.
    let child = spawn_group(
        sandboxed(&etc, Some(&logs), &command)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).unwrap()),
    );
    Deployed::new(Started::Chain(child), logs_dir.join("events.jsonl"), stderr)
}

fn unit_property(name: &str, property: &str) -> String {
    run_ok(Command::new("systemctl").args(["show", "-P", property, name]))
        .trim()
        .to_string()
}

fn remove_unit(name: &str) {
    let _ = fs::remove_file(format!("/run/systemd/system/{name}.service"));
    let _ = Command::new("systemctl").arg("daemon-reload").status();
    let _ = fs::remove_dir_all(format!("/var/log/{name}"));
}

/// The unit started by systemd, as a transient copy under /run/systemd/system that
/// differs only in names: the built binary, a policy in `dir`, its own logs folder, an
/// ephemeral metrics port.
fn start_with_systemd(tag: &str, dir: &Path, policy: &str) -> Deployed {
    let name = format!("mcp-monitor-deploytest-{tag}");
    let policy_file = dir.join("policy.yaml");
    fs::write(&policy_file, policy).unwrap();
    fs::set_permissions(&policy_file, fs::Permissions::from_mode(0o644)).unwrap();
    let text = read(UNIT)
        .replace(INSTALLED_BINARY, binary().to_str().unwrap())
        .replace("/etc/mcp-monitor/policy.yaml", policy_file.to_str().unwrap())
        .replace("/var/log/mcp-monitor/", &format!("/var/log/{name}/"))
        .replace("LogsDirectory=mcp-monitor", &format!("LogsDirectory={name}"))
        .replace("/events.jsonl\n", "/events.jsonl --metrics-addr 127.0.0.1:0\n");
    fs::write(format!("/run/systemd/system/{name}.service"), text).unwrap();
    run_ok(Command::new("systemctl").arg("daemon-reload"));
    run_ok(Command::new("systemctl").args(["start", &name]));
    Deployed::new(
        Started::Unit(name.clone()),
        PathBuf::from(format!("/var/log/{name}/events.jsonl")),
        // Unused: the log is the unit's journal.
        dir.join("stderr.log"),
    )
}

/// The unit's bounding set is the smallest that works: with all of it, the daemon
/// (ExecStart's arguments, no sandbox) handles the proof server fully; without any one
/// of the three, it does not (or does not start: without CAP_SYS_ADMIN, and CAP_BPF
/// not given instead, it cannot load its programs).
#[test]
fn each_capability_of_the_unit_is_needed() {
    require_root();
    let caps = unit_caps();
    let args = unit_args();
    for missing in std::iter::once(None).chain(caps.iter().map(Some)) {
        let name = missing.map_or("all".to_string(), |c| format!("no{}", c.replace('_', "")));
        let tag = unique_tag(&name);
        let dir = TempDir::new(&tag);
        let policy = dir.path().join("policy.yaml");
        fs::write(&policy, read("monitor/src/policy/default-policy.yaml")).unwrap();
        fs::set_permissions(&policy, fs::Permissions::from_mode(0o644)).unwrap();
        let events = dir.path().join("events.jsonl");
        let stderr = dir.path().join("stderr.log");
        let fewer: BTreeSet<String> = caps.iter().filter(|c| Some(*c) != missing).cloned().collect();
        let mut command = with_caps(&fewer, true);
        command.push(binary().to_str().unwrap().to_string());
        // ExecStart's, with its files here.
        command.extend(args.iter().map(|a| match a.as_str() {
            "/etc/mcp-monitor/policy.yaml" => policy.to_str().unwrap().to_string(),
            "/var/log/mcp-monitor/events.jsonl" => events.to_str().unwrap().to_string(),
            other => other.to_string(),
        }));
        command.extend(["--metrics-addr", "127.0.0.1:0"].map(String::from));
        let child = spawn_group(
            Command::new(&command[0])
                .args(&command[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(&stderr).unwrap()),
        );
        let d = match (Deployed::start(Started::Chain(child), events, stderr), missing) {
            (Ok(d), _) => d,
            (Err(e), None) => panic!("with {caps:?}: {e}"),
            (Err(e), Some(cap)) => {
                assert!(e.contains("Operation not permitted"), "without {cap}: {e}");
                continue;
            }
        };
        let server = ProofServer::start(&tag);
        // With every capability the uprobes come within a second.
        let outcome = server.handled_by(&d, Duration::from_secs(10));
        match missing {
            None => outcome.unwrap_or_else(|e| panic!("with {caps:?}: {e}\n{}", d.log())),
            Some(cap) => assert!(
                outcome.is_err(),
                "without CAP_{} the daemon still handled the server fully: the unit could drop it",
                cap.to_uppercase()
            ),
        }
        drop(server);
        let log = d.log();
        assert!(d.stop(), "{log}");
    }
}

// ---------------------------------------------------------------------------------
// Kubernetes

const KUBERNETES: &str = "deploy/kubernetes";

/// Python with kubernetes-validate and the prometheus-operator models, in a venv under
/// ~/.cache/mcp-monitor (made once, again when VENV_PACKAGES change).
fn venv_python() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
            .expect("HOME")
            .join("mcp-monitor");
        let venv = cache.join("deploy-venv");
        let stamp = VENV_PACKAGES.join(" ");
        let ready = |v: &Path| {
            v.join("bin/python").exists()
                && fs::read_to_string(v.join("mcp-monitor-packages")).is_ok_and(|s| s == stamp)
        };
        if !ready(&venv) {
            // Made aside and renamed: another test run may be doing the same.
            fs::create_dir_all(&cache).unwrap();
            let fresh = cache.join(format!("deploy-venv.new{}", std::process::id()));
            let _ = fs::remove_dir_all(&fresh);
            let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
            run_ok(Command::new(&python).args(["-m", "venv"]).arg(&fresh));
            run_ok(
                Command::new(fresh.join("bin/python"))
                    .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
                    .args(VENV_PACKAGES),
            );
            fs::write(fresh.join("mcp-monitor-packages"), &stamp).unwrap();
            let _ = fs::remove_dir_all(&venv);
            if fs::rename(&fresh, &venv).is_err() {
                let _ = fs::remove_dir_all(&fresh);
            }
            assert!(ready(&venv), "setting up {}", venv.display());
        }
        venv.join("bin/python")
    })
    .clone()
}

/// Loads every manifest (YAML to JSON) and validates each object: core kinds with
/// kubernetes-validate (strict: unknown fields refused) for each of the versions in
/// argv[1]; the Prometheus Operator's kinds with its CRD models, a field the model
/// does not keep counting as unknown.
const VALIDATE: &str = r#"
import json, sys
import yaml
import kubernetes_validate
from cloudcoil.models.prometheus_operator import v1 as monitoring

versions = sys.argv[1].split(",")
crds = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): monitoring.ServiceMonitor,
    ("monitoring.coreos.com/v1", "PrometheusRule"): monitoring.PrometheusRule,
}

def dropped(sent, kept, path):
    out = []
    if isinstance(sent, dict):
        for k, v in sent.items():
            if not isinstance(kept, dict) or k not in kept:
                out.append(path + "." + k)
            else:
                out += dropped(v, kept[k], path + "." + k)
    elif isinstance(sent, list) and isinstance(kept, list) and len(sent) == len(kept):
        for i, (a, b) in enumerate(zip(sent, kept)):
            out += dropped(a, b, "%s[%d]" % (path, i))
    return out

result = {"objects": [], "errors": []}
for path in sys.argv[2:]:
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    for doc in docs:
        kind = (doc.get("apiVersion"), doc.get("kind"))
        name = "%s: %s %s" % (path, kind[1], doc.get("metadata", {}).get("name"))
        try:
            model = crds.get(kind)
            if model is not None:
                kept = model.model_validate(doc).model_dump(mode="json", by_alias=True, exclude_none=True)
                unknown = dropped(doc, kept, "")
                if unknown:
                    raise ValueError("fields its CRD does not have: " + ", ".join(unknown))
                how = "prometheus-operator CRD model"
            else:
                for v in versions:
                    kubernetes_validate.validate(doc, v, strict=True)
                how = "kubernetes-validate --strict " + " ".join(versions)
        except Exception as e:
            result["errors"].append("%s: %s: %s" % (name, type(e).__name__, e))
            how = None
        result["objects"].append({"file": path, "doc": doc, "validated_by": how})
print(json.dumps(result))
"#;

/// Every object of deploy/kubernetes/*.yaml by kind, after validating them all.
fn manifests() -> BTreeMap<String, Value> {
    let mut files: Vec<PathBuf> = fs::read_dir(repo(KUBERNETES))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        })
        .collect();
    files.sort();
    let out = run_ok(
        Command::new(venv_python())
            .args(["-c", VALIDATE, KUBERNETES_VERSIONS])
            .args(&files),
    );
    let result: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let errors = result["errors"].as_array().unwrap();
    assert!(
        errors.is_empty(),
        "invalid manifests:\n{}",
        errors
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let mut by_kind = BTreeMap::new();
    for o in result["objects"].as_array().unwrap() {
        let kind = o["doc"]["kind"].as_str().unwrap().to_string();
        let prev = by_kind.insert(kind.clone(), o["doc"].clone());
        assert!(prev.is_none(), "two {kind} objects");
    }
    by_kind
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_object().expect("a label map");
    !selector.is_empty() && selector.iter().all(|(k, v)| labels[k] == *v)
}

fn container(ds: &Value) -> &Value {
    let containers = ds["spec"]["template"]["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    &containers[0]
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// The value following `flag` in `args`.
fn flag_value<'a>(args: &'a [String], flag: &str) -> &'a str {
    let i = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("no {flag} in {args:?}"));
    &args[i + 1]
}

#[test]
fn kubernetes_manifests_are_valid_and_consistent() {
    let m = manifests();
    assert_eq!(
        m.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "ConfigMap",
            "DaemonSet",
            "Namespace",
            "PrometheusRule",
            "Service",
            "ServiceMonitor"
        ]
    );
    let ns = m["Namespace"]["metadata"]["name"].as_str().unwrap();
    for (kind, o) in &m {
        if kind != "Namespace" {
            assert_eq!(o["metadata"]["namespace"], ns, "{kind}");
        }
    }
    assert_eq!(
        m["Namespace"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );

    // The DaemonSet: the pod its selector and the Service select.
    let ds = &m["DaemonSet"];
    let pod = &ds["spec"]["template"];
    let pod_labels = &pod["metadata"]["labels"];
    assert!(labels_match(&ds["spec"]["selector"]["matchLabels"], pod_labels));
    let spec = &pod["spec"];
    assert_eq!(spec["hostPID"], true);
    let c = container(ds);
    let sc = &c["securityContext"];
    assert_ne!(sc["privileged"], true);
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    // The capabilities proven with the systemd unit's run, no more, no fewer.
    let added: BTreeSet<String> = strings(&sc["capabilities"]["add"])
        .iter()
        .map(|c| c.to_lowercase())
        .collect();
    assert_eq!(added, unit_caps(), "the DaemonSet and the unit differ");
    assert_eq!(sc["runAsUser"], 0);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(sc["appArmorProfile"]["type"], "Unconfined");
    // The image is this version's.
    let image = c["image"].as_str().unwrap();
    assert!(
        image.ends_with(&format!("/mcp-monitor:{}", env!("CARGO_PKG_VERSION"))),
        "{image}"
    );

    // The policy: the ConfigMap's key, mounted where --policy reads it, valid.
    let args = strings(&c["args"]);
    assert_eq!(args[0], "run");
    let policy_arg = flag_value(&args, "--policy");
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "policy")
        .unwrap();
    let mount_path = mount["mountPath"].as_str().unwrap();
    assert_eq!(mount["readOnly"], true);
    let key = policy_arg
        .strip_prefix(&format!("{mount_path}/"))
        .unwrap_or_else(|| panic!("--policy {policy_arg} is not a file of the ConfigMap volume"));
    let volume = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "policy")
        .unwrap();
    let cm = &m["ConfigMap"];
    assert_eq!(volume["configMap"]["name"], cm["metadata"]["name"]);
    let text = cm["data"][key]
        .as_str()
        .expect("the ConfigMap has the key --policy names");
    assert_eq!(text, read("monitor/src/policy/default-policy.yaml"));
    assert_eq!(flag_value(&args, "--events"), "-");

    // Metrics: the port --metrics-addr binds, named, served by the Service, scraped by
    // the ServiceMonitor.
    let metrics_addr = flag_value(&args, "--metrics-addr");
    let port: u16 = metrics_addr.rsplit(':').next().unwrap().parse().unwrap();
    let named = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["containerPort"] == port)
        .expect("a containerPort for --metrics-addr");
    let svc = &m["Service"];
    assert!(labels_match(&svc["spec"]["selector"], pod_labels));
    let svc_port = &svc["spec"]["ports"][0];
    assert_eq!(svc_port["targetPort"], named["name"]);
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert_eq!(c[probe]["httpGet"]["path"], "/healthz", "{probe}");
        assert_eq!(c[probe]["httpGet"]["port"], named["name"], "{probe}");
    }
    let sm = &m["ServiceMonitor"];
    assert!(labels_match(
        &sm["spec"]["selector"]["matchLabels"],
        &svc["metadata"]["labels"]
    ));
    assert!(strings(&sm["spec"]["namespaceSelector"]["matchNames"]).contains(&ns.to_string()));
    let endpoint = &sm["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], svc_port["name"]);
    assert_eq!(endpoint["path"], "/metrics");
    // The shipped alerts expect job="mcp-monitor": the job is the Service's name.
    assert_eq!(svc["metadata"]["name"], "mcp-monitor");
    assert!(sm["spec"]["jobLabel"].is_null());

    // The PrometheusRule: alerts.yml's groups, which promtool accepts.
    let rule = &m["PrometheusRule"];
    let dir = TempDir::new(&unique_tag("promrule"));
    let rules = dir.path().join("rules.yml");
    // JSON is YAML.
    fs::write(&rules, json!({"groups": rule["spec"]["groups"]}).to_string()).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool (Debian's prometheus package; `cargo xtask test` installs it)");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool check rules:\n{text}");
    assert!(text.contains("SUCCESS: 8 rules found"), "{text}");
    let alerts = Command::new(venv_python())
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(repo("deploy/prometheus/alerts.yml"))
        .output()
        .unwrap();
    let alerts: Value = serde_json::from_slice(&alerts.stdout).unwrap();
    assert_eq!(
        rule["spec"], alerts,
        "the PrometheusRule's spec is not alerts.yml"
    );
}

#[test]
fn daemonset_container_runs_as_documented() {
    require_root();
    let m = manifests();
    let c = container(&m["DaemonSet"]).clone();
    let sc = &c["securityContext"];
    let caps: BTreeSet<String> = strings(&sc["capabilities"]["add"])
        .iter()
        .map(|c| c.to_lowercase())
        .collect();
    let nnp = sc["allowPrivilegeEscalation"] == false;
    assert_eq!(sc["readOnlyRootFilesystem"], true, "the sandbox below assumes it");
    // The container's arguments, $(POD_IP) being loopback here, its port ephemeral.
    let mut args = strings(&c["args"]);
    for a in &mut args {
        *a = a.replace("$(POD_IP)", "127.0.0.1");
    }
    let i = args.iter().position(|a| a == "--metrics-addr").unwrap();
    args[i + 1] = "127.0.0.1:0".into();

    // The ConfigMap volume as the kubelet lays it out: a 0777 folder (its emptyDir),
    // the files in a timestamped 0755 folder that `..data` points to, the keys as
    // links through `..data`; all read-only.
    let tag = unique_tag("dsrun");
    let dir = TempDir::new(&tag);
    let etc = Overlay::new(dir.path(), "etc");
    let mount_path = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "policy")
        .unwrap()["mountPath"]
        .as_str()
        .unwrap()
        .to_string();
    let volume = etc
        .upper
        .join(mount_path.strip_prefix("/etc/").expect("the policy under /etc"));
    let version = volume.join("..2026_01_01_00_00_00.000000001");
    fs::create_dir_all(&version).unwrap();
    fs::set_permissions(&volume, fs::Permissions::from_mode(0o777)).unwrap();
    fs::set_permissions(&version, fs::Permissions::from_mode(0o755)).unwrap();
    let cm = &m["ConfigMap"];
    for (key, text) in cm["data"].as_object().unwrap() {
        let file = version.join(key);
        fs::write(&file, text.as_str().unwrap()).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o444)).unwrap();
        std::os::unix::fs::symlink(format!("..data/{key}"), volume.join(key)).unwrap();
    }
    std::os::unix::fs::symlink("..2026_01_01_00_00_00.000000001", volume.join("..data")).unwrap();

    // The volume's own folder is 0777: accepted because the mount is read-only, refused
    // where it can be written (the same files outside the sandbox).
    let check = |path: String| {
        let mut command = with_caps(&caps, nnp);
        command.push(binary().to_str().unwrap().to_string());
        command.extend(["check-policy".to_string(), path]);
        sandboxed(&etc, None, &command).output().unwrap()
    };
    let policy_arg = flag_value(&args, "--policy").to_string();
    assert_eq!(policy_arg, format!("{mount_path}/policy.yaml"));
    let mounted = check(policy_arg);
    assert!(mounted.status.success(), "{mounted:?}");
    let writable = Command::new(binary())
        .arg("check-policy")
        .arg(volume.join("policy.yaml"))
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&writable.stdout).to_string() + &String::from_utf8_lossy(&writable.stderr);
    assert!(
        !writable.status.success() && said.contains("lets others replace the file"),
        "{said}"
    );

    // The container: events on stdout (here a file), the log on stderr.
    let events = dir.path().join("stdout.jsonl");
    let stderr = dir.path().join("stderr.log");
    let mut command = with_caps(&caps, nnp);
    command.push(binary().to_str().unwrap().to_string());
    command.extend(args);
    let child = spawn_group(
        sandboxed(&etc, None, &command)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&events).unwrap())
            .stderr(fs::File::create(&stderr).unwrap()),
    );
    let d = Deployed::new(Started::Chain(child), events, stderr);
    let (status, body) = http_get(&d.addr(), "/healthz").unwrap();
    assert_eq!(status, 200, "{body}");
    assert_confined(&d, &caps, nnp);
    let server = ProofServer::start(&tag);
    server
        .handled_by(&d, WAIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", d.log()));
    drop(server);
    let log = d.log();
    assert!(d.stop(), "{log}");
}

// ---------------------------------------------------------------------------------
// The Containerfile

#[test]
fn containerfile_builds_the_workspace_and_installs_what_the_deployments_run() {
    let text = read("deploy/container/Containerfile");
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "a build stage and a runtime stage");
    // The build stage's compiler is the stable one the project is tested with.
    let stable = run_ok(Command::new("rustup").args(["run", "stable", "rustc", "--version"]));
    let version = stable.split_whitespace().nth(1).unwrap();
    let minor = version.rsplit_once('.').unwrap().0;
    assert!(
        froms[0].contains(&format!("/rust:{minor}-bookworm ")),
        "{} is not rustc {minor}",
        froms[0]
    );
    assert!(froms[1].contains("/debian:bookworm-slim"), "{}", froms[1]);
    // It installs the binary where the unit runs it; the DaemonSet runs its entrypoint.
    assert!(text.contains(&format!("ENTRYPOINT [\"{INSTALLED_BINARY}\"]")));
    assert!(text.contains(&format!(
        "COPY --from=build /out{INSTALLED_BINARY} {INSTALLED_BINARY}"
    )));
    assert!(
        text.contains("cargo xtask setup"),
        "the eBPF toolchain, as xtask installs it"
    );

    // What its COPY lines take from the repository is enough for cargo to load the
    // workspace, with the lock file as it is.
    let ctx = TempDir::new(&unique_tag("containerctx"));
    let mut copied = 0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("COPY ") else {
            continue;
        };
        if rest.starts_with("--from") {
            continue;
        }
        let words: Vec<&str> = rest.split_whitespace().collect();
        let (dest, sources) = words.split_last().unwrap();
        for src in sources {
            let to = if dest.ends_with('/') {
                ctx.path().join(dest).join(src)
            } else {
                ctx.path().join(dest)
            };
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            run_ok(Command::new("cp").arg("-a").arg(repo(src)).arg(&to));
            copied += 1;
        }
    }
    assert!(copied >= 5, "{copied} paths copied");
    let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    run_ok(
        Command::new("cargo")
            .args(["fetch", "--offline", "--locked", "--target", &target])
            .current_dir(ctx.path()),
    );
}
