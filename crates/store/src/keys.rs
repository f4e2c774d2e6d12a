//! How user keys, key ranges and revisions become sled keys.
//!
//! The `kv` tree holds every version of every key under
//! `escape(key) ++ revision`, so all versions of one key sit next to each
//! other, oldest first, and keys sort exactly as their raw bytes do. The
//! escaping is needed because keys are arbitrary bytes: with plain
//! concatenation the versions of `a` and of `a\0\0…` would interleave, and
//! "every version of `a`" would no longer be one contiguous sled range.
//!
//! The escape is the one FoundationDB's tuple layer and toyDB's keycode use:
//! each `0x00` byte becomes `0x00 0xff`, and the key ends with `0x00 0x00`.
//! The terminator sorts below any escaped byte, so a key sorts before every
//! longer key it is a prefix of, and no encoded key is a prefix of another.

use std::ops::Bound;

/// Width of an encoded revision: eight big-endian bytes, so that revisions
/// sort numerically as bytes.
pub(crate) const REVISION_LEN: usize = 8;

/// The order-preserving, prefix-free encoding of a user key (see the module
/// docs).
pub(crate) fn escape(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 2);
    for &byte in key {
        out.push(byte);
        if byte == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0, 0]);
    out
}

/// A revision as sortable bytes. Revisions are never negative, so the
/// two's-complement bytes of an `i64` already sort correctly.
pub(crate) fn revision_bytes(revision: i64) -> [u8; REVISION_LEN] {
    revision.to_be_bytes()
}

/// Reads a revision back from the last [`REVISION_LEN`] bytes of a sled key.
/// Returns `None` when the key is too short to hold one, which only a
/// damaged or foreign tree can produce.
pub(crate) fn revision_suffix(sled_key: &[u8]) -> Option<i64> {
    let split = sled_key.len().checked_sub(REVISION_LEN)?;
    let bytes: [u8; REVISION_LEN] = sled_key[split..].try_into().ok()?;
    Some(i64::from_be_bytes(bytes))
}

/// The `kv`-tree key of one version of `key`.
pub(crate) fn version_key(key: &[u8], revision: i64) -> Vec<u8> {
    let mut out = escape(key);
    out.extend_from_slice(&revision_bytes(revision));
    out
}

/// The `log`-tree key of one change: the revision of the write and the
/// position of the change inside it (etcd's "sub-revision"), so a
/// transaction that touches three keys logs three entries in op order.
pub(crate) fn log_key(revision: i64, sub: i64) -> [u8; 2 * REVISION_LEN] {
    let mut out = [0; 2 * REVISION_LEN];
    out[..REVISION_LEN].copy_from_slice(&revision_bytes(revision));
    out[REVISION_LEN..].copy_from_slice(&revision_bytes(sub));
    out
}

/// The revision of a `log`-tree key (its first eight bytes).
pub(crate) fn log_revision(log_key: &[u8]) -> Option<i64> {
    if log_key.len() != 2 * REVISION_LEN {
        return None;
    }
    revision_suffix(&log_key[..REVISION_LEN])
}

/// `[key, range_end)` with etcd's conventions decoded once: an empty
/// `range_end` is the single key `key`, and `range_end == [0]` means "no
/// upper bound".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyRange {
    /// Exactly one key.
    Single(Vec<u8>),
    /// Every key `>= start` and, if bounded, `< end`.
    Span { start: Vec<u8>, end: Option<Vec<u8>> },
}

impl KeyRange {
    pub(crate) fn new(key: &[u8], range_end: &[u8]) -> KeyRange {
        match range_end {
            [] => KeyRange::Single(key.to_vec()),
            [0] => KeyRange::Span { start: key.to_vec(), end: None },
            end => KeyRange::Span { start: key.to_vec(), end: Some(end.to_vec()) },
        }
    }

    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        match self {
            KeyRange::Single(only) => key == only.as_slice(),
            KeyRange::Span { start, end } => key >= start.as_slice() && end.as_deref().is_none_or(|end| key < end),
        }
    }

    /// The sled bounds in the `kv` tree that hold every version of every key
    /// in the range. Because [`escape`] preserves order and is prefix-free,
    /// `escape(start)` and `escape(end)` bracket exactly those entries.
    pub(crate) fn sled_bounds(&self) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
        match self {
            KeyRange::Single(key) => {
                let prefix = escape(key);
                let mut after = prefix.clone();
                after.extend_from_slice(&[0xff; REVISION_LEN]);
                (Bound::Included(prefix), Bound::Included(after))
            }
            KeyRange::Span { start, end } => (
                Bound::Included(escape(start)),
                match end {
                    Some(end) => Bound::Excluded(escape(end)),
                    None => Bound::Unbounded,
                },
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prefix_end;

    #[test]
    fn escape_preserves_order_and_is_prefix_free() {
        let mut keys: Vec<&[u8]> = vec![b"", b"\0", b"\0\0", b"\0\x01", b"a", b"a\0", b"a\0b", b"a\x01", b"ab", b"b", b"\xff"];
        keys.sort();
        for pair in keys.windows(2) {
            let (a, b) = (escape(pair[0]), escape(pair[1]));
            assert!(a < b, "{:?} should sort before {:?}", pair[0], pair[1]);
            assert!(!b.starts_with(&a), "{:?} is a prefix of {:?}", a, b);
        }
    }

    #[test]
    fn versions_of_a_key_stay_contiguous() {
        // Without escaping, `a` at revision 5 and the key `a\0…` would mix.
        let a_old = version_key(b"a", 5);
        let a_new = version_key(b"a", i64::MAX);
        let other = version_key(b"a\0\0\0\0\0\0\0\x05", 1);
        assert!(other > a_new || other < a_old);
        assert_eq!(revision_suffix(&a_old), Some(5));
    }

    #[test]
    fn key_range_follows_etcd_conventions() {
        let single = KeyRange::new(b"a", b"");
        assert!(single.contains(b"a"));
        assert!(!single.contains(b"ab"));

        let from = KeyRange::new(b"b", b"\0");
        assert!(from.contains(b"b") && from.contains(b"zzz"));
        assert!(!from.contains(b"a"));

        let everything = KeyRange::new(b"\0", b"\0");
        assert!(everything.contains(b"\0") && everything.contains(b"\xff\xff"));

        let prefix = KeyRange::new(b"/registry/", &prefix_end(b"/registry/"));
        assert!(prefix.contains(b"/registry/pods/default/a"));
        assert!(!prefix.contains(b"/registry0"));
        assert!(!prefix.contains(b"/regist"));
    }

    #[test]
    fn prefix_end_cases() {
        assert_eq!(prefix_end(b"abc"), b"abd");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"a\xff\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
        assert_eq!(prefix_end(b"/registry/"), b"/registry0");
    }
}
