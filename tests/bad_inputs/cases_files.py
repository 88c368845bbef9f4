"""Catalogue cases: output folders, devices, data, model and teacher files, re-runs."""

from __future__ import annotations

from cases import DEVICE, Case, build, case, teacher_build

OUT: list[Case] = [
    case("out-under-a-file", build("--out", "{ws}/file.txt/run"), "--out", "file.txt", "not a folder"),
    case("out-is-a-file", build("--out", "{ws}/file.txt"), "--out", "file.txt", "is a file"),
    case("out-under-proc", build("--out", "/proc/edgecompress-run"), "--out", "/proc/edgecompress-run", "cannot write"),
    case("out-deep-under-proc", build("--out", "/proc/self/nope/run"), "--out", "/proc/self/nope/run"),
    case("out-under-sys", build("--out", "/sys/edgecompress-run"), "--out", "/sys/edgecompress-run", "cannot write"),
    case("out-symlink-loop", build("--out", "{ws}/loop"), "--out", "loop", "symlink loop"),
    case("out-dangling-symlink", build("--out", "{ws}/dangling"), "--out", "dangling", "broken symlink"),
    case("out-name-too-long", build("--out", "{tmp}/" + "x" * 300), "--out", "xxxx", "cannot write"),
    case("out-under-dev-null", build("--out", "/dev/null/run"), "--out", "/dev/null", "not a folder"),
    case("model-export-text-checkpoint", ["export", "--checkpoint", "{ws}/file.txt", "--out", "{ws}/file.txt/x"], "file.txt", "not valid JSON"),
]

_ADB = {"FAKE_ADB_SERIAL": "emulator-5554"}
DEVICES: list[Case] = [
    case("device-serial-onnx-profile", build("--device", "host", "--serial", "emulator-5554"), "--serial", "onnx", "drop --serial"),
    case("device-serial-onnx-phone", build("--device", "{ws}/profiles_ok/onnxphone.toml", "--serial", "emulator-5554"),
         "--serial", "onnxphone", "onnxruntime-cpu", needs=("adb",), env=_ADB),
    case("device-host-onnx-profile", build("--device", "host", "--host", "pi@board"), "--host", "onnx"),
    case("device-serial-for-ssh-board", build("--device", "rpi5", "--serial", "abc"), "serial 'abc'", "rpi5", "ssh"),
    case("device-host-for-adb-phone", build("--device", "pixel7", "--host", "pi@board"), "host 'pi@board'", "pixel7", "adb"),
    case("device-host-unresolvable", build("--device", "rpi5", "--host", "nosuch.invalid"), "nosuch.invalid", "unreachable",
         code=DEVICE),
    case("device-host-refused", build("--device", "rpi4", "--host", "127.0.0.1"), "127.0.0.1", "unreachable", code=DEVICE),
    case("device-host-user-refused", build("--device", "rpi5", "--host", "pi@127.0.0.1"), "pi@127.0.0.1", code=DEVICE),
    case("device-serial-absent", build("--device", "pixel7", "--serial", "R5CT-NOT-HERE"), "R5CT-NOT-HERE", code=DEVICE,
         needs=("adb",), env=_ADB),
    case("device-serial-offline", build("--device", "pixel7", "--serial", "emulator-5554"), "emulator-5554", "unauthorized", code=DEVICE,
         needs=("adb",), env={**_ADB, "FAKE_ADB_STATE": "unauthorized"}),
    case("device-bench-serial-and-host", ["bench", "--artifact", "{ws}/models/good.onnx", "--serial", "a", "--host", "b"],
         "--serial", "--host"),
    case("device-bench-serial-local", ["bench", "--artifact", "{ws}/models/good.onnx", "--serial", "abc"], "serial 'abc'", "local"),
    case("device-bench-port-for-local", ["bench", "--artifact", "{ws}/models/good.onnx", "--port", "22"], "--port", "local"),
    case("device-bench-host-unreachable", ["bench", "--artifact", "{ws}/models/good.onnx", "--device", "rpi5", "--host",
                                           "nosuch.invalid"], "nosuch.invalid", code=DEVICE),
    case("device-bench-runner-choice", ["bench", "--artifact", "{ws}/models/good.onnx", "--runner", "usb"], "--runner", "'usb'"),
    case("device-bench-no-host", ["bench", "--artifact", "{ws}/models/good.onnx", "--device", "rpi5"], "rpi5", "--host"),
]

