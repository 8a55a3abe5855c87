"""Converters from each real dataset's own layout into the nnU-Net v2 raw layout.

One module per dataset exposes `NAME`, `LABELS`, `CHANNELS` (or `channels(**options)`),
`metadata(sources, **options)` (dataset.json's descriptive keys), `find(src, **options)`,
which lists the dataset's cases as `Source`s from file names alone, and
`load(source, **options)`, which reads one of them into a `Case` (or None to skip it, e.g. a
TotalSegmentator scan outside the abdomen).

Converting is all-or-nothing and fails early. Before anything is written, `precheck` goes over
every case: names (valid, and no two sources mapped to one name), every file's header
(present, readable, data not truncated, geometry), channels and label on one grid, and the
label maps' values. Only then are the cases read and written into a hidden staging folder
beside the output, with dataset.json last, and the folder is renamed into place.

Case names are a documented mapping of each source path (`case_name`: the path components
that identify a case, e.g. WMH site/scanner/subject, each sanitised to letters, digits and
'-', joined with '_'); a collision is an error naming both sources.

Geometry is kept as read. A NIfTI whose direction cosines ITK refuses (a sheared affine, as in
about 140 TotalSegmentator v2.0.1 subjects) is read through nibabel and put on the nearest
orthonormal frame (`dicebench.io.orthonormal_frame`), with a warning and the deviation recorded;
only a degenerate affine is refused. Label values are checked against the documented classes.

dataset.json gets, besides nnU-Net's keys, `"cases"`: one entry per written case,

    {case: {"split": "Tr" | "Ts",
            "patient": what splits must be drawn by (ACDC `patient001`, whose ED and ES frames
                       are two cases; WMH `Amsterdam/GE3T/100`; PROMISE12 and MSD the case;
                       TotalSegmentator the subject),
            "source": the case's folder or file, relative to the extracted download,
            "files": every file read for it, relative to the same folder,
            "geometry_fixed": largest change of a direction cosine (only when orthonormalised),
            "geometry_shift_mm": largest displacement that caused at a corner of the volume,
            ...converter-specific facts (ACDC "group", WMH "site" and "scanner",
               PROMISE12 "cohort")}}

and `"skipped_cases"` when a converter skipped any.

A hold-out (`hold_out_patients`; `dicebench convert --holdout-patients N --holdout-seed S`, the
config's `datasets.<name>.holdout`) makes the test split N whole patients of the release's
training split, drawn with the seed (Kervadec & de Bruijne 2023 test on 20 of ACDC's 100
training patients); the release's own test cases are then left out, and dataset.json gets
`"holdout": {"patients": [...], "seed": S, "release_test_cases_left_out": k}` (each held-out
case's entry `"holdout": true`). A dataset converted without a hold-out keeps the release's split.
"""

from __future__ import annotations

import argparse
import importlib
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import SimpleITK as sitk

from dicebench.data.layout import SPLITS, case_paths, check_case_name, write_dataset_json
from dicebench.errors import DicebenchError
from dicebench.io import (ImageHeader, check_complete, chmod_per_umask, read_header, read_image_orthonormal,
                          same_geometry, write_image)

# converter name -> module
CONVERTERS: dict[str, str] = {
    "acdc": "dicebench.data.convert.acdc",
    "wmh": "dicebench.data.convert.wmh",
    "promise12": "dicebench.data.convert.promise12",
    "msd_prostate": "dicebench.data.convert.msd_prostate",
    "totalsegmentator": "dicebench.data.convert.totalsegmentator",
}

CHANNEL_TOL = 1e-3  # channels (and TotalSegmentator masks) must share the image grid this closely
LABEL_TOL = 1e-2  # a label within this of the image grid is put on it (float rounding in headers)


@dataclass
class Source:
    """One case as found in the download, named and placed before any voxel is read."""

    name: str
    split: str  # "Tr" or "Ts"
    patient: str  # what train/validation splits must be drawn by
    origin: Path  # the case's folder or main file, for dataset.json and messages
    images: list[Path]  # one file per channel, or one 4D file holding every channel
    label: Path | None  # the label map; None when `load` builds it from `parts`
    parts: list[Path] = field(default_factory=list)  # further files `load` reads (masks)
    meta: dict = field(default_factory=dict)  # converter-specific facts for dataset.json

    def files(self) -> list[Path]:
        return [*self.images, *([self.label] if self.label is not None else []), *self.parts]


