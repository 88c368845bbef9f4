"""Image folders: an ImageFolder layout (one subfolder per class) or a flat unlabeled folder.

Files are found by extension and each is decoded once while scanning, to find unreadable or
truncated images before training starts and to learn sizes and colour modes; no pixels are
kept. Training decodes again, lazily, one item at a time (:class:`FileSource`).

Hostile entries -- symlink loops, broken symlinks, FIFOs (opening one would block forever),
device files, sockets, unreadable files -- are never opened: they are skipped with a count in
the task's notes, or reported as an error with ``strict``.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import Counter
from pathlib import Path

import numpy as np

from edgecompress.data.raw import RawData, default_augment, warn
from edgecompress.data.sources import FileSource
from edgecompress.errors import DataError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def _odd_kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file or folder")


class _Listing:
    """One folder's image files and sub-folders; what is neither is recorded, never opened."""

    def __init__(self, folder: Path, strict: bool) -> None:
        self.files: list[Path] = []
        self.dirs: list[Path] = []
        self.odd: list[str] = []
        try:
            entries = sorted(folder.iterdir())
        except OSError as exc:
            raise DataError(f"{folder}: cannot list the folder ({exc.strerror or exc})") from None
        for p in entries:
            try:
                st = p.stat()  # follows symlinks: a loop or a dangling link fails here
            except OSError as exc:
                why = "a symlink loop" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
                self._odd(p, why, strict)
                continue
            if stat.S_ISDIR(st.st_mode):
                if not p.name.startswith("."):
                    self.dirs.append(p)
            elif not stat.S_ISREG(st.st_mode):
                self._odd(p, _odd_kind(st.st_mode), strict)
            elif p.suffix.lower() in IMAGE_EXTS:
                if not os.access(p, os.R_OK):
                    self._odd(p, "not readable (permission denied)", strict)
                else:
                    self.files.append(p)

    def _odd(self, p: Path, why: str, strict: bool) -> None:
        if strict:
            raise DataError(f"{p}: {why}; remove it, or drop --strict to skip it")
        self.odd.append(f"{p.name} ({why})")


def _note_skipped(where: Path, odd: list[str]) -> None:
    if odd:
        warn(f"{where}: skipped {len(odd)} entr{'y' if len(odd) == 1 else 'ies'} that cannot be read as an image or "
             f"class folder (first: {odd[0]}); use --strict to fail instead")


def _image_files(folder: Path, strict: bool = False, odd: list[str] | None = None) -> list[Path]:
    listing = _Listing(folder, strict)
    if odd is not None:
        odd += listing.odd
    return listing.files


def _probe(path: Path) -> tuple[tuple[int, int], int]:
    """Fully decode ``path``; return ((H, W), channels). Raises OSError / ValueError if unreadable."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()  # a truncated file fails here, not at Image.open
        channels = 1 if im.mode in ("1", "L", "I", "I;16", "F") else 3
        return (im.height, im.width), channels


def _scan(paths: list[Path], where: Path, strict: bool, progress: bool) -> tuple[list[int], Counter, int]:
    """Indices of readable files, a Counter of sizes, and the channel count to serve."""
    from tqdm import tqdm

    keep: list[int] = []
    sizes: Counter = Counter()
    colour = False
    bad: list[str] = []
    for i, p in enumerate(tqdm(paths, desc=f"scan {where.name}", unit="img", disable=not progress, leave=False)):
        try:
            hw, ch = _probe(p)
        except (OSError, ValueError, SyntaxError) as exc:
            if strict:
                raise DataError(f"{p}: unreadable or truncated image ({exc}); remove it or drop --strict to skip it") from None
            bad.append(f"{p.name}: {exc}")
            continue
        keep.append(i)
        sizes[hw] += 1
        colour |= ch == 3
    if bad:
        warn(f"{where}: skipped {len(bad)} unreadable image(s) (first: {bad[0]}); use --strict to fail instead")
    return keep, sizes, 3 if colour else 1


def _default_shape(sizes: Counter, channels: int, where: Path) -> tuple[int, int, int]:
    (h, w), _ = sizes.most_common(1)[0]
    if len(sizes) > 1:
        warn(f"{where}: images have {len(sizes)} different sizes; all are resized to {h}x{w} (the most common)")
    return channels, h, w


def load_image_folder(root: Path, *, strict: bool = False, progress: bool = False) -> RawData:
    """ImageFolder layout: ``root/<class>/<image>``; class index = sorted subfolder order."""
    top = _Listing(root, strict)
    odd = list(top.odd)
    subdirs = top.dirs
    if not subdirs:
        _note_skipped(root, odd)
        loose = top.files
        hint = f" (it holds {len(loose)} loose image(s): pass it as --unlabeled for a flat folder)" if loose else ""
        raise DataError(f"{root}: no class subfolders; expected {root}/<class>/<image>{hint}")
    paths: list[Path] = []
    labels: list[int] = []
    empty = []
    for k, d in enumerate(subdirs):
        files = _image_files(d, strict, odd)
        if not files:
            empty.append(d.name)
        paths += files
        labels += [k] * len(files)
    if not paths:
        raise DataError(f"{root}: the class subfolders hold no images ({', '.join(IMAGE_EXTS)})")
    if empty:
        raise DataError(f"{root}: class folder(s) with no images: {', '.join(empty)}")
    _note_skipped(root, odd)
    keep, sizes, channels = _scan(paths, root, strict, progress)
    if not keep:
        raise DataError(f"{root}: none of the {len(paths)} images could be read")
    y = np.asarray(labels, np.int64)[keep]
    missing = [subdirs[k].name for k in range(len(subdirs)) if not (y == k).any()]
    if missing:
        raise DataError(f"{root}: every image of class folder(s) {', '.join(missing)} is unreadable")
    shape = _default_shape(sizes, channels, root)
    return RawData(
        name=root.name,
        class_names=tuple(d.name for d in subdirs),
        train=FileSource([paths[i] for i in keep], y, channels),
        default_shape=shape,
        augment=default_augment(shape, flip=True),
    )


def load_flat_folder(root: Path, channels: int, *, strict: bool = False, progress: bool = False) -> FileSource:
    """Unlabeled images directly in ``root`` (subfolders are searched too, one level per class-like dir)."""
    top = _Listing(root, strict)
    odd = list(top.odd)
    paths = list(top.files)
    for d in top.dirs:
        paths += _image_files(d, strict, odd)
    _note_skipped(root, odd)
    if not paths:
        raise DataError(f"{root}: no images found ({', '.join(IMAGE_EXTS)})")
    keep, sizes, _ = _scan(paths, root, strict, progress)
    if not keep:
        raise DataError(f"{root}: none of the {len(paths)} images could be read")
    if len(sizes) > 1:
        warn(f"{root}: unlabeled images have {len(sizes)} different sizes; all are resized to the input shape")
    # The pool is served with the labeled task's channel count, whatever its own files store.
    return FileSource([paths[i] for i in keep], None, channels)
