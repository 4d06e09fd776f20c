"""The four rows of the table, each with its three contenders as callables of the round number.

Generation rows ban end-of-generation tokens in every contender, so each produces exactly n_tokens per
choice. Scoring rows use a different window of the text each round, so no contender reuses a cached prefix.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import bare

PROMPT = "Once upon a time"
SAMPLING = dict(temperature=1.0, top_p=0.9)
SCORING_TEXT = " ".join(f"Sentence {i} says the weather in town {i % 7} is {['fine', 'grey', 'wet'][i % 3]}."
                        for i in range(400))


@dataclass(frozen=True)
class Workload:
    name: str
    tokens_per_run: int  # tokens generated (or scored) by one call of each contender
    contenders: dict[str, Callable[[int], object]]  # "ours", "llama-cpp-python", "bare loop"


def _check(n: int, want: int, who: str) -> None:
    if n != want:
        raise RuntimeError(f"bench: {who} produced {n} tokens, expected {want}")


def build_workloads(engine, llama, llama_all_logits, n_tokens: int, n_score: int) -> list[Workload]:
    """engine: ours; llama / llama_all_logits: llama_cpp.Llama without / with logits_all (logprobs need it)."""
    model = engine.model
    ban = {str(t): -100 for t in model.eog_tokens}
    ban_int = {int(t): -100.0 for t in model.eog_tokens}
    prompt = model.tokenize(PROMPT)
    llcp_kw = dict(max_tokens=n_tokens, top_k=0, min_p=0.0, repeat_penalty=1.0, logit_bias=ban_int, **SAMPLING)
    text_tokens = model.tokenize(SCORING_TEXT, add_bos=False)

    def window(r: int) -> list[int]:
        start = (r + 1) * 13
        if start + n_score > len(text_tokens):
            raise ValueError(f"bench: the scoring text is too short for {n_score} tokens")
        return text_tokens[start:start + n_score]

    def ours(**extra):
        def run(r: int):
            choices = extra.get("n", 1)
            out = engine.create_completion(prompt=PROMPT, max_tokens=n_tokens, seed=r + 2, logit_bias=ban,
                                           **SAMPLING, **extra)
            _check(out["usage"]["completion_tokens"], n_tokens * choices, "ours")
        return run

    def llcp(llm, calls: int = 1, **extra):
        def run(r: int):
            for c in range(calls):
                out = llm.create_completion(PROMPT, seed=r * calls + c + 2, **llcp_kw, **extra)
                _check(out["usage"]["completion_tokens"], n_tokens, "llama-cpp-python")
        return run

    def ours_score(r: int):
        out = engine.create_completion(prompt=window(r), echo=True, logprobs=5, max_tokens=0)
        _check(len(out["choices"][0]["logprobs"]["tokens"]), n_score, "ours")

    def llcp_score(r: int):
        # llama-cpp-python reads max_tokens=0 as "up to the context's end": it samples one token here.
        llama_all_logits.create_completion(window(r), echo=True, logprobs=5, max_tokens=1, logit_bias=ban_int)

    return [
        Workload(f"n=1, {n_tokens} tokens", n_tokens, {
            "ours": ours(), "llama-cpp-python": llcp(llama),
            "bare loop": lambda r: bare.generate(model, prompt, n_tokens)}),
        Workload(f"logprobs 5, {n_tokens} tokens", n_tokens, {
            "ours": ours(logprobs=5), "llama-cpp-python": llcp(llama_all_logits, logprobs=5),
            "bare loop": lambda r: bare.generate(model, prompt, n_tokens)}),
        Workload(f"n=4, {n_tokens} tokens each (llama-cpp-python: 4 calls)", 4 * n_tokens, {
            "ours": ours(n=4), "llama-cpp-python": llcp(llama, calls=4),
            "bare loop": lambda r: bare.generate(model, prompt, n_tokens, n_seqs=4)}),
        Workload(f"echo scoring, {n_score} prompt tokens, logprobs 5", n_score, {
            "ours": ours_score, "llama-cpp-python": llcp_score,
            "bare loop": lambda r: bare.score(model, window(r))}),
    ]
