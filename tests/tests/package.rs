//! The Debian package (`[package.metadata.deb]` in monitor/Cargo.toml, cargo-deb), built
//! and installed on this machine as root, the way a host agent is installed:
//!
//! - `cargo deb -p monitor --no-build` packages the release build the tests run (same
//!   GNU build ID), nothing built again;
//! - the archive holds the daemon, the unit, the default policy as the only conffile,
//!   the alert rules, the dashboard and the README, with their modes, and depends on
//!   what the daemon links (`$auto`); its maintainer scripts enable the unit but never
//!   start it;
//! - `dpkg -i` lays them out; the unit is enabled (`systemctl cat` and `is-enabled` when
//!   systemd is PID 1; otherwise the unit file and its multi-user.target.wants link, as
//!   deb-systemd-helper makes them offline) and not running;
//! - started (`systemctl start`, or without systemd the unit's ExecStart run as is,
//!   with an ephemeral metrics port), `/healthz` answers 200 and the events go to
//!   /var/log/mcp-monitor/events.jsonl (0600); stopped, it exits cleanly;
//! - `dpkg --purge` leaves nothing: binary, unit, /etc/mcp-monitor, /var/log/mcp-monitor,
//!   the enablement link, deb-systemd-helper's state.
//!
//! An `mcp-monitor` already on the machine (a package, or its files) fails the test
//! rather than being replaced.
mod common;

use std::{
    fs,
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use common::{TempDir, http_get};
use integration_tests::{Daemon, daemon_binary, read_events, require_root, unique_tag};

const PACKAGE: &str = "mcp-monitor";
const BINARY: &str = "/usr/bin/mcp-monitor";
/// Where cargo-deb puts units (`/lib/systemd/system` on a merged-/usr Debian too).
const UNIT_FILE: &str = "/usr/lib/systemd/system/mcp-monitor.service";
const POLICY: &str = "/etc/mcp-monitor/policy.yaml";
const LOGS: &str = "/var/log/mcp-monitor";
const EVENTS: &str = "/var/log/mcp-monitor/events.jsonl";
const WANTS: &str = "/etc/systemd/system/multi-user.target.wants/mcp-monitor.service";
/// deb-systemd-helper's records of what it enabled (removed on purge).
const DSH_STATE: &str = "/var/lib/systemd/deb-systemd-helper-enabled";

/// Everything the package may leave on the machine, each checked absent before install
/// and after purge.
const FOOTPRINT: &[&str] = &[
    BINARY,
    UNIT_FILE,
    "/etc/mcp-monitor",
    LOGS,
    "/usr/share/mcp-monitor",
    "/usr/share/doc/mcp-monitor",
    WANTS,
    // A mask (link to /dev/null) deb-systemd-helper makes on remove, undone on purge.
    "/etc/systemd/system/mcp-monitor.service",
    "/var/lib/systemd/deb-systemd-helper-enabled/mcp-monitor.service.dsh-also",
    "/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/mcp-monitor.service",
    "/var/lib/systemd/deb-systemd-helper-masked/mcp-monitor.service",
];

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// Runs a command to its end; its stdout, or a panic with its output.
fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn exists(path: &str) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// dpkg's state of the package: empty when dpkg knows nothing of it.
fn dpkg_status() -> String {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}", PACKAGE])
        .output()
        .expect("dpkg-query");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn not_installed(status: &str) -> bool {
    status.is_empty() || status.ends_with(" not-installed")
}

/// The GNU build ID of an ELF file (`readelf -n`, binutils).
fn build_id(path: &Path) -> String {
    run_ok(Command::new("readelf").arg("-n").arg(path))
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID:").map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("{} has no GNU build ID", path.display()))
}

fn mode(path: &str) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .permissions()
        .mode()
        & 0o7777
}

fn assert_root_owned(path: &str, want_mode: u32) {
    let meta = fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "{path} is root's");
    assert_eq!(mode(path), want_mode, "{path}'s mode is {:o}", mode(path));
}

/// Processes running the installed binary.
fn running_installed() -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/exe"))
                .is_ok_and(|exe| exe == Path::new(BINARY) || exe == Path::new("/bin/mcp-monitor"))
        })
        .collect()
}

