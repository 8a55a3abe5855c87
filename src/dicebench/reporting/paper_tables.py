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

Uncertainty (the training run is the unit of replication, dicebench.reporting.stats): for each
seed, the mean over the test cases; `ours` is the mean of those per-seed means, `std` their SD
over seeds, `ci_lo`/`ci_hi` the 95 % t-interval over seeds. With one seed there is no interval
(`n_seeds` 1 says so; `case_sd` still gives the spread over test cases). DSC in %, HD95 in mm.

Views: a class absent from some test cases is shown twice where the two differ: over every
case (our convention: nothing to find and nothing found scores DSC 100, HD95 0) and over the
cases whose reference contains the class (`view` = "present"). `cells` names the cell folders
every number was computed from, so a reader can rerun them (README, "One cell, one folder").
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from dicebench.errors import DicebenchError
from dicebench.io import atomic_path, write_text
from dicebench.reporting.results import (case_values, dataset_kind, imbalance_level, load_cases, per_case,
                                         select, stands_in_for)
from dicebench.reporting.stats import paired_wilcoxon, seed_interval

PAPERS = ("liu2018", "kervadec2023", "shen2018", "sudre2017")
KERVADEC_LOSSES = ["dice", "vnet", "gdl", "mime"]
KERVADEC_COLUMNS = {"acdc": ["RV", "MYO", "LV", "all"], "wmh": ["WMH", "other_pathology", "all"]}
SHEN_ROWS = ["background", "artery", "portal_vein", "liver", "spleen", "stomach", "gallbladder", "pancreas",
             "AVG", "MAX", "MIN"]
SHEN_COLUMNS = [(w, lr) for lr in ("0.001", "0.01") for w in ("uniform", "simple", "square")]
LONG_COLUMNS = ["paper", "dataset", "stands_in_for", "row", "column", "metric", "view", "ours", "std", "ci_lo",
                "ci_hi", "case_sd", "n_seeds", "n_cases", "published", "diff", "source", "cells", "command"]
# Retrains, re-infers and re-evaluates the cells of an entry (README, "Rerunning one cell of a table").
RERUN = ".venv/bin/snakemake --cores 2 --forcerun=train"


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


def summarize(cases: pd.DataFrame, cls: str, metric: str = "dsc", present_only: bool = False, **sel) -> dict:
    """ours (mean over seeds of the per-seed case mean), std over seeds, 95 % t-interval over
    seeds, the SD over test cases of the seed-mean per case, n; DSC scaled to %."""
    scale = 100.0 if metric == "dsc" else 1.0
    sub = select(cases, **sel)
    pc = per_case(sub, cls, metric, present_only)
    empty = {"ours": math.nan, "std": math.nan, "ci_lo": math.nan, "ci_hi": math.nan, "case_sd": math.nan,
             "n_seeds": 0, "n_cases": 0, "cells": ""}
    if pc.empty:
        return empty
    interval = seed_interval(scale * pc.groupby("seed")["value"].mean())
    by_case = scale * pc.groupby("case")["value"].mean()
    cells = ";".join(sorted(set(sub["cell"].astype(str)))) if "cell" in sub.columns else ""
    return {"ours": interval.estimate, "std": interval.sd, "ci_lo": interval.lo, "ci_hi": interval.hi,
            "case_sd": float(by_case.std(ddof=1)) if len(by_case) > 1 else math.nan,
            "n_seeds": interval.n_seeds, "n_cases": int(by_case.size), "cells": cells}


def _views(cases: pd.DataFrame, cls: str, metric: str, **sel) -> list[tuple[str, dict]]:
    """The all-cases summary, and the present-only one when some test case lacks the class."""
    full = summarize(cases, cls, metric, **sel)
    if cls in ("all", "AVG"):
        return [("all cases", full)]
    present = summarize(cases, cls, metric, present_only=True, **sel)
    if present["n_cases"] in (0, full["n_cases"]):
        return [("all cases", full)]
    return [("all cases", full), ("present", present)]


