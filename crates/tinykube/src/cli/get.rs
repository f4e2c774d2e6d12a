//! `get` and `describe`.

use anyhow::Result;
use api::ResourceInfo;
use apiserver::table;
use client::ListParams;
use serde_json::{json, Value};

use super::{server_err, Ctx};

/// Output formats of `get -o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Wide,
    Yaml,
    Json,
    Name,
}

/// What `get` was asked for.
pub struct GetArgs<'a> {
    pub info: &'static ResourceInfo,
    pub name: Option<&'a str>,
    pub all_namespaces: bool,
    pub selector: Option<&'a str>,
    pub output: Option<Output>,
}

pub async fn get(ctx: &Ctx, args: GetArgs<'_>) -> Result<()> {
    let ns = if args.all_namespaces { "" } else { ctx.namespace.as_str() };
    let api = ctx.api(args.info, Some(ns));
    let items: Vec<Value> = match args.name {
        Some(name) => vec![api.get(name).await.map_err(server_err)?],
        None => {
            let params = ListParams { label_selector: args.selector.unwrap_or_default().to_string(), ..Default::default() };
            let list = api.list(&params).await.map_err(server_err)?;
            list["items"].as_array().cloned().unwrap_or_default()
        }
    };
    match args.output {
        Some(Output::Json) | Some(Output::Yaml) => {
            let doc = match (args.name, items.as_slice()) {
                (Some(_), [one]) => one.clone(),
                _ => json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}),
            };
            if args.output == Some(Output::Json) {
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                print!("{}", serde_yaml::to_string(&doc)?);
            }
        }
        Some(Output::Name) => {
            for it in &items {
                println!("{}", super::display_name(args.info, it["metadata"]["name"].as_str().unwrap_or_default()));
            }
        }
        other => {
            if items.is_empty() {
                if args.all_namespaces || !args.info.namespaced {
                    eprintln!("No resources found");
                } else {
                    eprintln!("No resources found in {ns} namespace.");
                }
                return Ok(());
            }
            let wide = other == Some(Output::Wide);
            print!("{}", render_table(args.info, &items, wide, args.all_namespaces && args.info.namespaced));
        }
    }
    Ok(())
}

/// Renders rows as kubectl does: columns padded by three spaces.
pub fn render_table(info: &ResourceInfo, items: &[Value], wide: bool, with_namespace: bool) -> String {
    let cols = table::columns(info);
    let keep: Vec<usize> = (0..cols.len()).filter(|&i| wide || !cols[i].wide).collect();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header: Vec<String> = keep.iter().map(|&i| cols[i].name.to_string()).collect();
    if with_namespace {
        header.insert(0, "NAMESPACE".into());
    }
    rows.push(header);
    for it in items {
        let cells = table::row(info, it);
        let mut r: Vec<String> = keep.iter().map(|&i| cells.get(i).cloned().unwrap_or_default()).collect();
        if with_namespace {
            r.insert(0, it["metadata"]["namespace"].as_str().unwrap_or_default().to_string());
        }
        rows.push(r);
    }
    let widths: Vec<usize> = (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in rows {
        let last = r.len() - 1;
        for (c, cell) in r.iter().enumerate() {
            out.push_str(cell);
            if c < last {
                out.push_str(&" ".repeat(widths[c] - cell.chars().count() + 3));
            }
        }
        out.push('\n');
    }
    out
}

fn kv_block(out: &mut String, title: &str, map: &Value) {
    let entries: Vec<String> = map
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(&v.to_string()))).collect())
        .unwrap_or_default();
    if entries.is_empty() {
        out.push_str(&format!("{:<16}<none>\n", format!("{title}:")));
    } else {
        for (i, e) in entries.iter().enumerate() {
            let label = if i == 0 { format!("{title}:") } else { String::new() };
            out.push_str(&format!("{label:<16}{e}\n"));
        }
    }
}

fn line(out: &mut String, label: &str, value: impl std::fmt::Display) {
    out.push_str(&format!("{:<16}{value}\n", format!("{label}:")));
}