/// Purges the package when dropped, so that a failing test leaves nothing installed.
/// Made only once the test has checked that nothing of it was there before.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        if Path::new("/run/systemd/system").is_dir() {
            let _ = Command::new("systemctl").args(["stop", PACKAGE]).status();
            let _ = fs::remove_dir_all("/run/systemd/system/mcp-monitor.service.d");
        }
        for pid in running_installed() {
            // Safety: a daemon this test started from the package.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        let _ = Command::new("dpkg").args(["--purge", PACKAGE]).status();
    }
}

/// ExecStart of a unit file, split (the unit quotes nothing).
fn exec_start(unit: &str) -> Vec<String> {
    let lines: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ExecStart="))
        .collect();
    assert_eq!(lines.len(), 1, "one ExecStart in the unit");
    assert!(!lines[0].contains(['"', '\'', '\\', '$', '%']), "{}", lines[0]);
    lines[0].split_whitespace().map(str::to_string).collect()
}

#[test]
fn debian_package_installs_runs_and_purges() {
    require_root();
    let started = Instant::now();

    // Nothing of an mcp-monitor already on the machine is replaced.
    let status = dpkg_status();
    assert!(
        not_installed(&status),
        "the package {PACKAGE} is already on this machine ({status}): this test installs and \
         purges its own; remove it first (`dpkg --purge {PACKAGE}`)"
    );
    let present: Vec<&&str> = FOOTPRINT.iter().filter(|p| exists(p)).collect();
    assert!(
        present.is_empty(),
        "files of an mcp-monitor installed by hand are on this machine, which installing the \
         package would replace or remove: {present:?}; remove them first"
    );
    assert!(
        running_installed().is_empty(),
        "an mcp-monitor from {BINARY} is running"
    );

    // The package, from the release build the other tests run.
    let tag = unique_tag("package");
    let dir = TempDir::new(&tag);
    let built = Instant::now();
    run_ok(
        Command::new("cargo")
            .args(["deb", "-p", "monitor", "--no-build", "--output"])
            .arg(dir.path())
            .current_dir(repo("")),
    );
    let build_secs = built.elapsed().as_secs_f64();
    let debs: Vec<PathBuf> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "one .deb in {}: {debs:?}", dir.path().display());
    let deb = &debs[0];
    let size = fs::metadata(deb).unwrap().len();
    eprintln!(
        "package: {} ({:.1} MB), built in {build_secs:.1}s",
        deb.display(),
        size as f64 / 1e6
    );

    // Its control fields.
    let field = |name: &str| {
        run_ok(Command::new("dpkg-deb").arg("-f").arg(deb).arg(name))
            .trim()
            .to_string()
    };
    assert_eq!(field("Package"), PACKAGE);
    assert_eq!(field("Version"), format!("{}-1", env!("CARGO_PKG_VERSION")));
    assert_eq!(field("Section"), "admin");
    let arch = run_ok(Command::new("dpkg").arg("--print-architecture"));
    assert_eq!(field("Architecture"), arch.trim());
    let depends = field("Depends");
    assert!(
        depends.contains("libc6"),
        "Depends ({depends}) names the libraries the daemon links ($auto)"
    );
    assert!(!field("Maintainer").is_empty());

    // Its files, their modes and owners.
    let listing = run_ok(Command::new("dpkg-deb").arg("-c").arg(deb));
    let entry = |path: &str| {
        listing
            .lines()
            .find(|l| l.ends_with(&format!(" .{path}")))
            .unwrap_or_else(|| panic!("{path} not in the package:\n{listing}"))
            .to_string()
    };
    for (path, perms) in [
        (BINARY, "-rwxr-xr-x"),
        (UNIT_FILE, "-rw-r--r--"),
        (POLICY, "-rw-r--r--"),
        ("/usr/share/mcp-monitor/alerts.yml", "-rw-r--r--"),
        ("/usr/share/mcp-monitor/mcp-monitor.json", "-rw-r--r--"),
        ("/usr/share/doc/mcp-monitor/README.md", "-rw-r--r--"),
    ] {
        let line = entry(path);
        assert!(line.starts_with(perms), "{line}: want {perms}");
        assert!(line.contains(" 0/0 "), "{line} is root's");
    }
    for line in listing.lines() {
        let perms = line.split_whitespace().next().unwrap_or("");
        assert!(
            perms.as_bytes().get(5) != Some(&b'w') && perms.as_bytes().get(8) != Some(&b'w'),
            "group or others could write: {line}"
        );
    }

    // The default policy is the only conffile; the scripts enable but never start.
    let conffiles = run_ok(Command::new("dpkg-deb").arg("-I").arg(deb).arg("conffiles"));
    assert_eq!(conffiles.lines().collect::<Vec<_>>(), [POLICY], "conffiles");
    let script = |name: &str| run_ok(Command::new("dpkg-deb").arg("-I").arg(deb).arg(name));
    let postinst = script("postinst");
    assert!(
        postinst.contains("deb-systemd-helper enable mcp-monitor.service"),
        "postinst enables the unit:\n{postinst}"
    );
    let prerm = script("prerm");
    assert!(
        prerm.contains("deb-systemd-invoke stop mcp-monitor.service"),
        "prerm stops the service:\n{prerm}"
    );
    let postrm = script("postrm");
    assert!(postrm.contains("rm -rf /var/log/mcp-monitor"), "{postrm}");
    assert!(
        postrm.contains("deb-systemd-helper purge mcp-monitor.service"),
        "{postrm}"
    );
    for (name, text) in [("postinst", &postinst), ("prerm", &prerm), ("postrm", &postrm)] {
        for start in ["invoke start", "invoke restart", "systemctl start", "--now"] {
            assert!(
                !text.contains(start),
                "{name} starts the service ({start}):\n{text}"
            );
        }
    }

    // Installed.
    let installed = Installed;
    run_ok(
        Command::new("dpkg")
            .arg("-i")
            .arg(deb)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    );
    let status = dpkg_status();
    assert_eq!(status, "install ok installed");
    assert_root_owned(BINARY, 0o755);
    assert_root_owned(POLICY, 0o644);
    assert_root_owned("/etc/mcp-monitor", 0o755);
    assert_root_owned(UNIT_FILE, 0o644);
    assert_eq!(
        build_id(Path::new(BINARY)),
        build_id(&daemon_binary()),
        "the package holds the release build of the tests ({})",
        daemon_binary().display()
    );
    for (installed_path, source) in [
        (POLICY, "monitor/src/policy/default-policy.yaml"),
        (UNIT_FILE, "deploy/systemd/mcp-monitor.service"),
        (
            "/usr/share/mcp-monitor/alerts.yml",
            "deploy/prometheus/alerts.yml",
        ),
        (
            "/usr/share/mcp-monitor/mcp-monitor.json",
            "deploy/grafana/mcp-monitor.json",
        ),
        ("/usr/share/doc/mcp-monitor/README.md", "README.md"),
    ] {
        assert!(
            fs::read(installed_path).unwrap() == fs::read(repo(source)).unwrap(),
            "{installed_path} is not {source}"
        );
    }
    let policy_check = run_ok(Command::new(BINARY).args(["check-policy", POLICY]));
    eprintln!("check-policy: {}", policy_check.trim());
    let conffiles = run_ok(Command::new("dpkg-query").args(["-W", "-f", "${Conffiles}", PACKAGE]));
    assert!(
        conffiles.contains(POLICY),
        "dpkg records the conffile: {conffiles}"
    );

    // Enabled, not running.
    let unit = fs::read_to_string("/lib/systemd/system/mcp-monitor.service").unwrap();
    let systemd = Path::new("/run/systemd/system").is_dir();
    if systemd {
        let cat = run_ok(Command::new("systemctl").args(["cat", PACKAGE]));
        assert!(cat.contains(UNIT_FILE) || cat.contains("/lib/systemd/system/mcp-monitor.service"));
        assert!(cat.contains(unit.lines().find(|l| l.starts_with("ExecStart=")).unwrap()));
        let enabled = run_ok(Command::new("systemctl").args(["is-enabled", PACKAGE]));
        assert_eq!(enabled.trim(), "enabled");
        let active = Command::new("systemctl")
            .args(["is-active", PACKAGE])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&active.stdout).trim(), "inactive");
    } else {
        // `systemctl cat` needs the manager: check what it would show and the link
        // deb-systemd-helper made for `enable`.
        eprintln!(
            "systemd is not PID 1: reading the unit and its enablement link instead of `systemctl cat`"
        );
        let link = fs::read_link(WANTS).unwrap_or_else(|e| panic!("{WANTS}: {e} (not enabled)"));
        assert!(
            link == Path::new(UNIT_FILE) || link == Path::new("/lib/systemd/system/mcp-monitor.service"),
            "{WANTS} -> {}",
            link.display()
        );
        assert!(unit.contains("WantedBy=multi-user.target"));
    }
    assert!(running_installed().is_empty(), "installing started the daemon");
    assert!(!exists(LOGS), "installing created {LOGS}: the daemon ran");

    // Started as the unit starts it, on an ephemeral metrics port.
    let exec = exec_start(&unit);
    assert_eq!(exec[0], BINARY);
    assert!(exec.windows(2).any(|w| w == ["--events", EVENTS]), "{exec:?}");
    let dropin = Path::new("/run/systemd/system/mcp-monitor.service.d");
    let daemon = if systemd {
        fs::create_dir_all(dropin).unwrap();
        fs::write(
            dropin.join("test.conf"),
            format!(
                "[Service]\nExecStart=\nExecStart={} --metrics-addr 127.0.0.1:0\n",
                exec.join(" ")
            ),
        )
        .unwrap();
        run_ok(Command::new("systemctl").arg("daemon-reload"));
        run_ok(Command::new("systemctl").args(["start", PACKAGE]));
        None
    } else {
        // LogsDirectory=mcp-monitor, LogsDirectoryMode=0750.
        fs::create_dir(LOGS).unwrap();
        fs::set_permissions(LOGS, fs::Permissions::from_mode(0o750)).unwrap();
        let mut args: Vec<&str> = exec[1..].iter().map(String::as_str).collect();
        args.extend(["--metrics-addr", "127.0.0.1:0"]);
        Some(
            Daemon::start_exact(Path::new(BINARY), &args, Path::new(EVENTS))
                .unwrap_or_else(|e| panic!("{e:#}")),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        let ready = Path::new(EVENTS)
            .exists()
            .then(|| read_events(Path::new(EVENTS)).unwrap_or_default())
            .and_then(|evs| {
                evs.into_iter()
                    .find(|e| e["type"] == "monitor_status" && e["status"] == "ready")
            });
        if let Some(ready) = ready {
            break ready;
        }
        assert!(Instant::now() < deadline, "no `ready` in {EVENTS} within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    let addr = ready["metrics_addr"].as_str().unwrap().to_string();
    let (code, body) = http_get(&addr, "/healthz").unwrap();
    assert_eq!(code, 200, "/healthz: {body}");
    assert_eq!(mode(EVENTS), 0o600, "{EVENTS}");
    assert_eq!(mode(LOGS), 0o750, "{LOGS}");

    // Stopped.
    match daemon {
        Some(d) => {
            let (status, _, events) = d.stop(Duration::from_secs(30)).unwrap();
            assert!(status.success(), "the daemon exited with {status}");
            assert!(events.iter().any(|e| e["status"] == "stopped"));
        }
        None => {
            run_ok(Command::new("systemctl").args(["stop", PACKAGE]));
            fs::remove_dir_all(dropin).unwrap();
            run_ok(Command::new("systemctl").arg("daemon-reload"));
            let events = read_events(Path::new(EVENTS)).unwrap();
            assert!(events.iter().any(|e| e["status"] == "stopped"));
        }
    }
    assert!(running_installed().is_empty());

    // Purged: nothing left.
    std::mem::forget(installed);
    run_ok(
        Command::new("dpkg")
            .args(["--purge", PACKAGE])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    );
    let status = dpkg_status();
    assert!(not_installed(&status), "after purge: {status}");
    let left: Vec<&&str> = FOOTPRINT.iter().filter(|p| exists(p)).collect();
    assert!(left.is_empty(), "left after purge: {left:?}");
    if let Ok(entries) = fs::read_dir(DSH_STATE) {
        let names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.contains("mcp-monitor"))
            .collect();
        assert!(names.is_empty(), "deb-systemd-helper state left: {names:?}");
    }
    eprintln!("package test done in {:.1}s", started.elapsed().as_secs_f64());
}
