//! The kernel's watched set checked against what userspace stands by. A lost exec,
//! fork, exit or candidate-read record leaves an entry the kernel keeps forever: a
//! process pending (and captured) though no one decided, or an entry for a pid that
//! exited. An entry userspace does not stand by on two checks in a row is dropped: one
//! check apart is longer than records take to arrive, so no decision under way is
//! undone.
use std::collections::HashSet;

#[derive(Default)]
pub struct Reconciler {
    /// Entries not stood by at the last check.
    suspects: HashSet<u32>,
}

impl Reconciler {
    /// `entries`: (pid, `monitor_common::watch_state`) of the kernel's set; `stands_by`:
    /// whether userspace keeps that entry. Returns the pids to drop.
    pub fn check(&mut self, entries: &[(u32, u32)], stands_by: impl Fn(u32, u32) -> bool) -> Vec<u32> {
        let suspects: HashSet<u32> = entries
            .iter()
            .filter(|&&(pid, state)| !stands_by(pid, state))
            .map(|&(pid, _)| pid)
            .collect();
        let mut drop: Vec<u32> = suspects.intersection(&self.suspects).copied().collect();
        drop.sort_unstable();
        self.suspects = suspects;
        for pid in &drop {
            self.suspects.remove(pid);
        }
        drop
    }
}

#[cfg(test)]
mod tests {
    use monitor_common::watch_state::{PENDING, PROBED, WATCHED};

    use super::*;

    #[test]
    fn an_entry_is_dropped_when_not_stood_by_twice_in_a_row() {
        let mut r = Reconciler::default();
        // 1 is a watched server; 2 pending with its exec record lost; 3 probed.
        let entries = [(1, WATCHED), (2, PENDING), (3, PROBED)];
        let stands = |pid: u32, _| pid != 2;
        assert_eq!(r.check(&entries, stands), Vec::<u32>::new(), "once is not enough");
        assert_eq!(r.check(&entries, stands), [2]);
        // Decided meanwhile: not dropped.
        let mut r = Reconciler::default();
        r.check(&entries, stands);
        assert_eq!(r.check(&entries, |_, _| true), Vec::<u32>::new());
        assert_eq!(r.check(&entries, stands), Vec::<u32>::new(), "suspect anew");
        // Gone from the kernel's set in between: nothing to drop.
        let mut r = Reconciler::default();
        r.check(&entries, stands);
        assert_eq!(r.check(&[(1, WATCHED)], stands), Vec::<u32>::new());
    }
}
