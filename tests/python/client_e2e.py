"""End-to-end check of tinykube with the real Python `kubernetes` client.

Usage: python3 client_e2e.py KUBECONFIG [NAMESPACE] [MARKER]

Runs the round trip an operator script does with the official client,
unmodified: create a Deployment, list its pods by label, patch the scale
subresource, watch the pods until every one is Ready, delete the
Deployment, and read a deleted object back as ApiException 404. Every step
prints one line; any failure exits non-zero with a message that names the
step and what the server answered.
"""

import sys
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

NAME = "pyweb"
STEP_TIMEOUT = 30


def fail(step, message):
    print(f"FAIL [{step}]: {message}", file=sys.stderr)
    sys.exit(1)


def step(name):
    print(f"--- {name}", flush=True)
    return name


def deployment(namespace, replicas, marker):
    container = client.V1Container(
        name="web",
        image="busybox",
        command=["sh", "-c", f"while true; do echo py from $HOSTNAME; sleep 1; done # {marker}"],
    )
    template = client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels={"app": NAME}),
        spec=client.V1PodSpec(containers=[container], termination_grace_period_seconds=2),
    )
    return client.V1Deployment(
        api_version="apps/v1",
        kind="Deployment",
        metadata=client.V1ObjectMeta(name=NAME, namespace=namespace, labels={"app": NAME}),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels={"app": NAME}),
            template=template,
        ),
    )


def is_ready(pod):
    if pod.metadata.deletion_timestamp is not None or pod.status is None:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def main():
    if len(sys.argv) < 2:
        fail("usage", "client_e2e.py KUBECONFIG [NAMESPACE] [MARKER]")
    kubeconfig = sys.argv[1]
    namespace = sys.argv[2] if len(sys.argv) > 2 else "default"
    marker = sys.argv[3] if len(sys.argv) > 3 else "pyclient"

    config.load_kube_config(config_file=kubeconfig)
    apps = client.AppsV1Api()
    core = client.CoreV1Api()
    selector = f"app={NAME}"

    s = step("create Deployment")
    try:
        created = apps.create_namespaced_deployment(namespace, deployment(namespace, 1, marker))
    except ApiException as e:
        fail(s, f"create answered {e.status} {e.reason}: {e.body}")
    if created.metadata.uid is None or created.metadata.generation != 1:
        fail(s, f"created object lacks uid or generation 1: {created.metadata}")

    s = step("list pods by label")
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        pods = core.list_namespaced_pod(namespace, label_selector=selector)
        if len(pods.items) == 1:
            break
        if time.monotonic() > deadline:
            fail(s, f"expected 1 pod with {selector}, got {[p.metadata.name for p in pods.items]}")
        time.sleep(0.2)
    others = core.list_namespaced_pod(namespace, label_selector="app=not-" + NAME)
    if others.items:
        fail(s, f"selector app=not-{NAME} matched {[p.metadata.name for p in others.items]}")

    s = step("patch scale to 3")
    try:
        scale = apps.patch_namespaced_deployment_scale(NAME, namespace, {"spec": {"replicas": 3}})
    except ApiException as e:
        fail(s, f"scale patch answered {e.status} {e.reason}: {e.body}")
    if scale.spec.replicas != 3:
        fail(s, f"Scale answered spec.replicas={scale.spec.replicas}, want 3")
    if apps.read_namespaced_deployment_scale(NAME, namespace).spec.replicas != 3:
        fail(s, "reading the scale back does not give 3")

    s = step("watch pods until all Ready")
    ready = {}
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_pod, namespace, label_selector=selector,
                          timeout_seconds=STEP_TIMEOUT):
        pod = event["object"]
        if event["type"] == "DELETED":
            ready.pop(pod.metadata.name, None)
        else:
            ready[pod.metadata.name] = is_ready(pod)
        if len(ready) == 3 and all(ready.values()):
            w.stop()
            break
    else:
        fail(s, f"watch ended before 3 pods were Ready: {ready}")
    print(f"ready: {sorted(ready)}", flush=True)

    s = step("delete Deployment")
    try:
        apps.delete_namespaced_deployment(NAME, namespace, propagation_policy="Background")
    except ApiException as e:
        fail(s, f"delete answered {e.status} {e.reason}: {e.body}")

    s = step("read deleted Deployment: ApiException 404")
    try:
        apps.read_namespaced_deployment(NAME, namespace)
    except ApiException as e:
        if e.status != 404:
            fail(s, f"expected status 404, got {e.status} {e.reason}: {e.body}")
        if "NotFound" not in (e.body or ""):
            fail(s, f"404 body is not a NotFound Status: {e.body}")
    else:
        fail(s, "reading a deleted Deployment succeeded")

    s = step("pods go away")
    deadline = time.monotonic() + STEP_TIMEOUT
    while core.list_namespaced_pod(namespace, label_selector=selector).items:
        if time.monotonic() > deadline:
            fail(s, "pods of the deleted Deployment are still listed")
        time.sleep(0.2)

    print("OK", flush=True)


if __name__ == "__main__":
    main()
