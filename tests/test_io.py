"""Weight and noise files: what a model's tensors never are is refused with one line, not a deep traceback."""

from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import save_file

from diffadapt.apps.faces.models import load_noise, load_noise_dir
from diffadapt.errors import InputError
from diffadapt.io import check_weight_tensors, load_state_dict_file, load_state_dict_strict, load_weights, read_json


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.complex64, torch.bool, torch.int32])
def test_safetensors_of_odd_dtypes_are_refused(tmp_path, dtype):
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.ones(3, 3).to(dtype)}, str(path))
    with pytest.raises(InputError, match="'w' is .*weights must be dense"):
        load_weights(path)


@pytest.mark.parametrize("make", [lambda: torch.ones(2, 2).to_sparse(), lambda: torch.ones(2, 2).to(torch.float8_e5m2)])
def test_pth_of_sparse_or_float8_tensors_is_refused(tmp_path, make):
    path = tmp_path / "Classifier.pth"
    torch.save({"state_dict": {"w": make()}}, path)
    with pytest.raises(InputError, match="weights must be dense"):
        load_state_dict_file(path, "classifier")


def test_integer_weights_for_a_float_layer_are_refused(tmp_path):
    layer = torch.nn.Linear(2, 2)
    weights = {k: v.to(torch.int64) if k == "weight" else v for k, v in layer.state_dict().items()}
    with pytest.raises(InputError, match=r"1 keys of the wrong type \(e.g. weight: torch.int64 vs torch.float32\)"):
        load_state_dict_strict(layer, weights, tmp_path / "model.safetensors")


@pytest.mark.parametrize(("make", "message"), [
    (lambda: torch.full((1, 3, 16, 16), 1e30), "standard Gaussian noise stays within"),
    (lambda: torch.randn(1, 3, 16, 16).to(torch.float8_e4m3fn), "dense float16, bfloat16, float32 or float64"),
    (lambda: torch.randn(1, 3, 16, 16).to_sparse(), "dense float16"),
])
def test_noise_files_that_are_not_gaussian_noise(tmp_path, make, message):
    path = tmp_path / "00.pt"
    torch.save(make(), path)
    with pytest.raises(InputError, match=message):
        load_noise(path)
    torch.save(torch.randn(1, 3, 16, 16), path)
    assert load_noise(path).shape == (1, 3, 16, 16)


def test_json_with_a_repeated_key_is_refused(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"model": {"base_channels": 32, "base_channels": 4096}}')
    with pytest.raises(InputError, match="'base_channels' appears twice"):
        read_json(path)
    path.write_text('{"a": {"x": 1}, "b": {"x": 2}}')
    assert read_json(path) == {"a": {"x": 1}, "b": {"x": 2}}


def test_meta_tensors_and_long_noise_names_are_refused(tmp_path):
    with pytest.raises(InputError, match="meta tensor"):
        check_weight_tensors({"w": torch.empty(2, device="meta")}, tmp_path / "model.safetensors")
    folder = tmp_path / "noise"
    folder.mkdir()
    torch.save(torch.randn(1, 3, 16, 16), folder / ("x" * 230 + ".pt"))
    with pytest.raises(InputError, match="at most 200 bytes"):
        load_noise_dir(folder)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_inputs_that_exist_but_are_not_files_say_so(tmp_path):
    os.mkfifo(tmp_path / "00.pt")
    (tmp_path / "01.pt").mkdir()
    with pytest.raises(InputError, match="is a device, pipe, socket or broken link, but a noise file is expected"):
        load_noise(tmp_path / "00.pt")
    with pytest.raises(InputError, match="is a folder, but a noise file is expected"):
        load_noise(tmp_path / "01.pt")
    with pytest.raises(InputError, match="noise file not found"):
        load_noise(tmp_path / "02.pt")
    with pytest.raises(InputError, match="is a folder, but a weights file is expected"):
        load_weights(tmp_path / "01.pt")


