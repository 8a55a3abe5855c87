"""Resumable, checksum-verified downloads of the real datasets listed in config/datasets.yaml.

A file is streamed into `<name>.part` with HTTP Range requests, so a dropped connection resumes
where it stopped; it appears under its final name only once complete and verified. A checksum
mismatch deletes the partial file and names the file with the expected and received digests.
Files without a published checksum get their SHA-256 recorded at the first download
(`checksums.json` beside them) and enforced afterwards. Datasets behind a registration are
never fetched: the command says where to get the archive and where to put it.

A dataset published as a Dataverse record (WMH 2017 on DataverseNL) is fetched file by file,
as other loaders do because the record's whole-dataset zip times out: the record's file list
comes from the native API (`/api/datasets/:persistentId/?persistentId=<doi>`, kept in
`dataverse_files.json` so a rerun needs no listing and sees the same files), each file from
the access API (`/api/access/datafile/<id>`) into `files/<directoryLabel>/<filename>`, checked
against the size and checksum (MD5, SHA-1, SHA-256 or SHA-512) of its file metadata.
"Extracting" such a dataset hard-links that tree into the target folder.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import tempfile
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from dicebench.errors import DicebenchError

DEFAULT_REGISTRY = Path(__file__).resolve().parents[3] / "config" / "datasets.yaml"
RECORD_FILE = "checksums.json"
CHUNK = 1 << 20
_HASHES = ("sha256", "md5")
DATAVERSE_LISTING = "dataverse_files.json"
DATAVERSE_DIR = "files"
# Dataverse's names of checksum algorithms -> hashlib's
_DATAVERSE_HASHES = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-512": "sha512"}


@dataclass(frozen=True)
class RemoteFile:
    name: str
    urls: tuple[str, ...]
    size: int | None = None
    algo: str | None = None  # "sha256" or "md5" when a checksum is published
    digest: str | None = None
    extract_to: str = ""  # subfolder of the extraction target (archives whose members would collide)


@dataclass(frozen=True)
class DataverseRecord:
    """A dataset published as a Dataverse record, fetched file by file."""

    server: str  # e.g. https://dataverse.nl
    doi: str  # e.g. doi:10.34894/AECRSD
    include: tuple[str, ...] = ()  # fnmatch patterns of the relative paths to fetch (empty: all)

    @property
    def listing_url(self) -> str:
        return f"{self.server.rstrip('/')}/api/datasets/:persistentId/?persistentId={self.doi}"

    def file_url(self, file_id: int) -> str:
        return f"{self.server.rstrip('/')}/api/access/datafile/{file_id}"


@dataclass(frozen=True)
class DatasetEntry:
    key: str
    title: str
    converter: str
    registration: bool
    files: tuple[RemoteFile, ...]
    homepage: str = ""
    licence: str = ""
    citation: str = ""
    manual: str = ""
    labels: dict = field(default_factory=dict)
    dataverse: DataverseRecord | None = None


def load_registry(path: str | Path = DEFAULT_REGISTRY) -> dict[str, DatasetEntry]:
    """Parse and validate the dataset registry; any malformed entry is a DicebenchError."""
    path = Path(path)
    if not path.is_file():
        raise DicebenchError(f"{path}: dataset registry not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise DicebenchError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("datasets"), dict):
        raise DicebenchError(f"{path}: expected a top-level 'datasets' mapping")
    out: dict[str, DatasetEntry] = {}
    for key, d in raw["datasets"].items():
        where = f"{path}: dataset '{key}'"
        if not isinstance(d, dict):
            raise DicebenchError(f"{where}: expected a mapping")
        for req in ("title", "converter", "registration", "licence", "citation"):
            if req not in d:
                raise DicebenchError(f"{where}: missing key '{req}'")
        dataverse = _dataverse_record(d.get("dataverse"), where)
        if "files" not in d and dataverse is None:
            raise DicebenchError(f"{where}: missing key 'files' (or 'dataverse')")
        files = []
        for f in d.get("files") or []:
            if not isinstance(f, dict) or "name" not in f:
                raise DicebenchError(f"{where}: every file needs a 'name'")
            if Path(f["name"]).name != f["name"] or f["name"] in ("", ".", ".."):
                raise DicebenchError(f"{where}: file name {f['name']!r} must be a plain file name")
            algo = next((a for a in _HASHES if f.get(a)), None)
            digest = str(f[algo]).lower() if algo else None
            if digest and not re.fullmatch(r"[0-9a-f]+", digest):
                raise DicebenchError(f"{where}: {f['name']}: {algo} is not hexadecimal")
            urls = tuple(f.get("urls") or ())
            if not urls and not d["registration"]:
                raise DicebenchError(f"{where}: {f['name']}: no URL and no registration")
            sub = str(f.get("extract_to") or "")
            if sub and (Path(sub).name != sub or sub in (".", "..")):
                raise DicebenchError(f"{where}: {f['name']}: extract_to {sub!r} must be a plain folder name")
            files.append(RemoteFile(f["name"], urls, f.get("size"), algo, digest, sub))
        if not files and dataverse is None:
            raise DicebenchError(f"{where}: no files")
        out[key] = DatasetEntry(key=key, title=d["title"], converter=d["converter"],
                                registration=bool(d["registration"]), files=tuple(files),
                                homepage=d.get("homepage", ""), licence=d["licence"],
                                citation=d["citation"], manual=d.get("manual", ""),
                                labels=d.get("labels", {}), dataverse=dataverse)
    return out


def _dataverse_record(d, where: str) -> DataverseRecord | None:
    if d is None:
        return None
    if not isinstance(d, dict) or not d.get("server") or not d.get("doi"):
        raise DicebenchError(f"{where}: 'dataverse' needs 'server' and 'doi'")
    if not re.match(r"^https?://", str(d["server"])):
        raise DicebenchError(f"{where}: dataverse server {d['server']!r} must be an http(s) URL")
    include = d.get("include") or []
    if not isinstance(include, list) or not all(isinstance(p, str) for p in include):
        raise DicebenchError(f"{where}: dataverse 'include' must be a list of patterns")
    return DataverseRecord(str(d["server"]), str(d["doi"]), tuple(include))


def file_digest(path: str | Path, algo: str = "sha256") -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _verify(path: Path, final: Path, size: int | None, algo: str, digest: str | None) -> str:
    """Return the received digest; on a size or checksum mismatch delete `path` and raise."""
    if size is not None and path.stat().st_size != size:
        got = path.stat().st_size
        path.unlink(missing_ok=True)
        raise DicebenchError(f"{final}: size mismatch: expected {size} bytes, received {got}")
    got = file_digest(path, algo)
    if digest is not None and got != digest:
        path.unlink(missing_ok=True)
        raise DicebenchError(f"{final}: {algo} checksum mismatch: expected {digest}, received {got}")
    return got


class _Transient(Exception):
    """A network failure worth retrying (dropped connection, timeout, 5xx)."""


def _fetch_into(url: str, part: Path, timeout: float, progress: bool, label: str) -> None:
    """Append the rest of `url` to `part`, resuming from its current size with a Range request."""
    start = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "dicebench", "Accept-Encoding": "identity"})
    if start:
        req.add_header("Range", f"bytes={start}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (registry URLs)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # nothing left to send: the part is complete
            return
        if exc.code >= 500 or exc.code == 429:
            raise _Transient(f"HTTP {exc.code}") from None
        raise DicebenchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, socket.timeout, ConnectionError, http.client.HTTPException) as exc:
        raise _Transient(str(exc)) from None
    with resp:
        status = resp.status
        if start and status == 206:
            m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != start:
                raise _Transient(f"unexpected Content-Range {resp.headers.get('Content-Range')!r}")
            mode = "ab"
        else:  # 200: the server ignored the Range header, start over
            start, mode = 0, "wb"
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=label,
                       file=sys.stderr, disable=None, leave=False)
        received = 0
        try:
            with open(part, mode) as out:
                while True:
                    try:
                        block = resp.read(CHUNK)
                    except (socket.timeout, ConnectionError, http.client.HTTPException) as exc:
                        raise _Transient(f"connection lost after {start + received} bytes: {exc}") from None
                    if not block:
                        break
                    out.write(block)
                    received += len(block)
                    if bar is not None:
                        bar.update(len(block))
        finally:
            if bar is not None:
                bar.close()
        if length is not None and received < int(length):
            raise _Transient(f"connection closed after {start + received} of {total} bytes")


def download_file(urls: str | list[str] | tuple[str, ...], dest: str | Path, *, size: int | None = None,
                  algo: str = "sha256", digest: str | None = None, retries: int = 5,
                  backoff: float = 1.0, timeout: float = 60.0, progress: bool = True,
                  sleep: Callable[[float], None] = time.sleep) -> str:
    """Download to `dest` (resuming a previous `.part`), verify, then rename; return the digest.

    Retries transient failures `retries` times per URL with exponential backoff
    (backoff * 2**attempt seconds), resuming each time from the bytes already received.
    """
    dest = Path(dest)
    urls = [urls] if isinstance(urls, str) else list(urls)
    if not urls:
        raise DicebenchError(f"{dest}: no URL to download from")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    errors = []
    for url in urls:
        done = False
        for attempt in range(retries + 1):
            try:
                _fetch_into(url, part, timeout, progress, dest.name)
                if size is not None and part.stat().st_size < size:
                    raise _Transient(f"incomplete: {part.stat().st_size} of {size} bytes")
                done = True
                break
            except _Transient as exc:
                errors.append(f"{url}: {exc}")
                if attempt < retries:
                    sleep(backoff * 2**attempt)
            except DicebenchError as exc:  # permanent (404, 403): try the next mirror
                errors.append(str(exc))
                part.unlink(missing_ok=True)
                break
        if not done:
            continue
        got = _verify(part, dest, size, algo, digest)
        os.replace(part, dest)
        return got
    raise DicebenchError(f"{dest}: download failed ({'; '.join(errors[-len(urls):]) if errors else 'no attempt'})")


def _records(folder: Path) -> dict:
    path = folder / RECORD_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DicebenchError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DicebenchError(f"{path}: expected an object of file name -> sha256")
    return data


def _expected(f: RemoteFile, records: dict) -> tuple[str, str | None]:
    """The algorithm and digest to enforce: the published one, else the recorded SHA-256."""
    if f.algo:
        return f.algo, f.digest
    return "sha256", records.get(f.name)


def _stamp_ok(path: Path, stamp: Path) -> bool:
    """A file verified earlier and untouched since (size and mtime) need not be re-hashed."""
    if not stamp.exists():
        return False
    st = path.stat()
    return stamp.read_text().strip() == f"{st.st_size} {st.st_mtime_ns}"


def _write_stamp(path: Path) -> None:
    st = path.stat()
    stamp = path.with_name(f".{path.name}.verified")
    stamp.write_text(f"{st.st_size} {st.st_mtime_ns}\n")


def registration_message(entry: DatasetEntry, missing: list[Path]) -> str:
    where = ", ".join(str(p.resolve()) for p in missing)
    how = entry.manual.strip() or f"Register at {entry.homepage} and download the archive(s)."
    return (f"dataset '{entry.key}' needs a registration: {how} "
            f"Put the file(s) at exactly: {where} ; then run the same command again.")


def _get_json(url: str, timeout: float, retries: int, backoff: float, sleep: Callable[[float], None]):
    """GET a JSON document, retrying transient failures like `download_file`."""
    req = urllib.request.Request(url, headers={"User-Agent": "dicebench", "Accept": "application/json"})
    errors = []
    for attempt in range(retries + 1):
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (registry URLs)
                return json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            if exc.code < 500 and exc.code != 429:
                raise DicebenchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
            errors.append(f"HTTP {exc.code}")
        except (urllib.error.URLError, socket.timeout, ConnectionError, http.client.HTTPException) as exc:
            errors.append(str(exc))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DicebenchError(f"{url}: not a JSON answer ({exc})") from None
        if attempt < retries:
            sleep(backoff * 2**attempt)
    raise DicebenchError(f"{url}: request failed ({errors[-1]})")


def _safe_relpath(rel: str, where: str) -> str:
    """A relative POSIX path that stays inside the download folder (names as published)."""
    parts = rel.split("/")
    if rel.startswith("/") or "\\" in rel or any(p in ("", ".", "..") for p in parts):
        raise DicebenchError(f"{where}: refused file path {rel!r} (must stay inside the download folder)")
    return rel


def dataverse_files(record: DataverseRecord, listing: dict, where: str) -> tuple[RemoteFile, ...]:
    """The record's files (those matching `include`) from its native-API JSON listing."""
    try:
        items = listing["data"]["latestVersion"]["files"]
        rows = []
        for item in items:
            df = item["dataFile"]
            name = df.get("filename") or item["label"]
            folder = (item.get("directoryLabel") or "").strip("/")
            rows.append((f"{folder}/{name}" if folder else name, int(df["id"]), df, bool(item.get("restricted"))))
    except (KeyError, TypeError, ValueError) as exc:
        raise DicebenchError(f"{where}: not a Dataverse dataset listing (missing {exc})") from None
    files, seen, restricted = [], set(), []
    for rel, file_id, df, is_restricted in rows:
        rel = _safe_relpath(rel, where)
        if record.include and not any(fnmatch.fnmatchcase(rel, pat) for pat in record.include):
            continue
        if rel in seen:
            raise DicebenchError(f"{where}: the record lists {rel!r} twice")
        seen.add(rel)
        if is_restricted:
            restricted.append(rel)
        checksum = df.get("checksum") or ({"type": "MD5", "value": df["md5"]} if df.get("md5") else {})
        algo = _DATAVERSE_HASHES.get(str(checksum.get("type", "")).upper())
        digest = str(checksum["value"]).lower() if algo and checksum.get("value") else None
        size = df.get("filesize")
        files.append(RemoteFile(rel, (record.file_url(file_id),), int(size) if size is not None else None,
                                algo if digest else None, digest))
    if restricted:
        raise DicebenchError(f"{where}: {len(restricted)} file(s) are restricted (e.g. {restricted[0]}); "
                             "request access on the record's page first")
    if not files:
        raise DicebenchError(f"{where}: no file of the record matches {list(record.include)}")
    return tuple(sorted(files, key=lambda f: f.name))