def _published(pub: pd.DataFrame, **sel) -> tuple[float, str]:
    sub = pub
    for k, v in sel.items():
        sub = sub[sub[k].astype(str) == str(v)]
    if sub.empty:
        return (math.nan, "")
    return (float(sub["value"].iloc[0]), str(sub["source"].iloc[0]))


def rerun_command(cells: str) -> str:
    """The command that rebuilds the cells (';'-separated folders) an entry was computed from."""
    return f"{RERUN} " + " ".join(f"{c}/metrics.csv" for c in cells.split(";")) if cells else ""


def _row(paper, dataset, standin, row, column, metric, s, pub_value, source, view="all cases") -> dict:
    return {"paper": paper, "dataset": dataset, "stands_in_for": standin, "row": row, "column": column,
            "metric": metric, "view": view, **s, "published": pub_value,
            "diff": s["ours"] - pub_value if np.isfinite(pub_value) else math.nan, "source": source,
            "command": rerun_command(s.get("cells", ""))}


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
                    value, source = _published(pub, paper="kervadec2023", dataset=kind, row=loss, column=col,
                                               metric=metric)
                    for view, s in _views(cases, col, metric, dataset=ds, loss=loss):
                        rows.append(_row("kervadec2023", ds, standin.get(ds, ""), loss, f"{kind.upper()} {col}",
                                         metric, s, value, source, view))
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
            s = {"ours": v, "std": math.nan, "ci_lo": math.nan, "ci_hi": math.nan, "case_sd": math.nan,
                 "n_seeds": rows[-1]["n_seeds"], "n_cases": rows[-1]["n_cases"], "cells": rows[-1]["cells"]}
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


def _ours(r) -> str:
    """'84.2 ± 0.6' over seeds; one seed has no spread to show."""
    if r is None or not np.isfinite(r["ours"]):
        return "not run"
    return _fmt(r["ours"]) + (f" ± {_fmt(r['std'])}" if r["n_seeds"] > 1 and np.isfinite(r["std"]) else "")


def _n(r) -> str:
    return "–" if r is None or not r["n_seeds"] else f"{int(r['n_seeds'])}×{int(r['n_cases'])}"


def _pick(long: pd.DataFrame, view: str = "all cases", **sel) -> pd.Series | None:
    sub = long
    for k, v in {**sel, "view": view}.items():
        sub = sub[sub[k] == v]
    return sub.iloc[0] if len(sub) else None


@dataclass
class Block:
    """One tabular of a paper's table: a title, a header row and the body (with bold marks)."""

    title: str
    header: list[str]
    body: list[list[str]] = field(default_factory=list)
    bold: list[list[bool]] = field(default_factory=list)

    def add(self, cells: list[str], bold: list[bool] | None = None) -> None:
        self.body.append(cells)
        self.bold.append(bold or [False] * len(cells))


def _blocks_liu(long: pd.DataFrame) -> list[Block]:
    b = Block("", ["data", "ours (DSC %)", "95 % CI over seeds", "n (seeds×cases)", "published", "Δ"])
    for _, r in long.iterrows():
        b.add([r["dataset"], _ours(r), _ci(r), _n(r), _fmt(r["published"], 2), _fmt(r["diff"])])
    return [b]


def _ci(r) -> str:
    if r is None or not np.isfinite(r["ci_lo"]):
        return "1 seed: none" if r is not None and r["n_seeds"] == 1 else "–"
    return f"[{_fmt(r['ci_lo'])}, {_fmt(r['ci_hi'])}]"


