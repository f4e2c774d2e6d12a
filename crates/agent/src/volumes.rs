//! # Volumes: the kubelet's volume manager in miniature
//!
//! A container's own filesystem lives and dies with the container: when it
//! crashes and is restarted, whatever it wrote is gone. A *volume* is a
//! directory whose life is tied to the **pod** instead. The pod spec lists
//! its `volumes` — a name and where the content comes from — and each
//! container lists `volumeMounts`: which volume, at which path inside the
//! container, whether read-only, and optionally only a `subPath` of it. Two
//! containers mounting the same volume see the same files, which is how a
//! sidecar reads the logs its neighbour writes.
//!
//! The kubelet's volume manager makes this real in two steps. First, for
//! every volume of a pod, a *volume plugin* **sets it up** under
//! `/var/lib/kubelet/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>`.
//! Then, as each container is created, `makeMounts`
//! (`pkg/kubelet/kubelet_pods.go`) turns its `volumeMounts` into CRI
//! `Mount`s — a host path, a container path, read-only or not — and the
//! runtime bind-mounts them. This module is both steps: [`setup`] and
//! [`PodVolumes::mounts`].
//!
//! The plugins tinykube has, with upstream's folder names:
//!
//! | volume        | plugin folder                | content                                    |
//! |---------------|------------------------------|--------------------------------------------|
//! | `emptyDir`    | `kubernetes.io~empty-dir`    | an empty directory; or a tmpfs (`medium: Memory`) |
//! | `hostPath`    | (none: the node's own path)  | a file or directory of the node, type-checked |
//! | `configMap`   | `kubernetes.io~configmap`    | a ConfigMap's keys as files                |
//! | `secret`      | `kubernetes.io~secret`       | a Secret's keys as files                   |
//! | `downwardAPI` | `kubernetes.io~downward-api` | the pod's own metadata and resources       |
//! | `projected`   | `kubernetes.io~projected`    | several of the last three in one directory |
//!
//! ## Updates reach running containers
//!
//! A ConfigMap edited while its pod runs shows up in the container's files
//! within a minute or so, without a restart. The kubelet re-runs the setup
//! of configMap, secret, downwardAPI and projected volumes on every pod
//! sync, and writes their files with the **atomic writer** (see
//! [`atomic_writer`]): each version goes into a fresh timestamped directory,
//! a `..data` symlink is swapped to it in one `rename`, and the files the
//! user sees are links through `..data`. The container's bind mount holds
//! the volume directory itself, so it sees the new links at once, and never
//! half of an update. Labels and annotations in a downwardAPI volume follow
//! the pod the same way, which environment variables cannot. A `subPath`
//! mount is the exception, upstream as here: it binds one resolved file or
//! directory, so it keeps the version it started with.
//!
//! ## Calling it
//!
//! [`setup`] is idempotent and cheap when nothing changed (it fetches the
//! referenced ConfigMaps and Secrets and compares; nothing is rewritten),
//! so the agent calls it before creating a pod's containers **and** on
//! every later sync of the pod, as the kubelet does. Calls for one pod must
//! not overlap: the pod's worker is the one caller. [`PodVolumes::mounts`]
//! is called for each container right before it is created, because a
//! `subPath` resolves to the file that is current at that moment.
//!
//! Teardown needs no function of its own: the agent mounts nothing itself
//! (a `Memory` emptyDir is a tmpfs the runtime owns and removes with the
//! pod's sandbox), so deleting the pod's directory removes every volume.
//! That removal does not follow symlinks, and a hostPath never lives in the
//! pod's directory, so no node file is touched.
//!
//! ## Where tinykube simplifies
//! - Secrets are plain files under the pod's directory, on disk; upstream
//!   backs every secret volume with a tmpfs so that secrets never reach a
//!   disk.
//! - No persistent volumes: `persistentVolumeClaim`, CSI, NFS, `image` and
//!   the cloud disks are refused with an error naming the type, and so is
//!   a projected `serviceAccountToken`, since tinykube issues no tokens yet.
//! - No SELinux relabelling, no `fsGroup` ownership or mode changes, and
//!   `mountPropagation` and `recursiveReadOnly` are ignored.
//! - A disk emptyDir's `sizeLimit` is not enforced (upstream's eviction
//!   manager does that); a Memory emptyDir is sized by `sizeLimit` alone
//!   (upstream falls back to the pod's memory limit).
//! - ConfigMaps and Secrets are read from the api-server on every call
//!   instead of from a watch-based cache.
//! - `subPath` is checked to stay inside its volume after resolving
//!   symlinks, then handed to the runtime by path; upstream pins the
//!   checked file through an open file descriptor, closing the window in
//!   which a container could swap a component for a symlink.
//! - The apiserver does not validate or default volumes, so the checks
//!   upstream's validation makes (volume names, modes, item paths) are made
//!   here, and a volume with no source is an emptyDir, as upstream's
//!   defaulting would make it.
//!
//! # Layout
//! - this file: [`setup`], [`PodVolumes`] and the errors.
//! - [`atomic_writer`]: the timestamped-directory writer.
//! - [`payload`]: configMap, secret and downwardAPI file contents, as pure
//!   functions of the fetched objects.
//! - [`host_path`]: hostPath `type` checks.

pub mod atomic_writer;
pub mod host_path;
pub mod payload;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use api::ApiError;
use client::{Api, Client};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Volume, VolumeMount};

use crate::node::HostInfo;
use crate::runtime::{Mount, MountSource};
use payload::{NodeAllocatable, DEFAULT_MODE};

/// One file of a configMap, secret, downwardAPI or projected volume:
/// upstream's `FileProjection`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProjection {
    pub data: Vec<u8>,
    /// Permission bits, at most 0777.
    pub mode: u32,
}

/// A volume's files by path relative to the volume.
pub type Payload = BTreeMap<String, FileProjection>;

