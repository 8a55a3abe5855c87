"""Fidelity to the papers: config/paper.yaml runs the published grid as the papers (or their
authors' code) fix it, and the ledger paper/deviations.yaml gives the source of every setting it
runs with and every deviation; the paper's methods and README.md render the ledger."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
import yaml

from dicebench import grid
from dicebench.cli import main
from dicebench.errors import DicebenchError
from dicebench.losses import get_loss
from dicebench.reporting import methods
from dicebench.training.sampling import split_cases


@pytest.fixture(scope="module")
def paper_yaml(repo_root) -> dict:
    return yaml.safe_load((repo_root / "config" / "paper.yaml").read_text())


@pytest.fixture(scope="module")
def paper_config(paper_yaml) -> dict:
    return grid.validate_config(copy.deepcopy(paper_yaml))


@pytest.fixture(scope="module")
def ledger() -> dict:
    return methods.load_ledger()


# ---------------------------------------------------------------- the grid follows the papers


def test_paper_config_is_a_complete_standalone_config(paper_yaml, paper_config):
    """It validates on its own (no key taken from config/config.yaml) and runs the four papers."""
    sections = {"results", "figures", "datasets", "preprocessing", "experiments", "inference", "resources"}
    assert sections <= set(paper_yaml)
    assert grid.main_experiments(paper_config) == ["liu2018", "kervadec2023", "shen2018", "sudre2017"]
    assert all(ds["source"] == "real" for ds in paper_config["datasets"].values())
    cells = grid.all_cells(paper_config)
    per_experiment = {e: sum(c.experiment == e for c in cells) for e in grid.main_experiments(paper_config)}
    assert per_experiment == {"liu2018": 5, "kervadec2023": 40, "shen2018": 30, "sudre2017": 80}
    # the sweep: ACDC at 64^2 and 128^2 (every loss), GDL's max and zero policies at all three sizes
    sweep = grid.sweep_members(paper_config, "kervadec2023")[1:]
    assert sorted(sweep) == sorted(["kervadec2023_p64x64", "kervadec2023_p128x128"]
                                   + [f"kervadec2023_p{p}_gdl_{pol}" for p in ("256x256", "64x64", "128x128")
                                      for pol in ("max", "zero")])
    assert all(paper_config["experiments"][e]["datasets"] == ["acdc"] for e in sweep)
    assert len(cells) == 155 + 2 * 4 * 5 + 3 * 2 * 5


def test_liu_and_fu_train_v_nets_foreground_dice_with_v_nets_deformation(paper_config):
    exp = paper_config["experiments"]["liu2018"]
    assert exp["loss_params"] == {"vnet": {"include_background": False}}
    assert exp["recipe"]["augment"] == {"elastic_sigma": 15, "elastic_probability": 0.5, "elastic_control_points": 2,
                                        "elastic_grid": "bspline_mesh", "elastic_in_plane": True}
    assert "offline_copies" not in exp["recipe"]["augment"]  # V-Net deforms online


def test_liu_loss_is_the_binary_dice_of_the_prostate():
    """1 - 2 P.R / (|P|^2 + |R|^2) on the prostate channel alone (V-Net's pyLayer.py DiceLoss)."""
    logits = torch.randn(1, 2, 6, 7, 8, generator=torch.Generator().manual_seed(0))
    target = (torch.rand(1, 6, 7, 8, generator=torch.Generator().manual_seed(1)) > 0.7).long()
    p, r = torch.softmax(logits, 1)[:, 1], target.float()
    eps = 1e-5
    expected = 1 - (2 * (p * r).sum() + eps) / ((p * p).sum() + (r * r).sum() + eps)
    ours = get_loss("vnet", include_background=False)(logits, target)
    torch.testing.assert_close(ours, expected)
    assert not torch.isclose(get_loss("vnet")(logits, target), expected)  # the background would count


def _authors_gdl(probs, onehot):
    """GeneralizedDice of LIVIAETS/boundary-loss losses.py, from its formula:
    w = 1 / (sum y + 1e-10)^2 per image and class, 1 - 2 (sum_k w I + 1e-10) / (sum_k w U + 1e-10), mean."""
    dims = tuple(range(2, probs.dim()))
    w = 1 / (onehot.sum(dims) + 1e-10) ** 2
    inter = w * (probs * onehot).sum(dims)
    union = w * (probs.sum(dims) + onehot.sum(dims))
    return (1 - 2 * (inter.sum(1) + 1e-10) / (union.sum(1) + 1e-10)).mean()


def _authors_dice(probs, onehot):
    """DiceLoss of LIVIAETS/boundary-loss losses.py: 1 - (2 I + 1e-10) / (U + 1e-10) per image and class, mean."""
    dims = tuple(range(2, probs.dim()))
    inter = (probs * onehot).sum(dims)
    union = probs.sum(dims) + onehot.sum(dims)
    return (1 - (2 * inter + 1e-10) / (union + 1e-10)).mean()


def test_kervadecs_gdl_and_dice_are_the_authors_code(paper_config):
    """With paper.yaml's parameters our GDL and Dice give the authors' values, also on images that
    lack a class (where GDL's policy matters); the default policy would not."""
    params = paper_config["experiments"]["kervadec2023"]["loss_params"]
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(4, 3, 16, 16, dtype=torch.float64, generator=gen)
    target = torch.randint(0, 2, (4, 16, 16), generator=gen)  # class 2 absent from every image
    target[0, :3, :3] = 2  # ... but the first
    probs = torch.softmax(logits, 1)
    onehot = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).double()
    torch.testing.assert_close(get_loss("gdl", **params["gdl"])(logits, target), _authors_gdl(probs, onehot))
    torch.testing.assert_close(get_loss("dice", **params["dice"])(logits, target), _authors_dice(probs, onehot))
    assert abs(float(get_loss("gdl")(logits, target)) - float(_authors_gdl(probs, onehot))) > 1e-3
    assert params["vnet"] == params["dice"]  # their Dice's smoothing, for the variant their code lacks (K6)