@dataclass
class Case:
    """One converted case: channel images (3D, same grid) and its label map."""

    name: str
    split: str
    images: list[sitk.Image]
    label: sitk.Image
    source: str = ""  # where it came from, for messages


_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")


def case_name(*parts: str) -> str:
    """The case name of a source path's identifying components (site, scanner, subject, ...).

    Each component keeps its letters, digits and '-'; any other run of characters becomes one
    '_' (trimmed at the ends); empty components are dropped and the rest joined with '_'.
    `Amsterdam`, `Philips_VU .PETMR_01.`, `160` -> `Amsterdam_Philips_VU_PETMR_01_160`.
    Sanitising can map two paths to one name; `precheck` refuses that, naming both.
    """
    clean = [_UNSAFE.sub("_", p).strip("_") for p in parts]
    name = "_".join(c for c in clean if c)
    if not name:
        raise DicebenchError(f"cannot build a case name from {parts!r}")
    return check_case_name(name)


def select(sources: list[Source], max_cases: int | None) -> list[Source]:
    """Sources sorted by (split, name), at most `max_cases` per split."""
    sources = sorted(sources, key=lambda s: (s.split, s.name))
    if max_cases is None:
        return sources
    if max_cases < 1:
        raise DicebenchError(f"--max-cases must be at least 1, got {max_cases}")
    kept: dict[str, int] = {}
    out = []
    for s in sources:
        if kept.get(s.split, 0) < max_cases:
            kept[s.split] = kept.get(s.split, 0) + 1
            out.append(s)
    return out


def holdout(names: list[str], every: int) -> set[str]:
    """A fixed test split where the source publishes no test labels: every `every`-th case, sorted."""
    return {n for i, n in enumerate(sorted(names)) if i % every == every - 1}


def hold_out_patients(sources: list[Source], n_patients: int, seed: int = 0) -> tuple[list[Source], dict]:
    """The release's training sources, with `n_patients` whole patients moved to the test split.

    The patients are drawn without replacement from the sorted training patients by
    `numpy.random.default_rng(seed)`, so a patient's cases (ACDC's ED and ES frames) always
    fall on one side. The release's test sources are left out: they belong to another test set.
    Returns the sources and the record dataset.json keeps under "holdout".
    """
    import dataclasses

    patients = sorted({s.patient for s in sources if s.split == "Tr"})
    if not 1 <= n_patients < len(patients):
        raise DicebenchError(f"a hold-out of {n_patients} patient(s) needs between 1 and {len(patients) - 1} "
                             f"(the release has {len(patients)} training patients)")
    order = np.random.default_rng(int(seed)).permutation(len(patients))
    held = {patients[i] for i in order[:n_patients]}
    out = [dataclasses.replace(s, split="Ts", meta={**s.meta, "holdout": True}) if s.patient in held else s
           for s in sources if s.split == "Tr"]
    record = {"patients": sorted(held), "seed": int(seed),
              "release_test_cases_left_out": sum(s.split == "Ts" for s in sources)}
    return out, record


def get_converter(name: str):
    if name not in CONVERTERS:
        raise DicebenchError(f"unknown converter '{name}' (known: {', '.join(sorted(CONVERTERS))})")
    return importlib.import_module(CONVERTERS[name])


def read(path: Path) -> sitk.Image:
    """A source image, orthonormalised where ITK refuses its direction (see the module doc)."""
    return read_image_orthonormal(path)[0]


def load_files(source: Source, n_channels: int) -> Case:
    """The usual `load`: the channel image file(s) and the label file, read as they are."""
    images = []
    for path in source.images:
        images += channel_images(read(path), str(path), n_channels if len(source.images) == 1 else 1)
    return Case(source.name, source.split, images, read(source.label), str(source.label))


