"""One candidate completion as it grows: text, stop detection, finish reason, logprob records, stream deltas."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .detok import IncrementalText
from .logprobs import TokenRecord
from .stops import StopMatcher


@dataclass
class Delta:
    text: str
    records: list[TokenRecord]
    finish_reason: str | None


@dataclass
class ChoiceState:
    max_new: int
    stops: StopMatcher
    base_offset: int  # characters of the prompt text: completion offsets count from here
    keep_records: bool
    text: IncrementalText = field(default_factory=IncrementalText)
    records: list[TokenRecord] = field(default_factory=list)
    n_generated: int = 0  # every sampled token, end-of-generation included
    logprob_sum: float = 0.0
    finish_reason: str | None = None
    stop_at: int | None = None  # where a stop string starts, in completion characters
    _sent_chars: int = 0
    _sent_records: int = 0
    _sent_finish: bool = False

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def finish_without_tokens(self) -> None:
        """max_tokens 0 (prompt scoring): nothing is generated."""
        self.finish_reason = "length"

    def push(self, token: int, piece: bytes, is_eog: bool, logprob: float,
             top_ids: np.ndarray | None, top_lps: np.ndarray | None) -> None:
        """Take one sampled token; sets finish_reason when the choice is done."""
        self.n_generated += 1
        self.logprob_sum += logprob
        if is_eog:  # not part of the text, but it has an entry (lm-eval reads the last one as the sampled token)
            self._record(token, logprob, top_ids, top_lps, self.text.n_chars)
            self.finish_reason = "stop"
            return
        offset, new = self.text.push(piece)
        self._record(token, logprob, top_ids, top_lps, offset)
        if new:
            cut = self.stops.check(self.text.text, len(new))
            if cut is not None:
                self.stop_at = cut
                self.finish_reason = "stop"
                return
        if self.n_generated >= self.max_new:
            self.finish_reason = "length"

    def _record(self, token: int, logprob: float, top_ids: np.ndarray | None, top_lps: np.ndarray | None,
                offset: int) -> None:
        if self.keep_records:
            self.records.append(TokenRecord(token, logprob, None if top_ids is None else top_ids.copy(),
                                            None if top_lps is None else top_lps.copy(),
                                            self.base_offset + offset))

    @property
    def mean_logprob(self) -> float:
        """best_of's ranking key: mean raw logprob of every sampled token (0 tokens ranks as 0)."""
        return self.logprob_sum / self.n_generated if self.n_generated else 0.0

    def final_text(self) -> str:
        text = self.text.text
        return text if self.stop_at is None else text[: self.stop_at]

    def final_records(self) -> list[TokenRecord]:
        if self.stop_at is None:
            return self.records
        end = self.base_offset + self.stop_at  # only tokens that start before the stop survive
        return [r for r in self.records if r.offset < end]

    def take_delta(self) -> Delta | None:
        """What can be streamed now: text that can no longer become a stop string (all of it once finished)
        and the records of tokens starting inside it; None when there is nothing new."""
        if self._sent_finish:
            return None
        if self.finished:
            self._sent_finish = True
            text = self.final_text()
            records = self.final_records()
            release = len(text)
            new_records = records[self._sent_records:]
        else:
            text = self.text.text
            release = self.stops.releasable(text)
            end = self.base_offset + release
            new_records = []
            i = self._sent_records
            while i < len(self.records) and self.records[i].offset < end:
                new_records.append(self.records[i])
                i += 1
        delta_text = text[self._sent_chars:release]
        if not delta_text and not new_records and not self.finished:
            return None
        self._sent_chars = max(self._sent_chars, release)
        self._sent_records += len(new_records)
        return Delta(delta_text, new_records, self.finish_reason)
