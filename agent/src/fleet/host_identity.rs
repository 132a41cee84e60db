//! Who this host is: the facts the agent sends at enrollment ([`v1::HostIdentity`]) and the
//! machine fingerprint made of them.
//!
//! No single fact identifies a host: hostnames collide, a cloned disk image copies
//! `/etc/machine-id`, some hypervisors and LXC give every guest the same DMI UUID, and a per-install
//! key is lost on reinstall. So the agent sends them all and the collector weighs them.
//!
//! # The facts, in order
//! 1. `machine_id`: the `identity.machine_id` override when set, else the first line of
//!    `/etc/machine-id`, else of `/var/lib/dbus/machine-id` (lowercase; systemd's
//!    `uninitialized` placeholder counts as absent); empty when there is none.
//! 2. `product_uuid`: `/sys/class/dmi/id/product_uuid`, readable by root only; missing or
//!    denied is empty, never an error, and so are the all-`0` and all-`f` UUIDs some firmware
//!    reports.
//! 3. `hostname`: the `identity.hostname` override when set, else `uname -n`.
//! 4. `mac_addresses`: the addresses in `/sys/class/net/*/address` of physical interfaces,
//!    lowercase, sorted and distinct. Skipped: `lo`; virtual interfaces (no `device` link:
//!    bridges, veths, tunnels, bonds); USB adapters (a dock comes and goes); addresses that are
//!    not the burnt-in one (`addr_assign_type` other than 0: random, stolen by a bond, or set
//!    by hand or by Wi-Fi MAC randomisation); all-zero addresses.
//! 5. `cloud_instance_id`: `/var/lib/cloud/data/instance-id` as cloud-init wrote it, empty
//!    when absent or when cloud-init found no cloud (`iid-datasource-none`).
//! 6. `install_key`: 32 random bytes in hex, created once in `state_dir/install.key` ([`StateDir::install_key`]) (mode
//!    `0600`) and read back ever after. It dies with the state directory, so it tells one
//!    installation from the next.
//! 8. `product_serial`: `/sys/class/dmi/id/product_serial`, root only, for reconciliation with
//!    asset registers; placeholders (`0`, `None`, `To Be Filled By O.E.M.`, `Default string`,
//!    `System Serial Number`) are empty. Not part of the fingerprint: serials are often
//!    blank or shared on virtual machines.
//! 7. `machine_fingerprint`: hex SHA-256 of
//!    `machine_id "\n" product_uuid "\n" mac_addresses joined by "," "\n" cloud_instance_id`.
//!    The hostname and the install key are deliberately left out: renaming the host or
//!    reinstalling the agent keeps the fingerprint, and a clone of a disk image shares it. An
//!    `identity.machine_id` override changes it (tests give several agents on one machine
//!    distinct identities this way); a hostname override does not.
//!
//! Reading a fact never fails the collection (a missing or unreadable file is an empty fact,
//! logged at debug level); only the install key, which the agent owns, can fail it.
//!
//! # What the collector concludes
//! At enrollment the collector compares the fingerprint with the agents it knows, and keeps
//! its conclusion to itself (telling the client would tell it whether a fingerprint is known;
//! the full rules, and why, are in `docs/fleet.md`):
//! - **new**: no live agent has this fingerprint;
//! - **reinstall**: live agents with it hold this install key: the same installation enrolled
//!   again, which supersedes them once its first complete snapshot arrives (a superseded agent
//!   that sends inventory again turns out to be a clone, and both are flagged);
//! - **clone**: live agents share the fingerprint without that proof: all are flagged, nothing
//!   is superseded.
//!
//! Collecting reads a few small files: call it from blocking code (`spawn_blocking`).

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use aiscout_proto::v1;
use sha2::{Digest, Sha256};

use crate::config::IdentityConfig;
use crate::state_dir::{self, StateDir};

/// Random bytes in an install key.
const INSTALL_KEY_BYTES: usize = 32;
/// Where the machine id is looked for, in order, relative to the root.
const MACHINE_ID_FILES: [&str; 2] = ["etc/machine-id", "var/lib/dbus/machine-id"];
/// The DMI product UUID, relative to the root.
const PRODUCT_UUID_FILE: &str = "sys/class/dmi/id/product_uuid";
const PRODUCT_SERIAL_FILE: &str = "sys/class/dmi/id/product_serial";
/// The network interfaces, relative to the root.
const NET_CLASS_DIR: &str = "sys/class/net";
/// cloud-init's instance id, relative to the root.
const CLOUD_INSTANCE_ID_FILE: &str = "var/lib/cloud/data/instance-id";
/// What cloud-init writes when it found no cloud.
const NO_CLOUD_INSTANCE_ID: &str = "iid-datasource-none";
/// Most bytes read from one identity file: every fact is a short line.
const MAX_FACT_BYTES: u64 = 4096;
/// `addr_assign_type` of an interface whose address is the permanent (burnt-in) one.
const ADDR_ASSIGN_PERMANENT: &str = "0";

