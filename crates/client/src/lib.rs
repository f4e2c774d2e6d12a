//! # The client: how components talk to the api-server
//!
//! In Kubernetes every component — scheduler, controllers, kubelet — is a
//! client of the api-server and nothing else; none of them touches etcd.
//! They read through *informers*: a *reflector* lists a kind once, then
//! watches it from the list's resourceVersion, and keeps a local cache that
//! the component reads instead of asking the server each time. Changes wake
//! a *work queue* of object keys, and a worker reconciles each key against
//! the cache. This crate is tinykube's client-go: the same three pieces,
//! over the gRPC `Resources` service.
//!
//! Where tinykube simplifies: one gRPC connection per component; no
//! protobuf per kind (objects travel as JSON, see `tinykube-api`); the
//! cache is a map behind a lock rather than client-go's thread-safe
//! indexer, with a helper to find objects by label selector.
//!
//! # Layout
//! - [`Client`]: a connection to the api-server; [`Api`] is typed access to
//!   one kind in one namespace (get, list, watch, create, replace,
//!   replace_status, delete), in the shape of kube-rs's `Api`.
//! - [`informer`]: reflector + cache ([`informer::Informer`]), with the
//!   relist-on-410 and reconnect loop.
//! - [`connect`]: TCP and TLS dialling, and the [`Credentials`] a client
//!   proves itself with (a client certificate or a bearer token).
//! - [`dynamic`]: untyped access to any kind, for tools such as the CLI.
//! - [`events`]: the event recorder components use to say what they did.
//! - [`workqueue`]: a de-duplicating, rate-limited queue of keys.

pub mod connect;
pub mod dynamic;
pub mod events;
pub mod informer;
pub mod workqueue;

use std::marker::PhantomData;
use std::pin::Pin;

use api::proto::resources_client::ResourcesClient;
use api::proto::{self, ResourceRef};
use api::{ApiError, ResourceInfo};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

pub use connect::Credentials;

pub use api::Object;

/// The gRPC client type, with the bearer token interceptor.
pub type Grpc = ResourcesClient<InterceptedService<Channel, connect::BearerAuth>>;

/// A connection to the api-server's gRPC `Resources` service. Cheap to
/// clone: clones share one HTTP/2 connection.
#[derive(Clone, Debug)]
pub struct Client {
    grpc: Grpc,
}

impl Client {
    /// Connects lazily to `url` (`https://127.0.0.1:6443`) with
    /// `credentials`: the first call dials, and a lost connection is
    /// re-dialled by the next call.
    pub fn new(url: &str, credentials: &Credentials) -> Result<Self, ApiError> {
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| ApiError::bad_request(format!("invalid server URL {url:?}: {e}")))?
            .tcp_nodelay(true)
            .http2_keep_alive_interval(std::time::Duration::from_secs(30))
            .keep_alive_timeout(std::time::Duration::from_secs(20))
            .connect_timeout(std::time::Duration::from_secs(5));
        let connector = connect::Connector::new(endpoint.uri(), credentials)?;
        let channel = endpoint.connect_with_connector_lazy(connector);
        let auth = connect::BearerAuth::new(credentials.bearer.as_deref())?;
        let grpc = ResourcesClient::with_interceptor(channel, auth).max_decoding_message_size(64 << 20).max_encoding_message_size(64 << 20);
        Ok(Client { grpc })
    }

    /// A client that never reaches a server, for tests of code that only
    /// needs a `Client` to exist (every call fails to connect).
    pub fn unconnected() -> Self {
        Client::new("http://127.0.0.1:1", &Credentials::anonymous_any_server()).expect("a fixed, valid URL")
    }

    /// The raw generated gRPC client, for calls [`Api`] does not wrap.
    pub fn grpc(&self) -> Grpc {
        self.grpc.clone()
    }

    /// Binds a pod to a node: the scheduler's one write.
    pub async fn bind(&self, namespace: &str, pod: &str, node: &str) -> Result<(), ApiError> {
        let binding = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": pod, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        let req = proto::BindRequest {
            namespace: namespace.to_string(),
            binding: Some(proto::Object { json: binding.to_string().into_bytes() }),
        };
        self.grpc.clone().bind(req).await.map_err(|s| ApiError::from_grpc(&s))?;
        Ok(())
    }

    /// A container's log, through the api-server (which proxies to the
    /// pod's agent). Yields chunks of bytes until the log ends, or forever
    /// with `follow`.
    pub async fn logs(&self, req: proto::LogsRequest) -> Result<Pin<Box<dyn Stream<Item = Result<Vec<u8>, ApiError>> + Send>>, ApiError> {
        let stream = self.grpc.clone().logs(req).await.map_err(|s| ApiError::from_grpc(&s))?.into_inner();
        Ok(Box::pin(stream.map(|r| r.map(|c| c.data).map_err(|s| ApiError::from_grpc(&s)))))
    }
}

