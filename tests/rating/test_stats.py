"""Statistics of the pain-point analysis: Wilson intervals, concentrations, predictors and their tests."""

from __future__ import annotations

import math
import random

import pytest

from tongban.rating.stats import concentrations, fisher_exact, predictors, wilson, z_test

# Wilson ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "n", "low", "high"),
    [
        # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Stat. Med. 17:857,
        # Table I, method 3 (score interval without continuity correction).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_matches_the_textbook(bad: int, n: int, low: float, high: float) -> None:
    got = wilson(bad, n)
    assert got[0] == pytest.approx(low, abs=5e-5)
    assert got[1] == pytest.approx(high, abs=5e-5)


def test_wilson_edges() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    assert wilson(0, 7)[0] == 0.0
    assert wilson(7, 7)[1] == 1.0
    narrow, wide = wilson(30, 100, z=1.0), wilson(30, 100, z=2.58)
    assert wide[0] < narrow[0] < 0.3 < narrow[1] < wide[1]
    for bad, n in [(-1, 5), (6, 5), (1, -1)]:
        with pytest.raises(ValueError, match="bad"):
            wilson(bad, n)
    with pytest.raises(ValueError, match="z"):
        wilson(1, 5, z=0)


# Concentrations ----------------------------------------------------------------------------------------


def test_concentration_rates_against_the_rest() -> None:
    found = concentrations("department", [("A", 100, 30), ("B", 100, 10), ("C", 50, 5)])
    by_value = {c.value: c for c in found}
    a = by_value["A"]
    assert (a.factor, a.rated, a.bad) == ("department", 100, 30)
    assert a.bad_rate == 0.3
    assert a.rest_rate == pytest.approx(15 / 150)
    assert a.risk_ratio == pytest.approx(3.0)
    assert a.share_of_bad == pytest.approx(30 / 45)
    assert (a.low, a.high) == wilson(30, 100)
    b = by_value["B"]
    assert b.rest_rate == pytest.approx(35 / 150)
    assert b.risk_ratio == pytest.approx((10 / 100) / (35 / 150))
    assert sum(c.share_of_bad for c in found) == pytest.approx(1.0)


def test_concentrations_rank_by_the_wilson_lower_bound() -> None:
    # 2 of 3 is the higher rate, but 60 of 200 is the surer concentration.
    found = concentrations("item", [("tiny", 3, 2), ("big", 200, 60), ("calm", 300, 6)], min_rated=1)
    assert [c.value for c in found] == ["big", "tiny", "calm"]
    assert found[1].bad_rate > found[0].bad_rate
    lows = [c.low for c in found]
    assert lows == sorted(lows, reverse=True)


def test_ties_fall_back_to_the_value() -> None:
    # web and app have equal bounds (0), shares (0) and rates (0): ordered by value, after sms.
    found = concentrations("channel", [("web", 10, 0), ("app", 10, 0), ("sms", 40, 4)])
    assert [c.value for c in found] == ["sms", "app", "web"]


def test_min_rated_leaves_small_values_out_of_the_list_but_in_the_rest() -> None:
    found = concentrations("item", [("small", 4, 4), ("X", 50, 5), ("Y", 50, 5)], min_rated=5)
    assert {c.value for c in found} == {"X", "Y"}
    x = next(c for c in found if c.value == "X")
    assert x.rest_rate == pytest.approx(9 / 54)
    assert x.share_of_bad == pytest.approx(5 / 14)
    assert [c.value for c in concentrations("item", [("small", 4, 4), ("X", 50, 5)], min_rated=4)] == [
        "small",
        "X",
    ]


def test_concentrations_without_a_comparison_or_bad_reviews() -> None:
    assert concentrations("item", []) == []
    [only] = concentrations("item", [("only", 10, 3)])
    assert only.rest_rate is None
    assert only.risk_ratio is None
    assert only.share_of_bad == 1.0
    none_bad = concentrations("item", [("a", 10, 0), ("b", 10, 0)])
    assert all(c.share_of_bad == 0.0 and c.rest_rate == 0.0 and c.risk_ratio is None for c in none_bad)
    # Bad reviews here and none elsewhere: the risk ratio is undefined, not a division error.
    [hot, cold] = concentrations("item", [("hot", 10, 5), ("cold", 10, 0)])
    assert (hot.value, hot.risk_ratio, cold.risk_ratio) == ("hot", None, 0.0)
    # Values with no rated case are never listed, whatever min_rated says.
    assert [c.value for c in concentrations("item", [("empty", 0, 0), ("a", 5, 1)], min_rated=0)] == ["a"]


def test_concentrations_reject_impossible_counts() -> None:
    with pytest.raises(ValueError, match="bad <= rated"):
        concentrations("item", [("a", 5, 6)])
    with pytest.raises(ValueError, match="twice"):
        concentrations("item", [("a", 5, 1), ("a", 6, 1)])


# Predictors --------------------------------------------------------------------------------------------


def test_a_clearly_different_split_is_significant() -> None:
    found = predictors({"channel": [("online", 500, 25), ("window", 500, 100)]})
    by_value = {p.value: p for p in found}
    window, online = by_value["window"], by_value["online"]
    assert window.significant
    assert online.significant
    assert window.risk_ratio == pytest.approx(4.0)
    assert online.risk_ratio == pytest.approx(0.25)
    assert window.p_value < 1e-9
    assert window.method == "z"
    assert (window.bad_rate, window.rest_rate, window.rated, window.bad) == (0.2, 0.05, 500, 100)
    assert [p.value for p in found] == ["window", "online"]


def test_an_identical_split_is_not_significant() -> None:
    found = predictors({"supplement": [("yes", 200, 20), ("no", 200, 20)]})
    assert [p.significant for p in found] == [False, False]
    assert all(p.p_value == pytest.approx(1.0) and p.risk_ratio == pytest.approx(1.0) for p in found)


def test_predictors_sort_significant_first_by_risk_ratio() -> None:
    found = predictors(
        {
            "overrun": [("yes", 100, 40), ("no", 900, 90)],  # RR 4.0, significant
            "visits": [("3+", 100, 25), ("1", 900, 105)],  # RR about 2.1, significant
            "channel": [("app", 120, 13), ("web", 880, 88)],  # RR about 1.08, not significant
            "longest_step": [("review", 40, 10), ("other", 300, 0)],  # no bad elsewhere: infinite
        },
        min_rated=30,
    )
    significant = [p for p in found if p.significant]
    assert [(p.factor, p.value) for p in significant[:3]] == [
        ("longest_step", "review"),
        ("overrun", "yes"),
        ("visits", "3+"),
    ]
    assert significant[0].risk_ratio is None
    ranks = [not p.significant for p in found]
    assert ranks == sorted(ranks)
    assert ("channel", "app") in [(p.factor, p.value) for p in found if not p.significant]


def test_predictors_apply_min_rated_and_need_something_to_compare_with() -> None:
    factors = {"item": [("big", 100, 30), ("small", 19, 19), ("mid", 20, 2)], "alone": [("only", 500, 50)]}
    assert {p.value for p in predictors(factors)} == {"big", "mid"}
    assert {p.value for p in predictors(factors, min_rated=1)} == {"big", "small", "mid"}
    assert predictors({}) == []


def test_small_counts_use_fishers_exact_test() -> None:
    [low, high] = sorted(
        predictors({"precheck_findings": [("yes", 4, 3), ("no", 4, 1)]}, min_rated=4), key=lambda p: p.value
    )
    assert low.method == high.method == "fisher"
    # Fisher's tea-tasting table [[3, 1], [1, 3]]: two-sided p = 34/70.
    assert high.p_value == pytest.approx(34 / 70)
    assert not high.significant


def test_fisher_exact_known_values() -> None:
    assert fisher_exact(3, 1, 1, 3) == pytest.approx(34 / 70)
    assert fisher_exact(10, 0, 0, 10) == pytest.approx(2 / math.comb(20, 10))
    assert fisher_exact(0, 0, 0, 0) == 1.0
    with pytest.raises(ValueError, match="negative"):
        fisher_exact(-1, 1, 1, 1)


def test_fisher_exact_agrees_with_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(7)
    for _ in range(300):
        table = [rng.randint(0, 25) for _ in range(4)]
        expected = stats.fisher_exact([table[:2], table[2:]]).pvalue
        assert fisher_exact(*table) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_z_test_known_value() -> None:
    # 30/100 against 15/100: pooled 0.225, z = 0.15 / sqrt(0.225 * 0.775 * 0.02) = 2.540, p = 0.0111.
    assert z_test(30, 100, 15, 100) == pytest.approx(0.011085, abs=1e-5)
    assert z_test(0, 50, 0, 50) == 1.0
    assert z_test(50, 50, 50, 50) == 1.0
    with pytest.raises(ValueError, match="rated"):
        z_test(0, 0, 1, 10)
