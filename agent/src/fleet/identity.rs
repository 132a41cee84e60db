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
//! 6. `install_key`: 32 random bytes in hex, created once in `state_dir/install.key` (mode
//!    `0600`) and read back ever after. It dies with the state directory, so it tells one
//!    installation from the next.
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
//! At enrollment the collector compares the fingerprint with the agents it knows and answers
//! `host_status` (the full rules, and why, are in `docs/fleet.md`):
//! - **new**: no live agent has this fingerprint;
//! - **reinstall**: live agents have it: the new agent supersedes them (a superseded agent
//!   that sends inventory again turns out to be a clone, and both are flagged);
//! - **clone**: the agents with this fingerprint are a known clone group, which the new agent
//!   joins.
//!
//! Collecting reads a few small files: call it from blocking code (`spawn_blocking`).

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aiscout_proto::v1;
use sha2::{Digest, Sha256};

use crate::config::IdentityConfig;

/// Name of the install key file in the state directory.
pub const INSTALL_KEY_FILE: &str = "install.key";
/// Random bytes in an install key.
const INSTALL_KEY_BYTES: usize = 32;
/// Where the machine id is looked for, in order, relative to the root.
const MACHINE_ID_FILES: [&str; 2] = ["etc/machine-id", "var/lib/dbus/machine-id"];
/// The DMI product UUID, relative to the root.
const PRODUCT_UUID_FILE: &str = "sys/class/dmi/id/product_uuid";
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
/// Mode of files the agent creates in its state directory.
pub(super) const PRIVATE_FILE_MODE: u32 = 0o600;
/// Mode of directories the agent creates in its state directory.
pub(super) const PRIVATE_DIR_MODE: u32 = 0o700;

/// Why the host identity could not be collected.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The state directory could not be created.
    #[error("{}: cannot create the state directory: {source}", path.display())]
    StateDir {
        /// The state directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
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
/// `state_dir` on first use.
pub fn collect(state_dir: &Path, overrides: &IdentityConfig) -> Result<v1::HostIdentity, IdentityError> {
    collect_under(Path::new("/"), state_dir, overrides)
}

/// [`collect`] with the system files (`/etc`, `/sys`, `/var`) read below `root` instead of `/`.
fn collect_under(root: &Path, state_dir: &Path, overrides: &IdentityConfig) -> Result<v1::HostIdentity, IdentityError> {
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
        install_key: install_key(state_dir)?,
        machine_fingerprint: String::new(),
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
fn install_key(state_dir: &Path) -> Result<String, IdentityError> {
    let path = state_dir.join(INSTALL_KEY_FILE);
    if let Some(key) = read_install_key(&path)? {
        return Ok(key);
    }
    crate::fileio::create_private_dir(state_dir)
        .map_err(|source| IdentityError::StateDir { path: state_dir.to_path_buf(), source })?;
    let mut bytes = [0u8; INSTALL_KEY_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| IdentityError::Random(e.to_string()))?;
    let key = hex::encode(bytes);
    let write_error = |source| IdentityError::WriteInstallKey { path: path.clone(), source };
    let temp = temp_path(&path).map_err(write_error)?;
    write_new_private(&temp, key.as_bytes()).map_err(write_error)?;
    let linked = fs::hard_link(&temp, &path);
    let _ = fs::remove_file(&temp);
    match linked {
        Ok(()) => {
            sync_dir(state_dir).map_err(write_error)?;
            tracing::info!(path = %path.display(), "install key created");
            Ok(key)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            read_install_key(&path)?.ok_or(IdentityError::CorruptInstallKey { path })
        }
        Err(e) => Err(write_error(e)),
    }
}

/// The install key at `path`, `None` when the file does not exist.
fn read_install_key(path: &Path) -> Result<Option<String>, IdentityError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(IdentityError::ReadInstallKey { path: path.to_path_buf(), source }),
    };
    let key = text.trim();
    if key.len() != INSTALL_KEY_BYTES * 2 || !key.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(IdentityError::CorruptInstallKey { path: path.to_path_buf() });
    }
    tighten_file(path);
    Ok(Some(key.to_ascii_lowercase()))
}

