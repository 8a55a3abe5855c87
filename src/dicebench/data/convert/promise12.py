"""PROMISE12 (Litjens et al. 2014), the dataset of Liu & Fu 2018: prostate T2 MRI as .mhd/.raw.

Source layout: the training archives unpack to `CaseNN.mhd/.raw` and
`CaseNN_segmentation.mhd/.raw` (50 cases, Case00..Case49, possibly in TrainingData_PartK
folders). Label 1 prostate. The challenge's test labels are not public, so a fixed hold-out of
the training cases (every 5th in sorted order: 10 of 50) forms the test split.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from dicebench.data.convert import Case, channel_images, holdout, select
from dicebench.errors import DicebenchError
from dicebench.io import read_image

NAME = "PROMISE12"
CHANNELS = {"0": "T2"}
LABELS = {"background": 0, "prostate": 1}
TEST_EVERY = 5


def metadata(**options) -> dict:
    return {
        "description": "PROMISE12 prostate T2 MRI (training cases; fixed hold-out as test split)",
        "reference": "Litjens et al., Medical Image Analysis 18(2), 2014, doi:10.1016/j.media.2013.12.002",
        "licence": "PROMISE12 challenge terms of use",
        "label_mapping": "identity: 1 prostate",
        "split_note": f"test = every {TEST_EVERY}th training case in sorted order (challenge test labels are not public)",
    }


def cases(src: Path, max_cases: int | None = None) -> Iterator[Case]:
    images = {}
    for p in sorted(src.rglob("Case*.mhd")):
        m = re.fullmatch(r"(Case\d+)\.mhd", p.name)
        if m and not p.name.startswith("._"):
            if m.group(1) in images:
                raise DicebenchError(f"{p}: duplicate case (also {images[m.group(1)]})")
            images[m.group(1)] = p
    labelled = {c: p for c, p in images.items() if p.with_name(f"{c}_segmentation.mhd").is_file()}
    if not labelled:
        raise DicebenchError(f"{src}: no PROMISE12 'CaseNN.mhd' with 'CaseNN_segmentation.mhd' found")
    test = holdout(list(labelled), TEST_EVERY)
    entries = [("Ts" if c in test else "Tr", c, p) for c, p in labelled.items()]
    for split, case, path in select(entries, max_cases):
        seg = path.with_name(f"{case}_segmentation.mhd")
        yield Case(case, split, channel_images(read_image(path), str(path), 1), read_image(seg), str(seg))
