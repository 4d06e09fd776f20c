"""Random request dicts get either a well-formed response or CompletionError: never another exception,
never a KV-cache sequence left behind."""
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import CompletionError

from .conftest import assert_no_sequences

anything = st.one_of(st.none(), st.booleans(), st.integers(-3, 300), st.floats(allow_nan=True),
                     st.text(max_size=5), st.lists(st.integers(-2, 50000), max_size=3))
numbers = st.one_of(st.floats(-3, 3), st.sampled_from([math.nan, math.inf, -math.inf]), st.integers(-3, 3), anything)
prompts = st.one_of(st.text(max_size=20), st.lists(st.text(max_size=8), min_size=0, max_size=3),
                    st.lists(st.integers(-5, 49200), max_size=6),
                    st.lists(st.lists(st.integers(0, 49151), max_size=4), max_size=2), st.none(), anything)

requests = st.fixed_dictionaries({}, optional={
    "prompt": prompts,
    "max_tokens": st.one_of(st.integers(-1, 4), st.none(), anything),
    "temperature": numbers,
    "top_p": numbers,
    "n": st.one_of(st.integers(0, 3), anything),
    "best_of": st.one_of(st.integers(0, 4), st.none(), anything),
    "logprobs": st.one_of(st.integers(-1, 6), st.none(), anything),
    "echo": st.one_of(st.booleans(), anything),
    "stop": st.one_of(st.none(), st.text(max_size=3), st.lists(st.text(max_size=3), max_size=5), anything),
    "seed": st.one_of(st.integers(-2 ** 64, 2 ** 64), st.none(), anything),
    "frequency_penalty": numbers,
    "presence_penalty": numbers,
    "logit_bias": st.one_of(st.none(), st.dictionaries(st.one_of(st.text(max_size=6),
                                                                 st.integers(-1, 60000).map(str)),
                                                       numbers, max_size=3), anything),
    "stream": st.one_of(st.booleans(), anything),
    "stream_options": st.one_of(st.none(), st.fixed_dictionaries({"include_usage": st.booleans()}), anything),
    "suffix": st.one_of(st.none(), anything),
    "user": st.one_of(st.text(max_size=4), anything),
    "model": st.one_of(st.none(), st.just("smollm2-135m"), anything),
    "bogus": anything,
})


def _check_response(r, request):
    assert r["object"] == "text_completion"
    for c in r["choices"]:
        assert isinstance(c["text"], str) and c["finish_reason"] in ("stop", "length")
        if c["logprobs"] is not None:
            lp = c["logprobs"]
            assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["text_offset"])
            assert all(v is None or (v <= 0 and not math.isnan(v)) for v in lp["token_logprobs"])
    u = r["usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(request=requests)
def test_random_requests_never_crash(engine, request):
    if isinstance(request.get("max_tokens"), int) and not isinstance(request["max_tokens"], bool):
        request["max_tokens"] = min(request["max_tokens"], 4)
    try:
        result = engine.create_completion(**request)
        if request.get("stream") is True:
            chunks = list(result)
            assert all(ch["object"] == "text_completion" for ch in chunks)
        else:
            _check_response(result, request)
    except CompletionError as e:
        assert e.param is not None or e.code
        assert e.message
    assert_no_sequences(engine)


valid_requests = st.fixed_dictionaries({"prompt": st.one_of(st.text(max_size=20), st.lists(st.text(max_size=8),
                                                                                          min_size=1, max_size=2))},
                                       optional={
    "max_tokens": st.integers(1, 4),
    "temperature": st.floats(0, 2),
    "top_p": st.floats(1e-6, 1),
    "n": st.integers(1, 3),
    "logprobs": st.one_of(st.none(), st.integers(0, 5)),
    "echo": st.booleans(),
    "stop": st.one_of(st.none(), st.text(min_size=1, max_size=3)),
    "seed": st.integers(-2 ** 63, 2 ** 63 - 1),
    "frequency_penalty": st.floats(-2, 2),
    "presence_penalty": st.floats(-2, 2),
    "logit_bias": st.dictionaries(st.integers(0, 49151).map(str), st.floats(-100, 100), max_size=3),
    "stream": st.booleans(),
})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(request=valid_requests)
def test_valid_random_requests_always_succeed(engine, request):
    result = engine.create_completion(**request)
    if request.get("stream"):
        chunks = list(result)
        finals = [c for ch in chunks for c in ch["choices"] if c["finish_reason"] is not None]
        assert len(finals) == len(request["prompt"] if isinstance(request["prompt"], list) else [1]) * \
            request.get("n", 1)
    else:
        _check_response(result, request)
    assert_no_sequences(engine)
