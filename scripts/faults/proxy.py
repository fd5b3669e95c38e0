#!/usr/bin/env python3
"""A fault-injecting AWS endpoint for the test ground.

It listens with TLS (the ground's moto certificate) and forwards every request, unchanged, to
moto's TLS port: method, path, query, headers (Host included, so SigV4 signatures stay valid)
and body, byte for byte, with HTTP/1.1 keep-alive on both sides. A plain-HTTP JSON control API
decides which requests fail and how (see README.md for the contract):

  PUT    /faults/rules        {"seed": 42, "rules": [RULE, ...]}
  DELETE /faults/rules
  PUT    /faults/consistency  {"bucket_missing_after_create_s": 2.0, "operation_aborted_hold_ms": 300,
                               "kms_role_propagation_s": 3.0}
  DELETE /faults/consistency
  GET    /faults/stats
  POST   /faults/reset

Run:  proxy.py --listen-port P --cert C --key K --control-port Q --upstream https://127.0.0.1:M --ca CA
Standard library only: it runs with whatever python the ground has (the moto venv's).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import select
import socket
import ssl
import struct
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.client import HTTPResponse, HTTPSConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

# ----------------------------------------------------------------------------------------
# Which AWS call a request is
# ----------------------------------------------------------------------------------------

SERVICES = ("s3", "kms", "iam", "dynamodb", "sts")
KINDS = ("throttle", "error500", "unavailable", "reset", "latency", "hang", "access_denied")

# S3 bucket sub-resources (query keys) -> the name part of the SDK operation. Verb and
# "Bucket" are added by s3_operation; entries with a full name per verb are special cases.
S3_BUCKET_SUBRESOURCES = {
    "accelerate": "AccelerateConfiguration",
    "acl": "Acl",
    "analytics": "AnalyticsConfiguration",
    "cors": "Cors",
    "encryption": "Encryption",
    "intelligent-tiering": "IntelligentTieringConfiguration",
    "inventory": "InventoryConfiguration",
    "lifecycle": "LifecycleConfiguration",
    "logging": "Logging",
    "metrics": "MetricsConfiguration",
    "notification": "NotificationConfiguration",
    "ownershipControls": "OwnershipControls",
    "policy": "Policy",
    "policyStatus": "PolicyStatus",
    "replication": "Replication",
    "requestPayment": "RequestPayment",
    "tagging": "Tagging",
    "versioning": "Versioning",
    "website": "Website",
}

# Operations whose SDK name does not follow <Verb>Bucket<Name>.
S3_BUCKET_SPECIAL = {
    ("GET", "publicAccessBlock"): "GetPublicAccessBlock",
    ("PUT", "publicAccessBlock"): "PutPublicAccessBlock",
    ("DELETE", "publicAccessBlock"): "DeletePublicAccessBlock",
    ("DELETE", "lifecycle"): "DeleteBucketLifecycle",
    ("GET", "object-lock"): "GetObjectLockConfiguration",
    ("PUT", "object-lock"): "PutObjectLockConfiguration",
    ("GET", "location"): "GetBucketLocation",
    ("GET", "versions"): "ListObjectVersions",
    ("GET", "uploads"): "ListMultipartUploads",
    ("POST", "delete"): "DeleteObjects",
}

S3_OBJECT_SUBRESOURCES = {"tagging": "ObjectTagging", "acl": "ObjectAcl", "retention": "ObjectRetention",
                          "legal-hold": "ObjectLegalHold", "attributes": "ObjectAttributes"}


def service_of(headers, query: dict[str, list[str]]) -> str:
    """The SigV4 credential scope's service (Authorization header or presigned query)."""
    auth = headers.get("Authorization") or ""
    m = re.search(r"Credential=[^/,\s]+/\d{8}/[^/]+/([^/]+)/aws4_request", auth)
    if m:
        return m.group(1)
    cred = (query.get("X-Amz-Credential") or [""])[0]
    parts = cred.split("/")
    return parts[3] if len(parts) >= 5 else "unknown"


def split_s3_path(path: str) -> tuple[str | None, str | None]:
    """(bucket, key) of a path-style S3 URL path; None for absent parts."""
    parts = path.lstrip("/").split("/", 1)
    bucket = unquote(parts[0]) if parts[0] else None
    key = unquote(parts[1]) if len(parts) > 1 and parts[1] else None
    return bucket, key


