//! Listening TCP sockets: inode → local address, per network namespace.
//!
//! `/proc/<pid>/net/tcp{,6}` shows the table of the process's network namespace, so a
//! containerised server's sockets are found too (and only its own namespace's: a port in it says
//! nothing about the host's); each namespace's table is read once per collection and shared by
//! the processes in it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use procfs::net::{TcpNetEntry, TcpState};
use procfs::process::Process;

use crate::report::inventory::{Exposure, Listener};

/// Listening sockets by inode, for one namespace.
pub type ListenTable = HashMap<u64, SocketAddr>;

/// Tables by namespace id, read on first use.
#[derive(Debug, Default)]
pub struct SocketTables {
    /// Namespace id → table (`None` key: the table could not be tied to a namespace).
    tables: HashMap<Option<u64>, ListenTable>,
}

fn listening(entries: Vec<TcpNetEntry>, into: &mut ListenTable) {
    for e in entries {
        if e.state == TcpState::Listen {
            into.insert(e.inode, e.local_address);
        }
    }
}

impl SocketTables {
    /// The table of `process`'s namespace `ns`.
    /// A process whose namespace is unknown (`None`) gets a table read for it alone: sharing
    /// one would give it another namespace's sockets.
    pub fn table(&mut self, process: &Process, ns: Option<u64>) -> &ListenTable {
        if ns.is_none() {
            self.tables.remove(&None);
        }
        self.tables.entry(ns).or_insert_with(|| {
            let mut t = ListenTable::new();
            match process.tcp() {
                Ok(v4) => listening(v4, &mut t),
                Err(e) => tracing::debug!(pid = process.pid, error = %e, "cannot read tcp table"),
            }
            if let Ok(v6) = process.tcp6() {
                listening(v6, &mut t);
            }
            t
        })
    }
}

/// How far an address reaches.
pub fn exposure(ip: &IpAddr) -> Exposure {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(*ip),
        v4 => *v4,
    };
    if ip.is_unspecified() {
        Exposure::AllInterfaces
    } else if ip.is_loopback() {
        Exposure::Loopback
    } else {
        Exposure::Specific
    }
}

/// The listeners among `inodes`, sorted and distinct.
pub fn listeners(inodes: &[u64], table: &ListenTable) -> Vec<Listener> {
    let mut out: Vec<Listener> = inodes
        .iter()
        .filter_map(|i| table.get(i))
        .map(|a| Listener { address: a.ip().to_string(), port: a.port(), exposure: exposure(&a.ip()) })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_of_addresses() {
        let e = |s: &str| exposure(&s.parse().unwrap());
        assert_eq!(e("0.0.0.0"), Exposure::AllInterfaces);
        assert_eq!(e("::"), Exposure::AllInterfaces);
        assert_eq!(e("127.0.0.1"), Exposure::Loopback);
        assert_eq!(e("127.8.9.1"), Exposure::Loopback);
        assert_eq!(e("::1"), Exposure::Loopback);
        assert_eq!(e("::ffff:127.0.0.1"), Exposure::Loopback);
        assert_eq!(e("::ffff:0.0.0.0"), Exposure::AllInterfaces);
        assert_eq!(e("10.1.2.3"), Exposure::Specific);
    }

    #[test]
    fn own_listener_is_found_by_inode() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let me = Process::myself().unwrap();
        let inodes: Vec<u64> = me
            .fd()
            .unwrap()
            .flatten()
            .filter_map(|f| match f.target {
                procfs::process::FDTarget::Socket(i) => Some(i),
                _ => None,
            })
            .collect();
        let mut tables = SocketTables::default();
        let found = listeners(&inodes, tables.table(&me, super::super::procinfo::netns(me.pid)));
        assert!(
            found.iter().any(|f| f.port == port && f.exposure == Exposure::Loopback && f.address == "127.0.0.1"),
            "{found:?}"
        );
    }
}
