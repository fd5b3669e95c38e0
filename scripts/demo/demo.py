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
TRAIL_LOG_BUCKET = "acme-cloudtrail-logs"  # named by samples/audit.yaml
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

    def aws(self, service: str, region: str | None = None):
        return boto3.client(service, endpoint_url=self.env["AWS_ENDPOINT_URL"], verify=self.env["AWS_CA_BUNDLE"],
                            region_name=region or self.env["AWS_REGION"], aws_access_key_id="test", aws_secret_access_key="test",
                            config=botocore.config.Config(s3={"addressing_style": "path"}))


def conditions(obj) -> list[dict]:
    """The object's status conditions; [] while the server has not filled them in (a key that
    is absent or null: a fresh CRD is served with `status.conditions: null` for a while)."""
    return ((obj or {}).get("status") or {}).get("conditions") or []


def condition_status(obj, type_: str) -> str:
    """The status of the condition `type_` ("True", "False", "Unknown"), or "-" if absent."""
    return next((c.get("status") or "-" for c in conditions(obj) if c.get("type") == type_), "-")


def wait_for(what: str, timeout: float, probe, detail=lambda: "", interval: float = 0.2):
    """Polls `probe` until it returns something truthy, or exits with a clear message naming
    `what` and `detail()` once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            extra = detail()
            raise SystemExit(f"demo: gave up after {timeout:.0f} s waiting for {what}" + (f"\n{extra}" if extra else ""))
        time.sleep(interval)


def samples() -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in sorted((ROOT / "samples").glob("*.yaml"))]


def prepare(g: Ground) -> None:
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        crd_path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"
        g.apply(crd_path, crd)
        wait_for(f"CRD {crd['metadata']['name']} to be Established", 60,
                 lambda: condition_status(g.kube("GET", crd_path), "Established") == "True",
                 lambda: f"conditions: {conditions(g.kube('GET', crd_path))}")
    # The platform team's policy for the demo's namespace (samples/policies/): two samples
    # trust service accounts of other namespaces, which the built-in default refuses.
    for path in sorted((ROOT / "samples/policies").glob("*.yaml")):
        policy = yaml.safe_load(path.read_text())
        g.apply(f"{GROUP}/terraformstatepolicies/{policy['metadata']['name']}", policy)
    g.apply(f"/api/v1/namespaces/{NAMESPACE}", {"apiVersion": "v1", "kind": "Namespace",
                                                "metadata": {"name": NAMESPACE, "labels": {"tfstate.dev/tenant": "demo"}}})
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
    # The audit sample's trail delivers into a bucket whose policy lets CloudTrail write (the
    # emulator does not check it; AWS does, at CreateTrail).
    try:
        s3.create_bucket(Bucket=TRAIL_LOG_BUCKET, CreateBucketConfiguration={"LocationConstraint": g.env["AWS_REGION"]})
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    s3.put_bucket_policy(Bucket=TRAIL_LOG_BUCKET, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "AWSCloudTrailAclCheck", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
         "Action": "s3:GetBucketAcl", "Resource": f"arn:aws:s3:::{TRAIL_LOG_BUCKET}"},
        {"Sid": "AWSCloudTrailWrite", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
         "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{TRAIL_LOG_BUCKET}/*",
         "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control"}}}]}))
    print(f"demo: CRDs installed, policy platform-defaults, namespace {NAMESPACE}, log buckets {LOG_BUCKET} "
          f"and {TRAIL_LOG_BUCKET}")


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
        enc = ((obj["spec"].get("encryption") or {}).get("kmsKey") or {})
        if "existingKeyArn" in enc:
            print(f"demo: {obj['metadata']['name']}: using the demo's existing key {key_arn}")
            enc["existingKeyArn"] = key_arn
        name = obj["metadata"]["name"]
        g.apply(f"{GROUP}/namespaces/{NAMESPACE}/terraformstatebackends/{name}", obj)
        names.append(name)
    print(f"demo: applied {len(names)} backends from samples/: {', '.join(names)}")

    started = time.monotonic()
    listing = f"{GROUP}/namespaces/{NAMESPACE}/terraformstatebackends"

    def settled(o):
        # Ready, and the lock read: a lock table created in this pass is first read by the
        # verify pass a moment later (status.lock is what the read-back shows).
        return ready(o) == "True" and "lock" in (o.get("status") or {})

    def all_ready():
        items = (g.kube("GET", listing) or {}).get("items") or []
        mine = [o for o in items if o["metadata"]["name"] in names]
        return mine if len(mine) == len(names) and all(settled(o) for o in mine) else None

    try:
        items = wait_for(f"{len(names)} backends to be Ready with their lock read", timeout, all_ready)
    except SystemExit as e:
        print(e)
        items = (g.kube("GET", listing) or {}).get("items") or []
    print(f"\n{'NAME':16} {'READY':6} {'LOCK':9} {'BUCKET':30} {'POLICY':18} ROLE")
    for o in items:
        s = o.get("status") or {}
        print(f"{o['metadata']['name']:16} {ready(o):6} {o['spec']['locking']['mode']:9} "
              f"{o['spec']['bucket']['name']:30} {s.get('policy') or '-':18} {s.get('roleArn') or '-'}")
    not_ready = [n for n in names if not any(o["metadata"]["name"] == n and ready(o) == "True" for o in items)]
    if not_ready:
        for o in items:
            if o["metadata"]["name"] in not_ready:
                for c in conditions(o):
                    print(f"  {o['metadata']['name']}: {c.get('type')}={c.get('status')} {c.get('reason')}: {c.get('message')}")
        print(f"demo: FAILED: {len(not_ready)} backend(s) not Ready after {timeout:.0f} s: {', '.join(not_ready)}")
        return 1
    print(f"demo: all {len(items)} backends Ready in {time.monotonic() - started:.1f} s")

    cm = g.kube("GET", f"/api/v1/namespaces/{NAMESPACE}/configmaps/minimal-backend")
    print("\n--- ConfigMap minimal-backend: backend.tf ---")
    print(cm["data"]["backend.tf"])
    print("--- flat keys (for -backend-config=KEY=VALUE) ---")
    for k, v in sorted(cm["data"].items()):
        if "." not in k and k != "TF_ENCRYPTION":
            print(f"{k}={v}")
    tofu = [o for o in items if ((o["spec"].get("output") or {}).get("openTofuEncryption"))]
    for o in tofu:
        cm_name = (o.get("status") or {}).get("configMapName") or f"{o['metadata']['name']}-backend"
        data = (g.kube("GET", f"/api/v1/namespaces/{NAMESPACE}/configmaps/{cm_name}") or {}).get("data") or {}
        print(f"\n--- ConfigMap {cm_name}: encryption.tf (OpenTofu client-side encryption) ---")
        print(data.get("encryption.tf", "(missing)"))
    print("\n--- AWS, read back independently with boto3 ---")
    problems = []
    for o in items:
        problems += summarize(g, o)
    if problems:
        for p in problems:
            print(f"  MISSING: {p}")
        print(f"demo: FAILED: the read-back found {len(problems)} setting(s) missing")
        return 1
    print(f"demo: read-back: every setting of all {len(items)} backends is as the spec asks")
    return 0


def ready(obj: dict) -> str:
    return condition_status(obj, "Ready")


def summarize(g: Ground, obj: dict) -> list[str]:
    """Prints what AWS holds for one backend, read back without the operator, and returns what
    is missing from what the spec asks for (each a sentence naming the resource)."""
    s3, kms, ddb, iam = g.aws("s3"), g.aws("kms"), g.aws("dynamodb"), g.aws("iam")
    name, spec, st = obj["metadata"]["name"], obj["spec"], obj.get("status") or {}
    bucket, problems = spec["bucket"]["name"], []

    def expect(ok: bool, what: str) -> None:
        if not ok:
            problems.append(f"{name}: {what}")

    kms_mode = (spec.get("encryption") or {}).get("mode", "KMS") == "KMS"
    versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    algorithm = rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]
    pab = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    ownership = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"][0]["ObjectOwnership"]
    statements = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
    lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules") or []
    print(f"{name}:")
    print(f"  bucket {bucket}: versioning {versioning}, {algorithm} (bucket key {rule.get('BucketKeyEnabled', False)}), "
          f"public access blocked {all(pab.values())}, {ownership}, {len(lifecycle)} lifecycle rule(s), "
          f"policy {[x.get('Sid') for x in statements]}")
    expect(versioning == "Enabled", f"bucket {bucket} versioning is {versioning}, not Enabled")
    expect(algorithm == ("aws:kms" if kms_mode else "AES256"), f"bucket {bucket} default encryption is {algorithm}")
    expect(not kms_mode or rule.get("BucketKeyEnabled") is True, f"bucket {bucket} has no Bucket Key")
    expect(len(pab) == 4 and all(pab.values()), f"bucket {bucket} public access block is {pab}")
    expect(ownership == "BucketOwnerEnforced", f"bucket {bucket} object ownership is {ownership}")
    expect(any(x.get("Effect") == "Deny" and "aws:SecureTransport" in json.dumps(x.get("Condition")) for x in statements),
           f"bucket {bucket} policy does not refuse plain HTTP")
    expect(bool(lifecycle), f"bucket {bucket} has no lifecycle rule")
    if kms_mode:
        arn = st.get("kmsKeyArn")
        expect(bool(arn), "status.kmsKeyArn is empty")
        if arn:
            rot = kms.get_key_rotation_status(KeyId=arn)["KeyRotationEnabled"]
            print(f"  key {arn.split('/')[-1]}: rotation {rot}")
            if "create" in ((spec.get("encryption") or {}).get("kmsKey") or {"create": {}}):
                expect(rot is True, f"key {arn} has rotation off")
            expect(rule["ApplyServerSideEncryptionByDefault"].get("KMSMasterKeyID") == arn,
                   f"bucket {bucket} is not encrypted with the backend's key {arn}")
    if (spec.get("locking") or {}).get("mode", "DynamoDB") != "Lockfile":
        arn = st.get("lockTableArn")
        expect(bool(arn), "status.lockTableArn is empty")
        if arn:
            t = ddb.describe_table(TableName=arn.split("/")[-1])["Table"]
            pitr = ddb.describe_continuous_backups(TableName=t["TableName"])["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"]
            mode = (t.get("BillingModeSummary") or {}).get("BillingMode")
            print(f"  table {t['TableName']}: {mode}, PITR {pitr}, deletion protection {t.get('DeletionProtectionEnabled')}")
            expect(mode == "PAY_PER_REQUEST", f"table {t['TableName']} billing mode is {mode}")
            expect(pitr == "ENABLED", f"table {t['TableName']} has PITR {pitr}")
            expect(t.get("DeletionProtectionEnabled") is True, f"table {t['TableName']} has no deletion protection")
    role_arn = st.get("roleArn")
    expect(bool(role_arn), "status.roleArn is empty")
    if role_arn:
        role = role_arn.split("/")[-1]
        stmts = iam.get_role_policy(RoleName=role, PolicyName="tfstate-backend")["PolicyDocument"]["Statement"]
        print(f"  role {role}: inline policy {[x.get('Sid') for x in stmts]}")
        expect(bool(stmts), f"role {role} has an empty inline policy")
    audit = ((spec.get("audit") or {}).get("cloudTrail"))
    if audit:
        problems += summarize_trail(g, name, bucket, audit, st.get("trailArn"))
    lock = st.get("lock")
    print(f"  lock (status.lock, read by the operator from its {st.get('lockMode', '-')} lock): "
          f"held {(lock or {}).get('held')}{', id ' + lock['id'] if (lock or {}).get('id') else ''}")
    expect(isinstance(lock, dict) and "held" in lock, "status.lock is missing")
    if spec.get("replication"):
        problems += summarize_replica(g, obj, expect)
    cm_name = st.get("configMapName") or "-"
    cm = g.kube("GET", f"/api/v1/namespaces/{NAMESPACE}/configmaps/{cm_name}") if cm_name != "-" else None
    expect('backend "s3"' in ((cm or {}).get("data") or {}).get("backend.tf", ""),
           f"ConfigMap {cm_name} has no backend.tf with a backend \"s3\" block")
    if (spec.get("output") or {}).get("openTofuEncryption"):
        data = (cm or {}).get("data") or {}
        enc, env, key = data.get("encryption.tf", ""), data.get("TF_ENCRYPTION", ""), st.get("kmsKeyArn") or "?"
        direct = [x for x in (stmts if role_arn else []) if x.get("Sid") == "OpenTofuStateEncryption"]
        print(f"  opentofu encryption: encryption.tf {'present' if enc else 'MISSING'}, TF_ENCRYPTION "
              f"{'present' if env else 'MISSING'}, aws_kms key {key.split('/')[-1]}, "
              f"role grants {direct[0]['Action'] if direct else 'nothing direct'}")
        for text, what in ((enc, "encryption.tf"), (env, "TF_ENCRYPTION")):
            expect('key_provider "aws_kms"' in text and f'kms_key_id = "{key}"' in text
                   and "enforced = true" in text, f"ConfigMap {cm_name} {what} does not name the backend's key {key}")
        expect(bool(direct), f"role of {name} lacks the direct key use OpenTofu's aws_kms needs")
    return problems


def summarize_trail(g: Ground, name: str, bucket: str, audit: dict, arn) -> list[str]:
    """Prints the backend's audit trail as CloudTrail holds it and returns what differs from
    what spec.audit.cloudTrail asks for: the log bucket and prefix, single-region, no global
    (management) events, log file validation, logging, and exactly one advanced selector for
    the S3 data events of the state bucket's objects."""
    if not arn:
        return [f"{name}: status.trailArn is empty"]
    ct, problems = g.aws("cloudtrail"), []
    trail = ct.get_trail(Name=arn)["Trail"]
    logging = ct.get_trail_status(Name=arn)["IsLogging"]
    selectors = ct.get_event_selectors(TrailName=arn)
    advanced = selectors.get("AdvancedEventSelectors") or []
    fields = sorted((f["Field"], op, tuple(f[op])) for s in advanced for f in s["FieldSelectors"]
                    for op in ("Equals", "StartsWith", "EndsWith", "NotEquals", "NotStartsWith", "NotEndsWith") if f.get(op))
    want = sorted([("eventCategory", "Equals", ("Data",)), ("resources.type", "Equals", ("AWS::S3::Object",)),
                   ("resources.ARN", "StartsWith", (f"arn:aws:s3:::{bucket}/",))])
    prefix = trail.get("S3KeyPrefix") or ""
    print(f"  trail {trail['Name']}: logging {logging}, log file validation {trail['LogFileValidationEnabled']}, "
          f"multi-region {trail['IsMultiRegionTrail']}, global events {trail['IncludeGlobalServiceEvents']}, "
          f"records {[f'{f} {op} {list(v)}' for f, op, v in fields]}, delivers to s3://{trail['S3BucketName']}/{prefix}")
    def expect(ok: bool, what: str) -> None:
        if not ok:
            problems.append(f"{name}: trail {trail['Name']} {what}")
    expect(logging is True, "is not logging")
    expect(trail["LogFileValidationEnabled"] is True, "has log file validation off")
    expect(trail["IsMultiRegionTrail"] is False, "is multi-region")
    expect(trail["IncludeGlobalServiceEvents"] is False, "includes global service events")
    expect(trail["S3BucketName"] == audit["logBucket"], f"delivers to {trail['S3BucketName']}")
    expect(prefix == (audit.get("logPrefix") or ""), f"has the prefix {prefix!r}")
    expect(not selectors.get("EventSelectors"), "has basic event selectors (management events)")
    expect(len(advanced) == 1 and fields == want, f"records {fields}, not only the state bucket's objects")
    return problems


