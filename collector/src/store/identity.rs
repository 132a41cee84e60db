//! The identity rules (numbered in the [module docs](super)): from an entry's JSON to the asset
//! it is a sighting of.
//!
//! Pure functions, shared by every backend, so that two backends can never disagree on what is
//! one asset. The rules read the public scan JSON (`docs/scan-json.md`), whose fields are never
//! renamed, so old and new agents produce the same identities.

use aiscout_proto::bom::text_at;
use serde_json::Value;

use super::types::{AssetKind, Verdict};

/// The asset an entry belongs to, and where on its host it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedIdentity {
    /// Stable URL-safe asset id: `model:<digest>` or `<kind>:<sha256 of identity>`.
    pub asset_id: String,
    /// Canonical identity: a model's digest, else a JSON array of the identity's parts.
    pub identity: String,
    /// Where on the host the entry is (the sighting's `path_or_environment`).
    pub location: String,
    /// A model's safety verdict (`safety.verdict`), `Unknown` when it says nothing known; `None`
    /// for other kinds.
    pub verdict: Option<Verdict>,
    /// A model file that an installed package shipped (its entry has an `owner` object): the
    /// assets listing leaves such files out unless asked (store module docs, "Package files").
    pub owned: bool,
}

/// Why no identity could be derived from an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The entry is not a JSON object.
    #[error("entry json is not an object: {reason}")]
    NotAnObject {
        /// The parser's complaint, or what the value was.
        reason: String,
    },
    /// A field the rule needs is absent or empty.
    #[error("entry has no {field}")]
    Missing {
        /// The field (or alternatives).
        field: &'static str,
    },
    /// A model digest that is not 64 hex digits.
    #[error("entry {field} is not a sha-256 hex digest")]
    BadDigest {
        /// `sha256` or `group.id`.
        field: &'static str,
    },
}

/// Derives the identity of the entry `json` of kind `kind`, seen on `agent_id`'s host.
pub fn derive(agent_id: &str, kind: AssetKind, local_key: &str, json: &str) -> Result<DerivedIdentity, IdentityError> {
    let entry: Value = serde_json::from_str(json).map_err(|e| IdentityError::NotAnObject { reason: e.to_string() })?;
    if !entry.is_object() {
        return Err(IdentityError::NotAnObject { reason: "a json value that is not an object".to_owned() });
    }
    let location = |paths: &[&[&str]]| paths.iter().find_map(|p| text_at(&entry, p)).unwrap_or(local_key).to_owned();
    match kind {
        AssetKind::Model => {
            let digest = model_digest(&entry)?;
            let verdict = text_at(&entry, &["safety", "verdict"]).map_or(Verdict::Unknown, Verdict::from_name);
            Ok(DerivedIdentity {
                asset_id: format!("model:{digest}"),
                identity: digest,
                location: location(&[&["path"]]),
                verdict: Some(verdict),
                owned: entry.get("owner").is_some_and(Value::is_object),
            })
        }
        AssetKind::Framework => {
            let ecosystem = required(&entry, "ecosystem")?.to_ascii_lowercase();
            let name = required(&entry, "name")?;
            let version = text_at(&entry, &["version"]).unwrap_or("");
            Ok(hashed(kind, &[&ecosystem, name, version], location(&[&["environment", "path"], &["path"]])))
        }
        AssetKind::Runtime => {
            let server = required(&entry, "kind")?;
            let discriminator = runtime_discriminator(&entry)?;
            Ok(hashed(kind, &[agent_id, server, &discriminator], location(&[&["exe"]])))
        }
        AssetKind::Tooling => {
            let tool = required(&entry, "kind")?;
            let path = if text_at(&entry, &["found_in"]) == Some("process_environment") {
                "process_environment"
            } else {
                required(&entry, "path")?
            };
            let name = text_at(&entry, &["variable"]).or_else(|| text_at(&entry, &["client"])).unwrap_or("");
            Ok(hashed(kind, &[agent_id, tool, path, name], location(&[&["path"]])))
        }
    }
}

/// Rule 1: the group id of a multi-file model, else the file's SHA-256; lowercase hex.
fn model_digest(entry: &Value) -> Result<String, IdentityError> {
    let (field, digest) = match text_at(entry, &["group", "id"]) {
        Some(group) => ("group.id", group),
        None => ("sha256", required(entry, "sha256")?),
    };
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(IdentityError::BadDigest { field });
    }
    Ok(digest.to_ascii_lowercase())
}

/// Rule 3: the lowest listening port, else the executable, else the first argument.
fn runtime_discriminator(entry: &Value) -> Result<String, IdentityError> {
    let lowest_port = entry
        .get("listening")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|l| l.get("port").and_then(Value::as_u64))
        .min();
    if let Some(port) = lowest_port {
        return Ok(format!("port:{port}"));
    }
    if let Some(exe) = text_at(entry, &["exe"]) {
        return Ok(format!("exe:{exe}"));
    }
    let arg0 = entry
        .get("cmdline")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    match arg0 {
        Some(arg0) => Ok(format!("cmd:{arg0}")),
        None => Err(IdentityError::Missing { field: "listening port, exe or cmdline" }),
    }
}

/// An identity of `parts` whose id is the kind and the SHA-256 of the canonical text.
fn hashed(kind: AssetKind, parts: &[&str], location: String) -> DerivedIdentity {
    let (asset_id, identity) = aiscout_proto::bom::hashed_asset_id(kind.as_str(), parts);
    DerivedIdentity { asset_id, identity, location, verdict: None, owned: false }
}

