"""`edgecompress distill`: train a student from a teacher, writing a Checkpoint JSON.

torch is imported inside the command body so `edgecompress distill --help` stays light.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgecompress.cli.teacher_options import teacher_file_options
from edgecompress.methods import METHODS  # stdlib only: --help stays light


@click.command()
@teacher_file_options("Teacher: .pt2, TorchScript, state_dict (+ --entry-point), .onnx; or 'demo' for the built-in demo "
                      "teacher.", required=True, dest="teacher_path")
@click.option("--spec", "spec_path", required=True, type=click.Path(dir_okay=False), help="StudentSpec JSON (from `edgecompress select`).")
@click.option("--data", required=True, help="Built-in name (digits, shapes) or a data path.")
@click.option("--unlabeled", default=None, help="Unlabeled pool: a flat image folder, .npz, or shapes-pool.")
@click.option("--labeled-fraction", type=float, default=1.0, show_default=True, help="Share of the training labels to use.")
@click.option("--method", type=click.Choice(METHODS), default=None, help="Loss preset (default: the config's, else kd+unlabeled with unlabeled data and kd without).")
@click.option("--epochs", type=int, default=None, help="Epochs (default: the config's).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help="DistillConfig JSON (every field optional).")
@click.option("--seed", type=int, default=None, help="Seed for the split and the training.")
@click.option("--out", "out_dir", default="runs/distill", show_default=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--resume", is_flag=True, help="Continue from OUT/train_state.pt (same recipe).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the Checkpoint JSON.")
def distill(
    teacher_path: str, spec_path: str, data: str, unlabeled: str | None, labeled_fraction: float, method: str | None,
    epochs: int | None, config_path: str | None, seed: int | None, out_dir: str, resume: bool, entry_point: str | None,
    trust_checkpoint: bool | None, no_progress: bool, as_json: bool,
) -> None:
    """Distill a teacher into the student SPEC on DATA (ANC, unlabeled-data alignment, KD, ...)."""
    from edgecompress.artifacts import StudentSpec
    from edgecompress.distill import DistillConfig, load_teacher
    from edgecompress.distill import distill as run_distill
    from edgecompress.errors import ConfigError

    # Cheap checks first (files, config), then the teacher, then the data; all before training.
    spec = StudentSpec.load(spec_path)
    cfg_data: dict = {}
    if config_path is not None:
        try:
            cfg_data = json.loads(Path(config_path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"{config_path}: file not found") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{config_path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(cfg_data, dict):
            raise ConfigError(f"{config_path}: expected a JSON object of DistillConfig fields")
    overrides = {"method": method, "epochs": epochs, "seed": seed}
    cfg_data.update({k: v for k, v in overrides.items() if v is not None})
    if "method" not in cfg_data:
        from edgecompress.runconfig import default_method

        cfg_data["method"] = default_method(unlabeled is not None or labeled_fraction < 1)
    cfg = DistillConfig.from_dict(cfg_data, where=config_path or "distill config")
    norm: dict = {}
    if teacher_path == "demo":
        from edgecompress.data import BUILTIN
        from edgecompress.distill import demo_teacher, demo_teacher_info

        if data.partition(":")[0] not in BUILTIN:
            raise ConfigError(f"--teacher demo needs a built-in --data ({', '.join(BUILTIN)}), not {data!r}")
        teacher_path = str(demo_teacher(data, progress=not no_progress))
        info = demo_teacher_info(data)
        # feed the teacher data normalized exactly as in its own training
        norm = {"mean": tuple(info["mean"]), "std": tuple(info["std"])}
    teacher = load_teacher(teacher_path, entry_point=entry_point, trust_checkpoint=bool(trust_checkpoint))
    from edgecompress.data import load_task

    task = load_task(data, unlabeled=unlabeled, labeled_fraction=labeled_fraction, seed=cfg.seed, **norm)
    ckpt = run_distill(teacher, spec, task, cfg, out_dir, resume=resume, progress=not no_progress)
    path = Path(out_dir) / "checkpoint.json"
    if as_json:
        click.echo(ckpt.to_json())
        return
    m = ckpt.metrics
    agree = f", teacher agreement {m['test_agreement']:.1%}" if "test_agreement" in m else ""
    click.echo(f"{cfg.method.value}: test accuracy {m['test_acc']:.1%}{agree} (best epoch {int(m['best_epoch'])}) -> {path}")
