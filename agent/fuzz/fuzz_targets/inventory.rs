//! Fuzzes the host-inventory parsers: the first byte picks one (Python METADATA, dist-info
//! names, conda records, package.json, pyvenv.cfg, kernel.json, shebangs, cgroup text, command
//! lines for redaction, MCP configurations as JSON/JSONC, TOML and YAML, dotenv files and
//! process environments), the rest is its input. Each must return, never panic.
#![no_main]

use aiscout_agent::detectors::frameworks as fw;
use aiscout_agent::detectors::runtimes::container_from_cgroup;
use aiscout_agent::detectors::tooling as tl;
use aiscout_agent::redact;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    match first % 15 {
        0 => drop(fw::parse_metadata(rest)),
        1 => drop(fw::parse_dist_dir_name(&text)),
        2 => drop(fw::parse_conda_meta(rest)),
        3 => drop(fw::parse_conda_file_name(&text)),
        4 => drop(fw::parse_package_json(rest)),
        5 => drop(fw::parse_pyvenv_cfg(rest)),
        6 => drop(fw::parse_kernel_spec(rest)),
        7 => drop(fw::parse_shebang(rest)),
        8 => drop(container_from_cgroup(&text)),
        9 => drop(tl::parse_mcp_json("claude-desktop", rest)),
        10 => drop(tl::parse_mcp_toml("codex", rest)),
        11 => drop(tl::parse_mcp_yaml("goose", rest)),
        12 => drop(tl::key_names_in_dotenv(rest)),
        13 => drop(tl::key_names_in_environ(rest)),
        _ => {
            let args: Vec<String> = text.split('\0').map(str::to_string).collect();
            drop(redact::cmdline(&args));
            drop(redact::text(&text));
            drop(redact::value("COMMANDLINE_ARGS", &text));
            let _ = redact::assigned_name(&text);
        }
    }
});
