//! The gRPC front door: the `Resources` service every tinykube component
//! uses. Each method unpacks its request, calls the [`Registry`], and
//! converts errors with [`ApiError::to_grpc`] — the one place errors cross
//! to gRPC.

use std::pin::Pin;
use std::time::Duration;

use api::proto;
use api::proto::resources_server::Resources;
use api::{ApiError, ResourceInfo};
use futures::{Stream, StreamExt};
use serde_json::Value;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::registry::{FieldValidation, Filter, Registry, WriteOptions};
use crate::strategy::Op;
use crate::watch::{self, WatchParams};

/// The `Resources` service over one registry.
#[derive(Debug, Clone)]
pub struct ResourcesService {
    registry: Registry,
}

impl ResourcesService {
    pub fn new(registry: Registry) -> Self {
        ResourcesService { registry }
    }

    /// May the caller do this? (See [`crate::authz`].)
    async fn check(&self, verb: &str, info: &ResourceInfo, namespace: &str, name: Option<&str>, sub: Option<&str>) -> Result<(), Status> {
        let user = crate::authn::current().unwrap_or_else(crate::authn::User::anonymous);
        let ns = if info.namespaced { namespace } else { "" };
        let attrs = crate::authz::Attributes { verb, group: info.group, resource: info.resource, subresource: sub, namespace: ns, name };
        crate::authz::check(&self.registry, &user, &attrs).await.map_err(grpc)
    }
}

fn resolve(r: Option<&proto::ResourceRef>) -> Result<(&'static ResourceInfo, String), Status> {
    let r = r.ok_or_else(|| ApiError::bad_request("resource is required").to_grpc())?;
    let info = api::resources::by_resource(&r.group, &r.resource)
        .filter(|i| r.version.is_empty() || i.version == r.version)
        .ok_or_else(|| {
            let gv = if r.group.is_empty() { r.version.clone() } else { format!("{}/{}", r.group, r.version) };
            ApiError::not_found(&r.group, &r.resource, "")
                .with_message(format!("the server could not find the requested resource ({} {gv})", r.resource))
                .to_grpc()
        })?;
    Ok((info, r.namespace.clone()))
}

fn parse_object(obj: Option<&proto::Object>) -> Result<Value, Status> {
    let obj = obj.ok_or_else(|| ApiError::bad_request("object is required").to_grpc())?;
    serde_json::from_slice(&obj.json).map_err(|e| ApiError::bad_request(format!("the object is not valid JSON: {e}")).to_grpc())
}

fn reply(obj: Value) -> Result<Response<proto::Object>, Status> {
    Ok(Response::new(proto::Object { json: serde_json::to_vec(&obj).map_err(|e| ApiError::internal(e).to_grpc())? }))
}

