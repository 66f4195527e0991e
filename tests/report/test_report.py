"""The report: built from a config (the demo's pipeline at a tiny scale), opened in headless Chromium."""

from __future__ import annotations

import json
import shutil
from importlib.resources import files

import pytest

from diffadapt.apps.report.browser import find_chromium, inspect_page
from diffadapt.apps.report.config import AdaptPart, DDIMPart, DigitsPart, ReportConfig, load_report_config
from diffadapt.apps.report.pipeline import build_report
from diffadapt.errors import InputError
from tests.diffusion.helpers import embedded_classes, train_tiny


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    train_tiny(root / "digits", embedded_classes("mnistm", (0, 1, 2)), steps=10)
    ckpt = str(root / "digits")
    config = ReportConfig(
        title="tiny report",
        digits=DigitsPart(ckpt=ckpt, per_class=2, steps=4, guidance_interval=[20, 80], real="mnistm", score_seeds=[0]),
        ddim=DDIMPart(ckpt=ckpt, steps=4),
        adapt=AdaptPart(targets=["usps"], methods=["source", "dann", "fixmatch"], epochs=1, batch_size=256, tsne_per_domain=150),
    )
    lines = []
    index = build_report(config, root / "out", log=lines.append)
    assert [line.split(":")[0] for line in lines] == [f"stage {k} of 4" for k in range(1, 5)]
    return index


def test_report_files_and_numbers(tiny_report):
    folder = tiny_report.parent
    results = json.loads((folder / "report.json").read_text())
    assert set(results) >= {"data", "digits", "ddim", "adapt", "total_seconds"}
    assert results["digits"]["scores"]["count"] == 20
    assert results["digits"]["guidance"].endswith("at t 20..80")
    assert results["digits"]["scores"]["accuracy_score"]["ratio"] > 0
    assert "DANN (matched)" in results["adapt"]["table_markdown"] and "FixMatch (matched)" in results["adapt"]["table_markdown"]
    for name in ("domains.png", "digits_grid.png", "digits_reverse.png", "ddim_eta_grid.png", "ddim_interpolation.png", "adaptation_table.csv"):
        assert (folder / name).is_file(), name
    assert len(results["adapt"]["curves"]) == 3 and all((folder / c["figure"]).is_file() for c in results["adapt"]["curves"])
    page = tiny_report.read_text()
    assert "no course classifier given" in page and "<h3>Settings</h3>" in page and "{" not in page.split("<h3>Settings</h3>")[1]
    assert not [p for p in folder.parent.iterdir() if ".tmp-" in p.name]


def test_page_in_headless_chromium(tiny_report, tmp_path):
    if find_chromium() is None:
        pytest.skip("Chromium is not installed (.ci/run installs Debian's chromium)")
    pytest.importorskip("websocket")
    report = inspect_page(tiny_report, screenshot=tmp_path / "shot.png")
    assert report.title == "tiny report"
    assert len(report.images) >= 10, report.images
    assert report.broken_images == []
    assert report.has_table
    assert (tmp_path / "shot.png").stat().st_size > 10000


def test_page_needs_no_script_or_network(tiny_report):
    text = tiny_report.read_text()
    assert "<script" not in text.lower() and "http://" not in text and "https://" not in text


def test_toml_config(tmp_path):
    path = tmp_path / "report.toml"
    path.write_text('seed = 3\n[digits]\nper_class = 7\nguidance_interval = [100, 405]\n[adapt]\ntargets = ["usps"]\nseeds = [0, 1]\n')
    config = load_report_config(path)
    assert config.seed == 3 and config.digits.per_class == 7 and config.adapt.seeds == (0, 1)
    assert config.digits.guidance_interval == (100, 405)
    path.write_text("[digits]\nper_klass = 7\n")
    with pytest.raises(InputError, match="per_klass"):
        load_report_config(path)
    path.write_text("seed = \n")
    with pytest.raises(InputError, match="TOML"):
        load_report_config(path)
    path.write_text("[adapt]\nepochs = -1\n")
    with pytest.raises(InputError, match="adapt.epochs: must be at least 1"):
        load_report_config(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a = " + b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),  # tomllib recurses per level
        (b"seed = 1\ntitle = '\xff'\n", "not UTF-8 text"),
    ],
)
def test_toml_config_refuses_hostile_files(tmp_path, content, message):
    path = tmp_path / "report.toml"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_report_config(path)


