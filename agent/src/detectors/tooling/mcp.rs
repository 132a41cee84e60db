//! MCP servers: the one parser of a server entry that every client and format share, the
//! parsing of a configuration file's bytes (its format read by [`super::mcp_formats`], its
//! server collections named by the catalog), and the reading of a configuration file into its
//! `mcp_config` (and `api_key`) entries.
//!
//! A server entry is an object; its fields are looked for in the places the clients use:
//!
//! | field | where |
//! |---|---|
//! | transport | `type`, `transport` (a word), `transport.type`; else `stdio` when a command is given; else, for a server declared by URL only, `sse` when the URL's path ends in `/sse` and `http` (streamable HTTP) otherwise |
//! | command | `command` (a string), `command.path` (Zed), `cmd` (Goose), `transport.command` (Continue) |
//! | args | `args`, `command.args`, `transport.args` |
//! | env names | keys of `env`, `envs` (Goose), `command.env`, `transport.env`; the lists `env_keys` (Goose), `env_vars` (Codex) |
//! | url | `url`, `uri` (Goose), `httpUrl` (Gemini), `serverUrl` (Windsurf), `transport.url` |
//! | header names | keys of `headers`, `http_headers` and `env_http_headers` (Codex), `transport.headers`, `requestOptions.headers` |

use std::path::Path;

use serde_json::{Map, Value};

use super::catalog::{self, Catalog, KeyPath};
use super::files::{self, Origin, Oversize};
use super::keys::is_literal_value;
use super::mcp_formats;
use super::{Found, FOUND_IN_MCP_CONFIG};
use crate::redact;
use crate::report::inventory::{McpServer, ToolingDetail};

/// Largest configuration file read (Claude Code's `~/.claude.json` also keeps per-project state
/// and grows to megabytes).
const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

type Fields = &'static [&'static [&'static str]];
const TRANSPORT: Fields = &[&["type"], &["transport"], &["transport", "type"]];
const COMMAND: Fields = &[&["command"], &["command", "path"], &["cmd"], &["transport", "command"]];
const ARGS: Fields = &[&["args"], &["command", "args"], &["transport", "args"]];
const ENV: Fields = &[&["env"], &["envs"], &["command", "env"], &["transport", "env"]];
const ENV_NAMES: Fields = &[&["env_keys"], &["env_vars"]];
const URL: Fields = &[&["url"], &["uri"], &["httpUrl"], &["serverUrl"], &["transport", "url"]];
const HEADERS: Fields = &[
    &["headers"],
    &["http_headers"],
    &["env_http_headers"],
    &["transport", "headers"],
    &["requestOptions", "headers"],
];

/// What one MCP configuration declares. Holds names only: no value of an `env` or a header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct McpDeclarations {
    /// The servers, sorted by name.
    pub servers: Vec<McpServer>,
    /// Names of the environment variables some server is given a literal value for (not a
    /// reference such as `${input:x}`), sorted: the candidates for `api_key` entries.
    pub literal_env: Vec<String>,
}

/// The servers a JSON (or JSONC) configuration of `client` declares.
pub fn parse_mcp_json(client: &str, bytes: &[u8]) -> Result<McpDeclarations, String> {
    Ok(declarations(&mcp_formats::parse_json(bytes)?, collections(client)))
}

/// The servers a TOML configuration (Codex `config.toml`) of `client` declares.
pub fn parse_mcp_toml(client: &str, bytes: &[u8]) -> Result<McpDeclarations, String> {
    Ok(declarations(&mcp_formats::parse_toml(bytes)?, collections(client)))
}

/// The servers a YAML configuration (Goose, Continue) of `client` declares.
pub fn parse_mcp_yaml(client: &str, bytes: &[u8]) -> Result<McpDeclarations, String> {
    Ok(declarations(&mcp_formats::parse_yaml(bytes)?, collections(client)))
}

/// The servers a configuration file named `file_name` declares, parsed by its extension:
/// `.toml`, `.yaml`/`.yml`, anything else JSON.
pub fn parse_mcp_config(client: &str, file_name: &str, bytes: &[u8]) -> Result<McpDeclarations, String> {
    Ok(declarations(&mcp_formats::parse_by_extension(file_name, bytes)?, collections(client)))
}

/// Where `client` keeps its servers, from the catalog (none when the catalog does not parse).
fn collections(client: &str) -> &'static [KeyPath] {
    catalog::catalog().map(|c| c.collections(client)).unwrap_or_default()
}

