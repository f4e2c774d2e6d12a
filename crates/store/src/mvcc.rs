//! etcd's request semantics over the versioned data: ranges at a revision,
//! puts and deletes that produce new versions, and transactions.
//!
//! Everything here is a [`Txn`]: a view of the store as of one revision
//! (`base`) plus the changes the transaction has made so far, all of which
//! will carry revision `base + 1`. A plain range is a transaction that only
//! reads; a put is a transaction with one put. The writer runs write
//! requests through a `Txn` and commits its [`Event`]s; readers run ranges
//! and read-only transactions through a `Txn` at the published revision and
//! never commit anything.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};

use crate::backend::Backend;
use crate::keys::KeyRange;
use crate::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResponse, Error, Event, EventType, KeyValue, PutRequest,
    PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseOp, TxnRequest, TxnResponse,
};

/// etcd's default `--max-txn-ops`: more operations than this in one
/// transaction are refused.
pub const MAX_TXN_OPS: usize = 128;

fn key_not_provided() -> Error {
    Error::InvalidArgument("key is not provided".into())
}

/// Rejects requests etcd rejects before they reach its MVCC layer.
pub(crate) fn check_key(key: &[u8]) -> Result<(), Error> {
    if key.is_empty() {
        return Err(key_not_provided());
    }
    Ok(())
}

/// etcd's `checkTxnReqs` and `checkIntervals`: no branch may put one key
/// twice, or put a key that a delete in the same branch covers. Within one
/// revision each key can change only once, which is what lets the `kv` tree
/// key versions by `(key, revision)` alone.
pub(crate) fn check_txn(req: &TxnRequest) -> Result<(), Error> {
    if req.compare.len() > MAX_TXN_OPS || req.success.len() > MAX_TXN_OPS || req.failure.len() > MAX_TXN_OPS {
        return Err(Error::InvalidArgument("too many operations in txn request".into()));
    }
    for compare in &req.compare {
        check_key(&compare.key)?;
    }
    for branch in [&req.success, &req.failure] {
        let mut puts = HashSet::new();
        let mut deletes = Vec::new();
        for op in branch {
            match op {
                RequestOp::Range(range) => check_key(&range.key)?,
                RequestOp::Put(put) => {
                    check_key(&put.key)?;
                    if !puts.insert(put.key.as_slice()) {
                        return Err(duplicate_key());
                    }
                }
                RequestOp::DeleteRange(delete) => {
                    check_key(&delete.key)?;
                    deletes.push(KeyRange::new(&delete.key, &delete.range_end));
                }
            }
        }
        if deletes.iter().any(|range| puts.iter().any(|key| range.contains(key))) {
            return Err(duplicate_key());
        }
    }
    Ok(())
}

fn duplicate_key() -> Error {
    Error::InvalidArgument("duplicate key given in txn request".into())
}

/// Whether a transaction may write, and so must go through the writer.
pub(crate) fn txn_may_write(req: &TxnRequest) -> bool {
    req.success.iter().chain(&req.failure).any(|op| !matches!(op, RequestOp::Range(_)))
}

/// Whether `compare` holds for the keys its range covers (`kvs`, the live
/// ones at the transaction's revision). As in etcd's `applyCompare`, a range
/// with no live key is compared as one all-zero key, except that a value
/// compare on missing keys always fails: gRPC cannot tell an empty value from
/// no value, so etcd refuses to guess.
pub(crate) fn compare_holds(compare: &Compare, kvs: &[KeyValue]) -> bool {
    if kvs.is_empty() {
        if matches!(compare.target, CompareTarget::Value(_)) {
            return false;
        }
        return compare_one(compare, &KeyValue::default());
    }
    kvs.iter().all(|kv| compare_one(compare, kv))
}

fn compare_one(compare: &Compare, kv: &KeyValue) -> bool {
    let ordering = match &compare.target {
        CompareTarget::Version(v) => kv.version.cmp(v),
        CompareTarget::CreateRevision(v) => kv.create_revision.cmp(v),
        CompareTarget::ModRevision(v) => kv.mod_revision.cmp(v),
        CompareTarget::Value(v) => kv.value.as_slice().cmp(v.as_slice()),
        CompareTarget::Lease(v) => kv.lease.cmp(v),
    };
    match compare.result {
        CompareResult::Equal => ordering == Ordering::Equal,
        CompareResult::Greater => ordering == Ordering::Greater,
        CompareResult::Less => ordering == Ordering::Less,
        CompareResult::NotEqual => ordering != Ordering::Equal,
    }
}

/// A transaction at one revision (see the module docs).
pub(crate) struct Txn<'a> {
    backend: &'a Backend,
    /// Everything committed up to this revision is visible.
    base: i64,
    /// Reads of history below this fail with [`Error::Compacted`].
    compact_revision: i64,
    /// The changes made so far, in op order; they all get `base + 1`.
    events: Vec<Event>,
    /// The newest state of every key changed so far (`None` once deleted),
    /// so later ops in the same transaction read their own writes, as in
    /// etcd.
    written: BTreeMap<Vec<u8>, Option<KeyValue>>,
}

