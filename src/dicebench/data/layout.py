"""The nnU-Net v2 raw layout every dataset (real or synthetic) is written in.

<root>/dataset.json, imagesTr/{case}_{channel:04d}.nii.gz, labelsTr/{case}.nii.gz and the
same under imagesTs/labelsTs. One place for the naming so converters, the phantom
generator and the validator cannot drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path

from dicebench.errors import DicebenchError
from dicebench.io import write_json

FILE_ENDING = ".nii.gz"
SPLITS = ("Tr", "Ts")
_CASE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_case_name(case: str) -> str:
    """A case identifier must be a plain file-name stem (no separators)."""
    if not _CASE_RE.match(case) or case.endswith("."):
        raise DicebenchError(f"invalid case name {case!r}: use letters, digits, '_', '-', '.'")
    return case


def case_paths(root: str | Path, case: str, split: str = "Tr", channels: int = 1,
               file_ending: str = FILE_ENDING) -> tuple[list[Path], Path]:
    """Image paths (one per channel, suffix _0000, _0001, ...) and the label path of a case."""
    if split not in SPLITS:
        raise DicebenchError(f"split must be one of {SPLITS}, got {split!r}")
    if channels < 1:
        raise DicebenchError(f"channels must be at least 1, got {channels}")
    check_case_name(case)
    root = Path(root)
    images = [root / f"images{split}" / f"{case}_{c:04d}{file_ending}" for c in range(channels)]
    return images, root / f"labels{split}" / f"{case}{file_ending}"


def case_id_from_image(name: str, file_ending: str = FILE_ENDING) -> tuple[str, int] | None:
    """`prostate_00_0001.nii.gz` -> ("prostate_00", 1); None if the name is not an image name."""
    if not name.endswith(file_ending):
        return None
    stem = name[: -len(file_ending)]
    m = re.match(r"^(.+)_(\d{4})$", stem)
    if not m:
        return None
    return m.group(1), int(m.group(2))


def write_dataset_json(out_dir: str | Path, name: str, channel_names: dict, labels: dict,
                       num_training: int, file_ending: str = FILE_ENDING, **extra) -> Path:
    """Write <out_dir>/dataset.json (atomically); extra keys (description, licence, ...) are kept.

    Label indices must be distinct integers starting at background 0, as nnU-Net v2 requires.
    """
    channel_names = {str(k): str(v) for k, v in channel_names.items()}
    if not channel_names or sorted(channel_names) != [str(i) for i in range(len(channel_names))]:
        raise DicebenchError(f"{out_dir}/dataset.json: channel_names must be keyed '0', '1', ...")
    labels = {str(k): int(v) for k, v in labels.items()}
    if labels.get("background") != 0:
        raise DicebenchError(f"{out_dir}/dataset.json: labels must map 'background' to 0")
    if len(set(labels.values())) != len(labels):
        raise DicebenchError(f"{out_dir}/dataset.json: label indices must be distinct")
    obj = {
        "name": name,
        "channel_names": channel_names,
        "labels": labels,
        "numTraining": int(num_training),
        "file_ending": file_ending,
        **extra,
    }
    path = Path(out_dir) / "dataset.json"
    write_json(path, obj)
    return path
