//! Per-kind rules: defaulting, validation, and what "spec" means.
//!
//! kube-apiserver gives each kind a *strategy* (`pkg/registry/<group>/<kind>/strategy.go`):
//! `PrepareForCreate` and `PrepareForUpdate` decide which parts of an object
//! a request may change (a plain update cannot touch status; a status
//! update cannot touch spec), defaulting fills what the user left out
//! (`replicas: 1`, `restartPolicy: Always`), and validation returns field
//! errors that become a 422 `Invalid`. tinykube keeps that split with one
//! [`Strategy`] impl per typed kind; the registry calls it through
//! [`normalize`], which round-trips the JSON through the `k8s-openapi` type
//! so a malformed object (a string where a number belongs) is a clear 400.
//!
//! The rules themselves live in [`crate::validation`]; a strategy only
//! says which of them its kind follows. Every write — create, update,
//! patch, status, scale, Binding — passes through [`normalize`], so it is
//! the one place an object is validated, whichever front door it came in by.

use api::status::FieldError;
use api::{ApiError, ResourceInfo};

use crate::fieldvalidation;
pub use crate::registry::FieldValidation;
use crate::validation::{self, apps, batch, coordination, core};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Endpoints, Event, Namespace, Node, Pod, PodSpec, PodTemplateSpec, Probe, Secret, Service, ServiceAccount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

/// Whether a write creates, updates, or updates only status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    /// A client's update: the stored status is kept.
    Update,
    /// A client's status update: everything but status is kept.
    UpdateStatus,
    /// The registry's own write of a whole object (a Binding sets
    /// `spec.nodeName` and a status condition at one revision).
    Whole,
}

/// One kind's rules. Every method has a do-nothing default, so a kind that
/// is only stored needs no code.
pub trait Strategy: api::Object {
    /// Fill in what the user left out, as upstream's `SetDefaults_*`.
    fn default(&mut self) {}

    /// What the api-server itself sets on a new object, after defaulting
    /// (upstream's `PrepareForCreate`).
    fn prepare_for_create(&mut self) {}

    /// A value the type holds as a string but upstream's decoder parses
    /// (a quantity), which makes the request a 400 rather than a 422.
    fn check_decode(&self) -> Result<(), String> {
        Ok(())
    }

    /// Field errors for a new or updated object, beyond its metadata
    /// (upstream's `Validate`, delegating to [`crate::validation`]).
    fn validate(&self) -> Vec<FieldError> {
        Vec::new()
    }

    /// Extra checks on update (immutable fields; upstream's `ValidateUpdate`).
    fn validate_update(&self, _old: &Self) -> Vec<FieldError> {
        Vec::new()
    }

    /// The value of a field selector field this kind supports beyond
    /// `metadata.name` and `metadata.namespace`; `None` if unsupported.
    fn field(&self, _field: &str) -> Option<String> {
        None
    }
}

/// The parsed, defaulted, validated object, back as JSON, with warnings
/// for the client (unknown fields dropped under `Warn`).
pub fn normalize(
    info: &ResourceInfo,
    obj: Value,
    old: Option<&Value>,
    op: Op,
    validation: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    macro_rules! dispatch {
        ($($resource:literal => $ty:ty),* $(,)?) => {
            match info.resource {
                $($resource => typed::<$ty>(info, obj, old, op, validation),)*
                other => Err(ApiError::internal(format!("no strategy for {other}"))),
            }
        };
    }
    dispatch! {
        "pods" => Pod, "nodes" => Node, "namespaces" => Namespace, "events" => Event,
        "services" => Service, "endpoints" => Endpoints, "configmaps" => ConfigMap, "secrets" => Secret,
        "serviceaccounts" => ServiceAccount, "deployments" => Deployment, "replicasets" => ReplicaSet,
        "daemonsets" => DaemonSet, "statefulsets" => StatefulSet, "jobs" => Job, "leases" => Lease,
        "certificatesigningrequests" => CertificateSigningRequest,
    }
}

