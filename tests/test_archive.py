"""Safe extraction: tampered archives are refused and nothing lands outside the target."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from dicebench.data.archive import list_members, safe_extract
from dicebench.errors import DicebenchError


def _tar(path: Path, members: list[tuple[str, bytes | None, str | None]]) -> Path:
    """members: (name, data or None, symlink target or None)."""
    with tarfile.open(path, "w:gz") as tf:
        for name, data, link in members:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type = tarfile.SYMTYPE
                info.linkname = link
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def _zip(path: Path, members: list[tuple[str, bytes]], symlink: tuple[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members:
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink[0])
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, symlink[1])
    return path


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


GOOD = [("data/a.txt", b"A", None), ("data/sub/b.txt", b"BB", None)]


def test_good_tar_and_zip_extract(tmp_path):
    t = _tar(tmp_path / "ok.tar.gz", GOOD)
    out = safe_extract(t, tmp_path / "out")
    assert (out / "data" / "sub" / "b.txt").read_bytes() == b"BB"
    assert _tree(out) == {"data", "data/a.txt", "data/sub", "data/sub/b.txt"}
    z = _zip(tmp_path / "ok.zip", [(n, d) for n, d, _ in GOOD])
    out2 = safe_extract(z, tmp_path / "out2")
    assert (out2 / "data" / "a.txt").read_bytes() == b"A"
    assert sorted(list_members(z)) == ["data/a.txt", "data/sub/b.txt"]
    # no staging folder left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.tar.gz", "ok.zip", "out", "out2"]


@pytest.mark.parametrize("bad, why", [
    (("../escape.txt", b"x", None), "'..'"),
    (("data/../../escape.txt", b"x", None), "'..'"),
    (("/tmp/dicebench_abs_escape.txt", b"x", None), "absolute"),
    (("data/link", None, "../../outside"), "outside"),
    (("data/abslink", None, "/etc/passwd"), "refused"),
])
def test_tampered_tar_is_refused_and_nothing_written(tmp_path, bad, why):
    t = _tar(tmp_path / "bad.tar.gz", GOOD + [bad])
    target = tmp_path / "sandbox" / "out"
    with pytest.raises(DicebenchError) as ei:
        safe_extract(t, target)
    msg = str(ei.value)
    assert "bad.tar.gz" in msg and bad[0] in msg and why in msg
    # nothing extracted anywhere: target empty, no stray files beside it or above it
    assert list(target.iterdir()) == []
    assert _tree(tmp_path / "sandbox") == {"out"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar.gz", "sandbox"]
    assert not Path("/tmp/dicebench_abs_escape.txt").exists()


def test_link_then_write_through_link_is_refused(tmp_path):
    """The classic two-step escape: a symlink to '..' followed by a file written through it."""
    t = _tar(tmp_path / "two.tar", [("d", None, ".."), ("d/pwned.txt", b"x", None)])
    with pytest.raises(DicebenchError):
        safe_extract(t, tmp_path / "box" / "out")
    assert not (tmp_path / "box" / "pwned.txt").exists()
    assert list((tmp_path / "box" / "out").iterdir()) == []


@pytest.mark.parametrize("name, why", [
    ("../escape.txt", "'..'"),
    ("/abs/escape.txt", "absolute"),
    ("data\\..\\..\\escape.txt", "'..'"),
    ("C:/windows/escape.txt", "absolute"),
])
def test_tampered_zip_is_refused(tmp_path, name, why):
    z = _zip(tmp_path / "bad.zip", [("data/a.txt", b"A"), (name, b"x")])
    with pytest.raises(DicebenchError, match=why):
        safe_extract(z, tmp_path / "box" / "out")
    assert _tree(tmp_path / "box") == {"out"}


def test_zip_symlink_is_refused(tmp_path):
    z = _zip(tmp_path / "bad.zip", [("data/a.txt", b"A")], symlink=("data/link", "../../../etc"))
    with pytest.raises(DicebenchError, match="symbolic link"):
        safe_extract(z, tmp_path / "box" / "out")
    assert _tree(tmp_path / "box") == {"out"}


def test_truncated_and_non_archives(tmp_path):
    t = _tar(tmp_path / "ok.tar.gz", [("a/" + str(i), os.urandom(2000), None) for i in range(5)])
    blob = t.read_bytes()
    trunc = tmp_path / "trunc.tar.gz"
    trunc.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DicebenchError, match="trunc.tar.gz"):
        safe_extract(trunc, tmp_path / "o1")
    assert not (tmp_path / "o1").exists() or list((tmp_path / "o1").iterdir()) == []
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not an archive at all")
    with pytest.raises(DicebenchError, match="not a zip or tar"):
        safe_extract(junk, tmp_path / "o2")
    with pytest.raises(DicebenchError, match="not found"):
        safe_extract(tmp_path / "missing.zip", tmp_path / "o3")


def test_corrupt_zip_member_is_refused(tmp_path):
    z = _zip(tmp_path / "crc.zip", [("data/a.txt", b"A" * 1000)])
    blob = bytearray(z.read_bytes())
    i = blob.index(b"A" * 100)
    blob[i + 10] = ord("B")  # stored member: flip one data byte, CRC no longer matches
    z.write_bytes(bytes(blob))
    with pytest.raises(DicebenchError, match="crc.zip: cannot extract"):
        safe_extract(z, tmp_path / "box" / "out")
    assert _tree(tmp_path / "box") == {"out"}
