//! Classes of secrets, named from the globs that find them.
/// A class name for a secret glob the user did not classify.
pub fn secret_class(glob: &str) -> &'static str {
    let g = glob.to_ascii_lowercase();
    let has = |s: &str| g.contains(s);
    if has(".ssh") || has("id_rsa") || has("id_ed25519") {
        "ssh_key"
    } else if has(".aws") || has("gcloud") || has(".azure") || has("credentials.json") {
        "cloud_credentials"
    } else if has(".kube") || has("kubeconfig") {
        "kube_config"
    } else if has(".docker") || has("containers/auth") {
        "container_credentials"
    } else if has(".env") {
        "env_file"
    } else if has("netrc") {
        "netrc"
    } else if has(".npmrc") || has(".pypirc") || has(".cargo/credentials") || has(".gem/credentials") {
        "package_token"
    } else if has("shadow") || has("gshadow") {
        "system_password"
    } else if has("chrom") || has("firefox") || has("mozilla") || has("cookies") || has("login data") {
        "browser_store"
    } else if has("keyring") || has("keychain") || has("kwallet") || has(".password-store") || has(".gnupg") {
        "keychain"
    } else if has("git-credentials") || has(".config/gh") {
        "vcs_token"
    } else {
        "secret"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_classes_from_globs() {
        assert_eq!(secret_class("~/.ssh/id_*"), "ssh_key");
        assert_eq!(secret_class("~/.aws/credentials"), "cloud_credentials");
        assert_eq!(secret_class("**/.env"), "env_file");
        assert_eq!(secret_class("/etc/shadow"), "system_password");
        assert_eq!(secret_class("/opt/thing"), "secret");
    }
}
