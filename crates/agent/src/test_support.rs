//! Helpers for the crate's tests: the shim binary containers run through.
//!
//! A unit test cannot run `tinykube shim` (that binary depends on this
//! crate), so the tests build this crate's `tinykube-agent-shim` binary, the
//! same [`crate::shim::main`] behind a tiny `main`, once per test run, the
//! way `tests/` builds `tinykube`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The path of a freshly built shim binary.
pub fn shim_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest.parent().and_then(Path::parent).expect("workspace root");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .current_dir(root)
            .args(["build", "--quiet", "-p", "tinykube-agent", "--features", "test-shim", "--bin", "tinykube-agent-shim"])
            .status()
            .expect("running cargo build for the shim");
        assert!(status.success(), "building tinykube-agent-shim failed");
        let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
        target.join("debug/tinykube-agent-shim")
    })
    .clone()
}
