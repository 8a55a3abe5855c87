"""`dicebench bundle`: one checksummed archive of what a run produced that others need to check it.

    dicebench bundle --configfile config/config.yaml --out results/bundle.tar.gz [--weights]

The archive (`<name>.tar.gz`, one top folder `<name>/`) holds

    bundle.json          what made it: git commit, config files, every installed package's
                         version, Python, platform, the devices the cells trained on, the
                         cells with their case-mean DSC, and the between-seed spread of each
                         group of cells that differ by seed only (what `verify` compares with)
    SHA256SUMS           the SHA-256 of every other file (`sha256sum -c SHA256SUMS` checks it)
    config/              resolved.yaml (the validated config, defaults filled in: what `verify`
                         reruns) and the config files it came from, in Snakemake's order
    env/                 requirements.lock, pyproject.toml, envs/*.yaml
    results/<cell>/      cell.json log.csv split.json per_case.csv metrics.csv of every cell of
                         the config's grid (model.pt, model_best.pt only with --weights)
    results/<experiment>/table.csv table.md cases.csv
    figures/             everything the run wrote there: paper tables, claims, figures, viewer pages
    paper/paper.pdf      when it exists

Paths inside are those of the run with the config's `results` and `figures` folders renamed
`results/` and `figures/`. Every cell must be complete and its `cell.json` settings must be
those the config resolves to: a bundle never pairs results with a config that did not make them.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pandas as pd

from dicebench import grid
from dicebench.errors import DicebenchError
from dicebench.io import atomic_path, json_option

FORMAT = "dicebench-bundle/1"
MANIFEST = "SHA256SUMS"
RESOLVED_CONFIG = "config/resolved.yaml"
INFO = "bundle.json"
CELL_FILES = ("cell.json", "log.csv", "split.json", "per_case.csv", "metrics.csv")
WEIGHT_FILES = ("model.pt", "model_best.pt")
TABLE_FILES = ("table.csv", "table.md", "cases.csv")
ENV_FILES = ("requirements.lock", "pyproject.toml")
REPO = Path(__file__).resolve().parents[3]  # the checkout holding the Snakefile (editable install)
SEED_KEYS = ("experiment", "dataset", "network", "loss", "weighting", "lr")  # a cell less its seed


# ---------------------------------------------------------------------------- the config


def load_config(configfiles: list[Path]) -> dict:
    """The config as Snakemake builds it from `--configfile A B`: B updates A key by key, then
    validated, defaults filled in and sub-patching sweeps expanded (`grid.validate_config`)."""
    import yaml
    from snakemake.utils import update_config

    if not configfiles:
        raise DicebenchError("give at least one config file (--configfile)")
    config: dict = {}
    for path in configfiles:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise DicebenchError(f"{path}: file not found") from None
        except (OSError, yaml.YAMLError) as exc:
            raise DicebenchError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(loaded, dict):
            raise DicebenchError(f"{path}: a config file must hold a mapping")
        update_config(config, loaded)
    return grid.validate_config(config)


def _first_difference(a, b, where: str = "") -> str | None:
    """The first key path where two JSON-like values differ, as 'key: a vs b'."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{where}{k}: {'absent' if k not in a else json.dumps(a[k])} vs " \
                       f"{'absent' if k not in b else json.dumps(b[k])}"
            found = _first_difference(a[k], b[k], f"{where}{k}.")
            if found:
                return found
        return None
    return None if a == b else f"{where.rstrip('.')}: {json.dumps(a)} vs {json.dumps(b)}"


def check_settings(cell_json: Path, recorded: dict, expected: dict) -> None:
    """A cell's cell.json must hold the settings the config resolves to (threads and device aside:
    they choose where a cell runs, not what it computes)."""
    drop = ("threads", "device")
    a = json.loads(json.dumps({k: v for k, v in recorded.items() if k not in drop}))
    b = json.loads(json.dumps({k: v for k, v in expected.items() if k not in drop}))
    diff = _first_difference(a, b)
    if diff:
        raise DicebenchError(f"{cell_json}: the cell was trained with other settings than the config resolves "
                             f"to ({diff} in cell.json vs config); bundle the config files the run used")


