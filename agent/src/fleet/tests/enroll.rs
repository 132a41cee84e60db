//! Unit tests of [`super`] (enrollment): keys and requests, status mapping, renewal timing, and
//! enrolling and renewing against a fake collector over mutual TLS.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{CertificateSigningRequestParams, PublicKeyData};
use tonic::Status;

use super::*;
use crate::fleet::test_support::*;

#[test]
fn the_csr_carries_the_new_key_and_the_key_stays_pkcs8() {
    let (key, csr_pem) = key_and_csr("host-1").unwrap();
    let csr = CertificateSigningRequestParams::from_pem(&csr_pem).unwrap();
    assert_eq!(csr.public_key.subject_public_key_info(), key.subject_public_key_info());
    assert!(key.serialize_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
    let (other, _) = key_and_csr("").unwrap();
    assert_ne!(other.subject_public_key_info(), key.subject_public_key_info());
}

#[test]
fn statuses_map_to_clear_errors() {
    let refused = status_error(Call::Enroll, &Status::permission_denied("token already used"));
    assert_eq!(refused.to_string(), "enrollment refused by the collector: token already used");
    assert!(!refused.is_retryable());
    let revoked = status_error(Call::Renew, &Status::unauthenticated("a client certificate is required"));
    assert!(matches!(revoked, EnrollError::Refused { call: Call::Renew, .. }));
    let bad = status_error(Call::Enroll, &Status::invalid_argument("certificate signing request refused"));
    assert!(matches!(bad, EnrollError::Rejected { .. }) && !bad.is_retryable());
    let down = status_error(Call::Enroll, &Status::unavailable("database is busy"));
    assert!(matches!(down, EnrollError::Rpc { code: tonic::Code::Unavailable, .. }) && down.is_retryable());
}

#[test]
fn renewal_is_due_with_less_than_a_third_of_the_lifetime_left() {
    let ca = TestCa::new("test ca");
    let start = 1_900_000_000; // 2030
    let enrolled = enrolled_by(&ca, "agent-1", start, Duration::from_secs(90 * DAY));
    let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
    assert_eq!(enrolled.not_after, i64::try_from(start + 90 * DAY).unwrap());
    assert!(!needs_renewal(&enrolled, at(start)));
    assert!(!needs_renewal(&enrolled, at(start + 59 * DAY)));
    assert!(!needs_renewal(&enrolled, at(start + 60 * DAY)), "exactly a third left");
    assert!(needs_renewal(&enrolled, at(start + 60 * DAY + 1)));
    assert!(needs_renewal(&enrolled, at(start + 365 * DAY)), "expired");
    assert!(!needs_renewal(&enrolled, UNIX_EPOCH), "not yet valid is not due");

    let garbage = Enrolled { cert_pem: "garbage".into(), ..enrolled };
    assert!(needs_renewal(&garbage, at(start)));
}

// ---- against an in-process collector ------------------------------------------------

/// The state directory of `config`.
fn state_of(config: &Config) -> StateDir {
    StateDir::open(&config.state_dir).unwrap()
}

#[tokio::test]
async fn enrolls_then_renews_over_mutual_tls() {
    let server = start(Behaviour::Honest).await;
    let dir = tempfile::tempdir().unwrap();
    let config = agent_config(dir.path(), &server, "tok-1", None);

    let enrolled = enroll(&config, &state_of(&config), identity()).await.unwrap();
    assert_eq!(enrolled.agent_id, AGENT_ID);
    assert_eq!(server.collector.enrolled.lock().unwrap().clone(), vec![identity()]);
    assert_eq!(CertFacts::all_from_pem(&enrolled.ca_pem).unwrap().len(), 1);
    assert_eq!(credentials::load(&state_of(&config)).unwrap(), Some(enrolled.clone()));
    assert_eq!(mode(&state_of(&config).tls().join(credentials::KEY_FILE)), 0o600);
    assert!(!needs_renewal(&enrolled, SystemTime::now()));
    let token_file = config.collector.enrollment_token_file.clone().unwrap();
    assert!(!token_file.exists(), "the used token file is deleted");
    assert!(needs_renewal(&enrolled, SystemTime::now() + Duration::from_secs(45 * 60)));

    let renewed = renew(&config, &state_of(&config), &enrolled).await.unwrap();
    assert_eq!(server.collector.renewed.lock().unwrap().clone(), vec![AGENT_ID.to_string()]);
    assert_eq!(renewed.agent_id, enrolled.agent_id);
    assert_ne!(renewed.key_pem, enrolled.key_pem);
    assert_ne!(renewed.cert_pem, enrolled.cert_pem);
    assert_eq!(credentials::load(&state_of(&config)).unwrap(), Some(renewed));
}

#[tokio::test]
async fn an_unreachable_collector_fails_over_to_the_next_url_and_that_one_is_tried_first_after() {
    let server = start(Behaviour::Honest).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = agent_config(dir.path(), &server, "tok-1", None);
    // A port nothing listens on: bound, then closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let live = config.collector.url.replace(format!("https://127.0.0.1:{closed}"));
    config.collector.failover_urls = vec![live.clone().unwrap(), live.clone().unwrap()];
    let enrolled = enroll(&config, &state_of(&config), identity()).await.unwrap();
    assert_eq!(enrolled.agent_id, AGENT_ID);
    assert_eq!(channel::collector_urls(&config).unwrap().len(), 2, "each url once");
    // The collector that answered is tried first: renewal reaches it although the first url
    // still refuses.
    let renewed = renew(&config, &state_of(&config), &enrolled).await.unwrap();
    assert_eq!(renewed.agent_id, AGENT_ID);
}

#[tokio::test]
async fn a_refused_token_is_reported_and_nothing_is_kept() {
    let server = start(Behaviour::Honest).await;
    let dir = tempfile::tempdir().unwrap();
    let config = agent_config(dir.path(), &server, "tok-spent", None);
    let err = enroll(&config, &state_of(&config), identity()).await.unwrap_err();
    assert_eq!(err.to_string(), "enrollment refused by the collector: enrollment refused: unknown token");
    assert!(!err.is_retryable());
    assert_eq!(credentials::load(&state_of(&config)).unwrap(), None);
    assert!(config.collector.enrollment_token_file.unwrap().exists(), "a refused token's file is kept");
}

#[tokio::test]
async fn a_collector_outside_the_configured_ca_is_not_trusted() {
    let server = start(Behaviour::Honest).await;
    let dir = tempfile::tempdir().unwrap();
    let stranger = TestCa::new("another ca");
    let config = agent_config(dir.path(), &server, "tok-1", Some(&stranger.cert_pem));
    let err = enroll(&config, &state_of(&config), identity()).await.unwrap_err();
    assert!(matches!(err, EnrollError::Channel(ChannelError::Connect { .. })), "{err:?}");
    assert!(err.to_string().contains("cannot connect to the collector at https://127.0.0.1:"), "{err}");
    assert!(server.collector.enrolled.lock().unwrap().is_empty());
}

#[tokio::test]
async fn answers_that_do_not_hold_together_are_refused() {
    for (behaviour, field, says) in [
        (Behaviour::WrongKey, "certificate_pem", "not for the agent's key"),
        (Behaviour::BadAgentId, "agent_id", "must be 1 to"),
    ] {
        let server = start(behaviour).await;
        let dir = tempfile::tempdir().unwrap();
        let config = agent_config(dir.path(), &server, "tok-1", None);
        let err = enroll(&config, &state_of(&config), identity()).await.unwrap_err();
        let EnrollError::InvalidResponse { field: f, reason, .. } = &err else { panic!("{behaviour:?}: {err:?}") };
        assert_eq!((*f, reason.contains(says)), (field, true), "{behaviour:?}: {reason}");
        assert_eq!(credentials::load(&state_of(&config)).unwrap(), None, "{behaviour:?}");
    }
}

#[tokio::test]
async fn missing_inputs_are_named_before_any_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config { state_dir: dir.path().join("state"), ..Config::default() };
    let err = enroll(&config, &state_of(&config), identity()).await.unwrap_err();
    assert_eq!(err.to_string(), "collector.url: not set: the agent has no collector to talk to");

    config.collector.url = Some("https://127.0.0.1:9".into());
    let err = enroll(&config, &state_of(&config), identity()).await.unwrap_err();
    assert!(err.to_string().starts_with("collector.enrollment_token_file: not set"), "{err}");

    let token = dir.path().join("token");
    config.collector.enrollment_token_file = Some(token.clone());
    config.collector.ca_file = Some(dir.path().join("ca.pem"));
    let err = enroll(&config, &state_of(&config), identity()).await.unwrap_err();
    assert!(err.to_string().starts_with(&format!("{}: cannot read the enrollment token: ", token.display())), "{err}");

    fs::write(&token, " \n").unwrap();
    fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).unwrap();
    let err = enroll(&config, &state_of(&config), identity()).await.unwrap_err();
    assert_eq!(err.to_string(), format!("{}: the enrollment token file is empty", token.display()));

    fs::write(&token, "tok-1").unwrap();
    let err = enroll(&config, &state_of(&config), identity()).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}: cannot read the collector ca: ", dir.path().join("ca.pem").display())),
        "{err}"
    );
    fs::write(dir.path().join("ca.pem"), "not pem").unwrap();
    let err = enroll(&config, &state_of(&config), identity()).await.unwrap_err();
    assert!(matches!(err, EnrollError::BadCaFile { .. }), "{err:?}");
}

