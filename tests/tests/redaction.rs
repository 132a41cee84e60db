//! Secrets never reach the output (issue 11 §1): a real process carrying planted secrets in its
//! command line and environment, and planted MCP configurations (JSON, TOML, YAML), dotenv files
//! and shell profiles in a home. None of the planted values may appear in the scan JSON, in the
//! agent's spool and state (raw bytes, after the daemon ran against a real collector), or in
//! what the collector stores (raw bytes of its data directory, and its API answers). Each
//! secret is a distinct random string named after its shape, so a leak says which shape leaked.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use aiscout_e2e::fleet::{assert_ok, run_once, Collector};
use aiscout_e2e::{run_agent, Child};
use serde_json::Value;

/// The planted secrets: each shape and the unique part of its value, which must never appear.
struct Planted(Vec<(&'static str, String)>);

impl Planted {
    fn new() -> Self {
        Self(Vec::new())
    }

    /// A new secret for `shape`: random, with digits and mixed case as real credentials have.
    fn add(&mut self, shape: &'static str) -> String {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let value = format!("Zq{:02}X{:x}{:x}Kp", self.0.len(), nanos, std::process::id());
        self.0.push((shape, value.clone()));
        value
    }

    /// Panics naming every planted secret found in `bytes` (what `place` holds).
    fn assert_absent(&self, place: &str, bytes: &[u8]) {
        let leaked: Vec<&str> = self
            .0
            .iter()
            .filter(|(_, v)| bytes.windows(v.len()).any(|w| w == v.as_bytes()))
            .map(|(shape, _)| *shape)
            .collect();
        assert!(leaked.is_empty(), "secrets of shapes {leaked:?} leaked into {place}");
    }
}

/// Every regular file below `dir`, read raw.
fn files_below(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            files_below(&path, out);
        } else if kind.is_file() {
            if let Ok(bytes) = std::fs::read(&path) {
                out.push((path.display().to_string(), bytes));
            }
        }
    }
}

/// Starts a process the agent recognises as a vLLM server (its command line names
/// `vllm.entrypoints.`) with secrets in its arguments and environment.
fn start_server(p: &mut Planted) -> Child {
    let python = "import time; time.sleep(300)";
    let args = vec![
        "-c".to_string(),
        python.to_string(),
        "vllm.entrypoints.openai.api_server".to_string(),
        "--model".to_string(),
        "/srv/m.gguf".to_string(),
        "--port".to_string(),
        "8000".to_string(),
        "--api-key".to_string(),
        p.add("argv --api-key value"),
        format!("--hf-token={}", p.add("argv --hf-token=value")),
        format!("-Dapp.db.password={}", p.add("argv -Dname=value")),
        "-u".to_string(),
        format!("admin:{}", p.add("argv -u user:password")),
        format!("sh -c \"curl -H 'Authorization: Bearer {}' https://api.example\"", p.add("argv sh -c header")),
        format!("https://user:{}/x@db.example.com/app", p.add("argv url userinfo with / and @")),
        format!("https://b.s3.amazonaws.com/k?X-Amz-Signature={}&X-Amz-Expires=60", p.add("argv url X-Amz-Signature")),
        format!("https://h.example/cb#access_token={}", p.add("argv url fragment access_token")),
        format!("https://hooks.slack.com/services/T0/B0/{}", p.add("argv slack webhook path")),
        format!("https://api.telegram.org/bot{}/getMe", p.add("argv telegram bot path")),
        format!("ghp_{}", p.add("argv github token shape")),
        format!("hf_{}", p.add("argv hugging face token shape")),
        format!("Server=db;Uid=sa;Pwd={};", p.add("argv odbc Pwd")),
        format!("jdbc:postgresql://h/db?user=x&password={}", p.add("argv jdbc password")),
        format!("X-Api-Key: {}", p.add("argv header X-Api-Key")),
    ];
    let envs = vec![
        ("VLLM_API_KEY".to_string(), p.add("env VLLM_API_KEY")),
        ("HF_TOKEN".to_string(), format!("hf_{}", p.add("env HF_TOKEN token"))),
        ("OPENAI_BASE_URL".to_string(), format!("https://u:{}@proxy.example/v1", p.add("env url userinfo"))),
        ("COMMANDLINE_ARGS".to_string(), format!("--listen --api-auth admin:{}", p.add("env COMMANDLINE_ARGS"))),
        ("VLLM_EXTRA_HEADERS".to_string(), format!("Authorization=Bearer {}", p.add("env *_HEADERS"))),
        ("HF_HUB_CONFIG".to_string(), format!("{{\"token\": \"{}\"}}", p.add("env JSON in *_CONFIG"))),
        ("OPENAI_ORG_KEYS".to_string(), p.add("env *_KEYS plural")),
        ("JUPYTER_PASSWORDS".to_string(), p.add("env *_PASSWORDS plural")),
        ("MLFLOW_TRACKING_URI".to_string(), format!("https://ml:{}@mlflow.example", p.add("env tracking uri"))),
        ("CUDA_VISIBLE_DEVICES".to_string(), "0".to_string()),
    ];
    // The interpreter itself, not a wrapper (pyenv's shim) that would exec it later.
    let real = Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().unwrap();
    let python3 = String::from_utf8_lossy(&real.stdout).trim().to_string();
    Child(
        Command::new(&python3)
            .args(&args)
            .envs(envs)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start python3: {e}")),
    )
}

