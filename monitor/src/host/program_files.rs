//! The files a server's runtime opens to start itself: its executable, the interpreter
//! named on a script's `#!` line, the script an interpreter was given, and the folder
//! of that script (Python lists it: it is the first entry of `sys.path`). Opening
//! them is runtime noise, not an effect of any call. They come from what the starter
//! of the process chose (exec path, argv), read once when the server is found.
use std::{
    fs,
    io::Read as _,
    path::{Path, PathBuf},
};

/// Interpreters whose first non-option argument is the program they run.
const INTERPRETERS: &[&str] = &[
    "python", "node", "nodejs", "deno", "bun", "ruby", "perl", "php", "sh", "bash", "dash", "zsh",
];

/// Absolute paths (as given and canonical) of the files `pid` opens to start itself.
pub fn program_files(proc_root: &Path, pid: u32, exe: &str, argv: &[String]) -> Vec<String> {
    let dir = proc_root.join(pid.to_string());
    let cwd = fs::read_link(dir.join("cwd")).unwrap_or_default();
    let mut out = Vec::new();
    let mut add = |p: PathBuf| {
        let abs = if p.is_absolute() { p } else { cwd.join(p) };
        // The kernel gives the path as opened; the canonical form covers symlinks.
        for form in [Some(abs.clone()), fs::canonicalize(&abs).ok()]
            .into_iter()
            .flatten()
        {
            let s = form.to_string_lossy().into_owned();
            if !out.contains(&s) {
                out.push(s);
            }
        }
    };
    if !exe.is_empty() {
        add(PathBuf::from(exe));
        if let Some(interp) = shebang(Path::new(exe)) {
            add(interp);
            add(folder_of(Path::new(exe)));
        }
    }
    if let Ok(real) = fs::read_link(dir.join("exe")) {
        add(real);
    }
    if let Some(script) = interpreted_script(exe, argv, &cwd) {
        add(folder_of(&script));
        add(script);
    }
    out
}

fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The interpreter of a `#!` script.
fn shebang(path: &Path) -> Option<PathBuf> {
    let mut head = [0u8; 256];
    let n = fs::File::open(path).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = line.split(|&b| b == b'\n').next()?;
    let interp = String::from_utf8_lossy(line);
    let first = interp.split_whitespace().next()?;
    first.starts_with('/').then(|| PathBuf::from(first))
}

/// The program an interpreter runs: its first argument that is not an option and is a
/// regular file.
fn interpreted_script(exe: &str, argv: &[String], cwd: &Path) -> Option<PathBuf> {
    let name = Path::new(exe).file_name()?.to_string_lossy();
    if !INTERPRETERS.iter().any(|i| name.starts_with(i)) {
        return None;
    }
    let arg = argv.iter().skip(1).find(|a| !a.starts_with('-'))?;
    let path = cwd.join(arg);
    fs::metadata(&path).ok()?.is_file().then(|| PathBuf::from(arg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exe_shebang_interpreter_and_script_are_the_programs_own_files() {
        let dir = std::env::temp_dir().join(format!("program-files-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let script = dir.join("tool");
        fs::write(&script, "#!/usr/bin/python3 -u\nprint(1)\n").unwrap();
        fs::write(dir.join("server.py"), "print(1)\n").unwrap();
        let me = std::process::id();
        let cwd = fs::read_link(format!("/proc/{me}/cwd")).unwrap();
        let files = program_files(Path::new("/proc"), me, script.to_str().unwrap(), &[]);
        assert!(files.contains(&script.display().to_string()), "{files:?}");
        assert!(files.contains(&"/usr/bin/python3".to_string()), "{files:?}");
        assert!(files.contains(&dir.display().to_string()), "{files:?}");
        let server = dir.join("server.py").display().to_string();
        let argv = vec!["python3".to_string(), "-u".to_string(), server.clone()];
        assert_eq!(
            interpreted_script("/usr/bin/python3.11", &argv, &cwd),
            Some(PathBuf::from(&server))
        );
        assert_eq!(
            interpreted_script("/usr/bin/cat", &argv, &cwd),
            None,
            "not an interpreter"
        );
        let module = vec![
            "python3".to_string(),
            "-m".to_string(),
            "mcp_server_time".to_string(),
        ];
        assert_eq!(interpreted_script("/usr/bin/python3", &module, &cwd), None);
        let _ = fs::remove_dir_all(dir);
    }
}
