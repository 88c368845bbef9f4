"""Which int8 weight grid ONNX Runtime's CPU kernels want on the machine that runs the file.

ORT's x86 int8 GEMM/conv kernels multiply u8 activations by s8 weights. Without VNNI they use
``VPMADDUBSW``, which adds two u8 x s8 products into an int16 that saturates (255 x 127 x 2 >
32767): full 8-bit weights then give wrong results on AVX2 / AVX-512F hosts, so those need
7-bit weights (``reduce_range``). VNNI (``VPDPBUSD``, AVX-512 VNNI or AVX-VNNI) and AMX add the
products in int32 and never saturate; ARM's dot-product kernels likewise. There, 8-bit weights
are closer to the float model (twice the levels): plain-PTQ agreement 91.6 / 98.8 / 98.6% vs
90.9 / 97.6 / 97.8% with 7-bit on three of the four benchmark students, at about the same
speed (benchmarks/results/int8_accuracy.md).

The only ONNX device profile is the host itself (``device_profiles/host.toml``, ORT CPU), so
the decision reads this machine's ``/proc/cpuinfo``. ``ExportConfig(onnx_reduce_range=...)``
overrides it (True: 7-bit, safe everywhere; False: 8-bit).
"""

from __future__ import annotations

import dataclasses
import platform
from pathlib import Path

# Flags whose presence means the int8 dot product accumulates in int32 (no int16 saturation).
_INT32_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@dataclasses.dataclass(frozen=True)
class WeightGrid:
    """The chosen ONNX int8 weight grid and the one-line reason the manifest records."""

    reduce_range: bool
    reason: str

    @property
    def bits(self) -> int:
        return 7 if self.reduce_range else 8

    def settings(self) -> dict[str, object]:
        return {"reduce_range": self.reduce_range, "weight_bits": self.bits, "weight_bits_reason": self.reason}


def cpu_flags(cpuinfo: str | None = None) -> tuple[str, ...]:
    """The ``flags`` line of /proc/cpuinfo (x86); () where there is none (ARM, macOS, no /proc)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return ()
    line = next((ln for ln in cpuinfo.splitlines() if ln.split(":")[0].strip() == "flags"), "")
    return tuple(line.partition(":")[2].split())


def choose_weight_grid(override: bool | None, *, machine: str | None = None, flags: tuple[str, ...] | None = None) -> WeightGrid:
    """7-bit weights only where ORT's x86 kernels would saturate (x86 without VNNI/AMX)."""
    if override is not None:
        return WeightGrid(override, f"set in ExportConfig (onnx_reduce_range={override})")
    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64", "i386", "i686"):
        return WeightGrid(False, f"{machine} CPU: ORT's ARM int8 kernels accumulate in int32, 8-bit weights are safe")
    flags = cpu_flags() if flags is None else flags
    fast = [f for f in _INT32_DOT_FLAGS if f in flags]
    if fast:
        return WeightGrid(False, f"x86 with {', '.join(fast)}: int32 dot products, 8-bit weights are exact and faster")
    return WeightGrid(True, "x86 without VNNI/AMX: VPMADDUBSW int16 sums saturate with 8-bit weights, 7-bit used")
