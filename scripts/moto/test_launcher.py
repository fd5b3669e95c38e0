"""Tests of launcher.py: the pure condition evaluator, and end to end against a launched moto
(TLS port + --plain-port) driven by boto3. Run with the moto venv's python:
    venv=$(scripts/install-moto.sh) && "$venv/bin/python" -m pytest scripts/moto -q
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import launcher  # noqa: E402
from launcher import (  # noqa: E402
    bucket_tags_from_create_body,
    conditions_match,
    evaluate_policy,
    object_action,
    request_context,
)

REGION = "eu-west-1"
SSE = "s3:x-amz-server-side-encryption"
SSE_KEY = "s3:x-amz-server-side-encryption-aws-kms-key-id"
SSE_C = "s3:x-amz-server-side-encryption-customer-algorithm"
KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/0f1e2d3c-aaaa-bbbb-cccc-123456789abc"
OTHER_KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/99999999-aaaa-bbbb-cccc-123456789abc"

# --------------------------------------------------------------------------------------------
# Unit tests: condition operators and policy evaluation
# --------------------------------------------------------------------------------------------


def match(operator: str, key: str, values, context: dict[str, str]) -> bool:
    return conditions_match({operator: {key: values}}, context)


@pytest.mark.parametrize(
    "operator, values, context, expected",
    [
        ("StringEquals", "aws:kms", {SSE: "aws:kms"}, True),
        ("StringEquals", "aws:kms", {SSE: "AES256"}, False),
        ("StringEquals", "aws:kms", {}, False),  # missing key: positive operator is false
        ("StringEquals", "AWS:KMS", {SSE: "aws:kms"}, False),  # values are case-sensitive
        ("StringEqualsIgnoreCase", "AWS:KMS", {SSE: "aws:kms"}, True),
        ("StringNotEquals", "aws:kms", {SSE: "aws:kms"}, False),
        ("StringNotEquals", "aws:kms", {SSE: "AES256"}, True),
        ("StringNotEquals", "aws:kms", {}, True),  # missing key: negated operator is true
        ("StringEqualsIfExists", "aws:kms", {}, True),
        ("StringEqualsIfExists", "aws:kms", {SSE: "AES256"}, False),
        ("StringNotEqualsIfExists", "aws:kms", {}, True),
        ("StringNotEqualsIfExists", "aws:kms", {SSE: "AES256"}, True),
        ("StringNotEqualsIfExists", "aws:kms", {SSE: "aws:kms"}, False),
        ("StringLike", "aws:*", {SSE: "aws:kms"}, True),
        ("StringLike", "aws:km?", {SSE: "aws:kms"}, True),
        ("StringLike", "aws:k?", {SSE: "aws:kms"}, False),
        ("StringLike", "a.s:kms", {SSE: "aws:kms"}, False),  # "." is literal, not a regex
        ("StringLike", "aws:*", {}, False),
        ("StringNotLike", "aws:*", {SSE: "AES256"}, True),
        ("StringNotLike", "aws:*", {SSE: "aws:kms"}, False),
        ("StringNotLike", "aws:*", {}, True),
        ("StringLikeIfExists", "aws:*", {}, True),
        ("StringNotLikeIfExists", "aws:*", {SSE: "aws:kms"}, False),
        # several values are OR'd (for negated operators: "matches none of them")
        ("StringEquals", ["AES256", "aws:kms"], {SSE: "aws:kms"}, True),
        ("StringEquals", ["AES256", "aws:kms"], {SSE: "aws:kms:dsse"}, False),
        ("StringNotEquals", ["AES256", "aws:kms"], {SSE: "AES256"}, False),
        ("StringNotEquals", ["AES256", "aws:kms"], {SSE: "none"}, True),
        ("StringLike", ["AES*", "aws:*"], {SSE: "aws:kms"}, True),
    ],
)
def test_string_operators(operator, values, context, expected):
    assert match(operator, SSE, values, context) is expected


@pytest.mark.parametrize(
    "operator, values, context, expected",
    [
        ("Bool", "false", {"aws:SecureTransport": "false"}, True),
        ("Bool", "false", {"aws:SecureTransport": "true"}, False),
        ("Bool", False, {"aws:SecureTransport": "false"}, True),  # JSON boolean in the policy
        ("Bool", "FALSE", {"aws:SecureTransport": "false"}, True),
        ("Bool", "false", {}, False),
        ("BoolIfExists", "false", {}, True),
        ("BoolIfExists", "false", {"aws:SecureTransport": "true"}, False),
    ],
)
def test_bool(operator, values, context, expected):
    assert match(operator, "aws:SecureTransport", values, context) is expected


@pytest.mark.parametrize(
    "values, context, expected",
    [
        ("true", {}, True),  # "true": the key is absent
        ("true", {SSE: "aws:kms"}, False),
        ("false", {SSE: "aws:kms"}, True),  # "false": the key is present
        ("false", {}, False),
        (True, {}, True),
    ],
)
def test_null(values, context, expected):
    assert match("Null", SSE, values, context) is expected


@pytest.mark.parametrize(
    "operator, values, value, expected",
    [
        ("ArnEquals", "arn:aws:kms:eu-west-1:123456789012:key/abc", "arn:aws:kms:eu-west-1:123456789012:key/abc", True),
        ("ArnLike", "arn:aws:kms:*:123456789012:key/*", "arn:aws:kms:eu-west-1:123456789012:key/abc", True),
        ("ArnLike", "arn:aws:kms:*:111111111111:key/*", "arn:aws:kms:eu-west-1:123456789012:key/abc", False),
        ("ArnNotLike", "arn:aws:kms:*:111111111111:key/*", "arn:aws:kms:eu-west-1:123456789012:key/abc", True),
        ("ArnNotEquals", "arn:aws:kms:eu-west-1:123456789012:key/abc", "arn:aws:kms:eu-west-1:123456789012:key/abc", False),
    ],
)
def test_arn_operators(operator, values, value, expected):
    assert match(operator, SSE_KEY, values, {SSE_KEY: value}) is expected


def test_keys_are_case_insensitive():
    assert match("Bool", "AWS:securetransport", "true", {"aws:SecureTransport": "true"})


def test_keys_and_operators_are_anded():
    block = {"StringEquals": {SSE: "aws:kms", SSE_KEY: "k1"}, "Bool": {"aws:SecureTransport": "true"}}
    full = {SSE: "aws:kms", SSE_KEY: "k1", "aws:SecureTransport": "true"}
    assert conditions_match(block, full)
    for drop in full:
        assert not conditions_match(block, {k: v for k, v in full.items() if k != drop})
    assert not conditions_match(block, {**full, SSE_KEY: "k2"})
    assert conditions_match({}, {}) and conditions_match(None, {})


def test_unsupported_operator_is_loud():
    with pytest.raises(launcher.UnsupportedCondition):
        match("NumericLessThan", "s3:max-keys", "10", {"s3:max-keys": "5"})


def deny(action, resource, condition=None, **extra):
    statement = {"Effect": "Deny", "Principal": "*", "Action": action, "Resource": resource, **extra}
    if condition:
        statement["Condition"] = condition
    return statement


def test_policy_non_matching_conditions_are_neutral():
    policy = {"Statement": [deny("s3:*", "arn:aws:s3:::b/*", {"Bool": {"aws:SecureTransport": "false"}})]}
    assert evaluate_policy(policy, "s3:GetObject", "arn:aws:s3:::b/k", {"aws:SecureTransport": "true"}) is None
    assert evaluate_policy(policy, "s3:GetObject", "arn:aws:s3:::b/k", {"aws:SecureTransport": "false"}) == "Deny"


def test_policy_deny_wins_and_scoping():
    allow = {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}
    put_deny = deny("s3:PutObject", "arn:aws:s3:::b/*", {"Null": {SSE: "true"}})
    policy = {"Statement": [allow, put_deny]}
    assert evaluate_policy(policy, "s3:PutObject", "arn:aws:s3:::b/k", {}) == "Deny"
    assert evaluate_policy(policy, "s3:PutObject", "arn:aws:s3:::b/k", {SSE: "AES256"}) == "Allow"
    assert evaluate_policy(policy, "s3:GetObject", "arn:aws:s3:::b/k", {}) == "Allow"
    assert evaluate_policy(policy, "s3:getobject", "arn:aws:s3:::other/k", {}) is None  # resource
    assert evaluate_policy({"Statement": put_deny}, "s3:PutObject", "arn:aws:s3:::b/k", {}) == "Deny"
    not_action = {"Statement": [deny("s3:*", "*", NotAction="s3:GetObject")]}
    not_action["Statement"][0].pop("Action")
    assert evaluate_policy(not_action, "s3:GetObject", "arn:aws:s3:::b/k", {}) is None
    assert evaluate_policy(not_action, "s3:PutObject", "arn:aws:s3:::b/k", {}) == "Deny"


def test_request_context():
    assert request_context("http://127.0.0.1:1/b/k", {}) == {"aws:SecureTransport": "false"}
    ctx = request_context(
        "https://127.0.0.1:1/b/k",
        {"X-Amz-Server-Side-Encryption": "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id": "arn:k"},
    )
    assert ctx == {"aws:SecureTransport": "true", SSE: "aws:kms", SSE_KEY: "arn:k"}
    sse_c = request_context(
        "https://127.0.0.1:1/b/k?partNumber=1&uploadId=u",
        {"x-amz-server-side-encryption-customer-algorithm": "AES256", "x-amz-server-side-encryption-customer-key": "k"},
    )
    assert sse_c == {"aws:SecureTransport": "true", SSE_C: "AES256"}  # the key itself is no condition key


def test_request_context_of_a_header_less_part_has_no_sse_keys():
    """UploadPart/CompleteMultipartUpload as Terraform's uploader sends them: only THAT
    request's headers count, so a part of an upload created with SSE-KMS has no SSE keys."""
    for url in ("https://127.0.0.1:1/b/k?partNumber=2&uploadId=u", "https://127.0.0.1:1/b/k?uploadId=u"):
        assert request_context(url, {"Content-Length": "5242880", "Content-MD5": "x"}) == {"aws:SecureTransport": "true"}


