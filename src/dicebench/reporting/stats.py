"""Uncertainty for the tables and claims: bootstrap confidence intervals over test cases
and paired Wilcoxon signed-rank tests between losses.

Why cases, not seeds: the default run has one seed per cell, so the spread across test
cases is the only uncertainty it can show; with several seeds a case's value is first
averaged over the seeds (the CI is then over cases of the seed-mean), and the tables
additionally give mean +- std over the seeds' mean DSC.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

N_BOOT = 2000
ALPHA = 0.05


def bootstrap_ci(values, n_boot: int = N_BOOT, alpha: float = ALPHA, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) CI of the mean; (nan, nan) without data, (v, v) for one value.

    Deterministic (fixed seed) so that a rebuilt table is byte-identical.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return (math.nan, math.nan)
    if x.size == 1:
        return (float(x[0]), float(x[0]))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    means = x[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return (float(lo), float(hi))


def bootstrap_diff_ci(a, b, paired: bool, n_boot: int = N_BOOT, alpha: float = ALPHA,
                      seed: int = 0) -> tuple[float, float, float]:
    """Mean of a - b and its percentile bootstrap CI.

    Paired (same test cases in the same order): resample the case-wise differences.
    Unpaired: resample each group independently.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if paired:
        d = a - b
        d = d[np.isfinite(d)]
        if d.size == 0:
            return (math.nan, math.nan, math.nan)
        lo, hi = bootstrap_ci(d, n_boot, alpha, seed)
        return (float(d.mean()), lo, hi)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return (math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    ma = a[rng.integers(0, a.size, size=(n_boot, a.size))].mean(axis=1)
    mb = b[rng.integers(0, b.size, size=(n_boot, b.size))].mean(axis=1)
    lo, hi = np.quantile(ma - mb, [alpha / 2, 1 - alpha / 2])
    return (float(a.mean() - b.mean()), float(lo), float(hi))


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
