"""The pool of KV sequences ("slots"): each holds the KV cells of the tokens it last evaluated, so a new
prompt can start after the longest prefix some free slot already holds (llama.cpp server's slot choice).

Every sequence has a KV stream of its own, so reusing cells gives the same logits, bit for bit, as
evaluating the prefix again. llama.cpp attends over the whole range of streams between the lowest and the
highest sequence id in a batch (sequences 0 and 7 cost as much attention as 0..7: measured 2.63 s against
1.94 s for 128 steps of two sequences), so slots are handed out lowest id first to keep the range tight.
Only the loop thread calls into this.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .model import Model

MIN_REUSE = 8  # tokens: a shorter cached prefix is reused only when it is the whole prompt but its last token


@dataclass(eq=False)
class Slot:
    seq: int
    tokens: list[int] = field(default_factory=list)  # tokens whose KV cells the sequence holds, positions 0..
    busy: bool = False


def common_prefix(a, b) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class SlotPool:
    def __init__(self, model: Model, prefix_cache: bool = True):
        self.model = model
        self.prefix_cache = prefix_cache
        self.slots = [Slot(seq) for seq in range(model.n_seq_max)]
        # Prompt tokens admitted, and those of them whose KV cells a slot already held (not evaluated again):
        # their ratio is the prefix cache's hit rate (GET /metrics; the Ray Serve router's figure of merit).
        self.prompt_tokens = 0
        self.prompt_tokens_cached = 0

    def grow(self, n: int) -> None:
        """More sequences: the context is re-created (all free now), so every cached prefix is lost."""
        assert not any(s.busy for s in self.slots)
        self.model.set_sequences(n)
        self.slots = [Slot(seq) for seq in range(n)]

    def n_free(self) -> int:
        return sum(not s.busy for s in self.slots)

    def take(self, prompt: tuple[int, ...], count: int, reuse: bool = True) -> tuple[list[Slot], int]:
        """Claim `count` free slots for one prompt: the first gets the longest cached common prefix worth
        reusing (lowest sequence id on ties), the others the lowest free sequence ids. Returns (slots, tokens
        already held by the first); at least the prompt's last token is left to evaluate, for its logits row."""
        free = [s for s in self.slots if not s.busy]
        assert len(free) >= count
        for s in free:  # someone used the model directly: the cells no longer match what we recorded
            if self.model.seq_pos_max(s.seq) != len(s.tokens) - 1:
                self._clear(s)

        def reusable(s: Slot) -> int:
            if not (self.prefix_cache and reuse):
                return 0
            n = common_prefix(s.tokens, prompt)
            # a short shared start (a BOS token, a few words) saves less than a wider stream range costs
            return n if n >= min(MIN_REUSE, len(prompt) - 1) else 0
        first = max(free, key=lambda s: (reusable(s), -s.seq))
        start = min(reusable(first), len(prompt) - 1)
        others = sorted((s for s in free if s is not first), key=lambda s: s.seq)[: count - 1]
        self.model.seq_remove(first.seq, start, -1)
        del first.tokens[start:]
        for s in others:
            self._clear(s)
        chosen = [first, *others]
        for s in chosen:
            s.busy = True
        self.prompt_tokens += len(prompt)
        self.prompt_tokens_cached += start
        return chosen, start

    def copy_prompt(self, src: Slot, dst: Slot) -> None:
        """A sibling candidate starts from the prompt its first candidate evaluated."""
        self.model.seq_copy(src.seq, dst.seq)
        dst.tokens = list(src.tokens)

    def release(self, slot: Slot) -> None:
        """The slot is free again; its cells stay as a prefix cache (cleared when the cache is off)."""
        slot.busy = False
        if not self.prefix_cache:
            self._clear(slot)

    def drop(self, slot: Slot) -> None:
        """Free the slot and forget its cells (after an error left them in an unknown state)."""
        self._clear(slot)
        self.release(slot)

    def reset(self) -> None:
        """Forget every free slot's cached prefix."""
        for s in self.slots:
            if not s.busy:
                self._clear(s)

    def _clear(self, slot: Slot) -> None:
        self.model.seq_remove(slot.seq)
        slot.tokens = []

    def usage(self) -> list[dict]:
        return [{"seq": s.seq, "busy": s.busy, "cached_tokens": len(s.tokens)} for s in self.slots]
