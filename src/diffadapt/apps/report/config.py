"""Report settings: the demo's (embedded data, small scale) or a TOML file naming real data.

``examples/report.toml`` in the repository is a commented example for the full-size report. Every field is
checked on load (types, ranges, choices); an unknown or bad setting is one line naming the file and the
setting.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from diffadapt.adapt.config import AdaptMethod, Recipe
from diffadapt.apps.digits.generate import GENERATION_BATCH_SIZE
from diffadapt.data.embedded import EMBEDDED_DOMAINS
from diffadapt.diffusion.sampling import SamplingSettings
from diffadapt.errors import InputError
from diffadapt.evaluate.accuracy_score import MAX_SCORE_SEEDS
from diffadapt.io import MAX_CONFIG_BYTES, SHIPPED, decode_utf8, read_bytes_limited
from diffadapt.settings import MAX_RUN_SEEDS, SEED_BOUNDS, Settings, described, number, short_repr

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Part = Literal["data", "digits", "ddim", "adapt"]


@dataclass
class DigitsPart(SamplingSettings):
    """The digits part: the sampling settings (method, steps, eta, spacing, clip_x0, guidance, guidance_interval;
    unset: the checkpoint's) and what to generate and score."""

    ckpt: str = described(SHIPPED, "digit run folder or diffusers folder; default: the shipped checkpoint")
    per_class: int = number(20, at_least=2, at_most=999, help="images per digit")
    classifier: str = described("", "the course's Classifier.pth; empty: no course accuracy")
    judge: str = described(SHIPPED, "judge run folder; default: the shipped MNIST-M judge")
    real: str = described("", "real labelled digits for the classification accuracy score; empty: none")
    score_seeds: tuple[int, ...] = described((0,), "seeds of the accuracy score's trainings", unique=True, count=(1, MAX_SCORE_SEEDS),
                                             each=SEED_BOUNDS)
    batch_size: int = number(GENERATION_BATCH_SIZE, at_least=1, at_most=100_000, help="images per forward pass")


@dataclass
class DDIMPart(Settings):
    ckpt: str = described(SHIPPED, "digit checkpoint used when no face UNet is given")
    digit: int = number(3, at_least=0, at_most=9, help="class drawn with a digit checkpoint")
    unet: str = described("", "course UNet.pt, a diffusers UNet2DModel folder or a faces run; empty: the digit checkpoint")
    noise_dir: str = described("", "folder of .pt noise files (with unet)")
    gt_dir: str = described("", "ground-truth images for the MSE (with unet)")
    steps: int | None = number(None, at_least=1, at_most=10_000, help="DDIM steps; None: 50 for a face UNet (graded), the digit figures' for a checkpoint")
    precision: Literal["fp32", "bf16", "auto"] = described("fp32", "arithmetic precision")


@dataclass
class AdaptPart(Settings):
    source: str = described("mnistm", "labelled source domain")
    targets: tuple[str, ...] = described(("usps", "svhn"), "target domains", unique=True, count=(1, None))
    methods: tuple[AdaptMethod, ...] = described(("source", "dann", "fixmatch", "target"), "methods and baselines, one row each", unique=True,
                                                 count=(1, None))
    recipe: Recipe = described("matched", "adaptation recipe")
    epochs: int = number(10, at_least=1, at_most=100_000, help="passes over the source's training split")
    batch_size: int = number(128, at_least=2, at_most=1 << 16, help="images per domain per step")
    seeds: tuple[int, ...] = described((0,), "one run per seed", unique=True, count=(1, MAX_RUN_SEEDS), each=SEED_BOUNDS)
    tsne_per_domain: int = number(500, at_least=10, at_most=100_000, help="val images per domain in the t-SNE")
    runs: tuple[str, ...] = described((), "trained run folders to show instead of training", unique=True)


@dataclass
class ReportConfig(Settings):
    title: str = described("diffadapt report", "page title")
    seed: int = number(0, **SEED_BOUNDS, help="fixes every part")
    device: str = described("auto", "auto, cpu, cuda, cuda:N")
    digits: DigitsPart = field(default_factory=DigitsPart)
    ddim: DDIMPart = field(default_factory=DDIMPart)
    adapt: AdaptPart = field(default_factory=AdaptPart)
    parts: tuple[Part, ...] = described(("data", "digits", "ddim", "adapt"), "parts to run, in order", unique=True, count=(1, None))
    data_sources: tuple[str, ...] = described((), "sources shown in the data part; empty: the adaptation source and targets",
                                                unique=True)

    def validate(self) -> None:
        # The title goes into the page's <title> and <h1>: HTML is escaped there, control characters would be sent raw.
        if any(ord(c) < 32 or ord(c) == 127 for c in self.title):
            raise InputError(f"title: must not hold control characters, got {short_repr(self.title)}")


def load_report_config(path: str | Path) -> ReportConfig:
    """A report TOML file (see ``examples/report.toml``); unknown settings are refused."""
    path = Path(path)
    text = decode_utf8(read_bytes_limited(path, "report config", MAX_CONFIG_BYTES), path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML ({exc})", path) from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise InputError("not valid TOML (nested too deeply)", path) from None
    sections = {"digits": DigitsPart, "ddim": DDIMPart, "adapt": AdaptPart}
    for name, cls in sections.items():
        if name in data:
            data[name] = cls.from_dict(data[name], path, name, ignore_unknown=False)
    return ReportConfig.from_dict(data, path, ignore_unknown=False)


def demo_config() -> ReportConfig:
    """The demo: embedded data, the shipped digit checkpoint, a scale that fits 2 CPU cores in minutes."""
    # 4 epochs at batch 64 (248 steps): the shortest run in which FixMatch led source-only on both embedded
    # pairs (benchmarks/RESULTS.md, "The demo's scale"); target-only is left to the full report for time.
    return ReportConfig(title="diffadapt demo on the embedded data", data_sources=EMBEDDED_DOMAINS,
                        digits=DigitsPart(real="mnistm"),
                        adapt=AdaptPart(methods=("source", "dann", "fixmatch"), epochs=4, batch_size=64, tsne_per_domain=300))
