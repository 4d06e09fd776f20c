"""Batch jobs: what the file job (reading, JSON, ordering, appending) costs against the same requests made
concurrently in-process; `--ray` with 2 replicas x 1 thread against the local job with 2 threads; peak RSS of the
command at 10k and 100k lines.

Run: BATCH_BENCH_LINES=2000 ./dev bench -k batch -s   (default 64 lines: a 2-core machine makes ~100 tok/s)
The table is printed at the end; nothing gates on an absolute number.
"""
import llama_cpp  # isort: skip  (before numpy)

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine import Engine
from engine.batch.job import open_job, run_local
from engine.registry import load_registry

N_LINES = int(os.environ.get("BATCH_BENCH_LINES", "64"))
N_TOKENS = 128
SLOTS = 8
WINDOW = 2 * SLOTS
THREADS = os.cpu_count() or 1
REPO = Path(__file__).resolve().parents[1]
PROMPTS = ["Once upon a time", "The history of the printing press began",
           "def quicksort(items):\n    ", "Q: What is the boiling point of water?\nA:",
           "Dear hiring manager, I am writing to apply for", "1, 1, 2, 3, 5, 8,"]
ROUNDS = int(os.environ.get("BATCH_BENCH_ROUNDS", "2"))
TABLE: list[tuple[str, str]] = []


def _row(item: tuple[str, str]) -> None:
    name, value = item
    TABLE.append(item)
    print(f"\n| {name} | {value} |", flush=True)  # as it comes: a long run cut short still reports


@pytest.fixture(scope="module")
def engine():
    path = load_registry()[1][load_registry()[0]].path
    with Engine(str(path), n_ctx=2048, n_seq_max=SLOTS, n_threads=THREADS, lazy_slots=False) as e:
        yield e


def _bodies(engine, n: int) -> list[dict]:
    ban = {str(t): -100 for t in engine.model.eog_tokens}  # every line makes exactly N_TOKENS
    return [{"prompt": PROMPTS[i % len(PROMPTS)] * (1 + i % 3), "max_tokens": N_TOKENS, "temperature": 1.0,
             "seed": i, "logit_bias": ban} for i in range(n)]


def _input(tmp: Path, bodies: list[dict]) -> Path:
    src = tmp / "in.jsonl"
    src.write_text("".join(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/completions",
                                       "body": b}) + "\n" for i, b in enumerate(bodies)))
    return src


def _file_job(engine, src: Path, out: Path) -> float:
    t0 = time.perf_counter()
    assert run_local(engine, open_job(str(src), str(out), False, True), stable_ids=False, quiet=True,
                     window=WINDOW) == 0
    return time.perf_counter() - t0


def _in_process(engine, bodies: list[dict], k: int) -> float:
    """The concurrency benchmark's way: k threads, each taking the next request until none is left."""
    it = iter(bodies)
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                body = next(it, None)
            if body is None:
                return
            assert engine.create_completion(**body)["usage"]["completion_tokens"] == N_TOKENS
    threads = [threading.Thread(target=worker) for _ in range(k)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def _load() -> str:
    return os.getloadavg().__repr__()


def test_batch_file_job_vs_in_process_concurrency(benchmark, engine, tmp_path):
    bodies = _bodies(engine, N_LINES)
    src = _input(tmp_path, bodies)
    out = tmp_path / "out.jsonl"

    def run():
        _file_job(engine, _input(tmp_path, bodies[:WINDOW]), out)  # warm-up: both paths, every slot
        job, conc = [], []
        for _ in range(ROUNDS):  # alternated
            job.append(_file_job(engine, src, out))
            conc.append(_in_process(engine, bodies, WINDOW))
        return min(job), min(conc)
    load_before = _load()
    job_s, conc_s = benchmark.pedantic(run, rounds=1, iterations=1)
    tokens = N_LINES * N_TOKENS
    _row((f"batch file job vs {WINDOW} in-process threads, {N_LINES} lines x {N_TOKENS} tokens (T=1): "
                  f"throughput ratio", f"{conc_s / job_s:.3f}x ({tokens / job_s:.1f} vs {tokens / conc_s:.1f} tok/s; "
                                       f"load {load_before} -> {_load()})"))


def _cli(*args: str, env=None) -> tuple[float, str, int]:
    """Wall time, stderr and peak RSS (bytes) of one `sampling-engine batch` process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "engine", "batch", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, err
    return time.perf_counter() - t0, err, usage.ru_maxrss * 1024


@pytest.mark.skipif(os.environ.get("BATCH_BENCH_RAY", "1") == "0", reason="BATCH_BENCH_RAY=0")
def test_ray_two_replicas_one_thread_vs_local_two_threads(benchmark, engine, tmp_path):
    pytest.importorskip("ray")
    src = _input(tmp_path, _bodies(engine, N_LINES))
    out = tmp_path / "out.jsonl"
    common = ["--overwrite", "--quiet", "--stable-ids", "--n-ctx", "2048", "--slots", str(SLOTS)]

    def run():
        local_s, local_err, _ = _cli(str(src), str(out), *common, "--n-threads", "2")
        local_bytes = out.read_bytes()
        ray_s, ray_err, _ = _cli(str(src), str(out), *common, "--n-threads", "1", "--ray", "--replicas", "2",
                                 "--block-lines", "16")
        assert out.read_bytes() == local_bytes
        return local_s, ray_s, local_err.strip().splitlines()[-1], ray_err.strip().splitlines()[-1]
    load_before = _load()
    local_s, ray_s, local_sum, ray_sum = benchmark.pedantic(run, rounds=1, iterations=1)
    _row((f"--ray 2 replicas x 1 thread vs local 2 threads, {N_LINES} lines, whole command (start, load, "
                  f"run): time ratio local/ray", f"{local_s / ray_s:.2f}x ({local_s:.1f} vs {ray_s:.1f} s; load "
                                                 f"{load_before} -> {_load()}; same bytes)"))
    _row(("  local summary", local_sum))
    _row(("  ray summary", ray_sum))


@pytest.mark.parametrize("n", [10_000, 100_000])
def test_peak_rss_on_a_long_cheap_input(benchmark, tmp_path, n):
    """Bodies the engine refuses (temperature 9) and every 100th a 1-token request: the job's own memory."""
    src = tmp_path / "in.jsonl"
    with open(src, "w") as f:
        for i in range(n):
            body = {"prompt": "x", "max_tokens": 1, "seed": i} if i % 100 == 0 else {"prompt": "x", "temperature": 9}
            f.write(json.dumps({"custom_id": f"c{i}", "method": "POST", "url": "/v1/completions", "body": body}))
            f.write("\n")
    out = tmp_path / "out.jsonl"
    wall, err, rss = benchmark.pedantic(lambda: _cli(str(src), str(out), "--overwrite", "--quiet", "--n-ctx", "512"),
                                        rounds=1, iterations=1)
    _row((f"peak RSS of `batch` on {n:,} lines", f"{rss / 2 ** 20:.0f} MiB ({wall:.0f} s, load {_load()})"))


def test_zz_print_table():
    print("\n\n| measurement | result |\n|---|---|")
    for name, value in TABLE:
        print(f"| {name} | {value} |")
    print(f"\n(threads {THREADS}, llama-cpp-python {llama_cpp.__version__})")
