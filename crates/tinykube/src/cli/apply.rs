//! `apply -f` and `delete -f`: manifests in, objects out.
//!
//! A manifest source is a file, a directory (its `.yaml`, `.yml` and
//! `.json` files, sorted) or `-` for standard input; each may hold several
//! YAML documents. Every document is parsed and resolved to a kind before
//! anything is sent, and every object is first checked by the server with a
//! dry run, so a bad document anywhere changes nothing anywhere.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use api::{ApiError, ResourceInfo};
use client::dynamic::DynamicApi;
use serde_json::Value;

use super::{display_name, Ctx};

/// One object from a manifest, with where it came from.
pub struct Manifest {
    pub source: String,
    pub info: &'static ResourceInfo,
    pub object: Value,
}

impl Manifest {
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }

    fn namespace<'a>(&'a self, ctx: &'a Ctx) -> &'a str {
        self.object["metadata"]["namespace"].as_str().filter(|n| !n.is_empty()).unwrap_or(&ctx.namespace)
    }
}

fn files_of(path: &str) -> Result<Vec<(String, String)>> {
    if path == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).context("reading standard input")?;
        return Ok(vec![("<stdin>".into(), text)]);
    }
    let p = Path::new(path);
    if p.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
            .with_context(|| format!("reading directory {path}"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| f.extension().is_some_and(|x| x == "yaml" || x == "yml" || x == "json"))
            .collect();
        entries.sort();
        if entries.is_empty() {
            bail!("error: no objects passed to apply: {path} has no .yaml, .yml or .json files");
        }
        return entries
            .into_iter()
            .map(|f| Ok((f.display().to_string(), std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?)))
            .collect();
    }
    let text = std::fs::read_to_string(p).with_context(|| format!("the path \"{path}\" does not exist or cannot be read"))?;
    Ok(vec![(path.to_string(), text)])
}

/// Parses every document of every source, failing on the first problem.
pub fn read_manifests(sources: &[String]) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for source in sources {
        for (file, text) in files_of(source)? {
            for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
                let value: Value =
                    serde::Deserialize::deserialize(doc).map_err(|e| anyhow!("error parsing {file} (document {}): {e}", i + 1))?;
                if value.is_null() {
                    continue; // an empty document, e.g. after a trailing `---`
                }
                if value["kind"] == "List" {
                    for item in value["items"].as_array().cloned().unwrap_or_default() {
                        out.push(to_manifest(&file, item)?);
                    }
                } else {
                    out.push(to_manifest(&file, value)?);
                }
            }
        }
    }
    if out.is_empty() {
        bail!("error: no objects passed to apply");
    }
    Ok(out)
}

fn to_manifest(file: &str, object: Value) -> Result<Manifest> {
    if !object.is_object() {
        bail!("error validating {file}: the document is not an object");
    }
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    if api_version.is_empty() || kind.is_empty() {
        bail!("error validating data in {file}: apiVersion and kind must be set (got apiVersion {api_version:?}, kind {kind:?})");
    }
    let info = api::resources::by_kind(api_version, kind).map_err(|e| {
        anyhow!(
            "error: resource mapping not found for name: {:?} namespace: {:?} from {file}: {}\nensure CRDs are installed first",
            object["metadata"]["name"].as_str().unwrap_or_default(),
            object["metadata"]["namespace"].as_str().unwrap_or_default(),
            e.message
        )
    })?;
    Ok(Manifest { source: file.to_string(), info, object })
}

/// How many times apply re-reads an object whose update met a newer
/// version, before it gives up with the conflict.
const MAX_CONFLICT_RETRIES: usize = 5;

/// What apply will do to one object.
enum Plan {
    Create,
    Update(Value),
}

