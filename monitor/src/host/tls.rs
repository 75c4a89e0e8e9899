//! Which OpenSSL a process really uses, for the TLS uprobes: the shared `libssl` it
//! maps (CPython's `_ssl`), or its own executable when that exports OpenSSL's functions
//! (the node binary links OpenSSL statically and exports them). Paths go through
//! `/proc/PID/root`, so a process in a container is probed in its own file system. A
//! process that does TLS some other way is named, not guessed.
use std::{
    collections::HashMap,
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    rc::Rc,
};

use object::{Object, ObjectSegment, ObjectSymbol};

/// The functions whose buffers carry the plaintext, with the attach cookie the kernel
/// side knows each by (`monitor_common::tls_fn`).
pub const SSL_FUNCTIONS: &[(&str, u64)] = &[
    ("SSL_write", monitor_common::tls_fn::SSL_WRITE),
    ("SSL_read", monitor_common::tls_fn::SSL_READ),
    ("SSL_write_ex", monitor_common::tls_fn::SSL_WRITE_EX),
    ("SSL_read_ex", monitor_common::tls_fn::SSL_READ_EX),
];

/// Files whose symbols were read, remembered by (device, inode, mtime): the node binary
/// is ~100 MB, read once.
const MAX_CACHED_FILES: usize = 64;

/// One OpenSSL function in a file: where a uprobe goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SslFunction {
    pub name: &'static str,
    /// The attach cookie (`monitor_common::tls_fn`).
    pub cookie: u64,
    /// Offset of its first instruction in the file.
    pub file_offset: u64,
}

/// An `SslFunction` as a recording holds it: its name, one of `SSL_FUNCTIONS`.
#[derive(serde::Deserialize)]
struct RecordedFunction {
    name: String,
    cookie: u64,
    file_offset: u64,
}

impl<'de> serde::Deserialize<'de> for SslFunction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f = RecordedFunction::deserialize(d)?;
        let name = SSL_FUNCTIONS
            .iter()
            .map(|(n, _)| *n)
            .find(|n| *n == f.name)
            .ok_or_else(|| serde::de::Error::custom(format!("not an OpenSSL function probed: {}", f.name)))?;
        Ok(Self {
            name,
            cookie: f.cookie,
            file_offset: f.file_offset,
        })
    }
}

/// Where a process's OpenSSL is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OpenSsl {
    /// The file to attach to, as this daemon reaches it (through /proc/PID/root).
    pub path: PathBuf,
    /// The path as the process sees it (for events).
    pub mapped: String,
    /// `SSL_FUNCTIONS` it defines.
    pub functions: Rc<Vec<SslFunction>>,
    /// Its own executable (static OpenSSL), rather than a shared library.
    pub in_executable: bool,
}

/// Symbol tables read so far.
#[derive(Default)]
pub struct SymbolCache {
    files: HashMap<(u64, u64, i64), Rc<Vec<SslFunction>>>,
}

impl SymbolCache {
    /// The `SSL_FUNCTIONS` the ELF file at `path` defines in its dynamic symbol table,
    /// with their file offsets.
    pub fn functions(&mut self, path: &Path) -> Rc<Vec<SslFunction>> {
        let Ok(meta) = fs::metadata(path) else {
            return Rc::default();
        };
        let key = (meta.dev(), meta.ino(), meta.mtime());
        if let Some(found) = self.files.get(&key) {
            return found.clone();
        }
        let found = Rc::new(ssl_functions(path));
        if self.files.len() >= MAX_CACHED_FILES {
            self.files.clear();
        }
        self.files.insert(key, found.clone());
        found
    }

    /// Finds the OpenSSL of `pid` from `/proc/PID/maps`: a mapped `libssl.so*` first,
    /// else the executable when it exports the SSL functions. None: it maps no OpenSSL
    /// (it may do no TLS, or TLS another way: Go's crypto/tls, rustls).
    pub fn openssl_of(&mut self, proc_root: &Path, pid: u32) -> Option<OpenSsl> {
        let dir = proc_root.join(pid.to_string());
        let maps = fs::read_to_string(dir.join("maps")).ok()?;
        let exe = fs::read_link(dir.join("exe")).ok()?;
        let libssl = maps
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .find(|p| is_libssl(p));
        match libssl {
            Some(lib) => self.openssl_at(proc_root, pid, lib),
            None => {
                let mut found = self.openssl_at(proc_root, pid, &exe.to_string_lossy())?;
                found.in_executable = true;
                Some(found)
            }
        }
    }

    /// The OpenSSL in `mapped` (a path as `pid` sees it), if that file defines the SSL
    /// functions.
    pub fn openssl_at(&mut self, proc_root: &Path, pid: u32, mapped: &str) -> Option<OpenSsl> {
        if !mapped.starts_with('/') {
            return None;
        }
        let path = proc_root
            .join(pid.to_string())
            .join("root")
            .join(mapped.trim_start_matches('/'));
        let functions = self.functions(&path);
        if functions.is_empty() {
            return None;
        }
        Some(OpenSsl {
            path,
            mapped: mapped.to_string(),
            functions,
            in_executable: false,
        })
    }
}

/// A shared OpenSSL by its name (`libssl.so.3`, `libssl.so`).
pub fn is_libssl(path: &str) -> bool {
    Path::new(path)
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("libssl.so"))
}

