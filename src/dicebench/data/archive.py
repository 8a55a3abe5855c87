"""Safe extraction of downloaded archives: nothing is ever written outside the target folder.

Tar archives go through Python's `tarfile` "data" filter (PEP 706), which refuses absolute
paths, `..` components, links pointing outside the target, devices and setuid bits. Zip has no
such filter, so every member name is checked before anything is written. The whole archive is
validated first and extracted into a hidden staging folder that is renamed into place only on
success, so a refused archive leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from dicebench.errors import DicebenchError


def _unsafe_name(name: str) -> str | None:
    """Why a member name would escape the target (None when it is safe)."""
    if not name:
        return "empty member name"
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return "absolute path"
    if ".." in PurePosixPath(norm).parts:
        return "'..' path component"
    return None


def _check_tar(tf: tarfile.TarFile, archive: Path, target: Path) -> None:
    for m in tf.getmembers():
        why = _unsafe_name(m.name)
        if why is None:
            try:
                tarfile.data_filter(m, str(target))
            except tarfile.FilterError as exc:
                why = str(exc)
        if why:
            raise DicebenchError(f"{archive}: refused member {m.name!r}: {why}")


def _check_zip(zf: zipfile.ZipFile, archive: Path) -> None:
    for info in zf.infolist():
        why = _unsafe_name(info.filename)
        mode = info.external_attr >> 16
        if why is None and stat.S_ISLNK(mode):
            why = "symbolic link (not allowed in zip archives)"
        if why:
            raise DicebenchError(f"{archive}: refused member {info.filename!r}: {why}")


def archive_kind(path: str | Path) -> str:
    """'zip', 'tar' or raises: decided by content, not by the extension."""
    path = Path(path)
    if not path.is_file():
        raise DicebenchError(f"{path}: archive not found")
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except OSError:
        pass
    raise DicebenchError(f"{path}: not a zip or tar archive (or truncated)")


def list_members(archive: str | Path) -> list[str]:
    archive = Path(archive)
    if archive_kind(archive) == "zip":
        with zipfile.ZipFile(archive) as zf:
            return zf.namelist()
    with tarfile.open(archive) as tf:
        return tf.getnames()


def safe_extract(archive: str | Path, target: str | Path) -> Path:
    """Extract `archive` into `target` (created), refusing any member that would escape it.

    Extraction goes to a staging folder beside `target`, whose content is moved in only when
    every member was extracted; a refused or corrupt archive leaves `target` as it was.
    """
    archive, target = Path(archive), Path(target)
    kind = archive_kind(archive)
    target.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.extract.", dir=target.parent))
    try:
        try:
            if kind == "tar":
                with tarfile.open(archive) as tf:
                    _check_tar(tf, archive, stage)
                    tf.extractall(stage, filter="data")
            else:
                with zipfile.ZipFile(archive) as zf:
                    _check_zip(zf, archive)
                    zf.extractall(stage)  # a CRC mismatch raises BadZipFile while reading
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
            raise DicebenchError(f"{archive}: cannot extract ({exc})") from None
        for item in stage.iterdir():
            dest = target / item.name
            if dest.exists():
                if dest.is_dir() and not dest.is_symlink():
                    shutil.rmtree(dest)
                else:
                    dest.unlink()
            os.replace(item, dest)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return target
