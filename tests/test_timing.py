"""Interleaved speed comparisons: median of per-round ratios."""

import time

import pytest

from beyondbert.timing import compare_speed


def test_the_slower_function_has_the_larger_median_and_a_ratio_above_one():
    result = compare_speed({"slow": lambda: time.sleep(0.004), "fast": lambda: time.sleep(0.001)},
                           rounds=5, warmup=1)
    assert len(result.times["slow"]) == len(result.times["fast"]) == 5
    assert result.median("slow") > result.median("fast")
    low, high = result.ratio_range("slow", "fast")
    assert low <= result.ratio("slow", "fast") <= high
    assert result.ratio("slow", "fast") > 1.5
    assert list(result.table().columns) == ["median ms", "fastest ms", "slowest ms"]


def test_rounds_are_interleaved_in_rotated_order():
    order = []
    compare_speed({"a": lambda: order.append("a"), "b": lambda: order.append("b")},
                  rounds=5, warmup=1)
    assert order == ["a", "b", "b", "a"] * 3  # 6 rounds in all, the first untimed


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="at least two"):
        compare_speed({"a": lambda: None})
    with pytest.raises(ValueError, match="rounds must be an int >= 5"):
        compare_speed({"a": lambda: None, "b": lambda: None}, rounds=2)
    with pytest.raises(TypeError, match="callable"):
        compare_speed({"a": 1, "b": lambda: None})
    with pytest.raises(KeyError, match="no timings for 'c'"):
        compare_speed({"a": lambda: None, "b": lambda: None}).median("c")
