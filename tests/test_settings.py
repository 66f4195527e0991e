"""Configs check their own fields; a bad checkpoint config is one line naming the file and the field."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from diffadapt.diffusion.models import default_digits_checkpoint, load_model
from diffadapt.diffusion.sampler import SamplerConfig
from diffadapt.diffusion.schedule import ScheduleConfig
from diffadapt.diffusion.train import TrainConfig
from diffadapt.diffusion.unet import UNetConfig
from diffadapt.errors import InputError


@pytest.mark.parametrize("make, field", [
    (lambda: ScheduleConfig(beta_end=2.0), "beta_end"),
    (lambda: ScheduleConfig(beta_start=0.5, beta_end=0.1), "beta_start"),
    (lambda: ScheduleConfig(num_timesteps=0), "num_timesteps"),
    (lambda: SamplerConfig(steps=0), "steps"),
    (lambda: SamplerConfig(eta=math.nan), "eta"),
    (lambda: SamplerConfig(method="euler"), "method"),
    (lambda: TrainConfig(epochs=-2), "epochs"),
    (lambda: TrainConfig(batch_size=0), "batch_size"),
    (lambda: TrainConfig(lr=math.inf), "lr"),
    (lambda: TrainConfig(steps=True), "steps"),
    (lambda: UNetConfig(base_channels="wide"), "base_channels"),
    (lambda: UNetConfig(patch_size=3), "patch size 3"),
])
def test_fields_are_checked_on_construction(make, field):
    with pytest.raises(InputError, match=field):
        make()


def bad_copy(tmp_path, change):
    run = tmp_path / "run"
    shutil.copytree(default_digits_checkpoint(), run)
    config = json.loads((run / "config.json").read_text())
    config = change(config)
    (run / "config.json").write_text(json.dumps(config))
    return run


@pytest.mark.parametrize("change, message", [
    (lambda c: {k: v for k, v in c.items() if k != "model"}, "no 'model' section"),
    (lambda c: {k: v for k, v in c.items() if k != "schedule"}, "no 'schedule' section"),
    (lambda c: {**c, "model": {**c["model"], "base_channels": "32"}}, "model.base_channels: expected a whole number"),
    (lambda c: {**c, "schedule": {**c["schedule"], "beta_end": 2}}, "schedule.beta_end: must be below 1"),
    (lambda c: {**c, "sampling": {**c["sampling"], "method": "euler"}}, "sampling.method"),
    (lambda c: {**c, "model": [1, 2]}, "model must be an object"),
    (lambda c: [c], "config must be a JSON object"),
])
def test_bad_checkpoint_config_names_file_and_field(tmp_path, change, message):
    run = bad_copy(tmp_path, change)
    with pytest.raises(InputError, match=message) as info:
        load_model(run)
    assert str(run / "config.json") in str(info.value) and "\n" not in str(info.value)


def test_cli_options_take_defaults_and_choices_from_the_configs(run_cli):
    code, out, _ = run_cli("digits", "train", "--help")
    assert code == 0
    assert f"(default: {TrainConfig.__dataclass_fields__['lr'].default:g})" in " ".join(out.split())
    code, out, _ = run_cli("digits", "generate", "--help")
    out = " ".join(out.split())
    assert "dpmpp-2m" in out and "unipc" in out and "the shipped model's is" in out


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "steps"), (["--guidance", "nan"], "guidance"), (["--eta", "nan"], "eta"), (["--eta", "inf"], "eta"),
    (["--batch-size", "0"], "batch-size"), (["--steps", "99999"], "steps"),
])
def test_generate_refuses_bad_numbers_before_any_work(run_cli, tmp_path, args, message):
    code, _, err = run_cli("digits", "generate", tmp_path / "out", "--per-class", "1", *args)
    assert code == 2 and message in err and err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_a_unique_list_refuses_a_repeat_however_the_config_is_built():
    from diffadapt.apps.report.config import AdaptPart, ReportConfig

    with pytest.raises(InputError, match="parts: 'data' is listed twice"):
        ReportConfig(parts=("data", "digits", "data"))
    with pytest.raises(InputError, match="methods: 'dann' is listed twice"):
        AdaptPart(methods=["dann", "dann"])
    assert ReportConfig(parts=("digits",)).parts == ("digits",)


def test_range_errors_show_whole_numbers_in_full(tmp_path):
    from diffadapt.apps.report.config import load_report_config

    path = tmp_path / "report.toml"
    path.write_text("seed = 2147483648\n")
    with pytest.raises(InputError, match=r"seed: must be below 2147483648, got 2147483648$"):
        load_report_config(path)
