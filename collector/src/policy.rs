//! The security team's policy: a versioned TOML file that says which models are approved,
//! which framework versions are too old, which licences are allowed, which severities to
//! override and which findings are accepted exceptions (docs/findings.md, *Policy*).
//!
//! `aiscout-collector policy check FILE` names every problem by key; `policy apply FILE` checks
//! it, records it in the store (its text, digest, version and when) and re-evaluates the
//! findings. Every evaluation reads the latest applied policy from the store, so every
//! collector of a shared store applies the same one.
//!
//! ```toml
//! version = 3                          # the team's own number; each applied policy has a higher one
//! [models]
//! approved_digests = ["5f3c…"]         # SHA-256 of approved model files (64 hex digits)
//! approved_repos = ["meta-llama/*"]    # Hugging Face repos (globs)
//! approved_names = ["*llama*"]         # file names, model names or Ollama names (globs)
//! [frameworks]
//! floors = { torch = "2.6.0", transformers = "4.38.0" }
//! approved = ["torch", "transformers", "vllm"]   # when set, any other framework is unapproved
//! [licences]
//! allow = ["apache-2.0", "mit"]        # when set, any other declared licence is outside policy
//! deny = ["cc-by-nc-4.0"]
//! [severity]
//! silent-host = "medium"               # rule id = severity
//! [[exceptions]]
//! rule = "plaintext-ai-api-key"
//! hosts = ["lab-*"]                    # hostname globs (none: every host)
//! subject = "*"                        # glob over the finding's subject (none: any)
//! owner = "alice@example.com"
//! reason = "lab machines, keys rotated weekly"
//! expires = "2027-01-31"               # RFC 3339 date or date-time (UTC)
//! ```

use std::collections::BTreeMap;

use globset::{Glob, GlobMatcher};
use serde::Deserialize;

use crate::findings::advisories::normalise;
use crate::findings::version::Version;
use crate::findings::SEVERITIES;

/// Largest policy file read.
pub const MAX_POLICY_BYTES: usize = 1024 * 1024;

