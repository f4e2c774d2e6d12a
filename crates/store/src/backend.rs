//! The store's data on sled: three trees, and the reads and writes on them.
//!
//! - `kv`: `escape(key) ++ revision` → a prost [`Record`]: one entry per
//!   version of a key, tombstones included. This answers "the value of a key
//!   (or of a range of keys) as of revision R": walk the key's versions and
//!   take the last one at or below R; a tombstone there means "absent".
//! - `log`: `revision ++ sub_revision` → the key written. This is the
//!   history in commit order, which a watch replays from any revision.
//! - `meta`: `format` (a marker that says this is a tinykube store),
//!   `revision` (the last committed revision) and `compact_revision`.
//!
//! Entries in `kv` and `log` are never changed once written; compaction is
//! the only thing that removes them, and only below the compaction point.
//! That is what lets readers run without locks against a writer: a read at
//! revision R ignores entries above R and so sees a stable snapshot, even
//! while newer revisions are being written next to it.

use std::ops::Bound;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use prost::Message;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Batch, Transactional};

use crate::keys::{self, KeyRange, REVISION_LEN};
use crate::{Error, Event, EventType, KeyValue};

/// Written once into a new store's `meta` tree. Opening a database without
/// it (and with data in it) fails instead of misreading someone else's data.
const FORMAT: &[u8] = b"tinykube-store/1";
const META_FORMAT: &[u8] = b"format";
const META_REVISION: &[u8] = b"revision";
const META_COMPACT_REVISION: &[u8] = b"compact_revision";

/// Compaction deletes in batches of this many entries so that a large
/// history does not become one huge in-memory sled batch.
const COMPACT_BATCH: usize = 10_000;

/// One version of one key as stored in the `kv` tree.
///
/// A tombstone keeps the key and the deleting revision in `kv` (exactly the
/// `KeyValue` a delete event carries: no value, version 0), so history
/// records when a key stopped existing, not only when it was written.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Record {
    #[prost(message, optional, tag = "1")]
    pub kv: Option<KeyValue>,
    #[prost(bool, tag = "2")]
    pub tombstone: bool,
}

/// What [`Backend::open`] found on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recovered {
    pub revision: i64,
    pub compact_revision: i64,
}

/// Handles to the sled database and its trees. Cloning is cheap (sled trees
/// are reference-counted handles).
#[derive(Clone)]
pub(crate) struct Backend {
    db: sled::Db,
    kv: sled::Tree,
    log: sled::Tree,
    meta: sled::Tree,
}

fn storage(context: &str, err: impl std::fmt::Display) -> Error {
    Error::Storage(format!("{context}: {err}"))
}

fn decode_revision(bytes: &[u8], what: &str) -> Result<i64, Error> {
    let array: [u8; REVISION_LEN] =
        bytes.try_into().map_err(|_| Error::Storage(format!("meta `{what}` is {} bytes, want 8", bytes.len())))?;
    Ok(i64::from_be_bytes(array))
}

/// sled treats a directory whose `conf` it cannot parse as a new database
/// and overwrites its files. A data directory that holds anything but a
/// readable sled database is refused instead: nothing in it is lost, and
/// the operator is told why.
fn refuse_unrecognised(path: &Path) -> Result<(), Error> {
    let Ok(mut entries) = std::fs::read_dir(path) else {
        return Ok(()); // absent: sled creates it (or reports why it cannot)
    };
    if entries.next().is_none() {
        return Ok(());
    }
    // sled's `conf` is YAML-like text followed by a binary checksum.
    let conf = std::fs::read(path.join("conf")).unwrap_or_default();
    let has = |needle: &[u8]| conf.windows(needle.len()).any(|w| w == needle);
    if has(b"segment_size:") && has(b"version:") {
        return Ok(());
    }
    Err(Error::Storage(format!(
        "{} is not empty and holds no readable store (its `conf` is missing or corrupt); \
         refusing to overwrite it — move it aside or pass another --data-dir",
        path.display()
    )))
}

fn decode_record(bytes: &[u8]) -> Result<Record, Error> {
    Record::decode(bytes).map_err(|err| storage("undecodable record in `kv` tree", err))
}

