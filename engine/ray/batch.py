"""`sampling-engine batch INPUT OUTPUT --ray [ADDRESS] --replicas N`: the batch job on Ray Data.

The driver's input pass (duplicates, resume, counting) cuts the lines not yet answered into blocks of
`--block-lines`. Ray Data carries the blocks, in order, through an actor pool of N replicas (one Engine each);
a replica reads its block's lines from INPUT and runs them through engine.batch.run_batch, so each output line
is the bytes the local run writes. A block comes back as its bytes and its Tally (one column per count). The
driver appends the blocks to OUTPUT as they come back, in input order (Ray Data's preserve_order), so --resume
works as it does locally. A replica that dies (ray.kill, SIGKILL) is
restarted by Ray and its block runs again: seeded requests give the same bytes the second time.
"""
from __future__ import annotations

import os
import sys
from contextlib import nullcontext

from ..batch import output
from ..batch.job import JobFiles
from ..batch.progress import Progress, Tally


class _NoSink:
    def write(self, data: bytes) -> None:
        assert not data


class BatchReplica:
    """A Ray Data actor: one Engine, loaded once, answering whole blocks."""

    def __init__(self, input_path: str, model: str | None, engine_kw: dict, stable_ids: bool,
                 window: int | None, parts_dir: str | None = None):
        from engine.api import Engine

        self.input_path, self.parts_dir = input_path, parts_dir
        self.engine = Engine(model, **engine_kw)
        self.stable_ids, self.window = stable_ids, window

    def __call__(self, batch: dict) -> dict:
        from pathlib import Path

        from engine.batch import run_batch
        from engine.batch.lines import encode
        from engine.batch.scan import numbered_lines

        texts, counts = [], {name: [] for name in Tally.COUNTS}
        for first, start, end in zip(batch["first_line"], batch["start"], batch["end"]):
            lines = (raw for _, _, raw in numbered_lines(Path(self.input_path), int(start), int(end), int(first)))
            tally, chunks = Tally(), []
            for out in run_batch(self.engine, lines, stable_ids=self.stable_ids, window=self.window,
                                 first_line=int(first), check_duplicates=False):
                chunks.append(encode(out))
                tally.add(out)
            data = b"".join(chunks)
            if self.parts_dir is not None:
                from engine.ray.parts import write_part

                write_part(self.parts_dir, int(first), data)
                data = b""
            texts.append(data)
            for name, value in tally.to_row().items():
                counts[name].append(value)
        return {"first_line": batch["first_line"], "text": texts, **counts}


def _dataset(ray, files: JobFiles, model, engine_kw: dict, replicas: int, stable_ids: bool, window, parts_dir):
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # blocks come back in input order
    ctx.enable_progress_bars = False  # ours is on stderr already
    blocks = [{"first_line": f, "start": s, "end": e} for f, s, e in files.scan.blocks]
    ds = ray.data.from_items(blocks, override_num_blocks=max(1, len(blocks)))
    actor_resources = {"num_cpus": engine_kw.get("n_threads") or 1}
    if engine_kw.get("n_gpu_layers"):
        actor_resources["num_gpus"] = 1
    return ds.map_batches(
        BatchReplica, batch_size=1, concurrency=replicas,
        fn_constructor_args=(str(files.input.resolve()), model, engine_kw, stable_ids, window,
                             None if parts_dir is None else str(parts_dir)),
        # A replica that dies is started again and its block re-run: Ray Data's actors default to
        # max_restarts=-1 and max_task_retries=-1 (tests/ray/test_ray_batch.py kills one).
        **actor_resources)


def run_ray(files: JobFiles, model, engine_kw: dict, address: str | None, replicas: int, stable_ids: bool,
            quiet: bool, window: int | None = None, parts_dir: str | None = None) -> int:
    import ray

    from .cluster import connect

    progress = Progress(files.scan.lines, files.done, quiet)
    # A local cluster gets room for every replica asked for (oversubscribing the cores is the user's choice);
    # otherwise a fixed pool that does not fit would wait for CPUs forever.
    local_kw = {} if address is not None else {
        "num_cpus": max(os.cpu_count() or 1, replicas * (engine_kw.get("n_threads") or 1))}
    with connect(address, **local_kw) as cluster:
        if not quiet:
            where = "a local loopback Ray (token auth)" if cluster.started else f"Ray at {cluster.address}"
            print(f"batch: {len(files.scan.blocks)} blocks on {replicas} replicas, {where}", file=sys.stderr)
        ds = _dataset(ray, files, model, engine_kw, replicas, stable_ids, window, parts_dir)
        t = progress.tally
        with (output.Appender(files.output) if parts_dir is None else nullcontext(_NoSink())) as sink:
            for row in ds.iter_rows():
                sink.write(row["text"])
                block = Tally.from_row(row)
                t.merge(block)
                progress.bar.update(block.lines)
    progress.close()
    print(t.summary(files.done), file=sys.stderr)
    return 0
