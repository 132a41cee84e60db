//! Issue 11 §5: `--identify-servers` asks a server on the loopback of *its own* network
//! namespace. A containerised server listening on port P says nothing about what listens on
//! port P of the host's loopback; here that is a different server, and it must never be taken
//! for the namespaced one.
//!
//! Needs root and `ip netns` (as the tests run here); a namespace that cannot be created fails
//! the test instead of skipping it.

use std::process::{Command, Stdio};

use aiscout_e2e::fleet::free_port;
use aiscout_e2e::{first_line, run_agent, Child};
use serde_json::Value;

/// A fake Ollama: its command line (`…/ollama serve`) is what the agent recognises; it answers
/// the two identify requests of `agent/data/servers.toml` with the version and model it is
/// given, on 127.0.0.1:<port>, and prints `ready` once it listens.
const FAKE_OLLAMA: &str = r#"
import http.server, json, sys
port, version, model = int(sys.argv[2]), sys.argv[3], sys.argv[4]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/api/version":
            body = {"version": version}
        elif self.path == "/api/ps":
            body = {"models": [{"name": model}]}
        else:
            self.send_response(404); self.end_headers(); return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", port), H)
print("ready", flush=True)
srv.serve_forever()
"#;

/// A network namespace, deleted (with the processes in it) when dropped, whatever happens.
struct Netns {
    name: String,
    children: Vec<Child>,
}

impl Netns {
    fn create() -> Self {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let name = format!("aiscout-t{}-{:x}", std::process::id(), nanos & 0xffff_ffff);
        let out = Command::new("ip").args(["netns", "add", &name]).output().expect("cannot run ip");
        assert!(
            out.status.success(),
            "`ip netns add {name}` failed (this test needs root and iproute2; it does not skip): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ns = Self { name, children: Vec::new() };
        let out = ns.exec(&["ip", "link", "set", "lo", "up"]).output().unwrap();
        assert!(out.status.success(), "cannot bring lo up: {}", String::from_utf8_lossy(&out.stderr));
        ns
    }

    fn exec(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(argv);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.children.clear();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

fn start(mut cmd: Command) -> Child {
    let mut child = Child(cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap());
    assert_eq!(first_line(&mut child), "ready");
    child
}

/// The runtime entry whose command line holds `token`.
fn runtime_with<'a>(doc: &'a Value, token: &str) -> &'a Value {
    doc["runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cmdline"].as_array().is_some_and(|c| c.iter().any(|a| a == token)))
        .unwrap_or_else(|| panic!("no runtime with {token} in its command line: {:#}", doc["runtimes"]))
}

#[test]
fn a_server_in_another_network_namespace_is_asked_there_never_on_the_hosts_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("ollama");
    std::fs::write(&script, FAKE_OLLAMA).unwrap();
    let script = script.to_str().unwrap();
    let tag = format!("{:x}", std::process::id());
    let (ns_version, ns_model) = (format!("9.9.9-ns-{tag}"), format!("inside-ns-{tag}:1b"));
    let (host_version, host_model) = (format!("1.1.1-host-{tag}"), format!("on-host-{tag}:7b"));
    let port_number = free_port();
    let port = port_number.to_string();

    let mut ns = Netns::create();
    // The host's server first, on the same port the namespaced one will use.
    ns.children.push(start({
        let mut c = Command::new("python3");
        c.args([script, "serve", &port, &host_version, &host_model]);
        c
    }));
    ns.children.push(start(ns.exec(&["python3", script, "serve", &port, &ns_version, &ns_model])));

    let (stdout, _) = run_agent(&["scan", "--json", "--only", "runtimes", "--identify-servers"], &[]);
    let doc: Value = serde_json::from_str(&stdout).unwrap();

    let inside = runtime_with(&doc, &ns_version);
    assert_eq!(inside["kind"], "ollama", "{inside:#}");
    assert!(
        inside["listening"].as_array().unwrap().iter().any(|l| l["port"] == port_number),
        "the namespaced server's socket comes from its own namespace's table: {inside:#}"
    );
    assert_eq!(inside["identity"]["version"], ns_version.as_str(), "{:#}", inside["identity"]);
    assert_eq!(inside["identity"]["models"], serde_json::json!([ns_model]), "{:#}", inside["identity"]);

    let host = runtime_with(&doc, &host_version);
    assert_eq!(host["identity"]["version"], host_version.as_str(), "{:#}", host["identity"]);
    assert_eq!(host["identity"]["models"], serde_json::json!([host_model]));

    // Whatever else the agent reported, the host's answer is never attributed to the
    // namespaced process and the other way round.
    assert!(!inside.to_string().contains(&host_version) && !inside.to_string().contains(&host_model));
    assert!(!host.to_string().contains(&ns_version) && !host.to_string().contains(&ns_model));
    drop(ns);
}
