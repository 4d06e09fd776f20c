"""The sampling engine: OpenAI Completions on local GGUF models.

`from engine import Engine, CompletionError`. Engine is imported lazily so that light commands
(`sampling-engine models`) do not load llama.cpp.

The files of this folder are the core (Engine and what it runs on: parameters, prompts, the loop, scheduler,
slots, sampling, responses); `numerics/` sits below it, and the rooms built on its public seam
(`Engine.submit`) sit above it: `server/`, `batch/`, `bench/`, `ray/`, and `commands/` on top.
docs/architecture.md has the map; tests/test_architecture.py keeps imports flowing one way.
"""
from .version import __version__  # noqa: E402
from ._kernels_check import ensure_our_kernels  # noqa: E402
from ._llvm_first import load_llvmlite_first  # noqa: E402

ensure_our_kernels()  # before anything imports `kernels`: a clear error instead of a confusing one later
load_llvmlite_first()  # before anything imports llama_cpp (CUDA builds crashed the other way round)

from .errors import CompletionError  # noqa: E402
from .types import Choice, Completion, CompletionChunk, Logprobs, Usage  # noqa: E402

__all__ = ["Engine", "CompletionError", "Completion", "CompletionChunk", "Choice", "Logprobs", "Usage",
           "__version__"]


def __getattr__(name):
    if name == "Engine":
        from .api import Engine

        return Engine
    raise AttributeError(name)
