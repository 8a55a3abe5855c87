"""Medical Segmentation Decathlon Task05 Prostate (Antonelli et al. 2022): T2 + ADC.

Source layout: `Task05_Prostate/{dataset.json, imagesTr/prostate_NN.nii.gz, labelsTr/prostate_NN.nii.gz,
imagesTs/...}` with 4D images (x, y, z, 2: T2, ADC) and labels 1 PZ, 2 TZ. macOS `._*` resource
files in the tarball are ignored. The MSD test labels are not public, so a fixed hold-out of the
training list (every 4th in sorted order: 8 of 32) forms the test split.
"""

from __future__ import annotations

import json
from pathlib import Path

from dicebench.data.convert import Case, Source, case_name, holdout, load_files
from dicebench.errors import DicebenchError

NAME = "MSD_Task05_Prostate"
CHANNELS = {"0": "T2", "1": "ADC"}
LABELS = {"background": 0, "PZ": 1, "TZ": 2}
TEST_EVERY = 4


def metadata(sources=(), **options) -> dict:
    return {
        "description": "MSD Task05 Prostate, T2 and ADC (fixed hold-out of the training list as test split)",
        "reference": "Antonelli et al., Nature Communications 13:4128, 2022, doi:10.1038/s41467-022-30695-9",
        "licence": "CC BY-SA 4.0",
        "label_mapping": "identity: 1 peripheral zone, 2 transition zone",
        "split_note": f"test = every {TEST_EVERY}th training case in sorted order (MSD test labels are not public)",
    }


def find_task(src: Path) -> Path:
    hits = sorted(p.parent for p in src.rglob("dataset.json")
                  if not p.name.startswith("._") and (p.parent / "imagesTr").is_dir())
    if not hits:
        raise DicebenchError(f"{src}: no MSD 'Task05_Prostate/dataset.json' with imagesTr found")
    return hits[0]


def find(src: Path) -> list[Source]:
    """The training list of the task's dataset.json (images 4D: T2, ADC), with the hold-out."""
    task = find_task(src)
    meta_path = task / "dataset.json"
    try:
        meta = json.loads(meta_path.read_text())
        training = meta["training"]
        modality = meta.get("modality", {})
        pairs = {Path(item["image"]).name.replace(".nii.gz", ""): (task / item["image"], task / item["label"])
                 for item in training}
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DicebenchError(f"{meta_path}: invalid MSD dataset.json ({exc})") from None
    if modality and [modality.get(k) for k in ("0", "1")] != ["T2", "ADC"]:
        raise DicebenchError(f"{meta_path}: expected modalities T2, ADC, found {modality}")
    test = holdout(list(pairs), TEST_EVERY)
    return [Source(case_name(c), "Ts" if c in test else "Tr", c, img, [img], lab)
            for c, (img, lab) in pairs.items()]


def load(source: Source) -> Case:
    return load_files(source, len(CHANNELS))
