"""Per-case results in the cases.csv format, simulated from a known world, for testing the
claims' statistics: every cell's per-case DSC is

    dsc = clip(mu[cell variant, class] + case effect[dataset, case, class]
               + run effect[cell, seed] + noise[cell, seed, case, class], 0, 1)

The run effect (one draw per training run) is what makes the seed the unit of replication;
the case effect is shared by every cell evaluated on that test case. A world maps a cell
variant to its true per-class means; `null_world` gives every variant of a claim's groups the
same means, `effect_world` makes every claim hold by about 15 DSC points.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

WMH = ["background", "WMH", "other_pathology"]
ACDC = ["background", "RV", "MYO", "LV"]
ABDOMEN = ["background", "artery", "portal_vein", "liver", "spleen", "stomach", "gallbladder", "pancreas"]
PROSTATE = ["background", "prostate"]

# (paper, experiment, dataset, classes, loss, weighting, lr, patch, loss_variant): the cells the claims read.
CELLS = (
    [("kervadec2023", "kervadec2023", "synth_wmh", WMH, loss, "none", "0.005", "64x64", loss)
     for loss in ("dice", "gdl", "mime")]
    + [("kervadec2023", "kervadec2023", "synth_acdc", ACDC, loss, "none", "0.005", "64x64", loss)
       for loss in ("dice", "vnet", "gdl", "mime")]
    + [("kervadec2023", "kervadec2023_p16x16", "synth_acdc", ACDC, loss, "none", "0.005", "16x16", loss)
       for loss in ("dice", "mime")]
    + [("shen2018", "shen2018", "synth_abdomen", ABDOMEN, "weighted_dice", w, lr, "32x32x32", f"weighted_dice-{w}")
       for w in ("uniform", "simple", "square") for lr in ("0.001", "0.01")]
    + [("liu2018", "liu2018", "synth_prostate", PROSTATE, "vnet", "none", "0.01", "32x48x48", "vnet")]
    + [("sudre2017", "sudre2017", "synth_wmh_rare", WMH, loss, "none", lr, "64x64", loss)
       for loss in ("gdl", "dice", "wce") for lr in ("0.001", "0.01")]
)


def null_world() -> dict:
    """No loss, weighting, learning rate, patch or class differs: every object class 0.7."""
    return {"*": {"*": 0.70}}


def effect_world(effect: float = 0.15) -> dict:
    """Means (by (experiment, loss_variant, lr)) under which every difference claim holds by
    about `effect`; a key maps to {class or '*': mean}."""
    e = effect
    return {
        ("kervadec2023", "mime", "0.005"): {"other_pathology": 0.30 + e},
        ("kervadec2023", "gdl", "0.005"): {"other_pathology": 0.30},
        ("kervadec2023", "dice", "0.005"): {"other_pathology": 0.30, "WMH": 0.30 + e, "*": 0.80},
        ("kervadec2023_p16x16", "dice", "0.005"): {"*": 0.80 - 2 * e},
        ("kervadec2023_p16x16", "mime", "0.005"): {"*": 0.80 - e / 2 + e / 2},
        ("shen2018", "weighted_dice-uniform", "0.001"): {"*": 0.60 + e},
        ("shen2018", "weighted_dice-simple", "0.001"): {"*": 0.60},
        ("shen2018", "weighted_dice-square", "0.001"): {"*": 0.60 - e},
        ("shen2018", "weighted_dice-uniform", "0.01"): {"*": 0.60 + e},
        ("shen2018", "weighted_dice-simple", "0.01"): {"*": 0.60 + 2 * e},
        ("shen2018", "weighted_dice-square", "0.01"): {"*": 0.60 + e / 2},
        ("liu2018", "vnet", "0.01"): {"*": 0.95},
        ("sudre2017", "gdl", "0.001"): {"WMH": 0.60},
        ("sudre2017", "gdl", "0.01"): {"WMH": 0.60},
        ("sudre2017", "dice", "0.001"): {"WMH": 0.60 - e},
        ("sudre2017", "dice", "0.01"): {"WMH": 0.60 - 2 * e},
        ("sudre2017", "wce", "0.001"): {"WMH": 0.60 - 2 * e},
        ("sudre2017", "wce", "0.01"): {"WMH": 0.60 - e},
    }


BASE = {"background": 0.98, "WMH": 0.60, "other_pathology": 0.40, "RV": 0.80, "MYO": 0.80, "LV": 0.85,
        "prostate": 0.85}


def simulate(world: dict, n_seeds: int, n_cases: int, rng: np.random.Generator, run_sd: float = 0.02,
             case_sd: float = 0.05, noise_sd: float = 0.03, absent: dict | None = None) -> pd.DataFrame:
    """cases.csv rows for every cell of CELLS. `absent` maps a class to the share of test cases
    whose reference lacks it (those rows get gt_voxels 0)."""
    absent = absent or {}
    rows = []
    case_effects: dict = {}
    presence: dict = {}
    for paper, exp, ds, classes, loss, w, lr, patch, variant in CELLS:
        means = world.get((exp, variant, lr), world.get("*", {}))
        for seed in range(n_seeds):
            run = rng.normal(0, run_sd)
            for c in range(n_cases):
                for k, cls in enumerate(classes):
                    key = (ds, c, cls)
                    if key not in case_effects:
                        case_effects[key] = rng.normal(0, case_sd)
                        presence[key] = rng.random() >= absent.get(cls, 0.0)
                    mu = means.get(cls, means.get("*", BASE.get(cls, 0.7)) if cls != "background" else 0.98)
                    dsc = float(np.clip(mu + case_effects[key] + run + rng.normal(0, noise_sd), 0, 1))
                    rows.append({"experiment": exp, "paper": paper, "dataset": ds,
                                 "network": "rdd" if paper == "liu2018" else "n", "loss": loss,
                                 "weighting": w, "lr": lr, "seed": seed, "case": f"c{c:03d}", "class_index": k,
                                 "class": cls, "dsc": dsc, "hd95": 1.0,
                                 "gt_voxels": 100 if presence[key] else 0, "pred_voxels": 100,
                                 "patch": patch, "loss_variant": variant,
                                 "sweep_of": "kervadec2023" if exp.startswith("kervadec2023") else exp,
                                 "cell": f"results/{exp}/{ds}/n/{loss}-{w}/lr{lr}/seed{seed}"})
    return pd.DataFrame(rows)
