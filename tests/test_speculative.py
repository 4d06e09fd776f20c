"""Speculative decoding gives the same bytes as speculation off: on both registry models, over a matrix of
requests, with the real prompt-lookup drafter (adaptive and forced to send every proposal) and with adversarial
drafters (always right, always wrong, right then wrong), so that both the accept and the reject paths run.

Each case is answered first by the shared engine (speculation off), then by a second engine of the same model
with speculation on, once per drafter; every answer must equal the first, byte for byte (id and created aside),
and the drafting statistics must show the drafter really worked, so the test can fail.
"""
from __future__ import annotations

import json
import threading

import pytest

from engine import Engine
from engine.speculative import NgramDrafter, Speculation, parse_speculation

from .conftest import assert_no_sequences, registry_models_only

PASSAGE = ("The lighthouse keeper climbed the spiral stairs every evening at dusk. He wound the clockwork, "
           "trimmed the wick, and polished the great lens until it shone. Ships passing the rocky cape "
           "trusted that light, and for forty years it never failed them.")
COPY = f"Copy the following paragraph exactly.\n\nParagraph: {PASSAGE}\n\nCopy: The lighthouse keeper"
RECORD = ('Record: {"name": "Ada Lovelace", "born": 1815, "city": "London", "field": "mathematics"}\n'
          'The name field of the record is "Ada Lovelace". The city field of the record is "')
CODE = ("def total_price(items, tax_rate):\n    subtotal = sum(item.price for item in items)\n"
        "    return subtotal * (1 + tax_rate)\n\n# The same function, renamed to compute_total:\n"
        "def compute_total(items, tax_rate):\n")


def strip(response):
    return json.dumps({k: v for k, v in response.items() if k not in ("id", "created")}, sort_keys=True)


def streamed(chunks):
    """Per choice index: the concatenated text, logprobs lists and the finish reason; plus the usage chunk."""
    out: dict = {}
    usage = None
    for chunk in chunks:
        if chunk.get("usage"):
            usage = chunk["usage"]
        for ch in chunk["choices"]:
            o = out.setdefault(ch["index"], {"text": "", "tokens": [], "token_logprobs": [], "top": [],
                                             "offsets": [], "finish": None})
            o["text"] += ch["text"]
            if ch["logprobs"]:
                o["tokens"] += ch["logprobs"]["tokens"]
                o["token_logprobs"] += ch["logprobs"]["token_logprobs"]
                o["top"] += ch["logprobs"]["top_logprobs"]
                o["offsets"] += ch["logprobs"]["text_offset"]
            if ch["finish_reason"] is not None:
                o["finish"] = ch["finish_reason"]
    return json.dumps({"choices": out, "usage": usage}, sort_keys=True)


# ---- drafters ---------------------------------------------------------------------------------------------

class Recorder(NgramDrafter):
    """Prompt lookup that keeps every sequence's tokens, so an oracle can replay them afterwards."""

    def __init__(self, tokens, log):
        super().__init__(tokens, 1, 3)
        log.append(self)


class Oracle:
    """Proposes what a recorded run of the same request generated next (`wrong_after`: only that many right
    tokens, then wrong ones), so its drafts are all right, all wrong, or right then wrong."""

    def __init__(self, tokens, runs, n_vocab, wrong_after=None):
        self.tokens = list(tokens)
        self.runs, self.n_vocab, self.wrong_after = runs, n_vocab, wrong_after

    def push(self, token):
        self.tokens.append(token)

    def propose(self, k):
        n = len(self.tokens)
        for run in self.runs:
            if len(run) > n and run[:n] == self.tokens:
                draft = list(run[n:n + k])
                cut = self.wrong_after
                if cut is not None:
                    cut = cut if cut >= 0 else (n % 3)  # -1: a different cut every step
                    draft = draft[:cut] + [(t + 1) % self.n_vocab for t in draft[cut:]]
                return draft, 3
        return [], 0


def use(engine, speculation):
    """Swap the drafter between requests (the loop reads it when a sequence starts decoding)."""
    assert engine.wait_idle(60)
    engine.loop.scheduler.speculation = speculation


def spec_stats(engine):
    return dict(engine.stats()["speculative"])


def delta(after, before):
    return {k: after[k] - before[k] for k in after}


# ---- fixtures ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def spec_engines():
    made: dict = {}
    yield made
    for e in made.values():
        e.close()


@pytest.fixture
def pair(any_engine, spec_engines):
    """(speculation off, speculation on) engines of the same model: the shared one and one more per model."""
    if any_engine.model_id not in spec_engines:
        spec_engines[any_engine.model_id] = Engine(any_engine.model_id, n_ctx=4096, n_seq_max=4, lazy_slots=False,
                                                   speculative="prompt-lookup")
    spec = spec_engines[any_engine.model_id]
    yield any_engine, spec
    use(spec, parse_speculation("prompt-lookup"))


