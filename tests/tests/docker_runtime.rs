//! The docker runtime end to end, on the [`DockerCluster`] harness: pods
//! as real Docker containers, driven by the real kubectl through the real
//! binary, checked both through the API and in `docker ps`.
//!
//! Each test starts its own cluster (its own node name, pod range and
//! bridge network), so the tests share nothing but the engine and run in
//! any order, side by side. Every wait is bounded; on a failure the
//! server's log tail is printed.
//!
//! The busybox containers use `sh` as their first process. A process that
//! is PID 1 of its container gets no default signal handling, so a
//! container that should stop at once on SIGTERM traps it (`trap 'exit 0'
//! TERM`); one that ignores it is killed when its grace period ends.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use tinykube_tests::docker::{curl, engine_version, require_image, DockerCluster, Kind, BUSYBOX, MISSING_IMAGE, PYTHON};
use tinykube_tests::{is_running_and_ready, require_tool, Kubectl};

/// A docker cluster and kubectl for it, or `None` when this machine cannot
/// run the test (the reason is printed; under `TINYKUBE_E2E_REQUIRE=1` it
/// is a failure instead).
fn setup(extra_args: &[&str]) -> Result<Option<(DockerCluster, Kubectl)>> {
    if !require_tool("kubectl", Kubectl::available(), "install kubectl 1.32") {
        return Ok(None);
    }
    let Some(dc) = DockerCluster::start_with(extra_args)? else { return Ok(None) };
    let k = dc.kubectl()?;
    Ok(Some((dc, k)))
}

/// The live (not terminating) pods that `selector` matches.
fn pods(k: &Kubectl, selector: &str) -> Vec<Value> {
    let list = k.get_json(&["pods", "-l", selector]).unwrap_or_default();
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .cloned()
        .collect()
}

fn pod(k: &Kubectl, name: &str) -> Option<Value> {
    k.get_json(&["pod", name]).ok()
}

fn name_of(obj: &Value) -> String {
    obj["metadata"]["name"].as_str().unwrap_or_default().to_string()
}

/// The status of the container `container` of a pod (as JSON).
fn container_status(pod: &Value, container: &str) -> Value {
    let all = pod["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
    all.into_iter().find(|c| c["name"] == container).unwrap_or(Value::Null)
}

fn condition(pod: &Value, type_: &str) -> Value {
    let all = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
    all.into_iter().find(|c| c["type"] == type_).unwrap_or(Value::Null)
}

/// The events about the object called `name`.
fn events_about(k: &Kubectl, name: &str) -> Vec<Value> {
    let list = k.get_json(&["events"]).unwrap_or_default();
    list["items"].as_array().into_iter().flatten().filter(|e| e["involvedObject"]["name"] == name).cloned().collect()
}

/// How often events about `name` with this reason and message prefix
/// happened: the sum of their counts (repeats are folded into one event).
fn event_count(k: &Kubectl, name: &str, reason: &str, prefix: &str) -> i64 {
    events_about(k, name)
        .iter()
        .filter(|e| e["reason"] == reason && e["message"].as_str().is_some_and(|m| m.starts_with(prefix)))
        .map(|e| e["count"].as_i64().unwrap_or(1))
        .sum()
}

/// kubectl's stdout whether it succeeded or not (`logs` of a container
/// that has not started yet fails, and the waits just try again).
fn stdout_of(k: &Kubectl, args: &[&str]) -> String {
    k.run(args).map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
}

/// A Deployment of busybox `httpd` on port 8080 serving `/i`, a file that
/// says `hello <pod name>`; Ready once `/i` answers.
fn httpd_deployment(name: &str, replicas: u32, grace_seconds: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: {grace_seconds}
      containers:
      - name: httpd
        image: {BUSYBOX}
        imagePullPolicy: Never
        command: [sh, -c, "echo hello $HOSTNAME > /tmp/i; exec httpd -f -p 8080 -h /tmp"]
        ports: [{{containerPort: 8080}}]
        readinessProbe:
          httpGet: {{path: /i, port: 8080}}
          periodSeconds: 1
"#
    )
}

/// Waits until the Deployment reports `n` available replicas.
fn wait_available(dc: &DockerCluster, k: &Kubectl, deployment: &str, n: i64, timeout: Duration) -> Result<()> {
    dc.cluster.wait_for(&format!("{n} available replicas of {deployment}"), timeout, || {
        let d = k.get_json(&["deployment", deployment]).ok()?;
        (d["status"]["availableReplicas"].as_i64() == Some(n)).then_some(())
    })
}

/// The dockershim names of a pod's sandbox and of its container `container`.
fn docker_names(pod: &Value, container: &str, attempt: i64) -> (String, String) {
    let (name, ns, uid) =
        (name_of(pod), pod["metadata"]["namespace"].as_str().unwrap_or("default"), pod["metadata"]["uid"].as_str().unwrap_or(""));
    (format!("k8s_POD_{name}_{ns}_{uid}_0"), format!("k8s_{container}_{name}_{ns}_{uid}_{attempt}"))
}

