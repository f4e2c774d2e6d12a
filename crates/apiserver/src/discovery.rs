//! Discovery: how clients learn what the server serves.
//!
//! Before kubectl does anything it asks `/api` and `/apis` for the groups
//! and versions, then `/api/v1` and `/apis/<group>/<version>` for each
//! version's resources: their plural and singular names, kind, scope,
//! verbs, short names and subresources. That is how `kubectl get deploy`
//! knows that `deploy` means `deployments.apps`, namespaced. tinykube serves
//! the *legacy* (unaggregated) format, which kubectl accepts when the
//! response's Content-Type is plain `application/json`.

use api::resources::RESOURCES;
use api::ResourceInfo;
use serde_json::{json, Value};

/// Verbs of an ordinary resource.
const VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// Groups in the order discovery lists them (core first, as upstream).
pub fn groups() -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = Vec::new();
    for r in RESOURCES {
        if !r.group.is_empty() && !groups.contains(&r.group) {
            groups.push(r.group);
        }
    }
    groups
}

/// `GET /api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_entry(group: &str) -> Value {
    let version = RESOURCES.iter().find(|r| r.group == group).map(|r| r.version).unwrap_or("v1");
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

/// `GET /apis`.
pub fn api_group_list() -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups().into_iter().map(group_entry).collect::<Vec<_>>(),
    })
}

/// `GET /apis/<group>`, if the group is served.
pub fn api_group(group: &str) -> Option<Value> {
    groups().contains(&group).then(|| {
        let mut g = group_entry(group);
        g["kind"] = json!("APIGroup");
        g["apiVersion"] = json!("v1");
        g
    })
}

fn resource_entry(r: &ResourceInfo) -> Value {
    let mut e = json!({
        "name": r.resource,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": VERBS,
        "storageVersionHash": "",
    });
    if !r.short_names.is_empty() {
        e["shortNames"] = json!(r.short_names);
    }
    if matches!(r.resource, "pods" | "deployments" | "replicasets" | "daemonsets" | "statefulsets" | "jobs" | "services") {
        e["categories"] = json!(["all"]);
    }
    e
}

fn sub(r: &ResourceInfo, name: &str, kind: &str, verbs: &[&str]) -> Value {
    json!({"name": format!("{}/{name}", r.resource), "singularName": "", "namespaced": r.namespaced, "kind": kind, "verbs": verbs})
}

/// `GET /api/v1` or `GET /apis/<group>/<version>`, if served.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in RESOURCES.iter().filter(|r| r.group == group && r.version == version) {
        resources.push(resource_entry(r));
        if r.has_status {
            resources.push(sub(r, "status", r.kind, &["get", "patch", "update"]));
        }
        if r.resource == "certificatesigningrequests" {
            resources.push(sub(r, "approval", r.kind, &["get", "update"]));
        }
        if matches!(r.resource, "deployments" | "replicasets" | "statefulsets") {
            let mut scale = sub(r, "scale", "Scale", &["get", "patch", "update"]);
            scale["group"] = json!("autoscaling");
            scale["version"] = json!("v1");
            resources.push(scale);
        }
        if r.resource == "pods" {
            resources.push(sub(r, "binding", "Binding", &["create"]));
            resources.push(sub(r, "log", "Pod", &["get"]));
            resources.push(sub(r, "exec", "PodExecOptions", &["create", "get"]));
        }
    }
    if resources.is_empty() {
        return None;
    }
    if group.is_empty() {
        resources.push(json!({"name": "bindings", "singularName": "binding", "namespaced": true, "kind": "Binding", "verbs": ["create"]}));
    }
    let group_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_lists_every_resource_and_subresource() {
        let core = api_resource_list("", "v1").unwrap();
        let names: Vec<&str> = core["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        for want in
            ["pods", "pods/status", "pods/log", "pods/exec", "pods/binding", "nodes", "namespaces", "events", "configmaps", "secrets"]
        {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        let apps = api_resource_list("apps", "v1").unwrap();
        let scale = apps["resources"].as_array().unwrap().iter().find(|r| r["name"] == "deployments/scale").unwrap();
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["kind"], "Scale");
        assert!(api_resource_list("apps", "v2").is_none());
        let groups = api_group_list();
        assert!(groups["groups"].as_array().unwrap().iter().any(|g| g["name"] == "coordination.k8s.io"));
        assert_eq!(api_versions("127.0.0.1:6443")["serverAddressByClientCIDRs"][0]["clientCIDR"], "0.0.0.0/0");
    }
}