/// `describe KIND NAME`: the object in prose, then its events.
pub async fn describe(ctx: &Ctx, info: &'static ResourceInfo, name: &str) -> Result<()> {
    let obj = ctx.api(info, None).get(name).await.map_err(server_err)?;
    let meta = &obj["metadata"];
    let mut out = String::new();
    line(&mut out, "Name", meta["name"].as_str().unwrap_or_default());
    if info.namespaced {
        line(&mut out, "Namespace", meta["namespace"].as_str().unwrap_or_default());
    }
    line(&mut out, "CreationTimestamp", meta["creationTimestamp"].as_str().unwrap_or_default());
    kv_block(&mut out, "Labels", &meta["labels"]);
    kv_block(&mut out, "Annotations", &meta["annotations"]);
    let spec = &obj["spec"];
    let status = &obj["status"];
    match info.resource {
        "pods" => {
            line(&mut out, "Node", spec["nodeName"].as_str().unwrap_or("<none>"));
            line(&mut out, "Status", table::pod_status(&obj));
            line(&mut out, "IP", status["podIP"].as_str().unwrap_or_default());
            if let Some(owner) = meta["ownerReferences"].as_array().and_then(|o| o.first()) {
                line(
                    &mut out,
                    "Controlled By",
                    format!("{}/{}", owner["kind"].as_str().unwrap_or_default(), owner["name"].as_str().unwrap_or_default()),
                );
            }
            out.push_str("Containers:\n");
            let statuses = status["containerStatuses"].as_array().cloned().unwrap_or_default();
            for c in spec["containers"].as_array().into_iter().flatten() {
                let cname = c["name"].as_str().unwrap_or_default();
                let st = statuses.iter().find(|s| s["name"] == cname).cloned().unwrap_or_default();
                out.push_str(&format!("  {cname}:\n"));
                out.push_str(&format!("    Image:          {}\n", c["image"].as_str().unwrap_or_default()));
                let cmd: Vec<String> = c["command"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(c["args"].as_array().into_iter().flatten())
                    .map(|v| v.as_str().unwrap_or_default().to_string())
                    .collect();
                if !cmd.is_empty() {
                    out.push_str(&format!("    Command:        {}\n", cmd.join(" ")));
                }
                let state = &st["state"];
                let state_text = if !state["running"].is_null() {
                    format!("Running\n      Started:      {}", state["running"]["startedAt"].as_str().unwrap_or_default())
                } else if !state["waiting"].is_null() {
                    format!("Waiting\n      Reason:       {}", state["waiting"]["reason"].as_str().unwrap_or_default())
                } else if !state["terminated"].is_null() {
                    format!(
                        "Terminated\n      Reason:       {}\n      Exit Code:    {}",
                        state["terminated"]["reason"].as_str().unwrap_or_default(),
                        state["terminated"]["exitCode"]
                    )
                } else {
                    "Waiting".into()
                };
                out.push_str(&format!("    State:          {state_text}\n"));
                out.push_str(&format!("    Ready:          {}\n", st["ready"].as_bool().unwrap_or(false)));
                out.push_str(&format!("    Restart Count:  {}\n", st["restartCount"].as_i64().unwrap_or(0)));
                for e in c["env"].as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "    Environment:    {}={}\n",
                        e["name"].as_str().unwrap_or_default(),
                        e["value"].as_str().unwrap_or_default()
                    ));
                }
            }
            out.push_str("Conditions:\n  Type              Status\n");
            for c in status["conditions"].as_array().into_iter().flatten() {
                out.push_str(&format!("  {:<18}{}\n", c["type"].as_str().unwrap_or_default(), c["status"].as_str().unwrap_or_default()));
            }
        }
        "deployments" | "replicasets" => {
            line(&mut out, "Selector", table::selector_string(&spec["selector"]));
            let n = |v: &Value| v.as_i64().unwrap_or(0);
            if info.resource == "deployments" {
                line(
                    &mut out,
                    "Replicas",
                    format!(
                        "{} desired | {} updated | {} total | {} available | {} unavailable",
                        n(&spec["replicas"]),
                        n(&status["updatedReplicas"]),
                        n(&status["replicas"]),
                        n(&status["availableReplicas"]),
                        n(&status["unavailableReplicas"])
                    ),
                );
                line(&mut out, "StrategyType", spec["strategy"]["type"].as_str().unwrap_or_default());
                if let Some(ru) = spec["strategy"]["rollingUpdate"].as_object() {
                    line(
                        &mut out,
                        "RollingUpdateStrategy",
                        format!(
                            "{} max unavailable, {} max surge",
                            ru.get("maxUnavailable").map(|v| v.as_str().map(str::to_string).unwrap_or(v.to_string())).unwrap_or_default(),
                            ru.get("maxSurge").map(|v| v.as_str().map(str::to_string).unwrap_or(v.to_string())).unwrap_or_default()
                        ),
                    );
                }
                out.push_str("Conditions:\n  Type           Status  Reason\n");
                for c in status["conditions"].as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "  {:<15}{:<8}{}\n",
                        c["type"].as_str().unwrap_or_default(),
                        c["status"].as_str().unwrap_or_default(),
                        c["reason"].as_str().unwrap_or_default()
                    ));
                }
            } else {
                line(&mut out, "Replicas", format!("{} current / {} desired", n(&status["replicas"]), n(&spec["replicas"])));
                line(&mut out, "Pods Status", format!("{} Running / {} Ready", n(&status["replicas"]), n(&status["readyReplicas"])));
            }
            let containers = spec["template"]["spec"]["containers"].as_array().cloned().unwrap_or_default();
            out.push_str("Pod Template:\n");
            for c in containers {
                out.push_str(&format!(
                    "  {}:\n    Image:  {}\n",
                    c["name"].as_str().unwrap_or_default(),
                    c["image"].as_str().unwrap_or_default()
                ));
            }
        }
        "nodes" => {
            out.push_str("Conditions:\n  Type             Status  Reason\n");
            for c in status["conditions"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "  {:<17}{:<8}{}\n",
                    c["type"].as_str().unwrap_or_default(),
                    c["status"].as_str().unwrap_or_default(),
                    c["reason"].as_str().unwrap_or_default()
                ));
            }
            for (title, key) in [("Capacity", "capacity"), ("Allocatable", "allocatable")] {
                out.push_str(&format!("{title}:\n"));
                for (k, v) in status[key].as_object().into_iter().flatten() {
                    out.push_str(&format!("  {k}: {}\n", v.as_str().unwrap_or_default()));
                }
            }
        }
        _ => {
            if !spec.is_null() {
                out.push_str(&format!("Spec:\n{}", indent(&serde_yaml::to_string(spec)?)));
            }
            if !status.is_null() {
                out.push_str(&format!("Status:\n{}", indent(&serde_yaml::to_string(status)?)));
            }
        }
    }
    out.push_str(&events_section(ctx, info, &obj).await);
    print!("{out}");
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