/// Runs kubectl with `input` on its stdin, bounded by the kubectl timeout.
fn run_with_stdin(k: &Kubectl, args: &[&str], input: &[u8]) -> Result<std::process::Output> {
    let mut child = k.command(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let mut stdin = child.stdin.take().context("kubectl's stdin")?;
    stdin.write_all(input)?;
    drop(stdin);
    let deadline = Instant::now() + k.timeout;
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("kubectl {} did not finish within {:?}", args.join(" "), k.timeout);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child.wait_with_output()?)
}

/// Three replicas of busybox httpd: three sandboxes and three containers
/// in `docker ps` under dockershim's names, each pod answering HTTP from
/// the host on its own IP of the node's range, with its own name.
#[test]
fn a_deployment_runs_as_sandboxes_and_containers_that_answer_on_their_pod_ips() -> Result<()> {
    let Some((dc, k)) = setup(&[])? else { return Ok(()) };
    let node = k.get_json(&["node", &dc.node])?;
    assert_eq!(node["status"]["nodeInfo"]["containerRuntimeVersion"], format!("docker://{}", engine_version()?), "{}", node["status"]);
    let table = k.ok(&["get", "node", &dc.node, "-o", "wide"])?;
    assert!(table.contains("docker://"), "{table}");

    dc.cluster.apply(&httpd_deployment("web", 3, 2))?;
    wait_available(&dc, &k, "web", 3, Duration::from_secs(90))?;
    let web = pods(&k, "app=web");
    assert_eq!(web.len(), 3, "{web:?}");
    assert!(web.iter().all(is_running_and_ready), "{web:?}");

    let sandboxes = dc.containers(Kind::Sandbox);
    let containers = dc.containers(Kind::Container);
    let names = |list: &[tinykube_tests::docker::DockerContainer]| list.iter().map(|c| c.name.clone()).collect::<BTreeSet<_>>();
    let want_sandboxes: BTreeSet<String> = web.iter().map(|p| docker_names(p, "httpd", 0).0).collect();
    let want_containers: BTreeSet<String> = web.iter().map(|p| docker_names(p, "httpd", 0).1).collect();
    assert_eq!(names(&sandboxes), want_sandboxes, "one sandbox per pod: {sandboxes:?}");
    assert_eq!(names(&containers), want_containers, "one container per pod: {containers:?}");
    assert!(sandboxes.iter().chain(&containers).all(|c| c.running()), "{sandboxes:?} {containers:?}");

    let mut ips = BTreeSet::new();
    for p in &web {
        let name = name_of(p);
        let ip = p["status"]["podIP"].as_str().unwrap_or_default();
        assert!(dc.in_pod_range(ip), "{name}'s IP {ip:?} is outside {}", dc.cidr);
        assert!(ips.insert(ip.to_string()), "{ip} given twice");
        let reply = curl(ip, 8080, "/i").with_context(|| format!("{name} on {ip}"))?;
        assert_eq!((reply.status, reply.body.as_str()), (200, format!("hello {name}\n").as_str()), "{name} on {ip}");

        // The pod's containerID is the container in docker ps, which
        // shares the network of the pod's sandbox, whose address on the
        // node's network is the pod IP.
        let (sandbox_name, container_name) = docker_names(p, "httpd", 0);
        let sandbox = sandboxes.iter().find(|c| c.name == sandbox_name).expect("the sandbox");
        let container = containers.iter().find(|c| c.name == container_name).expect("the container");
        assert_eq!(container_status(p, "httpd")["containerID"], format!("docker://{}", container.id));
        assert_eq!(dc.inspect(&container.id, "{{.HostConfig.NetworkMode}}")?, format!("container:{}", sandbox.id));
        let on_network = dc.inspect(&sandbox.id, "{{range $net, $ep := .NetworkSettings.Networks}}{{$net}}={{$ep.IPAddress}} {{end}}")?;
        assert_eq!(on_network, format!("{}={ip}", dc.network()));
    }
    Ok(())
}

/// A liveness probe that starts failing gets the container killed and
/// started again: the restart count grows, the last state is the killed
/// run, and the new container is the next attempt in `docker ps`.
#[test]
fn a_failing_liveness_probe_restarts_the_container() -> Result<()> {
    let Some((dc, k)) = setup(&[])? else { return Ok(()) };
    dc.cluster.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: sick}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: [sh, -c, "touch /tmp/healthy; sleep 2; rm /tmp/healthy; exec sleep 3600"]
    livenessProbe:
      exec: {{command: [test, -f, /tmp/healthy]}}
      periodSeconds: 1
      failureThreshold: 1
