//! The core group (`pkg/apis/core/validation/validation.go`): pods and
//! the pod templates every workload embeds, services, configuration
//! (ConfigMaps and Secrets), and the cluster's own records (namespaces,
//! nodes, endpoints, events, service accounts).

use std::collections::{BTreeMap, BTreeSet};

use api::names;
use api::status::FieldError;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Endpoints, Event, Namespace, Node, Pod, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, Secret, Service,
    ServiceAccount, Toleration, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::validate_annotations;
use super::{
    quote, shown, validate_dns1123_label, validate_immutable_field, validate_labels, validate_nonnegative_field, validate_port_num_or_name,
    ErrorList,
};

/// The protocols a port may speak (`supportedPortProtocols`).
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

/// ConfigMaps and Secrets are mounted whole into pods and kept in etcd
/// whole: their data may not exceed 1 MiB (`MaxSecretSize`).
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;

/// The message upstream's decoder gives for a malformed quantity: it is a
/// decode error (400), not a validation error, since `resource.Quantity`
/// refuses to be parsed at all.
pub const QUANTITY_FORMAT_ERROR: &str = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// A port's protocol. An absent one is upstream's default, TCP (not every
/// kind that embeds ports is defaulted here); an empty one is missing.
fn protocol(value: Option<&str>, field: String) -> ErrorList {
    match value.unwrap_or("TCP") {
        "" => vec![FieldError::required(field)],
        p if PROTOCOLS.contains(&p) => Vec::new(),
        p => vec![FieldError::not_supported(field, quote(p), PROTOCOLS)],
    }
}

fn one_of(value: Option<&str>, field: String, allowed: &[&str]) -> ErrorList {
    match value {
        Some(v) if !allowed.contains(&v) => vec![FieldError::not_supported(field, quote(v), allowed)],
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// Pods.

/// Every quantity of a pod spec parses, or the message the decoder gives.
pub fn check_pod_spec_quantities(spec: &PodSpec) -> Result<(), String> {
    let all = spec.containers.iter().chain(spec.init_containers.iter().flatten());
    for c in all {
        let Some(res) = &c.resources else { continue };
        for q in res.limits.iter().chain(res.requests.iter()).flat_map(|m| m.values()) {
            api::quantity::validate(q).map_err(|_| QUANTITY_FORMAT_ERROR.to_string())?;
        }
    }
    Ok(())
}

/// `ValidatePod`: a pod's spec (its metadata is checked for every kind).
pub fn validate_pod(pod: &Pod) -> ErrorList {
    match &pod.spec {
        Some(spec) => {
            let mut errs = validate_pod_spec(spec, "spec");
            errs.extend(validate_containers_only_for_pod(&spec.containers, "spec.containers"));
            errs
        }
        None => vec![FieldError::required("spec")],
    }
}

/// `validateContainersOnlyForPod`: a pod's image is what the node pulls,
/// so stray whitespace is an error there (a template may be filled later).
fn validate_containers_only_for_pod(containers: &[Container], field: &str) -> ErrorList {
    let mut errs = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let image = c.image.as_deref().unwrap_or_default();
        if image != image.trim() {
            errs.push(FieldError::invalid(format!("{field}[{i}].image"), quote(image), "must not have leading or trailing whitespace"));
        }
    }
    errs
}

/// `ValidatePodTemplateSpec`: the template's labels and annotations and
/// its pod spec, as a workload embeds it.
pub fn validate_pod_template_spec(template: &PodTemplateSpec, field: &str) -> ErrorList {
    let meta = template.metadata.clone().unwrap_or_default();
    let mut errs = validate_labels(meta.labels.as_ref(), &format!("{field}.metadata.labels"));
    errs.extend(validate_annotations(meta.annotations.as_ref(), &format!("{field}.metadata.annotations")));
    match &template.spec {
        Some(spec) => errs.extend(validate_pod_spec(spec, &format!("{field}.spec"))),
        None => errs.push(FieldError::required(format!("{field}.spec.containers"))),
    }
    errs
}

/// `ValidatePodSpec`.
pub fn validate_pod_spec(spec: &PodSpec, field: &str) -> ErrorList {
    let volumes = spec.volumes.as_deref().unwrap_or_default();
    let (mut errs, volume_names) = validate_volumes(volumes, &format!("{field}.volumes"));
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let mut seen = BTreeSet::new();
    errs.extend(validate_containers(init, &format!("{field}.initContainers"), &volume_names, &mut seen, true));
    if spec.containers.is_empty() {
        errs.push(FieldError::required(format!("{field}.containers")));
    }
    errs.extend(validate_containers(&spec.containers, &format!("{field}.containers"), &volume_names, &mut seen, false));
    errs.extend(validate_restart_policy(spec.restart_policy.as_deref(), &format!("{field}.restartPolicy")));
    errs.extend(one_of(
        spec.dns_policy.as_deref(),
        format!("{field}.dnsPolicy"),
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
    ));
    if let Some(node) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        errs.extend(names::validate_subdomain(node).into_iter().map(|m| FieldError::invalid(format!("{field}.nodeName"), quote(node), m)));
    }
    if let Some(sa) = spec.service_account_name.as_deref().filter(|n| !n.is_empty()) {
        errs.extend(
            names::validate_subdomain(sa)
                .into_iter()
                .map(|m| FieldError::invalid(format!("{field}.serviceAccountName"), quote(sa), m)),
        );
    }
    if let Some(g) = spec.termination_grace_period_seconds {
        errs.extend(validate_nonnegative_field(g, &format!("{field}.terminationGracePeriodSeconds")));
    }
    if let Some(d) = spec.active_deadline_seconds {
        if !(1..=i64::from(i32::MAX)).contains(&d) {
            errs.push(FieldError::invalid(format!("{field}.activeDeadlineSeconds"), d, "must be between 1 and 2147483647, inclusive"));
        }
    }
    if let Some(h) = spec.hostname.as_deref().filter(|h| !h.is_empty()) {
        errs.extend(validate_dns1123_label(h, &format!("{field}.hostname")));
    }
    if let Some(s) = spec.subdomain.as_deref().filter(|s| !s.is_empty()) {
        errs.extend(validate_dns1123_label(s, &format!("{field}.subdomain")));
    }
    errs.extend(validate_labels(spec.node_selector.as_ref(), &format!("{field}.nodeSelector")));
    // On the host's network a container's port is the node's port.
    if spec.host_network == Some(true) {
        for (list, containers) in [("initContainers", init), ("containers", spec.containers.as_slice())] {
            for (i, c) in containers.iter().enumerate() {
                for (j, p) in c.ports.iter().flatten().enumerate() {
                    if p.host_port.is_some_and(|h| h != 0 && h != p.container_port) {
                        errs.push(FieldError::invalid(
                            format!("{field}.{list}[{i}].ports[{j}].hostPort"),
                            p.host_port.unwrap_or_default(),
                            "must match `containerPort` when `hostNetwork` is true",
                        ));
                    }
                }
            }
        }
    }
    for (i, t) in spec.tolerations.iter().flatten().enumerate() {
        errs.extend(validate_toleration(t, &format!("{field}.tolerations[{i}]")));
    }
    errs
}

