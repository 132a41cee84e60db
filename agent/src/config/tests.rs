//! Tests of loading, validation and the value types.

use std::collections::BTreeSet;

use super::validate::check_collector_url;
use super::*;

/// The shortest valid file: the collector's address and how to trust it when enrolling.
const URL_ONLY: &str = "[collector]\nurl = \"https://collector.example.com:7443\"\nca_file = \"/etc/aiscout/ca.pem\"\n";

fn parse_error(text: &str) -> (Option<(usize, usize)>, Option<String>, String) {
    match Config::from_str(text) {
        Err(ConfigError::Parse { position, key, message, .. }) => (position, key, message),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

fn problem_keys(config: &Config) -> Vec<&'static str> {
    config.validate().iter().map(|p| p.key).collect()
}

#[test]
fn absent_keys_take_their_defaults() {
    let config = Config::from_str(URL_ONLY).unwrap();
    assert_eq!(config.collector.url.as_deref(), Some("https://collector.example.com:7443"));
    assert_eq!(config.state_dir, PathBuf::from("/var/lib/aiscout"));
    assert_eq!(config.collector.ca_sha256, None);
    assert_eq!(config.identity, IdentityConfig { hostname: None, machine_id: None });
    assert_eq!(config.schedule.full_interval, Duration::from_secs(21_600));
    assert_eq!(config.schedule.jitter, Jitter::Percent(10.0));
    assert_eq!(config.schedule.runtimes_interval, Duration::from_secs(300));
    assert_eq!(config.schedule.snapshot_every, 4);
    assert_eq!(config.scan.sections.len(), 5);
    assert!(config.scan.roots.is_empty() && !config.scan.all_packages && !config.scan.identify_servers);
    assert_eq!(config.watch, WatchConfig { enabled: true, max_watches: 8192, poll_interval: Duration::from_secs(60) });
    assert_eq!(config.throttle, ThrottleConfig { cpu_percent: 25, nice: 10, io_idle: true });
    assert_eq!(config.spool.max_bytes, ByteSize(67_108_864));
    assert_eq!(config.transport.batch_max_bytes, ByteSize(1_048_576));
    assert_eq!(config.transport.backoff_max, Duration::from_secs(300));
    assert_eq!(config.transport.compression, Compression::Gzip);
    assert_eq!(config.log, LogConfig { level: LogLevel::Info, json: false });
    let mut expected = Config::default();
    expected.collector.url = Some("https://collector.example.com:7443".into());
    expected.collector.ca_file = Some("/etc/aiscout/ca.pem".into());
    assert_eq!(config, expected);
    assert_eq!(config.validate(), vec![]);
}

#[test]
fn an_empty_file_lacks_only_the_collector_url_and_how_to_trust_it() {
    let config = Config::from_str("").unwrap();
    assert_eq!(problem_keys(&config), vec!["collector.url", "collector.ca_file"]);
    assert_eq!(
        config.validate()[0].to_string(),
        "collector.url: missing: the collector's address, such as \"https://collector.example.com:7443\""
    );
}

#[test]
fn empty_strings_mean_unset() {
    let config =
        Config::from_str("[collector]\nca_file = \"\"\nserver_name = \"\"\n[identity]\nhostname = \"\"").unwrap();
    assert_eq!(config.collector.ca_file, None);
    assert_eq!(config.collector.server_name, None);
    assert_eq!(config.identity.hostname, None);
}

#[test]
fn unknown_keys_are_refused_with_their_key_and_line() {
    let (position, key, message) = parse_error(&format!("{URL_ONLY}\n[scan]\nroots = []\nrootz = [\"/srv\"]\n"));
    assert_eq!(position, Some((7, 1)));
    assert_eq!(key.as_deref(), Some("scan.rootz"));
    assert!(message.starts_with("unknown field `rootz`, expected one of `roots`"), "{message}");

    let (position, key, _) = parse_error("state_dir = \"/var/lib/aiscout\"\nstatedir = \"/tmp\"\n");
    assert_eq!((position, key.as_deref()), (Some((2, 1)), Some("statedir")));

    let (position, key, _) = parse_error(&format!("{URL_ONLY}[throtle]\ncpu_percent = 5\n"));
    assert_eq!((position, key.as_deref()), (Some((4, 2)), Some("throtle")));
}

#[test]
fn parse_errors_display_file_line_key_and_message() {
    let err = Config::from_toml("[schedule]\nsnapshot_every = \"often\"\n", Path::new("/etc/aiscout/agent.toml"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "/etc/aiscout/agent.toml:2:18: schedule.snapshot_every: invalid type: string \"often\", expected u32"
    );
    let (position, key, message) = parse_error("[log\nlevel = \"info\"\n");
    assert_eq!(position.map(|(line, _)| line), Some(1));
    assert_eq!(key, None);
    assert!(message.contains("invalid table header"), "{message}");
}

#[test]
fn enum_values_are_checked_at_parse() {
    let (_, key, message) = parse_error("[scan]\nsections = [\"models\", \"weights\"]\n");
    assert_eq!(key.as_deref(), Some("scan.sections"));
    assert!(message.starts_with("unknown variant `weights`"), "{message}");
    let (_, key, _) = parse_error("[transport]\ncompression = \"zstd\"\n");
    assert_eq!(key.as_deref(), Some("transport.compression"));
    let (_, key, _) = parse_error("[log]\nlevel = \"verbose\"\n");
    assert_eq!(key.as_deref(), Some("log.level"));
}

#[test]
fn every_semantic_problem_is_reported_at_once() {
    let config = Config::from_str(
        r#"
state_dir = "var/lib/aiscout"
[collector]
url = "http://collector.example.com:7443"
ca_file = "ca.pem"
[schedule]
full_interval = "1h"
jitter = "80%"
runtimes_interval = "2h"
snapshot_every = 0
[scan]
roots = ["/srv", "models"]
excludes = ["[abc"]
sections = []
[watch]
poll_interval = "0s"
[throttle]
cpu_percent = 0
nice = 25
[spool]
max_bytes = "512KiB"
[transport]
batch_max_assets = 0
batch_max_bytes = "8MiB"
backoff_initial = "10s"
backoff_max = "5s"
"#,
    )
    .unwrap();
    assert_eq!(
        problem_keys(&config),
        vec![
            "state_dir",
            "collector.url",
            "collector.ca_file",
            "schedule.jitter",
            "schedule.runtimes_interval",
            "schedule.snapshot_every",
            "scan.roots",
            "scan.excludes",
            "scan.sections",
            "watch.poll_interval",
            "throttle.cpu_percent",
            "throttle.nice",
            "spool.max_bytes",
            "transport.batch_max_assets",
            "transport.batch_max_bytes",
            "transport.backoff_max",
        ]
    );
    let lines: Vec<String> = config.validate().iter().map(ToString::to_string).collect();
    assert!(
        lines.contains(&"collector.url: must start with https://, got \"http://collector.example.com:7443\"".into())
    );
    assert!(lines.contains(&"schedule.jitter: must be between 0% and 50%, got 80%".into()));
    assert!(lines.contains(&"schedule.runtimes_interval: must not exceed schedule.full_interval (1h), got 2h".into()));
    assert!(lines.contains(&"throttle.nice: must be between 0 and 19, got 25".into()));
    assert!(lines.contains(&"spool.max_bytes: must be at least 1MiB, got 512KiB".into()));
    assert!(lines.contains(&"scan.roots: must be an absolute path, got \"models\"".into()));
}

#[test]
fn invalid_error_prints_one_line_per_problem_with_the_path() {
    let err = ConfigError::Invalid {
        path: PathBuf::from("/etc/aiscout/agent.toml"),
        problems: Config::from_str("[collector]\nca_sha256 = \"sha256:00\"\n[throttle]\nnice = -1\n")
            .unwrap()
            .validate(),
    };
    assert_eq!(
        err.to_string(),
        "/etc/aiscout/agent.toml: collector.url: missing: the collector's address, such as \
         \"https://collector.example.com:7443\"\n/etc/aiscout/agent.toml: collector.ca_sha256: must be \"sha256:\" and \
         64 hex digits, got \"sha256:00\"\n/etc/aiscout/agent.toml: throttle.nice: must be between 0 and 19, got -1"
    );
}

#[test]
fn load_names_the_file_it_cannot_read_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.toml");
    let err = Config::load_validated(&missing).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().starts_with(&format!("{}: cannot read: ", missing.display())), "{err}");

    let file = dir.path().join("agent.toml");
    std::fs::write(&file, "[spool]\nmax_bytes = 1024\n").unwrap();
    match Config::load_validated(&file) {
        Err(ConfigError::Invalid { path, problems }) => {
            assert_eq!(path, file);
            assert_eq!(
                problems.iter().map(|p| p.key).collect::<Vec<_>>(),
                vec!["collector.url", "collector.ca_file", "spool.max_bytes"]
            );
        }
        other => panic!("expected invalid, got {other:?}"),
    }
    std::fs::write(&file, URL_ONLY).unwrap();
    assert!(Config::load_validated(&file).is_ok());
}