# ---------------------------------------------------------------------------- numbers


def case_mean_dsc(per_case: pd.DataFrame) -> float:
    """The tables' 'all' DSC: per case the mean over object classes, then the mean over cases."""
    objects = per_case[per_case["class_index"] > 0]
    if not len(objects):
        return math.nan
    return float(objects.groupby("case")["dsc"].mean().mean())


def read_per_case(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise DicebenchError(f"{path}: file not found") from None
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DicebenchError(f"{path}: cannot read per-case metrics ({exc})") from None
    missing = {"case", "class_index", "dsc"} - set(df.columns)
    if missing:
        raise DicebenchError(f"{path}: columns {sorted(missing)} missing")
    return df


def seed_spread(cells: list[dict]) -> list[dict]:
    """For every group of cells that differ by seed only and has two seeds or more: the seeds,
    their case-mean DSCs and the sample standard deviation (ddof 1) over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for c in cells:
        groups.setdefault(tuple(c[k] for k in SEED_KEYS), []).append(c)
    out = []
    for key, members in groups.items():
        values = [m["case_mean_dsc"] for m in sorted(members, key=lambda m: m["seed"])]
        if len(values) < 2 or any(math.isnan(v) for v in values):
            continue
        out.append({**dict(zip(SEED_KEYS, key)), "seeds": sorted(m["seed"] for m in members),
                    "case_mean_dsc": values, "std": float(pd.Series(values).std(ddof=1))})
    return out


# ---------------------------------------------------------------------------- provenance


def git_state(repo: Path = REPO) -> dict:
    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": bool(status) if status is not None else None}


def installed_packages() -> dict[str, str]:
    """Every distribution in the running environment, by normalised name."""
    out = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            out[name.lower().replace("_", "-")] = dist.version
    return dict(sorted(out.items()))


def environment() -> dict:
    return {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine(),
            "packages": installed_packages()}


# ---------------------------------------------------------------------------- writing


@dataclass
class Entry:
    arcname: str  # relative to the bundle's top folder
    source: Path | None = None  # a file on disk, or
    data: bytes | None = None  # generated content


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _tree(folder: Path, prefix: str) -> list[Entry]:
    if not folder.is_dir():
        return []
    return [Entry(f"{prefix}/{p.relative_to(folder).as_posix()}", p) for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".")]


def collect(config: dict, configfiles: list[Path], *, weights: bool = False, paper: Path | None = None,
            repo: Path = REPO) -> tuple[list[Entry], dict]:
    """The files of a bundle and its bundle.json, from the run the validated `config` describes
    (paths relative to the working directory, as Snakemake resolves them). The config goes in
    resolved (`config/resolved.yaml`, what `verify` reruns) beside the files it came from."""
    import yaml

    results, figures = Path(config["results"]), Path(config["figures"])
    entries = [Entry(RESOLVED_CONFIG, data=yaml.safe_dump(config, sort_keys=False).encode())]
    entries += [Entry(f"config/{i:02d}-{Path(p).name}", Path(p)) for i, p in enumerate(configfiles)]
    entries += [Entry(f"env/{name}", repo / name) for name in ENV_FILES if (repo / name).is_file()]
    entries += [Entry(f"env/envs/{p.name}", p) for p in sorted((repo / "envs").glob("*.yaml"))]
    cells = []
    for cell in grid.all_cells(config):
        folder = results / cell.path
        names = CELL_FILES + (WEIGHT_FILES if weights else ())
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise DicebenchError(f"{folder / missing[0]}: missing (the cell has not finished; run the workflow "
                                 f"first{', or bundle without --weights' if missing[0] in WEIGHT_FILES else ''})")
        try:
            info = json.loads((folder / "cell.json").read_text())
            recorded = info["settings"]
        except (OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
            raise DicebenchError(f"{folder / 'cell.json'}: unreadable ({type(exc).__name__}: {exc})") from None
        check_settings(folder / "cell.json", recorded, grid.cell_settings(config, cell))
        entries += [Entry(f"results/{cell.path}/{n}", folder / n) for n in names]
        cells.append({"path": f"results/{cell.path}", "experiment": cell.experiment, "dataset": cell.dataset,
                      "network": cell.network, "loss": cell.loss, "weighting": cell.weighting, "lr": cell.lr,
                      "seed": cell.seed, "device": info.get("device"), "git_commit": info.get("git_commit"),
                      "case_mean_dsc": case_mean_dsc(read_per_case(folder / "per_case.csv"))})
    for name in config["experiments"]:
        for n in TABLE_FILES:
            path = results / name / n
            if not path.is_file():
                raise DicebenchError(f"{path}: missing (run the workflow first)")
            entries.append(Entry(f"results/{name}/{n}", path))
    entries += _tree(figures, "figures")
    if paper is not None and Path(paper).is_file():
        entries.append(Entry("paper/paper.pdf", Path(paper)))
    info = {
        "format": FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **git_state(repo),
        "config": RESOLVED_CONFIG,
        "config_files": [e.arcname for e in entries if e.arcname.startswith("config/") and e.source],
        "weights": weights,
        "devices": sorted({c["device"] for c in cells if c["device"]}),
        **environment(),
        "cells": cells,
        "seed_spread": seed_spread(cells),
    }
    return entries, info


def _portable(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Readable by whoever unpacks it, owned by nobody in particular (outputs are written 0600)."""
    info.mode, info.uid, info.gid, info.uname, info.gname = 0o644, 0, 0, "", ""
    return info


def write_bundle(configfiles: list[Path], out: Path, *, config: dict | None = None, weights: bool = False,
                 paper: Path | None = None, repo: Path = REPO) -> dict:
    """Write the archive atomically; returns its bundle.json. `config`: the validated config when
    the caller has it (a Snakemake rule), else it is built from `configfiles`."""
    out = Path(out)
    if not out.name.endswith(".tar.gz"):
        raise DicebenchError(f"{out}: the bundle is a .tar.gz archive; name it so")
    top = out.name[: -len(".tar.gz")]
    configfiles = list({Path(p).resolve(): Path(p) for p in configfiles}.values())  # Snakemake may list one twice
    config = load_config(configfiles) if config is None else config
    entries, info = collect(config, configfiles, weights=weights, paper=paper, repo=repo)
    info_bytes = (json.dumps(info, indent=2, allow_nan=True) + "\n").encode()
    entries.append(Entry(INFO, data=info_bytes))
    sums = []
    for e in sorted(entries, key=lambda e: e.arcname):
        digest = hashlib.sha256(e.data).hexdigest() if e.data is not None else sha256_file(e.source)
        sums.append(f"{digest}  {e.arcname}\n")
    manifest = "".join(sums).encode()
    now = int(time.time())
    with atomic_path(out) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for e in sorted(entries, key=lambda e: e.arcname) + [Entry(MANIFEST, data=manifest)]:
            if e.data is None:
                tar.add(e.source, arcname=f"{top}/{e.arcname}", recursive=False, filter=_portable)
            else:
                ti = tarfile.TarInfo(f"{top}/{e.arcname}")
                ti.size, ti.mtime = len(e.data), now
                ti = _portable(ti)
                tar.addfile(ti, io.BytesIO(e.data))
    return info


# ---------------------------------------------------------------------------- reading


def _parse_manifest(text: str, where: str) -> dict[str, str]:
    sums = {}
    for n, line in enumerate(text.splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name:
            raise DicebenchError(f"{where}: line {n} is not '<sha256>  <path>'")
        sums[name] = digest
    return sums


def check_bundle(path: Path) -> dict[str, str]:
    """Every file of a bundle (archive or unpacked folder) against SHA256SUMS: one altered,
    missing or unlisted file is an error naming it. Returns the manifest."""
    path = Path(path)
    if path.is_dir():
        where = path / MANIFEST
        if not where.is_file():
            raise DicebenchError(f"{path}: not a bundle ({MANIFEST} missing)")
        sums = _parse_manifest(where.read_text(), str(where))
        files = {p.relative_to(path).as_posix(): p for p in path.rglob("*") if p.is_file() and p.name != MANIFEST
                 and p.relative_to(path).parts[0] != ".verify"}
        actual = {name: sha256_file(p) for name, p in files.items()}
    else:
        if not path.is_file():
            raise DicebenchError(f"{path}: file not found")
        try:
            with tarfile.open(path, "r:gz") as tar:
                members = [m for m in tar.getmembers() if m.isfile()]
                top = {m.name.split("/", 1)[0] for m in tar.getmembers()}
                if len(top) != 1:
                    raise DicebenchError(f"{path}: not a bundle (expected one top folder, found {len(top)})")
                top_name = top.pop()
                actual, manifest = {}, None
                for m in members:
                    rel = m.name.split("/", 1)[1] if "/" in m.name else ""
                    f = tar.extractfile(m)
                    if rel == MANIFEST:
                        manifest = f.read().decode()
                    else:
                        h = hashlib.sha256()
                        for block in iter(lambda: f.read(1 << 20), b""):
                            h.update(block)
                        actual[rel] = h.hexdigest()
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise DicebenchError(f"{path}: not a readable .tar.gz ({exc})") from None
        if manifest is None:
            raise DicebenchError(f"{path}: not a bundle ({top_name}/{MANIFEST} missing)")
        sums = _parse_manifest(manifest, f"{path}:{MANIFEST}")
    for name, digest in sorted(sums.items()):
        if name not in actual:
            raise DicebenchError(f"{path}: {name} is listed in {MANIFEST} but missing from the bundle")
        if actual[name] != digest:
            raise DicebenchError(f"{path}: {name} does not match its SHA-256 in {MANIFEST} "
                                 f"(changed after bundling)")
    extra = sorted(set(actual) - set(sums))
    if extra:
        raise DicebenchError(f"{path}: {extra[0]} is not listed in {MANIFEST} (added after bundling)")
    return sums


def unpack(path: Path, dest: Path) -> Path:
    """Check a bundle's checksums, then unpack it into `dest` (replaced); returns the folder that
    holds bundle.json. A folder bundle is checked and used where it is."""
    path = Path(path)
    check_bundle(path)
    if path.is_dir():
        return path
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    try:
        with tarfile.open(path, "r:gz") as tar:
            tar.extractall(dest, filter="data")  # no absolute paths, links out, or device files
    except tarfile.TarError as exc:
        raise DicebenchError(f"{path}: cannot be unpacked safely ({exc})") from None
    (top,) = [p for p in dest.iterdir() if p.is_dir()]
    return top


def read_info(folder: Path) -> dict:
    try:
        info = json.loads((Path(folder) / INFO).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DicebenchError(f"{folder / INFO}: unreadable ({exc})") from None
    if info.get("format") != FORMAT:
        raise DicebenchError(f"{folder / INFO}: format {info.get('format')!r}, expected {FORMAT!r}")
    return info


# ---------------------------------------------------------------------------- command line


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--configfile", nargs="+", type=Path, default=[Path("config/config.yaml")],
                   help="the config files of the run, in Snakemake's order (default: config/config.yaml)")
    p.add_argument("--config-json", default=None,
                   help="the run's config as JSON (a rule passes Snakemake's, --config overrides included); "
                        "default: built from --configfile")
    p.add_argument("--out", type=Path, default=Path("results/bundle.tar.gz"), help="the archive (.tar.gz)")
    p.add_argument("--weights", action="store_true", help="also the cells' model.pt and model_best.pt")
    p.add_argument("--paper", type=Path, default=Path("paper/paper.pdf"), help="the paper PDF, if it exists")


def run(args: argparse.Namespace) -> int:
    config = None
    if args.config_json is not None:
        config = grid.validate_config(json_option(args.config_json, "--config-json"))
    info = write_bundle(args.configfile, args.out, config=config, weights=args.weights, paper=args.paper)
    size = Path(args.out).stat().st_size / 2**20
    print(f"wrote {args.out} ({size:.1f} MiB): {len(info['cells'])} cells, commit "
          f"{(info['git_commit'] or 'unknown')[:12]}{' (dirty)' if info['git_dirty'] else ''}, "
          f"{len(info['seed_spread'])} seed groups")
    return 0
