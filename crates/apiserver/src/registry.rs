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
use api::{names, ApiError, ResourceInfo};
use serde_json::{json, Value};
use store::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, KeyValue, Kv, PutRequest, RangeRequest, RequestOp,
    TxnRequest,
};

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
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {}",
                    t.field
                )));
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
    obj["metadata"]["resourceVersion"] = Value::String(kv.mod_revision.to_string());
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
        Registry { kv }
    }

    /// The underlying store, for the compactor and watch.
    pub fn kv(&self) -> &Arc<dyn Kv> {
        &self.kv
    }

    async fn read(&self, key: &str) -> Result<Option<KeyValue>, ApiError> {
        let resp = self
            .kv
            .range(RangeRequest { key: key.as_bytes().to_vec(), ..Default::default() })
            .await
            .map_err(store_err)?;
        Ok(resp.kvs.into_iter().next())
    }

    /// Creates the namespaces every cluster has, if they are missing.
    pub async fn bootstrap(&self) -> Result<(), ApiError> {
        let info = api::resources::by_resource("", "namespaces").expect("namespaces are in the table");
        for ns in SYSTEM_NAMESPACES {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            match self.create(info, "", obj, false).await {
                Ok(_) => tracing::info!(namespace = ns, "created system namespace"),
                Err(e) if e.is_already_exists() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
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

    fn validate_meta(&self, info: &ResourceInfo, obj: &Value) -> Result<(), ApiError> {
        let name = meta_str(obj, "name");
        let mut errs = Vec::new();
        if name.is_empty() {
            errs.push(FieldError { field: "metadata.name".into(), reason: "FieldValueRequired", message: "Required value: name or generateName is required".into() });
        } else {
            let problems = if strategy::name_is_label(info) { names::validate_label(name) } else { names::validate_subdomain(name) };
            errs.extend(problems.into_iter().map(|p| FieldError::invalid("metadata.name", format!("\"{name}\""), p)));
        }
        if let Some(labels) = obj["metadata"]["labels"].as_object() {
            for (k, v) in labels {
                for p in names::validate_label_key(k) {
                    errs.push(FieldError::invalid("metadata.labels", format!("\"{k}\""), p));
                }
                for p in names::validate_label_value(v.as_str().unwrap_or("-")) {
                    errs.push(FieldError::invalid(format!("metadata.labels.{k}"), v, p));
                }
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(info.group, info.kind, name, &errs))
        }
    }

    async fn require_namespace(&self, ns: &str) -> Result<(), ApiError> {
        if ns.is_empty() {
            return Ok(());
        }
        let info = api::resources::by_resource("", "namespaces").expect("namespaces are in the table");
        match self.read(&info.key("", ns)).await? {
            Some(_) => Ok(()),
            None => Err(ApiError::not_found("", "namespaces", ns)),
        }
    }

    /// Creates an object; `dry_run` validates and defaults without storing.
    pub async fn create(&self, info: &ResourceInfo, namespace: &str, mut obj: Value, dry_run: bool) -> Result<Value, ApiError> {
        let ns = self.check_identity(info, namespace, &mut obj)?;
        if meta_str(&obj, "name").is_empty() {
            let base = meta_str(&obj, "generateName").to_string();
            if !base.is_empty() {
                obj["metadata"]["name"] = Value::String(format!("{base}{}", random_suffix()));
            }
        }
        self.validate_meta(info, &obj)?;
        if info.resource != "namespaces" {
            self.require_namespace(&ns).await?;
        }
        let meta = obj["metadata"].as_object_mut().expect("metadata is an object");
        for owned in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
            meta.remove(owned);
        }
        meta.insert("uid".into(), Value::String(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), serde_json::to_value(api::time::now()).map_err(ApiError::internal)?);
        let mut obj = strategy::normalize(info, obj, None, Op::Create)?;
        if !spec_of(&obj).as_object().is_none_or(|m| m.is_empty()) && obj.get("spec").is_some() {
            obj["metadata"]["generation"] = json!(1);
        }
        let name = meta_str(&obj, "name").to_string();
        if dry_run {
            return Ok(obj);
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
        obj["metadata"]["resourceVersion"] = Value::String(resp.revision.to_string());
        Ok(obj)
    }

    /// Replaces an object (`op` = Update) or its status (`op` = UpdateStatus).
    pub async fn update(&self, info: &ResourceInfo, namespace: &str, obj: Value, op: Op, dry_run: bool) -> Result<Value, ApiError> {
        let mut obj = obj;
        let ns = self.check_identity(info, namespace, &mut obj)?;
        let name = meta_str(&obj, "name").to_string();
        if name.is_empty() {
            return Err(ApiError::bad_request("name is required for an update"));
        }
        let wanted_rv = meta_str(&obj, "resourceVersion").to_string();
        self.guaranteed_update(info, &ns, &name, &wanted_rv, dry_run, |_old| Ok(obj.clone()), op).await
    }

    /// Reads the current object, lets `mutate` produce the new one from
    /// it, and writes it back guarded by the revision read. Retries on a
    /// lost race unless the caller pinned a resourceVersion.
    pub async fn guaranteed_update<F>(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        wanted_rv: &str,
        dry_run: bool,
        mutate: F,
        op: Op,
    ) -> Result<Value, ApiError>
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
            // Server-owned metadata survives whatever the client sent.
            for owned in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"] {
                match old["metadata"].get(owned) {
                    Some(v) => new["metadata"][owned] = v.clone(),
                    None => {
                        if let Some(m) = new["metadata"].as_object_mut() {
                            m.remove(owned);
                        }
                    }
                }
            }
            if op != Op::UpdateStatus {
                self.validate_meta(info, &new)?;
            }
            let mut new = strategy::normalize(info, new, Some(&old), op)?;
            if spec_of(&new) != spec_of(&old) {
                let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
                new["metadata"]["generation"] = json!(g);
            }
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
            if new == old || dry_run {
                // Upstream skips no-op writes: the resourceVersion stays.
                return Ok(new);
            }
            let resp = self
                .kv
                .txn(TxnRequest {
                    compare: vec![Compare {
                        key: key.as_bytes().to_vec(),
                        range_end: vec![],
                        result: CompareResult::Equal,
                        target: CompareTarget::ModRevision(current.mod_revision),
                    }],
                    success: vec![RequestOp::Put(PutRequest { key: key.as_bytes().to_vec(), value: encode(&new)?, ..Default::default() })],
                    failure: vec![],
                })
                .await
                .map_err(store_err)?;
            if resp.succeeded {
                new["metadata"]["resourceVersion"] = Value::String(resp.revision.to_string());
                return Ok(new);
            }
            if !wanted_rv.is_empty() {
                return Err(ApiError::conflict(info.group, info.resource, name, ApiError::OPTIMISTIC_LOCK));
            }
        }
        Err(ApiError::conflict(info.group, info.resource, name, "too many concurrent writers; try again"))
    }

    /// Deletes an object. `options` is a Kubernetes `DeleteOptions`.
    /// Returns the object as it was last (with `deletionTimestamp` when the
    /// delete is graceful and the object still exists).
    pub async fn delete(&self, info: &ResourceInfo, ns: &str, name: &str, options: &Value) -> Result<Value, ApiError> {
        let ns = if info.namespaced { if ns.is_empty() { "default" } else { ns } } else { "" };
        let key = info.key(ns, name);
        let precondition_uid = options["preconditions"]["uid"].as_str().map(str::to_string);
        let precondition_rv = options["preconditions"]["resourceVersion"].as_str().map(str::to_string);
        let dry_run = options["dryRun"].as_array().is_some_and(|a| a.iter().any(|v| v == "All"));
        for _ in 0..UPDATE_RETRIES {
            let Some(current) = self.read(&key).await? else {
                return Err(ApiError::not_found(info.group, info.resource, name));
            };
            let obj = decode(&current)?;
            if let Some(uid) = &precondition_uid {
                if meta_str(&obj, "uid") != uid {
                    return Err(ApiError::conflict(info.group, info.resource, name, &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}", meta_str(&obj, "uid"))));
                }
            }
            if let Some(rv) = &precondition_rv {
                if *rv != current.mod_revision.to_string() {
                    return Err(ApiError::conflict(info.group, info.resource, name, &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", current.mod_revision)));
                }
            }
            if let Some(grace) = self.graceful_period(info, &obj, options) {
                // Graceful: mark, and let the node's agent finish the job.
                let mut marked = obj.clone();
                let already = marked["metadata"]["deletionGracePeriodSeconds"].as_i64();
                if already.is_some_and(|g| g <= grace) {
                    return Ok(obj);
                }
                if marked["metadata"]["deletionTimestamp"].is_null() {
                    let at = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_secs(grace)).unwrap_or(jiff::Timestamp::now());
                    let at = jiff::Timestamp::from_second(at.as_second()).unwrap_or(at);
                    marked["metadata"]["deletionTimestamp"] = json!(at.to_string());
                }
                marked["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                if dry_run {
                    return Ok(marked);
                }
                let resp = self.kv.txn(cas_put(&key, current.mod_revision, encode(&marked)?)).await.map_err(store_err)?;
                if resp.succeeded {
                    marked["metadata"]["resourceVersion"] = Value::String(resp.revision.to_string());
                    return Ok(marked);
                }
                continue;
            }
            if dry_run {
                return Ok(obj);
            }
            let resp = self
                .kv
                .txn(TxnRequest {
                    compare: vec![Compare {
                        key: key.as_bytes().to_vec(),
                        range_end: vec![],
                        result: CompareResult::Equal,
                        target: CompareTarget::ModRevision(current.mod_revision),
                    }],
                    success: vec![RequestOp::DeleteRange(DeleteRangeRequest { key: key.as_bytes().to_vec(), ..Default::default() })],
                    failure: vec![],
                })
                .await
                .map_err(store_err)?;
            if resp.succeeded {
                return Ok(obj);
            }
        }
        Err(ApiError::conflict(info.group, info.resource, name, "too many concurrent writers; try again"))
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
        let grace = options["gracePeriodSeconds"]
            .as_i64()
            .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30);
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
            conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": api::time::now()}));
            new["status"]["conditions"] = Value::Array(conditions);
            Ok(new)
        };
        // A Binding writes spec (nodeName) and status (the condition) in one
        // revision, so the registry writes the whole object.
        self.guaranteed_update(info, ns, pod, "", false, mutate, Op::Whole).await
    }
}

fn cas_put(key: &str, mod_revision: i64, value: Vec<u8>) -> TxnRequest {
    TxnRequest {
        compare: vec![Compare {
            key: key.as_bytes().to_vec(),
            range_end: vec![],
            result: CompareResult::Equal,
            target: CompareTarget::ModRevision(mod_revision),
        }],
        success: vec![RequestOp::Put(PutRequest { key: key.as_bytes().to_vec(), value, ..Default::default() })],
        failure: vec![],
    }
}