fn grpc(e: ApiError) -> Status {
    e.to_grpc()
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Resources for ResourcesService {
    async fn get(&self, req: Request<proto::GetRequest>) -> Result<Response<proto::Object>, Status> {
        let req = req.into_inner();
        let (info, ns) = resolve(req.resource.as_ref())?;
        self.check("get", info, &ns, Some(&req.name), None).await?;
        reply(self.registry.get(info, &ns, &req.name).await.map_err(grpc)?)
    }

    async fn list(&self, req: Request<proto::ListRequest>) -> Result<Response<proto::ListResponse>, Status> {
        let req = req.into_inner();
        let (info, ns) = resolve(req.resource.as_ref())?;
        self.check("list", info, &ns, None, None).await?;
        let filter = Filter::parse(info, &req.label_selector, &req.field_selector).map_err(grpc)?;
        let list = self.registry.list(info, &ns, &filter).await.map_err(grpc)?;
        let body = serde_json::json!({
            "apiVersion": info.api_version(),
            "kind": info.list_kind(),
            "metadata": {"resourceVersion": list.revision.to_string()},
            "items": list.items,
        });
        Ok(Response::new(proto::ListResponse { json: serde_json::to_vec(&body).map_err(|e| ApiError::internal(e).to_grpc())? }))
    }

    type WatchStream = BoxStream<proto::WatchEvent>;

    async fn watch(&self, req: Request<proto::WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let req = req.into_inner();
        let (info, ns) = resolve(req.resource.as_ref())?;
        self.check("watch", info, &ns, None, None).await?;
        let filter = Filter::parse(info, &req.label_selector, &req.field_selector).map_err(grpc)?;
        let params = WatchParams {
            namespace: ns,
            filter,
            resource_version: req.resource_version,
            bookmark_interval: (req.bookmark_interval_seconds > 0).then(|| Duration::from_secs(req.bookmark_interval_seconds.into())),
            initial_events_end: false,
        };
        let rx = watch::watch(&self.registry, info, params).await.map_err(grpc)?;
        let stream = ReceiverStream::new(rx).map(|ev| Ok(proto::WatchEvent { json: serde_json::to_vec(&ev).unwrap_or_default() }));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn create(&self, req: Request<proto::WriteRequest>) -> Result<Response<proto::Object>, Status> {
        let req = req.into_inner();
        let (info, ns) = resolve(req.resource.as_ref())?;
        self.check("create", info, &ns, None, None).await?;
        let obj = parse_object(req.object.as_ref())?;
        let opts = WriteOptions { dry_run: req.dry_run, validation: FieldValidation::Ignore };
        reply(self.registry.create(info, &ns, obj, &opts).await.map_err(grpc)?.object)
    }

    async fn update(&self, req: Request<proto::WriteRequest>) -> Result<Response<proto::Object>, Status> {
        let req = req.into_inner();
        let (info, ns) = resolve(req.resource.as_ref())?;
        let obj = parse_object(req.object.as_ref())?;
        self.check("update", info, &ns, obj["metadata"]["name"].as_str(), None).await?;
        let opts = WriteOptions { dry_run: req.dry_run, validation: FieldValidation::Ignore };
        reply(self.registry.update(info, &ns, obj, Op::Update, &opts).await.map_err(grpc)?.object)
    }

    async fn update_status(&self, req: Request<proto::WriteRequest>) -> Result<Response<proto::Object>, Status> {
        let req = req.into_inner();
        let (info, ns) = resolve(req.resource.as_ref())?;
        if !info.has_status {
            return Err(ApiError::not_found(info.group, &format!("{}/status", info.resource), "").to_grpc());
        }
        let obj = parse_object(req.object.as_ref())?;
        self.check("update", info, &ns, obj["metadata"]["name"].as_str(), Some("status")).await?;
        let opts = WriteOptions { dry_run: req.dry_run, validation: FieldValidation::Ignore };
        reply(self.registry.update(info, &ns, obj, Op::UpdateStatus, &opts).await.map_err(grpc)?.object)
    }

    async fn delete(&self, req: Request<proto::DeleteRequest>) -> Result<Response<proto::Object>, Status> {
        let req = req.into_inner();
        let (info, ns) = resolve(req.resource.as_ref())?;
        self.check("delete", info, &ns, Some(&req.name), None).await?;
        let options: Value = if req.options.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&req.options).map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")).to_grpc())?
        };
        reply(self.registry.delete(info, &ns, &req.name, &options).await.map_err(grpc)?.object)
    }

    async fn bind(&self, req: Request<proto::BindRequest>) -> Result<Response<proto::Object>, Status> {
        let req = req.into_inner();
        let pods = api::resources::by_resource("", "pods").expect("pods are in the table");
        let binding = parse_object(req.binding.as_ref())?;
        self.check("create", pods, &req.namespace, binding["metadata"]["name"].as_str(), Some("binding")).await?;
        reply(self.registry.bind(&req.namespace, &binding).await.map_err(grpc)?)
    }

    type LogsStream = BoxStream<proto::LogChunk>;

    async fn logs(&self, req: Request<proto::LogsRequest>) -> Result<Response<Self::LogsStream>, Status> {
        let req = req.into_inner();
        let pods = api::resources::by_resource("", "pods").expect("pods are in the table");
        self.check("get", pods, &req.namespace, Some(&req.pod), Some("log")).await?;
        let mut agent = crate::proxy::agent_for_pod(&self.registry, &req.namespace, &req.pod).await.map_err(grpc)?;
        let stream = agent.logs(req).await?.into_inner();
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Needed by [`resolve`]: replace an error's message, keeping its reason.
trait WithMessage {
    fn with_message(self, message: String) -> Self;
}

impl WithMessage for ApiError {
    fn with_message(mut self, message: String) -> Self {
        self.message = message;
        self
    }
}
