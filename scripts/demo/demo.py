"""The demo's client side: talks to the test ground's kube-apiserver (plain HTTPS with the
admin token, no kubectl needed) and reads AWS back from the emulator with boto3, independently
of the operator.

    demo.py ENV_FILE prepare   install the CRD, the namespace and what two samples rely on
    demo.py ENV_FILE apply     apply every sample, wait until all are Ready, print a report
"""

import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import botocore.config
import yaml

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "tfstate-demo"
LOG_BUCKET = "acme-s3-access-logs"  # named by samples/irsa.yaml
GROUP = "/apis/tfstate.dev/v1alpha1"


class Ground:
    def __init__(self, env_file: str):
        self.env = dict(line.split("=", 1) for line in Path(env_file).read_text().split() if "=" in line)
        self.api = self.env["KUBE_APISERVER_URL"]
        self.tls = ssl.create_default_context(cafile=str(Path(self.env["TESTGROUND_DIR"]) / "certs/apiserver.crt"))

    def kube(self, method: str, path: str, body=None, content_type="application/json"):
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(self.api + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.env["TESTGROUND_ADMIN_TOKEN"])
        req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self.tls, timeout=30) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            raise SystemExit(f"demo: {method} {path}: {e.code} {e.read().decode()[:500]}")

    def apply(self, path: str, obj: dict):
        """Server-side apply, the way GitOps tools apply objects."""
        return self.kube("PATCH", f"{path}?fieldManager=tfstate-demo&force=true", json.dumps(obj).encode(),
                         "application/apply-patch+yaml")

    def aws(self, service: str):
        return boto3.client(service, endpoint_url=self.env["AWS_ENDPOINT_URL"], verify=self.env["AWS_CA_BUNDLE"],
                            region_name=self.env["AWS_REGION"], aws_access_key_id="test", aws_secret_access_key="test",
                            config=botocore.config.Config(s3={"addressing_style": "path"}))


def samples() -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in sorted((ROOT / "samples").glob("*.yaml"))]


def prepare(g: Ground) -> None:
    crd = yaml.safe_load((ROOT / "crds/terraformstatebackends.tfstate.dev.yaml").read_text())
    g.apply(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}", crd)
    for _ in range(100):
        got = g.kube("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}")
        if any(c["type"] == "Established" and c["status"] == "True" for c in got.get("status", {}).get("conditions", [])):
            break
        time.sleep(0.1)
    g.apply(f"/api/v1/namespaces/{NAMESPACE}", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    # What two samples expect to exist already: a bucket for access logs, and a KMS key of
    # the platform team (moto cannot create a key with the sample's fixed ID: see apply).
    s3 = g.aws("s3")
    try:
        s3.create_bucket(Bucket=LOG_BUCKET, CreateBucketConfiguration={"LocationConstraint": g.env["AWS_REGION"]})
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    # S3 delivers access logs only into a bucket whose policy lets the logging service write.
    s3.put_bucket_policy(Bucket=LOG_BUCKET, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "S3ServerAccessLogs", "Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"},
        "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{LOG_BUCKET}/*"}]}))
    print(f"demo: CRD installed, namespace {NAMESPACE}, log bucket {LOG_BUCKET}")


def existing_key(g: Ground) -> str:
    kms = g.aws("kms")
    for alias in kms.list_aliases()["Aliases"]:
        if alias["AliasName"] == "alias/platform-team-key":
            return kms.describe_key(KeyId=alias["TargetKeyId"])["KeyMetadata"]["Arn"]
    arn = kms.create_key(Description="the platform team's own key (demo)")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName="alias/platform-team-key", TargetKeyId=arn)
    return arn


