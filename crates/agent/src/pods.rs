//! Where a pod's things are: its identity as the runtime knows it, its
//! files on the node, and its containers by name, with upstream's errors.
//! Shared by the pod workers and the logs and exec endpoints, so none of
//! them reaches into another.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use api::ApiError;
use k8s_openapi::api::core::v1::{Container, Pod};

use crate::runtime::PodRef;

/// Finds a pod on this node by namespace and name (the agent's informer
/// cache; a plain map in tests).
pub type PodLookup = Arc<dyn Fn(&str, &str) -> Option<Arc<Pod>> + Send + Sync>;

/// The pod, or upstream's 404.
pub fn find(pods: &PodLookup, namespace: &str, name: &str) -> Result<Arc<Pod>, ApiError> {
    pods(namespace, name).ok_or_else(|| ApiError::not_found("", "pods", name))
}

/// `<data_dir>/pods/<namespace>_<name>_<uid>`: where a pod's logs live.
pub fn pod_dir(data_dir: &Path, pod: &PodRef) -> PathBuf {
    data_dir.join("pods").join(format!("{}_{}_{}", pod.namespace, pod.name, pod.uid))
}

/// `<pod dir>/<container>/<attempt>.log`.
pub fn log_path(data_dir: &Path, pod: &PodRef, container: &str, attempt: i32) -> PathBuf {
    pod_dir(data_dir, pod).join(container).join(format!("{attempt}.log"))
}

pub fn pod_ref(pod: &Pod) -> PodRef {
    PodRef {
        namespace: pod.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
    }
}

/// The pod's container called `name`, with upstream's errors for a name
/// that is not in the pod. An empty name means the only container; with
/// `default_to_first`, the first one when there are several (exec's rule
/// here; logs insist on a name, as upstream).
pub fn pick_container(pod: &Pod, name: &str, default_to_first: bool) -> Result<Container, ApiError> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    let containers = pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
    if name.is_empty() {
        return match containers {
            [] => Err(ApiError::bad_request(format!("a container name must be specified for pod {pod_name}"))),
            [only] => Ok(only.clone()),
            [first, ..] if default_to_first => Ok(first.clone()),
            _ => {
                let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
                Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                    names.join(" ")
                )))
            }
        };
    }
    containers
        .iter()
        .find(|c| c.name == name)
        .cloned()
        .ok_or_else(|| ApiError::bad_request(format!("container {name} is not valid for pod {pod_name}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_paths_follow_the_kubelet_layout() {
        let p = PodRef { namespace: "default".into(), name: "web".into(), uid: "u1".into() };
        assert_eq!(log_path(Path::new("/d"), &p, "app", 2), Path::new("/d/pods/default_web_u1/app/2.log"));
    }
}
