//! Controller references: who manages what (upstream
//! `controller_ref_manager.go`).
//!
//! An object's `ownerReferences` name the objects it belongs to; at most one
//! of them is marked `controller: true`, and that owner is the one
//! controller allowed to manage it. A controller finds its objects by label
//! selector *and* controller reference: a pod that matches a ReplicaSet's
//! selector but is controlled by another ReplicaSet is not its business.
//! Matching orphans are *adopted* and owned objects whose labels no longer
//! match are *released*, so relabelling a pod is how a user takes it out of
//! a ReplicaSet (to debug it, say) without deleting it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::Resource;

/// The owner reference marked `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.as_ref()?.iter().find(|r| r.controller == Some(true))
}

/// The owner reference a controller puts on what it creates or adopts.
/// `blockOwnerDeletion` asks a foreground deletion of the owner to wait for
/// this dependent.
pub fn controller_ref<K: Resource>(owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: K::API_VERSION.to_string(),
        kind: K::KIND.to_string(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// What a controller should do about one candidate object (upstream
/// `ClaimObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Ours and still matching: ours to manage.
    Owned,
    /// An orphan that matches our selector: take it by adding our
    /// controller reference.
    Adopt,
    /// Ours but no longer matching: remove our reference and let it go.
    Release,
    /// Someone else's, or not for us.
    Ignore,
}

/// Decides a [`Claim`] for the object `dependent` and the controller
/// `owner`. `owner_deleting`: the owner is being deleted, so it neither
/// adopts nor releases.
pub fn claim(dependent: &ObjectMeta, owner: &ObjectMeta, selector_matches: bool, owner_deleting: bool) -> Claim {
    match controller_of(dependent) {
        Some(r) if Some(&r.uid) != owner.uid.as_ref() => Claim::Ignore,
        Some(_) if selector_matches => Claim::Owned,
        Some(_) if owner_deleting => Claim::Ignore,
        Some(_) => Claim::Release,
        None if owner_deleting || !selector_matches || dependent.deletion_timestamp.is_some() => Claim::Ignore,
        None => Claim::Adopt,
    }
}

/// A copy of `obj` adopted by `owner` (of kind `O`).
pub fn with_controller_ref<O: Resource, K: k8s_openapi::Metadata<Ty = ObjectMeta> + Clone>(obj: &K, owner: &ObjectMeta) -> K {
    let mut obj = obj.clone();
    obj.metadata_mut().owner_references.get_or_insert_with(Vec::new).push(controller_ref::<O>(owner));
    obj
}

/// A copy of `obj` without `owner`'s reference.
pub fn without_owner<K: k8s_openapi::Metadata<Ty = ObjectMeta> + Clone>(obj: &K, owner: &ObjectMeta) -> K {
    let mut obj = obj.clone();
    if let Some(refs) = obj.metadata_mut().owner_references.as_mut() {
        refs.retain(|r| Some(&r.uid) != owner.uid.as_ref());
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn claims() {
        let owner = ObjectMeta { name: Some("web".into()), uid: Some("rs-uid".into()), ..Default::default() };
        let owned_by = |uid: &str| ObjectMeta {
            owner_references: Some(vec![OwnerReference { uid: uid.into(), controller: Some(true), ..Default::default() }]),
            ..Default::default()
        };
        let orphan = ObjectMeta::default();
        let terminating_orphan = ObjectMeta { deletion_timestamp: Some(Time(jiff::Timestamp::UNIX_EPOCH)), ..Default::default() };
        // (case, dependent, selector matches, owner deleting, want)
        let cases = [
            ("ours, matching", owned_by("rs-uid"), true, false, Claim::Owned),
            ("ours, relabelled", owned_by("rs-uid"), false, false, Claim::Release),
            ("ours, relabelled, owner deleting", owned_by("rs-uid"), false, true, Claim::Ignore),
            ("another controller's", owned_by("other"), true, false, Claim::Ignore),
            ("matching orphan", orphan.clone(), true, false, Claim::Adopt),
            ("orphan, not matching", orphan.clone(), false, false, Claim::Ignore),
            ("matching orphan, owner deleting", orphan, true, true, Claim::Ignore),
            ("terminating orphan", terminating_orphan, true, false, Claim::Ignore),
        ];
        for (name, dependent, matches, deleting, want) in cases {
            assert_eq!(claim(&dependent, &owner, matches, deleting), want, "{name}");
        }
    }

    #[test]
    fn adopt_and_release_round_trip() {
        let owner = ObjectMeta { name: Some("web".into()), uid: Some("rs-uid".into()), ..Default::default() };
        let pod = Pod::default();
        let adopted = with_controller_ref::<k8s_openapi::api::apps::v1::ReplicaSet, _>(&pod, &owner);
        let r = controller_of(&adopted.metadata).unwrap();
        assert_eq!((r.kind.as_str(), r.name.as_str(), r.block_owner_deletion), ("ReplicaSet", "web", Some(true)));
        let released = without_owner(&adopted, &owner);
        assert!(controller_of(&released.metadata).is_none());
    }
}
