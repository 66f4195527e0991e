"""A class-conditional noise-prediction UNet for small images (28x28, 32x32, 64x64; any channel count).

Layout (Ho et al. 2020, as in most DDPM code): a 3x3 input convolution; per resolution level
``num_res_blocks`` residual blocks (with self-attention on the levels listed in ``attention_levels``)
and a stride-2 downsampling; a middle of residual block, attention, residual block; the mirror image on
the way up with skip connections; GroupNorm, SiLU and a 3x3 output convolution.

``patch_size`` p > 1 folds each p x p patch into channels first (pixel unshuffle: (C, H, W) ->
(C p^2, H/p, W/p)) and unfolds the output the same way, so the network runs at 1/p^2 of the positions with
wider channels: the same arithmetic in fewer, larger matrix products, which is what keeps a GPU's tensor
cores busy on 28x28 images (the narrow full-resolution levels of p = 1 are bound by memory traffic).

Conditioning: sinusoidal features of t go through an MLP; a learned class embedding, with one extra
"null" class for classifier-free guidance, is added to that time embedding (the founding report's
choice), and every residual block adds the result per channel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from diffadapt.errors import InputError
from diffadapt.settings import Settings, described, number


@dataclass
class UNetConfig(Settings):
    """The shape of a :class:`ConditionalUNet`; the defaults are the shipped digit model's (MODEL_CARD.md)."""

    image_size: int = number(28, at_least=4, at_most=1024, help="side of the square images")
    in_channels: int = number(3, at_least=1, at_most=16, help="image channels")
    base_channels: int = number(32, at_least=4, at_most=1024, help="channels of the first level")
    channel_mults: tuple[int, ...] = described((1, 2, 4), "channel multiplier per resolution level")
    num_res_blocks: int = number(2, at_least=1, at_most=8, help="residual blocks per level")
    attention_levels: tuple[int, ...] = described((2,), "levels (0-based) with self-attention")
    num_classes: int | None = number(10, at_least=1, at_most=100_000, help="classes (None: unconditional)")
    dropout: float = number(0.0, at_least=0.0, below=1.0, help="dropout in the residual blocks")
    norm_groups: int = number(16, at_least=1, at_most=1024, help="GroupNorm groups (halved until they divide)")
    patch_size: int = number(1, at_least=1, at_most=16, help="p: the network sees (C p^2, H/p, W/p); 1 = plain pixels")

    def validate(self) -> None:
        levels = len(self.channel_mults)
        if not 1 <= levels <= 8 or any(not 1 <= m <= 64 for m in self.channel_mults):
            raise InputError(f"channel_mults: 1 to 8 levels of multipliers in 1..64, got {list(self.channel_mults)}")
        if self.image_size % self.patch_size:
            raise InputError(f"patch size {self.patch_size} does not divide image size {self.image_size}")
        if (self.image_size // self.patch_size) % (2 ** (levels - 1)):
            # 28 -> 14 -> 7 works; a fourth level would need 3.5.
            raise InputError(f"image size {self.image_size} / patch {self.patch_size} cannot be halved {levels - 1} times")
        if any(not 0 <= a < levels for a in self.attention_levels):
            raise InputError(f"attention levels {list(self.attention_levels)} outside 0..{levels - 1}")
        if self.base_channels % 2:
            # The time embedding is base_channels wide, half sines and half cosines.
            raise InputError(f"base_channels must be even, got {self.base_channels}")

    @property
    def null_label(self) -> int | None:
        return self.num_classes


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) timesteps -> (B, dim) features [sin(t w_k), cos(t w_k)], w_k = 10000^(-k / (dim/2))."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    while channels % groups:
        groups //= 2
    return nn.GroupNorm(groups, channels)


