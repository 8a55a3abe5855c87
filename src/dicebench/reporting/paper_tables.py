"""The four papers' tables, regenerated from our cells beside the published numbers.

Input: an experiment's `cases.csv` (every cell's per-case DSC/HD95, see tables.collect_cases),
`paper/published.yaml` (the transcribed numbers, each with its source) and the datasets'
`dataset.json` (which real dataset a synthetic phantom stands in for).
Output: one long-form CSV (every number with its CI and the published value) plus a
Markdown and a LaTeX rendering in the paper's layout.

- Liu & Fu 2018: mean DSC of rdd + vnet on prostate vs their 86.42 %.
- Kervadec & de Bruijne 2023, Table 1: losses x (ACDC RV/MYO/LV/All, WMH WMH/Other/All), "DSC / HD95".
- Shen et al. 2018, Table 1: classes + AVG/MAX/MIN x (weighting, lr); best of each row in bold.
- Sudre et al. 2017: DSC ('all' object classes) by loss x learning rate at each imbalance level
  (one dataset = one level, labelled by its rarest class's voxel share in the test set).

Uncertainty: `ours` is the mean over test cases of the seed-mean per case; `std` is the std over
seeds of the per-seed mean (blank with one seed); `ci_lo`/`ci_hi` the 95 % percentile bootstrap
CI over cases (stats.bootstrap_ci). DSC in %, HD95 in mm.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from dicebench.errors import DicebenchError
from dicebench.io import atomic_path, write_text
from dicebench.reporting.results import (case_values, dataset_kind, imbalance_level, load_cases,  # noqa: F401
                                         stands_in_for)
from dicebench.reporting.stats import bootstrap_ci, paired_wilcoxon

PAPERS = ("liu2018", "kervadec2023", "shen2018", "sudre2017")
KERVADEC_LOSSES = ["dice", "vnet", "gdl", "mime"]
KERVADEC_COLUMNS = {"acdc": ["RV", "MYO", "LV", "all"], "wmh": ["WMH", "other_pathology", "all"]}
SHEN_ROWS = ["background", "artery", "portal_vein", "liver", "spleen", "stomach", "gallbladder", "pancreas",
             "AVG", "MAX", "MIN"]
SHEN_COLUMNS = [(w, lr) for lr in ("0.001", "0.01") for w in ("uniform", "simple", "square")]
LONG_COLUMNS = ["paper", "dataset", "stands_in_for", "row", "column", "metric", "ours", "std", "ci_lo", "ci_hi",
                "n_seeds", "n_cases", "published", "diff", "source"]


# ---------------------------------------------------------------- inputs


def load_published(path: Path) -> pd.DataFrame:
    """The transcribed published numbers, one row per published cell."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
        recs = pd.DataFrame(doc["records"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise DicebenchError(f"{path}: cannot read the published numbers ({exc})") from None
    missing = {"paper", "row", "metric", "value", "source"} - set(recs.columns)
    if missing:
        raise DicebenchError(f"{path}: records lack field(s) {', '.join(sorted(missing))}")
    for col in ("dataset", "column", "weighting", "lr"):
        if col not in recs:
            recs[col] = None
    return recs


def summarize(cases: pd.DataFrame, cls: str, metric: str = "dsc", **sel) -> dict:
    """ours (mean over cases), std over seeds, 95 % bootstrap CI over cases; DSC scaled to %."""
    scale = 100.0 if metric == "dsc" else 1.0
    per_case = case_values(cases, cls, metric, **sel)
    if per_case.empty:
        return {"ours": math.nan, "std": math.nan, "ci_lo": math.nan, "ci_hi": math.nan, "n_seeds": 0, "n_cases": 0}
    sub = cases
    for k, v in sel.items():
        sub = sub[sub[k].astype(str) == str(v)]
    seeds = sorted(sub["seed"].unique())
    per_seed = [case_values(sub[sub["seed"] == s], cls, metric).mean() for s in seeds]
    lo, hi = bootstrap_ci(per_case.to_numpy())
    return {"ours": scale * float(per_case.mean()),
            "std": scale * float(np.std(per_seed, ddof=1)) if len(seeds) > 1 else math.nan,
            "ci_lo": scale * lo, "ci_hi": scale * hi, "n_seeds": len(seeds), "n_cases": int(per_case.size)}


def _published(pub: pd.DataFrame, **sel) -> tuple[float, str]:
    sub = pub
    for k, v in sel.items():
        sub = sub[sub[k].astype(str) == str(v)]
    if sub.empty:
        return (math.nan, "")
    return (float(sub["value"].iloc[0]), str(sub["source"].iloc[0]))


def _row(paper, dataset, standin, row, column, metric, s, pub_value, source) -> dict:
    return {"paper": paper, "dataset": dataset, "stands_in_for": standin, "row": row, "column": column,
            "metric": metric, **s, "published": pub_value,
            "diff": s["ours"] - pub_value if np.isfinite(pub_value) else math.nan, "source": source}


def liu_table(cases: pd.DataFrame, pub: pd.DataFrame, standin: dict[str, str]) -> pd.DataFrame:
    rows = []
    datasets = [d for d in dict.fromkeys(cases["dataset"]) if dataset_kind(cases, d) == "prostate"] or ["prostate"]
    value, source = _published(pub, paper="liu2018", metric="dsc")
    for ds in datasets:
        s = summarize(cases, "all", "dsc", dataset=ds, network="rdd", loss="vnet")
        rows.append(_row("liu2018", ds, standin.get(ds, ""), "rdd + vnet", "prostate", "dsc", s, value, source))
    return pd.DataFrame(rows, columns=LONG_COLUMNS)


def kervadec_table(cases: pd.DataFrame, pub: pd.DataFrame, standin: dict[str, str]) -> pd.DataFrame:
    rows = []
    datasets = {dataset_kind(cases, d): d for d in dict.fromkeys(cases["dataset"])}
    for kind, columns in KERVADEC_COLUMNS.items():
        ds = datasets.get(kind, kind)
        for loss in KERVADEC_LOSSES:
            for col in columns:
                for metric in ("dsc", "hd95"):
                    s = summarize(cases, col, metric, dataset=ds, loss=loss)
                    value, source = _published(pub, paper="kervadec2023", dataset=kind, row=loss, column=col,
                                               metric=metric)
                    rows.append(_row("kervadec2023", ds, standin.get(ds, ""), loss, f"{kind.upper()} {col}",
                                     metric, s, value, source))
    return pd.DataFrame(rows, columns=LONG_COLUMNS)


def shen_table(cases: pd.DataFrame, pub: pd.DataFrame, standin: dict[str, str]) -> pd.DataFrame:
    """MAX/MIN are over the class means of a column (as in the paper), so they carry no CI."""
    rows = []
    datasets = [d for d in dict.fromkeys(cases["dataset"]) if dataset_kind(cases, d) == "abdomen"] or ["abdomen"]
    ds = datasets[0]
    for w, lr in SHEN_COLUMNS:
        col = f"{w} lr={lr}"
        class_means = {}
        for cls in SHEN_ROWS[:-2]:
            s = summarize(cases, cls, "dsc", dataset=ds, loss="weighted_dice", weighting=w, lr=lr)
            if cls != "AVG":
                class_means[cls] = s["ours"]
            value, source = _published(pub, paper="shen2018", row=cls, weighting=w, lr=lr)
            rows.append(_row("shen2018", ds, standin.get(ds, ""), cls, col, "dsc", s, value, source))
        finite = [v for v in class_means.values() if np.isfinite(v)]
        for stat, fn in (("MAX", max), ("MIN", min)):
            v = fn(finite) if finite else math.nan
            s = {"ours": v, "std": math.nan, "ci_lo": math.nan, "ci_hi": math.nan,
                 "n_seeds": rows[-1]["n_seeds"], "n_cases": rows[-1]["n_cases"]}
            value, source = _published(pub, paper="shen2018", row=stat, weighting=w, lr=lr)
            rows.append(_row("shen2018", ds, standin.get(ds, ""), stat, col, "dsc", s, value, source))
    return pd.DataFrame(rows, columns=LONG_COLUMNS)


def sudre_table(cases: pd.DataFrame, pub: pd.DataFrame, standin: dict[str, str]) -> pd.DataFrame:
    """Sudre et al. publish no numbers here (abstract only): `published` stays empty."""
    rows = []
    for ds in dict.fromkeys(cases["dataset"]):
        level = imbalance_level(cases, ds)
        sub = cases[cases["dataset"] == ds]
        for loss in dict.fromkeys(sub["loss"]):
            for lr in sorted(set(sub.loc[sub["loss"] == loss, "lr"]), key=float):
                s = summarize(cases, "all", "dsc", dataset=ds, loss=loss, lr=lr)
                rows.append(_row("sudre2017", ds, standin.get(ds, ""), loss, f"{level}, lr={lr}", "dsc", s,
                                 math.nan, ""))
    return pd.DataFrame(rows, columns=LONG_COLUMNS)


BUILDERS = {"liu2018": liu_table, "kervadec2023": kervadec_table, "shen2018": shen_table, "sudre2017": sudre_table}


def wilcoxon_table(cases: pd.DataFrame) -> pd.DataFrame:
    """Paired Wilcoxon signed-rank tests over test cases ('all' classes DSC) between every pair of
    variants (loss-weighting) that share dataset, network and learning rate."""
    rows = []
    if cases.empty:
        return pd.DataFrame(columns=["experiment", "dataset", "network", "lr", "a", "b", "n_pairs", "mean_diff",
                                     "statistic", "p_value"])
    cases = cases.assign(variant=cases["loss"] + "-" + cases["weighting"])
    for (exp, ds, net, lr), g in cases.groupby(["experiment", "dataset", "network", "lr"], sort=False):
        variants = list(dict.fromkeys(g["variant"]))
        for i, a in enumerate(variants):
            for b in variants[i + 1:]:
                va, vb = case_values(g, "all", variant=a), case_values(g, "all", variant=b)
                common = va.index.intersection(vb.index)
                stat, p, n = paired_wilcoxon(va[common].to_numpy(), vb[common].to_numpy())
                rows.append({"experiment": exp, "dataset": ds, "network": net, "lr": lr, "a": a, "b": b,
                             "n_pairs": n, "mean_diff": 100 * float((va[common] - vb[common]).mean())
                             if len(common) else math.nan, "statistic": stat, "p_value": p})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- rendering


def _fmt(v: float, digits: int = 1) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def _entry(r: pd.Series) -> str:
    return "not run" if not np.isfinite(r["ours"]) else _fmt(r["ours"])


def wide(long: pd.DataFrame, paper: str, bold_best: bool = False) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    """Header, body and bold mask for the paper's layout; each entry 'ours [published] (diff)'.

    Kervadec's entries pair the metrics as 'DSC / HD95'."""
    if long.empty:
        return (["row"], [], [])
    columns = list(dict.fromkeys(long["column"]))
    rows = list(dict.fromkeys(long["row"]))
    header, body, bold = ["row"] + columns, [], []
    for row in rows:
        line, vals = [row], []
        for col in columns:
            cell = long[(long["row"] == row) & (long["column"] == col)]
            dsc = cell[cell["metric"] == "dsc"]
            hd = cell[cell["metric"] == "hd95"]
            d = dsc.iloc[0] if len(dsc) else None
            if d is None or not np.isfinite(d["ours"]):
                text, v = "not run", -np.inf
            else:
                text, v = _fmt(d["ours"]), d["ours"]
                if d["n_seeds"] > 1 and np.isfinite(d["std"]):
                    text += f" ± {_fmt(d['std'])}"
                if len(hd):
                    text += f" / {_fmt(hd.iloc[0]['ours'])}"
                if np.isfinite(d["ci_lo"]):
                    text += f" [{_fmt(d['ci_lo'])}, {_fmt(d['ci_hi'])}]"
            if d is not None and np.isfinite(d["published"]):
                pub = _fmt(d["published"], 2 if paper == "liu2018" else 1)
                if len(hd) and np.isfinite(hd.iloc[0]["published"]):
                    pub += f" / {_fmt(hd.iloc[0]['published'])}"
                text += f" (pub. {pub}; Δ {_fmt(d['diff'])})"
            line.append(text)
            vals.append(v)
        body.append(line)
        best = max(vals) if vals else -np.inf
        bold.append([False] + [bold_best and np.isfinite(v) and v == best for v in vals])
    return header, body, bold


def to_markdown(header, body, bold) -> str:
    def cell(t: str) -> str:
        return str(t).replace("|", "\\|")

    out = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    for line, b in zip(body, bold):
        out.append("| " + " | ".join(f"**{cell(t)}**" if bb else cell(t) for t, bb in zip(line, b)) + " |")
    return "\n".join(out) + "\n"


def latex_escape(text: str) -> str:
    rep = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
           "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "Δ": r"$\Delta$",
           "–": "--", "−": "$-$", "×": r"$\times$", "≥": r"$\geq$", "≤": r"$\leq$"}
    return "".join(rep.get(c, c) for c in str(text))


def to_latex(header, body, bold, caption: str, label: str) -> str:
    cols = "l" + "p{2.6cm}" * (len(header) - 1)
    lines = [r"\begin{table}[htbp]", r"\centering", r"\scriptsize", r"\resizebox{\textwidth}{!}{%",
             rf"\begin{{tabular}}{{{cols}}}", r"\toprule",
             " & ".join(latex_escape(h) for h in header) + r" \\", r"\midrule"]
    for line, b in zip(body, bold):
        lines.append(" & ".join(rf"\textbf{{{latex_escape(t)}}}" if bb else latex_escape(t)
                                for t, bb in zip(line, b)) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}", rf"\caption{{{latex_escape(caption)}}}", rf"\label{{{label}}}",
              r"\end{table}"]
    return "\n".join(lines) + "\n"


