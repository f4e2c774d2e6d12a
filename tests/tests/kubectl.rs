//! The real `kubectl` 1.32 against tinykube, unmodified: no
//! `--validate=false`, no flags that change its behaviour, only a
//! kubeconfig and a fresh discovery cache. Each test starts its own server
//! and drives one part of a user's day: apply a multi-document file and
//! apply it again after an edit, read it back every way `get` can, scale,
//! roll out and roll back, follow a watch and a log, exec into a pod, and
//! read server errors printed exactly as kubectl prints a real cluster's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use tinykube_tests::{is_running_and_ready, pids_with, require_tool, token, Cluster, Kubectl};

/// Starts a cluster and a kubectl for it, or `None` when kubectl is missing
/// and the test may be skipped.
fn setup() -> Result<Option<(Cluster, Kubectl)>> {
    if !require_tool("kubectl", Kubectl::available(), "install kubectl 1.32 and put it on the PATH") {
        return Ok(None);
    }
    let c = Cluster::start()?;
    let k = Kubectl::new(&c)?;
    Ok(Some((c, k)))
}

/// What differs between the versions of the application a test applies.
struct App<'a> {
    marker: &'a str,
    greeting: &'a str,
    version: u32,
    port: u16,
    replicas: i32,
}

impl Default for App<'_> {
    fn default() -> Self {
        App { marker: "", greeting: "hello", version: 1, port: 8080, replicas: 2 }
    }
}

/// One multi-document file, as users keep an application: a Namespace, a
/// ConfigMap and a Secret the Deployment's container reads through
/// `envFrom`, the Deployment (with probes) and a Service in front of it.
fn app_manifest(a: &App<'_>) -> String {
    let App { marker, greeting, version, port, replicas } = a;
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  namespace: shop
data:
  GREETING: {greeting}
  COLOR: blue
---
apiVersion: v1
kind: Secret
metadata:
  name: web-secret
  namespace: shop
type: Opaque
stringData:
  PASSWORD: s3cr3t
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels:
    app: web
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: busybox
        command: ["sh", "-c", "while true; do echo \"$GREETING $COLOR from $HOSTNAME v$VERSION\"; sleep 1; done # {marker}"]
        envFrom:
        - configMapRef:
            name: web-config
        - secretRef:
            name: web-secret
        env:
        - name: VERSION
          value: "{version}"
        ports:
        - name: http
          containerPort: {port}
        readinessProbe:
          exec:
            command: ["true"]
          periodSeconds: 5
        livenessProbe:
          exec:
            command: ["true"]
          periodSeconds: 10
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: http
"#
    )
}

