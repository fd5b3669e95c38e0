"""Tests of the demo's output check: a transcript that shows everything passes, and each
thing the README promises, removed or broken, fails with a sentence that names it."""

from pathlib import Path

import pytest

from check_output import ROOT, check, sample_names

NAMES = ["alpha", "beta"]

GOOD = """\
[10:00:00] building the operator (release)
demo: applied 2 backends from samples/: alpha, beta

NAME             READY  LOCK      BUCKET                         ROLE
alpha            True   DynamoDB  acme-alpha                     arn:aws:iam::123456789012:role/tfstate-demo-alpha
beta             True   Lockfile  acme-beta                      arn:aws:iam::123456789012:role/tfstate-demo-beta
demo: all 2 backends Ready in 1.2 s

--- ConfigMap minimal-backend: backend.tf ---
terraform {
  backend "s3" {
    bucket  = "acme-alpha"
    key     = "tfstate-demo/alpha/terraform.tfstate"
    region  = "eu-west-1"
    encrypt = true
  }
}
--- flat keys (for -backend-config=KEY=VALUE) ---
bucket=acme-alpha
key=tfstate-demo/alpha/terraform.tfstate
region=eu-west-1

--- AWS, read back independently with boto3 ---
alpha:
  bucket acme-alpha: versioning Enabled, aws:kms (bucket key True), public access blocked True
  key 1234: rotation True
  role tfstate-demo-alpha: inline policy ['ListStatePrefixes']
beta:
  bucket acme-beta: versioning Enabled, AES256 (bucket key False), public access blocked True
  role tfstate-demo-beta: inline policy ['ListStatePrefixes']
demo: read-back: every setting of all 2 backends is as the spec asks

--- the operator's AWS calls so far (tfstate_aws_calls_total) ---
198 calls: 121 reads, 77 writes
[10:00:05] demo finished: every sample backend is Ready
"""


def test_a_complete_transcript_passes():
    assert check(GOOD, NAMES) == []


@pytest.mark.parametrize("remove, complaint", [
    ("demo: all 2 backends Ready in 1.2 s\n", "backends Ready in"),
    ("beta             True   Lockfile", "backend beta is not listed as READY True"),
    ('  backend "s3" {\n', "backend \"s3\" {"),
    ("--- ConfigMap minimal-backend: backend.tf ---\n", "ConfigMap"),
    ("region=eu-west-1\n", "region="),
    ("beta:\n", "does not show backend beta"),
    ("  role tfstate-demo-beta: inline policy ['ListStatePrefixes']\n", "of beta shows no role"),
    ("--- AWS, read back independently with boto3 ---\n", "read back independently"),
    ("demo: read-back: every setting of all 2 backends is as the spec asks\n", "read-back found every setting"),
    ("198 calls: 121 reads, 77 writes\n", "calls"),
    ("[10:00:05] demo finished: every sample backend is Ready\n", "demo finished"),
])
def test_each_missing_promise_fails(remove, complaint):
    assert remove in GOOD, "the fixture must contain what the case removes"
    problems = check(GOOD.replace(remove, "", 1), NAMES)
    assert any(complaint in p for p in problems), problems


def test_not_ready_and_unversioned_fail():
    broken = GOOD.replace("beta             True ", "beta             False").replace(
        "acme-beta: versioning Enabled", "acme-beta: versioning Suspended")
    problems = check(broken, NAMES)
    assert any("beta is not listed as READY True" in p for p in problems), problems
    assert any("beta does not show versioning Enabled" in p for p in problems), problems


def test_zero_calls_and_wrong_count_fail():
    assert any("calls" in p for p in check(GOOD.replace("198 calls: 121 reads, 77 writes", "0 calls: 0 reads, 0 writes"), NAMES))
    assert any("all 3 backends Ready" in p for p in check(GOOD, NAMES + ["gamma"]))


def test_an_empty_transcript_fails_on_everything():
    assert len(check("", NAMES)) >= 6


def test_sample_names_are_the_samples():
    names = sample_names(ROOT / "samples")
    assert len(names) == len(list((ROOT / "samples").glob("*.yaml"))) > 0
    assert "minimal" in names