def test_a_run_config_that_is_not_a_file_says_so(tmp_path):
    from diffadapt.io import read_run_config

    (tmp_path / "folder_run" / "config.json").mkdir(parents=True)
    (tmp_path / "fifo_run").mkdir()
    os.mkfifo(tmp_path / "fifo_run" / "config.json")
    with pytest.raises(InputError, match="is a folder, but a run's config.json is expected"):
        read_run_config(tmp_path / "folder_run")
    with pytest.raises(InputError, match="is a device, pipe, socket or broken link"):
        read_run_config(tmp_path / "fifo_run")
    with pytest.raises(InputError, match="no config.json here: not a diffadapt run folder"):
        read_run_config(tmp_path)


def sparse_safetensors(path, shape, dtype="F32") -> None:
    """A well-formed safetensors file of one tensor "w" whose data is a hole (a sparse file: no disk used)."""
    import json
    import math
    import struct

    size = math.prod(shape) * {"F32": 4, "F16": 2}[dtype]
    header = json.dumps({"w": {"dtype": dtype, "shape": list(shape), "data_offsets": [0, size]}}).encode()
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
        handle.truncate(8 + len(header) + size)


def test_a_tensor_of_the_wrong_shape_is_refused_from_the_header(tmp_path, monkeypatch):
    """1 GiB declared for a 3-value layer: refused before any tensor is read."""
    import safetensors

    path = tmp_path / "model.safetensors"
    sparse_safetensors(path, (16384, 16384))
    reads = []
    original = safetensors.safe_open

    class Spy:
        def __init__(self, *args, **kwargs):
            self.inner = original(*args, **kwargs)

        def __enter__(self):
            handle = self.inner.__enter__()
            outer = self

            class Handle:
                def __getattr__(self, name):
                    return getattr(handle, name)

                def get_tensor(self, key):
                    reads.append(key)
                    return handle.get_tensor(key)

            outer.handle = Handle()
            return outer.handle

        def __exit__(self, *exc):
            return self.inner.__exit__(*exc)

    monkeypatch.setattr("diffadapt.io.safe_open", Spy)
    with torch.device("meta"):
        expected = {"w": torch.empty(3)}
    with pytest.raises(InputError, match=r"wrong shape \(e.g. w: \(16384, 16384\) vs \(3,\)\)"):
        load_weights(path, expected)
    with pytest.raises(InputError, match="1 missing keys"):
        load_weights(path, {**expected, "b": expected["w"]})
    assert reads == []
    # The same file read for a model it fits is read (the hole reads as zeros).
    assert load_weights(path, {"w": torch.empty(16384, 16384, device="meta")})[0]["w"].shape == (16384, 16384)
    assert reads == ["w"]


def test_a_header_declaring_more_than_any_model_is_refused(tmp_path):
    path = tmp_path / "model.safetensors"
    sparse_safetensors(path, (5, 2**30))  # 20 GiB declared, none on disk
    with pytest.raises(InputError, match=r"declares 20.0 GiB of tensors"):
        load_weights(path)


def test_a_run_whose_weights_declare_another_network_is_refused(run_cli, tmp_path):
    """A digit run or an adaptation run whose model.safetensors declares a 1 GiB tensor of the wrong shape:
    one line naming the file (that nothing is read first is the test above)."""
    import shutil
    from pathlib import Path

    import diffadapt

    assets = Path(diffadapt.__file__).parent / "assets"
    for asset, command in (("digits_default", ("digits", "grid", tmp_path / "grid.png", "--ckpt")),
                           ("adapt_usps", ("adapt", "tsne", "--out", tmp_path / "tsne"))):
        run = tmp_path / asset
        shutil.copytree(assets / asset, run)
        weights = next(run.rglob("model.safetensors"))
        sparse_safetensors(weights, (16384, 16384))
        code, _, err = run_cli(*command, run)
        assert code == 2 and "weights do not fit this model" in err and str(weights) in err, err
        assert len(err.strip().splitlines()) == 1