/// Why one volume could not be set up. Messages are upstream's where it
/// has one, because users search for them.
#[derive(Debug, thiserror::Error)]
pub enum SetUpError {
    /// The volume's name is not a DNS-1123 label, so it cannot name a folder.
    #[error("invalid volume name {name:?}: {reasons}")]
    InvalidVolumeName { name: String, reasons: String },
    /// The ConfigMap or Secret does not exist and the volume is not optional.
    #[error("{kind} {name:?} not found")]
    NotFound { kind: &'static str, name: String },
    /// The api-server could not be asked for the ConfigMap or Secret
    /// (boxed, as `ApiError` is large and rare here).
    #[error("cannot get {kind} {name:?}: {source}")]
    Api { kind: &'static str, name: String, source: Box<ApiError> },
    /// An item names a key the ConfigMap does not have.
    #[error("configmap references non-existent config key: {0}")]
    MissingConfigMapKey(String),
    /// An item names a key the Secret does not have.
    #[error("secret references non-existent secret key: {0}")]
    MissingSecretKey(String),
    /// A file path of the payload the atomic writer refuses.
    #[error("invalid path: {0}")]
    InvalidPath(String),
    /// A `mode` or `defaultMode` outside 0..=0777.
    #[error("invalid mode {0}: must be a number between 0 and 0777 (octal), both inclusive")]
    InvalidMode(i32),
    /// The hostPath exists but is not what its `type` says, or is missing.
    #[error("hostPath type check failed: {path} is not a {expected}")]
    HostPathType { path: String, expected: &'static str },
    /// A hostPath `type` that is not one of the known values.
    #[error("{0} is an invalid volume type")]
    InvalidHostPathType(String),
    /// A hostPath with a `..` component.
    #[error("invalid HostPath `{0}`: must not contain '..'")]
    HostPathBacksteps(String),
    /// A downwardAPI `fieldRef` a volume cannot carry.
    #[error("unsupported fieldPath: {0}")]
    UnsupportedFieldPath(String),
    /// A downwardAPI `resourceFieldRef` for a resource that has no value.
    #[error("unsupported container resource : {0}")]
    UnsupportedResource(String),
    /// A volume's `resourceFieldRef` must say which container it reads.
    #[error("resourceFieldRef of {0:?} must name its container (containerName)")]
    MissingContainerName(String),
    /// The `resourceFieldRef` names a container the pod does not have.
    #[error("container {0} not found")]
    ContainerNotFound(String),
    /// A resource quantity or divisor that does not parse.
    #[error("{0}")]
    InvalidQuantity(String),
    /// A volume type tinykube has no plugin for (`persistentVolumeClaim`, `nfs`, ...).
    #[error("{0} volumes are not supported by tinykube's agent")]
    UnsupportedVolumeType(String),
    /// An emptyDir medium other than the default disk and `Memory`.
    #[error("emptyDir medium {0:?} is not supported by tinykube's agent (only \"\" and \"Memory\")")]
    UnsupportedMedium(String),
    /// A projected source tinykube cannot produce.
    #[error("projected volume source {kind} is not supported by tinykube's agent: {reason}")]
    UnsupportedProjection { kind: &'static str, reason: &'static str },
    /// Reading or writing the node's files failed.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl SetUpError {
    /// Whether the pod's spec itself is at fault, so that retrying cannot
    /// help. Everything else (a missing object, the api-server, the node's
    /// files) may heal and is retried on the next sync.
    pub fn is_permanent(&self) -> bool {
        !matches!(
            self,
            SetUpError::NotFound { .. }
                | SetUpError::Api { .. }
                | SetUpError::MissingConfigMapKey(_)
                | SetUpError::MissingSecretKey(_)
                | SetUpError::HostPathType { .. }
                | SetUpError::Io { .. }
        )
    }
}

/// The volume manager's failures.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A volume could not be set up; the text of upstream's `FailedMount` event.
    #[error("MountVolume.SetUp failed for volume {volume:?} : {source}")]
    SetUp { volume: String, source: SetUpError },
    /// A volumeMount names a volume the pod does not have.
    #[error("cannot find volume {volume:?} to mount into container {container:?}")]
    UnknownVolume { volume: String, container: String },
    /// `subPath` (after expansion) is absolute.
    #[error("error SubPath `{0}` must not be an absolute path")]
    SubPathAbsolute(String),
    /// `subPath` (after expansion) has a `..` component.
    #[error("unable to provision SubPath `{0}`: must not contain '..'")]
    SubPathBacksteps(String),
    /// `subPathExpr` refers to variables the container does not define (or
    /// defines as empty).
    #[error("missing value for {0}")]
    SubPathExpr(String),
    /// The missing `subPath` directory could not be created. As upstream,
    /// the message leaves the node's paths out; the cause is the source.
    #[error("failed to create subPath directory for volumeMount {mount:?} of container {container:?}")]
    SubPathCreate { mount: String, container: String, source: io::Error },
    /// The `subPath` resolves, through symlinks, to outside its volume.
    #[error("subpath {path:?} not within volume path {volume_path:?}")]
    SubPathOutside { path: PathBuf, volume_path: PathBuf },
    /// A tmpfs is mounted whole; the runtime cannot mount a part of it.
    #[error("volumeMount {mount:?} of container {container:?}: subPath is not supported on an emptyDir with medium Memory in tinykube")]
    SubPathOnMemory { mount: String, container: String },
}

impl VolumeError {
    /// Whether the pod's spec itself is at fault (see
    /// [`SetUpError::is_permanent`]). A `subPathExpr` may start to resolve
    /// once a ConfigMap behind the environment changes, so it is retried.
    pub fn is_permanent(&self) -> bool {
        match self {
            VolumeError::SetUp { source, .. } => source.is_permanent(),
            VolumeError::UnknownVolume { .. }
            | VolumeError::SubPathAbsolute(_)
            | VolumeError::SubPathBacksteps(_)
            | VolumeError::SubPathOnMemory { .. } => true,
            VolumeError::SubPathExpr(_) | VolumeError::SubPathCreate { .. } | VolumeError::SubPathOutside { .. } => false,
        }
    }
}

/// Where a set-up volume's content is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Content {
    /// A directory or file of the node.
    Path(PathBuf),
    /// A tmpfs the runtime creates and shares between the pod's containers.
    Memory { name: String, size_limit: Option<u64> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SetUpVolume {
    content: Content,
    /// The plugin's own read-only attribute: configMap, secret,
    /// downwardAPI and projected volumes are always mounted read-only, so a
    /// container cannot corrupt what the agent keeps in sync.
    read_only: bool,
}

/// A pod's volumes, set up: what [`setup`] returns and
/// [`PodVolumes::mounts`] reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodVolumes {
    volumes: BTreeMap<String, SetUpVolume>,
}

/// Sets up every volume of `pod` under `<pods_dir>/volumes/`, where
/// `pods_dir` is the pod's own directory. Idempotent: call it before
/// creating the pod's containers and again on every sync so that
/// configMap, secret, downwardAPI and projected volumes follow their
/// sources. Every volume is attempted; the first failure is returned, and a
/// volume that failed keeps the content it had.
pub async fn setup(client: &Client, pod: &Pod, pods_dir: &Path) -> Result<PodVolumes, VolumeError> {
    setup_from(&ApiServer(client), pod, pods_dir).await
}

/// Where setup reads ConfigMaps and Secrets: the api-server, or a map in
/// tests. `Ok(None)` is "not found".
trait Objects {
    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>, ApiError>;
    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, ApiError>;
}

struct ApiServer<'a>(&'a Client);

impl Objects for ApiServer<'_> {
    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>, ApiError> {
        Api::<ConfigMap>::namespaced(self.0.clone(), namespace).get_opt(name).await
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, ApiError> {
        Api::<Secret>::namespaced(self.0.clone(), namespace).get_opt(name).await
    }
}

/// What one setup call knows about the pod, shared by its volumes.
struct PodContext<'a, O> {
    objects: &'a O,
    pod: &'a Pod,
    namespace: &'a str,
    uid: &'a str,
    volumes_dir: PathBuf,
    /// Read from the host on first use: only resource fields need it.
    allocatable: Option<NodeAllocatable>,
}

