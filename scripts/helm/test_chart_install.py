"""The chart installed by the real Helm 4 engine into the test ground's kube-apiserver, and its
RBAC proven sufficient and minimal: the operator binary runs as a local process with a token
of the chart's ServiceAccount (TokenRequest API) and the args of the installed Deployment,
brings a TerraformStateBackend to Ready, finalizes its deletion, and that token is refused
(403) on Secrets and on everything the operator does not use.

Two installs: cluster-wide with default values, and one watched namespace with 2 replicas
(leader election, PodDisruptionBudget), an IRSA annotation and metrics off.

Needs a running test ground (TFSTATE_TESTGROUND_ENV) and the operator binary
(TFSTATE_OPERATOR_BIN, default: the debug build under $CARGO_TARGET_DIR or the cache).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest

from ground import (CHART, Ground, Kube, OperatorProcess, binary_flags, http_get, operator_binary,
                    rewrite_listen_addrs, wait_for)

pytestmark = pytest.mark.ground

TFSB = "/apis/tfstate.dev/v1alpha1"
IRSA = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/tfstate-operator"}
LEASE = "tfstate-operator-leader"


@dataclass
class Deployed:
    """One installed release, and the operator running with its ServiceAccount's token."""

    mode: str
    release: str
    namespace: str  # the release's (and operator's) namespace
    watched: str  # where the test's backend lives
    other: str  # a namespace the namespaced operator must not see
    service_account: str
    admin: Kube
    sa: Kube
    operator: OperatorProcess
    pod_name: str
    ports: dict[int, int]  # chart container port -> local port
    leader_elect: bool  # --leader-elect in the chart's args and known to this binary
    manifest: str
    region: str = ""  # the chart's defaultRegion
    backend: str = "chart-rbac"
    notes: list[str] = field(default_factory=list)

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


@pytest.fixture(scope="module")
def ground() -> Ground:
    try:
        return Ground.from_env()
    except RuntimeError as e:
        problem = str(e)
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="module")
def binary() -> Path:
    try:
        return operator_binary()
    except RuntimeError as e:
        problem = str(e)
    pytest.fail(problem, pytrace=False)


def values_for(mode: str, ground: Ground, watched: str) -> dict[str, Any]:
    values: dict[str, Any] = {
        "defaultRegion": ground.env.get("AWS_REGION", "eu-west-1"),
        "awsEndpointUrl": ground.env["AWS_ENDPOINT_URL"],
        "logFormat": "text",
    }
    if mode == "namespaced":
        values |= {"watchNamespace": watched, "replicas": 2, "serviceAccount": {"annotations": IRSA},
                   "metrics": {"enabled": False}}
    return values


def local_env(container: dict[str, Any], pod_name: str, namespace: str) -> dict[str, str]:
    """The container's env as the kubelet would set it (downward API resolved)."""
    env = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            path = e["valueFrom"]["fieldRef"]["fieldPath"]
            env[e["name"]] = {"metadata.name": pod_name, "metadata.namespace": namespace}[path]
    return env


