"""The paper: a one-page summary of the claims, methods generated from the config, every
generated table and figure, and an appendix that traces every number to its cells; built with
latexmk (or tectonic).

`paper/paper.tex` is the hand-written frame (introduction, discussion); it inputs
`summary.tex` (per paper, its claims and our verdicts with n, from figures/claims.csv, then the
claims figure), `methods.tex` (from the config, so the text can never disagree with what ran),
`results.tex` (one \\input per table, one figure per image, in the order given) and
`appendix.tex` (the full claims table, the supplementary tables, and where each claim's
numbers come from: its cell folders and the command that reruns them). The build runs in a
scratch folder beside the output so the sources under paper/ stay clean.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from dicebench.errors import DicebenchError
from dicebench.io import atomic_path, write_text
from dicebench.reporting.methods import methods_tex
from dicebench.reporting.paper_tables import RERUN, latex_escape

TEX_PACKAGES = "latexmk texlive-latex-base texlive-latex-recommended texlive-latex-extra"

PAPER_NAMES = {"liu2018": "Liu \\& Fu 2018", "kervadec2023": "Kervadec \\& de Bruijne 2023",
               "shen2018": "Shen et al. 2018", "sudre2017": "Sudre et al. 2017"}

FIGURE_CAPTIONS = {
    "learning_curves": "Training loss and validation DSC against iteration, one panel per dataset, learning "
                       "rate and loss, every seed (a star at its best validation; dashed: not converged by the "
                       "trainer's rule), as Shen et al. 2018, Fig. 1.",
    "claims": "Every claim's estimate and interval on the scale where 0 is its threshold and right of 0 means "
              "the claim holds; colour: verdict; right margin: seeds x test cases.",
    "gradient_map": "Gradient of the soft Dice loss with respect to the softmax on one test slice, read from "
                    "autograd on a trained model's prediction: two values per class, a weighted negative of the "
                    "ground truth (Kervadec & de Bruijne 2023, eq. 2).",
    "subpatch": "Sub-patching (Kervadec & de Bruijne 2023, Sec. 2). Left: share of training patches without "
                "each class against patch size, from the training labels (lines) and as drawn in training "
                "(crosses). Right: each loss's mean test DSC over the object classes (+- std over seeds) against "
                "the training patch size, GDL once per empty-class policy (dashed: other than max); the dotted "
                "line marks the configured patch.",
    "lr_sensitivity": "Learning-rate sensitivity of each loss at each imbalance level (Sudre et al. 2017): "
                      "mean test DSC over the object classes, +- SD over seeds.",
    "qualitative": "One test slice: image, ground truth and each loss's prediction, as Kervadec & de Bruijne "
                   "2023, Fig. 1 and Shen et al. 2018, Figs. 2-4.",
}


def flat_name(path: Path) -> str:
    """A unique flat file name for the build folder: the last three path parts joined."""
    return "-".join(part for part in Path(path).parts[-3:] if part not in ("/", "\\"))


def results_tex(tables: list[Path], figures: list[Path]) -> str:
    """\\input of every table and a figure environment per image (file names flattened)."""
    out = []
    for t in tables:
        out.append(rf"\input{{{flat_name(t)}}}")
    out.append(r"\clearpage")  # flush the tables before the figures (no 'too many unprocessed floats')
    for i, f in enumerate(figures):
        stem = "_".join([*Path(f).parts[-3:-1], Path(f).stem])
        key = next((k for k in FIGURE_CAPTIONS if k in stem), None)
        cap = latex_escape(f"{stem.replace('_', ' ')}. " + (FIGURE_CAPTIONS[key] if key else ""))
        out += [r"\begin{figure}[htbp]", r"\centering",
                rf"\includegraphics[width=\textwidth,height=0.4\textheight,keepaspectratio]{{{flat_name(f)}}}",
                rf"\caption{{{cap}}}", r"\end{figure}", r"\clearpage" if i % 2 == 1 else ""]
    return "\n".join(out) + "\n"


def summary_tex(claims_csv: Path | None, figure: Path | None) -> str:
    """Per paper, its claims and our verdicts with n (seeds x test cases), then the claims figure."""
    import pandas as pd

    out = []
    if claims_csv is not None:
        try:
            claims = pd.read_csv(claims_csv)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DicebenchError(f"{claims_csv}: cannot read the claims table ({exc})") from None
        out += [r"\begin{small}", r"\begin{tabularx}{\textwidth}{lXlrr}", r"\toprule",
                r"Id & Claim (data) & Verdict & Estimate & $n$ \\"]
        for paper, rows in claims.groupby("paper", sort=False):
            out += [r"\midrule", rf"\multicolumn{{5}}{{l}}{{\textbf{{{PAPER_NAMES.get(paper, latex_escape(paper))}}}}} \\"]
            for _, r in rows.iterrows():
                est = "–" if pd.isna(r["estimate"]) else f"{r['estimate']:+.1f}"
                if r["test"] == "at_least" and not pd.isna(r["estimate"]):
                    est = f"{r['estimate']:.1f}"
                data = f" ({r['dataset']})" if isinstance(r["dataset"], str) and r["dataset"] else ""
                inferred = " [inferred]" if bool(r["inferred"]) else ""
                n = f"{int(r['n_seeds'])}$\\times${int(r['n_cases'])}" if r["n_seeds"] else "–"
                out.append(" & ".join([latex_escape(r["id"]), latex_escape(f"{r['claim']}{inferred}{data}"),
                                       latex_escape(r["verdict"]), latex_escape(est), n]) + r" \\")
        out += [r"\bottomrule", r"\end{tabularx}", r"\end{small}", "",
                r"\noindent\emph{Estimate}: the claim's difference in DSC points (for ``reaches the published "
                r"value'': our mean DSC); the interval and the rule are in Table~\ref{tab:claims}. "
                r"$n$: training runs (seeds) $\times$ test cases. Fewer than the configured minimum of seeds "
                r"gives \emph{insufficient evidence}."]
    if figure is not None:
        out += [r"\begin{figure}[!ht]", r"\centering",
                rf"\includegraphics[width=\textwidth,height=0.45\textheight,keepaspectratio]{{{flat_name(figure)}}}",
                rf"\caption{{{latex_escape(FIGURE_CAPTIONS['claims'])}}}", r"\label{fig:claims}", r"\end{figure}"]
    return "\n".join(out) + "\n"


def _cell_pattern(cells: list[str]) -> list[str]:
    """Cell folders grouped by everything but the seed: 'results/.../lr0.005/seed{0,1,2}'."""
    groups: dict[str, list[str]] = {}
    for c in cells:
        head, _, seed = c.rpartition("/seed")
        groups.setdefault(head, []).append(seed)
    return [f"{head}/seed{{{','.join(sorted(seeds, key=int))}}}" if len(seeds) > 1 else f"{head}/seed{seeds[0]}"
            for head, seeds in groups.items()]


def trace_tex(claims_csv: Path | None) -> str:
    """Where each claim's numbers come from: its cell folders (every entry of a paper table
    lists its own in the `cells` column of figures/tables/<paper>.csv) and the rerun command."""
    import pandas as pd

    if claims_csv is None:
        return ""
    claims = pd.read_csv(claims_csv)
    out = [r"\subsection{Where every number comes from}",
           r"Each entry of a regenerated table lists its cell folders in the \texttt{cells} column of "
           r"\texttt{figures/tables/<paper>.csv}; each claim lists them in \texttt{figures/claims.csv}. "
           r"A cell is rerun from scratch (retrained, re-inferred, re-evaluated) with the README's command, e.g.",
           r"\begin{quote}\small\texttt{" + latex_escape(RERUN) + r" <cell>/metrics.csv}\end{quote}",
           r"and \texttt{dicebench verify --bundle <bundle> --claim <id>} reruns every cell of one claim and "
           r"compares it with a results bundle (README, ``Checking a run'').",
           r"\begin{small}", r"\begin{tabularx}{\textwidth}{lX}", r"\toprule", r"Claim & Cells \\", r"\midrule"]
    for _, r in claims.iterrows():
        cells = str(r["cells"]) if isinstance(r.get("cells"), str) else ""
        pattern = r"\newline ".join(rf"\texttt{{{latex_escape(p)}}}" for p in _cell_pattern(cells.split(";"))) \
            if cells else "not run"
        out.append(rf"{latex_escape(r['id'])} & {pattern} \\")
    out += [r"\bottomrule", r"\end{tabularx}", r"\end{small}"]
    return "\n".join(out) + "\n"


def appendix_tex(tables: list[Path], claims_csv: Path | None) -> str:
    """The supplementary tables (full claims, conventions, Wilcoxon, compute) and the trace."""
    return "\n".join([r"\appendix", r"\section{Supplementary tables}", r"\FloatBarrier"]
                     + [rf"\input{{{flat_name(t)}}}" for t in tables]
                     + [r"\FloatBarrier", trace_tex(claims_csv)]) + "\n"


def latex_command(out_pdf: Path) -> list[str]:
    """latexmk with pdflatex where TeX Live is installed (Debian's packages), else tectonic (a
    self-contained engine, from conda-forge in envs/report.yaml, which fetches the LaTeX packages
    it needs on first use)."""
    if shutil.which("latexmk") and shutil.which("pdflatex"):
        return ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"]
    if shutil.which("tectonic"):
        return ["tectonic", "--keep-logs", "paper.tex"]
    raise DicebenchError(f"{out_pdf}: neither latexmk/pdflatex nor tectonic found; install the TeX packages "
                         f"(apt-get install {TEX_PACKAGES}) or run with --software-deployment-method conda")


def build_pdf(main_tex: Path, inputs: list[Path], out_pdf: Path, generated: dict[str, str]) -> None:
    """Copy the sources flat into a scratch folder, write the generated files, run LaTeX."""
    command = latex_command(out_pdf)
    out_pdf = Path(out_pdf)
    out_pdf.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".paper-build-", dir=out_pdf.parent) as tmp:
        build = Path(tmp)
        shutil.copy(main_tex, build / "paper.tex")
        for f in inputs:
            f = Path(f)
            if not f.exists():
                raise DicebenchError(f"{f}: paper input not found")
            shutil.copy(f, build / flat_name(f))
        for name, text in generated.items():
            (build / name).write_text(text)
        proc = subprocess.run(command, cwd=build, capture_output=True, text=True)
        if proc.returncode != 0 or not (build / "paper.pdf").exists():
            log = (build / "paper.log").read_text(errors="replace") if (build / "paper.log").exists() else ""
            err = next((ln for ln in log.splitlines() if ln.startswith("!")), proc.stderr.strip()[-300:])
            raise DicebenchError(f"{main_tex}: LaTeX build failed ({err})")
        with atomic_path(out_pdf) as dst:
            shutil.copy(build / "paper.pdf", dst)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None, help="the workflow config (YAML) for the methods")
    p.add_argument("--methods", type=Path, default=None, help="a methods.tex already generated from the config")
    p.add_argument("--tex", required=True, type=Path, help="paper/paper.tex")
    p.add_argument("--tables", nargs="*", type=Path, default=[], help="the papers' tables (.tex), in the results")
    p.add_argument("--appendix", nargs="*", type=Path, default=[],
                   help="supplementary tables (.tex: the full claims, conventions, Wilcoxon, compute)")
    p.add_argument("--claims", type=Path, default=None, help="figures/claims.csv: the summary and the trace")
    p.add_argument("--summary-figure", type=Path, default=None, help="the claims figure, on the summary page")
    p.add_argument("--figures", nargs="*", type=Path, default=[], help="generated PNG/PDF figures")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--methods-out", type=Path, default=None, help="also write methods.tex here")


def run(args: argparse.Namespace) -> int:
    if args.methods is not None:
        methods = args.methods.read_text()
    elif args.config is not None:
        try:
            methods = methods_tex(yaml.safe_load(args.config.read_text()))
        except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
            raise DicebenchError(f"{args.config}: cannot generate the methods from the config ({exc})") from None
    else:
        raise DicebenchError(f"{args.out}: give --methods or --config")
    summary_figure = [args.summary_figure] if args.summary_figure else []
    inputs = [*args.tables, *args.appendix, *args.figures, *summary_figure]
    names = [flat_name(f) for f in inputs]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise DicebenchError(f"{args.out}: paper inputs share a file name ({', '.join(sorted(dup))})")
    if args.methods_out:
        write_text(args.methods_out, methods)
    build_pdf(args.tex, inputs, args.out,
              {"methods.tex": methods, "results.tex": results_tex(args.tables, args.figures),
               "summary.tex": summary_tex(args.claims, args.summary_figure),
               "appendix.tex": appendix_tex(args.appendix, args.claims)})
    return 0
