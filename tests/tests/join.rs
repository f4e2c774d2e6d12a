//! TLS, identities and joining, through the real binary and real kubectl:
//! the kubeconfig the server writes verifies the server; a request without
//! credentials is a 401; `tinykube agent` joins with the server's token
//! through a CertificateSigningRequest and then speaks as
//! `system:node:<name>`, which may change its own Node and no other; a
//! wrong token or a CA that does not match the token's hash stops the agent
//! with a clear message.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use tinykube_tests::{read_to_end, require_tool, Cluster, Kubectl, Who};

/// One GET by hand as `who`: the status code and the JSON body.
fn get(cluster: &Cluster, who: Who, path: &str) -> Result<(u16, Value)> {
    let mut stream = cluster.connect(who)?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n").as_bytes())?;
    let mut answer = Vec::new();
    read_to_end(&mut stream, &mut answer)?;
    let text = String::from_utf8_lossy(&answer);
    let code = text.split(' ').nth(1).and_then(|c| c.parse().ok()).context("an HTTP status line")?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    Ok((code, serde_json::from_str(body).unwrap_or(Value::Null)))
}

#[test]
fn the_api_server_speaks_only_tls_and_asks_who_is_calling() -> Result<()> {
    let cluster = Cluster::start_with(&["--no-agent"])?;

    // Verified TLS with the admin's certificate.
    let (code, namespaces) = get(&cluster, Who::Admin, "/api/v1/namespaces")?;
    assert_eq!(code, 200, "{namespaces}");
    // No credentials: 401, with upstream's Status.
    let (code, status) = get(&cluster, Who::Anonymous, "/api/v1/namespaces")?;
    assert_eq!(code, 401, "{status}");
    assert_eq!((status["kind"].as_str(), status["reason"].as_str()), (Some("Status"), Some("Unauthorized")), "{status}");
    assert_eq!(status["message"], "Unauthorized");
    // What upstream's system:public-info-viewer and the bootstrap
    // signer's role let anyone read.
    assert_eq!(get(&cluster, Who::Anonymous, "/version")?.0, 200);
    assert_eq!(get(&cluster, Who::Anonymous, "/readyz")?.0, 200);
    let (code, info) = get(&cluster, Who::Anonymous, "/api/v1/namespaces/kube-public/configmaps/cluster-info")?;
    assert_eq!(code, 200, "{info}");
    assert!(info["data"]["kubeconfig"].as_str().is_some_and(|k| k.contains("certificate-authority-data")), "{info}");
    // Plain HTTP on the TLS port is refused, as a TLS server refuses it.
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", cluster.port))?;
    plain.set_read_timeout(Some(Duration::from_secs(10)))?;
    plain.write_all(b"GET /api/v1/namespaces HTTP/1.0\r\n\r\n")?;
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!String::from_utf8_lossy(&answer).contains("\"items\""), "plain HTTP got an answer: {:?}", String::from_utf8_lossy(&answer));
    Ok(())
}

#[test]
fn kubectl_verifies_the_server_against_the_cluster_ca() -> Result<()> {
    if !require_tool("kubectl", Kubectl::available(), "install kubectl 1.32 and put it on the PATH") {
        return Ok(());
    }
    let cluster = Cluster::start_with(&["--no-agent"])?;
    let kubectl = Kubectl::new(&cluster)?;
    let who = kubectl.ok(&["auth", "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.groups}"]);
    // `auth whoami` needs SelfSubjectReview; without it, a plain read shows
    // the TLS handshake and the certificate work.
    if who.is_err() {
        kubectl.ok(&["get", "namespaces"])?;
    }
    // Another CA: kubectl must refuse the server's certificate.
    let other = tempfile::tempdir()?;
    let stranger = api::pki::Ca::generate("someone-else")?;
    std::fs::write(other.path().join("ca.crt"), stranger.cert_pem())?;
    let (_, _, stderr) = kubectl.fails(&["get", "namespaces", "--certificate-authority", other.path().join("ca.crt").to_str().unwrap()])?;
    assert!(stderr.contains("certificate signed by unknown authority") || stderr.contains("x509"), "{stderr}");
    // A token the server never issued: 401, which kubectl reports as
    // upstream's. (With no credentials at all kubectl would first prompt
    // for a user name.)
    let anon = other.path().join("stranger.yaml");
    std::fs::write(
        &anon,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    insecure-skip-tls-verify: true\n\
             contexts:\n- name: c\n  context:\n    cluster: c\n    user: stranger\ncurrent-context: c\nusers:\n- name: stranger\n  user:\n    token: abcdef.0123456789abcdef\n",
            cluster.url()
        ),
    )?;
    let out = kubectl.command(&["--kubeconfig", anon.to_str().unwrap(), "get", "namespaces"]).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("You must be logged in to the server (Unauthorized)"), "{stderr}");
    Ok(())
}

