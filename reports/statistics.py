"""Statistics of the tables and findings: Student-t intervals over seeds, Welch and paired differences,
the minimum detectable difference; no SciPy.

For an integer number of degrees of freedom the t distribution's two-sided mass has a closed form (a
finite trigonometric series), which bisection inverts. Differences between two rows use Welch's interval
with its degrees of freedom rounded down, which only widens it, or, when the rows share seeds, the mean of
the per-seed differences with its t-interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from reports.tables import TableRow

CONFIDENCE = 0.95


# -- statistics ------------------------------------------------------------------------------------
def t_two_sided_mass(t: float, df: int) -> float:
    """P(|T| ≤ t) for Student's t with integer ``df`` (closed form, exact to float precision)."""
    theta = math.atan(abs(t) / math.sqrt(df))
    sin, cos = math.sin(theta), math.cos(theta)
    if df % 2 == 1:
        series, term = 0.0, cos if df > 1 else 0.0
        for k in range(1, (df - 1) // 2 + 1):
            series += term
            term *= cos * cos * (2 * k) / (2 * k + 1)
        return 2.0 / math.pi * (theta + sin * series)
    series, term = 0.0, 1.0
    for k in range(1, df // 2 + 1):
        series += term
        term *= cos * cos * (2 * k - 1) / (2 * k)
    return sin * series


def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """Half-width multiplier of a two-sided ``confidence`` t-interval with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"t interval needs df >= 1, got {df}")
    low, high = 0.0, 1.0
    while t_two_sided_mass(high, df) < confidence:
        high *= 2.0
    for _ in range(80):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if t_two_sided_mass(mid, df) < confidence else (low, mid)
    return 0.5 * (low + high)


def t_one_sided(df: int, probability: float) -> float:
    """The ``probability`` quantile of Student's t (t_{0.8, df} for 80% power), for probability > 0.5."""
    if not 0.5 < probability < 1.0:
        raise ValueError(f"one-sided t quantile needs 0.5 < probability < 1, got {probability}")
    return t_quantile(df, 2.0 * probability - 1.0)  # P(T <= q) = p  <=>  P(|T| <= q) = 2p - 1


@dataclass(frozen=True)
class Estimate:
    """A mean with the half-width of its confidence interval (NaN when fewer than two values)."""

    mean: float
    half_width: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width


def estimate(values: Sequence[float], confidence: float = CONFIDENCE) -> Estimate | None:
    """Mean and t-interval of the finite ``values``; None when there are none."""
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if data.size == 0:
        return None
    if data.size == 1:
        return Estimate(float(data[0]), math.nan, 1)
    half = t_quantile(data.size - 1, confidence) * data.std(ddof=1) / math.sqrt(data.size)
    return Estimate(float(data.mean()), float(half), int(data.size))


def welch_difference(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Estimate | None:
    """mean(a) − mean(b) with Welch's t-interval (df rounded down); None when either side is empty."""
    xa, xb = (np.asarray([v for v in s if math.isfinite(v)], np.float64) for s in (a, b))
    if xa.size == 0 or xb.size == 0:
        return None
    diff = float(xa.mean() - xb.mean())
    if xa.size < 2 or xb.size < 2:
        return Estimate(diff, math.nan, min(xa.size, xb.size))
    va, vb = xa.var(ddof=1) / xa.size, xb.var(ddof=1) / xb.size
    se = math.sqrt(va + vb)
    if se == 0.0:
        return Estimate(diff, 0.0, min(xa.size, xb.size))
    df = (va + vb) ** 2 / (va**2 / (xa.size - 1) + vb**2 / (xb.size - 1))
    return Estimate(diff, t_quantile(max(1, math.floor(df)), confidence) * se, min(xa.size, xb.size))


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Estimate | None:
    """Mean of the differences a_i − b_i of aligned pairs, with the t-interval on n − 1 degrees of freedom
    (pairs with a non-finite side are dropped); None when no pair is left."""
    if len(a) != len(b):
        raise ValueError(f"paired difference needs aligned sequences, got {len(a)} and {len(b)} values")
    return estimate([x - y for x, y in zip(a, b) if math.isfinite(x) and math.isfinite(y)], confidence)


def minimum_detectable_difference(sd_difference: float, n: int, confidence: float = CONFIDENCE,
                                  power: float = 0.8) -> float:
    """(t_{1−α/2, n−1} + t_{power, n−1}) · sd_d / √n: the true paired difference that a two-sided test at
    level α = 1 − ``confidence`` detects with probability ``power`` over ``n`` paired seeds (an estimate:
    it plugs in the observed sd of the per-seed differences)."""
    if n < 2:
        raise ValueError(f"a minimum detectable difference needs n >= 2 pairs, got {n}")
    multiplier = t_quantile(n - 1, confidence) + t_one_sided(n - 1, power)
    return multiplier * sd_difference / math.sqrt(n)


PAIRED, WELCH = "paired", "Welch"
MIN_PAIRS = 2  # fewer shared seeds than this give no paired interval: the rows are compared unpaired


@dataclass(frozen=True)
class Comparison:
    """Row a minus row b on one metric: the estimate, the form it used and what it rests on."""

    estimate: Estimate
    form: str  # PAIRED (per-seed differences) or WELCH (unpaired)
    n_a: int  # seeds of a (paired: the shared seeds)
    n_b: int
    differences: tuple[float, ...] = ()  # per-seed differences, paired form only

    @property
    def has_interval(self) -> bool:
        return not math.isnan(self.estimate.half_width)

    @property
    def excludes_zero(self) -> bool:
        return self.has_interval and (self.estimate.low > 0 or self.estimate.high < 0)


def compare_rows(a: TableRow, b: TableRow, key: str, confidence: float = CONFIDENCE) -> Comparison | None:
    """a − b on ``key``: paired by seed over the seeds both rows have (when at least two), else Welch."""
    sa, sb = a.by_seed.get(key, {}), b.by_seed.get(key, {})
    shared = [seed for seed in sa if seed in sb]
    if len(shared) >= MIN_PAIRS:
        diffs = [sa[seed] - sb[seed] for seed in shared]
        return Comparison(estimate(diffs, confidence), PAIRED, len(shared), len(shared), tuple(diffs))
    diff = welch_difference(a.values.get(key, []), b.values.get(key, []), confidence)
    if diff is None:
        return None
    return Comparison(diff, WELCH, len(a.values[key]), len(b.values[key]))
