"""Outputs written atomically get the mode the user's umask gives any new file (0666 & ~umask,
folders 0777 & ~umask), not mkstemp's private 0600: on a shared project folder, colleagues can
read results/ and figures/ as far as the umask lets them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dicebench.io import atomic_path, chmod_per_umask, current_umask, write_image, write_json, write_text


@pytest.fixture(params=[0o022, 0o002, 0o077], ids=lambda m: f"umask{m:03o}")
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_current_umask_reads_without_changing_it(umask):
    assert current_umask() == umask
    assert current_umask() == umask


def test_atomic_writes_follow_the_umask(tmp_path, umask):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what open() gives a new file under this umask: the reference
    assert _mode(plain) == 0o666 & ~umask

    write_text(tmp_path / "a.txt", "a")
    write_json(tmp_path / "sub" / "b.json", {"b": 1})
    write_image(sitk.GetImageFromArray(np.zeros((2, 3, 4), np.uint8)), tmp_path / "c.nii.gz")
    with atomic_path(tmp_path / "d.bin") as tmp:
        tmp.write_bytes(b"\0")
    for name in ("a.txt", "sub/b.json", "c.nii.gz", "d.bin"):
        assert _mode(tmp_path / name) == _mode(plain), name
    assert _mode(tmp_path / "sub") == 0o777 & ~umask


def test_a_failed_write_leaves_nothing(tmp_path, umask):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "x.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_a_staged_folder_gets_the_umask_mode(tmp_path, umask):
    import tempfile

    stage = Path(tempfile.mkdtemp(dir=tmp_path))
    assert _mode(stage) == 0o700
    chmod_per_umask(stage)
    assert _mode(stage) == 0o777 & ~umask


def test_a_converted_dataset_folder_is_readable_per_the_umask(tmp_path, umask):
    """write_dataset stages the dataset in a mkdtemp folder and renames it into place."""
    from dicebench.data.convert import Case, Source, write_dataset

    img = sitk.GetImageFromArray(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    lab = sitk.GetImageFromArray((np.arange(24).reshape(2, 3, 4) % 2).astype(np.uint8))
    lab.CopyInformation(img)
    src = tmp_path / "download"
    src.mkdir()
    sources = []
    for i in range(2):
        sitk.WriteImage(img, str(src / f"c{i}.nii.gz"))
        sitk.WriteImage(lab, str(src / f"c{i}_seg.nii.gz"))
        sources.append(Source(name=f"c{i}", split="Tr", patient=f"p{i}", origin=src / f"c{i}.nii.gz",
                              images=[src / f"c{i}.nii.gz"], label=src / f"c{i}_seg.nii.gz"))

    def load(s):
        return Case(name=s.name, images=[sitk.ReadImage(str(s.images[0]))], label=sitk.ReadImage(str(s.label)),
                    split=s.split, source=str(s.origin))

    out = write_dataset(tmp_path / "ds", sources, load, src=src, name="ds", channel_names={"0": "MRI"},
                        labels={"background": 0, "fg": 1})
    assert _mode(out) == 0o777 & ~umask
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files and all(_mode(p) == 0o666 & ~umask for p in files), {str(p): oct(_mode(p)) for p in files}