def integer_label(img: sitk.Image, source: str, allowed: Iterable[int]) -> sitk.Image:
    """Cast a label map to UInt8 after checking its values are integers within `allowed`."""
    arr = sitk.GetArrayViewFromImage(img)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise DicebenchError(f"{source}: label contains NaN or Inf")
        if not np.array_equal(arr, np.round(arr)):
            raise DicebenchError(f"{source}: label has non-integer values")
    values = set(np.unique(arr).astype(np.int64).tolist())
    bad = sorted(values - set(allowed))
    if bad:
        raise DicebenchError(f"{source}: label values {bad} outside the documented classes {sorted(allowed)}")
    return sitk.Cast(img, sitk.sitkUInt8)


def align_label(label: sitk.Image, image: sitk.Image, source: str) -> sitk.Image:
    """Labels must lie on the image grid; float-rounding differences in headers are repaired."""
    if label.GetDimension() != image.GetDimension() or label.GetSize() != image.GetSize():
        raise DicebenchError(f"{source}: label size {label.GetSize()} differs from image size {image.GetSize()}")
    if same_geometry(label, image):
        return label
    if same_geometry(label, image, tol=LABEL_TOL):
        out = sitk.Image(label)
        out.CopyInformation(image)
        return out
    raise DicebenchError(f"{source}: label geometry (spacing/origin/direction) differs from the image")


def channel_images(img: sitk.Image, source: str, n: int | None = None) -> list[sitk.Image]:
    """Split a 4D (x, y, z, c) image into 3D channel images, keeping the 3D geometry."""
    if img.GetDimension() == 3:
        chans = [img]
    elif img.GetDimension() == 4:
        size = list(img.GetSize())
        chans = [sitk.Extract(img, size[:3] + [0], [0, 0, 0, c]) for c in range(size[3])]
    else:
        raise DicebenchError(f"{source}: expected a 3D or 4D image, got {img.GetDimension()}D")
    if n is not None and len(chans) != n:
        raise DicebenchError(f"{source}: expected {n} channel(s), found {len(chans)}")
    return chans


# ---------------------------------------------------------------- the check before writing

def _grid(h: ImageHeader) -> tuple[tuple, np.ndarray, np.ndarray, np.ndarray]:
    """Size, spacing, origin and direction of the first three axes of a header."""
    d = h.dimension
    direction = np.asarray(h.direction).reshape(d, d)[:3, :3]
    return h.size[:3], np.asarray(h.spacing[:3]), np.asarray(h.origin[:3]), direction


def _same_grid(a: ImageHeader, b: ImageHeader, tol: float) -> bool:
    """`dicebench.io.same_geometry` on headers."""
    sa, spa, oa, da = _grid(a)
    sb, spb, ob, db = _grid(b)
    return (sa == sb and np.allclose(spa, spb, atol=tol) and np.allclose(oa, ob, atol=tol * 10)
            and np.allclose(da, db, atol=tol))


def _header(path: Path) -> ImageHeader:
    header = read_header(path)
    check_complete(path)
    return header


def _check_source(s: Source, n_channels: int, allowed: set[int]) -> list[ImageHeader]:
    """Every header of one case, after checking what can be checked without the image voxels."""
    images = [_header(p) for p in s.images]
    if len(images) == 1 and images[0].dimension == 4:
        found = images[0].size[3]
    else:
        for h in images:
            if h.dimension != 3:
                raise DicebenchError(f"{h.path}: {h.dimension}D image where a 3D channel is expected")
        found = len(images)
    if found != n_channels:
        raise DicebenchError(f"{s.images[0]}: {found} channel(s), expected {n_channels}")
    ref = images[0]
    for h in images:
        if h.components != 1:
            raise DicebenchError(f"{h.path}: vector image ({h.components} components) where a scalar one is expected")
        if not _same_grid(h, ref, CHANNEL_TOL):
            raise DicebenchError(f"{h.path}: channels are not on the same grid (differs from {ref.path.name})")
    headers = list(images)
    if s.label is not None:
        lab = _header(s.label)
        if lab.dimension != 3 or lab.size != ref.size[:3]:
            raise DicebenchError(f"{s.label}: label size {lab.size} differs from image size {ref.size[:3]}")
        if not _same_grid(lab, ref, LABEL_TOL):
            raise DicebenchError(f"{s.label}: label geometry (spacing/origin/direction) differs from the image "
                                 f"{ref.path.name}")
        integer_label(read(s.label), str(s.label), allowed)  # the values, before anything is written
        headers.append(lab)
    for p in s.parts:
        h = _header(p)
        if not _same_grid(h, ref, CHANNEL_TOL):
            raise DicebenchError(f"{p}: grid differs from {ref.path}")
        headers.append(h)
    return headers


