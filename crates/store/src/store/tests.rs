//! Behaviour of the whole store through the [`Kv`] trait, as the api-server
//! sees it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Barrier;
use tokio::time::timeout;

use super::*;
use crate::{prefix_end, Compare, CompareResult, CompareTarget, EventType, KeyValue, ResponseOp, WatchResponse, WATCH_CHANNEL_CAPACITY};

/// Generous bound on any single wait; a hang fails the test instead of
/// stalling the run.
const PATIENCE: Duration = Duration::from_secs(10);

fn temp_store() -> Store {
    Store::open_temporary().expect("temporary store")
}

async fn put(store: &Store, key: &str, value: &str) -> i64 {
    let req = PutRequest { key: key.into(), value: value.into(), ..Default::default() };
    store.put(req).await.expect("put").revision
}

async fn get(store: &Store, key: &str) -> Option<KeyValue> {
    let req = RangeRequest { key: key.into(), ..Default::default() };
    store.range(req).await.expect("range").kvs.pop()
}

async fn delete(store: &Store, key: &str, range_end: &str) -> DeleteRangeResponse {
    let req = DeleteRangeRequest { key: key.into(), range_end: range_end.into(), prev_kv: true };
    store.delete_range(req).await.expect("delete")
}

fn prefix(key: &str) -> RangeRequest {
    RangeRequest { key: key.into(), range_end: prefix_end(key.as_bytes()), ..Default::default() }
}

fn watch_all(start_revision: i64) -> WatchRequest {
    WatchRequest { key: vec![0], range_end: vec![0], start_revision, prev_kv: false }
}

async fn next(watcher: &mut Watcher) -> Option<WatchResponse> {
    timeout(PATIENCE, watcher.events.recv()).await.expect("watch response in time")
}

/// Reads events until revision `last` has been seen, checking that every
/// revision from `first` on arrives exactly once and in order. Every write
/// in these tests is a single put, so there is one event per revision.
async fn expect_revisions(watcher: &mut Watcher, first: i64, last: i64) {
    let mut want = first;
    while want <= last {
        let response = next(watcher).await.expect("watch ended early");
        assert_eq!(response.compact_revision, 0, "unexpected compaction notice");
        for event in response.events {
            assert_eq!(event.kv.mod_revision, want, "gap or duplicate in watch");
            want += 1;
        }
    }
}

#[tokio::test]
async fn revisions_and_versions_follow_put_delete_put() {
    let store = temp_store();
    assert_eq!(store.revision(), 1, "an empty store is at revision 1, like etcd");

    assert_eq!(put(&store, "a", "1").await, 2);
    assert_eq!(put(&store, "a", "2").await, 3);
    let kv = get(&store, "a").await.unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
    assert_eq!(kv.value, b"2");

    let deleted = delete(&store, "a", "").await;
    assert_eq!((deleted.revision, deleted.deleted), (4, 1));
    assert_eq!(deleted.prev_kvs, vec![kv]);
    assert!(get(&store, "a").await.is_none());

    // Deleting nothing does not move the revision.
    let nothing = delete(&store, "a", "").await;
    assert_eq!((nothing.revision, nothing.deleted), (4, 0));
    assert_eq!(store.revision(), 4);

    assert_eq!(put(&store, "a", "3").await, 5);
    let reborn = get(&store, "a").await.unwrap();
    assert_eq!((reborn.create_revision, reborn.mod_revision, reborn.version), (5, 5, 1));
}

#[tokio::test]
async fn put_returns_prev_kv_when_asked() {
    let store = temp_store();
    put(&store, "k", "old").await;
    let req = PutRequest { key: b"k".to_vec(), value: b"new".to_vec(), prev_kv: true, lease: 0 };
    let response = store.put(req).await.unwrap();
    assert_eq!(response.prev_kv.unwrap().value, b"old");
    let empty_key = store.put(PutRequest::default()).await;
    assert!(matches!(empty_key, Err(Error::InvalidArgument(_))));
}

#[tokio::test]
async fn range_at_an_old_revision_reads_history() {
    let store = temp_store();
    put(&store, "/registry/pods/a", "v1").await; // 2
    put(&store, "/registry/pods/b", "v1").await; // 3
    put(&store, "/registry/pods/a", "v2").await; // 4
    delete(&store, "/registry/pods/b", "").await; // 5

    let at = |revision| RangeRequest { revision, ..prefix("/registry/pods/") };
    let now = store.range(at(0)).await.unwrap();
    assert_eq!((now.count, now.revision), (1, 5));
    assert_eq!(now.kvs[0].value, b"v2");

    let then = store.range(at(3)).await.unwrap();
    assert_eq!(then.revision, 5, "the response carries the current revision");
    let values: Vec<_> = then.kvs.iter().map(|kv| (kv.key.clone(), kv.value.clone())).collect();
    assert_eq!(values, vec![(b"/registry/pods/a".to_vec(), b"v1".to_vec()), (b"/registry/pods/b".to_vec(), b"v1".to_vec())]);

    assert!(store.range(at(1)).await.unwrap().kvs.is_empty());
    assert!(matches!(store.range(at(6)).await, Err(Error::FutureRevision)));
}

