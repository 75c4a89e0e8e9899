//! Maps keyed by what the kernel assigns: pids, fds, inodes, stream positions.
//!
//! Every record looks several of these up (a small call: about 60 lookups), and
//! SipHash was about 14% of the pipeline's instructions. These keys are not chosen by
//! watched processes' data, so a fast hash with a per-map random seed (foldhash) is
//! enough; maps keyed by strings from watched processes (session ids, tool names)
//! keep std's SipHash.
use std::collections::{HashMap, HashSet};

pub type IdMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
pub type IdSet<K> = HashSet<K, foldhash::fast::RandomState>;
