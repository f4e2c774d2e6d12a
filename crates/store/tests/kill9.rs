//! An acknowledged write survives `kill -9`.
//!
//! The test runs this same test binary as a child process, pointed at a
//! fresh data dir, where the ignored `child_writes_until_killed` test writes
//! from several tasks at once and prints each write as soon as `put`
//! returns. The parent reads those acknowledgements, kills the child with
//! SIGKILL mid-stream (no destructors, no final flush), reopens the store,
//! and checks that every acknowledged write is there at its revision.
//!
//! What this catches is a write acknowledged while still in sled's
//! in-process buffers, which `kill -9` throws away. Data already handed to
//! the kernel survives a killed process even without an fsync; only power
//! loss tells the two apart, and no test in one machine can cut the power.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use tinykube_store::{Kv, PutRequest, RangeRequest, Store};

/// Tells the child where the store lives; without it the child test is a
/// no-op, so running ignored tests by hand is harmless.
const DIR_VAR: &str = "TINYKUBE_STORE_KILL9_DIR";
const WRITERS: usize = 8;
const ACKS_BEFORE_KILL: usize = 300;

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(std::env::current_exe().expect("test binary path"))
        .args(["--exact", "child_writes_until_killed", "--ignored", "--nocapture"])
        .env(DIR_VAR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the child");
    let stdout = child.stdout.take().expect("child stdout");

    let mut acked: Vec<(String, i64)> = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read child output");
        let Some(ack) = line.strip_prefix("acked ") else {
            continue;
        };
        let (key, revision) = ack.split_once(' ').expect("`acked KEY REVISION`");
        acked.push((key.to_string(), revision.parse().expect("revision")));
        if acked.len() == ACKS_BEFORE_KILL {
            break;
        }
    }
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    assert_eq!(acked.len(), ACKS_BEFORE_KILL, "the child stopped writing early");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = Store::open(dir.path()).expect("reopen after kill -9");
        let newest = acked.iter().map(|(_, revision)| *revision).max().unwrap_or(0);
        assert!(store.revision() >= newest, "revision went back: {} < {newest}", store.revision());
        for (key, revision) in &acked {
            let req = RangeRequest { key: key.clone().into_bytes(), ..Default::default() };
            let found = store.range(req).await.expect("range").kvs;
            assert_eq!(found.len(), 1, "acknowledged write of {key} lost");
            assert_eq!(found[0].mod_revision, *revision, "{key} at the wrong revision");
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "the child half of acknowledged_writes_survive_kill_9"]
async fn child_writes_until_killed() {
    let Some(dir) = std::env::var_os(DIR_VAR) else {
        return;
    };
    let store = Store::open(std::path::Path::new(&dir)).expect("open store");
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("w{writer}/{i}");
                    let req = PutRequest { key: key.clone().into_bytes(), value: b"x".to_vec(), ..Default::default() };
                    let revision = store.put(req).await.expect("put").revision;
                    println!("acked {key} {revision}");
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
}
