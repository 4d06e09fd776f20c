"""Batch jobs: OpenAI's Batch file format for /v1/completions, run in input order on one engine
(`runner.py`, `Engine.run_batch`), as a resumable file job (`job.py`, `sampling-engine batch`), or on a Ray
cluster (`engine/ray/batch.py`)."""
