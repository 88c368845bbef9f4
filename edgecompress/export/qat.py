"""Quantization-aware fine-tuning: the last resort when PTQ (with its accuracy-aware steps)
still misses the parity gate.

What is simulated, mirroring the runtimes' static int8 scheme:

- *weights* exactly as the runtime will quantize them, per output channel, symmetric, on the
  grid of the BatchNorm-folded weights (the exporter folds BN into the conv, and the quantizer
  sees the folded weights): ``scale = max|w| / qmax``, ``qmax`` 64 for ONNX Runtime with
  ``reduce_range`` (7-bit), 127 otherwise;
- *activations* where QDQ / TFLite put them on every conv and linear layer: the layer's input,
  per tensor, asymmetric int8 over the min/max range seen on the calibration pool before
  fine-tuning (the PTQ calibration of the original model). Tensors between other ops (a
  residual Add's output, pooling) are not simulated; the calibration after fine-tuning
  measures them afresh.

Rounding goes through a straight-through estimator, so the weights learn to compensate for it.

The target is the float student itself (its logits before fine-tuning): the gate measures
agreement with that model, so it is the right teacher here. The data is the calibration pool:
unlabeled images the export already holds, never the parity set.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from edgecompress.export.context import ExportContext


class _FakeQuantFolded(nn.Module):
    """weight -> the int8-grid version of (weight x fold) / fold, fold = the following BN's
    gamma / sqrt(var + eps) per output channel (1 when no BN follows)."""

    def __init__(self, fold: torch.Tensor, qmax: int) -> None:
        super().__init__()
        self.register_buffer("fold", fold)
        self.qmax = qmax

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (w.dim() - 1)
        folded = w * self.fold.view(shape)
        scale = folded.detach().abs().flatten(1).amax(1).clamp_min(1e-12).view(shape) / self.qmax
        q = torch.clamp(torch.round(folded / scale), -self.qmax, self.qmax) * scale
        folded_q = folded + (q - folded).detach()  # straight-through: gradients as if not rounded
        return folded_q / self.fold.view(shape)


class _FakeQuantInput:
    """Forward pre-hook: observe the input range (``observing``), then fake-quantize to int8."""

    def __init__(self) -> None:
        self.lo, self.hi, self.observing = 0.0, 0.0, True

    def __call__(self, module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        x = args[0]
        if self.observing:  # the range always holds 0, as the runtimes' zero point requires
            self.lo, self.hi = min(self.lo, float(x.min())), max(self.hi, float(x.max()))
            return args
        scale = max(self.hi - self.lo, 1e-8) / 255.0
        zero = round(-128 - self.lo / scale)
        q = (torch.clamp(torch.round(x / scale) + zero, -128, 127) - zero) * scale
        return (x + (q - x).detach(), *args[1:])


def _bn_folds(model: nn.Module) -> dict[nn.Module, torch.Tensor]:
    """Each Conv2d -> the scale of the BatchNorm2d right after it in module order (how ConvBnAct
    and most user code are written). A wrong pairing only makes the simulated grid differ from
    the runtime's: the parity gate still checks the real artifact."""
    mods = list(model.modules())
    out: dict[nn.Module, torch.Tensor] = {}
    for m, nxt in zip(mods, mods[1:] + [None], strict=True):
        if isinstance(m, nn.Conv2d) and isinstance(nxt, nn.BatchNorm2d) and nxt.num_features == m.out_channels:
            out[m] = (nxt.weight / torch.sqrt(nxt.running_var + nxt.eps)).detach().clone()
    return out


def qat_finetune(model: nn.Module, pool: np.ndarray, *, qmax: int, steps: int, lr: float = 1e-4, batch: int = 64,
                 seed: int = 0) -> tuple[nn.Module, dict[str, Any]]:
    """A copy of ``model`` fine-tuned with int8-grid weights to match ``model``'s own logits.

    Returns the copy with its weights on the grid (parametrizations removed, BN kept and
    frozen) and a record: steps, seconds, the KD loss before and after.
    """
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    teacher = model.eval()
    student = copy.deepcopy(model).eval()  # eval: BN statistics stay what the fold assumed
    folds = _bn_folds(student)
    for m in student.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fold = folds.get(m, torch.ones(m.weight.shape[0]))
            parametrize.register_parametrization(m, "weight", _FakeQuantFolded(fold, qmax))
    for m in student.modules():
        if isinstance(m, nn.BatchNorm2d):  # frozen: the fold must stay what it was measured as
            m.weight.requires_grad_(False)
            m.bias.requires_grad_(False)
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    x_all = torch.from_numpy(np.ascontiguousarray(pool, np.float32))
    rng = np.random.default_rng(seed)
    observers = [_FakeQuantInput() for m in student.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    layers = [m for m in student.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    hooks = [m.register_forward_pre_hook(o) for m, o in zip(layers, observers, strict=True)]
    with torch.no_grad():  # activation ranges of the float model, as PTQ calibration sees them
        for i in range(0, len(x_all), 256):
            student(x_all[i : i + 256])
    for o in observers:
        o.observing = False
    losses = []
    for _ in range(steps):
        idx = torch.from_numpy(rng.integers(0, len(x_all), min(batch, len(x_all))))
        x = x_all[idx]
        with torch.no_grad():
            target = teacher(x)
        out = student(x)
        # KL to the float model's distribution, plus the logits themselves: agreement is about
        # the arg-max, and near-tied logits are where int8 flips it.
        loss = nn.functional.kl_div(torch.log_softmax(out, 1), torch.log_softmax(target, 1), log_target=True,
                                    reduction="batchmean") + nn.functional.mse_loss(out, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    for h in hooks:
        h.remove()
    for m in student.modules():
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    record = {"qat_steps": steps, "qat_lr": lr, "qat_batch": batch, "qat_weight_qmax": qmax,
              "qat_loss_first": round(losses[0], 5) if losses else None,
              "qat_loss_last": round(float(np.mean(losses[-10:])), 5) if losses else None,
              "qat_s": round(time.perf_counter() - t0, 2), "qat_scheme": "int8 weights per channel (BN folded) + int8 inputs of every conv/linear layer"}
    return student.eval(), record


def qat_context(ctx: ExportContext, qmax: int) -> tuple[ExportContext, dict[str, Any]]:
    """An export context for the fine-tuned copy of ``ctx.model`` (its own work folder, so its
    fp32 graph and converter runs are its own); the gate still compares with ``ctx.model``."""
    model, record = qat_finetune(ctx.model, ctx.pool, qmax=qmax, steps=ctx.config.qat_steps)
    work = ctx.work_dir / f"qat_{qmax}"
    work.mkdir(parents=True, exist_ok=True)
    return ExportContext(model, ctx.preprocessing, ctx.config, work, ctx.calib_x, calib_pool=ctx.calib_pool), record


def model_agreement(model: nn.Module, logits: np.ndarray, x: np.ndarray) -> float:
    """Top-1 agreement of ``model`` (the QAT model) with an artifact's ``logits`` on ``x``."""
    with torch.no_grad():
        ref = model(torch.from_numpy(np.ascontiguousarray(x, np.float32))).argmax(1).numpy()
    return round(float((ref == logits.argmax(1)).mean()), 5)
