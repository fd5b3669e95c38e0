"""Helpers of the chart's install tests: the test ground's settings, a small Kubernetes REST
client (stdlib only), and the operator binary run as a local process.

The test ground is started by scripts/testground-up.sh; its env file is named by
TFSTATE_TESTGROUND_ENV (see shared/docs/test-ground.md).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "tfstate-operator"


@dataclass
class Ground:
    """What the test ground's env file says."""

    env: dict[str, str]

    @classmethod
    def from_env(cls) -> Ground:
        path = os.environ.get("TFSTATE_TESTGROUND_ENV")
        if not path:
            raise RuntimeError(
                "TFSTATE_TESTGROUND_ENV is not set: the install tests need a running test ground. "
                "Start one with `dir=$(scripts/testground-up.sh)`, then "
                "`export TFSTATE_TESTGROUND_ENV=$dir/env` (scripts/test.sh does this), "
                "or run only the offline tests with `-m 'not ground'`."
            )
        if not Path(path).is_file():
            raise RuntimeError(f"TFSTATE_TESTGROUND_ENV={path}: no such file (is the test ground up?)")
        env = {}
        for line in Path(path).read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, value = line.split("=", 1)
                env[key.strip()] = value.strip()
        missing = [k for k in ("KUBECONFIG", "KUBE_APISERVER_URL", "TESTGROUND_ADMIN_TOKEN", "TESTGROUND_DIR",
                               "AWS_ENDPOINT_URL", "AWS_CA_BUNDLE") if k not in env]
        if missing:
            raise RuntimeError(f"{path} lacks {', '.join(missing)}: is it a test ground env file?")
        return cls(env)

    @property
    def server(self) -> str:
        return self.env["KUBE_APISERVER_URL"]

    @property
    def ca_file(self) -> str:
        return str(Path(self.env["TESTGROUND_DIR"]) / "certs" / "apiserver.crt")

    def admin(self) -> Kube:
        return Kube(self.server, self.env["TESTGROUND_ADMIN_TOKEN"], self.ca_file)

    def aws_env(self) -> dict[str, str]:
        """The AWS settings an operator on this ground needs (emulator, CA, credentials)."""
        keys = ("AWS_ENDPOINT_URL", "AWS_CA_BUNDLE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")
        return {k: self.env[k] for k in keys if k in self.env}

    def write_kubeconfig(self, path: Path, token: str, user: str) -> Path:
        """A kubeconfig for `token` (JSON is valid YAML)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "testground", "cluster": {"server": self.server,
                                                             "certificate-authority": self.ca_file}}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "testground", "context": {"cluster": "testground", "user": user}}],
            "current-context": "testground",
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        return path


class Kube:
    """Kubernetes REST calls with one bearer token. Answers are (HTTP status, JSON body)."""

    def __init__(self, server: str, token: str, ca_file: str) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.tls = ssl.create_default_context(cafile=ca_file)

    def call(self, method: str, path: str, body: Any = None,
             content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self.tls, timeout=30) as resp:
                return resp.status, _json(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, _json(e.read())

    def must(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
             ok: tuple[int, ...] = (200, 201, 202)) -> dict[str, Any]:
        status, answer = self.call(method, path, body, content_type)
        if status not in ok:
            raise AssertionError(f"{method} {path}: HTTP {status}: {answer.get('message', answer)}")
        return answer

    def get(self, path: str) -> dict[str, Any] | None:
        status, answer = self.call("GET", path)
        if status == 404:
            return None
        if status != 200:
            raise AssertionError(f"GET {path}: HTTP {status}: {answer.get('message', answer)}")
        return answer

    def ensure_namespace(self, name: str) -> None:
        self.must("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                  "metadata": {"name": name}}, ok=(201, 409))

    def service_account_token(self, namespace: str, name: str, seconds: int = 3600) -> str:
        """A token of ServiceAccount namespace/name from the TokenRequest API."""
        answer = self.must("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token", {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": seconds}})
        return answer["status"]["token"]


def _json(raw: bytes) -> dict[str, Any]:
    try:
        decoded = json.loads(raw or b"{}")
    except ValueError:
        return {"raw": raw.decode(errors="replace")}
    return decoded if isinstance(decoded, dict) else {"value": decoded}


def wait_for(what: str, timeout: float, probe: Callable[[], Any], on_timeout: Callable[[], str] = lambda: "",
             interval: float = 0.5) -> Any:
    """Polls `probe` until it returns something truthy; fails with `on_timeout()` as detail."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{on_timeout()}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def operator_binary() -> Path:
    """The operator binary to run: TFSTATE_OPERATOR_BIN, else the debug build of the cache."""
    explicit = os.environ.get("TFSTATE_OPERATOR_BIN")
    if explicit:
        path = Path(explicit)
    else:
        cache = Path(os.environ.get("TFSTATE_CACHE_DIR", Path.home() / ".cache" / "tfstate-operator"))
        target = Path(os.environ.get("CARGO_TARGET_DIR", cache / "target"))
        path = target / "debug" / "tfstate-operator"
    if not os.access(path, os.X_OK):
        if explicit:
            raise RuntimeError(f"TFSTATE_OPERATOR_BIN={explicit} is not an executable file")
        raise RuntimeError(
            f"operator binary {path} not found: build it with `CARGO_TARGET_DIR={path.parent.parent} "
            "cargo build --features failpoints --bin tfstate-operator`, or set TFSTATE_OPERATOR_BIN")
    return path


def binary_flags(binary: Path) -> str:
    """The `run --help` text, to learn which flags this build knows."""
    return subprocess.run([str(binary), "run", "--help"], capture_output=True, text=True, timeout=30).stdout


class OperatorProcess:
    """The operator binary as a local process; always stop() it (fixtures do, in finally)."""

    def __init__(self, binary: Path, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        base = {k: os.environ[k] for k in ("PATH", "LANG", "TZ") if k in os.environ}
        # Nothing else is inherited: a TFSTATE_* or KUBECONFIG of the caller must not leak in.
        self._out = open(log, "wb")
        self.proc = subprocess.Popen([str(binary), *args], env={**base, **env}, stdout=self._out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return f"operator log ({self.log}), last {lines} lines:\n" + "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self._out.close()


def rewrite_listen_addrs(args: list[str], port_map: dict[int, int]) -> list[str]:
    """The chart's `--x-addr=0.0.0.0:PORT` args, bound to free loopback ports instead."""
    out = []
    for arg in args:
        flag, sep, value = arg.partition("=")
        if sep and flag.endswith("-addr") and value.startswith("0.0.0.0:"):
            port = int(value.rsplit(":", 1)[1])
            arg = f"{flag}=127.0.0.1:{port_map.setdefault(port, free_port())}"
        out.append(arg)
    return out


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError:
        return 0, ""
