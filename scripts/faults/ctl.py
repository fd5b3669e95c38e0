#!/usr/bin/env python3
"""Drives the fault proxy's control API from a shell (scripts/faults/README.md).

    ctl.py rules FILE.json|-          PUT /faults/rules (the file, or stdin, holds {"seed":..,"rules":[..]})
    ctl.py clear                      DELETE /faults/rules (releases hanging calls)
    ctl.py consistency '{"...": ..}'  PUT /faults/consistency ('{}' or 'off': DELETE)
    ctl.py stats                      GET /faults/stats
    ctl.py reset                      POST /faults/reset

The control URL comes from TESTGROUND_FAULTS_CONTROL_URL (the ground's env file) or --url.
Prints the JSON answer; exits 1 with the API's error on a refused request.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request


def call(url: str, method: str, path: str, body=None):
    """One control request; returns (status, parsed JSON answer)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url.rstrip("/") + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, {"error": raw.decode("utf-8", "replace")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=os.environ.get("TESTGROUND_FAULTS_CONTROL_URL"),
                   help="control API URL (default: $TESTGROUND_FAULTS_CONTROL_URL)")
    sub = p.add_subparsers(dest="command", required=True)
    rules = sub.add_parser("rules", help="replace the rule set")
    rules.add_argument("file", help="JSON file, or - for stdin")
    sub.add_parser("clear", help="delete every rule")
    consistency = sub.add_parser("consistency", help="set the eventual-consistency knobs")
    consistency.add_argument("json", help="JSON object of knobs; '{}' or 'off' switches all off")
    sub.add_parser("stats", help="request and injection counters")
    sub.add_parser("reset", help="rules, consistency and statistics cleared")
    a = p.parse_args(argv)
    if not a.url:
        p.error("no control URL: set TESTGROUND_FAULTS_CONTROL_URL (source the ground's env) or pass --url")

    if a.command == "rules":
        text = sys.stdin.read() if a.file == "-" else open(a.file, encoding="utf-8").read()
        status, answer = call(a.url, "PUT", "/faults/rules", json.loads(text))
    elif a.command == "clear":
        status, answer = call(a.url, "DELETE", "/faults/rules")
    elif a.command == "consistency":
        knobs = {} if a.json.strip() == "off" else json.loads(a.json)
        if knobs:
            status, answer = call(a.url, "PUT", "/faults/consistency", knobs)
        else:
            status, answer = call(a.url, "DELETE", "/faults/consistency")
    elif a.command == "stats":
        status, answer = call(a.url, "GET", "/faults/stats")
    else:
        status, answer = call(a.url, "POST", "/faults/reset")
    print(json.dumps(answer, indent=2, sort_keys=True))
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
