"""`serve --ray` options, checked before anything starts (no Ray needed): without the `ray` extra it says what to
install; replica counts out of range name the option."""
from __future__ import annotations

import subprocess
import sys

import pytest


def run_cli(argv: list[str], hide_ray: bool) -> subprocess.CompletedProcess:
    code = ("import sys\n"
            + ("for m in ('ray', 'ray.serve'):\n    sys.modules[m] = None  # not installed\n" if hide_ray else "")
            + "from engine.cli import main\n"
            f"sys.exit(main({argv!r}))\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_without_ray_serve_ray_says_what_to_install():
    r = run_cli(["serve", "--ray", "--replicas", "2"], hide_ray=True)
    assert r.returncode == 2, r.stderr
    assert "pip install 'sampling-engine[ray]'" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("argv, message", [
    (["--replicas", "0"], "--replicas must be >= 1, got 0"),
    (["--max-replicas", "0"], "--max-replicas must be >= 1, got 0"),
    (["--min-replicas", "-1"], "--min-replicas must be >= 0, got -1"),
    (["--min-replicas", "3", "--max-replicas", "2"], "--min-replicas (3) must be <= --max-replicas (2)"),
    (["--replicas", "5", "--min-replicas", "1", "--max-replicas", "4"], "must lie in [--min-replicas, --max-replicas]"),
])
def test_replica_counts_out_of_range_name_the_option(argv, message):
    pytest.importorskip("ray.serve")
    r = run_cli(["serve", "--ray", *argv], hide_ray=False)
    assert r.returncode == 2 and message in r.stderr, r.stderr
