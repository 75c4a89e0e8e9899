//! Evaluating a policy: which entry a server is, whether a call or an effect stays in
//! its scope, whether a path is a secret or runtime noise.
use super::{
    globs::Homes,
    model::{CallFacts, EffectKind, Policy, SecretHit, StaticSecretsMode, Unregistered, Violation},
    secret_env::StaticSecret,
};
use crate::host::workload::Workload;

impl Policy {
    /// The server entry whose `match` fits this process (command line, exe, and where
    /// it runs), first in file order.
    pub fn match_server(&self, cmdline: &str, exe: &str, workload: Option<&Workload>) -> Option<usize> {
        self.servers.iter().position(|s| {
            s.cmdline_glob.as_ref().is_none_or(|g| g.is_match(cmdline))
                && s.exe_glob.as_ref().is_none_or(|g| g.is_match(exe))
                && s.workload.matches(workload)
        })
    }

    /// The name of the server entry that fits this process (what `Server::rule` holds).
    pub fn entry_name(&self, cmdline: &str, exe: &str, workload: Option<&Workload>) -> Option<String> {
        self.match_server(cmdline, exe, workload)
            .map(|i| self.servers[i].name.clone())
    }

    /// The index of the server entry called `name`, in this policy.
    pub fn server_index(&self, name: Option<&str>) -> Option<usize> {
        self.servers.iter().position(|s| Some(s.name.as_str()) == name)
    }

    /// The runtime-noise globs in force (the policy's `noise:`, else `RUNTIME_NOISE`).
    pub fn noise_globs(&self) -> &[String] {
        &self.noise.items
    }

    pub fn is_noise(&self, path: &str, homes: &Homes) -> bool {
        self.noise.allowing(path, homes).is_some()
    }

    /// The secret globs with `~` expanded for `homes`: what names secret files.
    pub fn secret_globs(&self, homes: &Homes) -> Vec<String> {
        self.secret_globs.expanded(homes)
    }