/// Writes a manifest into the cluster's data directory; returns its path.
fn write(c: &Cluster, name: &str, text: &str) -> Result<PathBuf> {
    let path = c.data_dir.path().join(name);
    std::fs::write(&path, text)?;
    Ok(path)
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Every object key, at any depth, that starts with `$`: strategic-merge
/// directives such as `$setElementOrder/containers` or `$patch` must be
/// interpreted by the server, never stored.
fn dollar_keys(v: &Value, path: &str, found: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let here = format!("{path}.{k}");
                if k.starts_with('$') {
                    found.push(here.clone());
                }
                dollar_keys(child, &here, found);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                dollar_keys(child, &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

fn assert_no_dollar_keys(v: &Value) {
    let mut found = Vec::new();
    dollar_keys(v, "", &mut found);
    assert!(found.is_empty(), "patch directives stored in the object: {found:?}\n{v:#}");
}

/// Data rows of a table printed by `kubectl get` (the header dropped).
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn rollout_status(k: &Kubectl, ns: &str, deploy: &str) -> Result<()> {
    let out = k.ok(&["rollout", "status", "-n", ns, &format!("deployment/{deploy}"), "--timeout=40s"])?;
    ensure!(out.contains(&format!("deployment \"{deploy}\" successfully rolled out")), "rollout status printed: {out}");
    Ok(())
}

/// Pods of app=web in `shop` that run, are ready and are not terminating.
fn running_web_pods(k: &Kubectl) -> Result<Vec<Value>> {
    let pods = k.get_json(&["pods", "-n", "shop", "-l", "app=web"])?;
    Ok(pods["items"].as_array().cloned().unwrap_or_default().into_iter().filter(is_running_and_ready).collect())
}

#[test]
fn apply_edit_apply_read_every_way_and_delete_the_file() -> Result<()> {
    let Some((c, k)) = setup()? else { return Ok(()) };
    let marker = token("kubectlapply");
    let file = write(&c, "app.yaml", &app_manifest(&App { marker: &marker, ..App::default() }))?;

    // apply -f of one file with five kinds creates each, in order.
    let out = k.ok(&["apply", "-f", p(&file)])?;
    for line in [
        "namespace/shop created",
        "configmap/web-config created",
        "secret/web-secret created",
        "deployment.apps/web created",
        "service/web created",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    rollout_status(&k, "shop", "web")?;

    // get -o wide: kubectl's pod columns with IP and NODE filled in.
    let wide = k.ok(&["get", "pods", "-n", "shop", "-o", "wide"])?;
    let header: Vec<&str> = wide.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header[..7], ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"], "{wide}");
    let pod_rows = rows(&wide);
    assert_eq!(pod_rows.len(), 2, "{wide}");
    for r in &pod_rows {
        assert!(r[0].starts_with("web-"), "{wide}");
        assert_eq!((r[1].as_str(), r[2].as_str(), r[6].as_str()), ("1/1", "Running", c.node_name.as_str()), "{wide}");
        assert_ne!(r[5], "<none>", "pod without an IP:\n{wide}");
    }
    let wide = k.ok(&["get", "deployments", "-n", "shop", "-o", "wide"])?;
    let header: Vec<&str> = wide.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"], "{wide}");
    let r = &rows(&wide)[0];
    assert_eq!(
        (r[0].as_str(), r[1].as_str(), r[5].as_str(), r[6].as_str(), r[7].as_str()),
        ("web", "2/2", "web", "busybox", "app=web"),
        "{wide}"
    );

    // -o yaml: the object as stored, with what the manifest said.
    let yaml = k.ok(&["get", "deployment", "web", "-n", "shop", "-o", "yaml"])?;
    for want in [
        "apiVersion: apps/v1",
        "kind: Deployment",
        "configMapRef:",
        "secretRef:",
        "readinessProbe:",
        "livenessProbe:",
        "resourceVersion:",
        "uid:",
    ] {
        assert!(yaml.contains(want), "missing {want:?} in:\n{yaml}");
    }

    // -A: a NAMESPACE column and objects from every namespace.
    let all = k.ok(&["get", "configmaps", "-A"])?;
    assert!(all.starts_with("NAMESPACE"), "{all}");
    assert!(rows(&all).iter().any(|r| r[0] == "shop" && r[1] == "web-config"), "{all}");

    // -l: label selectors, matching and not.
    let labelled = k.ok(&["get", "pods", "-A", "-l", "app=web"])?;
    assert_eq!(rows(&labelled).len(), 2, "{labelled}");
    assert!(rows(&labelled).iter().all(|r| r[0] == "shop" && r[1].starts_with("web-")), "{labelled}");
    let none = k.run(&["get", "pods", "-A", "-l", "app=nothing"])?;
    assert!(none.status.success() && none.stdout.is_empty(), "{none:?}");
    assert!(String::from_utf8_lossy(&none.stderr).contains("No resources found"), "{none:?}");

    // describe: the envFrom sources and the controller's events.
    let described = k.ok(&["describe", "deployment", "web", "-n", "shop"])?;
    for want in [
        "Namespace:",
        "shop",
        "Replicas:",
        "2 desired | 2 updated | 2 total | 2 available",
        "Environment Variables from:",
        "web-config  ConfigMap  Optional: false",
        "web-secret  Secret     Optional: false",
        "NewReplicaSet:",
        "ScalingReplicaSet",
    ] {
        assert!(described.contains(want), "missing {want:?} in:\n{described}");
    }

    // Edit and apply again: kubectl now sends strategic-merge patches with
    // directives ($setElementOrder, $patch: delete for the old port).
    let edited = App { marker: &marker, greeting: "bonjour", version: 2, port: 9090, ..App::default() };
    std::fs::write(&file, app_manifest(&edited))?;
    let out = k.ok(&["apply", "-f", p(&file)])?;
    for line in [
        "namespace/shop unchanged",
        "configmap/web-config configured",
        "secret/web-secret unchanged",
        "deployment.apps/web configured",
        "service/web unchanged",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    let d = k.get_json(&["deployment", "web", "-n", "shop"])?;
    assert_no_dollar_keys(&d);
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["env"], serde_json::json!([{"name": "VERSION", "value": "2"}]), "{d:#}");
    let ports = container["ports"].as_array().context("ports")?;
    assert_eq!(ports.len(), 1, "the old port must be deleted, not kept: {ports:?}");
    assert_eq!(ports[0]["containerPort"], 9090);
    assert_eq!(container["envFrom"].as_array().map(Vec::len), Some(2), "{d:#}");
    assert_eq!(d["metadata"]["generation"], 2, "a template change bumps generation");
    let cm = k.get_json(&["configmap", "web-config", "-n", "shop"])?;
    assert_no_dollar_keys(&cm);
    assert_eq!(cm["data"], serde_json::json!({"GREETING": "bonjour", "COLOR": "blue"}));
    rollout_status(&k, "shop", "web")?;
    let pods = running_web_pods(&k)?;
    assert_eq!(pods.len(), 2);
    assert!(pods.iter().all(|p| p["spec"]["containers"][0]["env"][0]["value"] == "2"), "{pods:#?}");

    // delete -f returns once the objects in the file are gone.
    let out = k.ok(&["delete", "-f", p(&file)])?;
    for line in [
        "namespace \"shop\" deleted",
        "configmap \"web-config\" deleted",
        "secret \"web-secret\" deleted",
        "deployment.apps \"web\" deleted",
        "service \"web\" deleted",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    let (_, stdout, stderr) = k.fails(&["get", "-f", p(&file)])?;
    assert!(stdout.trim().is_empty(), "objects still there after delete -f returned:\n{stdout}");
    assert_eq!(stderr.matches("(NotFound)").count(), 5, "{stderr}");
    c.wait_for("the pods' processes to stop", Duration::from_secs(30), || pids_with(&marker).is_empty().then_some(()))?;
    Ok(())
}

#[test]
fn scale_watch_rollout_status_and_undo() -> Result<()> {
    let Some((c, k)) = setup()? else { return Ok(()) };
    let marker = token("kubectlrollout");
    let file = write(&c, "app.yaml", &app_manifest(&App { marker: &marker, ..App::default() }))?;
    k.ok(&["apply", "-f", p(&file)])?;
    rollout_status(&k, "shop", "web")?;

    // get -w prints the table, then one line per change as it happens.
    let mut watch = k.spawn(&["get", "deployment", "web", "-n", "shop", "-w"])?;
    watch.wait_line("the header", Duration::from_secs(15), |l| l.starts_with("NAME"))?;
    watch.wait_line("the current row", Duration::from_secs(15), |l| l.starts_with("web ") && l.contains("2/2"))?;
    let out = k.ok(&["scale", "deployment/web", "-n", "shop", "--replicas=3"])?;
    assert_eq!(out.trim(), "deployment.apps/web scaled");
    // NAME READY UP-TO-DATE AVAILABLE AGE: "web 3/3 3 3 ..." once scaled.
    watch.wait_line("a row with 3/3 ready", Duration::from_secs(30), |l| l.split_whitespace().take(4).eq(["web", "3/3", "3", "3"]))?;
    assert!(watch.running(), "get -w must keep watching");
    drop(watch);
    rollout_status(&k, "shop", "web")?;
    assert_eq!(running_web_pods(&k)?.len(), 3);

    // A template change is revision 2, with a second ReplicaSet.
    std::fs::write(&file, app_manifest(&App { marker: &marker, version: 2, replicas: 3, ..App::default() }))?;
    k.ok(&["apply", "-f", p(&file)])?;
    rollout_status(&k, "shop", "web")?;
    let d = k.get_json(&["deployment", "web", "-n", "shop"])?;
    assert_eq!(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "2", "{d:#}");
    let history = k.ok(&["rollout", "history", "deployment/web", "-n", "shop"])?;
    assert_eq!(rows(&history).iter().skip(1).map(|r| r[0].clone()).collect::<Vec<_>>(), ["1", "2"], "{history}");

    // rollout undo brings back revision 1's template, and the pods run it.
    let out = k.ok(&["rollout", "undo", "deployment/web", "-n", "shop"])?;
    assert_eq!(out.trim(), "deployment.apps/web rolled back");
    rollout_status(&k, "shop", "web")?;
    let d = k.get_json(&["deployment", "web", "-n", "shop"])?;
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["env"], serde_json::json!([{"name": "VERSION", "value": "1"}]), "{d:#}");
    c.wait_for("3 running pods of revision 1", Duration::from_secs(30), || {
        let pods = running_web_pods(&k).ok()?;
        (pods.len() == 3 && pods.iter().all(|p| p["spec"]["containers"][0]["env"][0]["value"] == "1")).then_some(())
    })?;

    // As upstream: undo reuses revision 1's ReplicaSet (its template equals
    // the Deployment's again) and renumbers it 3, so no third ReplicaSet
    // appears and history lists revisions 2 and 3.
    let rs = k.get_json(&["replicasets", "-n", "shop", "-l", "app=web"])?;
    let revisions: Vec<String> = rs["items"]
        .as_array()
        .context("items")?
        .iter()
        .map(|r| {
            format!(
                "{}={}",
                r["metadata"]["name"].as_str().unwrap_or(""),
                r["metadata"]["annotations"]["deployment.kubernetes.io/revision"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(revisions.len(), 2, "rollout undo created a new ReplicaSet instead of reusing revision 1's: {revisions:?}");
    let history = k.ok(&["rollout", "history", "deployment/web", "-n", "shop"])?;
    assert_eq!(rows(&history).iter().skip(1).map(|r| r[0].clone()).collect::<Vec<_>>(), ["2", "3"], "{history}");
    Ok(())
}

#[test]
fn logs_follow_exec_exit_code_and_env_from() -> Result<()> {
    let Some((c, k)) = setup()? else { return Ok(()) };
    let marker = token("kubectlexec");
    let file = write(&c, "app.yaml", &app_manifest(&App { marker: &marker, ..App::default() }))?;
    k.ok(&["apply", "-f", p(&file)])?;
    rollout_status(&k, "shop", "web")?;
    let pod = c.wait_for("a running pod", Duration::from_secs(20), || {
        running_web_pods(&k).ok()?.first().and_then(|p| p["metadata"]["name"].as_str().map(str::to_string))
    })?;

    // logs -f: lines keep arriving while kubectl follows. The container
    // prints its envFrom values, so they are visible here too. With
    // --timestamps each line starts with the time the node read it (RFC
    // 3339, nine fractional digits, so the strings sort by time): a line
    // stamped after kubectl started can only have come by following.
    let want = format!("hello blue from {pod} v1");
    let followed_since = jiff::Timestamp::now();
    let mut follow = k.spawn(&["logs", "-f", "--timestamps", "-n", "shop", &pod])?;
    let stamp = |line: &str| {
        let (at, text) = line.split_once(' ')?;
        (text == want).then(|| at.parse::<jiff::Timestamp>().ok()).flatten()
    };
    let first = follow.wait_line("a log line", Duration::from_secs(15), |l| stamp(l).is_some())?;
    let later = follow
        .wait_line("a line logged after kubectl started", Duration::from_secs(15), |l| stamp(l).is_some_and(|at| at > followed_since))?;
    assert_eq!(later.split_once(' ').map(|(_, text)| text), Some(want.as_str()), "{later}");
    assert!(stamp(&later) > stamp(&first), "lines arrive in order: {first} then {later}");
    assert!(follow.running(), "logs -f must keep following");
    drop(follow);
    let tail = k.ok(&["logs", "deployment/web", "-n", "shop", "--tail=1"])?;
    assert!(tail.lines().count() == 1 && tail.contains("hello blue from web-"), "{tail}");

    // exec: stdout and stderr apart, and the command's exit code as
    // kubectl's own.
    let (code, stdout, stderr) = k.fails(&["exec", "-n", "shop", &pod, "--", "sh", "-c", "echo hi; echo oops >&2; exit 3"])?;
    assert_eq!(code, 3, "stdout {stdout:?} stderr {stderr:?}");
    assert_eq!(stdout, "hi\n");
    assert!(stderr.contains("oops"), "{stderr}");
    assert!(stderr.contains("command terminated with exit code 3"), "{stderr}");
    let out = k.ok(&["exec", "-n", "shop", &pod, "--", "sh", "-c", "echo ok"])?;
    assert_eq!(out, "ok\n");

    // The ConfigMap's and the Secret's keys are in the container's
    // environment, next to the container's own env.
    let env = k.ok(&["exec", "-n", "shop", &pod, "--", "env"])?;
    for want in ["GREETING=hello", "COLOR=blue", "PASSWORD=s3cr3t", "VERSION=1"] {
        assert!(env.lines().any(|l| l == want), "missing {want} in the container's env:\n{env}");
    }
    Ok(())
}

#[test]
fn server_errors_print_as_kubectl_prints_a_real_clusters() -> Result<()> {
    let Some((c, k)) = setup()? else { return Ok(()) };
    let marker = token("kubectlerrors");
    let file = write(&c, "app.yaml", &app_manifest(&App { marker: &marker, ..App::default() }))?;
    k.ok(&["apply", "-f", p(&file)])?;

    // 404.
    let (code, _, stderr) = k.fails(&["get", "deployment", "nope", "-n", "shop"])?;
    assert_eq!(code, 1);
    assert_eq!(stderr.trim(), "Error from server (NotFound): deployments.apps \"nope\" not found");

    // 409: replace with a resourceVersion that a scale has made stale.
    let stale = write(&c, "stale.yaml", &k.ok(&["get", "deployment", "web", "-n", "shop", "-o", "yaml"])?)?;
    k.ok(&["scale", "deployment/web", "-n", "shop", "--replicas=3"])?;
    let (code, _, stderr) = k.fails(&["replace", "-f", p(&stale)])?;
    assert_eq!(code, 1);
    let want = format!(
        "Error from server (Conflict): error when replacing \"{}\": Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again",
        p(&stale)
    );
    assert_eq!(stderr.trim(), want);

    // 422: an invalid value, with the field path and upstream's message;
    // the stored object is unchanged.
    let invalid = write(&c, "invalid.yaml", &app_manifest(&App { marker: &marker, replicas: -1, ..App::default() }))?;
    let (code, _, stderr) = k.fails(&["apply", "-f", p(&invalid)])?;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("The Deployment \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
        "{stderr}"
    );
    assert_eq!(k.get_json(&["deployment", "web", "-n", "shop"])?["spec"]["replicas"], 3);

    // A misspelt field, under kubectl's default --validate=strict: on
    // create and on the strategic-merge path of apply, the error names
    // the field and nothing is stored.
    let typo = |name: &str| {
        app_manifest(&App { marker: &marker, ..App::default() })
            .replace("name: web\n  namespace: shop\n  labels", &format!("name: {name}\n  namespace: shop\n  labels"))
            .replace("terminationGracePeriodSeconds", "terminationGracePeriodSecond")
    };
    let field = "unknown field \"spec.template.spec.terminationGracePeriodSecond\"";
    let created = write(&c, "typo-create.yaml", &typo("other"))?;
    let (code, _, stderr) = k.fails(&["apply", "-f", p(&created)])?;
    assert_eq!(code, 1);
    assert!(stderr.contains("Error from server (BadRequest): error when creating") && stderr.contains(field), "{stderr}");
    let (_, _, stderr) = k.fails(&["get", "deployment", "other", "-n", "shop"])?;
    assert!(stderr.contains("(NotFound)"), "{stderr}");
    let patched = write(&c, "typo-patch.yaml", &typo("web"))?;
    let (code, _, stderr) = k.fails(&["apply", "-f", p(&patched)])?;
    assert_eq!(code, 1);
    assert!(stderr.contains("Error from server (BadRequest)") && stderr.contains(field), "{stderr}");
    let d = k.get_json(&["deployment", "web", "-n", "shop"])?;
    assert_eq!(d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], 2, "{d:#}");
    assert_no_dollar_keys(&d);
    Ok(())
}
