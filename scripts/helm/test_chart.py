"""The Helm chart, offline, with the real Helm 4 engine (helm-python-sdk): strict lint, the
objects it renders with default and non-default values, its values schema, and its CRDs.

The install tests against the test ground are in test_chart_install.py.
Run: venv=$(scripts/install-helm.sh | tail -n1); "$venv/bin/python" -m pytest scripts/helm
"""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from ground import CHART, ROOT

RELEASE, NAMESPACE = "tfo", "tfstate-system"
# The non-default install of the issue: one watched namespace, 2 replicas, IRSA, metrics off.
IRSA = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/tfstate-operator"}
NAMESPACED = {
    "watchNamespace": "team-a",
    "replicas": 2,
    "serviceAccount": {"annotations": IRSA},
    "metrics": {"enabled": False},
    "defaultRegion": "eu-west-1",
}

# Exactly what the operator needs on the namespaces it watches; nothing on Secrets.
WATCH_RULES = {
    ("tfstate.dev", "terraformstatebackends"): {"get", "list", "watch", "patch"},
    ("tfstate.dev", "terraformstatebackends/status"): {"get", "patch"},
    ("tfstate.dev", "terraformstatebackends/finalizers"): {"update"},
    ("", "configmaps"): {"get", "list", "watch", "create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
}
LEASE_RULES = {("coordination.k8s.io", "leases"): {"get", "create", "update", "patch"}}
# Cluster-scoped TerraformStatePolicies, read only, in every mode.
POLICY_RULES = {("tfstate.dev", "terraformstatepolicies"): {"get", "list", "watch"},
                ("", "namespaces"): {"get", "list", "watch"}}


def render(values: dict[str, Any] | None = None, release: str = RELEASE) -> list[dict[str, Any]]:
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values or {}, name=release, namespace=NAMESPACE)
    docs = []
    for path, text in sorted(manifests.items()):
        if path.endswith(".txt"):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def notes(values: dict[str, Any] | None = None) -> str:
    with helm.Chart.load(CHART) as chart:
        return chart.render(values or {}, name=RELEASE, namespace=NAMESPACE)["tfstate-operator/templates/NOTES.txt"]


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}: {kinds(docs)}"
    return found[0]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (c,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return c


def rules_of(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """A Role's rules as {(apiGroup, resource): verbs}, refusing wildcards and names."""
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert "*" not in (group, resource, *rule["verbs"]), f"wildcard in {role['metadata']['name']}: {rule}"
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


# --- lint ---------------------------------------------------------------------------


@pytest.mark.parametrize("values", [None, NAMESPACED, {"metrics": {"serviceMonitor": {"enabled": True}}}],
                         ids=["defaults", "namespaced", "servicemonitor"])
def test_strict_lint_is_clean(values):
    report = helm.lint(CHART, values, strict=True)
    assert report["errors"] == [], report
    # Strict mode turns warnings into errors; info messages ("icon is recommended") remain.
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


def test_strict_lint_refuses_warnings(tmp_path):
    """The strict flag is honoured: a warning (a deprecated API) becomes an error."""
    copy = tmp_path / "tfstate-operator"
    shutil.copytree(CHART, copy)
    (copy / "templates" / "old.yaml").write_text(
        "apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata:\n  name: old\nspec: {}\n")
    assert helm.lint(copy)["errors"] == []
    assert any("deprecated" in e for e in helm.lint(copy, strict=True)["errors"])


def test_chart_crds_are_the_top_level_crds():
    top, chart = ROOT / "crds", CHART / "crds"
    names = sorted(p.name for p in top.glob("*.yaml"))
    assert names, "no CRD in crds/"
    match, mismatch, errors = filecmp.cmpfiles(top, chart, names, shallow=False)
    extra = sorted({p.name for p in chart.glob("*.yaml")} - set(names))
    assert not (mismatch or errors or extra), (
        f"charts/tfstate-operator/crds/ differs from crds/ (differ: {mismatch}, missing: {errors}, "
        f"extra: {extra}). Re-sync: rm -f charts/tfstate-operator/crds/*.yaml && "
        "cp crds/*.yaml charts/tfstate-operator/crds/")
    with helm.Chart.load(CHART) as c:
        assert sorted(Path(x["filename"]).name for x in c.crds) == names


# --- default values -----------------------------------------------------------------


def test_default_objects():
    docs = render()
    assert kinds(docs) == ["ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "ServiceAccount"]
    for d in docs:
        if d["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert d["metadata"]["namespace"] == NAMESPACE, d["metadata"]


def test_default_deployment_is_hardened():
    docs = render()
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 1
    # One replica without leader election: never two reconciling pods during a rollout.
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert pod["serviceAccountName"] == "tfo-tfstate-operator"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    c = container(docs)
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    with helm.Chart.load(CHART) as chart:
        assert c["image"] == f"ghcr.io/tfstate-dev/tfstate-operator:{chart.metadata['appVersion']}"


def test_release_named_like_the_chart_names_everything_tfstate_operator():
    """docs/install.md relies on it: ServiceAccount tfstate-system/tfstate-operator (IRSA trust),
    deploy/tfstate-operator."""
    docs = render(release="tfstate-operator")
    assert one(docs, "ServiceAccount")["metadata"]["name"] == "tfstate-operator"
    assert one(docs, "Deployment")["metadata"]["name"] == "tfstate-operator"
    assert one(docs, "ClusterRole")["metadata"]["name"] == "tfstate-operator"


def test_default_probes_args_and_env():
    c = container(render())
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert c["args"] == ["run", "--metrics-addr=0.0.0.0:8080", "--health-addr=0.0.0.0:8081", "--log-format=json",
                         "--resync-interval=10m", "--concurrency=16"]
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_default_rbac_is_cluster_wide_and_exact():
    docs = render()
    role = one(docs, "ClusterRole")
    assert rules_of(role) == WATCH_RULES | POLICY_RULES
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "tfo-tfstate-operator", "namespace": NAMESPACE}]
    assert not [d for d in docs if d["kind"] in ("Role", "RoleBinding", "PodDisruptionBudget")]


def test_no_rule_anywhere_mentions_secrets():
    for values in (None, NAMESPACED, {"leaderElection": {"enabled": True}}):
        for d in render(values):
            if d["kind"] in ("Role", "ClusterRole"):
                resources = {r for rule in d["rules"] for r in rule["resources"]}
                assert not {r for r in resources if r.split("/")[0] in ("secrets", "*")}, d


def test_default_metrics_service():
    svc = one(render(), "Service")
    assert svc["spec"]["ports"] == [{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}]
    assert svc["spec"]["selector"] == {"app.kubernetes.io/name": "tfstate-operator",
                                       "app.kubernetes.io/instance": RELEASE}


# --- non-default values -------------------------------------------------------------


def test_namespaced_objects():
    docs = render(NAMESPACED)
    assert kinds(docs) == ["ClusterRole", "ClusterRoleBinding", "Deployment", "PodDisruptionBudget", "Role", "Role",
                           "RoleBinding", "RoleBinding", "ServiceAccount"]
    sa = one(docs, "ServiceAccount")
    assert sa["metadata"]["annotations"] == IRSA


def test_namespaced_rbac_is_a_role_in_the_watched_namespace():
    docs = render(NAMESPACED)
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Role"}
    watch, lease = roles["tfo-tfstate-operator"], roles["tfo-tfstate-operator-leader-election"]
    assert watch["metadata"]["namespace"] == "team-a"
    assert rules_of(watch) == WATCH_RULES
    # Leases only in the operator's own namespace.
    assert lease["metadata"]["namespace"] == NAMESPACE
    assert rules_of(lease) == LEASE_RULES
    bindings = {d["metadata"]["name"]: d for d in docs if d["kind"] == "RoleBinding"}
    for name, ns in (("tfo-tfstate-operator", "team-a"), ("tfo-tfstate-operator-leader-election", NAMESPACE)):
        b = bindings[name]
        assert b["metadata"]["namespace"] == ns
        assert b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": "tfo-tfstate-operator", "namespace": NAMESPACE}]


def test_namespaced_rbac_reads_policies_cluster_wide_and_nothing_else():
    """TerraformStatePolicies are cluster-scoped: a Role cannot grant them, so a small ClusterRole does."""
    docs = render(NAMESPACED)
    role = one(docs, "ClusterRole")
    assert role["metadata"]["name"] == "tfo-tfstate-operator-policies"
    assert rules_of(role) == POLICY_RULES
    binding = one(docs, "ClusterRoleBinding")
    assert binding["metadata"]["name"] == "tfo-tfstate-operator-policies"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": "tfo-tfstate-operator-policies"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "tfo-tfstate-operator", "namespace": NAMESPACE}]
    # Nothing of the watch rules leaks cluster-wide.
    assert not set(rules_of(role)) & set(WATCH_RULES)


def test_every_mode_may_read_policies_and_never_write_them():
    for values in (None, NAMESPACED, {"leaderElection": {"enabled": True}}, {"watchNamespace": "team-a"}):
        granted: dict[tuple[str, str], set[str]] = {}
        for d in render(values):
            if d["kind"] == "ClusterRole":
                for key, verbs in rules_of(d).items():
                    granted.setdefault(key, set()).update(verbs)
            if d["kind"] == "Role":
                assert ("tfstate.dev", "terraformstatepolicies") not in rules_of(d), d["metadata"]["name"]
        assert granted[("tfstate.dev", "terraformstatepolicies")] == {"get", "list", "watch"}, values
        assert granted[("", "namespaces")] == {"get", "list", "watch"}, values


def test_namespaced_args_leader_election_and_pdb():
    docs = render(NAMESPACED)
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert "strategy" not in deployment["spec"]  # rolling updates: the lease keeps one leader
    c = container(docs)
    # Metrics off: no metrics port; /metrics shares the health listener (the binary always serves it).
    assert c["args"] == ["run", "--metrics-addr=0.0.0.0:8081", "--health-addr=0.0.0.0:8081", "--log-format=json",
                         "--resync-interval=10m", "--concurrency=16", "--namespace=team-a",
                         "--default-region=eu-west-1", "--leader-elect"]
    assert [p["name"] for p in c["ports"]] == ["health"]
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"  # policy/v1beta1 on clusters without policy/v1 (< 1.21)
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": {
        "app.kubernetes.io/name": "tfstate-operator", "app.kubernetes.io/instance": RELEASE}}}


