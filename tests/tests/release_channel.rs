//! The release channel as agents see it: the collector serves the metadata the release
//! manager signed and the archives it names, by digest, to enrolled agents only; what arrives
//! verifies against the release key and matches the archive byte for byte; `aiscout-agent
//! update` stages only a release that was signed, whose archive has the signed digest and whose
//! binary passes its smoke test, and refuses another key's document, a replay and an expired one.

use std::process::Command;

use aiscout_e2e::fleet::{assert_ok, run_once, spawn_daemon, AgentOptions};
use aiscout_e2e::release::{
    agent_archive, client, collector_with_release_key, publish, publish_metadata_only, release_cli, sign_release,
};
use aiscout_e2e::{agent_bin, fixtures_dir};
use aiscout_proto::release;
use aiscout_proto::v1;
use tonic::Code;

#[test]
fn the_channel_serves_what_was_signed_to_enrolled_agents_only() {
    let offline = tempfile::tempdir().unwrap();
    let (c, public, key) = collector_with_release_key(offline.path());
    // An archive of three chunks and a bit.
    let archive = offline.path().join("aiscout-agent-9.9.9.tar.gz");
    let bytes: Vec<u8> = (0..800_000u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    std::fs::write(&archive, &bytes).unwrap();
    let metadata = offline.path().join("stable-1.json");
    // What is published is the copy `release sign` wrote, with the archive's signature.
    let archive = sign_release(&key, &archive, "9.9.9", 1, &["--rollout-percent", "100"], &metadata);
    let bytes = std::fs::read(&archive).unwrap();
    publish(&c, &metadata, &archive);

    let root = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures_dir().join("models/tiny.onnx"), root.path().join("m.onnx")).unwrap();
    assert_ok(&run_once(&c.agent("a", &[root.path()], &c.token_file("token", &[]))));

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut agent = client(&c, Some("a")).await;
        let answer = agent
            .get_release_metadata(v1::ReleaseMetadataRequest { channel: "stable".into(), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let trusted = [release::PublicKey::from_hex(&public).unwrap()];
        let verified = release::verify(&answer.envelope, &trusted, "stable", None, now).unwrap();
        let offered = &verified.metadata.releases[0];
        assert_eq!((offered.version.as_str(), offered.size), ("9.9.9", bytes.len() as u64));
        let release::Decision::Update(chosen) =
            release::decide(&verified.metadata, "0.1.0", "x86_64-unknown-linux-gnu", "default", "agent-x")
        else {
            panic!("a 100 % rollout of a newer version is taken");
        };

        let mut stream = agent
            .download_release(v1::DownloadReleaseRequest { sha256: chosen.sha256.clone() })
            .await
            .unwrap()
            .into_inner();
        let mut got = Vec::new();
        let mut chunks = 0;
        while let Some(chunk) = stream.message().await.unwrap() {
            got.extend_from_slice(&chunk.data);
            chunks += 1;
        }
        assert_eq!(got, bytes, "the archive arrives whole");
        assert_eq!(chunks, 4);

        let none = agent
            .get_release_metadata(v1::ReleaseMetadataRequest { channel: "canary".into(), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        assert!(none.envelope.is_empty(), "a channel with nothing published");
        for (sha, code) in
            [("../../collector.toml".to_string(), Code::InvalidArgument), ("0".repeat(64), Code::NotFound)]
        {
            let e = match agent.download_release(v1::DownloadReleaseRequest { sha256: sha }).await {
                Ok(_) => panic!("served"),
                Err(e) => e,
            };
            assert_eq!(e.code(), code, "{e:?}");
        }
        let e = agent
            .get_release_metadata(v1::ReleaseMetadataRequest { channel: "../x".into(), ..Default::default() })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);

        // No client certificate, no release.
        let mut stranger = client(&c, None).await;
        let e = stranger
            .get_release_metadata(v1::ReleaseMetadataRequest { channel: "stable".into(), ..Default::default() })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
        let e = match stranger.download_release(v1::DownloadReleaseRequest { sha256: chosen.sha256 }).await {
            Ok(_) => panic!("served to a stranger"),
            Err(e) => e,
        };
        assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    });
    // A revoked agent gets nothing either.
    let id = std::fs::read_to_string(c.state_dir("a").join("tls/agent.id")).unwrap();
    c.command(&["agent", "revoke", id.trim()]);
    runtime.block_on(async {
        let e = client(&c, Some("a"))
            .await
            .get_release_metadata(v1::ReleaseMetadataRequest { channel: "stable".into(), ..Default::default() })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    });
}

#[test]
fn an_agent_stages_only_what_was_signed_and_refuses_the_rest() {
    let offline = tempfile::tempdir().unwrap();
    let (c, public, key) = collector_with_release_key(offline.path());
    let other_key = offline.path().join("other.key");
    release_cli(&["keygen", "--out", other_key.to_str().unwrap()]);
    let root = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures_dir().join("models/tiny.onnx"), root.path().join("m.onnx")).unwrap();
    let options = AgentOptions {
        extra_toml: format!("[update]\nenabled = true\npublic_keys = [\"{public}\"]\n"),
        ..AgentOptions::default()
    };
    let config = c.agent_with("u", &[root.path()], &c.token_file("token", &[]), &options);
    assert_ok(&run_once(&config));
    let update = || {
        let out = Command::new(agent_bin()).args(["update", "--config"]).arg(&config).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code(), text)
    };
    let (code, text) = update();
    assert_eq!((code, text.trim()), (Some(0), "channel stable: nothing published"));

    let sign = |with: &std::path::Path, sequence: u64, archive: &std::path::Path, version: &str, valid: &str| {
        let out = offline.path().join(format!("m-{sequence}.json"));
        let _signed = sign_release(with, archive, version, sequence, &["--valid-for", valid], &out);
        out
    };
    let served = c.dir.path().join("data/releases/stable.json");
    let v2 = agent_archive(offline.path(), "v2", "9.9.9");
    let first = sign(&key, 1, &v2, "9.9.9", "30d");
    let v2_signed = offline.path().join(release::archive_name("9.9.9", "x86_64-unknown-linux-gnu"));
    publish(&c, &first, &v2_signed);

    // The archive the collector serves is not the one signed: refused, nothing staged.
    let sha = String::from_utf8_lossy(&Command::new("sha256sum").arg(&v2_signed).output().unwrap().stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let blob = c.dir.path().join("data/releases/blobs").join(&sha);
    let good = std::fs::read(&blob).unwrap();
    std::fs::write(&blob, good.iter().rev().copied().collect::<Vec<u8>>()).unwrap();
    let (code, text) = update();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("is not the signed"), "{text}");
    std::fs::write(&blob, &good).unwrap();

    // The signed release is staged.
    let (code, text) = update();
    assert_eq!(code, Some(0), "{text}");
    let staged = c.state_dir("u").join("update/versions/9.9.9/aiscout-agent");
    assert_eq!(text.trim(), format!("staged 9.9.9: {}", staged.display()));
    let out = Command::new(&staged).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "aiscout-agent 9.9.9");

    // A collector that serves a newer document signed with another key, an older document
    // (a replay) or an expired one: each refused.
    let second = sign(&key, 2, &v2, "9.9.9", "30d");
    std::fs::copy(&second, &served).unwrap();
    assert_eq!(update().0, Some(0));
    for (document, expect) in [
        (sign(&other_key, 3, &v2, "9.9.9", "30d"), "not signed by a trusted key"),
        (first.clone(), "replay"),
        (sign(&key, 4, &v2, "9.9.9", "1s"), "expired"),
    ] {
        std::fs::copy(&document, &served).unwrap();
        if expect == "expired" {
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        let (code, text) = update();
        assert_eq!(code, Some(1), "{expect}: {text}");
        assert!(text.contains(expect), "{expect}: {text}");
    }

    // A release whose binary does not say the version it is signed as fails its smoke test.
    let liar = agent_archive(offline.path(), "liar", "1.0.0");
    let fifth = sign(&key, 5, &liar, "9.9.10", "30d");
    let liar = offline.path().join(release::archive_name("9.9.10", "x86_64-unknown-linux-gnu"));
    publish(&c, &fifth, &liar);
    let (code, text) = update();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("smoke test failed"), "{text}");
}