fn validate_restart_policy(policy: Option<&str>, field: &str) -> ErrorList {
    match policy {
        Some("Always" | "OnFailure" | "Never") | None => Vec::new(),
        Some("") => vec![FieldError::required(field)],
        Some(other) => vec![FieldError::not_supported(field, quote(other), &["Always", "OnFailure", "Never"])],
    }
}

/// `validateTolerations`: a key is a qualified name; `Exists` takes no
/// value; the effect is a taint effect.
fn validate_toleration(t: &Toleration, field: &str) -> ErrorList {
    let mut errs = Vec::new();
    let key = t.key.as_deref().unwrap_or_default();
    if !key.is_empty() {
        errs.extend(names::validate_qualified_name(key).into_iter().map(|m| FieldError::invalid(format!("{field}.key"), quote(key), m)));
    }
    let operator = t.operator.as_deref().unwrap_or_default();
    if key.is_empty() && operator != "Exists" {
        errs.push(FieldError::invalid(
            format!("{field}.operator"),
            quote(operator),
            "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
        ));
    }
    match operator {
        "" | "Equal" => {}
        "Exists" => {
            if t.value.as_deref().is_some_and(|v| !v.is_empty()) {
                errs.push(FieldError::invalid(
                    format!("{field}.operator"),
                    quote(t.value.as_deref().unwrap_or_default()),
                    "value must be empty when `operator` is 'Exists'",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(format!("{field}.operator"), quote(other), &["Equal", "Exists"])),
    }
    errs.extend(one_of(
        t.effect.as_deref().filter(|e| !e.is_empty()),
        format!("{field}.effect"),
        &["NoSchedule", "PreferNoSchedule", "NoExecute"],
    ));
    errs
}

/// The volume sources in upstream's order (`validateVolumeSource`).
const VOLUME_SOURCES: &[&str] = &[
    "emptyDir",
    "hostPath",
    "gitRepo",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "flexVolume",
    "persistentVolumeClaim",
    "rbd",
    "cinder",
    "cephfs",
    "quobyte",
    "downwardAPI",
    "fc",
    "flocker",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "storageos",
    "configMap",
    "scaleIO",
    "projected",
    "csi",
    "ephemeral",
    "image",
];

/// `ValidateVolumes`: unique DNS-label names, each with exactly one
/// source. Returns the names, for the containers' mounts.
fn validate_volumes(volumes: &[Volume], field: &str) -> (ErrorList, BTreeSet<String>) {
    let mut errs = Vec::new();
    let mut names = BTreeSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let at = format!("{field}[{i}]");
        if v.name.is_empty() {
            errs.push(FieldError::required(format!("{at}.name")));
        } else {
            errs.extend(validate_dns1123_label(&v.name, &format!("{at}.name")));
            if !names.insert(v.name.clone()) {
                errs.push(FieldError::duplicate(format!("{at}.name"), quote(&v.name)));
            }
        }
        let json = serde_json::to_value(v).unwrap_or_default();
        let present: Vec<&str> = VOLUME_SOURCES.iter().copied().filter(|s| json.get(*s).is_some_and(|x| !x.is_null())).collect();
        errs.extend(validate_volume_source_fields(&json, &at));
        match present.as_slice() {
            [] => errs.push(FieldError::required_because(at.clone(), "must specify a volume type")),
            [_] => {}
            [_, more @ ..] => {
                for extra in more {
                    errs.push(FieldError::forbidden(format!("{at}.{extra}"), "may not specify more than 1 volume type"));
                }
            }
        }
    }
    (errs, names)
}

/// The field each common volume source cannot do without: the object it
/// mounts, or the path on the node.
fn validate_volume_source_fields(volume: &serde_json::Value, field: &str) -> ErrorList {
    let required = [
        ("configMap", "name"),
        ("secret", "secretName"),
        ("hostPath", "path"),
        ("persistentVolumeClaim", "claimName"),
        ("nfs", "path"),
        ("nfs", "server"),
    ];
    let mut errs = Vec::new();
    for (source, key) in required {
        let Some(src) = volume.get(source).filter(|s| s.is_object()) else { continue };
        if src.get(key).and_then(|v| v.as_str()).unwrap_or_default().is_empty() {
            errs.push(FieldError::required(format!("{field}.{source}.{key}")));
        }
    }
    errs
}

/// `validateContainers` (and `validateInitContainers`): unique DNS-label
/// names across both lists, an image, ports, environment, resources,
/// mounts of declared volumes, and probes (init containers have none).
fn validate_containers(
    containers: &[Container],
    field: &str,
    volumes: &BTreeSet<String>,
    seen: &mut BTreeSet<String>,
    init: bool,
) -> ErrorList {
    let mut errs = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let at = format!("{field}[{i}]");
        if c.name.is_empty() {
            errs.push(FieldError::required(format!("{at}.name")));
        } else {
            errs.extend(validate_dns1123_label(&c.name, &format!("{at}.name")));
            if !seen.insert(c.name.clone()) {
                errs.push(FieldError::duplicate(format!("{at}.name"), quote(&c.name)));
            }
        }
        if c.image.as_deref().unwrap_or_default().is_empty() {
            errs.push(FieldError::required(format!("{at}.image")));
        }
        errs.extend(validate_container_ports(c, &format!("{at}.ports")));
        errs.extend(validate_env(c, &format!("{at}.env")));
        errs.extend(validate_volume_mounts(c, &format!("{at}.volumeMounts"), volumes));
        if let Some(res) = &c.resources {
            errs.extend(validate_resource_requirements(res, &format!("{at}.resources")));
        }
        errs.extend(one_of(c.image_pull_policy.as_deref(), format!("{at}.imagePullPolicy"), &["Always", "IfNotPresent", "Never"]));
        errs.extend(one_of(
            c.termination_message_policy.as_deref(),
            format!("{at}.terminationMessagePolicy"),
            &["File", "FallbackToLogsOnError"],
        ));
        let probes = [("livenessProbe", &c.liveness_probe), ("readinessProbe", &c.readiness_probe), ("startupProbe", &c.startup_probe)];
        for (name, probe) in probes {
            let Some(probe) = probe else { continue };
            let path = format!("{at}.{name}");
            // A sidecar (an init container that restarts always) may probe.
            if init && c.restart_policy.as_deref() != Some("Always") {
                errs.push(FieldError::forbidden(path, "may not be set for init containers without restartPolicy=Always"));
                continue;
            }
            errs.extend(validate_probe(probe, &path, name));
        }
    }
    errs
}

fn validate_container_ports(c: &Container, field: &str) -> ErrorList {
    let mut errs = Vec::new();
    let mut names = BTreeSet::new();
    for (i, p) in c.ports.iter().flatten().enumerate() {
        let at = format!("{field}[{i}]");
        if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            let problems = names::validate_port_name(name);
            if !problems.is_empty() {
                errs.extend(problems.into_iter().map(|m| FieldError::invalid(format!("{at}.name"), quote(name), m)));
            } else if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(format!("{at}.name"), quote(name)));
            }
        }
        if p.container_port == 0 {
            errs.push(FieldError::required(format!("{at}.containerPort")));
        } else {
            errs.extend(
                names::validate_port_num(i64::from(p.container_port))
                    .into_iter()
                    .map(|m| FieldError::invalid(format!("{at}.containerPort"), p.container_port, m)),
            );
        }
        if let Some(h) = p.host_port.filter(|h| *h != 0) {
            errs.extend(names::validate_port_num(i64::from(h)).into_iter().map(|m| FieldError::invalid(format!("{at}.hostPort"), h, m)));
        }
        errs.extend(protocol(p.protocol.as_deref(), format!("{at}.protocol")));
    }
    errs
}

