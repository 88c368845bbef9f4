"""Budget-driven student choice: ``select_student(profile, input_shape, num_classes) -> StudentSpec``.

Every family's search space (depth x width, or keep ratio for ``pruned-teacher``) is costed
from its graph: MACs, parameters, peak activation memory by liveness, file size per precision,
and latency from the device's predictor (calibrated when ``edgecompress calibrate`` has run,
else the profile's priors) at the fastest precision the device runs. A candidate *fits* when

- predicted latency <= the latency budget; when the calibration carries a 90% prediction
  interval (``edgecompress calibrate``, split conformal on held-out probes), its *upper end*
  must fit, so a candidate predicted just under the budget but likely over it is rejected.
  With the priors alone (or an old calibration without an interval) the point prediction is
  checked, and ``latency_source`` says which,
- peak RAM <= the RAM budget, where peak RAM = 2 x the model file (the mapped file plus the
  runtime's packed copy of the weights, as XNNPACK and ORT both repack) + peak activation bytes
  at that precision + a fixed runtime overhead (the runtime provider's ``ram_overhead_mb``, assumed);
  once ``calibrate`` has measured peaks (fresh process, peak RSS over the runtime's baseline),
  ``a + b x (2 x file + activations)`` fitted to them instead,
- the model file at that precision <= the size budget.

and, when a teacher is given, when it is *compressed enough*:

- never as large as the teacher: fewer MACs and fewer parameters than the teacher, and a lower
  predicted latency when the teacher's graph gives one (a "student" three times the teacher's
  size, which the budget alone allowed, is what this rule exists to stop);
- teacher MACs / student MACs >= the compression target (``--compress``, default
  ``DEFAULT_COMPRESS`` = 8x). MACs, not predicted latency: they are exact, device-independent
  and known for every teacher format, where latency is a per-device estimate.

Criterion: within a family, the fitting candidate with the most MACs (within one family,
accuracy rises with width and depth at fixed input size — the MobileNet / ResNet scaling
tables — so MACs is a monotone accuracy proxy and spending the whole budget is the point).
Across families the first family in ``families`` order with a fitting candidate wins: MACs are
not comparable across families (a ResNet MAC buys less accuracy than an inverted-residual MAC
on ImageNet), so the order is an explicit preference. The default prefers the pruned teacher
when a teacher is given (it inherits the teacher's weights: Tang et al.'s setting), then the
inverted-residual family, then the residual family.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from edgecompress.artifacts import SelectionInfo, StudentSpec, TeacherRecord
from edgecompress.bounds import MAX_BUDGET, check_float
from edgecompress.cost.calibration import LatencyPredictor, memory_x_mb
from edgecompress.cost.estimate import BYTES_PER_ELEM, ModelCost, size_for, spec_cost
from edgecompress.cost.reference import ReferenceCost, module_reference
from edgecompress.errors import SelectError
from edgecompress.profiles import Budgets, DeviceProfile
from edgecompress.runtimes import get_runtime
from edgecompress.students import get_family, list_students

if TYPE_CHECKING:
    from torch import nn

MB = 1024 * 1024
DEFAULT_FAMILIES = ("mobilenet", "resnet")
CRITERION = "max MACs within a family; families in preference order"
# The default compression target when a teacher is given: students 8x cheaper than the teacher
# in MACs. A user who wants more accuracy and less compression says --compress 2x; one who wants
# a tinier model says --compress 20x. The device budgets apply on top.
DEFAULT_COMPRESS = 8.0
MAX_COMPRESS = 1e4


def parse_compress(value: object, where: str = "compress") -> float:
    """``"8x"``, ``"8"``, ``8`` -> 8.0; a ratio must be finite, > 1 and <= MAX_COMPRESS."""
    text = str(value).strip().lower().removesuffix("x").strip() if not isinstance(value, bool) else ""
    try:
        r = float(text)
    except ValueError:
        r = float("nan")
    if not (math.isfinite(r) and 1 < r <= MAX_COMPRESS):
        raise SelectError(f"{where} = {value!r} is not allowed (a ratio of teacher to student MACs in (1, {MAX_COMPRESS:g}], "
                          "e.g. 8x)")
    return r


@dataclasses.dataclass(frozen=True)
class Candidate:
    spec: StudentSpec
    cost: ModelCost
    precision: str
    latency_ms: float
    ram_mb: float
    size_mb: float
    fits: bool
    over: tuple[str, ...]  # which budgets it breaks
    compression_x: float | None = None  # teacher MACs / student MACs
    latency_upper_ms: float | None = None  # upper end of the 90% interval; None without one

    @property
    def label(self) -> str:
        return self.spec.display

    def row(self) -> dict[str, Any]:
        return {"family": self.spec.family, "label": self.label, "arch": self.spec.arch, "width_mult": self.spec.width_mult,
                "macs": self.cost.macs, "params": self.cost.params, "precision": self.precision,
                "latency_ms": round(self.latency_ms, 4), "peak_ram_mb": round(self.ram_mb, 3),
                "size_mb": round(self.size_mb, 4), "fits": self.fits, "over": list(self.over),
                "compression_x": None if self.compression_x is None else round(self.compression_x, 2),
                "latency_upper_ms": None if self.latency_upper_ms is None else round(self.latency_upper_ms, 4)}


@dataclasses.dataclass(frozen=True)
class Selection:
    choice: Candidate
    candidates: tuple[Candidate, ...]
    budget: Budgets
    latency_source: str
    teacher: TeacherRef | None = None
    compress: float | None = None


@dataclasses.dataclass(frozen=True)
class TeacherRef:
    """The teacher as the selection saw it: its cost and, when its graph allows, its predicted
    latency, RAM and file size on the device at the students' precision."""

    cost: ReferenceCost
    precision: str | None = None
    latency_ms: float | None = None
    ram_mb: float | None = None
    size_mb: float | None = None

    def row(self) -> dict[str, Any]:
        return {**self.cost.to_dict(), "precision": self.precision,
                "predicted_latency_ms": None if self.latency_ms is None else round(self.latency_ms, 4),
                "peak_ram_mb": None if self.ram_mb is None else round(self.ram_mb, 3),
                "size_mb": None if self.size_mb is None else round(self.size_mb, 4)}


