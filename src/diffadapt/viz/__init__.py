"""Images and figures: conversions, PNG IO, labelled grids, plots, atomic output."""

from diffadapt.viz.atomic import atomic_dir, atomic_path, write_bytes_atomic, write_text_atomic
from diffadapt.viz.grid import image_grid, save_grid
from diffadapt.viz.images import (
    minmax_to_uint8,
    model_to_uint8,
    nchw_to_nhwc,
    nhwc_to_nchw,
    save_png,
    uint8_to_model,
)

__all__ = [
    "atomic_dir",
    "atomic_path",
    "image_grid",
    "minmax_to_uint8",
    "model_to_uint8",
    "nchw_to_nhwc",
    "nhwc_to_nchw",
    "save_grid",
    "save_png",
    "uint8_to_model",
    "write_bytes_atomic",
    "write_text_atomic",
]
