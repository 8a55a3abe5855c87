"""The seed-level statistics and the claims' verdict rule, calibrated on simulated results
whose truth is known (tests/simulate.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from dicebench.reporting import claims as cl
from dicebench.reporting.stats import difference_interval, seed_interval, welch_interval
from simulate import effect_world, null_world, simulate

DIFFERENCE_TESTS = ("greater", "did_greater", "greatest", "spread_smaller")


def test_seed_interval_is_the_t_interval():
    x = np.array([70.0, 74.0, 71.5, 73.0])
    i = seed_interval(x, 0.95)
    half = sps.t.ppf(0.975, 3) * x.std(ddof=1) / 2
    assert (i.estimate, i.lo, i.hi, i.n_seeds, i.df) == pytest.approx((x.mean(), x.mean() - half, x.mean() + half, 4, 3))
    assert i.mdd == pytest.approx((sps.t.ppf(0.975, 3) + sps.t.ppf(0.8, 3)) * x.std(ddof=1) / 2)
    one = seed_interval([71.0])
    assert one.estimate == 71.0 and math.isnan(one.lo) and one.n_seeds == 1


def test_paired_by_seed_when_the_seeds_are_shared_else_welch():
    a = pd.Series([80.0, 82.0, 81.0], index=[0, 1, 2])
    b = pd.Series([70.0, 73.0, 70.5], index=[0, 1, 2])
    paired = difference_interval(a, b)
    assert paired.estimate == pytest.approx(np.mean([10.0, 9.0, 10.5])) and paired.df == 2
    assert paired.sd == pytest.approx(np.std([10.0, 9.0, 10.5], ddof=1))
    other = difference_interval(a, b.set_axis([5, 6, 7]))
    ref = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (other.lo, other.hi) == pytest.approx((ref.low, ref.high))
    assert welch_interval(a, b).df == pytest.approx(other.df)


@pytest.mark.parametrize("n", [3, 5])
def test_t_interval_covers_at_its_level_for_skewed_per_seed_means(n):
    """Coverage by simulation: per-seed means from a skewed distribution (gamma, skewness 0.7,
    about what a mean over test cases of a bounded score shows) and from a normal one."""
    rng = np.random.default_rng(n)
    true = 8.0 * 1.5  # gamma(shape 8, scale 1.5) mean
    skewed = [seed_interval(rng.gamma(8.0, 1.5, n), 0.95) for _ in range(4000)]
    assert 0.93 <= np.mean([i.lo <= true <= i.hi for i in skewed]) <= 0.97
    normal = [seed_interval(rng.normal(70.0, 2.0, n), 0.99) for _ in range(4000)]
    assert 0.98 <= np.mean([i.lo <= 70.0 <= i.hi for i in normal]) <= 0.995


def _decisive_share(designs, world, n_sims, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for n_seeds, n_cases in designs:
        verdicts = []
        for _ in range(n_sims):
            table = cl.claims_table(simulate(world, n_seeds, n_cases, rng))
            verdicts += list(table.loc[table["test"].isin(DIFFERENCE_TESTS), "verdict"])
        out[(n_seeds, n_cases)] = (np.isin(verdicts, cl.DECISIVE).mean(), len(verdicts))
    return out


def test_calibration_no_effect_gives_at_most_5_percent_decisive_verdicts():
    """No loss, weighting, lr, patch or class differs; cells differ by their training run (a
    few DSC points) and cases by their own effects. The old rule (a bootstrap over the cases of
    one model per cell) called about two thirds of these claims decisive."""
    shares = _decisive_share([(1, 3), (3, 10), (5, 30)], null_world(), n_sims=12)
    for design, (share, n) in shares.items():
        assert n >= 12 * 10 and share <= 0.05, (design, share)
    one_seed = cl.claims_table(simulate(null_world(), 1, 3, np.random.default_rng(1)))
    assert set(one_seed.loc[one_seed["verdict"] != cl.NOT_RUN, "verdict"]) == {cl.INSUFFICIENT}


def test_calibration_effects_of_15_points_are_reproduced_at_5_seeds_by_30_cases():
    rng = np.random.default_rng(7)
    verdicts = []
    for _ in range(8):
        table = cl.claims_table(simulate(effect_world(0.15), 5, 30, rng))
        verdicts += list(table.loc[table["test"].isin(DIFFERENCE_TESTS), "verdict"])
    assert np.mean(np.asarray(verdicts) == cl.REPRODUCED) >= 0.8
    assert cl.NOT_REPRODUCED not in verdicts


def test_a_class_absent_from_every_test_case_is_never_decisive():
    rng = np.random.default_rng(3)
    for world in (null_world(), effect_world(0.3)):
        table = cl.claims_table(simulate(world, 5, 30, rng, absent={"other_pathology": 1.0})).set_index("id")
        for cid in ("K1", "K3", "K4"):
            assert table.loc[cid, "verdict"] == cl.NOT_TESTABLE and table.loc[cid, "n_cases"] == 0


def test_at_least_never_reproduced_twelve_points_under_the_published_value():
    rng = np.random.default_rng(11)
    world = {**null_world(), ("liu2018", "vnet", "0.01"): {"*": (86.42 - 12) / 100}}
    verdicts = [cl.claims_table(simulate(world, n, 30, rng)).set_index("id").loc["L1", "verdict"]
                for n in (3, 5, 5, 5, 10)]
    assert cl.REPRODUCED not in verdicts
    assert cl.NOT_REPRODUCED in verdicts  # and with enough seeds it says so


def test_intervals_are_bonferroni_adjusted_over_the_decided_claims():
    table = cl.claims_table(simulate(effect_world(), 3, 10, np.random.default_rng(5)))
    decided = table[~table["verdict"].isin([cl.INSUFFICIENT, cl.NOT_TESTABLE, cl.NOT_RUN])]
    m = len(decided)
    single = decided[decided["test"].isin(["greater", "did_greater", "spread_smaller", "at_least"])]
    assert np.allclose(single["level"], 1 - 0.05 / m)
    k2 = decided[decided["id"] == "K2"]
    assert np.allclose(k2["level"], 1 - 0.05 / (m * 6))  # four losses: six pairwise comparisons
