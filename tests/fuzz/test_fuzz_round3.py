"""Bad input, round three, fuzzed: checkpoints valid but not ours in shape, hostile statistics, random
arguments to the Python API.

The allowed outcomes are the same as everywhere in this suite: a valid result, or our one-line input error
(InputError in the API; exit status 2 and one stderr line from the CLI) naming what is wrong.
"""

from __future__ import annotations

import contextlib
import io
import shutil

import numpy as np
import pytest
import torch
from hypothesis import event, given
from hypothesis import strategies as st

from diffadapt.errors import InputError

# --- digit checkpoints of other class counts, channels and sizes --------------------------------------

COMMANDS = ("generate", "grid", "reverse", "eta-grid", "init-from")


def cli(*args) -> tuple[int, str]:
    """``diffadapt ARGS`` in-process: (exit code, stderr). Hypothesis cannot use pytest's per-test capsys."""
    from diffadapt.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:
            code = int(exit_.code or 0)
    return code, err.getvalue()


def digit_run(run_dir, num_classes, channels, size) -> None:
    from diffadapt.diffusion.checkpoint import DIGITS_KIND, save_checkpoint
    from diffadapt.diffusion.schedule import ScheduleConfig
    from diffadapt.diffusion.unet import ConditionalUNet
    from tests.diffusion.helpers import tiny_config

    config = tiny_config(channels, size, num_classes=num_classes)
    torch.manual_seed(0)
    document = {"kind": DIGITS_KIND, "model": config.to_dict(), "schedule": ScheduleConfig(20, 1e-3, 0.5).to_dict(),
                "sampling": {"method": "ddim", "steps": 2}, "step": 0}
    save_checkpoint(run_dir, document, ConditionalUNet(config).state_dict(), None)


@given(num_classes=st.one_of(st.none(), st.integers(1, 12)), channels=st.integers(1, 4), size=st.sampled_from([8, 16, 28]),
       command=st.sampled_from(COMMANDS), digit=st.integers(0, 9), data=st.sampled_from(["mnist", "mnistm"]))
