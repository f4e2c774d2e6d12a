//! The schema of the Kubernetes objects tinykube decodes from protobuf.
//!
//! One [`Message`] per protobuf message, with upstream's field numbers and
//! names from the `generated.proto` files of Kubernetes 1.32
//! (`k8s.io/api/<group>/<version>`, `k8s.io/apimachinery/pkg/apis/meta/v1`,
//! `.../api/resource`, `.../util/intstr`): every message that a kind
//! tinykube serves reaches, and nothing else. The protobuf names are the
//! JSON names (upstream generates the `.proto` from the Go struct tags), so
//! a field's `name` is both.
//!
//! What the `.proto` files do not say, and the JSON form needs, comes from
//! the Go types (`types.go`) and is written into the constructor each field
//! uses:
//! - [`opt`]: a Go value field tagged `omitempty`. gogo-protobuf writes such
//!   fields even when empty, so a zero (`""`, `0`, `false`) on the wire
//!   means "not set" and is left out, as Go's JSON encoder leaves it out.
//!   For a message, being on the wire is what counts: Go's encoder never
//!   leaves out a struct (`"resources": {}`, `"status": {}`).
//! - [`keep`]: a Go pointer (`*int32 replicas`: `0` is a choice) or a field
//!   without `omitempty` (`containerPort`): written even when zero.
//! - [`rep`] and [`map`]: repeated fields and proto maps (`map<string, V>`,
//!   on the wire a repeated `{key = 1, value = 2}` entry).
//! - [`inline`]: a Go struct embedded with `json:",inline"` — a message of
//!   its own in protobuf (`Volume.volumeSource = 2`), its fields spliced
//!   into the parent in JSON.
//!
//! Messages whose JSON is not an object have a [`Form`] instead:
//! `metav1.Time`, `MicroTime`, `resource.Quantity`, `intstr.IntOrString`
//! and `FieldsV1`.
//!
//! Upstream adds fields with every release; adding one here is one entry,
//! and the tests check every table against the `k8s-openapi` types.

/// A protobuf message and how its JSON looks.
#[derive(Debug)]
pub struct Message {
    /// The upstream message name, for errors: `Container`.
    pub name: &'static str,
    pub form: Form,
    /// Sorted by field number.
    pub fields: &'static [Field],
}

/// The JSON shape of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A JSON object with one key per field.
    Object,
    /// `metav1.Time {seconds, nanos}`: RFC 3339 to the second, and `null`
    /// when empty (Go's zero time marshals to no bytes at all).
    Time,
    /// `metav1.MicroTime {seconds, nanos}`: RFC 3339 to the microsecond.
    MicroTime,
    /// `resource.Quantity {string}`: the quantity's canonical string.
    Quantity,
    /// `intstr.IntOrString {type, intVal, strVal}`: a number when `type`
    /// is 0, a string when it is 1.
    IntOrString,
    /// `metav1.FieldsV1 {Raw}`: bytes that are themselves JSON.
    RawJson,
}

/// One field of a message.
#[derive(Debug)]
pub struct Field {
    pub number: u32,
    pub name: &'static str,
    /// The element type of a repeated field, the value type of a map.
    pub ty: Type,
    pub card: Card,
}

/// A field's protobuf type. Kubernetes uses no enums, no unsigned or
/// zig-zag integers, and (in the kinds decoded here) no floating point.
#[derive(Debug, Clone, Copy)]
pub enum Type {
    Str,
    Bytes,
    Bool,
    I32,
    I64,
    Msg(&'static Message),
}

/// How a field appears on the wire and in JSON; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Card {
    /// Left out of the JSON when zero.
    Omitempty,
    /// Kept in the JSON even when zero.
    Keep,
    Repeated,
    /// `map<string, ty>`.
    Map,
    /// A message whose fields join the parent's JSON object.
    Inline,
}

const fn field(number: u32, name: &'static str, ty: Type, card: Card) -> Field {
    Field { number, name, ty, card }
}
const fn opt(number: u32, name: &'static str, ty: Type) -> Field {
    field(number, name, ty, Card::Omitempty)
}
const fn keep(number: u32, name: &'static str, ty: Type) -> Field {
    field(number, name, ty, Card::Keep)
}
const fn rep(number: u32, name: &'static str, ty: Type) -> Field {
    field(number, name, ty, Card::Repeated)
}
const fn map(number: u32, name: &'static str, value: Type) -> Field {
    field(number, name, value, Card::Map)
}
const fn inline(number: u32, name: &'static str, ty: Type) -> Field {
    field(number, name, ty, Card::Inline)
}
const fn object(name: &'static str, fields: &'static [Field]) -> Message {
    Message { name, form: Form::Object, fields }
}
const fn special(name: &'static str, form: Form, fields: &'static [Field]) -> Message {
    Message { name, form, fields }
}

use Type::{Bool, Bytes, Msg, Str, I32, I64};

/// The top-level kinds: `(apiVersion, kind, message)`. Every kind in
/// [`api::resources::RESOURCES`], plus `Binding` (`pods/binding`) and
/// `autoscaling/v1` `Scale` (the scale subresource).
pub const KINDS: &[(&str, &str, &Message)] = &[
    ("v1", "Pod", &POD),
    ("v1", "Node", &NODE),
    ("v1", "Namespace", &NAMESPACE),
    ("v1", "Event", &EVENT),
    ("v1", "Service", &SERVICE),
    ("v1", "Endpoints", &ENDPOINTS),
    ("v1", "ConfigMap", &CONFIG_MAP),
    ("v1", "Secret", &SECRET),
    ("v1", "ServiceAccount", &SERVICE_ACCOUNT),
    ("v1", "Binding", &BINDING),
    ("apps/v1", "Deployment", &DEPLOYMENT),
    ("apps/v1", "ReplicaSet", &REPLICA_SET),
    ("apps/v1", "DaemonSet", &DAEMON_SET),
    ("apps/v1", "StatefulSet", &STATEFUL_SET),
    ("batch/v1", "Job", &JOB),
    ("coordination.k8s.io/v1", "Lease", &LEASE),
    ("certificates.k8s.io/v1", "CertificateSigningRequest", &CERTIFICATE_SIGNING_REQUEST),
    ("autoscaling/v1", "Scale", &SCALE),
];

/// The message of a top-level kind, if tinykube decodes it.
pub fn kind(api_version: &str, kind: &str) -> Option<&'static Message> {
    KINDS.iter().find(|(v, k, _)| *v == api_version && *k == kind).map(|(_, _, m)| *m)
}

// -------------------- meta/v1 (k8s.io/apimachinery/pkg/apis/meta/v1)

static CONDITION: Message = object(
    "Condition",
    &[
        keep(1, "type", Str),
        keep(2, "status", Str),
        opt(3, "observedGeneration", I64),
        opt(4, "lastTransitionTime", Msg(&TIME)),
        keep(5, "reason", Str),
        keep(6, "message", Str),
    ],
);
static FIELDS_V1: Message = special("FieldsV1", Form::RawJson, &[keep(1, "Raw", Bytes)]);
static LABEL_SELECTOR: Message =
    object("LabelSelector", &[map(1, "matchLabels", Str), rep(2, "matchExpressions", Msg(&LABEL_SELECTOR_REQUIREMENT))]);
static LABEL_SELECTOR_REQUIREMENT: Message =
    object("LabelSelectorRequirement", &[keep(1, "key", Str), keep(2, "operator", Str), rep(3, "values", Str)]);
static MANAGED_FIELDS_ENTRY: Message = object(
    "ManagedFieldsEntry",
    &[
        opt(1, "manager", Str),
        opt(2, "operation", Str),
        opt(3, "apiVersion", Str),
        opt(4, "time", Msg(&TIME)),
        opt(6, "fieldsType", Str),
        opt(7, "fieldsV1", Msg(&FIELDS_V1)),
        opt(8, "subresource", Str),
    ],
);
static MICRO_TIME: Message = special("MicroTime", Form::MicroTime, &[keep(1, "seconds", I64), keep(2, "nanos", I32)]);
static OBJECT_META: Message = object(
    "ObjectMeta",
    &[
        opt(1, "name", Str),
        opt(2, "generateName", Str),
        opt(3, "namespace", Str),
        opt(4, "selfLink", Str),
        opt(5, "uid", Str),
        opt(6, "resourceVersion", Str),
        opt(7, "generation", I64),
        opt(8, "creationTimestamp", Msg(&TIME)),
        opt(9, "deletionTimestamp", Msg(&TIME)),
        keep(10, "deletionGracePeriodSeconds", I64),
        map(11, "labels", Str),
        map(12, "annotations", Str),
        rep(13, "ownerReferences", Msg(&OWNER_REFERENCE)),
        rep(14, "finalizers", Str),
        rep(17, "managedFields", Msg(&MANAGED_FIELDS_ENTRY)),
    ],
);
static OWNER_REFERENCE: Message = object(
    "OwnerReference",
    &[
        keep(1, "kind", Str),
        keep(3, "name", Str),
        keep(4, "uid", Str),
        keep(5, "apiVersion", Str),
        keep(6, "controller", Bool),
        keep(7, "blockOwnerDeletion", Bool),
    ],
);
static TIME: Message = special("Time", Form::Time, &[keep(1, "seconds", I64), keep(2, "nanos", I32)]);

// -------------------- resource (k8s.io/apimachinery/pkg/api/resource)

static QUANTITY: Message = special("Quantity", Form::Quantity, &[keep(1, "string", Str)]);

// -------------------- intstr (k8s.io/apimachinery/pkg/util/intstr)

static INT_OR_STRING: Message =
    special("IntOrString", Form::IntOrString, &[keep(1, "type", I64), keep(2, "intVal", I32), keep(3, "strVal", Str)]);

// -------------------- core/v1 (k8s.io/api/core/v1)

