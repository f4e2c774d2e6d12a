//! The writer: one thread that applies every write, in order, and shares
//! one fsync among all the writes that arrived together (group commit).
//!
//! An fsync costs milliseconds on most disks, and a store that fsyncs once
//! per write is capped at a few hundred writes a second however many
//! clients it has. etcd gets its numbers by batching: its backend commits
//! many writes per fsync. The writer here does the same:
//!
//! 1. wait for a request, then take every other request already queued
//!    (up to [`MAX_GROUP`]): that is the group;
//! 2. apply each request in queue order, each at the next revision, each as
//!    one atomic sled transaction;
//! 3. flush sled once for the whole group;
//! 4. only now publish the new revision (readers and watchers see the
//!    writes) and answer every caller in the group.
//!
//! Because nothing is visible or acknowledged before step 3, a client can
//! never observe a write that a crash then takes back. While the flush runs,
//! new requests pile up in the queue and become the next group, so the
//! busier the store, the more writes each fsync carries.
//!
//! The writer is a plain OS thread rather than a tokio task because sled's
//! API is blocking: a flush would otherwise stall one of tokio's workers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use crate::mvcc::Txn;
use crate::store::Shared;
use crate::{watch, DeleteRangeRequest, DeleteRangeResponse, Error, Event, PutRequest, PutResponse, TxnRequest, TxnResponse};

/// How many requests may wait for the writer before callers wait to enqueue.
pub(crate) const QUEUE_DEPTH: usize = 1024;

/// The most requests one fsync covers; bounds how long the first request of
/// a group waits for the last one to be applied.
pub(crate) const MAX_GROUP: usize = 512;

/// Where the writer sends one caller its answer.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// A write request and the caller waiting for it.
pub(crate) enum Request {
    Put(PutRequest, Reply<PutResponse>),
    DeleteRange(DeleteRangeRequest, Reply<DeleteRangeResponse>),
    /// A transaction that may write; read-only ones never reach the writer.
    Txn(TxnRequest, Reply<TxnResponse>),
    /// Compaction runs in a group of its own (see [`Writer::run`]).
    Compact(i64, Reply<()>),
}

/// An answer held back until the group's flush has succeeded.
struct Answer<T> {
    reply: Reply<T>,
    result: Result<T, Error>,
}

trait Deliver: Send {
    /// Sends the answer, or the flush failure instead of a success.
    fn deliver(self: Box<Self>, flush_failure: Option<&str>);
}

impl<T: Send> Deliver for Answer<T> {
    fn deliver(self: Box<Self>, flush_failure: Option<&str>) {
        let result = match flush_failure {
            Some(reason) if self.result.is_ok() => Err(Error::Storage(format!("flush failed: {reason}"))),
            _ => self.result,
        };
        // A caller that stopped waiting (its future was dropped) does not
        // undo its write, just as in etcd; there is no one left to tell.
        let _ = self.reply.send(result);
    }
}

/// Starts the writer thread. It runs until every sender is dropped, then
/// closes all watches and flushes one last time.
pub(crate) fn start(shared: Arc<Shared>, revision: i64) -> Result<(mpsc::Sender<Request>, JoinHandle<()>), Error> {
    let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
    let writer = Writer { shared, revision, failure: None };
    let handle = std::thread::Builder::new()
        .name("tinykube-store-writer".into())
        .spawn(move || writer.run(receiver))
        .map_err(|e| Error::Storage(format!("cannot start the writer thread: {e}")))?;
    Ok((sender, handle))
}

struct Writer {
    shared: Arc<Shared>,
    /// The last revision applied to sled. It runs ahead of the published
    /// revision while a group is being applied and flushed.
    revision: i64,
    /// Set once sled has failed. The store then refuses all writes, since
    /// what is on disk no longer matches what the writer believes; etcd
    /// panics in the same place.
    failure: Option<String>,
}