def cases(model):
    eos = model.eos
    keeper = model.tokenize(" lighthouse", add_bos=False)[0]
    return {
        "greedy": dict(prompt=COPY, max_tokens=48, temperature=0),
        "sampled": dict(prompt=COPY, max_tokens=40, temperature=0.8, top_p=0.9, seed=7),
        "penalties": dict(prompt=RECORD, max_tokens=32, temperature=0.7, seed=3, frequency_penalty=0.5,
                          presence_penalty=0.3),
        "logit_bias": dict(prompt=COPY, max_tokens=32, temperature=0.6, seed=5, logit_bias={str(keeper): 3.0}),
        "logprobs": dict(prompt=CODE, max_tokens=40, temperature=0.5, seed=11, logprobs=5),
        "stop": dict(prompt=COPY, max_tokens=48, temperature=0, stop=["clockwork", "great"], logprobs=1),
        "max_tokens": dict(prompt=COPY, max_tokens=5, temperature=0),
        "eog": dict(prompt=COPY, max_tokens=40, temperature=1.0, seed=3, logit_bias={str(eos): 4.0}, logprobs=2),
        "n3": dict(prompt=COPY, max_tokens=24, temperature=0.9, seed=13, n=3, logprobs=1),
        "best_of": dict(prompt=RECORD, max_tokens=24, temperature=0.9, seed=17, best_of=3),
        "echo": dict(prompt=CODE, max_tokens=24, temperature=0, echo=True, logprobs=2),
        "prompts": dict(prompt=[COPY, CODE], max_tokens=24, temperature=0.7, seed=19),
    }


DRAFTERS = ("forced", "right", "right-then-wrong")  # every case; "wrong" and "adaptive" on a few (time)
EXTRA = {"greedy": ("wrong", "adaptive"), "sampled": ("wrong",), "penalties": ("wrong",), "eog": ("wrong",),
         "n3": ("wrong",), "stop": ("wrong",)}


def drafter(name, model, runs, log):
    if name == "adaptive":
        return parse_speculation("prompt-lookup")
    if name == "forced":
        return Speculation(adaptive=False, drafter=lambda t: Recorder(t, log))
    cut = {"right": None, "wrong": 0, "right-then-wrong": -1}[name]
    return Speculation(adaptive=False, drafter=lambda t: Oracle(t, runs, model.n_vocab, cut))


def run_all(engine, request):
    result = engine.create_completion(**request)
    out = streamed(result) if request.get("stream") else strip(result)
    assert_no_sequences(engine)  # every slot's cells are exactly the tokens it records: rejected cells removed
    return out


def check_case(off, spec, request, drafters=DRAFTERS):
    expected = run_all(off, request)
    log: list = []
    runs: list = []
    seen = {}
    for name in ("forced",) + tuple(d for d in drafters if d != "forced"):
        use(spec, drafter(name, spec.model, runs, log))
        before = spec_stats(spec)
        assert run_all(spec, request) == expected, f"drafter {name}"
        seen[name] = delta(spec_stats(spec), before)
        if name == "forced":
            runs[:] = [r.tokens for r in log]
    return seen


# ---- the matrix -------------------------------------------------------------------------------------------

CASES = ["greedy", "sampled", "penalties", "logit_bias", "logprobs", "stop", "max_tokens", "eog", "n3", "best_of",
         "echo", "prompts"]


@registry_models_only
@pytest.mark.parametrize("case", CASES)
def test_speculation_gives_the_same_bytes(pair, case):
    off, spec = pair
    request = cases(spec.model)[case]
    seen = check_case(off, spec, request, DRAFTERS + EXTRA.get(case, ()))
    assert seen["forced"]["drafted"] > 0, f"prompt lookup proposed nothing for {case}: the case checks nothing"
    assert seen["right"]["drafted"] > 0 and seen["right"]["accepted"] > 0
    if request.get("n", 1) == 1 and request.get("best_of", 1) == 1:
        assert seen["right"]["accepted"] == seen["right"]["drafted"]  # an oracle for one sequence is never wrong
    partial = seen["right-then-wrong"]
    assert partial["accepted"] < partial["drafted"]
    if case != "max_tokens":  # too few steps to be sure of a partly right one
        assert partial["accepted"] > 0
    if "wrong" in seen:
        assert seen["wrong"]["drafted"] > 0 and seen["wrong"]["accepted"] == 0
    if "adaptive" in seen:
        assert seen["adaptive"]["drafted"] > 0 and seen["adaptive"]["accepted"] > 0


