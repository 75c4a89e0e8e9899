//! Workload identity: a process's cgroup v2 path, and what the path says about the
//! container and the Kubernetes pod it runs in (containerd, CRI-O, Docker and Podman
//! layouts, with systemd's or cgroupfs's naming).
//!
//! The path is read from `/proc/PID/cgroup` (its `0::` line, the unified hierarchy),
//! which the kernel writes from the task's cgroup. Cgroup names are chosen by whoever
//! may create cgroups there (a user owns the subtree systemd delegates to
//! `user@UID.service`): parsing is bounded, never panics, and gives no container or
//! pod for names that are not exactly a runtime's.
use std::{fs, io::Read, path::Path};

use serde::{Deserialize, Serialize};

/// Longer paths are not believed (PATH_MAX): no workload rather than a cut one.
pub const MAX_CGROUP_PATH: usize = 4096;
/// `/proc/PID/cgroup` has one line per hierarchy; a hybrid host has a dozen.
const MAX_CGROUP_FILE: u64 = 16 * 1024;

/// Where a process runs, as its cgroup says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    /// The cgroup v2 path, as the daemon's cgroup namespace shows it.
    pub cgroup: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Pod>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    /// `containerd`, `cri-o`, `docker` or `podman`.
    pub runtime: String,
    /// The 64-hex-digit container id.
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pod {
    /// The pod UID (dashed, as Kubernetes shows it; a static pod's is 32 hex digits).
    pub uid: String,
    /// `guaranteed`, `burstable` or `besteffort`.
    pub qos: String,
}

impl Workload {
    /// The workload of a cgroup v2 path; None when it is not one (empty, not absolute,
    /// overlong).
    pub fn from_path(path: &str) -> Option<Self> {
        if !path.starts_with('/') || path.len() > MAX_CGROUP_PATH {
            return None;
        }
        let components: Vec<&str> = path.split('/').skip(1).filter(|c| !c.is_empty()).collect();
        // `..` is how a cgroup outside the reader's cgroup namespace shows: the names
        // below it are not where the process really is.
        let relative = components.iter().any(|c| *c == ".." || *c == ".");
        let (container, pod) = match relative {
            true => (None, None),
            false => (container(&components), pod(&components)),
        };
        Some(Self {
            cgroup: path.to_string(),
            container,
            pod,
        })
    }

    pub fn container_id(&self) -> Option<&str> {
        self.container.as_ref().map(|c| c.id.as_str())
    }

    pub fn pod_uid(&self) -> Option<&str> {
        self.pod.as_ref().map(|p| p.uid.as_str())
    }
}

/// The cgroup v2 path of `pid` (its `0::` line), or "" when it cannot be read (the
/// process is gone, no unified hierarchy) or is not plausible.
pub fn cgroup_path(proc_root: &Path, pid: u32) -> String {
    let Ok(file) = fs::File::open(proc_root.join(pid.to_string()).join("cgroup")) else {
        return String::new();
    };
    let mut bytes = Vec::new();
    if file.take(MAX_CGROUP_FILE).read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    unified_line(&String::from_utf8_lossy(&bytes)).unwrap_or_default()
}

/// The path of the `0::` line of a `/proc/PID/cgroup` text.
fn unified_line(text: &str) -> Option<String> {
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    (path.starts_with('/') && path.len() <= MAX_CGROUP_PATH).then(|| path.to_string())
}

/// The outermost component that names a container: the one the host's runtime made
/// (a container's own nested cgroups sit below it).
fn container(components: &[&str]) -> Option<Container> {
    components.iter().enumerate().find_map(|(i, c)| {
        let parent = i.checked_sub(1).map(|p| components[p]);
        // A cgroupfs pod's cgroup is a pod only under kubepods.
        let in_pod = || parent.is_some_and(is_cgroupfs_pod) && pod(&components[..i]).is_some();
        let (runtime, id) = container_component(c, parent, in_pod)?;
        Some(Container {
            runtime: runtime.to_string(),
            id: id.to_string(),
        })
    })
}

