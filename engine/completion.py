"""The only place that builds response dicts: echo, best_of ranking, logprobs shape, usage, stream chunks."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from .choice import ChoiceState
from .work import PromptWork
from .logprobs import LogprobFormatter, TokenRecord
from .params import CompletionParams


@dataclass(frozen=True)
class ResponseMeta:
    id: str
    created: int
    model: str
    system_fingerprint: str

    @classmethod
    def new(cls, model: str, fingerprint: str) -> "ResponseMeta":
        return cls(f"cmpl-{uuid.uuid4().hex}", int(time.time()), model, fingerprint)

    def envelope(self, choices: list, usage: dict | None = None, with_usage_key: bool = False) -> dict:
        out = {"id": self.id, "object": "text_completion", "created": self.created, "model": self.model,
               "system_fingerprint": self.system_fingerprint, "choices": choices}
        if usage is not None or with_usage_key:
            out["usage"] = usage
        return out


def usage(work: list[PromptWork]) -> dict:
    prompt = sum(len(w.prompt.tokens) for w in work)
    completion = sum(c.state.n_generated for w in work for c in w.candidates)  # all best_of candidates
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _choice(index: int, text: str, logprobs: dict | None, finish_reason: str | None) -> dict:
    return {"text": text, "index": index, "logprobs": logprobs, "finish_reason": finish_reason}


def _ranked(params: CompletionParams, w: PromptWork) -> list[ChoiceState]:
    states = [c.state for c in w.candidates]
    if params.best_of > params.n:  # highest mean token logprob first; ties keep candidate order
        states = sorted(states, key=lambda s: -s.mean_logprob)[: params.n]
    return states


def build_response(meta: ResponseMeta, params: CompletionParams, work: list[PromptWork],
                   fmt: LogprobFormatter) -> dict:
    choices = []
    for i, w in enumerate(work):
        prefix_text = w.prompt.text if params.echo else ""
        prefix_records: list[TokenRecord] = (w.records or []) if params.echo else []
        for rank, state in enumerate(_ranked(params, w)):
            logprobs = None
            if params.logprobs is not None:
                logprobs = fmt.format(prefix_records + state.final_records())
            choices.append(_choice(i * params.n + rank, prefix_text + state.final_text(), logprobs,
                                   state.finish_reason))
    return meta.envelope(choices, usage(work))


class ChunkBuilder:
    """Stream chunks as the loop advances: each choice's deltas in order, its last one with finish_reason; with
    include_usage every chunk carries "usage": null and one final chunk holds the totals. Call `take` with the
    job's lock held (the states it reads are changed by the loop thread)."""

    def __init__(self, meta: ResponseMeta, params: CompletionParams, work: list[PromptWork],
                 fmt: LogprobFormatter):
        self.meta, self.params, self.work, self.fmt = meta, params, work, fmt
        self._started: set[int] = set()
        self._states = [(i * params.n + j, w, c.state) for i, w in enumerate(work)
                        for j, c in enumerate(w.candidates)]

    def take(self) -> list[dict]:
        params, chunks = self.params, []
        for index, w, state in self._states:
            delta = state.take_delta()
            if delta is None:
                continue
            text, records = delta.text, delta.records
            if index not in self._started:
                self._started.add(index)
                if params.echo:
                    text = w.prompt.text + text
                    records = (w.records or []) + records
            logprobs = self.fmt.format(records) if params.logprobs is not None else None
            chunks.append(self.meta.envelope([_choice(index, text, logprobs, delta.finish_reason)],
                                             with_usage_key=params.include_usage))
        return chunks

    def closing(self) -> list[dict]:
        """After the last step: the usage chunk when asked."""
        return [self.meta.envelope([], usage(self.work))] if self.params.include_usage else []