/// The servers in the `collections` of a parsed configuration. A collection is an object
/// (server name → entry) or a list (entries named by their `name`, else by their index); a
/// `*` in a collection's path matches every key, which prefixes the server names (`<key>:`).
/// Anything else is ignored: a client ignores what it does not understand, and so do we.
pub fn declarations(doc: &Value, collections: &[KeyPath]) -> McpDeclarations {
    let mut out = McpDeclarations::default();
    for path in collections {
        let mut found = Vec::new();
        collections_at(doc, path, String::new(), &mut found);
        for (prefix, collection) in found {
            let entries: Vec<(String, &Value)> = match collection {
                Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
                Value::Array(list) => list
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        (v.get("name").and_then(Value::as_str).map_or_else(|| i.to_string(), str::to_string), v)
                    })
                    .collect(),
                _ => Vec::new(),
            };
            for (name, entry) in entries {
                if let Some(server) = server(format!("{prefix}{name}"), entry, &mut out.literal_env) {
                    out.servers.push(server);
                }
            }
        }
    }
    out.servers.sort_by(|a, b| a.name.cmp(&b.name));
    out.servers.dedup();
    out.literal_env.sort();
    out.literal_env.dedup();
    out
}

/// The values at `path` below `v`, with the keys `*` matched on the way as a name prefix.
fn collections_at<'a>(v: &'a Value, path: &[String], prefix: String, out: &mut Vec<(String, &'a Value)>) {
    let Some((head, rest)) = path.split_first() else {
        out.push((prefix, v));
        return;
    };
    let Some(map) = v.as_object() else { return };
    if head == "*" {
        for (key, child) in map {
            collections_at(child, rest, format!("{prefix}{key}:"), out);
        }
    } else if let Some(child) = map.get(head) {
        collections_at(child, rest, prefix, out);
    }
}

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.get(key))
}

fn first_text(entry: &Value, fields: Fields) -> Option<&str> {
    fields.iter().find_map(|f| at(entry, f)?.as_str())
}

fn objects(entry: &Value, fields: Fields) -> impl Iterator<Item = &Map<String, Value>> {
    fields.iter().filter_map(move |f| at(entry, f)?.as_object())
}

/// One server entry; `None` when it is not an object.
fn server(name: String, entry: &Value, literal_env: &mut Vec<String>) -> Option<McpServer> {
    entry.as_object()?;
    let command = first_text(entry, COMMAND);
    let args: Vec<String> = ARGS
        .iter()
        .find_map(|f| at(entry, f)?.as_array())
        .map(|items| items.iter().filter_map(scalar_text).collect())
        .unwrap_or_default();
    let (command, args) = command_line(command, &args);
    let url = first_text(entry, URL);
    let transport = first_text(entry, TRANSPORT).map(str::to_string).or_else(|| {
        if command.is_some() {
            Some("stdio".to_string())
        } else {
            url.map(|u| url_transport(u).to_string())
        }
    });

    let mut env = Vec::new();
    for map in objects(entry, ENV) {
        for (key, value) in map {
            env.push(key.clone());
            if value.as_str().is_some_and(is_literal_value) {
                literal_env.push(key.clone());
            }
        }
    }
    let listed = ENV_NAMES.iter().filter_map(|f| at(entry, f)?.as_array()).flatten();
    env.extend(listed.filter_map(Value::as_str).map(str::to_string));
    env.sort();
    env.dedup();
    let mut headers: Vec<String> = objects(entry, HEADERS).flat_map(|m| m.keys().cloned()).collect();
    headers.sort();
    headers.dedup();

    Some(McpServer { name, transport, command, args, url: url.map(redact::text), env, headers })
}

/// The transport a client infers for a server declared by URL only: `sse` when the path's last
/// segment is `sse` (the SSE transport's conventional endpoint), else `http` (streamable HTTP).
fn url_transport(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or_default().trim_end_matches('/');
    if path.rsplit('/').next().is_some_and(|last| last.eq_ignore_ascii_case("sse")) {
        "sse"
    } else {
        "http"
    }
}

/// A string, number or boolean argument as text; objects and lists are not arguments.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The command and its arguments, redacted together (`redact::cmdline`, so that an option at
/// the end of the command hides the first argument). A command string with spaces (a whole
/// command line, quotes and all) is redacted as one text by `redact::text`, which splits it as
/// a shell would.
fn command_line(command: Option<&str>, args: &[String]) -> (Option<String>, Vec<String>) {
    let words: Vec<String> = command.map(|c| c.split_whitespace().map(str::to_string).collect()).unwrap_or_default();
    let split = words.len();
    let line: Vec<String> = words.into_iter().chain(args.iter().cloned()).collect();
    let mut redacted = redact::cmdline(&line).into_iter();
    let command_words: Vec<String> = redacted.by_ref().take(split).collect();
    let command = command.map(|c| match command_words.as_slice() {
        [one] => one.clone(),
        _ => redact::text(c),
    });
    (command, redacted.collect())
}

