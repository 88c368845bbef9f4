"""Quantization-aware fine-tuning: the last resort when PTQ (with its accuracy-aware steps)
still misses the parity gate.

What is simulated, mirroring the runtimes' static int8 scheme:

- *weights* exactly as the runtime will quantize them, per output channel, symmetric, on the
  grid of the BatchNorm-folded weights (the exporter folds BN into the conv, and the quantizer
  sees the folded weights): ``scale = max|w| / qmax``, ``qmax`` 64 for ONNX Runtime with
  ``reduce_range`` (7-bit), 127 otherwise;
- *activations* where QDQ / TFLite hold them in 8 bits (``_attach_fake_quant``): inputs of
  conv, linear and pool layers, outputs of activations, pools and branch-ending conv-BNs,
  per tensor, asymmetric, over the min/max range seen on the calibration pool before
  fine-tuning (the PTQ calibration of the original model). The calibration after fine-tuning
  measures the ranges afresh.

Rounding goes through a straight-through estimator, so the weights learn to compensate for it.

The target is the float student itself (its logits before fine-tuning): the gate measures
agreement with that model, so it is the right teacher here. The data is the calibration pool:
unlabeled images the export already holds, never the parity set.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
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


class _FakeQuant:
    """Observe a tensor's range (``observing``), then fake-quantize it to 8-bit, asymmetric, per
    tensor. Used as a forward pre-hook (the module's input) or a forward hook (its output)."""

    def __init__(self) -> None:
        self.lo, self.hi, self.observing = 0.0, 0.0, True

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        if self.observing:  # the range always holds 0, as the runtimes' zero point requires
            self.lo, self.hi = min(self.lo, float(x.min())), max(self.hi, float(x.max()))
            return x
        scale = max(self.hi - self.lo, 1e-8) / 255.0
        zero = round(-128 - self.lo / scale)
        q = (torch.clamp(torch.round(x / scale) + zero, -128, 127) - zero) * scale
        return x + (q - x).detach()

    def __call__(self, module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor | None = None) -> Any:
        if output is not None:
            return self.quantize(output)
        return (self.quantize(args[0]), *args[1:])


_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU, nn.GELU, nn.Sigmoid, nn.Hardsigmoid, nn.Tanh, nn.LeakyReLU)
_POOLS = (nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.MaxPool2d)


def _attach_fake_quant(model: nn.Module) -> tuple[list[_FakeQuant], list[Any]]:
    """Fake-quantize the tensors a fully quantized runtime graph holds in int8.

    After BN folding and activation fusion, ORT's QDQ graph (and TFLite full-int8) store in
    8 bits: the input of every conv / linear layer and pool, the output of every activation
    (fused into the conv before it), of every conv-BN that no activation follows (the
    branches a residual Add sums, which the runtime quantizes before adding) and of every
    pool. Mirrored here in module terms; a residual sum feeds the next conv or activation,
    which quantizes it. Functional ops in a user's ``forward`` (``x.mean``) are not seen."""
    mods = list(model.modules())
    pre: list[nn.Module] = [m for m in mods if isinstance(m, (nn.Conv2d, nn.Linear, *_POOLS))]
    post: list[nn.Module] = [m for m in mods if isinstance(m, (*_ACTIVATIONS, *_POOLS))]
    # A BN is followed by an activation only as its next sibling in a Sequential (ConvBnAct);
    # module order alone would pair a shortcut's BN with the block's activation after the Add.
    fused = {id(a) for seq in mods if isinstance(seq, nn.Sequential)
             for a, b in zip(list(seq)[:-1], list(seq)[1:], strict=True) if isinstance(b, _ACTIVATIONS)}
    post += [m for m in mods if isinstance(m, nn.BatchNorm2d) and id(m) not in fused]
    quants, hooks = [], []
    for m in pre:
        quants.append(_FakeQuant())
        hooks.append(m.register_forward_pre_hook(quants[-1]))
    for m in post:
        quants.append(_FakeQuant())
        hooks.append(m.register_forward_hook(quants[-1]))
    return quants, hooks


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
                 seed: int = 0, observe: np.ndarray | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """A copy of ``model`` fine-tuned with int8-grid weights to match ``model``'s own logits.

    Trains on ``pool``; the 8-bit tensors' ranges come from ``observe`` (default: ``pool``), which
    should be the images the converter calibrates the int8 file on, so training sees its ranges.

    Returns the copy with its weights on the grid (parametrizations removed, BN kept and
    frozen) and a record: steps, seconds, the KD loss before and after.
    """
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    teacher = model.eval()
    student = on_weight_grid(model, qmax)  # eval: BN statistics stay what the fold assumed
    for m in student.modules():
        if isinstance(m, nn.BatchNorm2d):  # frozen: the fold must stay what it was measured as
            m.weight.requires_grad_(False)
            m.bias.requires_grad_(False)
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    x_all = torch.from_numpy(np.ascontiguousarray(pool, np.float32))
    rng = np.random.default_rng(seed)
    observers, hooks = _attach_fake_quant(student)
    x_obs = x_all if observe is None else torch.from_numpy(np.ascontiguousarray(observe, np.float32))
    with torch.no_grad():  # activation ranges of the float model, as PTQ calibration sees them
        for i in range(0, len(x_obs), 256):
            student(x_obs[i : i + 256])
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
              "qat_s": round(time.perf_counter() - t0, 2), "qat_scheme": "int8 weights per channel (BN folded) + 8-bit tensors at conv/linear/pool inputs, "
              "activation, pool and branch-end conv-BN outputs"}
    return student.eval(), record


