"""Catalogue cases: numbers and names given on the command line or in a run config."""

from __future__ import annotations

from cases import Case, build, case
from workspace import PROFILE_EDITS, RUN_CONFIGS

BUDGET = "a finite number in (0, 1000000]"

VALUES: list[Case] = [
    # --latency-ms / --memory-mb: checked before anything loads (it used to be inside select,
    # after teacher and data, leaving a state.json behind).
    *[case(f"value-latency-{v}", build("--latency-ms", v), "latency_ms", BUDGET) for v in ("0", "-1", "nan", "inf", "-inf", "1e308", "1e7")],
    *[case(f"value-memory-{v}", build("--memory-mb", v), "memory_mb", BUDGET) for v in ("0", "-0.5", "nan", "inf", "1e308")],
    *[case(f"value-runs-{v}", build("--runs", v), "runs", f"= {v}", "[1, 1000000000]") for v in ("0", "-5", "10000000000")],
    *[case(f"value-warmup-{v}", build("--warmup", v), "warmup", "[0, 100000]") for v in ("-1", "1000000")],
    *[case(f"value-epochs-{v}", build("--epochs", v), "epochs", "[1, 100000]") for v in ("0", "-3", "99999999999999999999")],
    *[case(f"value-steps-{v}", build("--steps-per-epoch", v), "steps_per_epoch", "[1, 10000000]") for v in ("0", "100000000000")],
    *[case(f"value-seed-{v}", build("--seed", v), "seed", "[0, 4294967295]") for v in ("-1", "4294967296")],
    *[case(f"value-fraction-{v}", build("--labeled-fraction", v), "labeled_fraction", "(0, 1]") for v in ("0", "-0.1", "1.5", "nan", "inf")],
    *[case(f"value-compress-{v}", build("--compress", v), "compress", f"'{v}'", "(1, ") for v in ("1x", "0x", "-8x", "abc", "infx", "nanx", "1e9x")],
    case("value-serial-and-host", build("--serial", "abc", "--host", "pi@board"), "--serial", "--host", "not both"),
    case("value-serial-dash", build("--device", "pixel7", "--serial", "-x"), "serial", "'-x'", "must not start with '-'"),
    case("value-host-dash", build("--device", "rpi5", "--host", "-oProxyCommand=touch /tmp/x"), "host", "must not start with '-'"),
    case("value-device-empty", build("--device", ""), "device", "''"),
    case("value-out-empty", ["build", "--quiet", "--out", ""], "out", "''"),
    case("value-epochs-not-int", build("--epochs", "ten"), "--epochs", "'ten'", "integer"),
    case("value-latency-not-number", build("--latency-ms", "fast"), "--latency-ms", "'fast'"),
    case("value-data-typo", build("--data", "digitz"), "--data", "'digitz'", "built-in: digits, shapes"),
    case("value-data-typo-shapes", build("--data", "shapez"), "--data", "'shapez'", "not a built-in dataset"),
    case("value-teacher-without-data", build("--teacher", "{ws}/models/model.pt"), "--data is required"),
    case("value-data-needs-teacher", build("--data", "{ws}/data/one_class.npz"), "--teacher is required", "one_class.npz"),
    case("value-unlabeled-unknown-pool", build("--data", "shapes", "--unlabeled", "digits-pool"), "digits-pool"),
    # select: the same bounds as build
    *[case(f"value-select-latency-{v}", ["select", "--device", "pixel7", "--classes", "10", "--latency-ms", v], "latency_ms", BUDGET)
      for v in ("0", "nan", "inf", "1e308")],
    case("value-select-size-inf", ["select", "--device", "pixel7", "--classes", "10", "--size-mb", "inf"], "size_mb", BUDGET),
    case("value-select-classes-1", ["select", "--device", "pixel7", "--classes", "1"], "classes", "1"),
    case("value-select-family", ["select", "--device", "pixel7", "--classes", "10", "--family", "transformer"], "transformer", "known"),
    case("value-select-compress", ["select", "--device", "pixel7", "--classes", "10", "--compress", "0.5x"], "--compress", "--teacher"),
    # bench numbers: rejected before anything runs
    *[case(f"value-bench-threads-{v}", ["bench", "--artifact", "{ws}/models/good.onnx", "--threads", v], "threads", "[1, 1024]")
      for v in ("0", "-2", "2000", "99999999999999999999")],
    *[case(f"value-bench-runs-{v}", ["bench", "--artifact", "{ws}/models/good.onnx", "--runs", v], "runs", "[1, 1000000000]") for v in ("0", "100000000000")],
    case("value-bench-warmup", ["bench", "--artifact", "{ws}/models/good.onnx", "--warmup", "-1"], "warmup", "[0, 100000]"),
    *[case(f"value-bench-max-seconds-{v}", ["bench", "--artifact", "{ws}/models/good.onnx", "--max-seconds", v], "max_seconds", "(0, 86400]")
      for v in ("0", "nan", "inf")],
]

_CONFIG_WORDS: dict[str, tuple[str, ...]] = {
    "unknown_key": ("unknown_key.toml", "turbo"),
    "epochs_string": ("epochs_string.toml", "epochs"),
    "latency_nan": ("latency_ms", BUDGET),
    "latency_inf": ("latency_ms", BUDGET),
    "memory_negative": ("memory_mb", BUDGET),
    "memory_1e308": ("memory_mb", BUDGET),
    "runs_zero": ("runs", "[1, 1000000000]"),
    "warmup_negative": ("warmup", "[0, 100000]"),
    "seed_huge": ("seed", "99999999999"),
    "labeled_fraction_2": ("labeled_fraction", "(0, 1]"),
    "labeled_fraction_nan": ("labeled_fraction", "(0, 1]"),
    "compress_zero": ("compress", "'0'"),
    "compress_one": ("compress", "'1x'"),
    "serial_and_host": ("--serial", "not both"),
    "syntax_error": ("syntax_error.toml",),
    "empty_device": ("device", "''"),
    "table_value": ("table_value.toml", "epochs"),
    "steps_zero": ("steps_per_epoch", "[1, 10000000]"),
}
assert set(_CONFIG_WORDS) == set(RUN_CONFIGS)

