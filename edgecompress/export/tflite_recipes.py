"""TFLite targets through onnx2tf: fp32, fp16, dynamic-range int8 and full-integer int8.

One onnx2tf run (in a child process, in a temporary directory, network blocked) writes every
TFLite precision at once; the four providers below pick their file from that run.

Offline: onnx2tf 1.29 loads ``calibration_image_sample_data_20x128x128x3_float32.npy`` for its
own per-op validation whenever the model has one 4-D 3-channel input, and downloads it from
GitHub unless the file is in the current directory — even when calibration data is given. We
run it in a directory that holds a deterministic array of that name and shape, so it never
reaches for the network (and the worker refuses every connection to prove it).

Calibration: the calibration subset, already normalized with the training preprocessing, is
given in the converted model's input layout (NHWC by default, NCHW when kept) with mean 0 and
std 1, so onnx2tf's ``(x - mean) / std`` leaves it unchanged.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.errors import ExportError, MissingExtraError
from edgecompress.export._onnx2tf_worker import BLOCKED_MARK
from edgecompress.export.context import INPUT_NAME, ExportContext
from edgecompress.export.onnx_recipes import fp32_onnx
from edgecompress.export.registry import Built, register_recipe
from edgecompress.export.worker import run_in_own_group

SAMPLE_NAME = "calibration_image_sample_data_20x128x128x3_float32.npy"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def require_tflite() -> None:
    """Fail fast, before any work, when the optional TFLite stack is missing."""
    for module, what in (("onnx2tf", "onnx2tf"), ("tensorflow", "tensorflow"), ("ai_edge_litert", "ai-edge-litert")):
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError(what, "tflite")


def write_offline_sample(folder: Path) -> Path:
    """The array onnx2tf would otherwise download: deterministic, float32, (20, 128, 128, 3)."""
    path = folder / SAMPLE_NAME
    rng = np.random.default_rng(20240607)
    np.save(path, rng.random((20, 128, 128, 3), dtype=np.float32))
    return path


def to_layout(x_nchw: np.ndarray, layout: str) -> np.ndarray:
    return np.ascontiguousarray(x_nchw if layout == "nchw" else x_nchw.transpose(0, 2, 3, 1), dtype=np.float32)


def static_batch_copy(src: Path, dst: Path) -> Path:
    """``src`` with its symbolic batch dimension fixed to 1, written to ``dst``."""
    import onnx

    m = onnx.load(str(src))
    for t in [*m.graph.input, *m.graph.output, *m.graph.value_info]:
        dims = t.type.tensor_type.shape.dim
        if len(dims) and dims[0].dim_param:
            dims[0].dim_value = 1
    onnx.save(m, str(dst))
    return dst


def run_onnx2tf(
    onnx_path: Path,
    work: Path,
    calib_nchw: np.ndarray,
    *,
    layout: str,
    integer: bool,
    dynamic: bool,
    io_dtype: str,
    timeout_s: float,
    log_path: Path,
) -> Path:
    """Convert ``onnx_path`` with onnx2tf in ``work``; return the folder holding the .tflite files."""
    # The converter runs with ``work`` as its working directory: every path handed to it must
    # be absolute, or a relative --out (the default `runs/...`) points nowhere.
    work, onnx_path, log_path = work.resolve(), onnx_path.resolve(), log_path.resolve()
    work.mkdir(parents=True, exist_ok=True)
    write_offline_sample(work)
    calib = to_layout(calib_nchw, layout)
    calib_path = work / "calibration.npy"
    np.save(calib_path, calib)
    channels = calib.shape[1] if layout == "nchw" else calib.shape[-1]
    stat_shape = (1, channels, 1, 1) if layout == "nchw" else (1, 1, 1, channels)
    out = work / "tflite"
    # onnx2tf rewrites its input file in place (onnxsim, op renaming): give it a private copy,
    # with the batch fixed to 1. With a symbolic batch onnx2tf 1.29 mis-transposes one operand
    # of some residual Adds (ResNets with two identity blocks in a row, wide MobileNets); the
    # same graphs convert exactly with a static batch. Device runtimes run batch 1 anyway.
    private_onnx = static_batch_copy(onnx_path, work / onnx_path.name)
    request = {
        "onnx": str(private_onnx.resolve()),
        "out": str(out),
        "calib": str(calib_path),
        "mean": np.zeros(stat_shape, np.float32).tolist(),
        "std": np.ones(stat_shape, np.float32).tolist(),
        "input_name": INPUT_NAME,
        "integer": integer,
        "dynamic": dynamic,
        "io_dtype": "int8" if io_dtype == "float32" else io_dtype,
        "keep_nchw": layout == "nchw",
    }
    code, text = run_worker("edgecompress.export._onnx2tf_worker", request, work, log_path, timeout_s, "onnx2tf")
    if code != 0:
        raise ExportError(_failure_message(text, code, log_path, onnx_path))
    return out


def run_worker(module: str, request: dict[str, Any], work: Path, log_path: Path, timeout_s: float,
               what: str) -> tuple[int, str]:
    """Run ``python -m module request.json`` in ``work``, its own process group, output to
    ``log_path``; return (exit status, log text without ANSI colours). Raises ExportError on a
    timeout or when the worker tried the network (the worker blocks and reports it)."""
    req_path = work / "request.json"
    req_path.write_text(json.dumps(request), encoding="utf-8")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="-1", PYTHONUNBUFFERED="1")
    # onnx2tf runs the `onnxsim` console script by name: put this interpreter's bin dir first
    # so it is found even when the virtual environment is not activated.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    pkg_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH", "")) if p)
    argv = [sys.executable, "-m", module, str(req_path)]
    with open(log_path, "wb") as log:
        # cwd=work is what keeps onnx2tf offline: it looks for SAMPLE_NAME in the CWD. Its own
        # process group: an interrupted export leaves no orphan converter (export/worker.py).
        returncode = run_in_own_group(argv, cwd=work, stdout=log, env=env, timeout_s=timeout_s)
        if returncode is None:
            raise ExportError(f"export: {what} did not finish within {timeout_s:.0f} s (log: {log_path})")
    text = _ANSI.sub("", log_path.read_text(encoding="utf-8", errors="replace"))
    if BLOCKED_MARK in text:
        raise ExportError(f"export: {what} tried to use the network, which edgecompress forbids (log: {log_path})")
    return returncode, text


def _failure_message(log_text: str, returncode: int, log_path: Path, onnx_path: Path) -> str:
    """Name the ONNX op and node onnx2tf choked on, when its log says; else the log's tail."""
    ops = re.findall(r"onnx_op_type:\s*(\S+)", log_text) or re.findall(r"(\w+) OP is not yet implemented", log_text)
    nodes = re.findall(r"onnx_op_name:\s*(\S+)", log_text)
    if ops:
        node = nodes[-1] if nodes else _first_node_of_type(onnx_path, ops[-1])
        where = f" at node {node!r}" if node else ""
        return f"export: onnx2tf cannot convert op {ops[-1]!r}{where} (log: {log_path})"
    lines = [ln.strip() for ln in log_text.splitlines() if ln.strip()]
    tail = " | ".join(lines[-3:])[-400:]
    return f"export: onnx2tf failed with exit code {returncode}: {tail} (log: {log_path})"


