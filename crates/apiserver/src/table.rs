//! Table printing: the columns `kubectl get` shows for each kind.
//!
//! kube-apiserver renders lists as a `meta.k8s.io/v1` `Table` when kubectl
//! asks for one (`pkg/printers/internalversion/printers.go`); the column
//! names and the cell logic (a pod's STATUS, a deployment's READY) live on
//! the server so every client shows the same thing. tinykube keeps them
//! here for the same reason: the REST front door and the `tinykube get`
//! command print from one definition.

use api::time::{age_seconds, human_duration};
use api::ResourceInfo;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;

/// One column: its header and whether it shows only with `-o wide`
/// (upstream's `priority: 1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub wide: bool,
}

const fn col(name: &'static str) -> Column {
    Column { name, wide: false }
}

const fn wide(name: &'static str) -> Column {
    Column { name, wide: true }
}

/// The columns of `info`'s table, NAME first.
pub fn columns(info: &ResourceInfo) -> Vec<Column> {
    match info.resource {
        "pods" => vec![
            col("NAME"),
            col("READY"),
            col("STATUS"),
            col("RESTARTS"),
            col("AGE"),
            wide("IP"),
            wide("NODE"),
            wide("NOMINATED NODE"),
            wide("READINESS GATES"),
        ],
        "deployments" => vec![
            col("NAME"),
            col("READY"),
            col("UP-TO-DATE"),
            col("AVAILABLE"),
            col("AGE"),
            wide("CONTAINERS"),
            wide("IMAGES"),
            wide("SELECTOR"),
        ],
        "replicasets" => vec![
            col("NAME"),
            col("DESIRED"),
            col("CURRENT"),
            col("READY"),
            col("AGE"),
            wide("CONTAINERS"),
            wide("IMAGES"),
            wide("SELECTOR"),
        ],
        "nodes" => vec![
            col("NAME"),
            col("STATUS"),
            col("ROLES"),
            col("AGE"),
            col("VERSION"),
            wide("INTERNAL-IP"),
            wide("EXTERNAL-IP"),
            wide("OS-IMAGE"),
            wide("KERNEL-VERSION"),
            wide("CONTAINER-RUNTIME"),
        ],
        "namespaces" => vec![col("NAME"), col("STATUS"), col("AGE")],
        "events" => vec![col("LAST SEEN"), col("TYPE"), col("REASON"), col("OBJECT"), col("MESSAGE")],
        "configmaps" => vec![col("NAME"), col("DATA"), col("AGE")],
        "secrets" => vec![col("NAME"), col("TYPE"), col("DATA"), col("AGE")],
        "leases" => vec![col("NAME"), col("HOLDER"), col("AGE")],
        "certificatesigningrequests" => {
            vec![col("NAME"), col("AGE"), col("SIGNERNAME"), col("REQUESTOR"), col("REQUESTEDDURATION"), col("CONDITION")]
        }
        "services" => vec![col("NAME"), col("TYPE"), col("CLUSTER-IP"), col("EXTERNAL-IP"), col("PORT(S)"), col("AGE"), wide("SELECTOR")],
        _ => vec![col("NAME"), col("AGE")],
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn or_none(v: String) -> String {
    if v.is_empty() {
        "<none>".into()
    } else {
        v
    }
}

/// Age of a timestamp field, as kubectl prints it (`<unknown>` if absent).
pub fn age(v: &Value) -> String {
    match serde_json::from_value::<Time>(v.clone()) {
        Ok(t) => human_duration(age_seconds(&t)),
        Err(_) => "<unknown>".into(),
    }
}

/// The cells of one object's row, one per column of [`columns`].
pub fn row(info: &ResourceInfo, obj: &Value) -> Vec<String> {
    let name = s(&obj["metadata"]["name"]);
    let created = age(&obj["metadata"]["creationTimestamp"]);
    let spec = &obj["spec"];
    let status = &obj["status"];
    match info.resource {
        "pods" => {
            let statuses = status["containerStatuses"].as_array().cloned().unwrap_or_default();
            let total = spec["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses.iter().filter(|c| c["ready"] == true).count();
            let restarts: i64 = statuses.iter().map(|c| int(&c["restartCount"])).sum();
            vec![
                name,
                format!("{ready}/{total}"),
                pod_status(obj),
                restarts.to_string(),
                created,
                or_none(s(&status["podIP"])),
                or_none(s(&spec["nodeName"])),
                "<none>".into(),
                "<none>".into(),
            ]
        }
        "deployments" => {
            let (containers, images) = template_containers(&spec["template"]);
            vec![
                name,
                format!("{}/{}", int(&status["readyReplicas"]), int(&spec["replicas"])),
                int(&status["updatedReplicas"]).to_string(),
                int(&status["availableReplicas"]).to_string(),
                created,
                containers,
                images,
                selector_string(&spec["selector"]),
            ]
        }
        "replicasets" => {
            let (containers, images) = template_containers(&spec["template"]);
            vec![
                name,
                int(&spec["replicas"]).to_string(),
                int(&status["replicas"]).to_string(),
                int(&status["readyReplicas"]).to_string(),
                created,
                containers,
                images,
                selector_string(&spec["selector"]),
            ]
        }
        "nodes" => {
            let ready = status["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                .map(|c| if c["status"] == "True" { "Ready" } else { "NotReady" })
                .unwrap_or("Unknown");
            let mut state = ready.to_string();
            if spec["unschedulable"] == true {
                state.push_str(",SchedulingDisabled");
            }
            let roles: Vec<String> = obj["metadata"]["labels"]
                .as_object()
                .map(|l| l.keys().filter_map(|k| k.strip_prefix("node-role.kubernetes.io/")).map(str::to_string).collect())
                .unwrap_or_default();
            let address =
                |t: &str| status["addresses"].as_array().and_then(|a| a.iter().find(|x| x["type"] == t)).map(|x| s(&x["address"]));
            let info = &status["nodeInfo"];
            vec![
                name,
                state,
                or_none(roles.join(",")),
                created,
                s(&info["kubeletVersion"]),
                address("InternalIP").unwrap_or_else(|| "<none>".into()),
                address("ExternalIP").unwrap_or_else(|| "<none>".into()),
                or_none(s(&info["osImage"])),
                or_none(s(&info["kernelVersion"])),
                or_none(s(&info["containerRuntimeVersion"])),
            ]
        }
        "namespaces" => vec![name, s(&status["phase"]), created],
        "events" => {
            let last = if obj["lastTimestamp"].is_null() { &obj["eventTime"] } else { &obj["lastTimestamp"] };
            let involved = &obj["involvedObject"];
            vec![
                age(last),
                s(&obj["type"]),
                s(&obj["reason"]),
                format!("{}/{}", s(&involved["kind"]).to_lowercase(), s(&involved["name"])),
                s(&obj["message"]),
            ]
        }
        "configmaps" => {
            let n = obj["data"].as_object().map_or(0, |m| m.len()) + obj["binaryData"].as_object().map_or(0, |m| m.len());
            vec![name, n.to_string(), created]
        }
        "secrets" => {
            let n = obj["data"].as_object().map_or(0, |m| m.len());
            vec![name, s(&obj["type"]), n.to_string(), created]
        }
        "leases" => vec![name, s(&spec["holderIdentity"]), created],
        "certificatesigningrequests" => {
            // Upstream prints the conditions' types, then `Issued` once
            // a certificate is there: `Approved,Issued`.
            let mut condition: Vec<String> =
                obj["status"]["conditions"].as_array().map(|cs| cs.iter().map(|c| s(&c["type"])).collect()).unwrap_or_default();
            if !s(&obj["status"]["certificate"]).is_empty() {
                condition.push("Issued".into());
            }
            let condition = if condition.is_empty() { "Pending".to_string() } else { condition.join(",") };
            vec![name, created, s(&spec["signerName"]), s(&spec["username"]), "<none>".into(), condition]
        }
        "services" => {
            let ports: Vec<String> = spec["ports"]
                .as_array()
                .map(|ps| ps.iter().map(|p| format!("{}/{}", int(&p["port"]), s(&p["protocol"]))).collect())
                .unwrap_or_default();
            vec![
                name,
                s(&spec["type"]),
                or_none(s(&spec["clusterIP"])),
                "<none>".into(),
                or_none(ports.join(",")),
                created,
                spec["selector"]
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| format!("{k}={}", s(v))).collect::<Vec<_>>().join(","))
                    .map(or_none)
                    .unwrap_or_else(|| "<none>".into()),
            ]
        }
        _ => vec![name, created],
    }
}

fn template_containers(template: &Value) -> (String, String) {
    let containers = template["spec"]["containers"].as_array().cloned().unwrap_or_default();
    let names = containers.iter().map(|c| s(&c["name"])).collect::<Vec<_>>().join(",");
    let images = containers.iter().map(|c| s(&c["image"])).collect::<Vec<_>>().join(",");
    (names, images)
}

/// A structured selector in string form, as kubectl's SELECTOR column.
pub fn selector_string(selector: &Value) -> String {
    serde_json::from_value(selector.clone())
        .ok()
        .and_then(|sel| api::labels::Selector::from_label_selector(&sel).ok())
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "<none>".into())
}

/// A pod's STATUS column, following kubectl's `printPod`: the phase,
/// replaced by the most telling container reason (`CrashLoopBackOff`,
/// `Completed`, `Error`, `ExitCode:N`), and `Terminating` while deleting.
pub fn pod_status(pod: &Value) -> String {
    let status = &pod["status"];
    let mut reason = s(&status["phase"]);
    if let Some(r) = status["reason"].as_str() {
        reason = r.to_string();
    }
    let mut has_running = false;
    for c in status["containerStatuses"].as_array().into_iter().flatten().rev() {
        let state = &c["state"];
        if let Some(r) = state["waiting"]["reason"].as_str().filter(|r| !r.is_empty()) {
            reason = r.to_string();
        } else if !state["terminated"].is_null() {
            let t = &state["terminated"];
            reason = match (t["reason"].as_str(), t["signal"].as_i64()) {
                (Some(r), _) if !r.is_empty() => r.to_string(),
                (_, Some(sig)) if sig != 0 => format!("Signal:{sig}"),
                _ => format!("ExitCode:{}", int(&t["exitCode"])),
            };
        } else if !state["running"].is_null() && c["ready"] == true {
            has_running = true;
        }
    }
    if reason == "Completed" && has_running {
        reason = "Running".into();
    }
    if !pod["metadata"]["deletionTimestamp"].is_null() {
        reason = if status["reason"] == "NodeLost" { "Unknown".into() } else { "Terminating".into() };
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods() -> &'static ResourceInfo {
        api::resources::by_resource("", "pods").unwrap()
    }

    #[test]
    fn pod_rows_read_like_kubectl() {
        let pod = json!({
            "metadata": {"name": "web-1", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.0.0.2", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ]}
        });
        let r = row(pods(), &pod);
        assert_eq!(&r[..4], ["web-1", "1/2", "CrashLoopBackOff", "3"]);
        assert_eq!(r[6], "n1");
        assert_eq!(columns(pods()).len(), r.len());
    }

    #[test]
    fn pod_status_cases() {
        let cases = [
            (json!({"status": {"phase": "Pending"}}), "Pending"),
            (json!({"status": {"phase": "Running", "containerStatuses": [{"state": {"terminated": {"exitCode": 3}}}]}}), "ExitCode:3"),
            (
                json!({"status": {"phase": "Succeeded", "containerStatuses": [{"state": {"terminated": {"reason": "Completed"}}}]}}),
                "Completed",
            ),
            (json!({"metadata": {"deletionTimestamp": "2020-01-01T00:00:00Z"}, "status": {"phase": "Running"}}), "Terminating"),
        ];
        for (pod, want) in cases {
            assert_eq!(pod_status(&pod), want, "{pod}");
        }
    }

    #[test]
    fn every_kind_has_matching_columns_and_cells() {
        for info in api::resources::RESOURCES {
            assert_eq!(columns(info).len(), row(info, &json!({})).len(), "{}", info.resource);
        }
    }
}
