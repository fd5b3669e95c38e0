"""Tests of proxy.py: the pure parts (which AWS call a request is, rule matching), and end to
end against a real proxy in front of a real moto (through scripts/moto/launcher.py), driven by
boto3 and raw sockets. Run with the moto venv's python:
    venv=$(scripts/install-moto.sh) && "$venv/bin/python" -m pytest scripts/faults -q
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from email.message import Message
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import proxy  # noqa: E402
from proxy import BadRequest, Rule, RuleSet, operation_of, service_of  # noqa: E402

REGION = "eu-west-1"


def headers(**h) -> Message:
    """Request headers as BaseHTTPRequestHandler parses them."""
    m = Message()
    for k, v in h.items():
        m[k.replace("_", "-")] = v
    return m


def auth(service: str) -> str:
    return (f"AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/{service}/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=abc")


# --------------------------------------------------------------------------------------------
# Which AWS call a request is
# --------------------------------------------------------------------------------------------

S3_CASES = [
    ("GET", "/", "", {}, "ListBuckets"),
    ("PUT", "/b", "", {}, "CreateBucket"),
    ("HEAD", "/b", "", {}, "HeadBucket"),
    ("DELETE", "/b", "", {}, "DeleteBucket"),
    ("GET", "/b", "", {}, "ListObjects"),
    ("GET", "/b", "list-type=2&prefix=x", {}, "ListObjectsV2"),
    ("GET", "/b", "versions", {}, "ListObjectVersions"),
    ("GET", "/b", "uploads", {}, "ListMultipartUploads"),
    ("GET", "/b", "location", {}, "GetBucketLocation"),
    ("PUT", "/b", "policy", {}, "PutBucketPolicy"),
    ("GET", "/b", "policy", {}, "GetBucketPolicy"),
    ("DELETE", "/b", "policy", {}, "DeleteBucketPolicy"),
    ("GET", "/b", "tagging", {}, "GetBucketTagging"),
    ("PUT", "/b", "tagging", {}, "PutBucketTagging"),
    ("PUT", "/b", "versioning", {}, "PutBucketVersioning"),
    ("GET", "/b", "versioning", {}, "GetBucketVersioning"),
    ("PUT", "/b", "encryption", {}, "PutBucketEncryption"),
    ("PUT", "/b", "publicAccessBlock", {}, "PutPublicAccessBlock"),
    ("GET", "/b", "publicAccessBlock", {}, "GetPublicAccessBlock"),
    ("DELETE", "/b", "publicAccessBlock", {}, "DeletePublicAccessBlock"),
    ("PUT", "/b", "ownershipControls", {}, "PutBucketOwnershipControls"),
    ("PUT", "/b", "lifecycle", {}, "PutBucketLifecycleConfiguration"),
    ("GET", "/b", "lifecycle", {}, "GetBucketLifecycleConfiguration"),
    ("DELETE", "/b", "lifecycle", {}, "DeleteBucketLifecycle"),
    ("PUT", "/b", "logging", {}, "PutBucketLogging"),
    ("GET", "/b", "policyStatus", {}, "GetBucketPolicyStatus"),
    ("POST", "/b", "delete", {}, "DeleteObjects"),
    ("PUT", "/b/k/state.tfstate", "", {}, "PutObject"),
    ("PUT", "/b/k", "", {"x-amz-copy-source": "/b/o"}, "CopyObject"),
    ("GET", "/b/k", "", {}, "GetObject"),
    ("HEAD", "/b/k", "", {}, "HeadObject"),
    ("DELETE", "/b/k", "", {}, "DeleteObject"),
    ("POST", "/b/k", "uploads", {}, "CreateMultipartUpload"),
    ("PUT", "/b/k", "partNumber=1&uploadId=u", {}, "UploadPart"),
    ("POST", "/b/k", "uploadId=u", {}, "CompleteMultipartUpload"),
    ("DELETE", "/b/k", "uploadId=u", {}, "AbortMultipartUpload"),
    ("GET", "/b/k", "uploadId=u", {}, "ListParts"),
    ("GET", "/b/k", "tagging", {}, "GetObjectTagging"),
    ("PUT", "/b/k", "tagging", {}, "PutObjectTagging"),
]


@pytest.mark.parametrize("method, path, query, extra, expected", S3_CASES)
def test_s3_operations(method, path, query, extra, expected):
    q = proxy.parse_qs(query, keep_blank_values=True)
    h = headers(Authorization=auth("s3"), **extra)
    assert service_of(h, q) == "s3"
    assert operation_of("s3", method, path, q, h, None) == expected


@pytest.mark.parametrize("service, target, expected", [
    ("kms", "TrentService.CreateKey", "CreateKey"),
    ("kms", "TrentService.PutKeyPolicy", "PutKeyPolicy"),
    ("dynamodb", "DynamoDB_20120810.DescribeTable", "DescribeTable"),
    ("dynamodb", "DynamoDB_20120810.CreateTable", "CreateTable"),
])
def test_json_protocol_operations(service, target, expected):
    h = headers(Authorization=auth(service), X_Amz_Target=target)
    assert service_of(h, {}) == service
    assert operation_of(service, "POST", "/", {}, h, b"{}") == expected


@pytest.mark.parametrize("service, body, query, expected", [
    ("iam", b"Action=CreateRole&Version=2010-05-08&RoleName=r", "", "CreateRole"),
    ("iam", b"Action=PutRolePolicy&Version=2010-05-08", "", "PutRolePolicy"),
    ("sts", b"Action=GetCallerIdentity&Version=2011-06-15", "", "GetCallerIdentity"),
    ("sts", b"", "Action=AssumeRole&Version=2011-06-15", "AssumeRole"),
])
def test_query_protocol_operations(service, body, query, expected):
    q = proxy.parse_qs(query)
    h = headers(Authorization=auth(service))
    assert service_of(h, q) == service
    assert operation_of(service, "POST", "/", q, h, body) == expected


def test_service_of_a_presigned_url_and_of_an_unsigned_request():
    q = proxy.parse_qs(f"X-Amz-Credential=test%2F20260101%2F{REGION}%2Fs3%2Faws4_request&X-Amz-Signature=x")
    assert service_of(headers(), q) == "s3"
    assert service_of(headers(), {}) == "unknown"


def test_bucket_config_writes():
    q = lambda s: proxy.parse_qs(s, keep_blank_values=True)  # noqa: E731
    assert proxy.is_bucket_config_write("PUT", "/b", q("policy"))
    assert proxy.is_bucket_config_write("DELETE", "/b", q("tagging"))
    assert not proxy.is_bucket_config_write("GET", "/b", q("policy"))
    assert not proxy.is_bucket_config_write("PUT", "/b", q(""))  # CreateBucket
    assert not proxy.is_bucket_config_write("PUT", "/b/k", q("tagging"))  # an object's


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------


def ruleset(rules, seed=0) -> RuleSet:
    rs = RuleSet()
    rs.replace({"seed": seed, "rules": rules})
    return rs


def test_first_matching_rule_that_fires_wins():
    rs = ruleset([
        {"service": "s3", "operation": "PutBucketPolicy", "fault": "throttle", "count": 1},
        {"service": "s3", "fault": "error500"},
        {"fault": "reset"},
    ])
    assert rs.decide("s3", "PutBucketPolicy", "b").kind == "throttle"
    assert rs.decide("s3", "PutBucketPolicy", "b").kind == "error500"  # the first is spent
    assert rs.decide("s3", "GetObject", "b").kind == "error500"
    assert rs.decide("kms", "CreateKey", None).kind == "reset"


def test_after_and_count():
    rs = ruleset([{"service": "kms", "fault": "unavailable", "after": 2, "count": 3}])
    kinds = [rs.decide("kms", "CreateKey", None).kind for _ in range(8)]
    assert kinds == [None, None, "unavailable", "unavailable", "unavailable", None, None, None]
    assert rs.decide("s3", "GetObject", "b").kind is None


def test_bucket_rule_applies_to_that_bucket_only():
    rs = ruleset([{"bucket": "mine", "fault": "access_denied"}])
    assert rs.decide("s3", "GetBucketPolicy", "mine").kind == "access_denied"
    assert rs.decide("s3", "GetBucketPolicy", "other").kind is None
    assert rs.decide("kms", "CreateKey", None).kind is None


def test_latency_rule_carries_its_latency():
    rs = ruleset([{"fault": "latency", "latency_ms": 150}])
    assert (rs.decide("sts", "GetCallerIdentity", None).kind, rs.decide("sts", "X", None).latency_ms) == \
        ("latency", 150)


def test_seeded_probability_and_choice_are_reproducible():
    rules = [{"fault": ["throttle", "error500", "reset"], "probability": 0.3}]

    def run(seed):
        rs = ruleset(rules, seed)
        return [rs.decide("s3", "GetObject", "b").kind for _ in range(500)]

    first, again, other = run(7), run(7), run(8)
    assert first == again
    assert first != other
    fired = [k for k in first if k]
    assert 100 <= len(fired) <= 200, len(fired)  # about 150
    assert set(fired) == {"throttle", "error500", "reset"}


@pytest.mark.parametrize("body, message", [
    ({"rules": [{"fault": "nope"}]}, "fault must be"),
    ({"rules": [{"fault": []}]}, "fault must be"),
    ({"rules": [{"fault": "reset", "probability": 1.5}]}, "probability"),
    ({"rules": [{"fault": "reset", "count": -1}]}, "count"),
    ({"rules": [{"fault": "reset", "service": "ec2"}]}, "service"),
    ({"rules": [{"fault": "reset", "typo": 1}]}, "unknown rule keys"),
    ({"rules": {}}, "body must be"),
    ({"seed": "x", "rules": []}, "seed"),
])
def test_bad_rules_are_refused(body, message):
    with pytest.raises(BadRequest, match=message):
        RuleSet().replace(body)


def test_rule_defaults():
    r = Rule.parse({"fault": "hang"})
    assert (r.service, r.operation, r.bucket, r.probability, r.after, r.count, r.latency_ms) == \
        ("*", "*", None, 1.0, 0, None, 2000)


# --------------------------------------------------------------------------------------------
# End to end: moto (launcher) <- proxy <- boto3 / raw TLS
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> Path:
    """A CA and a server certificate signed by it, as testground-up.sh makes them."""
    d = tmp_path_factory.mktemp("tls")

    def run(*args):
        subprocess.run(args, check=True, capture_output=True, timeout=60, cwd=d)

    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA",
        "-keyout", "ca.key", "-out", "ca.crt")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "srv.key",
        "-out", "srv.csr")
    (d / "srv.ext").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n")
    run("openssl", "x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "srv.ext", "-out", "srv.crt")
    return d


def wait_listening(proc: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            pytest.fail(f"exited with {proc.returncode}:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"not listening on {port} within 30 s:\n{log.read_text()}")
            time.sleep(0.1)


def launch(cmd: list[str], port: int, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    wait_listening(proc, port, log)
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class Ground:
    """moto and the proxy in front of it."""

    def __init__(self, moto_port: int, proxy_port: int, control_port: int, ca: Path):
        self.moto_port, self.proxy_port, self.control_port, self.ca = moto_port, proxy_port, control_port, ca

    def client(self, service: str, direct: bool = False, **config):
        import boto3
        from botocore.config import Config

        port = self.moto_port if direct else self.proxy_port
        cfg = {"s3": {"addressing_style": "path"}, "retries": {"total_max_attempts": 1, "mode": "standard"},
               "connect_timeout": 5, "read_timeout": 30}
        cfg.update(config)
        return boto3.client(service, endpoint_url=f"https://127.0.0.1:{port}", region_name=REGION,
                            aws_access_key_id="test", aws_secret_access_key="test", verify=str(self.ca),
                            config=Config(**cfg))

    def control(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.control_port}{path}", data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def rules(self, rules, seed=0):
        status, answer = self.control("PUT", "/faults/rules", {"seed": seed, "rules": rules})
        assert status == 200, answer

    def stats(self) -> dict:
        return self.control("GET", "/faults/stats")[1]

    def tls_socket(self) -> ssl.SSLSocket:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        return ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.proxy_port), timeout=30),
                               server_hostname="127.0.0.1")


@pytest.fixture(scope="module")
def ground(certs, tmp_path_factory):
    logs = tmp_path_factory.mktemp("logs")
    moto_port, proxy_port, control_port = free_port(), free_port(), free_port()
    moto = launch([sys.executable, str(HERE.parent / "moto" / "launcher.py"), "-H", "127.0.0.1", "-p", str(moto_port),
                   "-c", str(certs / "srv.crt"), "-k", str(certs / "srv.key")], moto_port, logs / "moto.log")
    try:
        px = launch([sys.executable, str(HERE / "proxy.py"), "--listen-port", str(proxy_port), "--cert",
                     str(certs / "srv.crt"), "--key", str(certs / "srv.key"), "--control-port", str(control_port),
                     "--upstream", f"https://127.0.0.1:{moto_port}", "--ca", str(certs / "ca.crt")],
                    proxy_port, logs / "proxy.log")
        try:
            wait_listening(px, control_port, logs / "proxy.log")
            yield Ground(moto_port, proxy_port, control_port, certs / "ca.crt")
        finally:
            stop(px)
    finally:
        stop(moto)


@pytest.fixture(autouse=True)
def clean(request):
    """Every end-to-end test starts with no rules, no consistency and zeroed stats."""
    if "ground" in request.fixturenames:
        g = request.getfixturevalue("ground")
        assert g.control("POST", "/faults/reset")[0] == 200
    yield


def new_bucket(g: Ground, direct: bool = True) -> str:
    name = f"faults-{uuid.uuid4().hex[:12]}"
    g.client("s3", direct=direct).create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return name


def error_of(call) -> tuple[str, int]:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as e:
        call()
    err = e.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def test_pass_through_is_byte_for_byte(ground):
    bucket = new_bucket(ground)
    s3 = ground.client("s3")
    body = os.urandom(6 * 1024 * 1024 + 17)  # multi-MB, not a multiple of any buffer
    s3.put_object(Bucket=bucket, Key="state", Body=body)
    assert s3.get_object(Bucket=bucket, Key="state")["Body"].read() == body
    assert ground.client("s3", direct=True).get_object(Bucket=bucket, Key="state")["Body"].read() == body
    assert ground.client("sts").get_caller_identity()["Account"] == "123456789012"
    key = ground.client("kms").create_key(Description="through the proxy")["KeyMetadata"]["KeyId"]
    assert ground.client("kms", direct=True).describe_key(KeyId=key)["KeyMetadata"]["Description"] == \
        "through the proxy"
    stats = ground.stats()
    assert stats["requests"]["s3:PutObject"] == 1
    assert stats["requests"]["s3:GetObject"] == 1
    assert stats["requests"]["sts:GetCallerIdentity"] == 1
    assert stats["requests"]["kms:CreateKey"] == 1
    assert stats["total_injected"] == 0


def test_chunked_request_body_and_keep_alive(ground):
    """A chunked body crosses unchanged, and two requests share one client connection."""
    bucket = new_bucket(ground)
    payload = b"x" * 70000 + b"end"
    chunks = b"".join(b"%x\r\n" % len(p) + p + b"\r\n" for p in (payload[:40000], payload[40000:])) + b"0\r\n\r\n"
    with ground.tls_socket() as s:
        f = s.makefile("rb")
        for key in ("one", "two"):
            s.sendall((f"PUT /{bucket}/{key} HTTP/1.1\r\nHost: 127.0.0.1:{ground.proxy_port}\r\n"
                       f"Authorization: {auth('s3')}\r\nTransfer-Encoding: chunked\r\n\r\n").encode() + chunks)
            status = f.readline()
            assert b" 200 " in status, status
            length = 0
            while (line := f.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            f.read(length)
    direct = ground.client("s3", direct=True)
    for key in ("one", "two"):
        assert direct.get_object(Bucket=bucket, Key=key)["Body"].read() == payload


@pytest.mark.parametrize("kind, expected", [
    ("throttle", {"s3": ("SlowDown", 503), "kms": ("ThrottlingException", 400),
                  "dynamodb": ("ThrottlingException", 400), "iam": ("Throttling", 400), "sts": ("Throttling", 400)}),
    ("error500", {"s3": ("InternalError", 500), "kms": ("InternalFailure", 500),
                  "dynamodb": ("InternalFailure", 500), "iam": ("InternalFailure", 500),
                  "sts": ("InternalFailure", 500)}),
    ("unavailable", {s: ("ServiceUnavailable", 503) for s in ("s3", "kms", "dynamodb", "iam", "sts")}),
    ("access_denied", {"s3": ("AccessDenied", 403), "kms": ("AccessDeniedException", 400),
                       "dynamodb": ("AccessDeniedException", 400), "iam": ("AccessDenied", 403),
                       "sts": ("AccessDenied", 403)}),
])
def test_error_faults_in_each_services_wire_format(ground, kind, expected):
    bucket = new_bucket(ground)
    ground.rules([{"fault": kind}])
    calls = {
        "s3": lambda: ground.client("s3").get_bucket_tagging(Bucket=bucket),
        "kms": lambda: ground.client("kms").list_keys(),
        "dynamodb": lambda: ground.client("dynamodb").list_tables(),
        "iam": lambda: ground.client("iam").list_roles(),
        "sts": lambda: ground.client("sts").get_caller_identity(),
    }
    got = {service: error_of(call) for service, call in calls.items()}
    assert got == expected
    stats = ground.stats()
    assert stats["injected"] == {
        "s3:GetBucketTagging:" + kind: 1, "kms:ListKeys:" + kind: 1, "dynamodb:ListTables:" + kind: 1,
        "iam:ListRoles:" + kind: 1, "sts:GetCallerIdentity:" + kind: 1}


def test_a_head_request_fault_has_no_body(ground):
    bucket = new_bucket(ground)
    ground.rules([{"operation": "HeadBucket", "fault": "access_denied"}])
    with ground.tls_socket() as s:
        s.sendall((f"HEAD /{bucket} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth('s3')}\r\n\r\n").encode())
        time.sleep(0.3)
        data = s.recv(65536)
    assert data.startswith(b"HTTP/1.1 403"), data
    assert data.endswith(b"\r\n\r\n"), data


def raw_close_kind(s: ssl.SSLSocket) -> str:
    """How the peer ended the TCP connection under `s`: 'reset' or 'closed' (read on the raw
    socket, beneath TLS, which reports both as an EOF)."""
    s.settimeout(10)
    while True:
        try:
            data = socket.socket.recv(s, 65536)
        except ConnectionResetError:
            return "reset"
        if not data:
            return "closed"


def test_reset_closes_with_rst(ground):
    ground.rules([{"service": "sts", "fault": "reset"}])
    with ground.tls_socket() as s:
        body = b"Action=GetCallerIdentity&Version=2011-06-15"
        s.sendall((f"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: {auth('sts')}\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
        assert raw_close_kind(s) == "reset"
    assert ground.stats()["injected"] == {"sts:GetCallerIdentity:reset": 1}
    # The check itself tells the two apart: an answer with Connection: close ends cleanly.
    ground.control("DELETE", "/faults/rules")
    with ground.tls_socket() as s:
        s.sendall(b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert raw_close_kind(s) == "closed"


def test_lost_answer_does_the_work_then_resets(ground):
    """The call reaches moto (the key exists afterwards), the client only sees a reset."""
    ground.rules([{"service": "kms", "operation": "CreateKey", "fault": "lost_answer", "count": 1}])
    import botocore.exceptions

    kms = ground.client("kms")  # one attempt: no retry hides the lost answer
    direct = ground.client("kms", direct=True)
    before = {k["KeyId"] for k in direct.list_keys()["Keys"]}
    with pytest.raises(botocore.exceptions.BotoCoreError):
        kms.create_key(Description="lost answer")
    after = {k["KeyId"] for k in direct.list_keys()["Keys"]}
    assert len(after - before) == 1, "the request did not reach moto"
    assert ground.stats()["injected"] == {"kms:CreateKey:lost_answer": 1}
    # Spent: the next call is answered.
    assert kms.create_key(Description="answered")["KeyMetadata"]["KeyId"]


def test_latency_delays_the_answer(ground):
    ground.rules([{"service": "sts", "fault": "latency", "latency_ms": 800}])
    sts = ground.client("sts")
    start = time.monotonic()
    sts.get_caller_identity()
    assert time.monotonic() - start >= 0.8
    ground.control("DELETE", "/faults/rules")
    start = time.monotonic()
    sts.get_caller_identity()
    assert time.monotonic() - start < 0.8


def test_hang_until_the_client_gives_up(ground):
    from botocore.exceptions import ReadTimeoutError

    ground.rules([{"service": "sts", "fault": "hang"}])
    start = time.monotonic()
    with pytest.raises(ReadTimeoutError):
        ground.client("sts", read_timeout=1).get_caller_identity()
    assert time.monotonic() - start >= 1
    deadline = time.monotonic() + 5
    while ground.stats()["hanging"] != 0:
        assert time.monotonic() < deadline, "the proxy kept a call whose client had gone"
        time.sleep(0.1)


def test_hang_is_released_by_deleting_the_rules(ground):
    ground.rules([{"service": "sts", "fault": "hang", "count": 1}])
    outcome = {}

    def call():
        try:
            ground.client("sts", read_timeout=60).get_caller_identity()
            outcome["result"] = "answered"
        except Exception as e:  # noqa: BLE001 - what it was is the result
            outcome["result"] = type(e).__name__

    t = threading.Thread(target=call)
    t.start()
    deadline = time.monotonic() + 10
    while ground.stats()["hanging"] != 1:
        assert time.monotonic() < deadline, "the call never hung"
        time.sleep(0.05)
    assert ground.control("DELETE", "/faults/rules")[0] == 200
    t.join(timeout=10)
    assert not t.is_alive(), "releasing the hang did not end the call"
    assert outcome["result"] != "answered"  # reset, not answered
    assert ground.stats()["hanging"] == 0


def test_bucket_missing_after_create(ground):
    ground.control("PUT", "/faults/consistency", {"bucket_missing_after_create_s": 1.5})
    bucket = new_bucket(ground, direct=False)
    s3 = ground.client("s3")
    assert error_of(lambda: s3.get_bucket_tagging(Bucket=bucket)) == ("NoSuchBucket", 404)
    assert error_of(lambda: s3.head_bucket(Bucket=bucket)) == ("404", 404)
    # moto has it all along (direct), and the proxy after the window.
    ground.client("s3", direct=True).head_bucket(Bucket=bucket)
    time.sleep(1.6)  # the window is the behaviour under test
    s3.head_bucket(Bucket=bucket)
    other = new_bucket(ground)  # created directly: the proxy knows nothing of it
    s3.head_bucket(Bucket=other)
    assert ground.stats()["injected"] == {"s3:GetBucketTagging:bucket_missing": 1, "s3:HeadBucket:bucket_missing": 1}


def test_operation_aborted_on_concurrent_bucket_config_writes(ground):
    bucket = new_bucket(ground)
    ground.control("PUT", "/faults/consistency", {"operation_aborted_hold_ms": 700})
    s3 = ground.client("s3")
    results = {}

    def versioning():
        start = time.monotonic()
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        results["held"] = time.monotonic() - start

    t = threading.Thread(target=versioning)
    t.start()
    time.sleep(0.2)  # inside the first write's hold
    results["second"] = error_of(lambda: s3.put_bucket_tagging(
        Bucket=bucket, Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}))
    t.join(timeout=10)
    assert results["second"] == ("OperationAborted", 409)
    assert results["held"] >= 0.7
    # Reads are not held; once the first write is through, writes pass again.
    s3.get_bucket_versioning(Bucket=bucket)
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    assert ground.client("s3", direct=True).get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"


def test_kms_refuses_a_role_younger_than_the_propagation_window(ground):
    ground.control("PUT", "/faults/consistency", {"kms_role_propagation_s": 1.5})
    iam, kms = ground.client("iam"), ground.client("kms")
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}]})
    arn = iam.create_role(RoleName=f"faults-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": arn}, "Action": "kms:Decrypt", "Resource": "*"}]})
    code = error_of(lambda: kms.create_key(Policy=policy))
    assert code == ("MalformedPolicyDocumentException", 400)
    key = kms.create_key()["KeyMetadata"]["KeyId"]  # no policy naming the role: fine
    assert error_of(lambda: kms.put_key_policy(KeyId=key, PolicyName="default", Policy=policy))[0] == \
        "MalformedPolicyDocumentException"
    time.sleep(1.6)  # propagation is the behaviour under test
    kms.put_key_policy(KeyId=key, PolicyName="default", Policy=policy)
    kms.create_key(Policy=policy)
    injected = ground.stats()["injected"]
    assert injected == {"kms:CreateKey:invalid_principal": 1, "kms:PutKeyPolicy:invalid_principal": 1}


def test_stats_count_every_request(ground):
    bucket = new_bucket(ground)
    ground.rules([{"service": "s3", "operation": "GetBucketTagging", "fault": "throttle", "count": 2}])
    s3 = ground.client("s3")
    for _ in range(3):
        try:
            s3.get_bucket_tagging(Bucket=bucket)
        except Exception:  # noqa: BLE001 - counted below
            pass
    s3.head_bucket(Bucket=bucket)
    # The handler leaves the in-flight gauge after its answer is sent, so the client may ask
    # for the stats first: the gauge must come back to 0, soon.
    deadline = time.monotonic() + 5
    while (stats := ground.stats())["in_flight"] != 0:
        assert time.monotonic() < deadline, f"a finished call stayed in flight: {stats}"
        time.sleep(0.05)
    assert stats["requests"] == {"s3:GetBucketTagging": 3, "s3:HeadBucket": 1}
    assert stats["injected"] == {"s3:GetBucketTagging:throttle": 2}
    assert (stats["total_requests"], stats["total_injected"], stats["in_flight"], stats["hanging"]) == (4, 2, 0, 0)
    assert ground.control("POST", "/faults/reset")[0] == 200
    assert ground.stats()["total_requests"] == 0


def test_control_api_refuses_bad_requests(ground):
    assert ground.control("PUT", "/faults/rules", {"rules": [{"fault": "boom"}]})[0] == 400
    assert ground.control("PUT", "/faults/consistency", {"unknown": 1})[0] == 400
    assert ground.control("GET", "/faults/nothing")[0] == 404
    status, answer = ground.control("PUT", "/faults/rules", {"seed": 1, "rules": [{"fault": "reset"}]})
    assert status == 200 and answer["rules"][0]["fault"] == "reset"


def test_ctl_cli(ground, tmp_path):
    env = dict(os.environ, TESTGROUND_FAULTS_CONTROL_URL=f"http://127.0.0.1:{ground.control_port}")

    def ctl(*args, stdin=None):
        return subprocess.run([sys.executable, str(HERE / "ctl.py"), *args], env=env, input=stdin,
                              capture_output=True, text=True, timeout=30)

    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"seed": 3, "rules": [{"service": "kms", "fault": "throttle"}]}))
    assert ctl("rules", str(rules)).returncode == 0
    assert error_of(lambda: ground.client("kms").list_keys())[0] == "ThrottlingException"
    assert json.loads(ctl("stats").stdout)["injected"] == {"kms:ListKeys:throttle": 1}
    assert ctl("rules", "-", stdin='{"rules": [{"fault": "bad"}]}').returncode == 1
    assert ctl("clear").returncode == 0
    ground.client("kms").list_keys()
    assert ctl("consistency", '{"operation_aborted_hold_ms": 5}').returncode == 0
    assert ground.control("GET", "/faults/consistency")[1]["operation_aborted_hold_ms"] == 5
    assert ctl("consistency", "off").returncode == 0
    assert ctl("reset").returncode == 0
    assert json.loads(ctl("stats").stdout)["total_requests"] == 0
