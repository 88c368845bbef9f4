"""`import edgecompress` and `edgecompress --help` must not import torch, onnx or tensorflow."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from edgecompress.cli.main import COMMANDS, cli

HEAVY = ("torch", "onnx", "tensorflow", "onnxruntime")


def _imported_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys, json; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_is_light() -> None:
    assert _imported_after("import edgecompress") == []


def test_help_is_light() -> None:
    code = "from edgecompress.cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    assert _imported_after(code) == []


def test_every_command_help_is_light() -> None:
    for name in COMMANDS:
        code = f"from edgecompress.cli.main import main\ntry:\n    main([{name!r}, '--help'])\nexcept SystemExit:\n    pass"
        assert _imported_after(code) == [], name


def test_help_lists_commands() -> None:
    res = CliRunner().invoke(cli, ["--help"])
    assert res.exit_code == 0
    for name in COMMANDS:
        assert name in res.output


def test_env_command() -> None:
    res = CliRunner().invoke(cli, ["env", "--json"])
    assert res.exit_code == 0
    v = json.loads(res.output)
    for key in ("python", "torch", "onnx", "onnxruntime", "tensorflow", "onnx2tf", "tflite interpreter"):
        assert key in v
    assert v["torch"].startswith("2.")


def test_console_script_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "edgecompress", "profiles", "list"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "pixel7" in out.stdout
