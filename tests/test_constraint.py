"""The per-row logits constraint seam (engine/constraint.py): a mask applied before the sampling kernels, one
matcher per candidate, advanced on every token taken. Structured output builds on it."""
from __future__ import annotations

import numpy as np

import kernels
from kernels import reference as ref

from .conftest import assert_no_sequences


def bitmask(n_vocab: int, tokens) -> np.ndarray:
    words = np.zeros((n_vocab + 31) // 32, np.uint32)
    for t in tokens:
        words[t // 32] |= np.uint32(1) << np.uint32(t % 32)
    return words.view(np.int32)


class Only:
    """Allows a fixed token set at every step; remembers what it was advanced with."""

    def __init__(self, n_vocab: int, tokens):
        self.mask = bitmask(n_vocab, tokens)
        self.taken: list[int] = []

    def allowed(self):
        return self.mask

    def advance(self, token: int) -> None:
        self.taken.append(token)


class Sequence:
    """Allows exactly the next token of a fixed sequence, then nothing."""

    def __init__(self, n_vocab: int, tokens):
        self.n_vocab, self.tokens, self.i = n_vocab, list(tokens), 0

    def allowed(self):
        return bitmask(self.n_vocab, self.tokens[self.i:self.i + 1])

    def advance(self, token: int) -> None:
        assert token == self.tokens[self.i]
        self.i += 1


def test_mask_kernel_matches_its_twin():
    rng = np.random.default_rng(0)
    for n in (1, 31, 32, 33, 49_152):
        row = rng.standard_normal(n).astype(np.float32)
        words = rng.integers(0, 2 ** 32, (n + 31) // 32, dtype=np.uint64).astype(np.uint32).view(np.int32)
        out = np.empty(n, np.float32)
        allowed = kernels.mask_logits(row, words, out)
        want, want_allowed = ref.mask_logits(row, words)
        assert allowed == want_allowed
        assert np.array_equal(out, want)
    row = np.arange(40, dtype=np.float32)
    out = np.empty(40, np.float32)
    assert kernels.mask_logits(row, bitmask(40, [0, 31, 32, 39]), out) == 4
    assert np.isfinite(out).nonzero()[0].tolist() == [0, 31, 32, 39]


def test_every_drawn_token_is_allowed_and_each_candidate_has_its_own_matcher(engine):
    n_vocab = engine.model.n_vocab
    allowed = set(engine.model.tokenize(" red green blue yellow", add_bos=False))
    made = []

    def factory(j):
        made.append(Only(n_vocab, allowed))
        return made[-1]
    request = {"prompt": "My favourite colours are", "max_tokens": 12, "temperature": 1.0, "seed": 4, "n": 3,
               "logprobs": 1}
    r = engine.submit(request, constraint=factory).result()
    assert len(made) == 3
    for choice, matcher in zip(r["choices"], made):
        assert matcher.taken and set(matcher.taken) <= allowed
        assert choice["text"] == engine.model.detokenize(matcher.taken).decode("utf-8", "replace")
        # logprobs are the constrained distribution's: every token's mass is within the allowed set
        assert all(lp <= 0.0 for lp in choice["logprobs"]["token_logprobs"])
    assert_no_sequences(engine)


def test_a_constraint_that_allows_everything_changes_no_byte(engine):
    n_vocab = engine.model.n_vocab
    request = {"prompt": "Once upon a time", "max_tokens": 16, "temperature": 0.8, "top_p": 0.9, "seed": 12,
               "n": 2, "logprobs": 2, "frequency_penalty": 0.5, "logit_bias": {"13": 5}}
    plain = engine.submit(request).result()
    masked = engine.submit(request, constraint=lambda j: Only(n_vocab, range(n_vocab))).result()
    for a, b in zip(plain["choices"], masked["choices"]):
        assert a == b


def test_a_forced_sequence_is_the_text_and_an_exhausted_matcher_ends_the_choice(engine):
    n_vocab = engine.model.n_vocab
    forced = engine.model.tokenize(" forty-two, exactly", add_bos=False)
    r = engine.submit({"prompt": "The answer is", "max_tokens": 40, "seed": 1, "temperature": 1.0},
                      constraint=lambda j: Sequence(n_vocab, forced)).result()
    choice = r["choices"][0]
    assert choice["text"] == " forty-two, exactly"
    assert choice["finish_reason"] == "stop"  # nothing allowed after it: an end-of-generation token
    assert r["usage"]["completion_tokens"] == len(forced) + 1


def test_streamed_constrained_choice_equals_the_whole_one(engine):
    n_vocab = engine.model.n_vocab
    allowed = set(engine.model.tokenize(" one two three four", add_bos=False))
    request = {"prompt": "Count:", "max_tokens": 10, "seed": 8, "temperature": 1.0}
    whole = engine.submit(request, constraint=lambda j: Only(n_vocab, allowed)).result()
    stream = engine.submit(dict(request, stream=True), constraint=lambda j: Only(n_vocab, allowed))
    assert stream.wait(60)
    chunks, done = stream.take_chunks()
    assert done
    assert "".join(c["choices"][0]["text"] for c in chunks) == whole["choices"][0]["text"]
