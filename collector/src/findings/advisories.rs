//! Advisories for ML packages and servers, in the OSV format (<https://ossf.github.io/osv-schema/>),
//! matched against the versions the fleet runs.
//!
//! The collector ships `collector/data/advisories.osv.json` (a JSON array of OSV entries);
//! `findings.advisories_file` replaces it with a newer file of the same form. Of each entry
//! the rules use `id`, `aliases`, `summary`, `database_specific.severity` (`critical`, `high`,
//! `medium`, `low`; `high` when absent or unknown) and `affected[]`: `package.ecosystem` and
//! `package.name`, `ranges[]` of type `ECOSYSTEM` or `SEMVER` (`introduced`, `fixed`,
//! `last_affected` events) and explicit `versions[]`.
//!
//! Ecosystems: `PyPI`, `npm` and `conda` match the agent's framework entries of those
//! ecosystems (names compared PEP 503-normalised for PyPI); `aiscout:server` matches a running
//! server by its kind (`ollama`, `vllm`, …) and the version it reported (`identity.version`,
//! agents with `scan.identify_servers`). Other ecosystems are kept and never match.

use serde::Deserialize;

use super::version::Version;

/// The advisories shipped with the collector.
pub const SHIPPED: &str = include_str!("../../data/advisories.osv.json");
/// Largest advisories file read.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// One OSV entry, the fields the rules use.
#[derive(Debug, Clone, Deserialize)]
pub struct Advisory {
    /// Its id (`CVE-…`, `GHSA-…`, `PYSEC-…`).
    pub id: String,
    /// Other ids of the same vulnerability.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// One line.
    #[serde(default)]
    pub summary: String,
    /// What it affects.
    #[serde(default)]
    pub affected: Vec<Affected>,
    #[serde(default)]
    database_specific: Option<DatabaseSpecific>,
}

#[derive(Debug, Clone, Deserialize)]
struct DatabaseSpecific {
    #[serde(default)]
    severity: Option<String>,
}

/// A package an advisory affects, and which of its versions.
#[derive(Debug, Clone, Deserialize)]
pub struct Affected {
    package: Package,
    #[serde(default)]
    ranges: Vec<Range>,
    #[serde(default)]
    versions: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Package {
    ecosystem: String,
    name: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Range {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    events: Vec<Event>,
}

#[derive(Debug, Clone, Deserialize)]
struct Event {
    #[serde(default)]
    introduced: Option<String>,
    #[serde(default)]
    fixed: Option<String>,
    #[serde(default)]
    last_affected: Option<String>,
}

/// Where an installed version comes from, as advisories name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ecosystem {
    /// A Python package.
    PyPi,
    /// An npm package.
    Npm,
    /// A conda package.
    Conda,
    /// A running server, by its kind.
    Server,
}

impl Ecosystem {
    /// The agent's ecosystem name (`pypi`, `npm`, `conda`), if advisories cover it.
    pub fn of_framework(name: &str) -> Option<Self> {
        match name {
            "pypi" => Some(Self::PyPi),
            "npm" => Some(Self::Npm),
            "conda" => Some(Self::Conda),
            _ => None,
        }
    }

    fn matches(self, osv: &str) -> bool {
        matches!(
            (self, osv),
            (Self::PyPi, "PyPI") | (Self::Npm, "npm") | (Self::Conda, "conda") | (Self::Server, "aiscout:server")
        )
    }
}

/// PEP 503: lowercase, runs of `-`, `_`, `.` as one `-` (package names as advisories and
/// policies compare them).
pub fn normalise(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let c = if matches!(c, '_' | '.') { '-' } else { c.to_ascii_lowercase() };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    out
}

impl Advisory {
    /// `critical`, `high`, `medium` or `low`.
    pub fn severity(&self) -> &'static str {
        match self
            .database_specific
            .as_ref()
            .and_then(|d| d.severity.as_deref())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("critical") => "critical",
            Some("medium" | "moderate") => "medium",
            Some("low") => "low",
            _ => "high",
        }
    }

    /// Whether `version` of `name` in `ecosystem` is affected.
    pub fn affects(&self, ecosystem: Ecosystem, name: &str, version: &str) -> bool {
        let Some(installed) = Version::parse(version) else { return false };
        let name = normalise(name);
        self.affected.iter().any(|a| {
            ecosystem.matches(&a.package.ecosystem)
                && normalise(&a.package.name) == name
                && (a.versions.iter().any(|v| Version::parse(v).as_ref() == Some(&installed))
                    || a.ranges.iter().any(|r| r.contains(&installed)))
        })
    }
}