def test_leader_election_on_one_replica():
    docs = render({"leaderElection": {"enabled": True}})
    assert "--leader-elect" in container(docs)["args"]
    assert rules_of(next(d for d in docs if d["kind"] == "Role")) == LEASE_RULES
    assert not [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert "--leader-elect" not in container(render())["args"]


def test_service_and_service_monitor_toggles():
    monitor = {"metrics": {"serviceMonitor": {"enabled": True, "interval": "15s"}}}
    sm = one(render(monitor), "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s"}]
    assert sm["spec"]["selector"]["matchLabels"] == one(render(monitor), "Service")["spec"]["selector"]
    assert "ServiceMonitor" not in kinds(render())
    no_service = {"metrics": {"service": {"enabled": False}, "serviceMonitor": {"enabled": True}}}
    assert not {"Service", "ServiceMonitor"} & set(kinds(render(no_service)))
    off = {"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}}
    assert not {"Service", "ServiceMonitor"} & set(kinds(render(off)))


def test_aws_settings_and_ca_bundle_from_a_config_map():
    docs = render({"awsEndpointUrl": "https://s3.example.internal", "awsCaBundle": {"configMap": "corp-ca",
                   "key": "bundle.pem"}, "resyncInterval": "1h", "concurrency": 4, "logFormat": "text"})
    c = container(docs)
    assert c["args"][3:] == ["--log-format=text", "--resync-interval=1h", "--concurrency=4",
                             "--aws-endpoint-url=https://s3.example.internal",
                             "--aws-ca-bundle=/etc/tfstate-operator/aws-ca/bundle.pem"]
    assert {"name": "aws-ca-bundle", "mountPath": "/etc/tfstate-operator/aws-ca", "readOnly": True} in c["volumeMounts"]
    volumes = one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "aws-ca-bundle", "configMap": {"name": "corp-ca", "items": [
        {"key": "bundle.pem", "path": "bundle.pem"}]}} in volumes