"#
    ))?;
    let first = dc.cluster.wait_for("the first run", Duration::from_secs(60), || {
        let s = container_status(&pod(&k, "sick")?, "app");
        (s["state"]["running"].is_object() && s["restartCount"] == 0).then_some(s)
    })?;
    let restarted = dc.cluster.wait_for("two restarts", Duration::from_secs(90), || {
        let s = container_status(&pod(&k, "sick")?, "app");
        (s["restartCount"].as_i64()? >= 2 && s["state"]["running"].is_object()).then_some(s)
    })?;
    let last = &restarted["lastState"]["terminated"];
    // `sleep` as PID 1 ignores SIGTERM: the grace period ends in SIGKILL.
    assert_eq!(last["exitCode"], 137, "{restarted}");
    assert!(last["finishedAt"].is_string() && last["startedAt"].is_string(), "{restarted}");
    assert_ne!(last["containerID"], first["containerID"], "the last state is a later run than the first: {restarted}");
    assert_ne!(restarted["containerID"], last["containerID"], "{restarted}");
    assert!(event_count(&k, "sick", "Unhealthy", "Liveness probe failed") >= 2);
    assert!(event_count(&k, "sick", "Killing", "Container app failed liveness probe, will be restarted") >= 2);

    // In Docker: one container runs, the one the status names, under the
    // name of the attempt its restart count says (sampled together, as
    // the container goes on being restarted).
    dc.cluster.wait_for("the running attempt named by the restart count", Duration::from_secs(30), || {
        let p = pod(&k, "sick")?;
        let s = container_status(&p, "app");
        let running = dc.running(Kind::Container);
        let attempt = s["restartCount"].as_i64()?;
        let agree = running.len() == 1
            && s["containerID"] == format!("docker://{}", running[0].id)
            && running[0].name == docker_names(&p, "app", attempt).1;
        agree.then_some(())
    })?;
    Ok(())
}

/// A container that keeps exiting waits in `CrashLoopBackOff` between
/// runs, with upstream's message and its last exit as the last state.
#[test]
fn a_container_that_keeps_exiting_goes_to_crash_loop_back_off() -> Result<()> {
    // The harness starts every server with `--backoff-base-ms 500`, so the
    // back-off starts at half a second instead of upstream's ten.
    let Some((dc, k)) = setup(&[])? else { return Ok(()) };
    dc.cluster.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: crash}}
spec:
  containers:
  - name: app
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: [sh, -c, "echo crashing; exit 3"]
"#
    ))?;
    let crashed = dc.cluster.wait_for("CrashLoopBackOff after two restarts", Duration::from_secs(90), || {
        let p = pod(&k, "crash")?;
        let s = container_status(&p, "app");
        (s["state"]["waiting"]["reason"] == "CrashLoopBackOff" && s["restartCount"].as_i64()? >= 2).then_some(p)
    })?;
    let s = container_status(&crashed, "app");
    let uid = crashed["metadata"]["uid"].as_str().unwrap_or_default();
    let message = s["state"]["waiting"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("back-off ") && message.ends_with(&format!(" restarting failed container=app pod=crash_default({uid})")),
        "{message}"
    );
    let last = &s["lastState"]["terminated"];
    assert_eq!((last["exitCode"].as_i64(), last["reason"].as_str()), (Some(3), Some("Error")), "{s}");
    assert_eq!(s["ready"], false);
    assert_eq!(crashed["status"]["phase"], "Running", "restartPolicy Always keeps the pod Running");
    assert!(event_count(&k, "crash", "BackOff", "Back-off restarting failed container app in pod crash_default") >= 1);
    let table = k.ok(&["get", "pod", "crash"])?;
    assert!(table.contains("CrashLoopBackOff"), "{table}");
    // The last run is kept in Docker, exited with its code.
    let last_id = last["containerID"].as_str().and_then(|id| id.strip_prefix("docker://")).context("the last run's id")?;
    assert_eq!(dc.inspect(last_id, "{{.State.Status}} {{.State.ExitCode}}")?, "exited 3");
    Ok(())
}