async fn events_section(ctx: &Ctx, info: &ResourceInfo, obj: &Value) -> String {
    let events_info = api::resources::by_resource("", "events").expect("events are in the table");
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or("default");
    let selector =
        format!("involvedObject.name={},involvedObject.kind={}", obj["metadata"]["name"].as_str().unwrap_or_default(), info.kind);
    let list = match ctx.api(events_info, Some(ns)).list(&ListParams::fields(selector)).await {
        Ok(l) => l,
        Err(_) => return "Events:          <unknown>\n".into(),
    };
    let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
    let mut events: Vec<Value> = list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["involvedObject"]["uid"].as_str().is_none_or(|u| u == uid))
        .collect();
    if events.is_empty() {
        return "Events:          <none>\n".into();
    }
    events.sort_by(|a, b| a["lastTimestamp"].as_str().cmp(&b["lastTimestamp"].as_str()));
    let mut rows = vec![
        ["Type", "Reason", "Age", "From", "Message"].map(String::from).to_vec(),
        ["----", "------", "----", "----", "-------"].map(String::from).to_vec(),
    ];
    for e in &events {
        rows.push(vec![
            e["type"].as_str().unwrap_or_default().into(),
            e["reason"].as_str().unwrap_or_default().into(),
            table::age(&e["lastTimestamp"]),
            e["source"]["component"].as_str().unwrap_or_default().into(),
            e["message"].as_str().unwrap_or_default().into(),
        ]);
    }
    let widths: Vec<usize> = (0..5).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::from("Events:\n");
    for r in rows {
        out.push_str("  ");
        for (c, cell) in r.iter().enumerate() {
            out.push_str(cell);
            if c < 4 {
                out.push_str(&" ".repeat(widths[c] - cell.chars().count() + 2));
            }
        }
        out.push('\n');
    }
    out
}
