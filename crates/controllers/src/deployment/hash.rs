//! The pod-template hash that names a Deployment's ReplicaSets.
//!
//! Each distinct pod template of a Deployment gets its own ReplicaSet,
//! named `<deployment>-<hash>` and carrying the label
//! `pod-template-hash=<hash>` in its selector, template and own labels, so
//! the pods of two revisions never match each other's selector.
//!
//! How the hash is computed: upstream (`controller.ComputeHash`) feeds the
//! Go struct of the template, printed by a deep-printer, into FNV-32a,
//! followed by `status.collisionCount` (4 bytes, little-endian) when set,
//! and renders the 32-bit sum's *decimal digits* through
//! `rand.SafeEncodeString`, an alphabet without vowels (so a hash never
//! spells a word) and without the look-alikes 0, 1 and 3. tinykube does
//! the same, except that the bytes hashed are the template's canonical
//! JSON: `serde_json` writes the `k8s-openapi` struct's fields in a fixed
//! order and every map (labels, annotations, nodeSelector) is a sorted
//! `BTreeMap`, so equal templates always hash equal. The values therefore
//! differ from upstream's for the same template, but are just as stable:
//! the golden test below pins one.

use k8s_openapi::api::core::v1::PodTemplateSpec;

use crate::Error;

/// The characters `SafeEncodeString` maps onto (upstream's `alphanums`).
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// 32-bit FNV-1a.
pub fn fnv32a(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for &b in bytes {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// Maps each character of `s` into the safe alphabet by its code modulo
/// the alphabet's length, as upstream's `rand.SafeEncodeString`.
pub fn safe_encode(s: &str) -> String {
    s.chars().map(|c| SAFE_ALPHABET[(c as usize) % SAFE_ALPHABET.len()] as char).collect()
}

/// The `pod-template-hash` of a template, given the Deployment's
/// `status.collisionCount`.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> Result<String, Error> {
    let mut bytes = serde_json::to_vec(template).map_err(|source| Error::Serialize { what: "pod template", source })?;
    if let Some(c) = collision_count {
        bytes.extend_from_slice(&(c as u32).to_le_bytes());
    }
    Ok(safe_encode(&fnv32a(&bytes).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(v: serde_json::Value) -> PodTemplateSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn fnv_matches_reference_vectors() {
        // Published FNV-1a 32-bit test vectors.
        for (input, want) in [("", 0x811c9dc5u32), ("a", 0xe40c292c), ("foobar", 0xbf9cf968)] {
            assert_eq!(fnv32a(input.as_bytes()), want, "{input:?}");
        }
    }

    #[test]
    fn hash_is_stable_and_sensitive_to_what_matters() {
        let base = serde_json::json!({
            "metadata": {"labels": {"app": "web", "tier": "fe"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}
        });
        let h = pod_template_hash(&template(base.clone()), None).unwrap();
        // Golden value: if this changes, every existing Deployment would
        // roll out anew after an upgrade.
        assert_eq!(h, "5bf96695d");
        assert!(h.bytes().all(|b| SAFE_ALPHABET.contains(&b)));

        // Same template, keys in another order: same hash.
        let reordered = template(serde_json::json!({
            "spec": {"containers": [{"image": "nginx:1.27", "name": "web"}]},
            "metadata": {"labels": {"tier": "fe", "app": "web"}}
        }));
        assert_eq!(pod_template_hash(&reordered, None).unwrap(), h);

        // What must change the hash.
        let mut new_image = base.clone();
        new_image["spec"]["containers"][0]["image"] = "nginx:1.28".into();
        let mut new_label = base;
        new_label["metadata"]["labels"]["track"] = "canary".into();
        let changed = [
            pod_template_hash(&template(new_image), None).unwrap(),
            pod_template_hash(&template(new_label), None).unwrap(),
            pod_template_hash(&reordered, Some(1)).unwrap(),
        ];
        for other in &changed {
            assert_ne!(other, &h);
        }
        assert_ne!(pod_template_hash(&reordered, Some(1)).unwrap(), pod_template_hash(&reordered, Some(2)).unwrap());
    }
}