@pytest.mark.parametrize(
    "method, url, expected",
    [
        ("POST", "https://h/b/k?uploads", "s3:PutObject"),  # CreateMultipartUpload
        ("POST", "https://h/b/k?uploads=", "s3:PutObject"),
        ("PUT", "https://h/b/k?partNumber=1&uploadId=u", "s3:PutObject"),  # UploadPart
        ("POST", "https://h/b/k?uploadId=u", "s3:PutObject"),  # CompleteMultipartUpload
        ("DELETE", "https://h/b/k?uploadId=u", "s3:AbortMultipartUpload"),
        ("GET", "https://h/b/k?uploadId=u", "s3:ListMultipartUploadParts"),
        ("PUT", "https://h/b/k", "s3:PutObject"),
        ("GET", "https://h/b/k", "s3:GetObject"),
        ("HEAD", "https://h/b/k", "s3:GetObject"),
        ("DELETE", "https://h/b/k", "s3:DeleteObject"),
    ],
)
def test_object_action_is_the_one_s3_authorises(method, url, expected):
    assert object_action(method, url) == expected


def create_body(tags_xml: str, location: str = REGION) -> bytes:
    return (
        '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<LocationConstraint>{location}</LocationConstraint>{tags_xml}</CreateBucketConfiguration>"
    ).encode()


