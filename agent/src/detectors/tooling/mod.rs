//! AI tooling: MCP client configurations and AI API keys (by variable name only).
//!
//! # What is read
//! - In each home (`ToolingOptions::homes`; explicit scan roots count as homes): the MCP
//!   configuration files of the clients listed in `agent/data/tooling.toml` (Claude Desktop,
//!   Claude Code, Cursor, VS Code, Windsurf, Cline/Roo, Continue, Zed, Codex, Gemini CLI, Goose,
//!   LM Studio) and the shell start-up files (`.bashrc`, `.zshrc`, `.profile`, `.envrc`, fish's
//!   `config.fish`, …).
//! - Per-project MCP files (`.mcp.json`, `.cursor/mcp.json`, `.vscode/mcp.json`, …) and dotenv
//!   files (`.env`, `.env.*`) that the walk noted ([`Markers`]).
//! - With `ToolingOptions::processes`, `/proc/<pid>/environ` of every process the agent may read.
//!
//! # Rules
//! 1. Each MCP configuration file that exists and parses gives one `mcp_config` entry with the
//!    client's name and its servers ([`mcp`] has the field table). A file that declares no
//!    server is still reported, with `servers: []`: the client is installed and configured.
//!    General editor settings (VS Code's and Zed's `settings.json`) are the exception: every
//!    user of the editor has one, so they are reported only when they declare a server.
//! 2. A project file is reported under `claude-code-project` (`.mcp.json`), `cursor-project`,
//!    `vscode-project` (`servers`), …, or `<dir>-project` after its directory; a file already
//!    read as a home file is not read again.
//! 3. A variable is an AI key when its name is on the key list of `tooling.toml` (with its
//!    provider), or starts with a provider's prefix (`OPENAI_`, …) and is secret by
//!    [`crate::redact::is_secret_name`].
//! 4. An AI key is reported (`api_key`) when it is given a literal, non-empty value: in a
//!    dotenv file (`found_in: dotenv`), a shell profile (`shell_profile`), an MCP server's `env`
//!    (`mcp_config`), or a process environment (`process_environment`, with the `pid`). Empty
//!    values, references (`$X`, `${X}`, `${input:x}`, `${env:X}`, `$(cmd)`) and placeholders
//!    (`<your key>`) are not keys.
//! 5. Server arguments and commands are redacted by [`crate::redact::cmdline`], URLs by
//!    [`crate::redact::text`]; of `env` and headers only names are kept.
//! 6. Files are opened with [`crate::fileio::open_regular`] (no FIFOs, sockets or devices; a
//!    symlinked dotfile is resolved first, loops fail) and read up to a bound: 16 MiB for MCP
//!    configurations (larger is an error; YAML ones also at most 1 MiB and 256 flow
//!    collections, which bounds the YAML scanner's work), 1 MiB of a dotenv file, profile or
//!    process environment (the rest is ignored, whole lines and entries kept). Missing files are not errors; unreadable or unparsable
//!    ones give one [`FileError`] each; processes that cannot be read are skipped.
//! 7. Entries are sorted by path, then kind (`mcp_config` first), client or variable,
//!    `found_in` and pid, and identical entries are reported once.
//!
//! # Values never leave
//! A secret value is never stored in a struct, logged or put in an error: parsers turn bytes
//! into names at once (looking at a value only to tell a literal from a reference), parse
//! errors name a line and column rather than quote the text, and the bytes read are dropped
//! when the file is parsed.

mod catalog;
mod files;
mod keys;
mod mcp;
mod mcp_formats;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub use keys::{is_literal_value, key_names_in_dotenv, key_names_in_environ};
pub use mcp::{declarations, parse_mcp_config, parse_mcp_json, parse_mcp_toml, parse_mcp_yaml, McpDeclarations};

use crate::detectors::markers::Markers;
use crate::report::inventory::{ToolingDetail, ToolingEntry};
use crate::report::FileError;
use files::Origin;

/// `found_in` of a key in a dotenv file.
const FOUND_IN_DOTENV: &str = "dotenv";
/// `found_in` of a key in a shell profile.
const FOUND_IN_PROFILE: &str = "shell_profile";
/// `found_in` of a key in a process environment.
const FOUND_IN_PROCESS: &str = "process_environment";
/// `found_in` of a key in an MCP server's `env`.
const FOUND_IN_MCP_CONFIG: &str = "mcp_config";

