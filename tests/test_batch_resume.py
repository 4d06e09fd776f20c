"""Batch jobs survive being killed: SIGKILL at random points, --resume each time, and the file equals the one an
uninterrupted run writes; a torn last line is cut off; memory does not grow with the input."""
from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import tracemalloc

from engine.batch import run_batch
from engine.batch.lines import encode
from engine.batch.output import repair

from .batch_inputs import REPO, line, run_cli, seeded_lines, write
from .conftest import assert_no_sequences

N_LINES = 24


def _lines_in(path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _start(src, out):
    return subprocess.Popen([sys.executable, "-m", "engine", "batch", str(src), str(out), "--resume", "--quiet",
                             "--stable-ids", "--slots", "4"], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def test_sigkill_at_three_random_points_then_resume_equals_an_uninterrupted_run(engine, tmp_path):
    lines = seeded_lines(N_LINES, max_tokens=10) + ["not json", line("bad", {"prompt": "x", "temperature": 9})]
    src = write(tmp_path / "in.jsonl", lines)
    expected = b"".join(encode(o) for o in run_batch(engine, lines, stable_ids=True))
    out = tmp_path / "out.jsonl"
    rng = random.Random(20)
    kills = []
    for _ in range(3):
        done = _lines_in(out)
        target = rng.randint(done + 1, min(done + 8, N_LINES - 2))
        proc = _start(src, out)
        deadline = time.monotonic() + 300
        while _lines_in(out) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.kill()  # SIGKILL: no cleanup of any kind
        proc.wait()
        kills.append(_lines_in(out))
        proc.stderr.close()
    assert kills == sorted(kills) and kills[-1] < len(lines), kills  # each run got further, none finished
    r = run_cli(str(src), str(out), "--resume", "--quiet", "--stable-ids", "--slots", "4")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == expected


def test_resume_cuts_a_torn_last_line_and_continues(engine, tmp_path):
    lines = seeded_lines(4, max_tokens=4)
    src = write(tmp_path / "in.jsonl", lines)
    full = [encode(o) for o in run_batch(engine, lines, stable_ids=True)]
    out = tmp_path / "out.jsonl"
    out.write_bytes(full[0] + full[1][:25])  # killed in the middle of writing line 2
    r = run_cli(str(src), str(out), "--resume", "--stable-ids")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == b"".join(full)
    assert "3 lines (1 answered before, skipped)" in r.stderr
    r = run_cli(str(src), str(out), "--resume", "--stable-ids", "--quiet")  # all done: nothing to run, unchanged
    assert r.returncode == 0 and out.read_bytes() == b"".join(full)


def test_repair_keeps_whole_lines_and_refuses_foreign_ones(tmp_path):
    p = tmp_path / "o.jsonl"
    good = json.dumps({"id": "batch_req_1", "custom_id": "a", "response": None, "error": None}).encode() + b"\n"
    p.write_bytes(good + good[:10])
    assert repair(p) == 1 and p.read_bytes() == good
    p.write_bytes(good + b"garbage\n" + good)
    try:
        repair(p)
        raise AssertionError("a foreign line was accepted")
    except Exception as e:
        assert "line 2" in str(e)
    assert p.read_bytes() == good + b"garbage\n" + good


def test_resume_refuses_an_output_from_another_input(tmp_path):
    src = write(tmp_path / "in.jsonl", seeded_lines(3))
    out = tmp_path / "out.jsonl"
    other = json.dumps({"id": "batch_req_1", "custom_id": "zzz", "response": None, "error": None})
    out.write_text(other + "\n")
    r = run_cli(str(src), str(out), "--resume", "--quiet")
    assert r.returncode == 2 and "not from this INPUT" in r.stderr


def test_memory_stays_flat_on_a_long_input(engine):
    """10,000 lines (bodies the engine refuses, and every 100th a 1-token request): what Python holds after
    1,000 lines and after 10,000 is the same, give or take 50 kB. Left out: the engine's bounded log of its last
    512 steps (still filling here) and numba's dispatcher under kernels/ (measured alone: ~370 kB over the first
    ~2,000 kernel calls of a process, then flat)."""
    def lines():
        for i in range(10_000):
            body = {"prompt": "x", "max_tokens": 1, "seed": i} if i % 100 == 0 else {"prompt": "x", "temperature": 9}
            yield json.dumps({"custom_id": f"c{i}", "method": "POST", "url": "/v1/completions", "body": body})

    not_the_step_log = [tracemalloc.Filter(False, "*/engine/scheduler.py"), tracemalloc.Filter(False, "*/kernels/*"),
                        tracemalloc.Filter(False, "*/tracemalloc.py")]
    tracemalloc.start()
    try:
        held = {}
        for i, out in enumerate(run_batch(engine, lines(), check_duplicates=False), 1):
            assert out["custom_id"] == f"c{i - 1}"
            if i in (1_000, 10_000):
                held[i] = tracemalloc.take_snapshot().filter_traces(not_the_step_log)
    finally:
        tracemalloc.stop()
    growth = held[10_000].compare_to(held[1_000], "lineno")
    total = sum(d.size_diff for d in growth)
    assert total < 50_000, [str(d) for d in growth[:8]]
    assert_no_sequences(engine)
