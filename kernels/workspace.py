"""Scratch arrays for sample_step, allocated once per vocabulary size (never per token)."""
import numpy as np

from .blocks import blocks_size


class Workspace:
    """Vocab-sized scratch shared by every choice sampled on one thread (choices are sampled in turn)."""

    def __init__(self, n_vocab: int):
        self.n_vocab = n_vocab
        self.work = np.empty(n_vocab, np.float32)
        self.weights = np.empty(n_vocab, np.float32)
        self.ids_scratch = np.empty(n_vocab, np.int32)
        self.blocks = np.zeros(blocks_size(n_vocab), np.int64)
