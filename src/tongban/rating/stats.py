"""Statistics of the pain-point analysis (痛点分析): where bad reviews concentrate and what predicts them.

Pure functions over counts, no database and no numpy. The input is, per factor (``item``, ``department``,
``channel``, ``overrun``, ``supplement``, ``precheck_findings``, ``visits``, ``longest_step``…), a list of
groups ``(value, rated, bad)``: the rated cases having that value and the bad reviews among them. Each
value is compared with all the other values of its factor together (“the rest”):

- :func:`concentrations` ranks the values of one factor by the Wilson lower bound of their bad-review
  rate, so that a value with 2 bad reviews out of 3 does not outrank one with 40 out of 200;
- :func:`predictors` tests each value against the rest (Fisher's exact test where a cell of the 2×2 table
  is expected to hold fewer than 5 cases, the two-proportion z-test otherwise) and ranks the significant
  ones by risk ratio.

Counts are whole numbers and ratios are computed exactly (fractions, integer hypergeometric terms) before
they become floats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

#: ``(value, rated, bad)``: the rated cases with this value of the factor and the bad reviews among them.
Group = tuple[str, int, int]

#: Significance level of :func:`predictors`.
ALPHA = 0.05
#: Fisher's exact test is used when a cell of the 2×2 table is expected to hold fewer cases than this
#: (Cochran's rule for the normal approximation).
MIN_EXPECTED = 5


def wilson(bad: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of the proportion ``bad / n``; ``(0.0, 1.0)`` when ``n`` is 0."""
    if n < 0 or not 0 <= bad <= n:
        raise ValueError(f"need 0 <= bad <= n, got bad={bad}, n={n}")
    if z <= 0:
        raise ValueError(f"z must be positive, got {z}")
    if n == 0:
        return 0.0, 1.0
    p = bad / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    low = 0.0 if bad == 0 else max(0.0, centre - half)
    high = 1.0 if bad == n else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True)
class Concentration:
    factor: str
    value: str
    rated: int
    bad: int
    bad_rate: float
    #: Bad-review rate of all the other values of the factor together; ``None`` when they have no rated case.
    rest_rate: float | None
    #: ``bad_rate / rest_rate``; ``None`` when undefined (no other rated case, or no bad review among them).
    risk_ratio: float | None
    #: Wilson 95 % bounds of ``bad_rate``.
    low: float
    high: float
    #: This value's share of all the factor's bad reviews (0 when there are none).
    share_of_bad: float


@dataclass(frozen=True)
class Predictor:
    factor: str
    value: str
    rated: int
    bad: int
    bad_rate: float
    rest_rate: float
    risk_ratio: float | None
    #: Two-sided p-value of the difference between ``bad_rate`` and ``rest_rate``.
    p_value: float
    significant: bool
    #: ``"fisher"`` or ``"z"``: the test that gave ``p_value``.
    method: str


def _checked(factor: str, groups: Sequence[Group]) -> list[Group]:
    seen: set[str] = set()
    for value, rated, bad in groups:
        if rated < 0 or not 0 <= bad <= rated:
            raise ValueError(f"{factor}={value!r}: need 0 <= bad <= rated, got rated={rated}, bad={bad}")
        if value in seen:
            raise ValueError(f"{factor}={value!r} is listed twice")
        seen.add(value)
    return list(groups)


