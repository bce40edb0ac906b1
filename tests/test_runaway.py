"""Runaway output and retry timing: pure functions, no server."""

import email.utils
import random

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from lightocr_ingest.ocr.retry import RetryPolicy, parse_retry_after
from lightocr_ingest.ocr.runaway import (MIN_LOOP_CHARS, MIN_REPEATS, STOP_LOOP_MIN_CHARS, STOP_LOOP_SHARE, Verdict,
                                         best_of, content_chars, find_repetition, judge, trim_repetition)
from lightocr_ingest.testing import lightonocr_style_page, looping

PAGE = lightonocr_style_page("a page")


def test_a_page_that_loops_until_max_tokens_is_trimmed_to_one_copy():
    unit = "| 0.00 | 0.00 | 0.00 |\n"
    answer = looping(PAGE, unit=unit, repeats=300)
    verdict = judge(answer, "length")
    assert verdict.problem == "loop"
    assert verdict.repetition.period == len(unit)
    assert verdict.text.startswith(PAGE[: len(PAGE) // 2].rstrip())
    assert verdict.text.count("0.00 | 0.00") <= 2  # one copy of the unit (plus the boundary)
    assert len(verdict.text) < len(PAGE)


def test_a_loop_the_model_broke_out_of_keeps_what_follows():
    answer = "# Title\n\nIntro text.\n\n" + "the same line again\n" * 200 + "\n\nConclusion after the loop."
    verdict = judge(answer, "stop")
    assert verdict.problem == "loop"
    assert verdict.text.startswith("# Title\n\nIntro text.") and verdict.text.endswith("Conclusion after the loop.")
    assert verdict.text.count("the same line again") == 1


def test_only_exclamation_marks_or_nothing_is_empty():
    assert judge("!" * 4000, "stop").problem == "empty"
    assert judge("", "stop").problem == "empty"
    assert judge(None, None).problem == "empty"
    assert judge("  \n\n ", "stop").problem == "empty"


def test_ordinary_pages_and_legitimate_repetition_are_left_alone():
    assert judge(PAGE, "stop").problem is None
    assert judge(PAGE, "stop").text == PAGE
    dot_leaders = "\n".join(f"{i} Chapter {i} " + "." * 60 + f" {i * 7}" for i in range(1, 30))
    assert judge(dot_leaders, "stop").problem is None
    # A long, regular table (rows of empty cells) inside a full page, which the model ended itself.
    table = PAGE + "\n\n<table>" + "<tr><td></td><td></td><td></td></tr>" * 30 + "</table>\n\n" + PAGE
    assert judge(table, "stop").problem is None


def test_a_cut_page_without_a_loop_is_length_and_keeps_its_text():
    verdict = judge(PAGE[:900], "length")
    assert verdict.problem == "length" and verdict.text == PAGE[:900]


def test_best_attempt_is_the_one_that_kept_most_of_the_page():
    short = judge(looping(PAGE[:200]), "length")
    longer = judge(looping(PAGE), "length")
    assert best_of([short, longer, judge("", "stop")]) is longer
    assert best_of([judge("", "stop"), judge("!!!", "stop")]) is None


prose = st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "Zs")), min_size=0, max_size=400)
units = st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "Zs")), min_size=1, max_size=60)


