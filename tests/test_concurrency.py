"""The engine loop under concurrent callers: threads and asyncio tasks share decode steps and each gets the
bytes it would get alone; the step log shows how steps were composed; cancellation at every point frees the
request's sequences; a full queue is refused at once."""
import asyncio
import threading
import time

import pytest

from engine import CompletionError, Engine
from tests.conftest import assert_no_sequences

MIXED = [
    dict(prompt="Once upon a time", max_tokens=16, temperature=1.0, top_p=0.9, seed=1),
    dict(prompt="The capital of France is", max_tokens=12, temperature=0.8, seed=2, n=2, logprobs=2),
    dict(prompt="def add(a, b):", max_tokens=10, temperature=1.0, seed=3, best_of=3, n=2),
    dict(prompt="Paris is the capital of France.", echo=True, logprobs=1, max_tokens=0),
    dict(prompt="1, 2, 3,", max_tokens=20, temperature=0, stop=[" 7", "\n"]),
    dict(prompt="In a galaxy far away", max_tokens=14, temperature=1.2, seed=6, stream=True, logprobs=1,
         stream_options={"include_usage": True}),
    dict(prompt=["Apples are", "The ocean is"], n=2, max_tokens=8, temperature=1.0, seed=7,
         frequency_penalty=0.5, presence_penalty=0.3),
    dict(prompt="Hello, my name is", max_tokens=12, temperature=0.7, seed=8, stream=True, echo=True, n=2),
    dict(prompt="The weather today", max_tokens=10, temperature=1.0, seed=9, logit_bias={"13": -100}),
    dict(prompt="Numbers: 4, 8, 15,", max_tokens=9, temperature=0, logprobs=3, echo=True),
]


def steps_since(engine, before: list) -> list:
    """The step records after the snapshot `before`: the log keeps only the most recent steps, so a count would
    point past the end once the session has run enough steps; records are matched by identity instead."""
    log = engine.step_log()
    if not before:
        return log
    last = before[-1]
    at = [i for i, r in enumerate(log) if r is last]
    return log[at[-1] + 1:] if at else log


def strip(r):
    if isinstance(r, list):
        return [strip(c) for c in r]
    return {k: v for k, v in r.items() if k not in ("id", "created")}


def run(engine, request):
    result = engine.create_completion(**request)
    return strip(list(result) if request.get("stream") else result)


async def arun(engine, request):
    result = await engine.acreate_completion(**request)
    if request.get("stream"):
        return strip([chunk async for chunk in result])
    return strip(result)


@pytest.fixture(scope="module")
def alone(engine):
    return [run(engine, r) for r in MIXED]


def test_threads_started_together_get_what_each_gets_alone(engine, alone):
    results = [None] * len(MIXED)
    start = threading.Barrier(len(MIXED))

    def worker(i):
        start.wait()
        results[i] = run(engine, MIXED[i])
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(MIXED))]
    before = engine.step_log()
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert results == alone
    shared = [s for s in steps_since(engine, before) if len({job for job, _ in s.decode}) > 1]
    assert shared, "concurrent requests never shared a decode step"
    assert_no_sequences(engine)


def test_asyncio_tasks_started_together_get_what_each_gets_alone(engine, alone):
    async def main():
        return await asyncio.gather(*(arun(engine, r) for r in MIXED))
    assert asyncio.run(main()) == alone
    assert_no_sequences(engine)


def test_step_log_every_running_sequence_advances_within_the_budget(engine):
    """A request that arrives while others run joins at the next step, no step exceeds the token budget, and a
    decoding sequence is in every step from its first token to its last."""
    long = dict(prompt="Once upon a time", max_tokens=40, temperature=1.0, seed=11, logit_bias={"2": -100})
    late = dict(prompt="The capital of France is " * 30, max_tokens=5, temperature=1.0, seed=12)
    before = engine.step_log()
    stream = engine.create_completion(stream=True, **long)
    next(stream)
    next(stream)  # the long request is decoding now
    late_result = engine.create_completion(**late)
    rest = list(stream)
    assert late_result["usage"]["completion_tokens"] == 5 and rest
    log = steps_since(engine, before)
    budget = engine.loop.scheduler.step_tokens
    assert all(0 < s.n_tokens <= budget for s in log)
    by_sequence: dict[tuple[int, int], list[int]] = {}
    for i, s in enumerate(log):
        for job_seq in s.decode:
            by_sequence.setdefault(job_seq, []).append(i)
    assert len(by_sequence) == 2
    for (job, seq), steps in by_sequence.items():
        assert steps == list(range(steps[0], steps[0] + len(steps))), f"request {job} skipped a step"
    late_id = max(job for job, _ in by_sequence)
    admitted = next(i for i, s in enumerate(log) if late_id in s.admitted)
    assert log[admitted].decode, "the late request waited for the running one instead of joining it"
    assert any(job == late_id for job, _, _ in log[admitted].prefill)