/// The value of field `field` of a stored object, for field selectors.
pub fn field_value(info: &ResourceInfo, obj: &Value, field: &str) -> Option<String> {
    match field {
        "metadata.name" => return Some(obj["metadata"]["name"].as_str().unwrap_or_default().to_string()),
        "metadata.namespace" => return Some(obj["metadata"]["namespace"].as_str().unwrap_or_default().to_string()),
        _ => {}
    }
    let s = |v: &Value| Some(v.as_str().unwrap_or_default().to_string());
    match (info.resource, field) {
        ("pods", "spec.nodeName") => s(&obj["spec"]["nodeName"]),
        ("pods", "status.phase") => s(&obj["status"]["phase"]),
        ("pods", "spec.restartPolicy") => s(&obj["spec"]["restartPolicy"]),
        ("pods", "spec.schedulerName") => s(&obj["spec"]["schedulerName"]),
        ("pods", "status.podIP") => s(&obj["status"]["podIP"]),
        ("nodes", "spec.unschedulable") => Some(obj["spec"]["unschedulable"].as_bool().unwrap_or(false).to_string()),
        ("events", f) if f.starts_with("involvedObject.") => s(&obj["involvedObject"][f.trim_start_matches("involvedObject.")]),
        ("events", "reason") => s(&obj["reason"]),
        ("events", "type") => s(&obj["type"]),
        ("secrets", "type") => s(&obj["type"]),
        _ => None,
    }
}