def precheck(sources: list[Source], src: Path, n_channels: int, labels: dict) -> dict[str, dict]:
    """Check every case before anything is written; return the geometry fixes per case.

    Raises on the first problem, naming the file and the cause. Label values are read here;
    image voxels are not (their headers and data sizes are checked), so this takes seconds to
    minutes where writing takes hours.
    """
    if not any(s.split == "Tr" for s in sources):
        raise DicebenchError(f"{src}: no training case found in the source")
    seen: dict[str, Source] = {}
    for s in sources:
        if s.split not in SPLITS:
            raise DicebenchError(f"{s.origin}: split must be one of {SPLITS}, got {s.split!r}")
        try:
            check_case_name(s.name)
        except DicebenchError as exc:
            raise DicebenchError(f"{s.origin}: {exc}") from None
        if s.name in seen:
            raise DicebenchError(f"case name '{s.name}' would be given to two sources: {_rel(seen[s.name].origin, src)}"
                                 f" and {_rel(s.origin, src)} (rename one of them)")
        seen[s.name] = s
    allowed = {int(v) for v in labels.values()}
    fixes: dict[str, dict] = {}
    for s in sources:
        headers = _check_source(s, n_channels, allowed)
        fixed = [h for h in headers if h.deviation > 0]
        if fixed:
            worst = max(fixed, key=lambda h: h.deviation)
            fixes[s.name] = {"geometry_fixed": round(worst.deviation, 8),
                             "geometry_shift_mm": round(max(h.shift_mm for h in fixed), 6),
                             "geometry_fixed_file": _rel(worst.path, src)}
    return fixes