@pytest.fixture(scope="module")
def small(model_path):
    """Two slots, a queue of two, 16-token steps: prompts take many steps, requests wait for slots."""
    e = Engine("smollm2-135m", n_ctx=512, n_seq_max=2, max_queue=2, step_tokens=16)
    yield e
    e.close()


PROBE = dict(prompt="The capital of France is", max_tokens=8, temperature=1.0, seed=5, logprobs=2, n=2)


@pytest.fixture(scope="module")
def probe(small):
    return run(small, PROBE)


def _after_cancel(engine, probe):
    assert_no_sequences(engine)
    assert run(engine, PROBE) == probe  # the prefix cache stayed valid


def test_chunked_prefill_keeps_each_step_within_budget_and_equals_one_shot(small, engine):
    prompt = "Item 1: the red box. " * 20
    req = dict(prompt=prompt, max_tokens=6, temperature=1.0, seed=3, logprobs=1)
    before = small.step_log()
    chunked = run(small, req)
    steps = steps_since(small, before)
    assert max(s.n_tokens for s in steps) <= 16
    assert sum(n for s in steps for _, _, n in s.prefill) == len(small.model.tokenize(prompt))
    assert chunked["choices"] == run(engine, req)["choices"]


def test_cancel_while_queued(small, probe):
    blocker = small.create_completion(prompt="Once upon a time", max_tokens=60, n=2, seed=1, stream=True)
    next(blocker)  # both slots busy
    queued = small.create_completion(prompt="Hello", max_tokens=5, stream=True)
    queued.close()
    blocker.close()
    _after_cancel(small, probe)


def test_cancel_during_prefill(small, probe):
    stream = small.create_completion(prompt="Item 1: the red box. " * 30, max_tokens=5, stream=True, echo=True,
                                     logprobs=1)
    time.sleep(0.05)
    stream.close()
    _after_cancel(small, probe)


def test_cancel_mid_decode_by_closing_the_stream(small, probe):
    stream = small.create_completion(prompt="Once upon a time", max_tokens=50, n=2, seed=2, stream=True)
    for _ in range(4):
        next(stream)
    stream.close()
    _after_cancel(small, probe)


def test_an_unreferenced_stream_is_cancelled(small, probe):
    stream = small.create_completion(prompt="Once upon a time", max_tokens=200, n=2, seed=2, stream=True)
    next(stream)
    del stream
    _after_cancel(small, probe)


def test_cancel_by_cancelling_the_asyncio_task(small, probe):
    async def main():
        task = asyncio.create_task(small.acreate_completion(prompt="Once upon a time", max_tokens=200, seed=3))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        stream = await small.acreate_completion(prompt="Once upon a time", max_tokens=200, seed=3, stream=True)
        await stream.__anext__()
        await stream.aclose()
    asyncio.run(main())
    _after_cancel(small, probe)


def test_full_queue_is_refused_at_once_and_the_engine_still_serves(small, probe):
    blocker = small.create_completion(prompt="Once upon a time", max_tokens=100, n=2, seed=1, stream=True)
    next(blocker)
    waiting = [small.create_completion(prompt="Hi", max_tokens=2, stream=True) for _ in range(2)]
    t0 = time.monotonic()
    with pytest.raises(CompletionError) as err:
        small.create_completion(prompt="Hi", max_tokens=2)
    assert time.monotonic() - t0 < 1.0
    assert err.value.status == 503 and err.value.code == "engine_overloaded"
    blocker.close()
    for w in waiting:
        assert list(w)[-1]["choices"][0]["finish_reason"] == "length"
    _after_cancel(small, probe)


def test_results_do_not_depend_on_the_sampler_thread_count(engine, model_path):
    req = dict(prompt=["Once upon a time", "The capital of France is"], n=4, max_tokens=10, temperature=1.0,
               top_p=0.9, seed=13, logprobs=2)
    with Engine("smollm2-135m", n_ctx=4096, sample_threads=1) as one_thread:
        assert run(one_thread, req) == run(engine, req)


def test_a_prompt_longer_than_a_tiny_context_batch_works(engine):
    """Engine(n_ctx=64): llama.cpp rounds each sequence up to 256 cells; a 100-token prompt is chunked into
    steps instead of raising from Model.decode."""
    prompt = " ".join(str(i) for i in range(60))
    req = dict(prompt=prompt, max_tokens=4, temperature=0, logprobs=1)
    with Engine("smollm2-135m", n_ctx=64) as tiny:
        assert len(tiny.model.tokenize(prompt)) > 100
        assert run(tiny, req)["choices"] == run(engine, req)["choices"]


def test_loop_call_runs_on_the_loop_thread_and_hands_back_result_or_error(engine):
    """Benchmarks drive the model directly through it: every llama_decode then comes from one thread."""
    assert engine.loop.call(lambda: threading.current_thread().name) == "engine-loop"
    with pytest.raises(ZeroDivisionError):
        engine.loop.call(lambda: 1 / 0)
    assert engine.create_completion(prompt="Hi", max_tokens=2, temperature=0)["usage"]["completion_tokens"] == 2