static AWS_ELASTIC_BLOCK_STORE_VOLUME_SOURCE: Message = object(
    "AWSElasticBlockStoreVolumeSource",
    &[keep(1, "volumeID", Str), opt(2, "fsType", Str), opt(3, "partition", I32), opt(4, "readOnly", Bool)],
);
static AFFINITY: Message = object(
    "Affinity",
    &[
        opt(1, "nodeAffinity", Msg(&NODE_AFFINITY)),
        opt(2, "podAffinity", Msg(&POD_AFFINITY)),
        opt(3, "podAntiAffinity", Msg(&POD_ANTI_AFFINITY)),
    ],
);
static APP_ARMOR_PROFILE: Message = object("AppArmorProfile", &[keep(1, "type", Str), keep(2, "localhostProfile", Str)]);
static ATTACHED_VOLUME: Message = object("AttachedVolume", &[keep(1, "name", Str), keep(2, "devicePath", Str)]);
static AZURE_DISK_VOLUME_SOURCE: Message = object(
    "AzureDiskVolumeSource",
    &[
        keep(1, "diskName", Str),
        keep(2, "diskURI", Str),
        keep(3, "cachingMode", Str),
        keep(4, "fsType", Str),
        keep(5, "readOnly", Bool),
        keep(6, "kind", Str),
    ],
);
static AZURE_FILE_VOLUME_SOURCE: Message =
    object("AzureFileVolumeSource", &[keep(1, "secretName", Str), keep(2, "shareName", Str), opt(3, "readOnly", Bool)]);
static BINDING: Message = object("Binding", &[opt(1, "metadata", Msg(&OBJECT_META)), opt(2, "target", Msg(&OBJECT_REFERENCE))]);
static CSI_VOLUME_SOURCE: Message = object(
    "CSIVolumeSource",
    &[
        keep(1, "driver", Str),
        keep(2, "readOnly", Bool),
        keep(3, "fsType", Str),
        map(4, "volumeAttributes", Str),
        opt(5, "nodePublishSecretRef", Msg(&LOCAL_OBJECT_REFERENCE)),
    ],
);
static CAPABILITIES: Message = object("Capabilities", &[rep(1, "add", Str), rep(2, "drop", Str)]);
static CEPH_FS_VOLUME_SOURCE: Message = object(
    "CephFSVolumeSource",
    &[
        rep(1, "monitors", Str),
        opt(2, "path", Str),
        opt(3, "user", Str),
        opt(4, "secretFile", Str),
        opt(5, "secretRef", Msg(&LOCAL_OBJECT_REFERENCE)),
        opt(6, "readOnly", Bool),
    ],
);
static CINDER_VOLUME_SOURCE: Message = object(
    "CinderVolumeSource",
    &[keep(1, "volumeID", Str), opt(2, "fsType", Str), opt(3, "readOnly", Bool), opt(4, "secretRef", Msg(&LOCAL_OBJECT_REFERENCE))],
);
static CLIENT_IP_CONFIG: Message = object("ClientIPConfig", &[keep(1, "timeoutSeconds", I32)]);
static CLUSTER_TRUST_BUNDLE_PROJECTION: Message = object(
    "ClusterTrustBundleProjection",
    &[
        keep(1, "name", Str),
        keep(2, "signerName", Str),
        opt(3, "labelSelector", Msg(&LABEL_SELECTOR)),
        keep(4, "path", Str),
        keep(5, "optional", Bool),
    ],
);
static CONFIG_MAP: Message = object(
    "ConfigMap",
    &[opt(1, "metadata", Msg(&OBJECT_META)), map(2, "data", Str), map(3, "binaryData", Bytes), keep(4, "immutable", Bool)],
);
static CONFIG_MAP_ENV_SOURCE: Message =
    object("ConfigMapEnvSource", &[inline(1, "localObjectReference", Msg(&LOCAL_OBJECT_REFERENCE)), keep(2, "optional", Bool)]);
static CONFIG_MAP_KEY_SELECTOR: Message = object(
    "ConfigMapKeySelector",
    &[inline(1, "localObjectReference", Msg(&LOCAL_OBJECT_REFERENCE)), keep(2, "key", Str), keep(3, "optional", Bool)],
);
static CONFIG_MAP_NODE_CONFIG_SOURCE: Message = object(
    "ConfigMapNodeConfigSource",
    &[
        keep(1, "namespace", Str),
        keep(2, "name", Str),
        opt(3, "uid", Str),
        opt(4, "resourceVersion", Str),
        keep(5, "kubeletConfigKey", Str),
    ],
);
static CONFIG_MAP_PROJECTION: Message = object(
    "ConfigMapProjection",
    &[inline(1, "localObjectReference", Msg(&LOCAL_OBJECT_REFERENCE)), rep(2, "items", Msg(&KEY_TO_PATH)), keep(4, "optional", Bool)],
);
static CONFIG_MAP_VOLUME_SOURCE: Message = object(
    "ConfigMapVolumeSource",
    &[
        inline(1, "localObjectReference", Msg(&LOCAL_OBJECT_REFERENCE)),
        rep(2, "items", Msg(&KEY_TO_PATH)),
        keep(3, "defaultMode", I32),
        keep(4, "optional", Bool),
    ],
);
static CONTAINER: Message = object(
    "Container",
    &[
        keep(1, "name", Str),
        opt(2, "image", Str),
        rep(3, "command", Str),
        rep(4, "args", Str),
        opt(5, "workingDir", Str),
        rep(6, "ports", Msg(&CONTAINER_PORT)),
        rep(7, "env", Msg(&ENV_VAR)),
        opt(8, "resources", Msg(&RESOURCE_REQUIREMENTS)),
        rep(9, "volumeMounts", Msg(&VOLUME_MOUNT)),
        opt(10, "livenessProbe", Msg(&PROBE)),
        opt(11, "readinessProbe", Msg(&PROBE)),
        opt(12, "lifecycle", Msg(&LIFECYCLE)),
        opt(13, "terminationMessagePath", Str),
        opt(14, "imagePullPolicy", Str),
        opt(15, "securityContext", Msg(&SECURITY_CONTEXT)),
        opt(16, "stdin", Bool),
        opt(17, "stdinOnce", Bool),
        opt(18, "tty", Bool),
        rep(19, "envFrom", Msg(&ENV_FROM_SOURCE)),
        opt(20, "terminationMessagePolicy", Str),
        rep(21, "volumeDevices", Msg(&VOLUME_DEVICE)),
        opt(22, "startupProbe", Msg(&PROBE)),
        rep(23, "resizePolicy", Msg(&CONTAINER_RESIZE_POLICY)),
        keep(24, "restartPolicy", Str),
    ],
);
static CONTAINER_IMAGE: Message = object("ContainerImage", &[rep(1, "names", Str), opt(2, "sizeBytes", I64)]);
static CONTAINER_PORT: Message = object(
    "ContainerPort",
    &[opt(1, "name", Str), opt(2, "hostPort", I32), keep(3, "containerPort", I32), opt(4, "protocol", Str), opt(5, "hostIP", Str)],
);
static CONTAINER_RESIZE_POLICY: Message = object("ContainerResizePolicy", &[keep(1, "resourceName", Str), keep(2, "restartPolicy", Str)]);
static CONTAINER_STATE: Message = object(
    "ContainerState",
    &[
        opt(1, "waiting", Msg(&CONTAINER_STATE_WAITING)),
        opt(2, "running", Msg(&CONTAINER_STATE_RUNNING)),
        opt(3, "terminated", Msg(&CONTAINER_STATE_TERMINATED)),
    ],
);
static CONTAINER_STATE_RUNNING: Message = object("ContainerStateRunning", &[opt(1, "startedAt", Msg(&TIME))]);
static CONTAINER_STATE_TERMINATED: Message = object(
    "ContainerStateTerminated",
    &[
        keep(1, "exitCode", I32),
        opt(2, "signal", I32),
        opt(3, "reason", Str),
        opt(4, "message", Str),
        opt(5, "startedAt", Msg(&TIME)),
        opt(6, "finishedAt", Msg(&TIME)),
        opt(7, "containerID", Str),
    ],
);
static CONTAINER_STATE_WAITING: Message = object("ContainerStateWaiting", &[opt(1, "reason", Str), opt(2, "message", Str)]);
static CONTAINER_STATUS: Message = object(
    "ContainerStatus",
    &[
        keep(1, "name", Str),
        opt(2, "state", Msg(&CONTAINER_STATE)),
        opt(3, "lastState", Msg(&CONTAINER_STATE)),
        keep(4, "ready", Bool),
        keep(5, "restartCount", I32),
        keep(6, "image", Str),
        keep(7, "imageID", Str),
        opt(8, "containerID", Str),
        keep(9, "started", Bool),
        map(10, "allocatedResources", Msg(&QUANTITY)),
        opt(11, "resources", Msg(&RESOURCE_REQUIREMENTS)),
        rep(12, "volumeMounts", Msg(&VOLUME_MOUNT_STATUS)),
        opt(13, "user", Msg(&CONTAINER_USER)),
        rep(14, "allocatedResourcesStatus", Msg(&RESOURCE_STATUS)),
    ],
);
static CONTAINER_USER: Message = object("ContainerUser", &[opt(1, "linux", Msg(&LINUX_CONTAINER_USER))]);
static DAEMON_ENDPOINT: Message = object("DaemonEndpoint", &[keep(1, "Port", I32)]);
static DOWNWARD_API_PROJECTION: Message = object("DownwardAPIProjection", &[rep(1, "items", Msg(&DOWNWARD_API_VOLUME_FILE))]);
static DOWNWARD_API_VOLUME_FILE: Message = object(
    "DownwardAPIVolumeFile",
    &[
        keep(1, "path", Str),
        opt(2, "fieldRef", Msg(&OBJECT_FIELD_SELECTOR)),
        opt(3, "resourceFieldRef", Msg(&RESOURCE_FIELD_SELECTOR)),
        keep(4, "mode", I32),
    ],
);
static DOWNWARD_API_VOLUME_SOURCE: Message =
    object("DownwardAPIVolumeSource", &[rep(1, "items", Msg(&DOWNWARD_API_VOLUME_FILE)), keep(2, "defaultMode", I32)]);