impl Backend {
    /// Opens (or creates) the store in `path`, or a throwaway one in memory
    /// and a temp file when `path` is `None`.
    pub(crate) fn open(path: Option<&Path>) -> Result<(Backend, Recovered), Error> {
        if let Some(path) = path {
            refuse_unrecognised(path)?;
        }
        let config = match path {
            Some(path) => sled::Config::new().path(path),
            None => sled::Config::new().temporary(true),
        };
        // sled 0.34 panics rather than erring on a few unreadable files; a
        // data dir we cannot read must be an error the caller can report.
        let opened = catch_unwind(AssertUnwindSafe(|| config.open()));
        let where_ = path.map_or_else(|| "a temporary store".to_string(), |p| p.display().to_string());
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(err)) => return Err(storage(&format!("cannot open {where_}"), err)),
            Err(_) => return Err(Error::Storage(format!("cannot open {where_}: sled could not read it (corrupt or not a sled database)"))),
        };
        let foreign = || Error::Storage(format!("{where_} holds a sled database that is not a tinykube store"));
        let ours: [&[u8]; 3] = [b"kv", b"log", b"meta"];
        let default_tree = db.name();
        let has_foreign_trees = db.tree_names().iter().any(|name| *name != default_tree && !ours.contains(&name.as_ref()));

        let open_tree = |name: &str| db.open_tree(name).map_err(|e| storage(&format!("open tree `{name}`"), e));
        let backend = Backend { kv: open_tree("kv")?, log: open_tree("log")?, meta: open_tree("meta")?, db: db.clone() };

        match backend.meta.get(META_FORMAT).map_err(|e| storage("read meta", e))? {
            Some(format) if format.as_ref() == FORMAT => {}
            Some(format) => {
                return Err(Error::Storage(format!(
                    "{where_} has store format {:?}, this build reads {:?}",
                    String::from_utf8_lossy(&format),
                    String::from_utf8_lossy(FORMAT)
                )))
            }
            None => {
                let empty =
                    !has_foreign_trees && db.is_empty() && backend.kv.is_empty() && backend.log.is_empty() && backend.meta.is_empty();
                if !empty {
                    return Err(foreign());
                }
                // A new store: etcd starts at revision 1 with nothing in it,
                // so the first write gets revision 2.
                let mut init = Batch::default();
                init.insert(META_FORMAT, FORMAT);
                init.insert(META_REVISION, &keys::revision_bytes(1)[..]);
                init.insert(META_COMPACT_REVISION, &keys::revision_bytes(0)[..]);
                backend.meta.apply_batch(init).map_err(|e| storage("initialize meta", e))?;
                backend.flush()?;
            }
        }

        let read_meta = |key: &[u8], what: &str| -> Result<i64, Error> {
            let bytes = backend
                .meta
                .get(key)
                .map_err(|e| storage("read meta", e))?
                .ok_or_else(|| Error::Storage(format!("meta `{what}` is missing")))?;
            decode_revision(&bytes, what)
        };
        let recovered = Recovered {
            revision: read_meta(META_REVISION, "revision")?,
            compact_revision: read_meta(META_COMPACT_REVISION, "compact_revision")?,
        };
        // The revision is written in the same transaction as the data, so
        // the newest log entry can never be ahead of it.
        if let Some((last, _)) = backend.log.last().map_err(|e| storage("read log", e))? {
            let logged = keys::log_revision(&last).ok_or_else(|| Error::Storage("malformed key in `log` tree".into()))?;
            if logged > recovered.revision {
                return Err(Error::Storage(format!("log holds revision {logged} beyond the recorded revision {}", recovered.revision)));
            }
        }
        if recovered.revision < 1 || recovered.compact_revision > recovered.revision {
            return Err(Error::Storage(format!(
                "inconsistent meta: revision {} compact_revision {}",
                recovered.revision, recovered.compact_revision
            )));
        }
        Ok((backend, recovered))
    }

    /// The newest live version of `key` at or below revision `at`.
    pub(crate) fn get(&self, key: &[u8], at: i64) -> Result<Option<KeyValue>, Error> {
        let lo = keys::version_key(key, 0);
        let hi = keys::version_key(key, at);
        match self.kv.range(lo..=hi).next_back() {
            None => Ok(None),
            Some(entry) => {
                let (_, bytes) = entry.map_err(|e| storage("read kv", e))?;
                let record = decode_record(&bytes)?;
                Ok(if record.tombstone { None } else { record.kv })
            }
        }
    }

    /// The keys of `range` that are live at revision `at`, key-ascending:
    /// the first `max_kvs` of them (all when `None`), and how many there are
    /// in total.
    pub(crate) fn scan(&self, range: &KeyRange, at: i64, max_kvs: Option<usize>) -> Result<(Vec<KeyValue>, i64), Error> {
        let mut kvs = Vec::new();
        let mut count = 0;
        let mut emit = |candidate: Option<sled::IVec>| -> Result<(), Error> {
            if let Some(bytes) = candidate {
                let record = decode_record(&bytes)?;
                if let (false, Some(kv)) = (record.tombstone, record.kv) {
                    count += 1;
                    if max_kvs.is_none_or(|max| kvs.len() < max) {
                        kvs.push(kv);
                    }
                }
            }
            Ok(())
        };

        // Versions of one key are adjacent and oldest first, so the last
        // version at or below `at` before the key changes is the visible one.
        let mut current_key: Option<sled::IVec> = None;
        let mut candidate: Option<sled::IVec> = None;
        for entry in self.kv.range(range.sled_bounds()) {
            let (sled_key, value) = entry.map_err(|e| storage("scan kv", e))?;
            let revision = keys::revision_suffix(&sled_key).ok_or_else(|| Error::Storage("short key in `kv` tree".into()))?;
            let escaped = &sled_key[..sled_key.len() - REVISION_LEN];
            if current_key.as_deref() != Some(escaped) {
                emit(candidate.take())?;
                current_key = Some(escaped.into());
            }
            if revision <= at {
                candidate = Some(value);
            }
        }
        emit(candidate)?;
        Ok((kvs, count))
    }

    /// Every change with revision in `from..=to` whose key is in `range`, in
    /// commit order, as watch events with `prev_kv` filled in where history
    /// still has it.
    pub(crate) fn history(&self, range: &KeyRange, from: i64, to: i64) -> Result<Vec<(i64, Event)>, Error> {
        let mut events = Vec::new();
        let bounds = (Bound::Included(keys::log_key(from, 0).to_vec()), Bound::Included(keys::log_key(to, i64::MAX).to_vec()));
        for entry in self.log.range::<Vec<u8>, _>(bounds) {
            let (log_key, key) = entry.map_err(|e| storage("read log", e))?;
            if !range.contains(&key) {
                continue;
            }
            let revision = keys::log_revision(&log_key).ok_or_else(|| Error::Storage("malformed key in `log` tree".into()))?;
            let bytes = self
                .kv
                .get(keys::version_key(&key, revision))
                .map_err(|e| storage("read kv", e))?
                .ok_or_else(|| Error::Storage(format!("log entry at revision {revision} has no kv entry")))?;
            let record = decode_record(&bytes)?;
            let kv = record.kv.unwrap_or_default();
            let kind = if record.tombstone { EventType::Delete } else { EventType::Put };
            let prev_kv = self.get(&key, revision - 1)?;
            events.push((revision, Event { kind, kv, prev_kv }));
        }
        Ok(events)
    }

    /// Writes the changes of revision `revision` — one [`Event`] per key, in
    /// op order — and the new revision, as one atomic sled transaction. The
    /// caller flushes; until then a crash may lose the whole revision but
    /// never half of it.
    pub(crate) fn commit(&self, revision: i64, events: &[Event]) -> Result<(), Error> {
        let mut kv_batch = Batch::default();
        let mut log_batch = Batch::default();
        for (sub, event) in (0_i64..).zip(events) {
            let record = Record { kv: Some(event.kv.clone()), tombstone: event.kind == EventType::Delete };
            kv_batch.insert(keys::version_key(&event.kv.key, revision), record.encode_to_vec());
            log_batch.insert(&keys::log_key(revision, sub)[..], event.kv.key.as_slice());
        }
        let result: Result<(), TransactionError<()>> = (&self.kv, &self.log, &self.meta).transaction(|(kv, log, meta)| {
            kv.apply_batch(&kv_batch)?;
            log.apply_batch(&log_batch)?;
            meta.insert(META_REVISION, &keys::revision_bytes(revision)[..])?;
            Ok::<_, ConflictableTransactionError<()>>(())
        });
        result.map_err(|e| storage(&format!("commit revision {revision}"), format!("{e:?}")))
    }

    /// Forgets history below `revision`: for each key keeps the newest
    /// version at or below it (dropping it too if it is a tombstone older
    /// than `revision`), and drops log entries below it.
    ///
    /// The compaction point is recorded first. If the process dies halfway,
    /// the leftover old entries are harmless: nothing reads below the
    /// compaction point, and reads above it pick the same versions with or
    /// without them.
    pub(crate) fn compact(&self, revision: i64) -> Result<(), Error> {
        self.meta
            .insert(META_COMPACT_REVISION, &keys::revision_bytes(revision)[..])
            .map_err(|e| storage("record compaction", e))?;

        let mut doomed: Vec<sled::IVec> = Vec::new();
        let flush_doomed = |doomed: &mut Vec<sled::IVec>, tree: &sled::Tree, force: bool| -> Result<(), Error> {
            if doomed.len() >= COMPACT_BATCH || (force && !doomed.is_empty()) {
                let mut batch = Batch::default();
                for key in doomed.drain(..) {
                    batch.remove(key);
                }
                tree.apply_batch(batch).map_err(|e| storage("compact", e))?;
            }
            Ok(())
        };

        // Newest version at or below `revision` of the key being walked,
        // with its value so we can tell whether it is a tombstone.
        let mut current_key: Option<sled::IVec> = None;
        let mut newest: Option<(sled::IVec, i64, sled::IVec)> = None;
        let finish_key = |newest: Option<(sled::IVec, i64, sled::IVec)>, doomed: &mut Vec<sled::IVec>| -> Result<(), Error> {
            if let Some((sled_key, rev, value)) = newest {
                // A tombstone exactly at `revision` stays, so a watch from
                // the compaction point still sees that delete.
                if rev < revision && decode_record(&value)?.tombstone {
                    doomed.push(sled_key);
                }
            }
            Ok(())
        };
        for entry in self.kv.iter() {
            let (sled_key, value) = entry.map_err(|e| storage("scan kv", e))?;
            let rev = keys::revision_suffix(&sled_key).ok_or_else(|| Error::Storage("short key in `kv` tree".into()))?;
            let escaped = &sled_key[..sled_key.len() - REVISION_LEN];
            if current_key.as_deref() != Some(escaped) {
                finish_key(newest.take(), &mut doomed)?;
                current_key = Some(escaped.into());
            }
            if rev <= revision {
                if let Some((older, _, _)) = newest.replace((sled_key, rev, value)) {
                    doomed.push(older);
                }
            }
            flush_doomed(&mut doomed, &self.kv, false)?;
        }
        finish_key(newest, &mut doomed)?;
        flush_doomed(&mut doomed, &self.kv, true)?;

        let below = ..keys::log_key(revision, 0).to_vec();
        for entry in self.log.range(below) {
            let (log_key, _) = entry.map_err(|e| storage("scan log", e))?;
            doomed.push(log_key);
            flush_doomed(&mut doomed, &self.log, false)?;
        }
        flush_doomed(&mut doomed, &self.log, true)
    }

    /// Makes everything written so far durable: one fsync, shared by every
    /// write since the last one.
    pub(crate) fn flush(&self) -> Result<(), Error> {
        self.db.flush().map(|_| ()).map_err(|e| storage("flush", e))
    }

    pub(crate) async fn flush_async(&self) -> Result<(), Error> {
        self.db.flush_async().await.map(|_| ()).map_err(|e| storage("flush", e))
    }

    /// Number of entries in the `kv` and `log` trees, for tests of
    /// compaction.
    #[cfg(test)]
    pub(crate) fn entry_counts(&self) -> (usize, usize) {
        (self.kv.len(), self.log.len())
    }
}

