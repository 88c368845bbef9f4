from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgecompress.cli.main import cli
from edgecompress.errors import ProfileError
from edgecompress.profiles import DeviceProfile, list_profiles, load_profile, load_profile_file

FIXTURES = Path(__file__).parent / "fixtures" / "profiles"

# fixture file -> words the one-line error must contain (file, key, what is allowed)
INVALID = {
    "unknown_key": ["unknown_key.toml", "'turbo'", "allowed:"],
    "wrong_type": ["wrong_type.toml", "budgets.latency_budget_ms", "expected a number"],
    "missing_field": ["missing_field.toml", "budgets.latency_budget_ms", "missing required key"],
    "negative_budget": ["negative_budget.toml", "budgets.peak_ram_budget_mb", "a finite number in (0, 1000000]"],
    "zero_budget": ["zero_budget.toml", "budgets.model_size_budget_mb", "a finite number in (0, 1000000]"],
    "unknown_schema": ["unknown_schema.toml", "schema_version", "allowed: 1"],
    "missing_schema": ["missing_schema.toml", "schema_version", "missing"],
    "unknown_runtime": ["unknown_runtime.toml", "runtime.kind", "tflite-xnnpack"],
    "unknown_runner": ["unknown_runner.toml", "connection.runner", "adb, ssh"],
    "malformed": ["malformed.toml", "malformed TOML"],
    "bad_mask": ["bad_mask.toml", "runtime.cpu_mask", "hex mask"],
}


def test_builtin_profiles_load() -> None:
    names = [p.name for p in list_profiles()]
    assert {"pixel7", "rpi4", "rpi5", "host"} <= set(names)
    pixel = load_profile("pixel7")
    assert pixel.runtime.kind == "tflite-xnnpack"
    assert pixel.runtime.cpu_mask == "0xc0"
    assert pixel.connection.runner == "adb"
    assert pixel.budgets.latency_budget_ms > 0


def test_host_profile_is_detected_live() -> None:
    host = load_profile("host")
    assert host.hardware.soc not in ("", "unknown")
    assert host.hardware.clusters[0].count >= 1
    assert host.hardware.ram_gb > 0


def test_profile_json_round_trip() -> None:
    for p in list_profiles():
        again = DeviceProfile.from_json(p.to_json())
        assert again == p


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_profile_one_line_error(name: str) -> None:
    with pytest.raises(ProfileError) as err:
        load_profile_file(FIXTURES / f"{name}.toml")
    msg = str(err.value)
    assert "\n" not in msg
    for word in INVALID[name]:
        assert word in msg, (word, msg)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_profile_cli_exit_2(name: str) -> None:
    res = CliRunner().invoke(cli, ["profiles", "show", str(FIXTURES / f"{name}.toml")])
    assert res.exit_code == 2
    assert res.output.startswith("error: ")
    assert len(res.output.strip().splitlines()) == 1
    assert "Traceback" not in res.output


def test_every_fixture_is_covered() -> None:
    assert {f.stem for f in FIXTURES.glob("*.toml")} == set(INVALID)


def test_duplicate_profile_names(tmp_path: Path) -> None:
    dup = FIXTURES.parent / "duplicate_profiles"
    with pytest.raises(ProfileError, match="duplicate profile name 'twin'"):
        list_profiles(dup)


def test_user_profiles_dir_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = (Path(load_profile("rpi5").source)).read_text().replace('name = "rpi5"', 'name = "jetson"')
    (tmp_path / "jetson.toml").write_text(src)
    monkeypatch.setenv("EDGECOMPRESS_PROFILES", str(tmp_path))
    assert load_profile("jetson").name == "jetson"
    res = CliRunner().invoke(cli, ["profiles", "list"])
    assert res.exit_code == 0 and "jetson" in res.output


def test_unknown_device_lists_known() -> None:
    res = CliRunner().invoke(cli, ["profiles", "show", "iphone"])
    assert res.exit_code == 2
    assert "unknown device 'iphone'" in res.output and "pixel7" in res.output and "rpi4" in res.output


def test_profiles_list_and_show_cli() -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["profiles", "list"])
    assert res.exit_code == 0
    for n in ("pixel7", "rpi4", "rpi5", "host"):
        assert n in res.output
    res = runner.invoke(cli, ["profiles", "show", "rpi4"])
    assert res.exit_code == 0 and "Cortex-A72" in res.output
    res = runner.invoke(cli, ["profiles", "show", "rpi4", "--json"])
    assert json.loads(res.output)["name"] == "rpi4"
    res = runner.invoke(cli, ["profiles", "list", "--json"])
    assert len(json.loads(res.output)) >= 4


def test_missing_profiles_dir() -> None:
    res = CliRunner().invoke(cli, ["profiles", "list", "--profiles-dir", "/nonexistent/dir"])
    assert res.exit_code == 2 and "/nonexistent/dir" in res.output
