"""The four rows of the table, each with its three contenders as callables of the round number that return
the tokens they generated (or scored).

Generation rows ban end-of-generation tokens in every contender, so each produces exactly n_tokens per
choice (checked). The scoring row uses a different text each round, so no contender reuses a cached prefix.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import bare

PROMPT = "Once upon a time"
SAMPLING = dict(temperature=1.0, top_p=0.9)


@dataclass(frozen=True)
class Workload:
    name: str
    contenders: dict[str, Callable[[int], int]]  # "ours", "llama-cpp-python", "bare loop"


def scoring_text(r: int, n_sentences: int) -> str:
    """Round r's prompt to score: plain sentences, different from every other round's from the first word."""
    return " ".join(f"Note {r + 2}.{i}: the weather in town {(i * 7 + r) % 11} is {['fine', 'grey', 'wet'][i % 3]}."
                    for i in range(n_sentences))


def _check(n: int, want: int, who: str) -> int:
    if n != want:
        raise RuntimeError(f"bench: {who} produced {n} tokens, expected {want}")
    return n


def build_workloads(engine, model, llama, llama_all_logits, n_tokens: int, n_score: int) -> list[Workload]:
    """engine: ours; model: a Model with 4 sequences for the bare loop; llama / llama_all_logits:
    llama_cpp.Llama without / with logits_all (its logprobs need it)."""
    ban = {str(t): -100 for t in model.eog_tokens}
    ban_int = {int(t): -100.0 for t in model.eog_tokens}
    prompt = model.tokenize(PROMPT)
    llcp_kw = dict(max_tokens=n_tokens, top_k=0, min_p=0.0, repeat_penalty=1.0, logit_bias=ban_int, **SAMPLING)
    per_sentence = len(model.tokenize(scoring_text(0, 10), add_bos=False)) / 10
    n_sentences = max(1, round(n_score / per_sentence))

    def ours(**extra):
        def run(r: int) -> int:
            out = engine.create_completion(prompt=PROMPT, max_tokens=n_tokens, seed=r + 2, logit_bias=ban,
                                           **SAMPLING, **extra)
            return _check(out["usage"]["completion_tokens"], n_tokens * extra.get("n", 1), "ours")
        return run

    def llcp(llm, calls: int = 1, **extra):
        def run(r: int) -> int:
            for c in range(calls):
                out = llm.create_completion(PROMPT, seed=r * calls + c + 2, **llcp_kw, **extra)
                _check(out["usage"]["completion_tokens"], n_tokens, "llama-cpp-python")
            return n_tokens * calls
        return run

    def ours_score(r: int) -> int:
        out = engine.create_completion(prompt=scoring_text(r, n_sentences), echo=True, logprobs=5, max_tokens=0)
        return out["usage"]["prompt_tokens"]

    def llcp_score(r: int) -> int:
        # llama-cpp-python reads max_tokens=0 as "up to the context's end": it samples one token here.
        out = llama_all_logits.create_completion(scoring_text(r, n_sentences), echo=True, logprobs=5,
                                                 max_tokens=1, logit_bias=ban_int)
        return out["usage"]["prompt_tokens"]

    def bare_score(r: int) -> int:
        return bare.score(model, model.tokenize(scoring_text(r, n_sentences)))

    return [
        Workload(f"n=1, {n_tokens} tokens", {
            "ours": ours(), "llama-cpp-python": llcp(llama),
            "bare loop": lambda r: bare.generate(model, prompt, n_tokens)}),
        Workload(f"logprobs 5, {n_tokens} tokens", {
            "ours": ours(logprobs=5), "llama-cpp-python": llcp(llama_all_logits, logprobs=5),
            "bare loop": lambda r: bare.generate(model, prompt, n_tokens)}),
        Workload(f"n=4, {n_tokens} tokens each (llama-cpp-python: 4 calls)", {
            "ours": ours(n=4), "llama-cpp-python": llcp(llama, calls=4),
            "bare loop": lambda r: bare.generate(model, prompt, n_tokens, n_seqs=4)}),
        Workload(f"echo scoring, ~{n_score} prompt tokens, logprobs 5", {
            "ours": ours_score, "llama-cpp-python": llcp_score, "bare loop": bare_score}),
    ]