CONFIGS: list[Case] = [
    *[case(f"config-{name}", build("--config", f"{{ws}}/configs/{name}.toml"), *words) for name, words in _CONFIG_WORDS.items()],
    case("config-missing-file", build("--config", "{ws}/configs/nope.toml"), "nope.toml"),
    case("config-is-folder", build("--config", "{ws}/configs"), "configs"),
    case("config-binary", build("--config", "{ws}/profiles/binary.toml"), "binary.toml"),
]

# profile -> words of its one line (the file name and the key are in every one)
_PROFILE_WORDS: dict[str, tuple[str, ...]] = {
    "threads_zero": ("runtime.threads", "[1, 1024]"),
    "threads_negative": ("runtime.threads", "-4"),
    "threads_huge": ("runtime.threads", "99999999999", "[1, 1024]"),
    "threads_2000": ("runtime.threads", "2000"),
    "threads_float": ("threads",),
    "threads_string": ("threads",),
    "precisions_empty": ("runtime.precisions", "at least one"),
    "precisions_int4": ("runtime.precisions", "int4", "fp32, fp16, int8"),
    "precisions_string": ("precisions",),
    "latency_zero": ("budgets.latency_budget_ms", BUDGET),
    "latency_negative": ("budgets.latency_budget_ms", BUDGET),
    "latency_nan": ("budgets.latency_budget_ms", "nan"),
    "latency_inf": ("budgets.latency_budget_ms", "inf"),
    "latency_1e308": ("budgets.latency_budget_ms", "1e+308"),
    "latency_string": ("latency_budget_ms",),
    "ram_nan": ("budgets.peak_ram_budget_mb", BUDGET),
    "ram_inf": ("budgets.peak_ram_budget_mb", BUDGET),
    "ram_2e6": ("budgets.peak_ram_budget_mb", "2000000"),
    "size_neg_inf": ("budgets.model_size_budget_mb", "-inf"),
    "size_zero": ("budgets.model_size_budget_mb",),
    "gmacs_zero": ("priors.fp32_gmacs_per_s",),
    "gmacs_nan": ("priors.fp32_gmacs_per_s", "nan"),
    "gmacs_inf": ("priors.int8_gmacs_per_s", "inf"),
    "bandwidth_negative": ("priors.memory_bandwidth_gb_per_s", "-3.0"),
    "overhead_nan": ("priors.per_op_overhead_us", "nan"),
    "overhead_huge": ("priors.per_op_overhead_us", "1e+300"),
    "mask_not_hex": ("runtime.cpu_mask", "zz"),
    "mask_zero": ("runtime.cpu_mask", "0x0"),
    "runtime_unknown": ("runtime.kind", "tensorrt", "onnxruntime-cpu"),
    "runner_unknown": ("connection.runner", "usb", "local, adb, ssh"),
    "schema_2": ("schema_version", "2"),
    "schema_missing": ("schema_version", "missing"),
    "unknown_key": ("turbo",),
    "source_key": ("source",),
    "syntax_error": ("syntax_error.toml",),
    "ram_gb_negative": ("hardware.ram_gb", "-2.0"),
    "ram_gb_inf": ("hardware.ram_gb", "inf"),
    "cluster_count_zero": ("hardware.clusters[0]", "count in [1, 1024]"),
    "cluster_clock_nan": ("hardware.clusters[0]", "nan"),
    "name_missing": ("name",),
}
assert set(_PROFILE_WORDS) == set(PROFILE_EDITS)

PROFILES: list[Case] = [
    *[case(f"profile-{name}", ["profiles", "show", f"{{ws}}/profiles/{name}.toml"], f"{name}.toml", *words)
      for name, words in _PROFILE_WORDS.items()],
    # the same files given to build: rejected before a run folder exists
    *[case(f"profile-build-{name}", build("--device", f"{{ws}}/profiles/{name}.toml"), f"{name}.toml", *_PROFILE_WORDS[name])
      for name in ("threads_huge", "precisions_empty", "latency_inf", "latency_1e308", "ram_nan", "gmacs_zero")],
    case("profile-empty-file", ["profiles", "show", "{ws}/profiles/empty.toml"], "empty.toml", "schema_version"),
    case("profile-binary-file", ["profiles", "show", "{ws}/profiles/binary.toml"], "binary.toml"),
    case("profile-missing-file", ["profiles", "show", "{ws}/profiles/nope.toml"], "nope.toml"),
    case("profile-unknown-name", build("--device", "pixle7"), "'pixle7'", "known: host, pixel7, rpi4, rpi5"),
    case("profile-dir-missing", build("--profiles-dir", "{ws}/no_such_dir"), "no_such_dir", "does not exist"),
    case("profile-dir-is-file", ["profiles", "list", "--profiles-dir", "{ws}/file.txt"], "file.txt"),
    case("profile-dir-duplicate", ["profiles", "list", "--profiles-dir", "{ws}/profiles_dup"], "duplicate", "twin"),
    case("profile-dir-shadows-builtin", build("--profiles-dir", "{ws}/profiles_shadow"), "duplicate", "host"),
    case("profile-dir-bad-file", ["profiles", "list", "--profiles-dir", "{ws}/profiles"], ".toml"),
]
