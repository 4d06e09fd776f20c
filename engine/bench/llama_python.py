"""llama-cpp-python's `Llama`, loaded with the same weight layout as ours.

`Llama` has no option for llama.cpp's weight repacking (`use_extra_bufts`, on by default there, off by
default here): its model parameters come from `llama_model_default_params()`, so that is wrapped while it
loads. Same layout, same kernels: the comparison then measures the code around llama_decode. (On this
project's 2-core AMX machine, llama.cpp 0.3.36's repacked Q4 path also crashed in llama_decode.)
"""
from __future__ import annotations

from contextlib import contextmanager

import llama_cpp
import llama_cpp.llama_cpp as low_level


@contextmanager
def default_repack(repack_weights: bool):
    """While inside, every `Llama` (or llama_cpp.server) loads with this repacking setting."""
    original = low_level.llama_model_default_params

    def params():
        p = original()
        p.use_extra_bufts = repack_weights
        return p

    low_level.llama_model_default_params = params
    try:
        yield
    finally:
        low_level.llama_model_default_params = original


def load_llama(path: str, repack_weights: bool, **options) -> llama_cpp.Llama:
    with default_repack(repack_weights):
        return llama_cpp.Llama(path, **options)
