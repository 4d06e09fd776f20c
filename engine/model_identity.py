"""A model file's identity for the fingerprint: its content, not its name or path."""
from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from .locations import user_cache_dir
from .registry import load_registry

_hash_lock = threading.Lock()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_identity(path: Path) -> str:
    """A registry model's published sha256; any other file's content hash, computed once and cached by
    (path, size, mtime) in the user cache (a 300 MB GGUF takes about a second to hash)."""
    stat = path.stat()
    entry = next((e for e in load_registry()[1].values() if e.file == path.name and e.size == stat.st_size), None)
    if entry:
        return entry.sha256
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    cache = user_cache_dir() / "file-hashes.json"
    with _hash_lock:
        try:
            known = json.loads(cache.read_text())
        except (OSError, ValueError):
            known = {}
        if key not in known:
            known[key] = _sha256_file(path)
            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(known))
                tmp.replace(cache)
            except OSError:
                pass  # a read-only cache only costs the hash again next time
        return known[key]