/// Where to look.
#[derive(Debug, Clone, Default)]
pub struct ToolingOptions {
    /// Directories treated as home directories (client configurations, shell profiles).
    pub homes: Vec<PathBuf>,
    /// Also read the environments of running processes (for API key names).
    pub processes: bool,
}

/// What the tooling detector found.
#[derive(Debug, Default)]
pub struct ToolingOutcome {
    /// Entries, sorted by path.
    pub tooling: Vec<ToolingEntry>,
    /// Files that could not be read or parsed.
    pub errors: Vec<FileError>,
}

/// Finds MCP configurations and API key names.
pub fn collect(opts: &ToolingOptions, markers: &Markers) -> ToolingOutcome {
    collect_from(opts, markers, Path::new("/proc"))
}

fn collect_from(opts: &ToolingOptions, markers: &Markers, proc_root: &Path) -> ToolingOutcome {
    let mut found = Found::default();
    let catalog = match catalog::catalog() {
        Ok(c) => c,
        Err(e) => {
            found.error(Path::new(catalog::SOURCE_PATH), e.to_string());
            return found.finish();
        }
    };
    let homes: BTreeSet<&PathBuf> = opts.homes.iter().collect();
    let mut read = BTreeSet::new();
    for home in homes {
        for client in &catalog.mcp_client {
            let files = client.home.iter().map(|f| (f, false)).chain(client.settings.iter().map(|f| (f, true)));
            for (rel, settings) in files {
                for path in files::expand(home, rel) {
                    if read.insert(path.clone()) {
                        mcp::read_config(&mut found, catalog, &client.client, &path, settings, Origin::Home);
                    }
                }
            }
        }
        for profile in &catalog.shell_profiles {
            keys::read_assignments(&mut found, catalog, &home.join(profile), FOUND_IN_PROFILE, Origin::Home);
        }
    }
    for path in &markers.mcp_projects {
        if read.insert(path.clone()) {
            mcp::read_config(&mut found, catalog, &catalog.project_client(path), path, false, Origin::Walk);
        }
    }
    for path in &markers.dotenvs {
        keys::read_assignments(&mut found, catalog, path, FOUND_IN_DOTENV, Origin::Walk);
    }
    if opts.processes {
        keys::process_environments(&mut found, catalog, proc_root);
    }
    found.finish()
}

/// Entries and errors gathered by the readers.
#[derive(Debug, Default)]
struct Found {
    /// Entries, in the order found.
    entries: Vec<ToolingEntry>,
    /// Files that could not be read or parsed.
    errors: Vec<FileError>,
}

impl Found {
    fn push(&mut self, path: String, detail: ToolingDetail) {
        self.entries.push(ToolingEntry { path, detail });
    }

    fn api_key(&mut self, path: &str, variable: String, provider: &str, found_in: &str, pid: Option<u32>) {
        let detail = ToolingDetail::ApiKey {
            variable,
            provider: Some(provider.to_string()),
            found_in: found_in.to_string(),
            pid,
        };
        self.push(path.to_string(), detail);
    }

    fn error(&mut self, path: &Path, error: String) {
        tracing::debug!(path = %path.display(), error = %error, "tooling file skipped");
        self.errors.push(FileError { path: path.display().to_string(), error });
    }

    /// Sorted (rule 7) and deduplicated.
    fn finish(mut self) -> ToolingOutcome {
        self.entries.sort_by(|a, b| order(a).cmp(&order(b)));
        self.entries.dedup();
        self.errors.sort_by(|a, b| (&a.path, &a.error).cmp(&(&b.path, &b.error)));
        self.errors.dedup();
        ToolingOutcome { tooling: self.entries, errors: self.errors }
    }
}

/// The sort key of an entry: path, kind, client or variable, `found_in`, pid.
fn order(e: &ToolingEntry) -> (&str, u8, &str, &str, Option<u32>) {
    match &e.detail {
        ToolingDetail::McpConfig { client, .. } => (&e.path, 0, client, "", None),
        ToolingDetail::ApiKey { variable, found_in, pid, .. } => (&e.path, 1, variable, found_in, *pid),
    }
}
