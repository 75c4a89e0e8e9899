//! Home folders from the password database: what `~` means for a process owner.
use std::path::PathBuf;

use nix::unistd::{Uid, User};

/// The home folder of `uid`, from the password database through NSS (so LDAP or sssd
/// users count, not only /etc/passwd); None when it has no entry, the lookup fails,
/// or the home is not usable (see `usable_home`).
pub fn home_of(uid: u32) -> Option<String> {
    let user = User::from_uid(Uid::from_raw(uid)).ok()??;
    usable_home(user.dir)
}

/// An empty or relative home is no home (`~` would then match relative to wherever
/// the process runs); a non-UTF-8 one cannot go into a glob.
fn usable_home(dir: PathBuf) -> Option<String> {
    if !dir.is_absolute() {
        return None;
    }
    dir.into_os_string().into_string().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homes_come_from_passwd_and_an_unknown_uid_has_none() {
        assert_eq!(home_of(0).as_deref(), Some("/root"));
        assert_eq!(home_of(4242424), None, "no entry, no home");
        assert_eq!(
            usable_home("/nonexistent".into()).as_deref(),
            Some("/nonexistent")
        );
        assert_eq!(usable_home("".into()), None, "an empty home is no home");
        assert_eq!(usable_home("home/x".into()), None, "nor is a relative one");
    }
}