#[test]
fn a_running_daemon_stages_the_published_release_and_says_so_in_its_status() {
    let offline = tempfile::tempdir().unwrap();
    let (c, public, key) = collector_with_release_key(offline.path());
    let v2 = agent_archive(offline.path(), "v2", "9.9.9");
    let metadata = offline.path().join("m.json");
    let v2 = sign_release(&key, &v2, "9.9.9", 1, &[], &metadata);
    publish(&c, &metadata, &v2);
    let root = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures_dir().join("models/tiny.onnx"), root.path().join("m.onnx")).unwrap();
    let options = AgentOptions {
        extra_toml: format!(
            "[schedule]\nfull_interval = \"1h\"\nruntimes_interval = \"1h\"\n[watch]\nenabled = false\n\
             [update]\nenabled = true\npublic_keys = [\"{public}\"]\n"
        ),
        ..AgentOptions::default()
    };
    let config = c.agent_with("d", &[root.path()], &c.token_file("token", &[]), &options);
    let _agent = spawn_daemon(&config, &offline.path().join("agent.log"));
    let status = || {
        let out = Command::new(agent_bin()).args(["status", "--json", "--config"]).arg(&config).output().unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()
    };
    let doc = aiscout_e2e::fleet::poll(std::time::Duration::from_secs(60), "release staged", || {
        let doc = status();
        (doc["update_staged"] == "9.9.9").then_some(doc)
    });
    assert!(doc["update_checked_at_ms"].is_i64(), "{doc}");
    assert!(doc.get("update_error").is_none(), "{doc}");
    assert_eq!(doc["version"], env!("CARGO_PKG_VERSION"), "the running agent is unchanged: {doc}");
    assert!(c.state_dir("d").join("update/versions/9.9.9/aiscout-agent").is_file());
}

