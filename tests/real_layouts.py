"""Miniature trees in the published layouts of the real datasets, quirks included.

One place for every layout fact the converter tests rely on, each with where it comes from.
The volumes are tiny random arrays; names, folders, file kinds, data types and header quirks
are the releases'. Sources (read, not copied):

[torch-em-wmh]   constantinpape/torch-em, torch_em/data/datasets/medical/wmh.py
[torch-em-p12]   constantinpape/torch-em, torch_em/data/datasets/medical/promise12.py
[nnunet-acdc]    MIC-DKFZ/nnUNet, nnunetv2/dataset_conversion/Dataset027_ACDC.py
[nnunet-msd]     MIC-DKFZ/nnUNet, nnunetv2/dataset_conversion/convert_MSD_dataset.py
[nnunet-p12]     MIC-DKFZ/nnUNet, nnunet/dataset_conversion/Task024_Promise2012.py (v1)
[kuijf2019]      Kuijf et al., IEEE TMI 38(11) 2019, abstract: 60 training subjects (3 scanners),
                 110 test subjects (5 scanners)
[wmh-loaders]    public loaders of the DataverseNL record found by code search (the index names no
                 repository): a BIDS table builder listing per subject orig/{FLAIR,T1,3DT1,
                 3DT1_mask}.nii.gz, orig/reg_3DT1_to_FLAIR.txt, pre/{FLAIR,T1,3DT1}.nii.gz, and
                 additional_annotations/observer_o{3,4}/training/<site>[/<scanner>]/<id>/result.nii.gz
                 for the training subjects; a downloader test with subjects
                 test/Amsterdam/GE1T5/150 and test/Amsterdam/Philips_VU .PETMR_01./160 and file
                 metadata {"filesize", "checksum": {"type": "SHA-1", "value"}}
[dataverse-api]  guides.dataverse.org, Native API (dataset JSON: data.latestVersion.files[] with
                 directoryLabel and dataFile{id, filename, filesize, checksum}) and Data Access API
                 (/api/access/datafile/{id}; whole-dataset zips are size-limited)
[ts-461]         wasserth/TotalSegmentator issue #461: ~140 v2.0.1 subjects (s0000, s0001, ...) that
                 ITK refuses ("ITK only supports orthonormal direction cosines")
[multitalent-14] MIC-DKFZ/MultiTalent issue #14: the same files in nnU-Net's SimpleITK reader; the
                 maintainers' advice: nnU-Net's nibabel reader
[ts-layout]      TotalSegmentator README (1228 subjects) and public loaders of v2.0.1: sNNNN/ct.nii.gz,
                 sNNNN/segmentations/<structure>.nii.gz (117 binary masks), meta.csv
                 semicolon-separated with a UTF-8 BOM, columns image_id;age;gender;institute;
                 study_type;split;manufacturer;scanner_model;kvp;pathology;pathology_location,
                 split in {train, val, test}
[zenodo-p12]     Zenodo record 8026660 as used by other projects: training_data.zip, test_data.zip,
                 livechallenge_test_data.zip, LICENSE.TXT; training and test cases both numbered
                 from Case00 (issue 18 of this project; check the record)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

SHAPE = (5, 9, 8)  # z, y, x
OBLIQUE = (0.96, -0.28, 0.0, 0.28, 0.96, 0.0, 0.0, 0.0, 1.0)


def vol(seed: int, kind: str = "image", shape=SHAPE, spacing=(1.4, 1.4, 10.0), origin=(-3.0, 7.5, 12.0),
        direction=OBLIQUE, values=4, dtype=None) -> sitk.Image:
    rng = np.random.default_rng(seed)
    if kind == "image":
        arr = rng.normal(200, 30, shape).astype(dtype or np.float32)
    else:
        arr = rng.integers(0, values, shape).astype(dtype or np.uint8)
    im = sitk.GetImageFromArray(arr)
    im.SetSpacing(spacing)
    im.SetOrigin(origin)
    im.SetDirection(direction)
    return im


def write(im: sitk.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(im, str(path))
    return path


# A sheared voxel-to-world affine (RAS), as in [ts-461]: no orthonormal direction fits it exactly.
SHEARED = np.array([[-1.5, 0.0, 0.03, 120.0],
                    [0.0, -1.5, 0.0, 95.0],
                    [0.0, 0.02, 1.5, -410.0],
                    [0.0, 0.0, 0.0, 1.0]])


def write_sheared(arr_zyx: np.ndarray, path: Path, affine: np.ndarray = SHEARED) -> Path:
    """A NIfTI with a non-orthonormal sform and qform code 0, the header of [ts-461]'s files."""
    img = nib.Nifti1Image(np.transpose(arr_zyx, (2, 1, 0)), affine)
    img.set_sform(affine, code=1)
    img.set_qform(None, code=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


# ---------------------------------------------------------------- ACDC

def make_acdc(root: Path, bad_label_in: str | None = None, more_training: int = 0) -> Path:
    """`ACDC/database/{training,testing}/patientNNN/` [nnunet-acdc]: Info.cfg (`ED: 1`, `ES: 12`,
    `Group`, ...), the 4D cine `patientNNN_4d.nii.gz`, and per labelled frame
    `patientNNN_frameFF.nii.gz` + `_gt.nii.gz`. Training patients 001 and 002, test patient 101,
    and `more_training` further training patients (003, 004, ...)."""
    db = root / "ACDC" / "database"
    frames = {"patient001": (1, 12), "patient002": (1, 10), "patient101": (1, 14)}
    frames.update({f"patient{3 + i:03d}": (1, 9) for i in range(more_training)})
    for pid, (ed, es) in frames.items():
        split = "testing" if pid == "patient101" else "training"
        d = db / split / pid
        d.mkdir(parents=True)
        (d / "Info.cfg").write_text(f"ED: {ed}\nES: {es}\nGroup: DCM\nHeight: 184.0\nNbFrame: 30\nWeight: 95.0\n")
        seed = int(pid[-3:])
        write(sitk.JoinSeries([vol(seed)] * 2), d / f"{pid}_4d.nii.gz")
        for f in (ed, es):
            write(vol(seed * 100 + f), d / f"{pid}_frame{f:02d}.nii.gz")
            lab = vol(seed * 100 + f, "label")
            if pid == bad_label_in and f == es:
                arr = sitk.GetArrayFromImage(lab)
                arr[0, 0, 0] = 5
                lab2 = sitk.GetImageFromArray(arr)
                lab2.CopyInformation(lab)
                lab = lab2
            write(lab, d / f"{pid}_frame{f:02d}_gt.nii.gz")
        write(vol(seed + 7), d / f"{pid}_frame05.nii.gz")  # an unlabelled frame: ignored
    return root


# ---------------------------------------------------------------- WMH 2017

WMH_GEO = dict(spacing=(0.96, 0.96, 3.0), origin=(-120.0, -90.0, 30.0))
PHILIPS = "Philips_VU .PETMR_01."  # a space and a trailing dot [torch-em-wmh], [wmh-loaders]

# (split folder, site path, subject) in the DataverseNL record [torch-em-wmh], [kuijf2019]:
# Utrecht and Singapore have no scanner level, Amsterdam has GE3T (training and test) and, in
# the test set only, GE1T5 and the Philips scanner [wmh-loaders].
WMH_DATAVERSE_SUBJECTS = [
    ("training", "Utrecht", "0"),
    ("training", "Singapore", "50"),
    ("training", "Amsterdam/GE3T", "100"),
    ("test", "Amsterdam/GE1T5", "150"),
    ("test", f"Amsterdam/{PHILIPS}", "160"),
]


def _wmh_subject(d: Path, seed: int, full: bool = True) -> None:
    """One subject folder: wmh.nii.gz (float32, as in the release) and pre/FLAIR, pre/T1 on its
    grid [torch-em-wmh]; with `full`, also pre/3DT1 and orig/ on other grids [wmh-loaders]."""
    write(vol(seed, **WMH_GEO), d / "pre" / "FLAIR.nii.gz")
    write(vol(seed + 10, **WMH_GEO), d / "pre" / "T1.nii.gz")
    write(vol(seed, "label", values=3, dtype=np.float32, **WMH_GEO), d / "wmh.nii.gz")
    if full:
        t1_grid = dict(shape=(9, 11, 10), spacing=(1.0, 1.0, 1.0), origin=(-100.0, -110.0, -80.0))
        write(vol(seed + 30, **t1_grid), d / "pre" / "3DT1.nii.gz")
        write(vol(seed + 31, **t1_grid), d / "orig" / "3DT1.nii.gz")
        write(vol(seed + 32, "label", values=2, **t1_grid), d / "orig" / "3DT1_mask.nii.gz")
        write(vol(seed + 20, shape=(5, 11, 8)), d / "orig" / "FLAIR.nii.gz")
        write(vol(seed + 21, shape=(5, 11, 8)), d / "orig" / "T1.nii.gz")
        (d / "orig" / "reg_3DT1_to_FLAIR.txt").write_text("(Transform \"EulerTransform\")\n")


def make_wmh_dataverse(root: Path) -> Path:
    """The DataverseNL release (doi:10.34894/AECRSD), with additional_annotations/ [wmh-loaders]."""
    for i, (split, site, subject) in enumerate(WMH_DATAVERSE_SUBJECTS):
        _wmh_subject(root / split / site / subject, i + 1)
        if split == "training":
            for observer in ("observer_o3", "observer_o4"):
                write(vol(i + 40, "label", values=2, **WMH_GEO),
                      root / "additional_annotations" / observer / split / site / subject / "result.nii.gz")
    return root


def make_wmh_2017_zips(root: Path) -> Path:
    """The 2017 per-site training zips, extracted side by side: `Utrecht/0`, `Singapore/50`,
    `GE3T/100` (the Amsterdam scanner folder at the top, no site level; issue 18)."""
    for i, site in enumerate(("Utrecht/0", "Singapore/50", "GE3T/100")):
        _wmh_subject(root / site, i + 1, full=False)
    return root


# ---------------------------------------------------------------- PROMISE12

PROMISE_GEO = dict(spacing=(0.625, 0.625, 3.6), direction=OBLIQUE)


def _promise_case(folder: Path, case: str, seed: int, labelled: bool = True) -> None:
    """`CaseNN.mhd/.raw` (int16 T2) and `CaseNN_segmentation.mhd/.raw` [nnunet-p12], [torch-em-p12]."""
    geo = dict(origin=(-80.0 + seed, -60.0, 10.0), **PROMISE_GEO)
    write(vol(seed, dtype=np.int16, **geo), folder / f"{case}.mhd")
    if labelled:
        write(vol(seed, "label", values=2, **geo), folder / f"{case}_segmentation.mhd")


def make_promise_challenge(root: Path) -> Path:
    """The challenge archives: TrainingData_Part{1,2,3}/ with labelled Case00.. (here 6), and
    the unlabelled test archive, whose numbering starts at Case00 again."""
    for i in range(6):
        _promise_case(root / f"TrainingData_Part{i // 2 + 1}", f"Case{i:02d}", i)
    _promise_case(root / "TestData", "Case00", 99, labelled=False)
    return root


def make_promise_zenodo(root: Path, test_labels: bool = True) -> Path:
    """The Zenodo copy [zenodo-p12], each archive extracted into its own folder: training_data/
    (labelled), test_data/ (labelled when `test_labels`), livechallenge_test_data/ (unlabelled)."""
    for i in range(4):
        _promise_case(root / "training_data", f"Case{i:02d}", i)
    for i in range(2):
        _promise_case(root / "test_data", f"Case{i:02d}", 50 + i, labelled=test_labels)
    _promise_case(root / "livechallenge_test_data", "Case00", 80, labelled=False)
    (root / "LICENSE.TXT").write_text("licence text of the record\n")
    return root


# ---------------------------------------------------------------- MSD Task05

def make_msd(root: Path) -> Path:
    """`Task05_Prostate/{dataset.json, imagesTr, labelsTr, imagesTs}`, 4D images (T2, ADC),
    `modality` and `labels` keyed "0", "1", ..., and macOS `._*` files in the tarball that
    nnU-Net's converter skips [nnunet-msd]."""
    task = root / "Task05_Prostate"
    training = []
    for i in (0, 1, 2, 4, 6):
        t2, adc = vol(i, spacing=(0.6, 0.6, 4.0)), vol(i + 50, spacing=(0.6, 0.6, 4.0))
        write(sitk.JoinSeries([t2, adc]), task / "imagesTr" / f"prostate_{i:02d}.nii.gz")
        write(vol(i, "label", values=3, spacing=(0.6, 0.6, 4.0)), task / "labelsTr" / f"prostate_{i:02d}.nii.gz")
        (task / "imagesTr" / f"._prostate_{i:02d}.nii.gz").write_bytes(b"\x00\x05\x16\x07AppleDouble")
        training.append({"image": f"./imagesTr/prostate_{i:02d}.nii.gz",
                         "label": f"./labelsTr/prostate_{i:02d}.nii.gz"})
    write(sitk.JoinSeries([vol(9), vol(10)]), task / "imagesTs" / "prostate_03.nii.gz")
    (task / "dataset.json").write_text(json.dumps({
        "name": "PROSTATE", "modality": {"0": "T2", "1": "ADC"},
        "labels": {"0": "background", "1": "PZ", "2": "TZ"}, "numTraining": 5, "numTest": 1,
        "training": training, "test": ["./imagesTs/prostate_03.nii.gz"]}))
    return root


# ---------------------------------------------------------------- TotalSegmentator v2.0.1

ORGANS = {  # file -> (class index, box z0:z1, y0:y1, x0:x1)
    "liver": (3, (0, 5, 0, 6, 0, 5)),
    "spleen": (4, (0, 3, 6, 9, 5, 8)),
    "stomach": (5, (1, 4, 2, 5, 4, 8)),
    "gallbladder": (6, (2, 3, 1, 3, 1, 3)),
    "pancreas": (7, (3, 5, 4, 6, 2, 7)),
    "aorta": (1, (0, 5, 7, 8, 0, 2)),
    "portal_vein_and_splenic_vein": (2, (2, 4, 3, 4, 0, 8)),
    "kidney_left": (None, (0, 5, 8, 9, 6, 8)),
}
TS_META = ("\ufeffimage_id;age;gender;institute;study_type;split;manufacturer;scanner_model;kvp;pathology;"
           "pathology_location\n"
           "s0000;60;m;I;ct abdomen;train;Siemens;x;120;no;\n"
           "s0001;55;f;I;ct head;val;GE;x;120;no;\n"
           "s0002;70;m;I;ct abdomen-pelvis;test;Philips;x;120;no;\n")  # [ts-layout]: BOM, ';'


def make_totalseg(root: Path, sheared: tuple[str, ...] = ("s0000",)) -> Path:
    """`meta.csv` and `sNNNN/{ct.nii.gz, segmentations/*.nii.gz}` [ts-layout]; the subjects in
    `sheared` store a sheared sform with qform code 0, CT and masks alike [ts-461]."""
    root.mkdir(parents=True)
    (root / "meta.csv").write_text(TS_META, encoding="utf-8")
    for sid in ("s0000", "s0001", "s0002"):
        d = root / sid
        ct = vol(int(sid[1:]), dtype=np.int16, spacing=(1.5, 1.5, 1.5), origin=(100.0, 80.0, -300.0),
                 direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1))
        if sid in sheared:
            write_sheared(sitk.GetArrayFromImage(ct), d / "ct.nii.gz")
        else:
            write(ct, d / "ct.nii.gz")
        for organ, (_, (z0, z1, y0, y1, x0, x1)) in ORGANS.items():
            m = np.zeros(SHAPE, np.uint8)
            if sid != "s0001" or organ == "kidney_left":  # the head scan has no abdominal organ
                m[z0:z1, y0:y1, x0:x1] = 1
            if sid in sheared:
                write_sheared(m, d / "segmentations" / f"{organ}.nii.gz")
            else:
                im = sitk.GetImageFromArray(m)
                im.CopyInformation(ct)
                write(im, d / "segmentations" / f"{organ}.nii.gz")
    return root


