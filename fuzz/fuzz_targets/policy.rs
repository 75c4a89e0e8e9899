//! The policy loader: any text is a policy or a list of errors with their places,
//! never a panic. A policy that loads is then evaluated against a few calls and
//! effects (its globs, `~` expansion, agents, scopes, the static secrets of an
//! environment), which must not panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::{
    host::{environ, workload::Workload},
    policy::{CallFacts, EffectKind, Homes, Policy, lifetime},
    transport::bearer::Claims,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let policy = match Policy::parse("fuzz", text) {
        Ok(p) => p,
        Err(e) => {
            assert!(!e.errors.is_empty(), "an error without a mistake named");
            let _ = e.to_string();
            return;
        }
    };
    let _ = (policy.summary(), policy.cmdline_globs());
    let homes = Homes {
        owner: Some("/home/alice".into()),
        started_with: Some("/srv/app".into()),
    };
    let claims = Claims {
        sub: Some("alice@example.com".into()),
        client_id: Some("cursor".into()),
        iss: Some("https://idp.example".into()),
        aud: vec!["mcp".into()],
        scope: Some("files:read".into()),
        exp: None,
        iat: None,
    };
    let paths = [
        "/home/alice/.ssh/id_rsa",
        "/srv/app/data/x.txt",
        "/etc/passwd",
        "/tmp/../home/alice/.aws/credentials",
        "",
    ];
    let files: Vec<String> = paths.iter().map(|s| s.to_string()).collect();
    let exec = vec!["/bin/sh".to_string()];
    let connect = vec!["10.0.0.1:443".to_string(), "[::1]:80".to_string()];
    // A pod's container, so that `container`, `pod` and `cgroup` matchers run too.
    let workload = Workload::from_path(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod9de49c88_cb1b_4a5e_9d1f_0123456789ab.slice/cri-containerd-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope",
    );
    let servers = [
        policy.match_server(
            "npx -y @modelcontextprotocol/server-filesystem /tmp",
            "/usr/bin/node",
            workload.as_ref(),
        ),
        policy.match_server("python3 server.py", "/usr/bin/python3.12", None),
        (!policy.servers.is_empty()).then_some(0),
        None,
    ];
    for server in servers {
        for (tool, token) in [("read_file", Some(&claims)), ("", None)] {
            let call = CallFacts {
                tool,
                client_name: Some("claude-code"),
                client_uid: Some(1000),
                client_exe: Some("/usr/bin/node"),
                client_workload: workload.as_ref(),
                token,
                homes: &homes,
                files: &files,
                exec: &exec,
                connect: &connect,
            };
            let _ = policy.check_call(server, &call);
        }
        for path in paths {
            let _ = policy.is_noise(path, &homes);
            let _ = policy.secret(server, path, &homes);
            let _ = policy.check_effect(server, EffectKind::File, path, &homes);
        }
        let _ = policy.check_effect(server, EffectKind::Exec, "/bin/sh", &homes);
        let _ = policy.check_effect(server, EffectKind::Connect, "10.0.0.1:443", &homes);
        // Its `secret_env` globs on names from an environment (the input itself too,
        // as environ bytes), and its `static_secrets` on what they find.
        let env = environ::parse_names(data, false);
        let mut statics = policy.secret_env.static_secrets(&env);
        let named = environ::parse_names(b"GITHUB_TOKEN=x\0MY_API_KEY=y\0PATH=/bin\0", false);
        statics
            .found
            .extend(policy.secret_env.static_secrets(&named).found);
        let _ = policy.static_secret_violation(server, &statics.found);
    }
    let _ = lifetime(&claims, 1_800_000_000, policy.short_lived_tokens_s);
});
