"""The course's pretrained 256x256 face UNet (``hw2_data/face/UNet.pt``), rebuilt key for key.

It is the DDPM CelebA-HQ architecture (Ho et al. 2020): base width 128, channel multipliers
1, 1, 2, 2, 4, 4, two residual blocks per level, single-head self-attention at the fourth level (16x16
for a 256x256 input) and in the first middle block, epsilon prediction for integer t in 0..999.
Module names follow the state dict exactly (``down1``, ``down2.resblocks.conv1``, ``up4.1``, ...), so
the file loads with ``strict=True`` and nothing is renamed.

Encoder order (18 steps, every output saved for the decoder):
    down1 conv 3->128; per level two residual blocks, then a stride-2 conv except after the last level.
Decoder: three residual blocks per level, each taking [current, skip] concatenated along channels (skips
popped last-in-first-out), then nearest 2x upsampling + 3x3 conv except after the last level.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from diffadapt.io import file_budget, load_state_dict_file, load_state_dict_strict

BASE = 128
MULTIPLIERS = (1, 1, 2, 2, 4, 4)
COURSE_IMAGE_SIZE = 256  # the side of the images it was trained on
ATTENTION_LEVEL = 4  # 16x16 for a 256x256 input
TIME_DIM = 4 * BASE
GROUPS = 32
GROUPNORM_EPS = 1e-5  # the golden output pins it: 1e-5 matches to 1e-6 relative, 1e-6 only to 2e-5


class SinusoidalTime(nn.Module):
    """t -> [sin(t w), cos(t w)] with the 64 frequencies w_k = exp(-ln(10000) k / 128), k = 0, 2, ..., 126."""

    def __init__(self) -> None:
        super().__init__()
        inv_freq = torch.exp(-math.log(10000.0) * torch.arange(0, BASE, 2, dtype=torch.float32) / BASE)
        self.register_buffer("inv_freq", inv_freq)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t.to(self.inv_freq.dtype)[:, None] * self.inv_freq[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=1)


class CourseResBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(GROUPS, in_channels, eps=GROUPNORM_EPS)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time = nn.Sequential(nn.SiLU(), nn.Linear(TIME_DIM, out_channels))
        self.norm2 = nn.GroupNorm(GROUPS, out_channels, eps=GROUPNORM_EPS)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.skip = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(embedding)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + (self.skip(x) if hasattr(self, "skip") else x)


class CourseAttention(nn.Module):
    """One head: softmax(q.k / sqrt(C)) v over all positions, 1x1 output conv, residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(GROUPS, channels, eps=GROUPNORM_EPS)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        # (B, 1, HW, C) for the fused kernel; its default scale is 1 / sqrt(C), as the network was trained.
        attended = F.scaled_dot_product_attention(q.transpose(1, 2)[:, None], k.transpose(1, 2)[:, None], v.transpose(1, 2)[:, None])
        return x + self.out(attended[:, 0].transpose(1, 2).reshape(b, c, h, w))


class CourseStage(nn.Module):
    """A residual block, optionally followed by attention (keys ``resblocks.*`` and ``attention.*``)."""

    def __init__(self, in_channels: int, out_channels: int, attention: bool) -> None:
        super().__init__()
        self.resblocks = CourseResBlock(in_channels, out_channels)
        if attention:
            self.attention = CourseAttention(out_channels)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        h = self.resblocks(x, embedding)
        return self.attention(h) if hasattr(self, "attention") else h


class CourseFaceUNet(nn.Module):
    """eps_theta(x, t): x (B, 3, H, W) in [-1, 1] scale, t (B,) int64 in 0..999 -> (B, 3, H, W) noise.

    H and W must be multiples of 32 (five halvings); the course uses 256x256.
    """

    def __init__(self) -> None:
        super().__init__()
        self.time = nn.Sequential(SinusoidalTime(), nn.Linear(BASE, TIME_DIM), nn.SiLU(), nn.Linear(TIME_DIM, TIME_DIM))
        self.encoder_names: list[str] = []
        self.decoder_names: list[str] = []
        widths = [BASE * m for m in MULTIPLIERS]
        skip_widths = [BASE]
        self.down1 = nn.Conv2d(3, BASE, 3, padding=1)
        self.encoder_names.append("down1")
        channels, index = BASE, 2
        for level, width in enumerate(widths):
            for _ in range(2):
                setattr(self, f"down{index}", CourseStage(channels, width, level == ATTENTION_LEVEL))
                self.encoder_names.append(f"down{index}")
                channels = width
                skip_widths.append(channels)
                index += 1
            if level < len(widths) - 1:
                setattr(self, f"down{index}", nn.Sequential(nn.Conv2d(channels, channels, 3, stride=2, padding=1)))
                self.encoder_names.append(f"down{index}")
                skip_widths.append(channels)
                index += 1
        self.mid1 = CourseStage(channels, channels, attention=True)
        self.mid2 = CourseStage(channels, channels, attention=False)
        index = 1
        for level in reversed(range(len(widths))):
            width = widths[level]
            for _ in range(3):
                setattr(self, f"up{index}", CourseStage(channels + skip_widths.pop(), width, level == ATTENTION_LEVEL))
                self.decoder_names.append(f"up{index}")
                channels = width
                index += 1
            if level > 0:
                setattr(self, f"up{index}", nn.Sequential(nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(channels, channels, 3, padding=1)))
                self.decoder_names.append(f"up{index}")
                index += 1
        self.out = nn.Sequential(nn.GroupNorm(GROUPS, channels, eps=GROUPNORM_EPS), nn.SiLU(), nn.Conv2d(channels, 3, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"input size {tuple(x.shape[-2:])} must be a multiple of 32")
        embedding = self.time(t)
        skips = []
        h = x
        for name in self.encoder_names:
            module = getattr(self, name)
            h = module(h, embedding) if isinstance(module, CourseStage) else module(h)
            skips.append(h)
        h = self.mid2(self.mid1(h, embedding), embedding)
        for name in self.decoder_names:
            module = getattr(self, name)
            if isinstance(module, CourseStage):
                h = module(torch.cat([h, skips.pop()], dim=1), embedding)
            else:
                h = module(h)
        return self.out(h)


def golden_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The deterministic weights of ``course_face_unet/README.md`` (for the golden test, not for use)."""
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("inv_freq"):
            state[key] = value.clone()
            continue
        seed = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
        v = torch.randn(value.shape, generator=torch.Generator().manual_seed(seed)) * 0.05
        if "norm" in key and key.endswith(".weight"):
            v = v + 1.0
        state[key] = v
    return state


def load_course_unet(path: str | Path) -> CourseFaceUNet:
    """Load ``UNet.pt`` (a plain state dict) strictly, with torch.load(weights_only=True)."""

    model = CourseFaceUNet()
    load_state_dict_strict(model, load_state_dict_file(path, "UNet weights file", file_budget(model)), Path(path))
    return model.eval()
