"""The distillation loop. Read it top to bottom: ``distill`` -> ``student_step`` ->
``discriminator_step`` -> ``evaluate``.

One step = one batch of labeled rows followed by unlabeled rows; the teacher labels every
row, the student is updated on the weighted loss terms (registry in :mod:`losses`), then the
discriminators are updated on the *same*, detached features (the usual alternating GAN
schedule: the discriminators always judge the student that produced the loss just minimized).
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from edgecompress.artifacts import Checkpoint, StudentSpec, atomic_write_text, sha256_file
from edgecompress.distill import distributed as D
from edgecompress.distill.config import DistillConfig
from edgecompress.distill.loss_registry import needing
from edgecompress.distill.losses import LOSSES, Mix, StepTensors
from edgecompress.distill.preflight import check_inputs, check_student
from edgecompress.distill.setup import Run, build_run, fingerprint, make_streams, student_forward, student_params
from edgecompress.distill.state import load_state, rng_state, save_state, save_weights, set_rng_state
from edgecompress.distill.streams import mix_batch, mix_seed, stack_dataset
from edgecompress.distill.teacher import Teacher
from edgecompress.errors import DistillError

STATE_FILE = "train_state.pt"
BEST_FILE = "student.pt"


# --------------------------------------------------------------------------- forward


def _check_finite(values: torch.Tensor, names: list[str], where: str) -> None:
    if not bool(torch.isfinite(values).all()):
        bad = [f"{n} = {float(v)}" for n, v in zip(names, values, strict=True) if not math.isfinite(float(v))]
        raise DistillError(f"non-finite loss at {where}: {', '.join(bad)}; lower lr or check the data")


# --------------------------------------------------------------------------- the two steps


def student_step(run: Run, x: torch.Tensor, y: torch.Tensor | None, n_labeled: int, where: str,
                 mix: Mix | None = None) -> tuple[StepTensors, torch.Tensor]:
    """One optimizer step of the student (and its adapters) on the weighted loss terms. The
    teacher sees exactly the (augmented, possibly mixed) images the student sees: consistent
    views, the condition under which matching the teacher's function transfers it."""
    run.student.train()
    t_logits = t_emb = None
    if run.teacher is not None and needing(run.weights, "teacher"):
        out = run.teacher(x)  # no_grad inside: the teacher is frozen
        t_logits, t_emb = out.logits.to(run.device), (None if out.embedding is None else out.embedding.to(run.device))
    x = x.to(run.device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if run.device.type == "cuda" else contextlib.nullcontext()
    with autocast:
        s_logits, s_emb, s_low = student_forward(run, x)
        t = StepTensors(s_logits.float(), s_emb.float(), s_low, t_logits, t_emb, None if y is None else y.to(run.device), n_labeled,
                        None if mix is None else Mix(mix.perm.to(run.device), mix.lam.to(run.device)))
        terms = {name: LOSSES[name].fn(t, run.parts, run.cfg) for name in run.weights}
    values = torch.stack([v.detach().float() for v in terms.values()])
    _check_finite(values, list(terms), where)
    loss = sum(run.weights[name] * value for name, value in terms.items())
    run.opt.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[union-attr]
    if run.dist.enabled:
        D.average_gradients(student_params(run), run.dist)
    run.opt.step()
    run.sched.step()
    return t, values


def discriminator_step(run: Run, t: StepTensors, where: str) -> torch.Tensor | None:
    """One step of the discriminators on detached features: this step moves only them."""
    if run.disc_opt is None:
        return None
    losses = []
    for name in run.weights:  # each term's own discriminator step (see loss_registry)
        step = LOSSES[name].disc_loss
        value = step(t, run.parts, run.cfg) if step is not None else None
        if value is not None:
            losses.append(value)
    if not losses:
        return None
    loss = sum(losses)
    _check_finite(torch.stack([v.detach() for v in losses]), ["discriminator"] * len(losses), where)
    run.disc_opt.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[union-attr]
    D.average_gradients(run.parts.disc_params(), run.dist)
    run.disc_opt.step()
    return loss.detach()  # type: ignore[union-attr]


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, device: torch.device, batch: int = 512) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i : i + batch].to(device)).argmax(1).cpu() for i in range(0, len(x), batch)])