_D = "{ws}/data/"
DATA: list[Case] = [
    # through `data show` (no teacher needed) ...
    case("data-npz-no-x", ["data", "show", _D + "no_x.npz"], "no_x.npz", "'x'", "images"),
    case("data-npz-no-y", ["data", "show", _D + "no_y.npz"], "no_y.npz", "--unlabeled"),
    case("data-npz-y-float", ["data", "show", _D + "y_float.npz"], "y_float.npz", "float32", "integer"),
    case("data-npz-y-short", ["data", "show", _D + "y_short.npz"], "y_short.npz", "40 images", "30 labels"),
    case("data-npz-label-1e9", ["data", "show", _D + "label_1e9.npz"], "label_1e9.npz", "1000000000", "index 7", "99999"),
    case("data-npz-label-1000", ["data", "show", _D + "label_1000.npz"], "label_1000.npz", "label 1000", "index 7", "1001 classes"),
    case("data-npz-label-negative", ["data", "show", _D + "label_negative.npz"], "label_negative.npz", "label -1", "index 3"),
    case("data-npz-label-vs-names", ["data", "show", _D + "label_vs_names.npz"], "label_vs_names.npz", "label 9", "0..3"),
    case("data-npz-one-name", ["data", "show", _D + "one_name.npz"], "one_name.npz", "class_names", "2 to 100000"),
    case("data-npz-one-class", ["data", "show", _D + "one_class.npz"], "one_class.npz", "at least 2"),
    case("data-npz-x-1d", ["data", "show", _D + "x_1d.npz"], "x_1d.npz", "shape"),
    case("data-npz-x-5ch", ["data", "show", _D + "x_5ch.npz"], "x_5ch.npz", "channels"),
    case("data-npz-x-300", ["data", "show", _D + "x_300.npz"], "x_300.npz", "300", "[0, 255]"),
    case("data-npz-x-nan", ["data", "show", _D + "x_nan.npz"], "x_nan.npz", "nan"),
    case("data-npz-x-empty", ["data", "show", _D + "x_empty.npz"], "x_empty.npz", "no images"),
    case("data-npz-not-zip", ["data", "show", _D + "not_a_zip.npz"], "not_a_zip.npz", "not a readable .npz"),
    case("data-npz-empty-file", ["data", "show", _D + "empty.npz"], "empty.npz"),
    case("data-csv", ["data", "show", _D + "data.csv"], "data.csv", "'.csv'"),
    case("data-missing-path", ["data", "show", _D + "nope"], "nope", "no such file or folder"),
    case("data-unknown-name", ["data", "show", "digitz"], "'digitz'", "known: digits, shapes"),
    case("data-empty-folder", ["data", "show", _D + "empty_folder"], "empty_folder", "empty"),
    case("data-loose-images", ["data", "show", _D + "loose"], "loose", "--unlabeled"),
    case("data-empty-class", ["data", "show", _D + "one_empty_class"], "one_empty_class", "dog"),
    case("data-all-corrupt", ["data", "show", _D + "all_corrupt"], "all_corrupt", "6 images"),
    case("data-strict-corrupt", ["data", "show", _D + "all_corrupt", "--strict"], "0.png", "--strict"),
    case("data-strict-fifo", ["data", "show", _D + "fifo", "--strict"], "pipe.png", "a FIFO", "--strict"),
    case("data-strict-loop-class", ["data", "show", _D + "loop_class", "--strict"], "self", "symlink loop"),
    case("data-strict-loop-file", ["data", "show", _D + "loop_file", "--strict"], "spin.png", "symlink loop"),
    case("data-strict-device-file", ["data", "show", _D + "device_file", "--strict"], "zero.png", "character device"),
    case("data-strict-broken-link", ["data", "show", _D + "broken_link", "--strict"], "gone.png", "No such file"),
    case("data-cifar-bad-pickle", ["data", "show", _D + "cifar_bad"], "data_batch_1", "CIFAR"),
    case("data-cifar-evil-pickle", ["data", "show", _D + "cifar_evil"], "batches.meta", "refusing", "system"),
    case("data-unlabeled-missing", ["data", "show", "digits", "--unlabeled", _D + "nope"], "nope", "unlabeled"),
    case("data-unlabeled-pool-mismatch", ["data", "show", "digits", "--unlabeled", "shapes-pool"], "shapes-pool", "'digits'"),
    case("data-unlabeled-csv", ["data", "show", "digits", "--unlabeled", _D + "data.csv"], "data.csv", "unlabeled"),
    case("data-unlabeled-strict-fifo", ["data", "show", "digits", "--unlabeled", _D + "fifo", "--strict"], "pipe.png", "FIFO"),
    case("data-fraction-zero", ["data", "show", "digits", "--labeled-fraction", "0"], "0"),
    case("data-input-shape-text", ["data", "show", "digits", "--input-shape", "abc"], "--input-shape", "'abc'", "CxHxW"),
    case("data-input-shape-5ch", ["data", "show", "digits", "--input-shape", "5x32x32"], "5, 32, 32", "channels"),
    case("data-input-shape-huge", ["data", "show", "digits", "--input-shape", "3x99999x32"], "99999", "4096"),
    case("data-grid-under-file", ["data", "show", "digits", "--out", "{ws}/file.txt/grid.png"], "file.txt"),
    # ... and through build, where a bad data file must fail before anything is written
    case("data-build-label-1e9", teacher_build("--data", _D + "label_1e9.npz"), "label_1e9.npz", "1000000000",
         needs=("teacher",)),
    case("data-build-label-1000", teacher_build("--data", _D + "label_1000.npz"), "label_1000.npz", "1001 classes",
         needs=("teacher",)),
    case("data-build-strict-fifo", teacher_build("--data", _D + "fifo", "--strict"), "pipe.png", "FIFO", needs=("teacher",)),
    case("data-build-strict-loop", teacher_build("--data", _D + "loop_class", "--strict"), "self", "symlink loop",
         needs=("teacher",)),
    case("data-build-missing", teacher_build("--data", _D + "nope"), "nope", needs=("teacher",)),
    case("data-build-empty-folder", teacher_build("--data", _D + "empty_folder"), "empty_folder", needs=("teacher",)),
    case("data-build-unlabeled-missing", teacher_build("--data", "digits", "--unlabeled", _D + "nope"), "nope",
         needs=("teacher",)),
    case("data-build-mismatch", teacher_build("--data", _D + "fifo"), "teacher", needs=("teacher",)),
]