impl<'a> Txn<'a> {
    pub(crate) fn new(backend: &'a Backend, base: i64, compact_revision: i64) -> Txn<'a> {
        Txn { backend, base, compact_revision, events: Vec::new(), written: BTreeMap::new() }
    }

    /// The store's revision as this transaction sees it: `base`, or
    /// `base + 1` once it has changed something.
    pub(crate) fn revision(&self) -> i64 {
        if self.events.is_empty() {
            self.base
        } else {
            self.base + 1
        }
    }

    /// The changes to commit at [`Txn::revision`]; empty if nothing changed
    /// (a delete that matched nothing, a failed compare with only reads),
    /// in which case the revision must not move.
    pub(crate) fn into_events(self) -> Vec<Event> {
        self.events
    }

    /// The newest live version of `key` as this transaction sees it.
    fn latest(&self, key: &[u8]) -> Result<Option<KeyValue>, Error> {
        match self.written.get(key) {
            Some(written) => Ok(written.clone()),
            None => self.backend.get(key, self.base),
        }
    }

    /// Live keys in `range` as this transaction sees them: at most `max_kvs`
    /// of them, and the total count.
    fn live(&self, range: &KeyRange, max_kvs: Option<usize>) -> Result<(Vec<KeyValue>, i64), Error> {
        if self.written.is_empty() {
            return self.backend.scan(range, self.base, max_kvs);
        }
        let (committed, _) = self.backend.scan(range, self.base, None)?;
        let mut merged: BTreeMap<Vec<u8>, KeyValue> = committed.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
        for (key, written) in self.written.iter().filter(|(key, _)| range.contains(key)) {
            match written {
                Some(kv) => merged.insert(key.clone(), kv.clone()),
                None => merged.remove(key),
            };
        }
        let count = merged.len() as i64;
        let kvs = merged.into_values().take(max_kvs.unwrap_or(usize::MAX)).collect();
        Ok((kvs, count))
    }

    pub(crate) fn range(&self, req: &RangeRequest) -> Result<RangeResponse, Error> {
        check_key(&req.key)?;
        let current = self.revision();
        let at = match req.revision {
            r if r <= 0 => current,
            r if r > current => return Err(Error::FutureRevision),
            r if r < self.compact_revision => return Err(Error::Compacted { compact_revision: self.compact_revision }),
            r => r,
        };
        let range = KeyRange::new(&req.key, &req.range_end);
        let limit = usize::try_from(req.limit).unwrap_or(0);
        let max_kvs = match (req.count_only, limit) {
            (true, _) => Some(0),
            (false, 0) => None,
            (false, limit) => Some(limit),
        };
        let (mut kvs, count) = if at == current { self.live(&range, max_kvs)? } else { self.backend.scan(&range, at, max_kvs)? };
        if req.keys_only {
            for kv in &mut kvs {
                kv.value.clear();
            }
        }
        let more = !req.count_only && limit > 0 && count > limit as i64;
        Ok(RangeResponse { revision: current, kvs, more, count })
    }

    pub(crate) fn put(&mut self, req: &PutRequest) -> Result<PutResponse, Error> {
        check_key(&req.key)?;
        let revision = self.base + 1;
        let prev = self.latest(&req.key)?;
        let kv = KeyValue {
            key: req.key.clone(),
            create_revision: prev.as_ref().map_or(revision, |prev| prev.create_revision),
            mod_revision: revision,
            version: prev.as_ref().map_or(1, |prev| prev.version + 1),
            value: req.value.clone(),
            lease: req.lease,
        };
        self.written.insert(req.key.clone(), Some(kv.clone()));
        self.events.push(Event { kind: EventType::Put, kv, prev_kv: prev.clone() });
        Ok(PutResponse { revision, prev_kv: if req.prev_kv { prev } else { None } })
    }

    pub(crate) fn delete_range(&mut self, req: &DeleteRangeRequest) -> Result<DeleteRangeResponse, Error> {
        check_key(&req.key)?;
        let revision = self.base + 1;
        let (doomed, _) = self.live(&KeyRange::new(&req.key, &req.range_end), None)?;
        let deleted = doomed.len() as i64;
        for prev in &doomed {
            // The tombstone is what a delete event carries: the key and the
            // deleting revision, nothing else.
            let kv = KeyValue { key: prev.key.clone(), mod_revision: revision, ..Default::default() };
            self.written.insert(prev.key.clone(), None);
            self.events.push(Event { kind: EventType::Delete, kv, prev_kv: Some(prev.clone()) });
        }
        let prev_kvs = if req.prev_kv { doomed } else { Vec::new() };
        Ok(DeleteRangeResponse { revision: self.revision(), deleted, prev_kvs })
    }

    pub(crate) fn txn(&mut self, req: &TxnRequest) -> Result<TxnResponse, Error> {
        check_txn(req)?;
        let mut succeeded = true;
        for compare in &req.compare {
            let (kvs, _) = self.live(&KeyRange::new(&compare.key, &compare.range_end), None)?;
            if !compare_holds(compare, &kvs) {
                succeeded = false;
                break;
            }
        }
        let ops = if succeeded { &req.success } else { &req.failure };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match op {
                RequestOp::Range(range) => ResponseOp::Range(self.range(range)?),
                RequestOp::Put(put) => ResponseOp::Put(self.put(put)?),
                RequestOp::DeleteRange(delete) => ResponseOp::DeleteRange(self.delete_range(delete)?),
            });
        }
        // Every response of a transaction reports the revision the whole
        // transaction ends at, as etcd's response headers do.
        let revision = self.revision();
        for response in &mut responses {
            match response {
                ResponseOp::Range(r) => r.revision = revision,
                ResponseOp::Put(r) => r.revision = revision,
                ResponseOp::DeleteRange(r) => r.revision = revision,
            }
        }
        Ok(TxnResponse { revision, succeeded, responses })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(key: &str, result: CompareResult, target: CompareTarget) -> Compare {
        Compare { key: key.into(), range_end: Vec::new(), result, target }
    }