#[tokio::test]
async fn range_limit_count_and_key_conventions() {
    let store = temp_store();
    for key in ["a", "b", "b/1", "b/2", "c"] {
        put(&store, key, "x").await;
    }
    let keys =
        |response: &RangeResponse| -> Vec<String> { response.kvs.iter().map(|kv| String::from_utf8(kv.key.clone()).unwrap()).collect() };

    let limited = store.range(RangeRequest { limit: 2, ..prefix("b") }).await.unwrap();
    assert_eq!(keys(&limited), ["b", "b/1"]);
    assert!(limited.more);
    assert_eq!(limited.count, 3);

    let from_b = RangeRequest { key: b"b/".to_vec(), range_end: vec![0], ..Default::default() };
    assert_eq!(keys(&store.range(from_b).await.unwrap()), ["b/1", "b/2", "c"]);

    let everything = RangeRequest { key: vec![0], range_end: vec![0], keys_only: true, ..Default::default() };
    let all = store.range(everything).await.unwrap();
    assert_eq!(keys(&all), ["a", "b", "b/1", "b/2", "c"]);
    assert!(all.kvs.iter().all(|kv| kv.value.is_empty()));
    assert!(!all.more);

    let counted = store.range(RangeRequest { count_only: true, ..prefix("b/") }).await.unwrap();
    assert_eq!((counted.count, counted.kvs.len()), (2, 0));

    let half_open = RangeRequest { key: b"a".to_vec(), range_end: b"b/1".to_vec(), ..Default::default() };
    assert_eq!(keys(&store.range(half_open).await.unwrap()), ["a", "b"]);
}

#[tokio::test]
async fn txn_compare_and_swap() {
    let store = temp_store();
    let rev = put(&store, "lock", "alice").await;

    let cas = |expect_mod: i64, value: &str| TxnRequest {
        compare: vec![Compare {
            key: b"lock".to_vec(),
            range_end: Vec::new(),
            result: CompareResult::Equal,
            target: CompareTarget::ModRevision(expect_mod),
        }],
        success: vec![RequestOp::Put(PutRequest { key: b"lock".to_vec(), value: value.into(), ..Default::default() })],
        failure: vec![RequestOp::Range(RangeRequest { key: b"lock".to_vec(), ..Default::default() })],
    };

    let won = store.txn(cas(rev, "bob")).await.unwrap();
    assert!(won.succeeded);
    assert_eq!(won.revision, rev + 1);
    assert_eq!(get(&store, "lock").await.unwrap().value, b"bob");

    // A stale mod_revision loses, runs the failure branch (a read) and does
    // not move the revision.
    let lost = store.txn(cas(rev, "carol")).await.unwrap();
    assert!(!lost.succeeded);
    assert_eq!(lost.revision, rev + 1);
    assert_eq!(store.revision(), rev + 1);
    match &lost.responses[..] {
        [ResponseOp::Range(current)] => assert_eq!(current.kvs[0].value, b"bob"),
        other => panic!("unexpected responses {other:?}"),
    }

    // Create-if-absent: ModRevision == 0 holds only for a missing key.
    let create = |key: &str| TxnRequest {
        compare: vec![Compare {
            key: key.into(),
            range_end: Vec::new(),
            result: CompareResult::Equal,
            target: CompareTarget::ModRevision(0),
        }],
        success: vec![RequestOp::Put(PutRequest { key: key.into(), value: b"1".to_vec(), ..Default::default() })],
        failure: Vec::new(),
    };
    assert!(store.txn(create("fresh")).await.unwrap().succeeded);
    assert!(!store.txn(create("fresh")).await.unwrap().succeeded);
}

