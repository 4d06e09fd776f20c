"""Stop strings over a growing text: earliest match wins; text that may still become a stop is held back."""
from __future__ import annotations


class StopMatcher:
    """A pure state machine over the completion text (the caller passes the whole text so far).

    `check(text, n_new)` returns the index where the earliest stop string starts if one has appeared
    (the text is to be cut there), else None. `releasable(text)` says how many leading characters can no
    longer become part of a stop string.
    """

    def __init__(self, stops: tuple[str, ...]):
        self.stops = stops
        self.longest = max((len(s) for s in stops), default=0)

    def check(self, text: str, n_new: int) -> int | None:
        if not self.stops or n_new == 0:
            return None
        # A match that appears now must end inside the new characters.
        window_start = max(0, len(text) - n_new - self.longest + 1)
        found = [i for s in self.stops if (i := text.find(s, window_start)) >= 0]
        return min(found) if found else None

    def releasable(self, text: str) -> int:
        held = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(text)), held, -1):  # longest proper prefix of s ending text
                if text.endswith(s[:k]):
                    held = k
                    break
        return len(text) - held