def test_aws_rate_limits_become_one_flag_sorted_by_service():
    c = container(render({"aws": {"rateLimit": {"s3": 50, "kms": 20, "iam": 2.5}}}))
    assert "--aws-rate-limit=iam=2.5,kms=20,s3=50" in c["args"]
    assert not any(a.startswith("--aws-rate-limit") for a in container(render())["args"])


def test_pod_placement_env_and_annotations_pass_through():
    values = {
        "image": {"repository": "registry.example/tfso", "tag": "dev", "pullPolicy": "Always"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {}},
        "podAnnotations": {"example.com/scrape": "true"},
        "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
        "logLevel": "tfstate_operator=debug,info",
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
        "serviceAccount": {"create": False, "name": "existing-sa"},
    }
    docs = render(values)
    pod = one(docs, "Deployment")["spec"]["template"]
    assert pod["metadata"]["annotations"] == {"example.com/scrape": "true"}
    spec = pod["spec"]
    assert spec["nodeSelector"] == values["nodeSelector"]
    assert spec["tolerations"] == values["tolerations"]
    assert spec["affinity"] == values["affinity"]
    assert spec["serviceAccountName"] == "existing-sa"
    c = container(docs)
    assert c["image"] == "registry.example/tfso:dev" and c["imagePullPolicy"] == "Always"
    assert c["resources"] == values["resources"]
    assert {"name": "HTTPS_PROXY", "value": "http://proxy:3128"} in c["env"]
    assert {"name": "RUST_LOG", "value": "tfstate_operator=debug,info"} in c["env"]
    assert "ServiceAccount" not in kinds(docs)
    assert one(docs, "ClusterRoleBinding")["subjects"][0]["name"] == "existing-sa"


