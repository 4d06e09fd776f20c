"""The one keyword entry point to the fused step: `sample_step` is a numba function with 20 positional
arguments (numba dispatches on positions); callers name what they use and take the defaults for the rest."""
import numpy as np

from .step import sample_step
from .workspace import Workspace

_EMPTY_I32 = np.zeros(0, np.int32)
_EMPTY_F32 = np.zeros(0, np.float32)


def sample_token(raw, ws: Workspace, *, key, choice=0, step=0, temperature=1.0, top_p=1.0,
                 bias_ids=_EMPTY_I32, bias_values=_EMPTY_F32, counts=_EMPTY_I32, occurred=_EMPTY_I32,
                 n_occurred=0, frequency=0.0, presence=0.0, n_top=-1, top_ids=None, top_lps=None):
    """Draw one token from the raw logits row (never written). `key` is seed_to_u64(seed); the draw depends
    only on (key, choice, step) and the row. Penalties: counts (vocab-sized) and occurred/n_occurred are
    updated with the token. Top-k (n_top >= 0) lands in top_ids/top_lps (allocated when not given).
    Returns (token, raw logprob or NaN when n_top < 0, new n_occurred)."""
    if top_ids is None:
        top_ids = np.zeros(max(n_top, 1), np.int32)
        top_lps = np.zeros(max(n_top, 1), np.float64)
    return sample_step(raw, ws.work, ws.weights, ws.ids_scratch, ws.blocks, bias_ids, bias_values, counts,
                       occurred, n_occurred, frequency, presence, temperature, top_p, key, choice, step, n_top,
                       top_ids, top_lps)
