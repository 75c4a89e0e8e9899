//! Workload identity: a stdio MCP server and its client, each started inside a cgroup
//! laid out as containerd-in-Kubernetes, Docker or Podman make them (the test makes the
//! cgroups), are named in `server_started` and `tool_call` events with their cgroup,
//! container id and pod; policy entries and agents match on them.
use std::{
    collections::hash_map::RandomState,
    hash::{BuildHasher, Hasher},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use integration_tests::{Daemon, unique_tag};
use serde_json::{Value, json};

/// Where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup, or /sys/fs/cgroup/unified
/// on a hybrid host (whose containers still show in the v2 hierarchy, systemd's layout).
fn cgroup2_root() -> PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mount = pre.split(' ').nth(4)?;
            (post.split(' ').next() == Some("cgroup2")).then(|| PathBuf::from(mount))
        })
        .expect("a cgroup2 mount")
}

/// `n` random lowercase hex digits.
fn hex(n: usize) -> String {
    let mut s = String::new();
    while s.len() < n {
        let mut h = RandomState::new().build_hasher();
        h.write_usize(s.len());
        s.push_str(&format!("{:016x}", h.finish()));
    }
    s.truncate(n);
    s
}

fn pod_uid() -> String {
    let h = hex(32);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The cgroups the test made, removed when dropped (failure included): processes
/// still in them are killed first, then the directories it created go, deepest first.
struct Cgroups {
    root: PathBuf,
    leaves: Vec<PathBuf>,
    created: Vec<PathBuf>,
}

impl Cgroups {
    /// Makes the cgroup `path` (absolute in the v2 hierarchy) and what is missing above.
    fn make(&mut self, path: &str) -> PathBuf {
        let mut dir = self.root.clone();
        for c in path.trim_start_matches('/').split('/') {
            dir.push(c);
            if !dir.exists() {
                std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
                self.created.push(dir.clone());
            }
        }
        self.leaves.push(dir.clone());
        dir
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        for leaf in &self.leaves {
            let _ = std::fs::write(leaf.join("cgroup.kill"), "1");
            let deadline = Instant::now() + Duration::from_secs(5);
            while std::fs::read_to_string(leaf.join("cgroup.procs")).is_ok_and(|p| !p.trim().is_empty())
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        for dir in self.created.iter().rev() {
            if let Err(e) = std::fs::remove_dir(dir) {
                eprintln!("cleanup: rmdir {}: {e}", dir.display());
            }
        }
    }
}

/// One client (a shell in `client_cg`) with one server (pipe-peer's `jsonrpc`, which
/// moves itself into `server_cg` before it execs): once `go` exists, the client sends
/// `initialize` and one `tools/call`, keeps the pipe open a moment, and closes it.
fn start_pair(tag: &str, server_cg: &Path, client_cg: &Path, go: &Path) -> Child {
    let requests = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "workload-agent", "version": "1.0"}}}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}),
    ]
    .map(|r| r.to_string())
    .join("\n");
    // The shells move themselves (`echo $$`) before anything else runs in them, so the
    // server's exec already happens in its cgroup. Its answers go into a pipe, where
    // the daemon reads them.
    let script = r#"echo $$ > "$CCG/cgroup.procs" || exit 1
{ while [ ! -e "$GO" ]; do sleep 0.05; done; printf '%s\n' "$REQS"; sleep 1; } |
  sh -c 'echo $$ > "$SCG/cgroup.procs" && exec "$PEER" --tag "$TAG" jsonrpc' | cat > /dev/null"#;
    Command::new("/bin/sh")
        .args(["-c", script])
        .env("CCG", client_cg)
        .env("SCG", server_cg)
        .env("GO", go)
        .env("REQS", requests)
        .env("PEER", env!("CARGO_BIN_EXE_pipe-peer"))
        .env("TAG", tag)
        .stdin(Stdio::null())
        .spawn()
        .expect("starting the client shell")
}

