//! The daemon reloads its policy when the file changes, with no SIGHUP: rewritten in
//! place, replaced by rename (as editors save), or updated as the kubelet updates a
//! ConfigMap volume (a read-only mount of a 0777 folder whose `..data` symlink is
//! swapped). Each valid change gives a `policy_loaded` event within a few seconds and
//! later calls are judged under it; an invalid one gives `policy_rejected` and the old
//! policy stays. Real daemon, as root, against the Python test server.
mod common;

use std::{
    os::unix::fs::{PermissionsExt as _, symlink},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use integration_tests::{
    Daemon,
    mcp::{Client, drive, python_server, python_server_glob, server_events},
    require_root, unique_tag,
};
use serde_json::{Value, json};

/// How soon a change must be acted on (the daemon waits 200 ms for quiet).
const RELOAD: Duration = Duration::from_secs(5);

struct World {
    tag: String,
    root: PathBuf,
    home: PathBuf,
}

impl World {
    fn new(name: &str) -> Self {
        let tag = unique_tag(name);
        let root = std::env::temp_dir().join(&tag);
        let home = root.join("home");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { tag, root, home }
    }

    /// A policy letting agent alice call `alice_tools` of the test server.
    fn policy(&self, alice_tools: &str) -> String {
        format!(
            r#"servers:
  pytools:
    match: {{ cmdline: "{glob}" }}
    tools: [echo, add]
    agents:
      alice: {{ client: "alice-*", tools: {alice_tools} }}
unregistered_servers: ignore
"#,
            glob = python_server_glob(&self.tag),
        )
    }

    /// `--watch` names nothing: only the policy's server entry is watched.
    fn daemon(&self, policy: &Path) -> Daemon {
        let nothing = format!("/nothing/{}", self.tag);
        Daemon::start(&["--policy", policy.to_str().unwrap(), "--watch", &nothing]).expect("daemon starts")
    }

    /// The violations of one `echo` call by a new alice session.
    fn echo_violations(&self, d: &Daemon, client: &str) -> Vec<String> {
        let calls = json!([{"tool": "echo", "arguments": {"text": "hi"}}]);
        let env = [format!("HOME={}", self.home.display())];
        let report = drive(Client::Python, client, &python_server(&self.tag), &calls, &env);
        let events = server_events(d, "tool_call", &report["server_pid"]);
        assert_eq!(events.len(), 1, "{events:#?}");
        events[0]["violations"]
            .as_array()
            .unwrap_or_else(|| panic!("no violations array: {:#}", events[0]))
            .iter()
            .map(|v| format!("{} {}", v["kind"].as_str().unwrap(), v["rule"].as_str().unwrap()))
            .collect()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

const OUT_OF_SCOPE: &str = "tool_out_of_scope servers.pytools.agents.alice.tools";

fn statuses(events: &[Value], status: &str) -> usize {
    events
        .iter()
        .filter(|e| e["type"] == "monitor_status" && e["status"] == status)
        .count()
}

/// Waits for the `n`th event of `status`, and returns the latest one.
fn wait_status(d: &Daemon, status: &str, n: usize) -> Value {
    let start = std::time::Instant::now();
    d.wait_until(RELOAD, |events| statuses(events, status) >= n)
        .unwrap_or_else(|e| panic!("{status} #{n}: {e}\n{}", d.stderr()));
    assert!(start.elapsed() < RELOAD);
    d.events()
        .into_iter()
        .filter(|e| e["type"] == "monitor_status" && e["status"] == status)
        .nth(n - 1)
        .unwrap()
}

#[test]
fn a_policy_rewritten_in_place_or_replaced_by_rename_is_reloaded() {
    let w = World::new("reload-file");
    let policy = w.root.join("policy.yaml");
    std::fs::write(&policy, w.policy("[echo]")).unwrap();
    let d = w.daemon(&policy);
    assert_eq!(w.echo_violations(&d, "alice-1"), Vec::<String>::new());

    // In place.
    std::fs::write(&policy, w.policy("[add]")).unwrap();
    let loaded = wait_status(&d, "policy_loaded", 1);
    assert_eq!(loaded["policy"], policy.to_str().unwrap(), "{loaded:#}");
    assert_eq!(w.echo_violations(&d, "alice-2"), [OUT_OF_SCOPE]);

    // By rename, as editors save.
    let tmp = w.root.join(".policy.yaml.tmp");
    std::fs::write(&tmp, w.policy("[echo]")).unwrap();
    std::fs::rename(&tmp, &policy).unwrap();
    wait_status(&d, "policy_loaded", 2);
    assert_eq!(w.echo_violations(&d, "alice-3"), Vec::<String>::new());

    // The same content written again is no change.
    std::fs::write(&policy, w.policy("[echo]")).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(statuses(&d.events(), "policy_loaded"), 2, "{}", d.stderr());
    assert!(
        d.stderr().contains("policy file changed: "),
        "the log says why: {}",
        d.stderr()
    );
}

#[test]
fn an_invalid_rewrite_is_rejected_and_the_old_policy_stays() {
    let w = World::new("reload-bad");
    let policy = w.root.join("policy.yaml");
    std::fs::write(&policy, w.policy("[echo]")).unwrap();
    let d = w.daemon(&policy);
    std::fs::write(&policy, "servers: [not, a, mapping]\n").unwrap();
    let rejected = wait_status(&d, "policy_rejected", 1);
    assert!(
        rejected["errors"][0]
            .as_str()
            .unwrap()
            .contains("servers: must be a mapping"),
        "{rejected:#}"
    );
    assert_eq!(statuses(&d.events(), "policy_loaded"), 0);
    assert_eq!(
        w.echo_violations(&d, "alice-1"),
        Vec::<String>::new(),
        "the old policy still allows echo"
    );
    // Fixed: loaded.
    std::fs::write(&policy, w.policy("[add]")).unwrap();
    wait_status(&d, "policy_loaded", 1);
    assert_eq!(w.echo_violations(&d, "alice-2"), [OUT_OF_SCOPE]);
}

/// A read-only bind mount, unmounted when dropped.
struct ReadOnlyMount(PathBuf);

impl ReadOnlyMount {
    fn new(source: &Path, target: &Path) -> Self {
        std::fs::create_dir_all(target).unwrap();
        run(Command::new("mount").arg("--bind").arg(source).arg(target));
        let m = Self(target.to_path_buf());
        run(Command::new("mount").args(["-o", "remount,bind,ro"]).arg(target));
        m
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {out:?}");
}

/// A new version of the volume, as the kubelet's atomic writer makes one: the files in
/// a new timestamped folder, `..data` swapped to it by rename, the old folder removed.
fn kubelet_update(volume: &Path, old: &str, new: &str, text: &str) {
    let version = volume.join(new);
    std::fs::create_dir(&version).unwrap();
    std::fs::set_permissions(&version, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = version.join("policy.yaml");
    std::fs::write(&file, text).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444)).unwrap();
    symlink(new, volume.join("..data_tmp")).unwrap();
    std::fs::rename(volume.join("..data_tmp"), volume.join("..data")).unwrap();
    std::fs::remove_dir_all(volume.join(old)).unwrap();
}

#[test]
fn a_configmap_volume_is_accepted_read_only_and_reloaded_when_the_kubelet_updates_it() {
    require_root();
    let w = World::new("reload-cm");
    // The volume as the kubelet lays it out: a 0777 folder, the files in a 0755
    // timestamped folder `..data` points to, the key a link through `..data`.
    let volume = w.root.join("volume");
    let first = "..2026_12_03_00_00_00.000000001";
    std::fs::create_dir(&volume).unwrap();
    std::fs::set_permissions(&volume, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::create_dir(volume.join(first)).unwrap();
    std::fs::set_permissions(volume.join(first), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(volume.join(first).join("policy.yaml"), w.policy("[echo]")).unwrap();
    std::fs::set_permissions(
        volume.join(first).join("policy.yaml"),
        std::fs::Permissions::from_mode(0o444),
    )
    .unwrap();
    symlink(first, volume.join("..data")).unwrap();
    symlink("..data/policy.yaml", volume.join("policy.yaml")).unwrap();

    // Writable by others where it is not mounted read-only: refused.
    let check = |path: &Path| {
        Command::new(integration_tests::daemon_binary())
            .arg("check-policy")
            .arg(path)
            .output()
            .unwrap()
    };
    let writable = check(&volume.join("policy.yaml"));
    let said =
        String::from_utf8_lossy(&writable.stdout).to_string() + &String::from_utf8_lossy(&writable.stderr);
    assert!(
        !writable.status.success() && said.contains("lets others replace the file"),
        "{said}"
    );

    // Read-only, as the container sees it: accepted.
    let mounted = w.root.join("etc-mcp-monitor");
    let _mount = ReadOnlyMount::new(&volume, &mounted);
    let policy = mounted.join("policy.yaml");
    let ok = check(&policy);
    assert!(ok.status.success(), "{ok:?}");
    let d = w.daemon(&policy);
    assert_eq!(w.echo_violations(&d, "alice-1"), Vec::<String>::new());

    // The kubelet updates the ConfigMap (through its own, writable path).
    let second = "..2026_12_03_00_01_00.000000002";
    kubelet_update(&volume, first, second, &w.policy("[add]"));
    let loaded = wait_status(&d, "policy_loaded", 1);
    assert_eq!(loaded["policy"], policy.to_str().unwrap(), "{loaded:#}");
    assert_eq!(w.echo_violations(&d, "alice-2"), [OUT_OF_SCOPE]);

    // Again: the watch follows the swap.
    kubelet_update(
        &volume,
        second,
        "..2026_12_03_00_02_00.000000003",
        &w.policy("[echo]"),
    );
    wait_status(&d, "policy_loaded", 2);
    assert_eq!(w.echo_violations(&d, "alice-3"), Vec::<String>::new());
    drop(d);
}