def peak_ram_mb(cost: ModelCost, precision: str, runtime: str) -> float:
    """Peak RAM estimate in MB (see the module docstring for the model)."""
    return memory_x_mb(cost, precision, runtime) + get_runtime(runtime).ram_overhead_mb


def ram_model_mb(file_bytes: int, activation_bytes: int, runtime: str) -> float:
    return (2 * file_bytes + activation_bytes) / MB + get_runtime(runtime).ram_overhead_mb


def _check_task(input_shape: tuple[int, ...], num_classes: int) -> tuple[int, int, int]:
    if len(input_shape) != 3 or any((not isinstance(v, int)) or v < 1 for v in input_shape):
        raise SelectError(f"input shape {input_shape!r} is not allowed (need C x H x W, positive integers, e.g. 3x32x32)")
    if min(input_shape[1:]) < 8:
        raise SelectError(f"input shape {'x'.join(map(str, input_shape))}: height and width must be >= 8")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise SelectError(f"classes = {num_classes!r} is not allowed (need an integer >= 2)")
    return (int(input_shape[0]), int(input_shape[1]), int(input_shape[2]))


def teacher_ref(cost: ReferenceCost, profile: DeviceProfile, predictor: LatencyPredictor) -> TeacherRef:
    """The teacher's predicted device figures, when its graph gives the predictor's features."""
    if cost.features is None or cost.size_bytes is None:
        return TeacherRef(cost)
    precision, ms = predictor.best(cost.features)
    size = size_for(cost.size_bytes, precision, get_runtime(profile.runtime.kind).artifact_format)
    ram = None
    if cost.peak_activation_elems is not None:
        ram = ram_model_mb(size, cost.peak_activation_elems * BYTES_PER_ELEM[precision], profile.runtime.kind)
    return TeacherRef(cost, precision, ms, ram, size / MB)


def _over_teacher(cost: ModelCost, ms: float, ratio: float, ref: TeacherRef, compress: float | None) -> tuple[str, ...]:
    """Reasons a candidate is not a compression of the teacher (``ratio`` = teacher MACs / its MACs)."""
    t = ref.cost
    if cost.macs >= t.macs or cost.params >= t.params or (ref.latency_ms is not None and ms >= ref.latency_ms):
        return ("teacher-size",)
    return ("compress",) if compress is not None and ratio < compress else ()


