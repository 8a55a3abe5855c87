"""WMH Segmentation Challenge 2017 (Kuijf et al. 2019), the dataset of Sudre et al.'s setting.

Source layout: `[training|test]/.../{Utrecht,Singapore,GE3T,...}/<id>/{wmh.nii.gz, pre/FLAIR.nii.gz,
pre/T1.nii.gz, orig/...}` (the 2017 release has the site folders at the top, the 2022 DataverseNL
release nests them under training/ and test/, Amsterdam sites under Amsterdam/). The
preprocessed `pre/` images are used: they share the grid of `wmh.nii.gz`. Labels kept as
published: 1 WMH, 2 other pathology (kept as its own class). Cases under a `test` folder form
the test split; cases are named `<site>_<id>` and the site of each case is in dataset.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from dicebench.data.convert import Case, channel_images, select
from dicebench.errors import DicebenchError
from dicebench.io import read_image

NAME = "WMH2017"
CHANNELS = {"0": "FLAIR", "1": "T1"}
LABELS = {"background": 0, "WMH": 1, "other_pathology": 2}


def metadata(flair_only: bool = False, **options) -> dict:
    meta = {
        "description": "WMH Segmentation Challenge 2017: FLAIR" + ("" if flair_only else " and T1") + " per site",
        "reference": "Kuijf et al., IEEE TMI 38(11), 2019; data doi:10.34894/AECRSD",
        "licence": "CC BY-NC 4.0",
        "label_mapping": "identity: 1 white matter hyperintensities, 2 other pathology",
    }
    return meta


def channels(flair_only: bool = False, **options) -> dict:
    return {"0": "FLAIR"} if flair_only else dict(CHANNELS)


def find_cases(src: Path) -> list[tuple[str, str, Path, str]]:
    """(split, case name, case folder, site) for every folder with wmh.nii.gz and pre/FLAIR.nii.gz."""
    out = []
    for lab in sorted(src.rglob("wmh.nii.gz")):
        d = lab.parent
        if not (d / "pre" / "FLAIR.nii.gz").is_file():
            raise DicebenchError(f"{d / 'pre' / 'FLAIR.nii.gz'}: missing (case folder has wmh.nii.gz)")
        rel = [p.lower() for p in d.relative_to(src).parts]
        split = "Ts" if "test" in rel else "Tr"
        site = d.parent.name
        out.append((split, f"{site}_{d.name}", d, site))
    if not out:
        raise DicebenchError(f"{src}: no WMH case folder '<site>/<id>/wmh.nii.gz' found")
    return out


def cases(src: Path, max_cases: int | None = None, flair_only: bool = False) -> Iterator[Case]:
    found = find_cases(src)
    entries = [(split, name, (d, site)) for split, name, d, site in found]
    for split, name, (d, site) in select(entries, max_cases):
        paths = [d / "pre" / "FLAIR.nii.gz"] + ([] if flair_only else [d / "pre" / "T1.nii.gz"])
        images = [channel_images(read_image(p), str(p), 1)[0] for p in paths]
        yield Case(name, split, images, read_image(d / "wmh.nii.gz"), str(d / "wmh.nii.gz"), {"site": site})
