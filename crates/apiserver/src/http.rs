//! HTTP plumbing shared by the REST front door: the response body type and
//! helpers to build JSON and `Status` responses.

use std::convert::Infallible;

use api::ApiError;
use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};

/// Every REST response body: a whole buffer or a stream (watch, logs).
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never: Infallible| match never {}).boxed_unsync()
}

/// A body fed by a stream of chunks, flushed as they come.
pub fn streaming<S>(stream: S) -> Body
where
    S: futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
{
    let frames = futures::StreamExt::map(stream, |r| r.map(hyper::body::Frame::data));
    BodyExt::boxed_unsync(StreamBody::new(frames))
}

/// A JSON response.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(bytes))
        .unwrap_or_else(|_| Response::new(full(Bytes::new())))
}

/// A Kubernetes `Status` error response.
pub fn error(err: &ApiError) -> Response<Body> {
    let status = StatusCode::from_u16(err.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(status, &err.to_status_json())
}