/// `(runtime, id)` when a cgroup name (under `parent`) is a container's.
fn container_component<'a>(
    name: &'a str,
    parent: Option<&str>,
    in_pod: impl Fn() -> bool,
) -> Option<(&'static str, &'a str)> {
    // systemd driver: a scope per container.
    if let Some(stem) = name.strip_suffix(".scope") {
        let (runtime, id) = [
            ("cri-containerd-", "containerd"),
            // nerdctl (containerd without Kubernetes).
            ("nerdctl-", "containerd"),
            ("crio-", "cri-o"),
            ("docker-", "docker"),
            ("libpod-", "podman"),
        ]
        .iter()
        .find_map(|(prefix, runtime)| Some((*runtime, stem.strip_prefix(prefix)?)))?;
        // `crio-conmon-<id>`, `libpod-conmon-<id>`: the monitor process, not the
        // container; they fail the hex check.
        return is_container_id(id).then_some((runtime, id));
    }
    // cgroupfs driver: `/docker/<id>`, `/libpod_parent/libpod-<id>`, and under a pod
    // `/kubepods/<qos>/pod<uid>/<id>` (containerd) or `.../crio-<id>`.
    if let Some(id) = name.strip_prefix("crio-") {
        return (is_container_id(id) && in_pod()).then_some(("cri-o", id));
    }
    if let Some(id) = name.strip_prefix("libpod-") {
        return (parent == Some("libpod_parent") && is_container_id(id)).then_some(("podman", id));
    }
    if !is_container_id(name) {
        return None;
    }
    match parent {
        Some("docker") => Some(("docker", name)),
        Some(_) if in_pod() => Some(("containerd", name)),
        _ => None,
    }
}

/// `pod<uid>`, a cgroupfs-driver pod's cgroup.
fn is_cgroupfs_pod(name: &str) -> bool {
    name.strip_prefix("pod").is_some_and(is_pod_uid)
}

/// The pod, from its cgroup: `kubepods[-QOS]-pod<uid>.slice` (systemd driver, with `_`
/// for `-` in the uid; kind's kubelet prefixes `kubelet-`) or `kubepods[/QOS]/pod<uid>`
/// (cgroupfs driver). A pod cgroup with no QoS level in its name is `guaranteed`.
fn pod(components: &[&str]) -> Option<Pod> {
    components.iter().enumerate().find_map(|(i, c)| {
        if let Some(stem) = c.strip_suffix(".slice") {
            let (prefix, uid) = stem.rsplit_once("-pod")?;
            let uid = uid.replace('_', "-");
            if !is_pod_uid(&uid) {
                return None;
            }
            let kubepods = |p: &str| p == "kubepods" || p.ends_with("-kubepods");
            let qos = match prefix.rsplit_once('-') {
                _ if kubepods(prefix) => "guaranteed",
                Some((k, "burstable")) if kubepods(k) => "burstable",
                Some((k, "besteffort")) if kubepods(k) => "besteffort",
                _ => return None,
            };
            return Some(Pod {
                uid,
                qos: qos.to_string(),
            });
        }
        let uid = c.strip_prefix("pod").filter(|u| is_pod_uid(u))?;
        let qos = match (
            i.checked_sub(2).map(|p| components[p]),
            components.get(i.wrapping_sub(1)),
        ) {
            (_, Some(&"kubepods")) => "guaranteed",
            (Some("kubepods"), Some(&q)) if q == "burstable" || q == "besteffort" => q,
            _ => return None,
        };
        Some(Pod {
            uid: uid.to_string(),
            qos: qos.to_string(),
        })
    })
}

