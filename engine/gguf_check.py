"""Validate a GGUF file's header and tensor bounds before llama.cpp sees it.

llama.cpp's own checks vary by version and a bad file can abort the process; reading the header here
turns "not GGUF" and "truncated" into a clear ModelFileError.
"""
from __future__ import annotations

import struct
from pathlib import Path

from .errors import ModelFileError

# ggml type id -> (elements per block, bytes per block); the same table as gguf-py's GGML_QUANT_SIZES.
GGML_BLOCK_SIZES = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 40),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110),
    22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8),
    29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66), 39: (32, 17), 40: (64, 36), 41: (128, 18),
}
# GGUF metadata value type -> struct format of a scalar (8 = string, 9 = array handled apart).
_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


class _Reader:
    def __init__(self, data: bytes, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise ModelFileError(f"{self.path}: GGUF header is truncated")
        (value,) = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return value

    def string(self) -> bytes:
        n = self.take("Q")
        if self.pos + n > len(self.data):
            raise ModelFileError(f"{self.path}: GGUF header is truncated")
        s = self.data[self.pos:self.pos + n]
        self.pos += n
        return s

    def value(self, vtype: int):
        if vtype == 8:
            return self.string()
        if vtype == 9:
            item_type, count = self.take("I"), self.take("Q")
            return [self.value(item_type) for _ in range(count)]
        if vtype not in _SCALAR:
            raise ModelFileError(f"{self.path}: unknown GGUF metadata type {vtype}")
        return self.take(_SCALAR[vtype])


def check_gguf_file(path: Path, header_limit: int = 64 << 20) -> None:
    """Raise ModelFileError unless `path` is a GGUF file whose tensors all lie inside the file."""
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    size = path.stat().st_size
    with open(path, "rb") as f:
        data = f.read(min(size, header_limit))
    if data[:4] != b"GGUF":
        raise ModelFileError(f"{path} is not a GGUF file (bad magic {data[:4]!r})")
    r = _Reader(data, path)
    r.pos = 4
    version = r.take("I")
    if version not in (2, 3):
        raise ModelFileError(f"{path}: unsupported GGUF version {version}")
    n_tensors, n_kv = r.take("Q"), r.take("Q")
    alignment = 32
    for _ in range(n_kv):
        key = r.string()
        value = r.value(r.take("I"))
        if key == b"general.alignment":
            alignment = int(value)
    end = 0
    for _ in range(n_tensors):
        r.string()
        dims = [r.take("Q") for _ in range(r.take("I"))]
        ggml_type, offset = r.take("I"), r.take("Q")
        block = GGML_BLOCK_SIZES.get(ggml_type)
        if block is not None:
            n_elements = 1
            for d in dims:
                n_elements *= d
            end = max(end, offset + n_elements // block[0] * block[1])
    data_start = (r.pos + alignment - 1) // alignment * alignment
    if data_start + end > size:
        raise ModelFileError(
            f"{path} is truncated: its tensors need {data_start + end} bytes, the file has {size}")
