"""Fuzzing the readers of the toolkit's own files: safetensors weights, config.json, noise .pt.

These files come from users too (a downloaded checkpoint, a hand-edited config, a course noise folder),
so they get the same treatment: mutated bytes of small valid files and fully random bytes, plus
structure-aware cases (a safetensors header of random JSON, random JSON documents, torch.save of odd objects).
"""

from __future__ import annotations

import io
import json
import math
import struct

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import save

from diffadapt.apps.faces.models import MAX_NOISE_SIDE, load_noise
from diffadapt.errors import InputError
from diffadapt.io import load_weights, read_json, read_run_config
from tests.fuzz.mutate import file_bytes, mutated, outcome

_generator = torch.Generator().manual_seed(0)

# --- safetensors -----------------------------------------------------------------------------------------

SAFETENSORS_SEED = save({"conv.weight": torch.randn(2, 3, generator=_generator), "step": torch.tensor([7], dtype=torch.int64),
                         "half": torch.ones(4, dtype=torch.float16)}, metadata={"kind": "adapt", "format": "1"})

_JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
                          st.text(max_size=8))
_JSON = st.recursive(_JSON_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                     max_leaves=12)
_TENSOR_ENTRY = st.fixed_dictionaries({
    "dtype": st.sampled_from(["F32", "F16", "BF16", "F64", "I64", "I32", "U8", "BOOL", "F8_E4M3", "C64", "X"]),
    "shape": st.lists(st.sampled_from([0, 1, 2, 3, 2**31, 2**63 - 1, -1]), max_size=3),
    "data_offsets": st.lists(st.sampled_from([0, 1, 4, 8, 24, 2**40, -1]), min_size=0, max_size=3),
})


@st.composite
def safetensors_files(draw) -> bytes:
    if draw(st.booleans()):
        return draw(file_bytes(SAFETENSORS_SEED))
    # A header of random JSON (or random tensor entries) over random data: the header parser's cases.
    header = draw(st.one_of(_JSON, st.dictionaries(st.sampled_from(["a", "b", "__metadata__"]), st.one_of(_TENSOR_ENTRY, _JSON), max_size=3)))
    text = json.dumps(header).encode()
    length = draw(st.one_of(st.just(len(text)), st.sampled_from([0, 1, len(text) + 5, 2**32, 2**63 - 1])))
    return struct.pack("<Q", length) + text + draw(st.binary(max_size=64))


@given(data=safetensors_files())
def test_fuzz_load_weights(scratch, data):
    path = scratch / "model.safetensors"
    path.write_bytes(data)
    loaded = outcome(lambda: load_weights(path))
    if loaded is not None:
        tensors, metadata = loaded
        assert all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in tensors.items())
        assert all(bool(torch.isfinite(v).all()) for v in tensors.values() if v.is_floating_point())
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())


# --- config.json -----------------------------------------------------------------------------------------

CONFIG_SEED = json.dumps({"kind": "adapt", "format": 1, "config": {"method": "dann", "lr": 0.001, "epochs": 3, "seeds": [0, 1]},
                          "source": {"spec": "mnistm", "stats": {"mean": [0.5, 0.4, 0.3]}}}, indent=2).encode()
_ODD_JSON = st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"[" * 100_000, b"\xef\xbb\xbf{}", b'"\\ud800"',
                             b"1" * 5000, b"{}" * 2, b"", b"\x00", b'{"a": 1e999}', b'{"a": NaN}', b'{"a": 1, "a": 2}'])


def _finite(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


@given(data=st.one_of(file_bytes(CONFIG_SEED), _ODD_JSON, _JSON.map(lambda d: json.dumps(d).encode())))
def test_fuzz_read_json(scratch, data):
    run = scratch / "run"
    run.mkdir(exist_ok=True)
    (run / "config.json").write_bytes(data)
    document = outcome(lambda: read_json(run / "config.json"))
    if document is not None:
        assert _finite(document), "a non-finite number came out of a JSON file"
    config = outcome(lambda: read_run_config(run))
    if config is not None:
        assert isinstance(config, dict)


def test_read_json_names_the_row_of_a_byte_that_is_not_utf8(scratch):
    path = scratch / "config.json"
    path.write_bytes(b'{\n  "kind": "adapt",\n  "title": "\xff"\n}')
    with pytest.raises(InputError, match=r"not UTF-8 text \(byte 0xff\); a JSON config is UTF-8") as error:
        read_json(path)
    assert str(path) in str(error.value) and "row 3" in str(error.value)
    path.write_bytes(b'\xef\xbb\xbf{"kind": "adapt"}')  # a byte-order mark, as some Windows editors write it
    assert read_json(path) == {"kind": "adapt"}


# --- noise .pt -------------------------------------------------------------------------------------------

def _torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


NOISE_SEEDS = (_torch_bytes(torch.randn(1, 3, 8, 8, generator=_generator)), _torch_bytes(torch.randn(3, 8, 8, generator=_generator)))
_ODD_OBJECTS = st.one_of(
    st.builds(lambda shape, dtype: torch.zeros(shape, dtype=dtype),
              st.sampled_from([(1, 3, 8, 8), (3, 8, 8), (1, 3, 4, 4), (1, 3, 8, 2000), (2, 3, 8, 8), (1, 1, 8, 8), (3, 8), ()]),
              st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.bool, torch.complex64, torch.uint8])),
    st.builds(lambda value: torch.full((1, 3, 8, 8), value), st.sampled_from([math.nan, math.inf, -math.inf, 1e38])),
    st.sampled_from([{"noise": torch.zeros(1, 3, 8, 8)}, [torch.zeros(3, 8, 8)], 3, "noise", None, (1, 2)]),
)


@st.composite
def noise_files(draw) -> bytes:
    if draw(st.booleans()):
        return draw(file_bytes(*NOISE_SEEDS))
    data = _torch_bytes(draw(_ODD_OBJECTS))
    return draw(mutated(data)) if draw(st.integers(0, 3)) == 0 else data


@given(data=noise_files())
def test_fuzz_load_noise(scratch, data):
    path = scratch / "noise.pt"
    path.write_bytes(data)
    noise = outcome(lambda: load_noise(path))
    if noise is not None:
        assert isinstance(noise, torch.Tensor) and noise.dtype == torch.float32
        assert noise.ndim == 4 and noise.shape[:2] == (1, 3) and 8 <= min(noise.shape[2:]) <= max(noise.shape[2:]) <= MAX_NOISE_SIDE
        assert bool(torch.isfinite(noise).all())