/// Reads the MCP configuration `path` of `client` into `found`: one `mcp_config` entry (for a
/// general `settings` file only when it declares a server), one `api_key` entry per AI key an
/// `env` gives a literal value, or one error. A missing file is not an error.
pub(super) fn read_config(
    found: &mut Found,
    catalog: &Catalog,
    client: &str,
    path: &Path,
    settings: bool,
    origin: Origin,
) {
    let bytes = match files::read(path, MAX_CONFIG_BYTES, Oversize::Refuse, origin) {
        Ok(Some(b)) => b,
        Ok(None) => return,
        Err(e) => return found.error(path, format!("mcp configuration: {e}")),
    };
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let declared = match parse_mcp_config(client, &name, &bytes) {
        Ok(d) => d,
        Err(e) => return found.error(path, format!("cannot parse mcp configuration: {e}")),
    };
    drop(bytes);
    if settings && declared.servers.is_empty() {
        return;
    }
    let shown = path.display().to_string();
    for variable in declared.literal_env {
        if let Some(provider) = catalog.provider_of(&variable) {
            found.api_key(&shown, variable, provider, FOUND_IN_MCP_CONFIG, None);
        }
    }
    tracing::debug!(path = %shown, client, servers = declared.servers.len(), "mcp configuration");
    found.push(shown, ToolingDetail::McpConfig { client: client.to_string(), servers: declared.servers });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(doc: Value, at: &[&str]) -> McpDeclarations {
        declarations(&doc, &[at.iter().map(|s| (*s).to_string()).collect()])
    }

    #[test]
    fn a_standard_entry_keeps_names_and_redacts_values() {
        let d = parse(
            json!({"mcpServers": {
                "gh": {
                    "command": "npx",
                    "args": ["-y", "@modelcontextprotocol/server-github", "--api-key", "s3cr3t", 7],
                    "env": {"GITHUB_TOKEN": "ghp_abcdefghijklmnop", "OPENAI_API_KEY": "${env:OPENAI_API_KEY}"}
                },
                "remote": {"type": "sse", "url": "https://u:pw@mcp.example.com/sse?token=zzz&x=1",
                           "headers": {"Authorization": "Bearer t"}},
                "ignored": "not an object"
            }}),
            &["mcpServers"],
        );
        let [gh, remote] = d.servers.as_slice() else { panic!("{:?}", d.servers) };
        assert_eq!(gh.name, "gh");
        assert_eq!(gh.transport.as_deref(), Some("stdio"));
        assert_eq!(gh.command.as_deref(), Some("npx"));
        assert_eq!(gh.args, ["-y", "@modelcontextprotocol/server-github", "--api-key", redact::MARKER, "7"]);
        assert_eq!(gh.env, ["GITHUB_TOKEN", "OPENAI_API_KEY"]);
        assert_eq!(d.literal_env, ["GITHUB_TOKEN"]);
        assert_eq!(remote.transport.as_deref(), Some("sse"));
        assert_eq!(remote.url.as_deref(), Some("https://<redacted>@mcp.example.com/sse?token=<redacted>&x=1"));
        assert_eq!(remote.headers, ["Authorization"]);
        assert_eq!(remote.command, None);
    }

    #[test]
    fn wildcards_prefix_names_and_lists_name_by_field_or_index() {
        let d = parse(
            json!({"projects": {"/w/a": {"mcpServers": {"db": {"command": "pg"}}}, "/w/b": {}}}),
            &["projects", "*", "mcpServers"],
        );
        assert_eq!(d.servers.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["/w/a:db"]);
        let d = parse(
            json!({"list": [{"name": "n", "command": "a"}, {"transport": {"type": "stdio", "command": "b"}}]}),
            &["list"],
        );
        let names: Vec<_> = d.servers.iter().map(|s| (s.name.as_str(), s.command.as_deref())).collect();
        assert_eq!(names, [("1", Some("b")), ("n", Some("a"))]);
    }

    #[test]
    fn command_strings_and_header_arguments_are_scrubbed() {
        let d = parse(
            json!({"s": {"a": {
                "command": "docker run -e API_KEY=abc123 img",
                "args": ["--header", "Authorization: Bearer t0ps3cret", "echo sk-test-abcdefghijkl0123 ok", "http://h:1/x"]
            }}}),
            &["s"],
        );
        let a = d.servers.first().unwrap();
        assert_eq!(a.command.as_deref(), Some("docker run -e API_KEY=<redacted> img"));
        assert_eq!(a.args, ["--header", "Authorization: <redacted>", "echo <redacted> ok", "http://h:1/x"]);
    }

    #[test]
    fn every_format_redacts_args_urls_and_commands_and_keeps_no_env_or_header_value() {
        let secrets = ["S3cretArg0001", "S3cretUrl0002", "S3cretCmd0003", "S3cretEnv0004", "S3cretHdr0005"];
        let json = json!({"mcpServers": {"a": {
            "command": "sh -c 'curl -H \"Authorization: Bearer S3cretCmd0003\" https://h'",
            "args": ["--header", "X-Api-Key: S3cretArg0001", "--port", "8080"],
            "url": "https://hooks.slack.com/services/T0/B0/S3cretUrl0002",
            "env": {"TOKEN": "S3cretEnv0004"}, "headers": {"Authorization": "Bearer S3cretHdr0005"}
        }}});
        let toml = "[mcp_servers.a]\ncommand = \"npx\"\nargs = [\"--token\", \"S3cretArg0001\"]\n\
                    url = \"https://u:S3cretUrl0002@h/x\"\nenv = { K = \"S3cretEnv0004\" }\n\
                    http_headers = { Authorization = \"S3cretHdr0005\" }\n";
        let yaml = "extensions:\n  a:\n    cmd: uvx\n    args: [\"--api-key=S3cretArg0001\"]\n    \
                    uri: \"https://h/sse?token=S3cretUrl0002\"\n    envs: {K: S3cretEnv0004}\n";
        let parsed = [
            parse_mcp_json("claude-desktop", json.to_string().as_bytes()),
            parse_mcp_toml("codex", toml.as_bytes()),
            parse_mcp_yaml("goose", yaml.as_bytes()),
        ];
        for p in parsed {
            let d = p.unwrap();
            assert_eq!(d.servers.len(), 1, "{d:?}");
            let shown = format!("{d:?}");
            for s in secrets {
                assert!(!shown.contains(s), "{s} leaked: {shown}");
            }
        }
    }

    #[test]
    fn other_shapes_are_found() {
        let d = parse(
            json!({"x": {
                "zed": {"command": {"path": "/bin/z", "args": ["--k"], "env": {"A": "1"}}},
                "goose": {"type": "streamable_http", "uri": "https://g/mcp", "envs": {"B": "2"}, "env_keys": ["C"]},
                "gemini": {"httpUrl": "https://g/h"},
                "windsurf": {"serverUrl": "https://w/s"}
            }}),
            &["x"],
        );
        let by = |n: &str| d.servers.iter().find(|s| s.name == n).unwrap();
        assert_eq!(by("zed").command.as_deref(), Some("/bin/z"));
        assert_eq!(by("zed").args, ["--k"]);
        assert_eq!(by("zed").env, ["A"]);
        assert_eq!(by("goose").transport.as_deref(), Some("streamable_http"));
        assert_eq!(by("goose").url.as_deref(), Some("https://g/mcp"));
        assert_eq!(by("goose").env, ["B", "C"]);
        assert_eq!(by("gemini").transport.as_deref(), Some("http"));
        assert_eq!(by("windsurf").url.as_deref(), Some("https://w/s"));
        assert_eq!(by("windsurf").transport.as_deref(), Some("http"));
    }

    #[test]
    fn a_server_declared_by_url_only_gets_its_transport() {
        let d = parse(
            json!({"x": {
                "sse": {"url": "https://h/sse"},
                "sse_query": {"url": "https://h/v1/SSE/?key=1"},
                "http": {"url": "https://h/mcp"},
                "typed": {"type": "sse", "url": "https://h/mcp"},
                "stdio": {"command": "npx", "url": "https://h/sse"},
                "nothing": {"disabled": true}
            }}),
            &["x"],
        );
        let transport = |n: &str| d.servers.iter().find(|s| s.name == n).and_then(|s| s.transport.clone());
        assert_eq!(transport("sse").as_deref(), Some("sse"));
        assert_eq!(transport("sse_query").as_deref(), Some("sse"));
        assert_eq!(transport("http").as_deref(), Some("http"));
        assert_eq!(transport("typed").as_deref(), Some("sse"));
        assert_eq!(transport("stdio").as_deref(), Some("stdio"));
        assert_eq!(transport("nothing"), None);
    }
}
