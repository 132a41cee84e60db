//! A server's authentication setting as its command line and environment show it, and the
//! exposure findings that follow from it.
//!
//! Rules, in order (names of flags and variables are kept as evidence, never their values):
//! 1. an `auth_off` entry present (`NAME=value` in the environment or on the command line, or a
//!    bare `--flag`) → `disabled`;
//! 2. an `auth_flags` option or `auth_env` variable with a non-empty value, or an `auth_on`
//!    entry → `configured`;
//! 3. an `auth_flags` option given an empty value (`--ServerApp.token=`, `--ServerApp.token=''`)
//!    → `disabled`;
//! 4. otherwise `default`: the server's documented default (`server_default`) applies.

use std::collections::BTreeMap;
use std::ffi::OsString;

use crate::report::inventory::{AuthSetting, Exposure, Listener};

use super::signatures::Server;

fn unquoted(v: &str) -> &str {
    v.trim().trim_matches(|c| c == '\'' || c == '"')
}

/// Whether `NAME=value` or `--flag` is present.
fn present(entry: &str, cmd: &[String], env: &BTreeMap<String, OsString>) -> bool {
    if entry.starts_with('-') {
        return cmd.iter().any(|a| a == entry);
    }
    let Some((name, want)) = entry.split_once('=') else { return false };
    let in_env = env.get(name).is_some_and(|v| unquoted(&v.to_string_lossy()).eq_ignore_ascii_case(want));
    in_env
        || cmd
            .iter()
            .any(|a| a.split_once('=').is_some_and(|(n, v)| n == name && unquoted(v).eq_ignore_ascii_case(want)))
}

/// The value given to option `flag` on `cmd` (`--flag v` or `--flag=v`), if it is given.
fn option_value<'a>(flag: &str, cmd: &'a [String]) -> Option<&'a str> {
    let mut args = cmd.iter();
    while let Some(a) = args.next() {
        if a == flag {
            return Some(args.next().map(String::as_str).filter(|v| !v.starts_with("--")).unwrap_or(""));
        }
        if let Some(v) = a.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
            return Some(v);
        }
    }
    None
}

/// The setting of `server` for a process with `cmd` and `env`.
pub fn setting(server: &Server, cmd: &[String], env: &BTreeMap<String, OsString>) -> AuthSetting {
    let mut off = Vec::new();
    let mut on = Vec::new();
    let mut emptied = Vec::new();
    for entry in &server.auth_off {
        if present(entry, cmd, env) {
            off.push(entry.split('=').next().unwrap_or(entry).to_string());
        }
    }
    for entry in &server.auth_on {
        if present(entry, cmd, env) {
            on.push(entry.split('=').next().unwrap_or(entry).to_string());
        }
    }
    for flag in &server.auth_flags {
        match option_value(flag, cmd).map(unquoted) {
            Some("") => emptied.push(flag.clone()),
            Some(_) => on.push(flag.clone()),
            None => {}
        }
    }
    for var in &server.auth_env {
        if env.get(var).is_some_and(|v| !unquoted(&v.to_string_lossy()).is_empty()) {
            on.push(var.clone());
        }
    }
    let (state, evidence) = if !off.is_empty() {
        ("disabled", off)
    } else if !on.is_empty() {
        ("configured", on)
    } else if !emptied.is_empty() {
        ("disabled", emptied)
    } else {
        ("default", Vec::new())
    };
    AuthSetting { state: state.to_string(), server_default: server.auth_default.clone(), evidence }
}

/// Whether a server with `auth` answers anyone who reaches it.
pub fn open_to_anyone(auth: &AuthSetting) -> bool {
    match auth.state.as_str() {
        "disabled" => true,
        "default" => auth.server_default == "none",
        _ => false,
    }
}

/// Findings for a process of `kind` with `auth` (`None`: not a known server) listening on
/// `listening`.
pub fn findings(kind: &str, auth: Option<&AuthSetting>, listening: &[Listener]) -> Vec<String> {
    let mut out = Vec::new();
    for l in listening {
        let reach = match l.exposure {
            Exposure::Loopback => continue,
            Exposure::AllInterfaces => "all interfaces".to_string(),
            Exposure::Specific => l.address.clone(),
        };
        match auth {
            Some(a) if open_to_anyone(a) => {
                out.push(format!("unauthenticated {kind} listening on {reach} (port {})", l.port));
            }
            Some(_) => {}
            None => out.push(format!("{kind} listening on {reach} (port {}), authentication unknown", l.port)),
        }
    }
    if let Some(a) = auth.filter(|a| a.state == "disabled" && a.server_default != "none") {
        out.push(format!("{kind} authentication explicitly disabled ({})", a.evidence.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::signatures::Signatures;
    use super::*;

    fn server(kind: &str) -> &'static Server {
        Signatures::embedded().unwrap().servers.iter().find(|s| s.kind == kind).unwrap()
    }

    fn cmd(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn visible_settings() {
        let none = BTreeMap::new();
        let vllm = server("vllm");
        assert_eq!(setting(vllm, &cmd("vllm serve m"), &none).state, "default");
        let keyed = setting(vllm, &cmd("vllm serve m --api-key s3cr3t"), &none);
        assert_eq!((keyed.state.as_str(), keyed.evidence.clone()), ("configured", vec!["--api-key".to_string()]));
        let env = BTreeMap::from([("VLLM_API_KEY".to_string(), OsString::from("x"))]);
        assert_eq!(setting(vllm, &cmd("vllm serve m"), &env).state, "configured");

        let jup = server("jupyter-server");
        assert_eq!(setting(jup, &cmd("jupyter-lab --ServerApp.token="), &none).state, "disabled");
        assert_eq!(setting(jup, &cmd("jupyter-lab --ServerApp.token=''"), &none).state, "disabled");
        assert_eq!(setting(jup, &cmd("jupyter-lab --ServerApp.token=abc"), &none).state, "configured");
        assert_eq!(setting(jup, &cmd("jupyter-lab"), &none).server_default, "token");

        let webui = server("open-webui");
        let off = BTreeMap::from([("WEBUI_AUTH".to_string(), OsString::from("False"))]);
        assert_eq!(setting(webui, &cmd("open-webui serve"), &off).state, "disabled");
        let ts = server("torchserve");
        assert_eq!(setting(ts, &cmd("torchserve --start --disable-token-auth"), &none).state, "disabled");
    }

    #[test]
    fn exposure_findings() {
        let open = AuthSetting { state: "default".into(), server_default: "none".into(), evidence: vec![] };
        let all = [Listener { address: "0.0.0.0".into(), port: 11434, exposure: Exposure::AllInterfaces }];
        let lo = [Listener { address: "127.0.0.1".into(), port: 11434, exposure: Exposure::Loopback }];
        assert_eq!(
            findings("ollama", Some(&open), &all),
            vec!["unauthenticated ollama listening on all interfaces (port 11434)"]
        );
        assert!(findings("ollama", Some(&open), &lo).is_empty());
        let keyed = AuthSetting { state: "configured".into(), server_default: "none".into(), evidence: vec![] };
        assert!(findings("ollama", Some(&keyed), &all).is_empty());
        assert_eq!(findings("ml-process", None, &all).len(), 1);
    }
}
