"""Start moto's server with S3 bucket policies evaluated the way AWS evaluates them.

Usage:  python launcher.py [moto_server args...] [--plain-port P]
e.g.    python launcher.py -H 127.0.0.1 -p 4566 -c cert.pem -k key.pem --plain-port 4567

Why: stock moto 5.2.x evaluates a bucket policy on object requests (GET/PUT/HEAD/DELETE/POST of
a key) but gets conditions wrong (see shared/docs/test-ground.md): it passes no condition values,
evaluates only StringEquals (every other operator "matches"), and turns a statement whose
conditions do not match into an explicit DENIED. A hardened bucket policy (deny non-TLS, deny
puts stating another encryption) therefore denies every object request. It also names the
action after the HTTP verb, so CreateMultipartUpload and CompleteMultipartUpload (POST) are
asked as `s3:PostObject`, which S3 authorises as `s3:PutObject`. This launcher replaces
bucket-policy evaluation (identity and trust policies keep moto's own evaluator) before handing
over to `moto.server.main`; the other gaps it mends are listed below and in README.md
(CreateBucket tags, UpdateTable's SSESpecification, TLS handshakes in the request threads,
connections kept alive).

It also applies the tags of CreateBucket's `<CreateBucketConfiguration><Tags>`, which moto
5.2.5 ignores, to the bucket it creates (see `bucket_tags_from_create_body`).

--plain-port P additionally serves plain HTTP on 127.0.0.1:P from the same process, i.e. the
same in-memory AWS state, so a test can show that a TLS-only bucket policy refuses plain HTTP
on the very bucket the TLS port serves.

The evaluator below is pure Python with no moto import, so it can be unit-tested on its own.
"""

from __future__ import annotations

import contextvars
import inspect
import io
import re
import sys
import threading
from typing import Any
from urllib.parse import parse_qs, urlparse

VERIFIED_MOTO_VERSION = "5.2.5"

# --------------------------------------------------------------------------------------------
# Condition evaluation (AWS semantics)
# --------------------------------------------------------------------------------------------


