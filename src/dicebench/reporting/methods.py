"""The paper's methods section, generated from the resolved config, so the text can never
disagree with what ran (`dicebench methods`; the paper rule inputs it), and the fidelity
ledger (paper/deviations.yaml) beside it: every deviation from the papers, and where each
setting of the published grid (config/paper.yaml) comes from.

The ledger's `values` are keyed by dotted config paths, `*` standing for any one name; the most
specific key that matches a setting is its entry (`ledger_entry`). `config_leaves` lists the
settings a ledger must cover: every result-affecting key of a validated config as the run
resolves it (schema defaults filled in, each loss's parameters completed with its class's
defaults), less what cannot apply (a phantom's knobs on a real dataset, N4's settings with N4
off, the CT window of an MRI preset) and what a sweep generated. `uncovered` and
`unused_patterns` are what tests/test_fidelity.py holds config/paper.yaml to.

`python -m dicebench.reporting.methods` prints the ledger's deviations as Markdown: the block
between the `deviations` markers of README.md ("Deviations from the papers").
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dicebench.errors import DicebenchError
from dicebench.io import json_option, write_text
from dicebench.reporting.paper_tables import latex_escape

LEDGER = Path(__file__).resolve().parents[3] / "paper" / "deviations.yaml"
SOURCES = {"paper": "the paper", "code": "the authors' code", "other": "another paper", "ours": "our choice"}
KINDS = ("deviation", "reading", "addition")
PAPER_NAMES = {"all": "all papers", "liu2018": "Liu & Fu 2018", "kervadec2023": "Kervadec & de Bruijne 2023",
               "shen2018": "Shen et al. 2018", "sudre2017": "Sudre et al. 2017"}
DEVIATION_FIELDS = ("id", "paper", "kind", "topic", "paper_says", "we_do", "why", "effect")
# Dataset keys that only a phantom reads (a real dataset gets their schema defaults, unused).
PHANTOM_KEYS = ("phantom", "n_train", "n_test", "seed", "shape", "spacing", "knobs")


# ---------------------------------------------------------------- the ledger


def load_ledger(path: str | Path = LEDGER) -> dict:
    """The ledger, checked: each value names a known source with its citation (or, for ours,
    its reason), each deviation has every field, and every `see` names a deviation."""
    import yaml

    path = Path(path)
    try:
        ledger = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DicebenchError(f"{path}: cannot read the ledger ({exc})") from None
    if not isinstance(ledger, dict) or not isinstance(ledger.get("values"), dict) \
            or not isinstance(ledger.get("deviations"), list):
        raise DicebenchError(f"{path}: expected a mapping with 'values' (a mapping) and 'deviations' (a list)")
    ids = []
    for i, dev in enumerate(ledger["deviations"]):
        missing = [f for f in DEVIATION_FIELDS if not isinstance((dev or {}).get(f), str) or not dev[f].strip()]
        if missing:
            raise DicebenchError(f"{path}: deviations[{i}] lacks {', '.join(missing)}")
        if set(dev) - set(DEVIATION_FIELDS):
            raise DicebenchError(f"{path}: deviation {dev['id']}: unknown key(s) "
                                 f"{', '.join(sorted(set(dev) - set(DEVIATION_FIELDS)))}")
        if dev["kind"] not in KINDS:
            raise DicebenchError(f"{path}: deviation {dev['id']}: kind must be one of {', '.join(KINDS)}")
        if dev["paper"] not in PAPER_NAMES:
            raise DicebenchError(f"{path}: deviation {dev['id']}: paper must be one of {', '.join(PAPER_NAMES)}")
        ids.append(dev["id"])
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        raise DicebenchError(f"{path}: deviation ids repeat ({', '.join(repeated)})")
    for key, entry in ledger["values"].items():
        where = f"{path}: values.{key}"
        if not isinstance(entry, dict) or set(entry) - {"source", "cite", "why", "see"}:
            raise DicebenchError(f"{where}: expected {{source, cite | why[, see]}} (a comma in an unquoted "
                                 f"flow value splits it)")
        if entry.get("source") not in SOURCES:
            raise DicebenchError(f"{where}: source must be one of {', '.join(SOURCES)}")
        needed = "why" if entry["source"] == "ours" else "cite"
        if not isinstance(entry.get(needed), str) or not entry[needed].strip():
            raise DicebenchError(f"{where}: a '{entry['source']}' value needs '{needed}'")
        if "see" in entry and entry["see"] not in ids:
            raise DicebenchError(f"{where}: see '{entry['see']}' is not a deviation id")
    return ledger


def _matches(pattern: str, key: str) -> bool:
    p, k = pattern.split("."), key.split(".")
    return len(p) == len(k) and all(a in ("*", b) for a, b in zip(p, k))


def _specificity(pattern: str) -> tuple[int, int]:
    """Fewer wildcards first; among equals, the one whose first wildcard comes later."""
    parts = pattern.split(".")
    stars = [i for i, part in enumerate(parts) if part == "*"]
    return len(stars), -(stars[0] if stars else len(parts))


def ledger_entry(ledger: dict, key: str) -> tuple[str, dict] | None:
    """The most specific ledger entry for a dotted config key, as (pattern, entry)."""
    hits = [p for p in ledger["values"] if _matches(p, key)]
    if not hits:
        return None
    best = min(hits, key=_specificity)
    return best, ledger["values"][best]


def config_leaves(config: dict) -> dict[str, object]:
    """Every setting of a validated config a ledger must cover, by dotted key (module doc)."""
    import copy

    from dicebench.grid import SWEEP_KEY
    from dicebench.losses import loss_parameters
    from dicebench.settings import neutral_keys

    cfg = copy.deepcopy(config)
    cfg["experiments"] = {n: e for n, e in cfg["experiments"].items() if SWEEP_KEY not in e}
    for ds in cfg.get("datasets", {}).values():
        if ds.get("source") == "real":
            for key in PHANTOM_KEYS:
                ds.pop(key, None)
    for pre in cfg.get("preprocessing", {}).values():
        if pre.get("normalization") != "ct":
            pre.pop("ct_window", None)
        if not pre.get("n4", {}).get("enabled", False):
            pre["n4"] = {"enabled": False}
    for exp in cfg["experiments"].values():
        given = exp.get("loss_params", {})
        resolved = {loss: {name: given.get(loss, {}).get(name, p.default) for name, p in loss_parameters(loss).items()}
                    for loss in exp["losses"]}
        exp["loss_params"] = {loss: params for loss, params in resolved.items() if params}
    neutral = neutral_keys()

    def walk(node, prefix):
        if isinstance(node, dict) and node:
            for k, v in node.items():
                yield from walk(v, f"{prefix}.{k}" if prefix else str(k))
        elif not any(_matches(n, prefix) or _is_below(prefix, n) for n in neutral):
            yield prefix, node

    return dict(walk(cfg, ""))


def _is_below(key: str, pattern: str) -> bool:
    """Whether `key` lies under the subtree that `pattern` names."""
    depth = len(pattern.split("."))
    return len(key.split(".")) > depth and _matches(pattern, ".".join(key.split(".")[:depth]))


def uncovered(config: dict, ledger: dict) -> list[str]:
    """The settings of a validated config that no ledger entry covers."""
    return [k for k in config_leaves(config) if ledger_entry(ledger, k) is None]


def unused_patterns(config: dict, ledger: dict) -> list[str]:
    """Ledger keys that are the best entry of no setting of the config (stale or shadowed)."""
    used = {ledger_entry(ledger, k)[0] for k in config_leaves(config) if ledger_entry(ledger, k)}
    return [p for p in ledger["values"] if p not in used]


# ---------------------------------------------------------------- rendering

# Characters of the ledger and the config that pdflatex's default setup cannot typeset.
# Paths may also wrap after a slash.
_TEX_EXTRA = {"σ": r"$\sigma$", "ε": r"$\epsilon$", "≈": r"$\approx$", "²": r"$^2$", "³": r"$^3$",
              "’": "'", "—": "---", "ç": r"\c{c}", "Ç": r"\c{C}", "é": r"\'e", "/": r"/\allowbreak{}"}


def _tex(text) -> str:
    return "".join(_TEX_EXTRA.get(c, c) for c in latex_escape(str(text)))


def _sentence(text: str) -> str:
    """A ledger text without its closing full stop (the renderers add one)."""
    return str(text).strip().rstrip(".")


def deviations_tex(ledger: dict) -> str:
    """The deviations, one paragraph each, grouped by paper."""
    out = [r"\subsection{Deviations from the papers}",
           _tex("Where the grid departs from a paper (deviation), reads a point the paper leaves open "
                "(reading), or adds to it (addition); the ledger paper/deviations.yaml also gives the source "
                "of every setting of the published grid (next subsection)."),
           r"\begin{description}"]
    for dev in ledger["deviations"]:
        head = f"{dev['id']} ({PAPER_NAMES[dev['paper']]}, {dev['kind']}): {dev['topic']}."
        d = {k: _tex(_sentence(v)) for k, v in dev.items()}
        out.append(rf"\item[{_tex(head)}] \emph{{Paper:}} {d['paper_says']}. \emph{{We:}} {d['we_do']}. "
                   rf"\emph{{Why:}} {d['why']}. \emph{{Expected effect:}} {d['effect']}.")
    out.append(r"\end{description}")
    return "\n".join(out) + "\n"


def _group(pattern: str) -> str:
    parts = pattern.split(".")
    if parts[0] == "experiments":
        return f"experiments.{parts[1]}" if parts[1] != "*" else "every experiment"
    return parts[0] if parts[0] in ("datasets", "preprocessing") else "run"


def values_tex(ledger: dict) -> str:
    """Where each setting of config/paper.yaml comes from, grouped by section."""
    out = [r"\subsection{Where each setting of the published grid comes from}",
           _tex("For config/paper.yaml as it runs (keys it leaves out take the schema's defaults, losses their "
                "classes' defaults); * stands for any name. Sources: the paper, the authors' code, another paper, "
                "or our choice.")]
    groups: dict[str, list[str]] = {}
    for pattern in ledger["values"]:
        groups.setdefault(_group(pattern), []).append(pattern)
    for group, patterns in groups.items():
        out += [rf"\paragraph{{{_tex(group)}.}}", r"\begin{itemize}\setlength{\itemsep}{0pt}"]
        for pattern in patterns:
            e = ledger["values"][pattern]
            text = _sentence(e.get("cite") if e["source"] != "ours" else e["why"])
            see = f" (see {e['see']})" if "see" in e else ""
            key = _tex(pattern).replace(".", r".\allowbreak{}").replace(r"\_", r"\_\allowbreak{}")  # long keys wrap
            out.append(rf"\item \texttt{{{key}}}: {_tex(SOURCES[e['source']])}: {_tex(text)}{_tex(see)}.")
        out.append(r"\end{itemize}")
    return "\n".join(out) + "\n"


def deviations_markdown(ledger: dict) -> str:
    """The deviations as README.md shows them (between its `deviations` markers)."""
    out = []
    for paper, name in PAPER_NAMES.items():
        devs = [d for d in ledger["deviations"] if d["paper"] == paper]
        if not devs:
            continue
        out.append(f"**{name}**\n")
        for d in devs:
            d = {k: _sentence(v) for k, v in d.items()}
            out.append(f"- **{d['id']} {d['topic']}** ({d['kind']}). *Paper:* {d['paper_says']}. "
                       f"*We:* {d['we_do']}. *Why:* {d['why']}. *Effect:* {d['effect']}.")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------- the methods section


def _dataset_text(ds: dict) -> str:
    if ds.get("source") == "synthetic":
        desc = (f"synthetic {ds.get('phantom')} phantom, {ds.get('n_train')} training and {ds.get('n_test')} test "
                f"volumes, seed {ds.get('seed')}")
        if ds.get("knobs"):
            desc += f", knobs {ds['knobs']}"
        return desc
    desc = f"real dataset {ds.get('registry_name', '')} (config/datasets.yaml)"
    if ds.get("holdout"):
        h = ds["holdout"]
        desc += (f"; test split: {h['patients']} whole training patients drawn with seed {h.get('seed', 0)}, the "
                 f"release's test cases left out")
    return desc


def _experiment_text(config: dict, exp: dict) -> str:
    r = exp["recipe"]
    pre = config.get("preprocessing", {}).get(exp["preprocessing"], {})
    text = (f"Datasets {', '.join(exp['datasets'])}; preprocessing '{exp['preprocessing']}' "
            f"(spacing {pre.get('target_spacing')}, N4 {'on' if pre.get('n4', {}).get('enabled') else 'off'}, "
            f"{pre.get('normalization')} normalisation); networks {', '.join(exp['networks'])} "
            f"{exp.get('network_params', {})}; losses {', '.join(exp['losses'])}")
    if exp.get("loss_params"):
        text += f" with parameters {exp['loss_params']}"
    text += (f"; weightings {', '.join(exp.get('weightings', ['none']))}; learning rates "
             f"{', '.join(map(str, exp['lrs']))}; seeds {', '.join(map(str, exp['seeds']))}. Optimiser "
             f"{r['optimizer']} {r.get('optimizer_params', {})}, {r['iterations']} iterations, batch "
             f"{r['batch_size']}, patch {r['patch_size']}, validation every {r.get('val_interval')} iterations")
    if r.get("val_fraction") is not None:
        text += (f" on a share {r['val_fraction']} of the training patients (drawn by patient, seed "
                 f"{r.get('split_seed', 0)})")
    text += "."
    if r.get("augment"):
        text += f" Augmentation {r['augment']}."
    return text


def methods_tex(config: dict, ledger: dict | None = None) -> str:
    """One paragraph per dataset and experiment with its grid and recipe, then the ledger
    (`ledger`, default paper/deviations.yaml): the deviations and each setting's source."""
    out = [r"\subsection{Datasets}", r"\begin{itemize}"]
    for name, ds in config["datasets"].items():
        out.append(rf"\item \texttt{{{_tex(name)}}}: {_tex(_dataset_text(ds))}.")
    out += [r"\end{itemize}", r"\subsection{Experiments}"]
    for name, exp in config["experiments"].items():
        if "sweep_of" in exp:  # generated by a subpatch section: described with its experiment
            continue
        text = _experiment_text(config, exp)
        if exp.get("subpatch"):
            sw = exp["subpatch"]
            text += (f" Sub-patching sweep on {', '.join(sw.get('datasets') or exp['datasets'])}: the same grid "
                     f"trained with patches {', '.join('x'.join(map(str, p)) for p in sw['patch_sizes'])}")
            if sw.get("gdl_empty_policies"):
                text += f", and GDL with the empty-class policies {', '.join(sw['gdl_empty_policies'])}"
            text += ", at every patch size."
        out.append(rf"\paragraph{{{_tex(name)}.}} {_tex(text)}")
    inf = config.get("inference", {})
    inf_text = (f"Sliding window, overlap {inf.get('overlap')}, mirroring {inf.get('mirror')}, "
                f"checkpoint {inf.get('checkpoint')}.")
    out.append(rf"\paragraph{{Inference.}} {_tex(inf_text)}")
    ledger = load_ledger() if ledger is None else ledger
    return "\n".join(out) + "\n" + deviations_tex(ledger) + values_tex(ledger)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config-json", required=True, help="the resolved workflow config, as JSON")
    p.add_argument("--out", required=True, type=Path, help="methods.tex")
    p.add_argument("--deviations", type=Path, default=LEDGER,
                   help="the fidelity ledger (default: paper/deviations.yaml of this checkout)")


def run(args: argparse.Namespace) -> int:
    ledger = load_ledger(args.deviations)
    write_text(args.out, methods_tex(json_option(args.config_json, "--config-json"), ledger))
    return 0


if __name__ == "__main__":  # the README block: python -m dicebench.reporting.methods
    print(deviations_markdown(load_ledger()), end="")
