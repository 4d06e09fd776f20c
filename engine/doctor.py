"""`sampling-engine doctor`: what this install is and whether its promises hold, for users and bug reports.

Gathers versions, llama.cpp's build and backends, CPU features, where models and the numba cache live, which
optional extras import, and (when a model is at hand, never downloaded) the runtime batch-invariance verdict;
then one line per problem with its fix. `--json` prints the same report as one JSON object.
"""
from __future__ import annotations

import importlib
import importlib.metadata as md
import json
import os
import platform
import re
import sys
from pathlib import Path

PROJECT_BUILD = ("the project's build: from a checkout, `./dev run ...` builds llama-cpp-python with the patch in "
                 "llama_patches/ (see docs/install.md)")
EXTRAS = {  # extra name -> modules it brings
    "server": ["fastapi", "uvicorn", "sse_starlette", "prometheus_client"],
    "ray": ["ray", "ray.serve", "ray.data"],
    "chart": ["matplotlib"],
}


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
        return True
    except Exception:  # an extra that is half installed fails in its own ways, all of them "not usable"
        return False


def _folder(path: Path) -> dict:
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else []
    return {"path": str(path), "exists": path.is_dir(), "files": len(files),
            "bytes": sum(p.stat().st_size for p in files)}


def _cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    m = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
    wanted = re.compile(r"^(avx\w*|amx\w*|f16c|fma|sse4_2|neon|asimd\w*|sve\w*)$")
    return sorted(f for f in (m.group(1).split() if m else []) if wanted.match(f))


def llama_build() -> dict:
    """llama.cpp's own account of its build: system info (CPU features, LLAMAFILE, backends) and offload."""
    from .numerics.build import build_info

    return build_info()


CHECK_ENGINE = dict(n_ctx=256, n_seq_max=2, lazy_slots=False)  # small: the check needs a few short sequences


def invariance_verdict(model: str | None, engine_kwargs: dict | None = None) -> dict:
    """Load `model` (a registry name that is present, or a path) with the engine options given (numerics, KV
    type, flash attention, GPU layers... decide the verdict) and read Engine.batch_invariant; never downloads.
    Returns {"model", "batch_invariant"} or {"skipped": why}."""
    from .loader import resolve_model_path
    from .registry import load_registry

    default, entries = load_registry()
    name = model or default
    if name in entries and not entries[name].is_present():
        return {"model": name, "batch_invariant": None,
                "skipped": f"{name} is not downloaded (sampling-engine models fetch {name})"}
    from .api import Engine

    kwargs = dict(CHECK_ENGINE, **{k: v for k, v in (engine_kwargs or {}).items() if v is not None})
    with Engine(name, **kwargs) as engine:
        return {"model": engine.model_id, "batch_invariant": engine.batch_invariant,
                "numerics": engine.numerics, "system_fingerprint": engine.system_fingerprint}


def gather(model: str | None = None, check: bool = True, engine_kwargs: dict | None = None) -> dict:
    from kernels import kernel_cache_dir

    from .version import __version__
    from .locations import models_dir

    report = {
        "sampling_engine": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": _cpu_flags(),
        "packages": {d: _version(d) for d in ("numpy", "numba", "llvmlite", "llama-cpp-python")},
        "llama_cpp": llama_build(),
        "models_dir": _folder(models_dir()),
        "numba_cache": _folder(kernel_cache_dir()),
        "extras": {name: all(_importable(m) for m in mods) for name, mods in EXTRAS.items()},
    }
    report["invariance"] = invariance_verdict(model, engine_kwargs) if check else {"skipped": "--no-check"}
    report["problems"] = problems(report)
    return report


def problems(report: dict) -> list[dict]:
    """One entry per problem: what is wrong and how to fix it."""
    out = []
    build = report["llama_cpp"]
    if not build["exact_build"]:
        out.append({"problem": "this llama.cpp build loses batch invariance: llamafile's tinyBLAS is on without "
                               "the project's patch, so a token's logits depend on how many tokens shared its "
                               "llama_decode (seeded results stay correct in distribution, not neighbour-independent)",
                    "fix": f"install {PROJECT_BUILD}"})
    inv = report["invariance"]
    if inv.get("batch_invariant") is False and build["exact_build"]:
        out.append({"problem": f"the runtime invariance check failed on {inv.get('model')} "
                               f"(numerics={inv.get('numerics')!r}, backend {build['backend']})",
                    "fix": "use numerics='exact' on a CPU build; GPU backends are not verified (docs/gpu.md)"})
    if inv.get("skipped") and "not downloaded" in inv["skipped"]:
        out.append({"problem": "no model to run the invariance check on",
                    "fix": inv["skipped"].split("(", 1)[1].rstrip(")")})
    cache = Path(report["numba_cache"]["path"])
    parent = cache if cache.exists() else cache.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        out.append({"problem": f"the numba cache folder {cache} is not writable: kernels recompile at every start",
                    "fix": "set NUMBA_CACHE_DIR to a writable folder"})
    return out


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def render(report: dict) -> str:
    b, inv = report["llama_cpp"], report["invariance"]
    lines = [
        f"sampling-engine {report['sampling_engine']}  Python {report['python']}  ({report['platform']})",
        "packages: " + ", ".join(f"{k} {v or 'missing'}" for k, v in report["packages"].items()),
        f"llama.cpp: {b['version']}  backend {b['backend']}  llamafile {'on' if b['llamafile'] else 'off'}  "
        f"exact-gemv patch {'yes' if b['patched'] else 'no'}  gpu offload {'yes' if b['gpu_offload'] else 'no'}",
        f"  system info: {b['system_info']}",
        f"CPU: {report['cpu_count']} cores, {' '.join(report['cpu_flags']) or 'no flags read'}",
        f"models: {report['models_dir']['path']} ({report['models_dir']['files']} files, "
        f"{_mb(report['models_dir']['bytes'])})",
        f"numba cache: {report['numba_cache']['path']} ({report['numba_cache']['files']} files, "
        f"{_mb(report['numba_cache']['bytes'])})",
        "extras: " + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in report["extras"].items())
        + "  (missing ones: pip install 'sampling-engine[NAME]', only if you need them)",
    ]
    if inv.get("batch_invariant") is None:
        lines.append(f"batch invariance: not checked ({inv.get('skipped')})")
    else:
        lines.append(f"batch invariance: {'yes' if inv['batch_invariant'] else 'NO'} (runtime check on "
                     f"{inv['model']}, numerics={inv['numerics']!r}, fingerprint {inv['system_fingerprint']})")
    if report["problems"]:
        lines.append("problems:")
        lines += [f"  - {p['problem']}\n    fix: {p['fix']}" for p in report["problems"]]
    else:
        lines.append("problems: none")
    return "\n".join(lines)


def run(model: str | None, as_json: bool, check: bool, engine_kwargs: dict | None = None) -> int:
    report = gather(model, check, engine_kwargs)
    print(json.dumps(report, indent=2) if as_json else render(report))
    return 0