def expected_totalseg() -> np.ndarray:
    """Independent reference: paint voxel by voxel, later classes of the documented order win."""
    lab = np.zeros(SHAPE, np.uint8)
    order = ["aorta", "portal_vein_and_splenic_vein", "liver", "spleen", "stomach", "gallbladder", "pancreas"]
    for organ in order:
        cls, (z0, z1, y0, y1, x0, x1) = ORGANS[organ]
        for z in range(z0, z1):
            for y in range(y0, y1):
                for x in range(x0, x1):
                    lab[z, y, x] = cls
    return lab


# ---------------------------------------------------------------- a Dataverse record

def dataverse_record(tree: Path, doi: str, checksum: str = "SHA-1", first_id: int = 1000
                     ) -> tuple[dict, dict[int, bytes]]:
    """The native-API JSON of a record holding every file under `tree` [dataverse-api], and the
    bytes each file id serves. Folder names are kept as published (spaces, trailing dots)."""
    algo = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-512": "sha512"}.get(checksum)
    files, payloads = [], {}
    for i, p in enumerate(sorted(q for q in tree.rglob("*") if q.is_file())):
        data = p.read_bytes()
        rel = p.relative_to(tree).parent.as_posix()
        file_id = first_id + i
        payloads[file_id] = data
        data_file = {"id": file_id, "persistentId": "", "filename": p.name, "contentType": "application/gzip",
                     "filesize": len(data), "storageIdentifier": f"s3://bucket:{file_id:x}"}
        if algo:
            data_file["checksum"] = {"type": checksum, "value": hashlib.new(algo, data).hexdigest()}
        item = {"label": p.name, "restricted": False, "version": 1, "datasetVersionId": 7, "dataFile": data_file}
        if rel != ".":
            item["directoryLabel"] = rel
        files.append(item)
    listing = {"status": "OK", "data": {"id": 42, "persistentId": doi, "protocol": "doi",
                                        "latestVersion": {"versionNumber": 2, "versionMinorNumber": 0,
                                                          "versionState": "RELEASED", "files": files}}}
    return listing, payloads