def test_fuzz_digit_checkpoint_shapes(scratch, num_classes, channels, size, command, digit, data):
    """A checkpoint of any class count (or none), channel count and size: the command works or refuses it
    in one line, before writing anything. What a user expects must work: a gray or colour model that has
    every digit the command draws (a 5-class model draws digits 0-4), fine-tuned on data of its channels."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    run, out = scratch / "run", scratch / "out"
    digit_run(run, num_classes, channels, size)
    args = {
        "generate": ("digits", "generate", out, "--per-class", "1", "--steps", "2", "--ckpt", run),
        "grid": ("digits", "grid", out / "grid.png", "--steps", "2", "--ckpt", run),
        "reverse": ("digits", "reverse", out / "r.png", "--digit", digit, "--steps", "2", "--ckpt", run),
        "eta-grid": ("faces", "eta-grid", out / "eta.png", "--digit", digit, "--steps", "2", "--ckpt", run),
        "init-from": ("digits", "train", "--init-from", run, "--data", data, "--size", size, "--out", out, "--steps", "1",
                      "--batch-size", "4", "--no-progress"),
    }[command]
    code, err = cli(*args)
    event(f"{command}: exit {code}")
    drawn = digit + 1 if command in ("reverse", "eta-grid") else 10
    supported = num_classes is not None and num_classes >= drawn and channels in (1, 3)
    if command == "init-from":
        supported = num_classes == 10 and channels == (1 if data == "mnist" else 3)
    assert code == 0 or not supported, (num_classes, channels, size, command, err)
    if code == 0:
        assert out.exists()
        return
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (num_classes, channels, size, command, err)
    assert not out.exists(), f"{command} refused but wrote {out}"


# --- statistics stored in run folders ----------------------------------------------------------------

ODD_FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 1), st.sampled_from([0.0, 1e-30, 1e-3, 1.0, 1e30]))
ODD_VALUES = st.one_of(ODD_FLOATS, st.integers(-10, 10), st.text(max_size=3), st.none(), st.booleans())


@given(st.one_of(
    st.fixed_dictionaries({"mean": st.lists(st.floats(0, 1), min_size=3, max_size=3), "std": st.lists(st.floats(1e-3, 1), min_size=3, max_size=3)}),
    st.fixed_dictionaries({"mean": st.lists(st.floats(0, 1), min_size=3, max_size=3),
                           "std": st.lists(st.one_of(st.floats(1e-3, 1), ODD_FLOATS), min_size=3, max_size=3)}),
    st.fixed_dictionaries({"mean": st.lists(ODD_FLOATS, min_size=3, max_size=3), "std": st.lists(ODD_FLOATS, min_size=3, max_size=3)}),
    st.fixed_dictionaries({"mean": st.lists(ODD_VALUES, max_size=4), "std": st.one_of(st.lists(ODD_VALUES, max_size=4), ODD_VALUES)}),
    st.dictionaries(st.text(max_size=4), ODD_VALUES, max_size=3),
    ODD_VALUES,
))
def test_fuzz_domain_statistics(stats):
    """A run's normalisation statistics: refused naming them, or they normalise every image to finite values
    of bounded size (no input is blown up to one label)."""
    from diffadapt.adapt.stats import DomainStats, normalise

    try:
        loaded = DomainStats.from_dict(stats, 3, "run/config.json")
    except InputError as exc:
        assert "domain statistics" in str(exc) and "run/config.json" in str(exc)
        event("refused")
        return
    event("accepted")
    images = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 4, 4)
    normalised = normalise(images, loaded)
    assert bool(torch.isfinite(normalised).all()) and float(normalised.abs().max()) <= 1000.0 + 1e-3


@st.composite
def covariances(draw, dim):
    kind = draw(st.sampled_from(["psd", "scaled", "asymmetric", "negative", "odd"]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((dim, dim))
    sigma = a @ a.T / dim
    if kind == "scaled":
        sigma = sigma * draw(st.sampled_from([1e-30, 1e-6, 1e6, 1e12, 1e200]))
    elif kind == "asymmetric":
        sigma = sigma + np.triu(rng.standard_normal((dim, dim)), 1) * draw(st.sampled_from([1e-12, 1e-3, 1.0]))
    elif kind == "negative":
        sigma = sigma - np.eye(dim) * draw(st.sampled_from([1e-9, 0.5, 100.0]))
    elif kind == "odd":
        sigma = sigma.copy()
        sigma[draw(st.integers(0, dim - 1)), draw(st.integers(0, dim - 1))] = draw(ODD_FLOATS)
    return sigma


@given(mu_scale=st.sampled_from([0.0, 1.0, 1e3, 1e8, 1e200]), mu_odd=st.one_of(st.none(), ODD_FLOATS), sigma=covariances(128),
       seed=st.integers(0, 2**16))
def test_fuzz_judge_statistics(mu_scale, mu_odd, sigma, seed):
    """A judge's real.mu / real.sigma: refused naming the file and the tensor, or every Fréchet distance
    against them is finite and >= 0 (or refused naming the file)."""
    from diffadapt.evaluate.frechet import feature_statistics, frechet_distance
    from diffadapt.evaluate.judge import check_real_statistics

    rng = np.random.default_rng(seed)
    mu = rng.standard_normal(128) * mu_scale
    if mu_odd is not None:
        mu[0] = mu_odd
    try:
        check_real_statistics(mu, sigma, "judge/model.safetensors")
    except InputError as exc:
        assert "judge/model.safetensors" in str(exc) and "real." in str(exc), str(exc)
        event("statistics refused")
        return
    generated = feature_statistics(rng.standard_normal((300, 128)))
    try:
        distance = frechet_distance(*generated, mu, sigma, source="judge/model.safetensors")
    except InputError as exc:
        assert "judge/model.safetensors" in str(exc)
        event("distance refused")
        return
    event("distance measured")
    assert np.isfinite(distance) and distance >= 0


# --- the Python API with random arguments ------------------------------------------------------------

ANY_ARGUMENT = st.one_of(
    st.integers(-3, 12), st.integers(2**31 - 2, 2**70), st.floats(allow_nan=True), st.booleans(), st.none(), st.text(max_size=3),
    st.lists(st.integers(-1, 11), max_size=3), st.just(np.int64(3)), st.just(np.bool_(True)), st.just(np.array([1, 2])),
    st.just(np.float32(2.0)), st.just({"a": 1}),
)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import diffadapt

    run = tmp_path_factory.mktemp("api") / "run"
    digit_run(run, 10, 3, 8)
    return diffadapt.load_digits(run, device="cpu", precision="fp32")


def mostly(valid):
    """Valid values three times in four, so that the rest of the arguments get checked too."""
    return st.one_of(valid, valid, valid, ANY_ARGUMENT)


@given(digits=mostly(st.one_of(st.integers(0, 9), st.lists(st.integers(0, 9), min_size=1, max_size=3))), n=mostly(st.integers(1, 3)),
       seed=mostly(st.integers(0, 2**31 - 1)), steps=mostly(st.one_of(st.none(), st.integers(1, 3))),
       eta=mostly(st.one_of(st.none(), st.floats(0, 1))))
def test_fuzz_generate_arguments(tiny_model, digits, n, seed, steps, eta):
    """``DigitModel.generate`` with any values: images of the right shape, or an error naming the argument."""
    if isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_)) and n > 12:
        n = 12  # the count of images is checked against 100,000, but this test must stay fast
    try:
        images = tiny_model.generate(digits, n=n, seed=seed, steps=steps, eta=eta, method="ddim")
    except (InputError, TypeError, ValueError) as exc:
        named = [name for name in ("digits", "n", "seed", "steps", "eta") if str(exc).startswith((name + " ", name + ":"))]
        assert named, f"{type(exc).__name__}: {exc}"
        event(f"refused naming {named[0]}")
        return
    event("images")
    count = 1 if np.ndim(digits) == 0 else len(digits)
    assert images.shape == (count * n, 8, 8, 3) and images.dtype == np.uint8


@given(normalisation=mostly(st.sampled_from(["target", "folder"])), adapt=mostly(st.just(False)), device=mostly(st.just("cpu")),
       progress=mostly(st.booleans()),
       extra=st.one_of(st.none(), st.sampled_from(["normalise", "adapt_steps", "seed"])))
def test_fuzz_predict_labels_arguments(normalisation, adapt, device, progress, extra):
    """``predict_labels`` with any option values or a stray keyword: labels, or an error naming the argument."""
    import diffadapt

    run = shipped_usps()
    images = np.zeros((32, 16, 16), np.uint8)
    kwargs = {"normalisation": normalisation, "adapt": adapt, "device": device, "progress": progress}
    if extra:
        kwargs[extra] = 1
    if adapt is True:
        kwargs["adapt_settings"] = {"steps": 1, "batch_size": 32}
    try:
        labels = diffadapt.predict_labels(run, images, **kwargs)
    except (InputError, TypeError, ValueError) as exc:
        named = [name for name in (*kwargs, "adapt_settings") if str(exc).startswith((name + " ", name + ":", f"unknown {name}"))
                 or f"argument '{name}'" in str(exc) or f"keyword argument '{name}'" in str(exc)]
        assert named, f"{type(exc).__name__}: {exc}"
        event(f"refused naming {named[0]}")
        return
    event("labels")
    assert labels.shape == (32,) and set(np.unique(labels)) <= set(range(10))


_SHIPPED = {}


def shipped_usps():
    import diffadapt

    if "usps" not in _SHIPPED:
        _SHIPPED["usps"] = diffadapt.load_adaptation(shipped="usps")
    return _SHIPPED["usps"]
