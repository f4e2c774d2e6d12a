//! [`Store`]: the handle the rest of tinykube holds, and its [`Kv`] impl.
//!
//! Reads run on the caller's task, straight against sled, at the published
//! revision. Writes are queued for the writer thread and answered once they
//! are on disk. Watches register with the hub.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use crate::backend::{Backend, Recovered};
use crate::mvcc::{self, Txn};
use crate::watch::{self, WatchHub};
use crate::writer::{self, Reply, Request};
use crate::{
    DeleteRangeRequest, DeleteRangeResponse, Error, Kv, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, TxnRequest,
    TxnResponse, WatchRequest, Watcher,
};

/// State shared by the store handles, the writer thread and the watch
/// catch-up tasks.
pub(crate) struct Shared {
    pub(crate) backend: Backend,
    /// History below this revision is gone. Raised by the writer *before*
    /// it deletes anything, so readers can re-check it after reading.
    pub(crate) compact_revision: AtomicI64,
    /// Holds the published revision and the watchers.
    pub(crate) hub: WatchHub,
    pub(crate) stats: Counters,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) writes: AtomicU64,
    pub(crate) flushes: AtomicU64,
}

/// Counters that show group commit at work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Write requests that changed the store (each got its own revision).
    pub writes: u64,
    /// fsyncs the writer issued. Under concurrent load this is well below
    /// `writes`: that is group commit.
    pub flushes: u64,
}

/// The embedded etcd-like store. Cloning is cheap and every clone is the
/// same store; the writer stops (after a final flush) when the last clone
/// is dropped.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    /// `None` only while dropping, so that the writer sees its queue close.
    requests: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue stops the writer; joining it means the sled
        // files are flushed and unlocked by the time the last handle is
        // gone, so the same directory can be opened again right away.
        self.requests.take();
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!("the store writer thread panicked");
            }
        }
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("revision", &self.revision())
            .field("compact_revision", &self.compact_revision())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store in the directory `path`, creating it if needed, and
    /// recovers the revision and compaction point from disk. A directory
    /// sled cannot read, or a sled database that is not a tinykube store,
    /// is an [`Error::Storage`].
    pub fn open(path: &Path) -> Result<Store, Error> {
        Store::start(Backend::open(Some(path))?)
    }

    /// A store in a temporary file that is deleted when the store is
    /// dropped; for tests and demos.
    pub fn open_temporary() -> Result<Store, Error> {
        Store::start(Backend::open(None)?)
    }

    fn start((backend, recovered): (Backend, Recovered)) -> Result<Store, Error> {
        let shared = Arc::new(Shared {
            backend,
            compact_revision: AtomicI64::new(recovered.compact_revision),
            hub: WatchHub::new(recovered.revision),
            stats: Counters::default(),
        });
        let (requests, writer) = writer::start(shared.clone(), recovered.revision)?;
        tracing::debug!(revision = recovered.revision, compact_revision = recovered.compact_revision, "store opened");
        Ok(Store { inner: Arc::new(Inner { shared, requests: Some(requests), writer: Some(writer) }) })
    }

    /// The current revision: that of the last durable write. A new store
    /// is at 1.
    pub fn revision(&self) -> i64 {
        self.inner.shared.hub.revision()
    }

    /// History below this revision has been compacted away (0 if never).
    pub fn compact_revision(&self) -> i64 {
        self.inner.shared.compact_revision.load(Ordering::SeqCst)
    }

    /// Flushes sled. Every acknowledged write is already durable, so this
    /// is only a courtesy for an orderly shutdown.
    pub async fn flush(&self) -> Result<(), Error> {
        self.inner.shared.backend.flush_async().await
    }

    pub fn stats(&self) -> Stats {
        let stats = &self.inner.shared.stats;
        Stats { writes: stats.writes.load(Ordering::Relaxed), flushes: stats.flushes.load(Ordering::Relaxed) }
    }

    /// Queues a request for the writer and waits for its answer.
    async fn submit<T>(&self, request: impl FnOnce(Reply<T>) -> Request) -> Result<T, Error> {
        let requests = self.inner.requests.as_ref().ok_or(Error::Stopped)?;
        let (reply, answer) = oneshot::channel();
        requests.send(request(reply)).await.map_err(|_| Error::Stopped)?;
        answer.await.map_err(|_| Error::Stopped)?
    }

    /// A read-only transaction at the published revision.
    fn reader(&self) -> Txn<'_> {
        let shared = &self.inner.shared;
        // Revision first: the compaction point never passes the published
        // revision, so this pair is always a valid view.
        let revision = shared.hub.revision();
        Txn::new(&shared.backend, revision, shared.compact_revision.load(Ordering::SeqCst))
    }

    /// Fails a finished read of history at `revision` if a compaction
    /// overtook it: the writer may have deleted entries the read needed.
    fn check_not_compacted_since(&self, revision: i64) -> Result<(), Error> {
        let compact_revision = self.compact_revision();
        if revision > 0 && revision < compact_revision {
            return Err(Error::Compacted { compact_revision });
        }
        Ok(())
    }
}

#[async_trait]
impl Kv for Store {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, Error> {
        let response = self.reader().range(&req)?;
        self.check_not_compacted_since(req.revision)?;
        Ok(response)
    }

    async fn put(&self, req: PutRequest) -> Result<PutResponse, Error> {
        mvcc::check_key(&req.key)?;
        self.submit(|reply| Request::Put(req, reply)).await
    }

    async fn delete_range(&self, req: DeleteRangeRequest) -> Result<DeleteRangeResponse, Error> {
        mvcc::check_key(&req.key)?;
        self.submit(|reply| Request::DeleteRange(req, reply)).await
    }

    async fn txn(&self, req: TxnRequest) -> Result<TxnResponse, Error> {
        mvcc::check_txn(&req)?;
        if mvcc::txn_may_write(&req) {
            return self.submit(|reply| Request::Txn(req, reply)).await;
        }
        // Compares and reads only: no need to queue behind writes, one
        // consistent view of the published revision answers it all.
        let response = self.reader().txn(&req)?;
        let oldest_read = req
            .success
            .iter()
            .chain(&req.failure)
            .filter_map(|op| match op {
                RequestOp::Range(range) if range.revision > 0 => Some(range.revision),
                _ => None,
            })
            .min()
            .unwrap_or(0);
        self.check_not_compacted_since(oldest_read)?;
        Ok(response)
    }

    async fn watch(&self, req: WatchRequest) -> Result<Watcher, Error> {
        watch::register(&self.inner.shared, req)
    }

    async fn compact(&self, revision: i64) -> Result<(), Error> {
        self.submit(|reply| Request::Compact(revision, reply)).await
    }
}

#[cfg(test)]
mod tests;
