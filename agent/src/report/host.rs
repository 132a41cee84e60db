//! Facts about the host the scan ran on.

use serde::{Deserialize, Serialize};

/// The `host` object of the scan document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// Host name (`uname -n`).
    pub hostname: String,
    /// Operating system (`PRETTY_NAME` of `/etc/os-release`).
    pub os: String,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// CPU architecture.
    pub arch: String,
    /// Version of the agent that scanned.
    pub agent_version: String,
    /// When the scan started (RFC 3339, UTC).
    pub scanned_at: String,
    /// The host's own IP addresses (its network namespace's), sorted: IPv4 from
    /// `/proc/net/fib_trie` local routes, IPv6 of global scope from `/proc/net/if_inet6`;
    /// loopback and link-local left out.
    #[serde(default)]
    pub ip_addresses: Vec<String>,
}

/// Most addresses listed.
const MAX_ADDRESSES: usize = 64;

/// The local IPv4 addresses in `fib_trie` (`/proc/net/fib_trie`): an address line followed by
/// a `/32 host LOCAL` line, 127.0.0.0/8 left out.
pub fn ipv4_from_fib_trie(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut last: Option<&str> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(address) = line.strip_prefix("|-- ") {
            last = Some(address.trim());
        } else if line.starts_with("/32 host LOCAL") {
            if let Some(a) = last.and_then(|a| a.parse::<std::net::Ipv4Addr>().ok()) {
                if !a.is_loopback() {
                    out.push(a.to_string());
                }
            }
        }
    }
    out
}

/// The global-scope IPv6 addresses in `if_inet6` (`/proc/net/if_inet6`: 32 hex digits, index,
/// prefix length, scope, flags, name).
pub fn ipv6_from_if_inet6(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let hex = fields.next()?;
            let scope = fields.nth(2)?;
            if scope != "00" || hex.len() != 32 {
                return None;
            }
            let bytes: Vec<u8> =
                (0..16).map(|i| u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()).collect::<Option<_>>()?;
            let octets: [u8; 16] = bytes.try_into().ok()?;
            let a = std::net::Ipv6Addr::from(octets);
            (!a.is_loopback()).then(|| a.to_string())
        })
        .collect()
}

/// This host's addresses (see [`HostInfo::ip_addresses`]); none when `/proc` cannot be read.
fn ip_addresses() -> Vec<String> {
    let read = |path: &str| {
        crate::fileio::read_bounded_if_present(
            std::path::Path::new(path),
            4 << 20,
            crate::fileio::Oversize::Truncate { separator: b'\n' },
        )
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
    };
    let mut out = ipv4_from_fib_trie(&read("/proc/net/fib_trie"));
    out.extend(ipv6_from_if_inet6(&read("/proc/net/if_inet6")));
    out.sort();
    out.dedup();
    out.truncate(MAX_ADDRESSES);
    out
}

impl HostInfo {
    /// Reads the facts of this host.
    pub fn collect() -> Self {
        let uname = rustix::system::uname();
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string()))
            })
            .unwrap_or_else(|| std::env::consts::OS.to_string());
        Self {
            hostname: uname.nodename().to_string_lossy().into_owned(),
            os,
            kernel: uname.release().to_string_lossy().into_owned(),
            arch: std::env::consts::ARCH.to_string(),
            agent_version: crate::version().to_string(),
            scanned_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            ip_addresses: ip_addresses(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addresses_are_read_from_proc_and_loopback_and_link_local_left_out() {
        let fib = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     +-- 10.0.0.0/24 2 0 2\n\
                   |-- 10.0.0.5\n           /32 host LOCAL\n     |-- 10.0.0.255\n           /32 link BROADCAST\n\
                   +-- 127.0.0.0/8 2 0 2\n        |-- 127.0.0.1\n           /32 host LOCAL\nLocal:\n  |-- 10.0.0.5\n     /32 host LOCAL\n";
        assert_eq!(ipv4_from_fib_trie(fib), ["10.0.0.5", "10.0.0.5"]);
        let inet6 = "00000000000000000000000000000001 01 80 10 80       lo\n\
                     fe80000000000000021122fffe334455 02 40 20 80     eth0\n\
                     20010db8000000000000000000000042 02 40 00 80     eth0\n\
                     garbage\n";
        assert_eq!(ipv6_from_if_inet6(inet6), ["2001:db8::42"]);
        assert!(ipv4_from_fib_trie("").is_empty() && ipv6_from_if_inet6("").is_empty());
    }
}