CAPTIONS = {
    "liu2018": "Liu & Fu 2018: mean DSC (%) of the rdd network with the V-Net Dice loss on prostate",
    "kervadec2023": "Kervadec & de Bruijne 2023, Table 1: mean test DSC (%) / HD95 (mm)",
    "shen2018": "Shen et al. 2018, Table 1: DSC (%) per class for the uniform, simple and square weightings "
                "at lr 0.001 and 0.01; best of each row in bold",
    "sudre2017": "Sudre et al. 2017: DSC (%) over the object classes by loss and learning rate at each "
                 "imbalance level (rarest class's share of the test voxels)",
}


def caption_for(paper: str, long: pd.DataFrame) -> str:
    standins = sorted({f"{d} is a {s}" for d, s in zip(long["dataset"], long["stands_in_for"]) if s})
    cap = CAPTIONS[paper] + ". Entries: ours (mean over test cases"
    cap += "; ± std over seeds" if (long["n_seeds"] > 1).any() else ""
    cap += ") [95 % bootstrap CI over cases] (pub. published value; Δ ours − published)."
    if standins:
        cap += " Data: " + "; ".join(standins) + "."
    return cap


def write_paper_table(paper: str, cases: pd.DataFrame, pub: pd.DataFrame, standin: dict[str, str],
                      out_csv: Path, out_md: Path, out_tex: Path) -> pd.DataFrame:
    if paper not in BUILDERS:
        raise DicebenchError(f"unknown paper '{paper}' (known: {', '.join(PAPERS)})")
    long = BUILDERS[paper](cases, pub, standin)
    with atomic_path(out_csv) as tmp:
        long.to_csv(tmp, index=False)
    header, body, bold = wide(long, paper, bold_best=(paper == "shen2018"))
    caption = caption_for(paper, long)
    write_text(out_md, f"# {CAPTIONS[paper]}\n\n{caption}\n\n" + to_markdown(header, body, bold))
    write_text(out_tex, to_latex(header, body, bold, caption, f"tab:{paper}"))
    return long


