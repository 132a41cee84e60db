//! GPUs: NVIDIA devices through NVML, loaded at run time, plus driver and toolkit facts.
//!
//! NVML (`libnvidia-ml.so.1`) is opened with `dlopen` by `nvml-wrapper` when the section runs,
//! so the agent has no link-time dependency on NVIDIA software and runs on every host:
//! 1. NVML initialises → every device with its memory and compute processes, the driver
//!    version and the CUDA version the driver supports;
//! 2. it does not (no library, driver not loaded, no permission) → `gpus` is empty and
//!    `gpu_drivers.reason` says why, once; this is never an error of the scan;
//! 3. independently, `/proc/driver/nvidia/version` (the kernel module) and CUDA toolkits on
//!    disk (`/usr/local/cuda*`, `/opt/cuda*`) are reported, since a toolkit without a GPU
//!    still says ML work happens here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Nvml;

use crate::report::inventory::{CudaToolkit, GpuDevice, GpuDrivers, GpuProcess};

/// What the GPU detector found.
#[derive(Debug, Default)]
pub struct GpuOutcome {
    /// Devices (empty without NVML or a GPU; `drivers.reason` says why).
    pub gpus: Vec<GpuDevice>,
    /// Driver and toolkit facts.
    pub drivers: GpuDrivers,
}

impl GpuOutcome {
    /// GPU memory used per process id, summed over devices.
    pub fn memory_by_pid(&self) -> HashMap<u32, u64> {
        let mut out = HashMap::new();
        for p in self.gpus.iter().flat_map(|g| g.processes.iter()) {
            *out.entry(p.pid).or_insert(0) += p.used_memory_bytes.unwrap_or(0);
        }
        out
    }
}

/// Where the kernel module says its version.
const PROC_DRIVER_VERSION: &str = "/proc/driver/nvidia/version";

/// Directories whose `cuda*` children are CUDA toolkits.
const TOOLKIT_PARENTS: &[&str] = &["/usr/local", "/opt", "/opt/nvidia"];

/// Largest version file read.
const MAX_VERSION_FILE: u64 = 64 * 1024;

