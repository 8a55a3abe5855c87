"""WMH Segmentation Challenge 2017 (Kuijf et al. 2019), the dataset of Sudre et al.'s setting.

Two published layouts are read, both with `<subject>/{wmh.nii.gz, pre/FLAIR.nii.gz,
pre/T1.nii.gz, pre/3DT1.nii.gz, orig/...}`:

- the DataverseNL release (doi:10.34894/AECRSD): `training/` (60) and `test/` (110), each
  `<site>/<subject>` for Utrecht and Singapore and `Amsterdam/<scanner>/<subject>` for the
  three Amsterdam scanners (`GE3T`; test only: `GE1T5` and `Philips_VU .PETMR_01.`, a folder
  name with a space and a trailing dot), plus `additional_annotations/` (other observers'
  masks, ignored);
- the 2017 per-site training zips: `Utrecht/<subject>`, `Singapore/<subject>`, `GE3T/<subject>`.

The images are `pre/FLAIR` and `pre/T1` (bias-corrected, on the grid of `wmh.nii.gz`);
`pre/3DT1` is on another grid and `orig/` is not used. Labels kept as published: 1 WMH,
2 other pathology (its own class). Cases under a `test` folder form the test split.

A case is named from (site, scanner, subject), each sanitised (`dicebench.data.convert.
case_name`): `Utrecht_0`, `Amsterdam_GE3T_100`, `Amsterdam_Philips_VU_PETMR_01_160`. A bare
Amsterdam scanner folder (2017 zips) gets the site `Amsterdam`, so both layouts give the same
names. Subject ids are unique across sites; the patient is `site/scanner/subject`.
"""

from __future__ import annotations

from pathlib import Path

from dicebench.data.convert import Case, Source, case_name, load_files
from dicebench.errors import DicebenchError

NAME = "WMH2017"
CHANNELS = {"0": "FLAIR", "1": "T1"}
LABELS = {"background": 0, "WMH": 1, "other_pathology": 2}
SITES = ("Utrecht", "Singapore", "Amsterdam")
IGNORED = ("additional_annotations", "__MACOSX")  # other observers' masks; macOS archive debris


def metadata(sources=(), flair_only: bool = False, **options) -> dict:
    return {
        "description": "WMH Segmentation Challenge 2017: FLAIR" + ("" if flair_only else " and T1") + " per site",
        "reference": "Kuijf et al., IEEE TMI 38(11), 2019; data doi:10.34894/AECRSD",
        "licence": "CC BY-NC 4.0",
        "label_mapping": "identity: 1 white matter hyperintensities, 2 other pathology",
    }


def channels(flair_only: bool = False, **options) -> dict:
    return {"0": "FLAIR"} if flair_only else dict(CHANNELS)


def is_amsterdam_scanner(folder: str) -> bool:
    """The Amsterdam scanner folders: GE3T, GE1T5 and `Philips_VU .PETMR_01.`."""
    return folder in ("GE3T", "GE1T5") or folder.startswith("Philips")


def site_scanner(case_dir: Path, src: Path) -> tuple[str, str]:
    """(site, scanner) of a subject folder from the folder(s) above it ('' for one-scanner sites)."""
    above = case_dir.relative_to(src).parts[:-1]
    if not above:
        raise DicebenchError(f"{case_dir}: expected a '<site>/<subject>' folder with wmh.nii.gz")
    if is_amsterdam_scanner(above[-1]):
        return "Amsterdam", above[-1]
    return above[-1], ""


def find(src: Path, flair_only: bool = False) -> list[Source]:
    """Every subject folder with wmh.nii.gz, outside `additional_annotations/`."""
    out = []
    for lab in sorted(src.rglob("wmh.nii.gz")):
        rel = lab.relative_to(src).parts
        if any(part in IGNORED or part.startswith("._") for part in rel):
            continue
        d = lab.parent
        images = [d / "pre" / "FLAIR.nii.gz"] + ([] if flair_only else [d / "pre" / "T1.nii.gz"])
        for p in images:
            if not p.is_file():
                raise DicebenchError(f"{p}: missing (the subject folder {d} has wmh.nii.gz)")
        site, scanner = site_scanner(d, src)
        split = "Ts" if "test" in (p.lower() for p in rel[:-1]) else "Tr"
        meta = {"site": site, **({"scanner": scanner} if scanner else {})}
        patient = "/".join(x for x in (site, scanner, d.name) if x)
        out.append(Source(case_name(site, scanner, d.name), split, patient, d, images, lab, meta=meta))
    if not out:
        raise DicebenchError(f"{src}: no WMH subject folder '<site>/<subject>/wmh.nii.gz' found")
    return out


def load(source: Source, flair_only: bool = False) -> Case:
    return load_files(source, len(channels(flair_only)))
