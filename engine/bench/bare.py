"""llama.cpp's own limit on this machine: llama_decode plus an argmax, nothing else (no sampling, no text).

Runs on a Model (our llama.cpp context, same options as the engine's) of its own, so the engine's state is
never touched; each run leaves every sequence it used empty.
"""
from __future__ import annotations

import numpy as np

from ..model import Model


def generate(model: Model, prompt: list[int], n_tokens: int, n_seqs: int = 1) -> int:
    """Greedy generation of n_tokens per sequence for n_seqs copies of the prompt, one batch per step.
    Returns the tokens generated."""
    for s in range(n_seqs):
        model.seq_remove(s)
    k = len(prompt)
    rows = model.decode(prompt * n_seqs, list(range(k)) * n_seqs, np.repeat(np.arange(n_seqs), k),
                        [i % k == k - 1 for i in range(k * n_seqs)])
    seqs = list(range(n_seqs))
    for step in range(n_tokens - 1):
        next_tokens = [int(np.argmax(rows[s])) for s in seqs]
        rows = model.decode(next_tokens, [k + step] * n_seqs, seqs, [True] * n_seqs)
    for s in seqs:
        model.seq_remove(s)
    return n_tokens * n_seqs


def score(model: Model, tokens: list[int]) -> int:
    """One prefill that keeps the logits row of every token (what scoring a prompt needs). Returns its length."""
    model.seq_remove(0)
    n = len(tokens)
    model.decode(tokens, np.arange(n), np.zeros(n, np.int32), np.ones(n, bool))
    model.seq_remove(0)
    return n