def _wildcard(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """IAM glob: `*` is any run of characters, `?` exactly one; everything else is literal."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


def _text(value: Any) -> str:
    """Policy JSON may carry `true` or numbers where AWS means strings ("true", "42")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# Positive operators: (context value, policy value) -> bool. A negated operator is "the key is
# absent, or the value matches none of the policy values", which is how AWS defines them.
_POSITIVE = {
    "StringEquals": lambda v, p: v == p,
    "StringEqualsIgnoreCase": lambda v, p: v.lower() == p.lower(),
    "StringLike": lambda v, p: _wildcard(p, v),
    "ArnEquals": lambda v, p: _wildcard(p, v),  # AWS allows wildcards in ArnEquals too
    "ArnLike": lambda v, p: _wildcard(p, v),
    "Bool": lambda v, p: v.lower() == p.lower(),
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}
SUPPORTED_OPERATORS = sorted(
    [*_POSITIVE, *_NEGATED, "Null"] + [op + "IfExists" for op in [*_POSITIVE, *_NEGATED]]
)


class UnsupportedCondition(ValueError):
    pass


def condition_operator_matches(operator: str, key: str, policy_values: Any, context: dict[str, str]) -> bool:
    """One `operator: {key: values}` entry. Several values are OR'd. Keys are case-insensitive
    (as in AWS); `context` must already be keyed by lower-case names."""
    values = [_text(v) for v in (policy_values if isinstance(policy_values, list) else [policy_values])]
    actual = context.get(key.lower())

    if operator == "Null":
        # Null: "true" means "the key is absent", "false" means "the key is present".
        return any((v.lower() == "true") == (actual is None) for v in values)

    if_exists = operator.endswith("IfExists")
    base = operator[: -len("IfExists")] if if_exists else operator
    if actual is None:
        # A missing key: IfExists makes any operator true; otherwise positive operators are
        # false and negated ones true.
        if if_exists:
            return True
        if base in _POSITIVE:
            return False
        if base in _NEGATED:
            return True
        raise UnsupportedCondition(operator)
    if base in _POSITIVE:
        return any(_POSITIVE[base](actual, v) for v in values)
    if base in _NEGATED:
        return not any(_POSITIVE[_NEGATED[base]](actual, v) for v in values)
    raise UnsupportedCondition(operator)


def conditions_match(condition_block: dict[str, dict[str, Any]] | None, context: dict[str, str]) -> bool:
    """A statement's whole `Condition` block: every operator and every key must hold (AND)."""
    ctx = {k.lower(): v for k, v in context.items()}
    for operator, keys in (condition_block or {}).items():
        for key, policy_values in keys.items():
            if not condition_operator_matches(operator, key, policy_values, ctx):
                return False
    return True


# --------------------------------------------------------------------------------------------
# Bucket policy evaluation
# --------------------------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statement_applies(statement: dict[str, Any], action: str, resource: str, context: dict[str, str]) -> bool:
    if "NotAction" in statement:
        if any(_wildcard(a, action, ignore_case=True) for a in _as_list(statement["NotAction"])):
            return False
    elif not any(_wildcard(a, action, ignore_case=True) for a in _as_list(statement.get("Action", []))):
        return False
    if "NotResource" in statement:
        if any(_wildcard(r, resource) for r in _as_list(statement["NotResource"])):
            return False
    elif "Resource" in statement and not any(_wildcard(r, resource) for r in _as_list(statement["Resource"])):
        return False
    # moto does not identify the caller for bucket policies; keep its rule: a plain-string
    # principal other than "*" never applies, any other principal applies to everybody.
    principal = statement.get("Principal")
    if isinstance(principal, str) and principal != "*":
        return False
    return conditions_match(statement.get("Condition"), context)


def evaluate_policy(policy: dict[str, Any], action: str, resource: str, context: dict[str, str]) -> str | None:
    """Returns "Deny" (an applicable Deny: it always wins), "Allow" (an applicable Allow and no
    applicable Deny) or None (no statement applies: the caller's default handling decides).
    A statement whose conditions do not match simply does not apply."""
    result = None
    for statement in _as_list(policy.get("Statement", [])):
        if not _statement_applies(statement, action, resource, context):
            continue
        if statement.get("Effect") == "Deny":
            return "Deny"
        result = "Allow"
    return result


# Request headers whose value S3 supplies as the condition key `s3:<header>`.
SSE_HEADERS = (
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-customer-algorithm",  # SSE-C
)


def request_context(full_url: str, headers: Any) -> dict[str, str]:
    """The condition keys this emulator supplies: aws:SecureTransport from the URL's scheme,
    the SSE keys from THIS request's headers only (absent when the header is absent, so that
    `Null` and `...IfExists` behave as on AWS: an UploadPart or CompleteMultipartUpload
    without SSE headers has no SSE keys, whatever its CreateMultipartUpload stated)."""
    lower = {str(k).lower(): str(v) for k, v in dict(headers).items()}
    ctx = {"aws:SecureTransport": "true" if urlparse(full_url).scheme == "https" else "false"}
    for header in SSE_HEADERS:
        if header in lower:
            ctx["s3:" + header] = lower[header]
    return ctx


def object_action(method: str, full_url: str) -> str:
    """The IAM action S3 authorises an object request as (moto derives `s3:<Verb>Object`).
    Multipart: CreateMultipartUpload (POST ?uploads), UploadPart (PUT ?partNumber&uploadId)
    and CompleteMultipartUpload (POST ?uploadId) are all `s3:PutObject`; AbortMultipartUpload
    and ListParts have actions of their own. HEAD is `s3:GetObject`."""
    query = parse_qs(urlparse(full_url).query, keep_blank_values=True)
    method = method.upper()
    if "uploadId" in query:
        return {"DELETE": "s3:AbortMultipartUpload", "GET": "s3:ListMultipartUploadParts"}.get(method, "s3:PutObject")
    if method == "POST" and "uploads" in query:
        return "s3:PutObject"
    if method == "HEAD":
        return "s3:GetObject"
    return f"s3:{method[:1]}{method[1:].lower()}Object"


class InvalidCreateBucketTags(ValueError):
    """Tags S3 refuses in CreateBucket (`InvalidTag`): the bucket must not be created."""


def bucket_tags_from_create_body(body: bytes | str | None) -> dict[str, str] | None:
    """The tags of a CreateBucket body, `<CreateBucketConfiguration><Tags><Tag><Key>K</Key>
    <Value>V</Value></Tag>...</Tags>`, as S3 documents it; None when it names none. Checked as
    PutBucketTagging checks them (S3's `InvalidTag`): no duplicate keys, no `aws:` keys."""
    import xmltodict

    if not body:
        return None
    try:
        config = xmltodict.parse(body, force_list={"Tag": True}).get("CreateBucketConfiguration") or {}
    except Exception:  # not XML: moto's own handler reports it
        return None
    tags_element = config.get("Tags") if isinstance(config, dict) else None
    if tags_element is None:  # no <Tags>, or an empty one
        return None
    tags: dict[str, str] = {}
    for tag in tags_element.get("Tag", []) if isinstance(tags_element, dict) else []:
        key, value = (tag or {}).get("Key"), (tag or {}).get("Value")
        if not key:
            raise InvalidCreateBucketTags("The TagKey you have provided is invalid")
        if key in tags:
            raise InvalidCreateBucketTags("Cannot provide multiple Tags with the same key")
        if key.lower().startswith("aws:"):
            raise InvalidCreateBucketTags("System tags cannot be added/updated by requester")
        tags[key] = value or ""
    return tags


# --------------------------------------------------------------------------------------------
# The patches
# --------------------------------------------------------------------------------------------

# Set for the duration of one S3 request handler: (condition context, raise_on_deny, the IAM
# action of an object request or None to keep moto's).
_current_request: contextvars.ContextVar[tuple[dict[str, str], bool, str | None] | None] = contextvars.ContextVar(
    "tfstate_s3_request", default=None
)
# Set for the duration of one CreateBucket handler: the tags its body names.
_create_bucket_tags: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "tfstate_create_bucket_tags", default=None
)


