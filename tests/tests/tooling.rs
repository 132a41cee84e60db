//! The tooling section on a home laid out as the clients write it: MCP configurations and AI
//! keys in dotenv files and shell profiles, reported by name; no value ever leaves.

use aiscout_e2e::run_agent;
use serde_json::Value;

fn secret(label: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("sk-test-{label}{nanos:x}")
}

#[test]
fn mcp_servers_and_key_names_are_reported_and_no_value_appears() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let (dotenv_key, profile_key, mcp_key, arg_key) =
        (secret("dotenv"), secret("profile"), secret("mcp"), secret("arg"));
    std::fs::create_dir_all(h.join("project/.cursor")).unwrap();
    std::fs::write(
        h.join("project/.env"),
        format!("# local\nOPENAI_API_KEY={dotenv_key}\nDEBUG=1\nANTHROPIC_API_KEY=\n"),
    )
    .unwrap();
    std::fs::write(h.join(".bashrc"), format!("alias ll='ls -l'\nexport HF_TOKEN=\"{profile_key}\"\n")).unwrap();
    std::fs::create_dir_all(h.join(".config/Claude")).unwrap();
    std::fs::write(
        h.join(".config/Claude/claude_desktop_config.json"),
        serde_json::json!({"mcpServers": {
            "github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github", "--token", arg_key],
                       "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_notreallyatokenbutlong"}},
            "openai-tools": {"command": "uvx", "args": ["openai-mcp"], "env": {"OPENAI_API_KEY": mcp_key}}
        }})
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        h.join("project/.cursor/mcp.json"),
        r#"{"mcpServers": {"docs": {"url": "https://user:pw@mcp.example.com/sse?api_key=abc123"}}}"#,
    )
    .unwrap();

    let (stdout, stderr) = run_agent(&["scan", "--json", "--no-cache", "--only", "tooling", h.to_str().unwrap()], &[]);
    for value in [
        &dotenv_key,
        &profile_key,
        &mcp_key,
        &arg_key,
        &"ghp_notreallyatokenbutlong".to_string(),
        &"abc123".to_string(),
    ] {
        assert!(!stdout.contains(value.as_str()) && !stderr.contains(value.as_str()), "{value} leaked:\n{stdout}");
    }
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let tooling = doc["tooling"].as_array().unwrap();
    let at = |p: &str| h.join(p).display().to_string();

    let claude = tooling.iter().find(|t| t["kind"] == "mcp_config" && t["client"] == "claude-desktop").unwrap();
    assert_eq!(claude["path"], at(".config/Claude/claude_desktop_config.json"));
    let servers = claude["servers"].as_array().unwrap();
    let github = servers.iter().find(|s| s["name"] == "github").unwrap();
    assert_eq!(github["command"], "npx");
    assert_eq!(
        github["args"],
        serde_json::json!(["-y", "@modelcontextprotocol/server-github", "--token", "<redacted>"])
    );
    assert_eq!(github["env"], serde_json::json!(["GITHUB_PERSONAL_ACCESS_TOKEN"]));
    let cursor = tooling.iter().find(|t| t["kind"] == "mcp_config" && t["client"] == "cursor-project").unwrap();
    assert_eq!(cursor["servers"][0]["url"], "https://<redacted>@mcp.example.com/sse?api_key=<redacted>");

    let keys: Vec<(String, String, String)> = tooling
        .iter()
        .filter(|t| t["kind"] == "api_key")
        .map(|t| {
            (
                t["variable"].as_str().unwrap().into(),
                t["found_in"].as_str().unwrap().into(),
                t["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(keys.contains(&("OPENAI_API_KEY".into(), "dotenv".into(), at("project/.env"))), "{keys:?}");
    assert!(keys.contains(&("HF_TOKEN".into(), "shell_profile".into(), at(".bashrc"))), "{keys:?}");
    assert!(
        keys.contains(&("OPENAI_API_KEY".into(), "mcp_config".into(), at(".config/Claude/claude_desktop_config.json"))),
        "{keys:?}"
    );
    assert!(!keys.iter().any(|k| k.0 == "ANTHROPIC_API_KEY"), "an empty assignment is not a key: {keys:?}");
    assert!(!keys.iter().any(|k| k.0 == "DEBUG"));
}
