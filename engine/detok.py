"""Incremental, UTF-8-safe detokenization: bytes per token in, complete characters out."""
from __future__ import annotations

import codecs


class IncrementalText:
    """Feeds token bytes; keeps the completed text and the character offset at which each token starts.

    A token's offset is the number of complete characters before its first byte, so a token that starts
    inside a multi-byte character points at that character. Bytes of an unfinished character stay
    buffered until the character completes (they never reach `text`).
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._parts: list[str] = []
        self.n_chars = 0
        self._text_cache: str | None = ""

    def push(self, piece: bytes) -> tuple[int, str]:
        """Add one token's bytes; return (offset of the token, newly completed characters)."""
        offset = self.n_chars
        new = self._decoder.decode(piece)
        if new:
            self._parts.append(new)
            self.n_chars += len(new)
            self._text_cache = None
        return offset, new

    @property
    def text(self) -> str:
        if self._text_cache is None:
            self._text_cache = "".join(self._parts)
            self._parts = [self._text_cache]
        return self._text_cache


def token_offsets(pieces: list[bytes]) -> tuple[list[int], str]:
    """Character offsets of each piece in their concatenation, and the complete text (whole input)."""
    inc = IncrementalText()
    offsets = [inc.push(p)[0] for p in pieces]
    return offsets, inc.text
