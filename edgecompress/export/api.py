"""`export_module`: any nn.Module -> checked ONNX / TFLite artifacts with manifests.

Order of work for each requested target (one provider per target, see registry.py):
build in a private work dir -> run through its own runtime on the validation set -> compare
with eager PyTorch -> copy into ``out_dir`` under a temp name and rename -> write its manifest
``<file>.json`` last. A file without its manifest never looks finished; the work dir is
removed whatever happens.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.artifacts import (
    ExportArtifact,
    ParityReport,
    Preprocessing,
    QuantAttempt,
    atomic_write_text,
    sha256_file,
)
from edgecompress.errors import ExportError, ParityError
from edgecompress.export import manifest
from edgecompress.export.config import ExportConfig
from edgecompress.export.context import ExportContext
from edgecompress.export.deploy import SUMMARY_NAME  # re-exported: callers import it from here
from edgecompress.export.formats import get_format
from edgecompress.export.formats import run as run_artifact
from edgecompress.export.parity import compare
from edgecompress.export.registry import Recipe, resolve
from edgecompress.export.tuning import has_qat, has_tuner, qat_only, tune


def _check_arrays(preprocessing: Preprocessing, calib_x: np.ndarray, val_x: np.ndarray, val_y: np.ndarray) -> None:
    """Bad arrays fail here, in one line, before any conversion starts."""
    want = tuple(preprocessing.input_shape)
    for name, arr in (("calib_x", calib_x), ("val_x", val_x)):
        if not isinstance(arr, np.ndarray) or arr.ndim != 4 or tuple(arr.shape[1:]) != want or len(arr) == 0:
            got = getattr(arr, "shape", type(arr).__name__)
            raise ExportError(f"export: {name} has shape {got}; expected (N, {', '.join(map(str, want))}) with N >= 1")
        if not np.all(np.isfinite(arr)):
            raise ExportError(f"export: {name} contains NaN or inf values")
    if not isinstance(val_y, np.ndarray) or val_y.ndim != 1 or len(val_y) != len(val_x):
        got = getattr(val_y, "shape", type(val_y).__name__)
        raise ExportError(f"export: val_y has shape {got}; expected ({len(val_x)},) integer labels matching val_x")


def _reference_logits(model: Any, x: np.ndarray, batch: int = 64) -> np.ndarray:
    import torch

    with torch.no_grad():
        outs = [model(torch.from_numpy(np.ascontiguousarray(x[i : i + batch], np.float32))) for i in range(0, len(x), batch)]
    ref = torch.cat(outs).float().numpy()
    if ref.ndim != 2:
        raise ExportError(f"export: the model returns shape {tuple(ref.shape)}; expected (batch, num_classes) logits")
    return ref


def _progress(total: int, enabled: bool | None) -> Any:
    from tqdm import tqdm

    disable = (not sys.stderr.isatty()) if enabled is None else not enabled
    return tqdm(total=total, desc="export", unit="target", file=sys.stderr, disable=disable)


def _place(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` via a hidden temp name in the same folder and an atomic rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; an artifact is meant to be shared and pushed
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _withdraw(out_dir: Path, filename: str) -> None:
    # A stale file of the same name from an earlier run must not pass for this run's result.
    (out_dir / f"{filename}.json").unlink(missing_ok=True)
    (out_dir / filename).unlink(missing_ok=True)


def export_module(
    model: Any,
    preprocessing: Preprocessing,
    config: ExportConfig,
    out_dir: str | os.PathLike[str],
    calib_x: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    *,
    progress: bool | None = None,
    checkpoint_sha256: str | None = None,
) -> list[ExportArtifact]:
    """Export ``model`` to every (format, precision) of ``config`` and gate each on parity.

    ``model`` takes NCHW float32 input already normalized per ``preprocessing`` and returns
    logits. ``calib_x`` (first ``config.calibration_size`` rows used; up to
    ``config.calibration_pool_size`` when int8 misses the gate and is tuned) calibrates int8;
    ``val_x``/``val_y`` (first ``config.parity_samples``) are the parity set. Returns the
    artifacts that were written; raises :class:`ParityError` (after writing those that passed)
    naming every artifact that failed and its numbers, unless ``config.enforce_parity`` or
    ``config.fail_on_miss`` is off (then the failures are only in ``export_summary.json``).
    """
    recipes = resolve(config.formats, config.precisions)
    for fmt in dict.fromkeys(r.format for r in recipes):
        get_format(fmt).check_installed()
    _check_arrays(preprocessing, calib_x, val_x, val_y)
    pool_size = max(config.calibration_size, config.calibration_pool_size if config.accuracy_aware else 0)
    pool = np.ascontiguousarray(calib_x[:pool_size], np.float32)
    calib_x = pool[: config.calibration_size]
    val_x = np.ascontiguousarray(val_x[: config.parity_samples], np.float32)
    val_y = np.asarray(val_y[: config.parity_samples]).astype(np.int64)

    model = model.eval()
    reference = _reference_logits(model, val_x)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".export-work-", dir=out))
    ctx = ExportContext(model, preprocessing, config, work, calib_x, calib_pool=pool, parity_x=val_x)
    written: list[ExportArtifact] = []
    failed: list[tuple[Recipe, str]] = []
    reports: list[dict[str, Any]] = []
    try:
        with _progress(len(recipes), progress) as bar:
            for recipe in recipes:
                bar.set_postfix_str(f"{recipe.format} {recipe.precision}")
                art, parity, problem, attempts = _export_one(recipe, ctx, out, reference, val_x, val_y, checkpoint_sha256)
                reports.append({"format": recipe.format, "precision": recipe.precision, "file": recipe.filename,
                                "written": art is not None, "error": problem, "parity": parity.to_dict(),
                                "attempts": [a.to_dict() for a in attempts],
                                "artifact": art.to_dict() if art else None})
                if art is not None:
                    written.append(art)
                if problem:
                    failed.append((recipe, problem))
                bar.update(1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        atomic_write_text(out / SUMMARY_NAME, _summary_json(reports, config))
    if failed and config.fail_on_miss:
        detail = "; ".join(f"{r.filename}: {why}" for r, why in failed)
        raise ParityError(f"export: parity gate failed for {len(failed)} of {len(recipes)} artifacts: {detail} "
                          f"(passed artifacts were written to {out}; numbers in {out / SUMMARY_NAME})")
    return written


def _export_one(
    recipe: Recipe,
    ctx: ExportContext,
    out: Path,
    reference: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    checkpoint_sha256: str | None,
) -> tuple[ExportArtifact | None, ParityReport, str | None, tuple[QuantAttempt, ...]]:
    """Build, check and place one target: (artifact or None if withheld, parity, problem or None,
    the accuracy-aware int8 attempts if plain PTQ missed the gate)."""
    cfg = ctx.config
    layout = get_format(recipe.format).layout(cfg.layout)

    def evaluate(path: Path) -> ParityReport:
        return compare(reference, run_artifact(recipe.format, path, val_x, cfg.layout), val_y, recipe.numeric, cfg)

    t0 = time.perf_counter()
    attempts: tuple[QuantAttempt, ...] = ()
    if cfg.qat and has_qat(recipe):
        built, parity, attempts = qat_only(recipe, ctx, evaluate)
    else:
        built = recipe.build(ctx)  # shared steps (ONNX graph, onnx2tf run) are charged to the first user
        build_s = time.perf_counter() - t0
        parity = evaluate(built.path)
        if not parity.passed and cfg.accuracy_aware and has_tuner(recipe):
            built, parity, attempts = tune(recipe, ctx, built, parity, build_s, evaluate)
    export_s = time.perf_counter() - t0
    log_rel = None
    if built.log is not None:  # kept whether or not the artifact passes: it is how to debug it
        log_rel = f"{recipe.format}_convert.log"
        _place(built.log, out / log_rel)
    if not parity.passed and cfg.enforce_parity:
        _withdraw(out, recipe.filename)
        numbers = (f"agreement {parity.top1_agreement:.2%}, acc delta {parity.acc_delta_pt:+.2f} pt, "
                   f"max abs diff {parity.max_abs_diff:.3g}")
        tried = f", best of {len(attempts)} accuracy-aware attempts" if attempts else ""
        return None, parity, f"{', '.join(parity.failures)} ({numbers}{tried})", attempts
    final = out / recipe.filename
    (out / f"{recipe.filename}.json").unlink(missing_ok=True)  # the manifest marks completion
    _place(built.path, final)
    art = ExportArtifact(
        path=str(final.resolve()),
        format=recipe.format,
        precision=recipe.precision,
        input=manifest.input_spec(final, recipe.format, ctx.preprocessing, layout),
        size_bytes=final.stat().st_size,
        sha256=sha256_file(final),
        op_counts=manifest.op_counts(final, recipe.format),
        parity=parity,
        export_s=round(export_s, 3),
        checkpoint_sha256=checkpoint_sha256,
        log=str((out / log_rel).resolve()) if log_rel else None,
        attempts=attempts,
        quant_settings=dict(built.settings),
    )
    art.save(out / f"{recipe.filename}.json")
    return art, parity, None, attempts  # a failure kept on purpose (enforce_parity off) is in art.parity


def _summary_json(reports: list[dict[str, Any]], config: ExportConfig) -> str:
    import dataclasses
    import json

    return json.dumps({"config": dataclasses.asdict(config), "targets": reports}, indent=2) + "\n"