static EMPTY_DIR_VOLUME_SOURCE: Message = object("EmptyDirVolumeSource", &[opt(1, "medium", Str), opt(2, "sizeLimit", Msg(&QUANTITY))]);
static ENDPOINT_ADDRESS: Message = object(
    "EndpointAddress",
    &[keep(1, "ip", Str), opt(2, "targetRef", Msg(&OBJECT_REFERENCE)), opt(3, "hostname", Str), keep(4, "nodeName", Str)],
);
static ENDPOINT_PORT: Message =
    object("EndpointPort", &[opt(1, "name", Str), keep(2, "port", I32), opt(3, "protocol", Str), keep(4, "appProtocol", Str)]);
static ENDPOINT_SUBSET: Message = object(
    "EndpointSubset",
    &[
        rep(1, "addresses", Msg(&ENDPOINT_ADDRESS)),
        rep(2, "notReadyAddresses", Msg(&ENDPOINT_ADDRESS)),
        rep(3, "ports", Msg(&ENDPOINT_PORT)),
    ],
);
static ENDPOINTS: Message = object("Endpoints", &[opt(1, "metadata", Msg(&OBJECT_META)), rep(2, "subsets", Msg(&ENDPOINT_SUBSET))]);
static ENV_FROM_SOURCE: Message = object(
    "EnvFromSource",
    &[opt(1, "prefix", Str), opt(2, "configMapRef", Msg(&CONFIG_MAP_ENV_SOURCE)), opt(3, "secretRef", Msg(&SECRET_ENV_SOURCE))],
);
static ENV_VAR: Message = object("EnvVar", &[keep(1, "name", Str), opt(2, "value", Str), opt(3, "valueFrom", Msg(&ENV_VAR_SOURCE))]);
static ENV_VAR_SOURCE: Message = object(
    "EnvVarSource",
    &[
        opt(1, "fieldRef", Msg(&OBJECT_FIELD_SELECTOR)),
        opt(2, "resourceFieldRef", Msg(&RESOURCE_FIELD_SELECTOR)),
        opt(3, "configMapKeyRef", Msg(&CONFIG_MAP_KEY_SELECTOR)),
        opt(4, "secretKeyRef", Msg(&SECRET_KEY_SELECTOR)),
    ],
);
static EPHEMERAL_CONTAINER: Message = object(
    "EphemeralContainer",
    &[inline(1, "ephemeralContainerCommon", Msg(&EPHEMERAL_CONTAINER_COMMON)), opt(2, "targetContainerName", Str)],
);
static EPHEMERAL_CONTAINER_COMMON: Message = object(
    "EphemeralContainerCommon",
    &[
        keep(1, "name", Str),
        opt(2, "image", Str),
        rep(3, "command", Str),
        rep(4, "args", Str),
        opt(5, "workingDir", Str),
        rep(6, "ports", Msg(&CONTAINER_PORT)),
        rep(7, "env", Msg(&ENV_VAR)),
        opt(8, "resources", Msg(&RESOURCE_REQUIREMENTS)),
        rep(9, "volumeMounts", Msg(&VOLUME_MOUNT)),
        opt(10, "livenessProbe", Msg(&PROBE)),
        opt(11, "readinessProbe", Msg(&PROBE)),
        opt(12, "lifecycle", Msg(&LIFECYCLE)),
        opt(13, "terminationMessagePath", Str),
        opt(14, "imagePullPolicy", Str),
        opt(15, "securityContext", Msg(&SECURITY_CONTEXT)),
        opt(16, "stdin", Bool),
        opt(17, "stdinOnce", Bool),
        opt(18, "tty", Bool),
        rep(19, "envFrom", Msg(&ENV_FROM_SOURCE)),
        opt(20, "terminationMessagePolicy", Str),
        rep(21, "volumeDevices", Msg(&VOLUME_DEVICE)),
        opt(22, "startupProbe", Msg(&PROBE)),
        rep(23, "resizePolicy", Msg(&CONTAINER_RESIZE_POLICY)),
        keep(24, "restartPolicy", Str),
    ],
);
static EPHEMERAL_VOLUME_SOURCE: Message =
    object("EphemeralVolumeSource", &[opt(1, "volumeClaimTemplate", Msg(&PERSISTENT_VOLUME_CLAIM_TEMPLATE))]);
static EVENT: Message = object(
    "Event",
    &[
        opt(1, "metadata", Msg(&OBJECT_META)),
        opt(2, "involvedObject", Msg(&OBJECT_REFERENCE)),
        opt(3, "reason", Str),
        opt(4, "message", Str),
        opt(5, "source", Msg(&EVENT_SOURCE)),
        opt(6, "firstTimestamp", Msg(&TIME)),
        opt(7, "lastTimestamp", Msg(&TIME)),
        opt(8, "count", I32),
        opt(9, "type", Str),
        opt(10, "eventTime", Msg(&MICRO_TIME)),
        opt(11, "series", Msg(&EVENT_SERIES)),
        opt(12, "action", Str),
        opt(13, "related", Msg(&OBJECT_REFERENCE)),
        keep(14, "reportingComponent", Str),
        keep(15, "reportingInstance", Str),
    ],
);
static EVENT_SERIES: Message = object("EventSeries", &[opt(1, "count", I32), opt(2, "lastObservedTime", Msg(&MICRO_TIME))]);
static EVENT_SOURCE: Message = object("EventSource", &[opt(1, "component", Str), opt(2, "host", Str)]);
static EXEC_ACTION: Message = object("ExecAction", &[rep(1, "command", Str)]);
static FC_VOLUME_SOURCE: Message = object(
    "FCVolumeSource",
    &[rep(1, "targetWWNs", Str), keep(2, "lun", I32), opt(3, "fsType", Str), opt(4, "readOnly", Bool), rep(5, "wwids", Str)],
);
static FLEX_VOLUME_SOURCE: Message = object(
    "FlexVolumeSource",
    &[
        keep(1, "driver", Str),
        opt(2, "fsType", Str),
        opt(3, "secretRef", Msg(&LOCAL_OBJECT_REFERENCE)),
        opt(4, "readOnly", Bool),
        map(5, "options", Str),
    ],
);
static FLOCKER_VOLUME_SOURCE: Message = object("FlockerVolumeSource", &[opt(1, "datasetName", Str), opt(2, "datasetUUID", Str)]);
static GCE_PERSISTENT_DISK_VOLUME_SOURCE: Message = object(
    "GCEPersistentDiskVolumeSource",
    &[keep(1, "pdName", Str), opt(2, "fsType", Str), opt(3, "partition", I32), opt(4, "readOnly", Bool)],
);
static GRPC_ACTION: Message = object("GRPCAction", &[keep(1, "port", I32), keep(2, "service", Str)]);
static GIT_REPO_VOLUME_SOURCE: Message =
    object("GitRepoVolumeSource", &[keep(1, "repository", Str), opt(2, "revision", Str), opt(3, "directory", Str)]);
static GLUSTERFS_VOLUME_SOURCE: Message =
    object("GlusterfsVolumeSource", &[keep(1, "endpoints", Str), keep(2, "path", Str), opt(3, "readOnly", Bool)]);
static HTTP_GET_ACTION: Message = object(
    "HTTPGetAction",
    &[
        opt(1, "path", Str),
        opt(2, "port", Msg(&INT_OR_STRING)),
        opt(3, "host", Str),
        opt(4, "scheme", Str),
        rep(5, "httpHeaders", Msg(&HTTP_HEADER)),
    ],
);
static HTTP_HEADER: Message = object("HTTPHeader", &[keep(1, "name", Str), keep(2, "value", Str)]);
static HOST_ALIAS: Message = object("HostAlias", &[keep(1, "ip", Str), rep(2, "hostnames", Str)]);
static HOST_IP: Message = object("HostIP", &[keep(1, "ip", Str)]);
static HOST_PATH_VOLUME_SOURCE: Message = object("HostPathVolumeSource", &[keep(1, "path", Str), keep(2, "type", Str)]);
static ISCSI_VOLUME_SOURCE: Message = object(
    "ISCSIVolumeSource",
    &[
        keep(1, "targetPortal", Str),
        keep(2, "iqn", Str),
        keep(3, "lun", I32),
        opt(4, "iscsiInterface", Str),
        opt(5, "fsType", Str),
        opt(6, "readOnly", Bool),
        rep(7, "portals", Str),
        opt(8, "chapAuthDiscovery", Bool),
        opt(10, "secretRef", Msg(&LOCAL_OBJECT_REFERENCE)),
        opt(11, "chapAuthSession", Bool),
        keep(12, "initiatorName", Str),
    ],
);
static IMAGE_VOLUME_SOURCE: Message = object("ImageVolumeSource", &[opt(1, "reference", Str), opt(2, "pullPolicy", Str)]);
static KEY_TO_PATH: Message = object("KeyToPath", &[keep(1, "key", Str), keep(2, "path", Str), keep(3, "mode", I32)]);
static LIFECYCLE: Message =
    object("Lifecycle", &[opt(1, "postStart", Msg(&LIFECYCLE_HANDLER)), opt(2, "preStop", Msg(&LIFECYCLE_HANDLER))]);
static LIFECYCLE_HANDLER: Message = object(
    "LifecycleHandler",
    &[
        opt(1, "exec", Msg(&EXEC_ACTION)),
        opt(2, "httpGet", Msg(&HTTP_GET_ACTION)),
        opt(3, "tcpSocket", Msg(&TCP_SOCKET_ACTION)),
        opt(4, "sleep", Msg(&SLEEP_ACTION)),
    ],
);
static LINUX_CONTAINER_USER: Message =
    object("LinuxContainerUser", &[keep(1, "uid", I64), keep(2, "gid", I64), rep(3, "supplementalGroups", I64)]);
static LOAD_BALANCER_INGRESS: Message = object(
    "LoadBalancerIngress",
    &[opt(1, "ip", Str), opt(2, "hostname", Str), keep(3, "ipMode", Str), rep(4, "ports", Msg(&PORT_STATUS))],
);
static LOAD_BALANCER_STATUS: Message = object("LoadBalancerStatus", &[rep(1, "ingress", Msg(&LOAD_BALANCER_INGRESS))]);
static LOCAL_OBJECT_REFERENCE: Message = object("LocalObjectReference", &[opt(1, "name", Str)]);
static MODIFY_VOLUME_STATUS: Message =
    object("ModifyVolumeStatus", &[opt(1, "targetVolumeAttributesClassName", Str), keep(2, "status", Str)]);
