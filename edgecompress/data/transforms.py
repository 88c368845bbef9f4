"""Image transforms in plain torch (torchvision has no CPU-only build to rely on here).

One :class:`Pipeline` turns a raw ``uint8`` (C, H, W) image into the model input. The
deterministic part (scale, resize, channel conversion, normalize) is exactly what
:class:`~edgecompress.artifacts.Preprocessing` records, so export, parity checks and the
device-side runner can redo it; the random part (crop with padding, horizontal flip) is only
applied to training sets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from edgecompress.artifacts import Preprocessing
from edgecompress.preprocess_options import CHANNEL_ORDERS, RESIZE_MODES

__all__ = ["CHANNEL_ORDERS", "RESIZE_MODES", "Augment", "Pipeline", "channel_stats", "normalize", "resize"]

# ITU-R BT.601 luma weights, the same ones Pillow's convert("L") uses, so an RGB image
# turned gray here matches one turned gray by Pillow on the device side.
_LUMA = (0.299, 0.587, 0.114)


def to_unit_float(x: torch.Tensor, pixel_scale: float = 1.0 / 255.0) -> torch.Tensor:
    """uint8 pixels -> float32 times ``pixel_scale`` (in [0, 1] by default)."""
    return x.to(torch.float32) * pixel_scale


def resize(x: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize a float (C, H, W) or (N, C, H, W) tensor to ``size`` = (H, W), bilinear or nearest.

    Bilinear uses ``antialias=True``: it only changes anything when shrinking (plain bilinear
    when enlarging); without it, large photos shrunk to 32x32 alias badly.
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    batched = x.dim() == 4
    xb = x if batched else x[None]
    if mode == "nearest":
        y = F.interpolate(xb, size=size, mode="nearest-exact")
    else:
        y = F.interpolate(xb, size=size, mode="bilinear", align_corners=False, antialias=True)
    return y if batched else y[0]


def convert_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Gray -> RGB by repetition, RGB -> gray by BT.601 luma; (C, H, W) or (N, C, H, W)."""
    c = x.shape[-3]
    if c == channels:
        return x
    if c == 1 and channels == 3:
        return x.expand(*x.shape[:-3], 3, *x.shape[-2:]).contiguous()
    if c == 3 and channels == 1:
        w = torch.tensor(_LUMA, dtype=x.dtype).view(3, 1, 1)
        return (x * w).sum(dim=-3, keepdim=True)
    if c == 4 and channels in (1, 3):  # RGBA: drop alpha first
        return convert_channels(x[..., :3, :, :], channels)
    raise ValueError(f"cannot convert {c} channels to {channels}")


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    m = torch.tensor(mean, dtype=x.dtype).view(-1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(-1, 1, 1)
    return (x - m) / s


@dataclasses.dataclass(frozen=True)
class Augment:
    """Training-time augmentation. ``crop_pad`` pixels of padding before a random crop back to
    the input size (0 = off); ``flip`` = random horizontal flip (off for digits: a mirrored 2
    or 7 is not a digit)."""

    crop_pad: int = 0
    flip: bool = False

    @property
    def enabled(self) -> bool:
        return self.crop_pad > 0 or self.flip


def random_crop_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad (C, H, W) by ``pad`` zeros on each side, then crop a random (H, W) window.

    Applied after normalization, so the zero padding is the dataset's mean colour.
    """
    if pad <= 0:
        return x
    h, w = x.shape[-2:]
    padded = F.pad(x, (pad, pad, pad, pad))
    i, j = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,)))
    return padded[..., i : i + h, j : j + w]


def random_hflip(x: torch.Tensor, p: float = 0.5) -> torch.Tensor:
    return x.flip(-1) if float(torch.rand(())) < p else x


class Pipeline:
    """uint8 (C, H, W) numpy/tensor -> normalized float32 (C, H, W) tensor."""

    def __init__(self, preprocessing: Preprocessing, augment: Augment | None = None) -> None:
        self.preprocessing = preprocessing
        self.augment = augment or Augment()

    def raw(self, image: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Deterministic part before normalization: [0, 1] float at the input shape."""
        p = self.preprocessing
        x = torch.as_tensor(np.asarray(image)) if not isinstance(image, torch.Tensor) else image
        x = to_unit_float(x, p.pixel_scale)
        x = convert_channels(x, p.input_shape[0])
        if p.channel_order == "bgr" and x.shape[-3] == 3:
            x = x.flip(-3)
        return resize(x, (p.input_shape[1], p.input_shape[2]), p.resize)

    def __call__(self, image: np.ndarray | torch.Tensor, train: bool = False) -> torch.Tensor:
        x = normalize(self.raw(image), self.preprocessing.mean, self.preprocessing.std)
        if train and self.augment.enabled:
            x = random_crop_pad(x, self.augment.crop_pad)
            if self.augment.flip:
                x = random_hflip(x)
        return x.contiguous()


def channel_stats(images: Iterable[torch.Tensor]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std over float (C, H, W) or (N, C, H, W) images in [0, 1].

    Accumulated in float64 sums so a large sample needs no memory beyond one batch. A channel
    with (near) zero spread gets std 1.0 so normalizing never divides by zero.
    """
    total = None
    sq = None
    count = 0
    for x in images:
        x = x.to(torch.float64)
        if x.dim() == 3:
            x = x[None]
        s = x.sum(dim=(0, 2, 3))
        q = (x * x).sum(dim=(0, 2, 3))
        total = s if total is None else total + s
        sq = q if sq is None else sq + q
        count += x.shape[0] * x.shape[2] * x.shape[3]
    if total is None or count == 0:
        raise ValueError("no images to compute statistics from")
    mean = total / count
    var = (sq / count - mean * mean).clamp_min(0.0)
    std = var.sqrt()
    std = torch.where(std < 1e-6, torch.ones_like(std), std)
    return tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)
