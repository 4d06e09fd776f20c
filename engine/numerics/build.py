"""What the installed llama.cpp is, as far as it decides the bytes: version, backend, llamafile, our patch.

Read from llama.cpp itself (its system-info string and ggml's exported symbols), never from how we think it
was built: a user's own build or a stock pip wheel must be described as it is.
"""
from __future__ import annotations

import ctypes
import functools
import os
import re
from pathlib import Path

import llama_cpp  # isort: skip  (before numpy, see process.py)

from .process import system_info


def _libs() -> list[ctypes.CDLL]:
    """llama-cpp-python's shared libraries (ggml's symbols live in libggml-base / libggml-cpu)."""
    base = Path(os.environ.get("LLAMA_CPP_LIB_PATH") or Path(llama_cpp.__file__).parent / "lib")
    out = []
    for path in sorted(base.glob("lib*.so*")) + sorted(base.glob("*.dylib")) + sorted(base.glob("*.dll")):
        try:
            out.append(ctypes.CDLL(str(path)))
        except OSError:
            continue
    return out


def _string_symbol(name: str) -> str | None:
    for lib in _libs():
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.restype = ctypes.c_char_p
            fn.argtypes = []
            value = fn()
            return value.decode(errors="replace") if value else None
    return None


PATCH_FEATURE = "LLAMAFILE_EXACT_GEMV"  # llama_patches/ adds it to llama.cpp's system info: "= 1" when active


@functools.lru_cache(maxsize=1)
def build_info() -> dict:
    info = system_info().strip()
    llamafile = "LLAMAFILE = 1" in info
    patched = PATCH_FEATURE in info
    backends = sorted(set(re.findall(r"\b(CUDA|Metal|METAL|Vulkan|SYCL|HIP|OpenCL|BLAS|CANN|MUSA)\b", info)))
    backend = "+".join(b.upper() for b in backends) or "CPU"
    ggml_version = _string_symbol("ggml_version")
    ggml_commit = _string_symbol("ggml_commit")
    return {
        "llama_cpp_python": llama_cpp.__version__,
        "version": f"ggml {ggml_version or '?'} ({ggml_commit or 'commit unknown'})",
        "backend": backend,
        "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()),
        "llamafile": llamafile,
        "patched": patched,
        "exact_gemv": f"{PATCH_FEATURE} = 1" in info,  # the patch's path on (GGML_LLAMAFILE_EXACT_GEMV unset or 1)
        # No llamafile at all, or llamafile with our exact 1-token path: a token's logits do not depend on
        # how many tokens shared its llama_decode (on the CPU; the runtime check in Engine has the last word).
        "exact_build": (not llamafile) or f"{PATCH_FEATURE} = 1" in info,
        "system_info": info,
    }