static NFS_VOLUME_SOURCE: Message = object("NFSVolumeSource", &[keep(1, "server", Str), keep(2, "path", Str), opt(3, "readOnly", Bool)]);
static NAMESPACE: Message = object(
    "Namespace",
    &[opt(1, "metadata", Msg(&OBJECT_META)), opt(2, "spec", Msg(&NAMESPACE_SPEC)), opt(3, "status", Msg(&NAMESPACE_STATUS))],
);
static NAMESPACE_CONDITION: Message = object(
    "NamespaceCondition",
    &[
        keep(1, "type", Str),
        keep(2, "status", Str),
        opt(4, "lastTransitionTime", Msg(&TIME)),
        opt(5, "reason", Str),
        opt(6, "message", Str),
    ],
);
static NAMESPACE_SPEC: Message = object("NamespaceSpec", &[rep(1, "finalizers", Str)]);
static NAMESPACE_STATUS: Message = object("NamespaceStatus", &[opt(1, "phase", Str), rep(2, "conditions", Msg(&NAMESPACE_CONDITION))]);
static NODE: Message =
    object("Node", &[opt(1, "metadata", Msg(&OBJECT_META)), opt(2, "spec", Msg(&NODE_SPEC)), opt(3, "status", Msg(&NODE_STATUS))]);
static NODE_ADDRESS: Message = object("NodeAddress", &[keep(1, "type", Str), keep(2, "address", Str)]);
static NODE_AFFINITY: Message = object(
    "NodeAffinity",
    &[
        opt(1, "requiredDuringSchedulingIgnoredDuringExecution", Msg(&NODE_SELECTOR)),
        rep(2, "preferredDuringSchedulingIgnoredDuringExecution", Msg(&PREFERRED_SCHEDULING_TERM)),
    ],
);
static NODE_CONDITION: Message = object(
    "NodeCondition",
    &[
        keep(1, "type", Str),
        keep(2, "status", Str),
        opt(3, "lastHeartbeatTime", Msg(&TIME)),
        opt(4, "lastTransitionTime", Msg(&TIME)),
        opt(5, "reason", Str),
        opt(6, "message", Str),
    ],
);
static NODE_CONFIG_SOURCE: Message = object("NodeConfigSource", &[opt(2, "configMap", Msg(&CONFIG_MAP_NODE_CONFIG_SOURCE))]);
static NODE_CONFIG_STATUS: Message = object(
    "NodeConfigStatus",
    &[
        opt(1, "assigned", Msg(&NODE_CONFIG_SOURCE)),
        opt(2, "active", Msg(&NODE_CONFIG_SOURCE)),
        opt(3, "lastKnownGood", Msg(&NODE_CONFIG_SOURCE)),
        opt(4, "error", Str),
    ],
);
static NODE_DAEMON_ENDPOINTS: Message = object("NodeDaemonEndpoints", &[opt(1, "kubeletEndpoint", Msg(&DAEMON_ENDPOINT))]);
static NODE_FEATURES: Message = object("NodeFeatures", &[keep(1, "supplementalGroupsPolicy", Bool)]);
static NODE_RUNTIME_HANDLER: Message =
    object("NodeRuntimeHandler", &[keep(1, "name", Str), opt(2, "features", Msg(&NODE_RUNTIME_HANDLER_FEATURES))]);
static NODE_RUNTIME_HANDLER_FEATURES: Message =
    object("NodeRuntimeHandlerFeatures", &[keep(1, "recursiveReadOnlyMounts", Bool), keep(2, "userNamespaces", Bool)]);
static NODE_SELECTOR: Message = object("NodeSelector", &[rep(1, "nodeSelectorTerms", Msg(&NODE_SELECTOR_TERM))]);
static NODE_SELECTOR_REQUIREMENT: Message =
    object("NodeSelectorRequirement", &[keep(1, "key", Str), keep(2, "operator", Str), rep(3, "values", Str)]);
static NODE_SELECTOR_TERM: Message = object(
    "NodeSelectorTerm",
    &[rep(1, "matchExpressions", Msg(&NODE_SELECTOR_REQUIREMENT)), rep(2, "matchFields", Msg(&NODE_SELECTOR_REQUIREMENT))],
);
static NODE_SPEC: Message = object(
    "NodeSpec",
    &[
        opt(1, "podCIDR", Str),
        opt(2, "externalID", Str),
        opt(3, "providerID", Str),
        opt(4, "unschedulable", Bool),
        rep(5, "taints", Msg(&TAINT)),
        opt(6, "configSource", Msg(&NODE_CONFIG_SOURCE)),
        rep(7, "podCIDRs", Str),
    ],
);
static NODE_STATUS: Message = object(
    "NodeStatus",
    &[
        map(1, "capacity", Msg(&QUANTITY)),
        map(2, "allocatable", Msg(&QUANTITY)),
        opt(3, "phase", Str),
        rep(4, "conditions", Msg(&NODE_CONDITION)),
        rep(5, "addresses", Msg(&NODE_ADDRESS)),
        opt(6, "daemonEndpoints", Msg(&NODE_DAEMON_ENDPOINTS)),
        opt(7, "nodeInfo", Msg(&NODE_SYSTEM_INFO)),
        rep(8, "images", Msg(&CONTAINER_IMAGE)),
        rep(9, "volumesInUse", Str),
        rep(10, "volumesAttached", Msg(&ATTACHED_VOLUME)),
        opt(11, "config", Msg(&NODE_CONFIG_STATUS)),
        rep(12, "runtimeHandlers", Msg(&NODE_RUNTIME_HANDLER)),
        opt(13, "features", Msg(&NODE_FEATURES)),
    ],
);
static NODE_SYSTEM_INFO: Message = object(
    "NodeSystemInfo",
    &[
        keep(1, "machineID", Str),
        keep(2, "systemUUID", Str),
        keep(3, "bootID", Str),
        keep(4, "kernelVersion", Str),
        keep(5, "osImage", Str),
        keep(6, "containerRuntimeVersion", Str),
        keep(7, "kubeletVersion", Str),
        keep(8, "kubeProxyVersion", Str),
        keep(9, "operatingSystem", Str),
        keep(10, "architecture", Str),
    ],
);
static OBJECT_FIELD_SELECTOR: Message = object("ObjectFieldSelector", &[opt(1, "apiVersion", Str), keep(2, "fieldPath", Str)]);
static OBJECT_REFERENCE: Message = object(
    "ObjectReference",
    &[
        opt(1, "kind", Str),
        opt(2, "namespace", Str),
        opt(3, "name", Str),
        opt(4, "uid", Str),
        opt(5, "apiVersion", Str),
        opt(6, "resourceVersion", Str),
        opt(7, "fieldPath", Str),
    ],
);
static PERSISTENT_VOLUME_CLAIM: Message = object(
    "PersistentVolumeClaim",
    &[
        opt(1, "metadata", Msg(&OBJECT_META)),
        opt(2, "spec", Msg(&PERSISTENT_VOLUME_CLAIM_SPEC)),
        opt(3, "status", Msg(&PERSISTENT_VOLUME_CLAIM_STATUS)),
    ],
);
static PERSISTENT_VOLUME_CLAIM_CONDITION: Message = object(
    "PersistentVolumeClaimCondition",
    &[
        keep(1, "type", Str),
        keep(2, "status", Str),
        opt(3, "lastProbeTime", Msg(&TIME)),
        opt(4, "lastTransitionTime", Msg(&TIME)),
        opt(5, "reason", Str),
        opt(6, "message", Str),
    ],
);
static PERSISTENT_VOLUME_CLAIM_SPEC: Message = object(
    "PersistentVolumeClaimSpec",
    &[
        rep(1, "accessModes", Str),
        opt(2, "resources", Msg(&VOLUME_RESOURCE_REQUIREMENTS)),
        opt(3, "volumeName", Str),
        opt(4, "selector", Msg(&LABEL_SELECTOR)),
        keep(5, "storageClassName", Str),
        keep(6, "volumeMode", Str),
        opt(7, "dataSource", Msg(&TYPED_LOCAL_OBJECT_REFERENCE)),
        opt(8, "dataSourceRef", Msg(&TYPED_OBJECT_REFERENCE)),
        keep(9, "volumeAttributesClassName", Str),
    ],
);
static PERSISTENT_VOLUME_CLAIM_STATUS: Message = object(
    "PersistentVolumeClaimStatus",
    &[
        opt(1, "phase", Str),
        rep(2, "accessModes", Str),
        map(3, "capacity", Msg(&QUANTITY)),
        rep(4, "conditions", Msg(&PERSISTENT_VOLUME_CLAIM_CONDITION)),
        map(5, "allocatedResources", Msg(&QUANTITY)),
        map(7, "allocatedResourceStatuses", Str),
        keep(8, "currentVolumeAttributesClassName", Str),
        opt(9, "modifyVolumeStatus", Msg(&MODIFY_VOLUME_STATUS)),
    ],
);
static PERSISTENT_VOLUME_CLAIM_TEMPLATE: Message =
    object("PersistentVolumeClaimTemplate", &[opt(1, "metadata", Msg(&OBJECT_META)), opt(2, "spec", Msg(&PERSISTENT_VOLUME_CLAIM_SPEC))]);
static PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE: Message =
    object("PersistentVolumeClaimVolumeSource", &[keep(1, "claimName", Str), opt(2, "readOnly", Bool)]);
static PHOTON_PERSISTENT_DISK_VOLUME_SOURCE: Message =
    object("PhotonPersistentDiskVolumeSource", &[keep(1, "pdID", Str), opt(2, "fsType", Str)]);
static POD: Message =
    object("Pod", &[opt(1, "metadata", Msg(&OBJECT_META)), opt(2, "spec", Msg(&POD_SPEC)), opt(3, "status", Msg(&POD_STATUS))]);
