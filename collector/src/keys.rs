//! Private keys as operators have them, read into the PKCS#8 that ring (rustls) and rcgen take.
//!
//! Accepted, by PEM label:
//! 1. `PRIVATE KEY`: PKCS#8, as is;
//! 2. `ENCRYPTED PRIVATE KEY`: PKCS#8 encrypted with PBES2 (scrypt or PBKDF2, AES-CBC), as
//!    `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes it, decrypted with a passphrase; for the CA
//!    key the passphrase comes from `tls.ca_key_passphrase_file`, else from the environment
//!    variable [`PASSPHRASE_ENV`];
//! 3. `RSA PRIVATE KEY`: PKCS#1, wrapped into PKCS#8 (`rsaEncryption`);
//! 4. `EC PRIVATE KEY`: SEC1, wrapped into PKCS#8 (`id-ecPublicKey` and the key's named curve).
//!
//! Anything else is refused with an error naming what was found: another PEM label (`OPENSSH
//! PRIVATE KEY`, `DSA PRIVATE KEY`, `CERTIFICATE`, ...), a PKCS#1 or SEC1 key encrypted the
//! legacy OpenSSL way (`Proc-Type: 4,ENCRYPTED`, with how to convert it), or no PEM at all.
//! Only the first private key block of a file is read.

use pkcs8::der::asn1::AnyRef;
use pkcs8::der::{Decode, Encode};
use pkcs8::spki::AlgorithmIdentifierRef;
use pkcs8::{ObjectIdentifier, PrivateKeyInfo};
use rustls::pki_types::PrivatePkcs8KeyDer;

/// The environment variable holding the CA key's passphrase when no file names it.
pub const PASSPHRASE_ENV: &str = "AISCOUT_CA_KEY_PASSPHRASE";

/// `rsaEncryption` (RFC 8017).
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// `id-ecPublicKey` (RFC 5480).
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// Why a key could not be read; the message names the format found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// No PEM block at all.
    #[error("not a pem file (a der or other binary key?): expected a pkcs#8, pkcs#1 or sec1 private key in pem")]
    NotPem,
    /// PEM, but no private key block.
    #[error("a pem {found} block, not a private key: expected pkcs#8 (PRIVATE KEY, ENCRYPTED PRIVATE KEY), pkcs#1 (RSA PRIVATE KEY) or sec1 (EC PRIVATE KEY)")]
    Unsupported {
        /// The labels found, quoted.
        found: String,
    },
    /// A PKCS#1 or SEC1 key encrypted with OpenSSL's legacy PEM encryption.
    #[error("a legacy openssl-encrypted {label} (Proc-Type: 4,ENCRYPTED), which is not supported: convert it with `openssl pkcs8 -topk8 -v2 aes-256-cbc`")]
    LegacyEncrypted {
        /// The PEM label.
        label: String,
    },
    /// An encrypted PKCS#8 key and no passphrase.
    #[error("an encrypted pkcs#8 key and no passphrase: set tls.ca_key_passphrase_file or {PASSPHRASE_ENV}")]
    NoPassphrase,
    /// The key does not decode (or decrypt) as its label says.
    #[error("{format} key: {reason}")]
    Malformed {
        /// What it claimed to be.
        format: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn malformed(format: &'static str) -> impl Fn(String) -> KeyError {
    move |reason| KeyError::Malformed { format, reason }
}

/// The first private key of `pem_text` as PKCS#8 (module docs), decrypting an encrypted one
/// with `passphrase`.
pub fn pkcs8_from_pem(pem_text: &str, passphrase: Option<&[u8]>) -> Result<PrivatePkcs8KeyDer<'static>, KeyError> {
    let blocks = pem::parse_many(pem_text).map_err(|_| KeyError::NotPem)?;
    if blocks.is_empty() {
        return Err(KeyError::NotPem);
    }
    let Some(block) = blocks.iter().find(|b| b.tag().ends_with("PRIVATE KEY") && !b.tag().starts_with("OPENSSH"))
    else {
        let found: Vec<String> = blocks.iter().map(|b| format!("{:?}", b.tag())).collect();
        return Err(KeyError::Unsupported { found: found.join(", ") });
    };
    let der = block.contents();
    let legacy_encrypted = block.headers().get("Proc-Type").is_some_and(|v| v.contains("ENCRYPTED"));
    let pkcs8 = match block.tag() {
        "PRIVATE KEY" => {
            PrivateKeyInfo::from_der(der).map_err(|e| malformed("pkcs#8")(e.to_string()))?;
            der.to_vec()
        }
        "ENCRYPTED PRIVATE KEY" => {
            let passphrase = passphrase.ok_or(KeyError::NoPassphrase)?;
            let info = pkcs8::EncryptedPrivateKeyInfo::from_der(der)
                .map_err(|e| malformed("encrypted pkcs#8")(e.to_string()))?;
            let document = info
                .decrypt(passphrase)
                .map_err(|e| malformed("encrypted pkcs#8")(format!("cannot decrypt (wrong passphrase?): {e}")))?;
            document.as_bytes().to_vec()
        }
        label @ ("RSA PRIVATE KEY" | "EC PRIVATE KEY") if legacy_encrypted => {
            return Err(KeyError::LegacyEncrypted { label: label.to_string() })
        }
        "RSA PRIVATE KEY" => wrap(der, RSA_ENCRYPTION, Some(AnyRef::NULL)).map_err(malformed("pkcs#1"))?,
        "EC PRIVATE KEY" => {
            let sec1 = sec1::EcPrivateKey::from_der(der).map_err(|e| malformed("sec1")(e.to_string()))?;
            let curve = sec1
                .parameters
                .and_then(|p| p.named_curve())
                .ok_or_else(|| malformed("sec1")("it does not name its curve".into()))?;
            if sec1.public_key.is_none() {
                return Err(malformed("sec1")("it does not hold its public key".into()));
            }
            let curve_der = curve.to_der().map_err(|e| malformed("sec1")(e.to_string()))?;
            let curve_any = AnyRef::from_der(&curve_der).map_err(|e| malformed("sec1")(e.to_string()))?;
            wrap(der, EC_PUBLIC_KEY, Some(curve_any)).map_err(malformed("sec1"))?
        }
        other => return Err(KeyError::Unsupported { found: format!("{other:?}") }),
    };
    Ok(PrivatePkcs8KeyDer::from(pkcs8))
}

