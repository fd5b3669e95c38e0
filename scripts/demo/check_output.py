"""Checks that a transcript of `scripts/demo.sh` still shows what the README promises: every
sample backend Ready, the published ConfigMap, the independent AWS read-back of every backend,
and the operator's AWS call counts. CI runs it on the demo's output, so that the main job
cannot silently rot into a command that exits 0 but shows nothing.

    check_output.py TRANSCRIPT [SAMPLES_DIR]     exit 0 when it shows everything, 1 otherwise
"""

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def sample_names(samples_dir: Path) -> list[str]:
    """The metadata.name of every sample backend, as the demo applies them."""
    return [yaml.safe_load(p.read_text())["metadata"]["name"] for p in sorted(samples_dir.glob("*.yaml"))]


def section(lines: list[str], header: str) -> list[str]:
    """The lines after the first line starting with `header`, up to the next `--- ` header."""
    for i, line in enumerate(lines):
        if line.startswith(header):
            rest = lines[i + 1:]
            end = next((j for j, l in enumerate(rest) if l.startswith("--- ")), len(rest))
            return rest[:end]
    return []


def check(transcript: str, names: list[str]) -> list[str]:
    """What the transcript fails to show, one sentence each ([] when it shows everything)."""
    lines = transcript.splitlines()
    problems = []
    if not names:
        return ["no sample backends found"]
    if not re.search(rf"^demo: all {len(names)} backends Ready in [0-9.]+ s$", transcript, re.M):
        problems.append(f"no line 'demo: all {len(names)} backends Ready in ... s'")
    for n in names:
        if not re.search(rf"^{re.escape(n)}\s+True\s", transcript, re.M):
            problems.append(f"backend {n} is not listed as READY True")

    backend_tf = section(lines, "--- ConfigMap ")
    if not backend_tf:
        problems.append("no '--- ConfigMap ...: backend.tf ---' section")
    else:
        text = "\n".join(backend_tf)
        for needle in ('backend "s3" {', "bucket", "key", "region", "encrypt"):
            if needle not in text:
                problems.append(f"the ConfigMap's backend.tf does not show {needle!r}")
    flat = section(lines, "--- flat keys")
    for key in ("bucket", "key", "region"):
        if not any(l.startswith(f"{key}=") for l in flat):
            problems.append(f"the ConfigMap's flat keys do not show {key}=")

    readback = section(lines, "--- AWS, read back independently")
    if not readback:
        problems.append("no '--- AWS, read back independently ---' section")
    for n in names:
        try:
            at = readback.index(f"{n}:")
        except ValueError:
            if readback:
                problems.append(f"the AWS read-back does not show backend {n}")
            continue
        block = []
        for l in readback[at + 1:]:
            if not l.startswith("  "):
                break
            block.append(l.strip())
        for part in ("bucket ", "role "):
            if not any(b.startswith(part) for b in block):
                problems.append(f"the AWS read-back of {n} shows no {part.strip()}")
        if block and not any("versioning Enabled" in b for b in block):
            problems.append(f"the AWS read-back of {n} does not show versioning Enabled")
    if not re.search(r"^demo: read-back: every setting of all \d+ backends is as the spec asks$", transcript, re.M):
        problems.append("no line saying the read-back found every setting")
    calls = re.search(r"^(\d+) calls: (\d+) reads, (\d+) writes$", transcript, re.M)
    if not calls or int(calls.group(1)) == 0:
        problems.append("no non-zero 'N calls: R reads, W writes' line (the operator's AWS calls)")
    if "demo finished: every sample backend is Ready" not in transcript:
        problems.append("no line 'demo finished: every sample backend is Ready'")
    return problems


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    samples = Path(sys.argv[2]) if len(sys.argv) == 3 else ROOT / "samples"
    problems = check(Path(sys.argv[1]).read_text(errors="replace"), sample_names(samples))
    for p in problems:
        print(f"demo output: {p}", file=sys.stderr)
    if problems:
        print(f"demo output check FAILED: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("demo output check passed: every sample Ready, the ConfigMap, the AWS read-back and the call counts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
