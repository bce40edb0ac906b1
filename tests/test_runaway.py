"""Runaway output and retry timing: pure functions, no server."""

import email.utils
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightocr_ingest.ocr.retry import RetryPolicy, parse_retry_after
from lightocr_ingest.ocr.runaway import best_of, find_repetition, judge, trim_repetition
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


@settings(max_examples=150, deadline=None)
@given(head=prose, unit=units, repeats=st.integers(min_value=40, max_value=120))
def test_any_long_loop_is_found_and_trimming_keeps_the_text_before_it(head, unit, repeats):
    text = head + "\n" + unit * repeats
    loop_chars = len(unit) * repeats
    repetition = find_repetition(text)
    if loop_chars >= 600:
        assert repetition is not None and repetition.chars >= loop_chars - len(unit)
        trimmed = trim_repetition(text, repetition)
        assert (head + "\n").rstrip().startswith(trimmed[: len(head.rstrip())]) or trimmed.startswith(head.rstrip())
        assert len(trimmed) <= len(head) + 1 + 2 * len(unit)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=3000))
def test_trimming_never_adds_text(text):
    repetition = find_repetition(text)
    if repetition is not None:
        trimmed = trim_repetition(text, repetition)
        assert len(trimmed) < len(text)
        assert repetition.repeats >= 8


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
