"""Feature extractors and heads for 28x28 digits.

- ``cnn3``: the founding report's network. Extractor conv 3->64 (4x4) BN ReLU maxpool(3, 2) /
  conv 64->64 (5x5) BN Dropout2d(0.5) ReLU maxpool(3, 2) / conv 64->128 (3x3) -> 128 features; label
  classifier 128->1024->256->10 with BatchNorm1d and ReLU; domain classifier 128->256->2.
- ``lenet``: a LeNet-style extractor (conv 5x5 32, pool, conv 5x5 48, pool) -> 768 features, as in
  Ganin's MNIST experiments.
- ``wide``: a VGG-style extractor (3x3 convolutions, 32-32 / 64-64 / 128, BN, global average pooling) ->
  128 features.
"""

from __future__ import annotations

from torch import nn


class CNN3Extractor(nn.Module):
    features = 128

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 64, 4), nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 64, 5), nn.BatchNorm2d(64), nn.Dropout2d(0.5), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 128, 3), nn.Flatten(),
        )

    def forward(self, x):
        return self.body(x)


class LeNetExtractor(nn.Module):
    features = 768

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 32, 5), nn.BatchNorm2d(32), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(32, 48, 5), nn.BatchNorm2d(48), nn.Dropout2d(0.5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Flatten(),
        )

    def forward(self, x):
        return self.body(x)


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class WideExtractor(nn.Module):
    features = 128

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv(in_channels, 32), *_conv(32, 32), nn.MaxPool2d(2), nn.Dropout2d(0.1),
            *_conv(32, 64), *_conv(64, 64), nn.MaxPool2d(2), nn.Dropout2d(0.1),
            *_conv(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )

    def forward(self, x):
        return self.body(x)


def label_classifier(features: int) -> nn.Sequential:
    """features -> 1024 -> 256 -> 10, BatchNorm1d and ReLU between (the report's head)."""
    return nn.Sequential(
        nn.Linear(features, 1024), nn.BatchNorm1d(1024), nn.ReLU(inplace=True),
        nn.Linear(1024, 256), nn.BatchNorm1d(256), nn.ReLU(inplace=True),
        nn.Linear(256, 10),
    )


def domain_classifier(features: int, hidden: int = 256, dropout: float = 0.0, outputs: int = 2) -> nn.Sequential:
    """features -> hidden -> outputs (2: source / target logits); placed behind the gradient reversal layer."""
    return nn.Sequential(nn.Linear(features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, outputs))


def make_extractor(name: str, in_channels: int = 3) -> nn.Module:
    if name == "cnn3":
        return CNN3Extractor(in_channels)
    if name == "lenet":
        return LeNetExtractor(in_channels)
    if name == "wide":
        return WideExtractor(in_channels)
    raise ValueError(f"unknown network {name!r} (cnn3, lenet, wide)")


class InstanceStandardised(nn.Module):
    """Per-image input standardisation in front of an extractor: x -> (x - mean_c(x)) / sqrt(var_c(x) + 1e-5)
    per image and channel c (VADA / DIRT-T's instance normalisation of the input, Shu et al., ICLR 2018).
    It removes each image's brightness and contrast, which differ most between digit domains. No parameters,
    so the weights of a run are those of its extractor."""

    def __init__(self, extractor: nn.Module) -> None:
        super().__init__()
        self.body = extractor
        self.features = extractor.features
        self.standardise = nn.InstanceNorm2d(1, affine=False, track_running_stats=False)

    def forward(self, x):
        b, c, h, w = x.shape
        return self.body(self.standardise(x.reshape(b * c, 1, h, w)).reshape(b, c, h, w))


class DigitClassifier(nn.Module):
    """Feature extractor F and label classifier C: what every method trains and what prediction uses.

    forward(x): x (B, C, 28, 28) normalised per domain -> (B, 10) logits; ``extractor(x)`` gives F(x).
    ``instance_norm``: standardise each input image first (:class:`InstanceStandardised`). A method's own
    parts (a domain discriminator, a teacher) live in the method, not here.
    """

    def __init__(self, network: str, in_channels: int = 3, instance_norm: bool = False) -> None:
        super().__init__()
        extractor = make_extractor(network, in_channels)
        self.extractor = InstanceStandardised(extractor) if instance_norm else extractor
        self.classifier = label_classifier(self.extractor.features)

    def forward(self, x):
        return self.classifier(self.extractor(x))
