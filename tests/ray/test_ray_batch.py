"""`batch --ray`: two replicas on the session's local cluster write the file the local run writes, byte for
byte; a replica SIGKILLed mid-job is restarted, its block re-run, and the file is still the same."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from engine.batch import run_batch
from engine.batch.lines import encode
from engine.commands.main import main

from ..batch_inputs import mixed_lines, seeded_lines, write


def _replica_pids() -> list[int]:
    """Ray Data's actor processes (their title names the map operator)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if cmd.startswith("ray::MapWorker") and "BatchReplica" in cmd:
                pids.append(int(d.name))
    return pids


def _batch(ray_cluster, src, out, *extra) -> int:
    return main(["batch", str(src), str(out), "--ray", ray_cluster.address, "--replicas", "2", "--n-threads", "1",
                 "--stable-ids", "--quiet", "--n-ctx", "4096", "--slots", "4", *extra])


def test_two_replicas_write_the_local_file_byte_for_byte(ray_cluster, engine, tmp_path):
    lines = mixed_lines()
    src = write(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"
    assert _batch(ray_cluster, src, out, "--block-lines", "4") == 0
    assert out.read_bytes() == b"".join(encode(o) for o in run_batch(engine, lines, stable_ids=True))


def test_a_replica_killed_mid_job_is_restarted_and_the_file_is_the_same(ray_cluster, engine, tmp_path):
    lines = seeded_lines(24, max_tokens=12)
    src = write(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"
    result = {}
    job = threading.Thread(target=lambda: result.setdefault("rc", _batch(ray_cluster, src, out, "--block-lines",
                                                                           "3")))
    job.start()
    killed = None
    deadline = time.monotonic() + 300
    while killed is None and job.is_alive() and time.monotonic() < deadline:
        pids = _replica_pids()
        if len(pids) == 2 and out.exists() and out.stat().st_size > 0:  # both loaded, a block is written
            killed = pids[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    job.join(600)
    assert killed is not None, "no replica was seen running"
    assert result.get("rc") == 0
    assert out.read_bytes() == b"".join(encode(o) for o in run_batch(engine, lines, stable_ids=True))


def test_resume_on_ray_continues_the_local_file(ray_cluster, engine, tmp_path):
    lines = seeded_lines(10, max_tokens=4)
    src = write(tmp_path / "in.jsonl", lines)
    expected = [encode(o) for o in run_batch(engine, lines, stable_ids=True)]
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"".join(expected[:4]) + expected[4][:7])  # a local run killed mid-line
    assert _batch(ray_cluster, src, out, "--resume", "--block-lines", "4") == 0
    assert out.read_bytes() == b"".join(expected)


def test_output_dir_parts_concatenate_to_the_local_file_and_resume_by_part(ray_cluster, engine, tmp_path):
    lines = seeded_lines(9, max_tokens=3)
    src = write(tmp_path / "in.jsonl", lines)
    parts = tmp_path / "parts"
    assert _batch(ray_cluster, src, parts, "--ray-output-dir", "--block-lines", "4") == 0
    names = sorted(p.name for p in parts.glob("part-*.jsonl"))
    assert names == ["part-000000000001.jsonl", "part-000000000005.jsonl", "part-000000000009.jsonl"]
    expected = b"".join(encode(o) for o in run_batch(engine, lines, stable_ids=True))
    assert b"".join((parts / n).read_bytes() for n in names) == expected
    (parts / names[1]).unlink()  # as if its replica had died before the rename
    assert _batch(ray_cluster, src, parts, "--ray-output-dir", "--block-lines", "4") == 2  # refused: not empty
    assert _batch(ray_cluster, src, parts, "--ray-output-dir", "--resume", "--block-lines", "4") == 0
    assert b"".join((parts / n).read_bytes() for n in names) == expected
