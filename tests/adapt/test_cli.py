"""adapt train / predict / table / tsne end to end on embedded domains."""

from __future__ import annotations

import csv
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from diffadapt.cli import main

    root = tmp_path_factory.mktemp("adapt")
    for mode, seeds in (("source", "0"), ("dann", "0,1"), ("target", "0")):
        code = main(["adapt", "train", "--source", "mnistm", "--target", "usps", "--method", mode, "--out", str(root / mode),
                     "--seeds", seeds, "--epochs", "1", "--batch-size", "512", "--no-progress"])
        assert code == 0
    return root


def test_run_folders_and_config(runs):
    document = json.loads((runs / "dann" / "seed1" / "config.json").read_text())
    assert document["kind"] == "diffadapt/digit-adaptation"
    assert document["config"]["method"] == "dann" and document["config"]["seed"] == 1
    assert document["source"]["domain"] == "mnistm" and document["target"]["domain"] == "usps"
    assert len(document["target"]["stats"]["mean"]) == 3
    assert 0 <= document["results"]["target_val_accuracy"] <= 1


def test_table_mean_and_std_over_seeds(run_cli, runs, tmp_path):
    code, out, _ = run_cli("adapt", "table", runs / "source", runs / "dann", runs / "target", "--out", tmp_path)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("| target accuracy | MNIST-M -> USPS (embedded)")
    assert lines[2].startswith("| trained on source") and lines[3].startswith("| DANN") and lines[4].startswith("| trained on target")
    assert "± " in lines[3] and "(2 seeds)" in lines[3]
    rows = list(csv.DictReader(open(tmp_path / "adaptation_table.csv")))
    assert {r["method"] for r in rows} == {"trained on source (report)", "DANN (report)", "trained on target (report)"}
    assert [r["seeds"] for r in rows] == ["1", "2", "1"]