static POD_AFFINITY: Message = object(
    "PodAffinity",
    &[
        rep(1, "requiredDuringSchedulingIgnoredDuringExecution", Msg(&POD_AFFINITY_TERM)),
        rep(2, "preferredDuringSchedulingIgnoredDuringExecution", Msg(&WEIGHTED_POD_AFFINITY_TERM)),
    ],
);
static POD_AFFINITY_TERM: Message = object(
    "PodAffinityTerm",
    &[
        opt(1, "labelSelector", Msg(&LABEL_SELECTOR)),
        rep(2, "namespaces", Str),
        keep(3, "topologyKey", Str),
        opt(4, "namespaceSelector", Msg(&LABEL_SELECTOR)),
        rep(5, "matchLabelKeys", Str),
        rep(6, "mismatchLabelKeys", Str),
    ],
);
static POD_ANTI_AFFINITY: Message = object(
    "PodAntiAffinity",
    &[
        rep(1, "requiredDuringSchedulingIgnoredDuringExecution", Msg(&POD_AFFINITY_TERM)),
        rep(2, "preferredDuringSchedulingIgnoredDuringExecution", Msg(&WEIGHTED_POD_AFFINITY_TERM)),
    ],
);
static POD_CONDITION: Message = object(
    "PodCondition",
    &[
        keep(1, "type", Str),
        keep(2, "status", Str),
        opt(3, "lastProbeTime", Msg(&TIME)),
        opt(4, "lastTransitionTime", Msg(&TIME)),
        opt(5, "reason", Str),
        opt(6, "message", Str),
    ],
);
static POD_DNS_CONFIG: Message =
    object("PodDNSConfig", &[rep(1, "nameservers", Str), rep(2, "searches", Str), rep(3, "options", Msg(&POD_DNS_CONFIG_OPTION))]);
static POD_DNS_CONFIG_OPTION: Message = object("PodDNSConfigOption", &[opt(1, "name", Str), keep(2, "value", Str)]);
static POD_IP: Message = object("PodIP", &[keep(1, "ip", Str)]);
static POD_OS: Message = object("PodOS", &[keep(1, "name", Str)]);
static POD_READINESS_GATE: Message = object("PodReadinessGate", &[keep(1, "conditionType", Str)]);
static POD_RESOURCE_CLAIM: Message =
    object("PodResourceClaim", &[keep(1, "name", Str), keep(3, "resourceClaimName", Str), keep(4, "resourceClaimTemplateName", Str)]);
static POD_RESOURCE_CLAIM_STATUS: Message = object("PodResourceClaimStatus", &[keep(1, "name", Str), keep(2, "resourceClaimName", Str)]);
static POD_SCHEDULING_GATE: Message = object("PodSchedulingGate", &[keep(1, "name", Str)]);
static POD_SECURITY_CONTEXT: Message = object(
    "PodSecurityContext",
    &[
        opt(1, "seLinuxOptions", Msg(&SE_LINUX_OPTIONS)),
        keep(2, "runAsUser", I64),
        keep(3, "runAsNonRoot", Bool),
        rep(4, "supplementalGroups", I64),
        keep(5, "fsGroup", I64),
        keep(6, "runAsGroup", I64),
        rep(7, "sysctls", Msg(&SYSCTL)),
        opt(8, "windowsOptions", Msg(&WINDOWS_SECURITY_CONTEXT_OPTIONS)),
        keep(9, "fsGroupChangePolicy", Str),
        opt(10, "seccompProfile", Msg(&SECCOMP_PROFILE)),
        opt(11, "appArmorProfile", Msg(&APP_ARMOR_PROFILE)),
        keep(12, "supplementalGroupsPolicy", Str),
        keep(13, "seLinuxChangePolicy", Str),
    ],
);
static POD_SPEC: Message = object(
    "PodSpec",
    &[
        rep(1, "volumes", Msg(&VOLUME)),
        rep(2, "containers", Msg(&CONTAINER)),
        opt(3, "restartPolicy", Str),
        keep(4, "terminationGracePeriodSeconds", I64),
        keep(5, "activeDeadlineSeconds", I64),
        opt(6, "dnsPolicy", Str),
        map(7, "nodeSelector", Str),
        opt(8, "serviceAccountName", Str),
        opt(9, "serviceAccount", Str),
        opt(10, "nodeName", Str),
        opt(11, "hostNetwork", Bool),
        opt(12, "hostPID", Bool),
        opt(13, "hostIPC", Bool),
        opt(14, "securityContext", Msg(&POD_SECURITY_CONTEXT)),
        rep(15, "imagePullSecrets", Msg(&LOCAL_OBJECT_REFERENCE)),
        opt(16, "hostname", Str),
        opt(17, "subdomain", Str),
        opt(18, "affinity", Msg(&AFFINITY)),
        opt(19, "schedulerName", Str),
        rep(20, "initContainers", Msg(&CONTAINER)),
        keep(21, "automountServiceAccountToken", Bool),
        rep(22, "tolerations", Msg(&TOLERATION)),
        rep(23, "hostAliases", Msg(&HOST_ALIAS)),
        opt(24, "priorityClassName", Str),
        keep(25, "priority", I32),
        opt(26, "dnsConfig", Msg(&POD_DNS_CONFIG)),
        keep(27, "shareProcessNamespace", Bool),
        rep(28, "readinessGates", Msg(&POD_READINESS_GATE)),
        keep(29, "runtimeClassName", Str),
        keep(30, "enableServiceLinks", Bool),
        keep(31, "preemptionPolicy", Str),
        map(32, "overhead", Msg(&QUANTITY)),
        rep(33, "topologySpreadConstraints", Msg(&TOPOLOGY_SPREAD_CONSTRAINT)),
        rep(34, "ephemeralContainers", Msg(&EPHEMERAL_CONTAINER)),
        keep(35, "setHostnameAsFQDN", Bool),
        opt(36, "os", Msg(&POD_OS)),
        keep(37, "hostUsers", Bool),
        rep(38, "schedulingGates", Msg(&POD_SCHEDULING_GATE)),
        rep(39, "resourceClaims", Msg(&POD_RESOURCE_CLAIM)),
        opt(40, "resources", Msg(&RESOURCE_REQUIREMENTS)),
    ],
);
static POD_STATUS: Message = object(
    "PodStatus",
    &[
        opt(1, "phase", Str),
        rep(2, "conditions", Msg(&POD_CONDITION)),
        opt(3, "message", Str),
        opt(4, "reason", Str),
        opt(5, "hostIP", Str),
        opt(6, "podIP", Str),
        opt(7, "startTime", Msg(&TIME)),
        rep(8, "containerStatuses", Msg(&CONTAINER_STATUS)),
        opt(9, "qosClass", Str),
        rep(10, "initContainerStatuses", Msg(&CONTAINER_STATUS)),
        opt(11, "nominatedNodeName", Str),
        rep(12, "podIPs", Msg(&POD_IP)),
        rep(13, "ephemeralContainerStatuses", Msg(&CONTAINER_STATUS)),
        opt(14, "resize", Str),
        rep(15, "resourceClaimStatuses", Msg(&POD_RESOURCE_CLAIM_STATUS)),
        rep(16, "hostIPs", Msg(&HOST_IP)),
    ],
);
static POD_TEMPLATE_SPEC: Message = object("PodTemplateSpec", &[opt(1, "metadata", Msg(&OBJECT_META)), opt(2, "spec", Msg(&POD_SPEC))]);
static PORT_STATUS: Message = object("PortStatus", &[keep(1, "port", I32), keep(2, "protocol", Str), keep(3, "error", Str)]);
static PORTWORX_VOLUME_SOURCE: Message =
    object("PortworxVolumeSource", &[keep(1, "volumeID", Str), opt(2, "fsType", Str), opt(3, "readOnly", Bool)]);
static PREFERRED_SCHEDULING_TERM: Message =
    object("PreferredSchedulingTerm", &[keep(1, "weight", I32), opt(2, "preference", Msg(&NODE_SELECTOR_TERM))]);
static PROBE: Message = object(
    "Probe",
    &[
        inline(1, "handler", Msg(&PROBE_HANDLER)),
        opt(2, "initialDelaySeconds", I32),
        opt(3, "timeoutSeconds", I32),
        opt(4, "periodSeconds", I32),
        opt(5, "successThreshold", I32),
        opt(6, "failureThreshold", I32),
        keep(7, "terminationGracePeriodSeconds", I64),
    ],
);
static PROBE_HANDLER: Message = object(
    "ProbeHandler",
    &[
        opt(1, "exec", Msg(&EXEC_ACTION)),
        opt(2, "httpGet", Msg(&HTTP_GET_ACTION)),
        opt(3, "tcpSocket", Msg(&TCP_SOCKET_ACTION)),
        opt(4, "grpc", Msg(&GRPC_ACTION)),
    ],
);
static PROJECTED_VOLUME_SOURCE: Message =
    object("ProjectedVolumeSource", &[rep(1, "sources", Msg(&VOLUME_PROJECTION)), keep(2, "defaultMode", I32)]);
static QUOBYTE_VOLUME_SOURCE: Message = object(
    "QuobyteVolumeSource",
    &[
        keep(1, "registry", Str),
        keep(2, "volume", Str),
        opt(3, "readOnly", Bool),
        opt(4, "user", Str),
        opt(5, "group", Str),
        opt(6, "tenant", Str),
    ],
);
static RBD_VOLUME_SOURCE: Message = object(
    "RBDVolumeSource",
    &[
        rep(1, "monitors", Str),
        keep(2, "image", Str),
        opt(3, "fsType", Str),
        opt(4, "pool", Str),
        opt(5, "user", Str),
        opt(6, "keyring", Str),
        opt(7, "secretRef", Msg(&LOCAL_OBJECT_REFERENCE)),
        opt(8, "readOnly", Bool),
    ],
);
static RESOURCE_CLAIM: Message = object("ResourceClaim", &[keep(1, "name", Str), opt(2, "request", Str)]);
static RESOURCE_FIELD_SELECTOR: Message =
    object("ResourceFieldSelector", &[opt(1, "containerName", Str), keep(2, "resource", Str), opt(3, "divisor", Msg(&QUANTITY))]);
