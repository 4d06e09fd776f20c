"""Greedy output equals llama-cpp-python's own create_completion on the default model."""
import pytest


LONG = " ".join(f"Item {i}: the {['red', 'green', 'blue'][i % 3]} box holds {i * 7} marbles." for i in range(30))
PROMPTS = [
    "Once upon a time",
    "The capital of France is",
    "def fibonacci(n):\n    ",
    "Café, naïve, jalapeño: ünïcödé — 日本語のテキスト",
    LONG,
    "Emoji 🎉🚀 and",
]


@pytest.fixture(scope="module")
def reference(model_path):
    """llama-cpp-python's Llama on the same weight layout as ours (no repacking: on this AMX machine llama.cpp's
    repacked path crashed in a build without llamafile), so greedy texts must agree token for token."""
    from engine.bench.llama_python import load_llama

    llm = load_llama(str(model_path), repack_weights=False, n_ctx=4096, verbose=False, seed=0)
    yield llm
    llm.close()


def test_long_prompt_is_long(model):
    assert len(model.tokenize(LONG)) >= 300


@pytest.mark.parametrize("prompt", PROMPTS, ids=lambda p: p[:16])
def test_greedy_parity_with_llama_cpp_python(engine, reference, prompt):
    ref = reference.create_completion(prompt, max_tokens=32, temperature=0, top_k=0, min_p=0, repeat_penalty=1.0)
    # llama-cpp-python overruns max_tokens by a token or two to finish a multi-byte character (its usage
    # says so); generate exactly as many tokens as it did so that both texts cover the same tokens.
    n_tokens = ref["usage"]["completion_tokens"]
    assert 32 <= n_tokens <= 35
    ours = engine.create_completion(prompt=prompt, max_tokens=n_tokens, temperature=0)
    assert ours["usage"]["completion_tokens"] == n_tokens
    assert ours["choices"][0]["text"] == ref["choices"][0]["text"]
