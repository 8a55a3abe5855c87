"""Uncertainty for the tables and claims.

The unit of replication is the training run. A claim about a loss (a weighting, a learning
rate, a patch size) is a claim about what training with it does, so its uncertainty must
include how much training runs differ, not only how much test cases differ. Test cases are
nested in a run: each seed's statistic is first averaged over the test cases (which every
seed shares), then the seeds are the sample.

Method: a t-interval over seeds (`seed_interval`). For a difference A - B between two
groups of cells trained with the same seeds, the per-seed differences d_s = mean_c A_sc -
mean_c B_sc are paired by seed (a paired t-interval; valid whether or not the two arms' runs
are correlated, since the d_s are independent across seeds); with different seeds, Welch's
interval on the two sets of per-seed means. Why a t-interval and not a bootstrap: with the
3-5 seeds a CPU can train, a percentile bootstrap is close to [min, max] and undercovers
badly, while the t-interval is exact for normal per-seed means and close to nominal for
moderately skewed ones (tests/test_stats.py checks its coverage by simulation). The case
effects cancel in the paired difference, so the interval answers "would another set of
training runs show the same difference on this test set"; the number of test cases is
reported beside it.

With fewer than `min_seeds` seeds no interval is decisive ("insufficient evidence"); with
one seed there is none (the estimate is still shown).

Family-wise error: the claims table tests many claims at once, so its intervals are
Bonferroni-adjusted, each at level 1 - alpha/m for the m claims the table decides: every
interval of the table covers its true value simultaneously with probability >= 1 - alpha.

`mdd` is the minimal detectable difference: the smallest true difference that a claim's
design (its seeds, its observed between-seed SD, its error level) detects with 80 % power,
(t_{1-a/2, df} + t_{0.8, df}) * SE.

The Wilcoxon signed-rank test over test cases stays for what it suits: the supplementary
comparison of two trained models (not of two losses).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

ALPHA = 0.05
POWER = 0.8


@dataclass(frozen=True)
class Interval:
    """An estimate over seeds with its confidence interval."""

    estimate: float
    lo: float
    hi: float
    n_seeds: int
    sd: float  # between-seed SD of the statistic (of the per-seed difference when paired)
    se: float
    df: float
    level: float  # the interval's confidence level
    mdd: float  # minimal detectable difference at this level with 80 % power


def _t(q: float, df: float) -> float:
    return float(sps.t.ppf(q, df)) if df > 0 else math.nan


def _interval(estimate: float, se: float, df: float, n: int, sd: float, level: float) -> Interval:
    alpha = 1 - level
    if n < 2 or not np.isfinite(se) or df <= 0:
        return Interval(estimate, math.nan, math.nan, n, sd, se, df, level, math.nan)
    half = _t(1 - alpha / 2, df) * se
    mdd = (_t(1 - alpha / 2, df) + _t(POWER, df)) * se
    return Interval(estimate, estimate - half, estimate + half, n, sd, se, df, level, mdd)


def seed_interval(values, level: float = 1 - ALPHA) -> Interval:
    """Mean of per-seed values (case-means, or paired per-seed differences) with a t-interval."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, math.nan, math.nan, 0, level, math.nan)
    sd = float(x.std(ddof=1)) if n > 1 else math.nan
    return _interval(float(x.mean()), sd / math.sqrt(n) if n > 1 else math.nan, n - 1, n, sd, level)


def welch_interval(a, b, level: float = 1 - ALPHA) -> Interval:
    """Difference of the means of two independent sets of per-seed values (Welch)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    n = int(min(a.size, b.size))
    if a.size == 0 or b.size == 0:
        return Interval(math.nan, math.nan, math.nan, n, math.nan, math.nan, 0, level, math.nan)
    est = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return Interval(est, math.nan, math.nan, n, math.nan, math.nan, 0, level, math.nan)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / ((va**2 / (a.size - 1)) + (vb**2 / (b.size - 1))) if va + vb > 0 else a.size + b.size - 2
    sd = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    return _interval(est, se, df, n, sd, level)


def difference_interval(a: pd.Series, b: pd.Series, level: float = 1 - ALPHA) -> Interval:
    """A - B from per-seed values indexed by seed: paired over the common seeds when the two
    groups share at least two, else Welch over their own seeds."""
    common = a.index.intersection(b.index)
    if len(common) >= 2 or (len(common) and len(common) == len(a) == len(b)):
        return seed_interval((a[common] - b[common]).to_numpy(), level)
    return welch_interval(a.to_numpy(), b.to_numpy(), level)


# ---------------------------------------------------------------- over test cases


def paired_wilcoxon(a, b) -> tuple[float, float, int]:
    """Wilcoxon signed-rank test of the case-wise differences a - b (two-sided).

    Returns (statistic, p-value, number of non-tied pairs); p is 1.0 when every pair ties
    (SciPy refuses that case) and nan with no pairs.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    n = int(np.count_nonzero(d))
    if d.size == 0:
        return (math.nan, math.nan, 0)
    if n == 0:
        return (0.0, 1.0, 0)
    res = sps.wilcoxon(a[ok], b[ok], zero_method="wilcox", alternative="two-sided")
    return (float(res.statistic), float(res.pvalue), n)
