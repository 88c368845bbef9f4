"""Resumable stages of a run directory.

Each finished stage records, in ``<run>/state.json``, a key: the hash of everything it depended
on (its part of the config, the hashes of its input files, the outputs of earlier stages).
Running the same command again skips a stage whose key is unchanged and whose outputs still
exist; any change re-runs that stage and everything after it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from edgecompress.serde import atomic_write_text, fingerprint, sha256_file

R = TypeVar("R")


def file_fingerprint(path: str | Path | None) -> str | None:
    """Content hash of a file, or of a folder's file names, sizes and mtimes (cheap for datasets)."""
    if path is None:
        return None
    p = Path(path)
    if p.is_file():
        return sha256_file(p)
    if p.is_dir():
        entries = sorted(
            (str(f.relative_to(p)), f.stat().st_size, int(f.stat().st_mtime)) for f in p.rglob("*") if f.is_file()
        )
        return fingerprint(entries)
    return str(path)  # a built-in name


@dataclasses.dataclass(frozen=True)
class Stage(Generic[R]):
    """One resumable step of a run, declared as data.

    ``key`` is everything the result depends on (hashed); ``outputs`` the files it leaves
    (all must exist for a skip); ``run(resume)`` computes and saves the result (``resume``:
    an earlier attempt with the same key was interrupted); ``load()`` reads the saved one.
    """

    name: str
    key: Any
    outputs: tuple[Path, ...]
    run: Callable[[bool], R]
    load: Callable[[], R]


class StageCache:
    def __init__(self, run_dir: Path, force: bool = False) -> None:
        self.run_dir = run_dir
        self.path = run_dir / "state.json"
        self.state: dict[str, Any] = {}
        if self.path.exists() and not force:
            try:
                self.state = json.loads(self.path.read_text())
            except json.JSONDecodeError:
                self.state = {}  # a damaged state only costs a re-run
        self.invalidated = False  # once a stage re-runs, every later stage re-runs too
        self.timings: dict[str, float] = {}
        self.skipped: list[str] = []

    def is_fresh(self, name: str, key: Any, outputs: list[Path]) -> bool:
        """Whether :meth:`run` would load ``name``'s saved result instead of computing it
        (read-only: lets a build do a stage's checks before it writes anything)."""
        entry = self.state.get(name)
        return (
            not self.invalidated
            and entry is not None
            and entry.get("key") == fingerprint(key)
            and bool(entry.get("finished", True))
            and all(p.exists() for p in outputs)
        )

    def fresh(self, stage: Stage[Any]) -> bool:
        return self.is_fresh(stage.name, stage.key, list(stage.outputs))

    def execute(self, stage: Stage[R]) -> R:
        """Run or load one declared stage (see :meth:`run`)."""
        return self.run(stage.name, stage.key, list(stage.outputs), stage.run, stage.load)

    def run(
        self,
        name: str,
        key: Any,
        outputs: list[Path],
        compute: Callable[[bool], R],
        load: Callable[[], R],
    ) -> R:
        """Load the stage's saved result when its key is unchanged, else ``compute(resume)``.

        ``resume`` is True when an earlier attempt with the same key was interrupted, so a
        stage with its own checkpoints (distillation) can continue instead of starting over.
        """
        digest = fingerprint(key)
        entry = self.state.get(name)
        same = entry is not None and entry.get("key") == digest
        if self.is_fresh(name, key, outputs):
            assert entry is not None
            self.skipped.append(name)
            self.timings[name] = float(entry.get("seconds", 0.0))  # what it cost when it ran
            return load()
        resume = same and not entry.get("finished", True)
        self.invalidated = True
        self.state[name] = {"key": digest, "finished": False, "started_at": time.time()}
        atomic_write_text(self.path, json.dumps(self.state, indent=2))
        t0 = time.perf_counter()
        result = compute(resume)
        self.timings[name] = time.perf_counter() - t0
        self.state[name] = {"key": digest, "finished": True, "seconds": round(self.timings[name], 3), "finished_at": time.time()}
        atomic_write_text(self.path, json.dumps(self.state, indent=2))
        return result