/// A readiness probe that fails keeps a running pod not Ready and out of
/// its Deployment's available replicas, while its sibling whose probe
/// passes is counted.
#[test]
fn a_failing_readiness_probe_keeps_a_pod_out_of_the_available_replicas() -> Result<()> {
    let Some((dc, k)) = setup(&[])? else { return Ok(()) };
    dc.cluster.apply(&format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: gated}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: gated}}}}
  template:
    metadata: {{labels: {{app: gated}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: {BUSYBOX}
        imagePullPolicy: Never
        command: [sh, -c, "trap 'exit 0' TERM; while true; do sleep 1; done"]
        readinessProbe:
          exec: {{command: [test, -f, /tmp/ready]}}
          periodSeconds: 1
"#
    ))?;
    let running = dc.cluster.wait_for("two running pods", Duration::from_secs(60), || {
        let p = pods(&k, "app=gated");
        (p.len() == 2 && p.iter().all(|p| p["status"]["phase"] == "Running")).then_some(p)
    })?;
    let (opened, closed) = (name_of(&running[0]), name_of(&running[1]));
    // The probe has failed a few times: it runs, and says no.
    dc.cluster.wait_for("three readiness failures of each pod", Duration::from_secs(30), || {
        [&opened, &closed].iter().all(|n| event_count(&k, n, "Unhealthy", "Readiness probe failed") >= 3).then_some(())
    })?;
    let d = k.get_json(&["deployment", "gated"])?;
    assert_eq!(d["status"]["availableReplicas"].as_i64().unwrap_or(0), 0, "{}", d["status"]);

    k.ok(&["exec", &opened, "--", "touch", "/tmp/ready"])?;
    wait_available(&dc, &k, "gated", 1, Duration::from_secs(30))?;
    let failures_then = event_count(&k, &closed, "Unhealthy", "Readiness probe failed");
    dc.cluster.wait_for("the other pod's probe failing on", Duration::from_secs(30), || {
        (event_count(&k, &closed, "Unhealthy", "Readiness probe failed") >= failures_then + 2).then_some(())
    })?;
    let d = k.get_json(&["deployment", "gated"])?;
    assert_eq!((d["status"]["availableReplicas"].as_i64(), d["status"]["readyReplicas"].as_i64()), (Some(1), Some(1)), "{}", d["status"]);
    assert_eq!(d["status"]["unavailableReplicas"].as_i64(), Some(1), "{}", d["status"]);
    let shut = pod(&k, &closed).context("the unready pod")?;
    assert_eq!(shut["status"]["phase"], "Running");
    assert_eq!(container_status(&shut, "app")["ready"], false);
    assert_eq!(condition(&shut, "Ready")["status"], "False", "{}", shut["status"]);
    let open = pod(&k, &opened).context("the ready pod")?;
    assert!(is_running_and_ready(&open), "{}", open["status"]);
    Ok(())
}

/// Two containers of one pod share `localhost`; `kubectl exec` runs in a
/// container with its exit code and stdin; `kubectl logs` reads what
/// Docker captured, with timestamps, and the previous run's after a
/// restart.
#[test]
fn containers_of_a_pod_share_localhost_and_exec_and_logs_reach_them() -> Result<()> {
    let Some((dc, k)) = setup(&[])? else { return Ok(()) };
    let began = jiff::Timestamp::now();
    dc.cluster.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: duo}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: server
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: [sh, -c, "echo from-server > /tmp/i; exec httpd -f -p 8080 -h /tmp"]
  - name: client
    image: {BUSYBOX}
    imagePullPolicy: Never
    command:
    - sh
    - -c
    - |
      trap 'exit 7' TERM
      echo run $(cat /proc/sys/kernel/random/uuid)
      until wget -qO- http://localhost:8080/i; do sleep 0.2; done
      while true; do sleep 0.2; done
"#
    ))?;
    dc.cluster.wait_for("the client reaching the server on localhost", Duration::from_secs(60), || {
        stdout_of(&k, &["logs", "duo", "-c", "client"]).contains("from-server\n").then_some(())
    })?;
    let logs = k.ok(&["logs", "duo", "-c", "client"])?;
    let lines: Vec<&str> = logs.lines().collect();
    assert!(lines.len() == 2 && lines[0].starts_with("run ") && lines[1] == "from-server", "{logs}");
    let first_run = lines[0].to_string();

    // Timestamps: one per line, RFC 3339, from this test's run.
    let stamped = k.ok(&["logs", "duo", "-c", "client", "--timestamps"])?;
    for (line, plain) in stamped.lines().zip(&lines) {
        let (time, rest) = line.split_once(' ').with_context(|| format!("no timestamp in {line:?}"))?;
        let time: jiff::Timestamp = time.parse().with_context(|| format!("timestamp of {line:?}"))?;
        assert!(time >= began && time <= jiff::Timestamp::now(), "{line}");
        assert_eq!(rest, *plain);
    }

    // exec: the exit code comes back, stdin goes in.
    let (code, out, _) = k.fails(&["exec", "duo", "-c", "client", "--", "sh", "-c", "echo in $(hostname); exit 3"])?;
    assert_eq!((code, out.as_str()), (3, "in duo\n"));
    let out = run_with_stdin(&k, &["exec", "-i", "duo", "-c", "client", "--", "tr", "a-z", "A-Z"], b"abc\n")?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ABC\n");
    let (code, _, _) = k.fails(&["exec", "duo", "-c", "server", "--", "wget", "-qO-", "http://localhost:8080/absent"])?;
    assert_eq!(code, 1, "wget's exit code for a 404");

    // The client's first process stops (its trap exits 7): the container
    // restarts once, and --previous shows the first run's output.
    k.ok(&["exec", "duo", "-c", "client", "--", "kill", "1"])?;
    let client = dc.cluster.wait_for("the client restarted and reaching the server", Duration::from_secs(60), || {
        let s = container_status(&pod(&k, "duo")?, "client");
        let running = s["restartCount"] == 1 && s["state"]["running"].is_object();
        (running && stdout_of(&k, &["logs", "duo", "-c", "client"]).contains("from-server\n")).then_some(s)
    })?;
    assert_eq!(client["lastState"]["terminated"]["exitCode"], 7, "{client}");
    let previous = k.ok(&["logs", "duo", "-c", "client", "--previous"])?;
    assert_eq!(previous, format!("{first_run}\nfrom-server\n"));
    let current = k.ok(&["logs", "duo", "-c", "client"])?;
    assert!(current.starts_with("run ") && !current.contains(&first_run), "the new run's own output: {current}");
    let (_, _, err) = k.fails(&["logs", "duo", "-c", "server", "--previous"])?;
    assert!(err.contains("previous terminated container \"server\" in pod \"duo\" not found"), "{err}");
    let server = container_status(&pod(&k, "duo").context("the pod")?, "server");
    assert_eq!(server["restartCount"], 0, "the server container ran on: {server}");
    Ok(())
}

