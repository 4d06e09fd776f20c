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
import threading
from pathlib import Path

from .locations import user_cache_dir

_hash_lock = threading.Lock()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_identity(path: Path) -> str:
    """A registry model's published sha256; any other file's content hash, computed once and cached by
    (path, size, mtime) in the user cache (a 300 MB GGUF takes about a second to hash)."""
    from .registry import load_registry

    stat = path.stat()
    entry = next((e for e in load_registry()[1].values() if e.file == path.name and e.size == stat.st_size), None)
    if entry:
        return entry.sha256
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    cache = user_cache_dir() / "file-hashes.json"
    with _hash_lock:
        try:
            known = json.loads(cache.read_text())
        except (OSError, ValueError):
            known = {}
        if key not in known:
            known[key] = _sha256_file(path)
            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(known))
                tmp.replace(cache)
            except OSError:
                pass  # a read-only cache only costs the hash again next time
        return known[key]


def kernel_sources_hash() -> str:
    """The sampling kernels and the engine code that feeds them: any edit can change the bytes."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for folder in (root / "kernels", root / "engine"):
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


def engine_inputs(model, path: Path, batch_invariant: bool, numerics: str) -> dict:
    """Everything about a loaded engine that decides its bytes."""
    from . import __version__
    from .build_info import build_info

    build = build_info()
    return {
        "model": file_identity(path),
        "engine": __version__,
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
