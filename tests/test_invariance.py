"""Batch invariance on every registry model and every typed test model (Q8_0, Q4_0, Q5_0, F16, requantized
from SmolLM2: the types llamafile's tinyBLAS serves): a sequence's logits, and so every response, do not
depend on what else is in the batch, how its prompt was split into llama_decode calls, or what the engine ran
before. The typed models run the raw-logits tests and the core engine tests (those marked
@registry_models_only run on the two registry models only, to keep the suite's time in check).

The backend test shows the property directly on raw logits rows; the engine tests show its consequences
(SPEC.md: a response is byte-identical whatever shares its steps). Comparisons are exact (==), never
approximate: the property is bit-identity.
"""
import numpy as np
import pytest

from engine import Engine

from .conftest import REGISTRY_MODELS, registry_models_only

SENTENCE = "The quick brown fox jumps over the lazy dog near the quiet river bank"
LONG_PREFIX = " ".join(f"Line {i}: the {['red', 'green', 'blue'][i % 3]} box holds {i * 7} marbles."
                       for i in range(48))  # > 512 tokens on both models: spans an n_ubatch boundary


def strip(r):
    return {k: v for k, v in r.items() if k not in ("id", "created")}


def fresh(any_engine, **options):
    """Another engine on the same model (a typed model by its path: its id is the file's stem)."""
    model = any_engine.model_id if any_engine.model_id in REGISTRY_MODELS else str(any_engine.model.path)
    return Engine(model, n_ctx=4096, **options)


# ---- backend: raw logits rows --------------------------------------------------------------------------------

def test_llama_cpp_build_is_split_invariant():
    """./dev builds llama-cpp-python with llamafile's tinyBLAS and llama_patches/; with stock tinyBLAS a prompt
    split so that its last piece is one token gave logits 0.41 apart on SmolLM2 (and every invariance test
    below would fail)."""
    from engine.numerics.build import build_info

    assert build_info()["exact_build"]


def test_the_runtime_check_finds_this_build_batch_invariant(any_engine):
    """Engine.batch_invariant is measured at load (one call vs token by token vs beside another sequence), not
    read from build flags: on the ./dev build with numerics="exact" it is true for every weight type. (With
    stock llamafile a prompt split so that its last piece is one token gave logits 0.41 apart on SmolLM2, and
    every invariance test below would fail.)"""
    assert any_engine.numerics == "exact"
    assert any_engine.batch_invariant is True
    assert any_engine.stats()["batch_invariant"] is True


def _last_row(model, pieces, seq=1, beside=None):
    """Decode `pieces` (lists of tokens, one llama_decode each) into `seq`; return the last row. `beside`
    = (tokens, other_seq): decoded in the same calls, one token per call, as a running neighbour would be."""
    model.seq_remove(-1)
    pos, row, other_pos = 0, None, 0
    for piece in pieces:
        tokens, positions, seqs = list(piece), list(range(pos, pos + len(piece))), [seq] * len(piece)
        flags = [False] * len(piece)
        flags[-1] = True
        if beside is not None and other_pos < len(beside[0]):
            tokens.append(beside[0][other_pos])
            positions.append(other_pos)
            seqs.append(beside[1])
            flags.append(True)
            other_pos += 1
        rows = model.decode(tokens, positions, seqs, flags)
        row = np.array(rows[0])
        pos += len(piece)
    model.seq_remove(-1)
    return row