static RESOURCE_HEALTH: Message = object("ResourceHealth", &[keep(1, "resourceID", Str), opt(2, "health", Str)]);
static RESOURCE_REQUIREMENTS: Message = object(
    "ResourceRequirements",
    &[map(1, "limits", Msg(&QUANTITY)), map(2, "requests", Msg(&QUANTITY)), rep(3, "claims", Msg(&RESOURCE_CLAIM))],
);
static RESOURCE_STATUS: Message = object("ResourceStatus", &[keep(1, "name", Str), rep(2, "resources", Msg(&RESOURCE_HEALTH))]);
static SE_LINUX_OPTIONS: Message =
    object("SELinuxOptions", &[opt(1, "user", Str), opt(2, "role", Str), opt(3, "type", Str), opt(4, "level", Str)]);
static SCALE_IO_VOLUME_SOURCE: Message = object(
    "ScaleIOVolumeSource",
    &[
        keep(1, "gateway", Str),
        keep(2, "system", Str),
        opt(3, "secretRef", Msg(&LOCAL_OBJECT_REFERENCE)),
        opt(4, "sslEnabled", Bool),
        opt(5, "protectionDomain", Str),
        opt(6, "storagePool", Str),
        opt(7, "storageMode", Str),
        opt(8, "volumeName", Str),
        opt(9, "fsType", Str),
        opt(10, "readOnly", Bool),
    ],
);
static SECCOMP_PROFILE: Message = object("SeccompProfile", &[keep(1, "type", Str), keep(2, "localhostProfile", Str)]);
static SECRET: Message = object(
    "Secret",
    &[
        opt(1, "metadata", Msg(&OBJECT_META)),
        map(2, "data", Bytes),
        opt(3, "type", Str),
        map(4, "stringData", Str),
        keep(5, "immutable", Bool),
    ],
);
static SECRET_ENV_SOURCE: Message =
    object("SecretEnvSource", &[inline(1, "localObjectReference", Msg(&LOCAL_OBJECT_REFERENCE)), keep(2, "optional", Bool)]);
static SECRET_KEY_SELECTOR: Message = object(
    "SecretKeySelector",
    &[inline(1, "localObjectReference", Msg(&LOCAL_OBJECT_REFERENCE)), keep(2, "key", Str), keep(3, "optional", Bool)],
);
static SECRET_PROJECTION: Message = object(
    "SecretProjection",
    &[inline(1, "localObjectReference", Msg(&LOCAL_OBJECT_REFERENCE)), rep(2, "items", Msg(&KEY_TO_PATH)), keep(4, "optional", Bool)],
);
static SECRET_VOLUME_SOURCE: Message = object(
    "SecretVolumeSource",
    &[opt(1, "secretName", Str), rep(2, "items", Msg(&KEY_TO_PATH)), keep(3, "defaultMode", I32), keep(4, "optional", Bool)],
);
static SECURITY_CONTEXT: Message = object(
    "SecurityContext",
    &[
        opt(1, "capabilities", Msg(&CAPABILITIES)),
        keep(2, "privileged", Bool),
        opt(3, "seLinuxOptions", Msg(&SE_LINUX_OPTIONS)),
        keep(4, "runAsUser", I64),
        keep(5, "runAsNonRoot", Bool),
        keep(6, "readOnlyRootFilesystem", Bool),
        keep(7, "allowPrivilegeEscalation", Bool),
        keep(8, "runAsGroup", I64),
        keep(9, "procMount", Str),
        opt(10, "windowsOptions", Msg(&WINDOWS_SECURITY_CONTEXT_OPTIONS)),
        opt(11, "seccompProfile", Msg(&SECCOMP_PROFILE)),
        opt(12, "appArmorProfile", Msg(&APP_ARMOR_PROFILE)),
    ],
);
static SERVICE: Message =
    object("Service", &[opt(1, "metadata", Msg(&OBJECT_META)), opt(2, "spec", Msg(&SERVICE_SPEC)), opt(3, "status", Msg(&SERVICE_STATUS))]);
static SERVICE_ACCOUNT: Message = object(
    "ServiceAccount",
    &[
        opt(1, "metadata", Msg(&OBJECT_META)),
        rep(2, "secrets", Msg(&OBJECT_REFERENCE)),
        rep(3, "imagePullSecrets", Msg(&LOCAL_OBJECT_REFERENCE)),
        keep(4, "automountServiceAccountToken", Bool),
    ],
);
static SERVICE_ACCOUNT_TOKEN_PROJECTION: Message =
    object("ServiceAccountTokenProjection", &[opt(1, "audience", Str), keep(2, "expirationSeconds", I64), keep(3, "path", Str)]);
static SERVICE_PORT: Message = object(
    "ServicePort",
    &[
        opt(1, "name", Str),
        opt(2, "protocol", Str),
        keep(3, "port", I32),
        opt(4, "targetPort", Msg(&INT_OR_STRING)),
        opt(5, "nodePort", I32),
        keep(6, "appProtocol", Str),
    ],
);
static SERVICE_SPEC: Message = object(
    "ServiceSpec",
    &[
        rep(1, "ports", Msg(&SERVICE_PORT)),
        map(2, "selector", Str),
        opt(3, "clusterIP", Str),
        opt(4, "type", Str),
        rep(5, "externalIPs", Str),
        opt(7, "sessionAffinity", Str),
        opt(8, "loadBalancerIP", Str),
        rep(9, "loadBalancerSourceRanges", Str),
        opt(10, "externalName", Str),
        opt(11, "externalTrafficPolicy", Str),
        opt(12, "healthCheckNodePort", I32),
        opt(13, "publishNotReadyAddresses", Bool),
        opt(14, "sessionAffinityConfig", Msg(&SESSION_AFFINITY_CONFIG)),
        keep(17, "ipFamilyPolicy", Str),
        rep(18, "clusterIPs", Str),
        rep(19, "ipFamilies", Str),
        keep(20, "allocateLoadBalancerNodePorts", Bool),
        keep(21, "loadBalancerClass", Str),
        keep(22, "internalTrafficPolicy", Str),
        keep(23, "trafficDistribution", Str),
    ],
);
static SERVICE_STATUS: Message =
    object("ServiceStatus", &[opt(1, "loadBalancer", Msg(&LOAD_BALANCER_STATUS)), rep(2, "conditions", Msg(&CONDITION))]);
static SESSION_AFFINITY_CONFIG: Message = object("SessionAffinityConfig", &[opt(1, "clientIP", Msg(&CLIENT_IP_CONFIG))]);
static SLEEP_ACTION: Message = object("SleepAction", &[keep(1, "seconds", I64)]);
static STORAGE_OS_VOLUME_SOURCE: Message = object(
    "StorageOSVolumeSource",
    &[
        opt(1, "volumeName", Str),
        opt(2, "volumeNamespace", Str),
        opt(3, "fsType", Str),
        opt(4, "readOnly", Bool),
        opt(5, "secretRef", Msg(&LOCAL_OBJECT_REFERENCE)),
    ],
);
static SYSCTL: Message = object("Sysctl", &[keep(1, "name", Str), keep(2, "value", Str)]);
static TCP_SOCKET_ACTION: Message = object("TCPSocketAction", &[opt(1, "port", Msg(&INT_OR_STRING)), opt(2, "host", Str)]);
static TAINT: Message =
    object("Taint", &[keep(1, "key", Str), opt(2, "value", Str), keep(3, "effect", Str), opt(4, "timeAdded", Msg(&TIME))]);
static TOLERATION: Message = object(
    "Toleration",
    &[opt(1, "key", Str), opt(2, "operator", Str), opt(3, "value", Str), opt(4, "effect", Str), keep(5, "tolerationSeconds", I64)],
);
static TOPOLOGY_SPREAD_CONSTRAINT: Message = object(
    "TopologySpreadConstraint",
    &[
        keep(1, "maxSkew", I32),
        keep(2, "topologyKey", Str),
        keep(3, "whenUnsatisfiable", Str),
        opt(4, "labelSelector", Msg(&LABEL_SELECTOR)),
        keep(5, "minDomains", I32),
        keep(6, "nodeAffinityPolicy", Str),
        keep(7, "nodeTaintsPolicy", Str),
        rep(8, "matchLabelKeys", Str),
    ],
);
static TYPED_LOCAL_OBJECT_REFERENCE: Message =
    object("TypedLocalObjectReference", &[keep(1, "apiGroup", Str), keep(2, "kind", Str), keep(3, "name", Str)]);
static TYPED_OBJECT_REFERENCE: Message =
    object("TypedObjectReference", &[keep(1, "apiGroup", Str), keep(2, "kind", Str), keep(3, "name", Str), keep(4, "namespace", Str)]);
static VOLUME: Message = object("Volume", &[keep(1, "name", Str), inline(2, "volumeSource", Msg(&VOLUME_SOURCE))]);
static VOLUME_DEVICE: Message = object("VolumeDevice", &[keep(1, "name", Str), keep(2, "devicePath", Str)]);
static VOLUME_MOUNT: Message = object(
    "VolumeMount",
    &[
        keep(1, "name", Str),
        opt(2, "readOnly", Bool),
        keep(3, "mountPath", Str),
        opt(4, "subPath", Str),
        keep(5, "mountPropagation", Str),
        opt(6, "subPathExpr", Str),
        keep(7, "recursiveReadOnly", Str),
    ],
);
static VOLUME_MOUNT_STATUS: Message = object(
    "VolumeMountStatus",
    &[keep(1, "name", Str), keep(2, "mountPath", Str), opt(3, "readOnly", Bool), keep(4, "recursiveReadOnly", Str)],
);
static VOLUME_PROJECTION: Message = object(
    "VolumeProjection",
    &[
        opt(1, "secret", Msg(&SECRET_PROJECTION)),
        opt(2, "downwardAPI", Msg(&DOWNWARD_API_PROJECTION)),
        opt(3, "configMap", Msg(&CONFIG_MAP_PROJECTION)),
        opt(4, "serviceAccountToken", Msg(&SERVICE_ACCOUNT_TOKEN_PROJECTION)),
        opt(5, "clusterTrustBundle", Msg(&CLUSTER_TRUST_BUNDLE_PROJECTION)),
    ],
);
static VOLUME_RESOURCE_REQUIREMENTS: Message =
    object("VolumeResourceRequirements", &[map(1, "limits", Msg(&QUANTITY)), map(2, "requests", Msg(&QUANTITY))]);
