"""In-memory serving: one uint8 tensor per domain, on the GPU when there is one, batched by index.

Training on 28x28 digits is limited by how fast batches arrive when they come through a per-image Python
loop (PIL, DataLoader workers). Holding the whole domain as one (N, C, H, W) uint8 tensor (60,000 MNIST-M
images are 141 MB) and gathering a shuffled batch with one indexing op costs microseconds instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diffadapt.data.types import DigitSet
from diffadapt.images import nhwc_to_nchw

# ITU-R BT.601 luma, the weights PIL uses for RGB -> L.
LUMA = (0.299, 0.587, 0.114)
CHUNK_BYTES = 256 << 20  # float32 working memory of one chunk of convert_images


def convert_images(
    images: torch.Tensor,
    channels: int | None = None,
    size: int | tuple[int, int] | None = None,
    chunk: int = 8192,
    box: int = 0,
) -> torch.Tensor:
    """Convert (N, C, H, W) uint8 images to another channel count and/or size; returns uint8.

    Gray -> RGB repeats the channel; RGB -> gray takes BT.601 luma. Resizing is bilinear, antialiased when
    shrinking, rounded back to [0, 255]. ``box`` > 0 (needs ``size``) resizes each image to box x box and
    centres it in the frame, padded with the median of its own border pixels (its background), so that a
    domain whose digits fill the frame can be brought to another domain's digit height (see layout.py).
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"expected (N, C, H, W) uint8, got {tuple(images.shape)} {images.dtype}")
    if isinstance(size, int):
        size = (size, size)
    if len(images) == 0:  # an empty split keeps its place: (0, C', H', W')
        return images.new_zeros((0, channels or images.shape[1], *(size or images.shape[2:])))
    if box:
        if size is None or not 0 < box < min(size):
            raise ValueError(f"box {box} must lie between 0 and the frame size {size}")
        return torch.cat([_place_in_box(part, box, size, chunk) for part in convert_images(images, channels, chunk=chunk).split(chunk)])
    same_size = size is None or tuple(images.shape[2:]) == tuple(size)
    same_channels = channels is None or channels == images.shape[1]
    if same_size and same_channels:
        return images
    # Each chunk is converted in float32: at most CHUNK_BYTES of it, however large the images.
    pixels = max(images.shape[2] * images.shape[3], size[0] * size[1] if size else 0) * max(images.shape[1], channels or 0)
    chunk = max(1, min(chunk, CHUNK_BYTES // (4 * max(pixels, 1))))
    out = []
    for start in range(0, len(images), chunk):
        part = images[start : start + chunk]
        if not same_channels:
            if channels == 3 and part.shape[1] == 1:
                part = part.expand(-1, 3, -1, -1)
            elif channels == 1 and part.shape[1] == 3:
                weights = torch.tensor(LUMA, device=part.device).view(1, 3, 1, 1)
                part = (part.float() * weights).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
            else:
                raise ValueError(f"cannot convert {part.shape[1]} channels to {channels}")
        if not same_size:
            shrinking = size[0] < part.shape[2] or size[1] < part.shape[3]  # type: ignore[index]
            resized = F.interpolate(part.float(), size=size, mode="bilinear", align_corners=False, antialias=shrinking)
            part = resized.round_().clamp_(0, 255).to(torch.uint8)
        out.append(part.contiguous())
    return torch.cat(out)


def _place_in_box(images: torch.Tensor, box: int, size: tuple[int, int], chunk: int) -> torch.Tensor:
    """(N, C, H, W) uint8 -> (N, C, *size) uint8: each image resized to box x box as above, centred, and
    padded with the median of its own border pixels."""
    border = torch.cat([images[:, :, 0, :], images[:, :, -1, :], images[:, :, :, 0], images[:, :, :, -1]], dim=2)
    background = border.median(dim=2).values  # (N, C), one of the border's own values
    out = background[:, :, None, None].expand(-1, -1, *size).clone()
    top, left = (size[0] - box) // 2, (size[1] - box) // 2
    out[:, :, top : top + box, left : left + box] = convert_images(images, size=(box, box), chunk=chunk)
    return out


class TensorImages:
    """One domain's images and labels as two tensors on one device.

    Attributes:
        images: (N, C, H, W) uint8 in [0, 255].
        labels: (N,) int64 in 0..9 (-1 where unlabelled).
        domain: the domain's name.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, domain: str) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W) uint8, got {tuple(images.shape)} {images.dtype}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"{labels.shape[0]} labels for {images.shape[0]} images")
        self.images = images
        self.labels = labels.to(device=images.device, dtype=torch.int64)
        self.domain = domain

    @classmethod
    def from_digitset(
        cls,
        digits: DigitSet,
        channels: int | None = None,
        size: int | tuple[int, int] | None = None,
        device: str | torch.device | None = None,
        box: int = 0,
    ) -> TensorImages:
        """Move a :class:`DigitSet` into tensors, converting channels and size on request (on ``device``);
        ``box`` as in :func:`convert_images`."""
        images = nhwc_to_nchw(digits.images)
        images = images.to(device) if device is not None else images
        labels = torch.from_numpy(digits.labels).to(images.device)
        return cls(convert_images(images, channels, size, box=box), labels, digits.domain)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def device(self) -> torch.device:
        return self.images.device

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    def to(self, device: str | torch.device) -> TensorImages:
        return TensorImages(self.images.to(device), self.labels.to(device), self.domain)

    def mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and standard deviation of the images scaled to [0, 1]: two (C,) float32 tensors."""
        total = torch.zeros(self.channels, dtype=torch.float64, device=self.device)
        total_sq = torch.zeros_like(total)
        for start in range(0, len(self), 8192):
            part = self.images[start : start + 8192].double().div_(255.0)
            total += part.sum(dim=(0, 2, 3))
            total_sq += part.square().sum(dim=(0, 2, 3))
        count = len(self) * self.size[0] * self.size[1]
        mean = total / count
        std = (total_sq / count - mean.square()).clamp_min(0).sqrt()
        return mean.float(), std.float()
