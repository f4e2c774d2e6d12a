//! Untyped access to any kind, for tools that handle whatever a manifest
//! holds (the CLI's `apply`, `get`, `delete`), as client-go's dynamic
//! client. Objects are `serde_json::Value`s.

use api::proto;
use api::{ApiError, ResourceInfo};
use futures::StreamExt;
use serde_json::Value;

use crate::{Client, ListParams};

/// One kind, one namespace (or all), untyped.
#[derive(Clone, Debug)]
pub struct DynamicApi {
    client: Client,
    info: &'static ResourceInfo,
    namespace: String,
}

fn decode(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::internal(format!("cannot decode server reply: {e}")))
}

fn object(v: &Value) -> Option<proto::Object> {
    Some(proto::Object { json: serde_json::to_vec(v).unwrap_or_default() })
}

impl DynamicApi {
    pub fn new(client: Client, info: &'static ResourceInfo, namespace: &str) -> Self {
        DynamicApi { client, info, namespace: namespace.to_string() }
    }

    pub fn info(&self) -> &'static ResourceInfo {
        self.info
    }

    fn resource(&self) -> Option<proto::ResourceRef> {
        Some(self.info.to_ref(&self.namespace))
    }

    pub async fn get(&self, name: &str) -> Result<Value, ApiError> {
        let req = proto::GetRequest { resource: self.resource(), name: name.to_string() };
        let r = self.client.grpc().get(req).await.map_err(|s| ApiError::from_grpc(&s))?;
        decode(&r.into_inner().json)
    }

    /// A `List` object: `{"kind": "PodList", "metadata": {...}, "items": [...]}`.
    pub async fn list(&self, params: &ListParams) -> Result<Value, ApiError> {
        let req = proto::ListRequest {
            resource: self.resource(),
            label_selector: params.label_selector.clone(),
            field_selector: params.field_selector.clone(),
        };
        let r = self.client.grpc().list(req).await.map_err(|s| ApiError::from_grpc(&s))?;
        decode(&r.into_inner().json)
    }

    pub async fn create(&self, obj: &Value, dry_run: bool) -> Result<Value, ApiError> {
        let req = proto::WriteRequest { resource: self.resource(), object: object(obj), dry_run };
        let r = self.client.grpc().create(req).await.map_err(|s| ApiError::from_grpc(&s))?;
        decode(&r.into_inner().json)
    }

    pub async fn update(&self, obj: &Value, dry_run: bool) -> Result<Value, ApiError> {
        let req = proto::WriteRequest { resource: self.resource(), object: object(obj), dry_run };
        let r = self.client.grpc().update(req).await.map_err(|s| ApiError::from_grpc(&s))?;
        decode(&r.into_inner().json)
    }

    pub async fn delete(&self, name: &str, options: &Value) -> Result<Value, ApiError> {
        let options = if options.is_null() { Vec::new() } else { serde_json::to_vec(options).unwrap_or_default() };
        let req = proto::DeleteRequest { resource: self.resource(), name: name.to_string(), options };
        let r = self.client.grpc().delete(req).await.map_err(|s| ApiError::from_grpc(&s))?;
        decode(&r.into_inner().json)
    }

    /// Watch events as `{"type": ..., "object": ...}` values; an `ERROR`
    /// event becomes an `Err`.
    pub async fn watch(
        &self,
        params: &ListParams,
        resource_version: &str,
    ) -> Result<impl futures::Stream<Item = Result<Value, ApiError>> + use<>, ApiError> {
        let req = proto::WatchRequest {
            resource: self.resource(),
            label_selector: params.label_selector.clone(),
            field_selector: params.field_selector.clone(),
            resource_version: resource_version.to_string(),
            bookmark_interval_seconds: 0,
        };
        let stream = self.client.grpc().watch(req).await.map_err(|s| ApiError::from_grpc(&s))?.into_inner();
        Ok(stream.map(|item| {
            let ev = decode(&item.map_err(|s| ApiError::from_grpc(&s))?.json)?;
            if ev["type"] == "ERROR" {
                return Err(ApiError::from_status_json(&ev["object"]).unwrap_or_else(|| ApiError::internal("watch error")));
            }
            Ok(ev)
        }))
    }
}
