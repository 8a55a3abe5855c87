"""ACDC (Bernard et al. 2018): end-diastole and end-systole frames with their ground truth.

Source layout (humanheart-project release): `.../database/{training,testing}/patientNNN/` with
`Info.cfg` (lines `ED: 1`, `ES: 12`, ...), `patientNNN_4d.nii.gz`, `patientNNN_frameFF.nii.gz` and
`patientNNN_frameFF_gt.nii.gz`. Labels are kept as published: 1 RV cavity, 2 myocardium, 3 LV
cavity. The official split is kept: training (100 patients) -> Tr, testing (50) -> Ts; with a
hold-out (`dicebench.data.convert.hold_out_patients`, config `datasets.<name>.holdout`) the test
split is instead whole training patients, as Kervadec & de Bruijne 2023's 70 / 10 / 20 patients
of the 100 (a second dataset entry without the hold-out keeps the official 50 as a second test set).
Cases are named `patientNNN_ED` and `patientNNN_ES`; both frames of a patient share the
patient `patientNNN`, which is what every split is drawn by (as nnU-Net's Dataset027_ACDC does).
"""

from __future__ import annotations

import re
from pathlib import Path

from dicebench.data.convert import Case, Source, case_name, load_files
from dicebench.errors import DicebenchError

NAME = "ACDC"
CHANNELS = {"0": "cineMRI"}
LABELS = {"background": 0, "RV": 1, "MYO": 2, "LV": 3}
SPLITS = {"training": "Tr", "testing": "Ts"}


def metadata(sources=(), **options) -> dict:
    return {
        "description": "ACDC cine-MRI, ED and ES frames",
        "reference": "Bernard et al., IEEE TMI 37(11), 2018, doi:10.1109/TMI.2018.2837502",
        "licence": "CC BY-NC-SA 4.0",
        "label_mapping": "identity: 1 RV cavity, 2 myocardium, 3 LV cavity",
    }


def read_info(path: Path) -> dict[str, str]:
    """Parse Info.cfg ('Key: value' per line)."""
    if not path.is_file():
        raise DicebenchError(f"{path}: missing Info.cfg")
    info = {}
    for line in path.read_text().splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            info[k.strip()] = v.strip()
    for key in ("ED", "ES"):
        if not re.fullmatch(r"\d+", info.get(key, "")):
            raise DicebenchError(f"{path}: missing or invalid '{key}' frame number")
    return info


def find_database(src: Path) -> dict[str, Path]:
    """The training/testing folders, wherever the archive nests them."""
    found = {}
    for split_dir, split in SPLITS.items():
        hits = sorted(p.parent.parent for p in src.rglob("patient*/Info.cfg") if p.parent.parent.name == split_dir)
        if hits:
            found[split] = hits[0]
    if "Tr" not in found:
        raise DicebenchError(f"{src}: no ACDC 'training/patientNNN/Info.cfg' found")
    return found


def find(src: Path) -> list[Source]:
    """Both labelled frames (ED, ES) of every patient, from Info.cfg; no image is read."""
    out = []
    for split, folder in find_database(src).items():
        for pdir in sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("patient")):
            info = read_info(pdir / "Info.cfg")
            for phase in ("ED", "ES"):
                frame = f"{pdir.name}_frame{int(info[phase]):02d}"
                img_path, gt_path = pdir / f"{frame}.nii.gz", pdir / f"{frame}_gt.nii.gz"
                for p in (img_path, gt_path):
                    if not p.is_file():
                        raise DicebenchError(f"{p}: missing ({phase} frame named in {pdir / 'Info.cfg'})")
                out.append(Source(case_name(pdir.name, phase), split, pdir.name, img_path, [img_path], gt_path,
                                  meta={"group": info.get("Group", "")}))
    return out


def load(source: Source) -> Case:
    return load_files(source, len(CHANNELS))