// ---- a pinned ca digest instead of a ca file ---------------------------------------

/// `config` trusting the collector by the pin of `ca_pem` instead of a file.
fn pinned(mut config: Config, ca_pem: &str) -> Config {
    let (_, pem) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes()).unwrap();
    let digest = ca_pin::spki_sha256(&pem.contents).unwrap();
    config.collector.ca_file = None;
    config.collector.ca_sha256 = Some(format!("sha256:{}", hex::encode(digest)));
    config
}

#[tokio::test]
async fn a_pinned_digest_enrolls_saves_the_pinned_ca_and_renews_by_it() {
    let server = start(Behaviour::Honest).await;
    let dir = tempfile::tempdir().unwrap();
    let config = pinned(agent_config(dir.path(), &server, "tok-1", None), &server.collector.ca.cert_pem);
    assert_eq!(config.validate(), vec![]);

    let enrolled = enroll(&config, &state_of(&config), identity()).await.unwrap();
    assert_eq!(enrolled.agent_id, AGENT_ID);
    let trusted = CertFacts::all_from_pem(&enrolled.ca_pem).unwrap();
    assert_eq!(trusted.len(), 1, "the answer's ca is the pinned one: kept once");
    assert_eq!(enrolled.ca_pem.trim(), server.collector.ca.cert_pem.trim());
    // From now on the saved ca is what the collector is trusted by.
    let renewed = renew(&config, &state_of(&config), &enrolled).await.unwrap();
    assert_eq!(server.collector.renewed.lock().unwrap().clone(), vec![AGENT_ID.to_string()]);
    assert_eq!(credentials::load(&state_of(&config)).unwrap(), Some(renewed));
}