#[tokio::test]
async fn a_txn_writes_everything_at_one_revision() {
    let store = temp_store();
    put(&store, "gone", "x").await; // 2
    let req = TxnRequest {
        compare: vec![Compare {
            key: b"a".to_vec(),
            range_end: b"z".to_vec(),
            result: CompareResult::Less,
            target: CompareTarget::Version(5),
        }],
        success: vec![
            RequestOp::Put(PutRequest { key: b"one".to_vec(), ..Default::default() }),
            RequestOp::Put(PutRequest { key: b"two".to_vec(), ..Default::default() }),
            RequestOp::DeleteRange(DeleteRangeRequest { key: b"gone".to_vec(), ..Default::default() }),
            RequestOp::Range(RangeRequest { key: b"o".to_vec(), range_end: b"u".to_vec(), ..Default::default() }),
        ],
        failure: Vec::new(),
    };
    let response = store.txn(req).await.unwrap();
    assert!(response.succeeded);
    assert_eq!(response.revision, 3);
    assert_eq!(store.revision(), 3);
    for key in ["one", "two"] {
        assert_eq!(get(&store, key).await.unwrap().mod_revision, 3);
    }
    // The range inside the transaction saw the transaction's own writes.
    match &response.responses[3] {
        ResponseOp::Range(range) => assert_eq!(range.count, 2),
        other => panic!("unexpected response {other:?}"),
    }

    let duplicate = TxnRequest {
        success: vec![
            RequestOp::Put(PutRequest { key: b"k".to_vec(), ..Default::default() }),
            RequestOp::Put(PutRequest { key: b"k".to_vec(), ..Default::default() }),
        ],
        ..Default::default()
    };
    assert!(matches!(store.txn(duplicate).await, Err(Error::InvalidArgument(_))));
}

#[tokio::test]
async fn a_read_only_txn_with_an_old_revision_is_checked() {
    let store = temp_store();
    put(&store, "k", "1").await;
    let read = |revision| TxnRequest {
        success: vec![RequestOp::Range(RangeRequest { key: b"k".to_vec(), revision, ..Default::default() })],
        ..Default::default()
    };
    assert!(store.txn(read(2)).await.unwrap().succeeded);
    assert!(matches!(store.txn(read(9)).await, Err(Error::FutureRevision)));
}

#[tokio::test]
async fn compaction_forgets_history_but_not_the_present() {
    let store = temp_store();
    put(&store, "k", "1").await; // 2
    put(&store, "k", "2").await; // 3
    put(&store, "other", "x").await; // 4
    store.compact(3).await.unwrap();
    assert_eq!(store.compact_revision(), 3);

    let at = |revision| RangeRequest { key: b"k".to_vec(), revision, ..Default::default() };
    assert!(matches!(store.range(at(2)).await, Err(Error::Compacted { compact_revision: 3 })));
    assert_eq!(store.range(at(3)).await.unwrap().kvs[0].value, b"2");
    assert_eq!(get(&store, "other").await.unwrap().value, b"x");

    assert!(matches!(store.compact(3).await, Err(Error::Compacted { .. })));
    assert!(matches!(store.compact(99).await, Err(Error::FutureRevision)));
    assert_eq!(put(&store, "k", "3").await, 5, "writes go on after compaction");
}

#[tokio::test]
async fn watch_from_history_then_live_with_concurrent_writers() {
    let store = temp_store();
    for i in 0..20 {
        put(&store, &format!("before/{i}"), "x").await; // revisions 2..=21
    }
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    put(&store, &format!("during/{w}/{i}"), "x").await;
                }
            })
        })
        .collect();
    // Start watching from the past while the writers are busy: history and
    // live events must join up with nothing lost and nothing repeated.
    let mut watcher = store.watch(watch_all(5)).await.unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    let last = store.revision();
    assert_eq!(last, 21 + 200);
    expect_revisions(&mut watcher, 5, last).await;

    // And it stays live afterwards.
    let rev = put(&store, "after", "x").await;
    expect_revisions(&mut watcher, rev, rev).await;
}

#[tokio::test]
async fn watch_filters_keys_and_reports_deletes_with_prev_kv() {
    let store = temp_store();
    let req = WatchRequest { prev_kv: true, ..watch_all(0) };
    let req = WatchRequest { key: b"/pods/".to_vec(), range_end: prefix_end(b"/pods/"), ..req };
    let mut watcher = store.watch(req).await.unwrap();
    put(&store, "/nodes/n1", "x").await;
    put(&store, "/pods/p1", "v1").await;
    delete(&store, "/pods/p1", "").await;

    let created = next(&mut watcher).await.unwrap();
    assert_eq!(created.events.len(), 1);
    assert_eq!(created.events[0].kind, EventType::Put);
    assert_eq!(created.events[0].kv.key, b"/pods/p1");
    assert_eq!(created.events[0].prev_kv, None);

    let deleted = next(&mut watcher).await.unwrap();
    let event = &deleted.events[0];
    assert_eq!(event.kind, EventType::Delete);
    assert_eq!((event.kv.mod_revision, event.kv.version, event.kv.value.len()), (4, 0, 0));
    assert_eq!(event.prev_kv.as_ref().unwrap().value, b"v1");
}

