"""engine/stops.py on made-up text: where a stop string is found, and how much text may be streamed while a stop
string could still complete (SPEC.md, Streaming: "Text that might still become a stop string ... held back")."""
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.stops import StopMatcher


def release_point(text: str, stops) -> int:
    """Independent definition: the first index i from which text[i:] is a proper prefix of some stop string
    (a stop could still start there), or len(text). Everything before it may be streamed."""
    for i in range(len(text)):
        if any(len(text) - i < len(s) and s.startswith(text[i:]) for s in stops):
            return i
    return len(text)


def test_nothing_is_held_without_stops_or_partial_matches():
    assert StopMatcher(()).releasable("any text") == 8
    assert StopMatcher(("abc",)).releasable("") == 0
    assert StopMatcher(("abc",)).releasable("xyz") == 3
    assert StopMatcher(("abc",)).releasable("xabd") == 4  # "ab" was followed by "d": no longer a stop's start


def test_the_longest_proper_prefix_at_the_end_is_held():
    m = StopMatcher(("abc",))
    assert m.releasable("xa") == 1
    assert m.releasable("xab") == 1
    assert m.releasable("ab") == 0
    assert m.releasable("xaa") == 2  # the first "a" cannot start "abc" (an "a" follows it, not "b")
    assert StopMatcher(("abab",)).releasable("zaba") == 1  # "aba": the stop may still complete with "b"
    assert StopMatcher(("aab",)).releasable("xaaa") == 2  # "aa" held; "xaaab" would stop at index 2
    assert StopMatcher(("\n",)).releasable("line\n") == 5  # a one-character stop has no proper prefix


def test_several_stops_hold_the_longest_prefix_of_any():
    m = StopMatcher(("abc", "bx", "c"))
    assert m.releasable("zab") == 1  # "ab" of "abc" beats "b" of "bx"
    assert m.releasable("zb") == 1
    assert m.releasable("zc") == 2  # "c" is a whole stop (check() reports it), not a prefix to wait for


def test_unicode_stops_count_characters():
    assert StopMatcher(("é!",)).releasable("café") == 3
    assert StopMatcher(("日本語",)).releasable("こんにちは日本") == 5


def test_check_finds_the_earliest_stop_among_new_characters():
    m = StopMatcher(("bcd", "abcd", "zz"))
    assert m.check("xabc", 1) is None
    assert m.check("xabcd", 1) == 1  # "abcd" and "bcd" both end here: the earliest start wins
    assert m.check("zzabcd", 1) == 2  # "zz" ended before the new character: reported earlier, not again
    assert StopMatcher(("ab",)).check("xxab", 2) == 2
    assert StopMatcher(()).check("abc", 3) is None


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="abé\n", max_size=12),
       stops=st.lists(st.text(alphabet="abé\n", min_size=1, max_size=4), min_size=1, max_size=4))
def test_releasable_matches_the_definition(text, stops):
    assert StopMatcher(tuple(stops)).releasable(text) == release_point(text, stops)


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="ab\n", max_size=10), more=st.text(alphabet="ab\n", max_size=6),
       stops=st.lists(st.text(alphabet="ab\n", min_size=1, max_size=4), min_size=1, max_size=4))
def test_released_text_never_becomes_part_of_a_stop(text, more, stops):
    """Whatever is generated next, a stop string that appears later starts at or after the release point."""
    m = StopMatcher(tuple(stops))
    if any(s in text for s in stops):
        return  # the choice would have stopped already
    released = m.releasable(text)
    whole = text + more
    for s in stops:
        i = whole.find(s)
        if i >= 0:
            assert i >= released