class ResidualBlock(nn.Module):
    """GroupNorm-SiLU-conv, plus the (time + class) embedding per channel, GroupNorm-SiLU-dropout-conv, skip."""

    def __init__(self, in_channels: int, out_channels: int, embed_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.embed = nn.Linear(embed_dim, out_channels)
        self.norm2 = group_norm(out_channels, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.embed(F.silu(embedding))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    """Single-head self-attention over all positions, with a residual connection."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = group_norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        attended = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.out(attended.transpose(-1, -2).reshape(b, c, h, w))


class Level(nn.Module):
    def __init__(self, blocks: list[ResidualBlock], attentions: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.attentions = nn.ModuleList(attentions)


class ConditionalUNet(nn.Module):
    """eps_theta(x_t, t, c).

    forward(x, t, labels):
        x: (B, C, H, W) noisy images (model scale [-1, 1] at t = 0);
        t: (B,) int64 timesteps;
        labels: (B,) int64 in 0..num_classes, where num_classes is the null (unconditional) class;
            None for an unconditional model, or to ask a conditional one for the null class.
    Returns (B, C, H, W) predicted noise.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        base, groups = config.base_channels, config.norm_groups
        embed_dim = 4 * base
        self.time_mlp = nn.Sequential(nn.Linear(base, embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim))
        self.class_embedding = nn.Embedding(config.num_classes + 1, embed_dim) if config.num_classes else None
        patch_channels = config.in_channels * config.patch_size**2
        self.patchify = nn.PixelUnshuffle(config.patch_size) if config.patch_size > 1 else nn.Identity()
        self.conv_in = nn.Conv2d(patch_channels, base, 3, padding=1)

        widths = [base * m for m in config.channel_mults]
        skip_widths = [base]
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        channels = base
        for level, width in enumerate(widths):
            blocks, attentions = [], []
            for _ in range(config.num_res_blocks):
                blocks.append(ResidualBlock(channels, width, embed_dim, groups, config.dropout))
                attentions.append(SelfAttention(width, groups) if level in config.attention_levels else nn.Identity())
                channels = width
                skip_widths.append(channels)
            self.down.append(Level(blocks, attentions))
            last = level == len(widths) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(channels, channels, 3, stride=2, padding=1))
            if not last:
                skip_widths.append(channels)

        self.mid_block1 = ResidualBlock(channels, channels, embed_dim, groups, config.dropout)
        self.mid_attention = SelfAttention(channels, groups)
        self.mid_block2 = ResidualBlock(channels, channels, embed_dim, groups, config.dropout)

        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(len(widths))):
            width = widths[level]
            blocks, attentions = [], []
            for _ in range(config.num_res_blocks + 1):
                blocks.append(ResidualBlock(channels + skip_widths.pop(), width, embed_dim, groups, config.dropout))
                attentions.append(SelfAttention(width, groups) if level in config.attention_levels else nn.Identity())
                channels = width
            self.up.append(Level(blocks, attentions))
            self.upsample.append(nn.Conv2d(channels, channels, 3, padding=1) if level > 0 else nn.Identity())

        self.norm_out = group_norm(channels, groups)
        self.conv_out = nn.Conv2d(channels, patch_channels, 3, padding=1)
        self.unpatchify = nn.PixelShuffle(config.patch_size) if config.patch_size > 1 else nn.Identity()
        # Zero-initialised output: the untrained model predicts eps = 0, a stable start.
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def embed(self, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        features = sinusoidal_embedding(t, self.config.base_channels).to(self.conv_in.weight.dtype)
        embedding = self.time_mlp(features)
        if self.class_embedding is not None:
            if labels is None:
                labels = torch.full_like(t, self.config.num_classes)
            embedding = embedding + self.class_embedding(labels)
        return embedding

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        embedding = self.embed(t, labels)
        h = self.conv_in(self.patchify(x))
        skips = [h]
        for level, (stage, downsample) in enumerate(zip(self.down, self.downsample)):
            for block, attention in zip(stage.blocks, stage.attentions):
                h = attention(block(h, embedding))
                skips.append(h)
            if level < len(self.down) - 1:
                h = downsample(h)
                skips.append(h)
        h = self.mid_block2(self.mid_attention(self.mid_block1(h, embedding)), embedding)
        for index, (stage, upsample) in enumerate(zip(self.up, self.upsample)):
            for block, attention in zip(stage.blocks, stage.attentions):
                h = attention(block(torch.cat([h, skips.pop()], dim=1), embedding))
            if index < len(self.up) - 1:
                h = upsample(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.unpatchify(self.conv_out(F.silu(self.norm_out(h))))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(config: UNetConfig) -> tuple[float, float]:
    """(forward, forward + backward) FLOPs per image, by torch's FLOP counter on a CPU copy of the model
    (the count depends only on the shapes, not on the device or the weights)."""
    model = ConditionalUNet(config)
    x = torch.randn(2, config.in_channels, config.image_size, config.image_size)
    t, labels = torch.tensor([0, 1]), (torch.tensor([0, 1]) if config.num_classes else None)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x, t, labels)
    forward = counter.get_total_flops() / 2
    with FlopCounterMode(display=False) as counter:
        model(x, t, labels).square().mean().backward()
    return forward, counter.get_total_flops() / 2