def test_rbac_create_false_renders_no_rbac():
    assert not {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"} & set(
        kinds(render({"rbac": {"create": False}, "replicas": 3})))


def test_notes():
    text = notes()
    assert "in all namespaces" in text and "kubectl get tfsb -A" in text
    text = notes(NAMESPACED)
    assert 'in namespace "team-a" only' in text and "leader election" in text
    assert "eks.amazonaws.com/role-arn" not in text  # the IRSA hint only when nothing is set


# --- values schema --------------------------------------------------------------------


@pytest.mark.parametrize("values", [None, NAMESPACED, {"metrics": {"serviceMonitor": {"enabled": True}},
                                                       "awsCaBundle": {"configMap": "ca"}, "global": {}}])
def test_schema_accepts_good_values(values):
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(values)


@pytest.mark.parametrize("values, where", [
    ({"replicas": "two"}, "/replicas"),
    ({"replicas": -1}, "/replicas"),
    ({"replica": 2}, "additional properties 'replica'"),
    ({"image": {"tagg": "1"}}, "additional properties 'tagg'"),
    ({"logFormat": "xml"}, "/logFormat"),
    ({"concurrency": 0}, "/concurrency"),
    ({"resyncInterval": "soon"}, "/resyncInterval"),
    ({"metrics": {"port": "8080"}}, "/metrics/port"),
    ({"metrics": {"enabled": "yes"}}, "/metrics/enabled"),
    ({"serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": 1}}}, "/serviceAccount/annotations"),
    ({"watchNamespace": "Team_A"}, "/watchNamespace"),
    ({"defaultRegion": "Ireland"}, "/defaultRegion"),
    ({"extraEnv": [{"value": "x"}]}, "/extraEnv/0"),
    ({"leaderElection": {"enabled": 1}}, "/leaderElection/enabled"),
    ({"aws": {"rateLimit": {"ec2": 5}}}, "additional properties 'ec2'"),
    ({"aws": {"rateLimit": {"s3": 0}}}, "/aws/rateLimit/s3"),
    ({"aws": {"rateLimit": {"s3": "50"}}}, "/aws/rateLimit/s3"),
])
def test_schema_rejects_bad_values(values, where):
    with helm.Chart.load(CHART) as chart:
        with pytest.raises(helm.HelmValuesError, match=where):
            chart.validate_schema(values)
        # Rendering (and so installing) refuses them too.
        with pytest.raises(helm.HelmValuesError, match="schema"):
            chart.render(values, name=RELEASE, namespace=NAMESPACE)