@pytest.fixture(scope="module", params=["cluster", "namespaced"])
def deployed(request, ground, binary, tmp_path_factory):
    mode = request.param
    sfx = secrets.token_hex(3)
    admin = ground.admin()
    release, namespace = f"tfo-{mode}-{sfx}", f"tfo-{mode}-{sfx}"
    watched, other = f"team-{mode}-{sfx}", f"other-{mode}-{sfx}"
    tmp = tmp_path_factory.mktemp(mode)
    for ns in (namespace, watched, other):
        admin.ensure_namespace(ns)
    cfg = helm.Config(kubeconfig_path=ground.env["KUBECONFIG"], namespace=namespace)
    operator = None
    try:
        values = values_for(mode, ground, watched)
        installed = cfg.install(CHART, release, values, namespace=namespace, timeout=120)
        assert installed["status"] == "deployed", installed
        fullname = f"{release}-tfstate-operator"
        deployment = admin.must("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{fullname}")
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        sa_name = pod["serviceAccountName"]
        token = admin.service_account_token(namespace, sa_name)
        kubeconfig = ground.write_kubeconfig(tmp / "kubeconfig", token, f"{namespace}-{sa_name}")

        # The installed Deployment's args, with the listeners moved to free loopback ports.
        args, notes = list(container["args"]), []
        leader_elect = "--leader-elect" in args
        if leader_elect and "--leader-elect" not in binary_flags(binary):
            args.remove("--leader-elect")
            leader_elect = False
            notes.append(f"{binary} has no --leader-elect yet: run without it, Lease not checked")
        ports: dict[int, int] = {}
        args = rewrite_listen_addrs(args, ports)
        pod_name = f"{fullname}-local-{sfx}"
        env = local_env(container, pod_name, namespace) | ground.aws_env() | {
            "KUBECONFIG": str(kubeconfig), "HOME": str(tmp), "RUST_LOG": "info", "NO_COLOR": "1"}
        operator = OperatorProcess(binary, args, env, tmp / "operator.log")
        health = ports[next(p["containerPort"] for p in container["ports"] if p["name"] == "health")]
        wait_for("the operator's /readyz", 30, lambda: not operator.alive()
                 or http_get(f"http://127.0.0.1:{health}/readyz")[0] == 200, operator.tail)
        assert operator.alive(), f"the operator exited at start-up ({args})\n{operator.tail()}"
        yield Deployed(mode, release, namespace, watched, other, sa_name, admin,
                       Kube(ground.server, token, ground.ca_file), operator, pod_name, ports, leader_elect,
                       installed["manifest"], region=values["defaultRegion"], notes=notes)
    finally:
        try:
            release_backend(admin, watched, "chart-rbac", operator)
        finally:
            if operator is not None:
                operator.stop()
            try:
                cfg.uninstall(release, ignore_not_found=True, timeout=60)
            finally:
                cfg.close()
                for ns in (namespace, watched, other):
                    admin.call("DELETE", f"/api/v1/namespaces/{ns}")


def release_backend(admin: Kube, namespace: str, name: str, operator: OperatorProcess | None) -> None:
    """Deletes the test's backend; its finalizer is stripped if no operator can finish it."""
    path = f"{TFSB}/namespaces/{namespace}/terraformstatebackends/{name}"
    if admin.get(path) is None:
        return
    admin.call("DELETE", path)
    if operator is not None and operator.alive():
        try:
            wait_for(f"{name} to be finalized", 30, lambda: admin.get(path) is None)
            return
        except AssertionError:
            pass
    admin.call("PATCH", path, {"metadata": {"finalizers": None}}, "application/merge-patch+json")


def ready_condition(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), None)


def forbidden_lines(d: Deployed) -> list[str]:
    log = d.operator.log.read_text(errors="replace")
    return [line for line in log.splitlines() if "forbidden" in line.lower()]


# --- the release ------------------------------------------------------------------------