def write_wilcoxon(cases: pd.DataFrame, out_csv: Path, out_md: Path, out_tex: Path) -> pd.DataFrame:
    table = wilcoxon_table(cases)
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    header = list(table.columns)
    body = [[_fmt(v, 3 if c == "p_value" else 1) if isinstance(v, float) else str(v) for c, v in r.items()]
            for _, r in table.iterrows()]
    bold = [[False] * len(header) for _ in body]
    cap = ("Supplementary: paired Wilcoxon signed-rank tests (two-sided) over test cases of the DSC over the "
           "object classes between the variants of each experiment (mean_diff = a - b in DSC %).")
    write_text(out_md, f"# Paired Wilcoxon signed-rank tests\n\n{cap}\n\n" + to_markdown(header, body, bold))
    write_text(out_tex, to_latex(header, body, bold, cap, "tab:wilcoxon"))
    return table


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--paper", required=True, help=f"one of {', '.join(PAPERS)}, or 'wilcoxon'")
    p.add_argument("--cases", nargs="*", type=Path, default=[], help="experiments' cases.csv files")
    p.add_argument("--published", type=Path, default=Path("paper/published.yaml"))
    p.add_argument("--datasets", nargs="*", type=Path, default=[], help="raw dataset folders (dataset.json)")
    p.add_argument("--csv", required=True, type=Path)
    p.add_argument("--md", required=True, type=Path)
    p.add_argument("--tex", required=True, type=Path)


def run(args: argparse.Namespace) -> int:
    cases = load_cases(args.cases)
    if args.paper == "wilcoxon":
        write_wilcoxon(cases, args.csv, args.md, args.tex)
        return 0
    write_paper_table(args.paper, cases, load_published(args.published), stands_in_for(args.datasets),
                      args.csv, args.md, args.tex)
    return 0
