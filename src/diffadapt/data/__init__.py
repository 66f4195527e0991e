"""Data layer: readers of every digit format, the embedded default domains, and in-memory serving."""

from diffadapt.data.domains import guess_domain
from diffadapt.data.embedded import EMBEDDED_DOMAINS, load_embedded
from diffadapt.data.memory import TensorImages
from diffadapt.data.sources import read_source, train_val
from diffadapt.data.types import NUM_CLASSES, UNLABELLED, DigitSet, concat

__all__ = [
    "EMBEDDED_DOMAINS",
    "NUM_CLASSES",
    "UNLABELLED",
    "DigitSet",
    "TensorImages",
    "concat",
    "guess_domain",
    "load_embedded",
    "read_source",
    "train_val",
]