def test_bucket_tags_from_create_body():
    tag = "<Tag><Key>{}</Key><Value>{}</Value></Tag>"
    one = create_body("<Tags>" + tag.format("owner", "ns/name") + "</Tags>")
    assert bucket_tags_from_create_body(one) == {"owner": "ns/name"}
    two = create_body("<Tags>" + tag.format("a", "1") + tag.format("b", "") + "</Tags>")
    assert bucket_tags_from_create_body(two) == {"a": "1", "b": ""}
    assert bucket_tags_from_create_body(create_body("")) is None
    assert bucket_tags_from_create_body(b"") is None and bucket_tags_from_create_body(None) is None
    assert bucket_tags_from_create_body(b"not xml") is None
    for bad in (tag.format("a", "1") * 2, tag.format("aws:x", "1"), "<Tag><Value>v</Value></Tag>"):
        with pytest.raises(launcher.InvalidCreateBucketTags):
            bucket_tags_from_create_body(create_body(f"<Tags>{bad}</Tags>"))


def operator_policy(bucket: str, key_arn: str | None) -> list[dict]:
    """The operator's bucket policy (src/policy/bucket.rs), statement for statement: deny
    non-TLS; deny PutObject that STATES an algorithm other than the backend's, `aws:kms`
    without a key id, a key id other than the backend's key, or SSE-C."""
    objs = objects(bucket)
    algorithm = "aws:kms" if key_arn else "AES256"
    statements = [
        tls_only(bucket),
        deny("s3:PutObject", objs, {"Null": {SSE: "false"}, "StringNotEquals": {SSE: algorithm}},
             Sid="DenyIncorrectEncryptionHeader"),
    ]
    if key_arn:
        statements += [
            deny("s3:PutObject", objs, {"StringEquals": {SSE: "aws:kms"}, "Null": {SSE_KEY: "true"}},
                 Sid="DenyKmsWithoutKeyId"),
            deny("s3:PutObject", objs, {"Null": {SSE_KEY: "false"}, "StringNotEquals": {SSE_KEY: key_arn}},
                 Sid="DenyWrongKmsKey"),
        ]
    statements.append(deny("s3:PutObject", objs, {"Null": {SSE_C: "false"}}, Sid="DenySseC"))
    return statements


def verdicts(statements: list[dict], action: str, context: dict[str, str]) -> dict[str, str | None]:
    """Each statement's own verdict on one request to object `b/k`."""
    return {s["Sid"]: evaluate_policy({"Statement": [s]}, action, "arn:aws:s3:::b/k", context) for s in statements}


TLS = {"aws:SecureTransport": "true"}
TERRAFORM_KMS = {SSE: "aws:kms", SSE_KEY: KEY_ARN}


