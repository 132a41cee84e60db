//! Unit tests of [`super`] (host identity): facts, normalisation, the fingerprint and the
//! install key, against a fake root.

use std::os::unix::fs::{symlink, PermissionsExt};

use super::*;

/// The state directory in `dir`.
fn state_in(dir: &Path) -> StateDir {
    StateDir::open(dir).unwrap()
}

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
    write(PRODUCT_SERIAL_FILE, " CZ2031XYZ \n");
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
    let id = collect_under(root.path(), &state_in(state.path()), &IdentityConfig::default()).unwrap();
    assert_eq!(id.machine_id, "0123456789abcdef0123456789abcdef");
    assert_eq!(id.product_uuid, "4c4c4544-0042-3510-8052-b4c04f4e3132");
    assert_eq!(id.cloud_instance_id, "i-0abc123");
    assert_eq!(id.product_serial, "CZ2031XYZ");
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
    let id = collect_under(root.path(), &state_in(state.path()), &IdentityConfig::default()).unwrap();
    assert_eq!((id.machine_id.as_str(), id.product_uuid.as_str(), id.cloud_instance_id.as_str()), ("", "", ""));

    // systemd's first-boot placeholder falls through to the D-Bus copy.
    for (rel, text) in [
        (MACHINE_ID_FILES[0], "uninitialized\n"),
        (MACHINE_ID_FILES[1], "feedfacefeedfacefeedfacefeedface\n"),
        (PRODUCT_UUID_FILE, "00000000-0000-0000-0000-000000000000\n"),
        (PRODUCT_SERIAL_FILE, "To Be Filled By O.E.M.\n"),
        (CLOUD_INSTANCE_ID_FILE, "iid-datasource-none\n"),
    ] {
        let path = root.path().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    let id = collect_under(root.path(), &state_in(state.path()), &IdentityConfig::default()).unwrap();
    assert_eq!(id.machine_id, "feedfacefeedfacefeedfacefeedface");
    assert_eq!((id.product_uuid.as_str(), id.cloud_instance_id.as_str(), id.product_serial.as_str()), ("", "", ""));
}

#[test]
fn an_unreadable_product_uuid_is_empty_not_an_error() {
    let root = fake_root();
    let path = root.path().join(PRODUCT_UUID_FILE);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
    let state = tempfile::tempdir().unwrap();
    let id = collect_under(root.path(), &state_in(state.path()), &IdentityConfig::default()).unwrap();
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
    let first = collect_under(root.path(), &state_in(&state_dir), &IdentityConfig::default()).unwrap();
    let key_file = state_in(&state_dir).install_key();
    assert_eq!(fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(fs::read_to_string(&key_file).unwrap(), first.install_key);
    let second = collect_under(root.path(), &state_in(&state_dir), &IdentityConfig::default()).unwrap();
    assert_eq!(second, first);
    // No temporary file is left behind.
    let names: Vec<_> = fs::read_dir(&state_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec!["install.key"]);

    // A reinstall (new state directory) keeps the fingerprint and changes the install key.
    let reinstall = tempfile::tempdir().unwrap();
    let third = collect_under(root.path(), &state_in(reinstall.path()), &IdentityConfig::default()).unwrap();
    assert_ne!(third.install_key, first.install_key);
    assert_eq!(third.machine_fingerprint, first.machine_fingerprint);
}

#[test]
fn a_loose_install_key_is_tightened_and_a_corrupt_one_is_named() {
    let state = tempfile::tempdir().unwrap();
    let path = state_in(state.path()).install_key();
    fs::write(&path, format!("{}\n", "ab".repeat(32))).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(install_key(&state_in(state.path())).unwrap(), "ab".repeat(32));
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

    fs::write(&path, "not a key").unwrap();
    let err = install_key(&state_in(state.path())).unwrap_err();
    assert!(matches!(err, HostIdentityError::CorruptInstallKey { .. }));
    assert_eq!(err.to_string(), format!("{}: corrupt install key: expected 64 hex digits", path.display()));
}

#[test]
fn machine_id_override_changes_the_fingerprint_hostname_override_does_not() {
    let root = fake_root();
    let state = tempfile::tempdir().unwrap();
    let plain = collect_under(root.path(), &state_in(state.path()), &IdentityConfig::default()).unwrap();

    let renamed = IdentityConfig { hostname: Some("agent-7".into()), machine_id: None };
    let renamed = collect_under(root.path(), &state_in(state.path()), &renamed).unwrap();
    assert_eq!(renamed.hostname, "agent-7");
    assert_eq!(renamed.machine_fingerprint, plain.machine_fingerprint);

    let overridden = IdentityConfig { hostname: None, machine_id: Some("test-agent-1".into()) };
    let one = collect_under(root.path(), &state_in(state.path()), &overridden).unwrap();
    assert_eq!(one.machine_id, "test-agent-1");
    assert_ne!(one.machine_fingerprint, plain.machine_fingerprint);
    let overridden = IdentityConfig { hostname: None, machine_id: Some("test-agent-2".into()) };
    let two = collect_under(root.path(), &state_in(state.path()), &overridden).unwrap();
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
        product_serial: "s".into(),
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
    assert_eq!(changed(|id| id.product_serial = "s2".into()), fingerprint, "the serial is not part of it");
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
        vec!["80:00:02:08:fe:80:00:00:00:00:00:00:00:02:c9:03:00:a1:b2:c3", "aa:bb:cc:dd:ee:01", "aa:bb:cc:dd:ee:02",]
    );
    // Through collect: the MACs are part of the identity and of the fingerprint.
    let state = tempfile::tempdir().unwrap();
    let with_nics = collect_under(root.path(), &state_in(state.path()), &IdentityConfig::default()).unwrap();
    assert_eq!(with_nics.mac_addresses.len(), 3);
    fs::remove_dir_all(net.join("eth1")).unwrap();
    let without = collect_under(root.path(), &state_in(state.path()), &IdentityConfig::default()).unwrap();
    assert_ne!(without.machine_fingerprint, with_nics.machine_fingerprint);
    assert!(mac_addresses(&root.path().join("absent")).is_empty());
}

#[test]
fn mac_normalisation() {
    assert_eq!(normalize_mac(" AA:bb:0C:dd:EE:ff "), Some("aa:bb:0c:dd:ee:ff".into()));
    for bad in ["", "00:00:00:00:00:00", "aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:fg", "aabbccddeeff", "a:bb:cc:dd:ee:ff0"] {
        assert_eq!(normalize_mac(bad), None, "{bad:?}");
    }
}
