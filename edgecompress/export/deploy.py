"""Which exported artifact a build deploys, and why, in one line.

The profile's runtime wants one (format, precision), int8 when it allows it. If that artifact
passed the parity gate it is deployed. If it missed (after the accuracy-aware attempts), the
build still ends with something deployable: the smallest artifact of the same format that
passed, named with the reason. Only when nothing passed is there nothing to deploy.

Stdlib only: the summary and the CLI read this without loading torch or onnx.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from edgecompress.artifacts import ExportArtifact
from edgecompress.errors import ConfigError, ParityError

SUMMARY_NAME = "export_summary.json"  # written by export_module beside the artifacts


@dataclasses.dataclass(frozen=True)
class Deployment:
    artifact: ExportArtifact | None  # None: no artifact of the runtime's format passed the gate
    wanted: tuple[str, str]  # the (format, precision) the runtime prefers
    reason: str  # one line: which artifact and why
    targets: tuple[dict[str, Any], ...] = ()  # export_summary.json's targets: every one, written or not

    @property
    def precision(self) -> str | None:
        return None if self.artifact is None else self.artifact.precision

    @property
    def fallback(self) -> bool:
        """The preferred artifact missed the gate and another one is deployed instead."""
        return self.artifact is not None and (self.artifact.format, self.artifact.precision) != self.wanted


def read_targets(export_dir: str | Path) -> list[dict[str, Any]]:
    """Every requested target of an export, written or withheld, with parity and attempts."""
    path = Path(export_dir) / SUMMARY_NAME
    if not path.is_file():
        return []
    targets: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8")).get("targets", [])
    return targets


def _numbers(parity: dict[str, Any] | None) -> str:
    if not parity:
        return "no parity numbers"
    return f"top-1 agreement {parity['top1_agreement']:.2%}, accuracy {parity['acc_delta_pt']:+.2f} pt"


def choose_deployed(
    artifacts: list[ExportArtifact] | tuple[ExportArtifact, ...], targets: list[dict[str, Any]], wanted: tuple[str, str]
) -> Deployment:
    """The preferred artifact if it passed, else the smallest passing one of its format."""
    fmt, precision = wanted
    passing = [a for a in artifacts if a.format == fmt and (a.parity is None or a.parity.passed)]
    preferred = next((a for a in passing if a.precision == precision), None)
    if preferred is not None:
        tried = len(preferred.attempts)
        how = f" after {tried - 1} accuracy-aware step(s) beyond plain PTQ" if tried > 1 else ""
        parity = preferred.parity.to_dict() if preferred.parity else None
        return Deployment(preferred, wanted, f"{Path(preferred.path).name}: the {precision} artifact the runtime "
                                             f"prefers passed the parity gate{how} ({_numbers(parity)})", tuple(targets))
    miss = next((t for t in targets if t.get("format") == fmt and t.get("precision") == precision), None)
    why = f"{miss['file']} missed the parity gate: {miss.get('error') or _numbers(miss.get('parity'))}" if miss else (
        f"no {fmt} {precision} artifact was exported")
    if not passing:
        return Deployment(None, wanted, f"nothing to deploy: {why}, and no other {fmt} artifact passed", tuple(targets))
    cheapest = min(passing, key=lambda a: a.size_bytes)
    return Deployment(cheapest, wanted, f"{Path(cheapest.path).name} ({cheapest.precision}, "
                                        f"{cheapest.size_bytes / 1024:.1f} KiB), the smallest artifact that passed: {why}",
                      tuple(targets))


def export_attempts(targets: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per attempt of every target (a target built once is one row): what the report shows."""
    rows = []
    for t in targets:
        art = t.get("artifact") or {}
        attempts = t.get("attempts") or [{**(t.get("parity") or {}), "step": "export", "description": "as built",
                                          "size_bytes": art.get("size_bytes"), "float_share": 0.0}]
        for a in attempts:
            rows.append({
                "file": t["file"], "format": t["format"], "precision": t["precision"], "step": a.get("step"),
                "description": a.get("description"), "top1_agreement": a.get("top1_agreement"),
                "acc_delta_pt": a.get("acc_delta_pt"), "size_bytes": a.get("size_bytes"),
                "float_share": a.get("float_share"), "passed": a.get("passed"), "error": a.get("error"),
                "written": bool(t.get("written")) and (len(attempts) == 1 or bool(a.get("chosen"))),
            })
    return rows


def check_require(require: str | None, precisions: tuple[str, ...] | list[str], device: str) -> None:
    """``--require`` must name a precision the device's runtime deploys (checked before any work)."""
    if require is not None and require not in precisions:
        raise ConfigError(f"require = {require!r} is not allowed for device {device} (its runtime deploys: {', '.join(precisions)})")


def require_deployable(deployment: Deployment, require: str | None) -> None:
    """Fail the build, in one line, when there is nothing to deploy or not what was required."""
    if deployment.artifact is None:
        raise ParityError(f"export: {deployment.reason}")
    if require is not None and deployment.precision != require:
        raise ParityError(f"export: --require {require}: {deployment.reason}")
