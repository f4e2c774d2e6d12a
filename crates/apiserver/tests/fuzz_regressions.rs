//! The fuzz targets' checks, replayed by `cargo test` without a fuzzer.
//!
//! `fuzz/` holds libFuzzer targets for the request decoders, the three
//! patch languages, selectors and quantities; their checks live in
//! `fuzz/src/lib.rs`, which this test includes as a module. Two sets of
//! inputs run through them here:
//!
//! - `fuzz/regressions/<target>/`: every crash a fuzzer found, minimized,
//!   kept once it was fixed so that it stays fixed;
//! - `fuzz/corpus/<target>/`: the seeds, realistic inputs (kubectl's
//!   patches and protobuf bodies, manifests, selectors from the Kubernetes
//!   documentation), so that the checks themselves hold on ordinary input.

use std::path::{Path, PathBuf};

#[path = "../../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod checks;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Runs every file under `<set>/<target>/` through the target's check and
/// returns how many ran.
fn replay(set: &str) -> usize {
    let mut ran = 0;
    for target in checks::TARGETS {
        let dir = fuzz_dir().join(set).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut files: Vec<PathBuf> = entries.map(|e| e.expect("a directory entry").path()).collect();
        files.sort();
        for file in files {
            let data = std::fs::read(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
            let outcome = std::panic::catch_unwind(|| checks::check(target, &data));
            assert!(outcome.is_ok(), "{target}: {} fails its check again", file.display());
            ran += 1;
        }
    }
    ran
}

#[test]
fn crashes_the_fuzzers_found_stay_fixed() {
    replay("regressions");
}

#[test]
fn every_seed_passes_its_check() {
    let ran = replay("corpus");
    assert!(ran >= checks::TARGETS.len(), "the seed corpus under fuzz/corpus is missing (ran {ran} seeds)");
}
