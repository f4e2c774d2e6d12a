//! Watch: every change from a revision on, in order, with no gaps.
//!
//! A watcher is either *synced* or *unsynced*, as in etcd's
//! `watchableStore`:
//!
//! - A synced watcher has seen everything up to the published revision. The
//!   writer hands it each new revision directly ([`publish`]), without
//!   waiting: `try_send` on a bounded channel.
//! - An unsynced watcher is behind: it started from an old revision, or its
//!   channel was full when the writer came by. A catch-up task of its own
//!   replays history from the `log` tree, waiting on the slow receiver as
//!   long as it must, until it reaches the published revision; then it
//!   turns the watcher back to synced.
//!
//! So a slow watcher never blocks the writer and never silently loses an
//! event: the writer drops what it could not deliver and the catch-up task
//! reads it back from disk. Only compaction can take history away from
//! under a watcher; then it gets one response with `compact_revision` set,
//! and its channel closes, which is etcd's signal to re-list.
//!
//! No gap and no duplicate comes down to one rule: a watcher's
//! `next_revision` and the published revision only move under the hub's
//! lock, and the switch from unsynced to synced happens under that lock
//! only once `next_revision` is past the published revision.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::keys::KeyRange;
use crate::store::Shared;
use crate::{Error, Event, WatchRequest, WatchResponse, Watcher};

/// Responses a watcher may have waiting before the writer stops feeding it
/// directly and hands it to a catch-up task.
pub const WATCH_CHANNEL_CAPACITY: usize = 128;

/// How many revisions a catch-up task reads from history in one step.
const CATCH_UP_REVISIONS: i64 = 256;

/// The published revision and the set of watchers.
pub(crate) struct WatchHub {
    /// The newest revision that is durable and visible to readers. It is
    /// only written by [`publish`], under `state`'s lock.
    revision: AtomicI64,
    state: Mutex<HubState>,
}

struct HubState {
    next_id: u64,
    watchers: HashMap<u64, WatcherEntry>,
    /// The store is shutting down: no new watchers, catch-ups stop.
    closed: bool,
}

struct WatcherEntry {
    range: KeyRange,
    prev_kv: bool,
    events: mpsc::Sender<WatchResponse>,
    /// The first revision this watcher has not been sent yet.
    next_revision: i64,
    /// See the module docs. An unsynced watcher is owned by its catch-up
    /// task, and the writer leaves it alone.
    synced: bool,
    /// The runtime the watch was created on, where its catch-up task runs.
    /// The writer thread has no runtime of its own to spawn on.
    runtime: Handle,
}

impl WatchHub {
    pub(crate) fn new(revision: i64) -> WatchHub {
        WatchHub {
            revision: AtomicI64::new(revision),
            state: Mutex::new(HubState { next_id: 0, watchers: HashMap::new(), closed: false }),
        }
    }

    pub(crate) fn revision(&self) -> i64 {
        self.revision.load(Ordering::SeqCst)
    }

    /// A panic while holding the lock leaves the watcher table consistent
    /// (every update is a single field write), so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends every watch: dropping the senders closes the channels.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.watchers.clear();
    }

    #[cfg(test)]
    pub(crate) fn watcher_count(&self) -> usize {
        self.lock().watchers.len()
    }
}

/// Starts a watch. From `start_revision` 0 it is synced at once; from an
/// older revision its catch-up task starts with history (or reports it
/// compacted).
pub(crate) fn register(shared: &Arc<Shared>, req: WatchRequest) -> Result<Watcher, Error> {
    let runtime = Handle::try_current().map_err(|_| Error::Stopped)?;
    let (sender, receiver) = mpsc::channel(WATCH_CHANNEL_CAPACITY);
    let id = {
        let mut state = shared.hub.lock();
        if state.closed {
            return Err(Error::Stopped);
        }
        let published = shared.hub.revision();
        let next_revision = if req.start_revision > 0 { req.start_revision } else { published + 1 };
        let synced = next_revision > published;
        let id = state.next_id;
        state.next_id += 1;
        let entry = WatcherEntry {
            range: KeyRange::new(&req.key, &req.range_end),
            prev_kv: req.prev_kv,
            events: sender,
            next_revision,
            synced,
            runtime: runtime.clone(),
        };
        state.watchers.insert(id, entry);
        (!synced).then_some(id)
    };
    if let Some(id) = id {
        runtime.spawn(catch_up(shared.clone(), id));
    }
    Ok(Watcher { events: receiver })
}