fn typed<K: Strategy>(
    info: &ResourceInfo,
    mut obj: Value,
    old: Option<&Value>,
    op: Op,
    validation: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    let mut warnings = Vec::new();
    // The status subresource splits an object in two: a plain write keeps
    // the stored status, a status write keeps everything else.
    if info.has_status {
        if let Some(old) = old {
            match op {
                Op::Update => set_or_remove(&mut obj, "status", old.get("status").cloned()),
                Op::UpdateStatus => {
                    let status = obj.get("status").cloned();
                    let mut merged = old.clone();
                    set_or_remove(&mut merged, "status", status);
                    merged["metadata"] = obj["metadata"].clone();
                    obj = merged;
                }
                Op::Create | Op::Whole => {}
            }
        }
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let input = (validation != FieldValidation::Ignore).then(|| obj.clone());
    let mut typed: K = serde_json::from_value(obj).map_err(|e| {
        ApiError::bad_request(format!("{} in version \"{}\" cannot be handled as a {}: {e}", K::KIND, info.version, K::KIND))
    })?;
    if let Some(input) = input {
        // Fields the type does not have did not survive the parse.
        let roundtripped = serde_json::to_value(&typed).map_err(ApiError::internal)?;
        let unknown = fieldvalidation::unknown_fields(&input, &roundtripped);
        if !unknown.is_empty() {
            match validation {
                FieldValidation::Strict => return Err(fieldvalidation::strict_error(K::KIND, info.version, &unknown)),
                _ => warnings.extend(fieldvalidation::warnings(&unknown, &[])),
            }
        }
    }
    typed.check_decode().map_err(|e| {
        ApiError::bad_request(format!("{} in version \"{}\" cannot be handled as a {}: {e}", K::KIND, info.version, K::KIND))
    })?;
    typed.default();
    if op == Op::Create {
        typed.prepare_for_create();
    }
    // Metadata first, then the kind's own rules, as upstream's
    // `Validate<Kind>` calls `ValidateObjectMeta` before the spec.
    let mut errors = validation::meta::validate_object_meta(info, typed.metadata());
    errors.extend(typed.validate());
    if let Some(old) = old {
        if let Ok(old_typed) = serde_json::from_value::<K>(old.clone()) {
            errors.extend(validation::meta::validate_object_meta_update(typed.metadata(), old_typed.metadata()));
            // A Binding is the registry's own write of `spec.nodeName`,
            // which no client update may make (upstream's binding storage
            // skips the pod's update validation the same way).
            if op != Op::Whole {
                errors.extend(typed.validate_update(&old_typed));
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(info.group, info.kind, &name, &errors));
    }
    let mut out = serde_json::to_value(&typed).map_err(ApiError::internal)?;
    out["apiVersion"] = Value::String(info.api_version());
    out["kind"] = Value::String(info.kind.to_string());
    Ok((out, warnings))
}

fn set_or_remove(obj: &mut Value, key: &str, value: Option<Value>) {
    if let Some(map) = obj.as_object_mut() {
        match value {
            Some(v) => {
                map.insert(key.to_string(), v);
            }
            None => {
                map.remove(key);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Defaulting, as upstream's `SetDefaults_*`.

fn default_pod_spec(spec: &mut PodSpec) {
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    spec.scheduler_name.get_or_insert_with(|| "default-scheduler".into());
    spec.service_account_name.get_or_insert_with(|| "default".into());
    spec.security_context.get_or_insert_with(Default::default);
    for c in spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten()) {
        default_container(c);
    }
}

fn default_container(c: &mut Container) {
    let latest = c.image.as_deref().is_some_and(|i| !i.contains(':') || i.ends_with(":latest"));
    c.image_pull_policy.get_or_insert_with(|| if latest { "Always".into() } else { "IfNotPresent".into() });
    c.termination_message_path.get_or_insert_with(|| "/dev/termination-log".into());
    c.termination_message_policy.get_or_insert_with(|| "File".into());
    // Upstream's `resources` is a plain struct, so every stored container
    // has one, if empty. Storing it the same way keeps templates that
    // differ only by `resources: {}` equal — which is how `rollout undo`
    // finds the old ReplicaSet again.
    let res = c.resources.get_or_insert_with(Default::default);
    // Requests default to limits, so the scheduler sees what a container
    // asked for either way.
    if let Some(limits) = res.limits.clone() {
        let requests = res.requests.get_or_insert_with(Default::default);
        for (k, v) in limits {
            requests.entry(k).or_insert(v);
        }
    }
    for p in c.ports.iter_mut().flatten() {
        p.protocol.get_or_insert_with(|| "TCP".into());
    }
    for probe in [&mut c.liveness_probe, &mut c.readiness_probe, &mut c.startup_probe].into_iter().flatten() {
        default_probe(probe);
    }
}

/// Upstream's probe defaults (`SetDefaults_Probe`, `SetDefaults_HTTPGetAction`).
fn default_probe(p: &mut Probe) {
    p.timeout_seconds.get_or_insert(1);
    p.period_seconds.get_or_insert(10);
    p.success_threshold.get_or_insert(1);
    p.failure_threshold.get_or_insert(3);
    if let Some(get) = p.http_get.as_mut() {
        get.path.get_or_insert_with(|| "/".into());
        get.scheme.get_or_insert_with(|| "HTTP".into());
    }
}

fn default_template(t: &mut PodTemplateSpec) {
    if let Some(spec) = t.spec.as_mut() {
        default_pod_spec(spec);
    }
}

// ---------------------------------------------------------------------------
// The kinds.

impl Strategy for Pod {
    fn default(&mut self) {
        if let Some(spec) = self.spec.as_mut() {
            default_pod_spec(spec);
        }
        let qos = api::qos::qos_class(self.spec.as_ref().unwrap_or(&Default::default()));
        let status = self.status.get_or_insert_with(Default::default);
        status.phase.get_or_insert_with(|| "Pending".into());
        // A status write that leaves the class out gets it back, as upstream
        // backfills it from the stored pod: the class cannot change, since a
        // pod's resources cannot.
        status.qos_class.get_or_insert_with(|| qos.into());
    }

    /// The QoS class is the api-server's to compute, whatever the client sent.
    fn prepare_for_create(&mut self) {
        let qos = api::qos::qos_class(self.spec.as_ref().unwrap_or(&Default::default()));
        self.status.get_or_insert_with(Default::default).qos_class = Some(qos.into());
    }

    fn check_decode(&self) -> Result<(), String> {
        self.spec.as_ref().map_or(Ok(()), core::check_pod_spec_quantities)
    }

    fn validate(&self) -> Vec<FieldError> {
        core::validate_pod(self)
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        core::validate_pod_update(self, old)
    }
}

impl Strategy for Deployment {
    fn default(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        spec.replicas.get_or_insert(1);
        spec.revision_history_limit.get_or_insert(10);
        spec.progress_deadline_seconds.get_or_insert(600);
        let strategy = spec.strategy.get_or_insert_with(Default::default);
        let kind = strategy.type_.get_or_insert_with(|| "RollingUpdate".into()).clone();
        if kind == "RollingUpdate" {
            let ru = strategy.rolling_update.get_or_insert_with(Default::default);
            ru.max_surge.get_or_insert(IntOrString::String("25%".into()));
            ru.max_unavailable.get_or_insert(IntOrString::String("25%".into()));
        }
        default_template(&mut spec.template);
    }

    fn check_decode(&self) -> Result<(), String> {
        template_quantities(self.spec.as_ref().map(|s| &s.template))
    }

    fn validate(&self) -> Vec<FieldError> {
        apps::validate_deployment(self)
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        apps::validate_deployment_update(self, old)
    }
}

impl Strategy for ReplicaSet {
    fn default(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        spec.replicas.get_or_insert(1);
        if let Some(t) = spec.template.as_mut() {
            default_template(t);
        }
    }

    fn check_decode(&self) -> Result<(), String> {
        template_quantities(self.spec.as_ref().and_then(|s| s.template.as_ref()))
    }

    fn validate(&self) -> Vec<FieldError> {
        apps::validate_replica_set(self)
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        apps::validate_replica_set_update(self, old)
    }
}

impl Strategy for Namespace {
    fn default(&mut self) {
        let status = self.status.get_or_insert_with(Default::default);
        status.phase.get_or_insert_with(|| "Active".into());
        // Upstream labels every namespace with its own name.
        if let Some(name) = self.metadata.name.clone() {
            self.metadata.labels.get_or_insert_with(Default::default).insert("kubernetes.io/metadata.name".into(), name);
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        core::validate_namespace(self)
    }
}

impl Strategy for Node {
    /// `spec.podCIDR` and `spec.podCIDRs` are one field in two spellings
    /// (the first is from before dual-stack): upstream's conversion fills
    /// the list from the single value when only that is given, and always
    /// writes the single value as the list's first entry.
    fn default(&mut self) {
        let Some(spec) = self.spec.as_mut() else { return };
        let single = spec.pod_cidr.clone().filter(|c| !c.is_empty());
        if spec.pod_cidrs.as_ref().is_none_or(|l| l.is_empty()) {
            spec.pod_cidrs = single.map(|c| vec![c]);
        }
        if let Some(first) = spec.pod_cidrs.as_ref().and_then(|l| l.first()) {
            spec.pod_cidr = Some(first.clone());
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        core::validate_node(self)
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        core::validate_node_update(self, old)
    }

    fn field(&self, field: &str) -> Option<String> {
        (field == "spec.unschedulable").then(|| self.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false).to_string())
    }
}

impl Strategy for Event {
    fn validate(&self) -> Vec<FieldError> {
        core::validate_event(self)
    }
}

impl Strategy for Service {
    /// Upstream's Service defaults: ClusterIP, no session affinity, TCP,
    /// and a target port equal to the port.
    fn default(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        spec.type_.get_or_insert_with(|| "ClusterIP".into());
        spec.session_affinity.get_or_insert_with(|| "None".into());
        spec.internal_traffic_policy.get_or_insert_with(|| "Cluster".into());
        for p in spec.ports.iter_mut().flatten() {
            p.protocol.get_or_insert_with(|| "TCP".into());
            core::default_target_port(p.port, &mut p.target_port);
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        core::validate_service(self)
    }
}

impl Strategy for Endpoints {
    fn validate(&self) -> Vec<FieldError> {
        core::validate_endpoints(self)
    }
}

impl Strategy for ConfigMap {
    fn validate(&self) -> Vec<FieldError> {
        core::validate_config_map(self)
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        core::validate_config_map_update(self, old)
    }
}

impl Strategy for Secret {
    /// Upstream's Secret default: `type: Opaque`.
    fn default(&mut self) {
        self.type_.get_or_insert_with(|| "Opaque".into());
    }

    fn validate(&self) -> Vec<FieldError> {
        core::validate_secret(self)
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        core::validate_secret_update(self, old)
    }
}

impl Strategy for ServiceAccount {
    fn validate(&self) -> Vec<FieldError> {
        core::validate_service_account(self)
    }
}

impl Strategy for DaemonSet {
    fn check_decode(&self) -> Result<(), String> {
        template_quantities(self.spec.as_ref().map(|s| &s.template))
    }

    fn validate(&self) -> Vec<FieldError> {
        apps::validate_daemon_set(self)
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        apps::validate_daemon_set_update(self, old)
    }
}

impl Strategy for StatefulSet {
    fn check_decode(&self) -> Result<(), String> {
        template_quantities(self.spec.as_ref().map(|s| &s.template))
    }

    fn validate(&self) -> Vec<FieldError> {
        apps::validate_stateful_set(self)
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        apps::validate_stateful_set_update(self, old)
    }
}

impl Strategy for Job {
    fn check_decode(&self) -> Result<(), String> {
        template_quantities(self.spec.as_ref().map(|s| &s.template))
    }

    fn validate(&self) -> Vec<FieldError> {
        batch::validate_job(self)
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        batch::validate_job_update(self, old)
    }
}

impl Strategy for Lease {
    fn validate(&self) -> Vec<FieldError> {
        coordination::validate_lease(self)
    }
}

/// A CertificateSigningRequest records who asked for it: upstream's
/// strategy sets `spec.username`, `uid` and `groups` from the request's
/// user, whatever the client sent, so an approver can trust them.
impl Strategy for CertificateSigningRequest {
    fn prepare_for_create(&mut self) {
        let user = crate::authn::current().unwrap_or_else(crate::authn::User::anonymous);
        self.spec.username = Some(user.name);
        self.spec.groups = Some(user.groups);
        self.spec.uid = None;
        self.spec.extra = None;
        self.status = None;
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if self.spec.request.0.is_empty() {
            errs.push(FieldError::required("spec.request"));
        } else if let Err(e) = std::str::from_utf8(&self.spec.request.0)
            .map_err(|e| e.to_string())
            .and_then(|pem| api::pki::csr_subject(pem).map_err(|e| e.to_string()))
        {
            errs.push(FieldError::invalid("spec.request", "[]byte{...}", &e));
        }
        if self.spec.signer_name.is_empty() {
            errs.push(FieldError::required("spec.signerName"));
        }
        errs
    }
}

/// The quantities of a workload's pod template, checked as a pod's are.
fn template_quantities(template: Option<&PodTemplateSpec>) -> Result<(), String> {
    template.and_then(|t| t.spec.as_ref()).map_or(Ok(()), core::check_pod_spec_quantities)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(replicas: i64, labels: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": "busybox", "command": ["sleep", "1000"]}]}}
            }
        })
    }

    /// `normalize` in strict mode, without the warnings.
    fn normalize(info: &ResourceInfo, obj: Value, old: Option<&Value>, op: Op) -> Result<Value, ApiError> {
        super::normalize(info, obj, old, op, FieldValidation::Strict).map(|(v, _)| v)
    }

    fn info(resource: &str) -> &'static ResourceInfo {
        api::resources::RESOURCES.iter().find(|r| r.resource == resource).unwrap()
    }

    #[test]
    fn deployment_defaults_match_upstream() {
        let out = normalize(info("deployments"), deploy(3, json!({"app": "web"})), None, Op::Create).unwrap();
        assert_eq!(out["spec"]["strategy"]["type"], "RollingUpdate");
        assert_eq!(out["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(out["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(out["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(out["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "Always");
    }

    #[test]
    fn invalid_deployments_name_the_field() {
        let cases = [
            (
                deploy(-1, json!({"app": "web"})),
                "spec.replicas",
                "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            ),
            (deploy(1, json!({"app": "api"})), "spec.template.metadata.labels", ""),
        ];
        for (obj, field, message) in cases {
            let err = normalize(info("deployments"), obj, None, Op::Create).unwrap_err();
            assert_eq!(err.code, 422);
            assert_eq!(err.details.as_ref().unwrap().causes[0].field, field);
            if !message.is_empty() {
                assert_eq!(err.message, message);
            }
        }
    }

    #[test]
    fn malformed_types_are_a_bad_request() {
        let mut obj = deploy(1, json!({"app": "web"}));
        obj["spec"]["replicas"] = json!("three");
        let err = normalize(info("deployments"), obj, None, Op::Create).unwrap_err();
        assert_eq!(err.code, 400);
    }

    #[test]
    fn status_subresource_splits_writes() {
        let old = normalize(info("deployments"), deploy(1, json!({"app": "web"})), None, Op::Create).unwrap();
        let mut old = old;
        old["status"] = json!({"replicas": 1});
        let mut update = old.clone();
        update["status"] = json!({"replicas": 99});
        update["spec"]["replicas"] = json!(5);
        let plain = normalize(info("deployments"), update.clone(), Some(&old), Op::Update).unwrap();
        assert_eq!(plain["status"]["replicas"], 1);
        assert_eq!(plain["spec"]["replicas"], 5);
        let status = normalize(info("deployments"), update, Some(&old), Op::UpdateStatus).unwrap();
        assert_eq!(status["status"]["replicas"], 99);
        assert_eq!(status["spec"]["replicas"], 1);
    }

    fn pod(resources: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox", "resources": resources}]}
        })
    }

    #[test]
    fn pod_create_computes_the_qos_class() {
        let cases = [
            (json!({}), "BestEffort"),
            (json!({"requests": {"memory": "64Mi"}}), "Burstable"),
            (json!({"limits": {"cpu": "1", "memory": "64Mi"}}), "Guaranteed"),
        ];
        for (resources, want) in cases {
            let out = normalize(info("pods"), pod(resources.clone()), None, Op::Create).unwrap();
            assert_eq!(out["status"]["qosClass"], want, "{resources}");
        }
        // What a client claims is not what it gets.
        let mut claimed = pod(json!({}));
        claimed["status"] = json!({"qosClass": "Guaranteed"});
        let out = normalize(info("pods"), claimed, None, Op::Create).unwrap();
        assert_eq!(out["status"]["qosClass"], "BestEffort");
    }

    #[test]
    fn pod_status_update_keeps_the_qos_class() {
        let old = normalize(info("pods"), pod(json!({"requests": {"cpu": "1"}})), None, Op::Create).unwrap();
        let mut update = old.clone();
        update["status"] = json!({"phase": "Running"});
        let out = normalize(info("pods"), update, Some(&old), Op::UpdateStatus).unwrap();
        assert_eq!(out["status"]["phase"], "Running");
        assert_eq!(out["status"]["qosClass"], "Burstable");
    }

    #[test]
    fn selector_is_immutable() {
        let old = normalize(info("deployments"), deploy(1, json!({"app": "web"})), None, Op::Create).unwrap();
        let mut new = old.clone();
        new["spec"]["selector"]["matchLabels"]["app"] = json!("api");
        new["spec"]["template"]["metadata"]["labels"]["app"] = json!("api");
        let err = normalize(info("deployments"), new, Some(&old), Op::Update).unwrap_err();
        assert_eq!(err.details.unwrap().causes[0].field, "spec.selector");
    }
}