_M = "{ws}/models/"
MODELS: list[Case] = [
    case("model-missing", ["bench", "--artifact", _M + "nope.tflite"], "nope.tflite", "not found"),
    case("model-empty", ["bench", "--artifact", _M + "empty.tflite"], "empty.tflite", "empty"),
    case("model-garbage-tflite", ["bench", "--artifact", _M + "garbage.tflite"], "garbage.tflite", "not a .tflite file"),
    case("model-tiny-tflite", ["bench", "--artifact", _M + "tiny.tflite"], "tiny.tflite", "only 8 bytes"),
    case("model-header-only-tflite", ["bench", "--artifact", _M + "header_only.tflite"], "header_only.tflite", "truncated"),
    case("model-truncated-tflite", ["bench", "--artifact", "{tflite_truncated}"], "truncated.tflite", "past the end",
         needs=("tflite",)),
    case("model-garbage-onnx", ["bench", "--artifact", _M + "garbage.onnx"], "garbage.onnx", "not a valid .onnx"),
    case("model-truncated-onnx", ["bench", "--artifact", _M + "truncated.onnx"], "truncated.onnx", "not a valid .onnx"),
    case("model-wrong-suffix", ["bench", "--artifact", _M + "model.pt"], "model.pt", ".onnx, .tflite"),
    case("model-folder", ["bench", "--artifact", _M + "folder.tflite"], "folder.tflite", "not found"),
    case("model-bad-artifact-json", ["bench", "--artifact", _M + "bad_artifact.json"], "bad_artifact.json", "export artifact"),
    case("model-not-json", ["bench", "--artifact", _M + "not_json.json"], "not_json.json"),
    case("model-json-out-under-file", ["bench", "--artifact", _M + "garbage.tflite", "--json", "{ws}/file.txt/r.json"],
         "garbage.tflite"),
    case("model-export-missing-checkpoint", ["export", "--checkpoint", "{tmp}/nope.json", "--out", "{tmp}/run"], "nope.json"),
    case("model-export-bad-checkpoint", ["export", "--checkpoint", _M + "not_json.json", "--out", "{tmp}/run"], "not_json.json"),
    case("model-export-bad-format", ["export", "--checkpoint", _M + "not_json.json", "--format", "coreml", "--out", "{tmp}/run"],
         "coreml"),
    case("model-export-bad-precision", ["export", "--checkpoint", _M + "not_json.json", "--precision", "int4", "--out", "{tmp}/run"],
         "int4"),
    case("model-distill-missing-spec", ["distill", "--teacher", _M + "model.pt", "--spec", "{tmp}/nope.json", "--data", "digits",
                                        "--out", "{tmp}/run"], "nope.json"),
]

