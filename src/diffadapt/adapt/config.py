"""Settings of an adaptation run, and the recipes (named sets of settings) the CLI offers.

Recipes:
- ``report``: the founding report's settings exactly: its network (``cnn3``), SGD with the annealed learning
  rate, the full-strength reversal schedule, every domain stretched to size x size, no augmentation.
- ``matched``: the domains' digits brought to one height (``frame="match"``, see data/layout.py), random
  shifts and grayscale on both domains, the reversal weight capped at 0.3, target entropy minimisation
  with DANN; for self-training, weak shifts and strong affine / colour augmentation of the target.
The numbers behind these choices are in benchmarks/RESULTS.md ("Adaptation: what was tried").
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Literal, get_args

from diffadapt.errors import InputError
from diffadapt.settings import SEED_BOUNDS, Settings, described, number

AdaptMethod = Literal["source", "target", "dann", "cdan", "fixmatch", "vada"]
Recipe = Literal["report", "matched"]
Network = Literal["cnn3", "lenet", "wide"]
Frame = Literal["fill", "match"]
Selection = Literal["last", "source-val", "target-val-oracle"]
FinalWeights = Literal["student", "teacher"]
TargetPool = Literal["train", "all"]
FolderMethod = Literal["fixmatch", "shot", "dirtt"]
FOLDER_METHODS: tuple[str, ...] = get_args(FolderMethod)

ADAPT_METHODS: tuple[str, ...] = get_args(AdaptMethod)
BASELINES = ("source", "target")
RECIPES: tuple[str, ...] = get_args(Recipe)
NETWORKS: tuple[str, ...] = get_args(Network)
FRAMES: tuple[str, ...] = get_args(Frame)
SELECTIONS: tuple[str, ...] = get_args(Selection)

# Names written by earlier versions, read from old run folders and the CLI.
LEGACY_NAMES = {"recipe": {"ours": "matched"}, "network": {"report": "cnn3"}}


@dataclass
class AdaptConfig(Settings):
    """One adaptation run. Every field has one default here; recipes override a few (see :func:`preset`)."""

    method: AdaptMethod = described("dann", "source / target (baselines), dann, cdan, fixmatch, vada")
    recipe: Recipe = described("report", "named settings: report (the founding report's) or matched")
    network: Network = described("cnn3", "feature extractor: cnn3 (the report's), lenet, wide")
    epochs: int = number(100, at_least=1, at_most=100_000, help="passes over the labelled training split")
    batch_size: int = number(512, at_least=2, at_most=1 << 16, help="images per domain per step")
    lr: float = number(0.1, above=0.0, at_most=10.0, help="mu_0 of the annealed SGD learning rate")
    momentum: float = number(0.9, at_least=0.0, below=1.0, help="SGD momentum")
    weight_decay: float = number(0.0, at_least=0.0, at_most=1.0, help="SGD weight decay")
    lr_alpha: float = number(10.0, at_least=0.0, at_most=1000.0, help="alpha of mu_p = mu_0 / (1 + alpha p)^beta")
    lr_beta: float = number(0.75, at_least=0.0, at_most=10.0, help="beta of the annealed learning rate")
    reversal_gamma: float = number(10.0, at_least=0.0, at_most=1000.0, help="gamma of lambda_p = 2 / (1 + exp(-gamma p)) - 1")
    reversal_max: float = number(1.0, at_least=0.0, at_most=10.0, help="the adversarial weight lambda_p is scaled to this")
    domain_dropout: float = number(0.0, at_least=0.0, below=1.0, help="dropout in the domain discriminator")
    entropy_weight: float = number(0.0, at_least=0.0, at_most=10.0, help="weight of target prediction entropy minimisation")
    augment: bool = described(False, "random shifts and grayscale on both domains")
    instance_norm: bool = described(False, "standardise every input image by its own mean and std per channel (VADA's instance normalisation)")
    confidence: float = number(0.95, above=0.0, below=1.0, help="fixmatch: confidence a pseudo-label needs")
    unlabelled_weight: float = number(1.0, at_least=0.0, at_most=100.0, help="fixmatch: weight of the pseudo-label loss")
    teacher_decay: float = number(0.99, at_least=0.0, below=1.0, help="fixmatch: EMA decay of the teacher that makes pseudo-labels (0: the model itself)")
    align_distribution: bool = described(True, "fixmatch: align target predictions with the source class frequencies (AdaMatch)")
    domain_weight: float = number(0.01, at_least=0.0, at_most=10.0, help="vada: lambda_d, the constant weight of the domain-adversarial term")
    source_vat_weight: float = number(1.0, at_least=0.0, at_most=100.0, help="vada: lambda_s, the weight of virtual adversarial training on the source")
    target_weight: float = number(0.01, at_least=0.0, at_most=100.0, help="vada: lambda_t, the weight of target conditional entropy plus target VAT")
    vat_radius: float = number(3.5, above=0.0, at_most=100.0, help="vada and the folder's dirtt: epsilon, the radius of the virtual adversarial perturbation (normalised pixels, per image)")
    final_weights: FinalWeights = described("student", "fixmatch: the weights a run keeps: the trained model (student) or its EMA teacher (label-free)")
    target_pool: TargetPool = described("train", "unlabelled target images: train (val held out) or all (val too, without labels: val accuracy is then transductive)")
    size: int = number(28, at_least=8, at_most=256, help="image side the network sees")
    channels: Literal[1, 3] = described(3, "image channels the network sees")
    frame: Frame = described("fill", "fill: stretch every domain to size x size; match: bring the digits to one height")
    source_box: int = number(0, at_least=0, help="resolved by frame=match: the source's digit box in pixels (0: none)")
    target_box: int = number(0, at_least=0, help="resolved by frame=match: the target's digit box in pixels (0: none)")
    seed: int = number(0, **SEED_BOUNDS, help="fixes initial weights, batch order and augmentation")
    eval_every: int = number(0, at_least=0, help="epochs between target-val reports (0: only at the end); never used to choose")
    selection: Selection = described("last", "which epoch's weights to keep: last, source-val (label-free), target-val-oracle (reads target labels)")
    cuda_graphs: bool = described(True, "CUDA: capture the training step once and replay it")
    deterministic: bool = described(True, "CUDA: deterministic cuDNN algorithms (bit-for-bit repeatable, slower)")

    def validate(self) -> None:
        for name in ("source_box", "target_box"):
            box = getattr(self, name)
            if box and box >= self.size:
                raise InputError(f"{name}: {box} must be smaller than the frame size {self.size}")
        if self.final_weights == "teacher" and (self.method != "fixmatch" or self.teacher_decay <= 0):
            raise InputError("final_weights teacher needs method fixmatch with teacher_decay > 0 (only then is there a teacher)")
        if self.target_pool == "all" and self.method in ("source", "target"):
            raise InputError(f"target_pool all is for adaptation methods; the {self.method} baseline would train on val images")
        if self.selection == "target-val-oracle" and self.eval_every <= 0:
            raise InputError("selection target-val-oracle needs eval_every > 0 (the epochs it may choose from)")

    @property
    def needs_target_images(self) -> bool:
        return self.method != "source"

    @classmethod
    def from_document(cls, data: Any, source: Any = None) -> AdaptConfig:
        """From a run's saved ``config`` section, including those of earlier versions (``mode``, ``ours``,
        network ``report``, ``select_on_val``)."""
        if not isinstance(data, dict):
            raise InputError(f"config must be an object, found {type(data).__name__}", source)
        data = dict(data)
        if "mode" in data and "method" not in data:
            data["method"] = data.pop("mode")
        if data.pop("select_on_val", False) is True:
            data["selection"] = "target-val-oracle"
        for key, renames in LEGACY_NAMES.items():
            if isinstance(data.get(key), str):
                data[key] = renames.get(data[key], data[key])
        return cls.from_dict(data, source, "config")


def preset(recipe: str, method: str, **overrides: Any) -> AdaptConfig:
    """The settings of ``recipe`` for ``method``, with ``overrides`` (None values ignored) on top."""
    recipe = LEGACY_NAMES["recipe"].get(recipe, recipe)
    if recipe not in RECIPES:
        raise InputError(f"unknown recipe {recipe!r} (one of {', '.join(RECIPES)})")
    if method not in ADAPT_METHODS:
        raise InputError(f"unknown method {method!r} (one of {', '.join(ADAPT_METHODS)})")
    config = AdaptConfig(method=method, recipe=recipe)  # type: ignore[arg-type]
    if recipe == "matched":
        config = replace(config, frame="match", augment=True, reversal_max=0.3, entropy_weight=0.05 if method in ("dann", "cdan") else 0.0)
    known = {f.name for f in fields(AdaptConfig)}
    unknown = [k for k in overrides if k not in known]
    if unknown:
        raise InputError(f"unknown adaptation setting {unknown[0]!r}")
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class FolderAdaptConfig(Settings):
    """Adapting a run to one folder (``adapt predict --adapt``). The defaults were chosen on the embedded
    pairs only, never on a real target's labels (benchmarks/RESULTS.md, "Adaptation that holds on data it has never seen")."""

    method: FolderMethod = described("shot", "shot: source-free (SHOT); fixmatch: continue the run's FixMatch with a labelled source; dirtt: source-free (DIRT-T's refinement)")
    steps: int = number(400, at_least=1, at_most=100_000, help="training steps on the folder (the time does not grow with its size)")
    batch_size: int = number(64, at_least=2, at_most=4096, help="folder images (and source images) per step")
    lr: float = number(0.01, above=0.0, at_most=10.0, help="starting learning rate, annealed as in the run")
    seed: int = number(0, **SEED_BOUNDS, help="fixes the batch order and the augmentation")
    proximal_weight: float = number(10.0, at_least=0.0, at_most=1000.0, help="dirtt: beta, the weight of the KL to the teacher renewed every pass")
