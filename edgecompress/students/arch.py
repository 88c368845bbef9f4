"""Architecture strings: a student as data, timm-style.

An arch string is blocks joined by ``-``; each block is ``<type>_<opt>_<opt>...``:

    cn_r1_k3_s2_c16                    conv-bn-act (stem or 1x1 head)
    ds_r1_k3_s1_c16                    depthwise-separable
    ir_r2_k3_s2_e6_c24_se_ahs          inverted residual, expand 6, squeeze-excite, hardswish
    rb_r2_k3_s2_c32                    residual basic block

Options: ``r`` repeats (the first repeat takes the stride), ``k`` kernel, ``s`` stride, ``e``
expansion (ir only), ``c`` output channels (before the width multiplier), ``se`` adds
squeeze-excite, ``a`` activation (relu, relu6, hs). The network is the blocks in order, then a
global average pool and a linear classifier. Block types are registered (block_types.py: one
definition gives the module and its costs). Parsing is stdlib-only so ``select`` can cost
candidates without importing torch; ``blocknet.BlockNet`` builds the module.
"""

from __future__ import annotations

import dataclasses
import re

from edgecompress.errors import ConfigError
from edgecompress.students.block_types import block_names

ACTIVATIONS = ("relu", "relu6", "hs")  # keys of blocks.ACTIVATIONS (kept torch-free here)
_OPT = re.compile(r"^(r|k|s|e|c|a)(.+)$")


@dataclasses.dataclass(frozen=True)
class BlockArgs:
    type: str
    repeats: int = 1
    kernel: int = 3
    stride: int = 1
    expand: float = 1.0
    channels: int = 16
    se: bool = False
    act: str = "relu"

    def to_string(self) -> str:
        s = f"{self.type}_r{self.repeats}_k{self.kernel}_s{self.stride}"
        if self.type == "ir":
            s += f"_e{self.expand:g}"
        s += f"_c{self.channels}"
        if self.se:
            s += "_se"
        if self.act != "relu":
            s += f"_a{self.act}"
        return s


def parse_block(text: str, where: str = "arch") -> BlockArgs:
    """Parse one block string; a bad token raises ConfigError naming it and what is allowed."""
    parts = text.strip().split("_")
    if not parts or parts[0] not in block_names():
        raise ConfigError(f"{where}: block {text!r} must start with one of {', '.join(block_names())}")
    kw: dict[str, object] = {"type": parts[0]}
    for tok in parts[1:]:
        if tok == "se":
            kw["se"] = True
            continue
        m = _OPT.match(tok)
        if not m:
            raise ConfigError(f"{where}: block {text!r}: unknown option {tok!r} (allowed: r<N> k<N> s<N> e<X> c<N> se a<act>)")
        key, val = m.groups()
        try:
            if key == "a":
                if val not in ACTIVATIONS:
                    raise ValueError
                kw["act"] = val
            elif key == "e":
                kw["expand"] = float(val)
            else:
                kw[{"r": "repeats", "k": "kernel", "s": "stride", "c": "channels"}[key]] = int(val)
        except ValueError:
            allowed = ", ".join(ACTIVATIONS) if key == "a" else "a positive number"
            raise ConfigError(f"{where}: block {text!r}: bad value in {tok!r} ({allowed})") from None
    args = BlockArgs(**kw)  # type: ignore[arg-type]
    if args.repeats < 1 or args.kernel < 1 or args.kernel % 2 == 0 or args.stride not in (1, 2) or args.channels < 1 or args.expand <= 0:
        raise ConfigError(f"{where}: block {text!r}: need r >= 1, odd k, s in (1, 2), c >= 1, e > 0")
    return args


def parse_arch(arch: str, where: str = "arch") -> list[BlockArgs]:
    if not arch or not arch.strip():
        raise ConfigError(f"{where}: empty architecture string")
    return [parse_block(b, where) for b in arch.split("-")]


def format_arch(blocks: list[BlockArgs]) -> str:
    return "-".join(b.to_string() for b in blocks)


def scale_channels(c: int, width_mult: float, divisor: int = 8) -> int:
    """Channels times the width multiplier, rounded to a multiple of ``divisor`` (SIMD-friendly)."""
    v = c * width_mult
    # Small counts (test variants, very thin students) round to 4 so they are not all inflated to 8.
    d = divisor if v >= divisor else 4
    out = max(d, int(v + d / 2) // d * d)
    if out < 0.9 * v:  # never round down by more than 10% (MobileNet's make_divisible rule)
        out += d
    return out