def test_release_objects_in_the_api_server(deployed: Deployed):
    d, a = deployed, deployed.admin
    sa = a.must("GET", f"/api/v1/namespaces/{d.namespace}/serviceaccounts/{d.service_account}")
    fullname = f"{d.release}-tfstate-operator"
    crb = a.get(f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{fullname}")
    role = a.get(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{d.watched}/roles/{fullname}")
    pdbs = a.must("GET", f"/apis/policy/v1beta1/namespaces/{d.namespace}/poddisruptionbudgets")["items"]
    services = a.must("GET", f"/api/v1/namespaces/{d.namespace}/services")["items"]
    if d.mode == "cluster":
        assert crb is not None and role is None
        assert not pdbs
        assert [s["metadata"]["name"] for s in services] == [f"{fullname}-metrics"]
    else:
        assert crb is None and role is not None
        assert (sa["metadata"].get("annotations") or {}).items() >= IRSA.items()
        # The 1.20 API server has no policy/v1: the chart fell back to policy/v1beta1.
        assert "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget" in d.manifest
        assert [p["metadata"]["name"] for p in pdbs] == [fullname]
        assert services == []
    crd = a.must("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/terraformstatebackends.tfstate.dev")
    assert crd["spec"]["group"] == "tfstate.dev"


# --- the operator with the chart's RBAC ---------------------------------------------------


def test_backend_becomes_ready_with_the_chart_rbac(deployed: Deployed):
    d, a = deployed, deployed.admin
    path = f"{TFSB}/namespaces/{d.watched}/terraformstatebackends"
    wait_for("the TerraformStateBackend API", 30, lambda: a.call("GET", path)[0] == 200)
    # No spec.region: the chart's --default-region must reach the operator.
    a.must("POST", path, {
        "apiVersion": "tfstate.dev/v1alpha1", "kind": "TerraformStateBackend",
        "metadata": {"name": d.backend},
        "spec": {"bucket": {"name": f"tfso-chart-{d.release}"},
                 "access": {"trust": {"awsPrincipals": ["arn:aws:iam::123456789012:role/ci"]}}}})

    def detail() -> str:
        obj = a.get(f"{path}/{d.backend}")
        conditions = ((obj or {}).get("status") or {}).get("conditions")
        return f"conditions: {conditions}\n{d.operator.tail()}"

    def ready() -> dict[str, Any] | bool:
        obj = a.get(f"{path}/{d.backend}")
        condition = ready_condition(obj)
        if condition and condition["status"] == "True":
            return obj
        # A refused call will not heal: stop waiting at once.
        return not d.operator.alive() or bool(forbidden_lines(d))

    obj = wait_for("Ready=True", 120, ready, detail)
    assert d.operator.alive(), f"the operator exited\n{d.operator.tail()}"
    assert forbidden_lines(d) == [], "the API server refused the operator:\n" + "\n".join(forbidden_lines(d))
    assert isinstance(obj, dict), detail()
    assert obj["metadata"]["finalizers"], obj["metadata"]
    assert obj["status"]["configMapName"] == f"{d.backend}-backend"
    cm = a.must("GET", f"/api/v1/namespaces/{d.watched}/configmaps/{d.backend}-backend")
    assert 'backend "s3"' in cm["data"]["backend.tf"]
    assert cm["data"]["region"] == d.region
    events = a.must("GET", f"/apis/events.k8s.io/v1/namespaces/{d.watched}/events")["items"]
    ours = [e for e in events if e["regarding"]["name"] == d.backend]
    assert ours and all(e["reportingController"] == "tfstate-operator" for e in ours), (
        f"no Event of the operator about {d.backend}: {events}\n" + "\n".join(forbidden_lines(d)))
    assert forbidden_lines(d) == [], "the API server refused the operator:\n" + "\n".join(forbidden_lines(d))


def test_leader_lease_only_with_leader_election(deployed: Deployed):
    d = deployed
    lease_path = f"/apis/coordination.k8s.io/v1/namespaces/{d.namespace}/leases/{LEASE}"
    if d.mode == "cluster":
        # One replica: no --leader-elect, no Lease, and no right to one (see the 403 test).
        assert d.admin.get(lease_path) is None
        return
    if not d.leader_elect:
        pytest.skip("; ".join(d.notes))
    lease = wait_for("the leader Lease", 30, lambda: d.admin.get(lease_path), d.operator.tail)
    assert lease["spec"]["holderIdentity"] == d.pod_name
    assert forbidden_lines(d) == [], "\n".join(forbidden_lines(d))


def test_metrics_are_served_where_the_chart_says(deployed: Deployed):
    d = deployed
    if d.mode == "cluster":
        assert set(d.ports) == {8080, 8081}
        status, text = http_get(f"http://127.0.0.1:{d.ports[8080]}/metrics")
    else:
        # Metrics off: one listener, the health port, and no metrics Service.
        assert set(d.ports) == {8081}
        status, text = http_get(f"http://127.0.0.1:{d.ports[8081]}/metrics")
    assert status == 200 and "# EOF" in text


# --- the token is refused everything else --------------------------------------------------


def test_service_account_is_refused_secrets_and_everything_else(deployed: Deployed):
    d, sa = deployed, deployed.sa
    d.admin.must("POST", f"/api/v1/namespaces/{d.watched}/secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "probe"}, "stringData": {"k": "v"}}, ok=(201, 409))
    backend = {"apiVersion": "tfstate.dev/v1alpha1", "kind": "TerraformStateBackend", "metadata": {"name": "x"},
               "spec": {"bucket": {"name": "tfso-never"}, "access": {"trust": {"awsPrincipals": ["x"]}}}}
    refused = [
        ("GET", f"/api/v1/namespaces/{d.watched}/secrets"),
        ("GET", f"/api/v1/namespaces/{d.watched}/secrets/probe"),
        ("GET", f"/api/v1/namespaces/{d.namespace}/secrets"),
        ("GET", "/api/v1/secrets"),
        ("WATCH", f"/api/v1/namespaces/{d.watched}/secrets?watch=1"),
        ("GET", "/api/v1/pods"),
        ("GET", f"/api/v1/namespaces/{d.watched}/pods"),
        ("GET", "/apis/apps/v1/deployments"),
        ("GET", f"/apis/apps/v1/namespaces/{d.namespace}/deployments"),
        ("GET", "/apis/batch/v1/jobs"),
        ("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"),
        ("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles"),
        ("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tfso-probe"}}),
        ("GET", f"/apis/coordination.k8s.io/v1/namespaces/{d.watched}/leases"),
        # Verbs the operator does not use, on what it does use.
        ("POST", f"{TFSB}/namespaces/{d.watched}/terraformstatebackends", backend),
        ("DELETE", f"{TFSB}/namespaces/{d.watched}/terraformstatebackends/{d.backend}"),
        ("PUT", f"{TFSB}/namespaces/{d.watched}/terraformstatebackends/{d.backend}", backend),
        ("DELETE", f"/api/v1/namespaces/{d.watched}/configmaps/{d.backend}-backend"),
        ("GET", f"/apis/events.k8s.io/v1/namespaces/{d.watched}/events"),
    ]
    allowed = [
        # Namespace labels choose the TerraformStatePolicy; policies are read, never written.
        ("GET", "/api/v1/namespaces"),
        ("GET", "/apis/tfstate.dev/v1alpha1/terraformstatepolicies"),
        ("GET", f"{TFSB}/namespaces/{d.watched}/terraformstatebackends"),
        ("GET", f"/api/v1/namespaces/{d.watched}/configmaps"),
    ]
    if d.mode == "namespaced":
        refused += [
            ("GET", f"{TFSB}/terraformstatebackends"),
            ("GET", f"{TFSB}/namespaces/{d.other}/terraformstatebackends"),
            ("GET", "/api/v1/configmaps"),
            ("GET", f"/api/v1/namespaces/{d.other}/configmaps"),
            ("GET", f"/api/v1/namespaces/{d.namespace}/configmaps"),
            ("GET", f"/apis/coordination.k8s.io/v1/namespaces/{d.namespace}/leases"),  # get, not list
        ]
        allowed += [("GET", f"/apis/coordination.k8s.io/v1/namespaces/{d.namespace}/leases/{LEASE}")]
    else:
        refused += [("GET", f"/apis/coordination.k8s.io/v1/namespaces/{d.namespace}/leases/{LEASE}")]
        allowed += [("GET", f"{TFSB}/terraformstatebackends"), ("GET", f"/api/v1/namespaces/{d.other}/configmaps")]

    problems = []
    for method, path, *body in refused:
        verb = "GET" if method == "WATCH" else method
        status, answer = sa.call(verb, path, *body)
        if status != 403 or d.user not in answer.get("message", ""):
            problems.append(f"{method} {path}: expected 403 for {d.user}, got {status} {answer.get('message', '')}")
    for method, path in allowed:
        status, answer = sa.call(method, path)
        if status not in (200, 404):
            problems.append(f"{method} {path}: expected to be allowed, got {status} {answer.get('message', '')}")
    assert problems == [], "\n".join(problems)


def test_deleting_the_backend_is_finalized_by_the_operator(deployed: Deployed):
    d, a = deployed, deployed.admin
    path = f"{TFSB}/namespaces/{d.watched}/terraformstatebackends/{d.backend}"
    assert a.get(path) is not None, "the backend of the Ready test is gone"
    a.must("DELETE", path)
    # The finalizer is removed by the operator with the chart's RBAC (JSON patch).
    wait_for("the backend to be finalized and gone", 60, lambda: a.get(path) is None, d.operator.tail)
    assert d.operator.alive()
    assert forbidden_lines(d) == [], "\n".join(forbidden_lines(d))