impl Range {
    /// OSV's evaluation: events in order, each `introduced` opening and each `fixed` or
    /// `last_affected` closing an affected interval (an unparseable bound never matches).
    fn contains(&self, v: &Version) -> bool {
        if self.kind != "ECOSYSTEM" && self.kind != "SEMVER" {
            return false;
        }
        let mut affected = false;
        let bound = |text: &str| if text == "0" { Some(None) } else { Version::parse(text).map(Some) };
        for e in &self.events {
            if let Some(introduced) = &e.introduced {
                match bound(introduced) {
                    Some(None) => affected = true,
                    Some(Some(from)) if *v >= from => affected = true,
                    _ => {}
                }
            }
            if e.fixed.as_deref().and_then(Version::parse).is_some_and(|fixed| *v >= fixed) {
                affected = false;
            }
            if e.last_affected.as_deref().and_then(Version::parse).is_some_and(|last| *v > last) {
                affected = false;
            }
        }
        affected
    }
}

/// Parses an advisories file (a JSON array of OSV entries); the error names what is wrong.
pub fn parse(text: &str) -> Result<Vec<Advisory>, String> {
    let list: Vec<Advisory> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON array of OSV entries: {e}"))?;
    if let Some(bad) = list.iter().find(|a| a.id.is_empty() || a.id.len() > 128) {
        return Err(format!("an entry has no usable id ({:?})", bad.id));
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_parses_and_matches_what_it_says() {
        let shipped = parse(SHIPPED).unwrap();
        let find = |id: &str| shipped.iter().find(|a| a.id == id).unwrap();
        let torch = find("CVE-2025-32434");
        assert_eq!(torch.severity(), "critical");
        assert!(torch.affects(Ecosystem::PyPi, "torch", "2.5.1+cu121"));
        assert!(torch.affects(Ecosystem::PyPi, "Torch", "2.6.0rc1"));
        assert!(!torch.affects(Ecosystem::PyPi, "torch", "2.6.0"));
        assert!(!torch.affects(Ecosystem::Npm, "torch", "2.5.0"));
        assert!(!torch.affects(Ecosystem::PyPi, "torch", ">=2.0"), "a range is not an installed version");
        let ollama = find("CVE-2024-37032");
        assert!(ollama.affects(Ecosystem::Server, "ollama", "0.1.33"));
        assert!(!ollama.affects(Ecosystem::Server, "ollama", "0.1.34"));
        let llama = find("CVE-2024-34359");
        assert!(llama.affects(Ecosystem::PyPi, "llama_cpp_python", "0.2.71"));
        assert!(!llama.affects(Ecosystem::PyPi, "llama-cpp-python", "0.2.29"));
        assert!(find("CVE-2023-48022").affects(Ecosystem::PyPi, "ray", "2.40.0"), "no fixed version");
        assert!(shipped.iter().all(|a| !a.summary.is_empty()));
    }

    #[test]
    fn ranges_follow_osv_events_and_bad_files_are_named() {
        let text = r#"[{"id":"X-1","affected":[{"package":{"ecosystem":"PyPI","name":"p"},
            "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"1.0"},{"last_affected":"1.2"},{"introduced":"2.0"},{"fixed":"2.1"}]},
                      {"type":"GIT","events":[{"introduced":"0"}]}],
            "versions":["0.5"]}],"database_specific":{"severity":"MODERATE"}}]"#;
        let a = &parse(text).unwrap()[0];
        assert_eq!(a.severity(), "medium");
        for (v, yes) in [
            ("0.4", false),
            ("0.5", true),
            ("1.0", true),
            ("1.2", true),
            ("1.3", false),
            ("2.0.1", true),
            ("2.1", false),
        ] {
            assert_eq!(a.affects(Ecosystem::PyPi, "p", v), yes, "{v}");
        }
        assert!(parse("{}").unwrap_err().contains("not a JSON array"));
        assert!(parse(r#"[{"id":""}]"#).unwrap_err().contains("no usable id"));
    }
}