/// A fresh, unused name next to `path` for a temporary file (`.NAME.RANDOM.tmp`).
pub(super) fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).map_err(|e| io::Error::other(e.to_string()))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(path.with_file_name(format!(".{name}.{}.tmp", hex::encode(suffix))))
}

/// Creates `path` (which must not exist) with mode `0600`, writes `contents` and syncs it.
pub(super) fn write_new_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(PRIVATE_FILE_MODE).open(path)?;
    // The mode given at creation is filtered by the umask; state files are never wider than 0600.
    file.set_permissions(fs::Permissions::from_mode(PRIVATE_FILE_MODE))?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Syncs the directory `dir`, so the names created or renamed in it survive a crash.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Removes group and other permissions from the private file at `path`, logging on failure.
pub(super) fn tighten_file(path: &Path) {
    let Ok(meta) = fs::metadata(path) else { return };
    if meta.permissions().mode() & 0o077 == 0 {
        return;
    }
    tracing::warn!(path = %path.display(), mode = %format_args!("{:o}", meta.permissions().mode() & 0o777), "private file readable by others; restricting it to 0600");
    if let Err(e) = fs::set_permissions(path, fs::Permissions::from_mode(PRIVATE_FILE_MODE)) {
        tracing::warn!(path = %path.display(), error = %e, "cannot restrict private file permissions");
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// A fake root with a machine id, a DMI UUID, cloud-init data and no interfaces.
    fn fake_root() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let path = root.path().join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        };
        write(MACHINE_ID_FILES[0], "0123456789ABCDEF0123456789abcdef\n");
        write(PRODUCT_UUID_FILE, "4C4C4544-0042-3510-8052-B4C04F4E3132\n");
        write(CLOUD_INSTANCE_ID_FILE, "i-0abc123\n");
        fs::create_dir_all(root.path().join(NET_CLASS_DIR)).unwrap();
        root
    }

    /// Adds interface `name` to the fake sysfs net dir: `physical` gives it a device link,
    /// `bus` the device's subsystem, `assign` its addr_assign_type.
    fn interface(net: &Path, name: &str, address: &str, physical: bool, bus: &str, assign: Option<&str>) {
        let dir = net.join(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("address"), format!("{address}\n")).unwrap();
        if let Some(assign) = assign {
            fs::write(dir.join("addr_assign_type"), format!("{assign}\n")).unwrap();
        }
        if physical {
            let device = net.join(format!("../devices/{name}"));
            let bus_dir = net.join(format!("../bus/{bus}"));
            fs::create_dir_all(&device).unwrap();
            fs::create_dir_all(&bus_dir).unwrap();
            symlink(&bus_dir, device.join("subsystem")).unwrap();
            symlink(&device, dir.join("device")).unwrap();
        }
    }

    #[test]
    fn facts_are_read_and_normalised() {
        let root = fake_root();
        let state = tempfile::tempdir().unwrap();
        let id = collect_under(root.path(), state.path(), &IdentityConfig::default()).unwrap();
        assert_eq!(id.machine_id, "0123456789abcdef0123456789abcdef");
        assert_eq!(id.product_uuid, "4c4c4544-0042-3510-8052-b4c04f4e3132");
        assert_eq!(id.cloud_instance_id, "i-0abc123");
        assert_eq!(id.hostname, system_hostname());
        assert!(id.mac_addresses.is_empty());
        assert_eq!(id.install_key.len(), 64);
        assert_eq!(id.machine_fingerprint, machine_fingerprint(&id));
        assert_eq!(id.machine_fingerprint.len(), 64);
    }

    #[test]
    fn missing_facts_are_empty_and_fall_back() {
        let root = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let id = collect_under(root.path(), state.path(), &IdentityConfig::default()).unwrap();
        assert_eq!((id.machine_id.as_str(), id.product_uuid.as_str(), id.cloud_instance_id.as_str()), ("", "", ""));

        // systemd's first-boot placeholder falls through to the D-Bus copy.
        for (rel, text) in [
            (MACHINE_ID_FILES[0], "uninitialized\n"),
            (MACHINE_ID_FILES[1], "feedfacefeedfacefeedfacefeedface\n"),
            (PRODUCT_UUID_FILE, "00000000-0000-0000-0000-000000000000\n"),
            (CLOUD_INSTANCE_ID_FILE, "iid-datasource-none\n"),
        ] {
            let path = root.path().join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        let id = collect_under(root.path(), state.path(), &IdentityConfig::default()).unwrap();
        assert_eq!(id.machine_id, "feedfacefeedfacefeedfacefeedface");
        assert_eq!((id.product_uuid.as_str(), id.cloud_instance_id.as_str()), ("", ""));
    }

    #[test]
    fn an_unreadable_product_uuid_is_empty_not_an_error() {
        let root = fake_root();
        let path = root.path().join(PRODUCT_UUID_FILE);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
        let state = tempfile::tempdir().unwrap();
        let id = collect_under(root.path(), state.path(), &IdentityConfig::default()).unwrap();
        // Root reads it anyway; anyone else gets nothing.
        if rustix::process::geteuid().is_root() {
            assert!(!id.product_uuid.is_empty());
        } else {
            assert_eq!(id.product_uuid, "");
        }
    }

    #[test]
    fn fingerprint_is_stable_and_install_key_is_created_once_0600() {
        let root = fake_root();
        let state = tempfile::tempdir().unwrap();
        let state_dir = state.path().join("nested/state");
        let first = collect_under(root.path(), &state_dir, &IdentityConfig::default()).unwrap();
        let key_file = state_dir.join(INSTALL_KEY_FILE);
        assert_eq!(fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_to_string(&key_file).unwrap(), first.install_key);
        let second = collect_under(root.path(), &state_dir, &IdentityConfig::default()).unwrap();
        assert_eq!(second, first);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(&state_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![INSTALL_KEY_FILE]);

        // A reinstall (new state directory) keeps the fingerprint and changes the install key.
        let reinstall = tempfile::tempdir().unwrap();
        let third = collect_under(root.path(), reinstall.path(), &IdentityConfig::default()).unwrap();
        assert_ne!(third.install_key, first.install_key);
        assert_eq!(third.machine_fingerprint, first.machine_fingerprint);
    }

    #[test]
    fn a_loose_install_key_is_tightened_and_a_corrupt_one_is_named() {
        let state = tempfile::tempdir().unwrap();
        let path = state.path().join(INSTALL_KEY_FILE);
        fs::write(&path, format!("{}\n", "ab".repeat(32))).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(install_key(state.path()).unwrap(), "ab".repeat(32));
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

        fs::write(&path, "not a key").unwrap();
        let err = install_key(state.path()).unwrap_err();
        assert!(matches!(err, IdentityError::CorruptInstallKey { .. }));
        assert_eq!(err.to_string(), format!("{}: corrupt install key: expected 64 hex digits", path.display()));
    }

    #[test]
    fn machine_id_override_changes_the_fingerprint_hostname_override_does_not() {
        let root = fake_root();
        let state = tempfile::tempdir().unwrap();
        let plain = collect_under(root.path(), state.path(), &IdentityConfig::default()).unwrap();

        let renamed = IdentityConfig { hostname: Some("agent-7".into()), machine_id: None };
        let renamed = collect_under(root.path(), state.path(), &renamed).unwrap();
        assert_eq!(renamed.hostname, "agent-7");
        assert_eq!(renamed.machine_fingerprint, plain.machine_fingerprint);

        let overridden = IdentityConfig { hostname: None, machine_id: Some("test-agent-1".into()) };
        let one = collect_under(root.path(), state.path(), &overridden).unwrap();
        assert_eq!(one.machine_id, "test-agent-1");
        assert_ne!(one.machine_fingerprint, plain.machine_fingerprint);
        let overridden = IdentityConfig { hostname: None, machine_id: Some("test-agent-2".into()) };
        let two = collect_under(root.path(), state.path(), &overridden).unwrap();
        assert_ne!(two.machine_fingerprint, one.machine_fingerprint);
    }

    #[test]
    fn every_machine_fact_feeds_the_fingerprint() {
        let base = v1::HostIdentity {
            machine_id: "m".into(),
            product_uuid: "p".into(),
            hostname: "h".into(),
            mac_addresses: vec!["00:11:22:33:44:55".into(), "00:11:22:33:44:66".into()],
            cloud_instance_id: "c".into(),
            install_key: "k".into(),
            machine_fingerprint: String::new(),
        };
        let fingerprint = machine_fingerprint(&base);
        let expected = hex::encode(Sha256::digest(b"m\np\n00:11:22:33:44:55,00:11:22:33:44:66\nc"));
        assert_eq!(fingerprint, expected);
        let changed = |f: fn(&mut v1::HostIdentity)| {
            let mut id = base.clone();
            f(&mut id);
            machine_fingerprint(&id)
        };
        assert_ne!(changed(|id| id.machine_id = "m2".into()), fingerprint);
        assert_ne!(changed(|id| id.product_uuid = "p2".into()), fingerprint);
        assert_ne!(
            changed(|id| {
                id.mac_addresses.pop();
            }),
            fingerprint
        );
        assert_ne!(changed(|id| id.cloud_instance_id = "c2".into()), fingerprint);
        assert_eq!(changed(|id| id.hostname = "h2".into()), fingerprint);
        assert_eq!(changed(|id| id.install_key = "k2".into()), fingerprint);
        // Field boundaries count: moving text from one fact to the next changes the hash.
        assert_ne!(changed(|id| (id.machine_id, id.product_uuid) = ("mp".into(), String::new())), fingerprint);
    }

    #[test]
    fn mac_addresses_of_fixed_physical_interfaces_only() {
        let root = tempfile::tempdir().unwrap();
        let net = root.path().join("sys/class/net");
        fs::create_dir_all(&net).unwrap();
        interface(&net, "lo", "00:00:00:00:00:00", false, "", None);
        interface(&net, "eth1", "AA:BB:CC:DD:EE:02", true, "pci", Some("0"));
        interface(&net, "eth0", "aa:bb:cc:dd:ee:01", true, "pci", Some("0"));
        interface(&net, "eth0copy", "aa:bb:cc:dd:ee:01", true, "pci", None); // duplicate, old kernel
        interface(&net, "docker0", "02:42:ac:11:00:01", false, "", Some("3"));
        interface(&net, "veth12", "de:ad:be:ef:00:01", false, "", Some("1"));
        interface(&net, "bond0", "de:ad:be:ef:00:02", false, "", None); // virtual, old kernel
        interface(&net, "usb0", "aa:bb:cc:dd:ee:03", true, "usb", Some("0"));
        interface(&net, "wlan0", "aa:bb:cc:dd:ee:04", true, "pci", Some("3")); // randomised
        interface(&net, "slave1", "aa:bb:cc:dd:ee:05", true, "pci", Some("2")); // stolen by a bond
        interface(&net, "null0", "00:00:00:00:00:00", true, "platform", Some("0"));
        interface(&net, "garbage", "not-a-mac", true, "pci", Some("0"));
        interface(&net, "ib0", "80:00:02:08:fe:80:00:00:00:00:00:00:00:02:c9:03:00:a1:b2:c3", true, "pci", Some("0"));
        assert_eq!(
            mac_addresses(&net),
            vec![
                "80:00:02:08:fe:80:00:00:00:00:00:00:00:02:c9:03:00:a1:b2:c3",
                "aa:bb:cc:dd:ee:01",
                "aa:bb:cc:dd:ee:02",
            ]
        );
        // Through collect: the MACs are part of the identity and of the fingerprint.
        let state = tempfile::tempdir().unwrap();
        let with_nics = collect_under(root.path(), state.path(), &IdentityConfig::default()).unwrap();
        assert_eq!(with_nics.mac_addresses.len(), 3);
        fs::remove_dir_all(net.join("eth1")).unwrap();
        let without = collect_under(root.path(), state.path(), &IdentityConfig::default()).unwrap();
        assert_ne!(without.machine_fingerprint, with_nics.machine_fingerprint);
        assert!(mac_addresses(&root.path().join("absent")).is_empty());
    }

    #[test]
    fn mac_normalisation() {
        assert_eq!(normalize_mac(" AA:bb:0C:dd:EE:ff "), Some("aa:bb:0c:dd:ee:ff".into()));
        for bad in ["", "00:00:00:00:00:00", "aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:fg", "aabbccddeeff", "a:bb:cc:dd:ee:ff0"]
        {
            assert_eq!(normalize_mac(bad), None, "{bad:?}");
        }
    }
}