/// An image that cannot be pulled leaves its container waiting with
/// upstream's reasons and the engine's words, while another pod of the
/// namespace runs; `imagePullPolicy: Never` with an image that is not
/// there never pulls at all.
#[test]
fn a_missing_image_waits_with_upstreams_reasons_while_another_pod_runs() -> Result<()> {
    let Some((dc, k)) = setup(&[])? else { return Ok(()) };
    dc.cluster.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: missing}}
spec:
  containers:
  - {{name: app, image: "{MISSING_IMAGE}", imagePullPolicy: IfNotPresent}}
---
apiVersion: v1
kind: Pod
metadata: {{name: never}}
spec:
  containers:
  - {{name: app, image: "tinykube.local/absent:1", imagePullPolicy: Never}}
---
apiVersion: v1
kind: Pod
metadata: {{name: fine}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: app, image: "{BUSYBOX}", imagePullPolicy: Never, command: [sleep, "3600"]}}
"#
    ))?;
    let waiting = |name: &str, reason: &str| -> Option<String> {
        let s = container_status(&pod(&k, name)?, "app");
        let w = &s["state"]["waiting"];
        (w["reason"] == reason).then(|| w["message"].as_str().unwrap_or_default().to_string())
    };
    // The order of the states, as `kubectl get -w` shows each status the
    // agent writes: a failed pull, then the back-off before the next.
    let mut watch = k.spawn(&[
        "get",
        "pod",
        "missing",
        "-w",
        "-o",
        "jsonpath={.status.containerStatuses[0].state.waiting.reason}|{.status.containerStatuses[0].state.waiting.message}{\"\\n\"}",
    ])?;
    let pulled = watch.wait_line("ErrImagePull", Duration::from_secs(60), |l| l.starts_with("ErrImagePull|"))?;
    assert!(pulled.contains(MISSING_IMAGE) && pulled.contains("connection refused"), "{pulled}");
    let backoff = watch.wait_line("ImagePullBackOff after it", Duration::from_secs(60), |l| l.starts_with("ImagePullBackOff|"))?;
    assert!(backoff.starts_with(&format!("ImagePullBackOff|Back-off pulling image \"{MISSING_IMAGE}\"")), "{backoff}");
    drop(watch);
    let never = dc.cluster.wait_for("ErrImageNeverPull", Duration::from_secs(60), || waiting("never", "ErrImageNeverPull"))?;
    assert_eq!(never, "Container image \"tinykube.local/absent:1\" is not present with pull policy of Never");

    let fine = dc.cluster.wait_for("the other pod Ready", Duration::from_secs(60), || pod(&k, "fine").filter(is_running_and_ready))?;
    let fine_id = container_status(&fine, "app")["containerID"].clone();
    // Meanwhile the missing image is still missing, and tried again.
    let missing = pod(&k, "missing").context("the pod")?;
    assert_eq!(missing["status"]["phase"], "Pending");
    let reason = &container_status(&missing, "app")["state"]["waiting"]["reason"];
    assert!(reason == "ErrImagePull" || reason == "ImagePullBackOff", "{}", missing["status"]);
    dc.cluster.wait_for("a second failed pull", Duration::from_secs(60), || {
        (event_count(&k, "missing", "Failed", &format!("Failed to pull image \"{MISSING_IMAGE}\"")) >= 2).then_some(())
    })?;
    assert!(event_count(&k, "missing", "BackOff", &format!("Back-off pulling image \"{MISSING_IMAGE}\"")) >= 1);
    assert!(event_count(&k, "never", "ErrImageNeverPull", "Container image \"tinykube.local/absent:1\" is not present") >= 1);
    // No container was made for either; the other pod's one ran on.
    let made: Vec<_> = dc.containers(Kind::Container);
    assert_eq!(made.iter().map(|c| c.pod.as_str()).collect::<Vec<_>>(), ["fine"], "{made:?}");
    let fine = pod(&k, "fine").context("the pod")?;
    assert!(is_running_and_ready(&fine));
    assert_eq!(container_status(&fine, "app")["containerID"], fine_id);
    assert_eq!(container_status(&fine, "app")["restartCount"], 0);

    // A user polling `kubectl get pod` sees the failed pull too: the
    // kubelet reports ErrImagePull until it next syncs the pod, and it
    // does not sync a pod again for the status it wrote itself.
    dc.cluster.wait_for("ErrImagePull seen by a poll", Duration::from_secs(30), || waiting("missing", "ErrImagePull"))?;
    Ok(())
}