def _first_node_of_type(onnx_path: Path, op_type: str) -> str | None:
    import onnx

    try:
        graph = onnx.load(str(onnx_path), load_external_data=False).graph
    except Exception:  # the log line alone is still worth reporting
        return None
    return next((n.name or n.output[0] for n in graph.node if n.op_type == op_type), None)


def onnx2tf_outputs(ctx: ExportContext, calib: np.ndarray | None = None, name: str = "onnx2tf") -> tuple[Path, Path]:
    """Run onnx2tf once per export and calibration set (memoized): (folder of .tflite files, log path)."""

    def build() -> tuple[Path, Path]:
        cfg = ctx.config
        log = ctx.work_dir / f"{name}.log"
        folder = run_onnx2tf(
            fp32_onnx(ctx),
            ctx.work_dir / name,
            ctx.calib_x if calib is None else calib,
            layout=cfg.layout,
            integer=any(p in ("int8", "full-int8") for p in cfg.precisions),
            dynamic="dynamic-int8" in cfg.precisions and calib is None,  # a re-run is for full-int8 only
            io_dtype=cfg.int8_io,
            timeout_s=cfg.converter_timeout_s,
            log_path=log,
        )
        return folder, log

    return ctx.once(name, build)


def _pick(run: tuple[Path, Path], stem: str, suffix: str) -> Built:
    folder, log = run
    path = folder / f"{stem}_{suffix}.tflite"
    if not path.is_file():
        found = ", ".join(sorted(p.name for p in folder.glob("*.tflite"))) or "none"
        raise ExportError(f"export: onnx2tf wrote no {path.name} (found: {found}; log: {log})")
    return Built(path, log)


@register_recipe("tflite", "fp32", filename="model_fp32.tflite", numeric="float32")
def _tflite_fp32(ctx: ExportContext) -> Built:
    return _pick(onnx2tf_outputs(ctx), fp32_onnx(ctx).stem, "float32")


@register_recipe("tflite", "fp16", filename="model_fp16.tflite", numeric="float16")
def _tflite_fp16(ctx: ExportContext) -> Built:
    # fp16 weights, dequantized at load time: half the file size; XNNPACK runs it in fp32
    # (or fp16 where the CPU has FP16 arithmetic).
    return _pick(onnx2tf_outputs(ctx), fp32_onnx(ctx).stem, "float16")


@register_recipe("tflite", "dynamic-int8", filename="model_dynamic_int8.tflite", numeric="int8")
def _tflite_dynamic(ctx: ExportContext) -> Built:
    return _pick(onnx2tf_outputs(ctx), fp32_onnx(ctx).stem, "dynamic_range_quant")


@register_recipe("tflite", "full-int8", filename="model_full_int8.tflite", numeric="int8")
def _tflite_full_int8(ctx: ExportContext) -> Built:
    # int8 weights and activations everywhere; the I/O tensors are int8/uint8 (scale and zero
    # point in the manifest) unless float32 I/O was asked for (onnx2tf's "integer_quant").
    return full_int8_from(ctx, onnx2tf_outputs(ctx), len(ctx.calib_x))


def full_int8_from(ctx: ExportContext, run: tuple[Path, Path], images: int) -> Built:
    """The full-int8 file of one onnx2tf run, with the settings it was quantized with."""
    suffix = "integer_quant" if ctx.config.int8_io == "float32" else "full_integer_quant"
    built = _pick(run, fp32_onnx(ctx).stem, suffix)
    # The TFLite converter's calibrator has one range setting (min/max of what it sees).
    settings = {"calibrate_method": "minmax", "images": images, "per_channel": True, "io": ctx.config.int8_io}
    return Built(built.path, built.log, settings)
