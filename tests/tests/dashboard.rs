//! The dashboard in a real browser: headless Chromium (Debian's `chromium`) driven by playwright
//! (`tests/browser/dashboard.py`, from the venv of `scripts/browser-venv.sh`) against a real
//! collector fed by real agents. One agent's hostname is a `<script>` tag; a process holds a
//! hostile pickle open on 0.0.0.0, so there are critical findings to filter and acknowledge.
//! Screenshots of every page go to `var/screenshots/`.

use std::process::Command;
use std::time::Duration;

use aiscout_e2e::fleet::{assert_ok, poll, run_once, AgentOptions, Collector};
use aiscout_e2e::{fixtures_dir, serve_holding_open, workspace_root};

/// What the hostile agent calls its host: valid for the agent (no whitespace), a script anywhere
/// a page would put it unescaped.
/// The `<i>` is markup the Content-Security-Policy would not block: only escaping keeps it out.
const HOSTILE_HOSTNAME: &str = "<script>window.__xss=1;alert(1)</script><i/id=aiscoutxss>i</i>";

/// The Python of `var/browser-venv` (scripts/browser-venv.sh installs Chromium and playwright).
fn browser_python() -> String {
    let out = Command::new(workspace_root().join("scripts/browser-venv.sh")).output().unwrap();
    assert!(out.status.success(), "browser-venv.sh: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_dashboard_signs_in_shows_filters_acknowledges_downloads_and_signs_out_in_chromium() {
    let python = browser_python();
    let c = Collector::start_with("[findings]\ninterval = \"1s\"\n");
    let root = tempfile::tempdir().unwrap();
    let models = root.path().join("srv/models");
    std::fs::create_dir_all(&models).unwrap();
    // A hostile pickle no other end-to-end test holds open: every agent sees every process of
    // the machine, so a file shared with a concurrent test would join that test's findings.
    let pickle = models.join("dashboard-model.pkl");
    std::fs::copy(fixtures_dir().join("safety/hostile/mailcap_findmatch.pkl"), &pickle).unwrap();
    let (_server, _port) = serve_holding_open(&pickle);
    let token = c.token_file("token", &["--uses", "2"]);
    let options = AgentOptions {
        sections: vec!["models", "runtimes"],
        hostname: Some(HOSTILE_HOSTNAME.into()),
        ..AgentOptions::default()
    };
    assert_ok(&run_once(&c.agent_with("gpu", &[root.path()], &token, &options)));
    let laptop_root = tempfile::tempdir().unwrap();
    std::fs::copy(&pickle, laptop_root.path().join("downloaded.pkl")).unwrap();
    assert_ok(&run_once(&c.agent_with("laptop", &[laptop_root.path()], &token, &AgentOptions::default())));
    poll(Duration::from_secs(60), "a critical finding", || {
        (c.get("/api/v1/findings?severity=critical&state=open")["total"].as_u64() > Some(0)).then_some(())
    });
    let user = c.command(&[
        "api-token",
        "create",
        "--label",
        "dashboard",
        "--scope",
        "read",
        "--scope",
        "admin",
        "--scope",
        "export",
    ]);
    let reader = c.command(&["api-token", "create", "--label", "viewer", "--scope", "read"]);

    let screenshots = workspace_root().join("var/screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let out = Command::new(&python)
        .arg(workspace_root().join("tests/browser/dashboard.py"))
        .env("AISCOUT_URL", format!("http://127.0.0.1:{}", c.api_port))
        .env("AISCOUT_TOKEN", &user)
        .env("AISCOUT_READ_TOKEN", &reader)
        .env("AISCOUT_HOSTILE_HOSTNAME", HOSTILE_HOSTNAME)
        .env("AISCOUT_SCREENSHOTS", &screenshots)
        .output()
        .unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser test failed:\n{report}");
    assert!(report.contains("all dashboard checks passed"), "{report}");
    for page in ["login", "overview", "findings", "finding", "models", "model", "hosts", "host", "graph", "exports"] {
        let shot = screenshots.join(format!("{page}.png"));
        let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(size > 5_000, "{} is missing or empty ({size} bytes)", shot.display());
    }
    assert!(!c.log().contains(&user), "the session's token reached the collector's log");
}