/// Makes `revision` visible: readers see it from now on, and synced
/// watchers get its events. Called by the writer after the flush.
pub(crate) fn publish(shared: &Arc<Shared>, revision: i64, events: Vec<Event>) {
    let mut fell_behind = Vec::new();
    let mut state = shared.hub.lock();
    shared.hub.revision.store(revision, Ordering::SeqCst);
    state.watchers.retain(|&id, watcher| {
        if watcher.events.is_closed() {
            return false;
        }
        if !watcher.synced || revision < watcher.next_revision {
            return true;
        }
        let matching = select(&events, &watcher.range, watcher.prev_kv);
        if matching.is_empty() {
            watcher.next_revision = revision + 1;
            return true;
        }
        let response = WatchResponse { revision, events: matching, compact_revision: 0 };
        match watcher.events.try_send(response) {
            Ok(()) => {
                watcher.next_revision = revision + 1;
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                // `next_revision` stays at this revision: the catch-up task
                // will read it back from history.
                watcher.synced = false;
                fell_behind.push((id, watcher.runtime.clone()));
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    });
    drop(state);
    for (id, runtime) in fell_behind {
        tracing::debug!(watcher = id, revision, "watcher fell behind; catching up from history");
        runtime.spawn(catch_up(shared.clone(), id));
    }
}

/// The events of one revision a watcher wants, with `prev_kv` only if it
/// asked for it.
fn select(events: &[Event], range: &KeyRange, prev_kv: bool) -> Vec<Event> {
    events
        .iter()
        .filter(|event| range.contains(&event.kv.key))
        .map(|event| Event { kind: event.kind, kv: event.kv.clone(), prev_kv: if prev_kv { event.prev_kv.clone() } else { None } })
        .collect()
}

/// Replays history to an unsynced watcher until it has caught up with the
/// published revision, then hands it back to the writer.
async fn catch_up(shared: Arc<Shared>, id: u64) {
    loop {
        // Under the lock: either declare the watcher synced (nothing is
        // published that it has not seen) or take what we need to read on.
        let (sender, range, prev_kv, from, published) = {
            let mut state = shared.hub.lock();
            if state.closed {
                return;
            }
            let published = shared.hub.revision();
            let Some(watcher) = state.watchers.get_mut(&id) else {
                return;
            };
            if watcher.next_revision > published {
                watcher.synced = true;
                return;
            }
            (watcher.events.clone(), watcher.range.clone(), watcher.prev_kv, watcher.next_revision, published)
        };
        let to = published.min(from + CATCH_UP_REVISIONS - 1);

        let responses = read_history(&shared, &range, prev_kv, from, to, published);
        let responses = match responses {
            Ok(responses) => responses,
            Err(Error::Compacted { compact_revision }) => {
                let notice = WatchResponse { revision: published, events: Vec::new(), compact_revision };
                // Removing the entry and dropping `sender` closes the
                // channel once the notice has been delivered.
                shared.hub.lock().watchers.remove(&id);
                let _ = sender.send(notice).await;
                return;
            }
            Err(err) => {
                tracing::error!(%err, watcher = id, "watch history unreadable; closing the watch");
                shared.hub.lock().watchers.remove(&id);
                return;
            }
        };
        for response in responses {
            if sender.send(response).await.is_err() {
                shared.hub.lock().watchers.remove(&id);
                return;
            }
        }
        if let Some(watcher) = shared.hub.lock().watchers.get_mut(&id) {
            watcher.next_revision = to + 1;
        }
    }
}

/// The watcher's events in `from..=to`, one response per revision that has
/// any, or [`Error::Compacted`] if compaction took any part of that history.
fn read_history(shared: &Shared, range: &KeyRange, prev_kv: bool, from: i64, to: i64, published: i64) -> Result<Vec<WatchResponse>, Error> {
    let compacted = || {
        let compact_revision = shared.compact_revision.load(Ordering::SeqCst);
        if from < compact_revision {
            Err(Error::Compacted { compact_revision })
        } else {
            Ok(())
        }
    };
    compacted()?;
    let history = shared.backend.history(range, from, to)?;
    // A compaction that started while we read may have removed entries we
    // skipped over; only a read that finished below the compaction point
    // is complete.
    compacted()?;

    let mut responses: Vec<WatchResponse> = Vec::new();
    let mut last_revision = None;
    for (revision, mut event) in history {
        if !prev_kv {
            event.prev_kv = None;
        }
        if last_revision != Some(revision) {
            last_revision = Some(revision);
            responses.push(WatchResponse { revision: published, events: Vec::new(), compact_revision: 0 });
        }
        if let Some(response) = responses.last_mut() {
            response.events.push(event);
        }
    }
    Ok(responses)
}
