"""Downloads against a real HTTP server on 127.0.0.1 (Range support, a dropped connection, bad data)."""

from __future__ import annotations

import hashlib
import http.server
import re
import threading

import pytest

from dicebench.cli import main
from dicebench.data.download import (DEFAULT_REGISTRY, DatasetEntry, RemoteFile, download_file,
                                     fetch_dataset, load_registry)
from dicebench.errors import DicebenchError

PAYLOAD = bytes(range(256)) * 400  # 100 KiB, deterministic


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves `files` with Range support; `drop_after[name]` cuts the first response short."""

    files: dict[str, bytes] = {}
    drop_after: dict[str, int] = {}
    ignore_range = False
    log: list[tuple[str, str | None]] = []

    def log_message(self, *a):  # keep pytest output quiet
        pass

    def do_GET(self):
        name = self.path.lstrip("/")
        rng = self.headers.get("Range")
        type(self).log.append((name, rng))
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
    handler = type("H", (_Handler,), {"files": {}, "drop_after": {}, "log": [], "ignore_range": False})
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
    import json

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
    assert set(reg) == {"acdc", "wmh2017", "promise12", "msd_prostate", "totalsegmentator"}
    assert reg["promise12"].registration and not reg["msd_prostate"].registration
    assert reg["msd_prostate"].files[0].algo == "md5"
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
