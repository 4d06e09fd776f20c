"""engine/choice.py on made-up token pieces: stream deltas (held-back stop text, unfinished characters, records),
finish reasons, and best_of's ranking key; no model involved."""
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.choice import ChoiceState
from engine.completion import _ranked
from engine.stops import StopMatcher

from .test_stops import release_point

BASE = 5  # characters of a made-up prompt: completion offsets count from here


def new_state(stops=("abc",), max_new=10, keep_records=True):
    return ChoiceState(max_new=max_new, stops=StopMatcher(tuple(stops)), base_offset=BASE, keep_records=keep_records)


def push(state, token, piece=b"", eog=False, logprob=-1.0):
    state.push(token, piece, eog, logprob, None, None)
    return state.take_delta()


def tokens_of(delta):
    return [r.token for r in delta.records]


def test_text_that_may_become_a_stop_waits_until_it_cannot():
    s = new_state()
    d = push(s, 1, b"xa")
    assert (d.text, tokens_of(d), d.finish_reason) == ("x", [1], None)  # "a" may start "abc"
    assert push(s, 2, b"b") is None  # "ab": still held, and token 2 starts inside it
    d = push(s, 3, b"d")
    assert (d.text, tokens_of(d), d.finish_reason) == ("abd", [2, 3], None)
    assert [r.offset for r in d.records] == [BASE + 2, BASE + 3]
    d = push(s, 0, eog=True)  # the end-of-generation token has an entry but no text: it points at the end
    assert (d.text, tokens_of(d), d.finish_reason) == ("", [0], "stop")
    assert d.records[0].offset == BASE + len("xabd") and d.records[0].logprob == -1.0
    assert s.take_delta() is None
    assert s.final_text() == "xabd" and s.n_generated == 4
    assert [r.token for r in s.final_records()] == [1, 2, 3, 0]


def test_end_of_generation_after_held_text_releases_the_text_and_its_entry_together():
    s = new_state()
    assert push(s, 1, b"xa").text == "x"  # "a" may start "abc"
    d = push(s, 0, eog=True)
    assert (d.text, tokens_of(d), d.finish_reason) == ("a", [0], "stop")
    assert d.records[0].offset == BASE + 2


def test_end_of_generation_inside_an_unfinished_character_points_at_the_end_of_the_text():
    s = new_state(stops=())
    push(s, 1, b"a\xc3")
    push(s, 0, eog=True)
    assert s.final_text() == "a" and [r.offset for r in s.final_records()] == [BASE, BASE + 1]


def test_a_stop_completing_across_tokens_is_never_streamed():
    s = new_state()
    assert push(s, 1, b"x").text == "x"
    assert push(s, 2, b"ab") is None
    d = push(s, 3, b"cz")  # "abc" completes inside this token: the text ends before it
    assert (d.text, tokens_of(d), d.finish_reason) == ("", [], "stop")
    assert s.final_text() == "x" and [r.token for r in s.final_records()] == [1]


def test_held_text_is_released_when_the_choice_ends_by_length():
    s = new_state(max_new=2)
    assert push(s, 1, b"xy").text == "xy"
    d = push(s, 2, b"ab")
    assert (d.text, tokens_of(d), d.finish_reason) == ("ab", [2], "length")


def test_bytes_of_an_unfinished_character_wait_and_a_token_inside_one_points_at_it():
    s = new_state(stops=())
    assert push(s, 1, b"\xc3") is None  # half of "é"
    d = push(s, 2, b"\xa9!")
    assert (d.text, tokens_of(d)) == ("é!", [1, 2])
    assert [r.offset for r in d.records] == [BASE, BASE]  # token 2 starts inside "é": it points at it
    assert push(s, 3, b"\xe2\x82") is None  # two bytes of "€": neither text nor the record of a token inside it
    d = push(s, 4, b"\xac")
    assert (d.text, tokens_of(d)) == ("€", [3, 4])
    s2 = new_state(stops=(), max_new=2)
    push(s2, 1, b"a")
    d = push(s2, 2, b"\xe2\x82")  # max_tokens ends inside a character: it is dropped from the text
    assert (d.text, d.finish_reason, s2.final_text()) == ("", "length", "a")


def test_best_of_key_is_the_mean_over_every_sampled_token_end_of_generation_included():
    s = new_state(stops=())
    push(s, 1, b"a", logprob=-1.0)
    push(s, 2, b"b", logprob=-2.0)
    push(s, 0, eog=True, logprob=-6.0)
    assert s.mean_logprob == -3.0 and s.n_generated == 3
    assert new_state().mean_logprob == 0.0  # no token: ranks as 0


def _ranking(means, n, best_of):
    """Candidate numbers in the order completion._ranked returns their states."""
    states = [SimpleNamespace(mean_logprob=m, candidate=j) for j, m in enumerate(means)]
    work = SimpleNamespace(candidates=[SimpleNamespace(state=s) for s in states])
    return [s.candidate for s in _ranked(SimpleNamespace(n=n, best_of=best_of), work)]


def test_best_of_ranking_is_descending_and_ties_keep_candidate_order():
    means = [-2.0, -1.0, -3.0, -1.0, -1.0, -0.5]
    assert _ranking(means, 4, 6) == [5, 1, 3, 4]
    assert _ranking(means, 2, 6) == [5, 1]  # the cut falls inside the tie: the earlier candidate stays
    assert _ranking([-3.0, -1.0, -2.0], 3, 3) == [0, 1, 2]  # best_of == n: candidate order, no ranking


pieces = st.lists(st.sampled_from([b"a", b"b", b"ab", b"ba", b"x", b"\xc3", b"\xa9", b"\xc3\xa9", b"\n", b"bx"]),
                  min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(pieces=pieces, stops=st.lists(st.text(alphabet="abé\n", min_size=1, max_size=3), max_size=3),
       max_new=st.integers(1, 12), eog_at=st.integers(0, 14))
def test_deltas_hold_back_exactly_and_add_up_to_the_final_choice(pieces, stops, max_new, eog_at):
    """Simulate a choice token by token: after each step the streamed text is exactly what can no longer become
    part of a stop (the independent release_point of the text so far), and the deltas add up to the final text
    and records."""
    s = new_state(stops=stops, max_new=max_new)
    streamed, records, finish = "", [], None
    for i, piece in enumerate(pieces + [b""]):
        eog = i == eog_at or i == len(pieces)
        s.push(i + 1, piece, eog, -1.0, None, None)
        d = s.take_delta()
        if d is not None:
            assert finish is None, "a delta after the finish"
            streamed += d.text
            records += d.records
            finish = d.finish_reason
        if s.finished:
            break
        assert streamed == s.text.text[: release_point(s.text.text, stops)]
    assert finish == s.finish_reason and s.take_delta() is None
    assert streamed == s.final_text()
    assert records == s.final_records()
