"""`sampling-engine batch INPUT OUTPUT` on this machine: the file job around run_batch (check, resume, append,
progress)."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import CompletionError
from . import output
from .lines import encode
from .progress import Progress
from .runner import run_batch
from .scan import InputScan, numbered_lines, scan


@dataclass
class JobFiles:
    input: Path
    output: Path
    done: int  # output lines already there (after --resume's repair)
    scan: InputScan


def open_job(input_path: str, output_path: str, resume: bool, overwrite: bool, block_lines: int = 0) -> JobFiles:
    """Every check before any work: files, duplicates, a resumed OUTPUT that matches INPUT."""
    inp, out = Path(input_path), Path(output_path)
    if not inp.is_file():
        raise CompletionError(f"{inp} is not a file", param="input")
    if out.exists() and out.resolve() == inp.resolve():
        raise CompletionError("OUTPUT is INPUT: give another file", param="output")
    output.check_start(out, resume, overwrite)
    done = output.repair(out) if resume else 0
    found = scan(inp, output.custom_ids(out) if done else iter(()), done, block_lines)
    return JobFiles(inp, out, done, found)


def run_local(engine, files: JobFiles, stable_ids: bool, quiet: bool, window: int | None = None) -> int:
    """Exit code: 0 when every line is answered, 1 when the engine failed (what was written stays)."""
    lines = (raw for _, _, raw in numbered_lines(files.input, files.scan.skip_bytes, first_line=files.scan.skip_line))
    progress = Progress(files.scan.lines, files.done, quiet)
    try:
        with output.Appender(files.output) as sink:
            for out in run_batch(engine, lines, stable_ids=stable_ids, window=window,
                                 first_line=files.scan.skip_line, check_duplicates=False):
                sink.write(encode(out))
                progress.add(out)
    except RuntimeError as e:  # llama.cpp failed: what was written is good, --resume continues it
        progress.close()
        print(f"error: the engine failed: {e}; {files.done + progress.tally.lines} lines are in {files.output} "
              f"(--resume continues)", file=sys.stderr)
        return 1
    progress.close()
    print(progress.tally.summary(files.done), file=sys.stderr)
    return 0
