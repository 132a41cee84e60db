//! `collect` over fake homes: one configuration per client dialect, and the secret-leak tests.

use std::hash::BuildHasher;
use std::path::Path;

use super::*;
use crate::report::inventory::McpServer;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A fake key no test data contains by chance.
fn fake_key() -> String {
    format!("sk-test-{:016x}", std::collections::hash_map::RandomState::new().hash_one(line!()))
}

fn servers_of<'a>(out: &'a ToolingOutcome, path: &Path) -> (&'a str, &'a [McpServer]) {
    let shown = path.display().to_string();
    out.tooling
        .iter()
        .find_map(|e| match &e.detail {
            ToolingDetail::McpConfig { client, servers } if e.path == shown => {
                Some((client.as_str(), servers.as_slice()))
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no mcp_config for {shown} in {:#?}", out.tooling))
}

fn server<'a>(servers: &'a [McpServer], name: &str) -> &'a McpServer {
    servers.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no server {name} in {servers:#?}"))
}

fn keys_of(out: &ToolingOutcome) -> Vec<(String, String, String, Option<u32>)> {
    out.tooling
        .iter()
        .filter_map(|e| match &e.detail {
            ToolingDetail::ApiKey { variable, found_in, pid, .. } => {
                Some((e.path.clone(), variable.clone(), found_in.clone(), *pid))
            }
            _ => None,
        })
        .collect()
}

fn collect_home(home: &Path, markers: &Markers) -> ToolingOutcome {
    collect(&ToolingOptions { homes: vec![home.to_path_buf()], processes: false }, markers)
}

#[test]
fn every_client_dialect_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path();
    write(
        &h.join(".config/Claude/claude_desktop_config.json"),
        r#"{"mcpServers": {"fs": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]}}}"#,
    );
    write(
        &h.join(".claude.json"),
        r#"{"numStartups": 3, "mcpServers": {"top": {"type": "http", "url": "https://mcp.example.com/mcp"}},
            "projects": {"/work/p": {"mcpServers": {"db": {"command": "uvx", "args": ["mcp-db"]}}}, "/work/q": {}}}"#,
    );
    write(
        &h.join(".config/Code/User/settings.json"),
        "{\n  // editor\n  \"editor.fontSize\": 13,\n  /* mcp */\n  \"mcp\": {\n    \"servers\": {\n      \
         \"gh\": {\"type\": \"stdio\", \"command\": \"gh-mcp\", \"args\": [\"serve\",],},\n    },\n  },\n}\n",
    );
    write(&h.join("Library/Application Support/Code/User/settings.json"), "{\"editor.fontSize\": 12}");
    write(
        &h.join(".config/zed/settings.json"),
        "// zed\n{\n  \"context_servers\": {\n    \"old\": {\"command\": {\"path\": \"/usr/bin/old\", \"args\": [\"--x\"], \
         \"env\": {\"A\": \"1\"}}, \"settings\": {}},\n    \"new\": {\"source\": \"custom\", \"command\": \"new-mcp\", \
         \"args\": [\"-v\"], \"env\": {\"B\": \"2\"}},\n  },\n}\n",
    );
    write(
        &h.join(".codex/config.toml"),
        "model = \"o3\"\n\n[mcp_servers.docs]\ncommand = \"npx\"\nargs = [\"-y\", \"docs-mcp\"]\nenv = { DOCS_HOME = \"/d\" }\n\n\
         [mcp_servers.remote]\nurl = \"https://r.example.com/mcp\"\n",
    );
    write(
        &h.join(".config/goose/config.yaml"),
        "GOOSE_PROVIDER: openai\nextensions:\n  developer:\n    enabled: true\n    name: developer\n    type: builtin\n  \
         fetch:\n    enabled: false\n    type: stdio\n    cmd: uvx\n    args: [mcp-server-fetch]\n    envs: {FETCH_UA: x}\n    \
         env_keys: [FETCH_TOKEN]\n",
    );
    write(
        &h.join(".continue/config.yaml"),
        "name: cfg\nmcpServers:\n  - name: sqlite\n    command: npx\n    args: [\"-y\", \"mcp-sqlite\", \"/db\"]\n  \
         - name: web\n    type: sse\n    url: https://w.example.com/sse\n",
    );
    write(
        &h.join(".continue/config.json"),
        r#"{"experimental": {"modelContextProtocolServers": [{"transport": {"type": "stdio", "command": "uvx", "args": ["mcp-git"]}}]}}"#,
    );
    write(
        &h.join(".config/Code/User/globalStorage/saoudrizwan.claude-dev/settings/cline_mcp_settings.json"),
        r#"{"mcpServers": {"c": {"command": "node", "args": ["c.js"], "disabled": true}}}"#,
    );
    write(
        &h.join(".gemini/settings.json"),
        r#"{"theme": "x", "mcpServers": {"g": {"httpUrl": "https://g.example.com/mcp", "headers": {"Authorization": "Bearer t"}}}}"#,
    );
    write(&h.join(".cursor/mcp.json"), "{}");
    write(&h.join(".lmstudio/mcp.json"), "{\"mcpServers\": ");
    let project = h.join("src/app");
    write(&project.join(".mcp.json"), r#"{"mcpServers": {"local": {"command": "./server"}}}"#);
    write(
        &project.join(".vscode/mcp.json"),
        r#"{"servers": {"v": {"type": "http", "url": "http://localhost:3000/mcp"}}}"#,
    );
    let markers = Markers::from_paths([
        project.join(".mcp.json"),
        project.join(".vscode/mcp.json"),
        h.join(".cursor/mcp.json"), // also a home file: read once
    ]);

    let out = collect_home(h, &markers);

    let (client, s) = servers_of(&out, &h.join(".config/Claude/claude_desktop_config.json"));
    assert_eq!(client, "claude-desktop");
    assert_eq!(s.len(), 1);
    assert_eq!(server(s, "fs").args, ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]);

    let (client, s) = servers_of(&out, &h.join(".claude.json"));
    assert_eq!(client, "claude-code");
    assert_eq!(s.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["/work/p:db", "top"]);
    assert_eq!(server(s, "top").transport.as_deref(), Some("http"));
    assert_eq!(server(s, "/work/p:db").command.as_deref(), Some("uvx"));

    let (client, s) = servers_of(&out, &h.join(".config/Code/User/settings.json"));
    assert_eq!(client, "vscode");
    assert_eq!(server(s, "gh").args, ["serve"]);
    let unconfigured = h.join("Library/Application Support/Code/User/settings.json").display().to_string();
    assert!(out.tooling.iter().all(|e| e.path != unconfigured), "editor settings without servers are not reported");

    let (client, s) = servers_of(&out, &h.join(".config/zed/settings.json"));
    assert_eq!(client, "zed");
    assert_eq!(
        (server(s, "old").command.as_deref(), server(s, "old").args.as_slice(), server(s, "old").env.as_slice()),
        (Some("/usr/bin/old"), &["--x".to_string()][..], &["A".to_string()][..])
    );
    assert_eq!(
        (server(s, "new").command.as_deref(), server(s, "new").env.as_slice()),
        (Some("new-mcp"), &["B".to_string()][..])
    );

    let (client, s) = servers_of(&out, &h.join(".codex/config.toml"));
    assert_eq!(client, "codex");
    assert_eq!(server(s, "docs").args, ["-y", "docs-mcp"]);
    assert_eq!(server(s, "docs").env, ["DOCS_HOME"]);
    assert_eq!(server(s, "remote").url.as_deref(), Some("https://r.example.com/mcp"));
    assert_eq!(server(s, "remote").transport.as_deref(), Some("http"));

    let (client, s) = servers_of(&out, &h.join(".config/goose/config.yaml"));
    assert_eq!(client, "goose");
    assert_eq!(server(s, "developer").transport.as_deref(), Some("builtin"));
    let fetch = server(s, "fetch");
    assert_eq!((fetch.command.as_deref(), fetch.transport.as_deref()), (Some("uvx"), Some("stdio")));
    assert_eq!(fetch.env, ["FETCH_TOKEN", "FETCH_UA"]);

    let (client, s) = servers_of(&out, &h.join(".continue/config.yaml"));
    assert_eq!(client, "continue");
    assert_eq!(server(s, "sqlite").args, ["-y", "mcp-sqlite", "/db"]);
    assert_eq!(server(s, "web").url.as_deref(), Some("https://w.example.com/sse"));
    let (_, s) = servers_of(&out, &h.join(".continue/config.json"));
    assert_eq!(
        (server(s, "0").command.as_deref(), server(s, "0").args.as_slice()),
        (Some("uvx"), &["mcp-git".to_string()][..])
    );

    let (client, s) = servers_of(
        &out,
        &h.join(".config/Code/User/globalStorage/saoudrizwan.claude-dev/settings/cline_mcp_settings.json"),
    );
    assert_eq!((client, server(s, "c").command.as_deref()), ("cline", Some("node")));

    let (client, s) = servers_of(&out, &h.join(".gemini/settings.json"));
    assert_eq!(client, "gemini");
    assert_eq!(
        (server(s, "g").transport.as_deref(), server(s, "g").headers.as_slice()),
        (Some("http"), &["Authorization".to_string()][..])
    );

    assert_eq!(servers_of(&out, &h.join(".cursor/mcp.json")), ("cursor", &[][..]));
    assert_eq!(out.tooling.iter().filter(|e| e.path.ends_with(".cursor/mcp.json")).count(), 1);

    let (client, s) = servers_of(&out, &project.join(".mcp.json"));
    assert_eq!((client, server(s, "local").command.as_deref()), ("claude-code-project", Some("./server")));
    let (client, s) = servers_of(&out, &project.join(".vscode/mcp.json"));
    assert_eq!((client, server(s, "v").url.as_deref()), ("vscode-project", Some("http://localhost:3000/mcp")));

    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    let err = out.errors.first().unwrap();
    assert_eq!(err.path, h.join(".lmstudio/mcp.json").display().to_string());
    assert!(err.error.starts_with("cannot parse mcp configuration: invalid json at line 1"), "{}", err.error);

    let paths: Vec<&str> = out.tooling.iter().map(|e| e.path.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort_unstable();
    assert_eq!(paths, sorted);
}

#[test]
fn secret_values_appear_nowhere_in_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path();
    let [dotenv, profile, fish, mcp_env, arg_flag, arg_bare, header, url, broken_json, broken_toml] =
        std::array::from_fn::<String, 10, _>(|i| format!("{}{i}", fake_key()));
    let project = h.join("proj");
    write(&project.join(".env"), &format!("# settings\nOPENAI_API_KEY={dotenv}\nEMPTY_OPENAI_API_KEY=\n"));
    write(&project.join(".env.example"), "OPENAI_API_KEY=\nHF_TOKEN=${HF_TOKEN}\n");
    write(&h.join(".bashrc"), &format!("alias ll='ls -l'\nexport ANTHROPIC_API_KEY=\"{profile}\"\n"));
    write(&h.join(".config/fish/config.fish"), &format!("set -gx MISTRAL_API_KEY {fish}\n"));
    write(
        &h.join(".cursor/mcp.json"),
        &format!(
            r#"{{"mcpServers": {{
                "s": {{"command": "npx", "args": ["srv", "--api-key", "{arg_flag}", "{arg_bare}", "--header", "Authorization: Bearer {header}"],
                       "env": {{"GROQ_API_KEY": "{mcp_env}", "OPENAI_API_KEY": "${{input:openai}}"}}}},
                "r": {{"url": "https://mcp.example.com/sse?api_key={url}"}}
            }}}}"#
        ),
    );
    write(
        &h.join(".gemini/settings.json"),
        &format!("{{\"mcpServers\": {{\"x\": {{\"env\": {{\"K\": \"{broken_json}\"}} \"y\""),
    );
    write(&h.join(".codex/config.toml"), &format!("[mcp_servers.x]\nenv = {{ K = \"{broken_toml}\" "));
    let markers = Markers::from_paths([project.join(".env"), project.join(".env.example")]);

    let out = collect_home(h, &markers);
    let json = serde_json::to_string(&serde_json::json!({"tooling": out.tooling, "errors": out.errors})).unwrap();

    for (what, value) in [
        ("dotenv", &dotenv),
        ("profile", &profile),
        ("fish", &fish),
        ("mcp env", &mcp_env),
        ("--api-key argument", &arg_flag),
        ("bare argument", &arg_bare),
        ("header argument", &header),
        ("url", &url),
        ("broken json", &broken_json),
        ("broken toml", &broken_toml),
    ] {
        assert!(!json.contains(value.as_str()), "{what} value leaked: {json}");
    }
    let keys = keys_of(&out);
    let shown = |p: &Path| p.display().to_string();
    let expect = [
        (shown(&h.join(".bashrc")), "ANTHROPIC_API_KEY", "shell_profile"),
        (shown(&h.join(".config/fish/config.fish")), "MISTRAL_API_KEY", "shell_profile"),
        (shown(&h.join(".cursor/mcp.json")), "GROQ_API_KEY", "mcp_config"),
        (shown(&project.join(".env")), "OPENAI_API_KEY", "dotenv"),
    ];
    let expect: Vec<_> = expect.iter().map(|(p, v, f)| (p.clone(), v.to_string(), f.to_string(), None)).collect();
    assert_eq!(keys, expect);
    assert!(json.contains("\"--api-key\"") && json.contains("Authorization: <redacted>"), "{json}");
    assert_eq!(out.errors.len(), 2, "{:?}", out.errors);
}