impl Writer {
    fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        let mut carried: Option<Request> = None;
        loop {
            let first = match carried.take() {
                Some(request) => request,
                None => match requests.blocking_recv() {
                    Some(request) => request,
                    None => break,
                },
            };
            // A compaction deletes history that readers below the new
            // compaction point may be using, so it must not share a group
            // with writes that are not yet published: it runs alone.
            let mut group = Vec::with_capacity(8);
            let alone = matches!(first, Request::Compact(..));
            group.push(first);
            while !alone && group.len() < MAX_GROUP {
                match requests.try_recv() {
                    Ok(request @ Request::Compact(..)) => {
                        carried = Some(request);
                        break;
                    }
                    Ok(request) => group.push(request),
                    Err(_) => break,
                }
            }
            self.commit_group(group);
        }
        self.shared.hub.close();
        if let Err(err) = self.shared.backend.flush() {
            tracing::error!(%err, "final flush of the store failed");
        }
    }

    fn commit_group(&mut self, group: Vec<Request>) {
        let mut answers: Vec<Box<dyn Deliver>> = Vec::with_capacity(group.len());
        let mut committed: Vec<(i64, Vec<Event>)> = Vec::new();
        let mut dirty = false;
        for request in group {
            answers.push(match request {
                Request::Put(req, reply) => {
                    let result = self.write(&mut committed, |txn| txn.put(&req));
                    Box::new(Answer { reply, result })
                }
                Request::DeleteRange(req, reply) => {
                    let result = self.write(&mut committed, |txn| txn.delete_range(&req));
                    Box::new(Answer { reply, result })
                }
                Request::Txn(req, reply) => {
                    let result = self.write(&mut committed, |txn| txn.txn(&req));
                    Box::new(Answer { reply, result })
                }
                Request::Compact(revision, reply) => {
                    let result = self.compact(revision);
                    dirty |= result.is_ok();
                    Box::new(Answer { reply, result })
                }
            });
        }
        dirty |= !committed.is_empty();

        let mut flush_failure = None;
        if dirty {
            match self.shared.backend.flush() {
                Ok(()) => {
                    self.shared.stats.flushes.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => {
                    let reason = err.to_string();
                    tracing::error!(%reason, "store flush failed; refusing further writes");
                    self.failure = Some(reason.clone());
                    flush_failure = Some(reason);
                    committed.clear();
                }
            }
        }
        self.shared.stats.writes.fetch_add(committed.len() as u64, Ordering::Relaxed);
        for (revision, events) in committed {
            watch::publish(&self.shared, revision, events);
        }
        for answer in answers {
            answer.deliver(flush_failure.as_deref());
        }
    }

    /// Runs one request as a transaction on top of everything applied so
    /// far and commits its changes, if any, at the next revision.
    fn write<T>(&mut self, committed: &mut Vec<(i64, Vec<Event>)>, op: impl FnOnce(&mut Txn<'_>) -> Result<T, Error>) -> Result<T, Error> {
        self.check_healthy()?;
        let compact_revision = self.shared.compact_revision.load(Ordering::SeqCst);
        let mut txn = Txn::new(&self.shared.backend, self.revision, compact_revision);
        let response = op(&mut txn)?;
        let events = txn.into_events();
        if events.is_empty() {
            return Ok(response);
        }
        let revision = self.revision + 1;
        if let Err(err) = self.shared.backend.commit(revision, &events) {
            self.failure = Some(err.to_string());
            return Err(err);
        }
        self.revision = revision;
        committed.push((revision, events));
        Ok(response)
    }

    fn compact(&mut self, revision: i64) -> Result<(), Error> {
        self.check_healthy()?;
        let compact_revision = self.shared.compact_revision.load(Ordering::SeqCst);
        if revision <= compact_revision {
            return Err(Error::Compacted { compact_revision });
        }
        if revision > self.revision {
            return Err(Error::FutureRevision);
        }
        // Announce the new point before deleting anything, so that a reader
        // of old history either is refused up front or notices afterwards
        // that what it read may have been cut (see `Store::range`).
        self.shared.compact_revision.store(revision, Ordering::SeqCst);
        let result = self.shared.backend.compact(revision);
        if let Err(err) = &result {
            self.failure = Some(err.to_string());
        }
        result
    }

    fn check_healthy(&self) -> Result<(), Error> {
        match &self.failure {
            Some(reason) => Err(Error::Storage(format!("the store failed earlier and takes no more writes: {reason}"))),
            None => Ok(()),
        }
    }
}
