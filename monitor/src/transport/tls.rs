//! TLS connections of watched processes: which socket the plaintext from the OpenSSL
//! uprobes belongs to, and which sockets carry ciphertext (never handed to HTTP).
//!
//! The kernel names the socket when a syscall ran inside the OpenSSL call (a blocking
//! socket BIO). Event-loop servers use memory BIOs instead (Python's asyncio, Node's
//! TLSWrap): the loop reads the ciphertext, feeds it to OpenSSL and calls `SSL_read` on
//! the same thread, and writes what `SSL_write` produced after it returns. So an `SSL*`
//! not known yet is the socket whose ciphertext its thread read last (a read), or the
//! socket its thread writes ciphertext to next (a write, held until then). Once known,
//! an `SSL*` keeps its socket until the socket is closed.
use std::collections::{HashMap, HashSet, VecDeque};

use crate::kernel::records::{Data, Direction};

/// Plaintext writes held per thread until its next ciphertext write names the socket.
const MAX_HELD_PER_THREAD: usize = 64;
/// Threads with writes held; past this, held writes of the oldest are dropped and counted.
const MAX_HOLDING_THREADS: usize = 1024;
/// `SSL*`s mapped and sockets known to carry TLS; past this the maps are cleared (new
/// connections map again at their next read).
const MAX_TRACKED: usize = 65536;
/// TLS sockets a process closes with no plaintext ever seen from it before it counts
/// as blind: its TLS does not go through the OpenSSL probed (a TLS 1.3 connection that
/// only shook hands is ciphertext and no plaintext too, so one is not enough).
pub const BLIND_AFTER: u32 = 3;

/// What became of the records seen so far, for metrics and loss reports.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TlsStats {
    /// Ciphertext records on TLS sockets, not parsed.
    pub ciphertext_records: u64,
    pub ciphertext_bytes: u64,
    /// Plaintext records whose socket could not be found: lost.
    pub unmapped_records: u64,
    pub unmapped_bytes: u64,
}

/// What a syscall's bytes on a socket were.
#[derive(Debug, PartialEq, Eq)]
pub enum Socket {
    /// Not TLS: for the transports as they are.
    Clear,
    /// TLS ciphertext: dropped. `first`: the first record that showed it (the socket
    /// just became known as TLS). `released`: plaintext writes held for this socket.
    Ciphertext {
        first: bool,
        released: Vec<(Data<'static>, i32)>,
    },
}

#[derive(Default)]
pub struct TlsMap {
    /// (pid, `SSL*`) to its socket.
    conns: HashMap<(u32, u64), i32>,
    /// Sockets by (pid, fd), decided at their first bytes: true when TLS.
    sockets: HashMap<(u32, i32), bool>,
    /// Per thread: the socket whose ciphertext it read last.
    last_read: HashMap<u32, (u32, i32)>,
    /// Per thread: plaintext writes of `SSL*`s not mapped yet, oldest first.
    held: HashMap<u32, VecDeque<Data<'static>>>,
    /// Per process: TLS sockets closed while no plaintext had come from it; `None` once
    /// some has.
    dark: HashMap<u32, Option<u32>>,
    pub stats: TlsStats,
}

impl TlsMap {
    /// Bytes a watched process transferred on socket `fd` (a syscall's, not plaintext).
    pub fn socket_bytes(&mut self, d: &Data<'_>) -> Socket {
        let (pid, fd, tid) = (d.header.pid, d.fd, d.header.tid);
        if self.sockets.len() >= MAX_TRACKED {
            self.sockets.clear();
        }
        if d.bytes.is_empty() && !self.sockets.contains_key(&(pid, fd)) {
            // A cut marker says nothing of what the socket carries.
            return Socket::Clear;
        }
        let mut first = false;
        let tls = *self.sockets.entry((pid, fd)).or_insert_with(|| {
            first = is_tls_record(&d.bytes);
            first
        });
        if !tls {
            return Socket::Clear;
        }
        self.stats.ciphertext_records += 1;
        self.stats.ciphertext_bytes += d.bytes.len() as u64;
        let mut released = Vec::new();
        match d.direction {
            Direction::Read => {
                self.last_read.insert(tid, (pid, fd));
            }
            Direction::Write => {
                // The oldest held write's SSL* is this socket; so are its later writes.
                if let Some(held) = self.held.get_mut(&tid)
                    && let Some(ssl) = held.front().and_then(|h| h.tls_conn)
                {
                    self.conns.insert((pid, ssl), fd);
                    let (mine, rest): (VecDeque<Data<'static>>, VecDeque<Data<'static>>) =
                        held.drain(..).partition(|h| h.tls_conn == Some(ssl));
                    *held = rest;
                    if held.is_empty() {
                        self.held.remove(&tid);
                    }
                    released = mine.into_iter().map(|h| (h, fd)).collect();
                }
            }
        }
        Socket::Ciphertext { first, released }
    }

