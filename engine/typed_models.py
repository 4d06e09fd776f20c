"""Test models of other weight types, made offline from the registry models with llama.cpp's own quantizer.

The registry ships SmolLM2 as Q4_1 and gemma-3 as Q4_K_M; most GGUF files in the wild are Q8_0, Q4_0, Q5_0 or
F16, which llama.cpp serves with other kernels (llamafile's tinyBLAS among them). Requantizing a registry model
gives a model of each type without a download: `<cache>/test-models/<registry name>-<type>.gguf`, built once,
never committed. ALL_F32 (type "f32") holds the source's weights exactly, as a high-precision reference.
"""
from __future__ import annotations

import os
from pathlib import Path

import llama_cpp  # isort: skip  (before numpy, see model.py)

from . import model as _model  # noqa: F401  (installs the quiet llama.cpp log callback)
from .locations import user_cache_dir
from .registry import load_registry

# weight type name -> llama_ftype (llama.h); each tensor of 2+ dims gets the type, except where llama.cpp's
# quantizer picks another for a shape (e.g. K-quants for rows that are not a multiple of 256).
FTYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 7, "q5_0": 8, "iq4_nl": 25, "bf16": 32}


def typed_models_dir() -> Path:
    return user_cache_dir() / "test-models"


def typed_model_path(registry_name: str, weight_type: str) -> Path:
    return typed_models_dir() / f"{registry_name}-{weight_type}.gguf"


def build_typed_model(registry_name: str, weight_type: str, n_threads: int = 2) -> Path:
    """Return the path of `registry_name` requantized to `weight_type`, quantizing it first if missing.
    Never downloads: the registry model must be present (FileNotFoundError otherwise)."""
    if weight_type not in FTYPES:
        raise ValueError(f"weight_type must be one of {', '.join(FTYPES)}, got {weight_type!r}")
    out = typed_model_path(registry_name, weight_type)
    if out.is_file():
        return out
    entry = load_registry()[1][registry_name]
    if not entry.is_present():
        raise FileNotFoundError(f"{registry_name} is not at {entry.path}: fetch it first "
                                f"(sampling-engine models fetch {registry_name})")
    out.parent.mkdir(parents=True, exist_ok=True)
    params = llama_cpp.llama_model_quantize_default_params()
    params.nthread = n_threads
    params.ftype = FTYPES[weight_type]
    params.allow_requantize = True
    # a temporary name, renamed when complete: a killed run never leaves a half-written model behind
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        rc = llama_cpp.llama_model_quantize(str(entry.path).encode(), str(tmp).encode(), params)
        if rc != 0:
            raise RuntimeError(f"llama_model_quantize({registry_name} -> {weight_type}) failed with code {rc}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
