//! Reflector, cache and event handler: client-go's informer.
//!
//! A reflector lists a kind, then watches from the list's resourceVersion,
//! applying each event to a local [`Cache`]. When the watch ends it resumes
//! from the last resourceVersion it saw; when the server says that version
//! is too old (410 Expired, after compaction) it lists again and diffs the
//! result against the cache, so the handler still sees every object that
//! appeared, changed or vanished. Handlers must therefore be level-based:
//! a change says "look at this object again", not "this happened exactly
//! once".

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use api::labels::Selector;
use futures::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{Api, ListParams, Object, WatchEvent};

/// The cache key of an object: `namespace/name`, or `name` when cluster-scoped.
pub fn key_of<K: Object>(obj: &K) -> String {
    let meta = obj.metadata();
    let name = meta.name.as_deref().unwrap_or_default();
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

/// A local, read-only mirror of one kind, kept current by a reflector.
#[derive(Debug)]
pub struct Cache<K> {
    objects: Arc<RwLock<BTreeMap<String, Arc<K>>>>,
}

impl<K> Clone for Cache<K> {
    fn clone(&self) -> Self {
        Cache { objects: self.objects.clone() }
    }
}

impl<K> Default for Cache<K> {
    fn default() -> Self {
        Cache { objects: Arc::new(RwLock::new(BTreeMap::new())) }
    }
}

impl<K: Object> Cache<K> {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<K>>> {
        self.objects.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<K>>> {
        self.objects.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks up by cache key (`namespace/name` or `name`).
    pub fn get(&self, key: &str) -> Option<Arc<K>> {
        self.read().get(key).cloned()
    }

    /// Every object, in key order.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.read().values().cloned().collect()
    }

    /// Objects in one namespace whose labels match `selector`.
    pub fn select(&self, namespace: &str, selector: &Selector) -> Vec<Arc<K>> {
        let prefix = format!("{namespace}/");
        self.read()
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(_, o)| selector.matches_opt(o.metadata().labels.as_ref()))
            .map(|(_, o)| o.clone())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }
}

/// A cache filled by hand rather than by a reflector: for tests, and for
/// code that already holds the objects.
impl<K: Object> FromIterator<K> for Cache<K> {
    fn from_iter<I: IntoIterator<Item = K>>(objects: I) -> Self {
        let objects = objects.into_iter().map(|o| (key_of(&o), Arc::new(o))).collect();
        Cache { objects: Arc::new(RwLock::new(objects)) }
    }
}

/// What the handler is told.
#[derive(Debug, Clone)]
pub enum Change<K> {
    /// The object was added or changed; `old` is the cached version before.
    Applied { old: Option<Arc<K>>, new: Arc<K> },
    /// The object is gone; this is its last known state.
    Deleted(Arc<K>),
}

impl<K> Change<K> {
    /// The object the change is about (the new one for an update).
    pub fn object(&self) -> &Arc<K> {
        match self {
            Change::Applied { new, .. } => new,
            Change::Deleted(o) => o,
        }
    }
}

/// A running informer: its cache and whether the first list has landed.
#[derive(Debug)]
pub struct Informer<K> {
    pub cache: Cache<K>,
    synced: watch::Receiver<bool>,
}

impl<K> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer { cache: self.cache.clone(), synced: self.synced.clone() }
    }
}

impl<K: Object> Informer<K> {
    /// Starts a reflector for `api` filtered by `params`, calling `handler`
    /// for every change (from a single task, in order). Runs until `cancel`.
    pub fn spawn<H>(api: Api<K>, params: ListParams, cancel: CancellationToken, handler: H) -> Self
    where
        H: Fn(Change<K>) + Send + Sync + 'static,
    {
        let cache = Cache::default();
        let (tx, synced) = watch::channel(false);
        let reflector = Reflector { api, params, cache: cache.clone(), handler, synced: tx };
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = reflector.run() => {}
            }
        });
        Informer { cache, synced }
    }

    /// Waits until the first list has been applied to the cache.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.clone();
        let _ = rx.wait_for(|s| *s).await;
    }

    pub fn has_synced(&self) -> bool {
        *self.synced.borrow()
    }
}

struct Reflector<K, H> {
    api: Api<K>,
    params: ListParams,
    cache: Cache<K>,
    handler: H,
    synced: watch::Sender<bool>,
}

/// How long a reflector waits before retrying after an error; it doubles up
/// to the cap, as client-go's backoff manager does.
const RETRY_BASE: Duration = Duration::from_millis(100);
const RETRY_CAP: Duration = Duration::from_secs(5);
/// Ask the server for a bookmark this often so a quiet watch still learns
/// the current resourceVersion (and so resumes cheaply after a reconnect).
const BOOKMARK_SECONDS: u32 = 30;

impl<K: Object, H: Fn(Change<K>)> Reflector<K, H> {
    async fn run(self) {
        let mut delay = RETRY_BASE;
        loop {
            let list = match self.api.list(&self.params).await {
                Ok(list) => list,
                Err(e) => {
                    tracing::debug!(kind = K::KIND, error = %e, "list failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_CAP);
                    continue;
                }
            };
            self.replace(list.items);
            self.synced.send_replace(true);
            let mut rv = list.resource_version;
            // Watch, resuming from the last resourceVersion seen, until the
            // server says that version is gone; then relist.
            loop {
                match self.watch_from(&mut rv).await {
                    Ok(()) => delay = RETRY_BASE,
                    Err(e) if e.code == 410 => break,
                    Err(e) => {
                        tracing::debug!(kind = K::KIND, error = %e, "watch failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(RETRY_CAP);
                    }
                }
            }
        }
    }

    /// Runs one watch until it ends; `rv` follows the events.
    async fn watch_from(&self, rv: &mut String) -> Result<(), api::ApiError> {
        let mut stream = self.api.watch(&self.params, rv, BOOKMARK_SECONDS).await?;
        while let Some(event) = stream.next().await {
            match event? {
                WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                    *rv = o.metadata().resource_version.clone().unwrap_or_default();
                    self.upsert(o);
                }
                WatchEvent::Deleted(o) => {
                    *rv = o.metadata().resource_version.clone().unwrap_or_default();
                    self.cache.write().remove(&key_of(&o));
                    (self.handler)(Change::Deleted(Arc::new(o)));
                }
                WatchEvent::Bookmark(v) => *rv = v,
            }
        }
        Ok(())
    }

    fn upsert(&self, obj: K) {
        let new = Arc::new(obj);
        let old = self.cache.write().insert(key_of(new.as_ref()), new.clone());
        (self.handler)(Change::Applied { old, new });
    }

    /// Replaces the cache with a fresh list, telling the handler about
    /// everything that differs from what it had.
    fn replace(&self, items: Vec<K>) {
        let fresh: BTreeMap<String, Arc<K>> = items.into_iter().map(|o| (key_of(&o), Arc::new(o))).collect();
        let old = std::mem::replace(&mut *self.cache.write(), fresh.clone());
        for (key, obj) in &fresh {
            let before = old.get(key).cloned();
            let unchanged = before.as_ref().is_some_and(|b| b.metadata().resource_version == obj.metadata().resource_version);
            if !unchanged {
                (self.handler)(Change::Applied { old: before, new: obj.clone() });
            }
        }
        for (key, obj) in old {
            if !fresh.contains_key(&key) {
                (self.handler)(Change::Deleted(obj));
            }
        }
    }
}
