//! What a fresh machine looks like to the daemon: tracefs not mounted. Alone in its own
//! test binary, because it unmounts tracefs under every other daemon's feet (cargo runs
//! test binaries one after another, so no other test's daemon is starting meanwhile).
use std::{path::Path, sync::Barrier, thread};

use integration_tests::{Daemon, unique_tag};

const TRACEFS: &str = "/sys/kernel/tracing";

fn tracefs_mounted() -> bool {
    Path::new(TRACEFS).join("events").exists()
}

/// Unmounts tracefs, as many times as it is mounted there.
fn unmount_tracefs() {
    let target = std::ffi::CString::new(TRACEFS).unwrap();
    for _ in 0..4 {
        if !tracefs_mounted() {
            return;
        }
        // Safety: a valid C string; umount2 has no other preconditions.
        let rc = unsafe { libc::umount2(target.as_ptr(), 0) };
        assert_eq!(
            rc,
            0,
            "umount {TRACEFS}: {} (is a tool holding it open?)",
            std::io::Error::last_os_error()
        );
    }
    assert!(!tracefs_mounted(), "{TRACEFS} still mounted after 4 umounts");
}

#[test]
fn two_daemons_started_at_the_same_instant_without_tracefs_both_become_ready() {
    integration_tests::require_root();
    unmount_tracefs();
    let tag = unique_tag("fresh");
    let glob = format!("*{tag}*");
    let start = Barrier::new(2);
    let results: Vec<anyhow::Result<Daemon>> = thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    Daemon::start(&["--watch", &glob])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, r) in results.iter().enumerate() {
        if let Err(e) = r {
            panic!("daemon {i} did not become ready: {e:#}");
        }
    }
    assert!(tracefs_mounted(), "the daemons left tracefs unmounted");
    for d in results.into_iter().map(Result::unwrap) {
        assert!(!d.stderr().contains("already mounted"), "{}", d.stderr());
        let (status, _, _) = d.stop(std::time::Duration::from_secs(5)).unwrap();
        assert!(status.success(), "{status}");
    }
}
