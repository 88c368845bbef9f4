"""Bring your own teacher: other architectures, preprocessing, formats, outputs and failures.

Teachers are built in the tests (tests/byo_teachers.py): a VGG-style net with squeeze-excite,
hardswish and a ``head.2`` classifier; the shipped demo teacher re-parameterised for
``(x - 0.5) / 0.5`` and for BGR 0-255 input; a dict output."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from edgecompress.distill.teacher_load import load_teacher
from edgecompress.errors import TeacherError
from tests import byo_teachers as B


def _vgg(dict_output: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    m = B.VggSE(12, 8, dict_output=dict_output).eval()
    with torch.no_grad():  # non-trivial BN statistics so a lift that mishandled them would show
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
    return m


def test_pt2_is_lifted_whole_batch_prunable_with_taps(tmp_path: Path) -> None:
    from edgecompress.students.pruning import prune_model, uniform_keep

    m = _vgg()
    teacher = load_teacher(B.save_pt2(m, tmp_path / "vgg.pt2"), num_classes=12)
    x = torch.randn(37, *B.SHAPE)
    teacher.set_taps(["features.3"])
    out = teacher(x)
    assert teacher.lift_note is None and teacher._lifted is not None  # verified on this batch, one call
    seen: dict[str, torch.Tensor] = {}
    hooks = [m.head[2].register_forward_hook(lambda _m, i, _o: seen.__setitem__("emb", i[0])),
             m.features[3].register_forward_hook(lambda _m, _i, o: seen.__setitem__("tap", o))]
    ref = m(x)
    for h in hooks:
        h.remove()
    torch.testing.assert_close(out.logits, ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.embedding, seen["emb"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.taps["features.3"], seen["tap"], atol=1e-4, rtol=1e-4)
    # The lifted module is a plain classifier the channel pruner understands.
    module = teacher.module
    assert module is not None
    kept = uniform_keep(module, B.SHAPE, 0.5)
    assert {"features.0", "features.5", "features.9"} <= set(kept)
    student = prune_model(module, B.SHAPE, kept)
    assert student(x).shape == (37, 12)
    assert sum(p.numel() for p in student.parameters()) < sum(p.numel() for p in m.parameters()) / 2


class _BatchMixing(torch.nn.Module):
    """Mixes images of a batch: exported at batch 1 it is per-image; a whole batch differs."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = x.mean((2, 3))
        return self.fc(f - f.mean(0, keepdim=True) + f)


