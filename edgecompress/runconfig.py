"""The resolved options of one `edgecompress build` run.

Precedence: built-in defaults < the run config file (`--config run.toml`) < command-line
options. The resolved config is saved in the run directory; together with the inputs' hashes it
decides which stages can be skipped when the same command runs again.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from edgecompress.artifacts import _decode_dataclass, _encode, read_toml
from edgecompress.bounds import (
    MAX_BUDGET,
    MAX_EPOCHS,
    MAX_RUNS,
    MAX_SEED,
    MAX_STEPS,
    MAX_WARMUP,
    check_float,
    check_int,
)
from edgecompress.errors import ConfigError
from edgecompress.preprocess_options import PreprocessOptions

# The built-in demo task: procedural shapes with a style-shifted unlabeled pool and 10% of
# the labels -- the setting of Tang et al. 2019 -- distilled from a cached demo teacher.
DEMO_DATA = "shapes"
DEMO_UNLABELED = "shapes-pool"
DEMO_LABELED_FRACTION = 0.1
# A fixed training budget so the demo finishes in under 5 minutes on a 2-core CPU (600 steps
# of 64 labeled + 64 pool rows: the 8x-pruned student lands within 1 pt of its teacher, see
# docs/distill.md); a user's run defaults to the trainer's own epochs (one pass over the larger
# data stream each).
DEMO_EPOCHS = 8
BUILTIN_TEACHER_DATA = ("digits", "shapes")  # built-in datasets with a cached demo teacher
DEMO_STEPS_PER_EPOCH = 75
# The default method with unlabeled data (a pool, or the rest of a labeled fraction), chosen from
# benchmarks/compression_table.py: plain KD with the teacher labelling the pool matched or beat
# the adversarial methods (ANC, ANC + Tang et al.'s alignment) in most settings there, at less
# cost per step; they stay available with --method. Without unlabeled data: KD.
DEMO_METHOD = "kd+unlabeled"
REQUIRE_CHOICES = ("int8", "fp16", "fp32")  # precisions a profile's runtime can deploy
LABELED_ONLY_METHOD = "kd"


def default_method(has_unlabeled: bool) -> str:
    return DEMO_METHOD if has_unlabeled else LABELED_ONLY_METHOD


@dataclasses.dataclass(frozen=True)
class RunConfig:
    device: str = "pixel7"
    teacher: str | None = None
    entry_point: str | None = None
    entry_point_kwargs: dict[str, Any] | None = None  # keyword arguments for the entry point's factory
    trust_checkpoint: bool = False
    teacher_output: str | None = None  # which output is the logits (NAME or INDEX) for tuple/dict outputs
    teacher_feature: str | None = None  # module whose output is the teacher's embedding (default: last Linear's input)
    student_feature: str | None = None  # the same for the student (default: its classifier's input)
    # The teacher's input preprocessing (keys of preprocess_options.KEYS); see docs/data.md.
    preprocessing: dict[str, Any] = dataclasses.field(default_factory=dict)
    auto_normalize: bool = False  # take a clearly better normalization found by the preflight check
    raw_input: bool = False  # also write ONNX artifacts with the preprocessing folded in (uint8 NHWC RGB in)
    data: str | None = None
    unlabeled: str | None = None
    labeled_fraction: float | None = None
    out: str | None = None
    loss_weights: dict[str, float] | None = None  # per loss term, over the method's preset (`--loss-weight NAME=W`)
    method: str | None = None  # default: DEMO_METHOD with unlabeled data, else LABELED_ONLY_METHOD
    epochs: int | None = None
    steps_per_epoch: int | None = None
    seed: int = 0
    latency_ms: float | None = None
    memory_mb: float | None = None
    families: tuple[str, ...] | None = None  # student families to search, in preference order (default: all built-in)
    compress: str | None = None  # teacher MACs / student MACs, "8x"; None = select.DEFAULT_COMPRESS
    profiles_dir: str | None = None
    serial: str | None = None
    host: str | None = None
    runs: int = 100
    warmup: int = 10
    sustained: float | None = None  # seconds of back-to-back runs per artifact instead of `runs` (bench --sustained)
    cooldown: float = 0.0  # seconds the device idles before each artifact is measured
    strict: bool = False  # fail on an unreadable or odd data file instead of skipping it
    # A precision the deployed artifact must have ("int8"): a miss fails the build instead of
    # deploying the smallest artifact that passed the parity gate. None: deploy the best one.
    require: str | None = None
    # int8 from a quantization-aware fine-tune of the student (export/qat.py) instead of PTQ
    # first; without it QAT is only the accuracy-aware export's last resort.
    qat: bool = False

    @property
    def is_demo(self) -> bool:
        return self.teacher is None and self.data is None

    @property
    def uses_demo_teacher(self) -> bool:
        """No teacher file: the cached demo teacher of a built-in dataset is used."""
        return self.teacher is None

    def resolved(self) -> RunConfig:
        """Fill demo defaults and the output folder; check values (one line per problem)."""
        cfg = self
        if cfg.is_demo:
            cfg = dataclasses.replace(
                cfg,
                data=DEMO_DATA,
                unlabeled=cfg.unlabeled or DEMO_UNLABELED,
                labeled_fraction=cfg.labeled_fraction if cfg.labeled_fraction is not None else DEMO_LABELED_FRACTION,
                epochs=cfg.epochs if cfg.epochs is not None else DEMO_EPOCHS,  # 0 is an error, not "default"
                steps_per_epoch=cfg.steps_per_epoch if cfg.steps_per_epoch is not None else DEMO_STEPS_PER_EPOCH,
            )
        elif cfg.data is None:
            raise ConfigError("--data is required when --teacher is given (the built-in demo uses neither)")
        elif cfg.teacher is None and cfg.data.partition(":")[0] not in BUILTIN_TEACHER_DATA:
            if not Path(cfg.data).expanduser().exists() and "/" not in cfg.data and not Path(cfg.data).suffix:
                # A typo of a built-in name (--data digitz) is a data problem, not a missing teacher.
                raise ConfigError(f"--data {cfg.data!r}: no such file or folder, and not a built-in dataset "
                                  f"(built-in: {', '.join(BUILTIN_TEACHER_DATA)})")
            raise ConfigError(
                f"--teacher is required for --data {cfg.data} (demo teachers exist only for {', '.join(BUILTIN_TEACHER_DATA)})"
            )
        if cfg.labeled_fraction is None:
            cfg = dataclasses.replace(cfg, labeled_fraction=1.0)
        assert cfg.labeled_fraction is not None
        if cfg.method is None:
            # Unlabeled data (a pool or the labels-dropped rest) is labelled by the teacher.
            has_unlabeled = cfg.unlabeled is not None or cfg.labeled_fraction < 1
            cfg = dataclasses.replace(cfg, method=default_method(has_unlabeled))
        cfg.check_bounds()
        if cfg.require is not None and cfg.require not in REQUIRE_CHOICES:
            raise ConfigError(f"require = {cfg.require!r} is not allowed (allowed: {', '.join(REQUIRE_CHOICES)})")
        if cfg.compress is not None:
            from edgecompress.select import parse_compress

            cfg = dataclasses.replace(cfg, compress=f"{parse_compress(cfg.compress, 'compress'):g}x")
        self.preprocess_options()  # one line per bad value, before anything is written
        if cfg.entry_point_kwargs is not None and cfg.entry_point is None:
            raise ConfigError("--entry-point-kwargs needs --entry-point module:factory")
        if cfg.serial and cfg.host:
            raise ConfigError("give --serial (Android over adb) or --host (board over ssh), not both")
        if cfg.out is None:
            cfg = dataclasses.replace(cfg, out=str(Path("runs") / f"{cfg.device}-{Path(cfg.data or 'demo').stem}"))
        return cfg

    def check_bounds(self) -> None:
        """Finite numbers inside named ranges: ``> 0`` alone lets ``inf`` and ``1e308`` through."""
        check_float("labeled_fraction", self.labeled_fraction, 0.0, 1.0, ConfigError)
        for key, hi in (("epochs", MAX_EPOCHS), ("steps_per_epoch", MAX_STEPS)):
            if getattr(self, key) is not None:
                check_int(key, getattr(self, key), 1, hi, ConfigError)
        for key in ("latency_ms", "memory_mb"):  # overrides of the profile's budgets
            if getattr(self, key) is not None:
                check_float(key, getattr(self, key), 0.0, MAX_BUDGET, ConfigError)
        check_int("seed", self.seed, 0, MAX_SEED, ConfigError)
        check_int("runs", self.runs, 1, MAX_RUNS, ConfigError)
        check_int("warmup", self.warmup, 0, MAX_WARMUP, ConfigError)
        if self.sustained is not None:
            check_float("sustained", self.sustained, 0.0, 86_400.0, ConfigError)
        if self.cooldown:
            check_float("cooldown", self.cooldown, 0.0, 3_600.0, ConfigError)
        for key in ("device", "serial", "host", "out"):
            value = getattr(self, key)
            if value is not None and (not str(value).strip() or "\x00" in str(value)):
                raise ConfigError(f"{key} = {value!r} is not allowed (an empty name or one with a NUL byte)")
        for key in ("serial", "host"):
            if getattr(self, key) is not None and str(getattr(self, key)).startswith("-"):
                raise ConfigError(f"{key} = {getattr(self, key)!r} is not allowed (it must not start with '-')")

    def preprocess_options(self) -> PreprocessOptions:
        """The preprocessing declared by options / the run config (validated)."""
        return PreprocessOptions.parse(self.preprocessing, "options")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = _encode(self)
        return out


def load_run_config(path: str | Path | None, overrides: dict[str, Any]) -> RunConfig:
    """Defaults, then the TOML file, then the non-None ``overrides`` (the CLI options)."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        data = read_toml(p, ConfigError, "run config file")
        if isinstance(data.get("compress"), (int, float)) and not isinstance(data["compress"], bool):
            data["compress"] = f"{data['compress']:g}"  # `compress = 8` in TOML means 8x
        try:
            _decode_dataclass(RunConfig, data, "")
        except ConfigError as exc:
            raise ConfigError(f"{p}: {exc}") from None
    overrides = dict(overrides)
    pre = {k: v for k, v in (overrides.pop("preprocessing", None) or {}).items() if v is not None}
    if pre:  # per-key: a CLI --mean overrides the file's mean, keeps its channel_order
        data["preprocessing"] = {**(data.get("preprocessing") or {}), **pre}
    data.update({k: v for k, v in overrides.items() if v is not None})
    cfg: RunConfig = _decode_dataclass(RunConfig, data, "")
    return cfg