/// Plants MCP configurations, a dotenv file and a shell profile under `home`.
fn plant_files(home: &Path, p: &mut Planted) {
    let write = |rel: &str, text: String| {
        let path = home.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        ".config/Claude/claude_desktop_config.json",
        serde_json::json!({"mcpServers": {
            "github": {
                "command": "npx",
                "args": ["-y", "@modelcontextprotocol/server-github", "--token", p.add("mcp json --token arg"),
                         format!("--header=Authorization: Bearer {}", p.add("mcp json header arg"))],
                "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": p.add("mcp json env value")}
            },
            "shell": {"command": format!("sh -c 'API_KEY={} exec server'", p.add("mcp json command string"))},
            "remote": {
                "type": "http",
                "url": format!("https://u:{}@mcp.example.com/mcp?api_key={}",
                               p.add("mcp json url userinfo"), p.add("mcp json url api_key")),
                "headers": {"Authorization": format!("Bearer {}", p.add("mcp json header value"))}
            }
        }})
        .to_string(),
    );
    write(
        ".codex/config.toml",
        format!(
            "[mcp_servers.docs]\ncommand = \"uvx\"\nargs = [\"docs-mcp\", \"--api-key\", \"{}\"]\n\
             env = {{ DOCS_TOKEN = \"{}\" }}\nhttp_headers = {{ \"X-Api-Key\" = \"{}\" }}\n\
             url = \"https://discord.com/api/webhooks/1/{}\"\n",
            p.add("mcp toml --api-key arg"),
            p.add("mcp toml env value"),
            p.add("mcp toml header value"),
            p.add("mcp toml discord webhook"),
        ),
    );
    write(
        ".config/goose/config.yaml",
        format!(
            "extensions:\n  search:\n    cmd: uvx\n    args: [\"search-mcp\", \"--password={}\"]\n    \
             uri: \"https://h.example/sse?sig={}\"\n    envs: {{SEARCH_KEY: {}}}\n",
            p.add("mcp yaml --password= arg"),
            p.add("mcp yaml url sig"),
            p.add("mcp yaml env value"),
        ),
    );
    write(
        "project/.env",
        format!(
            "OPENAI_API_KEY={}\nDATABASE_URL=postgres://app:{}@db/app\nDEBUG=1\n",
            p.add("dotenv OPENAI_API_KEY"),
            p.add("dotenv url password"),
        ),
    );
    write(
        ".bashrc",
        format!(
            "export HF_TOKEN=\"{}\"\nalias up='curl -u me:{} https://h'\nexport ANTHROPIC_API_KEY={}\n",
            p.add("profile HF_TOKEN"),
            p.add("profile alias -u"),
            p.add("profile ANTHROPIC_API_KEY"),
        ),
    );
}