/// A container that outgrows its memory limit is killed by the kernel:
/// `OOMKilled` with exit code 137 as its last state, then restarted. The
/// limit reaches the engine as the container's cgroup limit.
#[test]
fn a_container_over_its_memory_limit_is_oom_killed_and_restarted() -> Result<()> {
    let Some((dc, k)) = setup(&[])? else { return Ok(()) };
    dc.cluster.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: hungry}}
spec:
  containers:
  - name: app
    image: {BUSYBOX}
    imagePullPolicy: Never
    # A string that doubles until the kernel's OOM killer ends the shell.
    command: [sh, -c, "echo eating; x=aaaaaaaa; while true; do x=$x$x; done"]
    resources: {{limits: {{memory: 20Mi}}}}
"#
    ))?;
    // The status and the engine's record of the run it names, read
    // together (a later kill makes a later run the last one).
    let (s, engine) = dc.cluster.wait_for("an OOM kill and a restart", Duration::from_secs(90), || {
        let s = container_status(&pod(&k, "hungry")?, "app");
        let last_id = s["lastState"]["terminated"]["containerID"].as_str()?.strip_prefix("docker://")?.to_string();
        if s["restartCount"].as_i64()? < 1 {
            return None;
        }
        let engine = dc
            .inspect(&last_id, "{{.State.OOMKilled}} {{.State.ExitCode}} {{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}")
            .ok()?;
        Some((s, engine))
    })?;
    let last = &s["lastState"]["terminated"];
    assert_eq!((last["reason"].as_str(), last["exitCode"].as_i64()), (Some("OOMKilled"), Some(137)), "{s}");
    let limit = 20 * 1024 * 1024;
    assert_eq!(engine, format!("true 137 {limit} {limit}"), "the engine's OOMKilled, exit code, memory and swap limits");
    Ok(())
}

/// A SIGKILLed server, started again on its data directory, adopts the
/// containers that ran on without it: the same ids, no restarts, no
/// duplicates, and the pods Running and Ready. Deleting the Deployment
/// afterwards stops and removes all of its containers and sandboxes
/// within the grace period (they exit on SIGTERM, so none waits it out).
#[test]
fn a_restarted_server_adopts_its_containers_and_a_delete_removes_them() -> Result<()> {
    let Some((mut dc, k)) = setup(&[])? else { return Ok(()) };
    const GRACE: Duration = Duration::from_secs(30);
    dc.cluster.apply(&format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: steady}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: steady}}}}
  template:
    metadata: {{labels: {{app: steady}}}}
    spec:
      terminationGracePeriodSeconds: {grace}
      containers:
      - name: httpd
        image: {BUSYBOX}
        imagePullPolicy: Never
        command: [sh, -c, "trap 'exit 0' TERM; echo hello $HOSTNAME > /tmp/i; httpd -f -p 8080 -h /tmp & wait"]
        readinessProbe:
          httpGet: {{path: /i, port: 8080}}
          periodSeconds: 1