/// A container id as containerd, CRI-O, Docker and Podman make them: 64 lowercase hex
/// digits.
fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A pod UID: a dashed UUID (36), or a static pod's 32 hex digits.
fn is_pod_uid(s: &str) -> bool {
    (32..=36).contains(&s.len()) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const UID: &str = "1234abcd-56ef-7890-abcd-ef1234567890";
    const UID_: &str = "1234abcd_56ef_7890_abcd_ef1234567890";

    /// (runtime, container id), (pod uid, qos).
    type Parsed = (Option<(String, String)>, Option<(String, String)>);

    fn ids(path: &str) -> Parsed {
        let w = Workload::from_path(path).expect("a workload");
        assert_eq!(w.cgroup, path);
        (
            w.container.map(|c| (c.runtime, c.id)),
            w.pod.map(|p| (p.uid, p.qos)),
        )
    }

    fn both(runtime: &str, uid: &str, qos: &str) -> Parsed {
        (
            Some((runtime.to_string(), ID.to_string())),
            Some((uid.to_string(), qos.to_string())),
        )
    }

    fn only(runtime: &str) -> Parsed {
        (Some((runtime.to_string(), ID.to_string())), None)
    }

    #[test]
    fn kubernetes_systemd_driver() {
        for (qos_slice, qos) in [
            ("kubepods-burstable.slice/kubepods-burstable-pod", "burstable"),
            ("kubepods-besteffort.slice/kubepods-besteffort-pod", "besteffort"),
            ("kubepods-pod", "guaranteed"),
        ] {
            let p = format!("/kubepods.slice/{qos_slice}{UID_}.slice/cri-containerd-{ID}.scope");
            assert_eq!(ids(&p), both("containerd", UID, qos), "{p}");
            let p = format!("/kubepods.slice/{qos_slice}{UID_}.slice/crio-{ID}.scope");
            assert_eq!(ids(&p), both("cri-o", UID, qos), "{p}");
            // The pod's own cgroup (the pause container's parent): a pod, no container.
            let p = format!("/kubepods.slice/{qos_slice}{UID_}.slice");
            assert_eq!(ids(&p), (None, Some((UID.to_string(), qos.to_string()))), "{p}");
        }
        // kind: the node's kubelet runs under its own slice.
        let p = format!(
            "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID}.scope"
        );
        assert_eq!(ids(&p), both("containerd", UID, "besteffort"));
        // A static pod's UID is a hash, without dashes.
        let hash = "5d41402abc4b2a76b9719d911017c592";
        let p = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{hash}.slice/cri-containerd-{ID}.scope"
        );
        assert_eq!(ids(&p), both("containerd", hash, "burstable"));
        // CRI-O's monitor process is not the container.
        let p = format!("/kubepods.slice/kubepods-pod{UID_}.slice/crio-conmon-{ID}.scope");
        assert_eq!(ids(&p), (None, Some((UID.to_string(), "guaranteed".to_string()))));
    }

    #[test]
    fn kubernetes_cgroupfs_driver() {
        for (qos_dir, qos) in [
            ("/burstable", "burstable"),
            ("/besteffort", "besteffort"),
            ("", "guaranteed"),
        ] {
            let p = format!("/kubepods{qos_dir}/pod{UID}/{ID}");
            assert_eq!(ids(&p), both("containerd", UID, qos), "{p}");
            let p = format!("/kubepods{qos_dir}/pod{UID}/crio-{ID}");
            assert_eq!(ids(&p), both("cri-o", UID, qos), "{p}");
        }
        // Not under kubepods: a directory that happens to be called pod<uuid>.
        assert_eq!(ids(&format!("/other/pod{UID}/{ID}")), (None, None));
    }

    #[test]
    fn docker_podman_and_nerdctl() {
        assert_eq!(ids(&format!("/system.slice/docker-{ID}.scope")), only("docker"));
        assert_eq!(ids(&format!("/docker/{ID}")), only("docker"));
        assert_eq!(ids(&format!("/machine.slice/libpod-{ID}.scope")), only("podman"));
        // A container running systemd: its own cgroups below the runtime's.
        assert_eq!(
            ids(&format!("/machine.slice/libpod-{ID}.scope/container/init.scope")),
            only("podman")
        );
        assert_eq!(
            ids(&format!(
                "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"
            )),
            only("podman")
        );
        assert_eq!(ids(&format!("/libpod_parent/libpod-{ID}")), only("podman"));
        assert_eq!(
            ids(&format!("/system.slice/nerdctl-{ID}.scope")),
            only("containerd")
        );
        assert_eq!(
            ids(&format!("/machine.slice/libpod-conmon-{ID}.scope")),
            (None, None)
        );
    }

    #[test]
    fn host_processes_have_a_cgroup_and_nothing_else() {
        for p in [
            "/",
            "/init.scope",
            "/system.slice/ssh.service",
            "/user.slice/user-1000.slice/session-3.scope",
            "/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-code-1234.scope",
        ] {
            assert_eq!(ids(p), (None, None), "{p}");
        }
    }

    #[test]
    fn hostile_paths_give_no_container_and_never_panic() {
        let upper = ID.to_uppercase();
        for p in [
            format!("/system.slice/docker-{upper}.scope"),
            format!("/system.slice/docker-{}.scope", &ID[1..]),
            format!("/system.slice/docker-{ID}0.scope"),
            format!("/system.slice/docker-{}.scope", ID.replace('a', "g")),
            format!("/system.slice/docker-{ID}.scop"),
            format!("/docker/{ID}/../x"),
            format!("/../../system.slice/docker-{ID}.scope"),
            format!("/kubepods.slice/kubepods-pod{UID_}.slice/../cri-containerd-{ID}.scope"),
            format!("/kubepods.slice/kubepods-weird-pod{UID_}.slice"),
            "/kubepods.slice/kubepods-pod.slice/-pod.slice/pod/.scope/docker-.scope".to_string(),
            format!("/kubepods/pod{}/{ID}", "a".repeat(100)),
            "/\u{0}/\n/é-pod\u{1f600}.slice/crio-ü.scope".to_string(),
            "/a//b///".to_string(),
        ] {
            let (c, pod) = ids(&p);
            assert_eq!(c, None, "{p}");
            assert_eq!(pod, None, "{p}");
        }
        for p in ["", "relative/docker", "no-slash"] {
            assert_eq!(Workload::from_path(p), None);
        }
        let deep = format!("/{}docker-{ID}.scope", "x/".repeat(MAX_CGROUP_PATH));
        assert_eq!(Workload::from_path(&deep), None);
    }

    #[test]
    fn the_unified_line_of_proc_pid_cgroup() {
        let text =
            format!("12:cpu,cpuacct:/docker/{ID}\n1:name=systemd:/x\n0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(
            unified_line(&text),
            Some(format!("/system.slice/docker-{ID}.scope"))
        );
        assert_eq!(unified_line("12:memory:/x\n"), None);
        assert_eq!(unified_line("0::not-absolute\n"), None);
        let own = cgroup_path(Path::new("/proc"), std::process::id());
        // On a cgroup v2 host the test runner has one (a v1-only host has none).
        assert!(own.is_empty() || own.starts_with('/'), "{own}");
        assert_eq!(cgroup_path(Path::new("/nonexistent"), 1), "");
    }

    #[test]
    fn serialises_without_the_parts_it_does_not_know() {
        let w = Workload::from_path("/system.slice/ssh.service").unwrap();
        assert_eq!(
            serde_json::to_string(&w).unwrap(),
            r#"{"cgroup":"/system.slice/ssh.service"}"#
        );
        let p = format!("/kubepods/burstable/pod{UID}/{ID}");
        let w = Workload::from_path(&p).unwrap();
        assert_eq!(
            serde_json::to_value(&w).unwrap(),
            serde_json::json!({"cgroup": p, "container": {"runtime": "containerd", "id": ID}, "pod": {"uid": UID, "qos": "burstable"}})
        );
    }
}
