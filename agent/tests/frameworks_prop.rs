//! Property tests: the frameworks detector's parsers never panic on arbitrary bytes, and what
//! they return from well-formed input survives arbitrary surrounding noise.

// Test code fails by panicking; helpers outside #[test] functions need the same allowance.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use aiscout_agent::detectors::frameworks::{
    normalize_name, parse_conda_file_name, parse_conda_meta, parse_dist_dir_name, parse_kernel_spec, parse_metadata,
    parse_package_json, parse_pyvenv_cfg, parse_shebang,
};
use proptest::prelude::*;

/// Every byte-level parser, on the same input.
fn parse_all(bytes: &[u8]) {
    let _ = parse_metadata(bytes);
    let _ = parse_conda_meta(bytes);
    let _ = parse_package_json(bytes);
    let _ = parse_pyvenv_cfg(bytes);
    let _ = parse_kernel_spec(bytes);
    let _ = parse_shebang(bytes);
    let text = String::from_utf8_lossy(bytes);
    let _ = parse_dist_dir_name(&text);
    let _ = parse_conda_file_name(&text);
    let _ = normalize_name(&text);
}

/// Inputs that reach deep into each parser before the noise starts.
const SEEDS: &[&[u8]] = &[
    b"Metadata-Version: 2.1\nName: torch\nVersion: 2.3.1+cu121\n\n",
    br#"{"name":"pytorch","version":"2.3.1","build":"py3.11_cuda12.1_0","files":["a","b"]}"#,
    br#"{"version":"1.0.0","dependencies":{"openai":"^4"},"devDependencies":{"@x/y":"1"}}"#,
    b"home = /usr/bin\nversion_info = 3.11.4.final.0\ninclude-system-site-packages = true\n",
    br#"{"argv":["/e/v/bin/python","-m","ipykernel_launcher"],"display_name":"v","language":"python"}"#,
    b"#!/bin/sh\n'''exec' \"/e/v/bin/python\" \"$0\" \"$@\"\n",
    b"torch-2.3.1+cu121.dist-info",
    b"python-dateutil-2.9.0-pyhd8ed1ab_0.json",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        parse_all(&bytes);
    }

    #[test]
    fn mutated_seeds_never_panic(
        seed in 0..SEEDS.len(),
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        tail in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = SEEDS[seed].to_vec();
        for (at, b) in flips {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        bytes.extend(tail);
        parse_all(&bytes);
    }

    #[test]
    fn metadata_header_survives_a_noisy_body(body in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let mut bytes = b"Name: Flash_Attn\nVersion: 2.5.9\n\n".to_vec();
        bytes.extend(body);
        prop_assert_eq!(parse_metadata(&bytes), Some(("Flash_Attn".to_owned(), "2.5.9".to_owned())));
    }

    #[test]
    fn normalised_names_are_fixed_points(name in "[A-Za-z0-9._-]{0,40}") {
        let once = normalize_name(&name);
        prop_assert_eq!(normalize_name(&once), once.clone());
        prop_assert!(!once.contains("--") && !once.contains('_') && !once.contains('.'));
    }
}
