"""lm-evaluation-harness `local-completions` against the server, replayed with httpx (lm_eval itself is not a
dependency): its tokenizer discovery (`tokenizer_backend=auto`: /tokenizer_info, /tokenize, /detokenize), its
loglikelihood requests (token-id-list prompts, echo, logprobs 1, max_tokens 1, temperature 0, seed) parsed the
way it parses them, and its generate_until requests. Expectations are computed independently from the model's
logits (a separately loaded Model, float64 log-softmax), not through the engine.

If `lm_eval` is installed (optional, never in CI), the last test runs it end to end."""
from __future__ import annotations

from operator import itemgetter

import httpx
import numpy as np
import pytest

from engine.model import Model

from .server_process import http, server  # noqa: F401 (fixtures)
from .test_conformance import raw_logprobs

SEED = 1234  # lm-eval's default


@pytest.fixture(scope="module")
def ref_model(model_path):
    """An independent llama.cpp context on the same file: the reference never goes through the engine."""
    with Model(model_path, n_ctx=512, n_seq_max=1) as m:
        yield m


log_softmax_rows = raw_logprobs  # the reference: log_softmax of the model's own logits rows, float64


def reference(model: Model, tokens: list[int], ctxlen: int) -> tuple[float, bool]:
    """Sum of log P(tokens[i] | tokens[:i]) for i >= ctxlen, and whether each was the argmax."""
    lp = log_softmax_rows(model, tokens)
    total = sum(lp[i - 1, tokens[i]] for i in range(ctxlen, len(tokens)))
    greedy = all(int(np.argmax(lp[i - 1])) == tokens[i] for i in range(ctxlen, len(tokens)))
    return float(total), greedy


# ---- lm-eval's client side, as in lm_eval/models/openai_completions.py and api_models.py -----------------------

class RemoteTokenizer:
    """What lm-eval's RemoteTokenizer does with the three routes."""

    def __init__(self, http: httpx.Client):
        self.http = http
        info = http.get("/tokenizer_info")
        info.raise_for_status()
        self.info = info.json()
        assert "eos_token" in self.info  # check_remote_tokenizer_support
        assert isinstance(self.encode("test"), list)

    def encode(self, text: str) -> list[int]:
        r = self.http.post("/tokenize", json={"prompt": text, "add_special_tokens": False})
        r.raise_for_status()
        return r.json()["tokens"]

    def decode(self, tokens: list[int]) -> str:
        r = self.http.post("/detokenize", json={"tokens": tokens})
        r.raise_for_status()
        return r.json()["prompt"]

    @property
    def eos_token_id(self) -> int:
        return self.encode(self.info["eos_token"])[0]


