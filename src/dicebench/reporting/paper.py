"""The paper: methods generated from the config, every generated table and figure, built with latexmk.

`paper/paper.tex` is the hand-written frame (introduction, discussion); it inputs
`methods.tex` (from the config, so the text can never disagree with what ran) and
`results.tex` (one \\input per table, one figure per image, in the order given). The build
runs in a scratch folder beside the output so the sources under paper/ stay clean.
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
from dicebench.reporting.paper_tables import latex_escape

TEX_PACKAGES = "latexmk texlive-latex-base texlive-latex-recommended texlive-latex-extra"

FIGURE_CAPTIONS = {
    "learning_curves": "Training loss (red) and validation DSC (blue) against iteration, in the layout of "
                       "Shen et al. 2018, Fig. 1 (rows: learning rates; columns: loss/weighting).",
    "gradient_map": "Gradient of the soft Dice loss with respect to the softmax on one test slice, read from "
                    "autograd on a trained model's prediction: two values per class, a weighted negative of the "
                    "ground truth (Kervadec & de Bruijne 2023, eq. 2).",
    "subpatch": "Sub-patching (Kervadec & de Bruijne 2023, Sec. 2). Left: share of training patches without "
                "each class against patch size, from the training labels (lines) and as drawn in training "
                "(crosses). Right: each loss's mean test DSC over the object classes (+- std over seeds) against "
                "the training patch size, GDL once per empty-class policy (dashed: other than max); the dotted "
                "line marks the configured patch.",
    "lr_sensitivity": "Learning-rate sensitivity of each loss at each imbalance level (Sudre et al. 2017): "
                      "mean test DSC over the object classes +- std over cases.",
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
    p.add_argument("--tables", nargs="*", type=Path, default=[], help="generated .tex tables (claims last)")
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
    names = [flat_name(f) for f in [*args.tables, *args.figures]]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise DicebenchError(f"{args.out}: paper inputs share a file name ({', '.join(sorted(dup))})")
    if args.methods_out:
        write_text(args.methods_out, methods)
    build_pdf(args.tex, [*args.tables, *args.figures], args.out,
              {"methods.tex": methods, "results.tex": results_tex(args.tables, args.figures)})
    return 0