"#,
        grace = GRACE.as_secs()
    ))?;
    wait_available(&dc, &k, "steady", 3, Duration::from_secs(90))?;
    let before = pods(&k, "app=steady");
    assert_eq!(before.len(), 3);
    let sandboxes = dc.containers(Kind::Sandbox);
    let containers = dc.containers(Kind::Container);
    assert_eq!((sandboxes.len(), containers.len()), (3, 3), "{sandboxes:?} {containers:?}");

    dc.cluster.kill9()?;
    // Without their agent the containers run on.
    assert_eq!(dc.running(Kind::Sandbox), sandboxes);
    assert_eq!(dc.running(Kind::Container), containers);
    dc.cluster.restart()?;

    // A replica added after the restart runs: the new agent is syncing
    // pods, so it has also dealt with the three it found.
    k.ok(&["scale", "deployment/steady", "--replicas", "4"])?;
    wait_available(&dc, &k, "steady", 4, Duration::from_secs(90))?;
    let after = pods(&k, "app=steady");
    assert_eq!(after.len(), 4, "{after:?}");
    for old in &before {
        let uid = &old["metadata"]["uid"];
        let now = after.iter().find(|p| &p["metadata"]["uid"] == uid).with_context(|| format!("{} after the restart", name_of(old)))?;
        assert!(is_running_and_ready(now), "{}", now["status"]);
        let (was, is) = (container_status(old, "httpd"), container_status(now, "httpd"));
        assert_eq!(is["containerID"], was["containerID"], "{} kept its container", name_of(old));
        assert_eq!(is["restartCount"], was["restartCount"], "{}", name_of(old));
        assert_eq!(is["state"]["running"]["startedAt"], was["state"]["running"]["startedAt"], "{}", name_of(old));
        assert_eq!(now["status"]["podIP"], old["status"]["podIP"]);
        let ip = now["status"]["podIP"].as_str().unwrap_or_default();
        assert_eq!(curl(ip, 8080, "/i")?.body, format!("hello {}\n", name_of(old)));
    }
    // Docker holds the same three and one more of each, nothing twice.
    let (sandboxes_now, containers_now) = (dc.containers(Kind::Sandbox), dc.containers(Kind::Container));
    for (then, now) in [(&sandboxes, &sandboxes_now), (&containers, &containers_now)] {
        assert_eq!(now.len(), 4, "{now:?}");
        assert!(now.iter().all(|c| c.running()), "{now:?}");
        assert!(then.iter().all(|c| now.contains(c)), "kept: {then:?} in {now:?}");
        let pods_with_one: BTreeSet<&str> = now.iter().map(|c| c.pod_uid.as_str()).collect();
        assert_eq!(pods_with_one.len(), 4, "one per pod: {now:?}");
    }

    let deleted = Instant::now();
    k.ok(&["delete", "deployment", "steady", "--wait=false"])?;
    dc.cluster.wait_for("every container and sandbox removed", GRACE, || {
        (dc.containers(Kind::Container).is_empty() && dc.containers(Kind::Sandbox).is_empty()).then_some(())
    })?;
    eprintln!("the Deployment's containers were gone {:?} after its delete", deleted.elapsed());
    dc.cluster.wait_for("the pods gone from the API", Duration::from_secs(30), || {
        let all = k.get_json(&["pods", "-l", "app=steady"]).ok()?;
        all["items"].as_array()?.is_empty().then_some(())
    })?;
    Ok(())
}

/// The README's walk-through with the Python app: built offline with
/// `docker build`, applied as it is, three pods answering on their IPs,
/// scaled to five, a new version rolled out with `kubectl set env`, and
/// deleted.
#[test]
fn the_python_app_walk_through() -> Result<()> {
    let Some((dc, k)) = setup(&[])? else { return Ok(()) };
    if !require_image(PYTHON) {
        return Ok(());
    }
    let app_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/python-app");
    let manifest = format!("{app_dir}/k8s.yaml");
    let built = Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "--build-arg", &format!("BASE={PYTHON}"), "-t", "tinykube-python-app:1", app_dir])
        .output()?;
    ensure!(built.status.success(), "docker build: {}", String::from_utf8_lossy(&built.stderr));

    k.ok(&["apply", "-f", &manifest])?;
    let service = k.get_json(&["service", "python-app"])?;
    assert_eq!(service["spec"]["ports"][0]["port"], 80, "the Service is stored: {service}");

    // `n` Ready pods, each answering with `version` and its own name, and
    // no other container left running.
    let answering = |n: usize, version: &str| -> Option<Vec<String>> {
        let live = pods(&k, "app=python-app");
        if live.len() != n || !live.iter().all(is_running_and_ready) || dc.running(Kind::Container).len() != n {
            return None;
        }
        live.iter()
            .map(|p| {
                let (name, ip) = (name_of(p), p["status"]["podIP"].as_str()?.to_string());
                let reply = curl(&ip, 8080, "/").ok()?;
                (reply.status == 200 && reply.body == format!("python-app version {version} on pod {name}\n")).then_some(name)
            })
            .collect()
    };
    let three = dc.cluster.wait_for("3 pods answering version 1", Duration::from_secs(90), || answering(3, "1"))?;
    k.ok(&["scale", "deployment/python-app", "--replicas", "5"])?;
    let five = dc.cluster.wait_for("5 pods answering version 1", Duration::from_secs(90), || answering(5, "1"))?;
    assert!(three.iter().all(|n| five.contains(n)), "scaling up kept the first three: {three:?} {five:?}");

    k.ok(&["set", "env", "deployment/python-app", "VERSION=2"])?;
    let rolled = dc.cluster.wait_for("5 pods answering version 2", Duration::from_secs(150), || answering(5, "2"))?;
    assert!(rolled.iter().all(|n| !five.contains(n)), "every pod replaced: {five:?} {rolled:?}");
    k.ok(&["rollout", "status", "deployment/python-app", "--timeout=30s"])?;

    k.ok(&["delete", "-f", &manifest, "--wait=false"])?;
    dc.cluster.wait_for("every container and sandbox removed", Duration::from_secs(60), || {
        (dc.containers(Kind::Container).is_empty() && dc.containers(Kind::Sandbox).is_empty()).then_some(())
    })?;
    let (_, _, err) = k.fails(&["get", "service", "python-app"])?;
    assert!(err.contains("NotFound") || err.contains("not found"), "{err}");
    Ok(())
}