#[test]
fn process_environments_are_read_from_proc() {
    let proc_root = tempfile::tempdir().unwrap();
    let p = proc_root.path();
    write(&p.join("42/environ"), "PATH=/bin\0OPENAI_API_KEY=sk-1\0OPENAI_API_KEY=sk-1\0HF_TOKEN=\0");
    write(&p.join("self/environ"), "GROQ_API_KEY=x\0");
    write(&p.join("7/other"), "");
    let opts = ToolingOptions { homes: Vec::new(), processes: true };
    let out = collect_from(&opts, &Markers::default(), p);
    let path = p.join("42/environ").display().to_string();
    assert_eq!(keys_of(&out), [(path, "OPENAI_API_KEY".to_string(), "process_environment".to_string(), Some(42))]);
    assert!(out.errors.is_empty());
}

/// Kills the child when the test ends, failed or not.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_running_process_key_is_named_never_shown() {
    let fake = fake_key();
    let child = Child(std::process::Command::new("sleep").arg("30").env("OPENAI_API_KEY", &fake).spawn().unwrap());
    let pid = child.0.id();
    // Until the child has exec'd, its environ is still the test's own.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default().starts_with(b"sleep\0") {
        assert!(std::time::Instant::now() < deadline, "sleep did not start");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }

    let out = collect(&ToolingOptions { homes: Vec::new(), processes: true }, &Markers::default());

    let path = format!("/proc/{pid}/environ");
    let entry = out.tooling.iter().find(|e| e.path == path).unwrap_or_else(|| panic!("pid {pid} not reported"));
    assert_eq!(
        entry.detail,
        ToolingDetail::ApiKey {
            variable: "OPENAI_API_KEY".into(),
            provider: Some("openai".into()),
            found_in: "process_environment".into(),
            pid: Some(pid),
        }
    );
    let json = serde_json::to_string(&serde_json::json!({"tooling": out.tooling, "errors": out.errors})).unwrap();
    assert!(!json.contains(&fake), "the process's key value leaked");
    drop(child);
}