async fn setup_from(objects: &impl Objects, pod: &Pod, pods_dir: &Path) -> Result<PodVolumes, VolumeError> {
    let mut ctx = PodContext {
        objects,
        pod,
        namespace: pod.metadata.namespace.as_deref().unwrap_or("default"),
        uid: pod.metadata.uid.as_deref().unwrap_or_default(),
        volumes_dir: pods_dir.join("volumes"),
        allocatable: None,
    };
    let mut set_up = PodVolumes::default();
    let mut first_error = None;
    for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        match set_up_volume(&mut ctx, volume).await {
            Ok(v) => {
                set_up.volumes.insert(volume.name.clone(), v);
            }
            Err(source) => {
                let error = VolumeError::SetUp { volume: volume.name.clone(), source };
                tracing::debug!(pod = %ctx.uid, error = %error, "volume setup failed");
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(set_up),
    }
}

/// The mode of a disk emptyDir, as upstream's: any user of any container
/// may write to it.
const EMPTY_DIR_MODE: u32 = 0o777;
/// The directory holding a configMap's (or secret's, ...) versions. Not
/// writable by others, unlike upstream's (which wraps an emptyDir): with
/// the process runtime, containers are ordinary host processes.
const WRITER_DIR_MODE: u32 = 0o755;

async fn set_up_volume<O: Objects>(ctx: &mut PodContext<'_, O>, volume: &Volume) -> Result<SetUpVolume, SetUpError> {
    let reasons = api::names::validate_label(&volume.name);
    if !reasons.is_empty() {
        return Err(SetUpError::InvalidVolumeName { name: volume.name.clone(), reasons: reasons.join("; ") });
    }
    let dir = |plugin: &str| ctx.volumes_dir.join(format!("kubernetes.io~{plugin}")).join(&volume.name);
    let writable = |path: PathBuf| SetUpVolume { content: Content::Path(path), read_only: false };
    let read_only = |path: PathBuf| SetUpVolume { content: Content::Path(path), read_only: true };

    if let Some(source) = &volume.host_path {
        host_path::set_up(&source.path, source.type_.as_deref().unwrap_or(host_path::UNSET))?;
        return Ok(writable(PathBuf::from(&source.path)));
    }
    if let Some(source) = &volume.config_map {
        let optional = source.optional == Some(true);
        let object = fetch_config_map(ctx, &source.name, optional).await?;
        let items = source.items.as_deref().unwrap_or_default();
        let payload = payload::config_map_payload(items, &object, source.default_mode.unwrap_or(DEFAULT_MODE), optional)?;
        return write_volume(dir("configmap"), &payload).map(read_only);
    }
    if let Some(source) = &volume.secret {
        let optional = source.optional == Some(true);
        let object = fetch_secret(ctx, source.secret_name.as_deref().unwrap_or_default(), optional).await?;
        let items = source.items.as_deref().unwrap_or_default();
        let payload = payload::secret_payload(items, &object, source.default_mode.unwrap_or(DEFAULT_MODE), optional)?;
        return write_volume(dir("secret"), &payload).map(read_only);
    }
    if let Some(source) = &volume.downward_api {
        let items = source.items.as_deref().unwrap_or_default();
        let node = *ctx.allocatable.get_or_insert_with(|| NodeAllocatable::from_host(&HostInfo::read()));
        let payload = payload::downward_api_payload(items, ctx.pod, &node, source.default_mode.unwrap_or(DEFAULT_MODE))?;
        return write_volume(dir("downward-api"), &payload).map(read_only);
    }
    if let Some(source) = &volume.projected {
        let default_mode = source.default_mode.unwrap_or(DEFAULT_MODE);
        let mut payload = Payload::new();
        // Later sources win a path two of them project, as upstream.
        for projection in source.sources.iter().flatten() {
            if let Some(p) = &projection.config_map {
                let optional = p.optional == Some(true);
                let object = fetch_config_map(ctx, &p.name, optional).await?;
                payload.extend(payload::config_map_payload(p.items.as_deref().unwrap_or_default(), &object, default_mode, optional)?);
            }
            if let Some(p) = &projection.secret {
                let optional = p.optional == Some(true);
                let object = fetch_secret(ctx, &p.name, optional).await?;
                payload.extend(payload::secret_payload(p.items.as_deref().unwrap_or_default(), &object, default_mode, optional)?);
            }
            if let Some(p) = &projection.downward_api {
                let node = *ctx.allocatable.get_or_insert_with(|| NodeAllocatable::from_host(&HostInfo::read()));
                payload.extend(payload::downward_api_payload(p.items.as_deref().unwrap_or_default(), ctx.pod, &node, default_mode)?);
            }
            if projection.service_account_token.is_some() {
                return Err(SetUpError::UnsupportedProjection {
                    kind: "serviceAccountToken",
                    reason: "tinykube issues no service account tokens yet",
                });
            }
            if projection.cluster_trust_bundle.is_some() {
                return Err(SetUpError::UnsupportedProjection {
                    kind: "clusterTrustBundle",
                    reason: "tinykube serves no ClusterTrustBundles",
                });
            }
        }
        return write_volume(dir("projected"), &payload).map(read_only);
    }
    if let Some(kind) = other_volume_type(volume) {
        return Err(SetUpError::UnsupportedVolumeType(kind));
    }

    // emptyDir, given or (no source at all) by upstream's defaulting.
    let source = volume.empty_dir.clone().unwrap_or_default();
    match source.medium.as_deref().unwrap_or_default() {
        "" => {
            let path = dir("empty-dir");
            make_dir(&path, EMPTY_DIR_MODE)?;
            Ok(writable(path))
        }
        "Memory" => {
            let size_limit = source
                .size_limit
                .as_ref()
                .map(|q| api::quantity::bytes(q).map_err(SetUpError::InvalidQuantity))
                .transpose()?
                .map(|bytes| u64::try_from(bytes).unwrap_or(0));
            // The runtime makes the tmpfs; the name is unique on the node.
            Ok(SetUpVolume {
                content: Content::Memory { name: format!("{}-{}", ctx.uid, volume.name), size_limit },
                read_only: false,
            })
        }
        other => Err(SetUpError::UnsupportedMedium(other.to_string())),
    }
}

/// The type of a volume none of tinykube's plugins handle, by its field
/// name in the API (`persistentVolumeClaim`, `nfs`, ...).
fn other_volume_type(volume: &Volume) -> Option<String> {
    let value = serde_json::to_value(volume).ok()?;
    let known = ["name", "emptyDir", "hostPath", "configMap", "secret", "downwardAPI", "projected"];
    value.as_object()?.keys().find(|k| !known.contains(&k.as_str())).cloned()
}

async fn fetch_config_map<O: Objects>(ctx: &PodContext<'_, O>, name: &str, optional: bool) -> Result<ConfigMap, SetUpError> {
    match ctx.objects.config_map(ctx.namespace, name).await {
        Ok(Some(object)) => Ok(object),
        // An optional volume whose object is missing is empty, not an error.
        Ok(None) if optional => Ok(ConfigMap::default()),
        Ok(None) => Err(SetUpError::NotFound { kind: "configmap", name: name.to_string() }),
        Err(source) => Err(SetUpError::Api { kind: "configmap", name: name.to_string(), source: Box::new(source) }),
    }
}

async fn fetch_secret<O: Objects>(ctx: &PodContext<'_, O>, name: &str, optional: bool) -> Result<Secret, SetUpError> {
    match ctx.objects.secret(ctx.namespace, name).await {
        Ok(Some(object)) => Ok(object),
        Ok(None) if optional => Ok(Secret::default()),
        Ok(None) => Err(SetUpError::NotFound { kind: "secret", name: name.to_string() }),
        Err(source) => Err(SetUpError::Api { kind: "secret", name: name.to_string(), source: Box::new(source) }),
    }
}

/// Creates `dir` (and its parents) if missing, with exactly `mode`.
fn make_dir(dir: &Path, mode: u32) -> Result<(), SetUpError> {
    let io_error = |source| SetUpError::Io { path: dir.to_path_buf(), source };
    fs::DirBuilder::new().recursive(true).mode(mode).create(dir).map_err(io_error)?;
    // The umask trims the mode given to mkdir.
    if fs::metadata(dir).map_err(io_error)?.permissions().mode() & 0o7777 != mode {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode)).map_err(io_error)?;
    }
    Ok(())
}