class MotoMismatch(RuntimeError):
    pass


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise MotoMismatch(what)


def apply_patches() -> str:
    """Patch moto in-process. Raises MotoMismatch if the internals are not what was verified
    (a moto upgrade must be re-checked, not silently run unpatched). Returns moto's version."""
    import moto
    import moto.s3.exceptions as s3_exceptions
    import moto.server
    from moto.iam.access_control import PermissionResult
    from moto.s3.models import FakeBucket, S3Backend
    from moto.s3.responses import S3Response

    # 1. The call sites: moto asks FakeBucket.get_permission(action, resource) from
    #    S3Response._key_response (object requests, a DENIED answer means 403) and from the
    #    DeleteObjects handler (under _bucket_response). Neither passes request data, so we
    #    wrap both handlers to publish the request's condition context in a context variable.
    _require(
        list(inspect.signature(FakeBucket.get_permission).parameters) == ["self", "action", "resource"],
        "moto.s3.models.FakeBucket.get_permission(self, action, resource)",
    )
    for name in ("_key_response", "_bucket_response"):
        handler = getattr(S3Response, name, None)
        _require(
            callable(handler) and list(inspect.signature(handler).parameters)[:3] == ["self", "request", "full_url"],
            f"moto.s3.responses.S3Response.{name}(self, request, full_url)",
        )
    key_source = inspect.getsource(S3Response._key_response)
    _require(
        "bucket.get_permission(action, resource)" in key_source and "PermissionResult.DENIED" in key_source,
        "S3Response._key_response consulting bucket.get_permission(action, resource)",
    )
    _require(all(hasattr(PermissionResult, n) for n in ("PERMITTED", "DENIED", "NEUTRAL")), "PermissionResult")
    _require(hasattr(s3_exceptions, "BucketAccessDeniedError"), "moto.s3.exceptions.BucketAccessDeniedError")
    _require(callable(getattr(moto.server, "run_simple", None)), "moto.server.run_simple")

    def with_context(original: Any, raise_on_deny: bool) -> Any:
        def handler(self: Any, request: Any, full_url: str, *args: Any, **kwargs: Any) -> Any:
            # Object requests (raise_on_deny): S3's action, not moto's verb-derived one.
            action = object_action(request.method, full_url) if raise_on_deny else None
            token = _current_request.set((request_context(full_url, request.headers), raise_on_deny, action))
            try:
                return original(self, request, full_url, *args, **kwargs)
            finally:
                _current_request.reset(token)

        handler.__doc__ = f"{original.__qualname__}, publishing the request's condition context."
        return handler

    S3Response._key_response = with_context(S3Response._key_response, raise_on_deny=True)
    S3Response._bucket_response = with_context(S3Response._bucket_response, raise_on_deny=False)

    # 4. GetBucketVersioning: moto 5.2.5's response serializer names the root element
    #    GetBucketVersioningResponse, but S3 answers <VersioningConfiguration>. boto3 does not
    #    care; the Rust SDK (rightly) refuses the document. Answer as S3 does.
    _require(callable(getattr(S3Response, "get_bucket_versioning", None)), "S3Response.get_bucket_versioning")

    def get_bucket_versioning(self: Any) -> Any:
        status = self.backend.get_bucket_versioning(self.bucket_name)
        inner = f"<Status>{status}</Status>" if status else ""
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{inner}</VersioningConfiguration>'
        )
        return 200, {}, body

    S3Response.get_bucket_versioning = get_bucket_versioning

    # 2. The evaluation itself: AWS semantics instead of moto's IAMPolicy (see evaluate_policy).
    #    On an object request a Deny raises S3's AccessDenied error, so clients see the real
    #    `403 AccessDenied` body instead of moto's bare, empty 403.
    def get_permission(self: Any, action: str, resource: str) -> Any:
        import json

        if self.policy is None:
            return PermissionResult.NEUTRAL
        current = _current_request.get()
        context, raise_on_deny, s3_action = current if current else ({}, False, None)
        if s3_action is not None:  # an object request: the action S3 authorises it as
            action = s3_action
        elif action == "s3:HeadObject":  # moto derives the action from the verb; AWS needs GetObject
            action = "s3:GetObject"
        try:
            verdict = evaluate_policy(json.loads(self.policy), action, resource, context)
        except UnsupportedCondition as e:
            # Loud, and on the safe side for a test: the request fails visibly.
            print(f"moto-launcher: unsupported condition operator {e} in the policy of {self.name}; "
                  f"supported: {', '.join(SUPPORTED_OPERATORS)}", file=sys.stderr, flush=True)
            verdict = "Deny"
        if verdict == "Deny":
            if raise_on_deny:
                raise s3_exceptions.BucketAccessDeniedError(bucket=self.name)
            return PermissionResult.DENIED
        return PermissionResult.PERMITTED if verdict == "Allow" else PermissionResult.NEUTRAL

    get_permission.__doc__ = "Bucket policy evaluation with AWS condition semantics (launcher.py)."
    FakeBucket.get_permission = get_permission

    # 5. CreateBucket with `CreateBucketConfiguration.Tags`: moto 5.2.5 reads only the
    #    LocationConstraint of the body. The PUT-bucket handler publishes the body's tags
    #    (refusing invalid ones before anything is created, as S3 does), and the backend's
    #    create_bucket tags the new bucket before the CreateBucket response is sent. Only a bucket
    #    this request really creates is tagged: a re-create (us-east-1 answers 200) changes nothing.
    _require(
        list(inspect.signature(S3Response._bucket_response_put).parameters)[:4]
        == ["self", "request", "bucket_name", "querystring"],
        "moto.s3.responses.S3Response._bucket_response_put(self, request, bucket_name, querystring)",
    )
    _require(
        list(inspect.signature(S3Backend.create_bucket).parameters)[:3] == ["self", "bucket_name", "region_name"],
        "moto.s3.models.S3Backend.create_bucket(self, bucket_name, region_name, ...)",
    )
    _require(callable(getattr(S3Backend, "put_bucket_tagging", None)), "S3Backend.put_bucket_tagging")
    _require(hasattr(s3_exceptions, "InvalidTagError"), "moto.s3.exceptions.InvalidTagError")
    original_bucket_put = S3Response._bucket_response_put
    original_create_bucket = S3Backend.create_bucket

    def bucket_response_put(self: Any, request: Any, bucket_name: str, querystring: Any, *args: Any, **kwargs: Any) -> Any:
        tags = None
        if not querystring:  # PUT /bucket with no subresource: CreateBucket
            try:
                tags = bucket_tags_from_create_body(self.body)
            except InvalidCreateBucketTags as e:
                raise s3_exceptions.InvalidTagError(str(e))
        token = _create_bucket_tags.set(tags)
        try:
            return original_bucket_put(self, request, bucket_name, querystring, *args, **kwargs)
        finally:
            _create_bucket_tags.reset(token)

    def create_bucket(self: Any, bucket_name: str, region_name: str, *args: Any, **kwargs: Any) -> Any:
        bucket = original_create_bucket(self, bucket_name, region_name, *args, **kwargs)
        tags = _create_bucket_tags.get()
        if tags:
            self.put_bucket_tagging(bucket_name, tags)
        return bucket

    bucket_response_put.__doc__ = "S3Response._bucket_response_put, publishing CreateBucket's tags (launcher.py)."
    create_bucket.__doc__ = "S3Backend.create_bucket, applying CreateBucketConfiguration.Tags (launcher.py)."
    S3Response._bucket_response_put = bucket_response_put
    S3Backend.create_bucket = create_bucket

    # 6. GetBucketReplication: moto 5.2.5 stores the whole configuration PutBucketReplication
    #    sent, but answers with a fixed `Filter` (`Prefix ""`), a fixed `DeleteMarkerReplication`
    #    (Disabled) and no `SourceSelectionCriteria` at all, so no client can verify what S3 would
    #    return (a replication of KMS-encrypted objects that silently stopped would look the
    #    same). Answer with the stored rule's elements, as S3 does.
    _require(callable(getattr(S3Response, "get_bucket_replication", None)), "S3Response.get_bucket_replication")
    _require(hasattr(s3_exceptions, "ReplicationConfigurationNotFoundError"),
             "moto.s3.exceptions.ReplicationConfigurationNotFoundError")
    replication_source = inspect.getsource(S3Response.get_bucket_replication)
    _require("self.serialized(" in replication_source and "ActionResult(" in replication_source,
             "S3Response.get_bucket_replication answering through self.serialized(ActionResult(...))")
    action_result = S3Response.get_bucket_replication.__globals__["ActionResult"]

    def get_bucket_replication(self: Any) -> Any:
        self.data["Action"] = "GetBucketReplication"
        replication = self.backend.get_bucket_replication(self.bucket_name)
        if not replication:
            raise s3_exceptions.ReplicationConfigurationNotFoundError(bucket_name=self.bucket_name)
        rules = []
        for rule in replication["Rule"]:
            out = {k: rule[k] for k in ("ID", "Priority", "Status", "Destination") if k in rule}
            for k in ("Filter", "DeleteMarkerReplication", "SourceSelectionCriteria", "ExistingObjectReplication"):
                if k in rule:
                    out[k] = rule[k]
            if "Prefix" in rule and "Filter" not in rule:  # the V1 schema
                out["Prefix"] = rule["Prefix"]
            rules.append(out)
        return self.serialized(
            action_result({"ReplicationConfiguration": {"Role": replication["Role"], "Rules": rules}})
        )

    get_bucket_replication.__doc__ = "GetBucketReplication answering the stored rules (launcher.py)."
    S3Response.get_bucket_replication = get_bucket_replication
    return moto.__version__


