"""I/O at the edges: atomic writes and NIfTI reading/writing that keep the geometry.

Every output is written to a temporary file in the same folder and renamed into
place, so an interrupted job never leaves a half-written file under its final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import SimpleITK as sitk

from dicebench.errors import DicebenchError


def current_umask() -> int:
    """The process's umask, read without changing it (Linux's /proc; elsewhere set and restored)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def chmod_per_umask(path: str | os.PathLike) -> None:
    """Give a file 0666 and a folder 0777, less the umask, as open() and mkdir() would.

    `mkstemp` and `mkdtemp` create private (0600/0700) files and folders; an output renamed
    from one would stay unreadable to the colleagues a shared project's umask lets read it.
    """
    base = 0o777 if Path(path).is_dir() else 0o666
    os.chmod(path, base & ~current_umask())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only on success.

    `suffix` keeps the extension a writer dispatches on (".nii.gz", ".csv"). The file gets the
    mode the umask gives a new file (`chmod_per_umask`), not mkstemp's private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        chmod_per_umask(tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_image(path: str | os.PathLike) -> sitk.Image:
    """Read a medical image with SimpleITK; a corrupt or truncated file is a DicebenchError."""
    path = Path(path)
    if not path.exists():
        raise DicebenchError(f"{path}: file not found")
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = next((ln for ln in first if "ERROR" in ln or "rror" in ln), first[0] if first else "")
        raise DicebenchError(f"{path}: unreadable or truncated image ({detail.strip()[:200]})") from None


def write_image(image: sitk.Image, path: str | os.PathLike, compress: bool = True) -> None:
    """Write atomically; the extension picks the format (.nii.gz, .nrrd, .mha)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=compress)


def array_to_image(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """A NumPy array (z, y, x) with the geometry (spacing, origin, direction) of `reference`."""
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image


def same_geometry(a: sitk.Image, b: sitk.Image, tol: float = 1e-4) -> bool:
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tol)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tol * 10)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=tol)
    )


def json_option(text: str, option: str):
    """Parse a command-line option holding JSON (the rules pass settings that way)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DicebenchError(f"{option} is not valid JSON: {exc}") from None


def read_json(path: str | os.PathLike) -> dict:
    """A JSON object from a file; a missing, unreadable or malformed file is a DicebenchError."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise DicebenchError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DicebenchError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise DicebenchError(f"{path}: expected a JSON object")
    return obj