/// The policy file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: Option<u64>,
    #[serde(default)]
    models: Models,
    #[serde(default)]
    frameworks: Frameworks,
    #[serde(default)]
    licences: Licences,
    #[serde(default)]
    severity: BTreeMap<String, String>,
    #[serde(default)]
    exceptions: Vec<ExceptionFile>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Models {
    #[serde(default)]
    approved_digests: Vec<String>,
    #[serde(default)]
    approved_repos: Vec<String>,
    #[serde(default)]
    approved_names: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Frameworks {
    #[serde(default)]
    floors: BTreeMap<String, String>,
    #[serde(default)]
    approved: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Licences {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExceptionFile {
    rule: String,
    #[serde(default)]
    hosts: Vec<String>,
    subject: Option<String>,
    owner: String,
    reason: String,
    expires: Option<String>,
}

/// An accepted exception.
#[derive(Debug, Clone)]
pub struct Exception {
    /// The rule it applies to.
    pub rule: String,
    hosts: Vec<GlobMatcher>,
    subject: Option<GlobMatcher>,
    /// Who owns it.
    pub owner: String,
    /// Why it is accepted.
    pub reason: String,
    /// Until when (ms since the epoch).
    pub expires_ms: Option<i64>,
}

impl Exception {
    /// Whether it covers `rule`'s finding about `subject` on `hostnames` (all of them), at `now_ms`.
    pub fn covers(&self, rule: &str, subject: &str, hostnames: &[&str], now_ms: i64) -> bool {
        self.rule == rule
            && self.expires_ms.is_none_or(|e| e > now_ms)
            && self.subject.as_ref().is_none_or(|g| g.is_match(subject))
            // Every host the finding concerns must be covered: one host matching a glob must not
            // accept a finding that also concerns hosts outside it.
            && (self.hosts.is_empty()
                || (!hostnames.is_empty() && hostnames.iter().all(|h| self.hosts.iter().any(|g| g.is_match(h)))))
    }
}

/// A checked policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// The team's version number.
    pub version: u64,
    /// Approved model digests (lowercase hex).
    pub approved_digests: Vec<String>,
    approved_repos: Vec<GlobMatcher>,
    approved_names: Vec<GlobMatcher>,
    /// Lowest version allowed per package (PEP 503 names).
    pub floors: BTreeMap<String, Version>,
    /// The floors as written, for evidence.
    pub floors_text: BTreeMap<String, String>,
    /// Frameworks allowed (PEP 503 names); empty: any.
    pub approved_frameworks: Vec<String>,
    /// Licences allowed (lowercase); empty: any not denied.
    pub allow: Vec<String>,
    /// Licences denied (lowercase).
    pub deny: Vec<String>,
    /// Severity per rule id.
    pub severity: BTreeMap<String, String>,
    /// Accepted exceptions.
    pub exceptions: Vec<Exception>,
}

fn glob(key: &str, pattern: &str, problems: &mut Vec<String>) -> Option<GlobMatcher> {
    match Glob::new(pattern) {
        Ok(g) => Some(g.compile_matcher()),
        Err(e) => {
            problems.push(format!("{key}: {pattern:?}: {e}"));
            None
        }
    }
}

/// `2027-01-31` or `2027-01-31T12:00:00Z` as ms since the epoch.
fn parse_expiry(text: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    let full = if text.len() == 10 { format!("{text}T00:00:00Z") } else { text.to_string() };
    let t = time::OffsetDateTime::parse(&full, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

impl Policy {
    /// Parses and checks `text`; every problem is named by its key.
    pub fn parse(text: &str) -> Result<Self, Vec<String>> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(vec![format!("larger than {MAX_POLICY_BYTES} bytes")]);
        }
        let file: File = toml::from_str(text).map_err(|e| vec![e.message().to_string() + &span(text, e.span())])?;
        let mut p = Vec::new();
        let version = match file.version {
            Some(v) if v > 0 => v,
            _ => {
                p.push("version: required, a number above 0 (raise it with every change)".to_string());
                0
            }
        };
        let mut digests = Vec::new();
        for (i, d) in file.models.approved_digests.iter().enumerate() {
            let d = d.trim().trim_start_matches("sha256:").to_ascii_lowercase();
            if d.len() != 64 || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
                p.push(format!("models.approved_digests[{i}]: 64 hex digits (a SHA-256), got {d:?}"));
            }
            digests.push(d);
        }
        let repos =
            file.models.approved_repos.iter().filter_map(|g| glob("models.approved_repos", g, &mut p)).collect();
        let names =
            file.models.approved_names.iter().filter_map(|g| glob("models.approved_names", g, &mut p)).collect();
        let mut floors = BTreeMap::new();
        for (name, v) in &file.frameworks.floors {
            match Version::parse(v) {
                Some(parsed) => {
                    floors.insert(normalise(name), parsed);
                }
                None => p.push(format!("frameworks.floors.{name}: {v:?} is not a version")),
            }
        }
        let lower = |list: &[String]| list.iter().map(|l| l.trim().to_ascii_lowercase()).collect::<Vec<_>>();
        let (allow, deny) = (lower(&file.licences.allow), lower(&file.licences.deny));
        if let Some(both) = allow.iter().find(|a| deny.contains(a)) {
            p.push(format!("licences: {both:?} is both allowed and denied"));
        }
        for (rule, severity) in &file.severity {
            if crate::findings::rule(rule).is_none() {
                p.push(format!("severity.{rule}: no such rule"));
            }
            if !SEVERITIES.contains(&severity.as_str()) {
                p.push(format!("severity.{rule}: {severity:?} is not one of {}", SEVERITIES.join(", ")));
            }
        }
        let mut exceptions = Vec::new();
        for (i, e) in file.exceptions.iter().enumerate() {
            let key = format!("exceptions[{i}]");
            if crate::findings::rule(&e.rule).is_none() {
                p.push(format!("{key}.rule: no such rule {:?}", e.rule));
            }
            if e.owner.trim().is_empty() {
                p.push(format!("{key}.owner: required"));
            }
            if e.reason.trim().is_empty() {
                p.push(format!("{key}.reason: required"));
            }
            let expires_ms = match &e.expires {
                Some(t) => match parse_expiry(t) {
                    Some(ms) => Some(ms),
                    None => {
                        p.push(format!("{key}.expires: {t:?} is not an RFC 3339 date (2027-01-31) or date-time"));
                        None
                    }
                },
                None => None,
            };
            exceptions.push(Exception {
                rule: e.rule.clone(),
                hosts: e.hosts.iter().filter_map(|h| glob(&format!("{key}.hosts"), h, &mut p)).collect(),
                subject: e.subject.as_deref().and_then(|s| glob(&format!("{key}.subject"), s, &mut p)),
                owner: e.owner.trim().to_string(),
                reason: e.reason.trim().to_string(),
                expires_ms,
            });
        }
        if !p.is_empty() {
            return Err(p);
        }
        Ok(Self {
            version,
            approved_digests: digests,
            approved_repos: repos,
            approved_names: names,
            floors_text: file.frameworks.floors.iter().map(|(k, v)| (normalise(k), v.clone())).collect(),
            floors,
            approved_frameworks: file.frameworks.approved.iter().map(|n| normalise(n.trim())).collect(),
            allow,
            deny,
            severity: file.severity,
            exceptions,
        })
    }

    /// Whether the policy approves models at all (any approval listed).
    pub fn lists_approved_models(&self) -> bool {
        !self.approved_digests.is_empty() || !self.approved_repos.is_empty() || !self.approved_names.is_empty()
    }

    /// Whether a model with `sha256`, Hugging Face `repo` and `names` is approved.
    pub fn approves_model(&self, sha256: &str, repo: Option<&str>, names: &[&str]) -> bool {
        self.approved_digests.iter().any(|d| d.eq_ignore_ascii_case(sha256))
            || repo.is_some_and(|r| self.approved_repos.iter().any(|g| g.is_match(r)))
            || names.iter().any(|n| self.approved_names.iter().any(|g| g.is_match(n)))
    }

    /// Whether framework `name` is allowed (every one is while the policy lists none).
    pub fn approves_framework(&self, name: &str) -> bool {
        self.approved_frameworks.is_empty() || self.approved_frameworks.contains(&normalise(name))
    }

    /// Why `licence` is outside the policy, if it is.
    pub fn licence_problem(&self, licence: &str) -> Option<&'static str> {
        let l = licence.trim().to_ascii_lowercase();
        if self.deny.contains(&l) {
            Some("denied")
        } else if !self.allow.is_empty() && !self.allow.contains(&l) {
            Some("not on the allow list")
        } else {
            None
        }
    }

    /// The floor for package `name`, when `version` is below it.
    pub fn below_floor(&self, name: &str, version: &str) -> Option<&str> {
        let name = normalise(name);
        let floor = self.floors.get(&name)?;
        let v = Version::parse(version)?;
        (v < *floor).then(|| self.floors_text.get(&name).map_or("", String::as_str))
    }
}

