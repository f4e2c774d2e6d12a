//! The etcd v3 key-value interface, as plain Rust types.
//!
//! These mirror `etcdserverpb` (rpc.proto) and `mvccpb` (kv.proto) message
//! for message, with the same field names and meanings, so that:
//! - the api-server is written against etcd's semantics and nothing else;
//! - the embedded [`crate::Store`] implements [`Kv`] directly;
//! - the etcd gRPC service (for `etcdctl`) and a client of a real etcd
//!   cluster are thin translations to and from these types.
//!
//! Keys and values are bytes. A range is `[key, range_end)`; an empty
//! `range_end` means the single key `key`, and `range_end == [0]` means
//! every key from `key` on — etcd's conventions, kept unchanged.

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::Error;

/// `mvccpb.KeyValue`: one version of one key.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct KeyValue {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// Revision of the write that created the key (reset by delete + put).
    #[prost(int64, tag = "2")]
    pub create_revision: i64,
    /// Revision of the last write to the key.
    #[prost(int64, tag = "3")]
    pub mod_revision: i64,
    /// Writes since creation: 1 on create, +1 on each put.
    #[prost(int64, tag = "4")]
    pub version: i64,
    #[prost(bytes = "vec", tag = "5")]
    pub value: Vec<u8>,
    /// Lease id attached to the key, 0 for none.
    #[prost(int64, tag = "6")]
    pub lease: i64,
}

/// `RangeRequest`: read one key or a range of keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeRequest {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    /// At most this many keys (0 = no limit).
    pub limit: i64,
    /// Read as of this revision (0 = the current one). A compacted
    /// revision is an error.
    pub revision: i64,
    pub keys_only: bool,
    pub count_only: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeResponse {
    /// The store's revision when the read was served.
    pub revision: i64,
    /// Key-ascending.
    pub kvs: Vec<KeyValue>,
    /// More keys matched than `limit` returned.
    pub more: bool,
    /// Keys in the range, regardless of `limit`.
    pub count: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutRequest {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub lease: i64,
    pub prev_kv: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutResponse {
    pub revision: i64,
    pub prev_kv: Option<KeyValue>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteRangeRequest {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    pub prev_kv: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteRangeResponse {
    pub revision: i64,
    pub deleted: i64,
    pub prev_kvs: Vec<KeyValue>,
}

/// What a [`Compare`] looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareTarget {
    Version(i64),
    CreateRevision(i64),
    ModRevision(i64),
    Value(Vec<u8>),
    Lease(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareResult {
    Equal,
    Greater,
    Less,
    NotEqual,
}

/// `Compare`: a guard of a transaction. A missing key has version,
/// create_revision and mod_revision 0, as in etcd, so "create if absent" is
/// `ModRevision(0) == Equal`. A `Value` compare on a missing key always
/// fails, whatever the operator: etcd cannot tell an empty value from no
/// value on the wire, so it refuses to guess.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    pub key: Vec<u8>,
    /// Compare every key in `[key, range_end)`; empty for one key.
    pub range_end: Vec<u8>,
    pub result: CompareResult,
    pub target: CompareTarget,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOp {
    Range(RangeRequest),
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseOp {
    Range(RangeResponse),
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
}

/// `TxnRequest`: if every compare holds run `success`, else `failure`; all
/// of it at one revision, atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnRequest {
    pub compare: Vec<Compare>,
    pub success: Vec<RequestOp>,
    pub failure: Vec<RequestOp>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnResponse {
    pub revision: i64,
    pub succeeded: bool,
    pub responses: Vec<ResponseOp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Put,
    Delete,
}

/// `mvccpb.Event`. For a delete, `kv` holds the key with `mod_revision` set
/// to the deleting revision and an empty value, as etcd sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventType,
    pub kv: KeyValue,
    pub prev_kv: Option<KeyValue>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchRequest {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    /// Deliver events with revision >= this (0 = only future events).
    pub start_revision: i64,
    pub prev_kv: bool,
}

/// A batch of events, all of one revision or in revision order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchResponse {
    /// The store's revision when the batch was sent.
    pub revision: i64,
    pub events: Vec<Event>,
    /// Set, with no events, when `start_revision` was compacted away; the
    /// watch is over and the caller must re-read (etcd's `compact_revision`).
    pub compact_revision: i64,
}

/// A running watch: batches arrive on `events` until the receiver is
/// dropped or the store shuts down.
#[derive(Debug)]
pub struct Watcher {
    pub events: mpsc::Receiver<WatchResponse>,
}

/// The etcd v3 KV and Watch API. Everything above the store uses only this.
#[async_trait]
pub trait Kv: Send + Sync + 'static {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, Error>;
    /// Returns once the write is durable on disk.
    async fn put(&self, req: PutRequest) -> Result<PutResponse, Error>;
    /// Returns once the delete is durable on disk.
    async fn delete_range(&self, req: DeleteRangeRequest) -> Result<DeleteRangeResponse, Error>;
    /// Returns once the transaction (if it wrote) is durable on disk.
    async fn txn(&self, req: TxnRequest) -> Result<TxnResponse, Error>;
    async fn watch(&self, req: WatchRequest) -> Result<Watcher, Error>;
    /// Forget history before `revision`; watches and reads below it then
    /// fail with [`Error::Compacted`].
    async fn compact(&self, revision: i64) -> Result<(), Error>;
}

/// `range_end` that covers every key starting with `prefix`, as
/// `etcdctl get --prefix` computes it: the prefix with its last byte
/// incremented (dropping trailing 0xff bytes), or `[0]` for "everything".
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}