static VOLUME_SOURCE: Message = object(
    "VolumeSource",
    &[
        opt(1, "hostPath", Msg(&HOST_PATH_VOLUME_SOURCE)),
        opt(2, "emptyDir", Msg(&EMPTY_DIR_VOLUME_SOURCE)),
        opt(3, "gcePersistentDisk", Msg(&GCE_PERSISTENT_DISK_VOLUME_SOURCE)),
        opt(4, "awsElasticBlockStore", Msg(&AWS_ELASTIC_BLOCK_STORE_VOLUME_SOURCE)),
        opt(5, "gitRepo", Msg(&GIT_REPO_VOLUME_SOURCE)),
        opt(6, "secret", Msg(&SECRET_VOLUME_SOURCE)),
        opt(7, "nfs", Msg(&NFS_VOLUME_SOURCE)),
        opt(8, "iscsi", Msg(&ISCSI_VOLUME_SOURCE)),
        opt(9, "glusterfs", Msg(&GLUSTERFS_VOLUME_SOURCE)),
        opt(10, "persistentVolumeClaim", Msg(&PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE)),
        opt(11, "rbd", Msg(&RBD_VOLUME_SOURCE)),
        opt(12, "flexVolume", Msg(&FLEX_VOLUME_SOURCE)),
        opt(13, "cinder", Msg(&CINDER_VOLUME_SOURCE)),
        opt(14, "cephfs", Msg(&CEPH_FS_VOLUME_SOURCE)),
        opt(15, "flocker", Msg(&FLOCKER_VOLUME_SOURCE)),
        opt(16, "downwardAPI", Msg(&DOWNWARD_API_VOLUME_SOURCE)),
        opt(17, "fc", Msg(&FC_VOLUME_SOURCE)),
        opt(18, "azureFile", Msg(&AZURE_FILE_VOLUME_SOURCE)),
        opt(19, "configMap", Msg(&CONFIG_MAP_VOLUME_SOURCE)),
        opt(20, "vsphereVolume", Msg(&VSPHERE_VIRTUAL_DISK_VOLUME_SOURCE)),
        opt(21, "quobyte", Msg(&QUOBYTE_VOLUME_SOURCE)),
        opt(22, "azureDisk", Msg(&AZURE_DISK_VOLUME_SOURCE)),
        opt(23, "photonPersistentDisk", Msg(&PHOTON_PERSISTENT_DISK_VOLUME_SOURCE)),
        opt(24, "portworxVolume", Msg(&PORTWORX_VOLUME_SOURCE)),
        opt(25, "scaleIO", Msg(&SCALE_IO_VOLUME_SOURCE)),
        opt(26, "projected", Msg(&PROJECTED_VOLUME_SOURCE)),
        opt(27, "storageos", Msg(&STORAGE_OS_VOLUME_SOURCE)),
        opt(28, "csi", Msg(&CSI_VOLUME_SOURCE)),
        opt(29, "ephemeral", Msg(&EPHEMERAL_VOLUME_SOURCE)),
        opt(30, "image", Msg(&IMAGE_VOLUME_SOURCE)),
    ],
);
static VSPHERE_VIRTUAL_DISK_VOLUME_SOURCE: Message = object(
    "VsphereVirtualDiskVolumeSource",
    &[keep(1, "volumePath", Str), opt(2, "fsType", Str), opt(3, "storagePolicyName", Str), opt(4, "storagePolicyID", Str)],
);
static WEIGHTED_POD_AFFINITY_TERM: Message =
    object("WeightedPodAffinityTerm", &[keep(1, "weight", I32), opt(2, "podAffinityTerm", Msg(&POD_AFFINITY_TERM))]);
static WINDOWS_SECURITY_CONTEXT_OPTIONS: Message = object(
    "WindowsSecurityContextOptions",
    &[
        keep(1, "gmsaCredentialSpecName", Str),
        keep(2, "gmsaCredentialSpec", Str),
        keep(3, "runAsUserName", Str),
        keep(4, "hostProcess", Bool),
    ],
);

// -------------------- apps/v1 (k8s.io/api/apps/v1)

static DAEMON_SET: Message = object(
    "DaemonSet",
    &[opt(1, "metadata", Msg(&OBJECT_META)), opt(2, "spec", Msg(&DAEMON_SET_SPEC)), opt(3, "status", Msg(&DAEMON_SET_STATUS))],
);
static DAEMON_SET_CONDITION: Message = object(
    "DaemonSetCondition",
    &[
        keep(1, "type", Str),
        keep(2, "status", Str),
        opt(3, "lastTransitionTime", Msg(&TIME)),
        opt(4, "reason", Str),
        opt(5, "message", Str),
    ],
);
static DAEMON_SET_SPEC: Message = object(
    "DaemonSetSpec",
    &[
        opt(1, "selector", Msg(&LABEL_SELECTOR)),
        opt(2, "template", Msg(&POD_TEMPLATE_SPEC)),
        opt(3, "updateStrategy", Msg(&DAEMON_SET_UPDATE_STRATEGY)),
        opt(4, "minReadySeconds", I32),
        keep(6, "revisionHistoryLimit", I32),
    ],
);
static DAEMON_SET_STATUS: Message = object(
    "DaemonSetStatus",
    &[
        keep(1, "currentNumberScheduled", I32),
        keep(2, "numberMisscheduled", I32),
        keep(3, "desiredNumberScheduled", I32),
        keep(4, "numberReady", I32),
        opt(5, "observedGeneration", I64),
        opt(6, "updatedNumberScheduled", I32),
        opt(7, "numberAvailable", I32),
        opt(8, "numberUnavailable", I32),
        keep(9, "collisionCount", I32),
        rep(10, "conditions", Msg(&DAEMON_SET_CONDITION)),
    ],
);
static DAEMON_SET_UPDATE_STRATEGY: Message =
    object("DaemonSetUpdateStrategy", &[opt(1, "type", Str), opt(2, "rollingUpdate", Msg(&ROLLING_UPDATE_DAEMON_SET))]);
static DEPLOYMENT: Message = object(
    "Deployment",
    &[opt(1, "metadata", Msg(&OBJECT_META)), opt(2, "spec", Msg(&DEPLOYMENT_SPEC)), opt(3, "status", Msg(&DEPLOYMENT_STATUS))],
);
static DEPLOYMENT_CONDITION: Message = object(
    "DeploymentCondition",
    &[
        keep(1, "type", Str),
        keep(2, "status", Str),
        opt(4, "reason", Str),
        opt(5, "message", Str),
        opt(6, "lastUpdateTime", Msg(&TIME)),
        opt(7, "lastTransitionTime", Msg(&TIME)),
    ],
);
static DEPLOYMENT_SPEC: Message = object(
    "DeploymentSpec",
    &[
        keep(1, "replicas", I32),
        opt(2, "selector", Msg(&LABEL_SELECTOR)),
        opt(3, "template", Msg(&POD_TEMPLATE_SPEC)),
        opt(4, "strategy", Msg(&DEPLOYMENT_STRATEGY)),
        opt(5, "minReadySeconds", I32),
        keep(6, "revisionHistoryLimit", I32),
        opt(7, "paused", Bool),
        keep(9, "progressDeadlineSeconds", I32),
    ],
);
static DEPLOYMENT_STATUS: Message = object(
    "DeploymentStatus",
    &[
        opt(1, "observedGeneration", I64),
        opt(2, "replicas", I32),
        opt(3, "updatedReplicas", I32),
        opt(4, "availableReplicas", I32),
        opt(5, "unavailableReplicas", I32),
        rep(6, "conditions", Msg(&DEPLOYMENT_CONDITION)),
        opt(7, "readyReplicas", I32),
        keep(8, "collisionCount", I32),
    ],
);
static DEPLOYMENT_STRATEGY: Message =
    object("DeploymentStrategy", &[opt(1, "type", Str), opt(2, "rollingUpdate", Msg(&ROLLING_UPDATE_DEPLOYMENT))]);
static REPLICA_SET: Message = object(
    "ReplicaSet",
    &[opt(1, "metadata", Msg(&OBJECT_META)), opt(2, "spec", Msg(&REPLICA_SET_SPEC)), opt(3, "status", Msg(&REPLICA_SET_STATUS))],
);
static REPLICA_SET_CONDITION: Message = object(
    "ReplicaSetCondition",
    &[
        keep(1, "type", Str),
        keep(2, "status", Str),
        opt(3, "lastTransitionTime", Msg(&TIME)),
        opt(4, "reason", Str),
        opt(5, "message", Str),
    ],
);
static REPLICA_SET_SPEC: Message = object(
    "ReplicaSetSpec",
    &[
        keep(1, "replicas", I32),
        opt(2, "selector", Msg(&LABEL_SELECTOR)),
        opt(3, "template", Msg(&POD_TEMPLATE_SPEC)),
        opt(4, "minReadySeconds", I32),
    ],
);
static REPLICA_SET_STATUS: Message = object(
    "ReplicaSetStatus",
    &[
        keep(1, "replicas", I32),
        opt(2, "fullyLabeledReplicas", I32),
        opt(3, "observedGeneration", I64),
        opt(4, "readyReplicas", I32),
        opt(5, "availableReplicas", I32),
        rep(6, "conditions", Msg(&REPLICA_SET_CONDITION)),
    ],
);
static ROLLING_UPDATE_DAEMON_SET: Message =
    object("RollingUpdateDaemonSet", &[opt(1, "maxUnavailable", Msg(&INT_OR_STRING)), opt(2, "maxSurge", Msg(&INT_OR_STRING))]);