/// ` (line L, column C)` of a TOML error's span.
fn span(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    let Some(at) = span.map(|s| s.start) else { return String::new() };
    let before = text.get(..at).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!(" (line {line}, column {column})")
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../packaging/policy.example.toml");

    #[test]
    fn the_example_policy_is_valid_and_means_what_it_says() {
        let p = Policy::parse(EXAMPLE).unwrap();
        assert!(p.version > 0 && p.lists_approved_models());
        assert!(p.approves_model("x", Some("meta-llama/Llama-3.1-8B-Instruct"), &[]));
        assert!(!p.approves_model("x", Some("someone/llama-clone"), &["model.pkl"]));
        assert_eq!(p.below_floor("Torch", "2.5.1+cu121"), Some("2.6.0"));
        assert_eq!(p.below_floor("torch", "2.6.0"), None);
        assert_eq!(p.licence_problem("CC-BY-NC-4.0"), Some("denied"));
        assert_eq!(p.licence_problem("apache-2.0"), None);
        assert!(p.exceptions.iter().any(|e| e.covers("plaintext-ai-api-key", "a|/x/.env|K", &["lab-3"], 0)));
        assert!(!p.exceptions.iter().any(|e| e.covers("plaintext-ai-api-key", "a|/x/.env|K", &["prod-1"], 0)));
        assert!(
            !p.exceptions.iter().any(|e| e.covers("plaintext-ai-api-key", "a|/x/.env|K", &["lab-3", "prod-1"], 0)),
            "one lab host does not accept a finding that also concerns a prod host"
        );
        assert!(!p.exceptions.iter().any(|e| e.covers("plaintext-ai-api-key", "a", &["lab-3"], i64::MAX)), "expired");
    }

    #[test]
    fn every_problem_is_named_by_its_key() {
        let bad = r#"
[models]
approved_digests = ["abc"]
approved_repos = ["[unclosed"]
[frameworks]
floors = { torch = ">=2" }
[licences]
allow = ["mit"]
deny = ["MIT"]
[severity]
nope = "high"
silent-host = "urgent"
[[exceptions]]
rule = "silent-host"
owner = ""
reason = "r"
expires = "next week"
"#;
        let problems = Policy::parse(bad).unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.split(':').next().unwrap_or_default()).collect();
        assert_eq!(
            keys,
            [
                "version",
                "models.approved_digests[0]",
                "models.approved_repos",
                "frameworks.floors.torch",
                "licences",
                "severity.nope",
                "severity.silent-host",
                "exceptions[0].owner",
                "exceptions[0].expires"
            ],
            "{problems:#?}"
        );
        let e = Policy::parse("version = 1\n[modles]\n").unwrap_err();
        assert!(e[0].contains("unknown field `modles`") && e[0].contains("line 2"), "{e:?}");
    }
}