def _blocks_kervadec(long: pd.DataFrame) -> list[Block]:
    blocks = []
    for dataset in dict.fromkeys(long["dataset"]):
        sub = long[long["dataset"] == dataset]
        present = (sub["view"] == "present").any()
        header = ["loss", "class", "DSC ours", "DSC pub.", "Δ", "HD95 ours", "HD95 pub.", "n"]
        if present:
            header.insert(3, "DSC, cases with the class")
        b = Block(f"{dataset} ({sub['stands_in_for'].iloc[0] or 'real data'})", header)
        for loss in dict.fromkeys(sub["row"]):
            for col in dict.fromkeys(sub["column"]):
                d = _pick(sub, row=loss, column=col, metric="dsc")
                h = _pick(sub, row=loss, column=col, metric="hd95")
                cells = [loss, col.split(" ", 1)[1], _ours(d), _fmt(d["published"]) if d is not None else "–",
                         _fmt(d["diff"]) if d is not None else "–", _fmt(h["ours"]) if h is not None else "–",
                         _fmt(h["published"]) if h is not None else "–", _n(d)]
                if present:
                    p = _pick(sub, "present", row=loss, column=col, metric="dsc")
                    cells.insert(3, f"{_ours(p)} (n={int(p['n_cases'])})" if p is not None else "=")
                b.add(cells)
        blocks.append(b)
    return blocks


def _blocks_shen(long: pd.DataFrame) -> list[Block]:
    blocks = []
    for lr in ("0.001", "0.01"):
        cols = [c for c in dict.fromkeys(long["column"]) if c.endswith(f"lr={lr}")]
        if not cols:
            continue
        header = ["class"]
        for c in cols:
            w = c.split(" ")[0]
            header += [f"{w} ours", "pub.", "Δ"]
        b = Block(f"learning rate {lr}", header)
        for row in dict.fromkeys(long["row"]):
            cells, bold, vals = [row], [False], []
            for c in cols:
                r = _pick(long, row=row, column=c, metric="dsc")
                cells += [_ours(r), _fmt(r["published"]) if r is not None else "–",
                          _fmt(r["diff"]) if r is not None else "–"]
                vals.append(r["ours"] if r is not None and np.isfinite(r["ours"]) else -np.inf)
            best = max(vals) if vals else -np.inf
            for v in vals:
                bold += [bool(np.isfinite(v) and v == best), False, False]
            b.add(cells, bold)
        blocks.append(b)
    return blocks


def _blocks_sudre(long: pd.DataFrame) -> list[Block]:
    blocks = []
    for dataset in dict.fromkeys(long["dataset"]):
        sub = long[long["dataset"] == dataset]
        cols = list(dict.fromkeys(sub["column"]))
        b = Block(cols[0].rsplit(", lr=", 1)[0] if cols else dataset,
                  ["loss"] + [f"lr {c.rsplit('lr=', 1)[-1]}" for c in cols] + ["n"])
        for loss in dict.fromkeys(sub["row"]):
            rs = [_pick(sub, row=loss, column=c, metric="dsc") for c in cols]
            b.add([loss] + [_ours(r) for r in rs] + [_n(next((r for r in rs if r is not None), None))])
        blocks.append(b)
    return blocks


BLOCKS = {"liu2018": _blocks_liu, "kervadec2023": _blocks_kervadec, "shen2018": _blocks_shen,
          "sudre2017": _blocks_sudre}


def to_markdown(blocks: list[Block]) -> str:
    def cell(t: str) -> str:
        return str(t).replace("|", "\\|")

    out = []
    for b in blocks:
        if b.title:
            out += [f"**{b.title}**", ""]
        out += ["| " + " | ".join(map(cell, b.header)) + " |", "|" + "---|" * len(b.header)]
        for line, bold in zip(b.body, b.bold):
            out.append("| " + " | ".join(f"**{cell(t)}**" if bb else cell(t) for t, bb in zip(line, bold)) + " |")
        out.append("")
    return "\n".join(out)


def latex_escape(text: str) -> str:
    rep = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
           "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "Δ": r"$\Delta$",
           "–": "--", "−": "$-$", "×": r"$\times$", "≥": r"$\geq$", "≤": r"$\leq$"}
    return "".join(rep.get(c, c) for c in str(text))


