#!/usr/bin/env python3
"""Pod start-up with the docker runtime, side by side with the engine's floor.

For N pods started at once (N = 1, 5, 20 by default), two measurements
alternate over several rounds:

- tinykube: a Deployment of N busybox `sleep` pods is created through the
  REST API; a watch on pods records, per pod, when it is first seen
  Running. Latency = that moment minus the create.
- floor: the same containers per pod straight through the Docker Engine API
  (a sandbox from tinykube's own pause image on a bridge network, then an
  app container joined to its network namespace), N pods in N threads at
  once. Latency = the app container's start returned, minus the batch start.

It then runs 50 pods and reads the server's resident memory (the server
process holds the agent; the containers, their pause processes and Docker's
own memory are not part of it).

Usage: python3 scripts/bench-docker.py [--binary target/release/tinykube] [--rounds 3] [--sizes 1,5,20]
Only standard-library Python; talks to Docker over its unix socket and to
tinykube over loopback. Cleans up every container and network it made.
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

IMAGE = "tinykube.local/busybox:1"
NODE = "bench"
CIDR = "10.88.250.0/24"
FLOOR_NET = "tinykube-bench-floor"


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path="/var/run/docker.sock"):
        super().__init__("localhost", timeout=120)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def docker(method, path, body=None):
    conn = UnixConnection()
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, "/v1.41" + path, json.dumps(body) if body is not None else None, headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    if resp.status >= 300 and resp.status != 304:
        raise RuntimeError(f"docker {method} {path}: {resp.status} {data[:300]!r}")
    return json.loads(data) if data else None


def pct(values, p):
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


def pause_image():
    images = docker("GET", "/images/json")
    tags = [t for i in images for t in (i.get("RepoTags") or []) if t.startswith("tinykube/pause:")]
    if not tags:
        sys.exit("no tinykube/pause image yet: run one pod with the docker runtime first")
    return sorted(tags)[-1]


def floor_round(n, pause):
    latencies = [None] * n
    made = []
    lock = threading.Lock()
    start = time.monotonic()

    def one(i):
        sb = docker("POST", f"/containers/create?name=bench-floor-sb-{i}", {
            "Image": pause, "Labels": {"tinykube.io/bench": "floor"},
            "HostConfig": {"NetworkMode": FLOOR_NET, "IpcMode": "shareable"}})["Id"]
        with lock:
            made.append(sb)
        docker("POST", f"/containers/{sb}/start")
        app = docker("POST", f"/containers/create?name=bench-floor-app-{i}", {
            "Image": IMAGE, "Cmd": ["sleep", "3600"], "Labels": {"tinykube.io/bench": "floor"},
            "HostConfig": {"NetworkMode": f"container:{sb}", "IpcMode": f"container:{sb}"}})["Id"]
        with lock:
            made.append(app)
        docker("POST", f"/containers/{app}/start")
        latencies[i] = time.monotonic() - start

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in reversed(made):
        docker("DELETE", f"/containers/{c}?force=1")
    return latencies


class Server:
    def __init__(self, binary):
        self.dir = tempfile.mkdtemp(prefix="tinykube-bench-")
        self.log = open(os.path.join(self.dir, "server.log"), "w")
        self.proc = subprocess.Popen(
            [binary, "server", "--runtime", "docker", "--node-name", NODE, "--pod-cidr", CIDR,
             "--listen", "127.0.0.1:0", "--data-dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=self.log)
        kubeconfig = os.path.join(self.dir, "kubeconfig.yaml")
        deadline = time.time() + 30
        self.url = None
        while time.time() < deadline and self.url is None:
            if os.path.exists(kubeconfig):
                for line in open(kubeconfig):
                    if "server:" in line and ":0" not in line.split("server:")[1]:
                        self.url = line.split("server:")[1].strip()
            time.sleep(0.1)
        if self.url is None:
            sys.exit("the server did not start; see " + self.log.name)
        while time.time() < deadline:
            try:
                nodes = self.get("/api/v1/nodes")
                if any(c["type"] == "Ready" and c["status"] == "True"
                       for n in nodes["items"] for c in n["status"].get("conditions", [])):
                    return
            except Exception:
                pass
            time.sleep(0.2)
        sys.exit("the node did not become Ready")

    def request(self, method, path, body=None):
        req = urllib.request.Request(self.url + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60, context=self.tls()) as r:
            return json.loads(r.read())

    def get(self, path):
        return self.request("GET", path)

    def tls(self):
        """TLS as the admin, with the CA and certificate the server made."""
        ctx = ssl.create_default_context(cafile=os.path.join(self.dir, "tls", "ca.crt"))
        ctx.load_cert_chain(os.path.join(self.dir, "tls", "admin.crt"), os.path.join(self.dir, "tls", "admin.key"))
        return ctx

    def rss_kib(self):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def deployment_round(self, n, name):
        """Creates a Deployment of n pods; returns per-pod seconds to Running."""
        pods = self.get("/api/v1/namespaces/default/pods")
        rv = pods["metadata"]["resourceVersion"]
        running = {}
        done = threading.Event()
        start = [0.0]

        def watch():
            conn = http.client.HTTPSConnection(self.url.split("//")[1], timeout=300, context=self.tls())
            conn.request("GET", f"/api/v1/namespaces/default/pods?watch=1&resourceVersion={rv}&labelSelector=app%3D{name}")
            resp = conn.getresponse()
            for line in resp:
                ev = json.loads(line)
                pod = ev["object"]
                uid = pod["metadata"]["uid"]
                statuses = (pod.get("status") or {}).get("containerStatuses") or []
                if uid not in running and statuses and all("running" in (s.get("state") or {}) for s in statuses):
                    running[uid] = time.monotonic() - start[0]
                    if len(running) == n:
                        done.set()
                        conn.close()
                        return

        t = threading.Thread(target=watch, daemon=True)
        t.start()
        time.sleep(0.2)
        start[0] = time.monotonic()
        self.request("POST", "/apis/apps/v1/namespaces/default/deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": n, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                                      {"name": "app", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                                       "command": ["sleep", "3600"]}]}}}})
        if not done.wait(300):
            sys.exit(f"{name}: only {len(running)}/{n} pods Running after 300 s")
        return list(running.values())

    def delete_and_wait(self, name):
        self.request("DELETE", f"/apis/apps/v1/namespaces/default/deployments/{name}?propagationPolicy=Foreground")
        deadline = time.time() + 120
        while time.time() < deadline:
            if not self.get(f"/api/v1/namespaces/default/pods?labelSelector=app%3D{name}")["items"]:
                return
            time.sleep(0.2)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def cleanup():
    for c in docker("GET", '/containers/json?all=1&filters=' + urllib.request.quote(json.dumps(
            {"label": [f"tinykube.io/node={NODE}"]}))) + docker("GET", '/containers/json?all=1&filters=' + urllib.request.quote(
            json.dumps({"label": ["tinykube.io/bench=floor"]}))):
        docker("DELETE", f"/containers/{c['Id']}?force=1")
    for net in (FLOOR_NET, f"tinykube-{NODE}"):
        try:
            docker("DELETE", f"/networks/{net}")
        except RuntimeError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/tinykube")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", default="1,5,20")
    ap.add_argument("--rss-pods", type=int, default=50)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    cleanup()
    server = Server(args.binary)
    try:
        # One pod first: the agent builds its pause image on first use.
        server.deployment_round(1, "warmup")
        server.delete_and_wait("warmup")
        docker("POST", "/networks/create", {"Name": FLOOR_NET, "IPAM": {"Config": [{"Subnet": "10.88.251.0/24"}]}})
        pause = pause_image()
        results = {n: {"floor": [], "tinykube": []} for n in sizes}
        for r in range(args.rounds):
            for n in sizes:
                results[n]["floor"].append(floor_round(n, pause))
                name = f"b{r}n{n}"
                results[n]["tinykube"].append(server.deployment_round(n, name))
                server.delete_and_wait(name)
        print(f"pod start-up, {args.rounds} rounds, medians over rounds of each round's per-pod p50/p99 (seconds)")
        print(f"{'pods':>5} {'floor p50':>10} {'floor p99':>10} {'tk p50':>8} {'tk p99':>8} {'p50 ratio':>10} {'p99 ratio':>10}")
        for n in sizes:
            f50 = statistics.median(pct(x, 50) for x in results[n]["floor"])
            f99 = statistics.median(pct(x, 99) for x in results[n]["floor"])
            t50 = statistics.median(pct(x, 50) for x in results[n]["tinykube"])
            t99 = statistics.median(pct(x, 99) for x in results[n]["tinykube"])
            print(f"{n:>5} {f50:>10.2f} {f99:>10.2f} {t50:>8.2f} {t99:>8.2f} {t50 / f50:>9.2f}x {t99 / f99:>9.2f}x")
        server.deployment_round(args.rss_pods, "rss")
        time.sleep(5)
        print(f"server RSS with {args.rss_pods} pods Running: {server.rss_kib() / 1024:.1f} MiB")
        server.delete_and_wait("rss")
    finally:
        server.stop()
        cleanup()


if __name__ == "__main__":
    main()
