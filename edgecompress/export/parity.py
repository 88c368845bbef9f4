"""The parity gate: run each artifact through its own runtime and compare with eager PyTorch.

ONNX files run in ONNX Runtime (CPU provider), TFLite files in the LiteRT interpreter from
``ai-edge-litert`` (XNNPACK, as on the device), one sample at a time as the device runs them.
Quantized I/O is handled exactly as a device app must: quantize the float input with the
input tensor's scale and zero point, dequantize the output with the output's.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from edgecompress.artifacts import ParityReport
from edgecompress.errors import ExportError
from edgecompress.export.config import ExportConfig

_ORT_MISSING_KERNEL = re.compile(r"implementation for (\w+)\(\d+\) node with name '([^']*)'")


def run_onnx(path: Path, x_nchw: np.ndarray, batch: int = 64) -> np.ndarray:
    """Logits from ONNX Runtime for float32 NCHW input ``x_nchw``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
        match = _ORT_MISSING_KERNEL.search(str(exc))
        if match:
            raise ExportError(
                f"export: ONNX Runtime cannot run op {match.group(1)!r} at node {match.group(2)!r} in {path.name}"
            ) from None
        raise ExportError(f"export: ONNX Runtime cannot load {path.name}: {str(exc).splitlines()[0]}") from None
    name = sess.get_inputs()[0].name
    outs = [sess.run(None, {name: np.ascontiguousarray(x_nchw[i : i + batch], np.float32)})[0] for i in range(0, len(x_nchw), batch)]
    return np.concatenate(outs).astype(np.float32)


def load_interpreter(path: Path, threads: int = 1, delegate: bool = True):  # noqa: ANN201 - optional dep
    """A LiteRT interpreter with tensors allocated; ``delegate=False`` lists the model's own ops."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if delegate else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interp = Interpreter(model_path=str(path), num_threads=threads, experimental_op_resolver_type=resolver)
        interp.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        raise ExportError(f"export: the LiteRT interpreter cannot load {path.name}: {str(exc).splitlines()[0]}") from None
    return interp


def run_tflite(path: Path, x_nchw: np.ndarray, layout: str) -> np.ndarray:
    """Logits from the LiteRT interpreter, one sample per call, (de)quantizing int I/O."""
    interp = load_interpreter(path)
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    x = x_nchw if layout == "nchw" else x_nchw.transpose(0, 2, 3, 1)
    in_scale, in_zp = inp["quantization"]
    out_scale, out_zp = out["quantization"]
    results = []
    for i in range(len(x)):
        sample = x[i : i + 1].astype(np.float32)
        if np.issubdtype(inp["dtype"], np.integer):
            info = np.iinfo(inp["dtype"])
            sample = np.clip(np.round(sample / in_scale + in_zp), info.min, info.max)
        interp.set_tensor(inp["index"], sample.astype(inp["dtype"]))
        interp.invoke()
        y = interp.get_tensor(out["index"]).astype(np.float32)
        if np.issubdtype(out["dtype"], np.integer):
            y = (y - out_zp) * out_scale
        results.append(y.reshape(1, -1))
    return np.concatenate(results)


def compare(
    reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray, numeric: str, config: ExportConfig
) -> ParityReport:
    """Agreement, accuracy delta and max abs diff; ``passed`` applies the ``numeric`` rules.

    float32: max abs diff <= fp32_max_abs_diff and the accuracy-drop bound.
    float16: max abs diff <= fp16_max_rel_diff * max(1, max |reference|), agreement, accuracy.
    int8:    top-1 agreement and accuracy drop (logit differences are expected and reported).
    """
    if candidate.shape != reference.shape:
        raise ExportError(f"export: artifact output shape {candidate.shape} differs from PyTorch's {reference.shape}")
    diff = np.abs(candidate.astype(np.float64) - reference.astype(np.float64))
    # NaN/inf in the artifact (fp16 overflow, a broken kernel) must fail, not compare as False.
    max_abs = float(diff.max()) if np.all(np.isfinite(diff)) else math.inf
    ref_top = reference.argmax(1)
    cand_top = candidate.argmax(1)
    agreement = float((ref_top == cand_top).mean())
    acc_ref = float((ref_top == labels).mean() * 100)
    acc_art = float((cand_top == labels).mean() * 100)
    delta = acc_art - acc_ref
    failures: list[str] = []
    thresholds: dict[str, float] = {"max_acc_drop_pt": config.max_acc_drop_pt}
    if numeric == "float32":
        thresholds["max_abs_diff"] = config.fp32_max_abs_diff
    elif numeric == "float16":
        thresholds["max_abs_diff"] = config.fp16_max_rel_diff * max(1.0, float(np.abs(reference).max()))
        thresholds["min_top1_agreement"] = config.min_top1_agreement
    else:
        thresholds["min_top1_agreement"] = config.min_top1_agreement
    if "max_abs_diff" in thresholds and not max_abs <= thresholds["max_abs_diff"]:
        failures.append(f"max abs diff {max_abs:.3g} > {thresholds['max_abs_diff']:.3g}")
    if "min_top1_agreement" in thresholds and agreement < thresholds["min_top1_agreement"]:
        failures.append(f"top-1 agreement {agreement:.2%} < {thresholds['min_top1_agreement']:.2%}")
    if -delta > config.max_acc_drop_pt:
        failures.append(f"accuracy drop {-delta:.2f} pt > {config.max_acc_drop_pt:.2f} pt")
    return ParityReport(
        n_samples=int(len(labels)),
        top1_agreement=agreement,
        acc_reference=acc_ref,
        acc_artifact=acc_art,
        acc_delta_pt=delta,
        max_abs_diff=max_abs,
        passed=not failures,
        thresholds=thresholds,
        failures=tuple(failures),
    )