def enumerate_candidates(profile: DeviceProfile, input_shape: tuple[int, int, int], num_classes: int, budget: Budgets,
                         families: tuple[str, ...], teacher: nn.Module | None = None,
                         predictor: LatencyPredictor | None = None, ref: TeacherRef | None = None,
                         compress: float | None = None) -> list[Candidate]:
    """Cost every candidate of every family (deduplicated: widths that round to the same net)."""
    predictor = predictor or LatencyPredictor.for_profile(profile)
    runtime = profile.runtime.kind
    fmt = get_runtime(runtime).artifact_format  # the file the device gets: its int8 framing
    out: list[Candidate] = []
    for fam_name in families:
        fam = get_family(fam_name)
        if fam.search_space is None:
            raise SelectError(f"family {fam_name!r} has no search space (choose from: {', '.join(_searchable())})")
        if fam.needs_teacher and teacher is None:
            raise SelectError(f"family {fam_name!r} needs a teacher (pass --teacher)")
        seen: set[tuple[int, int, int]] = set()
        for arch, width, extra in fam.search_space(input_shape, teacher):
            # A family's extra keys that are typed spec fields (``kept``) land in them.
            spec = StudentSpec(fam_name, arch, input_shape, num_classes, width, label=fam.label_of(arch, width), extra=extra)
            cost = spec_cost(spec, teacher)
            key = (cost.macs, cost.params, cost.peak_activation_elems)
            if key in seen:
                continue
            seen.add(key)
            precision, ms = predictor.best(cost.features)
            upper = predictor.upper(cost.features, runtime, precision)
            # Measured peaks (calibrate) replace the assumed runtime overhead when there are any.
            ram = predictor.ram_mb(cost, runtime, precision)
            ram = peak_ram_mb(cost, precision, runtime) if ram is None else ram
            size = size_for(cost.size_bytes, precision, fmt) / MB
            slow = (ms if upper is None else upper) > budget.latency_budget_ms
            over = tuple(n for n, bad in (("latency", slow), ("ram", ram > budget.peak_ram_budget_mb),
                                          ("size", size > budget.model_size_budget_mb)) if bad)
            ratio = None
            if ref is not None:
                ratio = ref.cost.macs / max(1, cost.macs)
                over += _over_teacher(cost, ms, ratio, ref, compress)
            out.append(Candidate(spec, cost, precision, ms, ram, size, not over, over, ratio, upper))
    return out


def _searchable() -> list[str]:
    return [n for n in list_students(include_test=True) if get_family(n).search_space is not None]


def choose(candidates: list[Candidate], families: tuple[str, ...], budget: Budgets,
           compress: float | None = None) -> Candidate:
    """Apply the criterion; raise SelectError naming the cheapest candidate when nothing fits."""
    for fam in families:
        fitting = [c for c in candidates if c.spec.family == fam and c.fits]
        if fitting:
            return max(fitting, key=lambda c: (c.cost.macs, -c.latency_ms))
    if not candidates:
        raise SelectError("no candidates to choose from")
    device_ok = [c for c in candidates if not set(c.over) & {"latency", "ram", "size"}]
    if compress is not None and device_ok:
        # The device budget leaves candidates; the compression target (or the teacher's own size)
        # rules them all out.
        best = max(device_ok, key=lambda c: (c.compression_x or 0.0))
        ratio = best.compression_x or 0.0
        if ratio <= 1:
            raise SelectError(
                f"no candidate that fits the device budget is smaller than the teacher: the most compressed, "
                f"{best.spec.family} {best.label}, is {ratio:.3g}x ({best.cost.macs:,} MACs): the teacher is already "
                "smaller than every candidate that fits, so deploy the teacher itself"
            )
        raise SelectError(
            f"compression target {compress:g}x cannot be met within the device budget: the most compressed candidate "
            f"that fits it, {best.spec.family} {best.label}, is {ratio:.3g}x ({best.cost.macs:,} MACs); "
            f"ask for at most --compress {math.floor(10 * ratio) / 10:g}x"
        )
    s = min(candidates, key=lambda c: (c.latency_ms / budget.latency_budget_ms, c.ram_mb, c.size_mb))
    raise SelectError(
        f"no candidate fits the budget: the smallest, {s.spec.family} {s.label} ({s.precision}"
        + ("" if s.compression_x is None else f", {s.compression_x:.3g}x fewer MACs than the teacher")
        + f"), needs {s.latency_ms:.3g} ms (budget {budget.latency_budget_ms:g} ms), {s.ram_mb:.3g} MB peak RAM (budget "
        f"{budget.peak_ram_budget_mb:g} MB), {s.size_mb:.3g} MB file (budget {budget.model_size_budget_mb:g} MB)"
    )