    /// Plaintext from the OpenSSL probes: the socket it belongs to, now (`Some`), or
    /// later (held until its thread writes ciphertext), or never (counted as lost).
    pub fn plaintext<'a>(&mut self, d: Data<'a>) -> Option<(Data<'a>, i32)> {
        let (pid, tid) = (d.header.pid, d.header.tid);
        let ssl = d.tls_conn?;
        if self.conns.len() >= MAX_TRACKED {
            self.conns.clear();
        }
        if d.fd >= 0 {
            // A syscall inside the call named the socket.
            self.conns.insert((pid, ssl), d.fd);
            self.sockets.insert((pid, d.fd), true);
        }
        self.dark.insert(pid, None);
        if let Some(&fd) = self.conns.get(&(pid, ssl)) {
            return Some((d, fd));
        }
        match d.direction {
            Direction::Read => match self.last_read.get(&tid) {
                Some(&(p, fd)) if p == pid => {
                    self.conns.insert((pid, ssl), fd);
                    Some((d, fd))
                }
                _ => {
                    self.lost(&d);
                    None
                }
            },
            Direction::Write => {
                self.hold(d);
                None
            }
        }
    }

    fn hold(&mut self, d: Data<'_>) {
        let tid = d.header.tid;
        if !self.held.contains_key(&tid) && self.held.len() >= MAX_HOLDING_THREADS {
            let evicted: Vec<u32> = self.held.keys().copied().collect();
            for t in evicted {
                for h in self.held.remove(&t).unwrap_or_default() {
                    self.lost(&h);
                }
            }
        }
        let held = self.held.entry(tid).or_default();
        if held.len() >= MAX_HELD_PER_THREAD {
            let oldest = held.pop_front();
            if let Some(h) = oldest {
                self.lost(&h);
            }
        }
        // Kept past the ring entry: its bytes are copied now.
        self.held.entry(tid).or_default().push_back(d.into_owned());
    }

    fn lost(&mut self, d: &Data<'_>) {
        self.stats.unmapped_records += 1;
        self.stats.unmapped_bytes += d.bytes.len() as u64;
    }

    /// Whether `fd` of `pid` is known to carry TLS.
    pub fn is_tls(&self, pid: u32, fd: i32) -> bool {
        self.sockets.get(&(pid, fd)).copied().unwrap_or(false)
    }

    /// Whether any socket of `pid` is known to carry TLS.
    pub fn has_tls(&self, pid: u32) -> bool {
        self.sockets.iter().any(|(&(p, _), &tls)| p == pid && tls)
    }

    /// `fd` of `pid` was closed or replaced (`fd` < 0: all of them): the `SSL*`s on it are
    /// forgotten (an address OpenSSL reuses is another connection). Returns them.
    pub fn closed(&mut self, pid: u32, fd: i32) -> Vec<u64> {
        let gone: Vec<u64> = self
            .conns
            .iter()
            .filter(|&(&(p, _), &f)| p == pid && (fd < 0 || f == fd))
            .map(|(&(_, ssl), _)| ssl)
            .collect();
        for ssl in &gone {
            self.conns.remove(&(pid, *ssl));
        }
        let closed_tls = self
            .sockets
            .iter()
            .filter(|&(&(p, f), &tls)| tls && p == pid && (fd < 0 || f == fd))
            .count() as u32;
        if closed_tls > 0 {
            if self.dark.len() >= MAX_TRACKED {
                self.dark.clear();
            }
            if let Some(n) = self.dark.entry(pid).or_insert(Some(0)) {
                *n += closed_tls;
            }
        }
        self.sockets
            .retain(|&(p, f), _| !(p == pid && (fd < 0 || f == fd)));
        self.last_read
            .retain(|_, &mut (p, f)| !(p == pid && (fd < 0 || f == fd)));
        gone
    }

    /// Whether `pid` closed `BLIND_AFTER` TLS sockets and no plaintext ever came from it.
    pub fn blind(&self, pid: u32) -> bool {
        self.dark
            .get(&pid)
            .is_some_and(|n| n.is_some_and(|n| n >= BLIND_AFTER))
    }