@torch.no_grad()
def teacher_predict(teacher: Teacher, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    return torch.cat([teacher(x[i : i + batch]).logits.argmax(1) for i in range(0, len(x), batch)])


def evaluate(student: nn.Module, split: tuple[torch.Tensor, torch.Tensor], teacher_pred: torch.Tensor | None, device: torch.device) -> dict[str, float]:
    x, y = split
    pred = predict(student, x, device)
    out = {"acc": float((pred == y).float().mean())}
    if teacher_pred is not None:
        out["agreement"] = float((pred == teacher_pred).float().mean())
    return out




# --------------------------------------------------------------------------- the run


def distill(
    teacher: Teacher | None,
    spec: StudentSpec,
    task: Any,
    config: DistillConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    student: nn.Module | None = None,
) -> Checkpoint:
    """Train ``spec``'s student from ``teacher`` on ``task`` (a TaskData) and write, in
    ``out_dir``: ``student.pt`` (best weights), ``checkpoint.json``, ``metrics.jsonl`` and the
    resumable ``train_state.pt``. ``resume=True`` continues from the last finished epoch and
    ends with the same metrics as an uninterrupted run. ``student`` overrides
    ``create_student(spec)`` (an already-built module following the student contract)."""
    cfg = config
    out = Path(out_dir)
    dist = D.setup()
    device = torch.device("cuda", dist.rank % max(1, torch.cuda.device_count())) if torch.cuda.is_available() else torch.device("cpu")

    # 1. Everything that can be wrong with the inputs fails here, before any training.
    probe = check_inputs(teacher, spec, task, cfg)
    if student is None:
        from edgecompress.students import create_student

        torch.manual_seed(mix_seed(cfg.seed, 1))
        student = create_student(spec, teacher=teacher.module if teacher is not None else None)
    check_student(student, cfg, tuple(spec.input_shape))
    student = student.to(device)
    if device.type == "cuda":
        student = student.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    streams = make_streams(task, cfg, dist)
    total_steps = cfg.epochs * streams.steps_per_epoch
    run = build_run(teacher, student, cfg, {"input_shape": tuple(spec.input_shape), "teacher": probe}, total_steps, dist, device)
    D.broadcast_module(student, dist)
    D.broadcast_module(run.parts, dist)
    val, test = stack_dataset(task.val), stack_dataset(task.test)
    t_val = teacher_predict(teacher, val[0]) if teacher is not None else None
    t_test = teacher_predict(teacher, test[0]) if teacher is not None else None

    # 2. Resume: the state of the last finished epoch, if it was written by this same recipe.
    fp = fingerprint(cfg, spec, task, dist)
    state_path = out / STATE_FILE
    start_epoch, best, history, train_s = 0, {"score": -1.0, "epoch": 0}, [], 0.0
    if resume and state_path.is_file():
        st = load_state(state_path)
        if st.get("fingerprint") != fp:
            raise DistillError(f"{state_path}: written by a different config, spec, data or process count; "
                               f"use another --out or drop --resume to start over")
        student.load_state_dict(st["student"])
        run.parts.load_state_dict(st["parts"])
        run.opt.load_state_dict(st["opt"])
        run.sched.load_state_dict(st["sched"])
        if run.disc_opt is not None:
            run.disc_opt.load_state_dict(st["disc_opt"])
        set_rng_state(st["rng"])
        start_epoch, best, history, train_s = st["epoch"], st["best"], st["history"], st["train_s"]

    # 3. The loop.
    show = progress and dist.is_main and sys.stderr.isatty()
    with _deterministic(cfg.deterministic and device.type == "cpu"):
        for epoch in range(start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            sums = torch.zeros(len(run.weights))
            disc_sum = 0.0
            bar = tqdm(range(streams.steps_per_epoch), desc=f"distill {epoch + 1}/{cfg.epochs}", disable=not show,
                       leave=False, file=sys.stderr, dynamic_ncols=True)
            for step in bar:
                # Dropout and other model randomness seeded by position: exact replay on resume.
                seed_step(mix_seed(cfg.seed, epoch, step, dist.rank, 3))
                x, y, n_labeled = streams.batch(epoch, step)
                x, mix = mix_batch(x, cfg.mixup, mix_seed(cfg.seed, epoch, step, dist.rank, 5))
                where = f"epoch {epoch + 1} step {step + 1}"
                t, values = student_step(run, x, y, n_labeled, where, mix)
                d = discriminator_step(run, t, where)
                sums += values
                disc_sum += 0.0 if d is None else float(d)
                if show and (step % 10 == 0 or step == streams.steps_per_epoch - 1):
                    bar.set_postfix({k: f"{float(v):.3f}" for k, v in zip(run.weights, values, strict=True)})
            bar.close()
            D.average_buffers(student, dist)  # BN statistics: one model for every rank
            # each rank saw its share of the batch: log the global-batch losses
            sums = D.all_ranks_mean(sums, dist)
            disc_sum = float(D.all_ranks_mean(torch.tensor(disc_sum, dtype=torch.float64), dist))
            v = evaluate(student, val, t_val, device)
            train_s += time.perf_counter() - t0
            # Label-free runs pick their best epoch without labels: agreement with the teacher.
            score = v["acc"] if cfg.labels_used or t_val is None else v["agreement"]
            record = {
                "epoch": epoch + 1,
                "step": (epoch + 1) * streams.steps_per_epoch,
                "lr": run.opt.param_groups[0]["lr"],
                "loss": {k: float(s) / streams.steps_per_epoch for k, s in zip(run.weights, sums, strict=True)},
                "disc_loss": disc_sum / streams.steps_per_epoch if run.disc_opt is not None else None,
                "val_acc": v["acc"],
                "val_agreement": v.get("agreement"),
                "epoch_s": round(time.perf_counter() - t0, 3),
            }
            history.append(record)
            if score > best["score"]:
                best = {"score": score, "epoch": epoch + 1}
                if dist.is_main:
                    save_weights(out / BEST_FILE, student)
            if dist.is_main:
                atomic_write_text(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
                save_state(state_path, {
                    "fingerprint": fp, "epoch": epoch + 1, "best": best, "history": history, "train_s": train_s,
                    "student": student.state_dict(), "parts": run.parts.state_dict(), "opt": run.opt.state_dict(),
                    "sched": run.sched.state_dict(), "disc_opt": run.disc_opt.state_dict() if run.disc_opt else None,
                    "rng": rng_state(),
                })
            D.barrier(dist)

    # 4. The best epoch's weights, measured on the test split.
    if not (out / BEST_FILE).is_file():
        raise DistillError(f"{out / BEST_FILE}: missing; the run folder was changed during training")
    student.load_state_dict(torch.load(out / BEST_FILE, map_location=device, weights_only=True))
    v, te = evaluate(student, val, t_val, device), evaluate(student, test, t_test, device)
    metrics = {"val_acc": v["acc"], "test_acc": te["acc"], "best_epoch": float(best["epoch"]),
               "epochs": float(cfg.epochs), "steps": float(total_steps), "train_s": round(train_s, 3)}
    if t_val is not None and t_test is not None:
        metrics.update({
            "val_agreement": v["agreement"], "test_agreement": te["agreement"],
            "teacher_val_acc": float((t_val == val[1]).float().mean()),
            "teacher_test_acc": float((t_test == test[1]).float().mean()),
        })
    ckpt = Checkpoint(
        weights=BEST_FILE,
        sha256=sha256_file(out / BEST_FILE),
        spec=spec,
        preprocessing=task.preprocessing,
        data=getattr(task, "data_ref", None),
        distill_config=cfg.to_dict(),
        metrics=metrics,
        class_names=tuple(getattr(task, "class_names", ())),
    )
    if dist.is_main:
        ckpt.save(out / "checkpoint.json")
    D.barrier(dist)
    return ckpt


def seed_step(seed: int) -> None:
    """Seed the generator(s) the step draws from. On CPU only the default generator: the full
    torch.manual_seed also queues lazy seeding for every accelerator backend (ms per call)."""
    torch.default_generator.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed(seed)


@contextlib.contextmanager
def _deterministic(on: bool) -> Any:
    prev = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(on or prev, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev)
