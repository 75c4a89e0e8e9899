//! Which OpenSSL a process really uses, for the TLS uprobes (issue 11, not wired in
//! yet): the shared `libssl` it maps (CPython's `_ssl`), or its own executable when that
//! exports OpenSSL's functions (the node binary links OpenSSL statically and exports
//! them). Paths go through `/proc/PID/root`, so a process in a container is probed in
//! its own file system. A process that does TLS some other way is named, not guessed.
use std::{
    fs,
    path::{Path, PathBuf},
};

use object::{Object, ObjectSymbol};

/// The functions whose buffers carry the plaintext.
pub const SSL_FUNCTIONS: &[&str] = &["SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex"];

/// Where a process's OpenSSL is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSsl {
    /// The file to attach to, as this daemon reaches it (through /proc/PID/root).
    pub path: PathBuf,
    /// The path as the process sees it (for events).
    pub mapped: String,
    /// `SSL_FUNCTIONS` it exports.
    pub functions: Vec<&'static str>,
    /// Its own executable (static OpenSSL), rather than a shared library.
    pub in_executable: bool,
}

/// Finds the OpenSSL of `pid` from `/proc/PID/maps`: a mapped `libssl.so*` first, else
/// the executable when it exports the SSL functions. None: it maps no OpenSSL (it may
/// do no TLS, or TLS another way: Go's crypto/tls, rustls).
pub fn openssl_of(proc_root: &Path, pid: u32) -> Option<OpenSsl> {
    let dir = proc_root.join(pid.to_string());
    let maps = fs::read_to_string(dir.join("maps")).ok()?;
    let exe = fs::read_link(dir.join("exe")).ok()?;
    let exe = exe.to_string_lossy();
    let mut files: Vec<&str> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with('/'))
        .collect();
    files.dedup();
    let libssl = files.iter().find(|p| {
        Path::new(p)
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("libssl.so"))
    });
    let (mapped, in_executable) = match libssl {
        Some(lib) => (lib.to_string(), false),
        None => (exe.to_string(), true),
    };
    let path = dir.join("root").join(mapped.trim_start_matches('/'));
    let functions = exported(&path, SSL_FUNCTIONS);
    if functions.is_empty() {
        return None;
    }
    Some(OpenSsl {
        path,
        mapped,
        functions,
        in_executable,
    })
}

/// Which of `names` the ELF file at `path` defines in its dynamic symbol table.
pub fn exported(path: &Path, names: &[&'static str]) -> Vec<&'static str> {
    let Ok(data) = fs::read(path) else {
        return Vec::new();
    };
    let Ok(file) = object::File::parse(&*data) else {
        return Vec::new();
    };
    let defined: Vec<&str> = file
        .dynamic_symbols()
        .filter(|s| s.is_definition())
        .filter_map(|s| s.name().ok())
        .collect();
    names.iter().copied().filter(|n| defined.contains(n)).collect()
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};

    use super::*;

    /// Starts `cmd` and returns it once it has printed its first line (it is set up).
    fn started(cmd: &mut Command) -> std::process::Child {
        use std::io::BufRead as _;
        let mut child = cmd.stdout(Stdio::piped()).stdin(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        child
    }

    #[test]
    fn python_maps_the_shared_libssl_and_node_exports_its_own() {
        let mut python =
            started(Command::new("python3").args(["-c", "import ssl, sys; print('up'); sys.stdin.read()"]));
        let found = openssl_of(Path::new("/proc"), python.id()).expect("python's ssl maps libssl");
        assert!(!found.in_executable);
        assert!(found.mapped.contains("libssl.so"), "{found:?}");
        assert!(found.path.starts_with(format!("/proc/{}/root", python.id())));
        assert_eq!(found.functions, SSL_FUNCTIONS, "{found:?}");
        let _ = python.kill();
        let _ = python.wait();

        let mut node =
            started(Command::new("node").args(["-e", "console.log('up'); setTimeout(() => {}, 30000)"]));
        let found = openssl_of(Path::new("/proc"), node.id()).expect("node exports OpenSSL");
        assert!(found.in_executable, "{found:?}");
        assert_eq!(found.functions, SSL_FUNCTIONS);
        let _ = node.kill();
        let _ = node.wait();
    }

    #[test]
    fn a_process_without_openssl_has_none() {
        let mut sleep = started(Command::new("sh").args(["-c", "echo up; exec sleep 30"]));
        // `sh` printed and exec'd sleep: wait until the image is sleep's.
        for _ in 0..100 {
            if fs::read_link(format!("/proc/{}/exe", sleep.id())).is_ok_and(|e| e.ends_with("sleep")) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(openssl_of(Path::new("/proc"), sleep.id()), None);
        assert_eq!(openssl_of(Path::new("/proc"), u32::MAX), None, "no such process");
        let _ = sleep.kill();
        let _ = sleep.wait();
    }
}