def dataverse_listing(record: DataverseRecord, folder: Path, *, timeout: float = 60.0, retries: int = 5,
                      backoff: float = 1.0, sleep: Callable[[float], None] = time.sleep) -> tuple[RemoteFile, ...]:
    """The record's files, listed once and kept in `folder/dataverse_files.json` for later runs."""
    from dicebench.io import read_json, write_json  # io (numpy, SimpleITK) stays out of the DAG build

    path = folder / DATAVERSE_LISTING
    if path.exists():
        listing = read_json(path)
    else:
        listing = _get_json(record.listing_url, timeout, retries, backoff, sleep)
        files = dataverse_files(record, listing, record.listing_url)  # refuse a bad listing before keeping it
        write_json(path, listing)
        return files
    return dataverse_files(record, listing, str(path))


def dataset_files(entry: DatasetEntry, folder: str | Path, **kwargs) -> tuple[Path, tuple[RemoteFile, ...]]:
    """Where the files of `entry` go and which they are (a Dataverse record's from its listing)."""
    folder = Path(folder)
    if entry.dataverse is None:
        return folder, entry.files
    return folder / DATAVERSE_DIR, dataverse_listing(entry.dataverse, folder, **kwargs)


def fetch_dataset(entry: DatasetEntry, folder: str | Path, *, retries: int = 5, backoff: float = 1.0,
                  timeout: float = 60.0, progress: bool = True,
                  sleep: Callable[[float], None] = time.sleep) -> list[Path]:
    """Make every file of `entry` present and verified in `folder`; return their paths."""
    from dicebench.io import write_json  # io (numpy, SimpleITK) stays out of the DAG build

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base, files = dataset_files(entry, folder, timeout=timeout, retries=retries, backoff=backoff, sleep=sleep)
    records = _records(folder)
    paths = [base / f.name for f in files]
    missing = [p for p in paths if not p.exists()]
    if entry.registration and missing:
        raise DicebenchError(registration_message(entry, missing))
    for f, path in zip(files, paths):
        algo, digest = _expected(f, records)
        stamp = path.with_name(f".{path.name}.verified")
        if path.exists():
            if _stamp_ok(path, stamp):
                continue
            got = file_digest(path, algo)
            if digest is not None and got != digest:
                raise DicebenchError(f"{path}: {algo} checksum mismatch: expected {digest}, received {got}"
                                     " (delete the file to download it again)")
            if f.size is not None and path.stat().st_size != f.size:
                raise DicebenchError(f"{path}: size mismatch: expected {f.size} bytes, received "
                                     f"{path.stat().st_size} (delete the file to download it again)")
        else:
            got = download_file(f.urls, path, size=f.size, algo=algo, digest=digest, retries=retries,
                                backoff=backoff, timeout=timeout, progress=progress, sleep=sleep)
        if digest is None:
            records[f.name] = got
            write_json(folder / RECORD_FILE, records)
        _write_stamp(path)
    return paths