TEACHERS: list[Case] = [
    case("teacher-missing", build("--teacher", "{tmp}/nope.pt2", "--data", "digits"), "nope.pt2"),
    case("teacher-garbage", build("--teacher", _M + "model.pt", "--data", "digits"), "model.pt"),
    case("teacher-folder", build("--teacher", _M + "folder.tflite", "--data", "digits"), "folder.tflite"),
    case("teacher-text-file", build("--teacher", "{ws}/file.txt", "--data", "digits"), "file.txt"),
    case("teacher-onnx-garbage", build("--teacher", _M + "garbage.onnx", "--data", "digits"), "garbage.onnx"),
    case("teacher-onnx-truncated", build("--teacher", _M + "truncated.onnx", "--data", "digits"), "truncated.onnx"),
    case("teacher-entry-point-bad", build("--teacher", _M + "model.pt", "--entry-point", "nosuchmodule:make", "--data", "digits"),
         "model.pt", "unknown teacher format"),
    case("teacher-vs-data-classes", teacher_build("--data", _D + "loop_file"), "teacher", needs=("teacher",)),
]

_RUN = "{ws}/finished_run"
_KEEP = ("{ws}/finished_run/distill", "{ws}/finished_run/spec.json")
RERUNS: list[Case] = [
    # A finished run given a bad option must keep every file as it was (the snapshot checks it).
    case("rerun-latency-nan", ["build", "--quiet", "--out", _RUN, "--latency-ms", "nan"], "latency_ms", absent=_KEEP),
    case("rerun-unknown-device", ["build", "--quiet", "--out", _RUN, "--device", "pixle7"], "pixle7", absent=_KEEP),
    case("rerun-data-typo", ["build", "--quiet", "--out", _RUN, "--data", "digitz"], "digitz", absent=_KEEP),
    case("rerun-bad-config", ["build", "--quiet", "--out", _RUN, "--config", "{ws}/configs/runs_zero.toml"], "runs", absent=_KEEP),
    case("rerun-bad-profile", ["build", "--quiet", "--out", _RUN, "--device", "{ws}/profiles/threads_huge.toml"], "threads",
         absent=_KEEP),
    case("rerun-unreachable-host", ["build", "--quiet", "--out", _RUN, "--device", "rpi5", "--host", "nosuch.invalid"],
         "nosuch.invalid", code=DEVICE, absent=_KEEP),
    case("rerun-serial-onnx", ["build", "--quiet", "--out", _RUN, "--device", "host", "--serial", "x"], "--serial", absent=_KEEP),
    case("rerun-bad-data", ["build", "--quiet", "--out", _RUN, "--teacher", "{teacher}", "--data", _D + "label_1e9.npz"],
         "label_1e9.npz", needs=("teacher",), absent=_KEEP),
    case("rerun-teacher-missing", ["build", "--quiet", "--out", _RUN, "--teacher", "{tmp}/nope.pt2", "--data", "digits"], "nope.pt2",
         absent=_KEEP),
]

MISC: list[Case] = [
    case("cli-unknown-command", ["biuld"], "biuld"),
    case("cli-unknown-option", build("--turbo"), "--turbo"),
    case("cli-missing-required", ["bench"], "--artifact"),
    case("cli-select-missing-classes", ["select", "--device", "pixel7"], "--classes"),
    case("cli-extra-argument", ["build", "extra"], "extra"),
    case("cli-profiles-show-unknown", ["profiles", "show", "nosuchdevice"], "nosuchdevice"),
    case("cli-data-missing-source", ["data", "show"], "SOURCE"),
    case("cli-option-missing-value", ["build", "--epochs"], "--epochs"),
]