#[test]
fn sizes_parse_and_refuse() {
    assert_eq!("64MiB".parse(), Ok(ByteSize(64 * 1024 * 1024)));
    assert_eq!("512 KiB".parse(), Ok(ByteSize(512 * 1024)));
    assert_eq!("2gib".parse(), Ok(ByteSize(2 << 30)));
    assert_eq!("65536".parse(), Ok(ByteSize(65_536)));
    assert_eq!("10B".parse(), Ok(ByteSize(10)));
    for bad in ["-1", "10 parsecs", "64MB", "1.5GiB", "", "MiB", "99999999999TiB"] {
        assert!(bad.parse::<ByteSize>().is_err(), "{bad:?} should be refused");
    }
    assert_eq!(
        "10 parsecs".parse::<ByteSize>().unwrap_err().to_string(),
        "invalid size \"10 parsecs\": expected a whole number of bytes, optionally with a unit \
         (B, KiB, MiB, GiB, TiB), such as \"64MiB\""
    );
    assert_eq!(ByteSize(64 << 20).to_string(), "64MiB");
    assert_eq!(ByteSize(1536 << 10).to_string(), "1536KiB");
    assert_eq!(ByteSize(1000).to_string(), "1000B");

    let from_int = Config::from_str("[spool]\nmax_bytes = 65536\n").unwrap();
    assert_eq!(from_int.spool.max_bytes, ByteSize(65_536));
    let (_, key, message) = parse_error("[spool]\nmax_bytes = -1\n");
    assert_eq!(key.as_deref(), Some("spool.max_bytes"));
    assert_eq!(message, "invalid size -1: must not be negative");
    let (_, key, message) = parse_error("[spool]\nmax_bytes = \"-1\"\n");
    assert_eq!(key.as_deref(), Some("spool.max_bytes"));
    assert!(message.starts_with("invalid size \"-1\""), "{message}");
}