@registry_models_only
@pytest.mark.parametrize("case", ["greedy", "sampled", "logprobs", "n3", "echo"])
def test_streams_concatenate_to_the_same_text(pair, case):
    off, spec = pair
    request = dict(cases(spec.model)[case], stream=True, stream_options={"include_usage": True})
    check_case(off, spec, request, drafters=("forced", "right-then-wrong"))


@registry_models_only
def test_adaptive_prompt_lookup_drafts_and_accepts_on_a_copy(pair):
    """The default drafter on a copying prompt: drafts are sent and mostly accepted, and the bytes agree."""
    off, spec = pair
    request = cases(spec.model)["greedy"]
    seen = check_case(off, spec, request, drafters=("forced", "adaptive"))
    assert seen["adaptive"]["drafted"] > 0
    assert seen["adaptive"]["accepted"] >= seen["adaptive"]["drafted"] // 2


@registry_models_only
def test_eight_concurrent_requests(pair):
    off, spec = pair
    c = cases(spec.model)
    requests = [dict(c[name], seed=100 + i) if "seed" in c[name] else c[name]
                for i, name in enumerate(["greedy", "sampled", "penalties", "logprobs", "stop", "n3", "eog",
                                          "logit_bias"])]
    expected = [run_all(off, r) for r in requests]
    use(spec, Speculation(adaptive=False))  # send every proposal although 8 sequences share the step
    before = spec_stats(spec)
    got: list = [None] * len(requests)

    def go(i):
        got[i] = strip(spec.create_completion(**requests[i]))
    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert_no_sequences(spec)
    assert got == expected
    seen = delta(spec_stats(spec), before)
    assert seen["drafted"] > 0 and seen["accepted"] > 0


# ---- options ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(speculative="ngram"), "speculative must be one of 'prompt-lookup'"),
    (dict(speculative="prompt-lookup", draft_max=0), "draft_max must be an integer in 1..32, got 0"),
    (dict(speculative="prompt-lookup", draft_max=33), "draft_max must be an integer in 1..32, got 33"),
    (dict(speculative="prompt-lookup", ngram_min=3, ngram_max=2), "ngram_min (3) must not exceed ngram_max (2)"),
    (dict(speculative="prompt-lookup", ngram_max=9), "ngram_max must be an integer in 1..8, got 9"),
])
def test_bad_options_are_refused_at_construction(kwargs, message):
    with pytest.raises(ValueError) as e:
        Engine("/nonexistent/model.gguf", **kwargs)  # checked before the model is looked up
    assert message in str(e.value)


def test_off_values():
    assert parse_speculation(None) is None and parse_speculation("off") is None


def test_ngram_drafter_proposes_what_followed_the_latest_match():
    d = NgramDrafter([5, 1, 2, 3, 4, 9, 1, 2], 1, 3)
    assert d.propose(3) == ([3, 4, 9], 2)
    d.push(3)
    assert d.propose(8) == ([4, 9, 1, 2, 3], 3)  # runs up to the sequence's end
    d.push(7)
    assert d.propose(4) == ([], 0)  # 7 never occurred before: no draft


@pytest.mark.parametrize("command", [["complete", "hi"], ["serve"]])
@pytest.mark.parametrize("flags, message", [
    (["--speculative", "ngram"], "speculative must be one of 'prompt-lookup'"),
    (["--speculative", "prompt-lookup", "--draft-max", "40"], "draft-max must be an integer in 1..32, got 40"),
])
def test_bad_flags_exit_2_before_the_model_loads(capsys, command, flags, message):
    from engine.commands.main import main

    if command == ["serve"]:
        pytest.importorskip("uvicorn")
    assert main(command + flags + ["--model", "/nonexistent/model.gguf"]) == 2
    err = capsys.readouterr().err
    assert message in err.replace("_", "-") and err.startswith("error: ") and "Traceback" not in err


def test_a_wide_cpu_step_carries_no_drafts_and_a_narrow_one_carries_likely_ones():
    from engine.speculative import CPU_MAX_WIDTH_FOR_DRAFTS, SequenceDrafts, choose_drafts

    sure = SequenceDrafts(NgramDrafter([1, 2, 3, 1, 2], 1, 3), 3)
    sure.accept = [1.0] * len(sure.accept)  # drafts of this sequence have always been right
    proposal = sure.propose(4)
    assert proposal == [3, 1, 2]
    narrow = choose_drafts([("a", sure, proposal)], width=1, room=8, on_gpu=False)
    assert narrow == {"a": 3}
    wide = CPU_MAX_WIDTH_FOR_DRAFTS
    assert choose_drafts([("a", sure, proposal)], width=wide, room=8, on_gpu=False) == {}
    assert choose_drafts([("a", sure, proposal)], width=wide, room=8, on_gpu=True) == {"a": 3}
