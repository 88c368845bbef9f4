"""Device runtimes as registered providers: everything the pipeline needs to know about one
(stdlib only, so profiles validate against it without importing torch).

A ``RuntimeProvider`` says which artifact format the runtime executes, which export recipe each
profile precision maps to, the RAM the runtime itself holds (the peak-RAM model adds it), which
benchmark runners can measure its artifacts, and which artifact it deploys. ``profiles``,
``select``, ``pipeline``, ``summary``, ``runcheck`` and the latency calibration all read these
fields; none of them names a runtime. Adding a runtime is one ``register_runtime(...)`` call
(ExecuTorch's backend providers are the model); an unknown ``runtime.kind`` in a profile fails
at profile load with the registered names.
"""

from __future__ import annotations

import dataclasses

from edgecompress.errors import ProfileError


@dataclasses.dataclass(frozen=True)
class RuntimeProvider:
    kind: str  # the profile's runtime.kind
    artifact_format: str  # the export format it executes ("tflite", "onnx", ...)
    recipes: dict[str, str]  # profile precision -> the export precision that implements it
    ram_overhead_mb: float  # interpreter / session arenas, beyond weights and activations (assumed)
    runners: tuple[str, ...]  # benchmark runner kinds that can measure its artifacts
    description: str = ""
    # Per precision, the runtime-specific conv layout rules calibration may choose besides the
    # general padding ones (``cost.estimate.PADDING_RULES``): kernel-selection rules it documents.
    padding_rules: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def recipe(self, precision: str) -> str:
        """The export precision for a profile precision (``int8`` -> ``full-int8`` for TFLite)."""
        if precision not in self.recipes:
            raise ProfileError(f"runtime {self.kind} has no recipe for precision {precision!r} "
                               f"(it supports {', '.join(self.recipes)})")
        return self.recipes[precision]

    def deployed(self, precisions: tuple[str, ...] | list[str], chosen: str | None = None) -> tuple[str, str]:
        """The (format, export precision) a build deploys among a profile's precisions: the one
        selection chose (``chosen``: the precision it predicted fastest on the device and checked
        the budgets with), else int8 when the profile allows it, else the first one it lists.

        Selection and deployment must agree: a calibrated ONNX Runtime on an x86 host runs a tiny
        student slower in int8 than in fp32 (per-kernel overheads), and selection then predicts
        and budgets fp32; deploying int8 anyway would ship the slower file under fp32's figures."""
        precision = chosen if chosen in precisions else "int8" if "int8" in precisions else precisions[0]
        return self.artifact_format, self.recipe(precision)

    def executes(self, artifact_format: str) -> bool:
        """Whether artifacts of this format run on the device (what a device benchmark measures)."""
        return artifact_format == self.artifact_format

    def measures_on_device(self) -> bool:
        """Whether a build can benchmark its artifacts on a phone or board (not only locally)."""
        return any(r != "local" for r in self.runners)


_RUNTIMES: dict[str, RuntimeProvider] = {}


def register_runtime(provider: RuntimeProvider) -> RuntimeProvider:
    """Register ``provider`` under its kind; a second provider of the same kind is an error."""
    if provider.kind in _RUNTIMES:
        raise ValueError(f"runtime {provider.kind!r} is already registered")
    _RUNTIMES[provider.kind] = provider
    return provider


def get_runtime(kind: str, where: str = "runtime.kind") -> RuntimeProvider:
    if kind not in _RUNTIMES:
        raise ProfileError(f"{where} = {kind!r} is not a registered runtime (allowed: {', '.join(_RUNTIMES)})")
    return _RUNTIMES[kind]


def list_runtimes() -> list[str]:
    return list(_RUNTIMES)


# The RAM overheads are the intercepts `calibrate` fitted to measured peaks (peak RSS over the
# runtime's baseline after import, fresh process, 30 probes) on two x86 hosts, Intel Xeon and AMD
# EPYC: 3.74-3.82 MB for LiteRT, 9.30-9.79 MB for ONNX Runtime. The earlier assumed 2 / 8 MB were
# within ±20% of the measured peak for ~37% of held-out models, always under. A device's own
# `calibrate` replaces them with its fit.
# LiteRT (TFLite) with XNNPACK: phones over adb, boards over ssh, and the host.
register_runtime(RuntimeProvider(
    "tflite-xnnpack", "tflite", {"fp32": "fp32", "fp16": "fp16", "int8": "full-int8"}, 3.8, ("local", "adb", "ssh"),
    "LiteRT / TFLite interpreter with the XNNPACK delegate",
))
# ONNX Runtime's CPU provider: measured on the host (the device harnesses run .tflite).
register_runtime(RuntimeProvider(
    "onnxruntime-cpu", "onnx", {"fp32": "fp32", "fp16": "fp16", "int8": "int8"}, 9.6, ("local",),
    "ONNX Runtime, CPU execution provider",
    # MLAS's symmetric int8 conv kernels take only some channel counts; the rest run a generic path.
    padding_rules={"int8": ("sym",)},
))
