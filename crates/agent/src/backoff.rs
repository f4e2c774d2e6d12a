//! Crash-loop back-off, as client-go's `flowcontrol.Backoff` that the
//! kubelet keys by pod and container.
//!
//! When a container that should restart has exited, the kubelet asks: is
//! this container "in back-off since" the moment it finished? It is when
//! the time since that moment is shorter than the container's current
//! back-off. If not, the kubelet restarts it and doubles the back-off (the
//! first restart is immediate and sets it to the base, 10 s). The sequence
//! of waits is therefore 0, 10 s, 20 s, 40 s, ... up to the cap, 300 s.
//! A container that stays up long enough is forgiven: when more than twice
//! the cap (10 minutes by default) passed between two restarts, the back-off
//! starts over from the base.
//!
//! Time is `tokio::time::Instant`, so tests drive it with paused time.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
struct Entry {
    backoff: Duration,
    last_update: Instant,
}

/// Per-key exponential back-off.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    entries: HashMap<String, Entry>,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff { base, cap: cap.max(base), entries: HashMap::new() }
    }

    /// An entry untouched for twice the cap is stale and starts over.
    fn expired(&self, entry: &Entry, event: Instant) -> bool {
        event.saturating_duration_since(entry.last_update) > self.cap * 2
    }

    /// The current back-off of `key` (zero when it has none).
    pub fn get(&self, key: &str) -> Duration {
        self.entries.get(key).map(|e| e.backoff).unwrap_or_default()
    }

    /// Whether `key`, which last finished at `event`, must still wait at
    /// `now`; `Some(remaining)` when it must.
    pub fn in_backoff_since(&self, key: &str, event: Instant, now: Instant) -> Option<Duration> {
        let entry = self.entries.get(key)?;
        if self.expired(entry, event) {
            return None;
        }
        let waited = now.saturating_duration_since(event);
        (waited < entry.backoff).then(|| entry.backoff - waited)
    }

    /// Records a restart of `key` for the exit at `event`: the first one (or
    /// the first after a long quiet spell) sets the base, later ones double
    /// up to the cap.
    pub fn next(&mut self, key: &str, event: Instant) {
        let backoff = match self.entries.get(key) {
            Some(e) if !self.expired(e, event) => (e.backoff * 2).min(self.cap),
            _ => self.base,
        };
        self.entries.insert(key.to_string(), Entry { backoff, last_update: event });
    }

    /// Forgets `key` (its pod is gone).
    pub fn forget(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

/// A duration as Go's `time.Duration.String()` prints whole seconds:
/// `10s`, `1m20s`, `5m0s`, `1h0m0s`. Upstream's back-off message uses it.
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        _ => format!("{}h{}m{}s", s / 3600, (s % 3600) / 60, s % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulates a container that exits the moment it starts, restarting
    /// whenever the back-off allows, and returns the waits between restarts.
    #[tokio::test(start_paused = true)]
    async fn crash_loop_waits_double_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(300));
        let key = "uid/web";
        let mut waits = Vec::new();
        for _ in 0..8 {
            let exited = Instant::now();
            let wait = b.in_backoff_since(key, exited, Instant::now()).unwrap_or_default();
            tokio::time::sleep(wait).await;
            assert_eq!(b.in_backoff_since(key, exited, Instant::now()), None, "restart allowed after waiting");
            b.next(key, exited);
            waits.push(wait.as_secs());
        }
        assert_eq!(waits, [0, 10, 20, 40, 80, 160, 300, 300]);
    }

    #[tokio::test(start_paused = true)]
    async fn reports_the_remaining_wait() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(300));
        let first_exit = Instant::now();
        b.next("k", first_exit);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let second_exit = Instant::now();
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(b.in_backoff_since("k", second_exit, Instant::now()), Some(Duration::from_secs(6)));
        assert_eq!(b.get("k"), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_run_resets_the_backoff() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(300));
        for _ in 0..4 {
            b.next("k", Instant::now());
        }
        assert_eq!(b.get("k"), Duration::from_secs(80));
        // The container then ran for 10 minutes and a bit before exiting.
        tokio::time::sleep(Duration::from_secs(601)).await;
        let exit = Instant::now();
        assert_eq!(b.in_backoff_since("k", exit, exit), None);
        b.next("k", exit);
        assert_eq!(b.get("k"), Duration::from_secs(10));
        b.forget("k");
        assert_eq!(b.get("k"), Duration::ZERO);
    }

    #[test]
    fn durations_print_like_go() {
        for (secs, want) in [(0, "0s"), (10, "10s"), (80, "1m20s"), (300, "5m0s"), (3725, "1h2m5s")] {
            assert_eq!(go_duration(Duration::from_secs(secs)), want);
        }
    }
}
