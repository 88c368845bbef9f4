"""The teacher's input preprocessing, as a user declares it (stdlib only: the CLI validates it
before anything heavy is imported).

A teacher trained elsewhere expects its own normalization; distilling from it with other
statistics silently degrades every soft label. So the preprocessing can be stated -- on the
command line, in the run config, in the Python API, or once, beside the teacher file in
``<teacher stem>.preprocessing.json`` (or as ONNX metadata ``edgecompress.preprocessing``) --
with the same keys everywhere:

==============  =======================================================================
``normalize``   a preset: ``data`` (statistics of the labeled images), ``half`` (0.5 / 0.5),
                ``imagenet`` (0.485,0.456,0.406 / 0.229,0.224,0.225), ``unit`` (0 / 1: raw)
``mean``/``std``  per-channel values (one value = every channel), in the pixel range's units
``pixel_range`` ``0-1`` (uint8 / 255) or ``0-255`` (presets but ``unit`` are scaled by 255 then)
``channel_order`` ``rgb`` or ``bgr``
``input_size``  ``H`` or ``HxW`` the teacher takes (default: what the teacher file declares, else the data's)
``resize``      ``bilinear`` or ``nearest``
==============  =======================================================================

Precedence: option > teacher file > the demo teacher's record > the data's statistics.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from edgecompress.errors import ConfigError

PRESETS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "half": ((0.5,), (0.5,)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "unit": ((0.0,), (1.0,)),
}
NORMALIZE = ("data", *PRESETS)
PIXEL_RANGES = {"0-1": 1.0 / 255.0, "0-255": 1.0}
CHANNEL_ORDERS = ("rgb", "bgr")
RESIZE_MODES = ("bilinear", "nearest")
KEYS = ("normalize", "mean", "std", "pixel_range", "channel_order", "input_size", "resize")
SIDECAR_SUFFIX = ".preprocessing.json"
ONNX_METADATA_KEY = "edgecompress.preprocessing"


def _floats(value: Any, key: str, where: str) -> tuple[float, ...]:
    items = value.replace(",", " ").split() if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        items = [items]
    try:
        out = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}{key} = {value!r}: expected 1 or 3 numbers, e.g. '0.5,0.5,0.5'") from None
    if len(out) not in (1, 3) or not all(math.isfinite(v) and abs(v) <= 1e4 for v in out):
        raise ConfigError(f"{where}{key} = {value!r}: expected 1 or 3 finite numbers of magnitude <= 1e4")
    if key == "std" and min(out) <= 0:
        raise ConfigError(f"{where}std = {value!r}: every value must be > 0")
    return out


def _size(value: Any, where: str) -> tuple[int, int]:
    text = str(value).lower().replace(" ", "")
    parts = text.split("x") if "x" in text else [text, text]
    try:
        h, w = (int(p) for p in parts[-2:]) if len(parts) in (2, 3) else (0, 0)
    except ValueError:
        h = w = 0
    if not (4 <= h <= 4096 and 4 <= w <= 4096):
        raise ConfigError(f"{where}input_size = {value!r}: expected H or HxW with 4 <= H, W <= 4096, e.g. 224 or 224x224")
    return h, w


def _choice(value: Any, key: str, allowed: tuple[str, ...], where: str) -> str:
    text = str(value).strip().lower()
    if text not in allowed:
        raise ConfigError(f"{where}{key} = {value!r}: allowed {', '.join(allowed)}")
    return text


@dataclasses.dataclass(frozen=True)
class PreprocessOptions:
    """Declared preprocessing; ``None`` fields are not declared (a lower-precedence source or
    the default fills them). ``source`` names where the declared fields came from."""

    normalize: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    pixel_range: str | None = None
    channel_order: str | None = None
    input_size: tuple[int, int] | None = None
    resize: str | None = None
    source: str = ""

    @classmethod
    def parse(cls, values: dict[str, Any], source: str, where: str = "") -> PreprocessOptions:
        """Validate raw values (strings from the CLI, lists/numbers from TOML/JSON); one line per problem."""
        unknown = sorted(set(values) - set(KEYS))
        if unknown:
            raise ConfigError(f"{where}unknown preprocessing key(s) {', '.join(unknown)} (allowed: {', '.join(KEYS)})")
        v = {k: x for k, x in values.items() if x is not None}
        if ("mean" in v) != ("std" in v):
            raise ConfigError(f"{where}give mean and std together (or a preset with normalize)")
        if "normalize" in v and "mean" in v:
            raise ConfigError(f"{where}give either normalize (a preset) or mean/std, not both")
        return cls(
            normalize=_choice(v["normalize"], "normalize", NORMALIZE, where) if "normalize" in v else None,
            mean=_floats(v["mean"], "mean", where) if "mean" in v else None,
            std=_floats(v["std"], "std", where) if "std" in v else None,
            pixel_range=_choice(v["pixel_range"], "pixel_range", tuple(PIXEL_RANGES), where) if "pixel_range" in v else None,
            channel_order=_choice(v["channel_order"], "channel_order", CHANNEL_ORDERS, where) if "channel_order" in v else None,
            input_size=_size(v["input_size"], where) if "input_size" in v else None,
            resize=_choice(v["resize"], "resize", RESIZE_MODES, where) if "resize" in v else None,
            source=source if v else "",
        )

    @property
    def declared(self) -> bool:
        return any(getattr(self, k) is not None for k in KEYS)

    def over(self, base: PreprocessOptions) -> PreprocessOptions:
        """These options, with ``base`` filling what they leave undeclared (normalization as one unit)."""
        norm_set = self.normalize is not None or self.mean is not None
        merged = {k: getattr(self, k) if getattr(self, k) is not None else getattr(base, k) for k in KEYS}
        if norm_set:
            merged.update(normalize=self.normalize, mean=self.mean, std=self.std)
        sources = [s for s in (self.source, base.source) if s]
        return PreprocessOptions(**merged, source=" + ".join(dict.fromkeys(sources)))

    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """Mean/std in the declared pixel range and channel order; None = the data's statistics."""
        if self.mean is not None and self.std is not None:
            return self.mean, self.std
        if self.normalize is None or self.normalize == "data":
            return None
        mean, std = PRESETS[self.normalize]
        # Presets are written for 0-1 pixels and mean the same image at 0-255 (caffe's 123.7 / 58.4
        # is imagenet); "unit" is no normalization at all, in whichever range.
        scale = 255.0 if self.pixel_range == "0-255" and self.normalize != "unit" else 1.0
        if self.channel_order == "bgr":
            mean, std = mean[::-1], std[::-1]
        return tuple(m * scale for m in mean), tuple(s * scale for s in std)

    def task_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`edgecompress.data.load_task`."""
        ms = self.mean_std()
        return {
            "mean": None if ms is None else ms[0],
            "std": None if ms is None else ms[1],
            "pixel_scale": PIXEL_RANGES[self.pixel_range or "0-1"],
            "channel_order": self.channel_order or "rgb",
            "resize": self.resize or "bilinear",
            "norm_source": self.source or "data",
        }

    def flags(self) -> str:
        """The command-line options that select these settings (for advice in one-line errors)."""
        out = []
        if self.mean is not None and self.std is not None:
            out.append(f"--mean {','.join(f'{m:g}' for m in self.mean)} --std {','.join(f'{s:g}' for s in self.std)}")
        elif self.normalize:
            out.append(f"--normalize {self.normalize}")
        if self.pixel_range:
            out.append(f"--pixel-range {self.pixel_range}")
        if self.channel_order:
            out.append(f"--channel-order {self.channel_order}")
        return " ".join(out)


def sidecar_path(teacher: Path) -> Path:
    """``net.pt2`` -> ``net.preprocessing.json`` beside it."""
    return teacher.with_name(teacher.name.split(".")[0] + SIDECAR_SUFFIX)


def teacher_file_options(teacher: Path) -> PreprocessOptions:
    """The preprocessing a teacher file declares: its sidecar JSON, else ONNX metadata; empty if none."""
    side = sidecar_path(teacher)
    if side.is_file():
        try:
            values = json.loads(side.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{side}: not a readable JSON file ({exc})") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{side}: expected a JSON object with keys among {', '.join(KEYS)}")
        return PreprocessOptions.parse(values, f"teacher file {side.name}", f"{side}: ")
    if teacher.suffix.lower() == ".onnx":
        meta = _onnx_metadata(teacher)
        if meta is not None:
            try:
                values = json.loads(meta)
            except json.JSONDecodeError:
                raise ConfigError(f"{teacher}: metadata {ONNX_METADATA_KEY} is not a JSON object") from None
            if not isinstance(values, dict):
                raise ConfigError(f"{teacher}: metadata {ONNX_METADATA_KEY} is not a JSON object")
            return PreprocessOptions.parse(values, f"teacher metadata ({teacher.name})", f"{teacher}: {ONNX_METADATA_KEY}: ")
    return PreprocessOptions()


def _onnx_metadata(path: Path) -> str | None:
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # an unreadable model is reported by the teacher loader, with its own words
        return None
    return next((p.value for p in model.metadata_props if p.key == ONNX_METADATA_KEY), None)
