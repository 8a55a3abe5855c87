"""Every claim under the common conventions for empty masks and HD95."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dicebench.reporting import claims as cl
from dicebench.reporting.conventions import CONVENTIONS, apply_convention, conventions_table
from test_claims import ABDOMEN, cases_from


def _rows() -> pd.DataFrame:
    # (gt, pred) voxels: both empty, reference empty but predicted, missed, found
    return pd.DataFrame({"class_index": [1, 1, 1, 1, 0], "class": ["a"] * 4 + ["background"],
                         "gt_voxels": [0, 0, 10, 10, 90], "pred_voxels": [0, 5, 0, 10, 85],
                         "dsc": [1.0, 0.0, 0.0, 0.8, 0.99], "hd95": [0.0, 50.0, 50.0, 2.0, np.nan],
                         "hd95_pooled": [0.0, 50.0, 50.0, 1.5, np.nan]})


@pytest.mark.parametrize("name,dsc,hd95", [
    ("dicebench", [1.0, 0.0, 0.0, 0.8, 0.99], [0.0, 50.0, 50.0, 2.0, np.nan]),
    ("nnunet", [np.nan, 0.0, 0.0, 0.8, 0.99], [np.nan] * 5),
    ("metrics_reloaded", [1.0, 0.0, 0.0, 0.8, 0.99], [0.0, np.nan, np.nan, 2.0, np.nan]),
    ("monai_ignore_empty", [np.nan, np.nan, 0.0, 0.8, 0.99], [np.nan, np.nan, np.nan, 2.0, np.nan]),
    ("medpy_hd95", [1.0, 0.0, 0.0, 0.8, 0.99], [0.0, 50.0, 50.0, 1.5, np.nan]),
])
def test_each_convention_rescores_the_empty_cases(name, dsc, hd95):
    out = apply_convention(_rows(), name)
    np.testing.assert_array_equal(out["dsc"].to_numpy(), dsc)
    np.testing.assert_array_equal(out["hd95"].to_numpy(), hd95)


def test_a_verdict_that_rests_on_empty_masks_is_flagged():
    """Gallbladder absent from every test case: 'simple' predicts nothing there (DSC 1 by our
    convention), the others predict false positives (DSC 0). Shen's AVG-based S6 (simple best at
    lr 0.01) then rests on the empty class; MONAI's ignore_empty drops it and the verdict flips."""
    spec = [("shen2018", "synth_abdomen", "weighted_dice", w, "0.01", ABDOMEN, {c: 0.8 for c in ABDOMEN})
            for w in ("uniform", "simple", "square")]
    cases = cases_from(spec, n_seeds=5, run_sd=0.005)
    gb = cases["class"] == "gallbladder"
    simple = cases["weighting"] == "simple"
    cases.loc[gb, "gt_voxels"] = 0
    cases.loc[gb & simple, ["pred_voxels", "dsc"]] = [0, 1.0]
    cases.loc[gb & ~simple, ["pred_voxels", "dsc"]] = [40, 0.0]
    table = conventions_table(cases).set_index("id")
    assert table.loc["S6", "dicebench_verdict"] == cl.REPRODUCED
    assert table.loc["S6", "monai_ignore_empty_verdict"] == cl.INCONCLUSIVE and table.loc["S6", "flips"]
    assert set(table.columns) >= {f"{n}_verdict" for n in CONVENTIONS}


def test_paper_tables_under_conventions_align_entries_by_key(repo_root):
    """A convention can add or drop table entries (the present-only view exists only where a class
    is absent from some test case; ignore_empty leaves an all-empty entry without cases): the
    change from ours is taken entry by entry, never by position (the evidence run crashed here)."""
    from dicebench.reporting.conventions import paper_tables_under_conventions
    from dicebench.reporting.paper_tables import load_published

    from test_claims import kervadec

    cases = kervadec({loss: 0.5 for loss in ("dice", "vnet", "gdl", "mime")},
                     {loss: 0.8 for loss in ("dice", "vnet", "gdl", "mime")}, n_seeds=3).assign(paper="kervadec2023")
    other = (cases["class"] == "other_pathology") & cases["case"].isin(["c0", "c1"])
    cases.loc[other, ["gt_voxels", "pred_voxels", "dsc", "hd95"]] = [0, 0, 1.0, 0.0]  # absent, predicted absent
    tables = paper_tables_under_conventions(cases, load_published(repo_root / "paper" / "published.yaml"))
    sizes = tables.groupby("convention").size()
    assert sizes.nunique() > 1  # the conventions do not give the same entries
    ours = tables[tables["convention"] == "dicebench"]
    assert (ours["change"].fillna(0) == 0).all()
    keys = ["paper", "dataset", "row", "column", "metric", "view"]
    merged = tables.merge(ours[keys + ["ours"]], on=keys, how="left", suffixes=("", "_base"))
    np.testing.assert_allclose(merged["change"], merged["ours"] - merged["ours_base"], equal_nan=True)
