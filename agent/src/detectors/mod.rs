//! Detectors: each finds one kind of AI asset on the host.
//!
//! - [`models`]: model files and directories, identified by content.
//! - [`markers`]: the marker files the model walk notes for the other detectors.
//! - [`owners`]: the installed package (pypi, conda, npm, deb) that shipped a model file.
//! - [`frameworks`]: AI packages in Python environments and Node projects, native runtimes.
//! - [`gpus`]: NVIDIA GPUs through NVML loaded at run time, drivers and CUDA toolkits.
//! - [`runtimes`]: running inference servers and ML processes, their sockets and models.
//! - [`tooling`]: MCP client configurations and AI API keys, by name.

pub mod frameworks;
pub mod gpus;
pub mod markers;
pub mod models;
pub mod owners;
pub mod runtimes;
pub mod tooling;