#[test]
fn planted_secrets_reach_neither_the_scan_nor_the_spool_nor_the_collector() {
    let mut planted = Planted::new();
    let home = tempfile::tempdir().unwrap();
    plant_files(home.path(), &mut planted);
    let server = start_server(&mut planted);
    let pid = server.0.id();
    // The process must be up with its command line in place before the agent looks.
    let cmdline = format!("/proc/{pid}/cmdline");
    aiscout_e2e::fleet::poll(Duration::from_secs(10), "the planted process starts", || {
        std::fs::read(&cmdline).ok().filter(|c| c.windows(5).any(|w| w == b"vllm.")).map(|_| ())
    });

    // 1. The scan JSON.
    let home_arg = home.path().to_str().unwrap();
    let (stdout, stderr) = run_agent(&["scan", "--json", "--no-cache", "--only", "runtimes,tooling", home_arg], &[]);
    planted.assert_absent("the scan JSON", stdout.as_bytes());
    planted.assert_absent("the scan's stderr", stderr.as_bytes());
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let runtime = doc["runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["pid"] == pid)
        .unwrap_or_else(|| panic!("the planted process is not in runtimes: {:#}", doc["runtimes"]));
    assert_eq!(runtime["kind"], "vllm");
    // What an analyst needs stays readable.
    let args: Vec<&str> = runtime["cmdline"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    for kept in ["--model", "/srv/m.gguf", "--port", "8000", "--api-key", "-u"] {
        assert!(args.contains(&kept), "{kept} is missing from {args:?}");
    }
    // Every argument is still there, and each planted one had something hidden.
    assert_eq!(args.len(), 25, "{args:?}");
    assert!(args.iter().filter(|a| a.contains("<redacted>")).count() >= 15, "{args:?}");
    assert_eq!(runtime["environment"]["CUDA_VISIBLE_DEVICES"], "0");
    assert_eq!(runtime["environment"]["VLLM_API_KEY"], "<redacted>");
    let tooling = doc["tooling"].as_array().unwrap();
    for client in ["claude-desktop", "codex", "goose"] {
        assert!(
            tooling.iter().any(|t| t["kind"] == "mcp_config" && t["client"] == client),
            "no {client} configuration in {tooling:#?}"
        );
    }
    assert!(tooling.iter().any(|t| t["kind"] == "api_key" && t["variable"] == "OPENAI_API_KEY"));

    // 2. The daemon against a real collector: the spool and state, and what the collector keeps.
    let collector = Collector::start();
    let token = collector.token_file("token", &[]);
    let config = collector.agent("leaky", &[home.path()], &token);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("sections = [\"models\"]", "sections = [\"runtimes\", \"tooling\"]");
    std::fs::write(&config, text).unwrap();
    let out = run_once(&config);
    assert_ok(&out);
    planted.assert_absent("the agent's log", &out.stderr);

    let mut api = String::new();
    api.push_str(&collector.get("/api/v1/hosts").to_string());
    let mut kinds_seen = Vec::new();
    for kind in ["runtime", "tooling"] {
        let page = collector.get(&format!("/api/v1/assets?kind={kind}&limit=1000"));
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if !items.is_empty() {
            kinds_seen.push(kind);
        }
        for item in items {
            let id = item["id"].as_str().unwrap_or_default().to_string();
            api.push_str(&collector.get(&format!("/api/v1/assets/{id}")).to_string());
        }
        api.push_str(&page.to_string());
    }
    assert_eq!(kinds_seen, ["runtime", "tooling"], "the collector stored both sections");
    assert!(api.contains("/srv/m.gguf"), "the process's command line reached the collector");
    planted.assert_absent("the collector's API answers", api.as_bytes());

    // Raw bytes: the collector's database files (and WAL), its log, the agent's state directory
    // with its sled spool, all under the collector's directory.
    let mut files = Vec::new();
    files_below(collector.dir.path(), &mut files);
    assert!(files.iter().any(|(path, _)| path.contains("agent-leaky")), "the agent's state directory is read");
    for (path, bytes) in &files {
        planted.assert_absent(path, bytes);
    }
    drop(server);
}
