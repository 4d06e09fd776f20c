"""The first decoder loop: prompt -> greedy or temperature sampling -> token ids, one sequence.

Small on purpose; the full Completions semantics live in the staged decoder (decode.py)."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

import kernels
from .model import Model

_EMPTY_I32 = np.zeros(0, np.int32)
_EMPTY_F32 = np.zeros(0, np.float32)


def generate(model: Model, prompt_tokens: list[int], max_tokens: int, temperature: float = 0.0,
             seed: int = 0, seq: int = 0) -> Iterator[int]:
    """Yield generated token ids until max_tokens or an end-of-generation token (not yielded)."""
    ws = kernels.Workspace(model.n_vocab)
    key = kernels.seed_to_u64(seed)
    top_ids, top_lps = np.zeros(1, np.int32), np.zeros(1, np.float64)
    model.seq_remove(seq)
    try:
        n = len(prompt_tokens)
        logits = model.decode(prompt_tokens, np.arange(n), np.full(n, seq), np.arange(n) == n - 1)
        for step in range(max_tokens):
            token, _, _ = kernels.sample_step(
                logits[0], ws.work, ws.weights, ws.ids_scratch, ws.hist,
                _EMPTY_I32, _EMPTY_F32, _EMPTY_I32, _EMPTY_I32, 0, 0.0, 0.0,
                float(temperature), 1.0, key, 0, step, -1, top_ids, top_lps)
            if token in model.eog_tokens:
                return
            yield int(token)
            if step + 1 < max_tokens:
                logits = model.decode([token], [n + step], [seq], [True])
    finally:
        model.seq_remove(seq)