/// Why the host identity could not be collected.
#[derive(Debug, thiserror::Error)]
pub enum HostIdentityError {
    /// The install key exists but could not be read.
    #[error("{}: cannot read the install key: {source}", path.display())]
    ReadInstallKey {
        /// The install key file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The install key could not be written.
    #[error("{}: cannot write the install key: {source}", path.display())]
    WriteInstallKey {
        /// The install key file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The install key file does not hold 64 hex digits (delete it to make a new one).
    #[error("{}: corrupt install key: expected {} hex digits", path.display(), INSTALL_KEY_BYTES * 2)]
    CorruptInstallKey {
        /// The install key file.
        path: PathBuf,
    },
    /// The system gave no random bytes.
    #[error("cannot generate the install key: no randomness: {0}")]
    Random(String),
}

/// Collects this host's identity (module docs, facts 1–7), creating the install key in
/// `state` on first use.
pub fn collect(state: &StateDir, overrides: &IdentityConfig) -> Result<v1::HostIdentity, HostIdentityError> {
    collect_under(Path::new("/"), state, overrides)
}

/// [`collect`] with the system files (`/etc`, `/sys`, `/var`) read below `root` instead of `/`.
fn collect_under(
    root: &Path,
    state: &StateDir,
    overrides: &IdentityConfig,
) -> Result<v1::HostIdentity, HostIdentityError> {
    let machine_id = match &overrides.machine_id {
        Some(id) => id.trim().to_string(),
        None => machine_id(root),
    };
    let mut identity = v1::HostIdentity {
        machine_id,
        product_uuid: product_uuid(root),
        hostname: overrides.hostname.clone().unwrap_or_else(system_hostname),
        mac_addresses: mac_addresses(&root.join(NET_CLASS_DIR)),
        cloud_instance_id: cloud_instance_id(root),
        install_key: install_key(state)?,
        machine_fingerprint: String::new(),
        product_serial: product_serial(root),
    };
    identity.machine_fingerprint = machine_fingerprint(&identity);
    Ok(identity)
}

/// The machine fingerprint of `identity` (module docs, fact 7): hex SHA-256 of the machine
/// facts, without the hostname and the install key.
pub fn machine_fingerprint(identity: &v1::HostIdentity) -> String {
    let mut hasher = Sha256::new();
    hasher.update(identity.machine_id.as_bytes());
    hasher.update(b"\n");
    hasher.update(identity.product_uuid.as_bytes());
    hasher.update(b"\n");
    hasher.update(identity.mac_addresses.join(",").as_bytes());
    hasher.update(b"\n");
    hasher.update(identity.cloud_instance_id.as_bytes());
    hex::encode(hasher.finalize())
}

/// The first line of `path`, trimmed; `None` when the file is missing, unreadable, not UTF-8
/// or blank.
fn read_fact(path: &Path) -> Option<String> {
    let mut text = String::new();
    let read = fs::File::open(path).and_then(|f| f.take(MAX_FACT_BYTES).read_to_string(&mut text));
    match read {
        Ok(_) => {}
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied) => {
            tracing::debug!(path = %path.display(), error = %e, "identity fact not available");
            return None;
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read identity fact");
            return None;
        }
    }
    let line = text.lines().next().unwrap_or("").trim();
    (!line.is_empty()).then(|| line.to_string())
}

/// Fact 1 without override: the first machine id file that holds one.
fn machine_id(root: &Path) -> String {
    MACHINE_ID_FILES
        .iter()
        .filter_map(|file| read_fact(&root.join(file)))
        .map(|id| id.to_ascii_lowercase())
        .find(|id| id != "uninitialized")
        .unwrap_or_default()
}

/// Fact 2: the DMI product UUID, empty when unreadable or a placeholder.
fn product_uuid(root: &Path) -> String {
    let Some(uuid) = read_fact(&root.join(PRODUCT_UUID_FILE)) else { return String::new() };
    let uuid = uuid.to_ascii_lowercase();
    let digits: Vec<char> = uuid.chars().filter(|c| *c != '-').collect();
    let placeholder = digits.iter().all(|c| *c == '0') || digits.iter().all(|c| *c == 'f');
    if placeholder {
        String::new()
    } else {
        uuid
    }
}

/// Fact 8: the DMI product serial, empty when unreadable or a placeholder.
fn product_serial(root: &Path) -> String {
    let Some(serial) = read_fact(&root.join(PRODUCT_SERIAL_FILE)) else { return String::new() };
    let lower = serial.trim().to_ascii_lowercase();
    let placeholder =
        ["", "0", "none", "to be filled by o.e.m.", "default string", "system serial number", "not specified"]
            .contains(&lower.as_str())
            || lower.chars().all(|c| c == '0');
    if placeholder {
        String::new()
    } else {
        serial.trim().chars().take(128).collect()
    }
}

/// Fact 3 without override: `uname -n`.
fn system_hostname() -> String {
    rustix::system::uname().nodename().to_string_lossy().into_owned()
}

/// Fact 4: permanent addresses of the physical interfaces listed in `net_dir`
/// (`/sys/class/net`).
fn mac_addresses(net_dir: &Path) -> Vec<String> {
    let entries = match fs::read_dir(net_dir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::debug!(path = %net_dir.display(), error = %e, "cannot list network interfaces");
            return Vec::new();
        }
    };
    let mut found = BTreeSet::new();
    for entry in entries.flatten() {
        let interface = entry.path();
        if entry.file_name() == "lo" || !is_fixed_physical(&interface) {
            continue;
        }
        if let Some(kind) = read_fact(&interface.join("addr_assign_type")) {
            if kind != ADDR_ASSIGN_PERMANENT {
                tracing::debug!(interface = %interface.display(), addr_assign_type = %kind, "address not permanent");
                continue;
            }
        }
        if let Some(mac) = read_fact(&interface.join("address")).and_then(|a| normalize_mac(&a)) {
            found.insert(mac);
        }
    }
    found.into_iter().collect()
}

