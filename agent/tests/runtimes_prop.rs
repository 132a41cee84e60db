//! Property tests for what the runtimes section parses from other processes: redaction never
//! panics and never lets a secret option's value through; cgroup and marker parsing accept any
//! input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use aiscout_agent::detectors::markers::classify;
use aiscout_agent::detectors::runtimes::container_from_cgroup;
use aiscout_agent::redact;
use proptest::prelude::*;

proptest! {
    #[test]
    fn redaction_accepts_any_argument(args in prop::collection::vec(".{0,40}", 0..12)) {
        let out = redact::cmdline(&args);
        prop_assert_eq!(out.len(), args.len());
        for a in &args {
            let _ = redact::value("X", a);
            let _ = redact::text(a);
            let _ = redact::assigned_name(a);
            let _ = redact::is_secret_name(a);
        }
    }

    #[test]
    fn secret_option_values_never_pass(
        flag in prop::sample::select(vec!["--api-key", "--token", "--password", "--hf-token", "--secret"]),
        value in "[A-Za-z0-9]{6,30}",
        before in prop::collection::vec("[a-z-]{1,10}", 0..4),
    ) {
        let mut args: Vec<String> = before.clone();
        args.push(flag.to_string());
        args.push(value.clone());
        args.push(format!("{flag}={value}"));
        args.push(format!("{}={value}", flag.trim_start_matches('-').to_uppercase().replace('-', "_")));
        let out = redact::cmdline(&args);
        for (i, o) in out.iter().enumerate().skip(before.len()) {
            prop_assert!(!o.contains(&value) || before.iter().any(|b| b.contains(&value)), "{i}: {o} in {out:?}");
        }
    }

    #[test]
    fn cgroup_text_never_panics(text in ".{0,300}") {
        let _ = container_from_cgroup(&text);
    }

    #[test]
    fn marker_names_never_panic(path in "(/[a-z.]{0,8}){0,6}") {
        let _ = classify(std::path::Path::new(&path));
    }
}