/// `key` (PKCS#1 or SEC1 DER) inside a PKCS#8 `PrivateKeyInfo` for `algorithm`.
fn wrap(key: &[u8], algorithm: ObjectIdentifier, parameters: Option<AnyRef<'_>>) -> Result<Vec<u8>, String> {
    let info = PrivateKeyInfo::new(AlgorithmIdentifierRef { oid: algorithm, parameters }, key);
    info.to_der().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{KeyPair, PublicKeyData};

    /// `der` as PEM with `label` (and `headers` lines before the body).
    fn pem_of(label: &str, der: &[u8], headers: &str) -> String {
        let body = pem::encode(&pem::Pem::new(label, der.to_vec()));
        if headers.is_empty() {
            body
        } else {
            body.replacen('\n', &format!("\n{headers}\n\n"), 1)
        }
    }

    /// An rcgen (PKCS#8, P-256) key as OpenSSL writes it in SEC1: with its curve.
    fn sec1_of(key: &KeyPair) -> Vec<u8> {
        let der = key.serialize_der();
        let inner = sec1::EcPrivateKey::from_der(PrivateKeyInfo::from_der(&der).unwrap().private_key).unwrap();
        let p256 = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
        let with_curve = sec1::EcPrivateKey { parameters: Some(sec1::EcParameters::NamedCurve(p256)), ..inner };
        with_curve.to_der().unwrap()
    }

    #[test]
    fn pkcs8_sec1_and_encrypted_pkcs8_give_the_same_key() {
        let key = KeyPair::generate().unwrap();
        let spki = key.subject_public_key_info();
        let same = |pkcs8: PrivatePkcs8KeyDer<'static>| KeyPair::try_from(&pkcs8).unwrap().subject_public_key_info();
        assert_eq!(same(pkcs8_from_pem(&key.serialize_pem(), None).unwrap()), spki);
        assert_eq!(same(pkcs8_from_pem(&pem_of("EC PRIVATE KEY", &sec1_of(&key), ""), None).unwrap()), spki);

        let info = PrivateKeyInfo::from_der(key.serialized_der()).unwrap();
        let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, &[7; 16], &[9; 16]).unwrap();
        let encrypted = info.encrypt_with_params(params, b"correct horse").unwrap();
        let text = pem_of("ENCRYPTED PRIVATE KEY", encrypted.as_bytes(), "");
        assert_eq!(same(pkcs8_from_pem(&text, Some(b"correct horse")).unwrap()), spki);
        assert_eq!(pkcs8_from_pem(&text, None).unwrap_err(), KeyError::NoPassphrase);
        let wrong = pkcs8_from_pem(&text, Some(b"battery staple")).unwrap_err().to_string();
        assert!(wrong.starts_with("encrypted pkcs#8 key: cannot decrypt (wrong passphrase?)"), "{wrong}");
    }

    #[test]
    fn pkcs1_rsa_keys_are_wrapped() {
        // ring cannot generate RSA keys: a throwaway one made with `openssl genrsa -traditional`.
        let text = include_str!("../tests/fixtures/rsa-pkcs1.pem");
        let back = pkcs8_from_pem(text, None).unwrap();
        let pair = KeyPair::from_der_and_sign_algo(&back.into(), &rcgen::PKCS_RSA_SHA256).unwrap();
        assert!(!pair.subject_public_key_info().is_empty());
    }

    #[test]
    fn anything_else_is_refused_naming_what_it_is() {
        let key = KeyPair::generate().unwrap();
        let refused = |text: &str| pkcs8_from_pem(text, None).unwrap_err().to_string();
        assert_eq!(
            refused("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"),
            "a pem \"OPENSSH PRIVATE KEY\" block, not a private key: expected pkcs#8 (PRIVATE KEY, ENCRYPTED PRIVATE \
             KEY), pkcs#1 (RSA PRIVATE KEY) or sec1 (EC PRIVATE KEY)"
        );
        assert!(refused(&pem_of("DSA PRIVATE KEY", b"\x30\x00", "")).starts_with("a pem \"DSA PRIVATE KEY\" block"));
        assert!(refused(&pem_of("CERTIFICATE", b"\x30\x00", "")).starts_with("a pem \"CERTIFICATE\" block"));
        assert!(refused("0\u{7f}\u{1} binary").starts_with("not a pem file"));
        let legacy = pem_of("EC PRIVATE KEY", &sec1_of(&key), "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00");
        assert_eq!(
            refused(&legacy),
            "a legacy openssl-encrypted EC PRIVATE KEY (Proc-Type: 4,ENCRYPTED), which is not supported: convert it \
             with `openssl pkcs8 -topk8 -v2 aes-256-cbc`"
        );
        assert!(refused(&pem_of("PRIVATE KEY", b"junk", "")).starts_with("pkcs#8 key: "));
        let der = key.serialize_der();
        let curveless = PrivateKeyInfo::from_der(&der).unwrap().private_key.to_vec();
        assert_eq!(refused(&pem_of("EC PRIVATE KEY", &curveless, "")), "sec1 key: it does not name its curve");
    }
}
