"""The Python API checks its arguments as the CLI does and names the argument (bad-input round three)."""

from __future__ import annotations

import numpy as np
import pytest

import diffadapt
from diffadapt.errors import InputError


@pytest.fixture(scope="module")
def model():
    return diffadapt.load_digits(device="cpu")


@pytest.mark.parametrize("kwargs, name", [
    ({"digits": 7, "n": 2.5}, "n"), ({"digits": 7, "n": True}, "n"), ({"digits": 7, "n": 0}, "n"),
    ({"digits": True}, "digits"), ({"digits": [1, False]}, "digits"), ({"digits": 10}, "digits"), ({"digits": "7"}, "digits"),
    ({"digits": []}, "digits"), ({"digits": 7, "seed": 1.5}, "seed"), ({"digits": 7, "seed": 2**70}, "seed"), ({"digits": 7, "seed": -1}, "seed"),
])
def test_generate_names_the_bad_argument(model, kwargs, name):
    with pytest.raises(InputError, match=f"^{name} "):
        model.generate(**kwargs)


def test_generate_takes_numpy_digits(model):
    images = model.generate(np.int64(3), n=1, steps=2, method="ddim")
    assert images.shape == (1, 28, 28, 3) and images.dtype == np.uint8
    assert model.generate(np.array([1, 2]), n=1, steps=2, method="ddim").shape == (2, 28, 28, 3)


def test_predict_labels_refuses_a_misspelt_option():
    run = diffadapt.load_adaptation(shipped="usps")
    images = np.zeros((4, 28, 28), np.uint8)
    with pytest.raises(InputError, match="normalisation"):
        diffadapt.predict_labels(run, images, normalisation="folders")
    with pytest.raises(InputError, match="adapt"):
        diffadapt.predict_labels(run, images, adapt="yes")
    with pytest.raises(InputError, match="adapt_settings.stepz"):
        diffadapt.predict_labels(run, np.zeros((40, 28, 28), np.uint8), adapt=True, adapt_settings={"stepz": 3})
    with pytest.raises(TypeError):
        diffadapt.predict_labels(run, images, normalise="folder")  # an unknown keyword
    assert diffadapt.predict_labels(run, images).shape == (4,)