fn required<'a>(entry: &'a Value, field: &'static str) -> Result<&'a str, IdentityError> {
    text_at(entry, &[field]).ok_or(IdentityError::Missing { field })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "d53ded3de5debad164ac22d3946b5a47d6fb6456f6ca2e412f3245d635eff791";
    const GROUP: &str = "916595a85cd8498a533485bb47474969191a752d1ec41d300bb89a6a3c55ac68";

    fn id(agent: &str, kind: AssetKind, json: &str) -> DerivedIdentity {
        match derive(agent, kind, "key", json) {
            Ok(d) => d,
            Err(e) => panic!("no identity for {json}: {e}"),
        }
    }

    #[test]
    fn model_is_its_digest_or_its_group() {
        let upper = SHA.to_ascii_uppercase();
        let single = id("a", AssetKind::Model, &format!(r#"{{"path":"/m","sha256":"{upper}"}}"#));
        assert_eq!(single.asset_id, format!("model:{SHA}"));
        assert_eq!(single.identity, SHA);
        assert_eq!(single.location, "/m");
        let member = format!(r#"{{"path":"/s/1","sha256":"{SHA}","group":{{"id":"{GROUP}"}}}}"#);
        assert_eq!(id("a", AssetKind::Model, &member).asset_id, format!("model:{GROUP}"));
        let bad = derive("a", AssetKind::Model, "k", r#"{"sha256":"abc"}"#);
        assert_eq!(bad, Err(IdentityError::BadDigest { field: "sha256" }));
        let empty = derive("a", AssetKind::Model, "k", r#"{"sha256":""}"#);
        assert_eq!(empty, Err(IdentityError::Missing { field: "sha256" }));
    }

    #[test]
    fn a_model_with_an_owner_object_is_a_package_file() {
        let with = |owner: &str| id("a", AssetKind::Model, &format!(r#"{{"sha256":"{SHA}","owner":{owner}}}"#)).owned;
        assert!(with(r#"{"ecosystem":"pypi","name":"joblib"}"#));
        assert!(!with("null"));
        assert!(!with(r#""pypi""#));
        assert!(!id("a", AssetKind::Model, &format!(r#"{{"sha256":"{SHA}"}}"#)).owned);
    }

    #[test]
    fn framework_is_fleet_wide_and_versioned() {
        let torch = |v: &str, env: &str| {
            format!(r#"{{"ecosystem":"pypi","name":"torch","version":"{v}","environment":{{"path":"{env}"}}}}"#)
        };
        let a = id("agent-a", AssetKind::Framework, &torch("2.3.0", "/venv/a"));
        let b = id("agent-b", AssetKind::Framework, &torch("2.3.0", "/opt/b"));
        let c = id("agent-a", AssetKind::Framework, &torch("2.4.0", "/venv/a"));
        assert_eq!(a.asset_id, b.asset_id);
        assert_ne!(a.asset_id, c.asset_id);
        assert_eq!(a.identity, r#"["pypi","torch","2.3.0"]"#);
        assert_eq!(a.location, "/venv/a");
        assert!(a.asset_id.starts_with("framework:"));
        assert_eq!(a.asset_id.len(), "framework:".len() + 64);
    }

    #[test]
    fn runtime_is_per_host_and_prefers_the_port() {
        let ollama = r#"{"kind":"ollama","exe":"/usr/bin/ollama","listening":[{"port":11434},{"port":8080}]}"#;
        let a = id("agent-a", AssetKind::Runtime, ollama);
        let b = id("agent-b", AssetKind::Runtime, ollama);
        assert_ne!(a.asset_id, b.asset_id);
        assert_eq!(a.identity, r#"["agent-a","ollama","port:8080"]"#);
        assert_eq!(a.location, "/usr/bin/ollama");
        let quiet = id("agent-a", AssetKind::Runtime, r#"{"kind":"ml-process","exe":"/py"}"#);
        assert_eq!(quiet.identity, r#"["agent-a","ml-process","exe:/py"]"#);
        let hidden = r#"{"kind":"ml-process","exe":null,"cmdline":["python3","x.py"]}"#;
        let hidden = id("agent-a", AssetKind::Runtime, hidden);
        assert_eq!(hidden.identity, r#"["agent-a","ml-process","cmd:python3"]"#);
        assert_eq!(hidden.location, "key");
    }

    #[test]
    fn tooling_is_per_host_file_and_name() {
        let key = |found: &str, path: &str| {
            format!(r#"{{"kind":"api_key","path":"{path}","variable":"OPENAI_API_KEY","found_in":"{found}"}}"#)
        };
        let dotenv = id("a", AssetKind::Tooling, &key("dotenv", "/p/.env"));
        assert_eq!(dotenv.identity, r#"["a","api_key","/p/.env","OPENAI_API_KEY"]"#);
        let env1 = id("a", AssetKind::Tooling, &key("process_environment", "/proc/1/environ"));
        let env2 = id("a", AssetKind::Tooling, &key("process_environment", "/proc/2/environ"));
        assert_eq!(env1.asset_id, env2.asset_id);
        assert_eq!(env2.location, "/proc/2/environ");
        let mcp = r#"{"kind":"mcp_config","path":"/h/.cursor/mcp.json","client":"cursor","servers":[]}"#;
        let mcp = id("a", AssetKind::Tooling, mcp);
        assert_eq!(mcp.identity, r#"["a","mcp_config","/h/.cursor/mcp.json","cursor"]"#);
    }

    #[test]
    fn malformed_entries_are_refused() {
        assert!(matches!(derive("a", AssetKind::Tooling, "k", "not json"), Err(IdentityError::NotAnObject { .. })));
        assert!(matches!(derive("a", AssetKind::Framework, "k", "[1]"), Err(IdentityError::NotAnObject { .. })));
        assert_eq!(
            derive("a", AssetKind::Runtime, "k", r#"{"kind":"vllm"}"#),
            Err(IdentityError::Missing { field: "listening port, exe or cmdline" })
        );
    }
}
