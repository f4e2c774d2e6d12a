//! The registry: every object operation, over the etcd v3 interface.
//!
//! This is kube-apiserver's generic REST storage (`k8s.io/apiserver/pkg/registry/generic/registry/store.go`)
//! in one file. Whatever the front door (gRPC today, REST next), a request
//! ends up here as an operation on JSON objects of one [`ResourceInfo`]:
//!
//! - **resourceVersion is the store's revision.** Objects are stored
//!   without it; on the way out it is set to the key's `mod_revision`, and
//!   a list carries the revision the read was served at.
//! - **Writes are compare-and-swap.** Create is a txn guarded by
//!   "key absent"; update and delete are guarded by the `mod_revision` that
//!   was read, so two writers can never both win. A client that sent a
//!   resourceVersion gets 409 Conflict when it is stale; one that did not
//!   is retried against the fresh object (upstream's `GuaranteedUpdate`).
//! - **Graceful pod deletion.** Deleting a pod that a node runs only sets
//!   `deletionTimestamp`; the node's agent stops the containers and then
//!   deletes the object with a zero grace period, as the kubelet does.

use std::sync::Arc;

use api::fields::FieldSelector;
use api::labels::Selector;
use api::status::FieldError;
use api::{ApiError, ResourceInfo};
use serde_json::{json, Value};
use store::{Compare, CompareResult, CompareTarget, DeleteRangeRequest, KeyValue, Kv, PutRequest, RangeRequest, RequestOp, TxnRequest};

use crate::defaulttolerationseconds::DefaultTolerationSeconds;
use crate::strategy::{self, Op};

/// The namespaces every cluster has.
pub const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// How many times an update without a resourceVersion is retried when
/// another writer wins the race.
const UPDATE_RETRIES: usize = 16;

/// The largest object the store accepts, as etcd's default request limit.
pub const MAX_OBJECT_BYTES: usize = 3 * 1024 * 1024 / 2;

/// Object storage for every kind, over any [`Kv`].
#[derive(Clone)]
pub struct Registry {
    kv: Arc<dyn Kv>,
    /// How the api-server proves itself to node agents (logs, exec), as
    /// kube-apiserver's `--kubelet-client-certificate`.
    kubelet_client: Option<Arc<client::Credentials>>,
    /// The DefaultTolerationSeconds admission plugin's configuration.
    default_toleration_seconds: DefaultTolerationSeconds,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

/// A list result: matching objects and the revision the read was at.
#[derive(Debug, Clone)]
pub struct ListResult {
    pub items: Vec<Value>,
    pub revision: i64,
}

/// Parsed list/watch filters.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub labels: Selector,
    pub fields: FieldSelector,
}

impl Filter {
    /// Parses `labelSelector` and `fieldSelector`, rejecting fields the
    /// kind does not support, with upstream's message.
    pub fn parse(info: &ResourceInfo, labels: &str, fields: &str) -> Result<Self, ApiError> {
        let labels = Selector::parse(labels).map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(fields).map_err(ApiError::bad_request)?;
        let probe = json!({});
        for t in &fields.terms {
            if strategy::field_value(info, &probe, &t.field).is_none() {
                return Err(ApiError::bad_request(format!("field label not supported: {}", t.field)));
            }
        }
        Ok(Filter { labels, fields })
    }

    pub fn matches(&self, info: &ResourceInfo, obj: &Value) -> bool {
        let labels: std::collections::BTreeMap<String, String> =
            serde_json::from_value(obj["metadata"]["labels"].clone()).unwrap_or_default();
        self.labels.matches(&labels) && self.fields.matches(|f| strategy::field_value(info, obj, f))
    }
}

/// How strictly a write treats fields the kind does not have
/// (`?fieldValidation=`), as upstream's server-side field validation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop unknown fields silently.
    Ignore,
    /// Drop them, and say so in a `Warning` (upstream's default).
    #[default]
    Warn,
    /// Refuse the request, naming the fields.
    Strict,
}

impl FieldValidation {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        match s {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Ignore" => Ok(FieldValidation::Ignore),
            "Strict" => Ok(FieldValidation::Strict),
            other => {
                Err(ApiError::bad_request(format!("fieldValidation parameter unsupported: {other} (supported: Ignore, Warn, Strict)")))
            }
        }
    }
}

/// Options of a create or update.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// Validate and default, but store nothing (`dryRun=All`).
    pub dry_run: bool,
    pub validation: FieldValidation,
}

/// A successful write: the object as stored, and warnings for the client.
#[derive(Debug, Clone)]
pub struct Written {
    pub object: Value,
    pub warnings: Vec<String>,
}

/// A successful delete.
#[derive(Debug, Clone)]
pub struct Deleted {
    /// The object as it was last seen, or as it now is while pending.
    pub object: Value,
    /// The object still exists: a node must stop the pod, or finalizers
    /// must run, before it goes.
    pub pending: bool,
}