fn write_volume(dir: PathBuf, payload: &Payload) -> Result<PathBuf, SetUpError> {
    make_dir(&dir, WRITER_DIR_MODE)?;
    atomic_writer::write(&dir, payload)?;
    Ok(dir)
}

impl PodVolumes {
    /// `container`'s volumeMounts as the runtime's [`Mount`]s, in order
    /// (upstream's `makeMounts`). `env` is the container's resolved
    /// environment (see [`crate::env::resolve`]), which `subPathExpr`
    /// expands. A missing `subPath` directory is created, as the kubelet
    /// does, with the mode of the volume's own directory.
    pub fn mounts(&self, container: &Container, env: &[(String, String)]) -> Result<Vec<Mount>, VolumeError> {
        container.volume_mounts.iter().flatten().map(|m| self.mount(container, m, env)).collect()
    }

    fn mount(&self, container: &Container, mount: &VolumeMount, env: &[(String, String)]) -> Result<Mount, VolumeError> {
        let volume = self
            .volumes
            .get(&mount.name)
            .ok_or_else(|| VolumeError::UnknownVolume { volume: mount.name.clone(), container: container.name.clone() })?;
        let sub_path = match mount.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
            Some(expr) => expand_sub_path_expr(expr, env)?,
            None => mount.sub_path.clone().unwrap_or_default(),
        };
        let source = match &volume.content {
            Content::Memory { .. } if !sub_path.is_empty() => {
                return Err(VolumeError::SubPathOnMemory { mount: mount.name.clone(), container: container.name.clone() });
            }
            Content::Memory { name, size_limit } => MountSource::Memory { name: name.clone(), size_limit: *size_limit },
            Content::Path(path) if sub_path.is_empty() => MountSource::HostPath(path.clone()),
            Content::Path(path) => MountSource::HostPath(prepare_sub_path(path, &sub_path, mount, container)?),
        };
        Ok(Mount {
            source,
            container_path: mount.mount_path.clone(),
            read_only: mount.read_only == Some(true) || volume.read_only,
        })
    }
}

