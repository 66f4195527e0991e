"""Diffusers export: UNet2DModel computes our eps, the folder reads back bit for bit, bad folders are refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from diffadapt.apps.digits.export import export_diffusers
from diffadapt.apps.digits.generate import initial_noise, sample_digits
from diffadapt.diffusion import diffusers_format as fmt
from diffadapt.diffusion.checkpoint import DIGITS_KIND, FACES_KIND, save_checkpoint
from diffadapt.diffusion.models import load_model
from diffadapt.diffusion.schedule import LinearSchedule, ScheduleConfig
from diffadapt.diffusion.unet import ConditionalUNet, UNetConfig
from diffadapt.errors import InputError
from diffadapt.io import load_weights, save_weights

TINY = UNetConfig(image_size=16, in_channels=1, base_channels=16, channel_mults=(1, 2), num_res_blocks=1,
                  attention_levels=(1,), num_classes=3, norm_groups=8)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """The shipped checkpoint as a diffusers folder."""
    return export_diffusers(None, tmp_path_factory.mktemp("export") / "digits-diffusers")


@pytest.fixture(scope="module")
def original():
    return load_model(None, precision="fp32")


@pytest.fixture(scope="module")
def back(exported):
    return load_model(exported, precision="fp32")


def random_model(config: UNetConfig, seed: int = 0) -> ConditionalUNet:
    """Every weight random and non-zero (conv_out starts at zero, which would hide any mapping error)."""
    torch.manual_seed(seed)
    model = ConditionalUNet(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    return model


def tiny_run(run_dir: Path, config: UNetConfig = TINY) -> ConditionalUNet:
    model = random_model(config)
    kind = DIGITS_KIND if config.num_classes else FACES_KIND
    document = {"kind": kind, "model": config.to_dict(), "schedule": ScheduleConfig(100, 1e-3, 0.2).to_dict(),
                "sampling": {"method": "dpmpp-2m", "steps": 7, "guidance": 2.5}, "step": 3}
    save_checkpoint(run_dir, document, model.state_dict(), None)
    return model


def inputs(config: UNetConfig, batch: int = 6, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, config.in_channels, config.image_size, config.image_size, generator=g)
    t = torch.tensor([0, 1, 17, 49, 99, 3][:batch])
    labels = None
    if config.num_classes:
        labels = torch.arange(batch) % (config.num_classes + 1)  # every class and the null class
    return x, t, labels


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


# --- (1) diffusers computes what we compute -------------------------------------------------------------


def test_diffusers_unet2dmodel_predicts_our_eps_for_the_shipped_model(exported, original):
    diffusers = pytest.importorskip("diffusers")
    ours = original.model
    theirs = diffusers.UNet2DModel.from_pretrained(exported / "unet").eval()
    assert theirs.dtype == torch.float32 and theirs.config.num_class_embeds == 11
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, 28, 28, generator=g)
    t = torch.tensor([0, 1, 100, 250, 499, 37])
    labels = torch.tensor([0, 3, 9, 10, 5, 10])  # 10: the null class
    with torch.no_grad():
        expected = ours(x, t, labels)
        got = theirs(x, t, class_labels=labels).sample
    assert max_diff(expected, got) < 1e-5  # measured 1.2e-6 (|eps| up to 4.6)

    # The pipeline folder is one diffusers recognises, and its scheduler is our schedule.
    pipeline = diffusers.DDPMPipeline.from_pretrained(exported)
    assert isinstance(pipeline.unet, diffusers.UNet2DModel)
    assert isinstance(pipeline.scheduler, diffusers.DDPMScheduler)
    ours_schedule = LinearSchedule(ScheduleConfig(500, 1e-4, 0.02))
    assert pipeline.scheduler.config.prediction_type == "epsilon"
    assert torch.allclose(pipeline.scheduler.alphas_cumprod.double(), ours_schedule.alpha_bars, rtol=1e-5, atol=1e-7)


def test_tiny_random_models_match_diffusers(tmp_path):
    diffusers = pytest.importorskip("diffusers")
    for config in (TINY, UNetConfig(**{**TINY.to_dict(), "num_classes": None, "in_channels": 3})):
        model = random_model(config)
        document, state = fmt.to_diffusers(config, model.state_dict())
        folder = tmp_path / f"unet-{config.num_classes}"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(document))
        save_weights(folder / fmt.WEIGHTS_NAME, state, {"format": "pt"})
        theirs = diffusers.UNet2DModel.from_pretrained(folder).eval()
        x, t, labels = inputs(config)
        with torch.no_grad():
            assert max_diff(model(x, t, labels), theirs(x, t, class_labels=labels).sample) < 1e-5


# --- (2) the round trip ---------------------------------------------------------------------------------


def test_exported_folder_loads_back_bit_for_bit(exported, original, back):
    assert back.model_config == original.model_config
    assert back.schedule.config == original.schedule.config
    assert back.defaults == original.defaults  # diffadapt_sampling.json: the shipped sampler, guidance and interval
    a, b = original.model.state_dict(), back.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert back.config["kind"] == DIGITS_KIND and back.config["source"] == "diffusers folder"
    assert set(original.config) >= {"kind", "model", "schedule", "sampling"}
    assert back.config["model"] == original.model_config.to_dict()
    # float16 on disk (the shipped weights are float16 values): half the size, not one bit lost.
    weights, metadata = load_weights(exported / "unet" / fmt.WEIGHTS_NAME)
    assert {v.dtype for v in weights.values()} == {torch.float16} and metadata["format"] == "pt"
    # The UNet folder and its weights file name the same model.
    assert torch.equal(load_model(exported / "unet").model.conv_out.weight, a["conv_out.weight"])
    assert torch.equal(load_model(exported / "unet" / fmt.WEIGHTS_NAME).model.conv_in.bias, a["conv_in.bias"])


@pytest.mark.parametrize("method", ["ddim", "dpmpp-2m"])
def test_sampling_the_exported_folder_gives_the_same_images(original, back, method):
    labels = torch.tensor([7, 3])
    x_T = initial_noise(len(labels), (3, 28, 28), seed=5)
    images = [sample_digits(m, labels, x_T, m.sampler(method, steps=3), m.guidance(), seed=5, progress=False) for m in (original, back)]
    assert original.guidance().scale == back.guidance().scale == original.config["sampling"]["guidance"]
    assert max_diff(*images) <= 1e-5  # measured 0: the very same weights and code


def test_tiny_config_round_trips(tmp_path):
    for config in (TINY, UNetConfig(**{**TINY.to_dict(), "num_res_blocks": 2, "dropout": 0.1})):
        model = random_model(config)
        document, state = fmt.to_diffusers(config, model.state_dict())
        assert document["down_block_types"] == ["DownBlock2D", "AttnDownBlock2D"]
        assert document["up_block_types"] == ["AttnUpBlock2D", "UpBlock2D"]
        back_config, back = fmt.from_diffusers(document, state, "mem")
        assert back_config == config
        assert all(torch.equal(back[k], v) for k, v in model.state_dict().items())

    # Through the files: a run folder -> export -> load_model, random (not float16-exact) weights stay float32.
    model = tiny_run(tmp_path / "run")
    out = export_diffusers(tmp_path / "run", tmp_path / "out")
    weights, _ = load_weights(out / "unet" / fmt.WEIGHTS_NAME)
    assert {v.dtype for v in weights.values()} == {torch.float32}
    loaded = load_model(out)
    assert loaded.model_config == TINY and loaded.schedule.config == ScheduleConfig(100, 1e-3, 0.2)
    assert loaded.defaults.method == "dpmpp-2m" and loaded.defaults.guidance == 2.5
    x, t, labels = inputs(TINY)
    with torch.no_grad():
        assert torch.equal(loaded.model(x, t, labels), model(x, t, labels))
    with pytest.raises(InputError, match="not empty"):
        export_diffusers(tmp_path / "run", out)
    assert export_diffusers(tmp_path / "run", out, overwrite=True) == out

    # Without diffadapt_sampling.json the defaults are ours; an unconditional folder is a faces model.
    (out / fmt.SAMPLING_FILE).unlink()
    assert load_model(out).defaults.method == "ddim"
    unconditional = UNetConfig(**{**TINY.to_dict(), "num_classes": None})
    document, state = fmt.to_diffusers(unconditional, random_model(unconditional).state_dict())
    (out / "unet" / "config.json").write_text(json.dumps(document))
    save_weights(out / "unet" / fmt.WEIGHTS_NAME, state, {})
    assert load_model(out, kind=FACES_KIND).model_config == unconditional
    with pytest.raises(InputError, match="expected a diffadapt/conditional-ddpm model"):
        load_model(out)


# --- (3) what cannot be exact is refused ----------------------------------------------------------------


@pytest.mark.parametrize("overrides, message", [
    ({"patch_size": 2}, "patch_size 2"),
    ({"base_channels": 24, "norm_groups": 16}, "GroupNorm counts"),  # 24 -> 8 groups, 48 -> 16
])
def test_unrepresentable_models_are_refused_on_export(overrides, message):
    config = UNetConfig(**{**TINY.to_dict(), **overrides})
    with pytest.raises(InputError, match=message):
        fmt.to_diffusers(config, ConditionalUNet(config).state_dict())


def test_exporting_a_patch_model_names_the_checkpoint(tmp_path):
    tiny_run(tmp_path / "run", UNetConfig(**{**TINY.to_dict(), "patch_size": 2}))
    with pytest.raises(InputError, match="patch_size") as error:
        export_diffusers(tmp_path / "run", tmp_path / "out")
    assert str(tmp_path / "run" / "config.json") in str(error.value) and not (tmp_path / "out").exists()


@pytest.fixture
def folder(tmp_path) -> Path:
    tiny_run(tmp_path / "run")
    return export_diffusers(tmp_path / "run", tmp_path / "out")


def edit_json(path: Path, **changes) -> None:
    document = json.loads(path.read_text())
    document.update(changes)
    path.write_text(json.dumps(document))


UNET_CONFIG_EDITS = [
    ({"in_channels": 4}, "in_channels 4 != out_channels 1"),  # a patch-like input (C p^2 channels)
    ({"sample_size": 15}, "cannot be halved"),
    ({"attention_head_dim": 8}, "several heads"),
    ({"flip_sin_to_cos": True}, "flip_sin_to_cos"),
    ({"resnet_time_scale_shift": "scale_shift"}, "resnet_time_scale_shift"),
    ({"up_block_types": ["UpBlock2D", "UpBlock2D"]}, "attention on one side only"),
    ({"down_block_types": ["CrossAttnDownBlock2D", "AttnDownBlock2D"]}, "only \\(Attn\\)DownBlock2D"),
    ({"block_out_channels": "wide"}, "block_out_channels"),
    ({"block_out_channels": [16, 24]}, "multiple of the first"),
    ({"norm_num_groups": 32}, "norm_num_groups 32"),
    ({"num_class_embeds": 1}, "num_class_embeds"),
    ({"class_embed_type": "timestep"}, "class_embed_type"),
    ({"cross_attention_dim": 64}, "unknown UNet2DModel setting"),
    ({"_class_name": "UNet2DConditionModel"}, "only a diffusers UNet2DModel"),
]


@pytest.mark.parametrize("changes, message", UNET_CONFIG_EDITS)
def test_unet_configs_outside_the_mapping_are_refused(folder, changes, message):
    config = folder / "unet" / "config.json"
    edit_json(config, **changes)
    with pytest.raises(InputError, match=message) as error:
        load_model(folder)
    assert str(config) in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("changes, message", [
    ({"beta_schedule": "scaled_linear"}, "only 'linear' betas"),
    ({"beta_schedule": "squaredcos_cap_v2"}, "only 'linear' betas"),
    ({"prediction_type": "v_prediction"}, "only 'epsilon'"),
    ({"trained_betas": [0.1, 0.2]}, "trained_betas"),
    ({"rescale_betas_zero_snr": True}, "rescale_betas_zero_snr"),
    ({"beta_start": 0.5, "beta_end": 0.1}, "must not exceed"),
])
def test_scheduler_configs_outside_the_mapping_are_refused(folder, changes, message):
    config = folder / "scheduler" / "scheduler_config.json"
    edit_json(config, **changes)
    with pytest.raises(InputError, match=message) as error:
        load_model(folder)
    assert str(config) in str(error.value)


def test_damaged_folders_are_refused_with_the_file_named(folder):
    unet = folder / "unet"
    weights, _ = load_weights(unet / fmt.WEIGHTS_NAME)

    # Wrong keys: a renamed tensor, then a tensor of the wrong shape.
    renamed = {("mid_block.attentions.0.query.weight" if k == "mid_block.attentions.0.to_q.weight" else k): v for k, v in weights.items()}
    save_weights(unet / fmt.WEIGHTS_NAME, renamed, {})
    with pytest.raises(InputError, match="1 missing keys .*to_q.weight.*1 unexpected keys") as error:
        load_model(folder)
    assert str(unet / fmt.WEIGHTS_NAME) in str(error.value)
    save_weights(unet / fmt.WEIGHTS_NAME, {**weights, "conv_in.weight": torch.zeros(16, 4, 3, 3)}, {})
    with pytest.raises(InputError, match="wrong shape.*conv_in.weight"):
        load_model(folder)

    # No weights, no scheduler, a config that is not an object, not JSON at all, no unet/config.json.
    (unet / fmt.WEIGHTS_NAME).unlink()
    with pytest.raises(InputError, match="no diffusion_pytorch_model.safetensors"):
        load_model(folder)
    save_weights(unet / fmt.WEIGHTS_NAME, weights, {})
    shutil.rmtree(folder / "scheduler")
    with pytest.raises(InputError, match="no scheduler config"):
        load_model(folder)
    (unet / "config.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="must be a JSON object") as error:
        load_model(folder)
    assert str(unet / "config.json") in str(error.value)
    (unet / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_model(folder)
    (unet / "config.json").unlink()
    assert not fmt.is_diffusers_folder(folder)
    with pytest.raises(InputError, match="not a diffadapt run folder"):
        load_model(folder)


def test_is_diffusers_folder(folder, tmp_path):
    assert fmt.is_diffusers_folder(folder) and fmt.is_diffusers_folder(folder / "unet")
    assert not fmt.is_diffusers_folder(tmp_path / "run")  # our own run folder
    assert not fmt.is_diffusers_folder(folder / "scheduler")
    assert not fmt.is_diffusers_folder(folder / fmt.MODEL_INDEX)
    assert not fmt.is_diffusers_folder(tmp_path / "nowhere")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{oops")
    assert not fmt.is_diffusers_folder(tmp_path / "bad")
