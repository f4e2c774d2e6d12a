//! # The store: tinykube's etcd
//!
//! (Module essay and layout are written with the implementation.)

pub mod kv;

pub use kv::*;

/// Errors of the store, with etcd's error strings.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A read or watch asked for a revision older than the compaction point.
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted { compact_revision: i64 },
    /// A read asked for a revision newer than the store has.
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
    /// A request was malformed (an empty key, say).
    #[error("etcdserver: {0}")]
    InvalidArgument(String),
    /// The store is shutting down.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// The disk failed, or the data on it is not tinykube's.
    #[error("storage error: {0}")]
    Storage(String),
}