/// Expands `$(VAR)` in a `subPathExpr` from the container's environment.
/// Unlike a command line, an undefined or empty variable is an error:
/// mounting the volume's root instead would be a silent surprise.
fn expand_sub_path_expr(expr: &str, env: &[(String, String)]) -> Result<String, VolumeError> {
    let missing = RefCell::new(BTreeSet::new());
    let expanded = crate::env::expand(expr, |name| match env.iter().rev().find(|(k, _)| k == name) {
        Some((_, v)) if !v.is_empty() => Some(v.clone()),
        _ => {
            missing.borrow_mut().insert(name.to_string());
            None
        }
    });
    let missing = missing.into_inner();
    if !missing.is_empty() {
        return Err(VolumeError::SubPathExpr(missing.into_iter().collect::<Vec<_>>().join(", ")));
    }
    Ok(expanded)
}

/// The host path for `sub_path` of the volume at `volume_path`: validated
/// as upstream validates it, created if missing, and resolved through
/// symlinks, which must not lead out of the volume.
fn prepare_sub_path(volume_path: &Path, sub_path: &str, mount: &VolumeMount, container: &Container) -> Result<PathBuf, VolumeError> {
    if Path::new(sub_path).is_absolute() {
        return Err(VolumeError::SubPathAbsolute(sub_path.to_string()));
    }
    if sub_path.split('/').any(|part| part == "..") {
        return Err(VolumeError::SubPathBacksteps(sub_path.to_string()));
    }
    let host_path = volume_path.join(sub_path);
    if fs::metadata(&host_path).is_err() {
        // Created now rather than by the runtime, which would make it
        // root's with the runtime's umask.
        let create_error = |source| VolumeError::SubPathCreate { mount: mount.name.clone(), container: container.name.clone(), source };
        let mode = fs::metadata(volume_path).map_err(create_error)?.permissions().mode() & 0o7777;
        let mut dir = volume_path.to_path_buf();
        for part in sub_path.split('/').filter(|p| !p.is_empty() && *p != ".") {
            dir.push(part);
            match fs::DirBuilder::new().mode(mode).create(&dir) {
                Ok(()) => fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).map_err(create_error)?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(create_error(e)),
            }
        }
    }
    let outside = || VolumeError::SubPathOutside { path: host_path.clone(), volume_path: volume_path.to_path_buf() };
    let resolved = fs::canonicalize(&host_path).map_err(|_| outside())?;
    let base = fs::canonicalize(volume_path).map_err(|_| outside())?;
    if !resolved.starts_with(&base) {
        return Err(outside());
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapProjection, ConfigMapVolumeSource, DownwardAPIProjection, DownwardAPIVolumeFile, DownwardAPIVolumeSource,
        EmptyDirVolumeSource, HostPathVolumeSource, KeyToPath, NFSVolumeSource, ObjectFieldSelector, PersistentVolumeClaimVolumeSource,
        PodSpec, ProjectedVolumeSource, SecretProjection, SecretVolumeSource, ServiceAccountTokenProjection, VolumeProjection,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::ByteString;
    use std::sync::Mutex;

    /// ConfigMaps and Secrets of namespace `default`, editable between calls.
    #[derive(Default)]
    struct FakeObjects {
        config_maps: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
        secrets: Mutex<BTreeMap<String, BTreeMap<String, Vec<u8>>>>,
        unreachable: bool,
    }

    impl FakeObjects {
        fn put_config_map(&self, name: &str, data: &[(&str, &str)]) {
            let data = data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            self.config_maps.lock().unwrap().insert(name.to_string(), data);
        }
    }

    impl Objects for FakeObjects {
        async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>, ApiError> {
            assert_eq!(namespace, "default");
            if self.unreachable {
                return Err(ApiError::internal("connection refused".to_string()));
            }
            Ok(self.config_maps.lock().unwrap().get(name).map(|d| ConfigMap { data: Some(d.clone()), ..Default::default() }))
        }

        async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, ApiError> {
            assert_eq!(namespace, "default");
            Ok(self.secrets.lock().unwrap().get(name).map(|d| Secret {
                data: Some(d.iter().map(|(k, v)| (k.clone(), ByteString(v.clone()))).collect()),
                ..Default::default()
            }))
        }
    }

    fn pod(volumes: Vec<Volume>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("uid-1".into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec { volumes: Some(volumes), ..Default::default() }),
            ..Default::default()
        }
    }

    fn config_map_volume(name: &str, config_map: &str, items: Option<Vec<KeyToPath>>, optional: Option<bool>) -> Volume {
        Volume {
            name: name.into(),
            config_map: Some(ConfigMapVolumeSource { name: config_map.into(), items, optional, default_mode: None }),
            ..Default::default()
        }
    }

    fn empty_dir(name: &str, medium: Option<&str>, size_limit: Option<&str>) -> Volume {
        Volume {
            name: name.into(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: medium.map(str::to_string),
                size_limit: size_limit.map(|s| Quantity(s.into())),
            }),
            ..Default::default()
        }
    }

    fn host_path(name: &str, path: &Path, type_: Option<&str>) -> Volume {
        Volume {
            name: name.into(),
            host_path: Some(HostPathVolumeSource { path: path.display().to_string(), type_: type_.map(str::to_string) }),
            ..Default::default()
        }
    }

    fn volume_mount(name: &str, path: &str) -> VolumeMount {
        VolumeMount { name: name.into(), mount_path: path.into(), ..Default::default() }
    }

    fn container(mounts: Vec<VolumeMount>) -> Container {
        Container { name: "app".into(), volume_mounts: Some(mounts), ..Default::default() }
    }

    /// Pod workers are spawned tasks, so setup's future must be `Send`;
    /// this fails to compile if it stops being so.
    #[allow(dead_code)]
    fn setup_is_send<'a>(client: &'a Client, pod: &'a Pod, dir: &'a Path) -> impl std::future::Future + Send + 'a {
        setup(client, pod, dir)
    }

    async fn set_up_error(objects: &FakeObjects, volume: Volume) -> String {
        let dir = tempfile::tempdir().unwrap();
        setup_from(objects, &pod(vec![volume]), dir.path()).await.unwrap_err().to_string()
    }

    #[tokio::test]
    async fn a_config_map_edit_reaches_the_volume() {
        let objects = FakeObjects::default();
        objects.put_config_map("conf", &[("app.yaml", "v: 1")]);
        let dir = tempfile::tempdir().unwrap();
        let pod = pod(vec![config_map_volume("config", "conf", None, None)]);

        let volumes = setup_from(&objects, &pod, dir.path()).await.unwrap();
        let volume_dir = dir.path().join("volumes/kubernetes.io~configmap/config");
        assert_eq!(fs::read_to_string(volume_dir.join("app.yaml")).unwrap(), "v: 1");
        let mounts = volumes.mounts(&container(vec![volume_mount("config", "/etc/app")]), &[]).unwrap();
        assert_eq!(
            mounts,
            [Mount {
                source: MountSource::HostPath(volume_dir.clone()),
                container_path: "/etc/app".into(),
                read_only: true
            }]
        );

        objects.put_config_map("conf", &[("app.yaml", "v: 2"), ("extra", "x")]);
        setup_from(&objects, &pod, dir.path()).await.unwrap();
        assert_eq!(fs::read_to_string(volume_dir.join("app.yaml")).unwrap(), "v: 2");
        assert_eq!(fs::read_to_string(volume_dir.join("extra")).unwrap(), "x");

        // A deleted, non-optional ConfigMap is an error and the files stay.
        objects.config_maps.lock().unwrap().clear();
        let err = setup_from(&objects, &pod, dir.path()).await.unwrap_err();
        assert_eq!(err.to_string(), "MountVolume.SetUp failed for volume \"config\" : configmap \"conf\" not found");
        assert!(!err.is_permanent());
        assert_eq!(fs::read_to_string(volume_dir.join("app.yaml")).unwrap(), "v: 2");
    }

    #[tokio::test]
    async fn secret_and_downward_api_volumes() {
        let objects = FakeObjects::default();
        objects.secrets.lock().unwrap().insert("creds".into(), [("password".to_string(), b"hunter2".to_vec())].into());
        let dir = tempfile::tempdir().unwrap();
        let mut p = pod(vec![
            Volume {
                name: "creds".into(),
                secret: Some(SecretVolumeSource { secret_name: Some("creds".into()), default_mode: Some(0o400), ..Default::default() }),
                ..Default::default()
            },
            Volume {
                name: "info".into(),
                downward_api: Some(DownwardAPIVolumeSource {
                    items: Some(vec![DownwardAPIVolumeFile {
                        path: "labels".into(),
                        field_ref: Some(ObjectFieldSelector { field_path: "metadata.labels".into(), api_version: None }),
                        ..Default::default()
                    }]),
                    default_mode: None,
                }),
                ..Default::default()
            },
        ]);
        setup_from(&objects, &p, dir.path()).await.unwrap();
        let password = dir.path().join("volumes/kubernetes.io~secret/creds/password");
        assert_eq!(fs::read_to_string(&password).unwrap(), "hunter2");
        assert_eq!(fs::metadata(&password).unwrap().permissions().mode() & 0o777, 0o400);
        let labels = dir.path().join("volumes/kubernetes.io~downward-api/info/labels");
        assert_eq!(fs::read_to_string(&labels).unwrap(), "app=\"web\"");

        // A label added to the running pod shows up on the next sync.
        p.metadata.labels.as_mut().unwrap().insert("version".into(), "2".into());
        setup_from(&objects, &p, dir.path()).await.unwrap();
        assert_eq!(fs::read_to_string(&labels).unwrap(), "app=\"web\"\nversion=\"2\"");
    }

    #[tokio::test]
    async fn projected_volumes_combine_sources() {
        let objects = FakeObjects::default();
        objects.put_config_map("conf", &[("a", "1"), ("b", "2")]);
        objects.secrets.lock().unwrap().insert("creds".into(), [("token".to_string(), b"t".to_vec())].into());
        let dir = tempfile::tempdir().unwrap();
        let projected = |sources: Vec<VolumeProjection>| Volume {
            name: "all".into(),
            projected: Some(ProjectedVolumeSource { sources: Some(sources), default_mode: Some(0o440) }),
            ..Default::default()
        };
        let sources = vec![
            VolumeProjection {
                config_map: Some(ConfigMapProjection {
                    name: "conf".into(),
                    items: Some(vec![KeyToPath { key: "a".into(), path: "conf/a".into(), mode: None }]),
                    optional: None,
                }),
                ..Default::default()
            },
            VolumeProjection {
                secret: Some(SecretProjection { name: "creds".into(), items: None, optional: None }),
                ..Default::default()
            },
            VolumeProjection {
                secret: Some(SecretProjection { name: "absent".into(), items: None, optional: Some(true) }),
                ..Default::default()
            },
            VolumeProjection {
                downward_api: Some(DownwardAPIProjection {
                    items: Some(vec![DownwardAPIVolumeFile {
                        path: "name".into(),
                        field_ref: Some(ObjectFieldSelector { field_path: "metadata.name".into(), api_version: None }),
                        mode: Some(0o444),
                        ..Default::default()
                    }]),
                }),
                ..Default::default()
            },
        ];
        setup_from(&objects, &pod(vec![projected(sources)]), dir.path()).await.unwrap();
        let root = dir.path().join("volumes/kubernetes.io~projected/all");
        for (path, content, mode) in [("conf/a", "1", 0o440), ("token", "t", 0o440), ("name", "web", 0o444)] {
            assert_eq!(fs::read_to_string(root.join(path)).unwrap(), content, "{path}");
            assert_eq!(fs::metadata(root.join(path)).unwrap().permissions().mode() & 0o777, mode, "{path}");
        }
        assert!(fs::symlink_metadata(root.join("b")).is_err());

        let token = VolumeProjection {
            service_account_token: Some(ServiceAccountTokenProjection { path: "token".into(), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(
            set_up_error(&objects, projected(vec![token])).await,
            "MountVolume.SetUp failed for volume \"all\" : projected volume source serviceAccountToken is not supported by \
             tinykube's agent: tinykube issues no service account tokens yet"
        );
    }

    #[tokio::test]
    async fn set_up_errors_name_the_volume_and_say_why() {
        let objects = FakeObjects::default();
        objects.put_config_map("conf", &[("a", "1")]);
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let item = |key: &str, path: &str| Some(vec![KeyToPath { key: key.into(), path: path.into(), mode: None }]);
        for (volume, want, permanent) in [
            (config_map_volume("c", "absent", None, None), "configmap \"absent\" not found", false),
            (config_map_volume("c", "conf", item("k", "k"), None), "configmap references non-existent config key: k", false),
            (config_map_volume("c", "conf", item("a", "/etc/passwd"), None), "invalid path: must be relative path: /etc/passwd", true),
            (config_map_volume("c", "conf", item("a", "../../x"), None), "invalid path: must not contain '..': ../../x", true),
            (
                host_path("h", &missing, Some("Directory")),
                &*format!("hostPath type check failed: {} is not a directory", missing.display()),
                false,
            ),
            (
                Volume {
                    name: "s".into(),
                    secret: Some(SecretVolumeSource { secret_name: Some("absent".into()), ..Default::default() }),
                    ..Default::default()
                },
                "secret \"absent\" not found",
                false,
            ),
            (
                Volume {
                    name: "claim".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource { claim_name: "data".into(), read_only: None }),
                    ..Default::default()
                },
                "persistentVolumeClaim volumes are not supported by tinykube's agent",
                true,
            ),
            (
                Volume {
                    name: "n".into(),
                    nfs: Some(NFSVolumeSource { server: "s".into(), path: "/".into(), read_only: None }),
                    ..Default::default()
                },
                "nfs volumes are not supported by tinykube's agent",
                true,
            ),
            (
                empty_dir("e", Some("HugePages"), None),
                "emptyDir medium \"HugePages\" is not supported by tinykube's agent (only \"\" and \"Memory\")",
                true,
            ),
            (empty_dir("../x", None, None), "invalid volume name \"../x\"", true),
        ] {
            let name = volume.name.clone();
            let err = setup_from(&objects, &pod(vec![volume]), dir.path()).await.unwrap_err();
            let prefix = format!("MountVolume.SetUp failed for volume {name:?} : ");
            let message = err.to_string();
            assert!(message.starts_with(&prefix), "{message}");
            assert!(message[prefix.len()..].starts_with(want), "{message}");
            assert_eq!(err.is_permanent(), permanent, "{message}");
        }
        assert!(!missing.exists());
        let unreachable = FakeObjects { unreachable: true, ..Default::default() };
        let err = set_up_error(&unreachable, config_map_volume("c", "conf", None, None)).await;
        assert_eq!(
            err,
            "MountVolume.SetUp failed for volume \"c\" : cannot get configmap \"conf\": Internal error occurred: connection refused"
        );
    }

    #[tokio::test]
    async fn optional_sources_may_be_missing() {
        let objects = FakeObjects::default();
        let dir = tempfile::tempdir().unwrap();
        let items = Some(vec![KeyToPath { key: "a".into(), path: "a".into(), mode: None }]);
        setup_from(&objects, &pod(vec![config_map_volume("c", "absent", items, Some(true))]), dir.path()).await.unwrap();
        let root = dir.path().join("volumes/kubernetes.io~configmap/c");
        assert_eq!(fs::read_dir(&root).unwrap().count(), 2, "only ..data and its version");

        // Created later, it fills the volume on the next sync.
        objects.put_config_map("absent", &[("a", "1")]);
        setup_from(&objects, &pod(vec![config_map_volume("c", "absent", None, Some(true))]), dir.path()).await.unwrap();
        assert_eq!(fs::read_to_string(root.join("a")).unwrap(), "1");
    }

    #[tokio::test]
    async fn empty_dirs_on_disk_and_in_memory() {
        let objects = FakeObjects::default();
        let dir = tempfile::tempdir().unwrap();
        let p = pod(vec![
            empty_dir("cache", None, None),
            empty_dir("shm", Some("Memory"), Some("64Mi")),
            // No source at all: an emptyDir, as upstream's defaulting makes it.
            Volume { name: "bare".into(), ..Default::default() },
        ]);
        let volumes = setup_from(&objects, &p, dir.path()).await.unwrap();
        let cache = dir.path().join("volumes/kubernetes.io~empty-dir/cache");
        assert_eq!(fs::metadata(&cache).unwrap().permissions().mode() & 0o777, 0o777);
        fs::write(cache.join("kept"), "x").unwrap();
        // Setting up again keeps what the containers wrote.
        setup_from(&objects, &p, dir.path()).await.unwrap();
        assert!(cache.join("kept").exists());

        let c = container(vec![volume_mount("cache", "/cache"), volume_mount("shm", "/dev/shm"), volume_mount("bare", "/bare")]);
        let mounts = volumes.mounts(&c, &[]).unwrap();
        assert_eq!(mounts[0], Mount { source: MountSource::HostPath(cache), container_path: "/cache".into(), read_only: false });
        assert_eq!(
            mounts[1],
            Mount {
                source: MountSource::Memory { name: "uid-1-shm".into(), size_limit: Some(64 << 20) },
                container_path: "/dev/shm".into(),
                read_only: false
            }
        );
        assert_eq!(mounts[2].source, MountSource::HostPath(dir.path().join("volumes/kubernetes.io~empty-dir/bare")));
    }

    #[tokio::test]
    async fn read_only_is_the_mount_s_or_the_plugin_s() {
        let objects = FakeObjects::default();
        objects.put_config_map("conf", &[("a", "1")]);
        let dir = tempfile::tempdir().unwrap();
        let p = pod(vec![
            empty_dir("scratch", None, None),
            config_map_volume("config", "conf", None, None),
            host_path("host", dir.path(), None),
        ]);
        let volumes = setup_from(&objects, &p, dir.path()).await.unwrap();
        for (volume, read_only, want) in [
            ("scratch", None, false),
            ("scratch", Some(false), false),
            ("scratch", Some(true), true),
            ("host", None, false),
            ("host", Some(true), true),
            ("config", None, true),
            ("config", Some(false), true),
        ] {
            let c = container(vec![VolumeMount { read_only, ..volume_mount(volume, "/m") }]);
            assert_eq!(volumes.mounts(&c, &[]).unwrap()[0].read_only, want, "{volume} {read_only:?}");
        }
    }

    #[tokio::test]
    async fn sub_paths() {
        let objects = FakeObjects::default();
        objects.put_config_map("conf", &[("nginx.conf", "x")]);
        let dir = tempfile::tempdir().unwrap();
        let p = pod(vec![
            empty_dir("data", None, None),
            config_map_volume("config", "conf", None, None),
            empty_dir("shm", Some("Memory"), None),
        ]);
        let volumes = setup_from(&objects, &p, dir.path()).await.unwrap();
        let data = fs::canonicalize(dir.path().join("volumes/kubernetes.io~empty-dir/data")).unwrap();
        let env = vec![("POD_NAME".to_string(), "web-0".to_string()), ("EMPTY".to_string(), String::new())];

        let with = |volume: &str, sub_path: Option<&str>, expr: Option<&str>| {
            let m = VolumeMount {
                sub_path: sub_path.map(str::to_string),
                sub_path_expr: expr.map(str::to_string),
                ..volume_mount(volume, "/m")
            };
            match volumes.mounts(&container(vec![m]), &env) {
                Ok(mounts) => Ok(mounts.into_iter().next().unwrap().source),
                Err(e) => Err(e.to_string()),
            }
        };
        for (volume, sub_path, expr, want) in [
            ("data", Some("logs/app"), None, Ok(MountSource::HostPath(data.join("logs/app")))),
            ("data", Some(""), None, Ok(MountSource::HostPath(dir.path().join("volumes/kubernetes.io~empty-dir/data")))),
            ("data", None, Some("pods/$(POD_NAME)"), Ok(MountSource::HostPath(data.join("pods/web-0")))),
            ("data", Some("ignored"), Some("$(POD_NAME)"), Ok(MountSource::HostPath(data.join("web-0")))),
            ("data", None, Some("$(EMPTY)/$(NOPE)/$(POD_NAME)"), Err("missing value for EMPTY, NOPE".to_string())),
            ("data", Some("/etc"), None, Err("error SubPath `/etc` must not be an absolute path".to_string())),
            ("data", Some("a/../../x"), None, Err("unable to provision SubPath `a/../../x`: must not contain '..'".to_string())),
            ("data", None, Some("../$(POD_NAME)"), Err("unable to provision SubPath `../web-0`: must not contain '..'".to_string())),
            (
                "shm",
                Some("x"),
                None,
                Err("volumeMount \"shm\" of container \"app\": subPath is not supported on an emptyDir with medium Memory in tinykube"
                    .to_string()),
            ),
            ("nope", None, None, Err("cannot find volume \"nope\" to mount into container \"app\"".to_string())),
        ] {
            assert_eq!(with(volume, sub_path, expr), want, "{volume} {sub_path:?} {expr:?}");
        }
        let created = data.join("logs/app");
        assert!(created.is_dir());
        assert_eq!(fs::metadata(&created).unwrap().permissions().mode() & 0o777, 0o777, "the volume's mode");

        // A key of a configMap resolves to the file of the current version.
        let Ok(MountSource::HostPath(file)) = with("config", Some("nginx.conf"), None) else { panic!("no mount") };
        assert_eq!(fs::read_to_string(&file).unwrap(), "x");
        assert!(file.parent().unwrap().file_name().unwrap().to_str().unwrap().starts_with("..20"), "{}", file.display());

        // A symlink planted by a container cannot lead out of the volume.
        std::os::unix::fs::symlink("/etc", data.join("escape")).unwrap();
        let err = with("data", Some("escape"), None).unwrap_err();
        assert!(err.starts_with("subpath ") && err.contains("not within volume path"), "{err}");
    }
}
