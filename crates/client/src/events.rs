//! Recording Events, as client-go's `record.EventRecorder`.
//!
//! An Event is an ordinary object (core/v1 `Event`) that says something
//! happened to another object: "Scheduled", "FailedScheduling",
//! "SuccessfulCreate", "Killing". `kubectl describe` lists the events whose
//! `involvedObject` is the object described. Recording never fails the
//! caller: an event that cannot be written is logged and dropped, as
//! upstream does.
//!
//! Repeats are folded, as upstream's event correlator does: the same
//! reason and message about the same object bumps `count` and
//! `lastTimestamp` of the existing Event instead of writing a new one, so a
//! pod that cannot be scheduled for an hour has one event, not hundreds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::{Api, Client, Object};

/// `Normal` or `Warning`, the two event types Kubernetes has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// Writes events on behalf of one component (`default-scheduler`,
/// `replicaset-controller`, `kubelet`).
#[derive(Clone, Debug)]
pub struct Recorder {
    client: Client,
    component: String,
    host: Option<String>,
    /// (object uid and field path, reason, message) -> (namespace, event name) of events
    /// already written, for folding repeats.
    seen: Arc<Mutex<HashMap<FoldKey, (String, String)>>>,
}

/// What makes two events the same event: (object and field path, reason,
/// message).
type FoldKey = (String, String, String);

/// How many distinct events a recorder remembers for folding.
const SEEN_CAPACITY: usize = 4096;

/// An `ObjectReference` to `obj`, as events and bindings carry.
pub fn object_reference<K: Object>(obj: &K) -> ObjectReference {
    let meta = obj.metadata();
    ObjectReference {
        api_version: Some(K::API_VERSION.to_string()),
        kind: Some(K::KIND.to_string()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..Default::default()
    }
}

impl Recorder {
    pub fn new(client: Client, component: &str, host: Option<&str>) -> Self {
        Recorder { client, component: component.to_string(), host: host.map(str::to_string), seen: Default::default() }
    }

    /// Records an event about `obj`, in `obj`'s namespace (`default` for
    /// cluster-scoped objects, as upstream does).
    pub async fn record<K: Object>(&self, obj: &K, kind: EventType, reason: &str, message: &str) {
        self.record_ref(object_reference(obj), kind, reason, message).await
    }

    /// Records an event about the object `involved` refers to.
    pub async fn record_ref(&self, involved: ObjectReference, kind: EventType, reason: &str, message: &str) {
        let namespace = involved.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "default".into());
        let now = api::time::now();
        // The object, and the part of it (a container's `fieldPath`).
        let subject = format!("{}{}", involved.uid.as_deref().unwrap_or_default(), involved.field_path.as_deref().unwrap_or_default());
        let fold_key = (subject, reason.to_string(), message.to_string());
        let known = self.seen.lock().unwrap_or_else(|p| p.into_inner()).get(&fold_key).cloned();
        if let Some((ns, name)) = known {
            let api = Api::<Event>::namespaced(self.client.clone(), &ns);
            if let Ok(Some(mut existing)) = api.get_opt(&name).await {
                existing.count = Some(existing.count.unwrap_or(1) + 1);
                existing.last_timestamp = Some(now.clone());
                match api.replace(&existing).await {
                    Ok(_) => return,
                    Err(e) => tracing::debug!(reason, error = %e, "cannot fold event; writing a new one"),
                }
            }
        }
        // Upstream names events `<object>.<unix nanos in hex>`.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
        let name = format!("{}.{:x}", involved.name.as_deref().unwrap_or("unknown"), nanos);
        let event = Event {
            metadata: ObjectMeta { name: Some(name), namespace: Some(namespace.clone()), ..Default::default() },
            involved_object: involved,
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            type_: Some(match kind {
                EventType::Normal => "Normal".into(),
                EventType::Warning => "Warning".into(),
            }),
            source: Some(EventSource { component: Some(self.component.clone()), host: self.host.clone() }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: self.host.clone(),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            ..Default::default()
        };
        match Api::<Event>::namespaced(self.client.clone(), &namespace).create(&event).await {
            Ok(created) => {
                let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                if seen.len() >= SEEN_CAPACITY {
                    seen.clear();
                }
                seen.insert(fold_key, (namespace, created.metadata.name.unwrap_or_default()));
            }
            Err(e) => tracing::debug!(reason, error = %e, "dropping event"),
        }
    }
}