/// Selectors for list and watch, in their string forms.
#[derive(Clone, Debug, Default)]
pub struct ListParams {
    pub label_selector: String,
    pub field_selector: String,
}

impl ListParams {
    pub fn labels(selector: impl Into<String>) -> Self {
        ListParams { label_selector: selector.into(), ..Default::default() }
    }

    pub fn fields(selector: impl Into<String>) -> Self {
        ListParams { field_selector: selector.into(), ..Default::default() }
    }
}

/// A list result: the items and the resourceVersion to watch from.
#[derive(Clone, Debug)]
pub struct ObjectList<K> {
    pub items: Vec<K>,
    pub resource_version: String,
}

/// One change seen by a watch.
#[derive(Clone, Debug)]
pub enum WatchEvent<K> {
    Added(K),
    Modified(K),
    Deleted(K),
    /// Nothing changed up to this resourceVersion.
    Bookmark(String),
}

/// A stream of watch events; an `Err` ends it (a 410 means "relist").
pub type WatchStream<K> = Pin<Box<dyn Stream<Item = Result<WatchEvent<K>, ApiError>> + Send>>;

/// Typed access to one kind, in one namespace or cluster-wide.
#[derive(Debug)]
pub struct Api<K> {
    client: Client,
    info: &'static ResourceInfo,
    namespace: String,
    _kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Api<K> {
    fn clone(&self) -> Self {
        Api { client: self.client.clone(), info: self.info, namespace: self.namespace.clone(), _kind: PhantomData }
    }
}

/// The resource table's row for a `k8s-openapi` type.
pub fn info_of<K: k8s_openapi::Resource>() -> &'static ResourceInfo {
    api::resources::by_resource(K::GROUP, K::URL_PATH_SEGMENT).unwrap_or_else(|| panic!("{} is not in tinykube's resource table", K::KIND))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::internal(format!("cannot decode server reply: {e}")))
}

fn encode<T: Serialize>(obj: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(obj).map_err(|e| ApiError::bad_request(format!("cannot encode object: {e}")))
}

impl<K: Object> Api<K> {
    /// Every object of the kind: cluster-scoped kinds, or namespaced kinds
    /// across all namespaces (list and watch only).
    pub fn all(client: Client) -> Self {
        Api { client, info: info_of::<K>(), namespace: String::new(), _kind: PhantomData }
    }

    /// Objects of a namespaced kind in one namespace.
    pub fn namespaced(client: Client, namespace: &str) -> Self {
        Api { client, info: info_of::<K>(), namespace: namespace.to_string(), _kind: PhantomData }
    }

    fn resource(&self) -> Option<ResourceRef> {
        Some(self.info.to_ref(&self.namespace))
    }

    /// Same kind, another namespace.
    pub fn in_namespace(&self, namespace: &str) -> Self {
        Api::namespaced(self.client.clone(), namespace)
    }

    pub async fn get(&self, name: &str) -> Result<K, ApiError> {
        let req = proto::GetRequest { resource: self.resource(), name: name.to_string() };
        let obj = self.client.grpc.clone().get(req).await.map_err(|s| ApiError::from_grpc(&s))?;
        decode(&obj.into_inner().json)
    }