def run_selection(profile: DeviceProfile, input_shape: tuple[int, ...], num_classes: int, *,
                  latency_ms: float | None = None, memory_mb: float | None = None, size_mb: float | None = None,
                  families: tuple[str, ...] | list[str] | None = None, teacher: nn.Module | None = None,
                  predictor: LatencyPredictor | None = None, teacher_cost: ReferenceCost | None = None,
                  compress: float | str | None = None) -> Selection:
    """Cost all candidates and choose; the full table is kept for the CLI and the report.

    ``teacher`` (an eager module) enables the pruned-teacher family; ``teacher_cost`` (or the
    module's own graph) is the reference for the compression target ``compress`` (default
    ``DEFAULT_COMPRESS`` whenever a teacher is known; ignored without one)."""
    shape = _check_task(tuple(input_shape), num_classes)
    b = profile.budgets
    budget = Budgets(latency_ms if latency_ms is not None else b.latency_budget_ms,
                     memory_mb if memory_mb is not None else b.peak_ram_budget_mb,
                     size_mb if size_mb is not None else b.model_size_budget_mb)
    for name, v in (("latency_ms", budget.latency_budget_ms), ("memory_mb", budget.peak_ram_budget_mb),
                    ("size_mb", budget.model_size_budget_mb)):
        check_float(name, v, 0.0, MAX_BUDGET, SelectError)
    target = parse_compress(compress) if compress is not None else None
    # Families built from the teacher (they inherit its weights) come first when it is prunable.
    from_teacher = tuple(f for f in list_students(include_test=False) if get_family(f).needs_teacher)
    fams = tuple(families) if families else (from_teacher if teacher is not None else ()) + DEFAULT_FAMILIES
    known = list_students()
    for f in fams:
        if f not in known:
            raise SelectError(f"family {f!r} is unknown (known: {', '.join(known)})")
    predictor = predictor or LatencyPredictor.for_profile(profile)
    if teacher_cost is None and teacher is not None:
        teacher_cost = module_reference(teacher, shape)
    ref = teacher_ref(teacher_cost, profile, predictor) if teacher_cost is not None else None
    # A target only means something against a teacher; with one, it defaults to DEFAULT_COMPRESS.
    target = None if ref is None else (target or DEFAULT_COMPRESS)
    cands = enumerate_candidates(profile, shape, num_classes, budget, fams, teacher, predictor, ref, target)
    choice = choose(cands, fams, budget, target)
    _, source = predictor.coefficients(profile.runtime.kind, choice.precision)
    return Selection(choice, tuple(cands), budget, source + interval_note(predictor, profile.runtime.kind, choice.precision),
                     ref, target)


def interval_note(predictor: LatencyPredictor, runtime: str, precision: str) -> str:
    """What the latency budget was checked against, for the select log and the summary."""
    q = predictor.interval_halfwidth(runtime, precision)
    if q is not None:
        return f"; budget checked on the upper end of the 90% interval (+{q:.1%})"
    if predictor.calibration.fits.get(f"{runtime}:{precision}"):
        return "; budget checked on the point prediction (calibration has no interval: re-run calibrate)"
    return "; budget checked on the point prediction (priors only, no interval)"


def select_student(profile: DeviceProfile, input_shape: tuple[int, ...], num_classes: int, *,
                   latency_ms: float | None = None, memory_mb: float | None = None, size_mb: float | None = None,
                   families: tuple[str, ...] | list[str] | None = None, teacher: nn.Module | None = None,
                   teacher_cost: ReferenceCost | None = None, compress: float | str | None = None) -> StudentSpec:
    """The chosen StudentSpec with ``cost`` filled and the choice's reasons in ``selection``."""
    sel = run_selection(profile, input_shape, num_classes, latency_ms=latency_ms, memory_mb=memory_mb, size_mb=size_mb,
                        families=families, teacher=teacher, teacher_cost=teacher_cost, compress=compress)
    return finalize(sel, profile)


def finalize(sel: Selection, profile: DeviceProfile) -> StudentSpec:
    c = sel.choice
    teacher = None if sel.teacher is None else TeacherRecord(**sel.teacher.row())
    info = SelectionInfo(
        device=profile.name, criterion=CRITERION, precision=c.precision, budget=dataclasses.asdict(sel.budget),
        predicted_latency_ms=round(c.latency_ms, 4), peak_ram_mb=round(c.ram_mb, 3), size_mb=round(c.size_mb, 4),
        latency_source=sel.latency_source, candidates=len(sel.candidates), fitting=sum(x.fits for x in sel.candidates),
        compress_target=None if teacher is None else sel.compress,
        compression_x=None if teacher is None or c.compression_x is None else round(c.compression_x, 3),
        teacher=teacher, latency_upper_ms=None if c.latency_upper_ms is None else round(c.latency_upper_ms, 4),
    )
    cost = c.cost.to_estimate(c.precision, round(c.latency_ms, 4), profile.runtime.kind)
    return dataclasses.replace(c.spec, cost=cost, selection=info)