def test_pt2_falls_back_when_the_whole_batch_disagrees(tmp_path: Path) -> None:
    m = _BatchMixing().eval()
    teacher = load_teacher(B.save_pt2(m, tmp_path / "mix.pt2"))
    x = torch.randn(5, *B.SHAPE)
    out = teacher(x)
    per_image = torch.cat([m(x[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(out.logits, per_image, atol=1e-5, rtol=1e-5)
    assert teacher._lifted is None and "disagreed with per-image results" in (teacher.lift_note or "")


def test_dict_outputs_found_or_named(tmp_path: Path) -> None:
    m = _vgg(dict_output=True)
    x = torch.randn(4, *B.SHAPE)
    ref = m(x)["scores"]
    path = B.save_pt2(m, tmp_path / "d.pt2")
    # The one 2-D output with as many columns as classes.
    torch.testing.assert_close(load_teacher(path, num_classes=12)(x).logits, ref, atol=1e-4, rtol=1e-4)
    for choice in ("scores", "1"):
        torch.testing.assert_close(load_teacher(path, output=choice)(x).logits, ref, atol=1e-4, rtol=1e-4)
    with pytest.raises(TeacherError, match=r"returns 2 outputs \(features: \dx32, scores: \dx12\); say which .* --teacher-output"):
        load_teacher(path)(x)
    with pytest.raises(TeacherError, match=r"--teacher-output 'logitz' is not one of the teacher's outputs"):
        load_teacher(path, output="logitz")(x)


def _write_module(folder: Path, name: str, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(body)
    sys.modules.pop(name, None)


def test_entry_point_next_to_weights_with_kwargs_and_class_count(tmp_path: Path) -> None:
    weights = tmp_path / "w" / "vgg.pt"
    weights.parent.mkdir()
    torch.save(B.VggSE(12, 8).state_dict(), weights)
    _write_module(tmp_path / "w", "byo_mymodel", "from tests.byo_teachers import make\n")
    t = load_teacher(weights, entry_point="byo_mymodel:make", entry_point_kwargs='{"width": 8}', num_classes=12)
    assert t(torch.zeros(2, *B.SHAPE)).logits.shape == (2, 12)
    # Without the data's class count the factory's default (10) does not fit: one line.
    with pytest.raises(TeacherError, match=r"state_dict does not fit byo_mymodel:make"):
        load_teacher(weights, entry_point="byo_mymodel:make", entry_point_kwargs={"width": 8})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("raise RuntimeError('no GPU here')\n", r"importing byo_bad failed \(RuntimeError: no GPU here\)"),
        ("import not_a_module_xyz\n", r"importing byo_bad failed \(ModuleNotFoundError: No module named 'not_a_module_xyz'\)"),
        ("def make(depth):\n    return None\n", r"calling make\(\) failed \(TypeError: .*depth.*\) \(pass them with --entry-point-kwargs"),
        ("def make():\n    return 'a model'\n", r"make\(\) returned a str, not a torch.nn.Module"),
        ("import sys\nsys.exit(3)\n", r"importing byo_bad failed \(SystemExit: 3\)"),
    ],
)
def test_user_code_failures_are_one_line(tmp_path: Path, body: str, expected: str) -> None:
    torch.save(B.VggSE(12, 8).state_dict(), tmp_path / "w.pt")
    _write_module(tmp_path, "byo_bad", body)
    with pytest.raises(TeacherError, match=expected) as info:
        load_teacher(tmp_path / "w.pt", entry_point="byo_bad:make")
    assert "\n" not in str(info.value)


def test_teacher_forward_failure_names_the_teacher(tmp_path: Path) -> None:
    class Flaky(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[0] > 2:
                raise ValueError("CUDA out of memory (simulated)")
            return x.mean((2, 3))

    from edgecompress.distill.teacher import ModuleTeacher

    t = ModuleTeacher(Flaky(), tmp_path / "flaky.pt", "state_dict")
    t(torch.zeros(2, *B.SHAPE))
    with pytest.raises(TeacherError, match=r"flaky.pt: teacher forward failed on a 8x3x32x32 batch \(ValueError: CUDA out of memory"):
        t(torch.zeros(8, *B.SHAPE))


@pytest.fixture(scope="module")
def digits_teachers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Teachers trained here on digits with their own preprocessing, saved as .pt2 (batch 1)."""
    d = tmp_path_factory.mktemp("byo")
    out = {}
    for name, pre in (("half", B.half), ("px255", B.px255)):
        ep = torch.export.export(B.digits_teacher(pre), (torch.zeros(1, *B.DIGITS_SHAPE),))
        torch.export.save(ep, d / f"{name}.pt2")
        out[name] = d / f"{name}.pt2"
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("which", "flags", "declared"), [
    ("half", "--normalize half --pixel-range 0-1 --channel-order rgb", {"normalize": "half"}),
    ("px255", "--normalize unit --pixel-range 0-255 --channel-order rgb", {"normalize": "unit", "pixel_range": "0-255"}),
])
def test_normalization_check_names_the_right_setting(
    digits_teachers: dict[str, Path], which: str, flags: str, declared: dict[str, str]
) -> None:
    from edgecompress.data import load_task
    from edgecompress.distill.norm_check import check_normalization, mismatch_error
    from edgecompress.preprocess_options import PreprocessOptions

    teacher = load_teacher(digits_teachers[which], num_classes=10)
    task = load_task(B.DIGITS, progress=False)  # the data's statistics: wrong for this teacher
    check = check_normalization(teacher, task, PreprocessOptions())
    assert check.better is not None and check.candidates[0]["flags"] == flags
    assert check.candidates[0]["acc"] >= 90 and check.current["acc"] < check.candidates[0]["acc"] - 3
    assert flags in str(mismatch_error(check, "t.pt2"))
    # Declared correctly, the teacher scores as in its own code and nothing better exists.
    right = PreprocessOptions.parse(declared, "test")
    task = load_task(B.DIGITS, progress=False, **right.task_kwargs())
    again = check_normalization(teacher, task, right)
    assert again.better is None and again.current["acc"] == check.candidates[0]["acc"]


def _build(out: Path, teacher: Path, *extra: str) -> list[str]:
    return ["build", "--device", "host", "--teacher", str(teacher), "--data", B.DIGITS, "--method", "kd",
            "--epochs", "1", "--steps-per-epoch", "3", "--runs", "5", "--warmup", "1", "--out", str(out), "--quiet", *extra]


@pytest.mark.slow
def test_build_with_a_pt2_teacher_and_its_own_normalization(digits_teachers: dict[str, Path], tmp_path: Path) -> None:
    from edgecompress.cli.main import cli

    runner = CliRunner()
    out = tmp_path / "run"
    res = runner.invoke(cli, _build(out, digits_teachers["half"]))
    assert res.exit_code == 2 and "--normalize half" in res.output and not out.exists(), res.output
    # Stated once, beside the teacher file.
    side = digits_teachers["half"].with_name("half.preprocessing.json")
    side.write_text(json.dumps({"normalize": "half"}))
    try:
        res = runner.invoke(cli, _build(out, digits_teachers["half"], "--compress", "2", "--raw-input"))
    finally:
        side.unlink()
    assert res.exit_code == 0, res.output
    prep = json.loads((out / "preprocessing.json").read_text())
    assert prep["preprocessing"]["mean"] == [0.5] and "half.preprocessing.json" in prep["preprocessing"]["source"]
    assert prep["check"]["better"] is None and prep["check"]["current"]["acc"] >= 90
    spec = json.loads((out / "spec.json").read_text())
    assert spec["family"] == "pruned-teacher"  # a .pt2 teacher is prunable
    manifest = json.loads((out / "export" / "artifacts.json").read_text())
    assert all(a["input"]["preprocessing"]["mean"] == [0.5] for a in manifest)
    # --raw-input: the same models taking uint8 RGB frames, checked on raw pixels.
    raw = json.loads((out / "export" / "raw_input.json").read_text())
    assert len(raw) == len(manifest) and all(r["agreement"] >= 99.0 and Path(r["path"]).is_file() for r in raw)
    import onnxruntime as ort

    sess = ort.InferenceSession(raw[0]["path"], providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].type == "tensor(uint8)" and sess.get_inputs()[0].shape[1:] == [16, 16, 3]


@pytest.mark.slow
def test_auto_normalize_takes_the_better_setting(digits_teachers: dict[str, Path], tmp_path: Path) -> None:
    from edgecompress.cli.main import cli

    out = tmp_path / "run"
    res = CliRunner().invoke(cli, [*_build(out, digits_teachers["px255"], "--compress", "2"), "--auto-normalize"])
    assert res.exit_code == 0, res.output
    prep = json.loads((out / "preprocessing.json").read_text())
    assert prep["auto_normalized"] and prep["preprocessing"]["pixel_scale"] == 1.0
    assert prep["preprocessing"]["mean"] == [0.0] and prep["preprocessing"]["std"] == [1.0]


@pytest.mark.slow
def test_onnx_bgr_255_teacher_with_metadata_end_to_end(tmp_path: Path) -> None:
    """An ONNX teacher trained on BGR 0-255 caffe-style input with two outputs, its preprocessing
    in the file's metadata: found, checked, distilled, exported, parity on the artifacts."""
    import onnx

    from edgecompress.cli.main import cli
    from edgecompress.preprocess_options import ONNX_METADATA_KEY

    npz = B.colour_npz(tmp_path / "colour.npz")
    model = B.colour_teacher(npz)
    path = tmp_path / "colour.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 16, 16),), str(path), dynamo=False, input_names=["x"],
                      output_names=["features", "scores"], dynamic_axes={"x": {0: "n"}})
    args = ["build", "--device", "host", "--teacher", str(path), "--data", str(npz), "--method", "kd", "--epochs", "1",
            "--steps-per-epoch", "3", "--runs", "5", "--warmup", "1", "--compress", "2", "--quiet"]
    runner = CliRunner()
    res = runner.invoke(cli, [*args, "--out", str(tmp_path / "bad")])  # undeclared: RGB data statistics
    assert res.exit_code == 2 and "--channel-order bgr" in res.output and not (tmp_path / "bad").exists(), res.output
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, json.dumps({"normalize": "imagenet", "pixel_range": "0-255", "channel_order": "bgr"})
    onnx.save(proto, str(path))
    out = tmp_path / "run"
    res = runner.invoke(cli, [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    prep = json.loads((out / "preprocessing.json").read_text())
    pre = prep["preprocessing"]
    assert pre["channel_order"] == "bgr" and pre["pixel_scale"] == 1.0 and "metadata" in pre["source"]
    assert pre["mean"] == pytest.approx([0.406 * 255, 0.456 * 255, 0.485 * 255])
    assert prep["check"]["current"]["acc"] >= 95 and prep["check"]["better"] is None
    manifest = json.loads((out / "export" / "artifacts.json").read_text())
    assert manifest and all(a["parity"] is not None for a in manifest)


def test_data_resized_to_the_teachers_declared_input(tmp_path: Path) -> None:
    from edgecompress.pipeline import _load_task
    from edgecompress.preprocess_options import PreprocessOptions
    from edgecompress.runconfig import RunConfig

    m = B.VggSE(12, 8).eval()
    path = tmp_path / "small.pt2"
    torch.export.save(torch.export.export(m, (torch.zeros(1, 3, 24, 24),)), path)
    teacher = load_teacher(path)
    cfg = RunConfig(teacher=str(path), data=B.DATA).resolved()
    task = _load_task(cfg, PreprocessOptions.parse({"resize": "nearest"}, "options"), teacher)
    assert task.input_shape == (3, 24, 24) and task.preprocessing.resize == "nearest"
    assert task.labeled[0][0].shape == (3, 24, 24) and teacher.probe(task.input_shape).logits.shape == (2, 12)


@pytest.mark.parametrize(("extra", "words"), [
    (["--normalize", "half", "--mean", "0.5", "--std", "0.5"], "either normalize (a preset) or mean/std"),
    (["--mean", "0.5"], "give mean and std together"),
    (["--mean", "0.5", "--std", "0,0,0"], "std = '0,0,0': every value must be > 0"),
    (["--mean", "0.1,0.2", "--std", "1"], "expected 1 or 3 finite numbers"),
    (["--mean", "nan", "--std", "1"], "expected 1 or 3 finite numbers"),
    (["--input-size", "2"], "input_size = '2': expected H or HxW with 4 <= H, W <= 4096"),
    (["--input-size", "abc"], "input_size = 'abc'"),
    (["--entry-point-kwargs", "[1]"], "must be a JSON object"),
    (["--entry-point-kwargs", "{num_classes: 3}"], "is not JSON"),
    (["--entry-point-kwargs", '{"width": 8}'], "--entry-point-kwargs needs --entry-point"),
])
def test_bad_preprocessing_and_factory_options_write_nothing(tmp_path: Path, extra: list[str], words: str) -> None:
    from edgecompress.cli.main import cli

    (tmp_path / "t.pt2").write_bytes(b"not read: the options fail first")
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["build", "--teacher", str(tmp_path / "t.pt2"), "--data", "digits", "--out", str(out), *extra])
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2 and words in res.output and not out.exists(), res.output
    assert "Traceback" not in res.output and len(lines) <= 3  # click usage errors carry a usage header


def test_run_config_preprocessing_table_merges_with_options(tmp_path: Path) -> None:
    from edgecompress.runconfig import load_run_config

    (tmp_path / "run.toml").write_text('[preprocessing]\nnormalize = "imagenet"\nchannel_order = "bgr"\n')
    cfg = load_run_config(tmp_path / "run.toml", {"preprocessing": {"pixel_range": "0-255", "mean": None}})
    opts = cfg.preprocess_options()
    assert (opts.normalize, opts.channel_order, opts.pixel_range) == ("imagenet", "bgr", "0-255")
    assert opts.task_kwargs()["mean"] == pytest.approx((0.406 * 255, 0.456 * 255, 0.485 * 255))
    (tmp_path / "bad.toml").write_text('[preprocessing]\nnormalise = "half"\n')
    with pytest.raises(Exception, match=r"unknown preprocessing key\(s\) normalise"):
        load_run_config(tmp_path / "bad.toml", {}).resolved()


@pytest.mark.slow
def test_raw_input_tflite_takes_camera_frames(digits_teachers: dict[str, Path], tmp_path: Path) -> None:
    """--raw-input on a TFLite device: an fp32 .tflite taking uint8 NHWC RGB frames (the digits
    model is gray: the luma conversion is folded in too), checked on raw frames."""
    from edgecompress.cli.main import cli
    from edgecompress.export.parity import load_interpreter
    from edgecompress.profiles import builtin_profiles_dir

    text = (builtin_profiles_dir() / "pixel7.toml").read_text().replace('name = "pixel7"', 'name = "ci-phone"')
    text = text.replace('precisions = ["fp32", "int8"]', 'precisions = ["fp32"]')
    (tmp_path / "ci-phone.toml").write_text(text)
    out = tmp_path / "run"
    args = _build(out, digits_teachers["half"], "--normalize", "half", "--compress", "2", "--raw-input")
    args[args.index("host")] = "ci-phone"
    res = CliRunner().invoke(cli, [*args, "--profiles-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    (row,) = json.loads((out / "export" / "raw_input.json").read_text())
    assert row["path"].endswith("model_fp32_raw_uint8.tflite") and row["agreement"] >= 99.0
    inp = load_interpreter(Path(row["path"])).get_input_details()[0]
    assert list(inp["shape"]) == [1, 16, 16, 3] and inp["dtype"].__name__ == "uint8"
