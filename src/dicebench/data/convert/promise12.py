"""PROMISE12 (Litjens et al. 2014), the dataset of Liu & Fu 2018: prostate T2 MRI as .mhd/.raw.

Two published layouts are read, both with `CaseNN.mhd/.raw` and, where labelled,
`CaseNN_segmentation.mhd/.raw`:

- the challenge's training archives: `TrainingData_Part{1,2,3}/` (Case00..Case49, labelled),
  and its test archive (unlabelled, ignored);
- the Zenodo copy (record 8026660): `training_data/` (the same 50), `test_data/` and
  `livechallenge_test_data/`, whose cases are again numbered from Case00. Check the record:
  where the test folders hold segmentations, they form the test split.

Cases are named by their folder's cohort: training cases keep `CaseNN`; test cases become
`test_CaseNN` and live-challenge cases `live_CaseNN`, so two cohorts' `Case00` never collide.
A folder whose name starts with `test` is the test cohort, one with `live` in its name the
live challenge, anything else training. Label 1 prostate. Where labelled test cases exist
they are the test split; otherwise (the challenge archives) a fixed hold-out of the training
cases (every 5th in sorted order: 10 of 50) is.
"""

from __future__ import annotations

import re
from pathlib import Path

from dicebench.data.convert import Case, Source, case_name, holdout, load_files
from dicebench.errors import DicebenchError

NAME = "PROMISE12"
CHANNELS = {"0": "T2"}
LABELS = {"background": 0, "prostate": 1}
TEST_EVERY = 5
COHORT_PREFIX = {"train": "", "test": "test", "live": "live"}


def metadata(sources=(), **options) -> dict:
    official = any(s.meta.get("cohort") != "train" for s in sources)
    note = ("test = the release's labelled test cases" if official else
            f"test = every {TEST_EVERY}th training case in sorted order (no test labels in the source)")
    return {
        "description": "PROMISE12 prostate T2 MRI",
        "reference": "Litjens et al., Medical Image Analysis 18(2), 2014, doi:10.1016/j.media.2013.12.002",
        "licence": "PROMISE12 challenge terms of use",
        "label_mapping": "identity: 1 prostate",
        "split_note": note,
    }


def cohort(folders: tuple[str, ...]) -> str:
    """'train', 'test' or 'live' from the folders above a case file."""
    lower = [f.lower() for f in folders]
    if any("live" in f for f in lower):
        return "live"
    if any(f.startswith("test") for f in lower):
        return "test"
    return "train"


def find(src: Path) -> list[Source]:
    """Every labelled case, named by cohort; the test split as described in the module doc."""
    found: dict[tuple[str, str], Path] = {}
    for p in sorted(src.rglob("Case*.mhd")):
        m = re.fullmatch(r"(Case\d+)\.mhd", p.name)
        if not m or any(part.startswith("._") or part == "__MACOSX" for part in p.relative_to(src).parts):
            continue
        key = (cohort(p.relative_to(src).parts[:-1]), m.group(1))
        if key in found:
            raise DicebenchError(f"{p}: duplicate {key[0]} case {key[1]} (also {found[key]})")
        found[key] = p
    labelled = {k: p for k, p in found.items() if p.with_name(f"{k[1]}_segmentation.mhd").is_file()}
    train = sorted(c for (co, c) in labelled if co == "train")
    if not train:
        raise DicebenchError(f"{src}: no PROMISE12 'CaseNN.mhd' with 'CaseNN_segmentation.mhd' found")
    official = any(co != "train" for co, _ in labelled)
    test = set() if official else holdout(train, TEST_EVERY)
    out = []
    for (co, case), img in sorted(labelled.items()):
        name = case_name(COHORT_PREFIX[co], case)
        split = "Ts" if co != "train" or case in test else "Tr"
        seg = img.with_name(f"{case}_segmentation.mhd")
        out.append(Source(name, split, name, img, [img], seg, meta={"cohort": co}))
    return out


def load(source: Source) -> Case:
    return load_files(source, len(CHANNELS))