def to_latex(blocks: list[Block], caption: str, label: str) -> str:
    """One table of stacked tabulars at a readable size (one step under the body font, no
    shrinking to fit)."""
    lines = [r"\begin{table}[htbp]", r"\centering", r"\small", r"\setlength{\tabcolsep}{3.5pt}"]
    for i, b in enumerate(blocks):
        lines += [rf"\begin{{tabular}}{{l{'r' * (len(b.header) - 1)}}}", r"\toprule"]
        if b.title:
            lines.append(rf"\multicolumn{{{len(b.header)}}}{{l}}{{\textit{{{latex_escape(b.title)}}}}} \\")
        lines += [" & ".join(latex_escape(h) for h in b.header) + r" \\", r"\midrule"]
        for line, bold in zip(b.body, b.bold):
            lines.append(" & ".join(rf"\textbf{{{latex_escape(t)}}}" if bb else latex_escape(t)
                                    for t, bb in zip(line, bold)) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        if i < len(blocks) - 1:
            lines.append(r"\par\medskip")
    lines += [rf"\caption{{{latex_escape(caption)}}}", rf"\label{{{label}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


CAPTIONS = {
    "liu2018": "Liu & Fu 2018: mean DSC (%) of the rdd network with the V-Net Dice loss on prostate",
    "kervadec2023": "Kervadec & de Bruijne 2023, Table 1: mean test DSC (%) / HD95 (mm)",
    "shen2018": "Shen et al. 2018, Table 1: DSC (%) per class for the uniform, simple and square weightings "
                "at lr 0.001 and 0.01; best of each row in bold",
    "sudre2017": "Sudre et al. 2017: DSC (%) over the object classes by loss and learning rate at each "
                 "imbalance level (rarest class's share of the test voxels)",
}


NOTES = {
    "shen2018": "The paper disagrees with itself: its abstract gives average Dice 81.3 / 59.5 / 31.7 % (lr 0.001) "
                "and 78.2 / 81.0 / 58.5 % (lr 0.01) for uniform / simple / square, and its discussion says the "
                "simple model rose 'from 59.5% to 81.0%', while Table 1's AVG row (and Sec. 3's text) reads "
                "88.3 / 74.2 / 44.0 and 86.4 / 88.9 / 78.9; we compare with Table 1.",
    "kervadec2023": "HD95 counts the scan diagonal when an object exists but none is predicted or vice versa, "
                    "and 0 when neither exists (Sec. 3). A class absent from some test cases is also shown over "
                    "the cases that contain it.",
}


def caption_for(paper: str, long: pd.DataFrame) -> str:
    standins = sorted({f"{d} is a {s}" for d, s in zip(long["dataset"], long["stands_in_for"]) if s})
    seeds = sorted(set(int(n) for n in long["n_seeds"] if n))
    cap = CAPTIONS[paper] + ". Ours: mean over training runs (seeds) of each run's mean over the test cases"
    cap += ", ± SD over seeds" if seeds and max(seeds) > 1 else ""
    cap += f"; n = seeds × test cases ({'one seed: no spread or interval' if seeds == [1] else 'see n'})"
    cap += "; pub. = published value; Δ = ours − published; – = not published or not defined."
    if paper in NOTES:
        cap += " " + NOTES[paper]
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
    blocks = BLOCKS[paper](long)
    caption = caption_for(paper, long)
    write_text(out_md, f"# {CAPTIONS[paper]}\n\n{caption}\n\n" + to_markdown(blocks))
    write_text(out_tex, to_latex(blocks, caption, f"tab:{paper}"))
    return long


def write_wilcoxon(cases: pd.DataFrame, out_csv: Path, out_md: Path, out_tex: Path) -> pd.DataFrame:
    table = wilcoxon_table(cases)
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    header = list(table.columns)
    body = [[_fmt(v, 3 if c == "p_value" else 1) if isinstance(v, float) else str(v) for c, v in r.items()]
            for _, r in table.iterrows()]
    block = Block("", header)
    for line in body:
        block.add(line)
    cap = ("Supplementary: paired Wilcoxon signed-rank tests (two-sided) over test cases of the DSC over the "
           "object classes between the variants of each experiment (mean_diff = a - b in DSC %). Test cases, "
           "not training runs, are the sample here: these compare trained models, not losses.")
    write_text(out_md, f"# Paired Wilcoxon signed-rank tests\n\n{cap}\n\n" + to_markdown([block]))
    write_text(out_tex, to_latex([block], cap, "tab:wilcoxon"))
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
