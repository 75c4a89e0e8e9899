//! What is read about the host's processes: the process table (from the kernel's
//! records and /proc), fd kinds, who is on the other end of a pipe or socket, the files
//! a program opens to start itself, paths and addresses of side effects, and the
//! command-line patterns that name servers, and the cgroup (container, pod) a process
//! runs in, and the names (never the values) of a server's environment.
pub mod effects;
pub mod environ;
pub mod fds;
pub mod identity;
pub mod procs;
pub mod program_files;
pub mod reconcile;
pub mod secret_inodes;
pub mod tls;
pub mod tls_probes;
pub mod watch;
pub mod workload;