#[tokio::test]
async fn a_slow_watcher_catches_up_from_history() {
    let store = temp_store();
    let mut watcher = store.watch(watch_all(0)).await.unwrap();
    // Far more revisions than the channel holds, with nobody reading. The
    // writes must not wait for the watcher.
    let writes = 3 * WATCH_CHANNEL_CAPACITY as i64;
    for i in 0..writes {
        put(&store, &format!("k{i}"), "x").await;
    }
    expect_revisions(&mut watcher, 2, 1 + writes).await;
    let rev = put(&store, "live", "x").await;
    expect_revisions(&mut watcher, rev, rev).await;
}

#[tokio::test]
async fn a_watcher_left_behind_by_compaction_is_told_and_closed() {
    let store = temp_store();
    let mut watcher = store.watch(watch_all(0)).await.unwrap();
    for i in 0..(WATCH_CHANNEL_CAPACITY * 4) {
        put(&store, &format!("k{i}"), "x").await;
    }
    let compacted_at = store.revision();
    store.compact(compacted_at).await.unwrap();

    let mut want = 2;
    loop {
        let response = next(&mut watcher).await.expect("a compaction notice before the end");
        if response.compact_revision != 0 {
            assert_eq!(response.compact_revision, compacted_at);
            assert!(response.events.is_empty());
            break;
        }
        for event in response.events {
            assert_eq!(event.kv.mod_revision, want);
            want += 1;
        }
    }
    assert!(want < compacted_at, "the watcher cannot have received everything");
    assert!(next(&mut watcher).await.is_none(), "the watch ends after the notice");
}

#[tokio::test]
async fn watching_a_compacted_revision_fails_at_once() {
    let store = temp_store();
    for _ in 0..5 {
        put(&store, "k", "x").await;
    }
    store.compact(4).await.unwrap();
    let mut watcher = store.watch(watch_all(2)).await.unwrap();
    let notice = next(&mut watcher).await.unwrap();
    assert_eq!((notice.compact_revision, notice.events.len()), (4, 0));
    assert!(next(&mut watcher).await.is_none());

    // From the compaction point itself, history is still complete.
    let mut watcher = store.watch(watch_all(4)).await.unwrap();
    expect_revisions(&mut watcher, 4, 6).await;
}

#[tokio::test]
async fn a_dropped_watcher_is_cleaned_up() {
    let store = temp_store();
    let watcher = store.watch(watch_all(0)).await.unwrap();
    assert_eq!(store.inner.shared.hub.watcher_count(), 1);
    drop(watcher);
    put(&store, "k", "x").await;
    assert_eq!(store.inner.shared.hub.watcher_count(), 0);
}

#[tokio::test]
async fn watch_ends_when_the_store_is_dropped() {
    let store = temp_store();
    let mut watcher = store.watch(watch_all(0)).await.unwrap();
    drop(store);
    assert!(next(&mut watcher).await.is_none());
}

#[tokio::test]
async fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        put(&store, "a", "1").await; // 2
        put(&store, "a", "2").await; // 3
        put(&store, "b", "1").await; // 4
        delete(&store, "b", "").await; // 5
        store.compact(3).await.unwrap();
        // No flush: acknowledged writes are already on disk.
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!((store.revision(), store.compact_revision()), (5, 3));
    let a = get(&store, "a").await.unwrap();
    assert_eq!((a.value.as_slice(), a.version, a.create_revision), (&b"2"[..], 2, 2));
    assert!(get(&store, "b").await.is_none());
    let old = RangeRequest { key: b"b".to_vec(), revision: 4, ..Default::default() };
    assert_eq!(store.range(old).await.unwrap().kvs[0].value, b"1");

    // History for watches survived too, and new writes continue the count.
    let mut watcher = store.watch(watch_all(4)).await.unwrap();
    expect_revisions(&mut watcher, 4, 5).await;
    assert_eq!(put(&store, "c", "1").await, 6);
    expect_revisions(&mut watcher, 6, 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let writers = 200;
    let start = Arc::new(Barrier::new(writers));
    let tasks: Vec<_> = (0..writers)
        .map(|i| {
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                put(&store, &format!("k{i}"), "x").await
            })
        })
        .collect();
    let mut revisions = Vec::new();
    for task in tasks {
        revisions.push(task.await.unwrap());
    }
    revisions.sort_unstable();
    let expected: Vec<i64> = (2..2 + writers as i64).collect();
    assert_eq!(revisions, expected, "every write gets its own revision, none skipped");

    let stats = store.stats();
    assert_eq!(stats.writes, writers as u64);
    assert!(stats.flushes < stats.writes, "group commit should share fsyncs: {stats:?}");
    // Every acknowledged write is visible to a read right after.
    let all = store.range(RangeRequest { count_only: true, ..prefix("k") }).await.unwrap();
    assert_eq!(all.count, writers as i64);
}