/// A page of a list (`?limit=` / `?continue=`).
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Value>,
    /// The revision the whole list is read at.
    pub revision: i64,
    /// Token for the next page; empty on the last one.
    pub continue_token: String,
    /// Objects not yet returned (before filtering), when there are more.
    pub remaining: Option<i64>,
}

fn store_err(e: store::Error) -> ApiError {
    match e {
        store::Error::Compacted { .. } => ApiError::expired(format!("too old resource version: {e}")),
        store::Error::FutureRevision => ApiError::bad_request(e.to_string()),
        other => ApiError::internal(other),
    }
}

/// Decodes a stored object and stamps its resourceVersion.
pub fn decode(kv: &KeyValue) -> Result<Value, ApiError> {
    let mut obj: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object under {:?} is not JSON: {e}", String::from_utf8_lossy(&kv.key))))?;
    set_meta(&mut obj, "resourceVersion", Some(Value::String(kv.mod_revision.to_string())));
    Ok(obj)
}

fn encode(obj: &Value) -> Result<Vec<u8>, ApiError> {
    let mut stored = obj.clone();
    if let Some(meta) = stored["metadata"].as_object_mut() {
        meta.remove("resourceVersion");
    }
    let bytes = serde_json::to_vec(&stored).map_err(ApiError::internal)?;
    if bytes.len() > MAX_OBJECT_BYTES {
        return Err(ApiError::too_large(format!("object is {} bytes; the limit is {MAX_OBJECT_BYTES}", bytes.len())));
    }
    Ok(bytes)
}

fn meta_str<'v>(obj: &'v Value, field: &str) -> &'v str {
    obj["metadata"][field].as_str().unwrap_or_default()
}

/// The parts of an object that are neither metadata nor status: a change
/// there is a new generation.
fn spec_of(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        for k in ["metadata", "status", "apiVersion", "kind"] {
            m.remove(k);
        }
    }
    v
}

