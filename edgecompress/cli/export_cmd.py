"""`edgecompress export`: checkpoint -> ONNX / TFLite artifacts, each parity-checked."""

from __future__ import annotations

import json

import click

from edgecompress.cli.teacher_options import teacher_file_options
from edgecompress.errors import ExportError
from edgecompress.export.config import LAYOUTS, PRECISIONS, ExportConfig, parse_list
from edgecompress.export.formats import list_formats


@click.command()
@click.option("--checkpoint", "checkpoint", required=True, type=click.Path(dir_okay=False), help="checkpoint.json written by `edgecompress distill`.")
@click.option("--format", "formats", default="onnx,tflite", show_default=True, help=f"Comma list of {', '.join(list_formats())}.")
@click.option("--precision", "precisions", default="fp32,int8", show_default=True, help=f"Comma list of {', '.join(PRECISIONS)} (int8 = QDQ for ONNX, full-int8 for TFLite).")
@click.option("--out", "out_dir", default="export", show_default=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--layout", type=click.Choice(LAYOUTS), default="nhwc", show_default=True, help="TFLite input layout (ONNX is always NCHW).")
@click.option("--int8-io", type=click.Choice(["int8", "uint8", "float32"]), default="int8", show_default=True, help="Input/output tensor type of the TFLite full-int8 model.")
@click.option("--calibration-size", type=click.IntRange(min=1), default=256, show_default=True, help="Calibration samples for int8.")
@click.option("--parity-samples", type=click.IntRange(min=1), default=1000, show_default=True, help="Validation samples for the parity gate.")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset.")
@teacher_file_options("Teacher file; only for the pruned-teacher student family.")
@click.option("--keep-failing", is_flag=True, help="Measure parity but keep artifacts that fail it (no gate).")
@click.option("--plain-ptq", is_flag=True, help="int8: plain post-training quantization only; no better calibration or "
              "layers kept in float when it misses the parity gate (see docs/export.md).")
@click.option("--qat", is_flag=True, help="int8: build from a quantization-aware fine-tune of the student (matching its "
              "float logits on the calibration images) instead of trying post-training quantization first.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the artifacts as JSON.")
def export(
    checkpoint: str,
    formats: str,
    precisions: str,
    out_dir: str,
    layout: str,
    int8_io: str,
    calibration_size: int,
    parity_samples: int,
    opset: int,
    teacher: str | None,
    entry_point: str | None,
    trust_checkpoint: bool | None,
    keep_failing: bool,
    plain_ptq: bool,
    qat: bool,
    no_progress: bool,
    as_json: bool,
) -> None:
    """Export a distilled student to ONNX and/or TFLite and check each file against PyTorch.

    \b
    Every artifact runs through its own runtime (ONNX Runtime, the LiteRT interpreter) on the
    validation split; one that disagrees beyond the thresholds fails the export (exit 2).
    Writes model_<precision>.<onnx|tflite>, a manifest <file>.json beside each, and
    export_summary.json.
    """
    if qat and plain_ptq:
        raise ExportError("export: --qat and --plain-ptq exclude each other (--qat skips post-training quantization)")
    config = ExportConfig(
        formats=parse_list(formats, "--format", list_formats()),
        precisions=parse_list(precisions, "--precision", PRECISIONS),
        layout=layout,
        int8_io=int8_io,
        calibration_size=calibration_size,
        parity_samples=parity_samples,
        opset=opset,
        enforce_parity=not keep_failing,
        accuracy_aware=not plain_ptq,
        qat=qat,
    )
    from edgecompress.export.checkpoint import export as run_export  # heavy: torch, onnx

    teacher_module = None
    if teacher:
        from edgecompress.distill import load_teacher

        teacher_module = load_teacher(teacher, entry_point=entry_point, trust_checkpoint=bool(trust_checkpoint)).module
    artifacts = run_export(checkpoint, config, out_dir, teacher=teacher_module, progress=False if no_progress else None)
    if as_json:
        click.echo(json.dumps([a.to_dict() for a in artifacts], indent=2))
        return
    for a in artifacts:
        p = a.parity
        parity = (
            f"agree {p.top1_agreement:6.2%}  acc {p.acc_delta_pt:+.2f} pt  max|d| {p.max_abs_diff:.2g}  {'ok' if p.passed else 'FAIL'}"
            if p
            else "-"
        )
        click.echo(f"{a.format:6s} {a.precision:12s} {a.size_bytes / 1024:8.1f} KiB  {parity}  {a.path}")
