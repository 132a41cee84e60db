//! Property tests of the tooling parsers: arbitrary bytes never panic them, and a secret value
//! put anywhere in a configuration never comes out of them.

// Test code fails by panicking; helpers outside #[test] functions need the same allowance.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use aiscout_agent::detectors::tooling::{
    key_names_in_dotenv, key_names_in_environ, parse_mcp_config, parse_mcp_json, parse_mcp_toml, parse_mcp_yaml,
};
use proptest::prelude::*;

/// Clients whose server collections differ (`projects.*.mcpServers`, `context_servers`, lists).
const CLIENTS: &[&str] = &["claude-code", "vscode", "zed", "continue", "goose", "codex", "kiro-project"];

/// Valid configurations to mutate, one per format and shape.
const SEEDS: &[(&str, &str)] = &[
    ("a.json", r#"{"mcpServers": {"s": {"command": "npx", "args": ["-y", "x"], "env": {"OPENAI_API_KEY": "v"}}}}"#),
    ("a.json", "{\"mcp\": {\"servers\": {\"s\": {\"type\": \"http\", \"url\": \"https://h/x\",},}, // c\n}}"),
    ("a.json", r#"{"projects": {"/p": {"mcpServers": {"s": {"command": {"path": "/b", "args": ["1"]}}}}}}"#),
    ("a.toml", "[mcp_servers.s]\ncommand = \"npx\"\nargs = [\"-y\"]\nenv = { K = \"v\" }\n"),
    ("a.yaml", "extensions:\n  s:\n    type: stdio\n    cmd: uvx\n    envs: {K: v}\nmcpServers:\n  - name: n\n    command: c\n"),
    ("a.env", "export OPENAI_API_KEY=\"v\"\nset -gx HF_TOKEN v\nGROQ_API_KEY='v' # c\n"),
];

fn run_all(bytes: &[u8]) {
    for client in CLIENTS {
        let _ = parse_mcp_json(client, bytes);
        let _ = parse_mcp_toml(client, bytes);
        let _ = parse_mcp_yaml(client, bytes);
    }
    let _ = key_names_in_dotenv(bytes);
    let _ = key_names_in_environ(bytes);
}

fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (0..SEEDS.len(), prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8)).prop_map(
        |(seed, edits)| {
            let mut bytes = SEEDS[seed].1.as_bytes().to_vec();
            for (at, byte, op) in edits {
                let i = at.index(bytes.len() + 1);
                match op {
                    0 if i < bytes.len() => bytes[i] = byte,
                    1 => bytes.insert(i, byte),
                    _ if i < bytes.len() => {
                        bytes.remove(i);
                    }
                    _ => {}
                }
            }
            bytes
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        run_all(&bytes);
    }

    #[test]
    fn structured_text_never_panics(text in "[\\[\\]{}:,\"'=#\\n a-z0-9._*/$-]{0,400}") {
        run_all(text.as_bytes());
    }

    #[test]
    fn mutated_configurations_never_panic(bytes in mutated()) {
        run_all(&bytes);
    }

    /// A secret in an env value, an argument, a header or a URL query never comes out.
    #[test]
    fn secret_values_never_come_out(secret in "[A-Za-z0-9]{12,24}", client in prop::sample::select(CLIENTS)) {
        let value = format!("sk-{secret}");
        let json = format!(
            r#"{{"mcpServers": {{"s": {{"command": "npx", "args": ["--token", "{value}", "{value}", "Authorization: Bearer {value}"],
                "env": {{"OPENAI_API_KEY": "{value}"}}, "headers": {{"X-Api-Key": "{value}"}},
                "url": "https://h/x?key={value}"}}}},
              "servers": {{"t": {{"cmd": "run --api-key {value}", "envs": {{"K": "{value}"}}}}}}}}"#
        );
        for (name, text) in [("a.json", json.clone()), ("a.yaml", json.clone())] {
            let out = parse_mcp_config(client, name, text.as_bytes()).unwrap();
            let shown = serde_json::to_string(&out.servers).unwrap();
            prop_assert!(!shown.contains(&secret), "{} leaked: {}", secret, shown);
            let names = out.literal_env.join(",");
            prop_assert!(!names.contains(&secret), "{} leaked in env names", secret);
        }
        let toml = format!("[mcp_servers.s]\ncommand = \"npx\"\nargs = [\"--api-key\", \"{value}\"]\nenv = {{ OPENAI_API_KEY = \"{value}\" }}\n");
        let shown = serde_json::to_string(&parse_mcp_toml(client, toml.as_bytes()).unwrap().servers).unwrap();
        prop_assert!(!shown.contains(&secret), "{} leaked: {}", secret, shown);
        let broken = [json.get(..json.len() / 2).unwrap_or_default().to_string(), format!("{toml}[x")];
        for text in broken {
            for result in [parse_mcp_json(client, text.as_bytes()), parse_mcp_toml(client, text.as_bytes()), parse_mcp_yaml(client, text.as_bytes())] {
                if let Err(e) = result {
                    prop_assert!(!e.contains(&secret), "{} leaked in error: {}", secret, e);
                }
            }
        }
        let names = key_names_in_dotenv(format!("OPENAI_API_KEY={value}\nexport HF_TOKEN=\"{value}\"\n").as_bytes());
        prop_assert_eq!(names, vec!["HF_TOKEN".to_string(), "OPENAI_API_KEY".to_string()]);
    }
}

#[test]
fn hostile_nesting_fails_fast() {
    let deep = "[".repeat(200_000);
    let objects = "{\"a\":".repeat(200_000);
    let dotted = format!("{}= 1", "a.".repeat(100_000));
    let tables = format!("[{}a]", "a.".repeat(100_000));
    // The worst the YAML bounds let through: 256 nested flow mappings, then 1 MiB of tokens.
    let yaml_worst = format!("{}{}", "{\"a\":".repeat(256), "x,".repeat(520_000));
    let started = std::time::Instant::now();
    for text in [&deep, &objects, &dotted, &tables, &yaml_worst] {
        run_all(text.as_bytes());
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?}", started.elapsed());
}