@pytest.mark.parametrize(
    "headers, denied_by",
    [
        ({}, None),  # UploadPart, CompleteMultipartUpload: no SSE header, default encryption applies
        (TERRAFORM_KMS, None),  # PutObject, CreateMultipartUpload, .tflock as Terraform sends them
        ({SSE: "AES256"}, "DenyIncorrectEncryptionHeader"),
        ({SSE: "aws:kms:dsse", SSE_KEY: KEY_ARN}, "DenyIncorrectEncryptionHeader"),
        ({SSE: "aws:kms"}, "DenyKmsWithoutKeyId"),
        ({SSE: "aws:kms", SSE_KEY: OTHER_KEY_ARN}, "DenyWrongKmsKey"),
        ({SSE_C: "AES256"}, "DenySseC"),
    ],
)
def test_each_kms_denial_fires_only_when_its_header_is_stated(headers, denied_by):
    got = verdicts(operator_policy("b", KEY_ARN), "s3:PutObject", {**TLS, **headers})
    assert {sid for sid, v in got.items() if v == "Deny"} == ({denied_by} if denied_by else set())
    assert all(v in ("Deny", None) for v in got.values())  # a non-matching statement is neutral


@pytest.mark.parametrize(
    "headers, denied_by",
    [
        ({}, None),
        ({SSE: "AES256"}, None),
        ({SSE: "aws:kms"}, "DenyIncorrectEncryptionHeader"),
        (TERRAFORM_KMS, "DenyIncorrectEncryptionHeader"),
        ({SSE_C: "AES256"}, "DenySseC"),
    ],
)
def test_each_aes256_denial_fires_only_when_its_header_is_stated(headers, denied_by):
    got = verdicts(operator_policy("b", None), "s3:PutObject", {**TLS, **headers})
    assert {sid for sid, v in got.items() if v == "Deny"} == ({denied_by} if denied_by else set())


def test_plain_http_is_refused_with_or_without_headers():
    for headers in ({}, TERRAFORM_KMS):
        got = verdicts(operator_policy("b", KEY_ARN), "s3:PutObject", {"aws:SecureTransport": "false", **headers})
        assert got["DenyInsecureTransport"] == "Deny"


# --------------------------------------------------------------------------------------------
# End to end: moto started through the launcher, boto3 over TLS and plain HTTP
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def cert(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
        check=True, capture_output=True, timeout=60,
    )
    return d / "cert.pem", d / "key.pem"


class Server:
    def __init__(self, tls_port: int, plain_port: int | None, cert: Path):
        self.tls_port, self.plain_port, self.cert = tls_port, plain_port, cert

    def client(self, service: str = "s3", plain: bool = False, region: str = REGION):
        import boto3
        from botocore.config import Config

        url = f"http://127.0.0.1:{self.plain_port}" if plain else f"https://127.0.0.1:{self.tls_port}"
        return boto3.client(
            service, endpoint_url=url, region_name=region, aws_access_key_id="test", aws_secret_access_key="test",
            verify=False if plain else str(self.cert),
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
        )


def start(cmd: list[str], ports: list[int], log: Path):
    """Start moto, wait (bounded) until every port accepts connections; fail with its log."""
    out = open(log, "wb")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    out.close()
    deadline = time.monotonic() + 30
    pending = list(ports)
    while pending:
        if proc.poll() is not None:
            pytest.fail(f"moto exited with {proc.returncode}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            stop(proc)
            pytest.fail(f"moto did not listen on {pending} within 30s:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", pending[0]), timeout=1).close()
            pending.pop(0)
        except OSError:
            time.sleep(0.1)
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server(cert, tmp_path_factory):
    tls_port, plain_port = free_port(), free_port()
    log = tmp_path_factory.mktemp("moto") / "launcher.log"
    cmd = [sys.executable, str(HERE / "launcher.py"), "-H", "127.0.0.1", "-p", str(tls_port),
           "-c", str(cert[0]), "-k", str(cert[1]), "--plain-port", str(plain_port)]
    proc = start(cmd, [tls_port, plain_port], log)
    try:
        yield Server(tls_port, plain_port, cert[0])
    finally:
        stop(proc)


@pytest.fixture
def bucket(server) -> str:
    name = f"tfstate-test-{uuid.uuid4().hex[:12]}"
    server.client().create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return name


@pytest.fixture(scope="module")
def kms_keys(server) -> tuple[str, str]:
    kms = server.client("kms")
    return tuple(kms.create_key(Description=f"test {i}")["KeyMetadata"]["Arn"] for i in range(2))


def put_policy(server, bucket: str, *statements) -> None:
    server.client().put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))


