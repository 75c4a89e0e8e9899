//! Reloading the policy when its file changes, as SIGHUP does. The file's *folder* is
//! watched, not the file: editors replace a file by rename, and a Kubernetes ConfigMap
//! volume updates by swapping its `..data` symlink (`policy.yaml -> ..data/policy.yaml`),
//! so the file watched would never change. Any event there is followed, once things
//! have been quiet for `DEBOUNCE`, by a look at the file: a reload only when what is
//! read differs from the last time.
use std::{
    os::fd::{AsFd as _, AsRawFd, RawFd},
    path::{Path, PathBuf},
    time::Duration,
};

use log::{debug, warn};
use nix::{
    errno::Errno,
    sys::inotify::{AddWatchFlags, InitFlags, Inotify},
};
use sha2::{Digest as _, Sha256};
use tokio::{io::unix::AsyncFd, time::Instant};

/// How long the folder must be quiet before the file is looked at: an editor's save or
/// the kubelet's update is several events.
const DEBOUNCE: Duration = Duration::from_millis(200);

struct Fd(Inotify);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

pub struct PolicyWatch {
    path: PathBuf,
    fd: AsyncFd<Fd>,
    /// When the folder went quiet long enough: set by an event, pushed back by the next.
    due: Option<Instant>,
    /// What the file held (and its mode and owner) when last looked at.
    seen: Option<[u8; 32]>,
}

impl PolicyWatch {
    /// Watches the folder of `path` (and of the file it links to). None, after one
    /// warning, when inotify is unavailable: SIGHUP still reloads.
    pub fn new(path: &Path) -> Option<Self> {
        match Self::try_new(path) {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(
                    "cannot watch {} for changes ({e}): the policy is reloaded on SIGHUP only",
                    path.display()
                );
                None
            }
        }
    }

    fn try_new(path: &Path) -> std::io::Result<Self> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        // Safety: the inotify instance owns its fd, which lives as long as the AsyncFd.
        let fd = unsafe { AsyncFd::register_with_interest(Fd(inotify), tokio::io::Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        let mut w = Self {
            path: path.to_path_buf(),
            fd,
            due: None,
            seen: None,
        };
        if w.watch_folders() == 0 {
            return Err(std::io::Error::other("no folder of it can be watched"));
        }
        w.seen = fingerprint(path);
        Ok(w)
    }

    /// (Re)adds the watches: the folder of the path, and the folder of the file it
    /// resolves to now (another after a symlink swap). Adding a watch twice is harmless;
    /// a removed folder's watch goes away by itself. Returns how many are in place.
    fn watch_folders(&self) -> usize {
        let flags = AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_ATTRIB
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF;
        let mut folders = vec![folder(&self.path)];
        if let Ok(real) = std::fs::canonicalize(&self.path) {
            let f = folder(&real);
            if !folders.contains(&f) {
                folders.push(f);
            }
        }
        folders
            .iter()
            .filter(|f| match self.fd.get_ref().0.add_watch(f.as_path(), flags) {
                Ok(_) => true,
                Err(e) => {
                    debug!("not watching {}: {e}", f.display());
                    false
                }
            })
            .count()
    }

    /// Reads and forgets the queued events; true when there were any.
    fn drain(&self) -> bool {
        let mut any = false;
        loop {
            match self.fd.get_ref().0.read_events() {
                Ok(events) if !events.is_empty() => any = true,
                Ok(_) | Err(Errno::EAGAIN) => return any,
                Err(e) => {
                    warn!("reading policy file events: {e}");
                    return any;
                }
            }
        }
    }

    /// Waits until the file differs from the last look (content, mode or owner: a
    /// refused file made safe again is worth another try). Cancel-safe: what is pending
    /// lives in `self`, so `select!` may drop this future at any await.
    pub async fn changed(&mut self) {
        loop {
            match self.due {
                None => {
                    let Ok(mut guard) = self.fd.readable().await else {
                        return std::future::pending().await;
                    };
                    guard.clear_ready();
                    if self.drain() {
                        self.due = Some(Instant::now() + DEBOUNCE);
                    }
                }
                Some(due) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(due) => {
                            self.due = None;
                            self.watch_folders();
                            let now = fingerprint(&self.path);
                            if now != self.seen {
                                self.seen = now;
                                return;
                            }
                        }
                        guard = self.fd.readable() => {
                            if let Ok(mut guard) = guard {
                                guard.clear_ready();
                            }
                            if self.drain() {
                                self.due = Some(Instant::now() + DEBOUNCE);
                            }
                        }
                    }
                }
            }
        }
    }

    /// The file as it is now is the one in force (SIGHUP just reloaded it).
    pub fn note_reloaded(&mut self) {
        self.seen = fingerprint(&self.path);
    }
}

fn folder(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A hash of the file's content, mode and owner; None when it cannot be read.
fn fingerprint(path: &Path) -> Option<[u8; 32]> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).ok()?;
    let text = std::fs::read(path).ok()?;
    let mut h = Sha256::new();
    h.update(meta.mode().to_le_bytes());
    h.update(meta.uid().to_le_bytes());
    h.update(&text);
    Some(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn changes_within(w: &mut PolicyWatch) -> bool {
        tokio::time::timeout(Duration::from_secs(2), w.changed())
            .await
            .is_ok()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_rename_over_the_file_is_seen_and_an_identical_rewrite_is_not() {
        let dir = std::env::temp_dir().join(format!("policy-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.yaml");
        std::fs::write(&path, "servers: {}\n").unwrap();
        let mut w = PolicyWatch::new(&path).expect("inotify");
        // Same content written again: no change.
        std::fs::write(&path, "servers: {}\n").unwrap();
        assert!(!changes_within(&mut w).await, "same content is no change");
        // Replaced by rename, as editors do.
        std::fs::write(dir.join(".p.yaml.swp"), "servers: {}\nnoise: []\n").unwrap();
        std::fs::rename(dir.join(".p.yaml.swp"), &path).unwrap();
        assert!(changes_within(&mut w).await, "a rename is a change");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
