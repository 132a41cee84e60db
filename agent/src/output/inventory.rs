//! Tables of the host-inventory sections, each printed when its section was collected.

use std::io::{self, Write};

use crate::report::inventory::{Exposure, ToolingDetail};
use crate::report::ScanReport;

use super::human_bytes;

/// Writes frameworks, GPUs, runtimes and tooling.
pub fn write(report: &ScanReport, out: &mut dyn Write) -> io::Result<()> {
    if let Some(frameworks) = &report.frameworks {
        writeln!(out, "\nFRAMEWORKS")?;
        writeln!(out, "{:<8} {:<28} {:<20} {:<15} ENVIRONMENT", "ECOSYS", "NAME", "VERSION", "KIND")?;
        for f in frameworks {
            let kind = serde_json::to_value(f.environment.kind).ok().and_then(|v| v.as_str().map(str::to_string));
            let ecosystem = serde_json::to_value(f.ecosystem).ok().and_then(|v| v.as_str().map(str::to_string));
            writeln!(
                out,
                "{:<8} {:<28} {:<20} {:<15} {}{}",
                ecosystem.unwrap_or_default(),
                f.name,
                f.version.as_deref().unwrap_or("-"),
                kind.unwrap_or_default(),
                f.environment.path,
                if f.gpu_build { "  [gpu]" } else { "" }
            )?;
        }
        if let Some(envs) = &report.environments {
            writeln!(out, "{} environments, {} packages", envs.len(), envs.iter().map(|e| e.packages).sum::<u64>())?;
        }
    }
    if let (Some(gpus), Some(drivers)) = (&report.gpus, &report.gpu_drivers) {
        writeln!(out, "\nGPUS")?;
        for g in gpus {
            let mem = g.memory_total_bytes.map(human_bytes).unwrap_or_else(|| "-".into());
            writeln!(out, "{:<3} {:<32} {:>10}  {} compute processes", g.index, g.name, mem, g.processes.len())?;
        }
        if let Some(reason) = &drivers.reason {
            writeln!(out, "no gpu: {reason}")?;
        }
        for t in &drivers.cuda_toolkits {
            writeln!(out, "cuda toolkit {} at {}", t.version.as_deref().unwrap_or("?"), t.path)?;
        }
    }
    if let Some(runtimes) = &report.runtimes {
        writeln!(out, "\nRUNTIMES")?;
        writeln!(out, "{:>7} {:<26} {:<10} {:<28} {:<24} COMMAND", "PID", "KIND", "USER", "LISTENING", "ML LIBRARIES")?;
        for r in runtimes {
            let listening: Vec<String> = r
                .listening
                .iter()
                .map(|l| match l.exposure {
                    Exposure::AllInterfaces => format!("*:{}", l.port),
                    _ => format!("{}:{}", l.address, l.port),
                })
                .collect();
            let command: String = r.cmdline.join(" ").chars().take(60).collect();
            writeln!(
                out,
                "{:>7} {:<26} {:<10} {:<28} {:<24} {}",
                r.pid,
                r.kind,
                r.user.as_deref().unwrap_or("-"),
                if listening.is_empty() { "-".to_string() } else { listening.join(",") },
                if r.ml_libraries.is_empty() { "-".to_string() } else { r.ml_libraries.join(",") },
                command
            )?;
            for m in &r.open_models {
                writeln!(out, "{:>7} holds {}", "", m.path)?;
            }
            for f in &r.findings {
                writeln!(out, "{:>7} ! {f}", "")?;
            }
        }
        if let Some(restricted) = report.restricted_processes.as_ref().filter(|r| !r.is_empty()) {
            writeln!(out, "{} processes could not be examined (run as root to see them)", restricted.len())?;
        }
    }
    if let Some(tooling) = &report.tooling {
        writeln!(out, "\nTOOLING")?;
        for t in tooling {
            match &t.detail {
                ToolingDetail::McpConfig { client, servers } => {
                    let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
                    writeln!(out, "mcp    {:<18} {}  [{}]", client, t.path, names.join(", "))?;
                }
                ToolingDetail::ApiKey { variable, found_in, .. } => {
                    writeln!(out, "key    {:<18} {}  ({found_in})", variable, t.path)?;
                }
            }
        }
    }
    Ok(())
}