    /// `get`, with "not found" as `None`.
    pub async fn get_opt(&self, name: &str) -> Result<Option<K>, ApiError> {
        match self.get(name).await {
            Ok(k) => Ok(Some(k)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn list(&self, params: &ListParams) -> Result<ObjectList<K>, ApiError> {
        let req = proto::ListRequest {
            resource: self.resource(),
            label_selector: params.label_selector.clone(),
            field_selector: params.field_selector.clone(),
        };
        let reply = self.client.grpc.clone().list(req).await.map_err(|s| ApiError::from_grpc(&s))?;
        let list: serde_json::Value = decode(&reply.into_inner().json)?;
        let resource_version = list["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
        let items = match list.get("items") {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .map(|i| serde_json::from_value(i.clone()).map_err(|e| ApiError::internal(format!("cannot decode item: {e}"))))
                .collect::<Result<Vec<K>, _>>()?,
            _ => Vec::new(),
        };
        Ok(ObjectList { items, resource_version })
    }

    /// Watches changes after `resource_version` ("" or "0": first an ADDED
    /// for each existing object). Bookmarks arrive every
    /// `bookmark_interval_seconds` when non-zero.
    pub async fn watch(
        &self,
        params: &ListParams,
        resource_version: &str,
        bookmark_interval_seconds: u32,
    ) -> Result<WatchStream<K>, ApiError> {
        let req = proto::WatchRequest {
            resource: self.resource(),
            label_selector: params.label_selector.clone(),
            field_selector: params.field_selector.clone(),
            resource_version: resource_version.to_string(),
            bookmark_interval_seconds,
        };
        let stream = self.client.grpc.clone().watch(req).await.map_err(|s| ApiError::from_grpc(&s))?.into_inner();
        Ok(Box::pin(stream.map(|item| {
            let ev = item.map_err(|s| ApiError::from_grpc(&s))?;
            let v: serde_json::Value = decode(&ev.json)?;
            let kind = v["type"].as_str().unwrap_or_default().to_string();
            let object = v.get("object").cloned().unwrap_or_default();
            match kind.as_str() {
                "BOOKMARK" => Ok(WatchEvent::Bookmark(object["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string())),
                "ERROR" => Err(ApiError::from_status_json(&object).unwrap_or_else(|| ApiError::internal("malformed watch error"))),
                _ => {
                    let obj: K =
                        serde_json::from_value(object).map_err(|e| ApiError::internal(format!("cannot decode watch object: {e}")))?;
                    Ok(match kind.as_str() {
                        "ADDED" => WatchEvent::Added(obj),
                        "DELETED" => WatchEvent::Deleted(obj),
                        _ => WatchEvent::Modified(obj),
                    })
                }
            }
        })))
    }

    async fn write(&self, obj: &K, dry_run: bool, status: bool, create: bool) -> Result<K, ApiError> {
        let req = proto::WriteRequest { resource: self.resource(), object: Some(proto::Object { json: encode(obj)? }), dry_run };
        let mut grpc = self.client.grpc.clone();
        let reply = if create {
            grpc.create(req).await
        } else if status {
            grpc.update_status(req).await
        } else {
            grpc.update(req).await
        };
        decode(&reply.map_err(|s| ApiError::from_grpc(&s))?.into_inner().json)
    }

    pub async fn create(&self, obj: &K) -> Result<K, ApiError> {
        self.write(obj, false, false, true).await
    }

    /// Updates the object; `metadata.resourceVersion`, when set, must be
    /// current or the call fails with 409 Conflict.
    pub async fn replace(&self, obj: &K) -> Result<K, ApiError> {
        self.write(obj, false, false, false).await
    }

    /// Updates only the status (the `/status` subresource).
    pub async fn replace_status(&self, obj: &K) -> Result<K, ApiError> {
        self.write(obj, false, true, false).await
    }

    /// Deletes by name with default options (background propagation).
    pub async fn delete(&self, name: &str) -> Result<(), ApiError> {
        self.delete_with(name, &serde_json::Value::Null).await
    }

    /// Deletes with Kubernetes `DeleteOptions` given as JSON
    /// (`{"propagationPolicy":"Foreground","gracePeriodSeconds":0}`).
    pub async fn delete_with(&self, name: &str, options: &serde_json::Value) -> Result<(), ApiError> {
        let options = if options.is_null() { Vec::new() } else { encode(options)? };
        let req = proto::DeleteRequest { resource: self.resource(), name: name.to_string(), options };
        self.client.grpc.clone().delete(req).await.map_err(|s| ApiError::from_grpc(&s))?;
        Ok(())
    }
}
