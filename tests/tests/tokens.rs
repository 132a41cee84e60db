//! Tokens an operator manages (docs/collector.md, *Tokens*) and the enrollment token file the
//! agent accepts (`agent/src/fleet/token_file.rs`), with the real binaries.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use aiscout_e2e::fleet::{assert_ok, run_once, write_private, Collector};

/// The lines of a listing whose first column is `id`.
fn row<'a>(listing: &'a str, id: &str) -> &'a str {
    listing.lines().find(|l| l.split_whitespace().next() == Some(id)).unwrap_or_else(|| panic!("no {id} in\n{listing}"))
}

/// The public id of the token in the last line of a listing.
fn last_id(listing: &str) -> String {
    listing.lines().last().and_then(|l| l.split_whitespace().next()).unwrap().to_string()
}

fn stderr_of(config: &Path) -> (bool, String) {
    let out = run_once(config);
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn tokens_are_listed_and_revoked_by_id_and_their_secrets_never_shown_again() {
    let c = Collector::start();
    let revoked_file = c.dir.path().join("revoked");
    write_private(&revoked_file, &c.command(&["token", "create", "--uses", "5", "--label", "laptops"]));
    let secret = std::fs::read_to_string(&revoked_file).unwrap();
    let listing = c.command(&["token", "list"]);
    assert!(listing.starts_with("ID"), "{listing}");
    assert!(!listing.contains(secret.trim()) && !listing.contains(&secret.trim()[15..]), "{listing}");
    let id = last_id(&listing);
    assert!(row(&listing, &id).contains("active    5"), "{listing}");
    assert_eq!(c.command(&["token", "revoke", &id]), format!("enrollment token {id} revoked"));
    assert!(row(&c.command(&["token", "list"]), &id).contains("revoked"));

    // No agent enrolls with the revoked token; its file stays for the operator to see.
    let root = tempfile::tempdir().unwrap();
    let (ok, err) = stderr_of(&c.agent("x", &[root.path()], &revoked_file));
    assert!(!ok && err.contains(&format!("enrollment token {id} is revoked")), "{err}");
    assert!(revoked_file.exists());

    // API tokens: scopes, expiry, last use; a revoked or scope-less token is refused.
    let reader = c.command(&["api-token", "create", "--label", "cmdb", "--ttl", "30d"]);
    let reader_id = last_id(&c.command(&["api-token", "list"]));
    let exporter = c.command(&["api-token", "create", "--scope", "export", "--scope", "admin"]);
    let listing = c.command(&["api-token", "list"]);
    assert!(!listing.contains(&reader[12..]) && !listing.contains(&exporter[12..]), "{listing}");
    let line = row(&listing, &reader_id);
    assert!(line.contains(" read ") && line.ends_with("cmdb") && line.contains("  -  "), "never used yet: {line}");
    assert_eq!(c.get_status("/api/v1/hosts", &reader), 200);
    assert!(!row(&c.command(&["api-token", "list"]), &reader_id).contains("  -  "), "its use is recorded");
    assert_eq!(c.get_status("/api/v1/hosts", &exporter), 403);
    assert!(row(&c.command(&["api-token", "list"]), &last_id(&listing)).contains("export,admin"));
    assert_eq!(c.command(&["api-token", "revoke", &reader_id]), format!("api token {reader_id} revoked"));
    assert_eq!(c.get_status("/api/v1/hosts", &reader), 401);
    let out = std::process::Command::new(aiscout_e2e::collector_bin())
        .arg("--config")
        .arg(&c.config)
        .args(["api-token", "revoke", &reader_id])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("no unrevoked api token {reader_id}")));
}

#[test]
fn the_agent_refuses_a_token_file_others_may_read_or_reached_through_a_link_and_deletes_a_used_one() {
    let c = Collector::start();
    let root = tempfile::tempdir().unwrap();
    // A file of the test's own, used as it is (not copied per agent as `token_file`'s are).
    let token = c.dir.path().join("own-token");
    write_private(&token, &c.command(&["token", "create"]));

    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = c.agent("x", &[root.path()], &token);
    let (ok, err) = stderr_of(&config);
    assert!(!ok, "{err}");
    assert!(
        err.contains(&format!(
            "{}: refusing the enrollment token file: mode 0644 lets group or others read or change it",
            token.display()
        )),
        "{err}"
    );

    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = c.dir.path().join("token-link");
    std::os::unix::fs::symlink(&token, &link).unwrap();
    let (ok, err) = stderr_of(&c.agent("y", &[root.path()], &link));
    assert!(!ok, "{err}");
    assert!(
        err.contains(&format!(
            "{}: refusing the enrollment token file: it is reached through a symbolic link",
            link.display()
        )),
        "{err}"
    );
    assert!(c.hosts().is_empty(), "nothing enrolled");

    // The private file enrolls the agent, and is deleted: it is needed no more.
    let (ok, err) = stderr_of(&config);
    assert!(ok, "{err}");
    assert!(err.contains("enrollment token file deleted"), "{err}");
    assert!(!token.exists());
    assert_eq!(c.hosts().len(), 1);
    // Enrolled, the agent never reads it again.
    assert_ok(&run_once(&config));
}
