//! The kubectl-like commands: `apply`, `get`, `describe`, `delete`,
//! `scale`, `logs`, `rollout status`.
//!
//! They are ordinary clients of the api-server, like kubectl: they find
//! the server through the kubeconfig, resolve what the user typed
//! (`deploy/web`, `po`, `deployments.apps`) with the resource table, and
//! print the server's own error message on failure, exiting non-zero.

pub mod apply;
pub mod get;
pub mod ops;

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use api::ResourceInfo;
use client::dynamic::DynamicApi;
use client::Client;

use crate::kubeconfig;

/// Options every command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Path to a kubeconfig (default: $KUBECONFIG, then the data dir's).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
}

/// A connection plus the namespace commands act in.
pub struct Ctx {
    pub client: Client,
    pub namespace: String,
}

impl Ctx {
    pub fn connect(global: &Global) -> Result<Self> {
        let target = kubeconfig::load(global.kubeconfig.as_deref())?;
        let client = Client::new(&target.server, &target.credentials)?;
        Ok(Ctx { client, namespace: global.namespace.clone().unwrap_or(target.namespace) })
    }

    /// Untyped access to `info` in `namespace` (or the default one).
    pub fn api(&self, info: &'static ResourceInfo, namespace: Option<&str>) -> DynamicApi {
        DynamicApi::new(self.client.clone(), info, namespace.unwrap_or(&self.namespace))
    }
}

/// Resolves `KIND` as kubectl does, or fails with kubectl's message.
pub fn resolve(kind: &str) -> Result<&'static ResourceInfo> {
    api::resources::by_user_name(kind).ok_or_else(|| anyhow!("the server doesn't have a resource type \"{kind}\""))
}

/// Splits `KIND/NAME` or `KIND NAME` into a resource and an optional name.
pub fn kind_and_name<'a>(first: &'a str, second: Option<&'a str>) -> Result<(&'static ResourceInfo, Option<&'a str>)> {
    match first.split_once('/') {
        Some((kind, name)) => {
            if second.is_some() {
                bail!("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form");
            }
            Ok((resolve(kind)?, Some(name)))
        }
        None => Ok((resolve(first)?, second)),
    }
}

/// `deployment.apps/web`, as kubectl names an object in its output.
pub fn display_name(info: &ResourceInfo, name: &str) -> String {
    if info.group.is_empty() {
        format!("{}/{name}", info.singular)
    } else {
        format!("{}.{}/{name}", info.singular, info.group)
    }
}

/// Prints a server error as kubectl does: `The Deployment "web" is
/// invalid: spec.replicas: ...` for validation failures, `Error from
/// server (NotFound): ...` for the rest.
pub fn server_err(e: api::ApiError) -> anyhow::Error {
    if e.reason == "Invalid" {
        if let Some(d) = &e.details {
            let causes: Vec<String> = d.causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
            let body = match causes.as_slice() {
                [one] => one.clone(),
                many => format!("\n* {}", many.join("\n* ")),
            };
            return anyhow!("The {} \"{}\" is invalid: {body}", d.kind, d.name);
        }
    }
    if e.code == 503 && e.reason == "ServiceUnavailable" && e.message.contains("unreachable") {
        return anyhow!("The connection to the server was refused - did you specify the right host or port? ({})", e.message);
    }
    anyhow!("Error from server ({}): {}", e.reason, e.message)
}
