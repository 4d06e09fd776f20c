"""Every runnable example in README.md and docs/ runs, against the small model, so the docs stay true.

A fenced ```bash or ```python block runs unless its info string says `no-run` (kept for examples that need a
GPU, the network, a long benchmark, or that run forever, like `serve`). Examples that talk to a server at
127.0.0.1:8000 run against the test session's shared server, its address substituted. Bash blocks run in
the checkout with the venv's `sampling-engine` on PATH, under `set -euo pipefail`.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .server_process import shared_server

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.M | re.S)
DOC_SERVER = "http://127.0.0.1:8000"


def examples():
    for page in PAGES:
        for n, m in enumerate(FENCE.finditer(page.read_text())):
            lang, info, body = m.group(1), m.group(2), m.group(3)
            if lang in ("bash", "python") and "no-run" not in info:
                yield pytest.param(lang, body, id=f"{page.relative_to(REPO)}#{n}-{lang}")


def test_every_page_has_been_found():
    assert {p.name for p in PAGES} >= {"README.md", "cli.md", "python.md", "server.md", "install.md"}
    assert len(list(examples())) >= 8  # the runnable ones: a page losing its examples shows up here


@pytest.mark.parametrize("lang, body", list(examples()))
def test_example_runs(lang, body, tmp_path):
    if DOC_SERVER in body:
        body = body.replace(DOC_SERVER, shared_server().base_url)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if lang == "python":
        cmd = [sys.executable, "-c", body]
    else:
        cmd = ["bash", "-c", "set -euo pipefail\n" + body]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"exit {r.returncode}\n--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}"