/// Reads the GPUs of this host.
pub fn collect() -> GpuOutcome {
    let mut outcome = GpuOutcome::default();
    match Nvml::init() {
        Ok(nvml) => {
            outcome.drivers.nvml_loaded = true;
            outcome.drivers.driver_version = nvml.sys_driver_version().ok();
            outcome.drivers.cuda_driver_version = nvml.sys_cuda_driver_version().ok().map(|v| {
                format!("{}.{}", nvml_wrapper::cuda_driver_version_major(v), nvml_wrapper::cuda_driver_version_minor(v))
            });
            outcome.gpus = devices(&nvml);
            if outcome.gpus.is_empty() {
                outcome.drivers.reason = Some("nvml reports no gpu device".to_string());
            }
        }
        Err(e) => {
            let reason = absence_reason(&e);
            crate::log_once!(info, "gpus.absent", "", &reason, reason = %reason, "no gpu inventory");
            outcome.drivers.reason = Some(reason);
        }
    }
    outcome.drivers.kernel_module = read_small(Path::new(PROC_DRIVER_VERSION))
        .and_then(|t| t.lines().next().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")));
    outcome.drivers.cuda_toolkits = cuda_toolkits(TOOLKIT_PARENTS.iter().map(Path::new));
    outcome
}

/// Why NVML is not there, in words for the report.
fn absence_reason(e: &NvmlError) -> String {
    match e {
        NvmlError::LibloadingError(_) => {
            "nvml library (libnvidia-ml.so.1) not found: no nvidia driver installed".to_string()
        }
        NvmlError::DriverNotLoaded => "nvidia driver not loaded".to_string(),
        NvmlError::NoPermission => "no permission to query nvml".to_string(),
        other => format!("nvml unavailable: {}", other.to_string().to_lowercase()),
    }
}

fn devices(nvml: &Nvml) -> Vec<GpuDevice> {
    let count = match nvml.device_count() {
        Ok(n) => n,
        Err(e) => {
            crate::log_once!(warn, "gpus.count", "", &e.to_string(), error = %e, "cannot count gpu devices");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for index in 0..count {
        let device = match nvml.device_by_index(index) {
            Ok(d) => d,
            Err(e) => {
                crate::log_once!(warn, "gpus.device", &index.to_string(), &e.to_string(), index, error = %e, "cannot open gpu device");
                continue;
            }
        };
        let memory = device.memory_info().ok();
        let processes = device
            .running_compute_processes()
            .unwrap_or_default()
            .into_iter()
            .map(|p| GpuProcess {
                pid: p.pid,
                used_memory_bytes: match p.used_gpu_memory {
                    UsedGpuMemory::Used(b) => Some(b),
                    UsedGpuMemory::Unavailable => None,
                },
            })
            .collect();
        out.push(GpuDevice {
            index,
            name: device.name().unwrap_or_default(),
            uuid: device.uuid().ok(),
            pci_bus_id: device.pci_info().ok().map(|p| p.bus_id),
            memory_total_bytes: memory.as_ref().map(|m| m.total),
            memory_used_bytes: memory.as_ref().map(|m| m.used),
            processes,
        });
    }
    out
}

/// Reads a small regular file (never a FIFO or device) as text.
fn read_small(path: &Path) -> Option<String> {
    let bytes = crate::fileio::read_bounded(path, MAX_VERSION_FILE, crate::fileio::Oversize::Refuse).ok()?;
    String::from_utf8(bytes).ok()
}

/// The toolkit version from `version.json` (CUDA 11.1+) or `version.txt` (older).
fn toolkit_version(dir: &Path) -> Option<String> {
    if let Some(text) = read_small(&dir.join("version.json")) {
        let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
        return doc.get("cuda").and_then(|c| c.get("version")).and_then(|v| v.as_str()).map(str::to_string);
    }
    let text = read_small(&dir.join("version.txt"))?;
    text.split_whitespace().last().map(str::to_string)
}

/// CUDA toolkits: `cuda`/`cuda-X.Y` directories under `parents` holding `bin/nvcc` or a
/// version file; symlinks (`/usr/local/cuda` → `cuda-12.4`) are reported once, by target.
fn cuda_toolkits<'a>(parents: impl Iterator<Item = &'a Path>) -> Vec<CudaToolkit> {
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut out = Vec::new();
    for parent in parents {
        let Ok(entries) = std::fs::read_dir(parent) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !(name == "cuda" || name.starts_with("cuda-")) {
                continue;
            }
            // canonicalize fails (ELOOP) on a link loop instead of following it forever.
            let Ok(real) = std::fs::canonicalize(entry.path()) else { continue };
            if !real.is_dir() || seen.contains(&real) {
                continue;
            }
            let version = toolkit_version(&real);
            if version.is_none() && !real.join("bin/nvcc").is_file() {
                continue;
            }
            seen.push(real.clone());
            out.push(CudaToolkit { path: real.display().to_string(), version });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absence_is_stated_not_failed() {
        // This machine has no NVIDIA driver: the section is empty with a reason. On a GPU host
        // it lists devices instead; either way it returns.
        let g = collect();
        if g.drivers.nvml_loaded {
            assert!(g.drivers.driver_version.is_some());
        } else {
            assert!(g.gpus.is_empty());
            assert!(g.drivers.reason.as_deref().is_some_and(|r| r.contains("nvidia") || r.contains("nvml")));
        }
    }

    #[test]
    fn toolkits_are_found_by_version_file_and_deduplicated_through_links() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("cuda-12.4");
        std::fs::create_dir_all(&t).unwrap();
        std::fs::write(t.join("version.json"), r#"{"cuda":{"name":"CUDA SDK","version":"12.4.1"}}"#).unwrap();
        std::os::unix::fs::symlink(&t, dir.path().join("cuda")).unwrap();
        let old = dir.path().join("cuda-10.2");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join("version.txt"), "CUDA Version 10.2.89\n").unwrap();
        std::fs::create_dir_all(dir.path().join("cuda-empty")).unwrap();
        // A link loop is skipped, not followed.
        std::os::unix::fs::symlink(dir.path().join("cuda-loop"), dir.path().join("cuda-loop")).unwrap();
        let found = cuda_toolkits(std::iter::once(dir.path()));
        let versions: Vec<_> = found.iter().map(|t| t.version.as_deref().unwrap_or("")).collect();
        assert_eq!(versions, vec!["10.2.89", "12.4.1"], "{found:?}");
    }
}
