"""I/O at the edges: atomic writes and NIfTI reading/writing that keep the geometry.

Every output is written to a temporary file in the same folder and renamed into
place, so an interrupted job never leaves a half-written file under its final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
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
    """Read a medical image with SimpleITK; a corrupt or truncated file is a DicebenchError.

    A readable file whose geometry ITK refuses (direction cosines that are not orthonormal) gets
    its own message: it is not damaged, and `read_image_orthonormal` reads it.
    """
    path = Path(path)
    if not path.exists():
        raise DicebenchError(f"{path}: file not found")
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        if _NOT_ORTHONORMAL in str(exc):
            raise DicebenchError(f"{path}: unsupported geometry: direction cosines are not orthonormal "
                                 "(a sheared affine; `dicebench convert` orthonormalises it)") from None
        raise DicebenchError(f"{path}: unreadable or truncated image ({_itk_detail(exc)})") from None


_NOT_ORTHONORMAL = "orthonormal"  # ITK's refusal: "ITK only supports orthonormal direction cosines"
# Below this smallest singular value of the unit-length voxel axes, two axes (nearly) coincide:
# no orthonormal frame is "near" such an affine, so it is refused instead of repaired.
DEGENERATE_AXES = 1e-3


def _itk_detail(exc: RuntimeError) -> str:
    lines = str(exc).strip().splitlines()
    detail = next((ln for ln in lines if "ERROR" in ln or "rror" in ln), lines[0] if lines else "")
    return detail.strip()[:200]


@dataclass(frozen=True)
class ImageHeader:
    """A file's grid as its header gives it, read without the voxels (ITK's conventions: LPS,
    size x, y, z). `deviation` is 0 for an orthonormal header; otherwise the direction was
    orthonormalised and it is the largest change of a direction cosine, `shift_mm` the largest
    displacement that causes at a corner of the volume."""

    path: Path
    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]
    pixel: str
    components: int = 1
    deviation: float = 0.0
    shift_mm: float = 0.0

    @property
    def dimension(self) -> int:
        return len(self.size)


def orthonormal_frame(affine: np.ndarray, size: tuple[int, ...], path: str | os.PathLike = "image"
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """ITK geometry (direction 3x3, spacing, origin, all LPS) of a NIfTI (RAS) voxel-to-world affine.

    Spacing is each voxel axis's length; the direction is the orthonormal matrix nearest to the
    affine's 3x3 part (its polar factor U V^T, as ITK's ITK_NIFTI_SFORM_PERMISSIVE mode takes it),
    so a sheared affine is read on the nearest rigid grid. Also returned: the largest change of a
    direction cosine and the largest displacement (mm) that makes at a corner of the volume.
    A non-finite or degenerate affine (an axis of zero length, two axes nearly parallel) raises.
    """
    aff = np.asarray(affine, dtype=np.float64)
    lps = np.diag([-1.0, -1.0, 1.0])
    if aff.shape != (4, 4) or not np.all(np.isfinite(aff)):
        raise DicebenchError(f"{path}: unsupported geometry: the affine is not finite")
    m = lps @ aff[:3, :3]
    spacing = np.linalg.norm(m, axis=0)
    if np.any(spacing < 1e-9):
        raise DicebenchError(f"{path}: unsupported geometry: degenerate affine (a voxel axis has zero length)")
    cosines = m / spacing
    smallest = float(np.linalg.svd(cosines, compute_uv=False).min())
    if smallest < DEGENERATE_AXES:
        raise DicebenchError(f"{path}: unsupported geometry: degenerate affine (voxel axes nearly parallel, "
                             f"smallest singular value {smallest:.2e})")
    u, _, vt = np.linalg.svd(m)
    rotation = u @ vt
    deviation = float(np.abs(cosines - rotation).max())
    corners = np.array(np.meshgrid(*[[0, max(n - 1, 0)] for n in size[:3]], indexing="ij")).reshape(3, -1)
    shift = float(np.linalg.norm((m - rotation * spacing) @ corners, axis=0).max())
    return rotation, spacing, lps @ aff[:3, 3], deviation, shift


def _nifti_header(path: Path) -> tuple[ImageHeader, object]:
    """Header of a NIfTI file ITK refuses, through nibabel, with the direction orthonormalised."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types on a damaged header
        raise DicebenchError(f"{path}: unreadable or truncated image ({str(exc).strip()[:200]})") from None
    shape = tuple(int(n) for n in img.shape)
    if len(shape) not in (3, 4):
        raise DicebenchError(f"{path}: unsupported geometry: {len(shape)}D image with a non-orthonormal affine")
    rotation, spacing, origin, deviation, shift = orthonormal_frame(img.affine, shape, path)
    sp, org, direction = list(spacing), list(origin), rotation
    if len(shape) == 4:
        sp.append(float(img.header.get_zooms()[3]) or 1.0)
        org.append(0.0)
        direction = np.eye(4)
        direction[:3, :3] = rotation
    header = ImageHeader(path, shape, tuple(map(float, sp)), tuple(map(float, org)),
                         tuple(float(v) for v in np.asarray(direction).ravel()), str(img.get_data_dtype()),
                         1, deviation, shift)
    return header, img


def read_header(path: str | os.PathLike) -> ImageHeader:
    """The grid of an image file from its header alone (fast: no voxels are decoded).

    Direction cosines ITK refuses are orthonormalised as `read_image_orthonormal` does, with the
    deviation in the result; a degenerate affine and an unreadable header raise different errors.
    """
    path = Path(path)
    if not path.is_file():
        raise DicebenchError(f"{path}: file not found")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        if _NOT_ORTHONORMAL in str(exc) and _is_nifti(path):
            return _nifti_header(path)[0]
        raise DicebenchError(f"{path}: unreadable or truncated image ({_itk_detail(exc)})") from None
    return ImageHeader(path, tuple(reader.GetSize()), tuple(reader.GetSpacing()), tuple(reader.GetOrigin()),
                       tuple(reader.GetDirection()), sitk.GetPixelIDValueAsString(reader.GetPixelID()),
                       int(reader.GetNumberOfComponents()))