def _ratio(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else float(Fraction(numerator, denominator))


def concentrations(factor: str, groups: Sequence[Group], *, min_rated: int = 5) -> list[Concentration]:
    """Where the bad reviews of one factor concentrate: each value with at least ``min_rated`` rated cases,
    its bad-review rate against the rest, highest Wilson lower bound first (then the larger share of bad
    reviews). Values below ``min_rated`` are left out of the list but still count in the rest."""
    groups = _checked(factor, groups)
    total_rated = sum(g[1] for g in groups)
    total_bad = sum(g[2] for g in groups)
    found: list[Concentration] = []
    for value, rated, bad in groups:
        if rated < max(min_rated, 1):
            continue
        rest_rated, rest_bad = total_rated - rated, total_bad - bad
        low, high = wilson(bad, rated)
        found.append(
            Concentration(
                factor=factor,
                value=value,
                rated=rated,
                bad=bad,
                bad_rate=bad / rated,
                rest_rate=_ratio(rest_bad, rest_rated),
                risk_ratio=_ratio(bad * rest_rated, rated * rest_bad) if rest_rated else None,
                low=low,
                high=high,
                share_of_bad=_ratio(bad, total_bad) or 0.0,
            )
        )
    found.sort(key=lambda c: (-c.low, -c.share_of_bad, -c.bad_rate, c.value))
    return found


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided p-value of Fisher's exact test on the 2×2 table ``[[a, b], [c, d]]``.

    The tables with the same margins that are no more likely than the observed one are summed, the way
    R's ``fisher.test`` and SciPy do, in exact integer arithmetic.
    """
    if min(a, b, c, d) < 0:
        raise ValueError("counts must not be negative")
    row, col, n = a + b, a + c, a + b + c + d
    lo, hi = max(0, row + col - n), min(row, col)
    # term(x) = C(col, x) · C(n − col, row − x); each step's division is exact.
    term = math.comb(col, lo) * math.comb(n - col, row - lo)
    terms = [term]
    for x in range(lo, hi):
        term = term * (col - x) * (row - x) // ((x + 1) * (n - col - row + x + 1))
        terms.append(term)
    observed = terms[a - lo]
    return float(Fraction(sum(t for t in terms if t <= observed), math.comb(n, row)))


def z_test(bad1: int, n1: int, bad2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test of ``bad1/n1`` against ``bad2/n2``."""
    if n1 <= 0 or n2 <= 0:
        raise ValueError("both groups need rated cases")
    pooled = Fraction(bad1 + bad2, n1 + n2)
    variance = pooled * (1 - pooled) * (Fraction(1, n1) + Fraction(1, n2))
    if variance == 0:
        return 1.0
    z = float(Fraction(bad1, n1) - Fraction(bad2, n2)) / math.sqrt(variance)
    return math.erfc(abs(z) / math.sqrt(2))


def _p_value(bad: int, rated: int, rest_bad: int, rest_rated: int) -> tuple[float, str]:
    n = rated + rest_rated
    total_bad = bad + rest_bad
    expected = min(rated, rest_rated) * min(total_bad, n - total_bad) / n
    if expected < MIN_EXPECTED:
        return fisher_exact(bad, rated - bad, rest_bad, rest_rated - rest_bad), "fisher"
    return z_test(bad, rated, rest_bad, rest_rated), "z"


def predictors(
    factors: Mapping[str, Sequence[Group]], *, min_rated: int = 20, alpha: float = ALPHA
) -> list[Predictor]:
    """What predicts a bad review: every value (with at least ``min_rated`` rated cases, and other values
    to compare with) tested against the rest of its factor. Significant ones first, by risk ratio (an
    infinite one — bad reviews here, none elsewhere — leading), then by p-value."""
    found: list[Predictor] = []
    for factor, raw in factors.items():
        groups = _checked(factor, raw)
        total_rated = sum(g[1] for g in groups)
        total_bad = sum(g[2] for g in groups)
        for value, rated, bad in groups:
            rest_rated, rest_bad = total_rated - rated, total_bad - bad
            if rated < max(min_rated, 1) or rest_rated == 0:
                continue
            p_value, method = _p_value(bad, rated, rest_bad, rest_rated)
            found.append(
                Predictor(
                    factor=factor,
                    value=value,
                    rated=rated,
                    bad=bad,
                    bad_rate=bad / rated,
                    rest_rate=rest_bad / rest_rated,
                    risk_ratio=_ratio(bad * rest_rated, rated * rest_bad),
                    p_value=p_value,
                    significant=p_value < alpha,
                    method=method,
                )
            )

    def strength(p: Predictor) -> float:
        if p.risk_ratio is not None:
            return p.risk_ratio
        return math.inf if p.bad else 0.0

    found.sort(key=lambda p: (not p.significant, -strength(p), p.p_value, p.factor, p.value))
    return found
