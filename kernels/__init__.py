"""sampling-engine's numba sampling kernels over plain NumPy arrays and scalars: no Python objects, no I/O,
no llama_cpp. (engine checks that `import kernels` finds this package by the first line above.)"""
from ._cache import kernel_cache_dir, use_kernel_cache_locator
from ._first_compile import announce_first_compile

use_kernel_cache_locator()  # before the kernel modules: @njit(cache=True) picks its folder when applied
announce_first_compile()

from .fastexp import exp_scaled  # noqa: E402
from .logit_adjust import apply_logit_bias, apply_penalties, record_token  # noqa: E402
from .logprobs import log_normalizer, log_softmax, top_logprobs  # noqa: E402
from .nucleus import draw_all, draw_in_nucleus, nucleus_boundary  # noqa: E402
from .rng import seed_to_u64, splitmix64, uniform  # noqa: E402
from .select import argmax, max_value  # noqa: E402
from .topk import top_k  # noqa: E402
from .step import sample_step  # noqa: E402
from .draw import sample_token  # noqa: E402
from .workspace import Workspace  # noqa: E402
from .blocks import blocks_size  # noqa: E402
from .mask import mask_logits  # noqa: E402

__all__ = [
    "kernel_cache_dir",
    "exp_scaled", "apply_logit_bias", "apply_penalties", "record_token", "log_normalizer", "log_softmax",
    "top_logprobs", "draw_all", "draw_in_nucleus", "nucleus_boundary", "seed_to_u64", "splitmix64",
    "uniform", "argmax", "max_value", "top_k", "sample_step", "sample_token", "Workspace", "blocks_size", "mask_logits",
]