fn random_suffix() -> String {
    // Upstream's `SimpleNameGenerator`: five characters from an alphabet
    // without vowels or look-alikes, so generated names spell no words.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes.iter().take(5).map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

impl Registry {
    pub fn new(kv: Arc<dyn Kv>) -> Self {
        Registry { kv, kubelet_client: None, default_toleration_seconds: DefaultTolerationSeconds::default() }
    }

    /// Gives pods these default tolerations of unready and unreachable
    /// nodes (kube-apiserver's `--default-not-ready-toleration-seconds` and
    /// `--default-unreachable-toleration-seconds`).
    pub fn with_default_toleration_seconds(mut self, seconds: DefaultTolerationSeconds) -> Self {
        self.default_toleration_seconds = seconds;
        self
    }

    /// Dials node agents with these credentials.
    pub fn with_kubelet_client(mut self, credentials: client::Credentials) -> Self {
        self.kubelet_client = Some(Arc::new(credentials));
        self
    }

    /// The credentials node agents are dialled with, if set.
    pub fn kubelet_client(&self) -> Option<&client::Credentials> {
        self.kubelet_client.as_deref()
    }

    /// The underlying store, for the compactor and watch.
    pub fn kv(&self) -> &Arc<dyn Kv> {
        &self.kv
    }

    /// The store's current revision, read without fetching any object.
    pub async fn revision(&self) -> Result<i64, ApiError> {
        let resp = self
            .kv
            .range(RangeRequest {
                key: b"/registry/".to_vec(),
                range_end: store::prefix_end(b"/registry/"),
                count_only: true,
                ..Default::default()
            })
            .await
            .map_err(store_err)?;
        Ok(resp.revision)
    }

    async fn read(&self, key: &str) -> Result<Option<KeyValue>, ApiError> {
        let resp = self.kv.range(RangeRequest { key: key.as_bytes().to_vec(), ..Default::default() }).await.map_err(store_err)?;
        Ok(resp.kvs.into_iter().next())
    }

    /// Creates the namespaces every cluster has, if they are missing.
    pub async fn bootstrap(&self) -> Result<(), ApiError> {
        let info = api::resources::by_resource("", "namespaces").expect("namespaces are in the table");
        for ns in SYSTEM_NAMESPACES {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            match self.create(info, "", obj, &WriteOptions::default()).await {
                Ok(_) => tracing::info!(namespace = ns, "created system namespace"),
                Err(e) if e.is_already_exists() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Creates `obj`, or replaces the stored one with it: the server's own
    /// objects (the bootstrap token's Secret, `cluster-info`), which must
    /// say what this start of the server says.
    pub async fn ensure(&self, info: &ResourceInfo, namespace: &str, obj: Value) -> Result<Value, ApiError> {
        match self.create(info, namespace, obj.clone(), &WriteOptions::default()).await {
            Ok(w) => Ok(w.object),
            Err(e) if e.is_already_exists() => {
                let name = meta_str(&obj, "name").to_string();
                let stored = self.get(info, namespace, &name).await?;
                let mut obj = obj;
                obj["metadata"]["resourceVersion"] = stored["metadata"]["resourceVersion"].clone();
                Ok(self.update(info, namespace, obj, Op::Update, &WriteOptions::default()).await?.object)
            }
            Err(e) => Err(e),
        }
    }

    pub async fn get(&self, info: &ResourceInfo, namespace: &str, name: &str) -> Result<Value, ApiError> {
        match self.read(&info.key(namespace, name)).await? {
            Some(kv) => decode(&kv),
            None => Err(ApiError::not_found(info.group, info.resource, name)),
        }
    }

    /// Lists the objects matching `filter` in `namespace` ("" = all).
    pub async fn list(&self, info: &ResourceInfo, namespace: &str, filter: &Filter) -> Result<ListResult, ApiError> {
        let prefix = info.prefix(Some(namespace).filter(|n| !n.is_empty()));
        let resp = self
            .kv
            .range(RangeRequest {
                key: prefix.as_bytes().to_vec(),
                range_end: store::prefix_end(prefix.as_bytes()),
                ..Default::default()
            })
            .await
            .map_err(store_err)?;
        let mut items = Vec::with_capacity(resp.kvs.len());
        for kv in &resp.kvs {
            let obj = decode(kv)?;
            if filter.matches(info, &obj) {
                items.push(obj);
            }
        }
        Ok(ListResult { items, revision: resp.revision })
    }

    /// Checks the object's name and namespace and fills in what the server
    /// owns (uid, timestamps, generation).
    fn check_identity(&self, info: &ResourceInfo, namespace: &str, obj: &mut Value) -> Result<String, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the request body must be a JSON or YAML object"));
        }
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        let body_ns = meta_str(obj, "namespace").to_string();
        if info.namespaced {
            let ns = if namespace.is_empty() { body_ns.clone() } else { namespace.to_string() };
            let ns = if ns.is_empty() { "default".to_string() } else { ns };
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::bad_request(format!(
                    "the namespace of the provided object ({body_ns}) does not match the namespace sent on the request ({ns})"
                )));
            }
            obj["metadata"]["namespace"] = Value::String(ns.clone());
            Ok(ns)
        } else {
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("namespace");
            }
            Ok(String::new())
        }
    }

    /// The namespace a new object goes into must exist and must not be
    /// terminating: upstream's NamespaceLifecycle admission refuses new
    /// content there, or the namespace controller would be emptying a
    /// bucket that controllers keep filling.
    async fn require_namespace(&self, info: &ResourceInfo, ns: &str, name: &str) -> Result<(), ApiError> {
        if ns.is_empty() {
            return Ok(());
        }
        let namespaces = api::resources::by_resource("", "namespaces").expect("namespaces are in the table");
        let Some(kv) = self.read(&namespaces.key("", ns)).await? else {
            return Err(ApiError::not_found("", "namespaces", ns));
        };
        if decode(&kv)?["metadata"]["deletionTimestamp"].is_null() {
            return Ok(());
        }
        Err(ApiError {
            code: 403,
            reason: "Forbidden".into(),
            message: format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                info.qualified()
            ),
            details: Some(Box::new(api::status::Details {
                name: name.into(),
                group: info.group.into(),
                kind: info.resource.into(),
                causes: vec![api::status::Cause {
                    reason: "NamespaceTerminating".into(),
                    message: format!("namespace {ns} is being terminated"),
                    field: "metadata.namespace".into(),
                }],
                ..Default::default()
            })),
        })
    }

    /// Creates an object.
    pub async fn create(&self, info: &ResourceInfo, namespace: &str, mut obj: Value, opts: &WriteOptions) -> Result<Written, ApiError> {
        let ns = self.check_identity(info, namespace, &mut obj)?;
        if meta_str(&obj, "name").is_empty() {
            let base = meta_str(&obj, "generateName").to_string();
            if !base.is_empty() {
                obj["metadata"]["name"] = Value::String(format!("{base}{}", random_suffix()));
            }
        }
        // Upstream's etcd store refuses a new object that claims a
        // revision, as a plain error (500, no reason). A value that is not
        // a positive integer ("0", "-1", "x") is not a revision, and is
        // dropped like the rest of what the server owns.
        let claims_revision = meta_str(&obj, "resourceVersion").parse::<u64>().is_ok_and(|rv| rv != 0);
        let meta = obj["metadata"].as_object_mut().expect("metadata is an object");
        for owned in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "generation"] {
            meta.remove(owned);
        }
        meta.insert("uid".into(), Value::String(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), serde_json::to_value(api::time::now()).map_err(ApiError::internal)?);
        // Mutating admission first (DefaultTolerationSeconds), then the
        // strategy's defaulting and validation, then validating admission
        // (NodeRestriction; the namespace must exist and not be
        // terminating), then storage, as upstream's order goes.
        self.default_toleration_seconds.admit(info, &mut obj);
        let (mut obj, warnings) = strategy::normalize(info, obj, None, Op::Create, opts.validation)?;
        crate::noderestriction::admit_write(info, Op::Create, &obj, None)?;
        if !spec_of(&obj).as_object().is_none_or(|m| m.is_empty()) && obj.get("spec").is_some() {
            set_meta(&mut obj, "generation", Some(json!(1)));
        }
        let name = meta_str(&obj, "name").to_string();
        if info.resource != "namespaces" {
            self.require_namespace(info, &ns, &name).await?;
        }
        if opts.dry_run {
            return Ok(Written { object: obj, warnings });
        }
        if claims_revision {
            return Err(ApiError::unknown("resourceVersion should not be set on objects to be created"));
        }
        let key = info.key(&ns, &name);
        let resp = self
            .kv
            .txn(TxnRequest {
                compare: vec![Compare {
                    key: key.as_bytes().to_vec(),
                    range_end: vec![],
                    result: CompareResult::Equal,
                    target: CompareTarget::CreateRevision(0),
                }],
                success: vec![RequestOp::Put(PutRequest { key: key.into_bytes(), value: encode(&obj)?, ..Default::default() })],
                failure: vec![],
            })
            .await
            .map_err(store_err)?;
        if !resp.succeeded {
            return Err(ApiError::already_exists(info.group, info.resource, &name));
        }
        set_meta(&mut obj, "resourceVersion", Some(Value::String(resp.revision.to_string())));
        Ok(Written { object: obj, warnings })
    }

    /// Replaces an object (`op` = Update) or its status (`op` = UpdateStatus).
    pub async fn update(&self, info: &ResourceInfo, namespace: &str, obj: Value, op: Op, opts: &WriteOptions) -> Result<Written, ApiError> {
        let mut obj = obj;
        let ns = self.check_identity(info, namespace, &mut obj)?;
        let name = meta_str(&obj, "name").to_string();
        if name.is_empty() {
            return Err(ApiError::bad_request("name is required for an update"));
        }
        let wanted_rv = meta_str(&obj, "resourceVersion").to_string();
        // A uid in the body is a precondition (upstream's
        // `defaultUpdatedObjectInfo.Preconditions`): the update is meant for
        // that object, not for a newer one that took its name.
        let wanted_uid = meta_str(&obj, "uid").to_string();
        let replace = |old: &Value| {
            let have = meta_str(old, "uid");
            if !wanted_uid.is_empty() && wanted_uid != have {
                return Err(ApiError::conflict(
                    info.group,
                    info.resource,
                    &name,
                    &format!("Precondition failed: UID in precondition: {wanted_uid}, UID in object meta: {have}"),
                ));
            }
            Ok(obj.clone())
        };
        self.guaranteed_update(info, &ns, &name, &wanted_rv, opts, replace, op).await
    }

    /// Reads the current object, lets `mutate` produce the new one from
    /// it, and writes it back guarded by the revision read. Retries on a
    /// lost race unless the caller pinned a resourceVersion.
    // The parameters are upstream's GuaranteedUpdate's: the object's
    // identity, the precondition, the options, the mutation, the subresource.
    #[allow(clippy::too_many_arguments)]
    pub async fn guaranteed_update<F>(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        wanted_rv: &str,
        opts: &WriteOptions,
        mutate: F,
        op: Op,
    ) -> Result<Written, ApiError>
    where
        F: Fn(&Value) -> Result<Value, ApiError>,
    {
        let key = info.key(ns, name);
        for _ in 0..UPDATE_RETRIES {
            let Some(current) = self.read(&key).await? else {
                return Err(ApiError::not_found(info.group, info.resource, name));
            };
            let old = decode(&current)?;
            if !wanted_rv.is_empty() && wanted_rv != current.mod_revision.to_string() {
                return Err(ApiError::conflict(info.group, info.resource, name, ApiError::OPTIMISTIC_LOCK));
            }
            let mut new = mutate(&old)?;
            before_update(info, ns, name, &old, &mut new)?;
            if op == Op::Update {
                self.default_toleration_seconds.admit(info, &mut new);
            }
            let (mut new, warnings) = strategy::normalize(info, new, Some(&old), op, opts.validation)?;
            crate::noderestriction::admit_write(info, op, &new, Some(&old))?;
            // Only kinds with a spec have generations (a ConfigMap's data
            // changing is not a new generation).
            if new.get("spec").is_some() && spec_of(&new) != spec_of(&old) {
                let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
                set_meta(&mut new, "generation", Some(json!(g)));
            }
            set_meta(&mut new, "resourceVersion", old["metadata"].get("resourceVersion").cloned());
            if new == old || opts.dry_run {
                // Upstream skips no-op writes: the resourceVersion stays.
                return Ok(Written { object: new, warnings });
            }
            // An object being deleted goes once its last finalizer is
            // removed (and, for a pod, once its node has let go of it).
            let finished = !new["metadata"]["deletionTimestamp"].is_null()
                && finalizers(&new).is_empty()
                && namespace_finalizers(info, &new).is_empty()
                && new["metadata"]["deletionGracePeriodSeconds"].as_i64().unwrap_or(0) == 0;
            let write = if finished {
                RequestOp::DeleteRange(DeleteRangeRequest { key: key.as_bytes().to_vec(), ..Default::default() })
            } else {
                RequestOp::Put(PutRequest { key: key.as_bytes().to_vec(), value: encode(&new)?, ..Default::default() })
            };
            let resp = self.kv.txn(guarded(&key, current.mod_revision, write)).await.map_err(store_err)?;
            if resp.succeeded {
                set_meta(&mut new, "resourceVersion", Some(Value::String(resp.revision.to_string())));
                return Ok(Written { object: new, warnings });
            }
            if !wanted_rv.is_empty() {
                return Err(ApiError::conflict(info.group, info.resource, name, ApiError::OPTIMISTIC_LOCK));
            }
        }
        Err(ApiError::conflict(info.group, info.resource, name, "too many concurrent writers; try again"))
    }

    /// Deletes an object. `options` is a Kubernetes `DeleteOptions`
    /// (`propagationPolicy`, `gracePeriodSeconds`, `preconditions`,
    /// `dryRun`).
    ///
    /// The object goes at once unless something must happen first: a pod
    /// that a node runs waits for the node to stop it; an object with
    /// finalizers — including the `foregroundDeletion` and `orphan`
    /// finalizers that the Foreground and Orphan propagation policies add
    /// for the garbage collector — waits until they are removed. Such an
    /// object gets a `deletionTimestamp` and is returned as `pending`.
    pub async fn delete(&self, info: &ResourceInfo, ns: &str, name: &str, options: &Value) -> Result<Deleted, ApiError> {
        let ns = if info.namespaced {
            if ns.is_empty() {
                "default"
            } else {
                ns
            }
        } else {
            ""
        };
        let key = info.key(ns, name);
        let precondition_uid = options["preconditions"]["uid"].as_str().map(str::to_string);
        let precondition_rv = options["preconditions"]["resourceVersion"].as_str().map(str::to_string);
        let dry_run = options["dryRun"].as_array().is_some_and(|a| a.iter().any(|v| v == "All"));
        // Upstream's NamespaceLifecycle admission keeps these three forever.
        if info.resource == "namespaces" && matches!(name, "default" | "kube-system" | "kube-public") {
            let mut e = ApiError::bad_request(format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"));
            e.code = 403;
            e.reason = "Forbidden".into();
            return Err(e);
        }
        let policy_finalizer = match (options["propagationPolicy"].as_str(), options["orphanDependents"].as_bool()) {
            (Some("Foreground"), _) => Some("foregroundDeletion"),
            (Some("Orphan"), _) | (None, Some(true)) => Some("orphan"),
            (Some("Background") | None, _) => None,
            (Some(other), _) => {
                return Err(ApiError::invalid(
                    "",
                    "DeleteOptions",
                    "",
                    &[FieldError::not_supported("propagationPolicy", format!("\"{other}\""), &["Foreground", "Background", "Orphan"])],
                ));
            }
        };
        for _ in 0..UPDATE_RETRIES {
            let Some(current) = self.read(&key).await? else {
                return Err(ApiError::not_found(info.group, info.resource, name));
            };
            let obj = decode(&current)?;
            crate::noderestriction::admit_delete(info, &obj)?;
            if let Some(uid) = &precondition_uid {
                if meta_str(&obj, "uid") != uid {
                    return Err(ApiError::conflict(
                        info.group,
                        info.resource,
                        name,
                        &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", meta_str(&obj, "uid")),
                    ));
                }
            }
            if let Some(rv) = &precondition_rv {
                if *rv != current.mod_revision.to_string() {
                    return Err(ApiError::conflict(
                        info.group,
                        info.resource,
                        name,
                        &format!(
                            "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                            current.mod_revision
                        ),
                    ));
                }
            }
            let grace = self.graceful_period(info, &obj, options);
            let mut finalizers = finalizers(&obj);
            if let Some(f) = policy_finalizer {
                if !finalizers.iter().any(|x| x == f) && obj["metadata"]["deletionTimestamp"].is_null() {
                    finalizers.push(f.to_string());
                }
            }
            // A namespace is emptied by the namespace controller before it
            // goes: upstream's namespace strategy puts the `kubernetes`
            // finalizer in `spec.finalizers` of every new namespace, and
            // only the controller removes it. tinykube adds it when the
            // namespace is first marked for deletion, which is the same
            // from every client's point of view except that a live
            // namespace does not show it.
            let mut ns_finalizers = namespace_finalizers(info, &obj);
            if info.resource == "namespaces"
                && obj["metadata"]["deletionTimestamp"].is_null()
                && !ns_finalizers.iter().any(|f| f == NAMESPACE_FINALIZER)
            {
                ns_finalizers.push(NAMESPACE_FINALIZER.to_string());
            }
            if grace.is_none() && finalizers.is_empty() && ns_finalizers.is_empty() {
                if dry_run {
                    return Ok(Deleted { object: obj, pending: false });
                }
                let delete = RequestOp::DeleteRange(DeleteRangeRequest { key: key.as_bytes().to_vec(), ..Default::default() });
                let resp = self.kv.txn(guarded(&key, current.mod_revision, delete)).await.map_err(store_err)?;
                if resp.succeeded {
                    return Ok(Deleted { object: obj, pending: false });
                }
                continue;
            }
            // Graceful: mark the object and let its node or its finalizers'
            // owners finish the job.
            let mut marked = obj.clone();
            let grace = grace.unwrap_or(0);
            let already = marked["metadata"]["deletionGracePeriodSeconds"].as_i64();
            if already.is_some_and(|g| g <= grace)
                && finalizers == self::finalizers(&obj)
                && ns_finalizers == namespace_finalizers(info, &obj)
            {
                return Ok(Deleted { object: obj, pending: true });
            }
            if marked["metadata"]["deletionTimestamp"].is_null() || already.is_some_and(|g| g > grace) {
                let now = jiff::Timestamp::now();
                let at = now.checked_add(jiff::SignedDuration::from_secs(grace)).unwrap_or(now);
                let at = jiff::Timestamp::from_second(at.as_second()).unwrap_or(at);
                marked["metadata"]["deletionTimestamp"] = json!(at.to_string());
            }
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
            if !finalizers.is_empty() {
                marked["metadata"]["finalizers"] = json!(finalizers);
            }
            if info.resource == "namespaces" {
                marked["spec"]["finalizers"] = json!(ns_finalizers);
                marked["status"]["phase"] = json!("Terminating");
            }
            if dry_run {
                return Ok(Deleted { object: marked, pending: true });
            }
            let put = RequestOp::Put(PutRequest { key: key.as_bytes().to_vec(), value: encode(&marked)?, ..Default::default() });
            let resp = self.kv.txn(guarded(&key, current.mod_revision, put)).await.map_err(store_err)?;
            if resp.succeeded {
                marked["metadata"]["resourceVersion"] = Value::String(resp.revision.to_string());
                return Ok(Deleted { object: marked, pending: true });
            }
        }
        Err(ApiError::conflict(info.group, info.resource, name, "too many concurrent writers; try again"))
    }

    /// Deletes every object of a collection that matches `filter`
    /// (`deletecollection`), returning what was deleted.
    pub async fn delete_collection(&self, info: &ResourceInfo, ns: &str, filter: &Filter, options: &Value) -> Result<Vec<Value>, ApiError> {
        let list = self.list(info, ns, filter).await?;
        let mut deleted = Vec::with_capacity(list.items.len());
        for obj in list.items {
            let name = meta_str(&obj, "name").to_string();
            let obj_ns = meta_str(&obj, "namespace").to_string();
            match self.delete(info, &obj_ns, &name, options).await {
                Ok(d) => deleted.push(d.object),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }

    /// One page of a list. A continue token pins the revision of the first
    /// page, so a paged list is one consistent snapshot, as upstream's.
    pub async fn list_page(
        &self,
        info: &ResourceInfo,
        namespace: &str,
        filter: &Filter,
        limit: i64,
        continue_token: &str,
    ) -> Result<Page, ApiError> {
        let prefix = info.prefix(Some(namespace).filter(|n| !n.is_empty()));
        let (start, revision) = if continue_token.is_empty() { (prefix.clone(), 0) } else { decode_continue(continue_token, &prefix)? };
        let resp = self
            .kv
            .range(RangeRequest {
                key: start.as_bytes().to_vec(),
                range_end: store::prefix_end(prefix.as_bytes()),
                limit: if limit > 0 { limit } else { 0 },
                revision,
                ..Default::default()
            })
            .await
            .map_err(|e| match e {
                store::Error::Compacted { .. } if revision > 0 => ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. \
                     You can start a new list without the continue parameter, or use the continue token \
                     in this response to retrieve the remainder of the results. Continuing with the \
                     provided token results in an inconsistent list - objects that were created, modified, \
                     or deleted between the time the first chunk was returned and now may show up in the list.",
                ),
                other => store_err(other),
            })?;
        let read_at = if revision > 0 { revision } else { resp.revision };
        let mut items = Vec::with_capacity(resp.kvs.len());
        for kv in &resp.kvs {
            let obj = decode(kv)?;
            if filter.matches(info, &obj) {
                items.push(obj);
            }
        }
        let (continue_token, remaining) = match (resp.more, resp.kvs.last()) {
            (true, Some(last)) => {
                let mut next = last.key.clone();
                next.push(0);
                (encode_continue(&String::from_utf8_lossy(&next), read_at), Some(resp.count - resp.kvs.len() as i64))
            }
            _ => (String::new(), None),
        };
        Ok(Page { items, revision: read_at, continue_token, remaining })
    }

    /// The grace period of a delete that must wait for a node, or `None`
    /// for an immediate delete. Only pods that a node runs wait, as in
    /// upstream's pod strategy `CheckGracefulDelete`.
    fn graceful_period(&self, info: &ResourceInfo, obj: &Value, options: &Value) -> Option<i64> {
        if info.resource != "pods" {
            return None;
        }
        let bound = obj["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty());
        let phase = obj["status"]["phase"].as_str().unwrap_or_default();
        if !bound || phase == "Succeeded" || phase == "Failed" {
            return None;
        }
        let grace = options["gracePeriodSeconds"].as_i64().or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64()).unwrap_or(30);
        (grace > 0).then_some(grace)
    }

    /// Binds a pod to a node (`pods/binding`): sets `spec.nodeName` and the
    /// `PodScheduled` condition. A pod that is already bound is a conflict.
    pub async fn bind(&self, namespace: &str, binding: &Value) -> Result<Value, ApiError> {
        let info = api::resources::by_resource("", "pods").expect("pods are in the table");
        let ns = if namespace.is_empty() { meta_str(binding, "namespace") } else { namespace };
        let ns = if ns.is_empty() { "default" } else { ns };
        let pod = meta_str(binding, "name");
        let node = binding["target"]["name"].as_str().unwrap_or_default().to_string();
        if pod.is_empty() || node.is_empty() {
            return Err(ApiError::bad_request("a Binding needs metadata.name (the pod) and target.name (the node)"));
        }
        let wanted_uid = binding["metadata"]["uid"].as_str().map(str::to_string);
        let mutate = |old: &Value| {
            if let Some(uid) = &wanted_uid {
                if meta_str(old, "uid") != uid {
                    return Err(ApiError::conflict("", "pods", pod, "the pod's UID changed"));
                }
            }
            if !old["metadata"]["deletionTimestamp"].is_null() {
                return Err(ApiError::conflict("", "pods", pod, "the pod is being deleted"));
            }
            let current = old["spec"]["nodeName"].as_str().unwrap_or_default();
            if !current.is_empty() {
                return Err(ApiError::conflict("", "pods", pod, &format!("pod {pod} is already assigned to node \"{current}\"")));
            }
            let mut new = old.clone();
            new["spec"]["nodeName"] = Value::String(node.clone());
            let mut conditions: Vec<Value> = old["status"]["conditions"].as_array().cloned().unwrap_or_default();
            conditions.retain(|c| c["type"] != "PodScheduled");
            conditions
                .push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": api::time::now()}));
            new["status"]["conditions"] = Value::Array(conditions);
            Ok(new)
        };
        // A Binding writes spec (nodeName) and status (the condition) in one
        // revision, so the registry writes the whole object.
        self.guaranteed_update(info, ns, pod, "", &WriteOptions::default(), mutate, Op::Whole).await.map(|w| w.object)
    }
}

/// A transaction that runs `op` only if `key` is still at `mod_revision`.
fn guarded(key: &str, mod_revision: i64, op: RequestOp) -> TxnRequest {
    TxnRequest {
        compare: vec![Compare {
            key: key.as_bytes().to_vec(),
            range_end: vec![],
            result: CompareResult::Equal,
            target: CompareTarget::ModRevision(mod_revision),
        }],
        success: vec![op],
        failure: vec![],
    }
}

/// An object's `metadata.finalizers`.
fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// The finalizer that keeps a terminating namespace until the namespace
/// controller has deleted everything in it (upstream `FinalizerKubernetes`).
pub const NAMESPACE_FINALIZER: &str = "kubernetes";

/// A namespace's `spec.finalizers`: unlike `metadata.finalizers`, these
/// belong to the namespace lifecycle (empty for every other kind).
fn namespace_finalizers(info: &ResourceInfo, obj: &Value) -> Vec<String> {
    if info.resource != "namespaces" {
        return Vec::new();
    }
    obj["spec"]["finalizers"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Sets (or, with `None`, removes) one field of an object's metadata,
/// whatever shape the object is in.
fn set_meta(obj: &mut Value, key: &str, value: Option<Value>) {
    let Some(map) = obj.as_object_mut() else { return };
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    if let Some(meta) = meta.as_object_mut() {
        match value {
            Some(v) => {
                meta.insert(key.to_string(), v);
            }
            None => {
                meta.remove(key);
            }
        }
    }
}

/// Go's name for a JSON value's type, as `encoding/json` reports it.
fn go_json_type(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Null | Value::Object(_) => "object",
    }
}

/// The error for an update whose result is not an object at all (a JSON
/// patch that replaces the root with `[]`): upstream's patcher cannot
/// decode it into the kind and answers 422 on the field `patch`, quoting
/// the result and the decoder's complaint.
fn undecodable_result(new: &Value) -> ApiError {
    let json = serde_json::to_string(new).unwrap_or_default();
    let why = match new {
        Value::Null => "Object 'Kind' is missing in 'null'".to_string(),
        other => format!(
            "couldn't get version/kind; json parse error: json: cannot unmarshal {} into Go value of type struct {{ APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }}",
            go_json_type(other)
        ),
    };
    ApiError::invalid("", "", "", &[FieldError::invalid("patch", format!("{json:?}"), why)])
}

/// Upstream's `BeforeUpdate` and the handler's `checkName`, on the object
/// an update produced from `old`:
///
/// - the object must still be an object, with a metadata object;
/// - its name must be the one on the URL, and its namespace (when set)
///   the request's — a patch cannot move an object;
/// - an omitted uid, deletion timestamp or grace period is the stored
///   one; the creation time is always the stored one, and the generation
///   is the server's. A uid or deletion field that the client changed is
///   left for validation, which calls it immutable.
fn before_update(info: &ResourceInfo, ns: &str, name: &str, old: &Value, new: &mut Value) -> Result<(), ApiError> {
    if !new.is_object() {
        return Err(undecodable_result(new));
    }
    if !new["metadata"].is_null() && !new["metadata"].is_object() {
        let kind = go_json_type(&new["metadata"]);
        return Err(ApiError::invalid(
            "",
            "",
            "",
            &[FieldError::invalid(
                "patch",
                format!("{:?}", serde_json::to_string(new).unwrap_or_default()),
                format!("json: cannot unmarshal {kind} into Go struct field {}.metadata of type v1.ObjectMeta", info.kind),
            )],
        ));
    }
    let new_name = meta_str(new, "name");
    if new_name != name {
        return Err(ApiError::bad_request(format!("the name of the object ({new_name}) does not match the name on the URL ({name})")));
    }
    if info.namespaced {
        let new_ns = meta_str(new, "namespace").to_string();
        if new_ns.is_empty() {
            set_meta(new, "namespace", Some(Value::String(ns.to_string())));
        } else if new_ns != ns {
            return Err(ApiError::bad_request(format!(
                "the namespace of the object ({new_ns}) does not match the namespace on the request ({ns})"
            )));
        }
    } else {
        set_meta(new, "namespace", None);
    }
    for owned in ["uid", "deletionTimestamp", "deletionGracePeriodSeconds"] {
        if new["metadata"][owned].is_null() || new["metadata"][owned] == "" {
            set_meta(new, owned, old["metadata"].get(owned).cloned());
        }
    }
    for owned in ["creationTimestamp", "generation"] {
        set_meta(new, owned, old["metadata"].get(owned).cloned());
    }
    Ok(())
}

/// A continue token: the key to resume at and the revision of the first
/// page, base64-encoded JSON as upstream's (`{"v":"meta.k8s.io/v1","rv":N,"start":"..."}`).
fn encode_continue(start_key: &str, revision: i64) -> String {
    use base64::Engine;
    let token = json!({"v": "meta.k8s.io/v1", "rv": revision, "start": start_key});
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

fn decode_continue(token: &str, prefix: &str) -> Result<(String, i64), ApiError> {
    use base64::Engine;
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token}"));
    let bytes = base64::engine::general_purpose::URL_SAFE.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let start = v["start"].as_str().ok_or_else(bad)?.to_string();
    let rv = v["rv"].as_i64().filter(|r| *r > 0).ok_or_else(bad)?;
    if !start.starts_with(prefix) {
        return Err(bad());
    }
    Ok((start, rv))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configmaps() -> &'static ResourceInfo {
        api::resources::RESOURCES.iter().find(|r| r.resource == "configmaps").unwrap()
    }

    fn stored() -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": "cm", "namespace": "default", "uid": "u1", "creationTimestamp": "2024-01-01T00:00:00Z",
        }})
    }

    /// Each row: upstream's rule, the object an update produced, and the
    /// error it gets (empty when it goes on to validation).
    #[test]
    fn before_update_matches_upstream() {
        let cases = [
            ("checkName: name", json!({"metadata": {"name": "other"}}), "the name of the object (other) does not match the name on the URL (cm)"),
            (
                "checkName: namespace",
                json!({"metadata": {"name": "cm", "namespace": "x"}}),
                "the namespace of the object (x) does not match the namespace on the request (default)",
            ),
            ("patcher: not an object", json!([]), " \"\" is invalid: patch: Invalid value: \"[]\": couldn't get version/kind; json parse error: json: cannot unmarshal array into Go value of type struct { APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }"),
            ("patcher: null", Value::Null, " \"\" is invalid: patch: Invalid value: \"null\": Object 'Kind' is missing in 'null'"),
            ("BeforeUpdate: an omitted uid is the stored one", json!({"metadata": {"name": "cm"}}), ""),
        ];
        for (rule, mut new, want) in cases {
            match before_update(configmaps(), "default", "cm", &stored(), &mut new) {
                Ok(()) => {
                    assert_eq!(want, "", "{rule}");
                    assert_eq!(new["metadata"]["uid"], "u1", "{rule}");
                    assert_eq!(new["metadata"]["namespace"], "default", "{rule}");
                }
                Err(e) => assert_eq!(e.message, want, "{rule}"),
            }
        }
    }

    #[test]
    fn the_creation_time_is_always_the_stored_one() {
        let mut new = json!({"metadata": {"name": "cm", "uid": "u2", "creationTimestamp": "2001-01-01T00:00:00Z"}});
        before_update(configmaps(), "default", "cm", &stored(), &mut new).unwrap();
        assert_eq!(new["metadata"]["creationTimestamp"], "2024-01-01T00:00:00Z");
        // A uid the client changed is left for validation to refuse.
        assert_eq!(new["metadata"]["uid"], "u2");
    }
}