def summarize_replica(g: Ground, obj: dict, expect) -> list[str]:
    """The replica of `spec.replication`, read back in both regions without the operator."""
    spec, st = obj["spec"], obj.get("status") or {}
    r = spec["replication"]
    region, bucket = r["region"], r.get("bucketName") or spec["bucket"]["name"] + "-replica"
    s3r, kmsr, iam, s3 = g.aws("s3", region), g.aws("kms", region), g.aws("iam"), g.aws("s3")
    versioning = s3r.get_bucket_versioning(Bucket=bucket).get("Status")
    rule = s3r.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    key = rule["ApplyServerSideEncryptionByDefault"].get("KMSMasterKeyID")
    pab = s3r.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    ownership = s3r.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"][0]["ObjectOwnership"]
    sids = [x.get("Sid") for x in json.loads(s3r.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]]
    key_meta = kmsr.describe_key(KeyId=key)["KeyMetadata"] if key else {}
    rotation = kmsr.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"] if key else None
    conf = s3.get_bucket_replication(Bucket=spec["bucket"]["name"])["ReplicationConfiguration"]
    rep = conf["Rules"][0]
    role = conf["Role"].split("/")[-1]
    trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
    print(f"  replica {bucket} ({region}): versioning {versioning}, key {(key or '-').split('/')[-1]} "
          f"(region {key_meta.get('Arn', '::::').split(':')[3]}, rotation {rotation}), bucket key "
          f"{rule.get('BucketKeyEnabled', False)}, public access blocked {all(pab.values())}, {ownership}, policy {sids}")
    print(f"  replication of {spec['bucket']['name']}: role {role} (trusted by {trust}), rule {rep.get('ID')} "
          f"{rep.get('Status')}, KMS objects {rep.get('SourceSelectionCriteria', {}).get('SseKmsEncryptedObjects', {}).get('Status')}, "
          f"delete markers {rep.get('DeleteMarkerReplication', {}).get('Status')}, "
          f"RTC {rep['Destination'].get('ReplicationTime', {}).get('Status', 'off')}")
    expect(versioning == "Enabled", f"replica {bucket} versioning is {versioning}")
    expect(key is not None and key == st.get("replicaKmsKeyArn"), f"replica {bucket} is not encrypted with status.replicaKmsKeyArn")
    expect(key_meta.get("Arn", "").split(":")[3:4] == [region], f"replica key {key} is not in {region}")
    expect(rotation is True, f"replica key {key} has rotation off")
    expect(rule.get("BucketKeyEnabled") is True, f"replica {bucket} has no Bucket Key")
    expect(len(pab) == 4 and all(pab.values()), f"replica {bucket} public access block is {pab}")
    expect(ownership == "BucketOwnerEnforced", f"replica {bucket} object ownership is {ownership}")
    expect("DenyWritesButReplication" in sids, f"replica {bucket} policy does not refuse writes")
    expect(conf["Role"] == st.get("replicationRoleArn"), "the replication configuration names another role")
    expect(trust == {"Service": "s3.amazonaws.com"}, f"replication role {role} is trusted by {trust}")
    expect(rep["Destination"].get("EncryptionConfiguration", {}).get("ReplicaKmsKeyID") == key,
           "the replication rule does not name the replica key")
    expect(rep.get("DeleteMarkerReplication", {}).get("Status") == "Disabled", "delete markers are replicated")
    return []


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