#[tokio::test]
async fn a_wrong_pin_sends_nothing_and_says_why() {
    let server = start(Behaviour::Honest).await;
    let dir = tempfile::tempdir().unwrap();
    let stranger = TestCa::new("another ca");
    let config = pinned(agent_config(dir.path(), &server, "tok-1", None), &stranger.cert_pem);
    let err = enroll(&config, &state_of(&config), identity()).await.unwrap_err();
    assert!(matches!(err, EnrollError::Channel(ChannelError::Connect { .. })), "{err:?}");
    assert!(err.to_string().contains("has the digest of collector.ca_sha256"), "{err}");
    assert!(server.collector.enrolled.lock().unwrap().is_empty(), "no token was sent");
    assert_eq!(credentials::load(&state_of(&config)).unwrap(), None);
}

#[tokio::test]
async fn a_copy_of_the_pinned_ca_in_an_impostors_chain_is_not_trusted() {
    // The impostor has the real CA's certificate (it is public) but not its key: it sends it
    // after a certificate of its own CA.
    let real = TestCa::new("real collector ca");
    let impostor_ca = TestCa::new("impostor ca");
    let tls_identity = impostor_ca.server_identity_with_chain(&real.cert_pem);
    let real_pem = real.cert_pem.clone();
    let server = start_with(Behaviour::Honest, impostor_ca, tls_identity).await;
    let dir = tempfile::tempdir().unwrap();
    let config = pinned(agent_config(dir.path(), &server, "tok-1", None), &real_pem);
    let err = enroll(&config, &state_of(&config), identity()).await.unwrap_err();
    assert!(matches!(err, EnrollError::Channel(ChannelError::Connect { .. })), "{err:?}");
    assert!(server.collector.enrolled.lock().unwrap().is_empty(), "no token was sent");
}