    /// `pid` exited: everything of it goes; held writes of its threads are lost.
    pub fn forget_process(&mut self, pid: u32) {
        self.closed(pid, -1);
        self.dark.remove(&pid);
        let threads: HashSet<u32> = self
            .held
            .iter()
            .filter(|(_, h)| h.front().is_some_and(|d| d.header.pid == pid))
            .map(|(&t, _)| t)
            .collect();
        for t in threads {
            for h in self.held.remove(&t).unwrap_or_default() {
                self.lost(&h);
            }
        }
    }
}

/// The first bytes of a TLS connection: a record header (handshake, alert, change
/// cipher spec or application data; version 3.x with x up to 4).
pub fn is_tls_record(bytes: &[u8]) -> bool {
    matches!(bytes, [0x14..=0x17, 0x03, 0x00..=0x04, ..])
}

#[cfg(test)]
mod tests {
    use monitor_common::Header;

    use super::*;

    const CLIENT_HELLO: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01];

    fn rec(tid: u32, fd: i32, dir: Direction, tls_conn: Option<u64>, bytes: &[u8]) -> Data<'static> {
        Data {
            header: Header {
                pid: 7,
                tid,
                ..Header::default()
            },
            fd,
            syscall: 0,
            direction: dir,
            truncated: false,
            total: bytes.len() as u64,
            chunk_offset: 0,
            stream_offset: 0,
            tls_conn,
            file: None,
            bytes: bytes.to_vec().into(),
        }
    }

    fn fd_of(r: Option<(Data<'_>, i32)>) -> Option<i32> {
        r.map(|(_, fd)| fd)
    }

    #[test]
    fn a_socket_is_tls_when_its_first_bytes_are_a_tls_record() {
        let mut m = TlsMap::default();
        let hello = m.socket_bytes(&rec(1, 5, Direction::Read, None, CLIENT_HELLO));
        assert_eq!(
            hello,
            Socket::Ciphertext {
                first: true,
                released: vec![]
            }
        );
        let later = m.socket_bytes(&rec(1, 5, Direction::Read, None, b"\x17\x03\x03..."));
        assert_eq!(
            later,
            Socket::Ciphertext {
                first: false,
                released: vec![]
            }
        );
        // Whatever comes later on it, even bytes that look like HTTP.
        assert!(matches!(
            m.socket_bytes(&rec(1, 5, Direction::Write, None, b"HTTP/1.1 200 OK")),
            Socket::Ciphertext { .. }
        ));
        assert_eq!(
            m.socket_bytes(&rec(1, 6, Direction::Read, None, b"POST /mcp HTTP/1.1\r\n")),
            Socket::Clear
        );
        assert_eq!(
            m.socket_bytes(&rec(1, 6, Direction::Read, None, CLIENT_HELLO)),
            Socket::Clear
        );
        assert_eq!(m.stats.ciphertext_records, 3);
        assert!(m.is_tls(7, 5) && !m.is_tls(7, 6));
    }

    #[test]
    fn memory_bio_reads_belong_to_the_socket_the_thread_read_last() {
        let mut m = TlsMap::default();
        m.socket_bytes(&rec(1, 5, Direction::Read, None, CLIENT_HELLO));
        m.socket_bytes(&rec(1, 6, Direction::Read, None, CLIENT_HELLO));
        // Thread 1 read fd 6 last: SSL 0xa is fd 6, and stays so.
        assert_eq!(
            fd_of(m.plaintext(rec(1, -1, Direction::Read, Some(0xa), b"POST"))),
            Some(6)
        );
        m.socket_bytes(&rec(1, 5, Direction::Read, None, b"\x17\x03\x03"));
        assert_eq!(
            fd_of(m.plaintext(rec(1, -1, Direction::Read, Some(0xa), b"more"))),
            Some(6)
        );
        assert_eq!(
            fd_of(m.plaintext(rec(1, -1, Direction::Read, Some(0xb), b"POST"))),
            Some(5)
        );
        // Its answers go to the same socket.
        assert_eq!(
            fd_of(m.plaintext(rec(1, -1, Direction::Write, Some(0xb), b"HTTP"))),
            Some(5)
        );
        // A thread that read no ciphertext: lost, and counted.
        assert_eq!(
            fd_of(m.plaintext(rec(2, -1, Direction::Read, Some(0xc), b"????"))),
            None
        );
        assert_eq!(m.stats.unmapped_records, 1);
        assert_eq!(m.stats.unmapped_bytes, 4);
    }

    #[test]
    fn memory_bio_writes_wait_for_the_ciphertext_their_thread_writes_next() {
        let mut m = TlsMap::default();
        m.socket_bytes(&rec(1, 5, Direction::Write, None, CLIENT_HELLO));
        assert_eq!(
            fd_of(m.plaintext(rec(1, -1, Direction::Write, Some(0xa), b"GET"))),
            None
        );
        assert_eq!(
            fd_of(m.plaintext(rec(1, -1, Direction::Write, Some(0xa), b" /"))),
            None
        );
        let Socket::Ciphertext { released, .. } =
            m.socket_bytes(&rec(1, 5, Direction::Write, None, b"\x17\x03\x03"))
        else {
            panic!("ciphertext");
        };
        let bytes: Vec<&[u8]> = released.iter().map(|(d, _)| &d.bytes[..]).collect();
        assert_eq!(bytes, [b"GET".as_slice(), b" /"]);
        assert!(released.iter().all(|&(_, fd)| fd == 5));
        assert_eq!(
            fd_of(m.plaintext(rec(1, -1, Direction::Write, Some(0xa), b"!"))),
            Some(5)
        );
        assert_eq!(m.stats.unmapped_records, 0);
    }

    #[test]
    fn a_process_whose_tls_sockets_never_give_plaintext_is_blind() {
        let mut m = TlsMap::default();
        for fd in 10..10 + BLIND_AFTER as i32 {
            assert!(!m.blind(7));
            m.socket_bytes(&rec(1, fd, Direction::Read, None, CLIENT_HELLO));
            m.closed(7, fd);
        }
        assert!(m.blind(7));
        // Sockets that are not TLS do not count; plaintext once is enough to see.
        let mut m = TlsMap::default();
        m.socket_bytes(&rec(1, 4, Direction::Read, None, b"POST / HTTP/1.1\r\n"));
        m.closed(7, 4);
        m.plaintext(rec(1, 9, Direction::Read, Some(0xa), b"GET"));
        for fd in 10..20 {
            m.socket_bytes(&rec(1, fd, Direction::Read, None, CLIENT_HELLO));
            m.closed(7, fd);
        }
        assert!(!m.blind(7));
    }

    #[test]
    fn a_nested_syscall_names_the_socket_and_a_close_forgets_it() {
        let mut m = TlsMap::default();
        assert_eq!(
            fd_of(m.plaintext(rec(1, 9, Direction::Write, Some(0xa), b"x"))),
            Some(9)
        );
        assert!(m.is_tls(7, 9));
        assert_eq!(
            fd_of(m.plaintext(rec(2, -1, Direction::Read, Some(0xa), b"y"))),
            Some(9)
        );
        assert_eq!(m.closed(7, 9), vec![0xa]);
        assert!(!m.is_tls(7, 9));
        // The address reused for a new connection is mapped afresh.
        m.socket_bytes(&rec(3, 4, Direction::Read, None, CLIENT_HELLO));
        assert_eq!(
            fd_of(m.plaintext(rec(3, -1, Direction::Read, Some(0xa), b"z"))),
            Some(4)
        );
    }

    #[test]
    fn held_writes_are_bounded_and_counted_when_their_process_exits() {
        let mut m = TlsMap::default();
        for _ in 0..MAX_HELD_PER_THREAD + 3 {
            m.plaintext(rec(1, -1, Direction::Write, Some(0xa), b"ab"));
        }
        assert_eq!(m.stats.unmapped_records, 3);
        m.forget_process(7);
        assert_eq!(m.stats.unmapped_records, MAX_HELD_PER_THREAD as u64 + 3);
        assert_eq!(m.stats.unmapped_bytes, 2 * (MAX_HELD_PER_THREAD as u64 + 3));
    }

    #[test]
    fn tls_records_are_told_from_http_and_json() {
        assert!(is_tls_record(CLIENT_HELLO));
        assert!(is_tls_record(&[0x17, 0x03, 0x03, 0, 5]));
        assert!(!is_tls_record(b"POST /"));
        assert!(!is_tls_record(b"{\"jsonrpc\""));
        assert!(!is_tls_record(&[0x16, 0x03]), "too short to tell");
        assert!(!is_tls_record(&[0x16, 0x02, 0x00]));
    }
}