#[test]
fn an_archive_the_release_key_did_not_sign_is_refused_though_the_signed_metadata_names_it() {
    let offline = tempfile::tempdir().unwrap();
    let (c, public, key) = collector_with_release_key(offline.path());
    let root = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures_dir().join("models/tiny.onnx"), root.path().join("m.onnx")).unwrap();
    let options = AgentOptions {
        extra_toml: format!("[update]\nenabled = true\npublic_keys = [\"{public}\"]\n"),
        ..AgentOptions::default()
    };
    let config = c.agent_with("z", &[root.path()], &c.token_file("token", &[]), &options);
    assert_ok(&run_once(&config));

    // No archive signature at all; one by another key; one by the release key for another
    // release (its signature binds the archive's name: version and target).
    let unsigned = agent_archive(offline.path(), "v2", "9.9.9");
    let other_key = offline.path().join("other.key");
    release_cli(&["keygen", "--out", other_key.to_str().unwrap()]);
    let by_other = sign_release(&other_key, &unsigned, "9.9.9", 1, &[], &offline.path().join("o.json"));
    let by_other = std::fs::rename(&by_other, offline.path().join("by-other.tar.gz"))
        .map(|()| offline.path().join("by-other.tar.gz"))
        .unwrap();
    let for_other_release = sign_release(&key, &unsigned, "9.9.8", 1, &[], &offline.path().join("r.json"));
    for (sequence, archive) in [(1, &unsigned), (2, &by_other), (3, &for_other_release)] {
        publish_metadata_only(&c, &key, archive, "9.9.9", sequence);
        let out = Command::new(agent_bin()).args(["update", "--config"]).arg(&config).output().unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {text}", archive.display());
        assert!(text.contains("release 9.9.9: archive signature"), "{}: {text}", archive.display());
        assert!(!c.state_dir("z").join("update/versions/9.9.9/aiscout-agent").exists());
    }
}
