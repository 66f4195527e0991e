"""The methods by name: the one place that maps ``AdaptConfig.method`` to a method module."""

from __future__ import annotations

from diffadapt.adapt.alignment.cdan import CDAN
from diffadapt.adapt.alignment.dann import DANN
from diffadapt.adapt.alignment.vada import VADA
from diffadapt.adapt.config import AdaptConfig
from diffadapt.adapt.methods import AdaptationMethod, SupervisedOnly
from diffadapt.adapt.modules.networks import DigitClassifier
from diffadapt.adapt.self_training.fixmatch import FixMatch


def make_method(config: AdaptConfig, model: DigitClassifier) -> AdaptationMethod:
    """The method module of ``config.method`` for ``model`` (its parameters are created here, after the
    model's, from the same seeded generator)."""
    features = model.extractor.features
    if config.method in ("source", "target"):
        return SupervisedOnly()
    if config.method == "dann":
        return DANN(features, entropy_weight=config.entropy_weight, dropout=config.domain_dropout)
    if config.method == "cdan":
        return CDAN(features, entropy_weight=config.entropy_weight, dropout=config.domain_dropout)
    if config.method == "fixmatch":
        return FixMatch(model, threshold=config.confidence, weight=config.unlabelled_weight, teacher_decay=config.teacher_decay,
                        align=config.align_distribution)
    if config.method == "vada":
        return VADA(features, domain_weight=config.domain_weight, source_vat_weight=config.source_vat_weight,
                    target_weight=config.target_weight, radius=config.vat_radius)
    raise ValueError(f"no method module for {config.method!r}")
