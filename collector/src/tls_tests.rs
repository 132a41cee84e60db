//! Tests of [`super`]: the files a configuration names, read and checked.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::config::CollectorConfig;

/// A CA, its key and a server certificate of it with its key, written as PEM files in `dir`
/// under `prefix`.
fn write_pki(dir: &Path, prefix: &str) -> CertificateAuthority {
    let (ca, ca_key) = CertificateAuthority::generate(&format!("{prefix} ca")).unwrap();
    let (server, server_key) = ca.server_certificate(&["localhost".into()], Duration::from_secs(3600)).unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.join(format!("{prefix}-{name}")), text).unwrap();
    write("ca.pem", ca.cert_pem());
    write("ca.key", &ca_key);
    write("server.pem", &format!("{}{}", server.cert_pem, ca.cert_pem()));
    write("server.key", &server_key);
    ca
}

fn config(dir: &Path, tls: &str) -> CollectorConfig {
    let text = format!("data_dir = \"{}\"\n[tls]\n{tls}", dir.join("data").display());
    CollectorConfig::parse(&text, "t").unwrap()
}

fn files_toml(dir: &Path, prefix: &str) -> String {
    let f = |name: &str| dir.join(format!("{prefix}-{name}")).display().to_string();
    format!(
        "cert_file = \"{}\"\nkey_file = \"{}\"\nca_cert_file = \"{}\"\nca_key_file = \"{}\"\n",
        f("server.pem"),
        f("server.key"),
        f("ca.pem"),
        f("ca.key")
    )
}

#[test]
fn production_files_load_with_the_previous_cas_in_the_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let current = write_pki(dir.path(), "new");
    let old = write_pki(dir.path(), "old");
    let toml = format!(
        "{}previous_ca_cert_files = [\"{}\"]\n",
        files_toml(dir.path(), "new"),
        dir.path().join("old-ca.pem").display()
    );
    let c = config(dir.path(), &toml);
    assert_eq!(c.validate(), vec![]);
    let material = TlsMaterial::load(&c).unwrap();
    assert_eq!(material.ca.key_sha256(), current.key_sha256());
    assert_eq!(material.ca_bundle, format!("{}{}", current.cert_pem(), old.cert_pem()));
    material.agents_config().unwrap();
    assert!(material.api_config().is_none());
}

#[test]
fn validate_finds_every_file_problem_at_once_one_per_line() {
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path(), "a");
    write_pki(dir.path(), "b");
    let p = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(
        dir.path().join("ssh.key"),
        "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
    )
    .unwrap();
    let toml = format!(
        "cert_file = \"relative/server.pem\"\nkey_file = \"{}\"\nca_cert_file = \"{}\"\nca_key_file = \"{}\"\n\
         previous_ca_cert_files = [\"{}\"]\n[api_tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        p("missing.key"),
        p("a-server.pem"),
        p("ssh.key"),
        p("nowhere.pem"),
        p("a-server.pem"),
        p("b-server.key"),
    );
    let lines: Vec<String> = config(dir.path(), &toml).validate().iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            format!(
                "api_tls.key_file: {}: the key does not match the certificate of api_tls.cert_file",
                p("b-server.key")
            ),
            "tls.cert_file: must be an absolute path, got \"relative/server.pem\"".to_string(),
            format!("tls.key_file: {}: cannot read: No such file or directory (os error 2)", p("missing.key")),
            format!("tls.ca_cert_file: {}: not a ca certificate (basic constraints)", p("a-server.pem")),
            format!(
                "tls.ca_key_file: {}: a pem \"OPENSSH PRIVATE KEY\" block, not a private key: expected pkcs#8 (PRIVATE \
                 KEY, ENCRYPTED PRIVATE KEY), pkcs#1 (RSA PRIVATE KEY) or sec1 (EC PRIVATE KEY)",
                p("ssh.key")
            ),
            format!(
                "tls.previous_ca_cert_files: {}: cannot read: No such file or directory (os error 2)",
                p("nowhere.pem")
            ),
        ]
    );
    // serve refuses the same configuration with the same problems.
    assert_eq!(TlsMaterial::load(&config(dir.path(), &toml)).unwrap_err().len(), lines.len());
}

#[test]
fn a_key_that_is_not_its_certificates_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path(), "a");
    write_pki(dir.path(), "b");
    let toml = files_toml(dir.path(), "a").replace("a-ca.key", "b-ca.key").replace("a-server.key", "b-server.key");
    let lines: Vec<String> = config(dir.path(), &toml).validate().iter().map(ToString::to_string).collect();
    let p = |name: &str| dir.path().join(name).display().to_string();
    assert_eq!(
        lines,
        [
            format!("tls.key_file: {}: the key does not match the certificate of tls.cert_file", p("b-server.key")),
            format!("tls.ca_key_file: {}: the key does not match the certificate of tls.ca_cert_file", p("b-ca.key")),
        ]
    );
}

#[test]
fn an_encrypted_ca_key_is_read_with_its_passphrase_file() {
    use pkcs8::der::{Decode, Encode};
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path(), "a");
    let key_path = dir.path().join("a-ca.key");
    let plain = keys::pkcs8_from_pem(&std::fs::read_to_string(&key_path).unwrap(), None).unwrap();
    let info = pkcs8::PrivateKeyInfo::from_der(plain.secret_pkcs8_der()).unwrap();
    let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, &[1; 16], &[2; 16]).unwrap();
    let encrypted = info.encrypt_with_params(params, b"s3cret").unwrap();
    let der = encrypted.as_bytes().to_vec();
    assert!(der.to_der().is_ok() || !der.is_empty());
    std::fs::write(&key_path, pem::encode(&pem::Pem::new("ENCRYPTED PRIVATE KEY", der))).unwrap();
    let pass = dir.path().join("pass");
    std::fs::write(&pass, "s3cret\n").unwrap();
    let toml = format!("{}ca_key_passphrase_file = \"{}\"\n", files_toml(dir.path(), "a"), pass.display());
    assert_eq!(config(dir.path(), &toml).validate(), vec![]);
    std::fs::write(&pass, "wrong\n").unwrap();
    let problems = config(dir.path(), &toml).validate();
    assert_eq!(problems.len(), 1);
    assert!(problems[0].to_string().contains("cannot decrypt (wrong passphrase?)"), "{problems:?}");
}

#[test]
fn dev_mode_is_checked_without_writing_and_a_partial_pki_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), "dev = true\n");
    assert_eq!(c.validate(), vec![]);
    assert!(!dir.path().join("data").exists(), "validate writes nothing");
    TlsMaterial::load(&c).unwrap();
    std::fs::remove_file(dir.path().join("data/pki/server.key")).unwrap();
    let problems = c.validate();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].key, "tls.dev");
    assert!(problems[0].message.contains("server.key: missing from the dev pki"), "{problems:?}");
}