static ROLLING_UPDATE_DEPLOYMENT: Message =
    object("RollingUpdateDeployment", &[opt(1, "maxUnavailable", Msg(&INT_OR_STRING)), opt(2, "maxSurge", Msg(&INT_OR_STRING))]);
static ROLLING_UPDATE_STATEFUL_SET_STRATEGY: Message =
    object("RollingUpdateStatefulSetStrategy", &[keep(1, "partition", I32), opt(2, "maxUnavailable", Msg(&INT_OR_STRING))]);
static STATEFUL_SET: Message = object(
    "StatefulSet",
    &[opt(1, "metadata", Msg(&OBJECT_META)), opt(2, "spec", Msg(&STATEFUL_SET_SPEC)), opt(3, "status", Msg(&STATEFUL_SET_STATUS))],
);
static STATEFUL_SET_CONDITION: Message = object(
    "StatefulSetCondition",
    &[
        keep(1, "type", Str),
        keep(2, "status", Str),
        opt(3, "lastTransitionTime", Msg(&TIME)),
        opt(4, "reason", Str),
        opt(5, "message", Str),
    ],
);
static STATEFUL_SET_ORDINALS: Message = object("StatefulSetOrdinals", &[keep(1, "start", I32)]);
static STATEFUL_SET_PERSISTENT_VOLUME_CLAIM_RETENTION_POLICY: Message =
    object("StatefulSetPersistentVolumeClaimRetentionPolicy", &[opt(1, "whenDeleted", Str), opt(2, "whenScaled", Str)]);
static STATEFUL_SET_SPEC: Message = object(
    "StatefulSetSpec",
    &[
        keep(1, "replicas", I32),
        opt(2, "selector", Msg(&LABEL_SELECTOR)),
        opt(3, "template", Msg(&POD_TEMPLATE_SPEC)),
        rep(4, "volumeClaimTemplates", Msg(&PERSISTENT_VOLUME_CLAIM)),
        keep(5, "serviceName", Str),
        opt(6, "podManagementPolicy", Str),
        opt(7, "updateStrategy", Msg(&STATEFUL_SET_UPDATE_STRATEGY)),
        keep(8, "revisionHistoryLimit", I32),
        opt(9, "minReadySeconds", I32),
        opt(10, "persistentVolumeClaimRetentionPolicy", Msg(&STATEFUL_SET_PERSISTENT_VOLUME_CLAIM_RETENTION_POLICY)),
        opt(11, "ordinals", Msg(&STATEFUL_SET_ORDINALS)),
    ],
);
static STATEFUL_SET_STATUS: Message = object(
    "StatefulSetStatus",
    &[
        opt(1, "observedGeneration", I64),
        keep(2, "replicas", I32),
        opt(3, "readyReplicas", I32),
        opt(4, "currentReplicas", I32),
        opt(5, "updatedReplicas", I32),
        opt(6, "currentRevision", Str),
        opt(7, "updateRevision", Str),
        keep(9, "collisionCount", I32),
        rep(10, "conditions", Msg(&STATEFUL_SET_CONDITION)),
        keep(11, "availableReplicas", I32),
    ],
);
static STATEFUL_SET_UPDATE_STRATEGY: Message =
    object("StatefulSetUpdateStrategy", &[opt(1, "type", Str), opt(2, "rollingUpdate", Msg(&ROLLING_UPDATE_STATEFUL_SET_STRATEGY))]);

// -------------------- batch/v1 (k8s.io/api/batch/v1)

static JOB: Message =
    object("Job", &[opt(1, "metadata", Msg(&OBJECT_META)), opt(2, "spec", Msg(&JOB_SPEC)), opt(3, "status", Msg(&JOB_STATUS))]);
static JOB_CONDITION: Message = object(
    "JobCondition",
    &[
        keep(1, "type", Str),
        keep(2, "status", Str),
        opt(3, "lastProbeTime", Msg(&TIME)),
        opt(4, "lastTransitionTime", Msg(&TIME)),
        opt(5, "reason", Str),
        opt(6, "message", Str),
    ],
);
static JOB_SPEC: Message = object(
    "JobSpec",
    &[
        keep(1, "parallelism", I32),
        keep(2, "completions", I32),
        keep(3, "activeDeadlineSeconds", I64),
        opt(4, "selector", Msg(&LABEL_SELECTOR)),
        keep(5, "manualSelector", Bool),
        opt(6, "template", Msg(&POD_TEMPLATE_SPEC)),
        keep(7, "backoffLimit", I32),
        keep(8, "ttlSecondsAfterFinished", I32),
        keep(9, "completionMode", Str),
        keep(10, "suspend", Bool),
        opt(11, "podFailurePolicy", Msg(&POD_FAILURE_POLICY)),
        keep(12, "backoffLimitPerIndex", I32),
        keep(13, "maxFailedIndexes", I32),
        keep(14, "podReplacementPolicy", Str),
        keep(15, "managedBy", Str),
        opt(16, "successPolicy", Msg(&SUCCESS_POLICY)),
    ],
);
static JOB_STATUS: Message = object(
    "JobStatus",
    &[
        rep(1, "conditions", Msg(&JOB_CONDITION)),
        opt(2, "startTime", Msg(&TIME)),
        opt(3, "completionTime", Msg(&TIME)),
        opt(4, "active", I32),
        opt(5, "succeeded", I32),
        opt(6, "failed", I32),
        opt(7, "completedIndexes", Str),
        opt(8, "uncountedTerminatedPods", Msg(&UNCOUNTED_TERMINATED_PODS)),
        keep(9, "ready", I32),
        keep(10, "failedIndexes", Str),
        keep(11, "terminating", I32),
    ],
);
static POD_FAILURE_POLICY: Message = object("PodFailurePolicy", &[rep(1, "rules", Msg(&POD_FAILURE_POLICY_RULE))]);
static POD_FAILURE_POLICY_ON_EXIT_CODES_REQUIREMENT: Message =
    object("PodFailurePolicyOnExitCodesRequirement", &[keep(1, "containerName", Str), keep(2, "operator", Str), rep(3, "values", I32)]);
static POD_FAILURE_POLICY_ON_POD_CONDITIONS_PATTERN: Message =
    object("PodFailurePolicyOnPodConditionsPattern", &[keep(1, "type", Str), keep(2, "status", Str)]);
static POD_FAILURE_POLICY_RULE: Message = object(
    "PodFailurePolicyRule",
    &[
        keep(1, "action", Str),
        opt(2, "onExitCodes", Msg(&POD_FAILURE_POLICY_ON_EXIT_CODES_REQUIREMENT)),
        rep(3, "onPodConditions", Msg(&POD_FAILURE_POLICY_ON_POD_CONDITIONS_PATTERN)),
    ],
);
static SUCCESS_POLICY: Message = object("SuccessPolicy", &[rep(1, "rules", Msg(&SUCCESS_POLICY_RULE))]);
static SUCCESS_POLICY_RULE: Message = object("SuccessPolicyRule", &[keep(1, "succeededIndexes", Str), keep(2, "succeededCount", I32)]);
static UNCOUNTED_TERMINATED_PODS: Message = object("UncountedTerminatedPods", &[rep(1, "succeeded", Str), rep(2, "failed", Str)]);

// -------------------- certificates.k8s.io/v1 (k8s.io/api/certificates/v1)

static CERTIFICATE_SIGNING_REQUEST: Message = object(
    "CertificateSigningRequest",
    &[opt(1, "metadata", Msg(&OBJECT_META)), opt(2, "spec", Msg(&CSR_SPEC)), opt(3, "status", Msg(&CSR_STATUS))],
);
/// `extra = 6` (`map<string, ExtraValue>`, whose JSON is a list of
/// strings) is left out: the api-server fills it from the requesting user,
/// and tinykube's users carry no extra attributes, so no client sends it.
static CSR_SPEC: Message = object(
    "CertificateSigningRequestSpec",
    &[
        keep(1, "request", Bytes),
        opt(2, "username", Str),
        opt(3, "uid", Str),
        rep(4, "groups", Str),
        rep(5, "usages", Str),
        keep(7, "signerName", Str),
        keep(8, "expirationSeconds", I32),
    ],
);
static CSR_STATUS: Message =
    object("CertificateSigningRequestStatus", &[rep(1, "conditions", Msg(&CSR_CONDITION)), opt(2, "certificate", Bytes)]);
static CSR_CONDITION: Message = object(
    "CertificateSigningRequestCondition",
    &[
        keep(1, "type", Str),
        opt(2, "reason", Str),
        opt(3, "message", Str),
        opt(4, "lastUpdateTime", Msg(&TIME)),
        opt(5, "lastTransitionTime", Msg(&TIME)),
        keep(6, "status", Str),
    ],
);

// -------------------- coordination.k8s.io/v1 (k8s.io/api/coordination/v1)

static LEASE: Message = object("Lease", &[opt(1, "metadata", Msg(&OBJECT_META)), opt(2, "spec", Msg(&LEASE_SPEC))]);
static LEASE_SPEC: Message = object(
    "LeaseSpec",
    &[
        keep(1, "holderIdentity", Str),
        keep(2, "leaseDurationSeconds", I32),
        opt(3, "acquireTime", Msg(&MICRO_TIME)),
        opt(4, "renewTime", Msg(&MICRO_TIME)),
        keep(5, "leaseTransitions", I32),
        keep(6, "strategy", Str),
        keep(7, "preferredHolder", Str),
    ],
);

// -------------------- autoscaling/v1 (k8s.io/api/autoscaling/v1)

static SCALE: Message =
    object("Scale", &[opt(1, "metadata", Msg(&OBJECT_META)), opt(2, "spec", Msg(&SCALE_SPEC)), opt(3, "status", Msg(&SCALE_STATUS))]);
static SCALE_SPEC: Message = object("ScaleSpec", &[opt(1, "replicas", I32)]);
static SCALE_STATUS: Message = object("ScaleStatus", &[keep(1, "replicas", I32), opt(2, "selector", Str)]);
