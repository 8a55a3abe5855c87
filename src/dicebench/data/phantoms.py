"""The registry of synthetic phantom kinds: labels, geometry and knobs (torch- and
SimpleITK-free, so the DAG build checks a config's `phantom` and `knobs` before any job runs).

The generators live in `dicebench.data.synthetic` (`GENERATORS`, one per entry here). A knob's
default here is its only default; `resolve_spec` merges a config's knobs over them and refuses
an unknown knob or a value of another type, naming it.
"""

from __future__ import annotations

from dataclasses import dataclass

from dicebench.errors import DicebenchError


@dataclass(frozen=True)
class PhantomSpec:
    """What a phantom kind writes: labels, modality, default geometry and knobs."""

    labels: dict[str, int]
    channel: str
    modality: str
    shape: tuple[int, int, int]  # (z, y, x)
    spacing: tuple[float, float, float]  # (x, y, z) in mm, SimpleITK order
    stands_in_for: str
    knobs: dict


PHANTOMS: dict[str, PhantomSpec] = {
    "prostate": PhantomSpec(
        labels={"background": 0, "prostate": 1},
        channel="T2",
        modality="MRI",
        shape=(20, 96, 96),
        spacing=(0.625, 0.625, 3.6),
        stands_in_for="PROMISE12 (prostate T2 MRI)",
        knobs={"size": 1.0, "contrast": 0.35, "noise": 0.03, "bias": 0.5, "absent_fraction": {}},
    ),
    "acdc": PhantomSpec(
        labels={"background": 0, "RV": 1, "MYO": 2, "LV": 3},
        channel="cineMRI",
        modality="MRI",
        shape=(10, 80, 80),
        spacing=(1.5625, 1.5625, 10.0),
        stands_in_for="ACDC (cardiac cine-MRI)",
        knobs={"size": 1.0, "contrast": 0.5, "noise": 0.04, "absent_fraction": {}},
    ),
    "wmh": PhantomSpec(
        labels={"background": 0, "WMH": 1, "other_pathology": 2},
        channel="FLAIR",
        modality="MRI",
        shape=(48, 72, 60),
        spacing=(3.0, 3.0, 3.0),
        stands_in_for="WMH 2017 (brain FLAIR MRI)",
        knobs={
            "size": 1.0,
            "contrast": 0.45,
            "noise": 0.02,
            "lesions_min": 2,
            "lesions_max": 6,
            "other_size": 1.0,  # scales the other pathology's radii (its share of the foreground)
            "absent_fraction": {"other_pathology": 0.7},
        },
    ),
    "abdomen": PhantomSpec(
        labels={
            "background": 0,
            "artery": 1,
            "portal_vein": 2,
            "liver": 3,
            "spleen": 4,
            "stomach": 5,
            "gallbladder": 6,
            "pancreas": 7,
        },
        channel="CT",
        modality="CT",
        shape=(40, 64, 80),
        spacing=(3.2, 3.2, 3.2),
        stands_in_for="Shen et al. 2018 abdominal CT (private; open stand-in: TotalSegmentator)",
        knobs={"size": 1.0, "contrast": 1.0, "noise": 12.0, "absent_fraction": {}},
    ),
}


def _knob_problem(name: str, default, value) -> str | None:
    if isinstance(default, dict):
        return None if isinstance(value, dict) else "must be a mapping"
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be an integer"
    if isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else "must be a number"
    return None


def resolve_spec(kind: str, shape=None, spacing=None, knobs: dict | None = None, where: str = "") -> PhantomSpec:
    """The phantom's spec with the given geometry and knobs; an unknown kind, knob, value type or
    class name is a DicebenchError naming the key (`where` prefixes it, e.g. the config path)."""
    where = where or f"phantom '{kind}'"
    if kind not in PHANTOMS:
        raise DicebenchError(f"unknown phantom '{kind}'; choose one of {sorted(PHANTOMS)}")
    base = PHANTOMS[kind]
    for key, value in (knobs or {}).items():
        if key not in base.knobs:
            raise DicebenchError(f"{where}.knobs.{key}: unknown knob of phantom '{kind}'; "
                                 f"valid: {', '.join(sorted(base.knobs))}")
        problem = _knob_problem(key, base.knobs[key], value)
        if problem:
            raise DicebenchError(f"{where}.knobs.{key}: {problem}, got {value!r}")
    merged = {**base.knobs, **(knobs or {})}
    classes = set(base.labels) - {"background"}
    for key in ("absent_fraction",):
        bad = set(merged.get(key, {})) - classes
        if bad:
            raise DicebenchError(f"{where}.knobs.{key} names unknown class(es) {sorted(bad)}; "
                                 f"valid: {', '.join(sorted(classes))}")
    return PhantomSpec(
        labels=base.labels,
        channel=base.channel,
        modality=base.modality,
        shape=tuple(int(v) for v in (shape or base.shape)),
        spacing=tuple(float(v) for v in (spacing or base.spacing)),
        stands_in_for=base.stands_in_for,
        knobs=merged,
    )