    /// `secret` for the first of a file's names that is one.
    pub fn secret_named<'a>(
        &self,
        server: Option<usize>,
        mut names: impl Iterator<Item = &'a str>,
        homes: &Homes,
    ) -> Option<(SecretHit, &'a str)> {
        names.find_map(|n| self.secret(server, n, homes).map(|hit| (hit, n)))
    }

    /// The secret class of `path`, and whether the server's entry allows it.
    pub fn secret(&self, server: Option<usize>, path: &str, homes: &Homes) -> Option<SecretHit> {
        let glob = self.secret_globs.detecting(path, homes)?;
        let (i, rule) = self.secrets.iter().enumerate().find(|(_, r)| r.glob == glob)?;
        let allowed_by = server.and_then(|s| {
            let rule = &self.servers[s];
            rule.secrets
                .allowing(path, homes)
                .map(|g| format!("servers.{}.secrets {g}", rule.name))
        });
        Some(SecretHit {
            class: rule.class.clone(),
            rule: format!("secrets[{i}] {}", rule.glob),
            allowed_by,
        })
    }

    /// The violation every call on (and the start of) a server no entry matches gets,
    /// when the policy says `unregistered_servers: violation`.
    pub fn unregistered_violation(&self, detail: String) -> Option<Violation> {
        (self.unregistered_servers == Unregistered::Violation).then(|| Violation {
            kind: "unregistered_server",
            detail,
            rule: "unregistered_servers".to_string(),
        })
    }

    /// The `static_secret` violation of a server (entry `server`) started with `found`
    /// in its environment, when its entry's `static_secrets:` (else the top-level one)
    /// is `violation`. One per server start, naming every variable (never a value).
    pub fn static_secret_violation(
        &self,
        server: Option<usize>,
        found: &[StaticSecret],
    ) -> Option<Violation> {
        if found.is_empty() {
            return None;
        }
        let (mode, rule) = match server.and_then(|i| self.servers.get(i)) {
            Some(s) if s.static_secrets.is_some() => (
                s.static_secrets.unwrap_or_default(),
                format!("servers.{}.static_secrets", s.name),
            ),
            _ => (self.static_secrets, "static_secrets".to_string()),
        };
        if mode != StaticSecretsMode::Violation {
            return None;
        }
        let names: Vec<String> = found
            .iter()
            .map(|s| format!("{} ({})", s.name, s.class))
            .collect();
        Some(Violation {
            kind: "static_secret",
            detail: format!(
                "started with {} secret-looking environment variable(s): {}",
                found.len(),
                names.join(", ")
            ),
            rule,
        })
    }

    /// Checks one completed call against its server's entry. Secrets are checked by the
    /// caller (it has the hits); this covers tools, agents and the scopes.
    pub fn check_call(&self, server: Option<usize>, call: &CallFacts) -> (Option<String>, Vec<Violation>) {
        let Some(si) = server else {
            let detail = format!("no server entry of {} matches this server", self.source);
            return (None, self.unregistered_violation(detail).into_iter().collect());
        };
        let s = &self.servers[si];
        let mut out = Vec::new();
        let base = &s.name;
        if let Some(tools) = &s.tools
            && tools.matching(call.tool).is_none()
        {
            out.push(Violation {
                kind: "tool_out_of_scope",
                detail: format!("tool {:?} is not in the server's tools", call.tool),
                rule: format!("servers.{base}.tools"),
            });
        }
        let agent = s.agents.iter().find(|a| {
            a.client_glob
                .as_ref()
                .is_none_or(|g| call.client_name.is_some_and(|n| g.is_match(n)))
                && a.uid.is_none_or(|u| call.client_uid == Some(u))
                && a.exe_glob
                    .as_ref()
                    .is_none_or(|g| call.client_exe.is_some_and(|e| g.is_match(e)))
                && a.token.matches(call.token)
                && a.workload.matches(call.client_workload)
        });
        if !s.agents.is_empty() && agent.is_none() {
            out.push(Violation {
                kind: "unknown_agent",
                detail: format!(
                    "no agent entry matches client {:?} (uid {}, exe {:?}{}{})",
                    call.client_name.unwrap_or("?"),
                    call.client_uid.map_or("?".to_string(), |u| u.to_string()),
                    call.client_exe.unwrap_or("?"),
                    container_detail(call.client_workload),
                    token_detail(call.token)
                ),
                rule: format!("servers.{base}.agents"),
            });
        }
        if let Some(a) = agent
            && let Some(tools) = &a.tools
            && tools.matching(call.tool).is_none()
        {
            out.push(Violation {
                kind: "tool_out_of_scope",
                detail: format!("tool {:?} is not in agent {:?}'s tools", call.tool, a.name),
                rule: format!("servers.{base}.agents.{}.tools", a.name),
            });
        }
        if let Some(files) = &s.files {
            for f in call.files {
                if files.allowing(f, call.homes).is_none() && self.secret(server, f, call.homes).is_none() {
                    out.push(Violation {
                        kind: "file_out_of_scope",
                        detail: format!("opened {f}"),
                        rule: format!("servers.{base}.files"),
                    });
                }
            }
        }
        if let Some(exec) = &s.exec {
            for e in call.exec {
                if exec.allowing(e, call.homes).is_none() {
                    out.push(Violation {
                        kind: "exec_out_of_scope",
                        detail: format!("executed {e}"),
                        rule: format!("servers.{base}.exec"),
                    });
                }
            }
        }
        if let Some(connect) = &s.connect {
            for c in call.connect {
                if connect.matching(c).is_none() {
                    out.push(Violation {
                        kind: "connect_out_of_scope",
                        detail: format!("connected to {c}"),
                        rule: format!("servers.{base}.connect"),
                    });
                }
            }
        }
        (agent.map(|a| a.name.clone()), out)
    }

    /// Scope checks for effects outside any call: files, exec, connect.
    pub fn check_effect(
        &self,
        server: Option<usize>,
        kind: EffectKind,
        what: &str,
        homes: &Homes,
    ) -> Option<Violation> {
        let s = &self.servers[server?];
        let base = &s.name;
        match kind {
            EffectKind::File => {
                let files = s.files.as_ref()?;
                (files.allowing(what, homes).is_none() && self.secret(server, what, homes).is_none()).then(
                    || Violation {
                        kind: "file_out_of_scope",
                        detail: format!("opened {what} outside any tool call"),
                        rule: format!("servers.{base}.files"),
                    },
                )
            }
            EffectKind::Exec => {
                let exec = s.exec.as_ref()?;
                exec.allowing(what, homes).is_none().then(|| Violation {
                    kind: "exec_out_of_scope",
                    detail: format!("executed {what} outside any tool call"),
                    rule: format!("servers.{base}.exec"),
                })
            }
            EffectKind::Connect => {
                let connect = s.connect.as_ref()?;
                connect.matching(what).is_none().then(|| Violation {
                    kind: "connect_out_of_scope",
                    detail: format!("connected to {what} outside any tool call"),
                    rule: format!("servers.{base}.connect"),
                })
            }
        }
    }

    /// Command-line globs of every server entry (entries matched on exe alone are found
    /// through the other watch patterns).
    pub fn cmdline_globs(&self) -> Vec<String> {
        self.servers.iter().filter_map(|s| s.cmdline.clone()).collect()
    }
}