/// Volumes: an init container's output reaches the app container through
/// an emptyDir; a configMap volume follows an edit of its ConfigMap inside
/// the running container; a read-only mount refuses writes.
#[test]
fn volumes_carry_an_init_containers_output_and_follow_a_configmap_edit() -> Result<()> {
    let Some((dc, k)) = setup(&[])? else { return Ok(()) };
    dc.cluster.apply(&format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{greeting: hello}}
---
apiVersion: v1
kind: Pod
metadata: {{name: vols}}
spec:
  initContainers:
  - name: prepare
    image: {BUSYBOX}
    command: ["sh", "-c", "echo prepared-by-init > /work/note"]
    volumeMounts: [{{name: work, mountPath: /work}}]
  containers:
  - name: app
    image: {BUSYBOX}
    command: ["sh", "-c", "cat /work/note; while true; do cat /config/greeting; echo; sleep 0.5; done"]
    volumeMounts:
    - {{name: work, mountPath: /work}}
    - {{name: config, mountPath: /config}}
  volumes:
  - {{name: work, emptyDir: {{}}}}
  - {{name: config, configMap: {{name: settings}}}}
"#
    ))?;
    let logs = || k.run(&["logs", "vols", "-c", "app"]).map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    dc.cluster.wait_for("the init container's note and the greeting", Duration::from_secs(90), || {
        let l = logs();
        (l.starts_with("prepared-by-init\n") && l.contains("hello")).then_some(())
    })?;
    k.ok(&["patch", "configmap", "settings", "--type=merge", "-p", r#"{"data":{"greeting":"bye"}}"#])?;
    dc.cluster
        .wait_for("the edit visible inside the container", Duration::from_secs(60), || logs().contains("bye").then_some(()))?;
    assert_eq!(k.ok(&["exec", "vols", "--", "cat", "/config/greeting"])?, "bye");
    let (code, _, err) = k.fails(&["exec", "vols", "--", "sh", "-c", "echo x > /config/greeting"])?;
    assert!(code != 0 && err.contains("Read-only file system"), "{code} {err}");
    Ok(())
}

/// Hooks and restarts: postStart runs in the container before it counts
/// as started, preStop runs before the stop signal; a container that keeps
/// failing goes to CrashLoopBackOff and `logs --previous` shows its last
/// run; `resourceFieldRef` reaches the environment.
#[test]
fn hooks_crash_loops_previous_logs_and_resource_env() -> Result<()> {
    let Some((dc, k)) = setup(&[])? else { return Ok(()) };
    let out = dc.cluster.data_dir.path().join("hook-out");
    dc.cluster.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: hooked}}
spec:
  terminationGracePeriodSeconds: 10
  containers:
  - name: app
    image: {BUSYBOX}
    command: ["sh", "-c", "echo limit=$MEM_MI; sleep 3600"]
    env:
    - name: MEM_MI
      valueFrom: {{resourceFieldRef: {{resource: limits.memory, divisor: 1Mi}}}}
    resources: {{limits: {{memory: 64Mi}}}}
    lifecycle:
      postStart: {{exec: {{command: ["sh", "-c", "echo started > /tmp/post"]}}}}
      preStop: {{exec: {{command: ["sh", "-c", "echo stopping > /out/prestop"]}}}}
    volumeMounts: [{{name: out, mountPath: /out}}]
  volumes:
  - {{name: out, hostPath: {{path: "{out}", type: DirectoryOrCreate}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: crashy}}
spec:
  containers:
  - name: app
    image: {BUSYBOX}
    command: ["sh", "-c", "echo run at $(date +%s%N); exit 1"]
"#,
        out = out.display()
    ))?;
    dc.cluster.wait_for("hooked Running", Duration::from_secs(60), || {
        let p = k.get_json(&["pod", "hooked"]).ok()?;
        is_running_and_ready(&p).then_some(())
    })?;
    assert_eq!(k.ok(&["exec", "hooked", "--", "cat", "/tmp/post"])?, "started\n", "postStart ran in the container");
    assert!(k.ok(&["logs", "hooked"])?.contains("limit=64"), "resourceFieldRef in the environment");

    let crashy = dc.cluster.wait_for("CrashLoopBackOff", Duration::from_secs(90), || {
        let p = k.get_json(&["pod", "crashy"]).ok()?;
        let s = p["status"]["containerStatuses"][0].clone();
        (s["state"]["waiting"]["reason"] == "CrashLoopBackOff" && s["restartCount"].as_i64()? >= 2).then_some(s)
    })?;
    assert_eq!(crashy["lastState"]["terminated"]["exitCode"], 1, "{crashy}");
    let previous = k.ok(&["logs", "crashy", "--previous"])?;
    assert!(previous.starts_with("run at "), "{previous}");

    // preStop runs in the container before it is stopped.
    k.ok(&["delete", "pod", "hooked", "--wait=false"])?;
    dc.cluster.wait_for("the preStop hook's file", Duration::from_secs(30), || {
        std::fs::read_to_string(out.join("prestop")).ok().filter(|t| t == "stopping\n").map(|_| ())
    })?;
    Ok(())
}
