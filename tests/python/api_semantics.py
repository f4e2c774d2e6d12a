"""The api-server's semantics that clients rely on, checked with the
official Python `kubernetes` client and, where the client hides the wire,
with plain HTTP: paging with limit/continue, generateName, dryRun,
deletecollection, the 413 on an oversized body, and watches — from a
resourceVersion, with bookmarks, with timeoutSeconds, and the 410 Expired
that a watch from a compacted resourceVersion ends with.

Usage: api_semantics.py KUBECONFIG NAMESPACE
Exits non-zero with `FAIL [step]: ...` on the first failure, prints OK last.
"""
import json
import ssl
import sys
import time
import urllib.error
import urllib.request

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

kubeconfig, ns = sys.argv[1], sys.argv[2]
config.load_kube_config(config_file=kubeconfig)
api = client.CoreV1Api()
settings = client.Configuration.get_default_copy()
server = settings.host
# Plain HTTP requests go over the same TLS as the client: the cluster CA
# and the admin's certificate from the kubeconfig.
tls = ssl.create_default_context(cafile=settings.ssl_ca_cert)
tls.load_cert_chain(settings.cert_file, settings.key_file)


def fail(step, message):
    print(f"FAIL [{step}]: {message}")
    sys.exit(1)


def check(step, cond, message):
    if not cond:
        fail(step, message)
    print(f"ok   [{step}]")


def http(method, path, body=None, headers=None):
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(server + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30, context=tls) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def watch_lines(path, deadline_s):
    """The JSON lines of a watch until the server ends it or the deadline."""
    req = urllib.request.Request(server + path)
    out = []
    start = time.time()
    with urllib.request.urlopen(req, timeout=deadline_s, context=tls) as resp:
        for line in resp:
            out.append(json.loads(line))
            if time.time() - start > deadline_s:
                break
    return out, time.time() - start


api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))

# generateName: the server completes the name with a five-character suffix.
made = api.create_namespaced_config_map(ns, client.V1ConfigMap(
    metadata=client.V1ObjectMeta(generate_name="gen-", labels={"set": "paged"}), data={"k": "v"}))
check("generateName", made.metadata.name.startswith("gen-") and len(made.metadata.name) == 9, made.metadata.name)

# dryRun=All validates and defaults but stores nothing.
api.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="dry")), dry_run="All")
try:
    api.read_namespaced_config_map("dry", ns)
    fail("dryRun", "a dry-run create was stored")
except ApiException as e:
    check("dryRun", e.status == 404, f"status {e.status}")

# Paging: limit/continue walks a consistent snapshot, however it changes.
for i in range(6):
    api.create_namespaced_config_map(ns, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=f"page-{i}", labels={"set": "paged"})))
page = api.list_namespaced_config_map(ns, limit=3, label_selector="set=paged")
names = [c.metadata.name for c in page.items]
check("limit", len(names) == 3 and page.metadata._continue, f"{names} continue={page.metadata._continue!r}")
first_rv = page.metadata.resource_version
api.create_namespaced_config_map(ns, client.V1ConfigMap(
    metadata=client.V1ObjectMeta(name="page-late", labels={"set": "paged"})))
token = page.metadata._continue
while token:
    page = api.list_namespaced_config_map(ns, limit=3, label_selector="set=paged", _continue=token)
    check("continue keeps the first page's revision", page.metadata.resource_version == first_rv,
          f"{page.metadata.resource_version} != {first_rv}")
    names += [c.metadata.name for c in page.items]
    token = page.metadata._continue
check("paging saw the snapshot", sorted(names) == sorted([made.metadata.name] + [f"page-{i}" for i in range(6)]), names)
status, body = http("GET", f"/api/v1/namespaces/{ns}/configmaps?limit=2&continue=not-a-token")
check("bad continue token", status == 400, f"{status} {body[:200]!r}")

# deletecollection removes what the selector matches, and only that.
api.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="keep")))
api.delete_collection_namespaced_config_map(ns, label_selector="set=paged")
left = sorted(c.metadata.name for c in api.list_namespaced_config_map(ns).items)
check("deletecollection", "keep" in left and not any(n.startswith("page-") or n.startswith("gen-") for n in left), left)

# A body over 3 MiB is refused with 413 before it is read whole.
big = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"x": "y" * (3 * 1024 * 1024 + 10)}}
status, body = http("POST", f"/api/v1/namespaces/{ns}/configmaps", big, {"Content-Type": "application/json"})
check("413", status == 413 and json.loads(body).get("reason") == "RequestEntityTooLarge", f"{status} {body[:200]!r}")

# Watch from a resourceVersion: exactly the later changes, in order.
rv = api.list_namespaced_config_map(ns).metadata.resource_version
for v in ("1", "2"):
    api.patch_namespaced_config_map("keep", ns, {"data": {"v": v}})
events, _ = watch_lines(f"/api/v1/namespaces/{ns}/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=2", 10)
mods = [e["object"]["data"]["v"] for e in events if e["type"] == "MODIFIED"]
check("watch from resourceVersion", mods == ["1", "2"] and all(e["type"] == "MODIFIED" for e in events), events)

# The Python client's own watch follows resourceVersions through events.
rv = api.list_namespaced_config_map(ns).metadata.resource_version
for v in ("a", "b"):
    api.patch_namespaced_config_map("keep", ns, {"data": {"v": v}})
w = watch.Watch()
seen = []
for ev in w.stream(api.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=2):
    seen.append(ev["type"])
check("watch.Watch().stream", seen[:2] == ["MODIFIED", "MODIFIED"], seen)

# timeoutSeconds ends a quiet watch on time.
events, took = watch_lines(f"/api/v1/namespaces/{ns}/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=1", 20)
check("timeoutSeconds", 0.8 <= took <= 5, f"took {took:.1f}s")

# sendInitialEvents: the state as ADDED events, then a bookmark that marks
# the end of them.
events, _ = watch_lines(
    f"/api/v1/namespaces/{ns}/configmaps?watch=1&sendInitialEvents=true&allowWatchBookmarks=true"
    f"&resourceVersionMatch=NotOlderThan&timeoutSeconds=2", 10)
kinds = [e["type"] for e in events]
check("initial events", kinds and kinds[0] == "ADDED" and "BOOKMARK" in kinds, kinds)
marks = [e for e in events if e["type"] == "BOOKMARK"]
check("initial-events-end bookmark",
      marks[0]["object"]["metadata"].get("annotations", {}).get("k8s.io/initial-events-end") == "true", marks)

# After compaction (the server under test compacts every three seconds), a watch
# from the old resourceVersion ends with a 410 Expired ERROR event that
# carries code, reason and message.
api.patch_namespaced_config_map("keep", ns, {"data": {"v": "3"}})
deadline = time.time() + 20
while True:
    events, _ = watch_lines(f"/api/v1/namespaces/{ns}/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=2", 10)
    errors = [e for e in events if e["type"] == "ERROR"]
    if errors or time.time() > deadline:
        break
    time.sleep(0.5)
check("410 after compaction", errors and errors[0]["object"].get("code") == 410
      and errors[0]["object"].get("reason") in ("Expired", "Gone") and errors[0]["object"].get("message"), events)

api.delete_namespace(ns)
print("OK")