#[test]
fn durations_parse_and_refuse() {
    assert_eq!(parse_duration("6h"), Ok(Duration::from_secs(21_600)));
    assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5_400)));
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    for bad in ["-1", "10 parsecs", "", "60"] {
        assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
    }
    let (position, key, message) = parse_error("[schedule]\nfull_interval = \"10 parsecs\"\n");
    assert_eq!(position, Some((2, 17)));
    assert_eq!(key.as_deref(), Some("schedule.full_interval"));
    assert!(message.starts_with("invalid duration \"10 parsecs\": unknown time unit \"parsecs\""), "{message}");
    let (_, key, message) = parse_error("[watch]\npoll_interval = 60\n");
    assert_eq!(key.as_deref(), Some("watch.poll_interval"));
    assert_eq!(message, "invalid type: integer `60`, expected a duration string such as \"60s\", \"5m\" or \"6h\"");
}

#[test]
fn jitter_is_a_percentage_or_a_duration() {
    assert_eq!("10%".parse(), Ok(Jitter::Percent(10.0)));
    assert_eq!("12.5 %".parse(), Ok(Jitter::Percent(12.5)));
    assert_eq!("30m".parse(), Ok(Jitter::Duration(Duration::from_secs(1800))));
    for bad in ["ten%", "nan%", "%", "10 parsecs", "-1"] {
        assert!(bad.parse::<Jitter>().is_err(), "{bad:?} should be refused");
    }
    let hour = Duration::from_secs(3600);
    assert_eq!(Jitter::Percent(10.0).max_delay(hour), Duration::from_secs(360));
    assert_eq!(Jitter::Duration(Duration::from_secs(60)).max_delay(hour), Duration::from_secs(60));

    let mut config = Config::from_str(URL_ONLY).unwrap();
    config.schedule.jitter = Jitter::Duration(Duration::from_secs(4 * 3600));
    assert_eq!(
        config.validate().iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec!["schedule.jitter: must be at most 50% of schedule.full_interval (3h), got 4h"]
    );
    config.schedule.jitter = Jitter::Percent(-1.0);
    assert_eq!(problem_keys(&config), vec!["schedule.jitter"]);
    config.schedule.jitter = Jitter::Percent(50.0);
    assert_eq!(problem_keys(&config), Vec::<&str>::new());
}

