//! Schedules pods against in-memory nodes, with no api-server: the
//! scheduler's decision logic on its own.
//!
//! ```text
//! cargo run -p tinykube-scheduler --example schedule_one_pod
//! ```
//!
//! Three 4-cpu nodes; two are already half full and one is tainted for GPU
//! work. A small pod goes to the emptiest node it tolerates; a 3-cpu pod
//! fits nowhere, and the message says why, exactly as the
//! `FailedScheduling` event would.

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;
use tinykube_scheduler::schedule_one::schedule_one;

fn node(name: &str, taints: serde_json::Value) -> Result<Node, serde_json::Error> {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"taints": taints},
        "status": {
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }))
}

fn pod(name: &str, cpu: &str, node_name: Option<&str>) -> Result<Pod, serde_json::Error> {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": node_name,
            "containers": [{"name": "app", "image": "nginx", "resources": {"requests": {"cpu": cpu}}}],
        },
    }))
}

fn main() -> Result<(), serde_json::Error> {
    let nodes = vec![
        node("node-1", json!([]))?,
        node("node-2", json!([]))?,
        node("node-3", json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]))?,
    ];
    let running = vec![pod("db", "2", Some("node-1"))?, pod("cache", "1500m", Some("node-2"))?];

    for (name, cpu) in [("web-1", "500m"), ("batch", "3")] {
        match schedule_one(&pod(name, cpu, None)?, &nodes, &running) {
            Ok(node) => println!("{name} (cpu {cpu}): Successfully assigned default/{name} to {node}"),
            Err(why) => println!("{name} (cpu {cpu}): FailedScheduling: {why}"),
        }
    }
    Ok(())
}