/// Whether the interface at `interface` (`/sys/class/net/NAME`) is backed by a device that
/// stays: it has a `device` link (virtual interfaces have none) not on the USB bus.
fn is_fixed_physical(interface: &Path) -> bool {
    let device = interface.join("device");
    if fs::symlink_metadata(&device).is_err() {
        return false;
    }
    let on_usb = fs::read_link(device.join("subsystem")).is_ok_and(|bus| bus.file_name().is_some_and(|n| n == "usb"));
    !on_usb
}

/// `address` as lowercase colon-separated hex pairs (at least six), or `None` when it is not
/// one or is all zeros.
fn normalize_mac(address: &str) -> Option<String> {
    let mac = address.trim().to_ascii_lowercase();
    let parts: Vec<&str> = mac.split(':').collect();
    let well_formed =
        parts.len() >= 6 && parts.iter().all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    let all_zero = parts.iter().all(|p| *p == "00");
    (well_formed && !all_zero).then_some(mac)
}

/// Fact 5: cloud-init's instance id.
fn cloud_instance_id(root: &Path) -> String {
    read_fact(&root.join(CLOUD_INSTANCE_ID_FILE)).filter(|id| id != NO_CLOUD_INSTANCE_ID).unwrap_or_default()
}

/// Fact 6: the install key in `state_dir`, created on first use.
///
/// Creation is atomic and race-free: the key is written to a private temporary file, then
/// hard-linked to its name, which fails if another process got there first (its key wins).
fn install_key(state: &StateDir) -> Result<String, HostIdentityError> {
    let path = state.install_key();
    if let Some(key) = read_install_key(&path)? {
        return Ok(key);
    }
    let mut bytes = [0u8; INSTALL_KEY_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| HostIdentityError::Random(e.to_string()))?;
    let key = hex::encode(bytes);
    let write_error = |source| HostIdentityError::WriteInstallKey { path: path.clone(), source };
    let temp = state_dir::temp_path(&path).map_err(write_error)?;
    state_dir::write_new_private(&temp, key.as_bytes()).map_err(write_error)?;
    let linked = fs::hard_link(&temp, &path);
    let _ = fs::remove_file(&temp);
    match linked {
        Ok(()) => {
            state_dir::sync_dir(state.root()).map_err(write_error)?;
            tracing::info!(path = %path.display(), "install key created");
            Ok(key)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            read_install_key(&path)?.ok_or(HostIdentityError::CorruptInstallKey { path })
        }
        Err(e) => Err(write_error(e)),
    }
}

/// The install key at `path`, `None` when the file does not exist.
fn read_install_key(path: &Path) -> Result<Option<String>, HostIdentityError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(HostIdentityError::ReadInstallKey { path: path.to_path_buf(), source }),
    };
    let key = text.trim();
    if key.len() != INSTALL_KEY_BYTES * 2 || !key.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(HostIdentityError::CorruptInstallKey { path: path.to_path_buf() });
    }
    state_dir::tighten_file(path);
    Ok(Some(key.to_ascii_lowercase()))
}

#[cfg(test)]
#[path = "tests/host_identity.rs"]
mod tests;
