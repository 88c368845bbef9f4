"""`edgecompress data show`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner
from PIL import Image
from test_data_sources import _img, make_image_folder

from edgecompress.cli.main import cli

torch.set_num_threads(1)

SMALL = "shapes:train=240,val=48,test=48"


def test_show_shapes_with_pool_writes_grid(tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    res = CliRunner().invoke(cli, ["data", "show", SMALL, "--unlabeled", "shapes-pool:n=120", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["num_classes"] == 12 and info["splits"]["labeled"]["n"] == 240
    assert sum(info["splits"]["labeled"]["per_class"]) == 240
    assert info["splits"]["unlabeled_pool"] == {"n": 120, "hidden_out_of_class": 24}
    assert info["data_ref"]["source"] == SMALL
    img = np.asarray(Image.open(out).convert("RGB"))
    h, w, _ = img.shape
    assert w > 2 * h * 0.5 and h > 12 * 32  # two panels, a row per class at >= 1x scale
    left, right = img[30:, : w // 2], img[30:, w // 2 :]
    assert left.std() > 20 and right.std() > 20  # both panels hold images, not blanks


def test_show_human_summary_for_folder(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "pets", per_class=5)
    for i in range(3):
        _img(tmp_path / "pool" / f"{i}.png", seed=50 + i)
    res = CliRunner().invoke(cli, ["data", "show", str(root), "-u", str(tmp_path / "pool"), "--labeled-fraction", "0.5",
                                   "--out", str(tmp_path / "g.png")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "pets: 3 classes, input 3x20x20" in res.output
    assert "pool             3" in res.output and "cat" in res.output
    assert (tmp_path / "g.png").stat().st_size > 0


def test_show_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    for args in (["nope"], [str(tmp_path / "missing")], ["digits", "--labeled-fraction", "2"], ["digits", "--input-shape", "3by32"]):
        res = runner.invoke(cli, ["data", "show", *args])
        assert res.exit_code == 2, (args, res.output)
        assert res.output.startswith("error: ") and res.output.count("\n") == 1, res.output
        assert "Traceback" not in res.output
