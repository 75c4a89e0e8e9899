//! Home folders from the password database: what `~` means for a process owner.
/// The home folder of `uid`, from the password database; None when it has no entry
/// (or an empty or relative home).
pub fn home_of(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd_home(&passwd, uid)
}

fn passwd_home(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[2].parse() == Ok(uid) && f[5].starts_with('/')).then(|| f[5].to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homes_come_from_passwd_and_an_unknown_uid_has_none() {
        assert_eq!(home_of(0).as_deref(), Some("/root"));
        let passwd = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\nodd:x:7:7:::/bin/sh\n";
        assert_eq!(passwd_home(passwd, 65534).as_deref(), Some("/nonexistent"));
        assert_eq!(passwd_home(passwd, 7), None, "an empty home is no home");
        assert_eq!(passwd_home(passwd, 4242), None, "no entry, no home");
    }
}