#[tokio::test]
async fn the_pinned_collector_must_still_have_the_configured_name() {
    let server = start(Behaviour::Honest).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = pinned(agent_config(dir.path(), &server, "tok-1", None), &server.collector.ca.cert_pem);
    config.collector.server_name = Some("collector.elsewhere.example".into());
    let err = enroll(&config, &state_of(&config), identity()).await.unwrap_err();
    assert!(matches!(err, EnrollError::Channel(ChannelError::Connect { .. })), "{err:?}");
    assert!(server.collector.enrolled.lock().unwrap().is_empty());
}

#[tokio::test]
async fn neither_a_ca_file_nor_a_pin_is_named_before_any_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config { state_dir: dir.path().join("state"), ..Config::default() };
    config.collector.url = Some("https://127.0.0.1:9".into());
    config.collector.enrollment_token_file = Some(dir.path().join("token"));
    let err = enroll(&config, &state_of(&config), identity()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "collector.ca_file: not set: enrolling needs collector.ca_file or collector.ca_sha256 to trust the collector by"
    );
}

#[test]
fn after_a_renewal_the_agent_trusts_the_collectors_list_and_what_its_configuration_names() {
    let (new, old, retired) = (TestCa::new("new"), TestCa::new("old"), TestCa::new("retired"));
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    fs::write(&ca_file, &old.cert_pem).unwrap();
    let mut config = Config::default();
    config.collector.ca_file = Some(ca_file);
    let names = |pem: &str| CertFacts::all_from_pem(pem).unwrap().len();
    let current = format!("{}{}", retired.cert_pem, old.cert_pem);
    // The collector lists only the new CA; the configured one stays, the retired one goes.
    let trusted = renewed_trust(&config, &new.cert_pem, &current);
    assert_eq!(names(&trusted), 2);
    assert!(trusted.contains(new.cert_pem.trim()) && trusted.contains(old.cert_pem.trim()));
    assert!(!trusted.contains(retired.cert_pem.trim()));
    // A collector that sends no list changes nothing.
    assert_eq!(renewed_trust(&config, "", &current), current);
    // With a pin instead of a file, the CA matching it stays.
    let pinned_config = pinned(Config::default(), &old.cert_pem);
    let trusted = renewed_trust(&pinned_config, &new.cert_pem, &current);
    assert_eq!(names(&trusted), 2);
    assert!(!trusted.contains(retired.cert_pem.trim()));
}
