"""The course's face UNet: strict key-for-key loading and the golden output."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffadapt.diffusion.course_unet import CourseFaceUNet, golden_weights, load_course_unet
from diffadapt.errors import InputError
from tests.conftest import shared_file


@pytest.fixture(scope="module")
def golden_file(tmp_path_factory):
    model = CourseFaceUNet()
    path = tmp_path_factory.mktemp("unet") / "UNet.pt"
    torch.save(golden_weights(model), path)
    return path


def test_every_key_of_keys_tsv_in_order_with_shapes():
    rows = [line.split("\t") for line in shared_file("course_face_unet", "keys.tsv").read_text().splitlines()[1:]]
    state = CourseFaceUNet().state_dict()
    assert [r[0] for r in rows] == list(state), "keys or their order differ"
    for key, shape, _kind in rows:
        assert "x".join(str(s) for s in state[key].shape) == shape, key
    buffers = {name for name, _ in CourseFaceUNet().named_buffers()}
    assert buffers == {r[0] for r in rows if r[2] == "buffer"}
    assert sum(p.numel() for p in CourseFaceUNet().parameters()) == 113_673_219


def test_golden_output(golden_file):
    golden = np.load(shared_file("course_face_unet", "golden_64.npz"))
    model = load_course_unet(golden_file)
    with torch.no_grad():
        y = model(torch.from_numpy(golden["x"]), torch.from_numpy(golden["t"])).numpy()
    relative = np.linalg.norm(y - golden["y"]) / np.linalg.norm(golden["y"])
    assert relative < 1e-4, relative


def test_extra_or_missing_keys_are_refused(tmp_path, golden_file):
    state = torch.load(golden_file, weights_only=True)
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "extra.pt")
    with pytest.raises(InputError, match="1 unexpected keys"):
        load_course_unet(tmp_path / "extra.pt")
    del state["extra.weight"], state["out.2.bias"]
    torch.save(state, tmp_path / "missing.pt")
    with pytest.raises(InputError, match="missing keys .e.g. out.2.bias"):
        load_course_unet(tmp_path / "missing.pt")


class NotATensor:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_code_is_never_run(tmp_path, capsys):
    torch.save({"w": NotATensor()}, tmp_path / "evil.pt")
    with pytest.raises(InputError, match="evil.pt"):
        load_course_unet(tmp_path / "evil.pt")
    assert "must never run" not in capsys.readouterr().out
