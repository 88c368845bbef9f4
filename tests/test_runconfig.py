from __future__ import annotations

from pathlib import Path

import pytest

from edgecompress.errors import ConfigError
from edgecompress.runconfig import RunConfig, load_run_config
from edgecompress.stages import StageCache


def test_demo_defaults() -> None:
    cfg = RunConfig().resolved()
    assert RunConfig().is_demo and cfg.data == "shapes" and cfg.method == "kd+unlabeled" and cfg.unlabeled == "shapes-pool"
    assert cfg.labeled_fraction == 0.1 and cfg.out == str(Path("runs") / "pixel7-shapes")


def test_file_then_cli_precedence(tmp_path: Path) -> None:
    f = tmp_path / "run.toml"
    f.write_text('device = "rpi5"\nepochs = 3\nmethod = "kd"\n')
    cfg = load_run_config(f, {"epochs": 5, "method": None})
    assert cfg.device == "rpi5" and cfg.epochs == 5 and cfg.method == "kd"


@pytest.mark.parametrize(
    "text, match",
    [("devise = 'x'\n", "unknown key 'devise'"), ("epochs = 'many'\n", "epochs: expected an integer"), ("[oops\n", "malformed TOML")],
)
def test_bad_run_config(tmp_path: Path, text: str, match: str) -> None:
    f = tmp_path / "run.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_run_config(f, {})


@pytest.mark.parametrize(
    "cfg, match",
    [
        (RunConfig(labeled_fraction=1.5), r"labeled_fraction = 1.5"),
        (RunConfig(teacher="t.pt2"), "--data is required"),
        (RunConfig(data="/my/images"), "--teacher is required"),
        (RunConfig(serial="a", host="b"), "not both"),
    ],
)
def test_invalid_values(cfg: RunConfig, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        cfg.resolved()


def test_stage_cache_resumes_and_invalidates(tmp_path: Path) -> None:
    calls: list[str] = []
    out = tmp_path / "a.txt"

    def compute(name: str):  # type: ignore[no-untyped-def]
        def f(resume: bool) -> str:
            calls.append(name)
            out.write_text(name)
            return name
        return f

    c = StageCache(tmp_path)
    c.run("a", {"x": 1}, [out], compute("a"), lambda: "loaded-a")
    c.run("b", {"y": 1}, [out], compute("b"), lambda: "loaded-b")
    c2 = StageCache(tmp_path)
    assert c2.run("a", {"x": 1}, [out], compute("a"), lambda: "loaded-a") == "loaded-a"
    assert c2.run("b", {"y": 1}, [out], compute("b"), lambda: "loaded-b") == "loaded-b"
    assert calls == ["a", "b"] and c2.skipped == ["a", "b"]
    # a changed key re-runs that stage and everything after it
    c3 = StageCache(tmp_path)
    c3.run("a", {"x": 2}, [out], compute("a"), lambda: "loaded-a")
    c3.run("b", {"y": 1}, [out], compute("b"), lambda: "loaded-b")
    assert calls == ["a", "b", "a", "b"]
    # --force starts over
    c4 = StageCache(tmp_path, force=True)
    c4.run("a", {"x": 2}, [out], compute("a"), lambda: "loaded-a")
    assert calls[-1] == "a"


def test_method_default_follows_data() -> None:
    assert RunConfig(data="digits").resolved().method == "kd"
    assert RunConfig(data="digits", labeled_fraction=0.1).resolved().method == "kd+unlabeled"
    assert RunConfig(data="digits", method="kd").resolved().method == "kd"


@pytest.mark.parametrize("value, expected", [("8x", "8x"), ("12", "12x"), (8, "8x"), (2.5, "2.5x")])
def test_compress_in_run_config(tmp_path: Path, value: object, expected: str) -> None:
    f = tmp_path / "run.toml"
    f.write_text(f"compress = {value!r}\n".replace("'", '"'))
    assert load_run_config(f, {}).resolved().compress == expected


def test_bad_compress_in_run_config(tmp_path: Path) -> None:
    from edgecompress.errors import EdgeCompressError

    f = tmp_path / "run.toml"
    f.write_text("compress = 1\n")
    with pytest.raises(EdgeCompressError, match=r"compress = '1' is not allowed"):
        load_run_config(f, {}).resolved()
