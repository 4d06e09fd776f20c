"""Test models of other weight types, made offline from a registry model with llama.cpp's own quantizer and kept
in a cache outside the checkout (never committed): ~/.cache/sampling-engine/test-models/<registry-name>-<type>.gguf."""
from __future__ import annotations

import ctypes
import os
from pathlib import Path

import llama_cpp

from tests.conftest import registry_model_path

# llama_ftype per ggml weight type: the file types whose big matrices are of that type
FTYPES = {"f16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16, "bf16": llama_cpp.LLAMA_FTYPE_MOSTLY_BF16,
          "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0,
          "q5_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_0, "iq4_nl": llama_cpp.LLAMA_FTYPE_MOSTLY_IQ4_NL}


def test_model_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sampling-engine" / "test-models"


def quantized_model(registry_name: str, type_name: str) -> Path:
    """The registry model requantized to `type_name` (one of FTYPES), made once (a few seconds)."""
    out = test_model_dir() / f"{registry_name}-{type_name}.gguf"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[type_name]
    params.allow_requantize = True
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(str(registry_model_path(registry_name)).encode(), str(tmp).encode(),
                                        ctypes.byref(params))
    if rc != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"llama_model_quantize({registry_name} -> {type_name}) failed: {rc}")
    os.replace(tmp, out)  # atomic: another process making the same file at once is harmless
    return out