def extract_dataset(paths: list[Path], target: str | Path, subfolders: list[str] | None = None) -> Path:
    """Safely extract every archive into `target` (or its subfolder given per archive); a
    stamp makes a rerun skip finished work."""
    from dicebench.data.archive import safe_extract

    target = Path(target)
    subfolders = subfolders or [""] * len(paths)
    stamp = target / ".extracted"
    want = "\n".join(sorted(f"{s}/{p.name}" if s else p.name for p, s in zip(paths, subfolders))) + "\n"
    if stamp.exists() and stamp.read_text() == want:
        return target
    for p, sub in zip(paths, subfolders):
        safe_extract(p, target / sub if sub else target)
    stamp.write_text(want)
    return target


def link_tree(base: str | Path, paths: list[Path], target: str | Path) -> Path:
    """Put the downloaded files (under `base`) into `target` with their relative paths.

    Hard links where the file system allows (no second copy of the data), copies elsewhere;
    built in a staging folder whose content is moved in at the end, with a stamp like
    `extract_dataset`'s.
    """
    base, target = Path(base), Path(target)
    rels = sorted(p.relative_to(base).as_posix() for p in paths)
    stamp = target / ".extracted"
    want = "\n".join(rels) + "\n"
    if stamp.exists() and stamp.read_text() == want:
        return target
    target.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.link.", dir=target.parent))
    try:
        for rel in rels:
            dest = stage / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(base / rel, dest)
            except OSError:
                shutil.copy2(base / rel, dest)
        for item in stage.iterdir():
            dest = target / item.name
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            elif dest.exists() or dest.is_symlink():
                dest.unlink()
            os.replace(item, dest)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    stamp.write_text(want)
    return target


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="dataset key in the registry (e.g. msd_prostate)")
    p.add_argument("--dest", required=True, type=Path, help="download folder for the archive(s)")
    p.add_argument("--extract", type=Path, help="also extract the archive(s) safely into this folder")
    p.add_argument("--registry", type=Path, default=DEFAULT_REGISTRY)
    p.add_argument("--retries", type=int, default=5)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per network operation")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    registry = load_registry(args.registry)
    if args.name not in registry:
        raise DicebenchError(f"{args.registry}: unknown dataset '{args.name}' (known: {', '.join(sorted(registry))})")
    entry = registry[args.name]
    paths = fetch_dataset(entry, args.dest, retries=args.retries, timeout=args.timeout,
                          progress=not args.no_progress)
    if entry.dataverse is not None:
        print(f"{len(paths)} file(s) of {entry.dataverse.doi} in {Path(args.dest) / DATAVERSE_DIR}")
    else:
        for p in paths:
            print(p)
    if args.extract:
        if entry.dataverse is not None:
            print(link_tree(Path(args.dest) / DATAVERSE_DIR, paths, args.extract))
        else:
            print(extract_dataset(paths, args.extract, [f.extract_to for f in entry.files]))
    return 0
