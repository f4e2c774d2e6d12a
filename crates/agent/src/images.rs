//! The image manager: when to pull a container's image, and what to say.
//!
//! The runtime only knows how to look an image up and how to pull it; the
//! kubelet's image manager (`pkg/kubelet/images/image_manager.go`) decides
//! whether to, from the container's `imagePullPolicy` (which the
//! api-server defaults: `Always` for `:latest` or no tag, else
//! `IfNotPresent`):
//!
//! - `Never`: the image must be on the node already, else the container
//!   waits with `ErrImageNeverPull`;
//! - `IfNotPresent`: pull only when it is missing;
//! - `Always`: pull every time a container starts (a registry answers
//!   quickly when nothing changed).
//!
//! A failed pull waits with `ErrImagePull` and the engine's message; until
//! the back-off for that image has passed (10 s, doubling up to 5 min, as
//! upstream's), the container waits with `ImagePullBackOff` and no pull is
//! tried. Credentials come from the pod's `imagePullSecrets` of type
//! `kubernetes.io/dockerconfigjson` (or the older `dockercfg`).

use std::time::Duration;

use client::events::{EventType, Recorder};
use client::{Api, Client};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::runtime::{RegistryAuth, Runtime};

/// Why a container cannot start yet: the waiting reason, its message, and
/// when to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
    pub retry_in: Duration,
}

/// One pod's image pulls and their back-off.
#[derive(Debug)]
pub struct ImageManager {
    backoff: Backoff,
    /// When each image's last pull failed: its back-off clock.
    failed_at: std::collections::HashMap<String, Instant>,
}

impl ImageManager {
    pub fn new(base: Duration, cap: Duration) -> Self {
        ImageManager { backoff: Backoff::new(base, cap), failed_at: Default::default() }
    }

    /// Makes sure the container's image is on the node; returns its
    /// reference (`imageID`). Records upstream's events on the container.
    pub async fn ensure(
        &mut self,
        runtime: &dyn Runtime,
        client: &Client,
        recorder: &Recorder,
        pod: &Pod,
        container: &Container,
        involved: ObjectReference,
    ) -> Result<String, Waiting> {
        let image = container.image.clone().unwrap_or_default();
        let policy = container.image_pull_policy.clone().unwrap_or_else(|| default_policy(&image).to_string());
        let event = |kind: EventType, reason: &'static str, message: String| {
            let involved = involved.clone();
            async move { recorder.record_ref(involved, kind, reason, &message).await }
        };
        let present = runtime.image_status(&image).await.map_err(|e| Waiting {
            reason: "ErrImageInspect".into(),
            message: format!("Failed to inspect image {image:?}: {e}"),
            retry_in: Duration::from_secs(1),
        })?;
        match (policy.as_str(), present) {
            ("Never", Some(reference)) | ("IfNotPresent", Some(reference)) => {
                event(EventType::Normal, "Pulled", format!("Container image {image:?} already present on machine")).await;
                return Ok(reference);
            }
            ("Never", None) => {
                let message = format!("Container image {image:?} is not present with pull policy of Never");
                event(EventType::Warning, "ErrImageNeverPull", message.clone()).await;
                return Err(Waiting { reason: "ErrImageNeverPull".into(), message, retry_in: self.backoff_base() });
            }
            _ => {}
        }
        let now = Instant::now();
        if let Some(failed) = self.failed_at.get(&image) {
            if let Some(remaining) = self.backoff.in_backoff_since(&image, *failed, now) {
                let message = format!("Back-off pulling image {image:?}");
                event(EventType::Normal, "BackOff", message.clone()).await;
                return Err(Waiting { reason: "ImagePullBackOff".into(), message, retry_in: remaining });
            }
        }
        event(EventType::Normal, "Pulling", format!("Pulling image {image:?}")).await;
        let auths = pull_secrets(client, pod).await;
        let began = std::time::Instant::now();
        match runtime.pull_image(&image, &auths).await {
            Ok(reference) => {
                self.failed_at.remove(&image);
                self.backoff.forget(&image);
                let took = began.elapsed().as_secs_f64();
                event(
                    EventType::Normal,
                    "Pulled",
                    format!("Successfully pulled image {image:?} in {took:.3}s ({took:.3}s including waiting)"),
                )
                .await;
                Ok(reference)
            }
            Err(e) => {
                self.backoff.next(&image, now);
                self.failed_at.insert(image.clone(), now);
                let message = format!("Failed to pull image {image:?}: {e}");
                event(EventType::Warning, "Failed", message.clone()).await;
                event(EventType::Warning, "Failed", "Error: ErrImagePull".into()).await;
                // The kubelet's pod worker retries a failed sync after its
                // own back-off period (the image back-off's base, plus
                // jitter), not when the image's back-off ends: so the pod
                // shows ErrImagePull for a while, then, once the image's
                // back-off has grown past that period, ImagePullBackOff.
                Err(Waiting { reason: "ErrImagePull".into(), message, retry_in: self.backoff_base() * 5 / 4 })
            }
        }
    }

    fn backoff_base(&self) -> Duration {
        // Any image's current back-off; a fresh key gives the base.
        let mut probe = self.backoff.clone();
        probe.next("", Instant::now());
        probe.get("")
    }
}

