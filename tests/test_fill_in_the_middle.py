"""suffix on a model whose vocabulary declares FIM tokens: a small GGUF written by the test (random weights)."""
import pytest

from engine import Engine
from engine.detok import IncrementalText

from .fim_model import MID, PRE, SUF, write_fim_model


@pytest.fixture(scope="module")
def fim_engine(tmp_path_factory):
    path = write_fim_model(tmp_path_factory.mktemp("fim") / "tiny-fim.gguf")
    e = Engine(str(path), n_ctx=256)
    yield e
    e.close()


def _greedy(model, tokens, n):
    """Independent greedy decode of an explicit token layout through the backend."""
    import numpy as np

    model.seq_remove(-1)
    rows = model.decode(tokens, np.arange(len(tokens)), [0] * len(tokens), np.arange(len(tokens)) == len(tokens) - 1)
    out = []
    for i in range(n):
        t = int(np.argmax(rows[0]))
        if t in model.eog_tokens:
            break
        out.append(t)
        rows = model.decode([t], [len(tokens) + i], [0], [True])
    model.seq_remove(-1)
    text = IncrementalText()  # like the engine: a character still unfinished at the end is not returned
    for t in out:
        text.push(model.token_bytes(t))
    return text.text


def test_model_sees_prefix_suffix_middle_layout(fim_engine):
    model = fim_engine.model
    assert model.fim is not None and (model.fim.prefix, model.fim.suffix, model.fim.middle) == (PRE, SUF, MID)
    prompt, suffix = "def x(a):", "return b"
    layout = ([model.bos] + [PRE] + model.tokenize(prompt, add_bos=False, special=False) + [SUF]
              + model.tokenize(suffix, add_bos=False, special=False) + [MID])
    r = fim_engine.create_completion(prompt=prompt, suffix=suffix, max_tokens=6, temperature=0)
    assert r["usage"]["prompt_tokens"] == len(layout)
    assert r["choices"][0]["text"] == _greedy(model, layout, 6)


def test_echo_returns_prompt_plus_middle(fim_engine):
    plain = fim_engine.create_completion(prompt="print(a", suffix=")", max_tokens=4, temperature=0)
    echo = fim_engine.create_completion(prompt="print(a", suffix=")", max_tokens=4, temperature=0, echo=True,
                                        logprobs=1)
    assert echo["choices"][0]["text"] == "print(a" + plain["choices"][0]["text"]
    lp = echo["choices"][0]["logprobs"]
    assert lp["text_offset"][0] == 0
    assert lp["token_logprobs"][0] is not None  # the prompt's first token follows the FIM prefix token


def test_empty_suffix_is_still_fill_in_the_middle(fim_engine):
    """suffix="" still means the PRE prompt SUF MID layout (not a plain completion): the middle is the independent
    greedy run of that layout, and differs from the runs of the swapped-marker and plain layouts."""
    r = fim_engine.create_completion(prompt="def", suffix="", max_tokens=6, temperature=0)
    model = fim_engine.model
    prompt = model.tokenize("def", add_bos=False, special=False)
    layout = [model.bos, PRE] + prompt + [SUF, MID]
    assert r["usage"]["prompt_tokens"] == len(layout)
    middle = r["choices"][0]["text"]
    assert middle and middle == _greedy(model, layout, 6)
    for other in ([model.bos, SUF] + prompt + [PRE, MID], [model.bos] + prompt):
        assert _greedy(model, other, 6) != middle
