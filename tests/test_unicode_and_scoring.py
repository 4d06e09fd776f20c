"""Two edges found while building the server: text JSON allows but UTF-8 does not, and echo scores that
lm-eval compares with ==."""
import pytest

from engine import CompletionError


@pytest.mark.parametrize("request_, param", [
    (dict(prompt="a\ud800b"), "prompt"),
    (dict(prompt=["fine", "\udfff"]), "prompt"),
    (dict(prompt="x", suffix="\ud800"), "suffix"),
])
def test_lone_surrogates_are_a_clear_error(engine, request_, param):
    with pytest.raises(CompletionError) as err:
        engine.create_completion(max_tokens=1, **request_)
    assert err.value.param == param and "not valid Unicode" in err.value.message


def test_echo_logprob_of_a_greedy_token_equals_its_top_entry(complete, model):
    """lm-eval calls a continuation greedy when each token's logprob == the max of its top_logprobs: both must
    be the same float (the prompt token's score was float32-rounded, its top entry float64)."""
    prompt = "The capital of France is Paris. The capital of France is Paris."
    lp = complete(prompt=prompt, echo=True, logprobs=1, max_tokens=0)["choices"][0]["logprobs"]
    matches = 0
    for token, logprob, top in zip(lp["tokens"][1:], lp["token_logprobs"][1:], lp["top_logprobs"][1:]):
        best = max(top.values())
        if token in top and top[token] == best:
            assert logprob == best
            matches += 1
    assert matches >= 5  # the repeated sentence is predicted greedily