#[cfg(test)]
mod refuse_tests {
    use super::*;

    #[test]
    fn a_non_empty_directory_without_a_store_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db"), b"precious").unwrap();
        std::fs::write(dir.path().join("conf"), b"garbage").unwrap();
        let err = Backend::open(Some(dir.path())).err().expect("refused");
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
        assert_eq!(std::fs::read(dir.path().join("db")).unwrap(), b"precious");
        // An empty directory is a new store.
        let empty = tempfile::tempdir().unwrap();
        assert!(Backend::open(Some(empty.path())).is_ok());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str, create: i64, rev: i64, version: i64) -> Event {
        let kv = KeyValue { key: key.into(), value: value.into(), create_revision: create, mod_revision: rev, version, lease: 0 };
        Event { kind: EventType::Put, kv, prev_kv: None }
    }

    fn tombstone(key: &str, rev: i64) -> Event {
        let kv = KeyValue { key: key.into(), mod_revision: rev, ..Default::default() };
        Event { kind: EventType::Delete, kv, prev_kv: None }
    }

    #[test]
    fn new_store_starts_at_revision_one() {
        let (_, recovered) = Backend::open(None).unwrap();
        assert_eq!(recovered, Recovered { revision: 1, compact_revision: 0 });
    }

    #[test]
    fn reads_at_a_revision_see_that_revision() {
        let (backend, _) = Backend::open(None).unwrap();
        backend.commit(2, &[put("a", "1", 2, 2, 1), put("b", "1", 2, 2, 1)]).unwrap();
        backend.commit(3, &[put("a", "2", 2, 3, 2)]).unwrap();
        backend.commit(4, &[tombstone("b", 4)]).unwrap();

        assert_eq!(backend.get(b"a", 2).unwrap().unwrap().value, b"1");
        assert_eq!(backend.get(b"a", 4).unwrap().unwrap().value, b"2");
        assert!(backend.get(b"a", 1).unwrap().is_none());
        assert!(backend.get(b"b", 4).unwrap().is_none());

        let all = KeyRange::new(b"\0", b"\0");
        let (kvs, count) = backend.scan(&all, 3, None).unwrap();
        assert_eq!((kvs.len(), count), (2, 2));
        let (kvs, count) = backend.scan(&all, 4, Some(0)).unwrap();
        assert_eq!((kvs.len(), count), (0, 1));

        let events = backend.history(&all, 3, 4).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].1.kind, EventType::Delete);
        assert_eq!(events[1].1.prev_kv.as_ref().unwrap().value, b"1");
    }

    #[test]
    fn compaction_keeps_what_reads_above_it_need() {
        let (backend, _) = Backend::open(None).unwrap();
        backend.commit(2, &[put("a", "1", 2, 2, 1), put("gone", "x", 2, 2, 1)]).unwrap();
        backend.commit(3, &[put("a", "2", 2, 3, 2)]).unwrap();
        backend.commit(4, &[tombstone("gone", 4)]).unwrap();
        backend.commit(5, &[put("a", "3", 2, 5, 3)]).unwrap();
        backend.compact(5).unwrap();

        // Of `a` only the version at 5 remains; the tombstone of `gone` is
        // below 5, so it goes with everything under it; the log keeps 5.
        assert_eq!(backend.entry_counts(), (1, 1));
        assert_eq!(backend.get(b"a", 5).unwrap().unwrap().value, b"3");
        assert!(backend.get(b"gone", 5).unwrap().is_none());
    }

    #[test]
    fn a_corrupt_data_dir_is_a_storage_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("conf"), b"this is not a sled config").unwrap();
        std::fs::write(dir.path().join("db"), b"nor is this a sled database").unwrap();
        let result = Backend::open(Some(dir.path()));
        assert!(matches!(result, Err(Error::Storage(_))), "got {:?}", result.err());

        let file = dir.path().join("a-file");
        std::fs::write(&file, b"not a directory").unwrap();
        let result = Backend::open(Some(&file));
        assert!(matches!(result, Err(Error::Storage(_))), "got {:?}", result.err());
    }

    #[test]
    fn a_foreign_sled_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            db.insert(b"someone", b"else's data").unwrap();
            db.flush().unwrap();
        }
        let err = Backend::open(Some(dir.path())).err().expect("foreign db must not open");
        assert!(err.to_string().contains("not a tinykube store"), "{err}");
    }
}
