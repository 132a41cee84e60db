//! Unit tests of [`super`] (the credentials): checks, private files, atomic replacement, and
//! errors that name the file at fault.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use super::*;
use crate::fleet::test_support::*;
use crate::state_dir::StateDir;

#[test]
fn debug_output_never_shows_the_private_key() {
    let ca = TestCa::new("test ca");
    let enrolled = enrolled_by(&ca, "agent-1", now_unix(), Duration::from_secs(3600));
    let text = format!("{enrolled:?}");
    assert!(text.contains("agent-1") && text.contains("<redacted>"), "{text}");
    assert!(!text.contains("PRIVATE KEY"), "{text}");
}

#[test]
fn trusted_cas_keep_the_configured_one_when_it_differs() {
    let (a, b) = (TestCa::new("a"), TestCa::new("b"));
    assert_eq!(CertFacts::all_from_pem(&trusted_cas(&a.cert_pem, &a.cert_pem)).unwrap().len(), 1);
    assert_eq!(CertFacts::all_from_pem(&trusted_cas(&a.cert_pem, &b.cert_pem)).unwrap().len(), 2);
}

#[test]
fn state_is_saved_private_and_loaded_back() {
    let ca = TestCa::new("test ca");
    let tmp = tempfile::tempdir().unwrap();
    let state_dir = StateDir::open(&tmp.path().join("state")).unwrap();
    assert_eq!(load(&state_dir).unwrap(), None, "a new state directory");
    fs::create_dir_all(state_dir.tls()).unwrap();
    assert_eq!(load(&state_dir).unwrap(), None, "empty tls directory");

    let first = enrolled_by(&ca, "agent-1", now_unix(), Duration::from_secs(3600));
    save(&state_dir, &first).unwrap();
    let dir = state_dir.tls();
    assert_eq!(mode(&dir), 0o700);
    for file in [AGENT_ID_FILE, KEY_FILE, CERT_FILE, CA_FILE] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    assert_eq!(fs::read_to_string(dir.join(AGENT_ID_FILE)).unwrap(), "agent-1\n");
    assert_eq!(load(&state_dir).unwrap(), Some(first.clone()));

    // Saving again replaces the whole state and leaves no staging directory behind.
    let second = enrolled_by(&ca, "agent-1", now_unix(), Duration::from_secs(7200));
    save(&state_dir, &second).unwrap();
    assert_eq!(load(&state_dir).unwrap(), Some(second.clone()));
    assert_ne!(second.key_pem, first.key_pem);
    let mut names: Vec<_> = fs::read_dir(state_dir.root()).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, vec!["tls"]);
    assert_eq!(mode(&dir), 0o700);
}

#[test]
fn a_loose_key_file_is_tightened_on_load() {
    let ca = TestCa::new("test ca");
    let tmp = tempfile::tempdir().unwrap();
    let state = StateDir::open(tmp.path()).unwrap();
    save(&state, &enrolled_by(&ca, "agent-1", now_unix(), Duration::from_secs(3600))).unwrap();
    let key = state.tls().join(KEY_FILE);
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    load(&state).unwrap().unwrap();
    assert_eq!(mode(&key), 0o600);
}

#[test]
fn partial_state_names_the_missing_file() {
    let ca = TestCa::new("test ca");
    let tmp = tempfile::tempdir().unwrap();
    let state = StateDir::open(tmp.path()).unwrap();
    save(&state, &enrolled_by(&ca, "agent-1", now_unix(), Duration::from_secs(3600))).unwrap();
    let missing = state.tls().join(CERT_FILE);
    fs::remove_file(&missing).unwrap();
    let err = load(&state).unwrap_err();
    assert!(matches!(&err, CredentialsError::IncompleteState { path } if *path == missing), "{err:?}");
    assert!(err.to_string().starts_with(&format!("{}: missing", missing.display())), "{err}");
}

#[test]
fn corrupt_state_names_the_file_at_fault() {
    let ca = TestCa::new("test ca");
    let other_ca = TestCa::new("other ca");
    let good = enrolled_by(&ca, "agent-1", now_unix(), Duration::from_secs(3600));
    let stranger = enrolled_by(&ca, "agent-2", now_unix(), Duration::from_secs(3600));
    let cases: Vec<(&str, String, &str)> = vec![
        (CERT_FILE, "not a certificate".into(), "not a pem certificate"),
        (CERT_FILE, stranger.cert_pem.clone(), "names \"agent-2\""),
        (KEY_FILE, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(), "not a private key"),
        (KEY_FILE, stranger.key_pem.clone(), ""),
        (CA_FILE, "garbage".into(), "no certificate"),
        (CA_FILE, other_ca.cert_pem.clone(), ""),
        (AGENT_ID_FILE, "../../etc/passwd\n".into(), "characters other than"),
    ];
    for (file, contents, says) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path()).unwrap();
        save(&state, &good).unwrap();
        fs::write(state.tls().join(file), &contents).unwrap();
        let err = load(&state).unwrap_err();
        let CredentialsError::CorruptState { path, reason } = &err else { panic!("{file}: {err:?}") };
        // A key or CA that does not match is reported on the certificate that disagrees.
        let expected = match (file, says) {
            (KEY_FILE | CA_FILE, "") => CERT_FILE,
            _ => file,
        };
        assert_eq!(path, &state.tls().join(expected), "{file}: {reason}");
        assert!(reason.contains(says), "{file}: {reason}");
        assert!(err.to_string().contains("corrupt enrollment state"), "{err}");
    }
}
