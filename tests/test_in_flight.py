"""engine/in_flight.py on the real model: answers in input order, at most `window` requests running and
BUFFER x window answers waiting, a full queue retried, and a consumer that stops early leaves nothing running."""
from __future__ import annotations

import pytest

from engine.errors import CompletionError
from engine.in_flight import BUFFER, Ready, Request, in_order

from .conftest import assert_no_sequences

SLOW = {"prompt": "Once upon a time", "max_tokens": 40, "seed": 1, "logit_bias": {str(t): -100 for t in (0, 1, 2)}}


def fast(i: int) -> dict:
    return {"prompt": f"{i}", "max_tokens": 1, "seed": i}


class Watched:
    """The engine's public seam, watched: every submission, how many of them ran at once, and (optionally) a
    full queue for the first `overloaded` submissions."""

    def __init__(self, engine, overloaded: int = 0):
        self.engine, self.overloaded = engine, overloaded
        self.n_seq_max = engine.n_seq_max
        self.submissions, self.most_running, self.refusals = [], 0, 0

    def submit(self, request, on_change=None):
        if self.refusals < self.overloaded:
            self.refusals += 1
            raise CompletionError("the queue is full", code="engine_overloaded", status=503)
        running = sum(1 for s in self.submissions if not s.finished)
        self.most_running = max(self.most_running, running + 1)
        s = self.engine.submit(request, on_change)
        self.submissions.append(s)
        return s


def _run(engine, entries, window=None):
    return in_order(engine, entries, answer=lambda tag, r: (tag, r["usage"]["completion_tokens"]),
                    refuse=lambda tag, e: (tag, e.param), window=window)


def test_answers_come_in_input_order_with_ready_answers_in_place(engine):
    watched = Watched(engine)
    entries = [Request(SLOW, "slow"), Ready(("ready", None))]
    entries += [Request(fast(i), f"fast-{i}") for i in range(5)]
    entries += [Request({"prompt": "x", "temperature": 9}, "bad"), Request({"prompt": "x", "stream": True}, "streams")]
    out = list(_run(watched, entries, window=8))
    assert out == [("slow", 40), ("ready", None)] + [(f"fast-{i}", 1) for i in range(5)] + \
        [("bad", "temperature"), ("streams", "stream")]
    assert len(watched.submissions) == 6  # the refused bodies never reached the loop
    assert_no_sequences(engine)


def test_at_most_window_requests_run_and_buffer_x_window_wait(engine):
    watched = Watched(engine)
    entries = [Request(SLOW, "slow")] + [Request(fast(i), i) for i in range(3 * BUFFER * 2)]
    taken, most_waiting = 0, 0
    gen = _run(watched, iter(entries), window=2)
    for _ in gen:
        taken += 1
        most_waiting = max(most_waiting, len(watched.submissions) - taken)
    assert taken == len(entries) and watched.most_running <= 2
    assert most_waiting <= BUFFER * 2 + 1
    assert_no_sequences(engine)


def test_the_default_window_is_two_requests_per_slot(engine):
    watched = Watched(engine)
    entries = [Request(dict(fast(i), max_tokens=4), i) for i in range(4 * engine.n_seq_max)]
    assert len(list(_run(watched, entries))) == len(entries)
    # the first 8 are queued long before any finishes (4 steps at least), and no ninth until one does
    assert watched.most_running == 2 * engine.n_seq_max


def test_a_full_queue_is_retried_not_answered(engine):
    watched = Watched(engine, overloaded=3)
    assert list(_run(watched, [Request(fast(1), "a"), Request(fast(2), "b")])) == [("a", 1), ("b", 1)]
    assert watched.refusals == 3


def test_a_consumer_that_stops_early_cancels_what_still_runs(engine):
    watched = Watched(engine)
    gen = _run(watched, [Request(fast(0), 0)] + [Request(dict(SLOW, seed=i), i) for i in range(1, 8)], window=4)
    assert next(gen) == (0, 1)
    assert any(not s.finished for s in watched.submissions)
    gen.close()
    assert_no_sequences(engine)  # cancelled: gone at the loop's next step
    assert all(s.finished for s in watched.submissions)


def test_an_error_reading_the_entries_cancels_too(engine):
    watched = Watched(engine)

    def entries():
        yield from (Request(dict(SLOW, seed=i), i) for i in range(3))
        raise ValueError("the input broke")

    with pytest.raises(ValueError):
        list(_run(watched, entries()))
    assert_no_sequences(engine)
    assert len(watched.submissions) == 3 and all(s.finished for s in watched.submissions)


def test_a_window_below_one_is_refused(engine):
    with pytest.raises(CompletionError) as e:
        next(_run(engine, [], window=-1))
    assert e.value.param == "window"