/// `tinykube apply -f ...`.
pub async fn apply(ctx: &Ctx, sources: &[String]) -> Result<()> {
    let manifests = read_manifests(sources)?;
    // First pass: check everything with the server, change nothing.
    let mut plans = Vec::new();
    let mut errors = Vec::new();
    for m in &manifests {
        let api = ctx.api(m.info, Some(m.namespace(ctx)));
        let plan = match api.get(m.name()).await {
            Ok(current) => update(&api, m, merged(&current, &m.object), true).await.map(|(desired, _)| Plan::Update(desired)),
            Err(e) if e.is_not_found() => api.create(&m.object, true).await.map(|_| Plan::Create),
            Err(e) => Err(e),
        };
        match plan {
            Ok(p) => plans.push(p),
            Err(e) => errors.push(format!("{} (from {}, {})", super::server_err(e), m.source, display_name(m.info, m.name()))),
        }
    }
    if !errors.is_empty() {
        bail!("{}\nnothing was changed", errors.join("\n"));
    }
    // Second pass: apply for real.
    for (m, plan) in manifests.iter().zip(plans) {
        let api = ctx.api(m.info, Some(m.namespace(ctx)));
        let what = display_name(m.info, m.name());
        match plan {
            Plan::Create => {
                let created = api.create(&m.object, false).await.map_err(super::server_err)?;
                println!("{} created", display_name(m.info, created["metadata"]["name"].as_str().unwrap_or_default()));
            }
            Plan::Update(desired) => {
                let (desired, after) = update(&api, m, desired, false).await.map_err(super::server_err)?;
                let before = &desired["metadata"]["resourceVersion"];
                let verb = if after["metadata"]["resourceVersion"] == *before { "unchanged" } else { "configured" };
                println!("{what} {verb}");
            }
        }
    }
    Ok(())
}

/// Writes `desired`, the manifest merged over the object as it was read,
/// and returns what was written and what the server answered. Controllers
/// write status all the time and the update carries the resourceVersion
/// that was read, so on a conflict the manifest is merged over the object
/// as it is now and written again.
async fn update(api: &DynamicApi, m: &Manifest, mut desired: Value, dry_run: bool) -> Result<(Value, Value), ApiError> {
    let mut attempts = 0;
    loop {
        match api.update(&desired, dry_run).await {
            Err(e) if e.is_conflict() && attempts < MAX_CONFLICT_RETRIES => {
                attempts += 1;
                desired = merged(&api.get(m.name()).await?, &m.object);
            }
            result => return result.map(|after| (desired, after)),
        }
    }
}

/// The object to write when applying `manifest` over `current`: the
/// manifest's content, with what the server owns (status, uid, ...) kept
/// and labels and annotations merged. This is a simple two-way apply; the
/// three-way strategic merge kubectl does arrives with the REST API.
fn merged(current: &Value, manifest: &Value) -> Value {
    let mut desired = manifest.clone();
    let meta = &mut desired["metadata"];
    for owned in ["uid", "creationTimestamp", "resourceVersion", "generation", "ownerReferences", "finalizers"] {
        if !current["metadata"][owned].is_null() && meta[owned].is_null() {
            meta[owned] = current["metadata"][owned].clone();
        }
    }
    for map in ["labels", "annotations"] {
        if let Some(cur) = current["metadata"][map].as_object() {
            let mut m = cur.clone();
            if let Some(new) = manifest["metadata"][map].as_object() {
                m.extend(new.clone());
            }
            meta[map] = Value::Object(m);
        }
    }
    if !current["status"].is_null() {
        desired["status"] = current["status"].clone();
    }
    desired
}

/// `tinykube delete -f ...`: deletes every object the manifests name, in
/// reverse order, and waits until they are gone.
pub async fn delete_files(ctx: &Ctx, sources: &[String], wait: bool) -> Result<()> {
    let manifests = read_manifests(sources)?;
    let mut failed = false;
    for m in manifests.iter().rev() {
        let ns = m.namespace(ctx).to_string();
        if let Err(e) = super::ops::delete_one(ctx, m.info, &ns, m.name(), wait).await {
            eprintln!("{e}");
            failed = true;
        }
    }
    if failed {
        bail!("some objects could not be deleted");
    }
    Ok(())
}