def _rel(path: Path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _stderr_warning(message: str) -> None:
    print(f"dicebench convert: warning: {message}", file=sys.stderr)


# ---------------------------------------------------------------- writing

def write_dataset(out: str | Path, sources: list[Source], load: Callable[[Source], Case | None], *, src: Path,
                  name: str, channel_names: dict, labels: dict, overwrite: bool = False,
                  max_cases: int | None = None, warn: Callable[[str], None] = _stderr_warning,
                  **extra) -> Path:
    """Check every source, then write them into `out` atomically (staging folder renamed on success).

    `load` reads a source into a Case, or returns None to skip it (listed under
    "skipped_cases"); `max_cases` keeps at most that many written cases per split.
    """
    out, src = Path(out), Path(src)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DicebenchError(f"{out}: output folder exists and is not empty (use --overwrite)")
    n_ch = len(channel_names)
    fixes = precheck(sources, src, n_ch, labels)
    for case, fix in fixes.items():
        warn(f"{src / fix['geometry_fixed_file']}: direction cosines are not orthonormal (largest deviation "
             f"{fix['geometry_fixed']:.2g}, up to {fix['geometry_shift_mm']:.2g} mm at a corner); "
             f"read on the nearest orthonormal frame (case {case})")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.converting.", dir=out.parent))
    allowed = {int(v) for v in labels.values()}
    counts = {"Tr": 0, "Ts": 0}
    entries: dict[str, dict] = {}
    skipped: list[str] = []
    try:
        for source in sorted(sources, key=lambda s: (s.split, s.name)):
            if max_cases is not None and counts[source.split] >= max_cases:
                continue
            case = load(source)
            if case is None:
                skipped.append(source.name)
                continue
            if len(case.images) != n_ch:
                raise DicebenchError(f"{case.source}: {len(case.images)} channel(s), expected {n_ch}")
            ref = case.images[0]
            for img in case.images[1:]:
                if not same_geometry(img, ref, tol=CHANNEL_TOL):
                    raise DicebenchError(f"{case.source}: channels are not on the same grid")
            label = align_label(integer_label(case.label, case.source, allowed), ref, case.source)
            img_paths, lab_path = case_paths(stage, case.name, case.split, n_ch)
            for img, p in zip(case.images, img_paths):
                write_image(img, p)
            write_image(label, lab_path)
            counts[case.split] += 1
            fix = {k: v for k, v in fixes.get(source.name, {}).items() if k != "geometry_fixed_file"}
            entries[case.name] = {"split": case.split, "patient": source.patient,
                                  "source": _rel(source.origin, src),
                                  "files": [_rel(p, src) for p in source.files()], **fix, **source.meta}
        if counts["Tr"] == 0:
            raise DicebenchError(f"{src}: no training case left to write"
                                 + (f" ({len(skipped)} skipped)" if skipped else ""))
        if skipped:
            extra["skipped_cases"] = skipped
        extra["cases"] = dict(sorted(entries.items()))
        write_dataset_json(stage, name=name, channel_names=channel_names, labels=labels,
                           num_training=counts["Tr"], numTest=counts["Ts"], **extra)
        chmod_per_umask(stage)  # mkdtemp's 0700 would keep the dataset from colleagues
        if out.exists():
            shutil.rmtree(out)
        stage.rename(out)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    return out


def convert(converter: str, src: str | Path, out: str | Path, overwrite: bool = False,
            warn: Callable[[str], None] = _stderr_warning, **options) -> Path:
    """Convert an extracted download at `src` with the named converter into `out`."""
    mod = get_converter(converter)
    src = Path(src)
    if not src.is_dir():
        raise DicebenchError(f"{src}: source folder not found")
    max_cases = options.pop("max_cases", None)
    if max_cases is not None and max_cases < 1:
        raise DicebenchError(f"--max-cases must be at least 1, got {max_cases}")
    holdout_patients = options.pop("holdout_patients", None)
    holdout_seed = options.pop("holdout_seed", 0)
    channels = mod.channels(**options) if hasattr(mod, "channels") else mod.CHANNELS
    sources = mod.find(src, **options)
    extra = mod.metadata(sources, **options)
    if holdout_patients is not None:
        try:
            sources, extra["holdout"] = hold_out_patients(sources, holdout_patients, holdout_seed)
        except DicebenchError as exc:
            raise DicebenchError(f"{src}: {exc}") from None
        extra["split_note"] = (f"test = {holdout_patients} training patients held out (seed {holdout_seed}); "
                               f"the release's test cases are left out")
    if max_cases is not None and not getattr(mod, "MAY_SKIP", False):
        sources = select(sources, max_cases)  # the rest need no checking
    return write_dataset(out, sources, lambda s: mod.load(s, **options), src=src, name=mod.NAME,
                         channel_names=channels, labels=mod.LABELS, overwrite=overwrite,
                         max_cases=max_cases, warn=warn, **extra)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="dataset key in config/datasets.yaml or a converter name")
    p.add_argument("--src", required=True, type=Path, help="extracted download folder")
    p.add_argument("--out", required=True, type=Path, help="nnU-Net v2 raw dataset folder to write")
    p.add_argument("--registry", type=Path, help="dataset registry (default config/datasets.yaml)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--max-cases", type=int, help="keep at most this many cases per split (first in order)")
    p.add_argument("--flair-only", action="store_true", help="WMH: FLAIR only, no T1 channel")
    p.add_argument("--holdout-patients", type=int, metavar="N",
                   help="test split: N whole training patients drawn with --holdout-seed (the release's test "
                        "cases are left out)")
    p.add_argument("--holdout-seed", type=int, default=0, metavar="S", help="seed of the hold-out (default 0)")


def run(args: argparse.Namespace) -> int:
    name = args.name
    if name not in CONVERTERS:
        from dicebench.data.download import DEFAULT_REGISTRY, load_registry

        reg = load_registry(args.registry or DEFAULT_REGISTRY)
        if name not in reg:
            raise DicebenchError(f"unknown dataset or converter '{name}'")
        name = reg[name].converter
    options = {}
    if args.max_cases is not None:
        options["max_cases"] = args.max_cases
    if name == "wmh" and args.flair_only:
        options["flair_only"] = True
    if args.holdout_patients is not None:
        options.update(holdout_patients=args.holdout_patients, holdout_seed=args.holdout_seed)
    out = convert(name, args.src, args.out, overwrite=args.overwrite, **options)
    print(out)
    return 0
