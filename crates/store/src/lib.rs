//! # The store: tinykube's etcd
//!
//! Kubernetes keeps all of its state in etcd, and everything it promises
//! about that state — optimistic concurrency, lists and watches that resume
//! where they left off — is etcd's MVCC model showing through. This crate
//! is that model in miniature, with etcd's v3 API ([`Kv`]) so that the
//! api-server runs unchanged on it or on a real etcd.
//!
//! ## Revisions
//!
//! The store has one global counter, the *revision*. Every write — a put, a
//! delete that deleted something, a transaction that changed anything —
//! gets the next revision, and everything one transaction changes shares
//! that revision. A new store is at revision 1, so the first write is 2,
//! exactly as in etcd. Kubernetes exposes this number as every object's
//! `resourceVersion`.
//!
//! Each key carries three more numbers: `create_revision` (the write that
//! created it), `mod_revision` (the last write to it) and `version` (1 on
//! create, +1 on each put). A delete leaves a *tombstone*, and a later put
//! starts afresh: new `create_revision`, version 1. A compare-and-swap is a
//! [`TxnRequest`] that checks `mod_revision` before it writes; that is how
//! the api-server turns a stale update into a 409 Conflict.
//!
//! ## Multi-version: reading the past
//!
//! Writes never overwrite. The store keeps every version of every key, so
//! it can answer "what did `/registry/pods/` look like at revision 40?" and
//! replay "everything that happened since revision 40" to a watch. That is
//! what lets a Kubernetes informer list at one revision and then watch from
//! exactly the next, missing nothing. History grows until it is
//! *compacted*: [`Kv::compact`] forgets versions below a revision, and reads
//! or watches below it then fail with [`Error::Compacted`] (the api-server's
//! 410 Gone).
//!
//! ## On disk
//!
//! Data lives in sled, in three trees (see `backend`):
//! `kv` keyed by `(key, revision)` holds every version, so "the newest
//! version of this key at or below revision R" is one short sled range;
//! `log` keyed by `(revision, sub-revision)` lists the keys each revision
//! touched, which is what a watch replays; `meta` holds a format marker, the
//! current revision and the compaction point. etcd itself keys its bolt
//! database by revision only and keeps the key → revisions index in memory,
//! rebuilt at startup; tinykube stores both orders so that nothing needs
//! rebuilding and reads can go straight to sled.
//!
//! Because entries are never modified, readers need no lock against the
//! writer: a read at revision R simply ignores entries above R.
//!
//! ## Durability and group commit
//!
//! A write is acknowledged only after it is on disk, so it survives
//! `kill -9`. The cost of that is the fsync, and etcd's answer is to share
//! it: a single writer (see `writer`) takes every request that is waiting,
//! applies them in order, fsyncs once, and only then publishes the new
//! revision and answers them all. The more concurrent writers, the more
//! writes per fsync. New revisions become visible to readers and watchers
//! only after that fsync, so nobody sees a write that a crash could undo.
//!
//! ## Where tinykube simplifies
//!
//! - One node. etcd replicates each write through Raft before applying it;
//!   here the fsync of the local disk is the commit point.
//! - Leases are stored with the key as given but nothing expires them yet.
//! - Compaction runs inline on the writer and pauses writes while it runs;
//!   etcd compacts in the background in small batches.
//! - No range sorting options, no `min/max_mod_revision` filters, no
//!   watch fragmenting, filters or progress notifications. A watch sends
//!   one response per revision, where etcd may batch several.
//! - etcd keeps the index in memory and reads values from bolt's mmap;
//!   reads here are sled range scans that decode every version they pass
//!   over, which is fine for a learning cluster's few thousand keys.
//!
//! # Layout
//!
//! - `kv`: the etcd v3 request and response types and the [`Kv`] trait.
//! - `keys`: how keys, key ranges and revisions become sled keys.
//! - `backend`: the sled trees; reads at a revision, atomic commits,
//!   compaction, recovery on open.
//! - `mvcc`: etcd's semantics for range, put, delete and transactions, as
//!   a `Txn` over one revision.
//! - `writer`: the group-commit writer thread.
//! - `watch`: the watch hub: synced and unsynced watchers, catch-up from
//!   history.
//! - `store`: [`Store`], the handle that ties them together.

mod backend;
mod keys;
pub mod kv;
mod mvcc;
mod store;
mod watch;
mod writer;

pub use kv::*;
pub use mvcc::MAX_TXN_OPS;
pub use store::{Stats, Store};
pub use watch::WATCH_CHANNEL_CAPACITY;

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