fn validate_env(c: &Container, field: &str) -> ErrorList {
    let mut errs = Vec::new();
    for (i, e) in c.env.iter().flatten().enumerate() {
        let at = format!("{field}[{i}]");
        if e.name.is_empty() {
            errs.push(FieldError::required(format!("{at}.name")));
        } else {
            errs.extend(
                names::validate_env_var_name(&e.name).into_iter().map(|m| FieldError::invalid(format!("{at}.name"), quote(&e.name), m)),
            );
        }
        if let Some(from) = &e.value_from {
            if e.value.as_deref().is_some_and(|v| !v.is_empty()) {
                errs.push(FieldError::invalid(format!("{at}.valueFrom"), quote(""), "may not be specified when `value` is not empty"));
            }
            let sources = [
                from.field_ref.is_some(),
                from.resource_field_ref.is_some(),
                from.config_map_key_ref.is_some(),
                from.secret_key_ref.is_some(),
            ];
            match sources.iter().filter(|s| **s).count() {
                0 => errs.push(FieldError::invalid(
                    format!("{at}.valueFrom"),
                    quote(""),
                    "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                )),
                1 => {}
                _ => errs.push(FieldError::invalid(
                    format!("{at}.valueFrom"),
                    quote(""),
                    "may not have more than one field specified at a time",
                )),
            }
        }
    }
    errs
}

fn validate_volume_mounts(c: &Container, field: &str, volumes: &BTreeSet<String>) -> ErrorList {
    let mut errs = Vec::new();
    let mut paths = BTreeSet::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let at = format!("{field}[{i}]");
        if m.name.is_empty() {
            errs.push(FieldError::required(format!("{at}.name")));
        } else if !volumes.contains(&m.name) {
            errs.push(FieldError::not_found(format!("{at}.name"), quote(&m.name)));
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(format!("{at}.mountPath")));
        } else if !paths.insert(m.mount_path.clone()) {
            errs.push(FieldError::invalid(format!("{at}.mountPath"), quote(&m.mount_path), "must be unique"));
        }
    }
    errs
}

/// Resources a container may ask for by a bare name
/// (`IsStandardContainerResourceName`).
fn is_standard_container_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-")
}

fn validate_container_resource_name(name: &str, field: &str) -> ErrorList {
    let mut errs: ErrorList =
        names::validate_qualified_name(name).into_iter().map(|m| FieldError::invalid(field, quote(name), m)).collect();
    if !name.contains('/') && !is_standard_container_resource(name) {
        errs.push(FieldError::invalid(field, quote(name), "must be a standard resource for containers"));
    }
    errs
}

/// `ValidateResourceRequirements`: known resource names, non-negative
/// amounts, and requests no larger than limits.
pub fn validate_resource_requirements(res: &ResourceRequirements, field: &str) -> ErrorList {
    let mut errs = Vec::new();
    let empty = BTreeMap::new();
    let limits = res.limits.as_ref().unwrap_or(&empty);
    let requests = res.requests.as_ref().unwrap_or(&empty);
    let millis = |q: &Quantity| api::quantity::cpu_millis(q).ok();
    let check = |name: &str, q: &Quantity, at: String, errs: &mut ErrorList| {
        errs.extend(validate_container_resource_name(name, &at));
        if millis(q).is_some_and(|m| m < 0) {
            errs.push(FieldError::invalid(at.clone(), quote(&q.0), "must be greater than or equal to 0"));
        }
        // Extended resources (`example.com/gpu`) come in whole units.
        if name.contains('/') && !name.starts_with("kubernetes.io/") && millis(q).is_some_and(|m| m % 1000 != 0) {
            errs.push(FieldError::invalid(at, quote(&q.0), "must be an integer"));
        }
    };
    for (name, q) in limits {
        check(name, q, format!("{field}.limits[{name}]"), &mut errs);
    }
    for (name, q) in requests {
        check(name, q, format!("{field}.requests[{name}]"), &mut errs);
        if let (Some(limit), Some(req)) = (limits.get(name), millis(q)) {
            if millis(limit).is_some_and(|l| req > l) {
                errs.push(FieldError::invalid(
                    format!("{field}.requests"),
                    quote(&q.0),
                    format!("must be less than or equal to {name} limit of {}", limit.0),
                ));
            }
        }
    }
    errs
}