def encode_pair(tok: RemoteTokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """TemplateAPI._encode_pair: trailing spaces move to the continuation; an empty context is the EOT token."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    if not context:
        return [tok.eos_token_id], tok.encode(continuation)
    whole = tok.encode(context + continuation)
    context_enc = tok.encode(context)
    return context_enc, whole[len(context_enc):]


def loglikelihood_payload(model_id: str, prompts: list[list[int]]) -> dict:
    return {"model": model_id, "prompt": prompts, "temperature": 0, "max_tokens": 1, "logprobs": 1, "seed": SEED,
            "echo": True}


def parse_logprobs(out: dict, ctxlens: list[int]) -> list[tuple[float, bool]]:
    res = []
    for choice, ctxlen in zip(sorted(out["choices"], key=itemgetter("index")), ctxlens):
        assert ctxlen > 0
        token_logprobs = choice["logprobs"]["token_logprobs"][ctxlen:-1]
        top_logprobs = choice["logprobs"]["top_logprobs"][ctxlen:-1]
        is_greedy = all(tok == max(top.values()) for tok, top in zip(token_logprobs, top_logprobs))
        res.append((sum(token_logprobs), is_greedy))
    return res


# ---- tests ---------------------------------------------------------------------------------------------------

def test_tokenizer_discovery_like_lm_eval(http, ref_model):
    tok = RemoteTokenizer(http)
    assert tok.eos_token_id == ref_model.eos  # the EOS string is exactly that one token
    assert tok.info["model_max_length"] == 2048
    assert tok.decode([tok.eos_token_id]) == tok.info["eos_token"]  # lm-eval's stop string, never empty
    text = "Question: What is 2 + 2?\nAnswer: 4"
    assert tok.decode(tok.encode(text)) == text
    assert tok.encode(text) == ref_model.tokenize(text, add_bos=False, special=True)


MULTIPLE_CHOICE = [  # (context, continuation): a small multiple-choice task, lm-eval style
    ("The capital of France is", " Paris"),
    ("The capital of France is", " London"),
    ("The capital of France is", " a city in the north of the country"),
    ("Question: What color is the sky on a clear day?\nAnswer:", " blue"),
    ("Question: What color is the sky on a clear day?\nAnswer:", " green"),
    ("", "Hello world"),  # empty context: lm-eval puts the EOT token first
    ("One, two, three, ", "four"),  # trailing space moves to the continuation
]


def test_loglikelihood_requests_match_independent_logprobs(http, server, ref_model):
    tok = RemoteTokenizer(http)
    pairs = [encode_pair(tok, c, x) for c, x in MULTIPLE_CHOICE]
    prompts = [c + x for c, x in pairs]
    ctxlens = [len(c) for c, _ in pairs]
    r = http.post("/v1/completions", json=loglikelihood_payload(server.model_id, prompts))
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["choices"]) == len(prompts)
    for choice, prompt in zip(sorted(out["choices"], key=itemgetter("index")), prompts):
        lp = choice["logprobs"]
        assert len(lp["token_logprobs"]) == len(prompt) + 1  # every prompt token, then the one generated
        assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    got = parse_logprobs(out, ctxlens)
    for (ll, _), prompt, ctxlen in zip(got, prompts, ctxlens):
        ref_ll, _ = reference(ref_model, prompt, ctxlen)
        assert abs(ll - ref_ll) < 1e-4, (ll, ref_ll)
    # the task's answer: Paris beats London, blue beats green
    assert got[0][0] > got[1][0] and got[3][0] > got[4][0]
    assert_same_float_as_top_entry(out)
    assert [g for _, g in got] == [reference(ref_model, p, c)[1] for p, c in zip(prompts, ctxlens)]


def test_a_continuation_the_model_would_end_after_scores_every_token(http, server, ref_model):
    """The greedy token after this continuation is end-of-generation: its entry must still come last, or
    lm-eval's [ctxlen:-1] drops the continuation's last token (a 1-token continuation scored 0.0)."""
    from .test_end_of_generation import ENDS_AFTER

    tok = RemoteTokenizer(http)
    context, continuation = encode_pair(tok, *ENDS_AFTER["smollm2-135m"])
    prompt = context + continuation
    assert int(np.argmax(log_softmax_rows(ref_model, prompt)[-1])) in ref_model.eog_tokens
    out = http.post("/v1/completions", json=loglikelihood_payload(server.model_id, [prompt])).json()
    lp = out["choices"][0]["logprobs"]
    assert len(lp["token_logprobs"]) == len(prompt) + 1 and out["choices"][0]["finish_reason"] == "stop"
    assert ref_model.tokenize(lp["tokens"][-1], add_bos=False, special=True) == \
        [int(np.argmax(log_softmax_rows(ref_model, prompt)[-1]))]  # the end-of-generation token, by name
    [(ll, greedy)] = parse_logprobs(out, [len(context)])
    ref_ll, ref_greedy = reference(ref_model, prompt, len(context))
    assert abs(ll - ref_ll) < 1e-4 and ll < -1e-3, (ll, ref_ll)
    assert greedy == ref_greedy
    assert_same_float_as_top_entry(out)


def assert_same_float_as_top_entry(out: dict) -> None:
    """lm-eval calls a continuation greedy when each token's logprob equals the max of its top_logprobs entry:
    the two must be the very same float (echoed prompt tokens included)."""
    for choice in out["choices"]:
        lp = choice["logprobs"]
        for i, (tok, token_lp, top) in enumerate(zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"])):
            if i == 0 and token_lp is None:
                continue
            assert top[tok] == token_lp, (
                f"token {i} {tok!r}: token_logprobs {token_lp!r} != top_logprobs {top[tok]!r} (an echoed prompt "
                f"token's logprob rounded through float32? engine/rows.py PromptScorer.score)")


def test_greedy_flags_for_greedy_and_non_greedy_continuations(http, server, ref_model):
    context = ref_model.tokenize("The capital of France is", add_bos=False)
    greedy_cont = []
    for _ in range(3):  # the model's own argmax continuation, token by token
        lp = log_softmax_rows(ref_model, context + greedy_cont)
        greedy_cont.append(int(np.argmax(lp[-1])))
    runner_up = int(np.argsort(log_softmax_rows(ref_model, context)[-1])[-2])
    prompts = [context + greedy_cont, context + [runner_up], context + greedy_cont[:1] + [runner_up]]
    out = http.post("/v1/completions", json=loglikelihood_payload(server.model_id, prompts)).json()
    got = parse_logprobs(out, [len(context)] * 3)
    for (ll, _), prompt in zip(got, prompts):
        assert abs(ll - reference(ref_model, prompt, len(context))[0]) < 1e-4
    assert_same_float_as_top_entry(out)
    assert [g for _, g in got] == [True, False, False]


def greedy_reference(model: Model, prompt: list[int], max_tokens: int, stops: list[str]) -> str:
    tokens, out = list(prompt), []
    for _ in range(max_tokens):
        t = int(np.argmax(log_softmax_rows(model, tokens)[-1]))
        if t in model.eog_tokens:
            break
        out.append(t)
        tokens.append(t)
    text = model.detokenize(out).decode("utf-8", "ignore")
    cut = min([i for i in (text.find(s) for s in stops) if i >= 0], default=len(text))
    return text[:cut]


def test_generate_until_requests(http, server, ref_model):
    tok = RemoteTokenizer(http)
    eos = tok.decode([tok.eos_token_id])
    contexts = ["Question: What is the capital of France?\nAnswer:", "1, 2, 3, 4,"]
    prompts = [tok.encode(c) for c in contexts]
    stops = ["\n\n", "Question:", eos]  # handle_stop_sequences(until, eos): the EOS string joins `until`
    r = http.post("/v1/completions", json={"prompt": prompts, "model": server.model_id, "max_tokens": 12,
                                           "temperature": 0, "stop": stops, "seed": SEED})
    assert r.status_code == 200, r.text
    texts = [None] * len(prompts)
    for choice in r.json()["choices"]:  # parse_generations
        texts[choice["index"]] = choice["text"]
    for text, prompt in zip(texts, prompts):
        assert text == greedy_reference(ref_model, prompt, 12, stops)


def test_lm_eval_end_to_end(server):
    """Only where lm_eval is installed: its own local-completions model, auto tokenizer backend, a tiny
    multiple-choice set and a generate_until request."""
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.api.instance import Instance
    from lm_eval.api.registry import get_model

    lm = get_model("local-completions")(base_url=server.v1 + "/completions", tokenizer_backend="auto",
                                        model=server.model_id, num_concurrent=1, max_retries=1)
    ll = lm.loglikelihood([Instance("loglikelihood", {}, ("The capital of France is", c), i)
                           for i, c in enumerate([" Paris", " London"])])
    assert ll[0][0] > ll[1][0]
    out = lm.generate_until([Instance("generate_until", {}, ("1, 2, 3, 4,", {"until": ["\n"], "max_gen_toks": 8}),
                                      0)])
    assert isinstance(out[0], str) and out[0]
    print(f"lm_eval {getattr(lm_eval, '__version__', '?')}: loglikelihoods {ll}, generation {out[0]!r}")
