"""Batch jobs: OpenAI's Batch file format for /v1/completions (`lines.py`: parse a line, build an output line,
refuse duplicate custom_ids), run in input order on one engine (`runner.py`: `run_batch`, the public Python
entry, on the core's in-flight window, engine/in_flight.py), as a resumable file job (`job.py`, `scan.py`,
`output.py`, `progress.py`: `sampling-engine batch`), or on a Ray cluster (`engine/ray/batch.py`).

    from engine.batch import run_batch
    for out in run_batch(engine, lines): ...
"""
from .runner import run_batch

__all__ = ["run_batch"]
