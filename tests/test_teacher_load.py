"""load_teacher: every format, feature taps, and each bad input as one line before training."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from edgecompress.distill.demo_teacher import DemoTeacher, export_teacher
from edgecompress.distill.teacher_load import load_teacher
from edgecompress.errors import TeacherError

SHAPE = (3, 16, 16)


def _model() -> DemoTeacher:
    torch.manual_seed(0)
    return DemoTeacher(3, 5, (4, 8, 12), stem_stride=2).eval()


def _factory_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "my_teacher_mod.py").write_text(
        "from edgecompress.distill.demo_teacher import DemoTeacher\n"
        "def build():\n    return DemoTeacher(3, 5, (4, 8, 12), stem_stride=2)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_teacher_mod", None)
    return "my_teacher_mod:build"


def test_every_format_gives_the_same_logits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = _model()
    x = torch.randn(3, *SHAPE)
    ref, ref_emb = m(x), m.forward_features(x)
    (tmp_path / "t.pt2").write_bytes(export_teacher(m, SHAPE))
    torch.jit.save(torch.jit.script(m), str(tmp_path / "t.ts.pt"))
    torch.save(m.state_dict(), tmp_path / "t.sd.pt")
    torch.save(m, tmp_path / "t.pickle.pt")
    torch.onnx.export(m, (torch.zeros(1, *SHAPE),), str(tmp_path / "t.onnx"), dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "b"}})
    entry = _factory_module(tmp_path, monkeypatch)
    loaded = {
        "pt2": load_teacher(tmp_path / "t.pt2"),
        "torchscript": load_teacher(tmp_path / "t.ts.pt"),
        "state_dict": load_teacher(tmp_path / "t.sd.pt", entry_point=entry),
        "pickled-module": load_teacher(tmp_path / "t.pickle.pt", trust_checkpoint=True),
        "onnx": load_teacher(tmp_path / "t.onnx"),
    }
    for fmt, teacher in loaded.items():
        out = teacher(x)
        assert teacher.format == fmt
        torch.testing.assert_close(out.logits, ref, atol=1e-4, rtol=1e-4, msg=fmt)
        if fmt != "torchscript":  # TorchScript: no hooks; this module exports forward_features though
            assert out.embedding is not None, fmt
        if out.embedding is not None:
            torch.testing.assert_close(out.embedding, ref_emb, atol=1e-4, rtol=1e-4, msg=fmt)
    assert loaded["pt2"].input_shape == SHAPE and loaded["onnx"].input_shape == SHAPE


def test_named_taps_pt2_and_module(tmp_path: Path) -> None:
    m = _model()
    x = torch.randn(2, *SHAPE)
    want = m.stem(x)
    (tmp_path / "t.pt2").write_bytes(export_teacher(m, SHAPE))
    for teacher in (load_teacher(tmp_path / "t.pt2"),):
        teacher.set_taps(["stem"])
        torch.testing.assert_close(teacher(x).taps["stem"], want)
        with pytest.raises(TeacherError, match=r"'stemm' does not exist \(nearest: stem"):
            teacher.set_taps(["stemm"])


def test_pickled_module_needs_trust(tmp_path: Path) -> None:
    torch.save(_model(), tmp_path / "whole.pt")
    with pytest.raises(TeacherError, match="--trust-checkpoint"):
        load_teacher(tmp_path / "whole.pt")


@pytest.mark.parametrize(
    "content, name, message",
    [
        (None, "missing.pt2", "teacher file not found"),
        (b"PK\x03\x04garbage" * 10, "broken.pt2", "corrupt"),
        (b"hello, I am a text file", "notes.txt", "unknown teacher format"),
        (b"\x08\x01\x12garbage", "broken.onnx", "not a readable ONNX model"),
    ],
)
def test_bad_teacher_files(tmp_path: Path, content: bytes | None, name: str, message: str) -> None:
    p = tmp_path / name
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(TeacherError, match=message) as info:
        load_teacher(p)
    assert "\n" not in str(info.value)


def test_state_dict_needs_a_fitting_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.save(_model().state_dict(), tmp_path / "sd.pt")
    with pytest.raises(TeacherError, match="needs --entry-point"):
        load_teacher(tmp_path / "sd.pt")
    with pytest.raises(TeacherError, match="not of the form"):
        load_teacher(tmp_path / "sd.pt", entry_point="nocolon")
    torch.save(DemoTeacher(3, 7, (4, 8, 12), stem_stride=2).state_dict(), tmp_path / "other.pt")
    entry = _factory_module(tmp_path, monkeypatch)
    with pytest.raises(TeacherError, match="does not fit"):
        load_teacher(tmp_path / "other.pt", entry_point=entry)


def test_probe_rejects_wrong_input_size(tmp_path: Path) -> None:
    (tmp_path / "t.pt2").write_bytes(export_teacher(_model(), SHAPE))
    with pytest.raises(TeacherError, match="teacher input size 3x16x16 disagrees with the data's 3x32x32"):
        load_teacher(tmp_path / "t.pt2").probe((3, 32, 32))
    torch.save(_model(), tmp_path / "whole.pt")
    with pytest.raises(TeacherError, match="cannot run on the data's input size 1x16x16"):
        load_teacher(tmp_path / "whole.pt", trust_checkpoint=True).probe((1, 16, 16))


def test_demo_teacher_is_cached_exported_and_prunable() -> None:
    from edgecompress.artifacts import StudentSpec
    from edgecompress.distill.demo_teacher import demo_teacher, demo_teacher_info, demo_teacher_paths
    from edgecompress.students import create_student

    data = "shapes:train=240,val=48,test=48"
    path = demo_teacher(data, steps=3, progress=False)
    paths = demo_teacher_paths(data, steps=3)
    assert path == paths["pt2"] and all(p.is_file() for p in paths.values())
    info = demo_teacher_info(data, steps=3)
    assert info["steps"] == 3 and 0 <= info["test_acc"] <= 1 and info["train_s"] > 0 and len(info["mean"]) == 3
    mtime = path.stat().st_mtime_ns
    assert demo_teacher(data, steps=3, progress=False) == path and path.stat().st_mtime_ns == mtime  # cache hit
    teacher = load_teacher(path)
    assert teacher.format == "pt2" and isinstance(teacher.module, DemoTeacher)  # eager twin, for pruning
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(teacher(x).logits, teacher.module(x), atol=1e-4, rtol=1e-4)
    spec = StudentSpec(family="pruned-teacher", arch="keep0.5", input_shape=(3, 32, 32), num_classes=12)
    pruned = create_student(spec, teacher=teacher.module)
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in teacher.module.parameters())


def test_static_batch_pt2_teacher_runs_any_batch(tmp_path: Path) -> None:
    """torch.export's default bakes the example's batch size into the program: a teacher
    exported with batch 1 must still run (in chunks) on training batches."""
    import torch

    from edgecompress.distill import load_teacher

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    path = tmp_path / "t.pt2"
    torch.export.save(torch.export.export(model, (torch.zeros(1, 1, 8, 8),)), str(path))
    teacher = load_teacher(path)
    x = torch.randn(5, 1, 8, 8)
    out = teacher(x)
    assert out.logits.shape == (5, 3)
    assert torch.allclose(out.logits, model(x), atol=1e-5)
    assert out.embedding is not None and out.embedding.shape == (5, 4)


def test_shipped_demo_teacher_matches_its_cache_key_and_record() -> None:
    """The packaged shapes teacher is served for exactly the key it was trained under; a recipe
    or generator change without retraining (scripts/train_demo_teacher.py) fails here."""
    import hashlib

    from edgecompress.distill.demo_teacher import demo_teacher_paths, load_shipped, shipped_paths

    stem = demo_teacher_paths("shapes")["pt2"].name.removesuffix(".pt2")
    weights, record = shipped_paths(stem)
    assert weights.is_file() and record.is_file(), f"no shipped weights for {stem}: run scripts/train_demo_teacher.py"
    assert weights.stat().st_size <= 10 * 2**20
    info = json.loads(record.read_text())
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == info["weights_sha256"]
    assert info["command"].startswith("python scripts/train_demo_teacher.py")
    loaded = load_shipped(stem)
    assert loaded is not None
    model, _ = loaded
    assert sum(p.numel() for p in model.parameters()) == info["params"]
    assert info["test_acc"] > 0.9


def test_any_pt2_can_declare_its_eager_twin(tmp_path: Path) -> None:
    """Nothing about the demo teacher is special to the loader: a user's .pt2 with a sidecar
    naming a registered builder gets its own module (original layer names) for pruning."""
    from edgecompress.distill import eager_twin

    m = _model()
    pt2 = tmp_path / "mine.pt2"
    pt2.write_bytes(export_teacher(m, SHAPE))
    torch.save(m.state_dict(), tmp_path / "mine.state_dict.pt")
    assert load_teacher(pt2).module is not None and not isinstance(load_teacher(pt2).module, DemoTeacher)  # lifted
    eager_twin.register_builder("test-tiny-demo", "tests.test_teacher_load:_model")
    try:
        eager_twin.write_sidecar(pt2, "test-tiny-demo", {}, tmp_path / "mine.state_dict.pt")
        teacher = load_teacher(pt2)
        assert isinstance(teacher.module, DemoTeacher)
        x = torch.randn(2, *SHAPE)
        torch.testing.assert_close(teacher(x).logits, teacher.module(x), atol=1e-5, rtol=1e-5)
        # A sidecar naming a builder nobody registered: one line, no import of anything it names.
        eager_twin.write_sidecar(pt2, "os:system", {}, tmp_path / "mine.state_dict.pt")
        with pytest.raises(TeacherError, match=r"mine\.eager\.json: builder 'os:system' is not registered"):
            load_teacher(pt2)
    finally:
        eager_twin._BUILDERS.pop("test-tiny-demo")