/// Upstream's defaulting, for a pod that bypassed the api-server's.
pub fn default_policy(image: &str) -> &'static str {
    let last = image.rsplit('/').next().unwrap_or(image);
    let tag = if image.contains('@') { Some("digest") } else { last.split_once(':').map(|(_, t)| t) };
    match tag {
        None | Some("latest") => "Always",
        Some(_) => "IfNotPresent",
    }
}

/// The registry credentials in the pod's `imagePullSecrets`. A secret that
/// is missing or unreadable is skipped, as upstream does (with a log line).
pub async fn pull_secrets(client: &Client, pod: &Pod) -> Vec<RegistryAuth> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let mut auths = Vec::new();
    for reference in pod.spec.as_ref().and_then(|s| s.image_pull_secrets.clone()).unwrap_or_default() {
        let name = reference.name;
        match secrets.get(&name).await {
            Ok(secret) => auths.extend(docker_config_auths(&secret)),
            Err(e) => tracing::warn!(secret = %name, error = %e, "cannot read an imagePullSecret; pulling without it"),
        }
    }
    auths
}

/// The entries of a `.dockerconfigjson` (`{"auths": {server: {...}}}`) or
/// `.dockercfg` (`{server: {...}}`) secret; each entry has `username` and
/// `password`, or `auth` = base64 of `username:password`.
pub fn docker_config_auths(secret: &Secret) -> Vec<RegistryAuth> {
    use base64::Engine;
    let data = secret.data.clone().unwrap_or_default();
    let (doc, nested) = match (data.get(".dockerconfigjson"), data.get(".dockercfg")) {
        (Some(json), _) => (json.0.clone(), true),
        (None, Some(cfg)) => (cfg.0.clone(), false),
        _ => return Vec::new(),
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&doc) else { return Vec::new() };
    let entries = if nested { value.get("auths").cloned().unwrap_or_default() } else { value };
    let Some(entries) = entries.as_object() else { return Vec::new() };
    entries
        .iter()
        .filter_map(|(server, entry)| {
            let field = |k: &str| entry.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
            let (mut username, mut password) = (field("username"), field("password"));
            if username.is_empty() {
                let decoded = base64::engine::general_purpose::STANDARD.decode(field("auth")).ok()?;
                let text = String::from_utf8(decoded).ok()?;
                let (u, p) = text.split_once(':')?;
                (username, password) = (u.to_string(), p.to_string());
            }
            Some(RegistryAuth { server: server.clone(), username, password })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    #[test]
    fn pull_policy_defaults_as_upstream() {
        for (image, want) in [
            ("busybox", "Always"),
            ("busybox:latest", "Always"),
            ("busybox:1.36", "IfNotPresent"),
            ("127.0.0.1:5999/missing", "Always"),
            ("127.0.0.1:5999/missing:1", "IfNotPresent"),
            ("busybox@sha256:abc", "IfNotPresent"),
        ] {
            assert_eq!(default_policy(image), want, "{image}");
        }
    }

    #[test]
    fn docker_config_secrets_give_credentials() {
        let json = r#"{"auths":{"registry.example:5000":{"auth":"dXNlcjpzM2NyZXQ="},"other.example":{"username":"a","password":"b"}}}"#;
        let secret = Secret {
            data: Some([(".dockerconfigjson".to_string(), ByteString(json.as_bytes().to_vec()))].into()),
            ..Default::default()
        };
        let mut auths = docker_config_auths(&secret);
        auths.sort_by(|a, b| a.server.cmp(&b.server));
        assert_eq!(
            auths,
            [
                RegistryAuth { server: "other.example".into(), username: "a".into(), password: "b".into() },
                RegistryAuth { server: "registry.example:5000".into(), username: "user".into(), password: "s3cret".into() },
            ]
        );
    }
}