def test_last_row_logits_are_bit_identical_however_the_prompt_is_batched(any_engine):
    model = any_engine.model
    tokens = model.tokenize(SENTENCE)
    n = len(tokens)
    assert n >= 12
    whole = _last_row(model, [tokens])
    variants = {f"split {k}+{n - k}": [tokens[:k], tokens[k:]] for k in range(1, n)}
    variants["token by token"] = [[t] for t in tokens]
    variants["three chunks"] = [tokens[:3], tokens[3:7], tokens[7:]]
    other = model.tokenize("In a galaxy far away, a small ship")
    try:
        for name, pieces in variants.items():
            assert np.array_equal(_last_row(model, pieces), whole), name
        # Beside another sequence's tokens in the same llama_decode calls, in either sequence id.
        assert np.array_equal(_last_row(model, [[t] for t in tokens], beside=(other, 2)), whole)
        assert np.array_equal(_last_row(model, [tokens], beside=(other, 0)), whole)
        assert np.array_equal(_last_row(model, [tokens], seq=3), whole)
        # Two whole prompts in one call: each row equals its prompt decoded alone.
        both = model.decode(tokens + other, list(range(n)) + list(range(len(other))),
                            [1] * n + [2] * len(other),
                            [i == n - 1 for i in range(n)] + [i == len(other) - 1 for i in range(len(other))])
        both = np.array(both)
        assert np.array_equal(both[0], whole)
        assert np.array_equal(both[1], _last_row(model, [other]))
    finally:
        any_engine.reset_prefix_cache()


def test_a_full_batch_matches_a_chunked_prefill(any_engine):
    """A prompt filling a whole llama_decode batch gives the same last row as the same prompt fed in 100-token
    calls."""
    model = any_engine.model
    tokens = model.tokenize(LONG_PREFIX)[:model.n_batch]
    assert len(tokens) == model.n_batch
    try:
        one_call = _last_row(model, [tokens])
        chunked = _last_row(model, [tokens[a:a + 100] for a in range(0, len(tokens), 100)])
        assert np.array_equal(one_call, chunked)
    finally:
        any_engine.reset_prefix_cache()


# ---- engine: responses ---------------------------------------------------------------------------------------

def test_first_token_logprob_same_fresh_after_another_request_and_as_second_prompt(any_engine):
    """The measured failure on gemma-3 (-1.51360 / -1.44715 / -1.48566 / -1.55749): now one value."""
    req = dict(max_tokens=1, temperature=0, logprobs=1)
    with fresh(any_engine) as cold:
        first = cold.create_completion(prompt="The ocean is", **req)["choices"][0]["logprobs"]
        cold.create_completion(prompt="Apples are", max_tokens=3, temperature=0)
        after = cold.create_completion(prompt="The ocean is", **req)["choices"][0]["logprobs"]
        second = cold.create_completion(prompt=["Apples are", "The ocean is"], **req)["choices"][1]["logprobs"]
    with fresh(any_engine, prefix_cache=False) as no_cache:
        second_no_cache = no_cache.create_completion(prompt=["Apples are", "The ocean is"],
                                                     **req)["choices"][1]["logprobs"]
    assert first == after == second == second_no_cache


def test_two_prompts_in_one_request_equal_each_alone(any_engine):
    req = dict(n=2, max_tokens=10, temperature=1.0, seed=2, logprobs=2)
    both = any_engine.create_completion(prompt=["Apples are", "The ocean is"], **req)["choices"]
    alone = [any_engine.create_completion(prompt=p, **req)["choices"] for p in ("Apples are", "The ocean is")]
    for c in both[2:]:
        c["index"] -= 2
    assert both[:2] == alone[0]
    assert both[2:] == alone[1]


@registry_models_only
@pytest.mark.parametrize("request_", [
    dict(prompt=["Once upon a time", "The capital of France is"], n=2),
    dict(prompt=["Once upon a time", "The capital of France is", "def add(a, b):"], n=3),
    dict(prompt=["Once upon a time", "The capital of France is"], n=4, frequency_penalty=0.5),
], ids=["2 prompts x n=2", "3 prompts x n=3", "2 prompts x n=4 penalised"])
def test_batched_choices_equal_one_choice_at_a_time(any_engine, request_):
    """Prompts prefilled in one llama_decode and every candidate decoded together == one sequence at a time."""
    req = dict(request_, max_tokens=12, temperature=1.0, top_p=0.9, seed=21, logprobs=3)
    batched = strip(any_engine.create_completion(**req))
    with fresh(any_engine, n_seq_max=1, prefix_cache=False) as serial:
        assert strip(serial.create_completion(**req)) == batched