@pytest.mark.parametrize(("content", "message"), [
    ('parts = ["digits", "digits"]\n', "parts: 'digits' is listed twice"),
    ('[adapt]\ntargets = ["usps", "svhn", "usps"]\n', "adapt.targets: 'usps' is listed twice"),
    ('[adapt]\nseeds = [0, 1, 0]\n', "adapt.seeds: 0 is listed twice"),
    ('[digits]\nscore_seeds = [2, 2]\n', "digits.score_seeds: 2 is listed twice"),
])
def test_toml_config_refuses_repeated_runs(tmp_path, content, message):
    path = tmp_path / "report.toml"
    path.write_text(content)
    with pytest.raises(InputError, match=message) as info:
        load_report_config(path)
    assert str(path) in str(info.value)


def test_toml_config_refuses_a_folder(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        load_report_config(tmp_path)


def test_toml_config_allows_byte_order_mark(tmp_path):
    path = tmp_path / "report.toml"
    path.write_bytes("\ufeffseed = 5\n".encode())
    assert load_report_config(path).seed == 5


def test_example_config_loads():
    from pathlib import Path

    config = load_report_config(Path(__file__).resolve().parents[2] / "examples" / "report.toml")
    assert config.digits.per_class == 100 and config.adapt.methods[-1] == "target"


def test_report_command_checks_paths_first(run_cli, tmp_path):
    path = tmp_path / "report.toml"
    path.write_text(f'[digits]\nclassifier = "{tmp_path / "missing.pth"}"\n')
    code, _, err = run_cli("report", "--config", path, "--out", tmp_path / "out")
    assert code == 2 and "digits.classifier" in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("digits", "message"), [
    ("guidance_interval = [500, 100]", "digits.guidance_interval: guidance interval must be 0 <= lo <= hi, got 500..100"),
    ("guidance_interval = [5]", "digits.guidance_interval: guidance interval must be (lo, hi)"),
    ("steps = 5000", "digits.method / digits.steps / digits.eta / digits.spacing: steps must be in 1..500"),
    ("steps = 60\nspacing = 'quadratic'", "digits.method / digits.steps / digits.eta / digits.spacing: 60 steps of quadratic spacing repeat"),
    ("spacing = 'cosine'", "digits.spacing"),
    ("judge = 'FILE'", "digits.judge:"),
])
def test_report_digit_settings_fail_before_any_work_naming_the_key(run_cli, tmp_path, digits, message):
    # Without the up-front check these failed after the figures had been sampled, naming no key.
    (tmp_path / "notes.txt").write_text("not a judge")
    path = tmp_path / "report.toml"
    path.write_text("parts = ['digits']\n[digits]\n" + digits.replace("FILE", str(tmp_path / "notes.txt")) + "\n")
    code, _, err = run_cli("report", "--config", path, "--out", tmp_path / "out")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
    if "judge" in digits:
        assert "notes.txt: is a file, but a judge run folder" in err


@pytest.mark.parametrize("domain", ["../../escaped", "/tmp/absolute"])
def test_domain_names_from_a_run_stay_inside_the_report(tmp_path, domain):
    """A run's config.json names its domains; the report names t-SNE folders after them, never leaving out."""
    run = tmp_path / "run"
    shutil.copytree(str(files("diffadapt") / "assets" / "adapt_usps"), run)
    document = json.loads((run / "config.json").read_text())
    document["source"].update(spec="mnistm", domain=domain)
    document["target"]["spec"] = "usps"
    (run / "config.json").write_text(json.dumps(document))
    config = ReportConfig(parts=["adapt"], adapt=AdaptPart(runs=[str(run)], tsne_per_domain=10))
    out = tmp_path / "deep" / "er" / "out"
    build_report(config, out, log=lambda line: None)
    written = {p for p in tmp_path.rglob("*") if p.is_file()} - {p for p in run.rglob("*")}
    assert written and all(out in p.parents for p in written)
    assert (out / "tsne").is_dir() and len(list((out / "tsne").iterdir())) == 1
