#!/usr/bin/env python3
"""The cost of validation: create and update latency, before and after.

Two `tinykube server --no-agent` processes run side by side, one from a
binary built before the validation layer and one after, each on a free
loopback port with its own data directory (on tmpfs by default, so that
fsync does not drown a cost counted in microseconds). One client walks the
same objects through both, alternating request by request, so whatever
else the machine is doing falls on both servers alike:

  POST a Pod (two containers, ports, resources, probes, env, volumes),
  a Deployment (the same pod template) and a ConfigMap (20 keys), then
  PUT each back with one label changed (without its resourceVersion: the
  controllers may write a Deployment's status in between).

Each request is timed on its own keep-alive HTTP/1.1 connection per
server. The figures are the medians (and p90) per verb and kind, and the
ratio after/before of the medians.

Usage:
  python3 scripts/bench-validation.py --before BIN --after BIN [--rounds 2000]

A "before" binary comes from the commit before the validation layer:
  git worktree add /tmp/tinykube-before <commit>
  cargo build --release --manifest-path /tmp/tinykube-before/Cargo.toml \
      --target-dir /tmp/tinykube-before/target -p tinykube
Only standard-library Python.
"""

import argparse
import copy
import http.client
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time


def pct(values, p):
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


class Server:
    """One `tinykube server --no-agent` on a free port, with its own data dir."""

    def __init__(self, binary, label, tmp):
        self.label = label
        self.dir = tempfile.mkdtemp(prefix=f"bench-validation-{label}-", dir=tmp)
        self.log = open(os.path.join(self.dir, "server.log"), "wb")
        self.proc = subprocess.Popen(
            [binary, "server", "--no-agent", "--listen", "127.0.0.1:0", "--data-dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=self.log)
        kubeconfig = os.path.join(self.dir, "kubeconfig.yaml")
        deadline = time.time() + 30
        address = None
        while time.time() < deadline and address is None:
            if self.proc.poll() is not None:
                sys.exit(f"the {label} server exited; see {self.log.name}")
            if os.path.exists(kubeconfig):
                for line in open(kubeconfig):
                    if "server:" in line:
                        url = line.split("server:")[1].strip()
                        if not url.endswith(":0"):
                            address = url.split("://")[1]
            time.sleep(0.05)
        if address is None:
            sys.exit(f"the {label} server did not start; see {self.log.name}")
        host, port = address.rsplit(":", 1)
        # TLS as the admin, with the CA and certificate the server made.
        tls = ssl.create_default_context(cafile=os.path.join(self.dir, "tls", "ca.crt"))
        tls.load_cert_chain(os.path.join(self.dir, "tls", "admin.crt"), os.path.join(self.dir, "tls", "admin.key"))
        self.conn = http.client.HTTPSConnection(host, int(port), timeout=30, context=tls)
        while time.time() < deadline:
            try:
                self.request("GET", "/api/v1/namespaces/default")
                return
            except (OSError, RuntimeError, http.client.HTTPException):
                self.conn.close()
                time.sleep(0.05)
        sys.exit(f"the {label} server does not answer; see {self.log.name}")

    def request(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data else {}
        self.conn.request(method, path, data, headers)
        resp = self.conn.getresponse()
        payload = resp.read()
        if resp.status >= 300:
            raise RuntimeError(f"{self.label}: {method} {path}: {resp.status} {payload[:300]!r}")
        return json.loads(payload)

    def stop(self):
        self.conn.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def pod_spec():
    container = {
        "name": "web", "image": "tinykube.local/busybox:1", "command": ["httpd", "-f", "-p", "8080"],
        "ports": [{"name": "http", "containerPort": 8080}],
        "env": [{"name": f"VAR_{i}", "value": str(i)} for i in range(5)],
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}},
        "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 5},
        "livenessProbe": {"tcpSocket": {"port": "http"}},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "config", "mountPath": "/etc/app"}],
    }
    sidecar = {"name": "log", "image": "tinykube.local/busybox:1", "command": ["sleep", "3600"],
               "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}
    return {
        "containers": [container, sidecar],
        "volumes": [{"name": "data", "emptyDir": {}}, {"name": "config", "configMap": {"name": "app"}}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}],
    }


def objects(i):
    labels = {"app": "web", "tier": "frontend", "round": str(i)}
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": f"web-{i}", "labels": labels, "annotations": {"example.com/owner": "team-a"}},
           "spec": pod_spec()}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": f"web-{i}", "labels": labels},
                  "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "round": str(i)}},
                           "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}},
                           "template": {"metadata": {"labels": labels}, "spec": pod_spec()}}}
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"web-{i}", "labels": labels},
                 "data": {f"key-{k}.conf": "x" * 64 for k in range(20)}}
    return [
        ("Pod", "/api/v1/namespaces/default/pods", pod),
        ("Deployment", "/apis/apps/v1/namespaces/default/deployments", deployment),
        ("ConfigMap", "/api/v1/namespaces/default/configmaps", configmap),
    ]


def timed(server, method, path, body):
    start = time.perf_counter()
    out = server.request(method, path, body)
    return time.perf_counter() - start, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="tinykube binary without the validation layer")
    ap.add_argument("--after", required=True, help="tinykube binary with it")
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--tmp", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                    help="where the data directories go (default /dev/shm)")
    args = ap.parse_args()

    servers = [Server(args.before, "before", args.tmp), Server(args.after, "after", args.tmp)]
    times = {}  # (server, verb, kind) -> [seconds]
    try:
        # A warm-up round that is not counted.
        for i in range(args.rounds + 50):
            for kind, collection, obj in objects(i):
                for s in (servers if i % 2 == 0 else servers[::-1]):
                    created_s, created = timed(s, "POST", collection, copy.deepcopy(obj))
                    created["metadata"]["labels"]["tier"] = "backend"
                    # Unconditional: the controllers may have written status
                    # in between (a Deployment's), which the server merges.
                    del created["metadata"]["resourceVersion"]
                    updated_s, _ = timed(s, "PUT", f"{collection}/{obj['metadata']['name']}", created)
                    if i >= 50:
                        times.setdefault((s.label, "create", kind), []).append(created_s)
                        times.setdefault((s.label, "update", kind), []).append(updated_s)
    finally:
        for s in servers:
            s.stop()

    print(f"rounds: {args.rounds} (after 50 uncounted), data dirs under {args.tmp}")
    print("| request | before p50 | after p50 | ratio | before p90 | after p90 |")
    print("|---|---|---|---|---|---|")
    ratios = []
    for verb in ("create", "update"):
        for kind in ("Pod", "Deployment", "ConfigMap"):
            b, a = times[("before", verb, kind)], times[("after", verb, kind)]
            ratio = statistics.median(a) / statistics.median(b)
            ratios.append(ratio)
            print(f"| {verb} {kind} | {statistics.median(b) * 1e3:.3f} ms | {statistics.median(a) * 1e3:.3f} ms | "
                  f"{ratio:.3f} | {pct(b, 90) * 1e3:.3f} ms | {pct(a, 90) * 1e3:.3f} ms |")
    print(f"median ratio over the six: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
