//! `delete`, `scale`, `logs` and `rollout status`.

use std::io::Write;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use api::ResourceInfo;
use client::ListParams;
use futures::StreamExt;
use serde_json::{json, Value};

use super::{display_name, server_err, Ctx};

/// How long `delete` waits for an object to disappear, as kubectl's
/// default `--timeout` of "a week" is impractical for a learning cluster.
const DELETE_WAIT: Duration = Duration::from_secs(120);

/// Deletes one object (background propagation) and, with `wait`, returns
/// once it is gone, as `kubectl delete` does by default.
pub async fn delete_one(ctx: &Ctx, info: &'static ResourceInfo, ns: &str, name: &str, wait: bool) -> Result<()> {
    let api = ctx.api(info, Some(ns));
    let deleted = api.delete(name, &json!({"propagationPolicy": "Background"})).await.map_err(server_err)?;
    println!("{} \"{}\" deleted", info.qualified_singular(), name);
    if !wait {
        return Ok(());
    }
    let uid = deleted["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    let deadline = tokio::time::Instant::now() + DELETE_WAIT;
    loop {
        match api.get(name).await {
            Err(e) if e.is_not_found() => return Ok(()),
            Ok(o) if o["metadata"]["uid"].as_str().unwrap_or_default() != uid => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(server_err(e)),
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for {} to be deleted", display_name(info, name));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The `kind.group` form kubectl prints in "deleted" lines: `deployment.apps`.
trait QualifiedSingular {
    fn qualified_singular(&self) -> String;
}

impl QualifiedSingular for ResourceInfo {
    fn qualified_singular(&self) -> String {
        if self.group.is_empty() {
            self.singular.to_string()
        } else {
            format!("{}.{}", self.singular, self.group)
        }
    }
}

/// `scale KIND/NAME --replicas N`: a read-modify-write of `spec.replicas`,
/// retried if another writer gets in between.
pub async fn scale(ctx: &Ctx, info: &'static ResourceInfo, name: &str, replicas: i32) -> Result<()> {
    if !matches!(info.resource, "deployments" | "replicasets" | "statefulsets") {
        bail!("error: cannot scale {}: only deployments, replicasets and statefulsets have a scale subresource", info.resource);
    }
    if replicas < 0 {
        bail!("error: The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0");
    }
    let api = ctx.api(info, None);
    for _ in 0..5 {
        let mut obj = api.get(name).await.map_err(server_err)?;
        obj["spec"]["replicas"] = json!(replicas);
        match api.update(&obj, false).await {
            Ok(_) => {
                println!("{} scaled", display_name(info, name));
                return Ok(());
            }
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(server_err(e)),
        }
    }
    bail!("error: could not scale {}: too many concurrent updates", display_name(info, name))
}

/// `logs POD [-c C] [-f] [--tail N] [--previous]`.
pub async fn logs(ctx: &Ctx, pod: &str, container: Option<&str>, follow: bool, tail: i64, previous: bool) -> Result<()> {
    let pod = pod.strip_prefix("pod/").or_else(|| pod.strip_prefix("pods/")).unwrap_or(pod);
    let req = api::proto::LogsRequest {
        namespace: ctx.namespace.clone(),
        pod: pod.to_string(),
        container: container.unwrap_or_default().to_string(),
        follow,
        tail_lines: tail,
        previous,
        timestamps: false,
    };
    let mut stream = ctx.client.logs(req).await.map_err(server_err)?;
    let mut stdout = std::io::stdout();
    while let Some(chunk) = stream.next().await {
        let bytes = chunk.map_err(server_err)?;
        stdout.write_all(&bytes)?;
        stdout.flush()?;
    }
    Ok(())
}

/// Where a rollout stands, as kubectl's `DeploymentStatusViewer` reads it.
pub fn rollout_state(d: &Value) -> (bool, String) {
    let name = d["metadata"]["name"].as_str().unwrap_or_default();
    let n = |v: &Value| v.as_i64().unwrap_or(0);
    let (spec, status) = (&d["spec"], &d["status"]);
    if n(&d["metadata"]["generation"]) > n(&status["observedGeneration"]) {
        return (false, "Waiting for deployment spec update to be observed...".into());
    }
    let deadline_exceeded = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded");
    if deadline_exceeded {
        return (true, format!("error: deployment {name:?} exceeded its progress deadline"));
    }
    let (want, updated, total, available) =
        (n(&spec["replicas"]), n(&status["updatedReplicas"]), n(&status["replicas"]), n(&status["availableReplicas"]));
    if updated < want {
        return (
            false,
            format!("Waiting for deployment {name:?} rollout to finish: {updated} out of {want} new replicas have been updated..."),
        );
    }
    if total > updated {
        return (
            false,
            format!("Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...", total - updated),
        );
    }
    if available < updated {
        return (
            false,
            format!("Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."),
        );
    }
    (true, format!("deployment {name:?} successfully rolled out"))
}

/// `rollout status deployment/NAME`: prints progress until the rollout is
/// complete, following the deployment with a watch.
pub async fn rollout_status(ctx: &Ctx, info: &'static ResourceInfo, name: &str, timeout: Duration) -> Result<()> {
    if info.resource != "deployments" {
        bail!("error: rollout status is supported for deployments only in tinykube");
    }
    let api = ctx.api(info, None);
    let wait = async {
        let mut last = String::new();
        loop {
            let list = api.list(&ListParams::fields(format!("metadata.name={name}"))).await.map_err(server_err)?;
            let rv = list["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
            let Some(d) = list["items"].as_array().and_then(|i| i.first()).cloned() else {
                bail!("Error from server (NotFound): deployments.apps {name:?} not found");
            };
            let mut current = d;
            let mut events = api.watch(&ListParams::fields(format!("metadata.name={name}")), &rv).await.map_err(server_err)?;
            loop {
                let (done, message) = rollout_state(&current);
                if message != last {
                    println!("{message}");
                    last = message.clone();
                }
                if done {
                    return if message.starts_with("error") { Err(anyhow!("rollout failed")) } else { Ok(()) };
                }
                match events.next().await {
                    Some(Ok(ev)) if ev["type"] == "DELETED" => bail!("deployment {name:?} was deleted"),
                    Some(Ok(ev)) if ev["type"] == "ADDED" || ev["type"] == "MODIFIED" => current = ev["object"].clone(),
                    Some(Ok(_)) => {}
                    // The watch ended or expired: start over from a list.
                    Some(Err(_)) | None => break,
                }
            }
        }
    };
    tokio::time::timeout(timeout, wait).await.map_err(|_| anyhow!("error: timed out waiting for the condition"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollout_state_follows_kubectl() {
        let d = |gen: i64, observed: i64, want: i64, updated: i64, total: i64, available: i64| {
            json!({
                "metadata": {"name": "web", "generation": gen},
                "spec": {"replicas": want},
                "status": {"observedGeneration": observed, "updatedReplicas": updated, "replicas": total, "availableReplicas": available}
            })
        };
        let cases = [
            (d(2, 1, 3, 3, 3, 3), false, "Waiting for deployment spec update to be observed..."),
            (d(2, 2, 3, 1, 4, 3), false, "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated..."),
            (d(2, 2, 3, 3, 4, 3), false, "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination..."),
            (d(2, 2, 3, 3, 3, 2), false, "Waiting for deployment \"web\" rollout to finish: 2 of 3 updated replicas are available..."),
            (d(2, 2, 3, 3, 3, 3), true, "deployment \"web\" successfully rolled out"),
        ];
        for (dep, done, message) in cases {
            assert_eq!(rollout_state(&dep), (done, message.to_string()));
        }
    }
}
