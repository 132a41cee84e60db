//! Findings reach the SIEM: a webhook, a Splunk HEC and an Elastic endpoint, each a local
//! receiver enforcing its contract (tests/receivers/siem_receiver.py), down when the first
//! findings open, then up, then all killed while a new finding opens and restarted: every
//! event at or above the targets' severity arrives, none lost.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use aiscout_e2e::fleet::{assert_ok, free_port, poll, run_once, AgentOptions, Collector};
use aiscout_e2e::{first_line, fixtures_dir, workspace_root, Child};

const KINDS: [&str; 3] = ["webhook", "splunk_hec", "elastic"];

fn receiver(kind: &str, port: u16, secret: &str, out: &Path) -> Child {
    let mut child = Child(
        Command::new("python3")
            .arg(workspace_root().join("tests/receivers/siem_receiver.py"))
            .args([kind, &port.to_string(), secret])
            .arg(out)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert_eq!(first_line(&mut child), "ready");
    child
}

fn received(out: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(out).unwrap_or_default().lines().map(str::to_string).collect()
}

/// The ids every target must have received: `<target>-<seq>` of each finding event whose
/// finding is at least medium.
fn expected(c: &Collector, target: &str) -> BTreeSet<String> {
    let audit = c.get("/api/v1/audit?limit=1000");
    let mut ids = BTreeSet::new();
    for r in audit["items"].as_array().unwrap() {
        let kind = r["kind"].as_str().unwrap();
        if !kind.starts_with("finding.") {
            continue;
        }
        let finding = c.get(&format!("/api/v1/findings/{}", r["subject"].as_str().unwrap()));
        if ["medium", "high", "critical"].contains(&finding["severity"].as_str().unwrap()) {
            ids.insert(format!("{target}-{}", r["seq"]));
        }
    }
    ids
}

#[test]
fn finding_events_reach_three_siems_at_least_once_through_outages() {
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = KINDS.iter().map(|_| free_port()).collect();
    let mut toml = String::from("[findings]\ninterval = \"1s\"\n");
    for (kind, port) in KINDS.iter().zip(&ports) {
        let secret = dir.path().join(format!("{kind}.secret"));
        std::fs::write(&secret, format!("secret-{kind}\n")).unwrap();
        toml.push_str(&format!(
            "[[siem]]\nname = \"{kind}\"\nkind = \"{kind}\"\nurl = \"http://127.0.0.1:{port}\"\nmin_severity = \"medium\"\n\
             secret_file = \"{}\"\nindex = \"aiscout\"\nbatch_max = 2\n",
            secret.display()
        ));
    }
    let c = Collector::start_with(&toml);
    let root = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures_dir().join("safety/hostile/os_system_p4.pkl"), root.path().join("model.pkl")).unwrap();
    std::fs::write(root.path().join(".env"), "OPENAI_API_KEY=sk-proj-siemtest0123456789abcdef\n").unwrap();
    let options = AgentOptions { sections: vec!["models", "tooling"], ..AgentOptions::default() };
    let config = c.agent_with("siem", &[root.path()], &c.token_file("token", &[]), &options);
    assert_ok(&run_once(&config));

    // Every target is down: the events wait.
    poll(Duration::from_secs(30), "failed deliveries logged", || {
        c.log().contains("siem delivery failed").then_some(())
    });
    let outs: Vec<_> = KINDS.iter().map(|k| dir.path().join(format!("{k}.out"))).collect();
    let mut receivers: Vec<Child> =
        KINDS.iter().zip(&ports).zip(&outs).map(|((k, p), o)| receiver(k, *p, &format!("secret-{k}"), o)).collect();
    for (kind, out) in KINDS.iter().zip(&outs) {
        let want = expected(&c, kind);
        assert!(want.len() >= 2, "a dangerous model and a plaintext key: {want:?}");
        poll(Duration::from_secs(90), kind, || want.is_subset(&received(out)).then_some(()));
    }

    // Every target goes down while a new finding opens; each gets it once it is back.
    drop(std::mem::take(&mut receivers));
    std::fs::create_dir_all(root.path().join("app")).unwrap();
    std::fs::write(root.path().join("app/.env"), "ANTHROPIC_API_KEY=sk-ant-siemtest0123456789abcdef\n").unwrap();
    assert_ok(&run_once(&config));
    poll(Duration::from_secs(30), "the new finding", || {
        (c.get("/api/v1/findings?rule=plaintext-ai-api-key")["total"] == 2).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let before: Vec<_> = outs.iter().map(|o| received(o)).collect();
    let _back: Vec<Child> =
        KINDS.iter().zip(&ports).zip(&outs).map(|((k, p), o)| receiver(k, *p, &format!("secret-{k}"), o)).collect();
    for ((kind, out), before) in KINDS.iter().zip(&outs).zip(&before) {
        let want = expected(&c, kind);
        poll(Duration::from_secs(90), kind, || want.is_subset(&received(out)).then_some(()));
        assert!(received(out).len() > before.len(), "{kind} got what it missed");
    }
    // Every id each holds is one event of the audit trail at or above the severity.
    for (kind, out) in KINDS.iter().zip(&outs) {
        assert_eq!(received(out), expected(&c, kind), "{kind}");
    }
}
