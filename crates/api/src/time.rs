//! Timestamps as Kubernetes writes them: RFC 3339 in UTC, whole seconds for
//! `metav1.Time` (creationTimestamp, lastTransitionTime) and microseconds for
//! `metav1.MicroTime` (Lease renewTime, event times).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};

/// Now, truncated to whole seconds as `metav1.Time` serialises it.
pub fn now() -> Time {
    let ts = jiff::Timestamp::now();
    Time(jiff::Timestamp::from_second(ts.as_second()).unwrap_or(ts))
}

/// Now, with microsecond precision, for fields of type `MicroTime`.
pub fn now_micro() -> MicroTime {
    let ts = jiff::Timestamp::now();
    let micros = ts.as_microsecond();
    MicroTime(jiff::Timestamp::from_microsecond(micros).unwrap_or(ts))
}

/// Seconds elapsed since `t` (never negative).
pub fn age_seconds(t: &Time) -> i64 {
    (jiff::Timestamp::now().as_second() - t.0.as_second()).max(0)
}

/// A duration in kubectl's short form: `45s`, `3m12s`, `5h`, `2d3h`.
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=599 => format!("{}m{}s", s / 60, s % 60),
        600..=10_799 => format!("{}m", s / 60),
        10_800..=172_799 => format!("{}h", s / 3600),
        _ => {
            let (d, h) = (s / 86_400, (s % 86_400) / 3600);
            if h == 0 || d >= 8 {
                format!("{d}d")
            } else {
                format!("{d}d{h}h")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_kubectl() {
        for (secs, want) in [(5, "5s"), (119, "119s"), (192, "3m12s"), (900, "15m"), (18_000, "5h"), (183_600, "2d3h"), (864_000, "10d")] {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }
}
