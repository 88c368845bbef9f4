"""``estimate_cost(model, input_shape)``: MACs, params, peak activation memory, file size per precision.

Also the per-kernel-type feature vector the latency predictor is fitted on, and a printable
per-layer table.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from edgecompress.artifacts import CostEstimate, StudentSpec
from edgecompress.cost.layers import KERNEL_TYPES, LayerCost
from edgecompress.cost.memory import peak_activation_elems

if TYPE_CHECKING:
    from torch import nn

BYTES_PER_ELEM = {"fp32": 4, "fp16": 2, "int8": 1}
# Flatbuffer / protobuf framing per operator and per file. Order-of-magnitude numbers read off
# small exported models (an ONNX node with names and attributes, a TFLite operator + tensor
# table entry); they matter only for tiny models.
FILE_OVERHEAD_BYTES = 2048
PER_KERNEL_OVERHEAD_BYTES = 256
# int8 files carry per-output-channel quantization parameters and, in ONNX, a Quantize /
# Dequantize pair with its own named scale and zero point around every tensor, so their framing
# differs by format: (per file, per kernel, per output channel) bytes. Per channel from the
# formats: TFLite float32 scale + int64 zero point for the weights, int32 bias with its own
# scale and int64 zero point (28); ONNX QDQ float32 scale + int8 zero point, int32 bias with a
# float32 scale and int32 zero point (17). Per file and per kernel read off 48 exported students
# (within 5% of every file; the first latency-predictor run's probes and held-out set, which is
# why its committed figures come from a fresh held-out seed).
INT8_FRAMING = {"onnx": (2048, 1970, 17), "tflite": (3792, 268, 28)}


@dataclasses.dataclass(frozen=True)
class ModelCost:
    """Everything the cost model knows about one model (the CostEstimate plus its layers)."""

    layers: tuple[LayerCost, ...]
    macs: int
    params: int
    peak_activation_elems: int
    size_bytes: dict[str, int]
    features: dict[str, float]

    def peak_activation_bytes(self, precision: str = "fp32") -> int:
        return self.peak_activation_elems * BYTES_PER_ELEM[precision]

    def to_estimate(self, precision: str = "fp32", predicted_latency_ms: float | None = None,
                    runtime: str | None = None) -> CostEstimate:
        return CostEstimate(self.macs, self.params, self.peak_activation_bytes(precision), dict(self.size_bytes),
                            predicted_latency_ms, runtime, precision if predicted_latency_ms is not None else None)


# SIMD channel blocks a CPU runtime pads convolutions to: ONNX Runtime's NCHWc layout rounds
# channels up to 8 (AVX2) or 16 (AVX-512) floats, XNNPACK packs output channels in tiles of its
# micro-kernel width. A 24-channel conv then costs a 32-channel one: 1.3x its MACs. How much is
# padded differs by runtime (PADDING_RULES); features ``<type>_macs@<layout>`` /
# ``<type>_mem@<layout>`` hold the padded figures and calibration picks the layout per runtime
# by leave-one-out over its probes.
CHANNEL_BLOCKS = (8, 16)
# "io": outputs, and a dense conv's inputs once there is more than one block of them (NCHWc
# keeps activations in blocks from conv to conv). "out": output channels only (XNNPACK reads a
# GEMM's inputs as they are: a 4-channel layer costs a 16-channel one, but its input is not
# padded). Measured on the AMD EPYC: "out" predicts LiteRT's narrow nets better, "io" ORT's.
GENERAL_RULES = ("io", "out")
# "sym": ONNX Runtime's int8 convs on x86 (MLAS). Its symmetric int8 conv kernels take a dense
# conv whose input channels are a multiple of 4 and whose output channels are >= 16 and a
# multiple of 8, and a depthwise conv whose channels are a multiple of 16; any other conv runs a
# generic im2col + int8 GEMM path with its output channels packed to the block, several times
# slower per MAC (profiled on the AMD EPYC: an 8->8 3x3 conv at 32x32 took 32 us, a 16->16 one
# with 4x the MACs 22 us). Under "sym" those convs' MACs leave their kernel type for
# ``GENERIC_MACS``, which has its own coefficient. Only runtimes that declare the rule are
# offered it (``runtimes.RuntimeProvider.padding_rules``).
PADDING_RULES = (*GENERAL_RULES, "sym")
GENERIC_MACS = "gen_macs"
UNPADDED = "1"
_PADDED = ("conv", "pw", "dw")


def layout_key(block: int, rule: str = "io") -> str:
    """The feature-key suffix of convs padded to ``block`` channels by ``rule`` ("1": unpadded).
    The "io" keys are the bare block ("@16"), as calibration files before the rules stored them."""
    if block <= 1:
        return UNPADDED
    if rule not in PADDING_RULES:
        raise ValueError(f"padding rule {rule!r}: choose one of {', '.join(PADDING_RULES)}")
    return str(block) if rule == "io" else f"{rule}{block}"


# The (block, rule) pairs calibration chooses from for every runtime; block 1 is no padding.
PADDING_CHOICES = ((1, "none"), *((b, r) for r in GENERAL_RULES for b in CHANNEL_BLOCKS))


def _pad(c: int, block: int) -> int:
    return -(-c // block) * block


def _padding(c: LayerCost, block: int, rule: str) -> tuple[float, float]:
    """(input, output) channel factors of a conv padded to ``block`` by ``rule``: outputs always
    (the packed weights and the output buffer are in blocks); under "io" a dense conv's inputs
    too once there is more than one block of them (the first layers read their few channels as
    they are)."""
    cout = max(c.out_channels, 1)
    out_f = _pad(cout, block) / cout
    if c.kernel == "dw":
        return out_f, out_f
    if rule == "out":
        return 1.0, out_f
    cin = max(c.in_channels // max(c.groups, 1), 1)
    return (_pad(cin, block) / cin if cin > block else 1.0), out_f


def _mlas_sym(c: LayerCost) -> bool:
    """Whether ONNX Runtime's x86 symmetric int8 conv kernels take this conv (see "sym")."""
    if c.kernel == "dw":
        return c.out_channels % 16 == 0
    cin = max(c.in_channels // max(c.groups, 1), 1)
    return cin % 4 == 0 and c.out_channels >= 16 and c.out_channels % 8 == 0


def kernel_features(layers: list[LayerCost] | tuple[LayerCost, ...]) -> dict[str, float]:
    """Per kernel type: MACs, elements moved (inputs + output + weights) and kernel count; for
    convolutions also the same with channels padded to each of ``CHANNEL_BLOCKS`` by each of
    ``GENERAL_RULES``, and split by the "sym" rule."""
    padded = [(b, r, layout_key(b, r)) for r in GENERAL_RULES for b in CHANNEL_BLOCKS]
    sym = [(b, layout_key(b, "sym")) for b in CHANNEL_BLOCKS]
    f: dict[str, float] = {GENERIC_MACS: 0.0}
    for t in KERNEL_TYPES:
        f[f"{t}_macs"] = f[f"{t}_mem"] = f[f"{t}_n"] = 0.0
    for t in _PADDED:
        for lay in [lay for *_, lay in padded] + [lay for _, lay in sym]:
            f[f"{t}_macs@{lay}"] = f[f"{t}_mem@{lay}"] = 0.0
    for _, lay in sym:
        f[f"{GENERIC_MACS}@{lay}"] = 0.0
    for c in layers:
        if c.kernel is None:
            continue
        f[f"{c.kernel}_macs"] += c.macs
        f[f"{c.kernel}_mem"] += c.in_elems + c.out_elems + c.weight_elems
        f[f"{c.kernel}_n"] += 1
        if c.kernel in _PADDED:
            for b, r, lay in padded:
                fi, fo = _padding(c, b, r)
                f[f"{c.kernel}_macs@{lay}"] += c.macs * fi * fo
                f[f"{c.kernel}_mem@{lay}"] += c.in_elems * fi + c.out_elems * fo + c.weight_elems * fi * fo
            fast = _mlas_sym(c)
            for b, lay in sym:
                if fast:
                    f[f"{c.kernel}_macs@{lay}"] += c.macs
                else:  # the generic path packs output channels to the block, as "out" does
                    f[f"{GENERIC_MACS}@{lay}"] += c.macs * _padding(c, b, "out")[1]
    for t in _PADDED:  # "sym" moves MACs between terms; the memory moved is the unpadded one
        for _, lay in sym:
            f[f"{t}_mem@{lay}"] = f[f"{t}_mem"]
    return f


def file_sizes(layers: list[LayerCost] | tuple[LayerCost, ...]) -> dict[str, int]:
    """Exported file size per precision (``int8@onnx`` / ``int8@tflite`` per format). BN folds
    into a per-channel bias; int8 keeps int32 biases and per-output-channel quantization parameters."""
    weights = sum(c.weight_elems for c in layers)
    biases = sum(c.out_channels for c in layers if c.weight_elems)
    # Parameters of layers that stay unfused (a BN without a conv before it) remain float.
    other = sum(c.params for c in layers if c.kernel == "elem")
    n_kernels = sum(1 for c in layers if c.kernel is not None)
    frame = FILE_OVERHEAD_BYTES + PER_KERNEL_OVERHEAD_BYTES * n_kernels
    out = {
        "fp32": frame + 4 * (weights + biases + other),
        "fp16": frame + 2 * (weights + biases + other),
    }
    for fmt, (per_file, per_kernel, per_channel) in INT8_FRAMING.items():
        out[f"int8@{fmt}"] = per_file + per_kernel * n_kernels + weights + per_channel * biases + 4 * other
    # Where the format is not known (a teacher's ratio, a format-neutral table): the larger one.
    out["int8"] = max(out[f"int8@{fmt}"] for fmt in INT8_FRAMING)
    return out


def size_for(size_bytes: dict[str, int], precision: str, fmt: str | None = None) -> int:
    """The predicted file size of ``precision`` in ``fmt`` (an export format), the format-neutral
    figure when there is no format-specific one (fp32, fp16, older spec files)."""
    return size_bytes.get(f"{precision}@{fmt}", size_bytes[precision]) if fmt else size_bytes[precision]


def costs_from_layers(layers: list[LayerCost], params: int | None = None) -> ModelCost:
    """Aggregate a layer list (from the traced graph or the arch fast path) into a ModelCost."""
    peak, _ = peak_activation_elems(layers)
    return ModelCost(
        layers=tuple(layers),
        macs=sum(c.macs for c in layers if c.kernel in ("conv", "pw", "dw", "fc")),
        params=sum(c.params for c in layers) if params is None else params,
        peak_activation_elems=peak,
        size_bytes=file_sizes(layers),
        features=kernel_features(layers),
    )


def model_cost(model: nn.Module, input_shape: tuple[int, int, int]) -> ModelCost:
    """Cost a model (real or on the ``meta`` device) for a batch-1 input of ``input_shape``."""
    from edgecompress.cost.graph import layer_costs

    return costs_from_layers(layer_costs(model, input_shape), sum(p.numel() for p in model.parameters()))


def estimate_cost(model: nn.Module, input_shape: tuple[int, int, int], precision: str = "fp32") -> CostEstimate:
    """The contract entry point: a CostEstimate for ``model`` (activations sized for ``precision``)."""
    return model_cost(model, input_shape).to_estimate(precision)


def spec_cost(spec: StudentSpec, teacher: nn.Module | None = None) -> ModelCost:
    """Cost of a spec's model: from the arch string when the family's arch is a BlockNet block
    string (fast, no torch), else by building its skeleton and tracing it."""
    from edgecompress.students import create_student, get_family

    if get_family(spec.family).arch_cost:
        from edgecompress.cost.arch_cost import arch_layer_costs

        return costs_from_layers(arch_layer_costs(spec.arch, spec.width_mult, spec.input_shape, spec.num_classes))
    return model_cost(create_student(spec, teacher, skeleton=True), spec.input_shape)


def format_layer_table(cost: ModelCost) -> str:
    """A human per-layer table (name, op, kernel, output shape, MACs, params)."""
    rows = [("layer", "op", "kernel", "output", "MACs", "params")]
    for c in cost.layers:
        kernel = c.kernel or (f"-> {c.alias_of}" if c.alias_of else "-")
        rows.append((c.name, c.op, kernel, "x".join(map(str, c.out_shape)), f"{c.macs:,}", f"{c.params:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows)