def serve_plain_http_too(port: int) -> None:
    """Make moto.server.main also serve its WSGI app over plain HTTP on 127.0.0.1:port.

    moto.server.main builds one DomainDispatcherApplication and passes it to werkzeug's
    run_simple; we wrap run_simple (as imported into moto.server) to start a second werkzeug
    server with that same app object in a daemon thread first. Same process, same backends."""
    import moto.server
    from werkzeug.serving import make_server

    real_run_simple = moto.server.run_simple

    def run_simple(hostname: str, tls_port: int, application: Any, **kwargs: Any) -> None:
        plain = make_server(
            "127.0.0.1", port, application, threaded=True,
            request_handler=kwargs.get("request_handler"),
        )
        threading.Thread(target=plain.serve_forever, name="plain-http", daemon=True).start()
        print(f"moto-launcher: also serving plain HTTP on http://127.0.0.1:{port}", file=sys.stderr, flush=True)
        real_run_simple(hostname, tls_port, application, **kwargs)

    moto.server.run_simple = run_simple


def handshake_in_request_threads() -> None:
    """Make werkzeug's TLS server do each TLS handshake in the connection's own thread.

    werkzeug wraps the listening socket with `ssl_context.wrap_socket(sock, server_side=True)`,
    so `accept()` performs the whole handshake in the single accept loop: one client that
    connects and then stalls (a test whose async runtime is blocked by a child process, a
    client paused mid-handshake) blocks every other client's connection until it gives up;
    AWS never behaves like that. With `do_handshake_on_connect=False` the accepted socket is
    returned at once and OpenSSL completes the handshake on the first read, in the request
    thread (as the fault proxy does in `ProxyHandler.setup`)."""
    import ssl

    import werkzeug.serving

    _require(callable(getattr(werkzeug.serving, "load_ssl_context", None)), "werkzeug.serving.load_ssl_context")
    real_load = werkzeug.serving.load_ssl_context

    class LazyHandshakeContext(ssl.SSLContext):
        def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> Any:
            kwargs["do_handshake_on_connect"] = False
            return super().wrap_socket(sock, *args, **kwargs)

    def load_ssl_context(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        ctx = real_load(*args, **kwargs)
        ctx.__class__ = LazyHandshakeContext
        return ctx

    werkzeug.serving.load_ssl_context = load_ssl_context


def update_table_applies_sse() -> None:
    """Make DynamoDB UpdateTable apply its `SSESpecification`, as AWS does.

    moto 5.2.5's UpdateTable ignores it, so a lock table whose KMS key must change (its key
    was recreated: moto lost it on a restart while a pass created the table with the old
    ARN, which moto's CreateTable does not check) could never converge: the operator's
    UpdateTable went through and DescribeTable kept the old key. Enabled with a key id: that
    key; enabled without one: the AWS managed key (moto's default); disabled: the AWS owned
    key (no SSEDescription)."""
    from moto.dynamodb.responses import DynamoHandler, DynamoResult

    real = DynamoHandler.update_table
    _require(callable(real), "moto.dynamodb.responses.DynamoHandler.update_table")
    _require("sse_specification" not in inspect.getsource(real), "UpdateTable ignoring SSESpecification")

    def update_table(self: Any) -> Any:
        result = real(self)
        sse = self.body.get("SSESpecification")
        if sse is None:
            return result
        table = self.dynamodb_backend.get_table(self.body["TableName"])
        if sse.get("Enabled") is False:
            table.sse_specification = None
        else:
            spec = {"Enabled": True, "SSEType": sse.get("SSEType", "KMS")}
            spec["KMSMasterKeyId"] = sse.get("KMSMasterKeyId") or table._get_default_encryption_key(
                self.current_account, self.region
            )
            table.sse_specification = spec
        return DynamoResult(table.describe())

    update_table.__doc__ = "UpdateTable applying SSESpecification (launcher.py)."
    DynamoHandler.update_table = update_table


class _CountingInput(io.RawIOBase):
    """A request body stream that counts what the application read from it."""

    def __init__(self, stream: Any) -> None:
        super().__init__()
        self.stream = stream
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self.stream.readinto(b) or 0
        self.consumed += n
        return n

    def read(self, size: int | None = -1) -> bytes:
        data = self.stream.read(size)
        self.consumed += len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        data = self.stream.readline(size)
        self.consumed += len(data)
        return data


def keep_connections_alive() -> None:
    """Keep HTTP/1.1 connections open between requests, as AWS endpoints (and SDKs) do.

    werkzeug's development server sends `Connection: close` on every response and then
    reads whatever the client sends within 10 ms and throws it away (its comment: it does
    not support keep-alive, so draining cannot eat a next request). Every AWS call of the
    operator therefore paid a new TCP connection and TLS handshake: measured on 2 cores,
    2.9 ms of moto's CPU per call over TLS against 1.7 ms over plain HTTP, and 14 ms
    against 1.9 ms of wall time (500 GetCallerIdentity calls, one connection each). AWS
    keeps connections alive, and the SDK's pool reuses them.

    Patched: the `Connection: close` header is dropped on an HTTP/1.1 answer of the
    application unless the client asked to close; a request whose body the application did
    not read to its end, or whose length is not a plain Content-Length, still closes its
    connection, so that no unread body is ever parsed as the next request; the drain runs
    only on a connection that closes. A response cut off after its headers (werkzeug closes
    only chunked ones) would now leave the client waiting for the rest: no moto handler
    fails that late (its bodies are built before the headers go out)."""
    import werkzeug.serving
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    run_wsgi = inspect.getsource(werkzeug.serving.WSGIRequestHandler.run_wsgi)
    _require('self.send_header("Connection", "close")' in run_wsgi, "werkzeug run_wsgi sending Connection: close")
    _require("selectors.DefaultSelector()" in run_wsgi, "werkzeug run_wsgi draining through selectors")
    _require(getattr(werkzeug.serving, "selectors", None) is not None, "werkzeug.serving.selectors")

    real_selectors = werkzeug.serving.selectors
    # The handler whose response the drain follows (werkzeug runs one request per thread).
    current = threading.local()

    class DrainOnlyWhenClosing:
        """werkzeug's drain, kept for a connection that closes (so that a client still
        sending an unread body sees the response, not a reset), skipped on a kept one,
        where it would read the client's next request."""

        def __init__(self) -> None:
            handler = getattr(current, "handler", None)
            self.real = real_selectors.DefaultSelector() if handler is None or handler.close_connection else None

        def register(self, *args: Any, **kwargs: Any) -> Any:
            return self.real.register(*args, **kwargs) if self.real else None

        def select(self, timeout: float | None = None) -> list[Any]:
            return self.real.select(timeout) if self.real else []

        def close(self) -> None:
            if self.real:
                self.real.close()

    # werkzeug.serving uses `selectors` only for that drain.
    werkzeug.serving.selectors = type(
        "selectors", (), {"DefaultSelector": DrainOnlyWhenClosing, "EVENT_READ": real_selectors.EVENT_READ}
    )

    real_make_environ = MotoRequestHandler.make_environ
    real_run_wsgi = MotoRequestHandler.run_wsgi
    real_send_header = MotoRequestHandler.send_header

    def make_environ(self: Any) -> dict[str, Any]:
        environ = real_make_environ(self)
        if not environ.get("wsgi.input_terminated"):
            self.counted_input = environ["wsgi.input"] = _CountingInput(environ["wsgi.input"])
        return environ

    def body_unread(self: Any) -> bool:
        """Whether part of the request body may still be in the socket. Anything but a
        plain Content-Length (chunked or other transfer codings, "+5", "5,5") counts as
        unread: the connection closes rather than guess where the next request starts."""
        if self.headers.get("Transfer-Encoding") is not None:
            return True
        length = self.headers.get("Content-Length")
        if length is None:
            return self.counted_input is None
        length = length.strip(" \t")
        if not (length.isascii() and length.isdigit()):
            return True
        return self.counted_input is None or self.counted_input.consumed < int(length)

    def send_header(self: Any, keyword: str, value: str) -> None:
        # werkzeug sends it on every response, once the application has answered (and so
        # has read what it wanted of the body). Kept outside run_wsgi (http.server's own
        # error answers: 414, 431, 505), for anything but HTTP/1.1, when the client asked to
        # close (close_connection was set when the request was parsed), or when the body
        # is unread.
        if keyword.lower() == "connection" and value.lower() == "close":
            keep_alive = (
                getattr(self, "in_wsgi", False)
                and self.request_version == "HTTP/1.1"
                and not self.close_connection
                and not body_unread(self)
            )
            if keep_alive:
                return
        real_send_header(self, keyword, value)

    def run_wsgi(self: Any) -> None:
        self.counted_input = None
        self.in_wsgi = True
        current.handler = self
        try:
            real_run_wsgi(self)
        finally:
            self.in_wsgi = False
            current.handler = None
        # A body read only after the headers went out (none of moto's handlers do that):
        # the connection still closes, so no unread byte is parsed as the next request.
        if body_unread(self):
            self.close_connection = True

    # Headers and body go out in separate writes: with Nagle's algorithm on, a kept-alive
    # connection waits for the client's delayed ACK (about 40 ms) before the body.
    MotoRequestHandler.disable_nagle_algorithm = True
    MotoRequestHandler.make_environ = make_environ
    MotoRequestHandler.send_header = send_header
    MotoRequestHandler.run_wsgi = run_wsgi


def main(argv: list[str]) -> None:
    plain_port = None
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--plain-port":
            plain_port = next(args, None)
            if plain_port is None:
                sys.exit("moto-launcher: --plain-port needs a port number")
        elif arg.startswith("--plain-port="):
            plain_port = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    try:
        version = apply_patches()
        update_table_applies_sse()
        keep_connections_alive()
    except MotoMismatch as e:
        sys.exit(
            f"moto-launcher: this moto does not have the internals the launcher patches ({e}); "
            f"it was written for moto {VERIFIED_MOTO_VERSION}: re-check scripts/moto/launcher.py"
        )
    if version != VERIFIED_MOTO_VERSION:
        print(f"moto-launcher: warning: moto {version}, verified with {VERIFIED_MOTO_VERSION}", file=sys.stderr)
    handshake_in_request_threads()
    if plain_port is not None:
        if not plain_port.isdigit():
            sys.exit(f"moto-launcher: --plain-port {plain_port!r} is not a port number")
        serve_plain_http_too(int(plain_port))
    print(f"moto-launcher: moto {version} with AWS bucket-policy conditions", file=sys.stderr, flush=True)

    import moto.server

    # moto.server.main falls back to sys.argv when given an empty list: hide our own flag.
    sys.argv = [sys.argv[0], *rest]
    moto.server.main(rest)


if __name__ == "__main__":
    main(sys.argv[1:])