#[test]
fn an_agent_joins_with_the_token_and_may_change_only_its_own_node() -> Result<()> {
    if !require_tool("kubectl", Kubectl::available(), "install kubectl 1.32 and put it on the PATH") {
        return Ok(());
    }
    let cluster = Cluster::start()?;
    let kubectl = Kubectl::new(&cluster)?;

    let started = Instant::now();
    let agent = cluster.join("joiner", &[])?;
    eprintln!("agent start to Node Ready: {:?}", started.elapsed());

    // The kubelet's TLS bootstrap, for everyone to see.
    let csrs = kubectl.get_json(&["csr"])?;
    let csr = csrs["items"].as_array().and_then(|items| items.first()).context("a CertificateSigningRequest")?;
    assert_eq!(csr["spec"]["signerName"], "kubernetes.io/kube-apiserver-client-kubelet", "{csr}");
    assert!(csr["spec"]["username"].as_str().is_some_and(|u| u.starts_with("system:bootstrap:")), "{csr}");
    let conditions: Vec<&str> = csr["status"]["conditions"].as_array().into_iter().flatten().filter_map(|c| c["type"].as_str()).collect();
    assert_eq!(conditions, ["Approved"], "{csr}");
    assert!(csr["status"]["certificate"].as_str().is_some_and(|c| !c.is_empty()), "issued: {csr}");
    let table = kubectl.ok(&["get", "csr"])?;
    assert!(table.contains("Approved,Issued"), "{table}");

    // As the node: its own Node yes, another node no, with upstream's words.
    let node_kubeconfig = agent.kubeconfig(&cluster)?;
    let as_node = |args: &[&str]| {
        let mut all = vec!["--kubeconfig", node_kubeconfig.to_str().unwrap()];
        all.extend_from_slice(args);
        kubectl.command(&all).output()
    };
    let out = as_node(&["annotate", "node", "joiner", "example.com/checked=yes"])?;
    ensure!(out.status.success(), "the node annotating itself: {}", String::from_utf8_lossy(&out.stderr));
    let out = as_node(&["annotate", "node", &cluster.node_name, "example.com/checked=yes"])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(r#"nodes "{0}" is forbidden: node "joiner" is not allowed to modify node "{0}""#, cluster.node_name)),
        "{stderr}"
    );
    // Nor read a Secret it has no pod for.
    kubectl.ok(&["create", "secret", "generic", "private", "--from-literal", "k=v"])?;
    let out = as_node(&["get", "secret", "private"])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("no relationship found between node and this object"), "{stderr}");
    // Once a pod bound to the node uses it, the node may read it.
    let pod = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "uses-private"},
        "spec": {"nodeName": "joiner", "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"],
        "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "private", "key": "k"}}}]}]}}"#;
    let manifest = tempfile::NamedTempFile::new()?;
    std::fs::write(manifest.path(), pod)?;
    kubectl.ok(&["create", "-f", manifest.path().to_str().unwrap()])?;
    let out = as_node(&["get", "secret", "private", "-o", "jsonpath={.data.k}"])?;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "dg==", "{}", String::from_utf8_lossy(&out.stderr));
    kubectl.ok(&["delete", "pod", "uses-private", "--grace-period", "0", "--force"])?;
    Ok(())
}

#[test]
fn a_wrong_token_or_ca_hash_stops_the_agent_with_a_clear_message() -> Result<()> {
    let cluster = Cluster::start_with(&["--no-agent"])?;
    let token = cluster.join_token()?;
    let (hash, secret) = token.split_once("::").context("a K10<hash>::<id>.<secret> token")?;
    let (id, _) = secret.split_once('.').context("<id>.<secret>")?;

    // The right CA, a secret the server does not know: the server says 401.
    let mut agent = cluster.spawn_agent("wrong-secret", &format!("{hash}::{id}.0000000000000000"), &[])?;
    let status = agent.wait_exit(Duration::from_secs(30))?;
    assert!(!status.success());
    let log = agent.log_tail();
    assert!(log.contains("the server refused the join token (401 Unauthorized)"), "{log}");

    // A hash of another CA: the agent refuses the server before it sends
    // the token anywhere.
    let other = format!("K10{}::{secret}", "0".repeat(64));
    let mut agent = cluster.spawn_agent("wrong-ca", &other, &[])?;
    let status = agent.wait_exit(Duration::from_secs(30))?;
    assert!(!status.success());
    let log = agent.log_tail();
    assert!(log.contains("but the join token expects sha256:"), "{log}");

    // Nothing joined.
    let nodes = cluster.get_json(&["nodes"])?;
    assert_eq!(nodes["items"].as_array().map(Vec::len), Some(0), "{nodes}");
    Ok(())
}