def read_image_orthonormal(path: str | os.PathLike) -> tuple[sitk.Image, ImageHeader | None]:
    """Read an image; a NIfTI whose direction cosines ITK refuses is read through nibabel and put
    on the nearest orthonormal frame (`orthonormal_frame`), voxels untouched.

    Returns the image and, when its geometry was changed, the header saying by how much (else
    None). Such files are common in public releases (TotalSegmentator v2.0.1 issue #461); nnU-Net
    reads them with its nibabel reader for the same reason.
    """
    path = Path(path)
    if not path.is_file():
        raise DicebenchError(f"{path}: file not found")
    try:
        return sitk.ReadImage(str(path)), None
    except RuntimeError as exc:
        if not (_NOT_ORTHONORMAL in str(exc) and _is_nifti(path)):
            raise DicebenchError(f"{path}: unreadable or truncated image ({_itk_detail(exc)})") from None
    header, img = _nifti_header(path)
    try:
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types on short or corrupt data
        raise DicebenchError(f"{path}: unreadable or truncated image ({str(exc).strip()[:200]})") from None
    if data.dtype == np.float64 and img.get_data_dtype() != np.float64:
        data = data.astype(np.float32)  # scl_slope applied: ITK reads such files as float32 too
    volumes = [data] if data.ndim == 3 else [data[..., c] for c in range(data.shape[3])]
    out = []
    for vol in volumes:
        im = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(vol, (2, 1, 0))))
        im.SetSpacing(header.spacing[:3])
        im.SetOrigin(header.origin[:3])
        im.SetDirection(tuple(np.asarray(header.direction).reshape(header.dimension, header.dimension)[:3, :3].ravel()))
        out.append(im)
    image = out[0] if len(out) == 1 else sitk.JoinSeries(out, header.origin[3], header.spacing[3])
    return image, header


_MET_BYTES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
              "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
              "MET_DOUBLE": 8}


def check_complete(path: str | os.PathLike) -> None:
    """Raise if an image file holds fewer voxel bytes than its header promises, cheaply.

    ITK reads a truncated .nii.gz without complaint and reports a short .raw only when the
    voxels are read, so a converter checks this up front: a .mhd's data file by its size, a
    .nii by its size, a .nii.gz by the uncompressed size in its gzip trailer (decompressing the
    whole stream only when that disagrees, e.g. multi-member gzip). Other formats pass.
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".mhd"):
        _check_metaimage(path)
    elif name.endswith((".nii", ".nii.gz")):
        _check_nifti_size(path)


def _check_metaimage(path: Path) -> None:
    fields = {}
    for line in path.read_text(errors="replace").splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            fields[key.strip()] = value.strip()
    data = fields.get("ElementDataFile", "")
    if not data or data == "LOCAL" or data.startswith("LIST") or "%" in data:
        return  # data in the header file or in a file list: not checked here
    raw = path.parent / data
    if not raw.is_file():
        raise DicebenchError(f"{path}: unreadable or truncated image (data file {raw.name} not found)")
    if fields.get("CompressedData", "False").lower() == "true" or fields.get("ElementType") not in _MET_BYTES:
        return
    try:
        dims = [int(v) for v in fields["DimSize"].split()]
        n_comp = int(fields.get("ElementNumberOfChannels", "1"))
        skip = max(int(fields.get("HeaderSize", "0")), 0)
    except (KeyError, ValueError):
        return  # ITK reports a malformed header itself
    want = skip + int(np.prod(dims)) * n_comp * _MET_BYTES[fields["ElementType"]]
    got = raw.stat().st_size
    if got < want:
        raise DicebenchError(f"{path}: unreadable or truncated image ({raw.name} has {got} bytes, "
                             f"the header needs {want})")


def _gunzipped_size(fh) -> int:
    """Bytes a gzip stream (possibly multi-member, possibly cut short) decompresses to."""
    import zlib

    fh.seek(0)
    got, pending = 0, b""
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        while chunk := pending or fh.read(1 << 20):
            pending = b""
            got += len(inflate.decompress(chunk))
            if inflate.eof:  # next member, if any
                pending = inflate.unused_data
                inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    except zlib.error:
        pass  # corrupt data: what came before it counts
    return got


def _check_nifti_size(path: Path) -> None:
    import gzip

    import nibabel as nib

    gz = path.name.lower().endswith(".gz")
    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as fh:
            header = nib.Nifti1Header.from_fileobj(fh)  # the header alone: a cut-off file still has it
        offset = max(int(header.get_data_offset()), 352)
        want = offset + int(np.prod(header.get_data_shape())) * header.get_data_dtype().itemsize
    except Exception:  # not a NIfTI-1 header nibabel can parse: ITK's reading reports the problem
        return
    if not gz:
        got = path.stat().st_size
    else:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() < 18:
                got = 0
            else:
                fh.seek(-4, os.SEEK_END)
                if int.from_bytes(fh.read(4), "little") == want % 2**32:
                    return  # the trailer's size agrees; a CRC error would show when the voxels are read
                got = _gunzipped_size(fh)
    if got < want:
        raise DicebenchError(f"{path}: unreadable or truncated image (data ends after {got} of {want} bytes)")


def _is_nifti(path: Path) -> bool:
    return path.name.endswith((".nii", ".nii.gz"))


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