def test_predict_writes_sorted_csv(run_cli, runs, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("b.png", "a.png", "c.png"):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(folder / name)
    code, _, _ = run_cli("adapt", "predict", folder, tmp_path / "pred.csv", "--ckpt", runs / "dann")
    assert code == 0
    rows = list(csv.reader(open(tmp_path / "pred.csv")))
    assert rows[0] == ["image_name", "label"]
    assert [r[0] for r in rows[1:]] == ["a.png", "b.png", "c.png"]
    assert all(0 <= int(r[1]) <= 9 for r in rows[1:])


def test_predict_errors(run_cli, runs, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli("adapt", "predict", tmp_path / "empty", tmp_path / "p.csv", "--ckpt", runs / "dann")
    assert code == 2 and "no images" in err and not (tmp_path / "p.csv").exists()
    from diffadapt.evaluate.judge import default_judge_checkpoint

    code, _, err = run_cli("adapt", "predict", tmp_path / "empty", tmp_path / "p.csv", "--ckpt", default_judge_checkpoint())
    assert code == 2 and "judge" in err
    odd = tmp_path / "odd"
    odd.mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(os.fsdecode(bytes(odd) + b"/\xff.png"))
    code, _, err = run_cli("adapt", "predict", odd, tmp_path / "p.csv", "--ckpt", runs / "dann")
    assert code == 2 and "not valid UTF-8" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "p.csv").exists()


def test_tsne_two_figures(run_cli, runs, tmp_path):
    code, out, _ = run_cli("adapt", "tsne", runs / "dann", "--out", tmp_path, "--per-domain", "300")
    assert code == 0
    for name in ("tsne_class.png", "tsne_domain.png"):
        with Image.open(tmp_path / name) as image:
            assert image.size[0] > 300


def test_refuses_to_overwrite_a_trained_seed(run_cli, runs):
    code, _, err = run_cli("adapt", "train", "--source", "mnistm", "--target", "usps", "--method", "dann", "--out", runs / "dann", "--epochs", "1")
    assert code == 2 and "already trained" in err


def test_predict_frames_images_as_the_run_was_trained(run_cli, tmp_path):
    """A run of the ``matched`` recipe puts USPS digits in a 20-pixel box; predict must do the same to a folder."""
    from diffadapt.adapt.trainer import evaluate
    from diffadapt.apps.adaptation.runs import load_domain, load_run

    code, out, _ = run_cli("adapt", "train", "--source", "mnistm", "--target", "usps", "--method", "dann", "--recipe", "matched",
                           "--out", tmp_path / "ours", "--epochs", "1", "--batch-size", "512", "--no-progress")
    assert code == 0 and "usps digits in a 20-pixel box" in out
    run = load_run(tmp_path / "ours")
    assert (run.config.frame, run.config.target_box) == ("match", 20)
    val = load_domain("usps", 3, 28, box=20).val
    folder = tmp_path / "usps_val"
    folder.mkdir()
    plain = load_domain("usps", 1, 28).val  # the same images as a user's folder holds them: 28x28 gray, digit filling the frame
    for index in range(60):
        Image.fromarray(plain.images[index, 0].numpy()).save(folder / f"{index:04d}.png")
    assert run_cli("adapt", "predict", folder, tmp_path / "pred.csv", "--ckpt", tmp_path / "ours")[0] == 0
    predicted = [int(row["label"]) for row in csv.DictReader(open(tmp_path / "pred.csv"))]
    _, expected = evaluate(run.model, val, run.target_stats)
    assert predicted == expected[:60].tolist()


@pytest.mark.parametrize("results", [[1], None, True, {"target_val_accuracy": True}])
def test_table_refuses_results_that_are_not_an_object_of_numbers(run_cli, runs, tmp_path, results):
    run = tmp_path / "run"
    shutil.copytree(runs / "source", run)
    document = json.loads((run / "seed0" / "config.json").read_text())
    document["results"] = results
    (run / "seed0" / "config.json").write_text(json.dumps(document))
    code, _, err = run_cli("adapt", "table", run, "--out", tmp_path / "table")
    assert code == 2 and "results.target_val_accuracy" in err and not (tmp_path / "table").exists()


def test_table_refuses_a_copied_run_that_would_count_each_seed_twice(run_cli, runs, tmp_path):
    """``cp -r dann copy``: other paths, the same seeds of the same method on the same pair; refused, naming both."""
    copy = tmp_path / "copy"
    shutil.copytree(runs / "dann", copy)
    for runs_given in ((runs / "dann", copy), (runs / "dann", copy / "seed1")):
        code, out, err = run_cli("adapt", "table", *runs_given, "--out", tmp_path / "table")
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert str(runs / "dann" / "seed") in err and str(copy / "seed") in err and "also in" in err, err
        assert not (tmp_path / "table").exists() and out == ""
    renamed = tmp_path / "renamed"  # another seed folder name, the same seed in its config.json: still the same seed
    shutil.copytree(runs / "dann" / "seed0", renamed / "seed7")
    code, _, err = run_cli("adapt", "table", runs / "dann", renamed, "--out", tmp_path / "table")
    assert code == 2 and "seed 0 of DANN (report)" in err and not (tmp_path / "table").exists()


def test_tsne_refuses_features_that_are_not_finite(runs, tmp_path):
    """Weights within their bound can still overflow float32 features; t-SNE says so, naming the run, and draws nothing."""
    import torch

    from diffadapt.apps.adaptation.runs import load_run
    from diffadapt.apps.adaptation.tsne import tsne_figures
    from diffadapt.errors import InputError

    run = load_run(runs / "dann")
    with torch.no_grad():
        for parameter in run.model.extractor.parameters():
            parameter.mul_(1e30)
    with pytest.raises(InputError, match="features are not finite") as error:
        tsne_figures(run, tmp_path, per_domain=50)
    assert str(runs / "dann" / "seed0" / "model.safetensors") in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_commands_that_write_several_files_check_them_all_first(run_cli, runs, tmp_path):
    (tmp_path / "t" / "adaptation_table.csv").mkdir(parents=True)
    code, _, err = run_cli("adapt", "table", runs / "source", "--out", tmp_path / "t")
    assert code == 2 and "adaptation_table.csv" in err and sorted(p.name for p in (tmp_path / "t").iterdir()) == ["adaptation_table.csv"]
    (tmp_path / "ts" / "tsne_domain.png").mkdir(parents=True)
    code, _, err = run_cli("adapt", "tsne", runs / "dann", "--out", tmp_path / "ts", "--per-domain", "20")
    assert code == 2 and "tsne_domain.png" in err and sorted(p.name for p in (tmp_path / "ts").iterdir()) == ["tsne_domain.png"]
    (tmp_path / "o" / "seed0" / "curves.png").mkdir(parents=True)
    code, _, err = run_cli("adapt", "train", "--source", "mnistm", "--target", "usps", "--method", "source", "--out", tmp_path / "o",
                           "--epochs", "1", "--batch-size", "512", "--no-progress")
    assert code == 2 and "curves.png" in err and [p.name for p in (tmp_path / "o" / "seed0").iterdir()] == ["curves.png"]
    code, _, err = run_cli("adapt", "train", "--source", "mnistm", "--target", "usps", "--method", "source", "--out", tmp_path / "o2", "--seeds", "0,0")
    assert code == 2 and "seed 0 is listed twice" in err and not (tmp_path / "o2").exists()


def test_train_checks_its_options_before_training(run_cli, tmp_path):
    code, _, err = run_cli("adapt", "train", "--source", "mnistm", "--target", "usps", "--method", "source", "--out", tmp_path / "o",
                           "--seeds", "1,,2")
    assert code == 2 and "empty item" in err and not (tmp_path / "o").exists()
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli("adapt", "train", "--source", "mnistm", "--target", "usps", "--method", "dann", "--out", tmp_path / "file")
    assert code == 2 and "not a folder" in err and (tmp_path / "file").read_text() == "x"


def test_a_kept_teacher_is_its_own_table_row_and_both_networks_are_reported(run_cli, runs, tmp_path):
    code, out, _ = run_cli("adapt", "train", "--source", "mnistm", "--target", "usps", "--method", "fixmatch", "--recipe", "matched",
                           "--final-weights", "teacher", "--out", tmp_path / "fm", "--epochs", "1", "--batch-size", "512", "--no-progress")
    assert code == 0 and "(teacher; at the last step, student " in out
    results = json.loads((tmp_path / "fm" / "seed0" / "config.json").read_text())["results"]
    assert results["target_val_accuracy"] == results["last_step_target_val_accuracy"]["teacher"]
    assert set(results["last_step_target_val_accuracy"]) == {"student", "teacher"}
    code, out, _ = run_cli("adapt", "table", runs / "source", tmp_path / "fm", "--out", tmp_path / "table")
    assert code == 0 and "| FixMatch (matched, EMA teacher kept) |" in out
    code, _, err = run_cli("adapt", "train", "--source", "mnistm", "--target", "usps", "--method", "dann", "--final-weights", "teacher",
                           "--out", tmp_path / "no")
    assert code == 2 and "final_weights teacher needs method fixmatch" in err and not (tmp_path / "no").exists()


def test_table_counts_each_seed_folder_once_and_escapes_cells(run_cli, runs, tmp_path):
    """The same run given twice, or a run and its own seed folder, is one seed; a | in a name stays in its cell."""
    from diffadapt.apps.adaptation.table import collect, render

    once = collect([runs / "dann"])
    assert collect([runs / "dann", runs / "dann", runs / "dann" / "seed1", str(runs / "dann") + "/"]) == once
    markdown, _ = render({("DANN (a|b)", "MNIST-M -> x|y"): [0.5, 0.7]})
    header, _, row = markdown.splitlines()
    assert header == "| target accuracy | MNIST-M -> x\\|y |" and row.startswith("| DANN (a\\|b) | 0.600 ± ")
