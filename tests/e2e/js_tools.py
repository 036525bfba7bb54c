"""Helpers for the e2e tests that drive agentd with node programs in tests/js (the official
A2A JavaScript SDKs, and the UCP sample chat client in headless Chromium).

Skip policy: a test may skip only when node, tests/js/node_modules or chromium is genuinely
absent AND CI is not set; under CI=true a missing tool is a failure (scripts/install-deps
installs them all)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from agentd_harness import REPO

JS_DIR = REPO / "tests" / "js"
CHROMIUM = os.environ.get("AGENTD_CHROMIUM", "/usr/bin/chromium")


def require(ok, what):
    """Skip (developer machine) or fail (CI) when a tool is missing."""
    if ok:
        return
    msg = f"{what} is missing: run scripts/install-deps"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(msg + " (CI=true: missing test tools are a failure)", pytrace=False)
    pytest.skip(msg)


def node_bin():
    node = shutil.which("node")
    require(node is not None, "node (Node.js 20)")
    return node


def require_js_modules(*packages):
    for p in packages:
        require((JS_DIR / "node_modules" / p / "package.json").is_file(),
                f"tests/js/node_modules/{p}")


def run_node(args, timeout, cwd=JS_DIR):
    """Runs `node ARGS` in tests/js; returns (report dict or None, CompletedProcess).
    The script prints one JSON document on stdout; stderr is kept for the failure text."""
    proc = subprocess.run([node_bin(), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL,
                          env={**os.environ, "NO_COLOR": "1"})
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        report = None
    return report, proc


def describe(report, proc):
    """The failure text: the report (or raw stdout) and stderr, bounded."""
    body = json.dumps(report, indent=1) if report is not None else proc.stdout
    return f"node exit {proc.returncode}\n--- report\n{body[-12000:]}\n--- stderr\n{proc.stderr[-4000:]}"


def samples_dir():
    """UCP's pinned samples (read-only fixture): $AGENTD_UCP_SAMPLES or ../shared/fixtures."""
    return Path(os.environ.get("AGENTD_UCP_SAMPLES")
                or REPO.parent / "shared" / "fixtures" / "ucp-samples")
