//! The official Python `kubernetes` client against tinykube, unmodified:
//! `tests/python/client_e2e.py` creates a Deployment, lists its pods by
//! label, patches the scale subresource, watches until every pod is Ready,
//! deletes, and expects a 404 `ApiException` — the calls an operator
//! script makes every day.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use tinykube_tests::{pids_with, require_tool, run_with_timeout, token, Cluster};

/// Whether `python3` can import the `kubernetes` module.
fn python_client_available() -> bool {
    Command::new("python3").args(["-c", "import kubernetes"]).output().is_ok_and(|o| o.status.success())
}

#[test]
fn python_client_creates_lists_scales_watches_and_deletes() -> Result<()> {
    if !require_tool("python3 with the kubernetes module", python_client_available(), "pip install kubernetes") {
        return Ok(());
    }
    let c = Cluster::start()?;
    let marker = token("pyclient");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/client_e2e.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script).arg(c.kubeconfig()).args(["default", &marker]).env("PYTHONUNBUFFERED", "1");
    let out = run_with_timeout(cmd, Duration::from_secs(55))?;
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "the Python client script failed ({}):\n{stdout}{stderr}\n--- server log tail ---\n{}",
        out.status,
        c.log_tail()
    );
    assert_eq!(stdout.lines().last(), Some("OK"), "{stdout}{stderr}");
    // The script ran real pods; they are gone with their Deployment.
    c.wait_for("the pods' processes to stop", Duration::from_secs(30), || pids_with(&marker).is_empty().then_some(()))?;
    Ok(())
}