#[test]
fn joined_agents_ride_out_a_server_restart_and_their_pods_keep_running() -> Result<()> {
    let mut cluster = Cluster::start_with(&["--no-agent"])?;
    let _agents = [cluster.join("ride-1", &[])?, cluster.join("ride-2", &[])?];
    let marker = tinykube_tests::token("ride");
    cluster.apply(&tinykube_tests::ticker_deployment("ride", 4, &marker, "hi"))?;
    cluster.wait_for("4 pods Running on the joined nodes", Duration::from_secs(30), || {
        (tinykube_tests::pids_with(&marker).len() == 4).then_some(())
    })?;
    let mut before = tinykube_tests::pids_with(&marker);
    before.sort_unstable();

    cluster.kill9()?;
    // Down long enough for the agents' watches and heartbeats to fail.
    std::thread::sleep(Duration::from_secs(3));
    cluster.restart()?;
    for name in ["ride-1", "ride-2"] {
        cluster.wait_for(&format!("{name} Ready again"), Duration::from_secs(30), || cluster.node_ready(name).then_some(()))?;
    }
    // The agents are talking to the new server: a new pod starts on them.
    cluster.ok(&["scale", "deployment/ride", "--replicas", "5"])?;
    cluster
        .wait_for("the fifth pod's process", Duration::from_secs(30), || (tinykube_tests::pids_with(&marker).len() == 5).then_some(()))?;
    let mut after = tinykube_tests::pids_with(&marker);
    after.retain(|pid| before.contains(pid));
    after.sort_unstable();
    assert_eq!(after, before, "the four pods' processes ran on through the restart");
    // The fifth pod's process can run before its agent has written the
    // status that says so: wait for all five to be Running.
    let pods = cluster.wait_for("5 pods Running", Duration::from_secs(30), || {
        let pods = cluster.get_json(&["pods", "-l", "app=ride"]).ok()?;
        let items = pods["items"].as_array()?;
        (items.len() == 5 && items.iter().all(tinykube_tests::is_running_and_ready)).then(|| items.clone())
    })?;
    for pod in &pods {
        assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 0, "{pod}");
    }
    cluster.ok(&["delete", "deployment", "ride"])?;
    cluster
        .wait_for("the pods' processes to end", Duration::from_secs(30), || tinykube_tests::pids_with(&marker).is_empty().then_some(()))?;
    Ok(())
}

/// A person's client certificate, the way a cluster admin hands one out:
/// a CSR for `kubernetes.io/kube-apiserver-client` stays Pending (no
/// controller approves those), `kubectl certificate approve` approves it
/// through the `/approval` subresource, the signer issues it, and the
/// certificate authenticates its subject (who, without RBAC roles, may not
/// list pods: a 403 naming the user). `deny` leaves a request unsigned.
#[test]
fn kubectl_certificate_approve_and_deny_a_users_request() -> Result<()> {
    if !require_tool("kubectl", Kubectl::available(), "install kubectl 1.32 and put it on the PATH") {
        return Ok(());
    }
    let cluster = Cluster::start_with(&["--no-agent"])?;
    let kubectl = Kubectl::new(&cluster)?;
    let dir = tempfile::tempdir()?;
    for user in ["alice", "bob"] {
        let (csr_pem, key_pem) = api::pki::make_csr(user, &["devs"])?;
        std::fs::write(dir.path().join(format!("{user}.key")), key_pem)?;
        let manifest = serde_json::json!({
            "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": user},
            "spec": {"request": base64_encode(csr_pem.as_bytes()), "signerName": "kubernetes.io/kube-apiserver-client", "usages": ["client auth"]},
        });
        cluster.apply(&manifest.to_string())?;
    }
    let condition = |name: &str| -> Result<String> { kubectl.ok(&["get", "csr", name, "-o", "jsonpath={.status.conditions[*].type}"]) };
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(condition("alice")?, "", "a user's request waits for a person");

    kubectl.ok(&["certificate", "approve", "alice"])?;
    kubectl.ok(&["certificate", "deny", "bob"])?;
    let cert = cluster.wait_for("alice's certificate", Duration::from_secs(10), || {
        kubectl.ok(&["get", "csr", "alice", "-o", "jsonpath={.status.certificate}"]).ok().filter(|c| !c.is_empty())
    })?;
    assert_eq!(condition("alice")?, "Approved");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(condition("bob")?, "Denied");
    assert_eq!(kubectl.ok(&["get", "csr", "bob", "-o", "jsonpath={.status.certificate}"])?, "", "a denied request is not signed");

    let crt = dir.path().join("alice.crt");
    std::fs::write(&crt, base64_decode(cert.trim())?)?;
    let key = dir.path().join("alice.key");
    // Alice's own kubectl: her certificate and key, the cluster's CA.
    let mut alice = std::process::Command::new("kubectl");
    alice
        .args(["get", "pods", "--kubeconfig", "/dev/null", "--server", &cluster.url()])
        .arg("--certificate-authority")
        .arg(cluster.data_dir.path().join("tls/ca.crt"))
        .arg("--client-certificate")
        .arg(&crt)
        .arg("--client-key")
        .arg(&key);
    let out = tinykube_tests::run_with_timeout(alice, Duration::from_secs(20))?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("User \"alice\" cannot list resource \"pods\""), "{stderr}");
    Ok(())
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn base64_decode(text: &str) -> Result<Vec<u8>> {
    use base64::Engine;
    Ok(base64::engine::general_purpose::STANDARD.decode(text)?)
}