def s3_operation(method: str, path: str, query: dict[str, list[str]], headers) -> str:
    """The S3 SDK operation of a path-style REST request."""
    bucket, key = split_s3_path(path)
    if bucket is None:
        return "ListBuckets" if method == "GET" else f"{method.title()}Service"
    if key is None:
        for sub in query:
            if (method, sub) in S3_BUCKET_SPECIAL:
                return S3_BUCKET_SPECIAL[(method, sub)]
            if sub in S3_BUCKET_SUBRESOURCES:
                verb = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}.get(method, method.title())
                return f"{verb}Bucket{S3_BUCKET_SUBRESOURCES[sub]}"
        if method == "GET":
            return "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
        return {"PUT": "CreateBucket", "HEAD": "HeadBucket", "DELETE": "DeleteBucket"}.get(
            method, f"{method.title()}Bucket")
    if "uploadId" in query:
        if method == "PUT":
            return "UploadPartCopy" if headers.get("x-amz-copy-source") else "UploadPart"
        return {"POST": "CompleteMultipartUpload", "DELETE": "AbortMultipartUpload",
                "GET": "ListParts"}.get(method, f"{method.title()}Upload")
    if method == "POST" and "uploads" in query:
        return "CreateMultipartUpload"
    for sub, name in S3_OBJECT_SUBRESOURCES.items():
        if sub in query:
            verb = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}.get(method, method.title())
            return f"{verb}{name}"
    if method == "PUT":
        return "CopyObject" if headers.get("x-amz-copy-source") else "PutObject"
    return {"GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(method, f"{method.title()}Object")


def is_bucket_config_write(method: str, path: str, query: dict[str, list[str]]) -> bool:
    """PUT/DELETE on a bucket sub-resource (?policy, ?tagging, ?versioning ...)."""
    bucket, key = split_s3_path(path)
    return bucket is not None and key is None and method in ("PUT", "DELETE") and bool(query)


def operation_of(service: str, method: str, path: str, query: dict[str, list[str]], headers,
                 body: bytes | None) -> str:
    """The AWS operation name: X-Amz-Target suffix (JSON protocols), Action= (query
    protocol, from the query string or the form body), or derived from the REST call (S3)."""
    target = headers.get("X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1]
    if service == "s3":
        return s3_operation(method, path, query, headers)
    action = (query.get("Action") or [None])[0]
    if action is None and body:
        try:
            action = (parse_qs(body.decode("utf-8", "replace")).get("Action") or [None])[0]
        except ValueError:
            action = None
    return action or f"{method} {path}"


# ----------------------------------------------------------------------------------------
# Error answers as the real services send them
# ----------------------------------------------------------------------------------------

# kind -> service family -> (status, code, message)
S3_ERRORS = {
    "throttle": (503, "SlowDown", "Please reduce your request rate."),
    "error500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "unavailable": (503, "ServiceUnavailable", "Service is unable to handle request."),
    "access_denied": (403, "AccessDenied", "Access Denied"),
}
JSON_ERRORS = {
    "throttle": (400, "ThrottlingException", "Rate exceeded"),
    "error500": (500, "InternalFailure", "The request processing has failed because of an unknown error."),
    "unavailable": (503, "ServiceUnavailable", "The service is unavailable. Please try again later."),
    "access_denied": (400, "AccessDeniedException",
                      "User: arn:aws:iam::123456789012:user/test is not authorized to perform this operation"),
}
QUERY_ERRORS = {
    "throttle": (400, "Throttling", "Rate exceeded"),
    "error500": (500, "InternalFailure", "The request processing has failed because of an unknown error."),
    "unavailable": (503, "ServiceUnavailable", "Service is unable to handle request."),
    "access_denied": (403, "AccessDenied",
                      "User: arn:aws:iam::123456789012:user/test is not authorized to perform this operation"),
}


@dataclass
class Answer:
    """A complete HTTP answer made up by the proxy (never forwarded)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def error_answer(service: str, status: int, code: str, message: str) -> Answer:
    """An error in the wire format of `service` (S3 XML, JSON 1.0/1.1, or query XML)."""
    request_id = uuid.uuid4().hex.upper()[:16]
    if service == "s3":
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
                f"<RequestId>{request_id}</RequestId><HostId>faults</HostId></Error>").encode()
        headers = [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)]
    elif service in ("kms", "dynamodb"):
        body = json.dumps({"__type": code, "message": message}).encode()
        ctype = "application/x-amz-json-1.0" if service == "dynamodb" else "application/x-amz-json-1.1"
        headers = [("Content-Type", ctype), ("x-amzn-RequestId", request_id)]
    else:
        body = (f'<ErrorResponse xmlns="https://{service}.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type>'
                f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId>"
                "</ErrorResponse>").encode()
        headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
    return Answer(status, headers, body)


def fault_answer(service: str, kind: str) -> Answer:
    """The answer of an error-kind fault for `service`."""
    table = S3_ERRORS if service == "s3" else JSON_ERRORS if service in ("kms", "dynamodb") else QUERY_ERRORS
    status, code, message = table[kind]
    return error_answer(service, status, code, message)


# ----------------------------------------------------------------------------------------
# Rules, consistency, statistics
# ----------------------------------------------------------------------------------------

RULE_KEYS = {"service", "operation", "bucket", "fault", "probability", "after", "count", "latency_ms"}


class BadRequest(ValueError):
    """A control request the API refuses (answered 400 with its message)."""


@dataclass
class Rule:
    """One fault rule of the contract, with its own counters."""

    service: str = "*"
    operation: str = "*"
    bucket: str | None = None
    faults: list[str] = field(default_factory=list)
    probability: float = 1.0
    after: int = 0
    count: int | None = None
    latency_ms: int = 2000
    matched: int = 0
    fired: int = 0

    @staticmethod
    def parse(obj) -> "Rule":
        """Validates one RULE object of the API."""
        if not isinstance(obj, dict):
            raise BadRequest("a rule must be a JSON object")
        unknown = set(obj) - RULE_KEYS
        if unknown:
            raise BadRequest(f"unknown rule keys: {sorted(unknown)}")
        service = obj.get("service", "*")
        if service != "*" and service not in SERVICES:
            raise BadRequest(f"service must be one of {SERVICES} or '*', not {service!r}")
        operation = obj.get("operation", "*")
        if not isinstance(operation, str) or not operation:
            raise BadRequest("operation must be a non-empty string")
        bucket = obj.get("bucket")
        if bucket is not None and not isinstance(bucket, str):
            raise BadRequest("bucket must be a string")
        fault = obj.get("fault")
        faults = fault if isinstance(fault, list) else [fault]
        if not faults or any(f not in KINDS for f in faults):
            raise BadRequest(f"fault must be one of {KINDS} or a non-empty list of them, not {fault!r}")
        probability = obj.get("probability", 1.0)
        if isinstance(probability, bool) or not isinstance(probability, (int, float)) or not 0 <= probability <= 1:
            raise BadRequest("probability must be a number in [0, 1]")

        def natural(name, default, nullable=False):
            v = obj.get(name, default)
            if v is None and nullable:
                return None
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise BadRequest(f"{name} must be a non-negative integer" + (" or null" if nullable else ""))
            return v

        return Rule(service, operation, bucket, faults, float(probability), natural("after", 0),
                    natural("count", None, nullable=True), natural("latency_ms", 2000))

    def matches(self, service: str, operation: str, bucket: str | None) -> bool:
        """Whether this rule is about the call (before after/count/probability)."""
        return ((self.service in ("*", service)) and (self.operation in ("*", operation))
                and (self.bucket is None or (service == "s3" and bucket == self.bucket)))

    def as_json(self) -> dict:
        """The rule as the API shows it, with its counters."""
        return {"service": self.service, "operation": self.operation, "bucket": self.bucket,
                "fault": self.faults if len(self.faults) > 1 else self.faults[0], "probability": self.probability,
                "after": self.after, "count": self.count, "latency_ms": self.latency_ms,
                "matched": self.matched, "fired": self.fired}


@dataclass
class Decision:
    """What to do with one request: a fault kind (None = forward) and its latency."""

    kind: str | None = None
    latency_ms: int = 0


class RuleSet:
    """The current rules and their seeded RNG. Thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rules: list[Rule] = []
        self.rng = random.Random(0)

    def replace(self, body) -> None:
        """PUT /faults/rules."""
        if not isinstance(body, dict) or not isinstance(body.get("rules"), list):
            raise BadRequest('body must be {"seed": N, "rules": [...]}')
        if set(body) - {"seed", "rules"}:
            raise BadRequest(f"unknown keys: {sorted(set(body) - {'seed', 'rules'})}")
        seed = body.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise BadRequest("seed must be an integer")
        rules = [Rule.parse(r) for r in body["rules"]]
        with self.lock:
            self.rules = rules
            self.rng = random.Random(seed)

    def clear(self) -> None:
        """DELETE /faults/rules."""
        with self.lock:
            self.rules = []

    def decide(self, service: str, operation: str, bucket: str | None) -> Decision:
        """First rule that matches AND fires wins (after, count, then probability)."""
        with self.lock:
            for rule in self.rules:
                if not rule.matches(service, operation, bucket):
                    continue
                rule.matched += 1
                if rule.matched <= rule.after:
                    continue
                if rule.count is not None and rule.fired >= rule.count:
                    continue
                if rule.probability < 1.0 and self.rng.random() >= rule.probability:
                    continue
                rule.fired += 1
                kind = rule.faults[0] if len(rule.faults) == 1 else self.rng.choice(rule.faults)
                return Decision(kind, rule.latency_ms)
            return Decision()

    def as_json(self) -> list[dict]:
        """The rules with their counters."""
        with self.lock:
            return [r.as_json() for r in self.rules]


CONSISTENCY_KEYS = ("bucket_missing_after_create_s", "operation_aborted_hold_ms", "kms_role_propagation_s")


class Consistency:
    """Eventual consistency as AWS documents it, switched on per knob. Thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.knobs = {k: 0.0 for k in CONSISTENCY_KEYS}
        self.created_buckets: dict[str, float] = {}  # bucket -> monotonic time of CreateBucket
        self.created_roles: dict[str, float] = {}  # role ARN -> monotonic time of CreateRole
        self.config_writes_in_progress: set[str] = set()  # buckets with a held config write

    def set(self, body) -> None:
        """PUT /faults/consistency (absent knobs are off)."""
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        unknown = set(body) - set(CONSISTENCY_KEYS)
        if unknown:
            raise BadRequest(f"unknown consistency keys: {sorted(unknown)}")
        knobs = {}
        for k in CONSISTENCY_KEYS:
            v = body.get(k, 0)
            if v is None:
                v = 0
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise BadRequest(f"{k} must be a non-negative number")
            knobs[k] = float(v)
        with self.lock:
            self.knobs = knobs

    def clear(self) -> None:
        """DELETE /faults/consistency: everything off and forgotten."""
        with self.lock:
            self.knobs = {k: 0.0 for k in CONSISTENCY_KEYS}
            self.created_buckets.clear()
            self.created_roles.clear()

    def knob(self, name: str) -> float:
        """The current value of one knob (0 = off)."""
        with self.lock:
            return self.knobs[name]

    def bucket_created(self, bucket: str) -> None:
        """A CreateBucket through the proxy succeeded."""
        with self.lock:
            if self.knobs["bucket_missing_after_create_s"] > 0:
                self.created_buckets[bucket] = time.monotonic()

    def bucket_missing(self, bucket: str | None) -> bool:
        """Whether S3 should not know `bucket` yet."""
        with self.lock:
            window = self.knobs["bucket_missing_after_create_s"]
            created = self.created_buckets.get(bucket) if bucket else None
            return window > 0 and created is not None and time.monotonic() - created < window

    def role_created(self, arn: str) -> None:
        """A CreateRole through the proxy succeeded with this role ARN."""
        with self.lock:
            if self.knobs["kms_role_propagation_s"] > 0:
                self.created_roles[arn] = time.monotonic()

    def unpropagated_role_in(self, policy: str) -> str | None:
        """A role ARN named by `policy` that KMS does not know yet, if any."""
        with self.lock:
            window = self.knobs["kms_role_propagation_s"]
            if window <= 0:
                return None
            now = time.monotonic()
            for arn, created in self.created_roles.items():
                if now - created < window and arn in policy:
                    return arn
            return None

    def begin_config_write(self, bucket: str) -> bool:
        """Marks a bucket configuration write in progress; False if one already is."""
        with self.lock:
            if bucket in self.config_writes_in_progress:
                return False
            self.config_writes_in_progress.add(bucket)
            return True

    def end_config_write(self, bucket: str) -> None:
        """The held configuration write of `bucket` has been answered."""
        with self.lock:
            self.config_writes_in_progress.discard(bucket)

    def as_json(self) -> dict:
        """The knobs."""
        with self.lock:
            return dict(self.knobs)


class Stats:
    """Requests per service:operation, injections per service:operation:kind. Thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests: dict[str, int] = {}
        self.injected: dict[str, int] = {}
        self.in_flight = 0
        self.hanging = 0

    def count(self, table: dict[str, int], key: str) -> None:
        """One more of `key`."""
        with self.lock:
            table[key] = table.get(key, 0) + 1

    def add(self, attr: str, delta: int) -> None:
        """Moves the in_flight or hanging gauge."""
        with self.lock:
            setattr(self, attr, getattr(self, attr) + delta)

    def clear(self) -> None:
        """Counters to zero (gauges are live values and stay)."""
        with self.lock:
            self.requests.clear()
            self.injected.clear()

    def as_json(self) -> dict:
        """GET /faults/stats."""
        with self.lock:
            return {"requests": dict(self.requests), "injected": dict(self.injected),
                    "total_requests": sum(self.requests.values()), "total_injected": sum(self.injected.values()),
                    "in_flight": self.in_flight, "hanging": self.hanging}


class Faults:
    """Everything the control API changes, shared by every proxy thread."""

    def __init__(self):
        self.rules = RuleSet()
        self.consistency = Consistency()
        self.stats = Stats()
        # Set (and replaced) when hanging calls must be released: rules deleted or reset.
        self.release = threading.Event()
        self.release_lock = threading.Lock()

    def release_hanging(self) -> None:
        """Wakes every hanging call up (each resets its connection)."""
        with self.release_lock:
            self.release.set()
            self.release = threading.Event()

    def reset(self) -> None:
        """POST /faults/reset."""
        self.rules.clear()
        self.consistency.clear()
        self.stats.clear()
        self.release_hanging()


# ----------------------------------------------------------------------------------------
# The proxy
# ----------------------------------------------------------------------------------------

CHUNK = 64 * 1024
# Request headers that belong to one hop, not to the request: the proxy manages its own
# connections on both sides.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection"}
BUFFERED_SERVICES = ("kms", "iam", "sts", "dynamodb")


class Upstream:
    """moto's TLS address and the context that verifies it."""

    def __init__(self, url: str, ca: str):
        u = urlsplit(url)
        if u.scheme != "https" or not u.hostname or not u.port:
            raise SystemExit(f"--upstream must be https://HOST:PORT, not {url}")
        self.host, self.port = u.hostname, u.port
        self.context = ssl.create_default_context(cafile=ca)

    def connect(self) -> HTTPSConnection:
        """A new keep-alive connection to moto, Nagle off (headers and body go separately)."""
        conn = HTTPSConnection(self.host, self.port, context=self.context, timeout=300)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn


class ProxyHandler(BaseHTTPRequestHandler):
    """One client connection: parses each request, decides, forwards or injects."""

    protocol_version = "HTTP/1.1"
    server_version = "tfstate-faults"
    faults: Faults
    upstream: Upstream

    def setup(self):
        # The TLS handshake runs here, in the connection's own thread, so that a slow
        # client never blocks the accept loop.
        self.request.do_handshake()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn: HTTPSConnection | None = None
        super().setup()

    def finish(self):
        try:
            super().finish()
        finally:
            if self.conn is not None:
                self.conn.close()

    def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's signature
        # One line per request would drown the log (and cost time); errors are logged.
        pass

    def log_error(self, format, *args):  # noqa: A002
        sys.stderr.write("proxy: " + (format % args) + "\n")

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionError, ssl.SSLError, socket.timeout, OSError):
            self.close_connection = True

    # Every method is handled the same way.
    def do_any(self):
        """Handles one request, start to end."""
        faults = self.faults
        faults.stats.add("in_flight", 1)
        try:
            self.serve()
        finally:
            faults.stats.add("in_flight", -1)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_any

    def serve(self):
        faults = self.faults
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        service = service_of(self.headers, query)
        # Small bodies of the JSON and query protocols are read first: the operation (IAM,
        # STS) and the key policy (KMS) are in them. S3 bodies stream (multi-MB states).
        body = self.read_body() if service in BUFFERED_SERVICES else None
        operation = operation_of(service, self.command, url.path, query, self.headers, body)
        bucket = split_s3_path(url.path)[0] if service == "s3" else None
        faults.stats.count(faults.stats.requests, f"{service}:{operation}")

        def inject(kind: str) -> None:
            faults.stats.count(faults.stats.injected, f"{service}:{operation}:{kind}")

        # Eventual consistency first: it is how AWS behaves, the rules come on top.
        if service == "s3" and operation != "CreateBucket" and faults.consistency.bucket_missing(bucket):
            inject("bucket_missing")
            return self.answer(error_answer("s3", 404, "NoSuchBucket", "The specified bucket does not exist"),
                               body)
        if service == "kms" and operation in ("CreateKey", "PutKeyPolicy") and body:
            try:
                policy = json.loads(body).get("Policy") or ""
            except (ValueError, AttributeError):
                policy = ""
            if isinstance(policy, str) and faults.consistency.unpropagated_role_in(policy):
                inject("invalid_principal")
                return self.answer(error_answer("kms", 400, "MalformedPolicyDocumentException",
                                                "Policy contains a statement with one or more invalid principals."),
                                   body)

        decision = faults.rules.decide(service, operation, bucket)
        if decision.kind is not None:
            inject(decision.kind)
        if decision.kind == "reset":
            return self.reset()
        if decision.kind == "hang":
            return self.hang()
        if decision.kind in S3_ERRORS:
            return self.answer(fault_answer(service, decision.kind), body)
        if decision.kind == "latency":
            # Before forwarding: a client that gives up meanwhile leaves nothing behind.
            time.sleep(decision.latency_ms / 1000)

        hold_ms = faults.consistency.knob("operation_aborted_hold_ms")
        if service == "s3" and hold_ms > 0 and is_bucket_config_write(self.command, url.path, query):
            if not faults.consistency.begin_config_write(bucket):
                inject("operation_aborted")
                return self.answer(error_answer(
                    "s3", 409, "OperationAborted",
                    "A conflicting conditional operation is currently in progress against this resource. "
                    "Please try again."), body)
            try:
                time.sleep(hold_ms / 1000)
                return self.forward(service, operation, bucket, body)
            finally:
                faults.consistency.end_config_write(bucket)
        return self.forward(service, operation, bucket, body)

    # --- reading the request body ------------------------------------------------------

    def body_framing(self) -> str:
        """'chunked', 'length' or 'none'."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return "chunked"
        return "length" if self.headers.get("Content-Length") else "none"

    def iter_body(self):
        """The request body as it came on the wire (chunk framing included), in pieces."""
        framing = self.body_framing()
        if framing == "length":
            remaining = int(self.headers["Content-Length"])
            while remaining > 0:
                piece = self.rfile.read(min(CHUNK, remaining))
                if not piece:
                    raise ConnectionError("client closed the connection inside the body")
                remaining -= len(piece)
                yield piece
        elif framing == "chunked":
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("client closed the connection inside a chunked body")
                yield line
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    break
                remaining = size + 2  # the chunk and its CRLF
                while remaining > 0:
                    piece = self.rfile.read(min(CHUNK, remaining))
                    if not piece:
                        raise ConnectionError("client closed the connection inside a chunk")
                    remaining -= len(piece)
                    yield piece
            while True:  # trailers, up to the empty line
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("client closed the connection inside the trailers")
                yield line
                if line in (b"\r\n", b"\n"):
                    break

    def read_body(self) -> bytes:
        """The whole request body, as on the wire."""
        return b"".join(self.iter_body())

    # --- answering ---------------------------------------------------------------------

    def answer(self, answer: Answer, body: bytes | None) -> None:
        """Sends a made-up answer, after consuming the request body so that the connection
        stays usable (real services answer errors on a keep-alive connection too)."""
        if body is None:
            for _ in self.iter_body():
                pass
        head = [f"HTTP/1.1 {answer.status} {self.responses.get(answer.status, ('',))[0]}"]
        head += [f"{k}: {v}" for k, v in answer.headers]
        head.append(f"Date: {self.date_time_string()}")
        # HEAD answers carry no body (the SDK reads the status, e.g. 404 -> NotFound).
        payload = b"" if self.command == "HEAD" else answer.body
        head.append(f"Content-Length: {len(payload)}")
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)

    def reset(self) -> None:
        """Closes the client connection with a TCP RST (SO_LINGER 0), answering nothing."""
        self.close_connection = True
        try:
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        # The raw socket, not the TLS layer: no close_notify, just the reset.
        try:
            socket.socket.close(self.request)
        except OSError:
            pass

    def hang(self) -> None:
        """Answers nothing until the client closes its connection (then closes ours) or the
        rules are deleted (then resets it)."""
        faults = self.faults
        release = faults.release
        faults.stats.add("hanging", 1)
        try:
            while not release.is_set():
                readable, _, _ = select.select([self.request], [], [], 0.2)
                if readable:
                    try:
                        data = self.request.recv(CHUNK)
                    except ssl.SSLWantReadError:
                        continue
                    except OSError:
                        data = b""
                    if not data:  # the client gave up
                        self.close_connection = True
                        return
            self.reset()
        finally:
            faults.stats.add("hanging", -1)

    # --- forwarding --------------------------------------------------------------------

    def forward(self, service: str, operation: str, bucket: str | None, body: bytes | None) -> None:
        """Sends the request to moto unchanged and streams its answer back."""
        try:
            resp = self.send_upstream(body)
        except (OSError, ssl.SSLError) as e:
            self.log_error("upstream failed for %s:%s: %r", service, operation, e)
            if self.conn is not None:
                self.conn.close()
                self.conn = None
            return self.reset()
        status = resp.status
        if service == "iam" and operation == "CreateRole" and 200 <= status < 300:
            data = resp.read()
            m = re.search(rb"<Role>.*?<Arn>([^<]+)</Arn>", data, re.S)
            if m:
                self.faults.consistency.role_created(m.group(1).decode())
            self.relay(resp, data)
        else:
            self.relay(resp, None)
        if service == "s3" and operation == "CreateBucket" and 200 <= status < 300 and bucket:
            self.faults.consistency.bucket_created(bucket)

    def send_upstream(self, body: bytes | None) -> HTTPResponse:
        """Writes the request to moto (one retry on a fresh connection when a kept-alive one
        turns out closed and the body can be replayed) and returns its answer."""
        for attempt in (1, 2):
            fresh = self.conn is None
            if fresh:
                self.conn = self.upstream.connect()
            try:
                self.conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in HOP_BY_HOP:
                        self.conn.putheader(name, value)
                self.conn.endheaders()
                if body is not None:
                    if body:
                        self.conn.send(body)
                else:
                    for piece in self.iter_body():
                        self.conn.send(piece)
                    body = None
                return self.conn.getresponse()
            except (ConnectionError, ssl.SSLError, OSError):
                self.conn.close()
                self.conn = None
                replayable = body is not None or self.body_framing() == "none"
                if fresh or attempt == 2 or not replayable:
                    raise
        raise AssertionError("unreachable")

    def relay(self, resp: HTTPResponse, data: bytes | None) -> None:
        """Streams moto's answer to the client: status, headers (minus hop-by-hop), body."""
        chunked = "chunked" in (resp.getheader("Transfer-Encoding") or "").lower()
        head = [f"HTTP/1.1 {resp.status} {resp.reason}"]
        for name, value in resp.getheaders():
            if name.lower() not in HOP_BY_HOP:
                head.append(f"{name}: {value}")
        no_body = self.command == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200
        if not no_body and not chunked and resp.getheader("Content-Length") is None:
            # moto gave no length: read it all, so that our answer has one.
            data = resp.read() if data is None else data
            head.append(f"Content-Length: {len(data)}")
        if self.close_connection:
            head.append("Connection: close")
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if no_body:
            resp.read()
        elif data is not None:
            self.send_body(data, chunked)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        else:
            while True:
                piece = resp.read1(CHUNK) if chunked else resp.read(CHUNK)
                if not piece:
                    break
                self.send_body(piece, chunked)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        if resp.will_close:
            self.conn.close()
            self.conn = None

    def send_body(self, piece: bytes, chunked: bool) -> None:
        if chunked:
            if piece:
                self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
        else:
            self.wfile.write(piece)


class TLSProxyServer(ThreadingHTTPServer):
    """Accepts TCP, wraps it in TLS without handshaking (the handler thread does it)."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, handler, context: ssl.SSLContext):
        self.context = context
        super().__init__(address, handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):
        # A client that goes away mid-request is ordinary under fault injection.
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, ssl.SSLError, socket.timeout)):
            super().handle_error(request, client_address)


# ----------------------------------------------------------------------------------------
# The control API
# ----------------------------------------------------------------------------------------


class ControlHandler(BaseHTTPRequestHandler):
    """Plain-HTTP JSON control API (see the module docstring)."""

    protocol_version = "HTTP/1.1"
    faults: Faults

    def log_message(self, format, *args):  # noqa: A002
        sys.stderr.write("control: " + (format % args) + "\n")

    def reply(self, status: int, obj) -> None:
        data = json.dumps(obj, sort_keys=True).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def json_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw or b"null")
        except ValueError as e:
            raise BadRequest(f"body is not JSON: {e}") from None

    def route(self, method: str) -> None:
        f = self.faults
        path = urlsplit(self.path).path.rstrip("/")
        try:
            if (method, path) == ("PUT", "/faults/rules"):
                f.rules.replace(self.json_body())
                return self.reply(200, {"rules": f.rules.as_json()})
            if (method, path) == ("GET", "/faults/rules"):
                return self.reply(200, {"rules": f.rules.as_json()})
            if (method, path) == ("DELETE", "/faults/rules"):
                f.rules.clear()
                f.release_hanging()
                return self.reply(200, {"rules": []})
            if (method, path) == ("PUT", "/faults/consistency"):
                f.consistency.set(self.json_body())
                return self.reply(200, f.consistency.as_json())
            if (method, path) == ("GET", "/faults/consistency"):
                return self.reply(200, f.consistency.as_json())
            if (method, path) == ("DELETE", "/faults/consistency"):
                f.consistency.clear()
                return self.reply(200, f.consistency.as_json())
            if (method, path) == ("GET", "/faults/stats"):
                return self.reply(200, f.stats.as_json())
            if (method, path) == ("POST", "/faults/reset"):
                f.reset()
                return self.reply(200, {"reset": True})
            return self.reply(404, {"error": f"no such control endpoint: {method} {path}"})
        except BadRequest as e:
            return self.reply(400, {"error": str(e)})

    def do_GET(self):
        self.route("GET")

    def do_PUT(self):
        self.route("PUT")

    def do_POST(self):
        self.route("POST")

    def do_DELETE(self):
        self.route("DELETE")


def serve(listen_port: int, cert: str, key: str, control_port: int, upstream: Upstream,
          host: str = "127.0.0.1") -> tuple[TLSProxyServer, ThreadingHTTPServer, Faults]:
    """Starts both servers in background threads; returns them and their shared state."""
    faults = Faults()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    proxy_handler = type("BoundProxyHandler", (ProxyHandler,), {"faults": faults, "upstream": upstream})
    control_handler = type("BoundControlHandler", (ControlHandler,), {"faults": faults})
    proxy = TLSProxyServer((host, listen_port), proxy_handler, context)
    control = ThreadingHTTPServer((host, control_port), control_handler)
    control.daemon_threads = True
    for server in (proxy, control):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    return proxy, control, faults


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--listen-port", type=int, required=True, help="TLS port of the faulty AWS endpoint")
    p.add_argument("--cert", required=True, help="server certificate (PEM)")
    p.add_argument("--key", required=True, help="its private key (PEM)")
    p.add_argument("--control-port", type=int, required=True, help="plain-HTTP port of the control API")
    p.add_argument("--upstream", required=True, help="moto's TLS endpoint, https://HOST:PORT")
    p.add_argument("--ca", required=True, help="CA bundle that verifies the upstream")
    a = p.parse_args(argv)
    proxy, control, _ = serve(a.listen_port, a.cert, a.key, a.control_port, Upstream(a.upstream, a.ca), a.host)
    sys.stderr.write(f"faults proxy on https://{a.host}:{a.listen_port} -> {a.upstream}, "
                     f"control on http://{a.host}:{a.control_port}\n")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        proxy.shutdown()
        control.shutdown()


if __name__ == "__main__":
    main()
