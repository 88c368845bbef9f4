"""`shapes`: a procedural, seeded image classification task, plus a shifted unlabeled pool.

Twelve shape families (all mirror-symmetric left-right, so a horizontal flip keeps the class)
drawn at random size, aspect, position, colour and texture on a gradient background with
thin clutter strokes and pixel noise. Size, contrast and clutter make small instances hard:
a large network keeps getting better long after a small one has stopped.

The *pool* renders the same families in another style, the way web-scraped images differ
from a curated set: busy multi-colour backgrounds, washed-out or dark palettes, speckle
texture, small rotations, blur and stronger noise; and a share of images belonging to no
class (wobbly blobs, or nothing but background). Their true labels (-1 for out-of-class)
are kept only to measure the shift.

Everything is vectorized numpy over chunks of images; each chunk has its own seed, so the
output depends only on (seed, split, size) and not on how the work was split up.
"""

from __future__ import annotations

import dataclasses

import numpy as np

GENERATOR_VERSION = 2
CHUNK = 1024

CLASSES: tuple[str, ...] = (
    "circle",
    "ring",
    "square",
    "frame",
    "diamond",
    "plus",
    "cross",
    "triangle_up",
    "triangle_down",
    "hourglass",
    "semicircle",
    "bars",
)

# split name -> stream id for the seed sequence (stable across versions: add, never reorder)
_STREAMS = {"train": 1, "val": 2, "test": 3, "pool": 4}


@dataclasses.dataclass(frozen=True)
class ShapesStyle:
    """Knobs that differ between the curated set and the pool."""

    size_range: tuple[float, float]  # shape radius, as a fraction of the image side
    busy_background: float  # probability of a multi-colour sinusoid background
    fg_saturation: tuple[float, float]
    bg_value: tuple[float, float]
    rotation_deg: float
    blur_prob: float
    noise_std: tuple[float, float]
    speckle_prob: float
    clutter_max: int


CURATED = ShapesStyle(
    size_range=(0.13, 0.34),
    busy_background=0.0,
    fg_saturation=(0.55, 1.0),
    bg_value=(0.35, 0.95),
    rotation_deg=0.0,
    blur_prob=0.0,
    noise_std=(0.02, 0.08),
    speckle_prob=0.0,
    clutter_max=3,
)

POOL = ShapesStyle(
    size_range=(0.16, 0.40),
    busy_background=0.5,
    fg_saturation=(0.1, 0.6),
    bg_value=(0.1, 0.7),
    rotation_deg=12.0,
    blur_prob=0.5,
    noise_std=(0.04, 0.12),
    speckle_prob=0.4,
    clutter_max=5,
)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorized HSV -> RGB for (n,) arrays, values in [0, 1]; returns (n, 3)."""
    i = np.floor(h * 6.0).astype(np.int64) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack([np.stack(c, -1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))])
    return table[i, np.arange(len(h))].astype(np.float32)


def _class_mask(k: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of family ``k`` in shape-local coordinates (radius 1, y pointing down)."""
    au, av = np.abs(u), np.abs(v)
    rr = u * u + v * v
    name = CLASSES[k]
    if name == "circle":
        return rr < 1.0
    if name == "ring":
        return (rr < 1.0) & (rr > 0.42)
    if name == "square":
        return np.maximum(au, av) < 0.82
    if name == "frame":
        m = np.maximum(au, av)
        return (m < 0.9) & (m > 0.55)
    if name == "diamond":
        return au + av < 1.05
    if name == "plus":
        return ((au < 0.3) & (av < 1.0)) | ((av < 0.3) & (au < 1.0))
    if name == "cross":
        d1, d2 = np.abs(u - v) * 0.7071, np.abs(u + v) * 0.7071
        return ((d1 < 0.22) & (d2 < 0.95)) | ((d2 < 0.22) & (d1 < 0.95))
    if name == "triangle_up":
        return (v < 0.8) & (au < (v + 1.0) * 0.58)
    if name == "triangle_down":
        return (v > -0.8) & (au < (1.0 - v) * 0.58)
    if name == "hourglass":
        return (av < 0.95) & (au < av * 0.9 + 0.08)
    if name == "semicircle":
        return (rr < 1.0) & (v < 0.15)
    if name == "bars":
        return (au < 0.95) & (av > 0.25) & (av < 0.75)
    raise AssertionError(name)


