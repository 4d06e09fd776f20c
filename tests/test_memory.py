"""Memory that fits the use: a single caller holds KV for one sequence until it asks for more at once; the
pool grows on demand with bit-identical results; a q8_0 KV cache runs and takes less memory."""
import numpy as np
import pytest

from engine import Engine

REQUEST = dict(prompt=["Once upon a time", "The capital of France is"], n=4, max_tokens=10, temperature=1.0,
               top_p=0.9, seed=31, logprobs=2)


def strip(r):
    return {k: v for k, v in r.items() if k not in ("id", "created")}


@pytest.fixture(scope="module")
def lazy():
    with Engine("smollm2-135m", n_ctx=4096) as e:
        yield e


def test_a_single_caller_holds_one_sequence(lazy):
    lazy.create_completion(prompt="Hello", max_tokens=4)
    memory = lazy.memory()
    assert memory["n_seq_max"] == 1
    # one sequence of 4,096 cells: 30 layers x 2 (K, V) x 3 heads x 64 dims x 2 bytes = 23,040 B a cell
    assert memory["kv_bytes"] == 4096 * 23_040
    assert 0.9 < memory["model_bytes"] / 98_362_432 < 1.05


def test_n4_after_n1_grows_the_pool_and_gives_the_same_bytes(lazy, engine):
    lazy.create_completion(prompt="Hello", max_tokens=4)
    grown = strip(lazy.create_completion(**REQUEST))
    assert lazy.memory()["n_seq_max"] == 4 and lazy.memory()["kv_bytes"] == 4 * 4096 * 23_040
    assert grown == strip(engine.create_completion(**REQUEST))  # `engine`: 4 slots from the start


def test_q8_0_kv_cache_runs_and_takes_less_memory(engine, capsys):
    prompts = ["The capital of France is", "def fibonacci(n):", "Once upon a time"]
    with Engine("smollm2-135m", n_ctx=4096, kv_cache_type="q8_0", lazy_slots=False, n_seq_max=4) as q8:
        assert q8.memory()["kv_bytes"] < 0.6 * engine.memory()["kv_bytes"]
        deltas, agree = [], 0
        for p in prompts:
            ref = engine.create_completion(prompt=p, max_tokens=16, temperature=0, logprobs=0)["choices"][0]
            out = q8.create_completion(prompt=p, max_tokens=16, temperature=0, logprobs=0)["choices"][0]
            agree += ref["text"] == out["text"]
            # score the f16 completion under both caches: the logit difference, reported, not asserted equal
            scored = q8.create_completion(prompt=p + ref["text"], echo=True, logprobs=0, max_tokens=0)
            base = engine.create_completion(prompt=p + ref["text"], echo=True, logprobs=0, max_tokens=0)
            a = np.array(scored["choices"][0]["logprobs"]["token_logprobs"][1:], float)
            b = np.array(base["choices"][0]["logprobs"]["token_logprobs"][1:], float)
            deltas.append(np.abs(a - b).mean())
    with capsys.disabled():
        print(f"\nq8_0 KV vs f16: greedy texts equal {agree}/{len(prompts)}, "
              f"mean |delta logprob| {np.mean(deltas):.4f}")
    assert np.mean(deltas) < 0.5  # the same model, slightly perturbed: a broken cache gives several nats


def test_bad_kv_cache_type_names_the_options():
    with pytest.raises(ValueError, match="kv_cache_type must be one of f16, q8_0"):
        Engine("smollm2-135m", n_ctx=256, kv_cache_type="q4")
