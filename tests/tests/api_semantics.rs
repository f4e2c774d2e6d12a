//! The api-server's list and watch semantics through the official Python
//! client and plain HTTP: paging, generateName, dryRun, deletecollection,
//! the 413 body limit, watches from a resourceVersion, bookmarks,
//! timeoutSeconds, and 410 Expired after compaction. See
//! `tests/python/api_semantics.py`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use tinykube_tests::{require_tool, run_with_timeout, Cluster};

fn python_client_available() -> bool {
    Command::new("python3").args(["-c", "import kubernetes"]).output().is_ok_and(|o| o.status.success())
}

#[test]
fn paging_watches_and_compaction_behave_like_kube_apiserver() -> Result<()> {
    if !require_tool("python3 with the kubernetes module", python_client_available(), "pip install kubernetes") {
        return Ok(());
    }
    // Compact every three seconds so the 410 path is reachable in a test.
    let c = Cluster::start_with(&["--compaction-interval", "3", "--no-agent"])?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/api_semantics.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script).arg(c.kubeconfig()).arg("semantics").env("PYTHONUNBUFFERED", "1");
    let out = run_with_timeout(cmd, Duration::from_secs(90))?;
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "api_semantics.py failed ({}):\n{stdout}{stderr}\n--- server log tail ---\n{}", out.status, c.log_tail());
    assert_eq!(stdout.lines().last(), Some("OK"), "{stdout}{stderr}");
    Ok(())
}