def _blob_mask(rng: np.random.Generator, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Out-of-class shapes: wobbly blobs whose radius varies with angle (no family has this)."""
    n = len(u)
    lobes = rng.choice([3, 5, 7], n)[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, n)[:, None, None]
    amp = rng.uniform(0.25, 0.45, n)[:, None, None]
    ang = np.arctan2(v, u)
    r = np.sqrt(u * u + v * v)
    return r < 0.8 * (1.0 + amp * np.sin(lobes * ang + phase))


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(img, sigma=(0, sigma, sigma, 0), mode="nearest")


def render(
    rng: np.random.Generator,
    labels: np.ndarray,
    size: int,
    style: ShapesStyle,
) -> np.ndarray:
    """Render images of ``labels`` (-1 = out-of-class) as uint8 (n, 3, size, size)."""
    n = len(labels)
    f32 = np.float32
    coords = (np.arange(size, dtype=f32) + 0.5) / size
    yy, xx = coords[None, :, None], coords[None, None, :]

    # ---- background: tinted gradient (curated) or busy multi-colour sinusoids (pool)
    bg_a = _hsv_to_rgb(rng.uniform(0, 1, n), rng.uniform(0.0, 0.35, n), rng.uniform(*style.bg_value, n))
    bg_b = np.clip(bg_a + rng.normal(0, 0.12, (n, 3)).astype(f32), 0, 1)
    theta = rng.uniform(0, 2 * np.pi, n).astype(f32)
    ramp = (np.cos(theta)[:, None, None] * (xx - 0.5) + np.sin(theta)[:, None, None] * (yy - 0.5)) + 0.5
    img = bg_a[:, None, None, :] * (1 - ramp[..., None]) + bg_b[:, None, None, :] * ramp[..., None]
    busy = rng.uniform(0, 1, n) < style.busy_background
    if busy.any():
        m = int(busy.sum())
        for _ in range(3):
            col = _hsv_to_rgb(rng.uniform(0, 1, m), rng.uniform(0.5, 1, m), rng.uniform(0.4, 1, m))
            fx, fy = (rng.uniform(-9, 9, (2, m)).astype(f32))
            ph = rng.uniform(0, 2 * np.pi, m).astype(f32)
            wave = 0.5 + 0.5 * np.sin(2 * np.pi * (fx[:, None, None] * xx + fy[:, None, None] * yy) + ph[:, None, None])
            img[busy] = img[busy] * (1 - 0.45 * wave[..., None]) + 0.45 * wave[..., None] * col[:, None, None, :]

    # ---- the shape: position, size, aspect, (pool) rotation
    r = rng.uniform(*style.size_range, n).astype(f32)
    cx = rng.uniform(r * 0.9, 1 - r * 0.9).astype(f32)
    cy = rng.uniform(r * 0.9, 1 - r * 0.9).astype(f32)
    aspect = np.exp(rng.uniform(-0.2, 0.2, n)).astype(f32)
    rot = np.deg2rad(rng.uniform(-style.rotation_deg, style.rotation_deg, n)).astype(f32)
    dx = (xx - cx[:, None, None]) / r[:, None, None]
    dy = (yy - cy[:, None, None]) / r[:, None, None]
    c, s = np.cos(rot)[:, None, None], np.sin(rot)[:, None, None]
    u = (c * dx + s * dy) / aspect[:, None, None]
    v = (-s * dx + c * dy) * aspect[:, None, None]
    mask = np.zeros((n, size, size), dtype=bool)
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        mask[idx] = _blob_mask(rng, u[idx], v[idx]) if k < 0 else _class_mask(int(k), u[idx], v[idx])
    # Half of the out-of-class images are only background: "nothing in the picture" is common
    # in scraped data.
    empty = (labels < 0) & (rng.uniform(0, 1, n) < 0.5)
    mask[empty] = False

    # ---- foreground colour and texture; keep a minimum luminance contrast to the background
    fg = _hsv_to_rgb(rng.uniform(0, 1, n), rng.uniform(*style.fg_saturation, n), rng.uniform(0.2, 1.0, n))
    lum = np.array([0.299, 0.587, 0.114], f32)
    bg_lum = img[:, size // 2, size // 2, :] @ lum
    low = np.abs(fg @ lum - bg_lum) < 0.18
    fg[low] = np.where((bg_lum[low] > 0.5)[:, None], fg[low] * 0.35, 1 - (1 - fg[low]) * 0.35)
    tex_kind = rng.integers(0, 3, n)  # 0 solid, 1 stripes, 2 checker
    freq = rng.uniform(2.0, 5.0, n).astype(f32)[:, None, None]
    phi = rng.uniform(0, 2 * np.pi, n).astype(f32)[:, None, None]
    stripes = np.sin(freq * (u * np.cos(phi) + v * np.sin(phi)) * np.pi)
    checker = np.sign(np.sin(freq * u * np.pi) * np.sin(freq * v * np.pi))
    tex = np.where((tex_kind == 1)[:, None, None], stripes, np.where((tex_kind == 2)[:, None, None], checker, 0.0))
    if style.speckle_prob > 0:
        speck = rng.uniform(0, 1, n) < style.speckle_prob
        tex[speck] = rng.uniform(-1, 1, (int(speck.sum()), size, size)).astype(f32)
    shade = (1.0 + 0.25 * tex)[..., None]
    fg_img = np.clip(fg[:, None, None, :] * shade, 0, 1)
    img = np.where(mask[..., None], fg_img, img)

    # ---- clutter: thin strokes in random colours, a few per image
    n_strokes = rng.integers(0, style.clutter_max + 1, n)
    for j in range(style.clutter_max):
        has = np.flatnonzero(n_strokes > j)
        if not len(has):
            break
        m = len(has)
        p0 = rng.uniform(0, 1, (m, 2)).astype(f32)
        d = rng.normal(0, 0.25, (m, 2)).astype(f32)
        px, py = xx - p0[:, 0, None, None], yy - p0[:, 1, None, None]
        dd = (d * d).sum(1)[:, None, None] + 1e-6
        t = np.clip((px * d[:, 0, None, None] + py * d[:, 1, None, None]) / dd, 0, 1)
        dist = np.hypot(px - t * d[:, 0, None, None], py - t * d[:, 1, None, None])
        stroke = dist < (0.6 / size)
        col = _hsv_to_rgb(rng.uniform(0, 1, m), rng.uniform(0, 1, m), rng.uniform(0, 1, m))
        img[has] = np.where(stroke[..., None], col[:, None, None, :], img[has])

    # ---- blur (pool), then sensor noise
    if style.blur_prob > 0:
        sig = np.where(rng.uniform(0, 1, n) < style.blur_prob, rng.choice([0.6, 0.9, 1.2], n), 0.0)
        for sv in np.unique(sig):
            if sv > 0:
                idx = np.flatnonzero(sig == sv)
                img[idx] = _blur(img[idx], float(sv) * size / 32)
    noise = rng.uniform(*style.noise_std, n).astype(f32)[:, None, None, None]
    img = img + rng.standard_normal(img.shape, dtype=f32) * noise
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8).transpose(0, 3, 1, 2).copy()


def generate(
    split: str,
    n: int,
    size: int,
    seed: int,
    *,
    ood_fraction: float = 0.0,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``n`` images of ``split`` ("train", "val", "test" or "pool") at ``size``x``size``.

    Labels are balanced over the classes (exactly, up to n mod classes) and shuffled; in the
    pool a share ``ood_fraction`` is out-of-class (label -1).
    """
    style = POOL if split == "pool" else CURATED
    k = len(CLASSES)
    n_ood = int(round(n * ood_fraction))
    base = np.random.default_rng(np.random.SeedSequence([seed, _STREAMS[split], size, GENERATOR_VERSION]))
    labels = np.concatenate([np.arange(n - n_ood) % k, np.full(n_ood, -1)]).astype(np.int64)
    labels = base.permutation(labels)
    x = np.empty((n, 3, size, size), np.uint8)
    starts = range(0, n, CHUNK)
    from tqdm import tqdm

    it = tqdm(starts, desc=f"shapes {split}", unit="chunk", disable=not progress, leave=False)
    for c, start in enumerate(it):
        rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAMS[split], size, GENERATOR_VERSION, c]))
        x[start : start + CHUNK] = render(rng, labels[start : start + CHUNK], size, style)
    return x, labels