#[test]
fn values_of_the_wrong_type_name_what_was_expected() {
    let (_, key, message) = parse_error("[spool]\nmax_bytes = true\n");
    assert_eq!(key.as_deref(), Some("spool.max_bytes"));
    assert_eq!(message, "invalid type: boolean `true`, expected a size such as \"64MiB\" or a whole number of bytes");
    let (_, key, message) = parse_error("[schedule]\njitter = 10\n");
    assert_eq!(key.as_deref(), Some("schedule.jitter"));
    assert_eq!(
        message,
        "invalid type: integer `10`, expected a percentage such as \"10%\" or a duration such as \"30m\""
    );
    let (_, _, message) = parse_error("[transport]\nbackoff_max = [\"5m\"]\n");
    assert_eq!(message, "invalid type: sequence, expected a duration string such as \"60s\", \"5m\" or \"6h\"");
}

#[test]
fn a_batch_must_fit_in_the_spool() {
    let text = format!("{URL_ONLY}[spool]\nmax_bytes = \"2MiB\"\n[transport]\nbatch_max_bytes = \"3MiB\"\n");
    assert_eq!(
        Config::from_str(&text).unwrap().validate().iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec!["transport.batch_max_bytes: must not exceed spool.max_bytes (2MiB), got 3MiB"]
    );
}

#[test]
fn a_batch_holds_no_more_entries_than_the_collector_accepts() {
    let problems = |n: u32| {
        let text = format!("{URL_ONLY}[transport]\nbatch_max_assets = {n}\n");
        Config::from_str(&text).unwrap().validate().iter().map(ToString::to_string).collect::<Vec<_>>()
    };
    assert!(problems(10_000).is_empty());
    assert_eq!(problems(10_001), vec!["transport.batch_max_assets: must be between 1 and 10000, got 10001"]);
    assert_eq!(problems(0), vec!["transport.batch_max_assets: must be between 1 and 10000, got 0"]);
}

#[test]
fn collector_urls() {
    for good in [
        "https://collector.example.com:7443",
        "https://collector.example.com",
        "https://collector:7443/",
        "https://10.0.0.5:7443",
        "https://[::1]:7443",
    ] {
        assert_eq!(check_collector_url(good), Ok(()), "{good}");
    }
    for bad in [
        "collector.example.com:7443",
        "http://collector.example.com",
        "https://",
        "https://:7443",
        "https://collector:0",
        "https://collector:99999",
        "https://collector:7443/api",
        "https://user:pw@collector:7443",
        "https://[::1:7443",
        "https://bad host:7443",
    ] {
        assert!(check_collector_url(bad).is_err(), "{bad} should be refused");
    }
}

#[test]
fn identity_and_server_name_checks() {
    let config = Config::from_str(&format!(
        "{URL_ONLY}server_name = \"collector internal\"\n[identity]\nhostname = \"agent-1\"\nmachine_id = \"a b\"\n"
    ))
    .unwrap();
    assert_eq!(problem_keys(&config), vec!["collector.server_name", "identity.machine_id"]);
}

#[test]
fn defaults_round_trip_through_toml() {
    let text = toml::to_string(&Config::default()).unwrap();
    assert_eq!(Config::from_str(&text).unwrap(), Config::default());
}

