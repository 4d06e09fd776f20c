"""llama.cpp's process-wide state: its log, its backend, and ggml's kernel switches (numerics).

All three are per process, not per model: llama.cpp keeps one log callback and one backend, and ggml reads its
switches once. So they live here, once, and every Model goes through them.
"""
from __future__ import annotations

# llama_cpp must be imported before numpy: the other order crashed model loading on the GPU machine.
import llama_cpp  # isort: skip

import ctypes
import os
import re
import threading
from contextlib import contextmanager

_verbose = False
_captured_log: list[bytes] | None = None  # while a model or context is created: its buffer sizes are read here
_capture_lock = threading.Lock()


@llama_cpp.llama_log_callback
def _log_callback(level, text, user_data):  # kept at module level: llama.cpp holds this pointer forever
    if _captured_log is not None:
        _captured_log.append(text)
    if _verbose:
        os.write(2, text)


llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))


def set_verbose(verbose: bool) -> None:
    """Show llama.cpp's log on stderr (the latest Model's `verbose` decides, process-wide)."""
    global _verbose
    _verbose = verbose


@contextmanager
def capturing_log():
    """Collect what llama.cpp logs meanwhile (one load at a time)."""
    global _captured_log
    with _capture_lock:
        lines: list[bytes] = []
        _captured_log = lines
        try:
            yield lines
        finally:
            _captured_log = None


def buffer_mib(lines: list[bytes], kind: str) -> float:
    """Sum of llama.cpp's "<backend> <kind> buffer size = X MiB" lines."""
    text = b"".join(lines).decode(errors="replace")
    return sum(float(m) for m in re.findall(rf"{kind} buffer size =\s*([\d.]+) MiB", text))


NUMERICS = ("exact", "fast")
_process_numerics: str | None = None
_numerics_lock = threading.Lock()
_backend_ready = False


def ensure_backend() -> None:
    global _backend_ready
    if not _backend_ready:
        if _process_numerics is None:  # ggml may read its switches from here on (system info reads some)
            claim_numerics("exact")
        llama_cpp.llama_backend_init()
        _backend_ready = True


def check_numerics(numerics: str) -> None:
    if numerics not in NUMERICS:
        raise ValueError(f"numerics must be one of {', '.join(map(repr, NUMERICS))}, got {numerics!r}")


def claim_numerics(numerics: str) -> None:
    """Set ggml's kernel switches for `numerics`, before the process's first context.

    "exact": ggml-cpu's "tiled" K-quant matmul (Q4_K, Q6_K) serves micro-batches of 8+ tokens and ggml's
    per-row dot products the smaller ones; they round differently, so a token's logits would depend on how
    many tokens shared its llama_decode (up to 0.88 on gemma-3): it is switched off. "fast": the stock fast
    paths, including the tiled matmul and llamafile's stock 1-token path (GGML_LLAMAFILE_EXACT_GEMV=0 on
    the project's patched build). ggml reads these once per process, so every model in a process shares the
    first one's numerics. A value the user set in the environment is kept (Engine.batch_invariant says
    what it did)."""
    global _process_numerics
    check_numerics(numerics)
    with _numerics_lock:
        if _process_numerics is None:
            if numerics == "exact":
                os.environ.setdefault("GGML_CPU_TILED_MM", "0")
            else:
                os.environ.setdefault("GGML_LLAMAFILE_EXACT_GEMV", "0")
            _process_numerics = numerics
        elif numerics != _process_numerics:
            raise ValueError(
                f"numerics={numerics!r}: this process already set up llama.cpp with numerics={_process_numerics!r}; "
                f"ggml reads its kernel switches once per process, so every engine in it shares them "
                f"(use another process for numerics={numerics!r})")


def system_info() -> str:
    """llama.cpp's system-info string (backends, CPU features, llamafile, our patch's feature)."""
    ensure_backend()
    return llama_cpp.llama_print_system_info().decode(errors="replace")
