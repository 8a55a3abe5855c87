"""The `dicebench` command: one subcommand per workflow step, thin wrappers over the package.

Each subcommand lives in the module that owns its concern; that module exposes
`add_arguments(parser)` and `run(args) -> int`. Modules are imported lazily so
that `dicebench check` does not pay for importing torch.

Any DicebenchError becomes one line on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from dicebench.errors import DicebenchError

# name -> (module, help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synthesize": ("dicebench.data.synthetic", "write a synthetic phantom dataset (nnU-Net v2 raw layout)"),
    "download": ("dicebench.data.download", "download a real dataset archive, resumable and checksum-verified"),
    "convert": ("dicebench.data.convert", "convert a downloaded real dataset into the nnU-Net v2 raw layout"),
    "check": ("dicebench.data.check", "validate a dataset folder; one line per problem, non-zero exit"),
    "preprocess": ("dicebench.preprocessing.pipeline", "N4, resampling and normalisation of a dataset"),
    "class-stats": ("dicebench.preprocessing.class_stats", "per-class voxel counts of the training split"),
    "train": ("dicebench.training.trainer", "train one cell of the grid"),
    "infer": ("dicebench.inference.predict", "sliding-window inference over the test volumes"),
    "evaluate": ("dicebench.evaluation.evaluate", "DSC and HD95 per case and class"),
    "aggregate": ("dicebench.reporting.tables", "one table per experiment from the cells' metrics"),
    "figures": ("dicebench.reporting.figures", "learning curves and other figures"),
    "paper-tables": ("dicebench.reporting.paper_tables", "a paper's table beside its published numbers"),
    "claims": ("dicebench.reporting.claims", "the claims table with computed verdicts"),
    "conventions": ("dicebench.reporting.conventions", "every claim under each metric convention for empty masks"),
    "stale": ("dicebench.workflow", "list (and retrain) the cells whose code or model changed since they ran"),
    "compute": ("dicebench.reporting.compute", "what each cell cost: wall, CPU and GPU time, memory, iterations"),
    "utilisation": ("dicebench.reporting.utilisation", "a run's job CPU time over its wall time times the cores"),
    "evidence-check": ("dicebench.reporting.evidence", "whether a run met its targets: convergence, floors, seeds, cases, mdd"),
    "methods": ("dicebench.reporting.methods", "the paper's methods section from the resolved config"),
    "paper": ("dicebench.reporting.paper", "build the paper PDF with latexmk"),
    "bundle": ("dicebench.review.bundle", "one checksummed archive of a run's results, for others to check"),
    "verify": ("dicebench.review.verify", "rerun cells of a results bundle and compare them with it"),
    "viewer": ("dicebench.review.viewer", "an HTML page to scroll through test cases and each loss's prediction"),
    "sbatch-preview": ("dicebench.cluster", "the sbatch options each rule gets under --profile slurm"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dicebench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if only is None or name == only:
            try:
                importlib.import_module(module).add_arguments(p)
            except ModuleNotFoundError as exc:
                if exc.name and exc.name.startswith("dicebench"):
                    p.set_defaults(_missing=module)
                else:
                    raise
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    only = next((a for a in argv if a in COMMANDS), None)
    parser = build_parser(only)
    args = parser.parse_args(argv)
    if getattr(args, "_missing", None):
        print(f"dicebench: error: '{args.command}' is not available in this version", file=sys.stderr)
        return 2
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except DicebenchError as exc:
        print(f"dicebench {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"dicebench {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