fn dotted_keys(table: &toml::Table, prefix: &str, out: &mut BTreeSet<String>) {
    for (key, value) in table {
        let dotted = format!("{prefix}{key}");
        match value {
            toml::Value::Table(inner) => dotted_keys(inner, &format!("{dotted}."), out),
            _ => {
                out.insert(dotted);
            }
        }
    }
}

const EXAMPLE: &str = include_str!("../../../packaging/agent.example.toml");
const DOC: &str = include_str!("../../../docs/agent-config.md");

#[test]
fn the_example_file_states_every_default_and_validates() {
    let example = Config::from_toml(EXAMPLE, Path::new("packaging/agent.example.toml")).unwrap();
    assert_eq!(example.validate(), vec![]);
    // Every value but the collector's address and its CA file is the default.
    let mut expected = Config::default();
    expected.collector.url = example.collector.url.clone();
    expected.collector.ca_file = example.collector.ca_file.clone();
    assert_eq!(example, expected);
    assert!(expected.collector.url.is_some() && expected.collector.ca_file.is_some());

    // The example and the doc name every key the code has, and no other.
    let mut in_code = BTreeSet::new();
    dotted_keys(&toml::Table::try_from(Config::default()).unwrap(), "", &mut in_code);
    let mut in_example = BTreeSet::new();
    dotted_keys(&toml::from_str(EXAMPLE).unwrap(), "", &mut in_example);
    assert_eq!(in_example, in_code);
    assert_eq!(in_code.len(), 39);
    for key in &in_code {
        assert!(DOC.contains(&format!("`{key}`")), "docs/agent-config.md does not describe `{key}`");
    }
}

#[test]
fn enrolling_needs_a_ca_file_or_a_pinned_digest_and_not_both() {
    const URL: &str = "[collector]\nurl = \"https://c.example.com\"\n";
    let pin = format!("sha256:{}", "ab".repeat(32));
    let with = |extra: &str| Config::from_str(&format!("{URL}{extra}")).unwrap();
    let lines = |config: &Config| config.validate().iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(
        lines(&with("")),
        ["collector.ca_file: missing: the agent cannot enroll without a way to trust the collector: set \
          collector.ca_file (its ca certificate) or collector.ca_sha256 (the digest of its ca's public key)"]
    );
    assert_eq!(lines(&with(&format!("ca_sha256 = \"{pin}\"\n"))), Vec::<String>::new());
    assert_eq!(lines(&with(&format!("ca_sha256 = \"{}\"\n", pin.to_uppercase().replace("SHA256", "sha256")))).len(), 0);
    assert_eq!(
        lines(&with(&format!("ca_file = \"/etc/ca.pem\"\nca_sha256 = \"{pin}\"\n"))),
        ["collector.ca_sha256: set collector.ca_file or collector.ca_sha256, not both"]
    );
    for bad in [
        "ab".repeat(32),
        format!("sha1:{}", "ab".repeat(32)),
        "sha256:abcd".into(),
        format!("sha256:{}", "zz".repeat(32)),
    ] {
        assert_eq!(
            lines(&with(&format!("ca_sha256 = \"{bad}\"\n"))),
            [format!("collector.ca_sha256: must be \"sha256:\" and 64 hex digits, got {bad:?}")]
        );
    }
    assert_eq!(parse_ca_sha256(&pin).unwrap(), [0xab; 32]);
}

#[test]
fn update_needs_a_valid_release_key_when_enabled() {
    let with = |extra: &str| {
        let c = Config::from_str(&format!("{URL_ONLY}[update]\n{extra}")).unwrap();
        c.validate().iter().map(ToString::to_string).collect::<Vec<_>>()
    };
    assert!(with("").is_empty(), "off by default, nothing required");
    assert_eq!(
        with("enabled = true\n"),
        ["update.public_keys: required when update.enabled: the release key's public half (hex)"]
    );
    let key = "ab".repeat(32);
    assert!(with(&format!("enabled = true\npublic_keys = [\"{key}\"]\n")).is_empty());
    let lines = with("public_keys = [\"abcd\"]\nchannel = \"../x\"\ncheck_interval = \"5s\"\n");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with("update.public_keys: \"abcd\": invalid release key"), "{lines:?}");
    assert!(lines[1].starts_with("update.channel:") && lines[2].starts_with("update.check_interval: at least 1m"));
}