def test_kervadecs_split_is_70_10_20_patients_of_acdc(paper_config):
    """20 of ACDC's 100 training patients are the test set (convert's hold-out), 10 of the other 80
    validate; WMH's 60 get 8 validation scans with the same share (ledger K1)."""
    assert paper_config["datasets"]["acdc"]["holdout"] == {"patients": 20, "seed": 0}
    assert "holdout" not in paper_config["datasets"]["acdc_official"]  # the official 50: a second test set
    share = paper_config["experiments"]["kervadec2023"]["recipe"]["val_fraction"]
    acdc = [f"patient{i:03d}_{ph}" for i in range(1, 81) for ph in ("ED", "ES")]
    train, val = split_cases(acdc, share, 0, {c: c[:10] for c in acdc})
    assert len({c[:10] for c in val}) == 10 and len({c[:10] for c in train}) == 70
    assert not {c[:10] for c in val} & {c[:10] for c in train}
    wmh = [f"s{i}" for i in range(60)]
    assert len(split_cases(wmh, share, 0)[1]) == 8


@pytest.mark.parametrize("dataset, holdout, message", [
    ("acdc", {"patients": 0}, r"datasets.acdc.holdout.patients: 0 is less than the minimum of 1"),
    ("acdc", {"seed": 1}, r"datasets.acdc.holdout: 'patients' is a required property"),
    ("phantom", {"patients": 2}, r"datasets.phantom.holdout: a hold-out is drawn from a real dataset"),
])
def test_a_bad_hold_out_is_refused_naming_it(paper_yaml, dataset, holdout, message):
    cfg = copy.deepcopy(paper_yaml)
    cfg["datasets"]["phantom"] = {"source": "synthetic", "phantom": "acdc"}
    cfg["datasets"][dataset]["holdout"] = holdout
    with pytest.raises(DicebenchError, match=message):
        grid.validate_config(cfg)


def test_shens_crop_has_the_field_of_view_of_a_four_times_down_sampled_ct(paper_config):
    """ct_3mm: 64 voxels of 3 mm span 192 mm, half of a 512-pixel slice of 0.68-0.78 mm after
    down-sampling by four (ledger S2); the same factor on every axis; twice TotalSegmentator's 1.5 mm."""
    exp = paper_config["experiments"]["shen2018"]
    spacing = paper_config["preprocessing"][exp["preprocessing"]]["target_spacing"]
    assert len(set(spacing)) == 1 and spacing[0] == 2 * 1.5
    fov = exp["recipe"]["patch_size"][0] * spacing[0]
    assert 0.5 * 512 * 0.68 <= fov <= 0.5 * 512 * 0.78


@pytest.mark.workflow
def test_the_convert_rule_passes_the_hold_out(repo_root, paper_config, tmp_path):
    """The DAG's convert job for acdc asks for Kervadec's hold-out; acdc_official's (the same
    release, official split) does not."""
    assert "--holdout-patients 20 --holdout-seed 0" in _convert_command(repo_root, tmp_path, "acdc")
    assert "--holdout" not in _convert_command(repo_root, tmp_path, "acdc_official")
    datasets = paper_config["datasets"]
    assert datasets["acdc"]["registry_name"] == datasets["acdc_official"]["registry_name"]


