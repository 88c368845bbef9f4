"""The bad files the catalogue points at, built once per test session in one folder.

Every file here is real: profiles derived from the shipped host profile with one key broken,
run configs, .npz files and image folders with one defect each, a FIFO, a symlink loop, model
files cut short, a finished run folder that a bad re-run must leave untouched.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np

from edgecompress.profiles import builtin_profiles_dir

HOST = (builtin_profiles_dir() / "host.toml").read_text()

# name -> (text to replace in host.toml, replacement). Each breaks exactly one key.
PROFILE_EDITS: dict[str, tuple[str, str]] = {
    "threads_zero": ("threads = 1", "threads = 0"),
    "threads_negative": ("threads = 1", "threads = -4"),
    "threads_huge": ("threads = 1", "threads = 99999999999"),
    "threads_2000": ("threads = 1", "threads = 2000"),
    "threads_float": ("threads = 1", "threads = 1.5"),
    "threads_string": ("threads = 1", 'threads = "four"'),
    "precisions_empty": ('precisions = ["fp32", "int8"]', "precisions = []"),
    "precisions_int4": ('precisions = ["fp32", "int8"]', 'precisions = ["int4"]'),
    "precisions_string": ('precisions = ["fp32", "int8"]', 'precisions = "fp32"'),
    "latency_zero": ("latency_budget_ms = 0.5", "latency_budget_ms = 0.0"),
    "latency_negative": ("latency_budget_ms = 0.5", "latency_budget_ms = -1.0"),
    "latency_nan": ("latency_budget_ms = 0.5", "latency_budget_ms = nan"),
    "latency_inf": ("latency_budget_ms = 0.5", "latency_budget_ms = inf"),
    "latency_1e308": ("latency_budget_ms = 0.5", "latency_budget_ms = 1e308"),
    "latency_string": ("latency_budget_ms = 0.5", 'latency_budget_ms = "fast"'),
    "ram_nan": ("peak_ram_budget_mb = 256.0", "peak_ram_budget_mb = nan"),
    "ram_inf": ("peak_ram_budget_mb = 256.0", "peak_ram_budget_mb = inf"),
    "ram_2e6": ("peak_ram_budget_mb = 256.0", "peak_ram_budget_mb = 2e6"),
    "size_neg_inf": ("model_size_budget_mb = 4.0", "model_size_budget_mb = -inf"),
    "size_zero": ("model_size_budget_mb = 4.0", "model_size_budget_mb = 0"),
    "gmacs_zero": ("fp32_gmacs_per_s = 10.0", "fp32_gmacs_per_s = 0.0"),
    "gmacs_nan": ("fp32_gmacs_per_s = 10.0", "fp32_gmacs_per_s = nan"),
    "gmacs_inf": ("int8_gmacs_per_s = 15.0", "int8_gmacs_per_s = inf"),
    "bandwidth_negative": ("memory_bandwidth_gb_per_s = 10.0", "memory_bandwidth_gb_per_s = -3.0"),
    "overhead_nan": ("per_op_overhead_us = 2.0", "per_op_overhead_us = nan"),
    "overhead_huge": ("per_op_overhead_us = 2.0", "per_op_overhead_us = 1e300"),
    "mask_not_hex": ('cpu_mask = ""', 'cpu_mask = "zz"'),
    "mask_zero": ('cpu_mask = ""', 'cpu_mask = "0x0"'),
    "runtime_unknown": ('kind = "onnxruntime-cpu"', 'kind = "tensorrt"'),
    "runner_unknown": ('runner = "local"', 'runner = "usb"'),
    "schema_2": ("schema_version = 1", "schema_version = 2"),
    "schema_missing": ("schema_version = 1", ""),
    "unknown_key": ("delegate = \"cpu\"", "delegate = \"cpu\"\nturbo = true"),
    "source_key": ('name = "host"', 'name = "host"\nsource = "x"'),
    "syntax_error": ("[budgets]", "[budgets"),
    "ram_gb_negative": ("detect = true", "detect = true\nram_gb = -2.0"),
    "ram_gb_inf": ("detect = true", "detect = true\nram_gb = inf"),
    "cluster_count_zero": ("detect = true", 'detect = false\nclusters = [{name = "a", core = "x", count = 0, max_clock_ghz = 2.0}]'),
    "cluster_clock_nan": ("detect = true", 'detect = false\nclusters = [{name = "a", core = "x", count = 4, max_clock_ghz = nan}]'),
    "name_missing": ('name = "host"', ""),
}

# name -> run config TOML text (each with one bad key)
RUN_CONFIGS: dict[str, str] = {
    "unknown_key": "epochs = 1\nturbo = true\n",
    "epochs_string": 'epochs = "ten"\n',
    "latency_nan": "latency_ms = nan\n",
    "latency_inf": "latency_ms = inf\n",
    "memory_negative": "memory_mb = -5.0\n",
    "memory_1e308": "memory_mb = 1e308\n",
    "runs_zero": "runs = 0\n",
    "warmup_negative": "warmup = -1\n",
    "seed_huge": "seed = 99999999999\n",
    "labeled_fraction_2": "labeled_fraction = 2.0\n",
    "labeled_fraction_nan": "labeled_fraction = nan\n",
    "compress_zero": "compress = 0\n",
    "compress_one": 'compress = "1x"\n',
    "serial_and_host": 'serial = "abc"\nhost = "pi@board"\n',
    "syntax_error": "epochs = = 3\n",
    "empty_device": 'device = ""\n',
    "table_value": "[epochs]\nx = 1\n",
    "steps_zero": "steps_per_epoch = 0\n",
}


def _write_profiles(ws: Path) -> None:
    bad = ws / "profiles"
    bad.mkdir()
    for name, (old, new) in PROFILE_EDITS.items():
        assert old in HOST, (name, old)
        (bad / f"{name}.toml").write_text(HOST.replace(old, new, 1))
    (bad / "empty.toml").write_text("")
    (bad / "binary.toml").write_bytes(bytes(range(256)) * 4)
    # A phone profile whose runtime executes ONNX: --serial has nothing to measure there.
    ok = ws / "profiles_ok"
    ok.mkdir()
    onnx_phone = HOST.replace('name = "host"', 'name = "onnxphone"').replace('runner = "local"', 'runner = "adb"')
    (ok / "onnxphone.toml").write_text(onnx_phone)
    dup = ws / "profiles_dup"
    dup.mkdir()
    (dup / "a.toml").write_text(HOST.replace('name = "host"', 'name = "twin"'))
    (dup / "b.toml").write_text(HOST.replace('name = "host"', 'name = "twin"'))
    shadow = ws / "profiles_shadow"
    shadow.mkdir()
    (shadow / "host.toml").write_text(HOST)


def _write_configs(ws: Path) -> None:
    d = ws / "configs"
    d.mkdir()
    for name, text in RUN_CONFIGS.items():
        (d / f"{name}.toml").write_text(text)


def _images(folder: Path, n: int, size: int = 12, seed: int = 0) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"img{i}.png")


def _write_data(ws: Path) -> None:
    d = ws / "data"
    d.mkdir()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 12, 12, 3), dtype=np.uint8)
    y = np.arange(40) % 4
    np.savez(d / "no_x.npz", images=x, y=y)
    np.savez(d / "no_y.npz", x=x)
    np.savez(d / "y_float.npz", x=x, y=y.astype(np.float32))
    np.savez(d / "y_short.npz", x=x, y=y[:30])
    np.savez(d / "label_1e9.npz", x=x, y=np.where(np.arange(40) == 7, 10**9, y))
    np.savez(d / "label_1000.npz", x=x, y=np.where(np.arange(40) == 7, 1000, y))
    np.savez(d / "label_negative.npz", x=x, y=np.where(np.arange(40) == 3, -1, y))
    np.savez(d / "label_vs_names.npz", x=x, y=np.where(np.arange(40) == 5, 9, y), class_names=np.array(["a", "b", "c", "d"]))
    np.savez(d / "one_name.npz", x=x, y=np.zeros(40, np.int64), class_names=np.array(["only"]))
    np.savez(d / "x_1d.npz", x=np.zeros(40, np.uint8), y=y)
    np.savez(d / "x_5ch.npz", x=np.zeros((40, 12, 12, 5), np.uint8), y=y)
    np.savez(d / "x_300.npz", x=np.full((40, 12, 12, 3), 300, np.int64), y=y)
    np.savez(d / "x_nan.npz", x=np.full((40, 12, 12, 3), np.nan, np.float32), y=y)
    np.savez(d / "x_empty.npz", x=np.zeros((0, 12, 12, 3), np.uint8), y=np.zeros(0, np.int64))
    np.savez(d / "one_class.npz", x=x, y=np.zeros(40, np.int64))
    (d / "not_a_zip.npz").write_text("hello")
    (d / "empty.npz").write_bytes(b"")
    (d / "data.csv").write_text("a,b\n1,2\n")
    (d / "empty_folder").mkdir()
    _images(d / "loose", 3)
    _images(d / "one_empty_class" / "cat", 6)
    (d / "one_empty_class" / "dog").mkdir()
    corrupt = d / "all_corrupt"
    for cls in ("a", "b"):
        (corrupt / cls).mkdir(parents=True)
        for i in range(3):
            (corrupt / cls / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    # Hostile entries, each in an otherwise fine two-class folder.
    for name in ("fifo", "loop_class", "loop_file", "device_file", "broken_link"):
        _images(d / name / "a", 5, seed=1)
        _images(d / name / "b", 5, seed=2)
    os.mkfifo(d / "fifo" / "a" / "pipe.png")
    os.symlink("self", d / "loop_class" / "self")
    os.symlink("spin.png", d / "loop_file" / "a" / "spin.png")
    os.symlink("/dev/zero", d / "device_file" / "a" / "zero.png")
    os.symlink("missing.png", d / "broken_link" / "a" / "gone.png")
    cifar = d / "cifar_bad"
    cifar.mkdir()
    (cifar / "batches.meta").write_bytes(pickle.dumps({"label_names": ["a", "b"]}))
    (cifar / "data_batch_1").write_bytes(b"not a pickle")
    evil = d / "cifar_evil"
    evil.mkdir()
    (evil / "batches.meta").write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    (evil / "data_batch_1").write_bytes(b"")


def _write_models(ws: Path) -> None:
    m = ws / "models"
    m.mkdir()
    (m / "garbage.tflite").write_bytes(os.urandom(64))
    (m / "tiny.tflite").write_bytes(b"\x10\x00\x00\x00TFL3")
    (m / "empty.tflite").write_bytes(b"")
    # The identifier but a root table that points past the end: a file cut after its header.
    (m / "header_only.tflite").write_bytes(b"\x00\x10\x00\x00TFL3" + b"\x00" * 24)
    (m / "garbage.onnx").write_bytes(b"\x08\x07garbage-not-a-protobuf" * 3)
    (m / "model.pt").write_bytes(b"not a model")
    (m / "folder.tflite").mkdir()
    (m / "bad_artifact.json").write_text('{"kind": "export_artifact", "schema_version": 1}')
    (m / "not_json.json").write_text("{nope")
    from fakes.bench_models import make_onnx

    good = make_onnx(m / "good.onnx")
    blob = good.read_bytes()
    (m / "truncated.onnx").write_bytes(blob[: len(blob) // 2])


def _write_runs(ws: Path) -> None:
    run = ws / "finished_run"
    run.mkdir()
    (run / "run_config.json").write_text(json.dumps({"device": "host", "epochs": 3}, indent=2))
    (run / "summary.json").write_text(json.dumps({"verdict": {"all_ok": True}}, indent=2))
    (run / "state.json").write_text(json.dumps({"select": {"key": "abc", "finished": True}}, indent=2))
    (run / "export").mkdir()
    (run / "export" / "model_fp32.tflite").write_bytes(b"\x00" * 64)


def build_workspace(ws: Path) -> Path:
    ws.mkdir(parents=True, exist_ok=True)
    _write_profiles(ws)
    _write_configs(ws)
    _write_data(ws)
    _write_models(ws)
    _write_runs(ws)
    (ws / "file.txt").write_text("a file, not a folder\n")
    os.symlink("loop", ws / "loop")  # a symlink to itself
    os.symlink("nowhere", ws / "dangling")
    return ws