def qat_context(ctx: ExportContext, qmax: int, calib_images: int) -> tuple[ExportContext, dict[str, Any]]:
    """An export context for the fine-tuned copy of ``ctx.model`` (its own work folder, so its
    fp32 graph and converter runs are its own); the gate still compares with ``ctx.model``.
    ``calib_images``: the first that many pool images calibrate the int8 file; training observes
    its activation ranges on the same ones."""
    model, record = qat_finetune(ctx.model, ctx.pool, qmax=qmax, steps=ctx.config.qat_steps,
                                 observe=ctx.pool[:calib_images])
    work = ctx.work_dir / f"qat_{qmax}"
    work.mkdir(parents=True, exist_ok=True)
    return ExportContext(model, ctx.preprocessing, ctx.config, work, ctx.calib_x, calib_pool=ctx.calib_pool,
                         parity_x=ctx.parity_x), record


def on_weight_grid(model: nn.Module, qmax: int) -> nn.Module:
    """A copy of ``model`` (eval mode) whose conv / linear weights sit on the runtime's int8 grid
    (parametrized: per output channel, symmetric, BN folded, ``qmax`` 127 or 64)."""
    m = copy.deepcopy(model).eval()
    folds = _bn_folds(m)
    for mod in m.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            fold = folds.get(mod, torch.ones(mod.weight.shape[0]))
            parametrize.register_parametrization(mod, "weight", _FakeQuantFolded(fold, qmax))
    return m


def simulated_logits(model: nn.Module, calib: np.ndarray, x: np.ndarray, *, weights: bool, activations: bool,
                     qmax: int = 127) -> np.ndarray:
    """Logits of ``model`` with int8 simulated on its weights (per channel, BN folded, ``qmax``),
    on its 8-bit tensors (ranges observed on ``calib``), or both: which half of the scheme
    moves the model's answers (the fidelity docs' split)."""
    fq = on_weight_grid(model, qmax) if weights else copy.deepcopy(model).eval()
    hooks: list[Any] = []
    with torch.no_grad():
        if activations:
            quants, hooks = _attach_fake_quant(fq)
            for i in range(0, len(calib), 256):
                fq(torch.from_numpy(np.ascontiguousarray(calib[i : i + 256], np.float32)))
            for q in quants:
                q.observing = False
        out = fq(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()
    for h in hooks:
        h.remove()
    return out


def fake_quant_logits(model: nn.Module, calib: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Logits of the fake-quant model: ``model`` (weights already on the int8 grid) with every
    8-bit tensor simulated, ranges observed on ``calib`` as the runtime's calibration does."""
    return simulated_logits(model, calib, x, weights=False, activations=True)


def artifact_parity(ctx: ExportContext, qctx: ExportContext, fmt: str, path: Path, calib_images: int) -> dict[str, Any]:
    """How closely the int8 file follows the fake-quant model it was converted from, on the
    parity images (the issue's "QAT model vs artifact" parity; the gate itself still compares
    with the float student). Also how far the fine-tuned model moved from the float student."""
    from edgecompress.export.formats import run

    x = ctx.parity_x if ctx.parity_x is not None else ctx.calib_x
    art = run(fmt, path, x, ctx.config.layout)
    fq = fake_quant_logits(qctx.model, qctx.pool[:calib_images], x)
    with torch.no_grad():
        float_logits = ctx.model(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()
    return {"qat_model_agreement": model_agreement(fq, art),
            "qat_model_vs_float_agreement": model_agreement(fq, float_logits), "qat_parity_images": len(x),
            # logit SNR (dB) of the int8 file against the fake-quant model and the float student:
            # how much of the int8 error the simulation predicts
            "qat_model_snr_db": _snr_db(fq, art), "float_snr_db": _snr_db(float_logits, art)}


def _snr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    noise = float(np.sum((candidate.astype(np.float64) - reference) ** 2))
    return round(min(10 * np.log10(max(float(np.sum(reference.astype(np.float64) ** 2)), 1e-30) / max(noise, 1e-30)), 300.0), 2)


def model_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Top-1 agreement of two sets of logits for the same images."""
    return round(float((a.argmax(1) == b.argmax(1)).mean()), 5)
