"""The viewer pages: what they hold, and (slow) that they render and step through slices in a
real headless Chromium, loaded from disk with every network request refused.

Under CI (CI=true) a missing chromium or Playwright fails the browser test: `make test`
installs Debian's chromium (Makefile, testdeps) and Playwright comes with requirements.lock."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from dicebench.errors import DicebenchError
from dicebench.review import viewer as W


def _data(html: str) -> dict:
    blob = re.search(r'<script type="application/json" id="viewer-data">(.*?)</script>', html, re.S).group(1)
    return json.loads(blob)


def _decode(b64: str, shape) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(b64)), dtype=np.uint8).reshape(shape)


@pytest.fixture(scope="module")
def cells(tiny_acdc, tmp_path_factory):
    """Two cells' predictions of tiny_acdc's test cases: the reference itself, and the reference
    shifted by 3 voxels along x with per_case.csv giving a known DSC."""
    root = tmp_path_factory.mktemp("cells")
    dirs = []
    for name, shift in (("dice-none", 0), ("mime-none", 3)):
        d = root / "tiny" / "synth_acdc" / "unet2d" / name / "lr0.01" / "seed0" / "predictions"
        d.mkdir(parents=True)
        rows = []
        for ref in sorted((tiny_acdc / "labelsTs").glob("*.nii.gz")):
            img = sitk.ReadImage(str(ref))
            out = sitk.GetImageFromArray(np.roll(sitk.GetArrayFromImage(img), shift, axis=2))
            out.CopyInformation(img)
            sitk.WriteImage(out, str(d / ref.name))
            case = ref.name[: -len(".nii.gz")]
            rows += [{"case": case, "class_index": k, "class": str(k), "dsc": 1.0 if shift == 0 else 0.5 + 0.1 * k}
                     for k in range(4)]
        pd.DataFrame(rows).to_csv(d.parent / "per_case.csv", index=False)
        dirs.append(d)
    return dirs


def test_the_page_holds_every_test_case_and_the_exact_label_maps(tiny_acdc, cells, tmp_path):
    out = tmp_path / "viewer" / "tiny.html"
    W.write_viewer(tiny_acdc, cells, out, "tiny on synth_acdc")
    html = out.read_text()
    data = _data(html)
    refs = sorted((tiny_acdc / "labelsTs").glob("*.nii.gz"))
    assert [c["name"] for c in data["cases"]] == [r.name[: -len(".nii.gz")] for r in refs]
    assert data["panels"] == ["dice-none lr0.01", "mime-none lr0.01"]
    labels = json.loads((tiny_acdc / "dataset.json").read_text())["labels"]
    assert data["labels"] == {str(v): k for k, v in labels.items() if v > 0}
    for case, ref in zip(data["cases"], refs):
        img = sitk.ReadImage(str(ref))
        gt = sitk.GetArrayFromImage(img)
        assert case["shape"] == list(gt.shape) and case["step"] == [1, 1, 1]
        assert case["spacing"] == pytest.approx(list(reversed(img.GetSpacing())))
        assert np.array_equal(_decode(case["reference"], gt.shape), gt)
        assert np.array_equal(_decode(case["predictions"][1], gt.shape), np.roll(gt, 3, axis=2))
        image = _decode(case["image"], gt.shape)
        assert image.min() == 0 and image.max() == 255
        fg = (gt > 0).sum(axis=(1, 2))
        assert case["best"][0] == int(np.argmax(fg))
        assert case["scores"][0]["mean"] == 1.0
        assert case["scores"][1]["mean"] == pytest.approx(np.mean([0.6, 0.7, 0.8]))
    # self-contained: no URL is fetched at view time
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html)
    assert "</script>" not in html.split('id="viewer-data">', 1)[1].split("</script>", 1)[0]


def test_the_window_is_the_1st_to_99th_percentile():
    image = np.arange(1000, dtype=float).reshape(10, 10, 10)
    out = W.window(image)
    lo, hi = np.percentile(image, [1, 99])
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    mid = np.round((image - lo) / (hi - lo) * 255)
    inside = (image > lo) & (image < hi)
    assert np.array_equal(out[inside], mid[inside].astype(np.uint8))
    assert W.window(np.zeros((2, 2, 2))).max() == 0  # a flat image does not divide by zero


def test_colours_are_those_of_the_qualitative_figure():
    import matplotlib

    from matplotlib.colors import to_hex

    assert W.label_colors(4)[1:] == [to_hex(matplotlib.colormaps["tab10"](k)) for k in (1, 2, 3)]


def test_a_long_axis_is_subsampled_and_the_page_says_by_how_much(tiny_acdc, cells, tmp_path):
    out = tmp_path / "small.html"
    W.write_viewer(tiny_acdc, cells, out, "t", max_side=16)
    case = _data(out.read_text())["cases"][0]
    ref = sitk.ReadImage(str(sorted((tiny_acdc / "labelsTs").glob("*.nii.gz"))[0]))
    gt = sitk.GetArrayFromImage(ref)
    assert case["step"] == [1, 3, 3]  # (6, 40, 40) -> every 3rd voxel in-plane
    assert np.array_equal(_decode(case["reference"], case["shape"]), gt[:, ::3, ::3])
    assert case["spacing"][1] == pytest.approx(3 * ref.GetSpacing()[1])


def test_a_missing_or_misshapen_prediction_is_named(tiny_acdc, cells, tmp_path):
    broken = tmp_path / "tiny" / "synth_acdc" / "unet2d" / "gdl-none" / "lr0.01" / "seed0" / "predictions"
    shutil.copytree(cells[0], broken)
    victim = sorted(broken.glob("*.nii.gz"))[0]
    victim.unlink()
    with pytest.raises(DicebenchError, match=f"{victim.name}: file not found"):
        W.write_viewer(tiny_acdc, [cells[0], broken], tmp_path / "x.html", "t")
    sitk.WriteImage(sitk.Image([8, 8, 2], sitk.sitkUInt8), str(victim))
    with pytest.raises(DicebenchError, match=f"{victim.name}: shape \\(2, 8, 8\\) differs"):
        W.write_viewer(tiny_acdc, [cells[0], broken], tmp_path / "x.html", "t")
    assert not (tmp_path / "x.html").exists()


# ---------------------------------------------------------------------------- in a real browser


def _chromium() -> str:
    """Debian's chromium; under CI its absence (or Playwright's) is a failure, not a skip."""
    ci = os.environ.get("CI") == "true"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if ci:
            pytest.fail("Playwright is not installed (requirements.lock pins it)")
        pytest.skip("Playwright is not installed")
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if ci:
            pytest.fail("chromium not found: `make test` installs Debian's chromium (Makefile target testdeps)")
        pytest.skip("chromium not found (apt-get install chromium)")
    return path


PIXELS = """(sel) => {
  const c = document.querySelector(sel);
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let coloured = 0, sum = 0, sum2 = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (Math.abs(d[i] - d[i + 1]) > 8 || Math.abs(d[i + 1] - d[i + 2]) > 8) coloured++;
    sum += d[i]; sum2 += d[i] * d[i];
  }
  const n = d.length / 4;
  return {w: c.width, h: c.height, coloured, std: Math.sqrt(sum2 / n - (sum / n) ** 2), url: c.toDataURL()};
}"""


@pytest.mark.slow
def test_the_page_renders_and_steps_through_slices_in_headless_chromium(tiny_acdc, cells, tmp_path):
    from PIL import Image
    from playwright.sync_api import sync_playwright

    chromium = _chromium()
    page_path = tmp_path / "figures" / "viewer" / "tiny" / "synth_acdc.html"
    W.write_viewer(tiny_acdc, cells, page_path, "tiny on synth_acdc")
    shape = _data(page_path.read_text())["cases"][0]["shape"]
    requests, errors = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 520})
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route(re.compile(r"^(?!file:)"), lambda route: route.abort())  # no network
            page.goto(page_path.as_uri())
            page.wait_for_selector("body[data-ready='1']", timeout=15000)
            assert page.locator("#panels canvas").count() == 4  # image, reference, two predictions
            image = page.evaluate(PIXELS, "canvas[data-panel='image']")
            reference = page.evaluate(PIXELS, "canvas[data-panel='reference']")
            assert (image["w"], image["h"]) == (shape[2], shape[1])  # axial: x across, y down
            assert image["std"] > 10 and image["coloured"] == 0  # a grey image with structure
            assert reference["coloured"] > 20  # the reference drawn over it in colour
            assert "DSC 1.000" in page.locator("#panels figcaption").nth(2).inner_text()

            # the slice control: arrow keys on the slider step the slice and change the picture
            start = int(page.get_attribute("body", "data-slice"))
            key, step = ("ArrowLeft", -1) if start == shape[0] - 1 else ("ArrowRight", 1)
            page.focus("#slice")
            page.keyboard.press(key)
            page.wait_for_function(f"document.body.dataset.slice === '{start + step}'", timeout=5000)
            assert page.input_value("#slice") == str(start + step)
            assert page.locator("#slice-label").inner_text() == f"{start + step + 1} / {shape[0]}"
            assert page.evaluate(PIXELS, "canvas[data-panel='image']")["url"] != image["url"]

            # another view: coronal slices are x wide and z high
            page.select_option("#axis", "1")
            page.wait_for_function("document.body.dataset.axis === '1'", timeout=5000)
            coronal = page.evaluate(PIXELS, "canvas[data-panel='reference']")
            assert (coronal["w"], coronal["h"]) == (shape[2], shape[0]) and coronal["coloured"] > 0

            shot = tmp_path / "viewer.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert all(u.startswith("file:") for u in requests), requests
    png = Image.open(shot).convert("RGB")
    assert png.size[0] >= 1000 and np.asarray(png).std() > 10  # not a blank page
    keep = os.environ.get("DICEBENCH_VIEWER_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
