//! Read, edit, write back, and try again if someone else wrote first —
//! client-go's `retry.RetryOnConflict` around a get and an update.
//!
//! The garbage collector, the namespace controller and the node
//! controllers change objects they do not own: they take an owner reference out of a ReplicaSet that its
//! controller may be updating at the same moment, or a finalizer off a
//! Deployment whose status is being written. Each such write carries the
//! resourceVersion it read, so it can never overwrite a change it did not
//! see; a 409 Conflict means "read again and redo the edit", which is
//! safe because the edit is a function of the object, not of our cache.

use api::ApiError;
use client::dynamic::DynamicApi;
use client::{Api, Object};
use serde_json::Value;

/// How often an edit is retried against a fresh copy before the 409 is
/// returned (upstream's `retry.DefaultRetry` has five steps).
const CONFLICT_RETRIES: usize = 5;

/// Reads `name` live, lets `edit` change it, and writes it back guarded
/// by the resourceVersion read, retrying on conflict.
///
/// `uid`, when given, must match: an object deleted and recreated under
/// the same name is not the one we meant. `edit` returns `false` when the
/// object needs no change, and nothing is written. Returns the object as
/// written (or as read, when unchanged), or `None` when it is gone or was
/// replaced. An update that removes the last finalizer of an object being
/// deleted removes the object: that, too, is `Ok`.
pub async fn update_live(
    api: &DynamicApi,
    name: &str,
    uid: Option<&str>,
    edit: impl Fn(&mut Value) -> bool,
) -> Result<Option<Value>, ApiError> {
    let mut last_conflict = None;
    for _ in 0..CONFLICT_RETRIES {
        let mut obj = match api.get(name).await {
            Ok(obj) => obj,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        if uid.is_some_and(|uid| obj["metadata"]["uid"].as_str() != Some(uid)) {
            return Ok(None);
        }
        if !edit(&mut obj) {
            return Ok(Some(obj));
        }
        match api.update(&obj, false).await {
            Ok(written) => return Ok(Some(written)),
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) if e.is_conflict() => last_conflict = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_conflict.unwrap_or_else(|| ApiError::internal("update retries exhausted")))
}

/// [`update_live`] for the status of a typed object: reads `name`, lets
/// `edit` change its status, and writes it through the `/status`
/// subresource, retrying on conflict. The taint-eviction controller marks
/// a pod `DisruptionTarget` this way while the pod's own node may be
/// writing the same status.
pub async fn update_status_live<K: Object>(
    api: &Api<K>,
    name: &str,
    uid: Option<&str>,
    edit: impl Fn(&mut K) -> bool,
) -> Result<Option<K>, ApiError> {
    let mut last_conflict = None;
    for _ in 0..CONFLICT_RETRIES {
        let Some(mut obj) = api.get_opt(name).await? else { return Ok(None) };
        if uid.is_some_and(|uid| obj.metadata().uid.as_deref() != Some(uid)) {
            return Ok(None);
        }
        if !edit(&mut obj) {
            return Ok(Some(obj));
        }
        match api.replace_status(&obj).await {
            Ok(written) => return Ok(Some(written)),
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) if e.is_conflict() => last_conflict = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_conflict.unwrap_or_else(|| ApiError::internal("update retries exhausted")))
}

/// Removes `finalizer` from `metadata.finalizers`; `false` if it was not there.
pub fn remove_finalizer(obj: &mut Value, finalizer: &str) -> bool {
    remove_from_list(&mut obj["metadata"], "finalizers", |f| f.as_str() == Some(finalizer))
}

/// Removes `finalizer` from a namespace's `spec.finalizers`, the list
/// that belongs to the namespace lifecycle rather than to `metadata`.
pub fn remove_spec_finalizer(obj: &mut Value, finalizer: &str) -> bool {
    remove_from_list(&mut obj["spec"], "finalizers", |f| f.as_str() == Some(finalizer))
}

/// Removes every owner reference whose uid is in `uids`; `false` if none was.
pub fn remove_owner_references(obj: &mut Value, uids: &[String]) -> bool {
    remove_from_list(&mut obj["metadata"], "ownerReferences", |r| r["uid"].as_str().is_some_and(|u| uids.iter().any(|x| x == u)))
}

/// Removes the entries of `parent[field]` that `unwanted` picks; a list
/// left empty is removed altogether, as Go's `omitempty` leaves it out.
fn remove_from_list(parent: &mut Value, field: &str, unwanted: impl Fn(&Value) -> bool) -> bool {
    let Some(list) = parent[field].as_array_mut() else { return false };
    let before = list.len();
    list.retain(|v| !unwanted(v));
    let changed = before != list.len();
    if list.is_empty() {
        if let Some(map) = parent.as_object_mut() {
            map.remove(field);
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn removing_a_finalizer_keeps_the_others() {
        let cases = [
            (json!({"metadata": {"finalizers": ["orphan", "example.com/keep"]}}), "orphan", true, json!(["example.com/keep"])),
            (json!({"metadata": {"finalizers": ["example.com/keep"]}}), "orphan", false, json!(["example.com/keep"])),
            (json!({"metadata": {"finalizers": ["foregroundDeletion"]}}), "foregroundDeletion", true, Value::Null),
        ];
        for (mut obj, finalizer, changed, want) in cases {
            assert_eq!(remove_finalizer(&mut obj, finalizer), changed, "{obj}");
            assert_eq!(obj["metadata"]["finalizers"], want);
        }
        let mut none = json!({"metadata": {}});
        assert!(!remove_finalizer(&mut none, "orphan"));
    }

    #[test]
    fn removing_owner_references_by_uid() {
        let mut obj = json!({"metadata": {"ownerReferences": [{"uid": "a"}, {"uid": "b"}, {"uid": "c"}]}});
        assert!(remove_owner_references(&mut obj, &["a".into(), "c".into()]));
        assert_eq!(obj["metadata"]["ownerReferences"], json!([{"uid": "b"}]));
        assert!(!remove_owner_references(&mut obj, &["z".into()]));
        assert!(remove_owner_references(&mut obj, &["b".into()]));
        assert_eq!(obj["metadata"], json!({}), "an emptied list is left out");
    }
}
