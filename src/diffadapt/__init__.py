"""diffadapt: class-conditional diffusion, DDIM sampling and domain adaptation on small images.

The Python API (``diffadapt.load_digits``, ``load_faces``, ``train_adaptation``, ...) lives in
:mod:`diffadapt.api`; its names are importable from here and load on first use, so that the command line
starts fast.
"""

__version__ = "0.2.0"

API_NAMES = ("DigitModel", "FaceModel", "digits", "load_adaptation", "load_digits", "load_faces", "predict_labels", "predict_to_csv",
             "train_adaptation", "train_digits", "tsne")


def __getattr__(name: str):
    if name in API_NAMES:
        from diffadapt import api

        return getattr(api, name)
    raise AttributeError(f"module 'diffadapt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *API_NAMES])