/// `, container "0123..."` for a client in a container.
fn container_detail(w: Option<&Workload>) -> String {
    w.and_then(Workload::container_id)
        .map_or(String::new(), |id| format!(", container {id:?}"))
}

/// `, token sub "alice" iss "https://idp"` for a caller with token claims.
fn token_detail(token: Option<&crate::transport::bearer::Claims>) -> String {
    let Some(c) = token else {
        return String::new();
    };
    let mut s = String::from(", token");
    for (name, v) in [("sub", &c.sub), ("iss", &c.iss), ("client_id", &c.client_id)] {
        if let Some(v) = v {
            s.push_str(&format!(" {name} {v:?}"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::bearer::Claims;

    static HOMES: std::sync::LazyLock<Homes> = std::sync::LazyLock::new(|| Homes {
        owner: Some("/home/u".to_string()),
        started_with: None,
    });

    fn homes() -> Homes {
        HOMES.clone()
    }

    const EXAMPLE: &str = r#"
secrets: ["~/.ssh/**", "~/.aws/credentials", "**/.env", {path: "~/.kube/config", class: kube_config}]
servers:
  filesystem:
    match: { cmdline: "*server-filesystem*" }
    tools: [read_text_file, list_directory]
    files: ["/srv/docs/**"]
    secrets: ["/srv/docs/.env"]
    exec: []
    connect: ["127.0.0.1:*"]
    agents:
      claude-code: { client: "claude-code*", uid: 1000, tools: [list_directory] }
      ops: { exe: "/usr/bin/python3*" }
unregistered_servers: violation
"#;

    const SCOPED: &str = r#"
secrets: ["~/.ssh/**", "~/.aws/credentials"]
servers:
  everything-at-home:
    match: { cmdline: "*home*" }
    files: ["~/**"]
    secrets: ["~/.aws/credentials"]
    exec: ["~/bin/*", "/usr/bin/*"]
"#;

    fn facts<'a>(tool: &'a str, client: &'a str, uid: u32) -> CallFacts<'a> {
        CallFacts {
            tool,
            client_name: Some(client),
            client_uid: Some(uid),
            client_exe: Some("/usr/bin/node"),
            client_workload: None,
            token: None,
            homes: &HOMES,
            files: &[],
            exec: &[],
            connect: &[],
        }
    }

    #[test]
    fn example_policy_parses_and_checks_tools_and_agents() {
        let p = Policy::parse("p.yaml", EXAMPLE).unwrap();
        let s = p.match_server(
            "node /x/server-filesystem/dist/index.js /srv/docs",
            "/usr/bin/node",
            None,
        );
        assert_eq!(s, Some(0));
        assert_eq!(p.match_server("python3 other.py", "/usr/bin/python3", None), None);
        let (agent, v) = p.check_call(s, &facts("list_directory", "claude-code", 1000));
        assert_eq!((agent.as_deref(), v.len()), (Some("claude-code"), 0));
        let (_, v) = p.check_call(s, &facts("read_text_file", "claude-code", 1000));
        assert_eq!(v.len(), 1);
        assert_eq!(
            (v[0].kind, v[0].rule.as_str()),
            ("tool_out_of_scope", "servers.filesystem.agents.claude-code.tools")
        );
        let (_, v) = p.check_call(s, &facts("write_file", "claude-code", 1000));
        let kinds: Vec<_> = v.iter().map(|v| v.kind).collect();
        assert_eq!(
            kinds,
            ["tool_out_of_scope", "tool_out_of_scope"],
            "server list and agent list both refuse"
        );
        let (agent, v) = p.check_call(s, &facts("list_directory", "cursor", 1000));
        assert_eq!(agent, None);
        assert_eq!(
            (v[0].kind, v[0].rule.as_str()),
            ("unknown_agent", "servers.filesystem.agents")
        );
        let (_, v) = p.check_call(s, &facts("list_directory", "claude-code", 0));
        assert_eq!(v[0].kind, "unknown_agent", "uid must match too");
    }

    #[test]
    fn servers_and_agents_match_on_container_pod_and_cgroup() {
        const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let p = Policy::parse(
            "p.yaml",
            r#"
servers:
  in-pod:
    match: { pod: "1234abcd-*", cmdline: "*srv*" }
  by-container:
    match: { container: "0123456789ab*" }
    agents:
      ci: { cgroup: "/system.slice/docker-*.scope" }
      k8s: { container: "fedcba*", tools: [read] }
  by-cgroup:
    match: { cgroup: "/machine.slice/**" }
"#,
        )
        .unwrap();
        let w = |path: &str| crate::host::workload::Workload::from_path(path).unwrap();
        let docker = w(&format!("/system.slice/docker-{ID}.scope"));
        let pod = w(&format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234abcd_56ef_7890_abcd_ef1234567890.slice/cri-containerd-{ID}.scope"
        ));
        let host = w("/user.slice/user-1000.slice/session-2.scope");
        let machine = w("/machine.slice/machine-qemu.scope");
        assert_eq!(p.match_server("x srv", "/x", Some(&pod)), Some(0));
        assert_eq!(
            p.match_server("x", "/x", Some(&pod)),
            Some(1),
            "cmdline must match too"
        );
        assert_eq!(p.match_server("x srv", "/x", Some(&docker)), Some(1));
        assert_eq!(p.match_server("x", "/x", Some(&machine)), Some(2));
        assert_eq!(p.match_server("x srv", "/x", Some(&host)), None);
        assert_eq!(
            p.match_server("x srv", "/x", None),
            None,
            "unknown matches no glob"
        );
        let call = |w| CallFacts {
            client_workload: w,
            ..facts("read", "c", 1)
        };
        let (agent, v) = p.check_call(Some(1), &call(Some(&docker)));
        assert_eq!((agent.as_deref(), v.len()), (Some("ci"), 0));
        let k8s = w(&format!("/docker/{}", "fedcba9876543210".repeat(4)));
        let (agent, v) = p.check_call(Some(1), &call(Some(&k8s)));
        assert_eq!((agent.as_deref(), v.len()), (Some("k8s"), 0));
        let (agent, v) = p.check_call(Some(1), &call(Some(&host)));
        assert_eq!((agent, v[0].kind), (None, "unknown_agent"));
        let (_, v) = p.check_call(Some(1), &call(Some(&pod)));
        assert!(
            v[0].detail.contains(&format!("container \"{ID}\"")),
            "{}",
            v[0].detail
        );
    }

    #[test]
    fn agents_match_on_bearer_token_claims() {
        let p = Policy::parse(
            "p.yaml",
            r#"
servers:
  notes:
    match: { cmdline: "*notes*" }
    agents:
      alice: { sub: "alice@*", iss: "https://idp.example", tools: [read] }
      ci: { client_id: "ci-*" }
"#,
        )
        .unwrap();
        let claims = |sub: &str, iss: &str, client_id: Option<&str>| Claims {
            sub: Some(sub.into()),
            iss: Some(iss.into()),
            client_id: client_id.map(str::to_string),
            ..Claims::default()
        };
        let check = |token: Option<&Claims>| {
            let call = CallFacts {
                token,
                ..facts("read", "any-client", 1000)
            };
            let (agent, v) = p.check_call(Some(0), &call);
            (agent, v.iter().map(|v| v.kind).collect::<Vec<_>>(), v)
        };
        let alice = claims("alice@example.com", "https://idp.example", None);
        assert_eq!(check(Some(&alice)).0.as_deref(), Some("alice"));
        let forged_iss = claims("alice@example.com", "https://evil.example", None);
        let (agent, kinds, v) = check(Some(&forged_iss));
        assert_eq!(
            (agent, kinds),
            (None, vec!["unknown_agent"]),
            "every glob must match"
        );
        assert!(
            v[0].detail.contains("sub \"alice@example.com\""),
            "{}",
            v[0].detail
        );
        assert_eq!(check(None).1, ["unknown_agent"], "no token: no claim matches");
        let ci = claims("svc", "https://idp.example", Some("ci-runner"));
        assert_eq!(check(Some(&ci)).0.as_deref(), Some("ci"));
    }

    #[test]
    fn scopes_and_secrets() {
        let p = Policy::parse("p.yaml", EXAMPLE).unwrap();
        let files = vec![
            "/srv/docs/a.md".to_string(),
            "/etc/issue".to_string(),
            "/srv/docs/.env".to_string(),
        ];
        let exec = vec!["/bin/sh".to_string()];
        let connect = vec!["127.0.0.1:8080".to_string(), "[::1]:22".to_string()];
        let call = CallFacts {
            files: &files,
            exec: &exec,
            connect: &connect,
            ..facts("list_directory", "claude-code", 1000)
        };
        let (_, v) = p.check_call(Some(0), &call);
        let got: Vec<_> = v.iter().map(|v| (v.kind, v.detail.as_str())).collect();
        assert_eq!(
            got,
            [
                ("file_out_of_scope", "opened /etc/issue"),
                ("exec_out_of_scope", "executed /bin/sh"),
                ("connect_out_of_scope", "connected to [::1]:22")
            ]
        );
        let hit = p.secret(Some(0), "/home/u/.ssh/id_rsa", &homes()).unwrap();
        assert_eq!(
            (hit.class.as_str(), hit.rule.as_str(), hit.allowed_by),
            ("ssh_key", "secrets[0] ~/.ssh/**", None)
        );
        let hit = p.secret(Some(0), "/srv/docs/.env", &homes()).unwrap();
        assert_eq!(hit.class, "env_file");
        assert_eq!(
            hit.allowed_by.as_deref(),
            Some("servers.filesystem.secrets /srv/docs/.env")
        );
        assert_eq!(
            p.secret(Some(0), "/home/u/.kube/config", &homes()).unwrap().class,
            "kube_config"
        );
        assert!(p.secret(Some(0), "/home/u/notes.txt", &homes()).is_none());
        assert!(
            p.secret(Some(0), "/root/.ssh/id_rsa", &homes()).is_none(),
            "~ is the owner's home"
        );
    }

    #[test]
    fn runtime_noise_is_recognised() {
        let p = Policy::parse("p.yaml", EXAMPLE).unwrap();
        for path in [
            "/etc/localtime",
            "/sys/devices/system/cpu/online",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            "/app/node_modules/x/index.js",
            "/proc/self/maps",
        ] {
            assert!(p.is_noise(path, &homes()), "{path}");
        }
        assert!(!p.is_noise("/home/u/.ssh/id_rsa", &homes()));
        assert!(!p.is_noise("/srv/docs/a.md", &homes()));
    }

    #[test]
    fn allow_lists_use_the_owners_home_only_and_detection_both() {
        let p = Policy::parse("p.yaml", SCOPED).unwrap();
        // Started with HOME=/ by whoever launched it: `~/**` must not become `/**`.
        let h = Homes {
            owner: Some("/home/u".into()),
            started_with: Some("/".into()),
        };
        let files = ["/etc/shadow".to_string(), "/home/u/notes".to_string()];
        let call = CallFacts {
            files: &files,
            homes: &h,
            ..facts("any", "c", 1)
        };
        let (_, v) = p.check_call(Some(0), &call);
        let got: Vec<_> = v.iter().map(|v| (v.kind, v.detail.as_str())).collect();
        assert_eq!(got, [("file_out_of_scope", "opened /etc/shadow")]);
        assert!(
            p.check_effect(Some(0), EffectKind::File, "/etc/hostname", &h)
                .is_some()
        );
        assert!(
            p.check_effect(Some(0), EffectKind::Exec, "/bin/sh", &h).is_some(),
            "`~/bin/*` is not `/bin/*`"
        );
        // Credentials under the HOME it was started with: detected, not allowed.
        let h = Homes {
            owner: Some("/home/u".into()),
            started_with: Some("/tmp/h".into()),
        };
        let hit = p.secret(Some(0), "/tmp/h/.aws/credentials", &h).unwrap();
        assert_eq!(hit.class, "cloud_credentials");
        assert_eq!(hit.allowed_by, None, "the allow-list is the owner's home only");
        let hit = p.secret(Some(0), "/home/u/.aws/credentials", &h).unwrap();
        assert_eq!(
            hit.allowed_by.as_deref(),
            Some("servers.everything-at-home.secrets ~/.aws/credentials")
        );
        assert!(p.secret(Some(0), "/tmp/h/.ssh/id_rsa", &h).is_some());
    }

    #[test]
    fn without_a_passwd_entry_tilde_matches_nothing() {
        let p = Policy::parse("p.yaml", SCOPED).unwrap();
        let none = Homes::default();
        for path in ["/", "/etc/shadow", "/.ssh/id_rsa", "/home/u/x"] {
            assert!(
                p.check_effect(Some(0), EffectKind::File, path, &none).is_some(),
                "{path}"
            );
        }
        assert!(p.secret(Some(0), "/.ssh/id_rsa", &none).is_none());
        assert!(
            p.check_effect(Some(0), EffectKind::Exec, "/usr/bin/env", &none)
                .is_none(),
            "globs without ~ still apply"
        );
        let started = Homes {
            owner: None,
            started_with: Some("/tmp/h".into()),
        };
        assert!(
            p.secret(Some(0), "/tmp/h/.ssh/id_rsa", &started).is_some(),
            "detection still uses the HOME it was started with"
        );
    }

    #[test]
    fn a_folder_glob_covers_the_folder_itself() {
        let p = Policy::parse("p.yaml", EXAMPLE).unwrap();
        assert!(p.is_noise("/usr/share/zoneinfo", &homes()));
        assert!(p.is_noise("/usr/share/zoneinfo/Europe/Paris", &homes()));
        assert!(!p.is_noise("/usr/share/zoneinfo-extra", &homes()));
        assert!(
            p.check_effect(Some(0), EffectKind::File, "/srv/docs", &homes())
                .is_none()
        );
        assert!(
            p.check_effect(Some(0), EffectKind::File, "/srv", &homes())
                .is_some()
        );
    }

    #[test]
    fn calls_on_unregistered_servers_are_violations_unless_ignored() {
        let p = Policy::parse("p.yaml", EXAMPLE).unwrap();
        let (agent, v) = p.check_call(None, &facts("anything", "claude-code", 1000));
        assert_eq!(agent, None);
        assert_eq!(v.len(), 1);
        assert_eq!(
            (v[0].kind, v[0].rule.as_str()),
            ("unregistered_server", "unregistered_servers")
        );
        let ignore = EXAMPLE.replace("unregistered_servers: violation", "unregistered_servers: ignore");
        let p = Policy::parse("p.yaml", &ignore).unwrap();
        assert_eq!(p.check_call(None, &facts("anything", "c", 1)).1, []);
    }
}