#[test]
fn files_the_walk_found_are_not_read_through_a_directory_swapped_for_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let (home, outside) = (root.join("home"), root.join("outside"));
    write(&home.join("proj/.env"), "OPENAI_API_KEY=x\n");
    write(&home.join("proj/.mcp.json"), r#"{"mcpServers": {"inside": {"command": "npx"}}}"#);
    write(&outside.join(".env"), "ANTHROPIC_API_KEY=y\n");
    write(&outside.join(".mcp.json"), r#"{"mcpServers": {"outside": {"command": "npx"}}}"#);
    let markers = Markers::from_paths([home.join("proj/.env"), home.join("proj/.mcp.json")]);
    let before = collect(&ToolingOptions { homes: Vec::new(), processes: false }, &markers);
    assert_eq!(keys_of(&before).len(), 1, "{:#?}", before.tooling);
    assert_eq!(server(servers_of(&before, &home.join("proj/.mcp.json")).1, "inside").name, "inside");

    // Between the walk and the read, the project directory becomes a link to another tree.
    std::fs::rename(home.join("proj"), home.join("proj.moved")).unwrap();
    std::os::unix::fs::symlink(&outside, home.join("proj")).unwrap();
    let after = collect(&ToolingOptions { homes: Vec::new(), processes: false }, &markers);
    assert!(after.tooling.is_empty(), "read through the link: {:#?}", after.tooling);
    assert_eq!(after.errors.len(), 2, "{:#?}", after.errors);
    assert!(
        after.errors.iter().all(|e| e.error.contains("cannot read: too many levels of symbolic links")),
        "{:#?}",
        after.errors
    );
}
