//! Human-readable output: the progress bar while scanning and the tables after
//! ([`inventory`] for the host-inventory sections), the daemon's status ([`status`]), and this
//! host's CycloneDX BOM ([`cyclonedx`]).

mod cyclonedx;
mod inventory;
mod status;

pub use cyclonedx::write_cyclonedx;
pub use status::write_status;

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::detectors::models::sources::describe;
use crate::report::ScanReport;
use crate::report::Section;
use crate::safety::Verdict;
use crate::scan::Progress;

/// Formats a byte count with binary units (shared with the collector's dashboard).
pub use aiscout_proto::human_bytes;

/// A progress bar on stderr, updated from the scan's counters until dropped.
#[derive(Debug)]
pub struct ProgressBar {
    /// Tells the ticker thread to stop.
    done: Arc<AtomicBool>,
    /// The ticker thread.
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl ProgressBar {
    /// Starts a bar when stderr is a terminal; otherwise does nothing.
    pub fn start(progress: Arc<Progress>) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        if !io::stderr().is_terminal() {
            return Self { done, ticker: None };
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        let stop = Arc::clone(&done);
        let ticker = std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                bar.set_message(format!(
                    "files {} · models {} · hashed {}",
                    progress.files_seen.load(Ordering::Relaxed),
                    progress.models.load(Ordering::Relaxed),
                    human_bytes(progress.bytes_hashed.load(Ordering::Relaxed))
                ));
                std::thread::sleep(Duration::from_millis(100));
            }
            bar.finish_and_clear();
        });
        Self { done, ticker: Some(ticker) }
    }
}

impl Drop for ProgressBar {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

/// Writes a table per section collected, the summary line and the errors. The models table
/// lists the user's models; files that installed packages shipped (with an `owner`) only with
/// `include_owned`, but a dangerous one is always named with its package.
pub fn write_table(report: &ScanReport, include_owned: bool, out: &mut dyn Write) -> io::Result<()> {
    if report.sections.contains(&Section::Models) {
        write_models(report, include_owned, out)?;
    }
    inventory::write(report, out)?;
    let s = &report.stats;
    let owned = if s.owned_models > 0 { format!("{} in packages · ", s.owned_models) } else { String::new() };
    writeln!(
        out,
        "\n{} models · {owned}{} files seen in {} roots · {} hashed · {} cache hits · {} errors · {:.1} s",
        s.models,
        s.files_seen,
        s.roots.len(),
        human_bytes(s.bytes_hashed),
        s.hash_cache_hits + s.verdict_cache_hits,
        s.errors,
        s.duration_ms as f64 / 1000.0
    )?;
    if !report.errors.is_empty() {
        writeln!(out, "\nerrors:")?;
        for e in &report.errors {
            writeln!(out, "  {}: {}", e.path, e.error)?;
        }
    }
    Ok(())
}

fn write_models(report: &ScanReport, include_owned: bool, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "{:<15} {:>10}  {:<12}  {:<32}  PATH", "FORMAT", "SIZE", "SHA256", "SOURCE")?;
    for m in report.models.iter().filter(|m| include_owned || m.owner.is_none()) {
        let package = || {
            m.owner
                .as_ref()
                .map(|o| format!("{} {} {}", o.ecosystem.as_str(), o.name, o.version.as_deref().unwrap_or("")))
        };
        let source = m.source.as_ref().map(describe).or_else(package).unwrap_or_else(|| "-".into());
        let short = m.sha256.get(..12).unwrap_or(&m.sha256);
        writeln!(
            out,
            "{:<15} {:>10}  {:<12}  {:<32}  {}",
            m.format.as_str(),
            human_bytes(m.size),
            short,
            source,
            m.path
        )?;
    }
    let hidden = report.models.iter().filter(|m| m.owner.is_some()).count();
    if hidden > 0 && !include_owned {
        writeln!(out, "({hidden} files shipped inside installed packages not listed: --include-owned lists them)")?;
    }
    let dangerous: Vec<_> =
        report.models.iter().filter(|m| m.owner.is_some() && m.safety.verdict == Verdict::Dangerous).collect();
    if !dangerous.is_empty() {
        writeln!(out, "\ndangerous files shipped inside installed packages:")?;
        for m in dangerous {
            let package = m.owner.as_ref().map(ToString::to_string).unwrap_or_default();
            let finding = m.safety.findings.first().map(|f| format!(": {} {}", f.kind, f.subject)).unwrap_or_default();
            writeln!(out, "  {}  {package}{finding}", m.path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::host::HostInfo;

    fn model(path: &str, owner: serde_json::Value, verdict: &str) -> crate::report::ModelEntry {
        let findings = if verdict == "dangerous" {
            serde_json::json!([{"kind": "dangerous_import", "subject": "os.system", "detail": "runs a command",
                "severity": "dangerous", "atlas": "AML.T0010", "owasp": "LLM03"}])
        } else {
            serde_json::json!([])
        };
        serde_json::from_value(serde_json::json!({
            "path": path, "format": "pickle", "size": 1, "sha256": "ab", "digest_source": "hashed",
            "metadata": {}, "source": null, "group": null, "owner": owner,
            "safety": {"verdict": verdict, "findings": findings}
        }))
        .unwrap()
    }

    fn table(include_owned: bool) -> String {
        let mut report = ScanReport::new(HostInfo::collect());
        report.sections = vec![Section::Models];
        let owner =
            |name: &str| serde_json::json!({"ecosystem": "pypi", "name": name, "version": "1.0", "environment": "/v"});
        report.models = vec![
            model("/home/u/mine.pkl", serde_json::Value::Null, "safe"),
            model("/v/lib/python3.11/site-packages/evil/e.pkl", owner("evil"), "dangerous"),
            model("/v/lib/python3.11/site-packages/data/d.pkl", owner("data"), "safe"),
        ];
        report.stats.owned_models = 2;
        report.stats.models = 3;
        let mut out = Vec::new();
        write_table(&report, include_owned, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn package_files_are_listed_on_request_and_dangerous_ones_always() {
        let rows = |t: &str| t.lines().filter(|l| l.starts_with("pickle")).map(str::to_owned).collect::<Vec<_>>();
        let default = table(false);
        assert_eq!(rows(&default).len(), 1, "{default}");
        assert!(rows(&default)[0].ends_with("/home/u/mine.pkl"));
        assert!(default.contains("(2 files shipped inside installed packages not listed"), "{default}");
        assert!(
            default.contains(
                "  /v/lib/python3.11/site-packages/evil/e.pkl  pypi evil 1.0 (/v): dangerous_import os.system"
            ),
            "{default}"
        );
        assert!(default.contains("3 models · 2 in packages · "), "{default}");
        let all = table(true);
        assert_eq!(rows(&all).len(), 3, "{all}");
        assert!(rows(&all)[2].contains("pypi data 1.0"), "{all}");
        assert!(!all.contains("not listed"));
    }
}