    #[test]
    fn compares_on_missing_keys_follow_etcd() {
        let missing: &[KeyValue] = &[];
        assert!(compare_holds(&cmp("k", CompareResult::Equal, CompareTarget::ModRevision(0)), missing));
        assert!(compare_holds(&cmp("k", CompareResult::Equal, CompareTarget::Version(0)), missing));
        assert!(!compare_holds(&cmp("k", CompareResult::Greater, CompareTarget::CreateRevision(0)), missing));
        assert!(!compare_holds(&cmp("k", CompareResult::Equal, CompareTarget::Value(Vec::new())), missing));
    }

    #[test]
    fn compare_table() {
        let kv = KeyValue { key: b"k".to_vec(), create_revision: 2, mod_revision: 5, version: 3, value: b"m".to_vec(), lease: 7 };
        let cases = [
            (CompareResult::Equal, CompareTarget::Version(3), true),
            (CompareResult::Greater, CompareTarget::Version(2), true),
            (CompareResult::Less, CompareTarget::Version(3), false),
            (CompareResult::NotEqual, CompareTarget::CreateRevision(2), false),
            (CompareResult::Less, CompareTarget::ModRevision(6), true),
            (CompareResult::Greater, CompareTarget::Value(b"a".to_vec()), true),
            (CompareResult::Less, CompareTarget::Value(b"z".to_vec()), true),
            (CompareResult::Equal, CompareTarget::Lease(7), true),
            (CompareResult::NotEqual, CompareTarget::Lease(0), true),
        ];
        for (result, target, want) in cases {
            let compare = cmp("k", result, target.clone());
            assert_eq!(compare_holds(&compare, std::slice::from_ref(&kv)), want, "{result:?} {target:?}");
        }
    }

    #[test]
    fn txn_rejects_duplicate_and_overlapping_keys() {
        let put = |k: &str| RequestOp::Put(PutRequest { key: k.into(), ..Default::default() });
        let delete =
            |k: &str, end: &str| RequestOp::DeleteRange(DeleteRangeRequest { key: k.into(), range_end: end.into(), prev_kv: false });
        let bad = [vec![put("a"), put("a")], vec![put("b"), delete("a", "c")], vec![put(""), delete("a", "")]];
        for success in bad {
            let req = TxnRequest { success, ..Default::default() };
            assert!(matches!(check_txn(&req), Err(Error::InvalidArgument(_))), "{req:?}");
        }
        // The same key in the two branches is fine: only one of them runs.
        let ok = TxnRequest { success: vec![put("a")], failure: vec![put("a")], ..Default::default() };
        assert!(check_txn(&ok).is_ok());
    }

    #[test]
    fn a_txn_reads_its_own_writes() {
        let (backend, _) = Backend::open(None).unwrap();
        let mut setup = Txn::new(&backend, 1, 0);
        for key in ["a", "b"] {
            setup.put(&PutRequest { key: key.into(), value: b"1".to_vec(), ..Default::default() }).unwrap();
        }
        backend.commit(2, &setup.into_events()).unwrap();

        let mut txn = Txn::new(&backend, 2, 0);
        let delete = |key: &str, end: &str| DeleteRangeRequest { key: key.into(), range_end: end.into(), prev_kv: true };
        assert_eq!(txn.delete_range(&delete("a", "c")).unwrap().deleted, 2);
        // An overlapping delete in the same transaction finds nothing left.
        assert_eq!(txn.delete_range(&delete("a", "")).unwrap().deleted, 0);
        txn.put(&PutRequest { key: b"c".to_vec(), ..Default::default() }).unwrap();

        let all = RangeRequest { key: vec![0], range_end: vec![0], ..Default::default() };
        let seen = txn.range(&all).unwrap();
        assert_eq!((seen.count, seen.revision), (1, 3));
        assert_eq!(seen.kvs[0].key, b"c");
        // History is still readable underneath the transaction's writes.
        let before = txn.range(&RangeRequest { revision: 2, ..all.clone() }).unwrap();
        assert_eq!(before.count, 2);
        assert_eq!(txn.into_events().len(), 3);
    }
}
