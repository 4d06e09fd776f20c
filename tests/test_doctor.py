"""`sampling-engine doctor`: the report on this install, and one problem line (with its fix) per broken promise."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from engine.doctor import problems, render

REPO = Path(__file__).resolve().parents[1]


def doctor(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", "doctor", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600)


def test_doctor_json_on_the_project_build():
    r = doctor("--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["packages"]["llama-cpp-python"] and report["packages"]["numba"]
    assert report["llama_cpp"]["exact_build"] is True
    assert report["invariance"]["batch_invariant"] is True
    assert report["invariance"]["system_fingerprint"].startswith("fp_")
    assert report["models_dir"]["files"] >= 1 and report["numba_cache"]["path"]
    assert report["extras"]["server"] is True  # the dev extra brings it
    assert report["problems"] == []
    text = render(report)
    assert "batch invariance: yes" in text and "problems: none" in text


def test_doctor_text_without_a_model_check():
    r = doctor("--no-check")
    assert r.returncode == 0, r.stderr
    assert "batch invariance: not checked (--no-check)" in r.stdout
    assert "llama.cpp:" in r.stdout and "numba cache:" in r.stdout


def _report(**build) -> dict:
    return {"llama_cpp": {"exact_build": True, "backend": "CPU", **build},
            "invariance": {"batch_invariant": True, "model": "m", "numerics": "exact"},
            "numba_cache": {"path": str(REPO)}, "extras": {}}


def test_a_stock_build_is_a_problem_with_its_fix():
    found = problems(_report(exact_build=False))
    assert len(found) == 1
    assert "loses batch invariance" in found[0]["problem"] and "./dev" in found[0]["fix"]
    assert problems(_report()) == []


def test_a_failed_runtime_check_is_a_problem():
    report = _report()
    report["invariance"]["batch_invariant"] = False
    [found] = problems(report)
    assert "runtime invariance check failed" in found["problem"]