def apply_and_report(g: Ground, timeout: float = 180) -> int:
    key_arn = existing_key(g)
    names = []
    for obj in samples():
        obj["metadata"]["namespace"] = NAMESPACE
        enc = obj["spec"].get("encryption", {}).get("kmsKey", {})
        if "existingKeyArn" in enc:
            print(f"demo: {obj['metadata']['name']}: using the demo's existing key {key_arn}")
            enc["existingKeyArn"] = key_arn
        name = obj["metadata"]["name"]
        g.apply(f"{GROUP}/namespaces/{NAMESPACE}/terraformstatebackends/{name}", obj)
        names.append(name)
    print(f"demo: applied {len(names)} backends from samples/: {', '.join(names)}")

    started, items = time.time(), []
    while time.time() - started < timeout:
        items = g.kube("GET", f"{GROUP}/namespaces/{NAMESPACE}/terraformstatebackends")["items"]
        if len(items) == len(names) and all(ready(o) == "True" for o in items):
            break
        time.sleep(0.5)
    print(f"\n{'NAME':16} {'READY':6} {'LOCK':9} {'BUCKET':30} ROLE")
    for o in items:
        s = o.get("status", {})
        print(f"{o['metadata']['name']:16} {ready(o):6} {o['spec']['locking']['mode']:9} {o['spec']['bucket']['name']:30} {s.get('roleArn', '-')}")
    not_ready = [o for o in items if ready(o) != "True"]
    if not_ready:
        for o in not_ready:
            for c in o.get("status", {}).get("conditions", []):
                print(f"  {o['metadata']['name']}: {c['type']}={c['status']} {c['reason']}: {c['message']}")
        print(f"demo: {len(not_ready)} backend(s) not Ready after {timeout:.0f} s")
        return 1
    print(f"demo: all {len(items)} backends Ready in {time.time() - started:.1f} s")

    cm = g.kube("GET", f"/api/v1/namespaces/{NAMESPACE}/configmaps/minimal-backend")
    print("\n--- ConfigMap minimal-backend: backend.tf ---")
    print(cm["data"]["backend.tf"])
    print("--- flat keys (for -backend-config=KEY=VALUE) ---")
    for k, v in sorted(cm["data"].items()):
        if "." not in k:
            print(f"{k}={v}")
    print("\n--- AWS, read back independently with boto3 ---")
    for o in items:
        summarize(g, o)
    return 0


def ready(obj: dict) -> str:
    for c in obj.get("status", {}).get("conditions", []):
        if c["type"] == "Ready":
            return c["status"]
    return "-"


def summarize(g: Ground, obj: dict) -> None:
    s3, kms, ddb, iam = g.aws("s3"), g.aws("kms"), g.aws("dynamodb"), g.aws("iam")
    st, bucket = obj["status"], obj["spec"]["bucket"]["name"]
    enc = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    pab = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    sids = [x.get("Sid") for x in json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]]
    print(f"{obj['metadata']['name']}:")
    print(f"  bucket {bucket}: versioning {s3.get_bucket_versioning(Bucket=bucket).get('Status')}, "
          f"{enc['ApplyServerSideEncryptionByDefault']['SSEAlgorithm']} (bucket key {enc.get('BucketKeyEnabled', False)}), "
          f"public access blocked {all(pab.values())}, policy {sids}")
    if st.get("kmsKeyArn"):
        rot = kms.get_key_rotation_status(KeyId=st["kmsKeyArn"])["KeyRotationEnabled"]
        print(f"  key {st['kmsKeyArn'].split('/')[-1]}: rotation {rot}")
    if st.get("lockTableArn"):
        t = ddb.describe_table(TableName=st["lockTableArn"].split("/")[-1])["Table"]
        pitr = ddb.describe_continuous_backups(TableName=t["TableName"])["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"]
        print(f"  table {t['TableName']}: {t['BillingModeSummary']['BillingMode']}, PITR {pitr}, deletion protection {t.get('DeletionProtectionEnabled')}")
    role = st["roleArn"].split("/")[-1]
    stmts = json.loads(json.dumps(iam.get_role_policy(RoleName=role, PolicyName="tfstate-backend")["PolicyDocument"]))["Statement"]
    print(f"  role {role}: inline policy {[x.get('Sid') for x in stmts]}")


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[2] not in ("prepare", "apply"):
        print(__doc__, file=sys.stderr)
        return 2
    g = Ground(sys.argv[1])
    if sys.argv[2] == "prepare":
        prepare(g)
        return 0
    return apply_and_report(g)


if __name__ == "__main__":
    sys.exit(main())