/// `validateProbe`: exactly one handler, non-negative timings, and a
/// success threshold of 1 where only one success can count.
fn validate_probe(p: &Probe, field: &str, kind: &str) -> ErrorList {
    let mut errs = Vec::new();
    let handlers =
        [("exec", p.exec.is_some()), ("httpGet", p.http_get.is_some()), ("tcpSocket", p.tcp_socket.is_some()), ("grpc", p.grpc.is_some())];
    let present: Vec<&str> = handlers.iter().filter(|(_, set)| *set).map(|(n, _)| *n).collect();
    match present.as_slice() {
        [] => errs.push(FieldError::required_because(field, "must specify a handler type")),
        [_] => {}
        [_, more @ ..] => {
            for extra in more {
                errs.push(FieldError::forbidden(format!("{field}.{extra}"), "may not specify more than 1 handler type"));
            }
        }
    }
    if let Some(exec) = &p.exec {
        if exec.command.as_deref().unwrap_or_default().is_empty() {
            errs.push(FieldError::required(format!("{field}.exec.command")));
        }
    }
    if let Some(get) = &p.http_get {
        errs.extend(validate_port_num_or_name(&get.port, &format!("{field}.httpGet.port")));
        errs.extend(one_of(get.scheme.as_deref(), format!("{field}.httpGet.scheme"), &["HTTP", "HTTPS"]));
    }
    if let Some(tcp) = &p.tcp_socket {
        errs.extend(validate_port_num_or_name(&tcp.port, &format!("{field}.tcpSocket.port")));
    }
    if let Some(grpc) = &p.grpc {
        errs.extend(
            names::validate_port_num(i64::from(grpc.port))
                .into_iter()
                .map(|m| FieldError::invalid(format!("{field}.grpc.port"), grpc.port, m)),
        );
    }
    let timings = [
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("periodSeconds", p.period_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ];
    for (name, v) in timings {
        if let Some(v) = v {
            errs.extend(validate_nonnegative_field(i64::from(v), &format!("{field}.{name}")));
        }
    }
    if kind != "readinessProbe" {
        if let Some(s) = p.success_threshold.filter(|s| *s != 1) {
            errs.push(FieldError::invalid(format!("{field}.successThreshold"), s, "must be 1"));
        }
    } else if p.termination_grace_period_seconds.is_some() {
        errs.push(FieldError::invalid(
            format!("{field}.terminationGracePeriodSeconds"),
            p.termination_grace_period_seconds.unwrap_or_default(),
            "must not be set for readinessProbes",
        ));
    }
    errs
}

/// The fields a pod update may change, as upstream lists them.
const UPDATABLE_POD_SPEC_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,\
`spec.tolerations` (only additions to existing tolerations),\
`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// `ValidatePodUpdate`: a running pod is a promise to a node, so almost
/// nothing in its spec may change: images, a shorter deadline, more
/// tolerations. Everything else needs a new pod.
pub fn validate_pod_update(new: &Pod, old: &Pod) -> ErrorList {
    let (new, old) = (new.spec.clone().unwrap_or_default(), old.spec.clone().unwrap_or_default());
    let mut errs = Vec::new();
    for (list, n, o) in [
        ("containers", &new.containers, &old.containers),
        ("initContainers", &new.init_containers.clone().unwrap_or_default(), &old.init_containers.clone().unwrap_or_default()),
    ] {
        if n.len() != o.len() {
            errs.push(FieldError::forbidden(format!("spec.{list}"), "pod updates may not add or remove containers"));
            return errs;
        }
        for (i, c) in n.iter().enumerate() {
            if c.image.as_deref().unwrap_or_default().is_empty() {
                errs.push(FieldError::required(format!("spec.{list}[{i}].image")));
            }
        }
    }
    match (new.active_deadline_seconds, old.active_deadline_seconds) {
        (Some(n), _) if !(0..=i64::from(i32::MAX)).contains(&n) => {
            errs.push(FieldError::invalid("spec.activeDeadlineSeconds", n, "must be between 0 and 2147483647, inclusive"));
            return errs;
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(FieldError::invalid("spec.activeDeadlineSeconds", n, "must be less than or equal to previous value"));
            return errs;
        }
        (None, Some(_)) => {
            errs.push(FieldError::invalid("spec.activeDeadlineSeconds", "null", "must not update from a positive integer to nil value"))
        }
        _ => {}
    }
    let new_tolerations = new.tolerations.clone().unwrap_or_default();
    for old_t in old.tolerations.iter().flatten() {
        let kept = new_tolerations.iter().any(|t| {
            let mut t = t.clone();
            t.toleration_seconds = old_t.toleration_seconds;
            &t == old_t
        });
        if !kept {
            errs.push(FieldError::forbidden("spec.tolerations", "existing toleration can not be modified except its tolerationSeconds"));
            break;
        }
    }
    // Everything the update may change taken from the old pod, the rest
    // must be equal.
    let mut munged = new.clone();
    for (c, o) in munged.containers.iter_mut().zip(&old.containers) {
        c.image = o.image.clone();
    }
    for (c, o) in munged.init_containers.iter_mut().flatten().zip(old.init_containers.iter().flatten()) {
        c.image = o.image.clone();
    }
    munged.active_deadline_seconds = old.active_deadline_seconds;
    munged.tolerations = old.tolerations.clone();
    if old.termination_grace_period_seconds.is_some_and(|g| g < 0) && new.termination_grace_period_seconds == Some(1) {
        munged.termination_grace_period_seconds = old.termination_grace_period_seconds;
    }
    if munged != old {
        errs.push(FieldError::forbidden(
            "spec",
            format!("pod updates may not change fields other than {UPDATABLE_POD_SPEC_FIELDS}\n{}", spec_diff(&old, &munged)),
        ));
    }
    errs
}

/// What differs between two pod specs, one field per line, in the spirit
/// of the `cmp.Diff` upstream appends.
fn spec_diff(old: &PodSpec, new: &PodSpec) -> String {
    let (o, n) = (serde_json::to_value(old).unwrap_or_default(), serde_json::to_value(new).unwrap_or_default());
    let empty = serde_json::Map::new();
    let (o, n) = (o.as_object().unwrap_or(&empty), n.as_object().unwrap_or(&empty));
    let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    let mut out = String::from("  core.PodSpec{\n");
    for k in keys {
        if o.get(k) != n.get(k) {
            out.push_str(&format!("-   {k}: {}\n+   {k}: {}\n", super::shown(&o.get(k)), super::shown(&n.get(k))));
        }
    }
    out.push_str("  }\n");
    out
}

// ---------------------------------------------------------------------------
// Configuration.

/// `ValidateConfigMap`: keys that are safe file names, no key in both
/// `data` and `binaryData`, and at most 1 MiB in all.
pub fn validate_config_map(cm: &ConfigMap) -> ErrorList {
    let mut errs = Vec::new();
    let mut total = 0;
    let data = cm.data.clone().unwrap_or_default();
    let binary = cm.binary_data.clone().unwrap_or_default();
    for (k, v) in &data {
        errs.extend(names::validate_config_map_key(k).into_iter().map(|m| FieldError::invalid(format!("data[{k}]"), quote(k), m)));
        if binary.contains_key(k) {
            errs.push(FieldError::invalid(format!("data[{k}]"), quote(k), "duplicate of key present in binaryData"));
        }
        total += v.len();
    }
    for (k, v) in &binary {
        errs.extend(names::validate_config_map_key(k).into_iter().map(|m| FieldError::invalid(format!("binaryData[{k}]"), quote(k), m)));
        if data.contains_key(k) {
            errs.push(FieldError::invalid(format!("binaryData[{k}]"), quote(k), "duplicate of key present in data"));
        }
        total += v.0.len();
    }
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long("", MAX_SECRET_SIZE));
    }
    errs
}

/// `ValidateConfigMapUpdate`: an immutable ConfigMap stays as it is.
pub fn validate_config_map_update(new: &ConfigMap, old: &ConfigMap) -> ErrorList {
    let mut errs = Vec::new();
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            errs.push(FieldError::forbidden("immutable", "field is immutable when `immutable` is set"));
        }
        if new.data != old.data {
            errs.push(FieldError::forbidden("data", "field is immutable when `immutable` is set"));
        }
        if new.binary_data != old.binary_data {
            errs.push(FieldError::forbidden("binaryData", "field is immutable when `immutable` is set"));
        }
    }
    errs
}

/// The keys a typed Secret must carry (`ValidateSecret`).
fn required_secret_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        _ => &[],
    }
}

/// `ValidateSecret`: ConfigMap-style keys, 1 MiB, and what each type of
/// Secret needs (a registry config that is JSON, a TLS pair, ...).
/// `stringData` counts as `data`, as upstream folds it in on decoding.
pub fn validate_secret(secret: &Secret) -> ErrorList {
    let mut errs = Vec::new();
    let mut data: BTreeMap<String, Vec<u8>> = secret.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())).collect();
    for (k, v) in secret.string_data.iter().flatten() {
        data.insert(k.clone(), v.clone().into_bytes());
    }
    let mut total = 0;
    for (k, v) in &data {
        errs.extend(names::validate_config_map_key(k).into_iter().map(|m| FieldError::invalid(format!("data[{k}]"), quote(k), m)));
        total += v.len();
    }
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long("data", MAX_SECRET_SIZE));
    }
    let kind = secret.type_.as_deref().unwrap_or_default();
    match kind {
        "kubernetes.io/service-account-token" => {
            let name = secret.metadata.annotations.as_ref().and_then(|a| a.get("kubernetes.io/service-account.name"));
            if name.is_none_or(|n| n.is_empty()) {
                errs.push(FieldError::required("metadata.annotations[kubernetes.io/service-account.name]"));
            }
        }
        "kubernetes.io/basic-auth" if !data.contains_key("username") && !data.contains_key("password") => {
            errs.push(FieldError::required("data[username]"));
            errs.push(FieldError::required("data[password]"));
        }
        "kubernetes.io/ssh-auth" if data.get("ssh-privatekey").is_none_or(|v| v.is_empty()) => {
            errs.push(FieldError::required("data[ssh-privatekey]"));
        }
        _ => {
            for key in required_secret_keys(kind) {
                match data.get(*key) {
                    None => errs.push(FieldError::required(format!("data[{key}]"))),
                    Some(bytes) if key.starts_with(".docker") => {
                        if let Err(e) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(bytes) {
                            errs.push(FieldError::invalid(format!("data[{key}]"), "\"<secret contents redacted>\"", e.to_string()));
                        }
                    }
                    Some(_) => {}
                }
                if kind != "kubernetes.io/tls" && !data.contains_key(*key) {
                    break;
                }
            }
        }
    }
    errs
}

/// `ValidateSecretUpdate`: the type is fixed, and an immutable Secret stays.
pub fn validate_secret_update(new: &Secret, old: &Secret) -> ErrorList {
    let mut errs = validate_immutable_field(&new.type_.clone().unwrap_or_default(), &old.type_.clone().unwrap_or_default(), "type");
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            errs.push(FieldError::forbidden("immutable", "field is immutable when `immutable` is set"));
        }
        if new.data != old.data {
            errs.push(FieldError::forbidden("data", "field is immutable when `immutable` is set"));
        }
    }
    errs
}

// ---------------------------------------------------------------------------
// Services.

/// The node ports the api-server hands out (`--service-node-port-range`).
const NODE_PORT_RANGE: std::ops::RangeInclusive<i32> = 30000..=32767;

/// `ValidateService`: the type, ports with names (required once there are
/// several), numbers, protocols and target ports, and a selector of labels.
pub fn validate_service(svc: &Service) -> ErrorList {
    let Some(spec) = &svc.spec else { return vec![FieldError::required("spec")] };
    let mut errs = Vec::new();
    let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let ports = spec.ports.as_deref().unwrap_or_default();
    if ports.is_empty() && !headless && kind != "ExternalName" {
        errs.push(FieldError::required("spec.ports"));
    }
    let mut names = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let at = format!("spec.ports[{i}]");
        let name = p.name.as_deref().unwrap_or_default();
        if ports.len() > 1 && name.is_empty() {
            errs.push(FieldError::required(format!("{at}.name")));
        } else if !name.is_empty() {
            errs.extend(validate_dns1123_label(name, &format!("{at}.name")));
            if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(format!("{at}.name"), quote(name)));
            }
        }
        errs.extend(names::validate_port_num(i64::from(p.port)).into_iter().map(|m| FieldError::invalid(format!("{at}.port"), p.port, m)));
        errs.extend(protocol(p.protocol.as_deref(), format!("{at}.protocol")));
        if let Some(target) = &p.target_port {
            errs.extend(validate_port_num_or_name(target, &format!("{at}.targetPort")));
        }
        if let Some(node_port) = p.node_port.filter(|n| *n != 0) {
            if kind == "ClusterIP" {
                errs.push(FieldError::forbidden(format!("{at}.nodePort"), "may not be used when `type` is 'ClusterIP'"));
            } else if !NODE_PORT_RANGE.contains(&node_port) {
                errs.push(FieldError::invalid(
                    format!("{at}.nodePort"),
                    node_port,
                    "provided port is not in the valid range. The range of valid ports is 30000-32767",
                ));
            }
        }
    }
    errs.extend(one_of(Some(kind), "spec.type".into(), &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]));
    if kind == "ExternalName" && spec.external_name.as_deref().unwrap_or_default().is_empty() {
        errs.push(FieldError::required("spec.externalName"));
    }
    if kind != "ExternalName" {
        errs.extend(validate_labels(spec.selector.as_ref(), "spec.selector"));
    }
    errs.extend(one_of(spec.session_affinity.as_deref(), "spec.sessionAffinity".into(), &["ClientIP", "None"]));
    errs
}

// ---------------------------------------------------------------------------
// The cluster's own records.

/// `ValidateNamespace`: spec finalizers as metadata finalizers.
pub fn validate_namespace(ns: &Namespace) -> ErrorList {
    let finalizers = ns.spec.as_ref().and_then(|s| s.finalizers.clone()).unwrap_or_default();
    let mut errs = Vec::new();
    for (i, f) in finalizers.iter().enumerate() {
        errs.extend(
            names::validate_qualified_name(f).into_iter().map(|m| FieldError::invalid(format!("spec.finalizers[{i}]"), quote(f), m)),
        );
    }
    errs
}

/// `ValidateNode`: taints a scheduler can read, and pod ranges that are
/// ranges (at most one per IP family).
pub fn validate_node(node: &Node) -> ErrorList {
    let mut errs = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, t) in node.spec.iter().flat_map(|s| s.taints.iter().flatten()).enumerate() {
        let at = format!("spec.taints[{i}]");
        errs.extend(names::validate_qualified_name(&t.key).into_iter().map(|m| FieldError::invalid(format!("{at}.key"), quote(&t.key), m)));
        if let Some(v) = t.value.as_deref() {
            errs.extend(names::validate_label_value(v).into_iter().map(|m| FieldError::invalid(format!("{at}.value"), quote(v), m)));
        }
        if t.effect.is_empty() {
            errs.push(FieldError::required(format!("{at}.effect")));
        } else {
            errs.extend(one_of(Some(&t.effect), format!("{at}.effect"), &["NoSchedule", "PreferNoSchedule", "NoExecute"]));
        }
        if !seen.insert((t.key.clone(), t.effect.clone())) {
            errs.push(FieldError::duplicate(at, format!("{{{} {}}}", t.key, t.effect)));
        }
    }
    errs.extend(validate_pod_cidrs(node.spec.as_ref().and_then(|s| s.pod_cidrs.as_deref()).unwrap_or_default()));
    errs
}

/// The `spec.podCIDRs` rules of `ValidateNode`.
fn validate_pod_cidrs(cidrs: &[String]) -> ErrorList {
    let mut errs = Vec::new();
    let mut parsed = Vec::new();
    for (i, value) in cidrs.iter().enumerate() {
        match value.parse::<api::cidr::Cidr>() {
            Ok(c) => parsed.push(c),
            Err(_) => errs.push(FieldError::invalid(
                format!("spec.podCIDRs[{i}]"),
                quote(value),
                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            )),
        }
    }
    if cidrs.len() > 1 && errs.is_empty() {
        let dual_stack = parsed.iter().any(|c| c.bits() == 32) && parsed.iter().any(|c| c.bits() == 128);
        if !dual_stack || cidrs.len() > 2 {
            errs.push(FieldError::invalid("spec.podCIDRs", shown(&cidrs), "may specify no more than one CIDR for each IP family"));
        }
        let mut seen = BTreeSet::new();
        for (i, value) in cidrs.iter().enumerate() {
            if !seen.insert(value) {
                errs.push(FieldError::duplicate(format!("spec.podCIDRs[{i}]"), quote(value)));
            }
        }
    }
    errs
}

/// `ValidateNodeUpdate`: the node IPAM controller may give a node its pod
/// ranges once; after that they are fixed, since pods already have
/// addresses from them.
pub fn validate_node_update(new: &Node, old: &Node) -> ErrorList {
    let cidrs = |n: &Node| n.spec.as_ref().and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
    let (new_cidrs, old_cidrs) = (cidrs(new), cidrs(old));
    if !old_cidrs.is_empty() && new_cidrs != old_cidrs {
        return vec![FieldError::forbidden("spec.podCIDRs", "node updates may not change podCIDR except from \"\" to valid")];
    }
    Vec::new()
}

/// `ValidateEndpoints`: addresses are IPs, ports are named when there are
/// several, with valid numbers and protocols.
pub fn validate_endpoints(ep: &Endpoints) -> ErrorList {
    let mut errs = Vec::new();
    for (i, subset) in ep.subsets.iter().flatten().enumerate() {
        let at = format!("subsets[{i}]");
        for (list, addrs) in [("addresses", &subset.addresses), ("notReadyAddresses", &subset.not_ready_addresses)] {
            for (j, a) in addrs.iter().flatten().enumerate() {
                if a.ip.parse::<std::net::IpAddr>().is_err() {
                    errs.push(FieldError::invalid(
                        format!("{at}.{list}[{j}].ip"),
                        quote(&a.ip),
                        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                    ));
                }
            }
        }
        let ports = subset.ports.as_deref().unwrap_or_default();
        for (j, p) in ports.iter().enumerate() {
            let pat = format!("{at}.ports[{j}]");
            let name = p.name.as_deref().unwrap_or_default();
            if ports.len() > 1 && name.is_empty() {
                errs.push(FieldError::required(format!("{pat}.name")));
            } else if !name.is_empty() {
                errs.extend(validate_dns1123_label(name, &format!("{pat}.name")));
            }
            errs.extend(
                names::validate_port_num(i64::from(p.port)).into_iter().map(|m| FieldError::invalid(format!("{pat}.port"), p.port, m)),
            );
            errs.extend(protocol(p.protocol.as_deref(), format!("{pat}.protocol")));
        }
    }
    errs
}

/// `ValidateEventCreate` for the core/v1 Event: an event lives in the
/// namespace of the object it is about.
pub fn validate_event(ev: &Event) -> ErrorList {
    let mut errs = Vec::new();
    let ns = ev.metadata.namespace.as_deref().unwrap_or_default();
    let involved = ev.involved_object.namespace.as_deref().unwrap_or_default();
    if ev.event_time.is_none() {
        let mismatch = if involved.is_empty() { !ns.is_empty() && ns != "default" } else { ns != involved };
        if mismatch {
            errs.push(FieldError::invalid("involvedObject.namespace", quote(involved), "does not match event.namespace"));
        }
    }
    errs
}

/// `ValidateServiceAccount`: the secrets it lists are named objects.
pub fn validate_service_account(sa: &ServiceAccount) -> ErrorList {
    let mut errs = Vec::new();
    for (i, s) in sa.secrets.iter().flatten().enumerate() {
        let name = s.name.as_deref().unwrap_or_default();
        if !name.is_empty() {
            errs.extend(
                names::validate_subdomain(name).into_iter().map(|m| FieldError::invalid(format!("secrets[{i}].name"), quote(name), m)),
            );
        }
    }
    errs
}

/// A service's port may target a named container port (`targetPort: http`).
pub fn default_target_port(port: i32, target: &mut Option<IntOrString>) {
    let unset = match target {
        None => true,
        Some(IntOrString::Int(0)) => true,
        Some(IntOrString::String(s)) => s.is_empty(),
        Some(IntOrString::Int(_)) => false,
    };
    if unset {
        *target = Some(IntOrString::Int(port));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn messages(errs: ErrorList) -> Vec<String> {
        errs.iter().map(FieldError::to_string_with_field).collect()
    }

    fn pod(spec: Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    /// Each row: upstream's rule, a pod spec, and the messages it gets.
    #[test]
    fn validate_pod_spec_matches_upstream() {
        let c = |extra: Value| {
            let mut c = json!({"name": "c", "image": "busybox"});
            if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
                c.extend(e.clone());
            }
            json!({"containers": [c]})
        };
        let cases: Vec<(&str, Value, Vec<&str>)> = vec![
            ("a minimal pod", c(json!({})), vec![]),
            (
                "IsValidPortNum",
                c(json!({"ports": [{"containerPort": 70000, "protocol": "TCP"}]})),
                vec!["spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"],
            ),
            (
                "supportedPortProtocols",
                c(json!({"ports": [{"containerPort": 80, "hostPort": 70000, "protocol": "HTTP"}]})),
                vec![
                    "spec.containers[0].ports[0].hostPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                    "spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                ],
            ),
            ("image is required", json!({"containers": [{"name": "c"}]}), vec!["spec.containers[0].image: Required value"]),
            (
                "requests <= limits",
                c(json!({"resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "2"}}})),
                vec!["spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1"],
            ),
            (
                "standard resource names",
                c(json!({"resources": {"limits": {"gpu": "1"}}})),
                vec!["spec.containers[0].resources.limits[gpu]: Invalid value: \"gpu\": must be a standard resource for containers"],
            ),
            (
                "volumeMounts refer to volumes",
                c(json!({"volumeMounts": [{"name": "data", "mountPath": "/data"}]})),
                vec!["spec.containers[0].volumeMounts[0].name: Not found: \"data\""],
            ),
            (
                "one volume source",
                json!({"containers": [{"name": "c", "image": "i"}], "volumes": [{"name": "v"}, {"name": "w", "emptyDir": {}, "hostPath": {"path": "/"}}, {"name": "w", "emptyDir": {}}]}),
                vec![
                    "spec.volumes[0]: Required value: must specify a volume type",
                    "spec.volumes[1].hostPath: Forbidden: may not specify more than 1 volume type",
                    "spec.volumes[2].name: Duplicate value: \"w\"",
                ],
            ),
            (
                "volume sources name what they mount",
                json!({"containers": [{"name": "c", "image": "i"}], "volumes": [{"name": "v", "configMap": {}}]}),
                vec!["spec.volumes[0].configMap.name: Required value"],
            ),
            (
                "hostNetwork ports",
                json!({"hostNetwork": true, "containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}),
                vec!["spec.containers[0].ports[0].hostPort: Invalid value: 8080: must match `containerPort` when `hostNetwork` is true"],
            ),
            (
                "dnsPolicy",
                json!({"containers": [{"name": "c", "image": "i"}], "dnsPolicy": "Sometimes"}),
                vec!["spec.dnsPolicy: Unsupported value: \"Sometimes\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\""],
            ),
            (
                "activeDeadlineSeconds",
                json!({"containers": [{"name": "c", "image": "i"}], "activeDeadlineSeconds": 0}),
                vec!["spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"],
            ),
            (
                "nodeName is a subdomain",
                json!({"containers": [{"name": "c", "image": "i"}], "nodeName": "Node_1"}),
                vec!["spec.nodeName: Invalid value: \"Node_1\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"],
            ),
            (
                "probes need a handler",
                c(json!({"livenessProbe": {"periodSeconds": 5}})),
                vec!["spec.containers[0].livenessProbe: Required value: must specify a handler type"],
            ),
            (
                "env names",
                c(json!({"env": [{"name": "A=B"}]})),
                vec!["spec.containers[0].env[0].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='"],
            ),
        ];
        for (rule, spec, want) in cases {
            assert_eq!(messages(validate_pod(&pod(spec))), want, "{rule}");
        }
    }

    #[test]
    fn pod_updates_change_only_images_and_deadlines() {
        let old = pod(json!({"containers": [{"name": "c", "image": "a"}], "activeDeadlineSeconds": 10}));
        let image = pod(json!({"containers": [{"name": "c", "image": "b"}], "activeDeadlineSeconds": 5}));
        assert!(validate_pod_update(&image, &old).is_empty());
        let longer = pod(json!({"containers": [{"name": "c", "image": "a"}], "activeDeadlineSeconds": 20}));
        assert_eq!(
            messages(validate_pod_update(&longer, &old)),
            vec!["spec.activeDeadlineSeconds: Invalid value: 20: must be less than or equal to previous value"]
        );
        let more = pod(json!({"containers": [{"name": "c", "image": "a"}, {"name": "d", "image": "a"}], "activeDeadlineSeconds": 10}));
        assert_eq!(
            messages(validate_pod_update(&more, &old)),
            vec!["spec.containers: Forbidden: pod updates may not add or remove containers"]
        );
        let node = pod(json!({"containers": [{"name": "c", "image": "a"}], "activeDeadlineSeconds": 10, "nodeName": "n"}));
        let errs = validate_pod_update(&node, &old);
        assert!(errs[0].message.starts_with("Forbidden: pod updates may not change fields other than `spec.containers[*].image`"));
    }

    #[test]
    fn config_maps_and_secrets_match_upstream() {
        let cm: ConfigMap = serde_json::from_value(json!({"data": {"..": "x", "ok": "y"}, "binaryData": {"ok": "eQ=="}})).unwrap();
        assert_eq!(
            messages(validate_config_map(&cm)),
            vec![
                "data[..]: Invalid value: \"..\": must not be '..'",
                "data[ok]: Invalid value: \"ok\": duplicate of key present in binaryData",
                "binaryData[ok]: Invalid value: \"ok\": duplicate of key present in data",
            ]
        );
        let big: ConfigMap = serde_json::from_value(json!({"data": {"a": "x".repeat(MAX_SECRET_SIZE + 1)}})).unwrap();
        assert_eq!(messages(validate_config_map(&big)), vec![": Too long: must have at most 1048576 bytes"]);
        let tls: Secret = serde_json::from_value(json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}})).unwrap();
        assert_eq!(messages(validate_secret(&tls)), vec!["data[tls.key]: Required value"]);
        let old: Secret = serde_json::from_value(json!({"type": "Opaque"})).unwrap();
        assert_eq!(messages(validate_secret_update(&tls, &old)), vec!["type: Invalid value: \"kubernetes.io/tls\": field is immutable"]);
    }

    #[test]
    fn services_match_upstream() {
        let svc: Service = serde_json::from_value(json!({"spec": {"type": "NodePort", "ports": [
            {"port": 80, "protocol": "TCP", "targetPort": 8080},
            {"name": "b", "port": 70000, "protocol": "TCP", "targetPort": "Bad_Name", "nodePort": 80},
        ]}}))
        .unwrap();
        assert_eq!(
            messages(validate_service(&svc)),
            vec![
                "spec.ports[0].name: Required value",
                "spec.ports[1].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.ports[1].targetPort: Invalid value: \"Bad_Name\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "spec.ports[1].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767",
            ]
        );
        let odd: Service = serde_json::from_value(json!({"spec": {"type": "Magic", "ports": [{"port": 1, "protocol": "TCP"}]}})).unwrap();
        assert_eq!(
            messages(validate_service(&odd)),
            vec!["spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""]
        );
    }

    /// The cluster's own records, one row per rule.
    #[test]
    fn records_match_upstream() {
        let ev: Event = serde_json::from_value(
            json!({"metadata": {"name": "e", "namespace": "default"}, "involvedObject": {"kind": "Pod", "namespace": "other"}}),
        )
        .unwrap();
        assert_eq!(
            messages(validate_event(&ev)),
            vec!["involvedObject.namespace: Invalid value: \"other\": does not match event.namespace"]
        );
        let node_event: Event =
            serde_json::from_value(json!({"metadata": {"name": "e", "namespace": "default"}, "involvedObject": {"kind": "Node"}})).unwrap();
        assert!(validate_event(&node_event).is_empty());
        let ep: Endpoints = serde_json::from_value(
            json!({"subsets": [{"addresses": [{"ip": "10.0.0.300"}], "ports": [{"port": 80}, {"name": "b", "port": 0}]}]}),
        )
        .unwrap();
        assert_eq!(
            messages(validate_endpoints(&ep)),
            vec![
                "subsets[0].addresses[0].ip: Invalid value: \"10.0.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                "subsets[0].ports[0].name: Required value",
                "subsets[0].ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            ]
        );
        let node: Node = serde_json::from_value(json!({"spec": {"taints": [{"key": "k", "effect": "Sometimes"}]}})).unwrap();
        assert_eq!(
            messages(validate_node(&node)),
            vec!["spec.taints[0].effect: Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""]
        );
        let node = |spec: serde_json::Value| -> Node { serde_json::from_value(json!({"spec": spec})).unwrap() };
        let cidr_cases = [
            (json!({"podCIDRs": ["10.244.1.0/24"]}), vec![]),
            (json!({"podCIDRs": ["10.244.1.0/24", "fd00:1::/64"]}), vec![]),
            (
                json!({"podCIDRs": ["10.244.1"]}),
                vec!["spec.podCIDRs[0]: Invalid value: \"10.244.1\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"],
            ),
            (
                json!({"podCIDRs": ["10.244.1.0/24", "10.244.2.0/24"]}),
                vec!["spec.podCIDRs: Invalid value: [\"10.244.1.0/24\",\"10.244.2.0/24\"]: may specify no more than one CIDR for each IP family"],
            ),
        ];
        for (spec, want) in cidr_cases {
            assert_eq!(messages(validate_node(&node(spec.clone()))), want, "{spec}");
        }
        let (unset, one, other) =
            (node(json!({})), node(json!({"podCIDRs": ["10.244.1.0/24"]})), node(json!({"podCIDRs": ["10.244.2.0/24"]})));
        assert!(validate_node_update(&one, &unset).is_empty(), "from nothing to a range");
        assert!(validate_node_update(&one, &one).is_empty());
        let forbidden = "spec.podCIDRs: Forbidden: node updates may not change podCIDR except from \"\" to valid";
        assert_eq!(messages(validate_node_update(&other, &one)), vec![forbidden]);
        assert_eq!(messages(validate_node_update(&unset, &one)), vec![forbidden], "nor back to nothing");
        let lease: k8s_openapi::api::coordination::v1::Lease =
            serde_json::from_value(json!({"spec": {"leaseDurationSeconds": 0}})).unwrap();
        assert_eq!(
            messages(crate::validation::coordination::validate_lease(&lease)),
            vec!["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]
        );
    }
}