def _convert_command(repo_root, tmp_path, dataset: str) -> str:
    proc = _snakemake(repo_root, tmp_path, [f"results/datasets/{dataset}", "--printshellcmds"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    return next(line for line in proc.stdout.splitlines() if "dicebench convert" in line)


def _snakemake(repo_root, workdir, args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(repo_root / "Snakefile"),
                           "--directory", str(workdir), "--configfile", str(repo_root / "config" / "paper.yaml"),
                           "-n", "--cores", "2", *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.workflow
def test_paper_grid_dry_run(repo_root, paper_config, tmp_path):
    """`snakemake -n --cores 2 --configfile config/paper.yaml`: the whole DAG builds from the real
    datasets' download and convert rules (no dataset is here), one training job per cell."""
    proc = _snakemake(repo_root, tmp_path, ["--quiet", "rules"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, re.M))
    assert int(counts["train"]) == len(grid.all_cells(paper_config)) == 225
    assert int(counts["download"]) == int(counts["convert"]) == 4  # acdc_official is trained by no experiment
    assert "synthesize" not in counts and int(counts["paper"]) == 1



# ---------------------------------------------------------------- the ledger


def test_ledger_covers_every_setting_of_the_published_grid(paper_config, ledger):
    assert methods.uncovered(paper_config, ledger) == []
    assert methods.unused_patterns(paper_config, ledger) == []
    leaves = methods.config_leaves(paper_config)
    # what the coverage includes: schema defaults, the losses' class defaults; what it leaves out
    assert leaves["experiments.kervadec2023.recipe.amp"] == "bf16"
    assert leaves["experiments.shen2018.loss_params.weighted_dice.eps"] == 1.0
    assert leaves["experiments.kervadec2023.loss_params.gdl.empty_policy"] == "epsilon"
    assert not any(k.startswith(("resources", "evaluation")) or "data_workers" in k or "sw_batch_size" in k
                   for k in leaves)  # result-neutral
    assert "datasets.acdc.n_train" not in leaves and "preprocessing.mri_native.ct_window" not in leaves
    assert not any("_p64x64" in k for k in leaves)  # sweeps repeat their experiment's settings


def test_the_values_the_issue_names_carry_their_source(ledger):
    """lr 5e-4, Adam betas, batch 8 and 256^2 for Kervadec, Liu's patch, width and deformation:
    not written as if published."""
    source = {k: methods.ledger_entry(ledger, k)[1]["source"] for k in (
        "experiments.kervadec2023.lrs", "experiments.kervadec2023.recipe.optimizer_params.betas",
        "experiments.kervadec2023.recipe.batch_size", "experiments.kervadec2023.recipe.patch_size",
        "experiments.liu2018.recipe.patch_size", "experiments.liu2018.network_params.rdd.width",
        "experiments.liu2018.recipe.augment.elastic_probability", "experiments.liu2018.recipe.iterations")}
    assert source == {k: ("ours" if k.endswith(("width", "iterations")) else "code") for k in source}
    for key in ("experiments.kervadec2023.lrs", "experiments.kervadec2023.recipe.patch_size"):
        assert "LIVIAETS/boundary-loss" in methods.ledger_entry(ledger, key)[1]["cite"]
    assert "faustomilletari/VNet" in methods.ledger_entry(ledger, "experiments.liu2018.recipe.patch_size")[1]["cite"]
    ids = {d["id"]: d for d in ledger["deviations"]}
    assert {"G2", "K1", "S1", "S2", "S3", "S4", "U1", "L2"} <= set(ids)
    assert "our choices, not theirs" in ids["G2"]["why"] and "TotalSegmentator" in ids["S1"]["we_do"]


def test_coverage_notices_a_new_setting_and_a_stale_entry(paper_yaml, ledger):
    cfg = copy.deepcopy(paper_yaml)
    cfg["experiments"]["liu2018"]["recipe"]["inference_patch_size"] = [64, 160, 160]
    cfg["inference"]["mirror"] = True
    del cfg["experiments"]["sudre2017"]
    cfg = grid.validate_config(cfg)
    assert methods.uncovered(cfg, ledger) == ["experiments.liu2018.recipe.inference_patch_size"]
    stale = methods.unused_patterns(cfg, ledger)
    assert "experiments.sudre2017.losses" in stale and "experiments.sudre2017.recipe.*" in stale
    assert "inference.mirror" not in stale


def test_the_most_specific_entry_wins(ledger):
    def best(key):
        return methods.ledger_entry(ledger, key)[0]

    assert best("experiments.sudre2017.recipe.val_interval") == "experiments.sudre2017.recipe.*"
    assert best("experiments.liu2018.recipe.val_interval") == "experiments.*.recipe.val_interval"
    assert methods.ledger_entry(ledger, "preprocessing.liu2018.n4.enabled")[1]["source"] == "paper"
    assert methods.ledger_entry(ledger, "preprocessing.liu2018.n4.tolerance")[0] == "preprocessing.*.n4.*"
    assert methods.ledger_entry(ledger, "nothing.here") is None


@pytest.mark.parametrize("broken, message", [
    ("  results: {source: ours, why: a, b}\n", "values.results: expected"),  # an unquoted comma splits the flow map
    ("  results: {source: paper, why: output}\n", "a 'paper' value needs 'cite'"),
    ("  results: {source: hearsay, why: output}\n", "source must be one of"),
    ("  results: {source: ours, why: output, see: Z9}\n", "see 'Z9' is not a deviation id"),
])
def test_a_malformed_ledger_is_refused_naming_the_entry(tmp_path, broken, message):
    text = methods.LEDGER.read_text()
    original = next(line for line in text.splitlines(keepends=True) if line.startswith("  results:"))
    bad = tmp_path / "deviations.yaml"
    bad.write_text(text.replace(original, broken))
    with pytest.raises(DicebenchError, match=re.escape(str(bad)) + ".*" + re.escape(message)):
        methods.load_ledger(bad)


def test_a_deviation_lacking_a_field_is_refused(tmp_path):
    text = methods.LEDGER.read_text().replace("    effect: unknown capacity difference to the authors' network\n", "")
    (tmp_path / "d.yaml").write_text(text)
    with pytest.raises(DicebenchError, match=r"deviations\[\d+\] lacks effect"):
        methods.load_ledger(tmp_path / "d.yaml")


# ---------------------------------------------------------------- the paper and the README show it


def test_methods_render_the_ledger(paper_config, ledger):
    tex = methods.methods_tex(paper_config, ledger)
    assert r"\subsection{Deviations from the papers}" in tex and r"\subsection{Where each setting" in tex
    for dev in ledger["deviations"]:
        assert rf"\item[{dev['id']} (" in tex
    assert tex.count(r"\item \texttt{") >= len(ledger["values"]) + len(paper_config["datasets"])
    assert tex.isascii()  # pdflatex's default setup typesets it
    assert "20 whole training patients drawn with seed 0" in tex  # the hold-out, in the datasets
    assert "'elastic\\_grid': 'bspline\\_mesh'" in tex and "'empty\\_policy': 'epsilon'" in tex


def test_methods_command_reads_the_ledger_it_is_given(paper_config, tmp_path):
    import json

    text = re.sub(r"\bG1\b", "G99", methods.LEDGER.read_text())
    (tmp_path / "d.yaml").write_text(text)
    out = tmp_path / "methods.tex"
    assert main(["methods", "--config-json", json.dumps(paper_config), "--out", str(out),
                 "--deviations", str(tmp_path / "d.yaml")]) == 0
    assert r"\item[G99 (all papers, addition)" in out.read_text()


def test_readme_shows_the_ledgers_deviations(repo_root, ledger):
    readme = (repo_root / "README.md").read_text()
    block = re.search(r"<!-- deviations:begin -->\n(.*?)<!-- deviations:end -->", readme, re.S)
    assert block, "README.md lacks the deviations block"
    assert block.group(1) == methods.deviations_markdown(ledger), (
        "README.md's deviations are not the ledger's: paste `python -m dicebench.reporting.methods` "
        "between the markers")
    assert "## Deviations from the papers" in readme


@pytest.mark.workflow
@pytest.mark.skipif(shutil.which("latexmk") is None, reason="latexmk not installed (apt: latexmk texlive-latex-*)")
def test_paper_builds_with_the_ledger(repo_root, paper_config, tmp_path):
    (tmp_path / "paper.tex").write_text((repo_root / "paper" / "paper.tex").read_text())
    (tmp_path / "methods.tex").write_text(methods.methods_tex(paper_config))
    for generated in ("results.tex", "summary.tex", "appendix.tex"):
        (tmp_path / generated).write_text("\n")
    proc = subprocess.run(["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (tmp_path / "paper.pdf").read_bytes()[:4] == b"%PDF"
