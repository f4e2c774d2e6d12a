//! Container lifecycle hooks: `postStart` and `preStop`.
//!
//! A hook is a handler the kubelet runs at a turning point of a container
//! (`pkg/kubelet/lifecycle/handlers.go`): `postStart` right after the
//! container started (the container counts as running only once it
//! returns; if it fails, the container is killed and restarted as its
//! restart policy says, with a `FailedPostStartHook` event), and `preStop`
//! before the stop signal, inside the termination grace period (a failure
//! is a `FailedPreStopHook` event; the container is stopped anyway). A
//! handler is an `exec` in the container, an `httpGet` against the pod's
//! IP, or a `sleep`.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler};

use crate::prober::handlers::{self, HttpGet, Outcome};
use crate::prober::runner::resolve_port;
use crate::runtime::{ExecSync, Runtime};

/// Runs a hook's handler for the container's run `id`, within `timeout`;
/// `Err` carries the text of the failure event.
pub async fn run(
    runtime: &dyn Runtime,
    id: &str,
    handler: &LifecycleHandler,
    container: &Container,
    pod_ip: &str,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(exec) = &handler.exec {
        let command = exec.command.clone().unwrap_or_default();
        return match runtime.exec_sync(id, &command, timeout, handlers::MAX_OUTPUT).await {
            ExecSync::Exited { code: 0, .. } => Ok(()),
            ExecSync::Exited { code, output } => Err(format!(
                "Exec lifecycle hook ({}) for Container {:?} failed - error: command {:?} exited with {code}, message: {:?}",
                command.join(" "),
                container.name,
                command.join(" "),
                String::from_utf8_lossy(&output)
            )),
            ExecSync::TimedOut => Err(format!(
                "Exec lifecycle hook ({}) for Container {:?} failed - error: command timed out",
                command.join(" "),
                container.name
            )),
            ExecSync::NotStarted(why) => {
                Err(format!("Exec lifecycle hook ({}) for Container {:?} failed - error: {why}", command.join(" "), container.name))
            }
        };
    }
    if let Some(http) = &handler.http_get {
        let port = resolve_port(&http.port, container)?;
        let req = HttpGet {
            host: http.host.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| pod_ip.to_string()),
            port,
            path: http.path.clone().unwrap_or_default(),
            headers: http.http_headers.iter().flatten().map(|h| (h.name.clone(), h.value.clone())).collect(),
        };
        return match handlers::http_get(&req, timeout).await {
            Outcome::Success | Outcome::Warning(_) => Ok(()),
            Outcome::Failure(why) | Outcome::Error(why) => {
                Err(format!("HTTP lifecycle hook ({}) for Container {:?} failed - error: {why}", req.path, container.name))
            }
        };
    }
    if let Some(sleep) = &handler.sleep {
        tokio::time::sleep(Duration::from_secs(u64::try_from(sleep.seconds).unwrap_or(0)).min(timeout)).await;
        return Ok(());
    }
    if handler.tcp_socket.is_some() {
        // Deprecated upstream and kept only for compatibility: it does nothing.
        return Ok(());
    }
    Err(format!("lifecycle hook of container {:?} has no handler", container.name))
}