/// The `SSL_FUNCTIONS` defined in the dynamic symbol table of the ELF file at `path`,
/// with the file offsets uprobes are attached at (address minus its segment's address,
/// plus the segment's file offset).
fn ssl_functions(path: &Path) -> Vec<SslFunction> {
    // Read as parsed: the node binary is ~100 MB, its dynamic symbols a small part.
    let Ok(file) = fs::File::open(path) else {
        return Vec::new();
    };
    let cache = object::ReadCache::new(file);
    let Ok(elf) = object::File::parse(&cache) else {
        return Vec::new();
    };
    let file_offset = |address: u64| {
        elf.segments().find_map(|seg| {
            let (offset, size) = seg.file_range();
            let start = seg.address();
            (address >= start && address < start + size).then(|| address - start + offset)
        })
    };
    let addresses = gnu_hash_lookup(&cache).unwrap_or_else(|| {
        // No GNU hash table: every dynamic symbol is looked at.
        let mut addresses = [None; SSL_FUNCTIONS.len()];
        for symbol in elf.dynamic_symbols().filter(|s| s.is_definition()) {
            let Ok(name) = symbol.name() else { continue };
            if let Some(i) = SSL_FUNCTIONS.iter().position(|&(n, _)| n == name) {
                addresses[i] = Some(symbol.address());
            }
        }
        addresses
    });
    SSL_FUNCTIONS
        .iter()
        .zip(addresses)
        .filter_map(|(&(name, cookie), address)| {
            Some(SslFunction {
                name,
                cookie,
                file_offset: file_offset(address?)?,
            })
        })
        .collect()
}

/// The addresses of `SSL_FUNCTIONS` through the file's GNU hash table: a few reads
/// where walking node's 75,000 dynamic symbols read 7 MB and took 100 ms or more, on the
/// pipeline's thread. None when the file has no such table (or is not 64-bit ELF).
fn gnu_hash_lookup(cache: &object::ReadCache<fs::File>) -> Option<[Option<u64>; SSL_FUNCTIONS.len()]> {
    use object::read::elf::{ElfFile64, Sym as _, VersionTable};
    let elf = ElfFile64::<object::Endianness, _>::parse(cache).ok()?;
    let endian = elf.endian();
    let (table, _) = elf.elf_section_table().gnu_hash(endian, cache).ok()??;
    let symbols = elf.elf_dynamic_symbol_table();
    let versions = VersionTable::default();
    let mut addresses = [None; SSL_FUNCTIONS.len()];
    for (i, &(name, _)) in SSL_FUNCTIONS.iter().enumerate() {
        let hash = object::elf::gnu_hash(name.as_bytes());
        if let Some((_, sym)) = table.find(endian, name.as_bytes(), hash, None, symbols, &versions)
            && !sym.is_undefined(endian)
        {
            addresses[i] = Some(sym.st_value(endian));
        }
    }
    Some(addresses)
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

    fn names(found: &OpenSsl) -> Vec<&str> {
        found.functions.iter().map(|f| f.name).collect()
    }

    /// The offsets agree with what `nm -D` says of the file (an address in the first,
    /// file-mapped segment of these libraries equals its file offset).
    #[test]
    fn file_offsets_match_the_dynamic_symbol_table() {
        let lib = [
            "/usr/lib/x86_64-linux-gnu/libssl.so.3",
            "/lib/x86_64-linux-gnu/libssl.so.3",
        ]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("libssl.so.3 installed");
        let found = ssl_functions(Path::new(lib));
        let nm = Command::new("nm")
            .args(["-D", "--defined-only", lib])
            .output()
            .unwrap();
        let nm = String::from_utf8_lossy(&nm.stdout);
        for f in &found {
            let line = nm
                .lines()
                // `SSL_read@@OPENSSL_3.0.0`: the name before its version.
                .find(|l| l.split_whitespace().nth(2).and_then(|n| n.split('@').next()) == Some(f.name))
                .unwrap_or_else(|| panic!("{} in nm -D", f.name));
            let address = u64::from_str_radix(line.split_whitespace().next().unwrap(), 16).unwrap();
            // libssl's text segment: file offset = address - 0 (its executable segment
            // maps at the same offset it has in the file).
            assert_eq!(f.file_offset, address, "{}", f.name);
        }
        assert_eq!(found.len(), 4);
    }

    #[test]
    fn python_maps_the_shared_libssl_and_node_exports_its_own() {
        let mut python =
            started(Command::new("python3").args(["-c", "import ssl, sys; print('up'); sys.stdin.read()"]));
        let mut cache = SymbolCache::default();
        let found = cache
            .openssl_of(Path::new("/proc"), python.id())
            .expect("python's ssl maps libssl");
        assert!(!found.in_executable);
        assert!(found.mapped.contains("libssl.so"), "{found:?}");
        assert!(found.path.starts_with(format!("/proc/{}/root", python.id())));
        assert_eq!(
            names(&found),
            ["SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex"]
        );
        assert_eq!(
            found.functions,
            cache
                .openssl_of(Path::new("/proc"), python.id())
                .unwrap()
                .functions
        );
        let _ = python.kill();
        let _ = python.wait();

        let mut node =
            started(Command::new("node").args(["-e", "console.log('up'); setTimeout(() => {}, 30000)"]));
        let found = cache
            .openssl_of(Path::new("/proc"), node.id())
            .expect("node exports OpenSSL");
        assert!(found.in_executable, "{found:?}");
        assert_eq!(
            names(&found),
            ["SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex"]
        );
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
        let mut cache = SymbolCache::default();
        assert_eq!(cache.openssl_of(Path::new("/proc"), sleep.id()), None);
        assert_eq!(
            cache.openssl_of(Path::new("/proc"), u32::MAX),
            None,
            "no such process"
        );
        let _ = sleep.kill();
        let _ = sleep.wait();
    }
}
