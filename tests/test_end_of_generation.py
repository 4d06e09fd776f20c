"""A choice that ends on an end-of-generation token returns that token's logprob entry (last, named, no text).

lm-eval's local-completions scores a continuation by sending context + continuation with echo, logprobs 1 and
max_tokens 1, and summing token_logprobs[ctxlen:-1]: the last entry must be the generated token, or a
continuation after which the model would end scores one token short (a 1-token one scored 0.0). Each registry
model has a prompt whose greedy next token is end-of-generation; the expectations come from the model's raw
logits (an independent float64 log-softmax), not from the engine.
"""
from __future__ import annotations

import numpy as np
import pytest

from .conftest import registry_models_only
from .test_conformance import raw_logprobs

# (context, continuation) whose greedy next token is end-of-generation, per model (checked below)
ENDS_AFTER = {
    "smollm2-135m": ("<|im_start|>user\nWhat is 2+2? Answer with a number only.<|im_end|>\n"
                     "<|im_start|>assistant\n", "4"),
    "gemma3-270m": ("日本の首都は", " 大阪"),  # the case the issue measured through lm-eval: 0.0 before
}


def lm_eval_shape(engine, ctx: str, cont: str) -> tuple[list[int], int]:
    """Token lists as lm-eval sends them (no BOS, special tokens parsed): the context's, then the continuation's."""
    whole = engine.model.tokenize(ctx + cont, add_bos=False, special=True)
    context = engine.model.tokenize(ctx, add_bos=False, special=True)
    assert whole[: len(context)] == context
    return whole, len(context)


def reference(engine, tokens: list[int]) -> np.ndarray:
    return engine.loop.call(lambda: raw_logprobs(engine.model, tokens))


@registry_models_only
def test_echo_max_tokens_1_ending_on_end_of_generation_has_one_entry_per_token(any_engine):
    engine = any_engine
    tokens, ctxlen = lm_eval_shape(engine, *ENDS_AFTER[engine.model_id])
    ref = reference(engine, tokens)
    eog = int(np.argmax(ref[-1]))
    assert eog in engine.model.eog_tokens, "the case no longer ends here: pick another prompt"
    r = engine.create_completion(prompt=[tokens], echo=True, logprobs=1, max_tokens=1, temperature=0, seed=1234)
    choice = r["choices"][0]
    lp = choice["logprobs"]
    assert choice["finish_reason"] == "stop"
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == len(tokens) + 1
    name = engine.model.token_name_bytes(eog).decode()
    assert name and lp["tokens"][-1] == name
    assert choice["text"] == engine.model.detokenize(tokens).decode()  # the token itself has no text
    assert lp["text_offset"][-1] == len(choice["text"])
    assert lp["token_logprobs"][-1] == pytest.approx(ref[-1, eog], abs=1e-4)
    assert lp["top_logprobs"][-1] == {name: lp["token_logprobs"][-1]}  # logprobs 1: the top one is itself
    # lm-eval's slicing now scores the whole continuation, as the raw logits do
    ll = sum(lp["token_logprobs"][ctxlen:-1])
    expected = sum(ref[i - 1, tokens[i]] for i in range(ctxlen, len(tokens)))
    assert ll == pytest.approx(expected, abs=1e-3) and ll < -1e-3
    assert r["usage"]["completion_tokens"] == 1


@registry_models_only
def test_a_stream_ending_on_end_of_generation_carries_the_entry_in_its_last_chunk(any_engine):
    engine = any_engine
    tokens, _ = lm_eval_shape(engine, *ENDS_AFTER[engine.model_id])
    request = dict(prompt=[tokens], logprobs=2, max_tokens=4, temperature=0, seed=1)
    whole = engine.create_completion(**request)["choices"][0]
    chunks = [c for ch in engine.create_completion(stream=True, **request) for c in ch["choices"]]
    last = chunks[-1]
    assert last["finish_reason"] == "stop" == whole["finish_reason"]
    assert last["logprobs"]["tokens"][-1] == whole["logprobs"]["tokens"][-1]
    assert engine.model.tokenize(last["logprobs"]["tokens"][-1], add_bos=False, special=True)[0] \
        in engine.model.eog_tokens
    streamed = {k: [x for c in chunks for x in c["logprobs"][k]] for k in whole["logprobs"]}
    assert streamed == whole["logprobs"]
    assert "".join(c["text"] for c in chunks) == whole["text"]

