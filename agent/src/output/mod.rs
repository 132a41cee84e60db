//! Human-readable output: the progress bar while scanning and the tables after
//! ([`inventory`] for the host-inventory sections).

mod inventory;

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::detectors::models::sources::describe;
use crate::report::ScanReport;
use crate::report::Section;
use crate::scan::Progress;

/// Formats a byte count with binary units.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    let name = UNITS.get(unit).copied().unwrap_or("B");
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {name}")
    }
}

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

/// Writes a table per section collected, the summary line and the errors.
pub fn write_table(report: &ScanReport, out: &mut dyn Write) -> io::Result<()> {
    if report.sections.contains(&Section::Models) {
        write_models(report, out)?;
    }
    inventory::write(report, out)?;
    let s = &report.stats;
    writeln!(
        out,
        "\n{} models · {} files seen in {} roots · {} hashed · {} cache hits · {} errors · {:.1} s",
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

fn write_models(report: &ScanReport, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "{:<15} {:>10}  {:<12}  {:<32}  PATH", "FORMAT", "SIZE", "SHA256", "SOURCE")?;
    for m in &report.models {
        let source = m.source.as_ref().map(describe).unwrap_or_else(|| "-".into());
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
    Ok(())
}