@st.composite
def planted_loops(draw, text=prose, unit=units):
    """``(head, unit, repeats, tail)`` with ``repeats`` drawn so that ``unit * repeats`` is long
    enough to count as a loop: every example has one to find, whatever the unit's length."""
    head, unit, tail = draw(text), draw(unit), draw(st.just("") | text)
    least = max(MIN_REPEATS, -(-MIN_LOOP_CHARS // len(unit)))
    # Up to 5x the least: loops of 600-3000+ characters, so some are long enough to count even
    # in an answer the model ended itself (STOP_LOOP_MIN_CHARS).
    return head, unit, draw(st.integers(least, 5 * least)), tail


def primitive_period(unit: str) -> int:
    """The shortest p such that ``unit`` is copies of its first p characters ("abab" -> 2)."""
    return next(p for p in range(1, len(unit) + 1) if unit == unit[:p] * (len(unit) // p))


@settings(max_examples=150, deadline=None)
@given(planted_loops())
def test_any_long_loop_is_found_exactly_and_trimming_keeps_the_text_around_it(example):
    """Lines of prose around a loop: the loop is found where it was planted, and trimming keeps
    everything before it and after it plus one copy of the unit."""
    head, unit, repeats, tail = example
    text = head + "\n" + unit * repeats + ("\n" + tail if tail else "")
    loop_start, loop_end = len(head) + 1, len(head) + 1 + len(unit) * repeats
    repetition = find_repetition(text)
    # Prose has no newline, so the loop can neither reach into the lines around it nor be
    # outdone by anything in them (at most 400 characters, under MIN_LOOP_CHARS).
    assert (repetition.start, repetition.end, repetition.period) == (loop_start, loop_end, primitive_period(unit))
    trimmed = trim_repetition(text, repetition)
    assert trimmed.startswith(head.rstrip()) and trimmed.endswith(tail.strip())
    assert len(trimmed) <= len(head) + 1 + repetition.period + 2 + len(tail)
    # A loop of punctuation and spaces with nothing around it holds no word: judged empty instead.
    expected = Verdict("loop", trimmed, repetition) if content_chars(text) else Verdict("empty", "")
    event(f"judged {expected.problem}")
    assert judge(text, "length") == expected


@settings(max_examples=100, deadline=None)
@given(planted_loops(text=st.text(max_size=300), unit=st.text(min_size=1, max_size=60)))
def test_a_loop_in_any_text_is_found_and_trimming_only_removes_it(example):
    """Any characters around and inside the loop (newlines, controls, the unit's own start in
    the head): the longest loop is reported, it really is periodic, and trimming drops it."""
    head, unit, repeats, tail = example
    text = head + unit * repeats + tail
    repetition = find_repetition(text)
    assert repetition is not None and repetition.chars >= len(unit) * repeats
    assert repetition.repeats >= MIN_REPEATS and repetition.chars >= MIN_LOOP_CHARS
    loop = text[repetition.start:repetition.end]
    assert all(loop[i] == loop[i + repetition.period] for i in range(len(loop) - repetition.period))
    trimmed = trim_repetition(text, repetition)
    assert trimmed.startswith(text[: repetition.start].rstrip())
    assert trimmed.endswith(text[repetition.end:].strip())
    # One copy of the unit and a paragraph break are all that may stand in for the loop.
    assert len(trimmed) <= len(text) - repetition.chars + repetition.period + 2 < len(text)


arbitrary_or_looping = st.text(max_size=3000) | planted_loops(text=st.text(max_size=300)).map(
    lambda example: example[0] + example[1] * example[2] + example[3])


@settings(max_examples=150, deadline=None)
@given(text=arbitrary_or_looping, finish_reason=st.sampled_from(["length", "stop"]))
def test_judging_never_adds_text_and_changes_only_loops(text, finish_reason):
    """Over arbitrary text, loops planted in half of it: an answer is returned as it is unless a
    loop is found, and a trimmed answer is always shorter. ``event`` shows each branch's count."""
    verdict = judge(text, finish_reason)
    event(f"{finish_reason}: {verdict.problem}")
    if verdict.problem == "empty":
        assert content_chars(text) == 0 and verdict.text == ""
    elif verdict.problem == "loop":
        assert len(verdict.text) < len(text)
        assert verdict.repetition.repeats >= MIN_REPEATS and verdict.repetition.chars >= MIN_LOOP_CHARS
        if finish_reason == "stop":  # the model ended it itself: only a loop that is most of it counts
            assert verdict.repetition.chars >= max(STOP_LOOP_SHARE * len(text), STOP_LOOP_MIN_CHARS)
    else:
        assert verdict.text == text and verdict.problem == ("length" if finish_reason == "length" else None)


# --- retry timing -----------------------------------------------------------------------
def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    policy = RetryPolicy(backoff_base_s=0.5, backoff_max_s=30.0)
    rng = random.Random(1)
    for retry in range(10):
        ceiling = min(30.0, 0.5 * 2 ** retry)
        delays = {policy.delay(retry, rng=rng) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered: 64 pages that failed together do not retry together


def test_retry_after_wins_over_backoff_and_is_bounded():
    policy = RetryPolicy()
    assert policy.delay(0, retry_after_s=7.0) == 7.0
    assert policy.delay(5, retry_after_s=3600.0) == 120.0


@pytest.mark.parametrize("value, expected", [("3", 3.0), ("0.25", 0.25), ("-1", 0.0), ("soon", None), (None, None)])
def test_retry_after_seconds(value, expected):
    assert parse_retry_after(value) == expected


def test_retry_after_http_date():
    now = 1_800_000_000.0
    value = email.utils.formatdate(now + 42, usegmt=True)
    assert parse_retry_after(value, now=now) == pytest.approx(42.0)