def test_choice_j_same_whether_n_is_1_or_4(any_engine):
    base = dict(prompt="The capital of France is", max_tokens=10, temperature=1.0, seed=42, logprobs=1)
    one = any_engine.create_completion(n=1, **base)
    four = any_engine.create_completion(n=4, **base)
    assert four["choices"][0] == one["choices"][0]
    assert len({c["text"] for c in four["choices"]}) > 1


@registry_models_only
def test_chunked_prefill_equals_one_shot_prefill(any_engine):
    """Echo scoring prefills in 256-token chunks, a plain request in one call: the generated part is the same
    bits either way, here for a prompt longer than llama.cpp's 512-token micro-batch."""
    req = dict(prompt=LONG_PREFIX, max_tokens=6, temperature=1.0, seed=5, logprobs=2)
    any_engine.reset_prefix_cache()
    plain = any_engine.create_completion(**req)["choices"][0]
    any_engine.reset_prefix_cache()
    echoed = any_engine.create_completion(echo=True, **req)["choices"][0]
    assert echoed["text"] == LONG_PREFIX + plain["text"]
    n_gen = len(plain["logprobs"]["tokens"])
    for key in ("tokens", "token_logprobs", "top_logprobs"):
        assert echoed["logprobs"][key][-n_gen:] == plain["logprobs"][key]


def _count_decoded(model):
    """Wrap model.decode to count the prompt tokens handed to it per call (restored by the caller)."""
    calls = []
    original = model.decode

    def counting(tokens, *args, **kw):
        calls.append(len(tokens))
        return original(tokens, *args, **kw)
    model.decode = counting
    return calls, original


@registry_models_only
@pytest.mark.parametrize("context", [
    "Question: what is the capital of France? Answer:",
    LONG_PREFIX + "\nQuestion: which box holds 21 marbles? Answer:",
], ids=["short prefix", "prefix over 512 tokens"])
def test_prefix_cache_gives_the_cold_result_and_evaluates_only_the_suffix(any_engine, context):
    model = any_engine.model
    requests = [dict(prompt=context + s, max_tokens=6, seed=4, logprobs=2, n=2)
                for s in (" Paris", " It is", " The capital")]
    any_engine.reset_prefix_cache()
    warm = [strip(any_engine.create_completion(**requests[0]))]
    calls, original = _count_decoded(model)
    try:
        for previous, r in zip(requests, requests[1:]):
            prompt = model.tokenize(r["prompt"])
            reusable = min(_shared(model.tokenize(previous["prompt"]), prompt), len(prompt) - 1)
            assert reusable >= len(model.tokenize(context)) - 1  # the whole context but its last token
            calls.clear()
            warm.append(strip(any_engine.create_completion(**r)))
            # the first call is the prefill: at most the tokens after the previous prompt's common prefix
            assert calls[0] <= len(prompt) - reusable, (calls[:3], len(prompt), reusable)
    finally:
        model.decode = original
    with fresh(any_engine, prefix_cache=False) as cold_engine:
        cold = [strip(cold_engine.create_completion(**r)) for r in requests]
    assert warm == cold


def _shared(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


@registry_models_only
def test_continuing_a_conversation_reuses_what_choice_0_generated(any_engine):
    context = "Question: what is the capital of France? Answer:"
    any_engine.reset_prefix_cache()
    first = any_engine.create_completion(prompt=context, max_tokens=8, temperature=0)
    n_gen = first["usage"]["completion_tokens"]
    # the prompt plus every sampled token but the last (which was never decoded)
    cached = max(s["cached_tokens"] for s in any_engine.stats()["slots"])
    assert cached == len(any_engine.model.tokenize(context)) + n_gen - 1
    follow = context + first["choices"][0]["text"] + " Yes."
    warm = strip(any_engine.create_completion(prompt=follow, max_tokens=5, temperature=0, logprobs=1))
    with fresh(any_engine, prefix_cache=False) as cold:
        assert strip(cold.create_completion(prompt=follow, max_tokens=5, temperature=0, logprobs=1)) == warm