def objects(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}/*"


def tls_only(bucket: str) -> dict:
    return deny("s3:*", [f"arn:aws:s3:::{bucket}", objects(bucket)], {"Bool": {"aws:SecureTransport": "false"}},
                Sid="DenyInsecureTransport")


def hardened_policy(bucket: str, key_arn: str) -> list[dict]:
    """DESIGN.md "S3 bucket": the operator's policy for an SSE-KMS backend."""
    return operator_policy(bucket, key_arn)


# SSE-C as an SDK sends it (boto3 adds the key's MD5 header itself).
SSE_C_ARGS = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": "k" * 32}
MiB = 1024 * 1024


def multipart(s3, bucket: str, key: str, body: bytes, create: dict | None = None, part: dict | None = None,
              complete: dict | None = None) -> None:
    """Terraform's (the SDK manager's) multipart upload: CreateMultipartUpload with `create`'s
    arguments, 5 MiB parts with `part`'s, CompleteMultipartUpload with `complete`'s."""
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, **(create or {}))["UploadId"]
    chunks = [body[i:i + 5 * MiB] for i in range(0, len(body), 5 * MiB)]
    parts = []
    for n, chunk in enumerate(chunks, start=1):
        etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=n, Body=chunk, **(part or {}))["ETag"]
        parts.append({"ETag": etag, "PartNumber": n})
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts},
                                 **(complete or {}))


def denied(call, **kwargs) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as e:
        call(**kwargs)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    if e.value.operation_name != "HeadObject":  # HEAD responses carry no error body
        assert e.value.response["Error"]["Code"] == "AccessDenied"


def test_tls_only_policy_refuses_plain_http(server, bucket):
    tls, plain = server.client(), server.client(plain=True)
    tls.put_object(Bucket=bucket, Key="before", Body=b"x")
    put_policy(server, bucket, tls_only(bucket))

    denied(plain.get_object, Bucket=bucket, Key="before")
    denied(plain.head_object, Bucket=bucket, Key="before")
    denied(plain.put_object, Bucket=bucket, Key="k", Body=b"plain")
    result = plain.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "before"}]})
    assert [e["Code"] for e in result.get("Errors", [])] == ["AccessDenied"]

    tls.put_object(Bucket=bucket, Key="k", Body=b"tls")
    assert tls.get_object(Bucket=bucket, Key="k")["Body"].read() == b"tls"
    assert tls.get_object(Bucket=bucket, Key="before")["Body"].read() == b"x"
    tls.head_object(Bucket=bucket, Key="k")


def test_string_not_equals_kms_lets_only_kms_through(server, bucket, kms_keys):
    s3 = server.client()
    put_policy(server, bucket, deny("s3:PutObject", objects(bucket), {"StringNotEquals": {SSE: "aws:kms"}}))
    denied(s3.put_object, Bucket=bucket, Key="k", Body=b"x")
    denied(s3.put_object, Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="AES256")
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_keys[0])
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


def test_null_requires_the_header(server, bucket):
    s3 = server.client()
    put_policy(server, bucket, deny("s3:PutObject", objects(bucket), {"Null": {SSE: "true"}}))
    denied(s3.put_object, Bucket=bucket, Key="k", Body=b"x")
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="AES256")


@pytest.mark.parametrize("operator", ["StringNotEquals", "StringNotEqualsIfExists"])
def test_wrong_kms_key_is_refused(server, bucket, kms_keys, operator):
    s3 = server.client()
    expected, other = kms_keys
    put_policy(server, bucket, deny("s3:PutObject", objects(bucket), {operator: {SSE_KEY: expected}}))
    denied(s3.put_object, Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=other)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=expected)
    # No key id header: for negated operators a missing key makes the condition true, with or
    # without IfExists (AWS semantics), so the put is refused either way.
    denied(s3.put_object, Bucket=bucket, Key="k2", Body=b"x", ServerSideEncryption="aws:kms")


def test_hardened_policy_lets_a_correct_tls_put_through(server, bucket, kms_keys):
    s3, plain = server.client(), server.client(plain=True)
    expected, other = kms_keys
    put_policy(server, bucket, *hardened_policy(bucket, expected))
    good = dict(Bucket=bucket, Key="state.tfstate", ServerSideEncryption="aws:kms", SSEKMSKeyId=expected)
    s3.put_object(Body=b'{"version": 4}', **good)
    assert s3.get_object(Bucket=bucket, Key="state.tfstate")["Body"].read() == b'{"version": 4}'
    denied(plain.put_object, Body=b"x", **good)
    denied(plain.get_object, Bucket=bucket, Key="state.tfstate")
    denied(s3.put_object, Bucket=bucket, Key="state.tfstate", Body=b"x", ServerSideEncryption="AES256")
    denied(s3.put_object, Bucket=bucket, Key="state.tfstate", Body=b"x", ServerSideEncryption="aws:kms")
    denied(s3.put_object, Body=b"x", **{**good, "SSEKMSKeyId": other})
    denied(s3.put_object, Bucket=bucket, Key="state.tfstate", Body=b"x", **SSE_C_ARGS)
    assert s3.get_object(Bucket=bucket, Key="state.tfstate")["Body"].read() == b'{"version": 4}'
    s3.put_object(Bucket=bucket, Key="no-headers", Body=b"default encryption")  # judged by nothing


def test_stock_moto_denies_the_correct_put(cert, tmp_path):
    """Why the launcher exists: unpatched moto denies even a correct TLS put under the
    hardened policy (every conditional Deny "matches")."""
    port = free_port()
    code = "import sys, moto.server; moto.server.main(sys.argv[1:])"
    cmd = [sys.executable, "-c", code, "-H", "127.0.0.1", "-p", str(port), "-c", str(cert[0]), "-k", str(cert[1])]
    proc = start(cmd, [port], tmp_path / "stock.log")
    try:
        stock = Server(port, None, cert[0])
        bucket = f"tfstate-stock-{uuid.uuid4().hex[:12]}"
        s3 = stock.client()
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        key_arn = stock.client("kms").create_key()["KeyMetadata"]["Arn"]
        put_policy(stock, bucket, *hardened_policy(bucket, key_arn))
        from botocore.exceptions import ClientError

        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=key_arn)
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    finally:
        stop(proc)


def test_launcher_refuses_an_unexpected_moto(tmp_path):
    """A moto whose internals moved must stop the launcher, not run unpatched."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import moto.s3.responses as r; "
        "del r.S3Response._key_response; import launcher; launcher.main(['-p', '1'])"
    )
    result = subprocess.run([sys.executable, "-c", code, str(HERE)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "does not have the internals" in result.stderr and "_key_response" in result.stderr


def test_get_bucket_versioning_answers_with_s3s_document(server, bucket):
    """moto 5.2.5 names the root element GetBucketVersioningResponse; strict clients (the Rust
    SDK) need S3's VersioningConfiguration, which the launcher restores."""
    s3 = server.client()
    bodies = []
    s3.meta.events.register("after-call.s3.GetBucketVersioning", lambda http_response, **_: bodies.append(http_response.content))
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    for body in bodies:
        root = body.decode().split("?>", 1)[1].strip()
        assert root.startswith("<VersioningConfiguration "), root
    assert b"<Status>Enabled</Status>" in bodies[1]


# --------------------------------------------------------------------------------------------
# Multipart uploads (states above 5 MiB) under the operator's bucket policy
# --------------------------------------------------------------------------------------------


def kms_bucket(server, bucket: str, key_arn: str) -> None:
    """Default encryption SSE-KMS with `key_arn` and Bucket Keys, and the operator's policy."""
    server.client().put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn},
         "BucketKeyEnabled": True}]})
    put_policy(server, bucket, *operator_policy(bucket, key_arn))


def test_terraforms_multipart_upload_passes_and_is_encrypted_with_the_key(server, bucket, kms_keys):
    """CreateMultipartUpload with aws:kms + key id, UploadPart and CompleteMultipartUpload
    without SSE headers: every request passes and the object is SSE-KMS with the backend key."""
    s3, key = server.client(), kms_keys[0]
    kms_bucket(server, bucket, key)
    body = os.urandom(12 * MiB)
    multipart(s3, bucket, "big.tfstate", body, create={"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key})
    head = s3.head_object(Bucket=bucket, Key="big.tfstate")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"], head["ContentLength"]) == ("aws:kms", key, len(body))
    assert s3.get_object(Bucket=bucket, Key="big.tfstate")["Body"].read() == body


def test_moto_applies_default_encryption_to_a_header_less_multipart_upload(server, bucket, kms_keys):
    """What moto 5.2.5 does by itself (no launcher fix needed): a multipart upload without any
    SSE header into a bucket with default SSE-KMS completes into an object that reports the
    bucket's key and Bucket Keys, as S3 does."""
    s3, key = server.client(), kms_keys[0]
    kms_bucket(server, bucket, key)
    multipart(s3, bucket, "plain.tfstate", os.urandom(6 * MiB))
    head = s3.head_object(Bucket=bucket, Key="plain.tfstate")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"], head.get("BucketKeyEnabled")) == ("aws:kms", key, True)


@pytest.mark.parametrize(
    "create, part, complete",
    [
        ({"ServerSideEncryption": "AES256"}, None, None),
        ({"ServerSideEncryption": "aws:kms"}, None, None),  # no key id: S3 would use aws/s3
        ({"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "OTHER"}, None, None),
        (SSE_C_ARGS, None, None),
        ({}, SSE_C_ARGS, None),  # a part stating SSE-C
        ({}, None, SSE_C_ARGS),  # a completion stating SSE-C
    ],
    ids=["aes256", "kms-without-key-id", "other-key", "sse-c-create", "sse-c-part", "sse-c-complete"],
)
def test_a_multipart_request_stating_foreign_encryption_is_refused(server, bucket, kms_keys, create, part, complete):
    s3, key = server.client(), kms_keys[0]
    kms_bucket(server, bucket, key)
    create = {k: (kms_keys[1] if v == "OTHER" else v) for k, v in create.items()}
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as e:
        multipart(s3, bucket, "big.tfstate", os.urandom(6 * MiB), create=create, part=part, complete=complete)
    assert (e.value.response["ResponseMetadata"]["HTTPStatusCode"], e.value.response["Error"]["Code"]) == (
        403, "AccessDenied")
    expected_operation = "CreateMultipartUpload" if create else ("UploadPart" if part else "CompleteMultipartUpload")
    assert e.value.operation_name == expected_operation
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_multipart_over_plain_http_is_refused(server, bucket, kms_keys):
    s3, plain, key = server.client(), server.client(plain=True), kms_keys[0]
    kms_bucket(server, bucket, key)
    denied(plain.create_multipart_upload, Bucket=bucket, Key="k", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="k", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    args = dict(Bucket=bucket, Key="k", UploadId=upload["UploadId"])
    denied(plain.upload_part, PartNumber=1, Body=b"x", **args)
    etag = s3.upload_part(PartNumber=1, Body=b"x", **args)["ETag"]
    denied(plain.complete_multipart_upload, MultipartUpload={"Parts": [{"ETag": etag, "PartNumber": 1}]}, **args)
    s3.complete_multipart_upload(MultipartUpload={"Parts": [{"ETag": etag, "PartNumber": 1}]}, **args)


# --------------------------------------------------------------------------------------------
# CreateBucket with CreateBucketConfiguration.Tags
# --------------------------------------------------------------------------------------------


def tag_set(s3, bucket: str) -> dict[str, str] | None:
    from botocore.exceptions import ClientError

    try:
        return {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
    except ClientError as e:
        assert e.response["Error"]["Code"] == "NoSuchTagSet"
        return None


OWNERSHIP = [{"Key": "tfstate.dev/managed-by", "Value": "tfstate-operator"}, {"Key": "tfstate.dev/owner", "Value": "ns/tf"}]


def test_create_bucket_applies_the_tags_of_its_configuration(server):
    """As S3 does (and moto 5.2.5 does not): GetBucketTagging right after CreateBucket returns
    the tags sent in CreateBucketConfiguration, in the XML shape S3 documents."""
    s3 = server.client()
    bodies = []
    s3.meta.events.register("before-send.s3.CreateBucket", lambda request, **_: bodies.append(request.body))
    name = f"tfstate-tags-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION, "Tags": OWNERSHIP})
    assert tag_set(s3, name) == {t["Key"]: t["Value"] for t in OWNERSHIP}
    body = bodies[0].decode() if isinstance(bodies[0], bytes) else bodies[0]
    assert "<Tags><Tag><Key>tfstate.dev/managed-by</Key><Value>tfstate-operator</Value></Tag>" in body, body
    plain_name = f"tfstate-notags-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=plain_name, CreateBucketConfiguration={"LocationConstraint": REGION})
    assert tag_set(s3, plain_name) is None


def test_create_bucket_with_invalid_tags_creates_nothing(server):
    from botocore.exceptions import ClientError

    s3 = server.client()
    name = f"tfstate-badtags-{uuid.uuid4().hex[:12]}"
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={
            "LocationConstraint": REGION, "Tags": [{"Key": "aws:reserved", "Value": "x"}]})
    assert e.value.response["Error"]["Code"] == "InvalidTag"
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_recreating_an_owned_bucket(server):
    """Recorded moto behaviour, unchanged by the launcher: in us-east-1 a second CreateBucket of
    one's own bucket answers 200 (as S3 does) and leaves its tags alone; elsewhere it is 409
    BucketAlreadyOwnedByYou (as S3)."""
    from botocore.exceptions import ClientError

    east = server.client(region="us-east-1")
    name = f"tfstate-east-{uuid.uuid4().hex[:12]}"
    east.create_bucket(Bucket=name, CreateBucketConfiguration={"Tags": OWNERSHIP})
    again = east.create_bucket(Bucket=name, CreateBucketConfiguration={"Tags": [{"Key": "other", "Value": "x"}]})
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert tag_set(east, name) == {t["Key"]: t["Value"] for t in OWNERSHIP}

    s3 = server.client()
    name = f"tfstate-west-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    assert (e.value.response["ResponseMetadata"]["HTTPStatusCode"], e.value.response["Error"]["Code"]) == (
        409, "BucketAlreadyOwnedByYou")


def test_a_client_stalled_before_its_tls_handshake_blocks_no_one(server):
    """Two connections that never send a ClientHello (a client whose runtime is blocked): other
    clients still connect and are answered at once, because each handshake runs in its
    connection's own thread, not in werkzeug's single accept loop."""
    stalled = [socket.create_connection(("127.0.0.1", server.tls_port), timeout=5) for _ in range(2)]
    try:
        time.sleep(0.2)  # let the accept loop take the stalled connections first
        started = time.monotonic()
        for _ in range(3):
            server.client().list_buckets()
        took = time.monotonic() - started
        assert took < 3, f"three ListBuckets behind two stalled handshakes took {took:.1f} s"
    finally:
        for s in stalled:
            s.close()


def raw_request(conn, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    """One request on an http.client connection kept by the caller; the response, read."""
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    resp.read()
    return resp


def tls_context(server):
    import ssl

    return ssl.create_default_context(cafile=str(server.cert))


def tls_connection(server):
    import http.client

    return http.client.HTTPSConnection("127.0.0.1", server.tls_port, context=tls_context(server), timeout=10)


STS_CALL = (b"Action=GetCallerIdentity&Version=2011-06-15",
            {"Content-Type": "application/x-www-form-urlencoded",
             "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/sts/aws4_request, "
                              "SignedHeaders=host, Signature=00"})


def test_connections_are_kept_alive_between_requests(server):
    """AWS keeps connections open, and the SDKs reuse them: ten calls with bodies (STS over
    POST) and without (S3 ListBuckets) on one TLS connection, each answered without
    `Connection: close` on the same socket. werkzeug alone closes after every response."""
    conn = tls_connection(server)
    try:
        raw_request(conn, "GET", "/")
        sock = conn.sock
        for i in range(10):
            resp = raw_request(conn, "POST", "/", *STS_CALL) if i % 2 else raw_request(conn, "GET", "/")
            assert resp.status == 200, resp.status
            assert resp.getheader("Connection") is None and not resp.will_close, f"call {i} closed the connection"
            assert conn.sock is sock, f"call {i} needed a new connection"
    finally:
        conn.close()


SMUGGLED = b"GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.mark.parametrize("length", [str(len(SMUGGLED)), f"+{len(SMUGGLED)}", f"{len(SMUGGLED)},{len(SMUGGLED)}"])
def test_an_unread_body_is_never_parsed_as_the_next_request(server, length):
    """The body of a request the application does not read (moto-api's GET) is itself a
    complete request: on a kept connection it would be answered as one. It is not: exactly
    one answer, `Connection: close`, then the end of the connection; the same when the
    Content-Length is not plain digits (werkzeug reads "+N" as no body at all)."""
    with socket.create_connection(("127.0.0.1", server.tls_port), timeout=10) as raw:
        with tls_context(server).wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(b"GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + length.encode()
                      + b"\r\n\r\n" + SMUGGLED)
            received = b""
            while chunk := s.recv(65536):
                received += chunk
    assert received.count(b"HTTP/1.1 ") == 1, f"answers on one connection: {received.count(b'HTTP/1.1 ')}"
    assert b"\r\nConnection: close\r\n" in received


def test_a_client_asking_to_close_is_answered_so(server):
    conn = tls_connection(server)
    try:
        resp = raw_request(conn, "POST", "/", STS_CALL[0], {**STS_CALL[1], "Connection": "close"})
        assert resp.status == 200 and resp.getheader("Connection") == "close"
    finally:
        conn.close()


def test_an_error_of_the_http_layer_closes_its_connection(server):
    """http.server's own answers (here 431, too many headers) come before the application
    and keep `Connection: close`, also on a connection kept from an earlier request (whose
    read body must not decide for this one)."""
    conn = tls_connection(server)
    try:
        raw_request(conn, "GET", "/")
        resp = raw_request(conn, "GET", "/", headers={f"X-H{i}": "v" for i in range(120)})
        assert resp.status == 431 and resp.getheader("Connection") == "close", (resp.status, resp.getheaders())
    finally:
        conn.close()


def test_update_table_applies_its_sse_specification(server, kms_keys):
    """A lock table moved to another KMS key (the operator's repair when its key was
    recreated) reports the new key, as on AWS; moto alone keeps the old one."""
    ddb = server.client("dynamodb")
    name = f"tfstate-lock-{uuid.uuid4().hex[:12]}"
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
                     SSESpecification={"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": kms_keys[0]})
    key_of = lambda: ddb.describe_table(TableName=name)["Table"].get("SSEDescription", {}).get("KMSMasterKeyArn")  # noqa: E731
    assert key_of() == kms_keys[0]
    answer = ddb.update_table(TableName=name, SSESpecification={"Enabled": True, "SSEType": "KMS",
                                                                 "KMSMasterKeyId": kms_keys[1]})
    assert answer["TableDescription"]["SSEDescription"]["KMSMasterKeyArn"] == kms_keys[1]
    assert key_of() == kms_keys[1]
    ddb.update_table(TableName=name, SSESpecification={"Enabled": False})
    assert key_of() is None
    ddb.update_table(TableName=name, BillingMode="PAY_PER_REQUEST")
    assert key_of() is None, "an UpdateTable without SSESpecification changed the encryption"
