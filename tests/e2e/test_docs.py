"""The documents point at things that exist: every relative link and every
repository path quoted in README.md and docs/**/*.md names an existing file
or folder of this repository, and no document sends the reader outside it
(a design file of another checkout, a sibling folder)."""

import re

import pytest

from agentd_harness import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
TOP = ("README.md", "CMakeLists.txt", "docs/", "src/", "tests/", "deploy/", "scripts/",
       "data/", "bench/", ".dockerignore")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\s]+)`")


def rel(path):
    return path.relative_to(REPO).as_posix()


def repo_paths(text):
    """Quoted repository paths: `docs/x.md`, `src/llm/llm.c`, ... (globs and
    placeholders like `src/llm/llm_config.[ch]` are expanded or skipped)."""
    for m in CODE.finditer(text):
        p = m.group(1).rstrip(".,;:")
        if not p.startswith(TOP) or re.search(r"[*<>{}$]|\.\.\.", p):
            continue
        p = p.split("#")[0].split(":")[0]
        if p.endswith(".[ch]"):
            yield p[:-5] + ".c"
            yield p[:-5] + ".h"
        elif "[" not in p:
            yield p


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_links_and_paths_exist(doc):
    text = doc.read_text()
    missing = []
    for m in LINK.finditer(text):
        target = m.group(1).split("#")[0]
        if not target or re.match(r"[a-z]+:", target):
            continue                      # an anchor, or a URL (http:, mailto:)
        path = (doc.parent / target).resolve()
        if not path.is_relative_to(REPO):
            missing.append(f"{target} (outside the repository)")
        elif not path.exists():
            missing.append(target)
    for p in repo_paths(text):
        if not (REPO / p).exists():
            missing.append(p)
    assert not missing, f"{rel(doc)} points at what does not exist: {sorted(set(missing))}"


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_no_reference_outside_the_repository(doc):
    text = doc.read_text()
    bad = [m.group(0) for m in re.finditer(
        r"\.\./shared\S*|shared/design\S*|/work/\S+|design\.md|design §\s*\d+|§\d+ of the design",
        text)]
    assert not bad, f"{rel(doc)} refers outside the repository: {bad}"


def test_operator_docs_and_internals_are_apart():
    internals = {p.name for p in (REPO / "docs" / "internals").glob("*.md")}
    for name in ("architecture.md", "storage.md", "ucp-model.md"):
        assert name in internals, f"docs/internals/{name} is missing"
        assert not (REPO / "docs" / name).exists(), f"docs/{name} is an internal document"
    for name in ("deployment.md", "operations.md", "api.md", "llm.md", "catalog.md", "ucp.md"):
        assert (REPO / "docs" / name).exists(), f"docs/{name} is missing"
    readme = (REPO / "README.md").read_text()
    for name in ("docs/deployment.md", "docs/operations.md", "docs/internals/architecture.md"):
        assert name in readme, f"README does not point at {name}"