struct Case {
    /// Tag suffix: the server's command line says `--tag TAG-<name>`.
    name: &'static str,
    server_cg: String,
    client_cg: String,
    server_workload: Value,
    client_workload: Value,
    entry: &'static str,
    agent: Value,
    decision: &'static str,
}

#[test]
fn servers_and_clients_are_named_by_their_cgroup_container_and_pod() {
    let tag = unique_tag("workload");
    let root = cgroup2_root();
    let mut cgroups = Cgroups {
        root,
        leaves: Vec::new(),
        created: Vec::new(),
    };
    let (pod1, pod2, pod3) = (pod_uid(), pod_uid(), pod_uid());
    let ids: Vec<String> = (0..6).map(|_| hex(64)).collect();
    let sd = |uid: &str| uid.replace('-', "_");
    let cases = [
        // containerd in Kubernetes (systemd driver): server and agent in two pods.
        Case {
            name: "k8s",
            server_cg: format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{}.scope",
                sd(&pod1),
                ids[0]
            ),
            client_cg: format!(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{}.scope",
                sd(&pod2),
                ids[1]
            ),
            server_workload: json!({"container": {"runtime": "containerd", "id": ids[0]}, "pod": {"uid": pod1, "qos": "burstable"}}),
            client_workload: json!({"container": {"runtime": "containerd", "id": ids[1]}, "pod": {"uid": pod2, "qos": "besteffort"}}),
            entry: "by-pod",
            agent: json!("sidecar"),
            decision: "allow",
        },
        // Docker: systemd's scope for the server, cgroupfs's /docker/ID for the client.
        Case {
            name: "docker",
            server_cg: format!("/system.slice/docker-{}.scope", ids[2]),
            client_cg: format!("/docker/{}", ids[3]),
            server_workload: json!({"container": {"runtime": "docker", "id": ids[2]}}),
            client_workload: json!({"container": {"runtime": "docker", "id": ids[3]}}),
            entry: "by-container",
            agent: json!("ci"),
            decision: "allow",
        },
        // Podman (machine.slice) with a client on the host, in no container: an agent
        // entry on `container` does not match it.
        Case {
            name: "podman",
            server_cg: format!("/machine.slice/libpod-{}.scope", ids[4]),
            client_cg: format!("/system.slice/mcp-workload-{tag}.service"),
            server_workload: json!({"container": {"runtime": "podman", "id": ids[4]}}),
            client_workload: json!({}),
            entry: "by-cgroup",
            agent: Value::Null,
            decision: "violation",
        },
        // cgroupfs-driver Kubernetes with CRI-O: matched by nothing but its command line.
        Case {
            name: "crio",
            server_cg: format!("/kubepods/besteffort/pod{pod3}/crio-{}", ids[5]),
            client_cg: format!("/system.slice/mcp-workload-{tag}-2.service"),
            server_workload: json!({"container": {"runtime": "cri-o", "id": ids[5]}, "pod": {"uid": pod3, "qos": "besteffort"}}),
            client_workload: json!({}),
            entry: "unregistered",
            agent: Value::Null,
            decision: "allow",
        },
    ];

    let dir = std::env::temp_dir().join(&tag);
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("policy.yaml");
    // The first entry is a decoy: a container id that is nobody's. The others match on
    // nothing but where the server runs.
    std::fs::write(
        &policy,
        format!(
            r#"servers:
  decoy:
    match: {{ container: "{decoy}" }}
  by-pod:
    match: {{ pod: "{pod1}", cmdline: "*--tag {tag}-*" }}
    agents:
      sidecar: {{ container: "{id1}", pod: "{pod2}" }}
  by-container:
    match: {{ container: "{id2}" }}
    agents:
      ci: {{ cgroup: "/docker/*", container: "{id3_start}*" }}
  by-cgroup:
    match: {{ cgroup: "/machine.slice/libpod-{id4}.scope" }}
    agents:
      in-a-container: {{ container: "*" }}
unregistered_servers: ignore
"#,
            decoy = hex(64),
            id1 = ids[1],
            id2 = ids[2],
            id3_start = &ids[3][..12],
            id4 = ids[4],
        ),
    )
    .unwrap();
    let watch = format!("*--tag {tag}-* jsonrpc*");
    let d = Daemon::start(&["--policy", policy.to_str().unwrap(), "--watch", &watch]).expect("daemon starts");

    let mut clients = Vec::new();
    for case in &cases {
        let server_cg = cgroups.make(&case.server_cg);
        let client_cg = cgroups.make(&case.client_cg);
        let go = dir.join(format!("go-{}", case.name));
        let server_tag = format!("{tag}-{}", case.name);
        clients.push(ClientGuard(start_pair(&server_tag, &server_cg, &client_cg, &go)));

        let with_cgroup = |path: &str, w: &Value| {
            let mut w = w.clone();
            w["cgroup"] = json!(path);
            // `cgroup` first, as events write it.
            let mut ordered = json!({"cgroup": path});
            for (k, v) in w.as_object().unwrap() {
                ordered[k] = v.clone();
            }
            ordered
        };
        let server_workload = with_cgroup(&case.server_cg, &case.server_workload);
        let client_workload = with_cgroup(&case.client_cg, &case.client_workload);

        let needle = format!("--tag {server_tag} jsonrpc");
        let started = d
            .wait_for(Duration::from_secs(30), |e| {
                e["type"] == "server_started"
                    && e["server"]["cmdline"]
                        .as_str()
                        .is_some_and(|c| c.contains(&needle))
            })
            .unwrap_or_else(|e| panic!("{}: no server_started: {e:#}\n{}", case.name, d.stderr()));
        assert_eq!(
            started["server"]["name"], case.entry,
            "{}: {started:#}",
            case.name
        );
        assert_eq!(
            started["server"]["workload"], server_workload,
            "{}: {started:#}",
            case.name
        );
        assert_eq!(
            started["client"]["workload"], client_workload,
            "{}: {started:#}",
            case.name
        );
        // The key order events keep: the workload after the process's own fields.
        let keys: Vec<&String> = started["server"]["workload"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        let expected: Vec<&String> = server_workload.as_object().unwrap().keys().collect();
        assert_eq!(keys, expected);
        let pid = started["server"]["pid"].clone();

        std::fs::write(&go, "").unwrap();
        let call = d
            .wait_for(Duration::from_secs(30), |e| {
                e["type"] == "tool_call" && e["server"]["pid"] == pid
            })
            .unwrap_or_else(|e| panic!("{}: no tool_call: {e:#}\n{}", case.name, d.stderr()));
        assert_eq!(call["tool"], "whoami", "{call:#}");
        assert_eq!(call["outcome"], "ok", "{call:#}");
        assert_eq!(call["server"]["name"], case.entry, "{}: {call:#}", case.name);
        assert_eq!(
            call["server"]["workload"], server_workload,
            "{}: {call:#}",
            case.name
        );
        assert_eq!(
            call["agent"]["workload"], client_workload,
            "{}: {call:#}",
            case.name
        );
        assert_eq!(call["agent"]["name"], case.agent, "{}: {call:#}", case.name);
        assert_eq!(call["decision"], case.decision, "{}: {call:#}", case.name);
        if case.decision == "violation" {
            let v = &call["violations"][0];
            assert_eq!(v["kind"], "unknown_agent", "{call:#}");
            assert_eq!(v["rule"], format!("servers.{}.agents", case.entry), "{call:#}");
        }
    }
    for mut c in clients.drain(..) {
        let status = c.0.wait().unwrap();
        assert!(status.success(), "client shell: {status}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    drop(d);
    drop(cgroups);
}

/// The client shell, killed and reaped when dropped (its cgroup's processes are killed
/// by `Cgroups`).
struct ClientGuard(Child);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
