"""Downloads against a real HTTP server on 127.0.0.1 (Range support, a dropped connection, bad data)."""

from __future__ import annotations

import fnmatch
import hashlib
import http.server
import json
import re
import threading

import pytest
from real_layouts import PHILIPS, dataverse_record, make_wmh_dataverse

from dicebench.cli import main
from dicebench.data.download import (DEFAULT_REGISTRY, DatasetEntry, DataverseRecord, RemoteFile,
                                     dataverse_files, download_file, fetch_dataset, load_registry)
from dicebench.errors import DicebenchError

PAYLOAD = bytes(range(256)) * 400  # 100 KiB, deterministic


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves `files` with Range support; `drop_after[name]` cuts the first response short."""

    files: dict[str, bytes] = {}
    drop_after: dict[str, int] = {}
    unavailable: dict[str, int] = {}  # name -> how many times to answer 503 first
    ignore_range = False
    log: list[tuple[str, str | None]] = []

    def log_message(self, *a):  # keep pytest output quiet
        pass

    def do_GET(self):
        name = self.path.lstrip("/")
        rng = self.headers.get("Range")
        type(self).log.append((name, rng))
        if self.unavailable.get(name):
            self.unavailable[name] -= 1
            self.send_error(503)
            return
        data = self.files.get(name)
        if data is None:
            self.send_error(404)
            return
        start = 0
        if rng and not self.ignore_range:
            start = int(re.match(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = self.drop_after.pop(name, None)
        if cut is not None:  # send part of the body, then drop the connection
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    handler = type("H", (_Handler,), {"files": {}, "drop_after": {}, "unavailable": {}, "log": [],
                                      "ignore_range": False})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield base, handler
    httpd.shutdown()
    httpd.server_close()


def _nosleep(_):
    pass


def test_plain_download_verifies_md5(server, tmp_path):
    base, h = server
    h.files["a.bin"] = PAYLOAD
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    got = download_file(f"{base}/a.bin", tmp_path / "a.bin", size=len(PAYLOAD), algo="md5", digest=md5,
                        progress=False, sleep=_nosleep)
    assert got == md5
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_dropped_connection_resumes_with_range(server, tmp_path):
    base, h = server
    h.files["big.bin"] = PAYLOAD
    h.drop_after["big.bin"] = 40_000
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    sleeps = []
    got = download_file(f"{base}/big.bin", tmp_path / "big.bin", digest=sha, progress=False,
                        backoff=0.5, sleep=sleeps.append)
    assert got == sha
    assert (tmp_path / "big.bin").read_bytes() == PAYLOAD
    # first request without Range, the retry resumes exactly at the byte where the drop happened
    assert h.log == [("big.bin", None), ("big.bin", "bytes=40000-")]
    assert sleeps == [0.5]
    assert not (tmp_path / "big.bin.part").exists()


def test_existing_part_is_resumed(server, tmp_path):
    base, h = server
    h.files["c.bin"] = PAYLOAD
    (tmp_path / "c.bin.part").write_bytes(PAYLOAD[:1234])
    download_file(f"{base}/c.bin", tmp_path / "c.bin", progress=False, sleep=_nosleep)
    assert h.log == [("c.bin", "bytes=1234-")]
    assert (tmp_path / "c.bin").read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    base, h = server
    h.files["d.bin"] = PAYLOAD
    h.ignore_range = True
    (tmp_path / "d.bin.part").write_bytes(b"garbage" * 10)
    download_file(f"{base}/d.bin", tmp_path / "d.bin", progress=False, sleep=_nosleep)
    assert (tmp_path / "d.bin").read_bytes() == PAYLOAD


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    base, h = server
    h.files["e.bin"] = PAYLOAD
    wrong = "0" * 64
    with pytest.raises(DicebenchError) as ei:
        download_file(f"{base}/e.bin", tmp_path / "e.bin", digest=wrong, progress=False, sleep=_nosleep)
    msg = str(ei.value)
    assert "e.bin" in msg and wrong in msg and hashlib.sha256(PAYLOAD).hexdigest() in msg
    assert list(tmp_path.iterdir()) == []


def test_size_mismatch_leaves_nothing(server, tmp_path):
    base, h = server
    h.files["f.bin"] = PAYLOAD
    with pytest.raises(DicebenchError, match="size mismatch"):
        download_file(f"{base}/f.bin", tmp_path / "f.bin", size=len(PAYLOAD) - 1, progress=False,
                      sleep=_nosleep)
    assert list(tmp_path.iterdir()) == []


def test_retries_exhausted_and_404(server, tmp_path):
    base, h = server
    with pytest.raises(DicebenchError, match="HTTP 404"):
        download_file(f"{base}/nope.bin", tmp_path / "nope.bin", progress=False, sleep=_nosleep)
    # nothing listens on this port any more: connection refused every time
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    sleeps = []
    with pytest.raises(DicebenchError, match="download failed .*Connection refused"):
        download_file(f"http://127.0.0.1:{port}/x", tmp_path / "x", retries=3, backoff=1.0,
                      progress=False, sleep=sleeps.append, timeout=2)
    assert sleeps == [1.0, 2.0, 4.0]
    assert not (tmp_path / "x").exists()


def test_second_mirror_used_after_404(server, tmp_path):
    base, h = server
    h.files["m.bin"] = PAYLOAD
    download_file([f"{base}/gone/m.bin", f"{base}/m.bin"], tmp_path / "m.bin", progress=False,
                  sleep=_nosleep)
    assert (tmp_path / "m.bin").read_bytes() == PAYLOAD
    assert [n for n, _ in h.log] == ["gone/m.bin", "m.bin"]


def _entry(base, registration=False, digest=None):
    return DatasetEntry(key="toy", title="toy", converter="acdc", registration=registration,
                        files=(RemoteFile("toy.bin", (f"{base}/toy.bin",) if base else (), None,
                                          "sha256" if digest else None, digest),),
                        homepage="https://example.org/toy", licence="x", citation="y",
                        manual="Sign in at https://example.org/toy and download toy.bin.")


def test_checksum_recorded_then_enforced(server, tmp_path):
    base, h = server
    h.files["toy.bin"] = PAYLOAD
    entry = _entry(base)
    [p] = fetch_dataset(entry, tmp_path, progress=False, sleep=_nosleep)
    rec = json.loads((tmp_path / "checksums.json").read_text())
    assert rec == {"toy.bin": hashlib.sha256(PAYLOAD).hexdigest()}
    # second run: verified stamp, no network
    n = len(h.log)
    fetch_dataset(entry, tmp_path, progress=False, sleep=_nosleep)
    assert len(h.log) == n
    # the file changes on disk: the recorded checksum is enforced
    p.write_bytes(PAYLOAD[:-1] + b"\x00")
    with pytest.raises(DicebenchError, match="checksum mismatch") as ei:
        fetch_dataset(entry, tmp_path, progress=False, sleep=_nosleep)
    assert rec["toy.bin"] in str(ei.value)
    # deleted and served differently upstream: the new download is refused, nothing left
    p.unlink()
    h.files["toy.bin"] = PAYLOAD[::-1]
    with pytest.raises(DicebenchError, match="checksum mismatch"):
        fetch_dataset(entry, tmp_path, progress=False, sleep=_nosleep)
    assert not p.exists() and not (tmp_path / "toy.bin.part").exists()


def test_registration_message_then_pickup(tmp_path):
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    entry = _entry(None, registration=True, digest=sha)
    with pytest.raises(DicebenchError) as ei:
        fetch_dataset(entry, tmp_path / "dl", progress=False)
    msg = str(ei.value)
    assert "registration" in msg and "https://example.org/toy" in msg
    assert str((tmp_path / "dl" / "toy.bin").resolve()) in msg
    (tmp_path / "dl" / "toy.bin").write_bytes(PAYLOAD)
    assert fetch_dataset(entry, tmp_path / "dl", progress=False) == [tmp_path / "dl" / "toy.bin"]
    (tmp_path / "dl" / "toy.bin").write_bytes(b"wrong")
    with pytest.raises(DicebenchError, match=sha):
        fetch_dataset(entry, tmp_path / "dl", progress=False)


def test_registry_is_complete():
    reg = load_registry(DEFAULT_REGISTRY)
    assert set(reg) == {"acdc", "wmh2017", "promise12", "promise12_zenodo", "msd_prostate", "totalsegmentator"}
    assert reg["promise12"].registration and not reg["msd_prostate"].registration
    assert reg["msd_prostate"].files[0].algo == "md5"
    # WMH file by file from DataverseNL (the record's zip times out), only what the converter reads
    wmh = reg["wmh2017"].dataverse
    assert wmh.listing_url == "https://dataverse.nl/api/datasets/:persistentId/?persistentId=doi:10.34894/AECRSD"
    assert wmh.file_url(7) == "https://dataverse.nl/api/access/datafile/7" and not reg["wmh2017"].files
    assert set(wmh.include) == {"*/wmh.nii.gz", "*/pre/FLAIR.nii.gz", "*/pre/T1.nii.gz"}
    zenodo = reg["promise12_zenodo"]
    assert not zenodo.registration and zenodo.converter == "promise12"
    assert [f.extract_to for f in zenodo.files] == ["training_data", "test_data"]  # both hold Case00
    assert reg["totalsegmentator"].labels == {"background": 0, "artery": 1, "portal_vein": 2, "liver": 3,
                                              "spleen": 4, "stomach": 5, "gallbladder": 6,
                                              "pancreas": 7}
    from dicebench.data.convert import CONVERTERS

    for e in reg.values():
        assert e.converter in CONVERTERS and e.licence and e.citation


def test_bad_registry_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "reg.yaml"
    bad.write_text("datasets:\n  x: {title: t, converter: acdc, registration: false, licence: l, "
                   "citation: c, files: [{name: ../evil.zip, urls: [http://127.0.0.1/]}]}\n")
    rc = main(["download", "x", "--dest", str(tmp_path / "d"), "--registry", str(bad)])
    err = capsys.readouterr().err
    assert rc == 1 and "reg.yaml" in err and "plain file name" in err and len(err.strip().splitlines()) == 1


def test_cli_download_and_extract(server, tmp_path, capsys):
    import io
    import tarfile

    base, h = server
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("Task/readme.txt")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"hello"))
    h.files["t.tar.gz"] = buf.getvalue()
    reg = tmp_path / "reg.yaml"
    md5 = hashlib.md5(buf.getvalue()).hexdigest()
    reg.write_text(f"datasets:\n  t: {{title: t, converter: msd_prostate, registration: false, licence: l, "
                   f"citation: c, files: [{{name: t.tar.gz, urls: ['{base}/t.tar.gz'], md5: {md5}}}]}}\n")
    rc = main(["download", "t", "--dest", str(tmp_path / "d"), "--registry", str(reg),
               "--extract", str(tmp_path / "x"), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "x" / "Task" / "readme.txt").read_text() == "hello"


# ---------------------------------------------------------------- a Dataverse record, file by file

DOI = "doi:10.5072/FK2/TEST"
WMH_INCLUDE = ("*/wmh.nii.gz", "*/pre/FLAIR.nii.gz", "*/pre/T1.nii.gz")


def _serve_record(h, tree, **kwargs):
    """The record's listing and files on the loopback server, as DataverseNL's APIs answer."""
    listing, payloads = dataverse_record(tree, DOI, **kwargs)
    h.files[f"api/datasets/:persistentId/?persistentId={DOI}"] = json.dumps(listing).encode()
    for file_id, data in payloads.items():
        h.files[f"api/access/datafile/{file_id}"] = data
    return listing


def _dataverse_entry(base, include=WMH_INCLUDE):
    return DatasetEntry(key="wmh", title="t", converter="wmh", registration=False, files=(),
                        licence="l", citation="c", dataverse=DataverseRecord(base, DOI, tuple(include)))


def _wanted(tree):
    rels = (p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file())
    return sorted(r for r in rels if any(fnmatch.fnmatchcase(r, pat) for pat in WMH_INCLUDE))


def test_dataverse_record_file_by_file(server, tmp_path):
    base, h = server
    tree = make_wmh_dataverse(tmp_path / "record")
    _serve_record(h, tree)
    h.unavailable[f"api/datasets/:persistentId/?persistentId={DOI}"] = 1  # one transient failure
    sleeps = []
    paths = fetch_dataset(_dataverse_entry(base), tmp_path / "dl", progress=False, sleep=sleeps.append)
    files = tmp_path / "dl" / "files"
    rels = sorted(p.relative_to(files).as_posix() for p in paths)
    assert rels == _wanted(tree) and len(rels) == 15  # 5 subjects x (wmh, pre/FLAIR, pre/T1)
    assert f"test/Amsterdam/{PHILIPS}/160/wmh.nii.gz" in rels  # the folder name kept as published
    assert all((files / r).read_bytes() == (tree / r).read_bytes() for r in rels)
    assert sleeps == [1.0]  # the listing was retried once
    requested = [n for n, _ in h.log]
    assert sum(n.startswith("api/datasets/") for n in requested) == 2
    assert sum(n.startswith("api/access/datafile/") for n in requested) == 15  # nothing else fetched
    assert json.loads((tmp_path / "dl" / "dataverse_files.json").read_text())["data"]["persistentId"] == DOI
    assert not (tmp_path / "dl" / "checksums.json").exists()  # every file had a checksum in its metadata
    n = len(h.log)
    fetch_dataset(_dataverse_entry(base), tmp_path / "dl", progress=False, sleep=_nosleep)
    assert len(h.log) == n  # a rerun needs neither the listing nor the files


def test_dataverse_checksum_from_file_metadata_is_enforced(server, tmp_path):
    base, h = server
    tree = make_wmh_dataverse(tmp_path / "record")
    listing = _serve_record(h, tree)
    item = next(f for f in listing["data"]["latestVersion"]["files"]
                if f.get("directoryLabel") == "training/Utrecht/0" and f["label"] == "wmh.nii.gz")
    key = f"api/access/datafile/{item['dataFile']['id']}"
    good = h.files[key]
    h.files[key] = good[:-1] + bytes([good[-1] ^ 1])  # same size, one bit flipped upstream
    with pytest.raises(DicebenchError) as ei:
        fetch_dataset(_dataverse_entry(base), tmp_path / "dl", progress=False, sleep=_nosleep)
    msg = str(ei.value)
    assert "training/Utrecht/0/wmh.nii.gz" in msg and "sha1 checksum mismatch" in msg
    assert item["dataFile"]["checksum"]["value"] in msg
    assert not (tmp_path / "dl" / "files" / "training" / "Utrecht" / "0" / "wmh.nii.gz").exists()
    h.files[key] = good  # fixed upstream: the rerun fetches only what is missing
    before = len(h.log)
    fetch_dataset(_dataverse_entry(base), tmp_path / "dl", progress=False, sleep=_nosleep)
    fetched = [n for n, _ in h.log[before:]]
    assert key in fetched and len(fetched) < 15


def test_dataverse_md5_and_missing_checksums(server, tmp_path):
    base, h = server
    tree = tmp_path / "record"
    (tree / "a").mkdir(parents=True)
    (tree / "a" / "x.bin").write_bytes(PAYLOAD)
    (tree / "y.bin").write_bytes(PAYLOAD[::-1])
    listing = _serve_record(h, tree, checksum=None)
    first, second = listing["data"]["latestVersion"]["files"]
    first["dataFile"]["md5"] = hashlib.md5(PAYLOAD).hexdigest()  # older Dataverse: a bare md5 field
    h.files[f"api/datasets/:persistentId/?persistentId={DOI}"] = json.dumps(listing).encode()
    rec = DataverseRecord(base, DOI)
    files = dataverse_files(rec, listing, "listing")
    assert [(f.name, f.algo, f.size) for f in files] == [("a/x.bin", "md5", len(PAYLOAD)),
                                                         ("y.bin", None, len(PAYLOAD))]
    entry = _dataverse_entry(base, include=())
    fetch_dataset(entry, tmp_path / "dl", progress=False, sleep=_nosleep)
    recorded = json.loads((tmp_path / "dl" / "checksums.json").read_text())
    assert recorded == {"y.bin": hashlib.sha256(PAYLOAD[::-1]).hexdigest()}  # recorded, then enforced


@pytest.mark.parametrize("label, why", [("../../outside", "refused file path"), ("a\\b", "refused file path"),
                                        ("a/./b", "refused file path")])
def test_dataverse_listing_paths_stay_inside(server, tmp_path, label, why):
    base, h = server
    tree = tmp_path / "record"
    tree.mkdir()
    (tree / "x.bin").write_bytes(PAYLOAD)
    listing = _serve_record(h, tree)
    listing["data"]["latestVersion"]["files"][0]["directoryLabel"] = label
    h.files[f"api/datasets/:persistentId/?persistentId={DOI}"] = json.dumps(listing).encode()
    with pytest.raises(DicebenchError, match=why):
        fetch_dataset(_dataverse_entry(base, include=()), tmp_path / "dl", progress=False, sleep=_nosleep)
    assert list((tmp_path / "dl").iterdir()) == []  # the bad listing is not kept, nothing fetched


def test_dataverse_restricted_files_are_named(server, tmp_path):
    base, h = server
    tree = make_wmh_dataverse(tmp_path / "record")
    listing = _serve_record(h, tree)
    for f in listing["data"]["latestVersion"]["files"]:
        f["restricted"] = f["label"] == "wmh.nii.gz"
    with pytest.raises(DicebenchError, match=r"5 file\(s\) are restricted \(e.g. test/Amsterdam/GE1T5/150/wmh"):
        dataverse_files(DataverseRecord(base, DOI, WMH_INCLUDE), listing, "listing")


def test_dataverse_registry_entry_is_validated(tmp_path, capsys):
    bad = tmp_path / "reg.yaml"
    bad.write_text("datasets:\n  x: {title: t, converter: wmh, registration: false, licence: l, citation: c, "
                   "dataverse: {server: 'ftp://x', doi: 'doi:1/2'}}\n")
    rc = main(["download", "x", "--dest", str(tmp_path / "d"), "--registry", str(bad)])
    err = capsys.readouterr().err
    assert rc == 1 and "must be an http(s) URL" in err and len(err.strip().splitlines()) == 1


def test_wmh_dataverse_download_extract_convert(server, tmp_path, capsys):
    """`dicebench download` of a DataverseNL record in WMH's layout, then `dicebench convert`."""
    from dicebench.data.check import find_problems

    base, h = server
    tree = make_wmh_dataverse(tmp_path / "record")
    _serve_record(h, tree)
    reg = tmp_path / "reg.yaml"
    reg.write_text("datasets:\n  wmh2017:\n    {title: t, converter: wmh, registration: false, licence: l, "
                   f"citation: c, dataverse: {{server: '{base}', doi: '{DOI}', "
                   f"include: {json.dumps(list(WMH_INCLUDE))}}}}}\n")
    rc = main(["download", "wmh2017", "--dest", str(tmp_path / "dl"), "--registry", str(reg),
               "--extract", str(tmp_path / "extracted"), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    ext = tmp_path / "extracted"
    assert sorted(p.relative_to(ext).as_posix() for p in ext.rglob("*") if p.is_file() and p.name != ".extracted") \
        == _wanted(tree)
    rel = f"test/Amsterdam/{PHILIPS}/160/pre/FLAIR.nii.gz"
    assert (ext / rel).stat().st_ino == (tmp_path / "dl" / "files" / rel).stat().st_ino  # linked, not copied
    rc = main(["convert", "wmh2017", "--registry", str(reg), "--src", str(ext), "--out", str(tmp_path / "raw")])
    assert rc == 0, capsys.readouterr().err
    out = tmp_path / "raw"
    assert find_problems(out) == []
    cases = json.loads((out / "dataset.json").read_text())["cases"]
    assert cases["Amsterdam_Philips_VU_PETMR_01_160"]["source"] == f"test/Amsterdam/{PHILIPS}/160"
    assert sorted(c for c, v in cases.items() if v["split"] == "Tr") == ["Amsterdam_GE3T_100", "Singapore_50",
                                                                         "Utrecht_0"]
