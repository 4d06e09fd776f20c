"""`system_fingerprint`: a hash of everything that decides a seeded response's bytes.

OpenAI: "the backend configuration that the model runs with ... to understand when backend changes have been
made that might impact determinism". Ours covers the model's content, our code that turns logits into tokens,
llama.cpp's build and every setting that changes its arithmetic. Two engines with the same fingerprint give the
same bytes for the same seeded request (tests/test_fingerprint.py).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from .build import build_info


def kernel_sources_hash() -> str:
    """The sampling kernels and the engine code that feeds them: any edit can change the bytes."""
    root = Path(__file__).resolve().parents[2]
    h = hashlib.sha256()
    for folder in (root / "kernels", root / "engine", root / "engine" / "numerics"):
        for path in sorted(folder.glob("*.py")):
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _atoi_flag(value: str | None, default: bool) -> bool:
    """How ggml reads its switches: unset -> default, else C's atoi(value) != 0 ("0", "", "off" are off)."""
    if value is None:
        return default
    m = re.match(r"\s*[+-]?(\d+)", value)
    return bool(m and int(m.group(1)))


def fingerprint(inputs: dict) -> str:
    """fp_ + 10 hex digits of a canonical JSON of `inputs`."""
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return "fp_" + hashlib.sha256(canonical.encode()).hexdigest()[:10]


def engine_inputs(model, model_identity: str, engine_version: str, batch_invariant: bool, numerics: str) -> dict:
    """Everything about a loaded engine that decides its bytes: `model` is the loaded Model (its settings),
    `model_identity` its file's content hash (engine.model_identity.file_identity)."""
    build = build_info()
    return {
        "model": model_identity,
        "engine": engine_version,
        "kernels": kernel_sources_hash(),
        "llama_cpp": {k: build[k] for k in ("llama_cpp_python", "version", "backend", "llamafile", "patched")},
        "exact_gemv": build["exact_gemv"],
        "device": "gpu" if model.on_gpu else "cpu",
        "repack": model.repack_weights,
        "kv_cache_type": model.kv_cache_type,
        "flash_attn": model.flash_attn,
        "tiled_mm": _atoi_flag(os.environ.get("GGML_CPU_TILED_MM"), default=True),
        "numerics": numerics,
        "batch_invariant": batch_invariant,
    }
