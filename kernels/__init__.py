"""Numba sampling kernels over plain NumPy arrays and scalars: no Python objects, no I/O, no llama_cpp."""
from ._cache import use_source_keyed_cache

use_source_keyed_cache()  # before the kernel modules are imported: their dispatchers read the setting

from .fastexp import exp_scaled
from .logit_adjust import apply_logit_bias, apply_penalties, record_token
from .logprobs import log_normalizer, log_softmax, top_logprobs
from .nucleus import draw_all, draw_in_nucleus, nucleus_boundary
from .rng import seed_to_u64, splitmix64, uniform
from .select import argmax, max_value
from .topk import top_k
from .step import sample_step
from .workspace import Workspace
from .blocks import blocks_size

__all__ = [
    "exp_scaled", "apply_logit_bias", "apply_penalties", "record_token", "log_normalizer", "log_softmax",
    "top_logprobs", "draw_all", "draw_in_nucleus", "nucleus_boundary", "seed_to_u64", "splitmix64",
    "uniform", "argmax", "max_value", "top_k", "sample_step", "Workspace", "blocks_size",
]
