//! Watch: the store's change feed, as Kubernetes watch events.
//!
//! A Kubernetes watch is an etcd watch on the kind's key prefix, decoded and
//! filtered. Two details make it correct rather than merely close:
//! - **Selectors see transitions.** An object that stops matching a label
//!   or field selector is sent as `DELETED`, one that starts matching as
//!   `ADDED` — which is why the store hands back each event's previous
//!   value (`prev_kv`). Without that, a `spec.nodeName=n1` watch would never
//!   learn that a pod was bound to `n1`.
//! - **resourceVersion "0" or "" means "now, from a snapshot".** The watch
//!   first sends an `ADDED` for every matching object at one revision and
//!   then every change after it, so nothing falls in between.
//!
//! A watch from a compacted revision ends with an `ERROR` event carrying a
//! 410 `Expired` Status: the client must list again.

use std::time::Duration;

use api::{ApiError, ResourceInfo};
use serde_json::{json, Value};
use store::{EventType, WatchRequest};
use tokio::sync::mpsc;

use crate::registry::{decode, Filter, Registry};

/// What to watch.
#[derive(Debug, Clone)]
pub struct WatchParams {
    /// "" for every namespace.
    pub namespace: String,
    pub filter: Filter,
    /// Start after this resourceVersion; "" or "0" starts from a snapshot.
    pub resource_version: String,
    /// Send a BOOKMARK this often while nothing else happens.
    pub bookmark_interval: Option<Duration>,
    /// After the initial ADDED events, send a BOOKMARK annotated
    /// `k8s.io/initial-events-end: "true"` (a `sendInitialEvents` watch,
    /// the "watch list" informers use instead of list + watch).
    pub initial_events_end: bool,
}

/// A running watch: `{"type": ..., "object": ...}` values, until the
/// receiver is dropped; errors are sent as `ERROR` events.
pub type EventReceiver = mpsc::Receiver<Value>;

fn event(kind: &str, object: Value) -> Value {
    json!({"type": kind, "object": object})
}

/// The event a client sees for a failed watch.
pub fn error_event(err: &ApiError) -> Value {
    event("ERROR", err.to_status_json())
}

/// Starts a watch. Fails before streaming if the resourceVersion is
/// malformed; a compacted one is reported in the stream, as upstream does.
pub async fn watch(registry: &Registry, info: &'static ResourceInfo, params: WatchParams) -> Result<EventReceiver, ApiError> {
    let (tx, rx) = mpsc::channel(256);
    let mut initial = Vec::new();
    let start = match params.resource_version.as_str() {
        "" | "0" => {
            let list = registry.list(info, &params.namespace, &params.filter).await?;
            initial = list.items;
            list.revision + 1
        }
        // Storage reads a resourceVersion as an unsigned integer: "-1" or
        // "abc" fail here rather than watching from a revision that never
        // comes.
        rv => {
            let parsed = crate::options::parse_resource_version(rv)?;
            i64::try_from(parsed).ok().and_then(|r| r.checked_add(1)).ok_or_else(|| {
                ApiError::bad_request(format!("invalid resource version: resourceVersion: Invalid value: \"{rv}\": too large"))
            })?
        }
    };
    let prefix = info.prefix(Some(params.namespace.as_str()).filter(|n| !n.is_empty()));
    let mut watcher = registry
        .kv()
        .watch(WatchRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: store::prefix_end(prefix.as_bytes()),
            start_revision: start,
            prev_kv: true,
        })
        .await
        .map_err(ApiError::internal)?;

    tokio::spawn(async move {
        for obj in initial {
            if tx.send(event("ADDED", obj)).await.is_err() {
                return;
            }
        }
        if params.initial_events_end {
            let mark = json!({"kind": info.kind, "apiVersion": info.api_version(),
                "metadata": {"resourceVersion": (start - 1).to_string(),
                    "annotations": {"k8s.io/initial-events-end": "true"}}});
            if tx.send(event("BOOKMARK", mark)).await.is_err() {
                return;
            }
        }
        let mut last_rv = start - 1;
        let mut bookmark = params.bookmark_interval.map(|d| {
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        loop {
            let resp = tokio::select! {
                resp = watcher.events.recv() => resp,
                _ = async { match bookmark.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending().await } } => {
                    let mark = json!({"kind": info.kind, "apiVersion": info.api_version(),
                        "metadata": {"resourceVersion": last_rv.to_string()}});
                    if tx.send(event("BOOKMARK", mark)).await.is_err() { return; }
                    continue;
                }
                _ = tx.closed() => return,
            };
            let Some(resp) = resp else {
                // The store stopped; end the stream so the client re-watches.
                return;
            };
            if resp.compact_revision > 0 {
                let err = ApiError::expired(format!("too old resource version: {} ({})", start - 1, resp.compact_revision));
                let _ = tx.send(error_event(&err)).await;
                return;
            }
            for ev in resp.events {
                last_rv = ev.kv.mod_revision;
                let Some(out) = translate(info, &params.filter, &ev) else { continue };
                if tx.send(out).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(rx)
}

/// One store event as the Kubernetes event this watcher should see, if any.
fn translate(info: &ResourceInfo, filter: &Filter, ev: &store::Event) -> Option<Value> {
    let old = ev.prev_kv.as_ref().and_then(|kv| decode(kv).ok());
    let old_matches = old.as_ref().is_some_and(|o| filter.matches(info, o));
    match ev.kind {
        EventType::Put => {
            let new = decode(&ev.kv).ok()?;
            match (old_matches, filter.matches(info, &new)) {
                (false, true) => Some(event("ADDED", new)),
                (true, true) => Some(event("MODIFIED", new)),
                (true, false) => Some(event("DELETED", new)),
                (false, false) => None,
            }
        }
        EventType::Delete => {
            let mut last = old.filter(|_| old_matches)?;
            // The deleted object carries the revision of its deletion, so
            // a client resuming from it does not see the delete again.
            last["metadata"]["resourceVersion"] = Value::String(ev.kv.mod_revision.to_string());
            Some(event("DELETED", last))
        }
    }
}
