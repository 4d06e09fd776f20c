"""`--ray-output-dir`: OUTPUT is a directory of parts, one per block, each written by the replica that answered
the block (on its own node: for outputs larger than one machine's disk, or a shared filesystem). A part is
written to a temporary name, fsynced and renamed, so a part that exists is whole; --resume skips the blocks
whose part exists. `cat OUTPUT/part-*.jsonl` is the file a single-OUTPUT run writes."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import CompletionError

MANIFEST = "job.json"


def part_name(first_line: int) -> str:
    return f"part-{first_line:012d}.jsonl"


def write_part(directory: str, first_line: int, data: bytes) -> None:
    final = Path(directory) / part_name(first_line)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)


def open_parts(directory: str, input_path: Path, block_lines: int, resume: bool, overwrite: bool) -> tuple[int, set]:
    """Check or set up the directory; return the block size to use and the first lines of the parts done."""
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise CompletionError(f"{d} is not a directory", param="output")
    d.mkdir(parents=True, exist_ok=True)
    ours = sorted(p for p in d.iterdir() if p.name.startswith("part-") or p.name == MANIFEST)
    if ours and not (resume or overwrite):
        raise CompletionError(f"{d} already holds a job's parts: --resume to continue it, --overwrite to start "
                              f"again", param="output")
    if resume and overwrite:
        raise CompletionError("--resume and --overwrite exclude each other", param="resume")
    manifest = {"input": str(input_path.resolve()), "input_bytes": input_path.stat().st_size,
                "block_lines": block_lines}
    if overwrite:
        for p in ours:
            p.unlink()
    elif resume and (d / MANIFEST).exists():
        before = json.loads((d / MANIFEST).read_text())
        if before["input_bytes"] != manifest["input_bytes"]:
            raise CompletionError(f"{d} holds parts of another INPUT ({before['input']}, {before['input_bytes']} "
                                  f"bytes)", param="resume")
        block_lines = manifest["block_lines"] = before["block_lines"]  # the same blocks as the first run
    (d / MANIFEST).write_text(json.dumps(manifest) + "\n")
    done = {int(p.name[5:17]) for p in d.glob("part-*.jsonl")}
    return block_lines, done


def open_parts_job(input_path: str, directory: str, block_lines: int, resume: bool, overwrite: bool):
    """The JobFiles of a --ray-output-dir job: every block of INPUT whose part is not there yet."""
    from ..batch.job import JobFiles
    from ..batch.scan import scan

    inp = Path(input_path)
    if not inp.is_file():
        raise CompletionError(f"{inp} is not a file", param="input")
    block_lines, done = open_parts(directory, inp, block_lines, resume, overwrite)
    found = scan(inp, iter(()), 0, block_lines)
    sizes = [block_lines] * len(found.blocks)
    if sizes:
        sizes[-1] = found.lines - block_lines * (len(sizes) - 1)
    done_lines = sum(n for b, n in zip(found.blocks, sizes) if b[0] in done)
    found.blocks = [b for b in found.blocks if b[0] not in done]
    return JobFiles(inp, Path(directory), done_lines, found)
