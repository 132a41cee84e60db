//! Shared body of the per-prober fuzz targets.

use aiscout_agent::formats::{ProbeInput, HEAD_LEN, REGISTRY};

/// Runs the prober registered as `prober` on `data` named `name`; it must return `Ok` or `Err`,
/// never panic, hang or allocate past the bounds.
pub fn probe(prober: &str, name: &str, data: &[u8]) {
    let Some((_, probe)) = REGISTRY.iter().find(|(n, _)| *n == prober) else {
        panic!("no prober named {prober} in formats::REGISTRY");
    };
    let head = data.get(..data.len().min(HEAD_LEN)).unwrap_or_default();
    let input = ProbeInput { source: &data, size: data.len() as u64, head, name };
    let _ = probe(&input);
}
